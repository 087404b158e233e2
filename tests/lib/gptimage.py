# -*- coding: utf-8 -*-
"""GPT disk images for reader tests, written here from the UEFI specification (chapter 5)
and independent of the collection's own writer (plugins/module_utils/gptwrite.py), so that a
mistake shared by writer and reader cannot hide: protective MBR, primary header in sector 1
with 128 entries of 128 bytes behind it, partitions at 1 MiB boundaries, backup entries and
header at the end.

    image(parts, ss=512) -> (bytes of the image, [byte offset of each partition])
    write(path, parts, ss=512) -> [offsets]

``parts``: Part(type, label, data, flags=0, uuid=None) (uuid None: a fresh one).
"""

from __future__ import annotations

import binascii
import struct
import uuid as _uuid
from typing import NamedTuple

MIB = 1 << 20
N_ENTRIES = 128


class Part(NamedTuple):
    type: str
    label: str
    data: bytes
    flags: int = 0
    uuid: str | None = None


def _guid(text: str) -> bytes:
    # mixed endian: the first three fields little-endian, the rest as written
    u = _uuid.UUID(text)
    return u.bytes_le


def image(parts: list, ss: int = 512, disk_uuid: str | None = None) -> tuple[bytes, list]:
    entry_sectors = N_ENTRIES * 128 // ss
    offsets, pos = [], MIB
    for p in parts:
        offsets.append(pos)
        pos += -(-max(len(p.data), 1) // ss) * ss
        pos = -(-pos // MIB) * MIB
    sectors = pos // ss + entry_sectors + 1
    buf = bytearray(sectors * ss)
    rows = []
    for p, off in zip(parts, offsets):
        first = off // ss
        last = first + -(-max(len(p.data), 1) // ss) - 1
        name = p.label.encode('utf-16-le')[:72].ljust(72, b'\0')
        rows.append(_guid(p.type) + _guid(p.uuid or str(_uuid.uuid4())) + struct.pack('<QQQ', first, last, p.flags)
                    + name)
        buf[off:off + len(p.data)] = p.data
    table = b''.join(rows).ljust(N_ENTRIES * 128, b'\0')
    table_crc = binascii.crc32(table)
    disk = _guid(disk_uuid or str(_uuid.uuid4()))
    for here, other, at in ((1, sectors - 1, 2), (sectors - 1, 1, sectors - 1 - entry_sectors)):
        fields = [b'EFI PART', 0x10000, 92, 0, 0, here, other, 2 + entry_sectors, sectors - entry_sectors - 2, disk,
                  at, N_ENTRIES, 128, table_crc]
        hdr = struct.pack('<8sIIIIQQQQ16sQIII', *fields)
        fields[3] = binascii.crc32(hdr)
        buf[here * ss:here * ss + 92] = struct.pack('<8sIIIIQQQQ16sQIII', *fields)
        buf[at * ss:at * ss + len(table)] = table
    # protective MBR: one 0xEE partition from sector 1 over the disk
    buf[446:462] = bytes([0, 0, 2, 0, 0xEE, 0xFF, 0xFF, 0xFF]) + struct.pack('<II', 1, min(sectors - 1, 0xFFFFFFFF))
    buf[510:512] = b'\x55\xaa'
    return bytes(buf), offsets


def write(path, parts: list, ss: int = 512, disk_uuid: str | None = None) -> list:
    data, offsets = image(parts, ss, disk_uuid)
    with open(path, 'wb') as f:
        f.write(data)
    return offsets
