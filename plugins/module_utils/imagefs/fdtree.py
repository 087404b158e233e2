# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Tree over an open directory: a directory extension, or the root of an image the kernel
mounted read-only (``mounted.py``). Every lookup goes through the directory descriptor with
the shared path walker, and files are opened non-blocking with symlinks refused, so that
neither a symlink nor a FIFO in the extension can lead outside it or hang the reader."""

from __future__ import annotations

import errno
import os
import stat

from .. import mountapi
from .tree import ImageError, NotFound, TooLarge, Tree

_OPEN = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
# getxattr(2) errors that mean "no such attribute" (systemd's ERRNO_IS_XATTR_ABSENT())
XATTR_ABSENT = frozenset((errno.ENODATA, errno.EOPNOTSUPP, errno.ENOTTY, errno.ENOSYS))
# the path given was resolved by the walker: no symlink may appear on it now
_RESOLVE = mountapi.RESOLVE_NO_SYMLINKS | mountapi.RESOLVE_NO_MAGICLINKS | mountapi.RESOLVE_BENEATH


class FdTree(Tree):
    """Inodes are (path relative to the directory, lstat mode)."""

    def __init__(self, dirfd: int, fstype: str = '', compression: str | None = None, owned: bool = False):
        self.dirfd = dirfd
        self.FSTYPE = fstype            # pylint: disable=invalid-name
        self.compression = compression
        self._owned = owned

    def close(self) -> None:
        if self._owned and self.dirfd >= 0:
            os.close(self.dirfd)
            self.dirfd = -1

    def _lstat(self, rel: bytes) -> os.stat_result:
        return os.lstat(rel, dir_fd=self.dirfd)

    def root(self):
        return (b'.', self._lstat(b'.').st_mode)

    def mode(self, inode) -> int:
        return inode[1]

    def lookup(self, inode, name: bytes):
        rel = name if inode[0] == b'.' else inode[0] + b'/' + name
        try:
            return (rel, self._lstat(rel).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise ImageError('%s: %s' % (os.fsdecode(rel), e.strerror)) from None

    def readlink(self, inode) -> bytes:
        return os.readlink(inode[0], dir_fd=self.dirfd)

    def _open(self, rel: bytes, flags: int = 0) -> int:
        try:
            return mountapi.openat2(self.dirfd, rel, _OPEN | flags, _RESOLVE)
        except FileNotFoundError:
            raise NotFound(os.fsdecode(rel)) from None
        except OSError as e:
            raise ImageError('cannot open %s: %s' % (os.fsdecode(rel), e.strerror)) from None

    def read_data(self, inode, limit: int) -> bytes:
        fd = self._open(inode[0])
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ImageError('%s: not a regular file' % os.fsdecode(inode[0]))
            chunks, size = [], 0
            while size <= limit:
                data = os.read(fd, min(1 << 20, limit + 1 - size))
                if not data:
                    break
                chunks.append(data)
                size += len(data)
        finally:
            os.close(fd)
        if size > limit:
            raise TooLarge('file is larger than the %d bytes allowed' % limit)
        return b''.join(chunks)

    def listdir(self, inode) -> list[bytes]:
        fd = self._open(inode[0], os.O_DIRECTORY)
        try:
            return [os.fsencode(n) for n in os.listdir(fd)]
        finally:
            os.close(fd)

    def xattr(self, inode, name: bytes) -> bytes | None:
        """None when the attribute is absent or the file system has none (systemd's
        ERRNO_IS_XATTR_ABSENT()); any other failure (EIO from a corrupt image) is an ImageError."""
        if not (stat.S_ISREG(inode[1]) or stat.S_ISDIR(inode[1]) or stat.S_ISLNK(inode[1])):
            return None
        fd = None
        try:
            if stat.S_ISLNK(inode[1]):
                return os.getxattr('/proc/self/fd/%d/%s' % (self.dirfd, os.fsdecode(inode[0])), name,
                                   follow_symlinks=False)
            fd = self._open(inode[0])
            return os.getxattr(fd, name)
        except OSError as e:
            if e.errno in XATTR_ABSENT:
                return None
            raise ImageError('cannot read the xattr %s of %s: %s'
                             % (os.fsdecode(name), os.fsdecode(inode[0]), e.strerror)) from None
        finally:
            if fd is not None:
                os.close(fd)
