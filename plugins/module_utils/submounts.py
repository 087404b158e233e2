# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Submounts of a hierarchy (anything mounted below it, e.g. a tmpfs on /usr/share/foo) across
merge, refresh and unmerge, as systemd 262's move_submounts() keeps them: which ones a path
lookup reaches, which ones only the merged overlay has, and the holding place in
ROOT/run/tucked-sysext/submounts where they wait while an overlay goes (a killed run leaves
them there for the next one to put back)."""

from __future__ import annotations

import os

from . import mountapi, mountinfo, mutable, rootfs, state
from .engine import ApplyError

HELD_DIR = '/run/tucked-sysext/submounts'


def hierarchy_host(root: str, h: str) -> str:
    """The hierarchy's path on this machine as mountinfo spells it (symlinks resolved in the root)."""
    return os.path.realpath(state.hierarchy_path(root, h))


def _below(path: str, top: str) -> bool:
    return path.startswith(top.rstrip('/') + '/')


def visible_submounts(host: str, cls: str, mounts: list) -> list:
    """The mounts below ``host`` that a path lookup reaches now (hidden ones, under another
    mount at the same place or covered by the overlay, are not), outermost only: a recursive
    clone of each brings the ones inside it along. The metadata bind mount is not one.
    Sorted by path, parents first."""
    meta = host.rstrip('/') + '/' + state.META_DIR[cls]
    out = []
    for m in sorted((m for m in mounts if _below(m.target, host)), key=lambda m: m.target):
        if m.target == meta or _below(m.target, meta):
            continue
        if any(m.target == o.target or _below(m.target, o.target) for o in out):
            continue
        try:
            if mountapi.mount_id(m.target) != m.mount_id:
                continue
        except OSError:
            continue
        out.append(m)
    return out


def _key(m) -> tuple:
    """What makes two mounts the same view: the filesystem and the directory of it shown."""
    return (m.major, m.minor, m.root, m.fstype)


def overlay_only_submounts(root: str, h: str, cls: str, mounts: list) -> list:
    """Visible submounts of ``h`` that live only on the merged overlay (mounted there after the
    merge, or left there by systemd-sysext, which moves them off the base tree): the ones an
    unmerge must put back on the base tree. A clone of a base mount (ours) is not one."""
    host = hierarchy_host(root, h)
    visible = visible_submounts(host, cls, mounts)
    if not visible:
        return []
    byid = {m.mount_id: m for m in mounts}
    # every overlay of this class at the hierarchy: the stack a lookup reaches, and the copies that
    # shared propagation put below other mounts (a root bound onto itself has one of each); what
    # sits on any of them is not on the base tree
    overlays = {m.mount_id for m in mounts if m.target == host and m.fstype == 'overlay' and m.source == cls}

    def on_overlay(m) -> bool:
        seen = set()
        while m is not None and m.mount_id not in seen:
            if m.mount_id in overlays:
                return True
            if not _below(m.target, host):
                return False
            seen.add(m.mount_id)
            m = byid.get(m.parent_id)
        return False
    base = {(m.target,) + _key(m) for m in mounts if _below(m.target, host) and not on_overlay(m)}
    return [m for m in visible if on_overlay(m) and (m.target,) + _key(m) not in base]


def mount_point(path: str, is_dir: bool) -> None:
    """Make the place to attach a mount (missing parents 0755), as systemd's move_submounts()."""
    if os.path.lexists(path):
        return
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    if is_dir:
        os.mkdir(path, 0o755)
    else:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))


def _attach_clone(source: str, dest: str) -> None:
    fd = mountapi.clone_tree(source)
    try:
        mount_point(dest, os.path.isdir(source))
        mountapi.move_mount_fd(fd, dest)
    finally:
        os.close(fd)


def hold_submounts(root: str, h: str, subs: list) -> list:
    """Clone ``subs`` (overlay-only submounts of ``h``) into the holding place before the overlay
    goes: from there ``release_held`` puts them back, now or in the next run if this one is killed."""
    held = []
    host = hierarchy_host(root, h)
    base = os.path.join(rootfs.inside(root, HELD_DIR), mutable.component(h))
    for m in subs:
        dest = os.path.join(base, os.path.relpath(m.target, host))
        try:
            _attach_clone(m.target, dest)
        except OSError as e:
            raise ApplyError('cannot keep the submount %s while %s is unmerged: %s; nothing was changed'
                             % (m.target, host, e.strerror or e)) from None
        held.append(dest)
    return held


def hold_overlay_only(root: str, h: str, cls: str) -> list:
    """Hold the submounts of ``h`` that only its merged overlay has (see hold_submounts)."""
    return hold_submounts(root, h, overlay_only_submounts(root, h, cls, mountinfo.read()))


def held_mounts(root: str, mounts: list | None = None) -> list:
    """(held mount, hierarchy, path below it) of every mount in the holding place, outermost only."""
    top = os.path.realpath(rootfs.inside(root, HELD_DIR))
    mounts = mountinfo.read() if mounts is None else mounts
    names = {mutable.component(h): h for hs in state.HIERARCHIES.values() for h in hs}
    out = []
    for m in sorted((m for m in mounts if _below(m.target, top)), key=lambda m: m.target):
        comp, _sep, rel = os.path.relpath(m.target, top).partition('/')
        if comp in names and rel and not any(m.target == o[0].target or _below(m.target, o[0].target) for o in out):
            out.append((m, names[comp], rel))
    return out


def release_held(root: str) -> tuple[list, list]:
    """Put every held submount back where it belongs (the hierarchy as visible now) unless the
    same mount is visible there already, then drop the held copy. Returns (paths put back,
    problems); a mount that cannot be put back stays held, and the problem says where."""
    top = rootfs.inside(root, HELD_DIR)
    if not os.path.isdir(top):
        return [], []
    mounts = mountinfo.read()
    byid = {m.mount_id: m for m in mounts}
    done, problems = [], []
    for m, h, rel in held_mounts(root, mounts):
        dest = os.path.join(hierarchy_host(root, h), rel)
        try:
            there = byid.get(mountapi.mount_id(dest))
        except OSError:
            there = None
        try:
            if there is None or there.target != dest or _key(there) != _key(m):
                _attach_clone(m.target, dest)
                done.append(dest)
            mountapi.umount2(m.target, mountapi.MNT_DETACH)
        except OSError as e:
            problems.append('the submount %s could not be put back on %s: %s; it is kept at %s; bind-mount it back '
                            'yourself' % (rel, hierarchy_host(root, h), e.strerror or e, m.target))
    # empty directories only, never into a mount (whatever could not be put back stays there)
    found = []
    for dirpath, dirs, _files in os.walk(top):
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(dirpath, d))]
        found.append(dirpath)
    for dirpath in sorted(found, key=len, reverse=True):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
    return done, problems
