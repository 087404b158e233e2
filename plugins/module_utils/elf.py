# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the dynamic loader reads in an ELF object: its architecture, the libraries it needs
(``DT_NEEDED``), its ``DT_SONAME``, ``DT_RUNPATH`` and ``DT_RPATH``, and the symbol versions
it needs from each library (``.gnu.version_r``, through ``DT_VERNEED``).

Read from the program headers and the dynamic segment only, as ``ld.so`` does (section headers
may be stripped), for 32- and 64-bit objects of either byte order. Standard library only, so
that it runs wherever the controller's Python does; ``readelf`` (binutils) is not needed.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

MAGIC = b'\x7fELF'
MAX_SIZE = 1 << 30            # an object larger than this is not a shared library we bundle
ET_EXEC, ET_DYN = 2, 3
PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 14, 15, 29
DT_VERNEED, DT_VERNEEDNUM = 0x6ffffffe, 0x6fffffff
MAX_VERNEED = 4096            # entries of a verneed chain followed before it is called corrupt

# systemd's architecture names (src/basic/architecture.h) by (e_machine, bits, little endian);
# None for the bits or the byte order matches either.
_ARCH = [
    (62, 64, True, 'x86-64'), (3, 32, True, 'x86'),
    (183, 64, True, 'arm64'), (183, 64, False, 'arm64-be'), (40, 32, True, 'arm'), (40, 32, False, 'arm-be'),
    (21, 64, True, 'ppc64-le'), (21, 64, False, 'ppc64'), (20, 32, False, 'ppc'), (20, 32, True, 'ppc-le'),
    (22, 64, False, 's390x'), (22, 32, False, 's390'),
    (243, 64, True, 'riscv64'), (243, 32, True, 'riscv32'), (258, 64, True, 'loongarch64'),
    (8, 64, True, 'mips64-le'), (8, 64, False, 'mips64'), (8, 32, True, 'mips-le'), (8, 32, False, 'mips'),
    (43, 64, False, 'sparc64'), (2, 32, False, 'sparc'), (50, 64, True, 'ia64'),
    (15, 64, False, 'parisc64'), (15, 32, False, 'parisc'), (4, 32, False, 'm68k'),
    (0x9026, 64, True, 'alpha'),
]
_GLIBC_VERSION = re.compile(r'^GLIBC_([0-9]+(?:\.[0-9]+)+)$')


class ElfError(Exception):
    """Not an ELF object, or one whose dynamic section cannot be read."""


@dataclass(frozen=True)
class Elf:
    path: str
    bits: int                      # 32 or 64
    little: bool                   # byte order
    machine: int                   # e_machine
    type: int                      # e_type: ET_EXEC, ET_DYN, ...
    interp: str | None = None      # PT_INTERP, the program interpreter of an executable
    needed: tuple = ()             # DT_NEEDED, in order
    soname: str | None = None
    runpath: str | None = None
    rpath: str | None = None
    versions: dict = field(default_factory=dict)   # needed file -> tuple of version names (verneed)

    @property
    def architecture(self) -> str | None:
        """systemd's name of the architecture (x86-64, arm64, ...), None when unknown."""
        for machine, bits, little, name in _ARCH:
            if machine == self.machine and bits == self.bits and little == self.little:
                return name
        return None

    @property
    def dynamic(self) -> bool:
        return self.type in (ET_EXEC, ET_DYN)

    def glibc_versions(self, libraries=None) -> list[tuple]:
        """The ``GLIBC_x.y[.z]`` symbol versions this object needs, as sorted tuples; from the
        libraries for which ``libraries(name)`` is true (default all)."""
        out = set()
        for lib, names in self.versions.items():
            if libraries is not None and not libraries(lib):
                continue
            for n in names:
                m = _GLIBC_VERSION.match(n)
                if m:
                    out.add(tuple(int(x) for x in m.group(1).split('.')))
        return sorted(out)


def is_elf(path: str) -> bool:
    try:
        with open(path, 'rb') as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def version_text(v: tuple | None) -> str | None:
    return '.'.join(str(x) for x in v) if v else None


class _Reader:
    def __init__(self, path: str, data: bytes):
        self.path, self.data = path, data
        if len(data) < 52 or data[:4] != MAGIC:
            raise ElfError('%s is not an ELF object' % path)
        cls, enc = data[4], data[5]
        if cls not in (1, 2) or enc not in (1, 2):
            raise ElfError('%s: unknown ELF class %d or data encoding %d' % (path, cls, enc))
        self.bits = 32 if cls == 1 else 64
        self.little = enc == 1
        self.end = '<' if self.little else '>'
        self.word = 'I' if self.bits == 32 else 'Q'

    def unpack(self, fmt: str, off: int) -> tuple:
        fmt = self.end + fmt
        size = struct.calcsize(fmt)
        if off < 0 or off + size > len(self.data):
            raise ElfError('%s is truncated or corrupt (a structure at byte %d is past its end)' % (self.path, off))
        return struct.unpack_from(fmt, self.data, off)

    def cstring(self, off: int, limit: int | None = None) -> str:
        end = self.data.find(b'\0', off, limit if limit is not None else len(self.data))
        if off < 0 or off >= len(self.data) or end < 0:
            raise ElfError('%s: a string at byte %d is not terminated' % (self.path, off))
        return self.data[off:end].decode('utf-8', 'surrogateescape')


def _program_headers(r: _Reader) -> tuple[int, int, list]:
    w = r.word
    e_type, e_machine = r.unpack('HH', 16)
    if r.bits == 32:
        phoff, = r.unpack('I', 28)
        phentsize, phnum = r.unpack('HH', 42)
    else:
        phoff, = r.unpack('Q', 32)
        phentsize, phnum = r.unpack('HH', 54)
    phdrs = []
    for i in range(phnum):
        off = phoff + i * phentsize
        if r.bits == 32:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = r.unpack('IIIII', off)
        else:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = r.unpack('II' + w * 4, off)
        phdrs.append((p_type, p_offset, p_vaddr, p_filesz))
    return e_type, e_machine, phdrs


def _offset(r: _Reader, loads: list, vaddr: int) -> int:
    """The file offset of a virtual address, through the PT_LOAD segments."""
    for _t, p_offset, p_vaddr, p_filesz in loads:
        if p_vaddr <= vaddr < p_vaddr + p_filesz:
            return vaddr - p_vaddr + p_offset
    raise ElfError('%s: address 0x%x of its dynamic section is in no loaded segment' % (r.path, vaddr))


def _verneed(r: _Reader, off: int, count: int, strtab: int, strsz: int) -> dict:
    out: dict = {}
    for _entry in range(min(count, MAX_VERNEED)):
        _vn_version, vn_cnt, vn_file, vn_aux, vn_next = r.unpack('HHIII', off)
        names = []
        aux = off + vn_aux
        for _aux in range(min(vn_cnt, MAX_VERNEED)):
            _hash, _flags, _other, vna_name, vna_next = r.unpack('IHHII', aux)
            names.append(r.cstring(strtab + vna_name, strtab + strsz))
            if not vna_next:
                break
            aux += vna_next
        fname = r.cstring(strtab + vn_file, strtab + strsz)
        out[fname] = tuple(out.get(fname, ()) + tuple(names))
        if not vn_next:
            break
        off += vn_next
    return out


def parse(path: str, data: bytes) -> Elf:
    """The dynamic-linking facts of the ELF object ``data`` (read from ``path``)."""
    r = _Reader(path, data)
    e_type, machine, phdrs = _program_headers(r)
    loads = [p for p in phdrs if p[0] == PT_LOAD]
    interp = None
    dyn = None
    for p_type, p_offset, _vaddr, p_filesz in phdrs:
        if p_type == PT_INTERP:
            interp = r.cstring(p_offset, p_offset + p_filesz)
        elif p_type == PT_DYNAMIC:
            dyn = (p_offset, p_filesz)
    if dyn is None:
        return Elf(path, r.bits, r.little, machine, e_type, interp)
    entries = []
    esize = 8 if r.bits == 32 else 16
    for i in range(dyn[1] // esize):
        tag, val = r.unpack(r.word * 2, dyn[0] + i * esize)
        if tag == DT_NULL:
            break
        entries.append((tag, val))
    tags: dict = {}
    for tag, val in entries:
        tags.setdefault(tag, val)
    if DT_STRTAB not in tags:
        raise ElfError('%s has a dynamic section without a string table' % path)
    strtab = _offset(r, loads, tags[DT_STRTAB])
    strsz = tags.get(DT_STRSZ, len(data) - strtab)
    if strtab + strsz > len(data):
        raise ElfError('%s: its dynamic string table runs past the end of the file' % path)

    def string(val: int) -> str:
        if val >= strsz:
            raise ElfError('%s: a dynamic entry points outside the string table' % path)
        return r.cstring(strtab + val, strtab + strsz)

    needed = tuple(string(v) for t, v in entries if t == DT_NEEDED)
    soname = string(tags[DT_SONAME]) if DT_SONAME in tags else None
    runpath = string(tags[DT_RUNPATH]) if DT_RUNPATH in tags else None
    rpath = string(tags[DT_RPATH]) if DT_RPATH in tags else None
    versions = {}
    if DT_VERNEED in tags:
        versions = _verneed(r, _offset(r, loads, tags[DT_VERNEED]), tags.get(DT_VERNEEDNUM, MAX_VERNEED),
                            strtab, strsz)
    return Elf(path, r.bits, r.little, machine, e_type, interp, needed, soname, runpath, rpath, versions)


def read(path: str) -> Elf:
    try:
        with open(path, 'rb') as f:
            data = f.read(MAX_SIZE + 1)
    except OSError as e:
        raise ElfError('cannot read %s: %s' % (path, e.strerror)) from None
    if len(data) > MAX_SIZE:
        raise ElfError('%s is larger than %d bytes' % (path, MAX_SIZE))
    return parse(path, data)
