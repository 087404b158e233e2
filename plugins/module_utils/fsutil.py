# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""File-system helpers the store, the builder and the state readers share: fsync, the free
space for an ENOSPC message, whether the process of a temporary file still runs, bounded
reads of small metadata files that never block on a FIFO or a device, and temporary files
created fresh (never an existing FIFO, device or symlink opened for writing)."""

from __future__ import annotations

import os

from . import rootfs


def fsync_path(path: str, directory: bool = False) -> None:
    """fsync a file or (``directory``) a directory, so that a rename in it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_new(path: str, mode: int) -> int:
    """A descriptor of a new, empty file at ``path`` (a temporary of ours), open for writing.
    Whatever was left there (by an interrupted run, or a FIFO, device or symlink put in its place)
    is removed first, and O_EXCL then never opens an existing file: a FIFO cannot block us, a
    symlink cannot lead the write elsewhere. When it cannot be removed (a directory), the open
    fails with EEXIST naming ``path``."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        pass            # (O_EXCL refuses it below)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, mode)


def space_hint(path: str) -> str:
    """`` (N bytes free there)`` for the file system of ``path``, or '' when it cannot be told."""
    try:
        sv = os.statvfs(path)
        return ' (%d bytes free there)' % (sv.f_bavail * sv.f_frsize)
    except OSError:
        return ''


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (also as another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_bounded(path: str, limit: int, error: type, too_large: str = '%s is larger than %d bytes') -> bytes | None:
    """The contents of the small regular file ``path`` (see rootfs.read_regular: O_NONBLOCK,
    anything else refused); None when it does not exist. Raises ``error(message)`` when it cannot
    be read or is larger than ``limit`` bytes (``too_large % (path, limit)``)."""
    try:
        data = rootfs.read_regular(path, limit)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise error('cannot read %s: %s' % (path, e.strerror)) from None
    if len(data) > limit:
        raise error(too_large % (path, limit))
    return data
