# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read single small files out of squashfs and erofs images without mounting them.

The fact gatherer must never mount anything, yet it has to know each ``.raw`` image's
extension-release. Both formats keep their metadata in a few well-defined tables, so
looking up one path and reading one file is a handful of ``pread`` calls.

Supported: squashfs 4.0 with gzip/zlib, xz or lzma compression (or uncompressed blocks);
erofs with plain or inline (uncompressed) data. Anything else raises
``UnsupportedImage`` and the caller reports the image as unreadable.
"""

from __future__ import annotations

import os
import stat
import struct
import zlib

MAX_SYMLINKS = 32


class ImageError(Exception):
    """The image is corrupt or the path cannot be resolved in it."""


class UnsupportedImage(ImageError):
    """A valid image in a format or compression this reader does not handle."""


class NotFound(ImageError):
    """The path does not exist in the image."""


class TooLarge(ImageError):
    """The file is larger than the caller allows."""


SQUASHFS_MAGIC = 0x73717368
EROFS_MAGIC = 0xE0F5E1E2
EROFS_SUPER_OFFSET = 1024


def detect(fd: int) -> str | None:
    """Return ``squashfs``, ``erofs``, ``gpt`` or None for an open image file."""
    head = os.pread(fd, 4, 0)
    if len(head) == 4 and struct.unpack('<I', head)[0] == SQUASHFS_MAGIC:
        return 'squashfs'
    magic = os.pread(fd, 4, EROFS_SUPER_OFFSET)
    if len(magic) == 4 and struct.unpack('<I', magic)[0] == EROFS_MAGIC:
        return 'erofs'
    if os.pread(fd, 8, 512) == b'EFI PART':
        return 'gpt'
    return None


class _Reader:
    """Common path walking; subclasses supply lookup/readlink/read of inodes."""
    FSTYPE = ''

    def __init__(self, fd: int):
        self.fd = fd
        self.size = os.fstat(fd).st_size

    def _pread(self, length: int, offset: int) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise ImageError('read of %d bytes at offset %d beyond the end of the image' % (length, offset))
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise ImageError('short read at offset %d' % offset)
        return data

    # subclass interface -------------------------------------------------
    def root(self):
        raise NotImplementedError

    def mode(self, inode) -> int:
        raise NotImplementedError

    def lookup(self, inode, name: bytes):
        raise NotImplementedError

    def readlink(self, inode) -> bytes:
        raise NotImplementedError

    def read_data(self, inode, limit: int) -> bytes:
        raise NotImplementedError

    def listdir(self, inode) -> list[bytes]:
        raise NotImplementedError

    def xattr(self, inode, name: bytes) -> bytes | None:
        raise NotImplementedError

    def get_xattr(self, path: str, name: str) -> bytes | None:
        """An extended attribute of ``path`` itself (symlinks not followed), or None."""
        return self.xattr(self.resolve(path, follow_last=False), name.encode())

    # path resolution, chroot-like: '..' at the root stays at the root, absolute symlinks
    # restart at the image root, so nothing ever escapes the image.
    def resolve(self, path: str, follow_last: bool = True):
        parts = [p for p in path.encode('utf-8', 'surrogateescape').split(b'/') if p and p != b'.']
        stack = [self.root()]
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == b'..':
                if len(stack) > 1:
                    stack.pop()
                continue
            cur = stack[-1]
            if not stat.S_ISDIR(self.mode(cur)):
                raise NotFound('%s: not a directory' % path)
            child = self.lookup(cur, name)
            if child is None:
                raise NotFound(path)
            if stat.S_ISLNK(self.mode(child)) and (parts or follow_last):
                hops += 1
                if hops > MAX_SYMLINKS:
                    raise ImageError('%s: too many levels of symbolic links' % path)
                target = self.readlink(child)
                tparts = [p for p in target.split(b'/') if p and p != b'.']
                if target.startswith(b'/'):
                    stack = [self.root()]
                parts = tparts + parts
                continue
            stack.append(child)
        return stack[-1]

    def is_dir(self, path: str) -> bool:
        try:
            return stat.S_ISDIR(self.mode(self.resolve(path)))
        except NotFound:
            return False

    def list_dir(self, path: str) -> list[str]:
        ino = self.resolve(path)
        if not stat.S_ISDIR(self.mode(ino)):
            raise NotFound('%s: not a directory' % path)
        return [n.decode('utf-8', 'surrogateescape') for n in self.listdir(ino)]

    def lstat_mode(self, path: str) -> int:
        return self.mode(self.resolve(path, follow_last=False))

    def read_file(self, path: str, limit: int) -> bytes:
        """Read a regular file (following symlinks inside the image), at most ``limit`` bytes.

        Raises ImageError if the file is larger than ``limit``.
        """
        ino = self.resolve(path)
        if not stat.S_ISREG(self.mode(ino)):
            raise ImageError('%s: not a regular file' % path)
        return self.read_data(ino, limit)


# ---------------------------------------------------------------------------- squashfs
class Squashfs(_Reader):
    FSTYPE = 'squashfs'
    COMP_GZIP, COMP_LZMA, COMP_LZO, COMP_XZ, COMP_LZ4, COMP_ZSTD = 1, 2, 3, 4, 5, 6
    COMP_NAMES = {1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd'}

    def __init__(self, fd: int):
        super().__init__(fd)
        sb = self._pread(96, 0)
        (magic, self.inode_count, _mtime, self.block_size, _frag_count, self.comp,
         self.block_log, _flags, _id_count, vmaj, _vmin, self.root_ref, self.bytes_used,
         _id_table, self.xattr_id_table, self.inode_table, self.dir_table, self.frag_table,
         _export_table) = struct.unpack('<IIIIIHHHHHHQQQQQQQQ', sb)
        if magic != SQUASHFS_MAGIC:
            raise ImageError('not a squashfs image')
        if vmaj != 4:
            raise UnsupportedImage('squashfs version %d is not supported' % vmaj)
        if self.comp not in (self.COMP_GZIP, self.COMP_XZ, self.COMP_LZMA):
            raise UnsupportedImage('squashfs compression %s is not supported by the built-in reader'
                                   % self.COMP_NAMES.get(self.comp, self.comp))
        if not 4096 <= self.block_size <= 1 << 20 or self.bytes_used > self.size:
            raise ImageError('corrupt squashfs superblock (block size %d, %d bytes used, file has %d)'
                             % (self.block_size, self.bytes_used, self.size))
        self._meta_cache: dict[int, tuple[bytes, int]] = {}

    def _decompress(self, data: bytes, limit: int) -> bytes:
        # only xz/lzma images need lzma: keep it off the import path of every run
        import lzma  # pylint: disable=import-outside-toplevel
        try:
            if self.comp == self.COMP_GZIP:
                d = zlib.decompressobj()
                out = d.decompress(data, limit)
            elif self.comp == self.COMP_XZ:
                out = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data, limit)
            else:
                out = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress(data, limit)
        except (zlib.error, lzma.LZMAError) as e:
            raise ImageError('corrupt compressed block: %s' % e) from None
        return out

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
               3: stat.S_IFLNK, 10: stat.S_IFLNK}.get(itype)
        node = {'type': itype, 'mode': (fmt or 0) | (mode & 0o7777), 'pos': pos, 'off': off}
        if itype == 1:
            b = self._meta_bytes(pos, off, 16)
            start, _nlink, size, offset, _parent = struct.unpack('<IIHHI', b)
            node.update(dstart=start, dsize=size, doff=offset)
        elif itype == 8:
            b = self._meta_bytes(pos, off, 24)
            _nlink, size, start, _parent, _icount, offset, _xattr = struct.unpack('<IIIIHHI', b)
            node.update(dstart=start, dsize=size, doff=offset)
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
            target = self._meta_bytes(pos2, off2, tsize)
            node.update(target=target)
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

    def xattr(self, inode, name: bytes) -> bytes | None:
        """Extended attributes of regular files (extended file inodes carry the index)."""
        idx = inode.get('xattr', 0xFFFFFFFF)
        if idx == 0xFFFFFFFF or self.xattr_id_table == 0xFFFFFFFFFFFFFFFF:
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
            if vsize > 65536:
                raise ImageError('corrupt squashfs xattr value size %d' % vsize)
            value, pos, off = self._meta_read(pos, off, vsize)
            if self.XATTR_PREFIX.get(xtype & 0xFF, b'?') + key != name:
                continue
            if xtype & self.XATTR_VALUE_OOL:
                (vref,) = struct.unpack('<Q', value)
                vh, p2, o2 = self._meta_read(table_start + (vref >> 16), vref & 0xFFFF, 4)
                value = self._meta_bytes(p2, o2, min(struct.unpack('<I', vh)[0], 65536))
            return value
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


# ---------------------------------------------------------------------------- erofs
class Erofs(_Reader):
    FSTYPE = 'erofs'
    FLAT_PLAIN, FLAT_INLINE = 0, 2

    def __init__(self, fd: int):
        super().__init__(fd)
        sb = self._pread(128, EROFS_SUPER_OFFSET)
        magic, _csum, _compat, self.blkszbits, _extslots, self.root_nid = struct.unpack('<IIIBBH', sb[:16])
        if magic != EROFS_MAGIC:
            raise ImageError('not an erofs image')
        if not 9 <= self.blkszbits <= 16:
            raise ImageError('corrupt erofs superblock (block size bits %d)' % self.blkszbits)
        self.blksz = 1 << self.blkszbits
        (blocks, self.meta_blkaddr, self.xattr_blkaddr) = struct.unpack('<III', sb[36:48])
        if blocks * self.blksz > self.size:
            raise ImageError('truncated erofs image: %d blocks of %d bytes, but the file has %d bytes'
                             % (blocks, self.blksz, self.size))

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
        if inode['layout'] == self.FLAT_PLAIN:
            return self._pread(size, inode['blk'] * self.blksz)
        if inode['layout'] == self.FLAT_INLINE:
            full = size // self.blksz * self.blksz
            head = self._pread(full, inode['blk'] * self.blksz) if full else b''
            return head + self._pread(size - full, inode['inline'])
        raise UnsupportedImage('erofs data layout %d (compressed or chunked) is not supported by the '
                               'built-in reader' % inode['layout'])

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

    def _xattr_entry(self, pos: int) -> tuple[bytes, bytes, int]:
        """(full name, value, size of the entry aligned to 4) of the entry at ``pos``."""
        name_len, index, vsize = struct.unpack('<BBH', self._pread(4, pos))
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


def open_image(fd: int) -> _Reader:
    """Return a reader for an open image file descriptor."""
    kind = detect(fd)
    if kind == 'squashfs':
        return Squashfs(fd)
    if kind == 'erofs':
        return Erofs(fd)
    if kind == 'gpt':
        raise UnsupportedImage('GPT disk images (DDIs) cannot be read without mounting them')
    raise ImageError('not a squashfs, erofs or GPT disk image (unknown magic)')
