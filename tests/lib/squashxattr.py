# -*- coding: utf-8 -*-
"""squashfs images whose release file carries ``user.extension-release.strict`` stored out of
line, made by mksquashfs and then patched, for the corpus and for the comparison with the
kernel's reader (tests/integration/hostile_driver.py, 'xattr-kernel').

mksquashfs stores a value out of line when it is longer than XATTR_INLINE_MAX (128 bytes,
squashfs-tools xattr.h) or repeats an earlier value of at least 8 bytes: the xattr list then
holds the name, a value size of 8 and an 8-byte reference ((block << 16) | offset in the xattr
metadata), and the value itself (a 4-byte size, then the bytes) sits elsewhere in that
metadata. No boolean is that long, so the image is built with a 200-byte value, uncompressed
xattr metadata (-noX), and patched:

* ``false``: the out-of-line value becomes ``false`` (its size 5): a renamed image's release
  file that may be used under another name, read through the reference;
* ``short-reference``: as ``false``, with the list's value size 4 instead of 8. The kernel's
  squashfs_xattr_get() reads the 8-byte reference whatever that size says, so the kernel (and
  systemd on it) still reads ``false``;
* ``value-short``: the out-of-line value claims 60,000 bytes, far more than the xattr metadata
  holds (a short out-of-line value): reading it runs off the end of the table;
* ``reference-beyond``: the reference points past the end of its metadata block.
"""

from __future__ import annotations

import os
import struct
import subprocess

NAME = b'extension-release.strict'
ENTRY = struct.pack('<HH', 0x100, len(NAME)) + NAME      # user. prefix (0), value out of line (0x100)
LONG = b'x' * 200
VARIANTS = ('false', 'short-reference', 'value-short', 'reference-beyond')


def build(tree: str, release_file: str, dst: str, variant: str) -> str:
    """Set the xattr on ``tree``/``release_file`` (a regular file in it), build ``dst`` and
    patch it as ``variant`` says; returns ``dst``."""
    if variant not in VARIANTS:
        raise ValueError(variant)
    os.setxattr(os.path.join(tree, release_file), 'user.extension-release.strict', LONG)
    subprocess.run(['mksquashfs', tree, dst, '-quiet', '-noappend', '-all-root', '-noX'], check=True,
                   capture_output=True)
    with open(dst, 'rb') as f:
        data = bytearray(f.read())
    (xattr_id_table,) = struct.unpack_from('<Q', data, 56)
    (kv_start,) = struct.unpack_from('<Q', data, xattr_id_table)
    at = data.find(ENTRY, kv_start)
    if at < 0 or struct.unpack_from('<I', data, at + len(ENTRY))[0] != 8:
        raise AssertionError('mksquashfs did not store %s out of line' % NAME.decode())
    vsize_at = at + len(ENTRY)
    (ref,) = struct.unpack_from('<Q', data, vsize_at + 4)
    block = kv_start + (ref >> 16)
    (hdr,) = struct.unpack_from('<H', data, block)
    if not hdr & 0x8000:
        raise AssertionError('the xattr metadata is compressed (-noX was not honoured)')
    target = block + 2 + (ref & 0xFFFF)
    if data[target + 4:target + 4 + len(LONG)] != LONG:
        raise AssertionError('the out-of-line value is not where its reference points')
    if variant in ('false', 'short-reference'):
        struct.pack_into('<I', data, target, 5)
        data[target + 4:target + 9] = b'false'
    if variant == 'short-reference':
        struct.pack_into('<I', data, vsize_at, 4)
    elif variant == 'value-short':
        struct.pack_into('<I', data, target, 60000)
        data[target + 4:target + 9] = b'false'
    elif variant == 'reference-beyond':
        struct.pack_into('<Q', data, vsize_at + 4, (ref & ~0xFFFF) | 0x7FF0)
    with open(dst, 'wb') as f:
        f.write(bytes(data))
    return dst
