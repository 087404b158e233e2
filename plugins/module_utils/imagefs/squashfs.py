# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""squashfs 4.0 read in place: the superblock, the inode, directory, fragment and xattr
tables, and file data. gzip/zlib, xz, lzma and lz4 blocks are decoded here; zstd and lzo
raise NeedsMount (the kernel decodes them; Python's standard library cannot)."""

from __future__ import annotations

import stat
import struct
import zlib

from . import lz4
from .tree import ImageError, NeedsMount, NotFound, Source, TooLarge, Tree, UnsupportedImage

MAGIC = 0x73717368
COMP_GZIP, COMP_LZMA, COMP_LZO, COMP_XZ, COMP_LZ4, COMP_ZSTD = 1, 2, 3, 4, 5, 6
COMP_NAMES = {1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd'}
DECODED = (COMP_GZIP, COMP_LZMA, COMP_XZ, COMP_LZ4)
NO_XATTRS = 0xFFFFFFFFFFFFFFFF


def compression(src: Source) -> str | None:
    """The compressor named in the superblock (no tables read)."""
    head = src.head(22)
    if len(head) < 22:
        return None
    return COMP_NAMES.get(struct.unpack_from('<H', head, 20)[0], 'unknown')


class Squashfs(Tree):
    FSTYPE = 'squashfs'

    def __init__(self, src: Source):
        self.src = src
        self.size = src.size
        sb = src.pread(96, 0)
        (magic, self.inode_count, _mtime, self.block_size, _frag_count, self.comp,
         self.block_log, _flags, _id_count, vmaj, _vmin, self.root_ref, self.bytes_used,
         _id_table, self.xattr_id_table, self.inode_table, self.dir_table, self.frag_table,
         _export_table) = struct.unpack('<IIIIIHHHHHHQQQQQQQQ', sb)
        if magic != MAGIC:
            raise ImageError('not a squashfs image')
        if vmaj != 4:
            raise UnsupportedImage('squashfs version %d is not supported' % vmaj)
        self.compression = COMP_NAMES.get(self.comp)
        if self.comp not in COMP_NAMES:
            raise ImageError('corrupt squashfs superblock (unknown compressor %d)' % self.comp)
        if self.comp not in DECODED:
            raise NeedsMount('squashfs compression %s is decoded by the kernel only' % self.compression)
        if not 4096 <= self.block_size <= 1 << 20 or self.bytes_used > self.size:
            raise ImageError('corrupt squashfs superblock (block size %d, %d bytes used, image has %d)'
                             % (self.block_size, self.bytes_used, self.size))
        self._meta_cache: dict[int, tuple[bytes, int]] = {}

    def _pread(self, length: int, offset: int) -> bytes:
        return self.src.pread(length, offset)

    def _decompress(self, data: bytes, limit: int) -> bytes:
        if self.comp == COMP_LZ4:
            try:
                return lz4.decompress(data, limit)
            except lz4.LZ4Error as e:
                raise ImageError('corrupt lz4 block: %s' % e) from None
        # only xz/lzma images need lzma: keep it off the import path of every run
        import lzma  # pylint: disable=import-outside-toplevel
        try:
            if self.comp == COMP_GZIP:
                return zlib.decompressobj().decompress(data, limit)
            if self.comp == COMP_XZ:
                return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data, limit)
            return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data, limit)
        except (zlib.error, lzma.LZMAError) as e:
            raise ImageError('corrupt compressed block: %s' % e) from None

    def _meta_block(self, pos: int) -> tuple[bytes, int]:
        """Return (decompressed data, position of the next block)."""
        if pos in self._meta_cache:
            return self._meta_cache[pos]
        hdr = struct.unpack('<H', self._pread(2, pos))[0]
        length = hdr & 0x7FFF
        if length == 0 or length > 8192:
            raise ImageError('corrupt squashfs metadata block at %d' % pos)
        raw = self._pread(length, pos + 2)
        data = raw if hdr & 0x8000 else self._decompress(raw, 8192)
        res = (data, pos + 2 + length)
        self._meta_cache[pos] = res
        return res

    def _meta_read(self, pos: int, offset: int, length: int) -> tuple[bytes, int, int]:
        """Read ``length`` bytes from a metadata stream; return (data, block pos, offset after)."""
        out = b''
        while len(out) < length:
            data, nxt = self._meta_block(pos)
            if offset > len(data):
                raise ImageError('corrupt squashfs metadata offset')
            chunk = data[offset:offset + length - len(out)]
            out += chunk
            offset += len(chunk)
            if offset >= len(data) and len(out) < length:
                pos, offset = nxt, 0
        return out, pos, offset

    def _meta_bytes(self, pos: int, offset: int, length: int) -> bytes:
        return self._meta_read(pos, offset, length)[0]

    def root(self):
        return self._inode(self.root_ref)

    def _inode(self, ref: int):
        pos = self.inode_table + (ref >> 16)
        off = ref & 0xFFFF
        head, pos, off = self._meta_read(pos, off, 16)
        itype, mode = struct.unpack('<HH', head[:4])
        fmt = {1: stat.S_IFDIR, 8: stat.S_IFDIR, 2: stat.S_IFREG, 9: stat.S_IFREG,
               3: stat.S_IFLNK, 10: stat.S_IFLNK, 4: stat.S_IFBLK, 11: stat.S_IFBLK, 5: stat.S_IFCHR,
               12: stat.S_IFCHR, 6: stat.S_IFIFO, 13: stat.S_IFIFO, 7: stat.S_IFSOCK, 14: stat.S_IFSOCK}.get(itype)
        if fmt is None:
            raise ImageError('corrupt squashfs inode type %d' % itype)
        node = {'type': itype, 'mode': fmt | (mode & 0o7777), 'pos': pos, 'off': off}
        if itype == 1:
            b = self._meta_bytes(pos, off, 16)
            start, _nlink, size, offset, _parent = struct.unpack('<IIHHI', b)
            node.update(dstart=start, dsize=size, doff=offset)
        elif itype == 8:
            b = self._meta_bytes(pos, off, 24)
            _nlink, size, start, _parent, _icount, offset, xattr = struct.unpack('<IIIIHHI', b)
            node.update(dstart=start, dsize=size, doff=offset, xattr=xattr)
        elif itype == 2:
            b, pos2, off2 = self._meta_read(pos, off, 16)
            start, frag, frag_off, size = struct.unpack('<IIII', b)
            node.update(start=start, frag=frag, frag_off=frag_off, size=size, bpos=pos2, boff=off2)
        elif itype == 9:
            b, pos2, off2 = self._meta_read(pos, off, 40)
            start, size, _sparse, _nlink, frag, frag_off, xattr = struct.unpack('<QQQIIII', b)
            node.update(start=start, frag=frag, frag_off=frag_off, size=size, bpos=pos2, boff=off2, xattr=xattr)
        elif itype in (3, 10):
            b, pos2, off2 = self._meta_read(pos, off, 8)
            _nlink, tsize = struct.unpack('<II', b)
            if tsize > 4096:
                raise ImageError('corrupt squashfs symlink')
            target, pos3, off3 = self._meta_read(pos2, off2, tsize)
            node.update(target=target)
            if itype == 10:
                node.update(xattr=struct.unpack('<I', self._meta_bytes(pos3, off3, 4))[0])
        return node

    def mode(self, inode) -> int:
        return inode['mode']

    def _entries(self, inode):
        if inode['type'] not in (1, 8):
            raise NotFound('not a directory')
        remaining = inode['dsize'] - 3
        pos, off = self.dir_table + inode['dstart'], inode['doff']
        while remaining > 0:
            hdr, pos, off = self._meta_read(pos, off, 12)
            count, start, _ino = struct.unpack('<III', hdr)
            remaining -= 12
            if count >= 256:
                raise ImageError('corrupt squashfs directory header')
            for _entry in range(count + 1):
                ent, pos, off = self._meta_read(pos, off, 8)
                ioff, _idelta, _itype, nsize = struct.unpack('<HhHH', ent)
                name, pos, off = self._meta_read(pos, off, nsize + 1)
                remaining -= 8 + nsize + 1
                yield name, (start << 16) | ioff

    def lookup(self, inode, name: bytes):
        for n, ref in self._entries(inode):
            if n == name:
                return self._inode(ref)
        return None

    def listdir(self, inode) -> list[bytes]:
        return [entry[0] for entry in self._entries(inode)]

    def readlink(self, inode) -> bytes:
        return inode['target']

    XATTR_PREFIX = {0: b'user.', 1: b'trusted.', 2: b'security.'}
    XATTR_VALUE_OOL = 0x100
    XATTR_SIZE_MAX = 65536      # the most getxattr(2) returns (E2BIG beyond)

    def xattr(self, inode, name: bytes) -> bytes | None:
        """Extended attributes of the inodes that carry an xattr index (extended ones), read as
        the kernel's squashfs_xattr_get() reads them: for an entry whose value is stored out of
        line, the 8 bytes after its value size are the reference, whatever that size says."""
        idx = inode.get('xattr', 0xFFFFFFFF)
        if idx == 0xFFFFFFFF or self.xattr_id_table == NO_XATTRS:
            return None
        table_start, ids = struct.unpack('<QI', self._pread(12, self.xattr_id_table))
        if idx >= ids:
            raise ImageError('corrupt squashfs xattr index %d (of %d)' % (idx, ids))
        (blk,) = struct.unpack('<Q', self._pread(8, self.xattr_id_table + 16 + 8 * (idx // 512)))
        ref, count, _size = struct.unpack('<QII', self._meta_bytes(blk, (idx % 512) * 16, 16))
        pos, off = table_start + (ref >> 16), ref & 0xFFFF
        for _entry in range(count):
            head, pos, off = self._meta_read(pos, off, 4)
            xtype, nsize = struct.unpack('<HH', head)
            key, pos, off = self._meta_read(pos, off, nsize)
            vhead, pos, off = self._meta_read(pos, off, 4)
            (vsize,) = struct.unpack('<I', vhead)
            if self.XATTR_PREFIX.get(xtype & 0xFF, b'?') + key == name:
                what = 'value'
                if xtype & self.XATTR_VALUE_OOL:
                    (vref,) = struct.unpack('<Q', self._meta_bytes(pos, off, 8))
                    vh, pos, off = self._meta_read(table_start + (vref >> 16), vref & 0xFFFF, 4)
                    (vsize,) = struct.unpack('<I', vh)
                    what = 'out-of-line value'
                if vsize > self.XATTR_SIZE_MAX:
                    raise ImageError('corrupt squashfs xattr: its %s is %d bytes, more than the %d an xattr may hold'
                                     % (what, vsize, self.XATTR_SIZE_MAX))
                return self._meta_bytes(pos, off, vsize)
            if vsize > self.XATTR_SIZE_MAX:
                raise ImageError('corrupt squashfs xattr value size %d' % vsize)
            _value, pos, off = self._meta_read(pos, off, vsize)
        return None

    def read_data(self, inode, limit: int) -> bytes:
        size = inode['size']
        if size > limit:
            raise TooLarge('file is %d bytes, more than the %d allowed' % (size, limit))
        has_frag = inode['frag'] != 0xFFFFFFFF
        nblocks = size // self.block_size if has_frag else (size + self.block_size - 1) // self.block_size
        sizes_raw = self._meta_bytes(inode['bpos'], inode['boff'], 4 * nblocks)
        out = bytearray()
        pos = inode['start']
        for (bsz,) in struct.iter_unpack('<I', sizes_raw):
            want = min(self.block_size, size - len(out))
            if bsz == 0:
                out += b'\0' * want
                continue
            raw = self._pread(bsz & 0xFFFFFF, pos)
            pos += bsz & 0xFFFFFF
            out += raw if bsz & (1 << 24) else self._decompress(raw, self.block_size)
        if has_frag:
            idx = inode['frag']
            ptr_raw = self._pread(8, self.frag_table + 8 * (idx // 512))
            (mpos,) = struct.unpack('<Q', ptr_raw)
            ent = self._meta_bytes(mpos, (idx % 512) * 16, 16)
            fstart, fsize, _unused = struct.unpack('<QII', ent)
            raw = self._pread(fsize & 0xFFFFFF, fstart)
            frag = raw if fsize & (1 << 24) else self._decompress(raw, self.block_size)
            out += frag[inode['frag_off']:inode['frag_off'] + size - len(out)]
        if len(out) < size:
            raise ImageError('truncated squashfs file data')
        return bytes(out[:size])
