# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Discovery of extension images the way systemd's image_discover() does it
(src/shared/discover-image.c): the search directories, names, types, shadowing and vpick.
What each image holds is read by imagemeta.py."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import NamedTuple

from . import rootfs, vpick
from .version import sort_names
from .release import CONFEXT, SYSEXT, is_initrd, native_architecture

# image_search_path[] / image_search_path_initrd[] in discover-image.c, precedence order:
# a name found in an earlier directory shadows the same name in later ones.
SEARCH_DIRS = {
    SYSEXT: ('/etc/extensions', '/run/extensions', '/var/lib/extensions'),
    CONFEXT: ('/run/confexts', '/var/lib/confexts', '/usr/local/lib/confexts', '/usr/lib/confexts'),
}
SEARCH_DIRS_INITRD = {
    SYSEXT: ('/etc/extensions', '/run/extensions', '/var/lib/extensions', '/.extra/sysext',
             '/.extra/global_sysext'),
    CONFEXT: ('/run/confexts', '/var/lib/confexts', '/usr/local/lib/confexts', '/.extra/confext',
              '/.extra/global_confext'),
}
CLASS_SUFFIX = {SYSEXT: '.sysext', CONFEXT: '.confext'}
# The checksum of an image file, cached by tucked.sysext.sysext_image: 'ALGO SIZE MTIME_NS INODE HEX'
DIGEST_XATTR = 'user.tucked.digest'
NAME_MAX = 255


def image_name_is_valid(name: str) -> bool:
    """systemd's image_name_is_valid(): a valid file name, no control characters, valid
    UTF-8, not a temporary ``.#`` file."""
    if not name or name in ('.', '..') or '/' in name or len(name.encode('utf-8', 'surrogateescape')) > NAME_MAX:
        return False
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return False
    try:
        name.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return not name.startswith('.#')


def plain_extension_name(name: str) -> bool:
    """A name sysext_image and sysext_build accept for an extension: a valid image name that
    is a plain file name (no '/', no leading '.', no whitespace) without the ``.raw`` suffix."""
    return bool(name) and not name.startswith('.') and image_name_is_valid(name) \
        and not name.endswith('.raw') and not any(c.isspace() for c in name)


def extract_name(fname: str, cls: str, format_suffixes: tuple[str, ...] | None) -> str | None:
    """extract_image_basename(): strip a required format suffix (``.raw``), then the
    optional class suffix (``.sysext``/``.confext``); None if the rest is not a valid name."""
    name = fname
    if format_suffixes is not None:
        for suf in format_suffixes:
            if suf and name.endswith(suf):
                name = name[:-len(suf)]
                break
        else:
            if '' not in format_suffixes:
                return None
    if name.endswith(CLASS_SUFFIX[cls]):
        name = name[:-len(CLASS_SUFFIX[cls])]
    return name if image_name_is_valid(name) else None


def digest_key(st: os.stat_result, algo: str) -> str:
    return '%s %d %d %d ' % (algo, st.st_size, st.st_mtime_ns, st.st_ino)


def cached_digest(path: str, st: os.stat_result | None = None) -> str | None:
    """'ALGO:HEX' from the digest xattr when it still matches the file (size, mtime and inode
    unchanged); None otherwise. Reads no image data."""
    try:
        st = st or os.stat(path)
        value = os.getxattr(path, DIGEST_XATTR).decode('ascii')
    except (OSError, UnicodeDecodeError):
        return None
    algo = value.split(' ', 1)[0]
    key = digest_key(st, algo)
    if not value.startswith(key):
        return None
    return '%s:%s' % (algo, value[len(key):])


@dataclass
class Image:
    """One image found in a search directory."""
    name: str
    cls: str
    entry: str                 # in-root path of the directory entry (before symlinks)
    path: str                  # resolved in-root path (what systemd records)
    host_path: str             # the same on this machine
    type: str                  # directory | raw | block
    release: dict | None = None
    release_file: str | None = None
    compatible: bool = False
    reason: str = ''
    readable: bool = True      # False when the release could not be read at all
    shadows: list = field(default_factory=list)   # in-root entries this one hides
    provides: tuple = ()       # hierarchies the image has a directory for (/usr, /opt, /etc)
    picked: dict | None = None  # for an entry of a NAME.v/ directory: what vpick chose, and the losers
    st: os.stat_result | None = None   # of the resolved image, taken by the discovery
    container: str | None = None       # image files: filesystem | gpt
    fstype: str | None = None          # image files: squashfs, erofs, ext4, btrfs, xfs, ...
    compression: str | None = None     # image files: what the superblock names (squashfs, erofs)
    layout: object = None              # image files: imagefs.Layout (partition, verity partitions)
    protection: str | None = None      # image files: unprotected | verity | signed
    verity_hash: str | None = None     # image files: the dm-verity root hash the origin records
    verity_plan: object = None         # image files: verity.Plan, how the native engine sets verity up
    fatal: str = ''            # why a merge cannot use this image file, which fails the whole merge
    fatal_shared: bool = True  # False when only this run cannot read it (systemd, as root, may)

    @property
    def version(self) -> str | None:
        if not self.release:
            return None
        return self.release.get('VERSION') or self.release.get('IMAGE_VERSION') or self.release.get('VERSION_ID')


class Discovery(NamedTuple):
    images: list[Image]        # winners in stacking order (version-sorted names, lowest first)
    ignored: list[dict]        # entries skipped, with the reason
    warnings: list[str]
    search_dirs: tuple[str, ...]
    fatal: tuple = ()          # entries that make systemd's whole image discovery fail (no merge at all)


def search_dirs(root: str, cls: str) -> tuple[str, ...]:
    return (SEARCH_DIRS_INITRD if is_initrd(root) else SEARCH_DIRS)[cls]


def discover(root: str, cls: str) -> Discovery:
    """Find the images of ``cls`` under ``root``; no image content is read here."""
    found: dict[str, Image] = {}
    ignored: list[dict] = []
    warnings: list[str] = []
    fatal: list[str] = []
    dirs = search_dirs(root, cls)
    for sdir in dirs:
        try:
            inroot_dir = rootfs.chase(root, sdir)
        except FileNotFoundError:
            continue
        except OSError as e:
            warnings.append('cannot open search directory %s: %s' % (rootfs.host_path(root, sdir), e.strerror))
            continue
        host_dir = rootfs.host_path(root, inroot_dir)
        try:
            # readdir order, as systemd reads it: of two entries of one name in one directory
            # (foo.raw and foo.raw.v) the first listed wins
            entries = os.listdir(host_dir)
        except NotADirectoryError:
            continue
        except OSError as e:
            warnings.append('cannot list search directory %s: %s' % (host_dir, e.strerror))
            continue
        for fname in entries:
            entry = os.path.join(sdir, fname)
            skip = _classify(root, cls, sdir, fname)
            if isinstance(skip, dict):
                skip['entry'] = entry
                ignored.append(skip)
                if skip.get('warn'):
                    warnings.append(skip['reason'])
                if skip.get('fatal'):
                    fatal.append(skip['reason'])
                continue
            name, resolved, kind, picked, st = skip
            if name in found:
                found[name].shadows.append(entry)
                ignored.append({'entry': entry, 'name': name,
                                'reason': 'shadowed by %s' % found[name].entry})
                continue
            found[name] = Image(name=name, cls=cls, entry=entry, path=resolved,
                                host_path=rootfs.host_path(root, resolved), type=kind, picked=picked, st=st)
    images = [found[n] for n in sort_names(found)]
    return Discovery(images=images, ignored=ignored, warnings=warnings, search_dirs=dirs, fatal=tuple(fatal))


def _classify(root: str, cls: str, sdir: str, fname: str):
    """Return (name, resolved in-root path, type, vpick choice, stat) or a dict explaining why it is skipped."""
    entry = os.path.join(sdir, fname)
    shown = rootfs.host_path(root, entry)
    # Note: names starting with '.' are used (systemd 262 merges them too); only '.#'
    # temporary files are invalid (image_name_is_valid()).
    try:
        resolved = rootfs.chase(root, entry)
        st = os.stat(rootfs.host_path(root, resolved))
    except FileNotFoundError:
        return {'reason': '%s is a dangling symlink, ignoring it' % shown, 'warn': True}
    except OSError as e:
        # discover-image.c: any error of chaseat() on an entry but ENOENT fails the discovery of
        # every image, and with it the whole merge or refresh
        what = 'symlink loop' if e.errno == errno.ELOOP else e.strerror
        return {'reason': '%s: %s; systemd-sysext fails its whole image discovery on such an entry (%s) and merges '
                          'nothing; remove or fix it' % (shown, what, os.strerror(e.errno)),
                'warn': True, 'fatal': True}
    picked = None
    if stat.S_ISDIR(st.st_mode) and fname.endswith('.v'):
        found = _pick(root, cls, entry, fname, resolved)
        if isinstance(found, dict):
            return found
        name, resolved, st, picked = found
        kind = 'raw' if stat.S_ISREG(st.st_mode) else 'block' if stat.S_ISBLK(st.st_mode) else 'directory'
    elif stat.S_ISREG(st.st_mode):
        name = extract_name(fname, cls, ('.raw',))
        kind = 'raw'
    elif stat.S_ISDIR(st.st_mode):
        name = extract_name(fname, cls, None)
        kind = 'directory'
    elif stat.S_ISBLK(st.st_mode):
        name = fname if image_name_is_valid(fname) else None
        kind = 'block'
    else:
        return {'reason': 'neither regular file, directory nor block device'}
    if name is None:
        return {'reason': "%s does not look like an image (invalid name or missing .raw suffix)" % shown}
    return name, resolved, kind, picked, st


def _right_type(st: os.stat_result, wants_file: bool) -> bool:
    if wants_file:
        return stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)
    return stat.S_ISDIR(st.st_mode)


class _Unresolvable(Exception):
    def __init__(self, fname: str, error: OSError):
        super().__init__(fname)
        self.fname, self.error = fname, error


def _pick(root: str, cls: str, entry: str, fname: str, inroot_dir: str):
    """vpick on the ``.v`` directory ``entry``: (name, resolved in-root path of the winner, its
    stat, the choice for the facts), or a dict saying why the entry is skipped."""
    shown = rootfs.host_path(root, entry)
    vn = vpick.split_versioned(fname, CLASS_SUFFIX[cls])
    if vn is None or not image_name_is_valid(vn.name) or vn.suffix.endswith('.mstack'):
        return {'reason': "%s does not look like a versioned image (NAME.v/ or NAME.raw.v/)" % shown, 'warn': True}
    try:
        listing = os.listdir(rootfs.host_path(root, inroot_dir))
    except OSError as e:
        return {'name': vn.name, 'reason': 'cannot list %s: %s' % (shown, e.strerror), 'warn': True}
    native = native_architecture()

    def usable(vname: str) -> str | None:
        """vpick.c's pin_choice(): the entry is resolved inside the root (symlinks followed) and
        an inode of the wrong type is passed over, so the next version is taken; an entry that
        cannot be resolved fails the whole pick (_Unresolvable)."""
        try:
            est = os.stat(rootfs.resolve(root, os.path.join(entry, vname)))
        except OSError as e:
            raise _Unresolvable(vname, e) from None
        if _right_type(est, vn.wants_file):
            return None
        what = 'leads to %s' % rootfs.kind(est.st_mode)
        return '%s, not a regular file or block device' % what if vn.wants_file else '%s, not a directory' % what

    try:
        choice = vpick.pick(listing, vn, native, usable)
    except _Unresolvable as e:
        return {'name': vn.name, 'warn': True,
                'reason': '%s/%s %s; systemd-sysext skips all of %s then'
                          % (shown, e.fname, 'is a dangling symlink' if isinstance(e.error, FileNotFoundError)
                             else 'cannot be resolved: %s' % (e.error.strerror or e.error), shown)}
    if choice.winner is None:
        return {'name': vn.name, 'warn': True,
                'reason': '%s holds no usable %s named %s_VERSION%s for architecture %s (or none); nothing to pick'
                          % (shown, 'file' if vn.wants_file else 'directory', vn.name, vn.suffix,
                             ', '.join(vpick.local_architectures(native)))}
    try:
        resolved = rootfs.chase(root, os.path.join(entry, choice.winner.fname))
        st = os.stat(rootfs.host_path(root, resolved))
        why = None if _right_type(st, vn.wants_file) else 'leads to no %s' % ('file' if vn.wants_file else 'directory')
    except OSError as e:
        why = 'cannot be used: %s' % (e.strerror or e)
    if why:
        return {'name': vn.name, 'warn': True, 'reason': '%s/%s, the version picked, %s; systemd-sysext skips all of '
                                                         '%s then' % (shown, choice.winner.fname, why, shown)}
    w = choice.winner
    picked = {'from': entry, 'entry': w.fname, 'version': w.version, 'architecture': w.architecture,
              'tries_left': w.tries_left, 'tries_done': w.tries_done, 'candidates': choice.candidates}
    return vn.name, resolved, st, picked
