# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a byte range holds, from the magic numbers libblkid looks for: the file system type
(in blkid's names), and for squashfs and erofs the compression named in the superblock."""

from __future__ import annotations

import struct

from . import erofs, squashfs
from .tree import Source

# libblkid's ext.c: an ext2/3/4 superblock is ext4 when it has a feature ext3 does not support
# (EXT3_FEATURE_*_UNSUPPORTED); a journal device (incompat 0x8) is none of them
_EXT3_INCOMPAT_SUPP = 0x0002 | 0x0004 | 0x0010
_EXT3_RO_COMPAT_SUPP = 0x0001 | 0x0002 | 0x0004


def _ext(src: Source) -> str | None:
    sb = src.head(1024, 1024)
    if len(sb) < 104 or struct.unpack_from('<H', sb, 56)[0] != 0xEF53:
        return None
    compat, incompat, ro_compat = struct.unpack_from('<III', sb, 92)
    if incompat & 0x0008:
        return 'jbd'
    if incompat & ~_EXT3_INCOMPAT_SUPP or ro_compat & ~_EXT3_RO_COMPAT_SUPP:
        return 'ext4'
    return 'ext3' if compat & 0x4 else 'ext2'


def _vfat(src: Source) -> bool:
    boot = src.head(512)
    if len(boot) < 512 or boot[510:512] != b'\x55\xaa':
        return False
    return boot[54:59] in (b'FAT12', b'FAT16') or boot[82:87] == b'FAT32' or boot[3:11] == b'MSDOS5.0'


def fstype(src: Source) -> str | None:
    """The file system in ``src`` (squashfs, erofs, ext2/3/4, btrfs, xfs, f2fs, vfat,
    crypto_LUKS), or None when it is none of those."""
    head = src.head(4)
    if len(head) == 4 and struct.unpack('<I', head)[0] == squashfs.MAGIC:
        return 'squashfs'
    if head == b'XFSB':
        return 'xfs'
    if src.head(6) == b'LUKS\xba\xbe':
        return 'crypto_LUKS'
    magic = src.head(4, erofs.SUPER_OFFSET)
    if len(magic) == 4:
        value = struct.unpack('<I', magic)[0]
        if value == erofs.MAGIC:
            return 'erofs'
        if value == 0xF2F52010:
            return 'f2fs'
    ext = _ext(src)
    if ext:
        return ext
    if src.head(8, 0x10040) == b'_BHRfS_M':
        return 'btrfs'
    if _vfat(src):
        return 'vfat'
    return None


def compression(src: Source, fs: str | None) -> str | None:
    """The compression a squashfs or erofs superblock names; None for other file systems
    (their compression, if any, is per file)."""
    if fs == 'squashfs':
        return squashfs.compression(src)
    if fs == 'erofs':
        return erofs.compression(src)
    return None
