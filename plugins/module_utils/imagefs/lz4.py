# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""An LZ4 block decoder (the raw block format of lz4's LZ4_decompress_safe(), used by squashfs
and erofs; no frame header). Malformed input raises ValueError, never reads or writes out of
bounds, and never produces more than ``limit`` bytes."""

from __future__ import annotations

MIN_MATCH = 4
LAST_LITERALS = 5       # the last 5 bytes of the output are literals
MF_LIMIT = 12           # and the last match starts at least 12 bytes before its end


class LZ4Error(ValueError):
    """The input is not a valid LZ4 block."""


def _length(src: bytes, i: int, base: int, end: int) -> tuple[int, int]:
    """A length whose 4-bit field was 15: add bytes until one is not 255; reading past ``end``
    (a bound short of the block's end, as in lz4's read_variable_length()) is corrupt."""
    while True:
        b = src[i]
        i += 1
        if i > end:
            raise LZ4Error('length at %d runs into the end of the block' % (i - 1))
        base += b
        if b != 255:
            return base, i


def decompress(src: bytes, limit: int) -> bytes:
    """Decode one LZ4 block of at most ``limit`` bytes (the output buffer's size, as the kernel's
    LZ4_decompress_safe() is given it); the whole of ``src`` must be the block.

    The block format's end rules are those of lz4's own decoder (the kernel's and 1.10's): a
    sequence whose literals reach into the last 8 bytes of the input or the last 12 bytes of the
    buffer is the last one, which ends the input exactly; a match ends at least 5 bytes before
    the buffer's end. A match offset of 0 is refused (the format calls it corrupt; lz4 copies
    output bytes not yet written)."""
    n = len(src)
    if n == 0:
        raise LZ4Error('empty block')
    if limit <= 0:
        if src == b'\x00':
            return b''
        raise LZ4Error('decompresses to more than %d bytes' % limit)
    out = bytearray()
    i = 0
    while True:
        token = src[i]
        i += 1
        lit = token >> 4
        if lit == 15:
            if i >= n - 15:
                raise LZ4Error('literal length at %d runs into the end of the block' % i)
            lit, i = _length(src, i, lit, n - 15)
        if len(out) + lit > limit - MF_LIMIT or i + lit > n - 8:
            # the last sequence: literals only, up to the end of the block
            if i + lit != n:
                raise LZ4Error('the sequence at %d must be the last (it reaches the last %d bytes of the '
                               '%d-byte output or the last 8 of the input), but the block goes on'
                               % (i - 1, MF_LIMIT, limit))
            if len(out) + lit > limit:
                raise LZ4Error('decompresses to more than %d bytes' % limit)
            out += src[i:]
            return bytes(out)
        out += src[i:i + lit]
        i += lit
        off = src[i] | src[i + 1] << 8
        i += 2
        if off == 0 or off > len(out):
            raise LZ4Error('match offset %d out of range at %d' % (off, i - 2))
        ml = token & 15
        if ml == 15:
            ml, i = _length(src, i, ml, n - LAST_LITERALS + 1)
        ml += MIN_MATCH
        if len(out) + ml > limit - LAST_LITERALS:
            raise LZ4Error('decompresses to more than %d bytes' % limit
                           if len(out) + ml > limit else
                           'a match at %d ends in the last %d bytes of the block' % (i, LAST_LITERALS))
        start = len(out) - off
        if off >= ml:
            out += out[start:start + ml]
        else:                           # overlapping copy: the last ``off`` bytes repeat
            pattern = bytes(out[start:])
            out += (pattern * (ml // off + 1))[:ml]
