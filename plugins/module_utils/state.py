# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The current state of each hierarchy: merged or not, by whom, which extensions, and the
origins systemd (or we) recorded in ``.systemd-sysext/`` / ``.systemd-confext/``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from . import fsutil, mountapi, mountinfo, origin, rootfs
from .release import CONFEXT, SYSEXT

HIERARCHIES = {SYSEXT: ('/usr', '/opt'), CONFEXT: ('/etc',)}
META_DIR = {SYSEXT: '.systemd-sysext', CONFEXT: '.systemd-confext'}
NAMES_FILE = {SYSEXT: 'extensions', CONFEXT: 'confexts'}
# Written by tucked.sysext next to systemd's files; systemd ignores unknown files there.
TUCKED_MARKER = 'tucked'
# When systemd < 260 did the mounting for us (backend=systemd), the origin we planned with is
# kept here, bound to the overlay's dev and unique mount ID, so the next run can still skip.
RECORD_FILE = '/run/tucked-sysext/record-%s.json'
MAX_META_SIZE = 1024 * 1024


class StateError(RuntimeError):
    """The state of a hierarchy cannot be read; the message names the file."""


@dataclass
class HierarchyState:
    hierarchy: str                   # /usr, /opt or /etc
    cls: str
    host_path: str
    merged: bool = False
    merged_by: str = 'none'          # systemd | tucked | foreign | none
    extensions: list = field(default_factory=list)   # lowest first
    origin: dict | None = None       # the parsed origin document (None: not recorded)
    origin_source: str | None = None  # metadata (systemd's origin file) | record (ours, see RECORD_FILE)
    dev: str | None = None
    backing: str | None = None
    work_dir: str | None = None      # the recorded work directory of a mutable merge (relative to root)
    stacked: int = 0                 # overlays of this class stacked here (2+: an interrupted swap)
    mount_id: int | None = None      # unique mount ID of what is visible at the hierarchy
    mount_source: str | None = None
    problems: list = field(default_factory=list)

    @property
    def origins(self) -> dict | None:
        return None if self.origin is None else self.origin.get('extensions', {})


def _read_small(path: str) -> str | None:
    data = fsutil.read_bounded(path, MAX_META_SIZE, StateError, '%s is larger than %d bytes; it is not sysext metadata')
    return None if data is None else data.decode('utf-8', 'replace')


def _dev_of(path: str) -> str:
    st = os.stat(path)
    return '%d:%d' % (os.major(st.st_dev), os.minor(st.st_dev))


# How often a hierarchy is read again when what is mounted there changed while it was read
# (another run swapping it: the state is read without the lock).
READ_ATTEMPTS = 5


def _mounted(host: str) -> tuple | None:
    """What is mounted at ``host`` now: (unique mount ID, st_dev major, minor, whether ``host`` is
    a mount point); None if statx fails."""
    try:
        st = mountapi.statx(host)
        return st.mnt_id, st.dev_major, st.dev_minor, mountapi.is_mount_point(host, st)
    except OSError:
        return None


def hierarchy_path(root: str, hierarchy: str) -> str:
    """The host path of ``hierarchy``, resolved inside ``root`` as systemd-sysext resolves it
    (chase() with CHASE_PREFIX_ROOT: ``/opt -> var/opt`` gives ROOT/var/opt, and an absolute
    link never leads out of the root); a missing rest is kept as it is. Every place that
    reads, mounts or unmounts a hierarchy uses this path."""
    try:
        return rootfs.inside(root, hierarchy)
    except OSError as e:
        raise StateError('cannot resolve %s under %s: %s' % (hierarchy, root, e.strerror)) from None


def read_hierarchy(root: str, hierarchy: str, cls: str, mounts: list | None = None) -> HierarchyState:
    """Read one hierarchy under ``root``; ``mounts`` is the parsed mountinfo (read if None).
    The files and the mount are read without a lock, so a concurrent swap could mix the old
    overlay's metadata with the new one's device and make our own overlay look foreign: when
    the mount at the hierarchy changed during the read, it is read again (mountinfo too)."""
    host = hierarchy_path(root, hierarchy)
    if not os.path.isdir(host):
        return HierarchyState(hierarchy=hierarchy, cls=cls, host_path=host)
    for _attempt in range(READ_ATTEMPTS):
        seen = _mounted(host)
        stack = mountinfo.stack_seen(mountinfo.read() if mounts is None else mounts, os.path.realpath(host))
        hs = _read_mounted(root, hierarchy, cls, host, stack, seen)
        if seen is None or (_mounted(host) == seen and not _older_table(stack, seen)):
            break
        mounts = None if mounts else mounts     # (an explicit [] stays: the caller wants no mountinfo)
    return hs


def _older_table(stack: list, seen: tuple) -> bool:
    """Whether the mount table is older than what is mounted: it shows an overlay on top that is
    not the one there (an overlay's root directory has the overlay's own st_dev)."""
    return bool(stack) and stack[0].fstype == 'overlay' and (stack[0].major, stack[0].minor) != tuple(seen[1:3])


def _stacked_on_top(stack: list, cls: str) -> int:
    """How many overlays of ``cls`` are mounted directly on each other at the top of ``stack``
    (2+: a swap interrupted between tuck and detach). A propagated copy below a bind of the
    hierarchy onto itself (overlay, bind, overlay) is not one of them."""
    n = 0
    for m in stack:
        if m.fstype != 'overlay' or m.source != cls:
            break
        n += 1
    return n


def _read_mounted(root: str, hierarchy: str, cls: str, host: str, stack: list, seen: tuple | None) -> HierarchyState:
    hs = HierarchyState(hierarchy=hierarchy, cls=cls, host_path=host)
    top = stack[0] if stack else None
    hs.stacked = _stacked_on_top(stack, cls)
    meta = os.path.join(host, META_DIR[cls])
    # the unique mount ID (never reused, unlike mountinfo's): tells a remount apart
    hs.mount_id = seen[0] if seen is not None else (top.mount_id if top is not None else None)
    # systemd's is_our_mount_point(): only a mount point can be a merge; the metadata of one
    # that is not (an offline copy of a merged tree) is not even read
    mount_point = seen[3] if seen is not None else os.path.ismount(host)
    if not mount_point:
        if os.path.lexists(os.path.join(meta, 'dev')):
            hs.problems.append('%s carries %s/dev but is not a mount point: an offline copy of a merged tree, not a '
                               'merge; ignored (a merge hides it)' % (host, META_DIR[cls]))
        return hs
    dev = _read_small(os.path.join(meta, 'dev'))
    if top is not None:
        hs.mount_source = top.source
    # st_dev of the hierarchy: taken with the mount ID (a change since shows in the caller's check)
    here = '%d:%d' % tuple(seen[1:3]) if seen is not None else _dev_of(host)
    if dev is not None:
        hs.dev = dev.strip()
        # systemd's test: the hierarchy is "ours" when the recorded dev is the overlay's own st_dev
        if hs.dev == here:
            hs.merged = True
            marker = _read_small(os.path.join(meta, TUCKED_MARKER))
            hs.merged_by = 'tucked' if marker is not None else 'systemd'
            names = _read_small(os.path.join(meta, NAMES_FILE[cls])) or ''
            hs.extensions = [n for n in names.split('\n') if n]
            backing = _read_small(os.path.join(meta, 'backing'))
            hs.backing = backing.strip() if backing is not None else None
            work_dir = _read_small(os.path.join(meta, 'work_dir'))
            # an empty file is kept as '' (systemd refuses to unmerge it), a missing one is None
            hs.work_dir = work_dir.strip() if work_dir is not None else None
            try:
                hs.origin = origin.read(os.path.join(meta, 'origin'))
                hs.origin_source = 'metadata' if hs.origin is not None else None
            except origin.OriginError as e:
                hs.problems.append(str(e))
                hs.origin = None
            if hs.origin is None and not hs.problems:
                hs.origin = _recorded_origin(root, cls, hs)
                hs.origin_source = 'record' if hs.origin is not None else None
            return hs
        hs.problems.append('%s records dev %s but %s is on %s: stale metadata, ignored'
                           % (os.path.join(meta, 'dev'), hs.dev, host, here))
    if top is not None and top.fstype == 'overlay':
        hs.merged = True
        hs.merged_by = 'foreign'
        hs.problems.append('%s is an overlay mount (source %r) that neither systemd-sysext nor tucked.sysext '
                           'made; it is left alone' % (host, top.source))
    return hs


def _recorded_origin(root: str, cls: str, hs: HierarchyState) -> dict | None:
    """Our record of a merge made by systemd < 260 for us, if it is about this very overlay."""
    try:
        path = rootfs.inside(root, RECORD_FILE % cls)
    except OSError:
        return None
    try:
        rec = json.loads(_read_small(path) or 'null')
    except (ValueError, RecursionError):
        hs.problems.append('%s is not valid JSON; ignored (the next change rewrites it)' % path)
        return None
    if not isinstance(rec, dict):
        return None
    bound = rec.get('hierarchies', {}).get(hs.hierarchy, {})
    if bound.get('dev') == hs.dev and bound.get('mount_id') == hs.mount_id and isinstance(rec.get('origin'), dict):
        return rec['origin']
    return None


def write_record(root: str, cls: str, hierarchies: list, doc: dict) -> None:
    """Bind ``doc`` to the overlays now mounted on ``hierarchies`` (after systemd merged)."""
    bound = {}
    for hs in hierarchies:
        if hs.merged_by == 'systemd':
            bound[hs.hierarchy] = {'dev': hs.dev, 'mount_id': hs.mount_id}
    path = rootfs.inside(root, RECORD_FILE % cls)
    os.makedirs(os.path.dirname(path), 0o700, exist_ok=True)
    tmp = path + '.tmp'
    fd = fsutil.create_new(tmp, 0o600)      # (a FIFO left at tmp is removed, never opened)
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
        json.dump({'hierarchies': bound, 'origin': doc}, f)
    os.replace(tmp, path)


def drop_record(root: str, cls: str) -> None:
    try:
        os.unlink(rootfs.inside(root, RECORD_FILE % cls))
    except (FileNotFoundError, rootfs.RootError):
        pass


def read_class(root: str, cls: str, mounts: list | None = None) -> list[HierarchyState]:
    if mounts is None:
        mounts = mountinfo.read()
    return [read_hierarchy(root, h, cls, mounts) for h in HIERARCHIES[cls]]
