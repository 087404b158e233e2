# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd's version comparison, strverscmp_improved() (src/fundamental/string-util-fundamental.c).

systemd-sysext stacks extensions in this order (so ``e2`` sits below ``e10``), vpick picks
the newest version with it, and image versions are ordered with it.
"""

from __future__ import annotations

import functools


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


def _valid(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in '~-^.')


def strverscmp_improved(a: str | None, b: str | None) -> int:
    """-1, 0 or 1. '~' sorts before everything (pre-releases), '-' separates version and
    release, '^' marks patched releases, numeric segments compare numerically (leading zeros
    ignored) and are newer than alphabetic ones; more segments are newer."""
    if not a or not b:
        return _cmp(a or '', b or '') if (a or b) else 0
    i = j = 0
    la, lb = len(a), len(b)

    def at(s, k):
        return s[k] if k < len(s) else ''

    while True:
        while i < la and not _valid(a[i]):
            i += 1
        while j < lb and not _valid(b[j]):
            j += 1
        ca, cb = at(a, i), at(b, j)
        if ca == '~' or cb == '~':
            r = _cmp(ca != '~', cb != '~')
            if r:
                return r
            i += 1
            j += 1
        ca, cb = at(a, i), at(b, j)
        if ca == '' or cb == '':
            return _cmp(a[i:], b[j:])
        for sep in '-^.':
            ca, cb = at(a, i), at(b, j)
            if ca == sep or cb == sep:
                r = _cmp(ca != sep, cb != sep)
                if r:
                    return r
                i += 1
                j += 1
        ca, cb = at(a, i), at(b, j)
        if (ca.isascii() and ca.isdigit()) or (cb.isascii() and cb.isdigit()):
            ii, jj = i, j
            while ii < la and a[ii].isascii() and a[ii].isdigit():
                ii += 1
            while jj < lb and b[jj].isascii() and b[jj].isdigit():
                jj += 1
            r = _cmp(ii != i, jj != j)
            if r:
                return r
            while i < la and a[i] == '0':
                i += 1
            while j < lb and b[j] == '0':
                j += 1
            r = _cmp(ii - i, jj - j)
            if r:
                return r
            r = _cmp(a[i:ii], b[j:jj])
            if r:
                return r
        else:
            ii, jj = i, j
            while ii < la and a[ii].isascii() and a[ii].isalpha():
                ii += 1
            while jj < lb and b[jj].isascii() and b[jj].isalpha():
                jj += 1
            n = min(ii - i, jj - j)
            r = _cmp(a[i:i + n], b[j:j + n])
            if r:
                return r
            r = _cmp(ii - i, jj - j)
            if r:
                return r
        i, j = ii, jj


def version_key(s: str):
    """A sort key: systemd's order, then plain string order for versions that compare equal."""
    return (_VersionKey(s), s)


@functools.total_ordering
class _VersionKey:
    __slots__ = ('s',)

    def __init__(self, s: str):
        self.s = s

    def __eq__(self, other) -> bool:
        return strverscmp_improved(self.s, other.s) == 0

    def __lt__(self, other) -> bool:
        return strverscmp_improved(self.s, other.s) < 0


def sort_names(names) -> list:
    return sorted(names, key=version_key)
