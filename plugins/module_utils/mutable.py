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


def prepare_upper(root: str, hierarchy: str, upper: str) -> tuple[str, str]:
    """Create (or check) the persistent upper directory and a fresh work directory beside it;
    return their host paths. Missing parents are made 0755 and the upper directory gets the
    hierarchy's mode (systemd PR #39980); an existing upper directory with another mode is
    refused, as systemd refuses it. Each merge gets its own work directory: two overlays
    cannot share one, and during an atomic swap the old overlay still uses its own."""
    base_st = os.stat(rootfs.resolve(root, hierarchy))
    want_mode = stat.S_IMODE(base_st.st_mode)
    try:
        inroot = rootfs.chase(root, upper, missing_ok=True)
    except OSError as e:
        raise MutableError('cannot resolve the mutable directory %s: %s' % (rootfs.host_path(root, upper), e.strerror)) from None
    host = rootfs.host_path(root, inroot)
    parent = os.path.dirname(host)
    try:
        os.makedirs(parent, 0o755, exist_ok=True)
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
    work = os.path.join(parent, '.systemd-%s-workdir-%s' % (component(hierarchy), os.urandom(8).hex()))
    try:
        os.mkdir(work, 0o700)
    except OSError as e:
        raise MutableError('cannot create a work directory next to %s: %s; the mutable directory must be '
                           'on a writable filesystem' % (host, e.strerror)) from None
    return host, work


def remove_work_dir(root: str, recorded: str) -> str | None:
    """Remove an overlay's old work directory, as named in its ``work_dir`` metadata (relative
    to the root). Refuses anything that is not a ``.systemd-*-workdir*`` directory directly in
    /var/lib/extensions.mutable. Returns a problem description, or None."""
    import shutil  # pylint: disable=import-outside-toplevel
    rel = recorded.strip()
    name = os.path.basename(rel)
    if '\\' in rel or '..' in rel.split('/') or os.path.dirname('/' + rel) != BASE or \
            not (name.startswith('.systemd-') and '-workdir' in name):
        return 'work_dir metadata %r does not name a work directory in %s; nothing was deleted' % (rel, BASE)
    host = rootfs.host_path(root, '/' + rel)
    if os.path.islink(host) or not os.path.isdir(host):
        return None
    shutil.rmtree(host, ignore_errors=True)
    return None


def stale_work_dirs(root: str, hierarchies: list, recorded: set) -> list:
    """Our per-merge work directories (``.systemd-<h>-workdir-<16 hex>``) that no merged
    hierarchy records in its ``work_dir``: left by a run that was killed. One listdir."""
    try:
        names = os.listdir(rootfs.host_path(root, BASE))
    except OSError:
        return []
    prefixes = ['.systemd-%s-workdir-' % component(h) for h in hierarchies]
    return sorted(BASE.lstrip('/') + '/' + n for n in names
                  if any(n.startswith(p) and len(n) == len(p) + 16 for p in prefixes)
                  and BASE.lstrip('/') + '/' + n not in recorded)
