# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An LZ4 block decoder (the raw block format of lz4's LZ4_decompress_safe(), used by squashfs
and erofs; no frame header). Malformed input raises ValueError, never reads or writes out of
bounds, and never produces more than ``limit`` bytes."""

from __future__ import annotations

MIN_MATCH = 4


class LZ4Error(ValueError):
    """The input is not a valid LZ4 block."""


def _length(src: bytes, i: int, n: int, base: int) -> tuple[int, int]:
    """A length whose 4-bit field was 15: add bytes until one is not 255."""
    while True:
        if i >= n:
            raise LZ4Error('truncated length at %d' % i)
        b = src[i]
        i += 1
        base += b
        if b != 255:
            return base, i


def decompress(src: bytes, limit: int) -> bytes:
    """Decode one LZ4 block; the whole of ``src`` must be the block."""
    out = bytearray()
    i, n = 0, len(src)
    while True:
        if i >= n:
            raise LZ4Error('truncated block: no token at %d' % i)
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            lit, i = _length(src, i, n, lit)
        if i + lit > n:
            raise LZ4Error('literals run past the end of the block')
        if len(out) + lit > limit:
            raise LZ4Error('decompresses to more than %d bytes' % limit)
        out += src[i:i + lit]
        i += lit
        if i == n:
            return bytes(out)           # the last sequence has literals only
        if i + 2 > n:
            raise LZ4Error('truncated match offset at %d' % i)
        off = src[i] | src[i + 1] << 8
        i += 2
        if off == 0 or off > len(out):
            raise LZ4Error('match offset %d out of range at %d' % (off, i - 2))
        ml = token & 15
        if ml == 15:
            ml, i = _length(src, i, n, ml)
        ml += MIN_MATCH
        if len(out) + ml > limit:
            raise LZ4Error('decompresses to more than %d bytes' % limit)
        start = len(out) - off
        if off >= ml:
            out += out[start:start + ml]
        else:                           # overlapping copy: the last ``off`` bytes repeat
            pattern = bytes(out[start:])
            out += (pattern * (ml // off + 1))[:ml]
