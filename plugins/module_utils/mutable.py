# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd-sysext's mutable modes (--mutable=), as systemd 262 lays them out (checked
against it, see tests/integration):

==================  ==========================================  ===========================
mode                upper layer (writes go here)                imported read-only below meta
==================  ==========================================  ===========================
no                  none (read-only overlay)                    -
yes                 /var/lib/extensions.mutable/<h>, created    -
auto                /var/lib/extensions.mutable/<h> if it       -
                    exists, else none
import              none (read-only overlay)                    /var/lib/extensions.mutable/<h>
ephemeral           a tmpfs, dropped on unmerge                 -
ephemeral-import    a tmpfs, dropped on unmerge                 /var/lib/extensions.mutable/<h>
==================  ==========================================  ===========================

In every mode but ``no`` systemd mounts all hierarchies of the class, also those no
extension has files for. The origin records ``mutable: {mode, mutableDirs}``; for the
ephemeral modes the recorded directory is ``/run/systemd/sysext/<h>``.
"""

from __future__ import annotations

import os
import re
import stat
from typing import NamedTuple

from . import rootfs

MODES = ('no', 'yes', 'auto', 'import', 'ephemeral', 'ephemeral-import')
BASE = '/var/lib/extensions.mutable'
EPHEMERAL_RECORDED = '/run/systemd/sysext'
OPTIONS = ('redirect_dir=on', 'metacopy=off', 'index=off')   # plus noatime, as a mount attribute


class MutableError(ValueError):
    """The mutable directory cannot be used; the message names it and the fix."""


def component(hierarchy: str) -> str:
    """systemd's hierarchy_as_single_path_component(): /usr -> usr, /foo/bar -> foo.bar."""
    return hierarchy.strip('/').replace('/', '.')


def persistent_dir(hierarchy: str) -> str:
    return BASE + '/' + component(hierarchy)


class Layout(NamedTuple):
    """What one hierarchy gets in a given mode (in-root paths)."""
    upper: str | None          # persistent upper directory (yes, auto)
    ephemeral: bool            # upper on a tmpfs (ephemeral, ephemeral-import)
    imported: str | None       # directory imported read-only (import, ephemeral-import)
    recorded: str | None       # what goes into origin.mutable.mutableDirs

    @property
    def writable(self) -> bool:
        return bool(self.upper) or self.ephemeral

    @property
    def mounts_always(self) -> bool:
        return self.writable or self.imported is not None


NONE = Layout(upper=None, ephemeral=False, imported=None, recorded=None)


def _exists(root: str, inroot: str) -> bool:
    try:
        return os.path.isdir(rootfs.resolve(root, inroot))
    except OSError:
        return False


def layout(root: str, hierarchy: str, mode: str) -> Layout:
    """Stat-level: what ``mode`` means for ``hierarchy`` under ``root`` now."""
    pdir = persistent_dir(hierarchy)
    if mode == 'no':
        return NONE
    if mode == 'yes':
        return Layout(upper=pdir, ephemeral=False, imported=None, recorded=pdir)
    if mode == 'auto':
        return Layout(upper=pdir, ephemeral=False, imported=None, recorded=pdir) if _exists(root, pdir) else NONE
    if mode == 'import':
        return Layout(upper=None, ephemeral=False, imported=pdir, recorded=pdir) if _exists(root, pdir) else NONE
    if mode in ('ephemeral', 'ephemeral-import'):
        imported = pdir if mode == 'ephemeral-import' and _exists(root, pdir) else None
        return Layout(upper=None, ephemeral=True, imported=imported,
                      recorded=EPHEMERAL_RECORDED + '/' + component(hierarchy))
    raise MutableError('unknown mutable mode %r; use one of %s' % (mode, ', '.join(MODES)))


def recorded_dirs(layouts: dict) -> dict:
    return {h: lay.recorded for h, lay in layouts.items() if lay.recorded}


def resolve_dir(root: str, inroot: str) -> str | None:
    """The host path of directory ``inroot`` with symlinks followed inside ``root`` (an absolute
    link target means the root's own path, never this machine's); None if it does not exist."""
    try:
        host = rootfs.resolve(root, inroot)
    except OSError:
        return None
    return host if os.path.isdir(host) else None


def _same_dir(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def imported_dir(root: str, hierarchy: str, imported: str) -> str | None:
    """The host path of the directory ``import``/``ephemeral-import`` puts below the metadata,
    or None when it does not exist. Refused, as systemd refuses it, when it leads to the
    hierarchy itself: a layer cannot be its own lower layer."""
    host = resolve_dir(root, imported)
    if host is not None and _same_dir(host, rootfs.inside(root, hierarchy)):
        raise MutableError('not importing the mutable directory %s for %s as a lower layer: it leads to the '
                           'hierarchy itself; point it elsewhere or use mutable=yes'
                           % (rootfs.host_path(root, imported), hierarchy))
    return host


def _read_only(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _makedirs_0755(path: str) -> None:
    """mkdir -p, the directories made get exactly 0755 (whatever the umask)."""
    missing = []
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for d in reversed(missing):
        os.mkdir(d, 0o755)
        os.chmod(d, 0o755)


def workdir_prefix(hierarchy: str) -> str:
    return '.systemd-%s-workdir' % component(hierarchy)


def prepare_upper(root: str, hierarchy: str, upper: str) -> tuple[str, str]:
    """Create (or check) the persistent upper directory and a fresh work directory beside it;
    return their host paths. Symlinks are followed inside the root (the upper directory may be
    a link to another directory, or to the hierarchy itself, which then takes the writes).
    Missing parents are made 0755 and the upper directory gets the hierarchy's mode (systemd PR
    #39980); an existing upper directory with another mode is refused, as systemd refuses it,
    and so is one on a read-only filesystem. Each merge gets its own work directory: two
    overlays cannot share one, and during an atomic swap the old overlay still uses its own."""
    base_st = os.stat(rootfs.inside(root, hierarchy))
    want_mode = stat.S_IMODE(base_st.st_mode)
    try:
        inroot = rootfs.chase(root, upper, missing_ok=True)
    except OSError as e:
        raise MutableError('cannot resolve the mutable directory %s: %s' % (rootfs.host_path(root, upper), e.strerror)) from None
    host = rootfs.host_path(root, inroot)
    parent = os.path.dirname(host)
    try:
        _makedirs_0755(parent)
        if not os.path.isdir(host):
            os.mkdir(host, want_mode)
            os.chmod(host, want_mode)   # not subject to the umask
            os.chown(host, base_st.st_uid, base_st.st_gid)
    except OSError as e:
        raise MutableError('cannot create the mutable directory %s: %s; make it writable or use mutable=no'
                           % (host, e.strerror)) from None
    have = stat.S_IMODE(os.stat(host).st_mode)
    if have != want_mode:
        raise MutableError('mutable directory %s has mode %04o, ought to have mode %04o (the mode of %s); '
                           'chmod it' % (host, have, want_mode, hierarchy))
    if _read_only(host):
        raise MutableError('cannot use %s as the upper directory of %s: it is on a read-only filesystem; '
                           'use mutable=import or ephemeral, or point it to a writable place' % (host, hierarchy))
    if os.stat(parent).st_dev != os.stat(host).st_dev:
        raise MutableError('no place for the work directory of %s: the parent of the mutable directory %s is on '
                           'another filesystem; make the mutable directory a plain directory' % (hierarchy, host))
    work = os.path.join(parent, '%s-%s' % (workdir_prefix(hierarchy), os.urandom(8).hex()))
    try:
        os.mkdir(work, 0o700)
    except OSError as e:
        raise MutableError('cannot create a work directory next to %s: %s; the mutable directory must be '
                           'on a writable filesystem' % (host, e.strerror)) from None
    return host, work


def _work_dir_places(root: str, hierarchy: str) -> set:
    """In-root directories where a work directory of ``hierarchy`` may be: beside the mutable
    directory as it resolves now (systemd's rule), and /var/lib/extensions.mutable itself."""
    places = set()
    for path in (BASE, persistent_dir(hierarchy)):
        try:
            resolved = rootfs.chase(root, path)
        except OSError:
            continue
        places.add(resolved if path == BASE else os.path.dirname(resolved))
    return places


def malformed_work_dir(recorded: str) -> bool:
    """Whether ``work_dir`` metadata (its first line) is no path systemd-sysext 262 accepts: it
    refuses to unmerge a hierarchy whose work_dir is empty, absolute or has a ``..`` component
    ("Invalid work directory path"), before unmounting anything (seen with 262.1)."""
    rel = recorded.split('\n', 1)[0]
    return not rel or rel.startswith('/') or '..' in rel.split('/')


def check_work_dir(root: str, hierarchy: str, recorded: str) -> tuple[str | None, str | None]:
    """Validate a recorded ``work_dir`` (ours or systemd's, relative to the root): it must name
    ``.systemd-<hierarchy>-workdir[-<16 hex>]`` directly beside the hierarchy's mutable
    directory (or in /var/lib/extensions.mutable). Returns (host path to remove, None), or
    (None, problem). Nothing else is ever removed: the metadata is read through the merged
    tree, and a mutable upper directory can carry a forged copy of it."""
    rel = recorded.strip()
    refuse = (None, 'work_dir metadata %r of %s does not name a work directory of %s beside %s; nothing was '
                    'deleted' % (recorded, hierarchy, hierarchy, persistent_dir(hierarchy)))
    if not rel or '\\' in rel or '\n' in rel or rel.startswith('/') or '..' in rel.split('/') or '.' in rel.split('/'):
        return refuse
    name = os.path.basename(rel)
    if not re.fullmatch(re.escape(workdir_prefix(hierarchy)) + '(-[0-9a-f]{16})?', name):
        return refuse
    try:
        parent = rootfs.chase(root, os.path.dirname('/' + rel))
    except OSError:
        return refuse
    if parent not in _work_dir_places(root, hierarchy):
        return refuse
    host = rootfs.host_path(root, parent + '/' + name)
    if os.path.islink(host) or not os.path.isdir(host):
        return None, None
    return host, None


def work_dirs_in_use() -> set:
    """The work directories of the overlays mounted now (their ``workdir=`` options)."""
    from . import mountinfo  # pylint: disable=import-outside-toplevel
    try:
        mounts = mountinfo.read()
    except (OSError, mountinfo.MountinfoError):
        return {None}
    return {opt[len('workdir='):] for m in mounts if m.fstype == 'overlay'
            for opt in m.super_options.split(',') if opt.startswith('workdir=')}


def remove_work_dir(root: str, hierarchy: str, recorded: str) -> str | None:
    """Remove an overlay's old work directory, as named in its ``work_dir`` metadata, once
    ``check_work_dir`` accepts it and no mounted overlay uses it. Returns a problem, or None."""
    import shutil  # pylint: disable=import-outside-toplevel
    host, problem = check_work_dir(root, hierarchy, recorded)
    if host is None:
        return problem
    in_use = work_dirs_in_use()
    if host in in_use or None in in_use:
        return None
    shutil.rmtree(host, ignore_errors=True)   # fd-based: never follows a symlink inside
    return None


def stale_work_dirs(root: str, hierarchies: list, recorded: set) -> list:
    """Our per-merge work directories (``.systemd-<h>-workdir-<16 hex>``) that no merged
    hierarchy records in its ``work_dir``: left by a run that was killed. A listdir per place
    (/var/lib/extensions.mutable, and beside a mutable directory that is a symlink)."""
    out = set()
    for h in hierarchies:
        prefix = workdir_prefix(h) + '-'
        for place in _work_dir_places(root, h):
            try:
                names = os.listdir(rootfs.host_path(root, place))
            except OSError:
                continue
            for n in names:
                rel = (place.strip('/') + '/' + n).lstrip('/')
                if n.startswith(prefix) and len(n) == len(prefix) + 16 and rel not in recorded:
                    out.add(rel)
    return sorted(out)
