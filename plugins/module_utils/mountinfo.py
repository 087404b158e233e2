# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse /proc/self/mountinfo (proc(5)) into records; pure functions, no I/O but ``read``."""

from __future__ import annotations

import re
from typing import NamedTuple

_OCTAL = re.compile(r'\\([0-7]{3})')


def unescape(field: str) -> str:
    """Undo the kernel's octal escaping of space, tab, newline and backslash."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


class Mount(NamedTuple):
    """One line of mountinfo. (NamedTuple rather than a frozen dataclass: it is created on
    every run of every module, and a dataclass costs 0.5 ms to define.)"""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    target: str
    options: tuple[str, ...]
    optional: tuple[str, ...]
    fstype: str
    source: str
    super_options: str

    @property
    def dev(self) -> str:
        return '%d:%d' % (self.major, self.minor)


class MountinfoError(ValueError):
    pass


def parse_line(line: str) -> Mount:
    fields = line.rstrip('\n').split(' ')
    try:
        sep = fields.index('-', 6)
        major, minor = fields[2].split(':')
        return Mount(
            mount_id=int(fields[0]),
            parent_id=int(fields[1]),
            major=int(major),
            minor=int(minor),
            root=unescape(fields[3]),
            target=unescape(fields[4]),
            options=tuple(fields[5].split(',')),
            optional=tuple(fields[6:sep]),
            fstype=fields[sep + 1],
            source=unescape(fields[sep + 2]),
            super_options=unescape(fields[sep + 3]) if len(fields) > sep + 3 else '',
        )
    except (ValueError, IndexError) as e:
        raise MountinfoError('malformed mountinfo line %r: %s' % (line, e)) from None


def parse(text: str) -> list[Mount]:
    return [parse_line(line) for line in text.splitlines() if line.strip()]


def reached(path: str) -> int | None:
    """The mount ID a lookup of ``path`` reaches now (None if it cannot be looked up)."""
    # (imported here: mountinfo is pure otherwise)
    from . import mountapi  # pylint: disable=import-outside-toplevel
    try:
        return mountapi.mount_id(path)
    except OSError:
        return None


def stack_seen(mounts: list[Mount], target: str) -> list[Mount]:
    """stack_at() from the mount a path lookup of ``target`` reaches now."""
    return stack_at(mounts, target, reached(target))


def read(path: str = '/proc/self/mountinfo') -> list[Mount]:
    with open(path, encoding='utf-8', errors='surrogateescape') as f:
        return parse(f.read())


def stack_at(mounts: list[Mount], target: str, reached: int | None = None) -> list[Mount]:
    """The mounts stacked at ``target``, top first (each one mounted on the next). ``reached``:
    the mount ID a path lookup of ``target`` reaches (mountapi.mount_id): the stack is the one
    below it. Without it, the last top in the table is taken, which may be a copy hidden below
    another mount (a root bound onto itself under shared propagation has two of everything)."""
    at = {m.mount_id: m for m in mounts if m.target == target}
    if reached is not None:
        if reached not in at:
            return []
        tops = [at[reached]]
    else:
        parents = {m.parent_id for m in at.values()}
        tops = [m for m in at.values() if m.mount_id not in parents]
    if not tops:
        return []
    chain, cur = [], tops[-1]
    while cur is not None and cur.mount_id not in {c.mount_id for c in chain}:
        chain.append(cur)
        cur = at.get(cur.parent_id)
    return chain
