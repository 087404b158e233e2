# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The layout of sysext_image's store, read: which names and versions are valid, the store and
link paths of a name resolved inside the root, the versions stored, the files of other tools
and of interrupted runs, and what the link currently selects. Nothing here writes.

Versions are named ``STORE_DIR/NAME/NAME-VERSION.raw``, or, with a store pattern (a
systemd-sysupdate target ``MatchPattern=`` with ``@v``, such as ``docker-@v-%a.raw``),
``STORE_DIR/FILE`` as that pattern names them, the layout of a transfer's ``Target Path=``:
the first pattern names new files, every one recognizes stored ones."""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from . import images, rootfs, vpick
from .fsutil import pid_alive
from .release import CONFEXT, SYSEXT
from .storefiles import DEFAULT_STORE_DIR, SUFFIX
from .sysupdatepattern import Pattern, PatternError, expand_specifiers, host_of
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


def check_version(version: str, patterned: bool = False) -> None:
    """Refuse a version the store cannot hold; ``patterned``: named by a store pattern, where an
    architecture at the end of the version is not read as the file's architecture."""
    if not version or not _VERSION_RE.match(version):
        raise StoreError("invalid version %r: start with a letter or digit and use only letters, digits and "
                         "'.', '~', '^', '-' (systemd's version comparison ignores every other character, so "
                         "such versions would not sort as they read)" % (version,))
    arch = None if patterned else architecture_suffix(version)
    if arch:
        raise StoreError("version %r ends in the architecture %s, which the NAME-VERSION-ARCH.raw naming of "
                         "systemd-sysupdate and sysext-bakery reads as the architecture, not the version: give the "
                         "version without -%s" % (version, arch, arch))


# a stored NAME-VERSION.raw is written as .#NAME-VERSION.raw.PID first, with its sidecars
# (.roothash.p7s the longest) beside it: all of them must fit in NAME_MAX (255 bytes)
STORED_NAME_MAX = images.NAME_MAX - len(TMP_PREFIX) - len('.4194304') - len('.roothash.p7s')


def check_stored_name(name: str, version: str, fname: str | None = None) -> None:
    """Refuse a NAME-VERSION.raw (or ``fname``) too long for the store's temporary and sidecar files."""
    fname = fname or '%s-%s%s' % (name, version, SUFFIX)
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


# ----------------------------------------------------------------------------- store patterns
def store_patterns(root: str, patterns: list) -> list:
    """The Pattern objects of a store pattern list, its specifiers expanded with the root's
    architecture and os-release (as systemd-sysupdate expands a target's MatchPattern=)."""
    values = host_of(root)
    out = []
    for p in patterns:
        try:
            pat = Pattern(expand_specifiers(p, values, 'store_pattern'), shown=p)
        except PatternError as e:
            raise StoreError(str(e)) from None
        extra = pat.other_fields()
        if extra:
            raise StoreError('store_pattern %r names %s: the store names its files by the version @v alone, in '
                             'store_dir' % (p, ', '.join(extra)))
        if not pat.text.endswith(SUFFIX):
            raise StoreError('store_pattern %r does not end in %s, which systemd-sysext requires of an image file '
                             'name' % (p, SUFFIX))
        out.append(pat)
    return out


def format_pattern(pat: Pattern, version: str) -> str:
    """The file name ``pat`` gives ``version`` (pattern_format() with @v alone)."""
    return ''.join(version if kind == 'field' else val for kind, val in pat.elements)


# ----------------------------------------------------------------------------- layout
@dataclass
class Layout:
    root: str
    name: str
    store: str          # in-root store directory of this name (resolved)
    link_dir: str       # in-root link directory (resolved)
    patterns: tuple = ()    # store patterns (Pattern); () is NAME-VERSION.raw

    def host(self, inroot: str) -> str:
        return rootfs.host_path(self.root, inroot)

    def file_for(self, version: str) -> str:
        if self.patterns:
            return '%s/%s' % (self.store, format_pattern(self.patterns[0], version))
        return '%s/%s-%s%s' % (self.store, self.name, version, SUFFIX)

    def version_of(self, fname: str) -> str | None:
        """The version of one of this name's own store files, else None."""
        if not self.patterns:
            parsed = parse_store_file(self.name, fname)
            return parsed[0] if parsed and parsed[1] is None else None
        for pat in self.patterns:
            found = pat.match(fname)
            if found is not None and _VERSION_RE.match(found['v']):
                return found['v']
        return None

    def is_temporary(self, fname: str) -> bool:
        """Whether ``fname`` is one of this store's temporary files (``.#FILE.PID``, its sidecars)."""
        if not fname.startswith(TMP_PREFIX):
            return False
        m = re.match(r'^(.*\.raw)\.\d+(?:\.[a-z0-9.]+)?$', fname[len(TMP_PREFIX):])
        return bool(m) and self.version_of(m.group(1)) is not None

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


def layout(root: str, name: str, store_dir: str, link_dir: str, patterns: list | None = None) -> Layout:
    """``patterns``: the store_pattern strings; with them the versions are in store_dir itself."""
    pats = tuple(store_patterns(root, patterns)) if patterns else ()
    store = _chase_dir(root, store_dir, 'store_dir')
    if not pats:
        store = _chase_dir(root, store.rstrip('/') + '/' + name, 'store_dir')
    link = _chase_dir(root, link_dir, 'link_dir')
    searched = {d for cls in (SYSEXT, CONFEXT) for d in images.SEARCH_DIRS_INITRD[cls]}
    parent = _chase_dir(root, store_dir, 'store_dir')
    if parent in searched or any(parent.startswith(d + '/') for d in searched):
        raise StoreError('store_dir %s is (inside) a directory systemd searches for extensions, so every '
                         'stored version would be merged; use a directory outside them, such as %s'
                         % (store_dir, DEFAULT_STORE_DIR))
    return Layout(root=os.path.abspath(root), name=name, store=store, link_dir=link, patterns=pats)


def _store_entries(lay: Layout) -> list[str]:
    try:
        return os.listdir(lay.host(lay.store))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StoreError('cannot list the store %s: %s' % (lay.host(lay.store), e.strerror)) from None


def stored_versions(lay: Layout) -> list[str]:
    """This module's versions in the store (``NAME-VERSION.raw``), oldest first, in systemd's order."""
    found = [lay.version_of(fname) for fname in _store_entries(lay)]
    return sorted((v for v in found if v is not None), key=version_key)


def unmanaged_files(lay: Layout) -> list[str]:
    """In-root paths of the files in the store that are not this module's versions nor its
    temporary files (``NAME-VERSION-ARCH.raw`` of sysext-bakery or systemd-sysupdate, anything
    else): never selected, pruned or removed."""
    out = []
    for fname in _store_entries(lay):
        ours = lay.version_of(fname) is not None or lay.is_temporary(fname) or \
            (not lay.patterns and fname.startswith(TMP_PREFIX + lay.name + '-'))
        if not ours:
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
        if lay.patterns and d == lay.store:
            mine = [f for f in names if lay.is_temporary(f)]
        else:
            mine = [f for f in names if f.startswith(prefix)]
        out += ['%s/%s' % (d, f) for f in mine if not _writer_alive(f)]
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
    version = lay.version_of(fname) if d == lay.store else None
    if version is not None:
        return version, None
    if d == lay.store:
        return None, STORE_FILE_OF_ANOTHER_TOOL % (host_link, target)
    return None, '%s points to %s, outside the store %s' % (host_link, target, lay.host(lay.store))
