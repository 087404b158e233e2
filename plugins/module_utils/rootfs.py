# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Path resolution inside a root directory, like systemd's chase() with a root:
absolute symlink targets are re-rooted, ``..`` never climbs above the root, and a path
can therefore never escape it."""

from __future__ import annotations

import errno
import os
import stat

MAX_FOLLOW = 32


class RootError(OSError):
    """A path cannot be resolved inside the root (loop, not a directory ...)."""


def _split(path: str) -> list[str]:
    return [p for p in path.split('/') if p and p != '.']


def chase(root: str, path: str, follow_last: bool = True, missing_ok: bool = False) -> str:
    """Resolve ``path`` (interpreted inside ``root``) and return the *in-root* path
    (absolute, starting with '/'). Raises FileNotFoundError if a component is missing
    (unless ``missing_ok``: then the unresolved rest is appended), RootError on loops."""
    root = os.path.abspath(root)
    todo = _split(path)
    done: list[str] = []
    hops = 0
    while todo:
        name = todo.pop(0)
        if name == '..':
            if done:
                done.pop()
            continue
        host = os.path.join(root, *done, name)
        try:
            st = os.lstat(host)
        except FileNotFoundError:
            if missing_ok:
                return '/' + '/'.join(done + [name] + todo)
            raise FileNotFoundError(errno.ENOENT, 'No such file or directory', host) from None
        except NotADirectoryError:
            raise RootError(errno.ENOTDIR, 'not a directory', os.path.join(root, *done)) from None
        if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
            hops += 1
            if hops > MAX_FOLLOW:
                raise RootError(errno.ELOOP, 'too many levels of symbolic links (loop?)',
                                os.path.join(root, path.lstrip('/')))
            target = os.readlink(host)
            if target.startswith('/'):
                done = []
            todo = _split(target) + todo
            continue
        if todo and not stat.S_ISDIR(st.st_mode):
            raise RootError(errno.ENOTDIR, 'not a directory', host)
        done.append(name)
    return '/' + '/'.join(done)


def host_path(root: str, inroot: str) -> str:
    """The path on this machine for an in-root path."""
    root = os.path.abspath(root)
    rel = inroot.lstrip('/')
    return os.path.join(root, rel) if rel else root


def resolve(root: str, path: str) -> str:
    """Resolve ``path`` inside ``root`` and return the host path."""
    return host_path(root, chase(root, path))


def inside(root: str, path: str) -> str:
    """The host path of ``path`` for writing under ``root``: every symlink on the way resolved
    inside the root (an absolute ``ROOT/run -> /run`` leads to ROOT/run, never to this machine's
    /run), the missing rest appended as it is (to be created). RootError on a loop."""
    return host_path(root, chase(root, path, missing_ok=True))


def makedirs(root: str, path: str, mode: int = 0o755) -> str:
    """Create the directory ``path`` under ``root`` (resolved with ``inside``) and its missing
    parents; returns its host path."""
    host = inside(root, path)
    os.makedirs(host, mode, exist_ok=True)
    return host


_KINDS = ((stat.S_ISFIFO, 'a FIFO'), (stat.S_ISSOCK, 'a socket'), (stat.S_ISCHR, 'a character device'),
          (stat.S_ISBLK, 'a block device'), (stat.S_ISDIR, 'a directory'))


def kind(mode: int) -> str:
    """What a non-regular file is, in words."""
    return next((name for test, name in _KINDS if test(mode)), 'not a regular file')


class NotRegular(OSError):
    """A file that is read as text or JSON is something else (a FIFO, a device ...)."""


def open_regular(path: str):
    """``path`` opened for reading (a binary file object), checked to be a regular file first:
    opened with O_NONBLOCK, so a FIFO or a device in its place never blocks us, and refused with
    NotRegular (strerror names what it is)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(errno.EINVAL, 'is %s, not a regular file' % kind(mode), path)
        os.set_blocking(fd, True)
        return os.fdopen(fd, 'rb')
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str, limit: int, follow: bool = True) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path``. Opened with O_NONBLOCK (a FIFO
    or a device never blocks us) and, unless ``follow``, O_NOFOLLOW; anything that is not a
    regular file raises NotRegular (strerror names what it is), other errors OSError."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegular(errno.EINVAL, 'is %s, not a regular file' % kind(mode), path)
        chunks, size = [], 0
        while size <= limit:
            data = os.read(fd, limit + 1 - size)
            if not data:
                break
            chunks.append(data)
            size += len(data)
        return b''.join(chunks)
    finally:
        os.close(fd)
