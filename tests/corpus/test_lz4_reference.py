# -*- coding: utf-8 -*-
"""Our LZ4 block decoder (imagefs/lz4.py, which reads lz4 squashfs and erofs in place) against
the reference: the lz4 library itself, through PyPI's lz4 bindings (controller-side test
dependency only; the targets never need it).

- Everything the reference compresses, in its fast and high-compression modes at every level
  squashfs-tools and erofs-utils use, we decode to the same bytes, and refuse with a
  ``limit`` one byte short.
- Damaged blocks (flipped bits, overwritten bytes, truncation, spliced bytes): where the
  reference's LZ4_decompress_safe() decodes them, we decode the same bytes, and where we decode
  them, so does the reference, to the same bytes. Never another exception than LZ4Error.
  One difference, on purpose: a match offset of 0, which the LZ4 block format calls corrupt
  ("The presence of a 0 offset value denotes an invalid (corrupted) block"), is refused by
  us; lz4 1.10 copies the output buffer's bytes not yet written (found by this test: the block
  13 00 00 00 50 00 00 00 00 00 is 13 zero bytes to it).
  And one difference by the decoder's version: a damaged block whose sequence reaches into the
  last 8 bytes of the input (or 12 of the buffer) without being the last one breaks the format's
  end rule, which we always apply; lz4's decoders skip that check in their fast paths (1.10's
  fast loop for literal runs under 15 while 64 bytes of output and 17 of input remain, the
  kernel's older shortcut with thresholds of its own), so whether such a block decodes there
  depends on the lz4 release. We refuse it (found by this test: default mode, truncated, then
  three bytes spliced in). Blocks a compressor writes never have such a sequence.
"""

import re

import lz4.block as lz4_ref  # requirements-dev.txt: the test fails, never skips, without it
from hypothesis import given, settings, strategies as st

# our refusal of a block that breaks the end rule (see above)
END_RULE = re.compile(r'the sequence at \d+ must be the last \(')


def _ours():
    # (imported once the session fixture of conftest.py has put the collection on the path)
    from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import lz4
    return lz4


# (mode, level): lz4 fast (mksquashfs -comp lz4, mkfs.erofs -zlz4) and lz4hc at the levels
# of mksquashfs -Xhc (9), mkfs.erofs -zlz4hc (9 by default, Flatcar's extras use 12)
MODES = [('default', 0), ('fast', 8)] + [('high_compression', level) for level in (3, 9, 12)]

# data that compresses the way file contents do: runs, repeated words, and some noise
CHUNK = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.tuples(st.binary(min_size=1, max_size=8), st.integers(1, 300)).map(lambda t: t[0] * t[1]),
    st.sampled_from([b'/usr/lib/', b'ID=_any\n', b'\x00' * 64, b'extension-release.', b'SYSEXT_LEVEL=1.0\n']),
)
DATA = st.lists(CHUNK, max_size=40).map(b''.join)


def compress(data: bytes, mode: str, level: int) -> bytes:
    if mode == 'high_compression':
        return lz4_ref.compress(data, mode=mode, compression=level, store_size=False)
    if mode == 'fast':
        return lz4_ref.compress(data, mode=mode, acceleration=level, store_size=False)
    return lz4_ref.compress(data, store_size=False)


def reference(block: bytes, limit: int):
    """What LZ4_decompress_safe() makes of ``block`` with ``limit`` bytes of room; None when it refuses."""
    try:
        return lz4_ref.decompress(block, uncompressed_size=limit)
    except lz4_ref.LZ4BlockError:
        return None


def ours(block: bytes, limit: int):
    return ours_said(block, limit)[0]


def ours_said(block: bytes, limit: int):
    """(what we decode, None) or (None, why we refuse)."""
    lz4 = _ours()
    try:
        out = lz4.decompress(block, limit)
    except lz4.LZ4Error as e:
        assert str(e)
        return None, str(e)
    assert len(out) <= limit
    return out, None


@settings(max_examples=400, deadline=None)
@given(DATA, st.sampled_from(MODES))
def test_what_the_reference_compresses_we_decode(data, mode):
    block = compress(data, *mode)
    assert ours(block, len(data)) == data
    assert ours(block, len(data) + 4096) == data
    if data:
        assert ours(block, len(data) - 1) is None


def _damage(block: bytes, how: str, where: int, value: int) -> bytes:
    where %= max(len(block), 1)
    if how == 'flip':
        return block[:where] + bytes([block[where] ^ (1 << (value % 8))]) + block[where + 1:]
    if how == 'set':
        return block[:where] + bytes([value]) + block[where + 1:]
    if how == 'truncate':
        return block[:where]
    return block[:where] + bytes([value]) * (1 + value % 4) + block[where:]        # splice


@settings(max_examples=1500, deadline=None)
@given(DATA.filter(bool), st.sampled_from(MODES),
       st.lists(st.tuples(st.sampled_from(['flip', 'set', 'truncate', 'splice']), st.integers(0, 1 << 16),
                          st.integers(0, 255)), min_size=1, max_size=3),
       st.integers(0, 64))
def test_damaged_blocks_decode_as_the_reference_decodes_them_or_are_refused(data, mode, damage, slack):
    block = compress(data, *mode)
    for how, where, value in damage:
        if block:
            block = _damage(block, how, where, value)
    limit = len(data) + slack
    want, (got, why) = reference(block, limit), ours_said(block, limit)
    if got is not None:
        assert want == got, 'we decode %r to %d bytes, the reference %s' % (
            block, len(got), 'refuses it' if want is None else 'to %d other bytes' % len(want))
    elif want is not None:
        assert why.startswith('match offset 0 ') or END_RULE.match(why), \
            'the reference decodes %r to %d bytes, we refuse it: %s' % (block, len(want), why)


def test_offset_zero_is_refused_where_the_reference_reads_unwritten_output():
    block = bytes.fromhex('13000000500000000000')
    assert reference(block, 13) == bytes(13)
    assert ours_said(block, 13) == (None, 'match offset 0 out of range at 2')


def test_the_reference_is_the_lz4_library():
    # the check is only as good as its reference: it must refuse what is not LZ4 and round-trip
    assert reference(b'\x1f', 100) is None
    assert reference(compress(b'abc' * 100, 'default', 0), 300) == b'abc' * 100
