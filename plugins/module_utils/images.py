# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Discovery of extension images the way systemd's image_discover() does it
(src/shared/discover-image.c), and reading each image's extension-release
(src/basic/os-util.c, open_extension_release()) without mounting anything."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import NamedTuple

from . import imagefs, rootfs, vpick
from .version import sort_names
from .release import CONFEXT, SYSEXT, ReleaseError, is_initrd, native_architecture, parse_boolean, read_release_bytes

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
RELEASE_DIR = {SYSEXT: '/usr/lib/extension-release.d', CONFEXT: '/etc/extension-release.d'}
STRICT_XATTR = 'user.extension-release.strict'
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


class NotRegular(imagefs.ImageError):
    """A release file in a directory image that is not a regular file."""


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
    fstype: str | None = None  # squashfs | erofs for image files
    protection: str | None = None   # unprotected | verity | signed (image files; see policy.protection)
    fatal: str = ''            # why systemd-sysext's whole merge would fail because of this image

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


def search_dirs(root: str, cls: str) -> tuple[str, ...]:
    return (SEARCH_DIRS_INITRD if is_initrd(root) else SEARCH_DIRS)[cls]


def discover(root: str, cls: str) -> Discovery:
    """Find the images of ``cls`` under ``root``; no image content is read here."""
    found: dict[str, Image] = {}
    ignored: list[dict] = []
    warnings: list[str] = []
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
                continue
            name, resolved, kind, picked = skip
            if name in found:
                found[name].shadows.append(entry)
                ignored.append({'entry': entry, 'name': name,
                                'reason': 'shadowed by %s' % found[name].entry})
                continue
            found[name] = Image(name=name, cls=cls, entry=entry, path=resolved,
                                host_path=rootfs.host_path(root, resolved), type=kind, picked=picked)
    images = [found[n] for n in sort_names(found)]
    return Discovery(images=images, ignored=ignored, warnings=warnings, search_dirs=dirs)


def _classify(root: str, cls: str, sdir: str, fname: str):
    """Return (name, resolved in-root path, type, vpick choice) or a dict explaining why it is skipped."""
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
        if e.errno == errno.ELOOP:
            return {'reason': '%s: symlink loop (systemd-sysext refuses to run with it; remove the link)' % shown,
                    'warn': True}
        return {'reason': '%s: %s' % (shown, e.strerror), 'warn': True}
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
    return name, resolved, kind, picked


def _right_type(st: os.stat_result, wants_file: bool) -> bool:
    if wants_file:
        return stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)
    return stat.S_ISDIR(st.st_mode)


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
    seen: dict = {}

    def usable(vname: str) -> str | None:
        """The type test of the enumeration: on the entry itself, symlinks pass."""
        try:
            est = os.lstat(os.path.join(rootfs.host_path(root, inroot_dir), vname))
        except OSError as e:
            return 'cannot be used: %s' % e.strerror
        if stat.S_ISLNK(est.st_mode) or _right_type(est, vn.wants_file):
            return None
        return 'not a regular file or block device' if vn.wants_file else 'not a directory'

    choice = vpick.pick(listing, vn, native, usable)
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


# ---------------------------------------------------------------------------- release files
class ImageSource:
    """Uniform read access to an image's tree: a directory on this machine or a
    squashfs/erofs file read by imagefs. Paths are inside the image."""

    def __init__(self, img: Image):
        self.img = img
        self._fd = None
        self._reader = None
        self._chased: dict = {}
        if img.type in ('raw', 'block'):
            self._fd = os.open(img.host_path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self._reader = imagefs.open_image(self._fd)
            except BaseException:
                os.close(self._fd)
                raise

    @property
    def fstype(self) -> str | None:
        return self._reader.FSTYPE if self._reader is not None else None

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _resolve(self, path: str) -> str:
        """Host path of ``path`` inside a directory image (symlinks kept inside it); cached,
        since the release file is first looked up and then read."""
        if path not in self._chased:
            self._chased[path] = rootfs.resolve(self.img.host_path, path)
        return self._chased[path]

    def read(self, path: str, limit: int) -> bytes:
        if self._reader is not None:
            return self._reader.read_file(path, limit)
        real = self._resolve(path)
        if not os.path.isfile(real):
            raise NotRegular('%s is not a regular file' % path)
        with open(real, 'rb') as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise imagefs.TooLarge('file is larger than the %d bytes allowed' % limit)
        return data

    def is_dir(self, path: str) -> bool:
        if self._reader is not None:
            try:
                return self._reader.is_dir(path)
            except imagefs.ImageError:
                return False
        try:
            return os.path.isdir(self._resolve(path))
        except OSError:
            return False

    def exists(self, path: str) -> bool:
        try:
            if self._reader is not None:
                self._reader.resolve(path)
            else:
                self._resolve(path)
            return True
        except (imagefs.NotFound, FileNotFoundError):
            return False

    def list_release_dir(self, path: str) -> list[str]:
        if self._reader is not None:
            return sorted(self._reader.list_dir(path))
        return sorted(os.listdir(self._resolve(path)))

    def strict_xattr(self, path: str) -> str | None:
        """The user.extension-release.strict xattr of a file; None when absent."""
        if self._reader is not None:
            try:
                value = self._reader.get_xattr(path, STRICT_XATTR)
            except imagefs.ImageError:
                return None
            return value.decode('utf-8', 'replace') if value is not None else None
        try:
            return os.getxattr(os.path.join(self.img.host_path, path.lstrip('/')), STRICT_XATTR,
                               follow_symlinks=False).decode('utf-8', 'replace')
        except OSError:
            return None

    def is_regular_nofollow(self, path: str) -> bool:
        if self._reader is not None:
            return stat.S_ISREG(self._reader.lstat_mode(path))
        return stat.S_ISREG(os.lstat(os.path.join(self.img.host_path, path.lstrip('/'))).st_mode)


def base_name(name: str) -> str:
    """path_extract_image_name(): the name without image suffixes and without the version or
    tries counter that follow the first ``_`` or ``+`` (``foo_1.2`` -> ``foo``)."""
    for suf in ('.sysext.raw', '.confext.raw', '.raw'):
        if name.endswith(suf):
            name = name[:-len(suf)]
            break
    for i, c in enumerate(name):
        if c in '_+':
            return name[:i]
    return name


def find_release(src: ImageSource, name: str, cls: str) -> str:
    """open_extension_release(): the in-image path of the release file for ``name``.

    ``extension-release.NAME`` first; if it is missing (a renamed image), the single file
    ``extension-release.*`` named after NAME without its version (``foo`` for ``foo_1.2`` or
    ``foo+3``, path_extract_image_name()) or whose user.extension-release.strict xattr is false.
    Raises FileNotFoundError when there is none and ReleaseError when several qualify.
    """
    rdir = RELEASE_DIR[cls]
    wanted = '%s/extension-release.%s' % (rdir, name)
    if src.exists(wanted):
        return wanted
    try:
        candidates = src.list_release_dir(rdir)
    except (OSError, imagefs.ImageError):
        raise FileNotFoundError(errno.ENOENT, 'no %s' % wanted) from None
    found = None
    base = base_name(name)
    for fname in candidates:
        other = fname[len('extension-release.'):] if fname.startswith('extension-release.') else None
        if not other or not image_name_is_valid(other):
            continue
        path = '%s/%s' % (rdir, fname)
        try:
            if not src.is_regular_nofollow(path):
                continue
        except (OSError, imagefs.ImageError):
            continue
        if other != base:
            xv = src.strict_xattr(path)
            if xv is None or parse_boolean(xv) is not False:
                continue
        if found is not None:
            raise ReleaseError('%s holds more than one release file that may be %s\'s (named %s or marked %s=false: '
                               '%s, %s); keep one' % (rdir, name, 'extension-release.' + base, STRICT_XATTR, found, path))
        found = path
    if found is None:
        raise FileNotFoundError(errno.ENOENT, 'no %s' % wanted)
    return found


def load_release(img: Image, hierarchies: tuple[str, ...], max_size: int = 64 * 1024) -> None:
    """Fill ``img.release``/``release_file``/``provides``; on failure set
    ``readable``/``reason``."""
    shown = img.host_path
    try:
        with ImageSource(img) as src:
            img.fstype = src.fstype
            rel = find_release(src, img.name, img.cls)
            img.release_file = rel
            data = src.read(rel, max_size)
            img.provides = tuple(h for h in hierarchies if src.is_dir(h))
        img.release = read_release_bytes(data, '%s (in %s)' % (rel, shown))
    except FileNotFoundError:
        img.readable = False
        names = dict.fromkeys((img.name, base_name(img.name)))
        img.reason = ('%s has no %s/extension-release.%s; add one (or set %s=false on a renamed image\'s '
                      'release file)' % (shown, RELEASE_DIR[img.cls].lstrip('/'), ' or extension-release.'.join(names),
                                         STRICT_XATTR))
    except imagefs.TooLarge:
        img.readable = False
        img.reason = ('%s: its release file %s is larger than %d bytes; a release file holds a few KEY=VALUE '
                      'lines' % (shown, img.release_file, max_size))
    except NotRegular as e:
        img.readable = False
        img.reason = '%s: %s; make it a file with KEY=VALUE lines' % (shown, e)
    except imagefs.UnsupportedImage as e:
        img.readable = False
        img.reason = '%s: %s' % (shown, e)
    except imagefs.ImageError as e:
        img.readable = False
        img.reason = '%s: cannot read the release file: %s (is the image corrupt?)' % (shown, e)
    except ReleaseError as e:
        img.readable = False
        img.reason = str(e)
    except OSError as e:
        img.readable = False
        img.reason = '%s: %s' % (e.filename or shown, e.strerror)
