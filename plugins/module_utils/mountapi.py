# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel calls we make through ctypes: statx, name_to_handle_at and the mount API.

This is the only file that talks to libc directly. Everything returns plain Python values
or raises OSError with the errno the kernel gave.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import struct
from typing import NamedTuple

AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_HANDLE_FID = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000

STATX_TYPE = 0x1
STATX_MODE = 0x2
STATX_INO = 0x100
STATX_MTIME = 0x40
STATX_BTIME = 0x800
STATX_MNT_ID = 0x1000
STATX_MNT_ID_UNIQUE = 0x4000
STATX_ATTR_MOUNT_ROOT = 0x2000

MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_BENEATH = 0x200

OPEN_TREE_CLONE = 0x1
OPEN_TREE_CLOEXEC = 0o2000000
AT_RECURSIVE = 0x8000

FSOPEN_CLOEXEC = 0x1
FSMOUNT_CLOEXEC = 0x1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR__ATIME = 0x70          # the atime field: relatime (0), noatime, strictatime
MOUNT_ATTR_NODIRATIME = 0x80

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_STRICTATIME = 1 << 24
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2
CLONE_NEWNS = 0x00020000

# asm-generic numbers, shared by x86_64 and aarch64 for the mount API (>= 5.2)
_MOUNT_API = {'open_tree': 428, 'move_mount': 429, 'fsopen': 430, 'fsconfig': 431, 'fsmount': 432, 'openat2': 437}
_SYSCALLS = {'x86_64': _MOUNT_API, 'aarch64': _MOUNT_API}

# dlopen(NULL): the C library the interpreter already uses (ctypes.util.find_library would
# run ldconfig in a subprocess, on every import)
_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, '%s: %s' % (what, os.strerror(err)), path)
    return ret


class Statx(NamedTuple):
    mask: int
    mode: int
    ino: int
    dev_major: int
    dev_minor: int
    mnt_id: int
    btime_usec: int | None
    mtime_usec: int | None
    attributes: int = 0
    attributes_mask: int = 0

    def has(self, bit: int) -> bool:
        return bool(self.mask & bit)

    @property
    def mount_root(self) -> bool | None:
        """Whether this is the root of a mount (None: the kernel does not say; Linux < 5.8)."""
        if not self.attributes_mask & STATX_ATTR_MOUNT_ROOT:
            return None
        return bool(self.attributes & STATX_ATTR_MOUNT_ROOT)


def _ts_usec(buf: bytes, off: int) -> int:
    sec, nsec = struct.unpack_from('<qI', buf, off)
    return sec * 1000000 + nsec // 1000


def statx(path: str, dirfd: int = AT_FDCWD, flags: int = 0,
          mask: int = STATX_TYPE | STATX_MODE | STATX_INO | STATX_MTIME | STATX_BTIME | STATX_MNT_ID_UNIQUE) -> Statx:
    """statx(2); asks for the unique mount id and falls back to the plain one if the kernel
    does not report it (the mask tells which one ``mnt_id`` is)."""
    buf = ctypes.create_string_buffer(256)
    fn = _libc.statx
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    _check(fn(dirfd, os.fsencode(path), flags, mask, buf), 'statx', path)
    raw = buf.raw
    got = struct.unpack_from('<I', raw, 0)[0]
    if mask & STATX_MNT_ID_UNIQUE and not got & (STATX_MNT_ID_UNIQUE | STATX_MNT_ID):
        return statx(path, dirfd, flags, (mask & ~STATX_MNT_ID_UNIQUE) | STATX_MNT_ID)
    return Statx(
        mask=got,
        mode=struct.unpack_from('<H', raw, 28)[0],
        ino=struct.unpack_from('<Q', raw, 32)[0],
        dev_major=struct.unpack_from('<I', raw, 136)[0],
        dev_minor=struct.unpack_from('<I', raw, 140)[0],
        mnt_id=struct.unpack_from('<Q', raw, 144)[0],
        btime_usec=_ts_usec(raw, 80) if got & STATX_BTIME else None,
        mtime_usec=_ts_usec(raw, 112) if got & STATX_MTIME else None,
        attributes=struct.unpack_from('<Q', raw, 8)[0],
        attributes_mask=struct.unpack_from('<Q', raw, 56)[0],
    )


def is_mount_point(path: str, st: Statx | None = None) -> bool:
    """Whether ``path`` (a symlink at the end not followed) is where a mount is attached, as
    systemd's path_is_mount_point() decides: STATX_ATTR_MOUNT_ROOT, else a mount ID other than
    the parent directory's. ``st``: a statx of ``path`` already taken."""
    st = st or statx(path, flags=AT_SYMLINK_NOFOLLOW, mask=STATX_TYPE | STATX_MNT_ID)
    if st.mount_root is not None:
        return st.mount_root
    parent = statx(os.path.join(path, '..'), mask=STATX_TYPE | STATX_MNT_ID | (st.mask & STATX_MNT_ID_UNIQUE))
    return parent.mnt_id != st.mnt_id or (parent.dev_major, parent.dev_minor) != (st.dev_major, st.dev_minor)


class FileHandle(NamedTuple):
    handle_type: int
    handle: bytes
    mount_id: int


def name_to_handle_at(path: str, dirfd: int = AT_FDCWD, flags: int = 0) -> FileHandle:
    """name_to_handle_at(2); retries with a larger buffer on EOVERFLOW."""
    fn = _libc.name_to_handle_at
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
    size = 64
    while True:
        buf = ctypes.create_string_buffer(8 + size)
        struct.pack_into('<Ii', buf, 0, size, 0)
        mnt = ctypes.c_int(0)
        ret = fn(dirfd, os.fsencode(path), buf, ctypes.byref(mnt), flags)
        if ret < 0:
            err = ctypes.get_errno()
            if err == errno.EOVERFLOW:
                need = struct.unpack_from('<I', buf.raw, 0)[0]
                if need > size and need <= 4096:
                    size = need
                    continue
            raise OSError(err, 'name_to_handle_at: %s' % os.strerror(err), path)
        nbytes, htype = struct.unpack_from('<Ii', buf.raw, 0)
        return FileHandle(handle_type=htype, handle=buf.raw[8:8 + nbytes], mount_id=mnt.value)


def move_mount_beneath_supported() -> tuple[bool | None, str]:
    """Probe for MOVE_MOUNT_BENEATH (Linux 6.5+) without moving anything.

    The kernel validates the flags before it looks at the (deliberately invalid) file
    descriptors, so EINVAL means "flag unknown", EBADF/ENOENT means "flag accepted".
    Returns (supported or None when it cannot tell, explanation).
    """
    nr = _SYSCALLS.get(os.uname().machine, {}).get('move_mount')
    if nr is None:
        return None, 'unknown syscall numbers for architecture %s' % os.uname().machine
    fn = _libc.syscall
    fn.restype = ctypes.c_long
    ret = fn(ctypes.c_long(nr), ctypes.c_int(-1), ctypes.c_char_p(b''), ctypes.c_int(-1),
             ctypes.c_char_p(b''), ctypes.c_uint(MOVE_MOUNT_BENEATH | MOVE_MOUNT_F_EMPTY_PATH))
    if ret == 0:  # cannot happen with fd -1, but never claim more than we know
        return None, 'move_mount probe unexpectedly succeeded'
    err = ctypes.get_errno()
    if err in (errno.EBADF, errno.ENOENT):
        return True, 'move_mount(MOVE_MOUNT_BENEATH) is available (kernel %s)' % os.uname().release
    if err == errno.EINVAL:
        return False, 'kernel %s lacks MOVE_MOUNT_BENEATH (needs Linux 6.5 or newer)' % os.uname().release
    if err == errno.ENOSYS:
        return False, 'kernel %s lacks the mount API (move_mount, needs Linux 5.2 or newer)' % os.uname().release
    if err == errno.EPERM:
        return None, 'not privileged to probe move_mount (needs CAP_SYS_ADMIN)'
    return None, 'move_mount probe failed: %s' % os.strerror(err)


# ---------------------------------------------------------------------------- mounting
def _syscall(name: str, *args) -> int:
    nr = _SYSCALLS.get(os.uname().machine, {}).get(name)
    if nr is None:
        raise OSError(errno.ENOSYS, '%s: unknown syscall number on %s' % (name, os.uname().machine))
    fn = _libc.syscall
    fn.restype = ctypes.c_long
    return fn(ctypes.c_long(nr), *args)


def _cstr(s: str | None):
    return ctypes.c_char_p(None if s is None else os.fsencode(s))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    fn = _libc.mount
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    _check(fn(_cstr(source), _cstr(target), _cstr(fstype), flags, _cstr(data)), 'mount', target)


def umount2(target: str, flags: int = 0) -> None:
    fn = _libc.umount2
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int]
    _check(fn(os.fsencode(target), flags), 'umount', target)


def unshare(flags: int) -> None:
    fn = _libc.unshare
    fn.argtypes = [ctypes.c_int]
    _check(fn(flags), 'unshare')


def open_tree(path: str, flags: int = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC, dirfd: int = AT_FDCWD) -> int:
    """A detached copy of the mount at ``path`` (OPEN_TREE_CLONE), as a file descriptor."""
    return _check(_syscall('open_tree', ctypes.c_int(dirfd), _cstr(path), ctypes.c_uint(flags)), 'open_tree', path)


def move_mount_fd(fd: int, target: str, beneath: bool = False) -> None:
    """Attach the detached mount ``fd`` at ``target``; with ``beneath``, tuck it under the
    mount that is on top there now (Linux 6.5+), which the caller then detaches."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | (MOVE_MOUNT_BENEATH if beneath else 0)
    _check(_syscall('move_mount', ctypes.c_int(fd), ctypes.c_char_p(b''), ctypes.c_int(AT_FDCWD),
                    _cstr(target), ctypes.c_uint(flags)), 'move_mount', target)


RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08


def openat2(dirfd: int, path: bytes, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2) (Linux 5.6+) with ``resolve`` (RESOLVE_*); on an older kernel plain openat
    with the same flags, so callers that need the guarantee check the result themselves."""
    how = struct.pack('<QQQ', flags, mode, resolve)
    try:
        ret = _syscall('openat2', ctypes.c_int(dirfd), ctypes.c_char_p(path), ctypes.c_char_p(how),
                       ctypes.c_size_t(len(how)))
    except OSError:
        ret, err = -1, errno.ENOSYS
    else:
        err = ctypes.get_errno() if ret < 0 else 0
    if ret >= 0:
        return ret
    if err == errno.ENOSYS:
        return os.open(path, flags, mode, dir_fd=dirfd)
    raise OSError(err, 'openat2: %s' % os.strerror(err), os.fsdecode(path))


def mount_id(path: str) -> int:
    """The (plain, mountinfo) ID of the mount a lookup of ``path`` reaches; a symlink at the
    end is not followed."""
    return statx(path, flags=AT_SYMLINK_NOFOLLOW, mask=STATX_MNT_ID).mnt_id


def clone_tree(path: str) -> int:
    """A detached copy of the mount at ``path`` with every mount below it (OPEN_TREE_CLONE |
    AT_RECURSIVE): it keeps the same filesystems (a tmpfs clone shows the same files) and
    lives on, independent of the original, until it is attached or its descriptor closed."""
    return open_tree(path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)


def bind_read_only(source: str, target: str, flags: int = 0) -> None:
    """Bind-mount directory ``source`` on ``target``, read-only (plus the per-mount ``flags``
    to keep: a bind remount sets them all at once)."""
    mount(source, target, None, MS_BIND)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)


class FsContext:
    """fsopen()/fsconfig()/fsmount(): build a filesystem and get a detached mount."""

    def __init__(self, fstype: str):
        self.fstype = fstype
        self.fd = _check(_syscall('fsopen', _cstr(fstype), ctypes.c_uint(FSOPEN_CLOEXEC)), 'fsopen', fstype)

    def set_string(self, key: str, value: str) -> None:
        _check(_syscall('fsconfig', ctypes.c_int(self.fd), ctypes.c_uint(FSCONFIG_SET_STRING), _cstr(key),
                        _cstr(value), ctypes.c_int(0)), 'fsconfig %s=%s' % (key, value))

    def set_flag(self, key: str) -> None:
        _check(_syscall('fsconfig', ctypes.c_int(self.fd), ctypes.c_uint(FSCONFIG_SET_FLAG), _cstr(key),
                        ctypes.c_char_p(None), ctypes.c_int(0)), 'fsconfig %s' % key)

    def mount(self, attr_flags: int) -> int:
        _check(_syscall('fsconfig', ctypes.c_int(self.fd), ctypes.c_uint(FSCONFIG_CMD_CREATE), ctypes.c_char_p(None),
                        ctypes.c_char_p(None), ctypes.c_int(0)), 'create %s filesystem' % self.fstype)
        return _check(_syscall('fsmount', ctypes.c_int(self.fd), ctypes.c_uint(FSMOUNT_CLOEXEC),
                               ctypes.c_uint(attr_flags)), 'fsmount %s' % self.fstype)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------- loop devices
LOOP_CTL_GET_FREE = 0x4C82
LOOP_CONFIGURE = 0x4C0A
LO_FLAGS_READ_ONLY = 1
LO_FLAGS_AUTOCLEAR = 4


def loop_attach(backing: int, path: str, offset: int = 0, size: int = 0) -> tuple[str, int]:
    """Attach the open image file ``backing`` (``path`` is its name, for messages and
    lo_file_name) read-only to a free loop device with autoclear; return the device path and
    an open descriptor of it. Keep that descriptor open until the device is mounted:
    autoclear releases the device when its last user goes, and that would be this one.
    ``offset`` and ``size`` (bytes; 0: to the end) make the device one partition of a disk
    image."""
    missing = set()
    for _attempt in range(16):
        ctl = os.open('/dev/loop-control', os.O_RDWR | os.O_CLOEXEC)
        try:
            n = fcntl.ioctl(ctl, LOOP_CTL_GET_FREE)
        finally:
            os.close(ctl)
        dev = '/dev/loop%d' % n
        try:
            lfd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            missing.add(dev)
            if not _loop_node(n, dev):
                continue
            try:
                lfd = os.open(dev, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
        # struct loop_config { u32 fd; u32 block_size; struct loop_info64 info; u64 reserved[8]; }
        info = bytearray(232)
        struct.pack_into('<QQ', info, 24, offset, size)                            # lo_offset, lo_sizelimit
        struct.pack_into('<I', info, 52, LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR)   # lo_flags
        name = os.fsencode(path)[-63:]
        info[56:56 + len(name)] = name                                            # lo_file_name
        try:
            fcntl.ioctl(lfd, LOOP_CONFIGURE, struct.pack('<II', backing, 0) + bytes(info) + bytes(64))
        except OSError as e:
            os.close(lfd)
            if e.errno == errno.EBUSY:    # somebody else took it first
                continue
            raise
        return dev, lfd
    if missing:
        raise OSError(errno.ENODEV, 'no free loop device: the kernel offers %s, which has no device node and none '
                      'could be made (a /dev without devtmpfs or udev, as in some containers: create the node '
                      'with mknod or give the container its loop devices)' % ', '.join(sorted(missing)), path)
    raise OSError(errno.EBUSY, 'no free loop device', path)


def _loop_node(n: int, dev: str) -> bool:
    """Make the missing device node of loop device ``n`` from its number in sysfs, as devtmpfs
    would; a /dev that is a plain tmpfs (containers) lacks the loop devices the kernel adds
    later. False when the kernel has no such device or the node cannot be made."""
    try:
        with open('/sys/devices/virtual/block/loop%d/dev' % n, encoding='ascii') as f:
            major, minor = (int(x) for x in f.read().split(':'))
        os.mknod(dev, 0o600 | stat.S_IFBLK, os.makedev(major, minor))
    except FileExistsError:
        return True
    except (OSError, ValueError):
        return False
    return True


PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """prctl(PR_SET_PDEATHSIG, SIGKILL) in a forked child: if the parent (pid ``parent``, taken
    before the fork) is killed, the child is too, instead of finishing a build nobody will
    use. Exits at once if the parent is already gone."""
    import signal  # pylint: disable=import-outside-toplevel
    fn = _libc.prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _check(fn(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), 'prctl')
    if os.getppid() != parent:
        os._exit(1)
