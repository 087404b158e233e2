# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Apply a plan with our own mount code: build the new overlays completely in a private
child mount namespace, hand them to the caller as detached mounts, then swap each
hierarchy atomically (tuck the new overlay beneath the old one with
``move_mount(MOVE_MOUNT_BENEATH)``, then detach the old top).

Nothing visible changes before every new overlay is built and checked; a failure before
the swap leaves the host exactly as it was.

Submounts (anything mounted below a hierarchy, e.g. a tmpfs on /usr/share/foo) stay visible,
as systemd 262 keeps them (its move_submounts()): the build child clones every visible
submount (OPEN_TREE_CLONE | AT_RECURSIVE) onto the new overlay before it is handed over, so
the new tree is complete when it is tucked in; the originals stay where they were (on the
base tree below the overlay, or on the old overlay, which is detached with them). Unmerging
puts the submounts that only the overlay had back on the base tree, through a holding place
in ROOT/run/tucked-sysext/submounts that a killed run leaves for the next one to finish.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import traceback
from dataclasses import dataclass, field

from . import layermount, mountapi, mountinfo, mutable, origin, rootfs, state, submounts
from .engine import ApplyError, RemountRace
from .release import CONFEXT

STAGE_DIR = '/run/tucked-sysext/stage'
LOCK_FILE = '/run/tucked-sysext.lock'
MARKER_VERSION = '1'
HELD_DIR = submounts.HELD_DIR


@dataclass
class Layer:
    name: str
    kind: str              # directory | raw | block
    host_path: str         # the image on this machine
    inroot_path: str
    origin: dict           # what the plan computed; rechecked before mounting
    provides: tuple
    layout: object = None       # image files: the imagefs.Layout the plan read (rechecked before mounting)
    verity_hash: str | None = None   # the root hash the origin records
    verity: object = None       # verity.Plan: set dm-verity up (None: mount as it is)


@dataclass
class BuildRequest:
    root: str
    cls: str
    hierarchies: tuple                 # hierarchies to build an overlay for
    rebuild: tuple                     # hierarchies that are merged now (their base is below)
    layers: list                       # Layer, in stacking order (lowest first)
    origin_doc: dict
    mode: str = 'no'
    layouts: dict = field(default_factory=dict)   # hierarchy -> mutable.Layout
    overlay_options: str | None = None   # None: systemd's defaults; a string (also empty) replaces them
    legacy_mount: bool = False         # force mount(2) with an option string (tests)
    architecture: str = ''             # the host's, for the partition of a GPT image


@dataclass
class Built:
    fds: dict = field(default_factory=dict)        # hierarchy -> detached mount fd
    work_dirs: dict = field(default_factory=dict)  # hierarchy -> new work_dir (relative to root)


def escape_layer(path: str) -> str:
    return path.replace('\\', '\\\\').replace(':', '\\:').replace(',', '\\,')


def _write(path: str, text: str, mode: int = 0o644) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode('utf-8'))
    finally:
        os.close(fd)


def _is_populated(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return any(True for _entry in it)
    except OSError:
        return False


# ---------------------------------------------------------------------------- child side
def _pin_layers(req: BuildRequest) -> dict:
    """Open every image and check it is still what the plan saw. Runs before the child
    leaves the caller's mount namespace: mount IDs (part of the origin) are per namespace.
    Everything after this uses the descriptors, so the image merged is the image checked."""
    pinned = {}
    for layer in req.layers:
        # O_NONBLOCK: an image replaced by a FIFO since the plan never blocks us (the origin check refuses it)
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY | (os.O_DIRECTORY if layer.kind == 'directory'
                                                                            else 0)
        try:
            fd = os.open(layer.host_path, flags)
        except OSError as e:
            raise ApplyError('%s disappeared before it could be merged (%s); run again'
                             % (layer.host_path, e.strerror)) from None
        pinned[layer.name] = fd
        now = origin.compute(layer.host_path, layer.inroot_path, layer.verity_hash)
        st, fst = os.stat(layer.host_path), os.fstat(fd)
        if now != layer.origin or (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
            raise ApplyError('%s changed while it was being merged (%s); run again' % (
                layer.host_path, ', '.join(origin.differing_fields(layer.origin, now)) or 'replaced'))
    return pinned


def _build_in_child(req: BuildRequest, stage: str, built: Built) -> Built:
    """Runs in the child process: pins the images, then works in a private mount namespace.
    ``built`` collects what is made, so that a failure can undo it."""
    pinned = _pin_layers(req)
    mountapi.unshare(mountapi.CLONE_NEWNS)
    mountapi.mount(None, '/', None, mountapi.MS_REC | mountapi.MS_PRIVATE)
    mountapi.mount('tmpfs', stage, 'tmpfs', mountapi.MS_NODEV | mountapi.MS_NOSUID, 'mode=0700')

    # What is mounted below each hierarchy now (on the base tree, or on the overlay merged
    # now) goes onto the new overlay too: clone it before the old overlays are dropped here.
    mounts = mountinfo.read()
    subs = {}
    for h in req.hierarchies:
        host = submounts.hierarchy_host(req.root, h)
        subs[h] = [(os.path.relpath(m.target, host), mountapi.clone_tree(m.target), os.path.isdir(m.target))
                   for m in submounts.visible_submounts(host, req.cls, mounts)]

    # The hierarchies merged now: drop their overlays here (only in this namespace) so that
    # the base tree below them becomes the bottom layer of the new overlay.
    for h in req.rebuild:
        host = state.hierarchy_path(req.root, h)
        while state.read_hierarchy(req.root, h, req.cls, mounts=[]).merged_by in ('systemd', 'tucked'):
            mountapi.umount2(host, mountapi.MNT_DETACH)

    roots = {}
    os.mkdir(os.path.join(stage, 'images'), 0o700)
    for layer in req.layers:
        fd = pinned[layer.name]
        if layer.kind == 'directory':
            # overlayfs wants layers on mounts of this namespace: use the path again, after
            # checking it still leads to the directory that was checked
            st, fst = os.stat(layer.host_path), os.fstat(fd)
            if (st.st_dev, st.st_ino) != (fst.st_dev, fst.st_ino):
                raise ApplyError('%s was replaced while it was being merged; run again' % layer.host_path)
            roots[layer.name] = layer.host_path
            continue
        target = os.path.join(stage, 'images', layer.name)
        os.mkdir(target, 0o755)
        layermount.mount_layer(fd, layer, target, req.cls, req.architecture, req.root)
        roots[layer.name] = target

    meta_dir = state.META_DIR[req.cls]
    for h in req.hierarchies:
        base = state.hierarchy_path(req.root, h)
        if not os.path.lexists(base):
            # a root without this hierarchy (no /opt): systemd 262 creates the mount point
            os.mkdir(base, 0o755)
            os.chmod(base, 0o755)
        st = os.stat(base)
        meta = os.path.join(stage, 'meta' + h)
        os.makedirs(meta, 0o755, exist_ok=True)
        os.chmod(meta, stat.S_IMODE(st.st_mode))   # the top layer gives the hierarchy its mode
        os.chown(meta, st.st_uid, st.st_gid)
        md = os.path.join(meta, meta_dir)
        os.mkdir(md, 0o755)
        names = [la.name for la in req.layers]
        _write(os.path.join(md, state.NAMES_FILE[req.cls]), ''.join(n + '\n' for n in names))
        _write(os.path.join(md, 'origin'), origin.dumps(req.origin_doc))
        lay = req.layouts.get(h, mutable.NONE)
        layers = [meta]
        if lay.imported:
            try:
                imported = mutable.imported_dir(req.root, h, lay.imported)
            except mutable.MutableError as e:
                raise ApplyError(str(e)) from None
            if imported is not None:
                layers.append(imported)
        for la in reversed(req.layers):            # highest first
            p = os.path.join(roots[la.name], h.lstrip('/'))
            if os.path.isdir(p):
                layers.append(p)
        upper = work = None
        try:
            if lay.upper:
                upper, work = mutable.prepare_upper(req.root, h, lay.upper)
                rel = os.path.relpath(work, os.path.abspath(req.root))
                built.work_dirs[h] = rel          # from now on, a failure removes it again
                _write(os.path.join(md, 'work_dir'), rel + '\n')
            elif lay.ephemeral:
                upper, work = _ephemeral_upper(stage, h, st)
        except mutable.MutableError as e:
            raise ApplyError(str(e)) from None
        if _is_populated(base) and not (upper and os.path.samefile(upper, base)):
            layers.append(base)
            if os.major(st.st_dev) != 0:
                _write(os.path.join(md, 'backing'), '%d:%d\n' % (os.major(st.st_dev), os.minor(st.st_dev)))
        fd = _make_overlay(req, h, layers, stage, upper, work)
        mst = os.fstat(fd)
        devtext = '%d:%d' % (os.major(mst.st_dev), os.minor(mst.st_dev))
        _write(os.path.join(md, 'dev'), devtext + '\n')
        _write(os.path.join(md, state.TUCKED_MARKER), MARKER_VERSION + '\n')
        fd = _assemble(req, h, fd, stage, md if upper else None, subs.pop(h, []))
        # check the finished tree through the new mount itself before anyone sees it
        with open(os.path.join('/proc/self/fd/%d' % fd, meta_dir, 'dev'), encoding='utf-8') as f:
            if f.read().strip() != devtext:
                raise ApplyError('the new overlay for %s does not show its metadata; not swapping' % h)
        built.fds[h] = fd
    return built


def _ephemeral_upper(stage: str, h: str, base_st: os.stat_result) -> tuple[str, str]:
    """A tmpfs of its own for an ephemeral upper layer: the overlay keeps it alive after this
    namespace is gone, and it disappears with the overlay (writes are discarded on unmerge)."""
    ws = os.path.join(stage, 'mh_workspace', mutable.component(h))
    os.makedirs(ws, 0o755)
    mountapi.mount('tmpfs', ws, 'tmpfs', mountapi.MS_NODEV, 'mode=0755')
    upper = os.path.join(ws, mutable.component(h))
    os.mkdir(upper)
    os.chmod(upper, stat.S_IMODE(base_st.st_mode))
    os.chown(upper, base_st.st_uid, base_st.st_gid)
    work = os.path.join(ws, '.systemd-%s-workdir' % mutable.component(h))
    os.mkdir(work, 0o700)
    return upper, work


def _assemble(req: BuildRequest, h: str, fd: int, stage: str, meta: str | None, subs: list) -> int:
    """Complete the new tree in this (the child's) namespace: on a writable overlay the
    metadata directory ``meta`` (the top layer's own) is bind-mounted read-only over the
    merged one, as systemd protects it, so that neither writes through the merged tree nor a
    ``.systemd-*`` directory in the upper layer can forge it; clones of the submounts are
    attached in their places. Returns a detached copy of the whole tree (the overlay alone
    when there is nothing to add)."""
    if meta is None and not subs:
        return fd
    target = os.path.join(stage, 'tree' + h)
    os.makedirs(target, 0o700, exist_ok=True)
    try:
        mountapi.move_mount_fd(fd, target)
    finally:
        os.close(fd)
    if meta is not None:
        merged_meta = os.path.join(target, state.META_DIR[req.cls])
        if os.path.islink(merged_meta) or not os.path.isdir(merged_meta):
            raise ApplyError('the mutable directory of %s has a %s that is not a directory; remove it from there'
                             % (h, state.META_DIR[req.cls]))
        flags = mountapi.MS_NODEV | mountapi.MS_NOATIME
        if req.cls == CONFEXT:
            flags |= mountapi.MS_NOSUID | mountapi.MS_NOEXEC
        mountapi.bind_read_only(meta, merged_meta, flags)
    for rel, sfd, is_dir in subs:
        dest = os.path.join(target, rel)
        try:
            submounts.mount_point(dest, is_dir)
            mountapi.move_mount_fd(sfd, dest)
        except OSError as e:
            raise ApplyError('cannot carry the submount %s over to the new overlay of %s: %s; nothing was changed'
                             % (os.path.join(submounts.hierarchy_host(req.root, h), rel), h, e.strerror or e)) from None
        finally:
            os.close(sfd)
    return mountapi.clone_tree(target)


_ATIME = mountapi.MOUNT_ATTR__ATIME
# mount flags among the overlay options: systemd's mount_option_mangle() takes them out of the
# option string and into the mount flags; name -> (MOUNT_ATTR_* to set, MOUNT_ATTR_* to clear)
FLAG_OPTIONS = {
    'ro': (mountapi.MOUNT_ATTR_RDONLY, 0), 'rw': (0, mountapi.MOUNT_ATTR_RDONLY),
    'nosuid': (mountapi.MOUNT_ATTR_NOSUID, 0), 'suid': (0, mountapi.MOUNT_ATTR_NOSUID),
    'nodev': (mountapi.MOUNT_ATTR_NODEV, 0), 'dev': (0, mountapi.MOUNT_ATTR_NODEV),
    'noexec': (mountapi.MOUNT_ATTR_NOEXEC, 0), 'exec': (0, mountapi.MOUNT_ATTR_NOEXEC),
    'noatime': (mountapi.MOUNT_ATTR_NOATIME, _ATIME), 'strictatime': (mountapi.MOUNT_ATTR_STRICTATIME, _ATIME),
    'relatime': (0, _ATIME),
    'nodiratime': (mountapi.MOUNT_ATTR_NODIRATIME, 0), 'diratime': (0, mountapi.MOUNT_ATTR_NODIRATIME),
}
# the same as mount(2) flags (for the legacy path): MOUNT_ATTR_* bit -> MS_*
_MS = {mountapi.MOUNT_ATTR_RDONLY: mountapi.MS_RDONLY, mountapi.MOUNT_ATTR_NOSUID: mountapi.MS_NOSUID,
       mountapi.MOUNT_ATTR_NODEV: mountapi.MS_NODEV, mountapi.MOUNT_ATTR_NOEXEC: mountapi.MS_NOEXEC,
       mountapi.MOUNT_ATTR_NOATIME: mountapi.MS_NOATIME, mountapi.MOUNT_ATTR_STRICTATIME: mountapi.MS_STRICTATIME,
       mountapi.MOUNT_ATTR_NODIRATIME: mountapi.MS_NODIRATIME}


def split_options(options: list) -> tuple[list, int, int]:
    """(overlayfs options, mount attributes to set, to clear) of ``options``."""
    fs, on, off = [], 0, 0
    for opt in options:
        if opt in FLAG_OPTIONS:
            add, remove = FLAG_OPTIONS[opt]
            on = (on & ~remove) | add
            off = (off | remove) & ~add
        else:
            fs.append(opt)
    return fs, on, off


def _attrs(req: BuildRequest, writable: bool, on: int = 0, off: int = 0) -> int:
    """systemd's MS_RDONLY|MS_NODEV (no MS_RDONLY with an upper directory), for confext also
    MS_NOSUID|MS_NOEXEC, then the flags among the overlay options; noatime is one of the
    default options of a writable merge, so options given instead drop it."""
    a = mountapi.MOUNT_ATTR_NODEV | (0 if writable else mountapi.MOUNT_ATTR_RDONLY)
    if writable and req.overlay_options is None:
        a |= mountapi.MOUNT_ATTR_NOATIME
    if req.cls == CONFEXT:
        a |= mountapi.MOUNT_ATTR_NOSUID | mountapi.MOUNT_ATTR_NOEXEC
    return (a & ~off) | on


def _ms_flags(attrs: int) -> int:
    return sum(ms for bit, ms in _MS.items() if attrs & bit)


def _make_overlay(req: BuildRequest, h: str, layers: list, stage: str,
                  upper: str | None = None, work: str | None = None) -> int:
    """A detached overlay of ``layers`` (top first), read-only, or writable with ``upper``.
    With the mount API and ``lowerdir+`` (Linux 6.8+) there is no limit on the number of
    layers; otherwise (or when forced) the classic mount(2) option string, limited to one
    page like systemd's."""
    extra, on, off = split_options([o for o in (req.overlay_options or '').split(',') if o])
    if upper and req.overlay_options is None:
        extra = list(mutable.OPTIONS)    # systemd's defaults; SYSTEMD_*_OVERLAYFS_MOUNT_OPTIONS replaces them
    if not req.legacy_mount:
        try:
            with mountapi.FsContext('overlay') as ctx:
                ctx.set_string('source', req.cls)
                for layer in layers:
                    ctx.set_string('lowerdir+', layer)
                if upper:
                    ctx.set_string('upperdir', upper)
                    ctx.set_string('workdir', work)
                for opt in extra:
                    key, _sep, value = opt.partition('=')
                    if value:
                        ctx.set_string(key, value)
                    else:
                        ctx.set_flag(key)
                return ctx.mount(_attrs(req, bool(upper), on, off))
        except OSError as e:
            # EINVAL: no "lowerdir+" (Linux < 6.8); fall back to the option string below
            if e.errno not in (mountapi.errno.EINVAL, mountapi.errno.ENOSYS):
                raise ApplyError('cannot build the overlay for %s: %s' % (h, e)) from None
    target = os.path.join(stage, 'overlay' + h)
    os.makedirs(target, 0o755, exist_ok=True)
    data = ','.join(['lowerdir=' + ':'.join(escape_layer(la) for la in layers)]
                    + (['upperdir=' + escape_layer(upper), 'workdir=' + escape_layer(work)] if upper else []) + extra)
    flags = _ms_flags(_attrs(req, bool(upper), on, off))
    try:
        mountapi.mount(req.cls, target, 'overlay', flags, data)
    except OSError as e:
        raise ApplyError('cannot mount the overlay for %s (%d layers): %s' % (h, len(layers), e.strerror)) from None
    return mountapi.open_tree(target)


def build(req: BuildRequest) -> Built:
    """Fork a child that builds the overlays in its own mount namespace and passes them
    back as detached mounts (file descriptors over a socket pair)."""
    stage = rootfs.makedirs(req.root, STAGE_DIR, 0o700)
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        built = Built()
        try:
            parent_sock.close()
            mountapi.die_with_parent(parent)
            _build_in_child(req, stage, built)
            hs = list(built.fds)
            msg = json.dumps({'ok': True, 'hierarchies': hs, 'work_dirs': built.work_dirs})
            socket.send_fds(child_sock, [msg.encode()], [built.fds[h] for h in hs])
        except BaseException as e:  # pylint: disable=broad-except
            _undo(req.root, built)
            if isinstance(e, ApplyError):
                error, code = str(e), 1
            elif isinstance(e, OSError):
                error, code = 'building the overlay failed: %s' % e, 1
            else:
                error, code = traceback.format_exc(), 2
            try:
                child_sock.sendall(json.dumps({'ok': False, 'error': error}).encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    child_sock.close()
    try:
        data, fds, _flags, _addr = socket.recv_fds(parent_sock, 1 << 20, 64)
        while data and not data.rstrip().endswith(b'}'):
            more = parent_sock.recv(1 << 20)
            if not more:
                break
            data += more
    finally:
        parent_sock.close()
        os.waitpid(pid, 0)
    try:
        msg = json.loads(data.decode() or '{}')
    except ValueError:
        msg = {}
    if not msg.get('ok'):
        for fd in fds:
            os.close(fd)
        raise ApplyError(msg.get('error') or 'the build process died without a word')
    return Built(fds=dict(zip(msg['hierarchies'], fds)), work_dirs=msg.get('work_dirs', {}))


def _undo(root: str, built: Built) -> None:
    """After a failed build: drop the overlays made so far and the work directories created
    for them, so that the host is left as it was (the staging tmpfs goes with the namespace)."""
    for fd in built.fds.values():
        os.close(fd)
    built.fds.clear()
    for h, rel in built.work_dirs.items():
        mutable.remove_work_dir(root, h, rel)


# ---------------------------------------------------------------------------- parent side
@dataclass
class SwapResult:
    atomic: bool
    swapped: list
    unmerged: list
    problems: list = field(default_factory=list)


def swap(root: str, cls: str, built: Built, merged_now: list, drop: list, atomic: bool) -> SwapResult:
    """Put the new overlays in place. ``merged_now``: hierarchies with an overlay of ours or
    systemd's on top; ``drop``: merged hierarchies that get no new overlay.

    The new trees carry clones of the submounts. Where the old overlay goes before anything
    replaces it (no atomic swap, or a dropped hierarchy), the submounts only it has are held
    first, and put back (or, when the new tree has them, dropped) afterwards."""
    res = SwapResult(atomic=atomic, swapped=[], unmerged=[])
    problems = []
    try:
        held = False
        for h, fd in built.fds.items():
            host = state.hierarchy_path(root, h)
            if h in merged_now:
                if atomic:
                    mountapi.move_mount_fd(fd, host, beneath=True)
                    mountapi.umount2(host, mountapi.MNT_DETACH)
                else:
                    held |= bool(submounts.hold_overlay_only(root, h, cls))
                    mountapi.umount2(host, mountapi.MNT_DETACH)
                    mountapi.move_mount_fd(fd, host)
            else:
                mountapi.move_mount_fd(fd, host)
            res.swapped.append(h)
        for h in drop:
            held |= bool(submounts.hold_overlay_only(root, h, cls))
            mountapi.umount2(state.hierarchy_path(root, h), mountapi.MNT_DETACH)
            res.unmerged.append(h)
        if held:
            problems = submounts.release_held(root)[1]
    except OSError as e:
        done = res.swapped + res.unmerged
        gone = [h for h in merged_now + drop if h not in done and not _is_mount_point(state.hierarchy_path(root, h))]
        if gone and e.errno == mountapi.errno.EINVAL:
            raise RemountRace('%s was merged when this run planned, and is not mounted now: another tool (such as '
                              'systemd-sysext, whose refresh unmounts and then mounts) is remounting it; %s'
                              % (', '.join(gone), '%s had been swapped already' % ', '.join(done) if done else 'nothing was changed'),
                              partial=bool(done)) from None
        raise ApplyError('swapping in the new overlay failed after %s: %s'
                         % (', '.join(done) or 'nothing', e), partial=bool(done)) from None
    finally:
        for fd in built.fds.values():
            os.close(fd)
    res.problems = problems
    return res


def _is_mount_point(path: str) -> bool:
    try:
        return mountapi.is_mount_point(path)
    except OSError:
        return False


def unmerge(root: str, hierarchies: list, old_work_dirs: dict | None = None, cls: str | None = None,
            expect: dict | None = None) -> tuple[list, list]:
    """Detach the overlays, keeping the submounts only they have (put back on the base tree
    afterwards, as systemd does); then remove their recorded work directories. Returns the
    hierarchies done and any problems met while cleaning up. ``expect``: hierarchy -> the mount
    ID the plan saw there; a hierarchy showing another mount now is not detached (RemountRace):
    in another tool's unmount-then-mount gap that would detach the base tree (on a host whose
    /usr is a mount of its own, the real /usr)."""
    done, problems = [], []
    held = []
    for h in hierarchies:
        want = (expect or {}).get(h)
        if want is not None:
            path = state.hierarchy_path(root, h)
            try:
                now = mountapi.statx(path).mnt_id
            except OSError:
                now = None
            if now != want:
                if held:
                    submounts.release_held(root)
                raise RemountRace('%s shows another mount than the merge this run planned to unmerge (%s): another '
                                  'tool (such as systemd-sysext, whose refresh unmounts and then mounts) is '
                                  'remounting it; %s'
                                  % (path, 'the base tree' if now is not None else 'it cannot be looked up',
                                     '%s had been unmerged already' % ', '.join(done) if done else 'nothing was changed'),
                                  partial=bool(done))
        if cls is not None:
            try:
                held += submounts.hold_overlay_only(root, h, cls)
            except ApplyError as e:
                if held:
                    submounts.release_held(root)     # those of the hierarchies already unmerged
                raise ApplyError(str(e), partial=bool(done)) from None
        try:
            mountapi.umount2(state.hierarchy_path(root, h), mountapi.MNT_DETACH)
        except OSError as e:
            raise ApplyError('cannot unmerge %s: %s' % (state.hierarchy_path(root, h), e.strerror),
                             partial=bool(done)) from None
        done.append(h)
    if held:
        problems += submounts.release_held(root)[1]
    problems += cleanup_work_dirs(root, old_work_dirs or {}, {})
    return done, problems


def overlay_work_dir(root: str, h: str, cls: str, mounts: list) -> str | None:
    """The work directory the overlay on ``h`` really uses (its ``workdir=`` mount option),
    relative to the root; None if there is none, or it is not under the root."""
    stack = mountinfo.stack_seen(mounts, submounts.hierarchy_host(root, h))
    if not stack or stack[0].fstype != 'overlay' or stack[0].source != cls:
        return None
    top = os.path.realpath(root).rstrip('/')
    for opt in stack[0].super_options.split(','):
        if not opt.startswith('workdir='):
            continue
        path = os.path.normpath(opt[len('workdir='):])
        if path.startswith(top + '/'):
            return path[len(top) + 1:]
        # mounted from a chroot (systemd-sysext --root= run chrooted): the path as the mounter
        # saw it, whose head is the tail of our root path
        parts = path.split('/')
        for k in range(len(parts) - 1, 1, -1):
            if top.endswith('/'.join(parts[:k])):
                return '/'.join(parts[k:])
    return None


def old_work_dirs(root: str, cls: str, merged: list) -> tuple[dict, list]:
    """The work directories of the overlays merged now (HierarchyStates), to remove once they
    are gone: the one the overlay really uses when it is a valid work directory, else the one
    its ``work_dir`` metadata records (checked again before anything is removed). A record
    that names something else is reported: it was forged, or is stale."""
    mounts = mountinfo.read()
    out, problems = {}, []
    for hs in merged:
        actual = overlay_work_dir(root, hs.hierarchy, cls, mounts)
        if actual and mutable.check_work_dir(root, hs.hierarchy, actual)[1] is None:
            recorded = os.path.normpath(hs.work_dir.strip()) if hs.work_dir else None
            if recorded and recorded != actual:
                problems.append('the work_dir metadata of %s names %r, but its overlay uses %r: only the latter '
                                'was removed' % (hs.hierarchy, hs.work_dir.strip(), actual))
            out[hs.hierarchy] = actual
        elif hs.work_dir:
            out[hs.hierarchy] = hs.work_dir
    return out, problems


def cleanup_work_dirs(root: str, old: dict, new: dict) -> list:
    """Remove the work directories of overlays that are gone (not reused by the new ones)."""
    problems = []
    for h, rel in old.items():
        if rel and rel not in new.values():
            problem = mutable.remove_work_dir(root, h, rel)
            if problem:
                problems.append(problem)
    return problems


def finish_interrupted_swaps(root: str, hierarchies: list, sources: tuple) -> list:
    """A run killed between tucking its new overlay beneath the old one and detaching the old
    one leaves two complete overlays stacked: finish that swap by detaching the top (the old
    set); readers see one complete set, then the other. Returns the hierarchies fixed.
    Only overlays mounted directly on each other are such a swap: a hierarchy that is a bind
    of itself under shared propagation gets a propagated copy of every overlay below that bind
    (overlay, bind, overlay), which is one merge, not two."""
    fixed = []
    for h in hierarchies:
        host = os.path.realpath(state.hierarchy_path(root, h))
        while True:
            chain = mountinfo.stack_seen(mountinfo.read(), host)
            ours = [m for m in chain if m.fstype == 'overlay' and m.source in sources]
            if len(ours) < 2 or chain[0] is not ours[0] or chain[1] is not ours[1]:
                break
            mountapi.umount2(host, mountapi.MNT_DETACH)
            fixed.append(h)
    return fixed


def cleanup_stale_work_dirs(root: str, hierarchies: list) -> list:
    """Remove our per-merge work directories that no mounted overlay uses any more (left by a
    killed run). Called after a swap, when the merged overlays are the new ones."""
    problems = []
    for h in hierarchies:
        for rel in mutable.stale_work_dirs(root, [h], set()):
            problem = mutable.remove_work_dir(root, h, rel)   # skips a directory in use
            if problem:
                problems.append(problem)
    return problems


class Lock:
    """Serializes our own runs on one root: flock(LOCK_EX) on ROOT/run/tucked-sysext.lock.
    (systemd-sysext 262 takes no lock of its own, so there is none to share with it.)"""

    def __init__(self, root: str):
        self.root = root
        self.fd = -1
        self.waited = False     # True when another run held the lock: its change may be ours

    def __enter__(self):
        self.path = rootfs.inside(self.root, LOCK_FILE)
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        try:
            mountapi.fcntl.flock(self.fd, mountapi.fcntl.LOCK_EX | mountapi.fcntl.LOCK_NB)
        except BlockingIOError:
            self.waited = True
            mountapi.fcntl.flock(self.fd, mountapi.fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
        self.fd = -1
