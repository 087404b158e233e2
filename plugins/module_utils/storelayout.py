# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layout of sysext_image's store, read: which names and versions are valid, the store and
link paths of a name resolved inside the root, the versions stored, the files of other tools
and of interrupted runs, and what the link currently selects. Nothing here writes."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from . import images, rootfs, vpick
from .fsutil import pid_alive
from .release import CONFEXT, SYSEXT
from .storefiles import DEFAULT_STORE_DIR, SUFFIX
from .version import version_key

TMP_PREFIX = '.#'
STORE_FILE_OF_ANOTHER_TOOL = '%s points to %s, a file in the store this module did not write'
_VERSION_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9.~^-]{0,127}$')


class StoreError(Exception):
    """A request that cannot be carried out; nothing on the host was changed.
    ``stored`` is False when the wanted version is not in the store and no source was given."""

    def __init__(self, msg: str, stored: bool | None = None):
        super().__init__(msg)
        self.stored = stored


# ----------------------------------------------------------------------------- validation
def check_name(name: str) -> None:
    if not images.plain_extension_name(name):
        raise StoreError("invalid extension name %r: use a plain file name such as 'docker' (no '/', no "
                         "leading '.', no whitespace, without the .raw suffix)" % (name,))


def check_version(version: str) -> None:
    if not version or not _VERSION_RE.match(version):
        raise StoreError("invalid version %r: start with a letter or digit and use only letters, digits and "
                         "'.', '~', '^', '-' (systemd's version comparison ignores every other character, so "
                         "such versions would not sort as they read)" % (version,))
    arch = architecture_suffix(version)
    if arch:
        raise StoreError("version %r ends in the architecture %s, which the NAME-VERSION-ARCH.raw naming of "
                         "systemd-sysupdate and sysext-bakery reads as the architecture, not the version: give the "
                         "version without -%s" % (version, arch, arch))


# a stored NAME-VERSION.raw is written as .#NAME-VERSION.raw.PID first, with its sidecars
# (.roothash.p7s the longest) beside it: all of them must fit in NAME_MAX (255 bytes)
STORED_NAME_MAX = images.NAME_MAX - len(TMP_PREFIX) - len('.4194304') - len('.roothash.p7s')


def check_stored_name(name: str, version: str) -> None:
    """Refuse a NAME-VERSION.raw too long for the store's temporary and sidecar files."""
    fname = '%s-%s%s' % (name, version, SUFFIX)
    size = len(fname.encode('utf-8', 'surrogateescape'))
    if size > STORED_NAME_MAX:
        raise StoreError('the stored file name %s... is %d bytes long; the store writes it (and its temporary '
                         'and sidecar files) only up to %d bytes (the file system allows 255 per name): use a '
                         'shorter name or version' % (fname[:40], size, STORED_NAME_MAX))


def architecture_suffix(version: str) -> str | None:
    """The systemd architecture name (src/basic/architecture.c) ``version`` ends in after a '-',
    as in sysext-bakery's and systemd-sysupdate's ``NAME-VERSION-ARCH.raw`` (``docker-27.3.1-x86-64.raw``);
    None when it ends in none. The longest name wins (``arm64-be`` over ``be``)."""
    found = [a for a in vpick.ARCHITECTURES if version.endswith('-' + a) and len(version) > len(a) + 1]
    return max(found, key=len) if found else None


def parse_store_file(name: str, fname: str) -> tuple[str, str | None] | None:
    """(version, architecture) of a store file ``NAME-VERSION[-ARCH].raw``; None for any other
    name. Only files without an architecture are this module's own versions."""
    prefix = name + '-'
    if not (fname.startswith(prefix) and fname.endswith(SUFFIX)):
        return None
    stem = fname[len(prefix):-len(SUFFIX)]
    arch = architecture_suffix(stem)
    version = stem[:-len(arch) - 1] if arch else stem
    return (version, arch) if _VERSION_RE.match(version) else None


# ----------------------------------------------------------------------------- layout
@dataclass
class Layout:
    root: str
    name: str
    store: str          # in-root store directory of this name (resolved)
    link_dir: str       # in-root link directory (resolved)

    def host(self, inroot: str) -> str:
        return rootfs.host_path(self.root, inroot)

    def file_for(self, version: str) -> str:
        return '%s/%s-%s%s' % (self.store, self.name, version, SUFFIX)

    @property
    def link(self) -> str:
        return '%s/%s%s' % (self.link_dir.rstrip('/'), self.name, SUFFIX)


def _chase_dir(root: str, path: str, what: str) -> str:
    if not path.startswith('/'):
        raise StoreError('%s %r must be an absolute path (inside root)' % (what, path))
    try:
        return rootfs.chase(root, path, missing_ok=True)
    except OSError as e:
        raise StoreError('%s %s cannot be resolved inside %s: %s' % (what, path, root, e.strerror)) from None


def layout(root: str, name: str, store_dir: str, link_dir: str) -> Layout:
    store = _chase_dir(root, store_dir, 'store_dir').rstrip('/') + '/' + name
    store = _chase_dir(root, store, 'store_dir')
    link = _chase_dir(root, link_dir, 'link_dir')
    searched = {d for cls in (SYSEXT, CONFEXT) for d in images.SEARCH_DIRS_INITRD[cls]}
    parent = _chase_dir(root, store_dir, 'store_dir')
    if parent in searched or any(parent.startswith(d + '/') for d in searched):
        raise StoreError('store_dir %s is (inside) a directory systemd searches for extensions, so every '
                         'stored version would be merged; use a directory outside them, such as %s'
                         % (store_dir, DEFAULT_STORE_DIR))
    return Layout(root=os.path.abspath(root), name=name, store=store, link_dir=link)


def _store_entries(lay: Layout) -> list[str]:
    try:
        return os.listdir(lay.host(lay.store))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StoreError('cannot list the store %s: %s' % (lay.host(lay.store), e.strerror)) from None


def stored_versions(lay: Layout) -> list[str]:
    """This module's versions in the store (``NAME-VERSION.raw``), oldest first, in systemd's order."""
    found = []
    for fname in _store_entries(lay):
        parsed = parse_store_file(lay.name, fname)
        if parsed and parsed[1] is None:
            found.append(parsed[0])
    return sorted(found, key=version_key)


def unmanaged_files(lay: Layout) -> list[str]:
    """In-root paths of the files in the store that are not this module's versions nor its
    temporary files (``NAME-VERSION-ARCH.raw`` of sysext-bakery or systemd-sysupdate, anything
    else): never selected, pruned or removed."""
    out = []
    for fname in _store_entries(lay):
        parsed = parse_store_file(lay.name, fname)
        if not (parsed and parsed[1] is None) and not fname.startswith(TMP_PREFIX + lay.name + '-'):
            out.append('%s/%s' % (lay.store, fname))
    return sorted(out)


def leftovers(lay: Layout) -> list[str]:
    """Temporary files of interrupted runs (ours: ``.#NAME-VERSION.raw.PID`` in the store,
    ``.#NAME.raw.PID`` links) whose process is gone: a run still writing one is left alone."""
    out = []
    for d, prefix in ((lay.store, TMP_PREFIX + lay.name + '-'), (lay.link_dir, TMP_PREFIX + lay.name + SUFFIX)):
        try:
            names = os.listdir(lay.host(d))
        except OSError:
            continue
        out += ['%s/%s' % (d, f) for f in names if f.startswith(prefix) and not _writer_alive(f)]
    return out


def _writer_alive(fname: str) -> bool:
    """Whether the process named by the ``.PID`` suffix of a temporary file still runs."""
    # .#NAME-VERSION.raw.PID, its staged sidecars .#NAME-VERSION.raw.PID.verity ...
    m = re.search(r'\.raw\.(\d+)(?:\.|$)', fname)
    pid = m.group(1) if m else ''
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    return pid_alive(int(pid))


def current_selection(lay: Layout) -> tuple[str | None, str | None]:
    """(version selected by the link, or None; a description when the link exists but is not
    one of ours: a regular file, or a symlink to something outside this name's store)."""
    host_link = lay.host(lay.link)
    try:
        st = os.lstat(host_link)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        raise StoreError('cannot read %s: %s' % (host_link, e.strerror)) from None
    if not stat.S_ISLNK(st.st_mode):
        return None, '%s is a %s, not a symlink into the store' % (
            host_link, 'directory' if stat.S_ISDIR(st.st_mode) else 'file')
    try:
        target = rootfs.chase(lay.root, lay.link)
    except FileNotFoundError:
        return None, '%s is a dangling symlink (to %s)' % (host_link, os.readlink(host_link))
    except OSError as e:
        return None, '%s cannot be resolved: %s' % (host_link, e.strerror)
    d, fname = os.path.split(target)
    parsed = parse_store_file(lay.name, fname) if d == lay.store else None
    if parsed and parsed[1] is None:
        return parsed[0], None
    if d == lay.store:
        return None, STORE_FILE_OF_ANOTHER_TOOL % (host_link, target)
    return None, '%s points to %s, outside the store %s' % (host_link, target, lay.host(lay.store))
