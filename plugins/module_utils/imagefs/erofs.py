# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""erofs read in place: the superblock, inodes, directories, xattrs and uncompressed (plain or
inline) file data. A compressed or chunked file, a long xattr name prefix or a feature this
reader does not know raises NeedsMount: the kernel reads those."""

from __future__ import annotations

import struct

from .tree import ImageError, NeedsMount, Source, TooLarge, Tree, UnsupportedImage

MAGIC = 0xE0F5E1E2
SUPER_OFFSET = 1024
FLAT_PLAIN, COMPRESSED_FULL, FLAT_INLINE, COMPRESSED_COMPACT, CHUNK_BASED = 0, 1, 2, 3, 4
# feature_incompat bits this reader copes with (the ones that matter for compressed files only
# are fine: such files raise NeedsMount when they are read)
ZERO_PADDING, COMPR_CFGS, CHUNKED_FILE, DEVICE_TABLE, ZTAILPACKING, FRAGMENTS, XATTR_PREFIXES = \
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40
KNOWN_INCOMPAT = ZERO_PADDING | COMPR_CFGS | CHUNKED_FILE | DEVICE_TABLE | ZTAILPACKING | FRAGMENTS | XATTR_PREFIXES
ALGORITHMS = ('lz4', 'lzma', 'deflate', 'zstd')


def compression(src: Source) -> str | None:
    """The compression algorithms the superblock announces, '+'-joined ('none' when it says
    none); read from the superblock alone."""
    sb = src.head(128, SUPER_OFFSET)
    if len(sb) < 88:
        return None
    incompat, algs = struct.unpack_from('<IH', sb, 80)
    if incompat & COMPR_CFGS:
        names = [a for i, a in enumerate(ALGORITHMS) if algs & (1 << i)]
        return '+'.join(names) or 'none'
    # without per-algorithm configurations only lz4 exists; mkfs.erofs pads lz4 data with zeros
    return 'lz4' if incompat & ZERO_PADDING else 'none'


class Erofs(Tree):
    FSTYPE = 'erofs'

    def __init__(self, src: Source):
        self.src = src
        sb = src.pread(128, SUPER_OFFSET)
        magic, _csum, _compat, self.blkszbits, _extslots, self.root_nid = struct.unpack('<IIIBBH', sb[:16])
        if magic != MAGIC:
            raise ImageError('not an erofs image')
        if not 9 <= self.blkszbits <= 16:
            raise ImageError('corrupt erofs superblock (block size bits %d)' % self.blkszbits)
        self.blksz = 1 << self.blkszbits
        (blocks, self.meta_blkaddr, self.xattr_blkaddr) = struct.unpack('<III', sb[36:48])
        incompat, _algs, extra_devices = struct.unpack_from('<IHH', sb, 80)
        self.compression = compression(src)
        if extra_devices:
            raise UnsupportedImage('an erofs image with %d extra devices (a multi-device image); an extension '
                                   'image must be complete in one file' % extra_devices)
        if incompat & ~KNOWN_INCOMPAT:
            raise NeedsMount('erofs features 0x%x are read by the kernel only' % (incompat & ~KNOWN_INCOMPAT))
        if blocks * self.blksz > src.size:
            raise ImageError('truncated erofs image: %d blocks of %d bytes, but the image has %d bytes'
                             % (blocks, self.blksz, src.size))

    def _pread(self, length: int, offset: int) -> bytes:
        return self.src.pread(length, offset)

    def root(self):
        return self._inode(self.root_nid)

    def _inode(self, nid: int):
        pos = self.meta_blkaddr * self.blksz + nid * 32
        head = self._pread(32, pos)
        fmt, xicount, mode = struct.unpack('<HHH', head[:6])
        extended = fmt & 1
        layout = (fmt >> 1) & 0x7
        if extended:
            head = self._pread(64, pos)
            (size,) = struct.unpack('<Q', head[8:16])
            (raw_blk,) = struct.unpack('<I', head[16:20])
            isize = 64
        else:
            (size,) = struct.unpack('<I', head[8:12])
            (raw_blk,) = struct.unpack('<I', head[16:20])
            isize = 32
        xsize = 0 if xicount == 0 else 12 + (xicount - 1) * 4
        return {'mode': mode, 'layout': layout, 'size': size, 'blk': raw_blk,
                'inline': pos + isize + xsize, 'xattr_pos': pos + isize, 'xattr_size': xsize}

    def mode(self, inode) -> int:
        return inode['mode']

    def read_data(self, inode, limit: int) -> bytes:
        size = inode['size']
        if size > limit:
            raise TooLarge('file is %d bytes, more than the %d allowed' % (size, limit))
        if inode['layout'] == FLAT_PLAIN:
            return self._pread(size, inode['blk'] * self.blksz)
        if inode['layout'] == FLAT_INLINE:
            full = size // self.blksz * self.blksz
            head = self._pread(full, inode['blk'] * self.blksz) if full else b''
            return head + self._pread(size - full, inode['inline'])
        if inode['layout'] in (COMPRESSED_FULL, COMPRESSED_COMPACT, CHUNK_BASED):
            raise NeedsMount('erofs %s data (%s) is decoded by the kernel only'
                             % ('chunked' if inode['layout'] == CHUNK_BASED else 'compressed', self.compression))
        raise ImageError('corrupt erofs inode (data layout %d)' % inode['layout'])

    def _entries(self, inode):
        data = self.read_data(inode, 1 << 24)
        for boff in range(0, len(data), self.blksz):
            block = data[boff:boff + self.blksz]
            if len(block) < 12:
                raise ImageError('corrupt erofs directory block')
            first_nameoff = struct.unpack('<H', block[8:10])[0]
            count = first_nameoff // 12
            if count == 0 or first_nameoff > len(block):
                raise ImageError('corrupt erofs directory block')
            ents = [struct.unpack('<QHBB', block[i * 12:i * 12 + 12]) for i in range(count)]
            for i, (nid, nameoff, _ftype, _res) in enumerate(ents):
                end = ents[i + 1][1] if i + 1 < count else len(block)
                name = block[nameoff:end]
                if i + 1 == count:
                    name = name.split(b'\0', 1)[0]
                if name in (b'.', b'..'):
                    continue
                yield name, nid

    def lookup(self, inode, name: bytes):
        for n, nid in self._entries(inode):
            if n == name:
                return self._inode(nid)
        return None

    def listdir(self, inode) -> list[bytes]:
        return [entry[0] for entry in self._entries(inode)]

    def readlink(self, inode) -> bytes:
        return self.read_data(inode, 4096)

    XATTR_PREFIX = {1: b'user.', 4: b'trusted.', 6: b'security.'}
    LONG_PREFIX = 0x80

    def _xattr_entry(self, pos: int) -> tuple[bytes, bytes, int]:
        """(full name, value, size of the entry aligned to 4) of the entry at ``pos``."""
        name_len, index, vsize = struct.unpack('<BBH', self._pread(4, pos))
        if index & self.LONG_PREFIX:
            raise NeedsMount('erofs long xattr name prefixes are read by the kernel only')
        key = self._pread(name_len, pos + 4)
        value = self._pread(vsize, pos + 4 + name_len)
        return self.XATTR_PREFIX.get(index, b'?') + key, value, (4 + name_len + vsize + 3) & ~3

    def xattr(self, inode, name: bytes) -> bytes | None:
        if not inode['xattr_size']:
            return None
        pos, end = inode['xattr_pos'], inode['xattr_pos'] + inode['xattr_size']
        shared = self._pread(12, pos)[4]
        ids = struct.unpack('<%dI' % shared, self._pread(4 * shared, pos + 12)) if shared else ()
        for xid in ids:
            key, value, _n = self._xattr_entry(self.xattr_blkaddr * self.blksz + 4 * xid)
            if key == name:
                return value
        pos += 12 + 4 * shared
        while pos + 4 <= end:
            key, value, n = self._xattr_entry(pos)
            if key == name:
                return value
            pos += n
        return None
