# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one interface of image access: a read-only tree (list, lstat, read, xattr) over a byte
range of an image (``Source``). Every file system reader implements the inode-level methods of
``Tree``; the path walking, which keeps every lookup inside the image, is shared."""

from __future__ import annotations

import fcntl
import os
import stat
import struct

MAX_SYMLINKS = 32
BLKGETSIZE64 = 0x80081272     # _IOR(0x12, 114, size_t)


class ImageError(Exception):
    """The image is corrupt or the path cannot be resolved in it."""


class UnsupportedImage(ImageError):
    """A valid image in a format this reader cannot use."""


class NeedsMount(UnsupportedImage):
    """A valid image (or one file in it) that only the kernel can decode here: the caller may
    read it through a read-only mount instead."""


class NeedsPrivilege(UnsupportedImage):
    """Reading the image needs what this process lacks (root, to mount it; a loop device). A
    limit of this run, not of the image: systemd-sysext, run as root, may well read it."""


class NotFound(ImageError):
    """The path does not exist in the image."""


class TooLarge(ImageError):
    """The file is larger than the caller allows."""


def device_size(fd: int) -> int:
    """The size of an open image: a regular file's st_size, a block device's size in bytes from
    the BLKGETSIZE64 ioctl, as systemd's blockdev_get_device_size() (fstat says 0 for those)."""
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        buf = fcntl.ioctl(fd, BLKGETSIZE64, b'\0' * 8)
        return struct.unpack('=Q', buf)[0]
    return st.st_size


class Source:
    """A byte range of an open image file or block device: the whole image, or one partition
    of it. Reads never leave the range."""

    def __init__(self, fd: int, offset: int = 0, size: int | None = None):
        self.fd = fd
        self.offset = offset
        self.size = device_size(fd) - offset if size is None else size

    def pread(self, length: int, offset: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ImageError('read of %d bytes at offset %d beyond the end of the image (%d bytes)'
                             % (length, offset, self.size))
        data = os.pread(self.fd, length, self.offset + offset)
        if len(data) != length:
            raise ImageError('short read at offset %d' % (self.offset + offset))
        return data

    def head(self, length: int, offset: int = 0) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer at the end, none past it): for probing."""
        if offset >= self.size:
            return b''
        return os.pread(self.fd, min(length, self.size - offset), self.offset + offset)

    def sub(self, offset: int, size: int) -> Source:
        if offset < 0 or size < 0 or offset + size > self.size:
            raise ImageError('a range of %d bytes at offset %d lies outside the image (%d bytes)'
                             % (size, offset, self.size))
        return Source(self.fd, self.offset + offset, size)


class Tree:
    """A read-only file tree. Subclasses supply root/mode/lookup/readlink/read_data/listdir/
    xattr on their own inode objects; paths are resolved here, chroot-like: '..' at the root
    stays at the root and absolute symlinks restart at the image root, so nothing escapes."""
    FSTYPE = ''
    compression: str | None = None

    def close(self) -> None:
        """Release what the tree holds (a mount); the image descriptor is the caller's."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # subclass interface -------------------------------------------------
    def root(self):
        raise NotImplementedError

    def mode(self, inode) -> int:
        raise NotImplementedError

    def lookup(self, inode, name: bytes):
        raise NotImplementedError

    def readlink(self, inode) -> bytes:
        raise NotImplementedError

    def read_data(self, inode, limit: int) -> bytes:
        raise NotImplementedError

    def listdir(self, inode) -> list[bytes]:
        raise NotImplementedError

    def xattr(self, inode, name: bytes) -> bytes | None:
        raise NotImplementedError

    # paths --------------------------------------------------------------
    def resolve(self, path: str, follow_last: bool = True):
        parts = [p for p in path.encode('utf-8', 'surrogateescape').split(b'/') if p and p != b'.']
        stack = [self.root()]
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == b'..':
                if len(stack) > 1:
                    stack.pop()
                continue
            cur = stack[-1]
            if not stat.S_ISDIR(self.mode(cur)):
                raise NotFound('%s: not a directory' % path)
            child = self.lookup(cur, name)
            if child is None:
                raise NotFound(path)
            if stat.S_ISLNK(self.mode(child)) and (parts or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise ImageError('%s: too many levels of symbolic links' % path)
                target = self.readlink(child)
                if target.startswith(b'/'):
                    stack = [self.root()]
                parts = [p for p in target.split(b'/') if p and p != b'.'] + parts
                continue
            stack.append(child)
        return stack[-1]

    def is_dir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(self.mode(self.resolve(path)))
        except NotFound:
            return False

    def exists(self, path: str) -> bool:
        try:
            self.resolve(path)
            return True
        except NotFound:
            return False

    def list_dir(self, path: str) -> list[str]:
        ino = self.resolve(path)
        if not stat.S_ISDIR(self.mode(ino)):
            raise NotFound('%s: not a directory' % path)
        return [n.decode('utf-8', 'surrogateescape') for n in self.listdir(ino)]

    def lstat_mode(self, path: str) -> int:
        return self.mode(self.resolve(path, follow_last=False))

    def read_file(self, path: str, limit: int) -> bytes:
        """Read a regular file (following symlinks inside the image), at most ``limit`` bytes;
        TooLarge if it is larger."""
        ino = self.resolve(path)
        if not stat.S_ISREG(self.mode(ino)):
            raise ImageError('%s: not a regular file' % path)
        return self.read_data(ino, limit)

    def get_xattr(self, path: str, name: str) -> bytes | None:
        """An extended attribute of ``path`` itself (symlinks not followed), or None."""
        return self.xattr(self.resolve(path, follow_last=False), name.encode())


class WithUsr(Tree):
    """A sysext DDI with a usr partition: its tree is the root partition's with the usr
    partition's mounted at /usr, or, without a root partition, an empty root holding /usr
    (systemd mounts a tmpfs there). Inodes are (tree, inode of that tree)."""
    ROOT = object()

    def __init__(self, root: Tree | None, usr: Tree):
        self.root_tree = root
        self.usr = usr
        self.FSTYPE = usr.FSTYPE            # pylint: disable=invalid-name
        self.compression = usr.compression

    def close(self) -> None:
        for t in (self.root_tree, self.usr):
            if t is not None:
                t.close()

    def root(self):
        if self.root_tree is None:
            return (None, self.ROOT)
        return (self.root_tree, self.root_tree.root())

    def mode(self, inode) -> int:
        if inode[1] is self.ROOT:
            return stat.S_IFDIR | 0o755
        return inode[0].mode(inode[1])

    def lookup(self, inode, name: bytes):
        if inode[1] is self.ROOT or (inode[0] is self.root_tree and name == b'usr' and self._at_root(inode)):
            return (self.usr, self.usr.root()) if name == b'usr' else None
        child = inode[0].lookup(inode[1], name)
        return None if child is None else (inode[0], child)

    def _at_root(self, inode) -> bool:
        return inode[1] == self.root_tree.root()

    def readlink(self, inode) -> bytes:
        return inode[0].readlink(inode[1])

    def read_data(self, inode, limit: int) -> bytes:
        return inode[0].read_data(inode[1], limit)

    def listdir(self, inode) -> list[bytes]:
        if inode[1] is self.ROOT:
            return [b'usr']
        names = inode[0].listdir(inode[1])
        if inode[0] is self.root_tree and self._at_root(inode) and b'usr' not in names:
            names.append(b'usr')
        return names

    def xattr(self, inode, name: bytes) -> bytes | None:
        if inode[1] is self.ROOT:
            return None
        return inode[0].xattr(inode[1], name)
