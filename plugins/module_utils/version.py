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


_DIGITS = frozenset('0123456789')
_ALPHA = frozenset('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ')
_VALID = _DIGITS | _ALPHA | frozenset('~-^.')


def _valid(c: str) -> bool:
    return c in _VALID


def strverscmp_improved(a: str | None, b: str | None) -> int:
    """-1, 0 or 1. '~' sorts before everything (pre-releases), '-' separates version and
    release, '^' marks patched releases, numeric segments compare numerically (leading zeros
    ignored) and are newer than alphabetic ones; more segments are newer."""
    if not a or not b:
        return _cmp(a or '', b or '') if (a or b) else 0
    la, lb = len(a), len(b)
    a += '\0'     # sentinels: indexing one past the end reads '\0', like the C code
    b += '\0'
    i = j = 0
    while True:
        while i < la and not _valid(a[i]):
            i += 1
        while j < lb and not _valid(b[j]):
            j += 1
        if a[i] == '~' or b[j] == '~':
            r = _cmp(a[i] != '~', b[j] != '~')
            if r:
                return r
            i += 1
            j += 1
        if i >= la or j >= lb:
            return _cmp(a[i:la], b[j:lb])
        for sep in '-^.':
            if a[i] == sep or b[j] == sep:
                r = _cmp(a[i] != sep, b[j] != sep)
                if r:
                    return r
                i += 1
                j += 1
        if a[i] in _DIGITS or b[j] in _DIGITS:
            ii, jj = i, j
            while a[ii] in _DIGITS:
                ii += 1
            while b[jj] in _DIGITS:
                jj += 1
            r = _cmp(ii != i, jj != j)
            if r:
                return r
            while a[i] == '0':
                i += 1
            while b[j] == '0':
                j += 1
            r = _cmp(ii - i, jj - j) or _cmp(a[i:ii], b[j:jj])
            if r:
                return r
        else:
            ii, jj = i, j
            while a[ii] in _ALPHA:
                ii += 1
            while b[jj] in _ALPHA:
                jj += 1
            n = min(ii - i, jj - j)
            r = _cmp(a[i:i + n], b[j:j + n]) or _cmp(ii - i, jj - j)
            if r:
                return r
        i, j = ii, jj


def _total(a: str, b: str) -> int:
    """systemd's order, then plain string order for versions that compare equal (00 vs 0)."""
    return strverscmp_improved(a, b) or _cmp(a, b)


version_key = functools.cmp_to_key(_total)


def sort_names(names) -> list:
    return sorted(names, key=version_key)
