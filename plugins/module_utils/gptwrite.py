# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Writing a GPT disk image laid out as systemd-repart 262 lays out a new one (libfdisk's
defaults): 512-byte sectors, a protective MBR, the primary header at sector 1 with 128 entries
of 128 bytes behind it, the first partition at the first 4096-byte boundary after them
(sector 40), every partition starting and ending on a 4096-byte boundary, and the backup
entries and header in the last 33 sectors. Everything written is a function of the
arguments, so the same partitions give the same bytes."""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from typing import NamedTuple

SECTOR = 512
ENTRIES = 128
ENTRY_SIZE = 128
GRAIN = 4096
SIGNATURE = b'EFI PART'
REVISION = 0x00010000
HEADER_SIZE = 92
ENTRY_SECTORS = ENTRIES * ENTRY_SIZE // SECTOR      # 32
CHUNK = 1 << 20


class Part(NamedTuple):
    type: str                   # type UUID
    uuid: str                   # unique partition UUID
    label: str                  # at most 36 UTF-16 code units
    size: int                   # bytes, a multiple of GRAIN
    flags: int = 0              # attribute bits
    source: str | None = None   # file whose bytes fill the partition (zero-padded); None: zeros
    data: bytes | None = None   # or the bytes themselves


def _round_up(v: int, m: int) -> int:
    return -(-v // m) * m


def layout(parts: list) -> tuple[list, int]:
    """The byte offset of each partition and the size of the image."""
    pos = _round_up((2 + ENTRY_SECTORS) * SECTOR, GRAIN)
    offsets = []
    for p in parts:
        if p.size <= 0 or p.size % GRAIN:
            raise ValueError('partition %s: size %d is not a positive multiple of %d' % (p.label, p.size, GRAIN))
        offsets.append(pos)
        pos += p.size
    return offsets, pos + (1 + ENTRY_SECTORS) * SECTOR


def entry(p: Part, first_lba: int) -> bytes:
    name = p.label.encode('utf-16-le')
    if len(name) > 72:
        raise ValueError('partition label %r is longer than 36 characters' % p.label)
    last_lba = first_lba + p.size // SECTOR - 1
    return (uuid.UUID(p.type).bytes_le + uuid.UUID(p.uuid).bytes_le + struct.pack('<QQQ', first_lba, last_lba, p.flags)
            + name.ljust(72, b'\0'))


def header(my_lba: int, alt_lba: int, entries_lba: int, sectors: int, disk_uuid: str, table_crc: int) -> bytes:
    first_usable = 2 + ENTRY_SECTORS
    last_usable = sectors - 2 - ENTRY_SECTORS
    raw = bytearray(struct.pack('<8sIIIIQQQQ16sQIII', SIGNATURE, REVISION, HEADER_SIZE, 0, 0, my_lba, alt_lba,
                                first_usable, last_usable, uuid.UUID(disk_uuid).bytes_le, entries_lba, ENTRIES,
                                ENTRY_SIZE, table_crc))
    struct.pack_into('<I', raw, 16, zlib.crc32(bytes(raw)))
    return bytes(raw).ljust(SECTOR, b'\0')


def protective_mbr(sectors: int) -> bytes:
    """One partition of type 0xEE from sector 1 over the whole disk (capped at 2^32-1 sectors)."""
    mbr = bytearray(SECTOR)
    struct.pack_into('<B3sB3sII', mbr, 446, 0, b'\x00\x02\x00', 0xEE, b'\xff\xff\xff', 1,
                     min(sectors - 1, 0xFFFFFFFF))
    mbr[510:512] = b'\x55\xaa'
    return bytes(mbr)


def metadata(parts: list, offsets: list, total: int, disk_uuid: str) -> dict:
    """{byte offset: bytes} of the protective MBR, both headers and both entry arrays."""
    sectors = total // SECTOR
    table = b''.join(entry(p, off // SECTOR) for p, off in zip(parts, offsets)).ljust(ENTRIES * ENTRY_SIZE, b'\0')
    crc = zlib.crc32(table)
    backup_entries = sectors - 1 - ENTRY_SECTORS
    return {0: protective_mbr(sectors),
            SECTOR: header(1, sectors - 1, 2, sectors, disk_uuid, crc),
            2 * SECTOR: table,
            backup_entries * SECTOR: table,
            (sectors - 1) * SECTOR: header(sectors - 1, 1, backup_entries, sectors, disk_uuid, crc)}


def _copy_into(fd: int, source: str, offset: int, limit: int) -> None:
    """Copy ``source`` to ``offset`` of ``fd``, leaving all-zero chunks unwritten (holes)."""
    with open(source, 'rb') as f:
        pos = 0
        while pos < limit:
            chunk = f.read(min(CHUNK, limit - pos))
            if not chunk:
                break
            if chunk.count(0) != len(chunk):
                view = memoryview(chunk)
                done = 0
                while done < len(view):
                    done += os.pwrite(fd, view[done:], offset + pos + done)
            pos += len(chunk)
        if f.read(1):
            raise ValueError('%s is larger than its partition (%d bytes)' % (source, limit))


def write(path: str, parts: list, disk_uuid: str) -> list:
    """Create the image ``path`` (which must not exist) holding ``parts``; returns their offsets."""
    offsets, total = layout(parts)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, total)
        for off, blob in metadata(parts, offsets, total, disk_uuid).items():
            os.pwrite(fd, blob, off)
        for p, off in zip(parts, offsets):
            if p.source is not None:
                _copy_into(fd, p.source, off, p.size)
            elif p.data is not None:
                if len(p.data) > p.size:
                    raise ValueError('the data of partition %s is larger than the partition' % p.label)
                os.pwrite(fd, p.data, off)
        os.fsync(fd)
    finally:
        os.close(fd)
    return offsets
