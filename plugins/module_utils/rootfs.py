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
