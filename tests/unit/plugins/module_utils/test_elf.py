# -*- coding: utf-8 -*-
"""elf.py: the dynamic section of real binaries of this machine, compared with readelf
(binutils) where it is installed, and of synthetic 32-bit and big-endian objects built here;
truncated and foreign files refused with a message."""

import glob
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import elf


def real_objects():
    """A few dynamic ELF objects of this machine: the Python running the tests, libc, libz, ..."""
    paths = [os.path.realpath(sys.executable)]
    for pattern in ('/lib/*-linux-gnu/libc.so.6', '/lib/*-linux-gnu/libz.so.1', '/usr/lib/*-linux-gnu/libssl.so.3',
                    '/usr/lib/python3*/lib-dynload/_ssl.*.so', '/bin/ls', '/usr/bin/python3.*'):
        paths += sorted(glob.glob(pattern))[:1]
    out = []
    for p in paths:
        p = os.path.realpath(p)
        if p not in out and elf.is_elf(p):
            out.append(p)
    return out


def readelf(path):
    """(needed, soname, runpath, rpath, {file: [version names]}) as readelf prints them."""
    dyn = subprocess.run(['readelf', '-dW', path], capture_output=True, text=True, check=True).stdout
    ver = subprocess.run(['readelf', '-VW', path], capture_output=True, text=True, check=True).stdout

    def tag(name):
        return re.findall(r'\(%s\)\s+[^\[]*\[([^\]]*)\]' % name, dyn)
    versions, current = {}, None
    section = ver.split("'.gnu.version_r'", 1)[1] if "'.gnu.version_r'" in ver else ''
    for line in section.splitlines():
        m = re.search(r'File: (\S+)', line)
        if m:
            current = m.group(1)
            versions.setdefault(current, [])
        m = re.search(r'Name: (\S+)', line)
        if m and current:
            versions[current].append(m.group(1))
    return (tuple(tag('NEEDED')), (tag('SONAME') or [None])[0], (tag('RUNPATH') or [None])[0],
            (tag('RPATH') or [None])[0], versions)


@pytest.mark.parametrize('path', real_objects())
def test_real_objects_read_as_readelf_reads_them(path):
    if not shutil.which('readelf'):
        pytest.skip('readelf (binutils) is not installed')
    got = elf.read(path)
    needed, soname, runpath, rpath, versions = readelf(path)
    assert got.needed == needed
    assert got.soname == soname and got.runpath == runpath and got.rpath == rpath
    assert {k: sorted(v) for k, v in got.versions.items()} == {k: sorted(v) for k, v in versions.items()}
    assert got.dynamic and got.bits == 64 and got.little


def test_the_architecture_of_this_machine():
    from ansible_collections.tucked.sysext.plugins.module_utils.release import native_architecture
    assert elf.read(os.path.realpath(sys.executable)).architecture == native_architecture()


def test_an_executable_names_its_loader_and_libc_its_soname():
    exe = elf.read(os.path.realpath(sys.executable))
    assert exe.interp and os.path.basename(exe.interp).startswith('ld')
    libc = next(p for p in real_objects() if os.path.basename(p).startswith('libc.so'))
    lib = elf.read(libc)
    assert lib.soname == 'libc.so.6'
    # libc needs versions of the dynamic loader only, and its GLIBC versions are glibc's own
    assert list(lib.versions) and all(k.startswith('ld') for k in lib.versions)
    newest = lib.glibc_versions()[-1]
    assert newest[0] == 2 and newest <= tuple(int(x) for x in os.confstr('CS_GNU_LIBC_VERSION').split()[1].split('.'))


def test_glibc_versions_filtered_by_library():
    o = elf.Elf('x', 64, True, 62, elf.ET_DYN, versions={
        'libc.so.6': ('GLIBC_2.2.5', 'GLIBC_2.34', 'GLIBC_PRIVATE'), 'libz.so.1': ('ZLIB_1.2.9',),
        'libfoo.so.1': ('GLIBC_2.99',)})
    assert o.glibc_versions() == [(2, 2, 5), (2, 34), (2, 99)]
    assert o.glibc_versions(lambda n: n == 'libc.so.6') == [(2, 2, 5), (2, 34)]
    assert elf.version_text((2, 2, 5)) == '2.2.5' and elf.version_text(None) is None


# ----------------------------------------------------------------------------- synthetic objects
def build_elf(bits, little, machine, needed=(), soname=None, runpath=None, verneed=None):
    """A minimal dynamic ELF object: header, PT_LOAD over the whole file, PT_DYNAMIC, a string
    table and a verneed chain; addresses are file offsets + 0x1000."""
    e = '<' if little else '>'
    w = 'I' if bits == 32 else 'Q'
    base = 0x1000
    ehsize = 52 if bits == 32 else 64
    phentsize = 32 if bits == 32 else 56
    strtab = b'\0'
    offs = {}

    def s(text):
        nonlocal strtab
        if text not in offs:
            offs[text] = len(strtab)
            strtab += text.encode() + b'\0'
        return offs[text]
    dyn = [(elf.DT_NEEDED, s(n)) for n in needed]
    if soname:
        dyn.append((elf.DT_SONAME, s(soname)))
    if runpath:
        dyn.append((elf.DT_RUNPATH, s(runpath)))
    vn = b''
    if verneed:
        files = list(verneed.items())
        for i, (fname, names) in enumerate(files):
            aux = b''
            for j, n in enumerate(names):
                aux += struct.pack(e + 'IHHII', 0, 0, 0, s(n), 16 if j + 1 < len(names) else 0)
            nxt = 16 + len(aux) if i + 1 < len(files) else 0
            vn += struct.pack(e + 'HHIII', 1, len(names), s(fname), 16, nxt) + aux
    phoff = ehsize
    dyn_off = phoff + 2 * phentsize
    nd = len(dyn) + 3 + (2 if verneed else 0)
    esize = 8 if bits == 32 else 16
    str_off = dyn_off + nd * esize
    vn_off = str_off + len(strtab)
    dyn += [(elf.DT_STRTAB, base + str_off), (elf.DT_STRSZ, len(strtab))]
    if verneed:
        dyn += [(elf.DT_VERNEED, base + vn_off), (elf.DT_VERNEEDNUM, len(verneed))]
    dyn.append((elf.DT_NULL, 0))
    size = vn_off + len(vn)
    ident = b'\x7fELF' + bytes([1 if bits == 32 else 2, 1 if little else 2, 1]) + b'\0' * 9
    if bits == 32:
        hdr = ident + struct.pack(e + 'HHIIIIIHHHHHH', elf.ET_DYN, machine, 1, 0, phoff, 0, 0, ehsize, phentsize, 2,
                                  40, 0, 0)
        ph = struct.pack(e + 'IIIIIIII', elf.PT_LOAD, 0, base, base, size, size, 5, 0x1000)
        ph += struct.pack(e + 'IIIIIIII', elf.PT_DYNAMIC, dyn_off, base + dyn_off, base + dyn_off, nd * esize,
                          nd * esize, 6, 4)
    else:
        hdr = ident + struct.pack(e + 'HHIQQQIHHHHHH', elf.ET_DYN, machine, 1, 0, phoff, 0, 0, ehsize, phentsize, 2,
                                  64, 0, 0)
        ph = struct.pack(e + 'IIQQQQQQ', elf.PT_LOAD, 5, 0, base, base, size, size, 0x1000)
        ph += struct.pack(e + 'IIQQQQQQ', elf.PT_DYNAMIC, 6, dyn_off, base + dyn_off, base + dyn_off, nd * esize,
                          nd * esize, 8)
    body = b''.join(struct.pack(e + w + w, t, v) for t, v in dyn)
    data = hdr + ph + body + strtab + vn
    assert len(data) == size
    return data


@pytest.mark.parametrize('bits,little,machine,arch', [
    (32, True, 40, 'arm'), (64, False, 22, 's390x'), (32, False, 20, 'ppc'), (64, True, 183, 'arm64'),
    (64, False, 21, 'ppc64'), (64, True, 21, 'ppc64-le'), (64, True, 243, 'riscv64'), (32, True, 3, 'x86'),
])
def test_synthetic_objects_of_other_classes_and_byte_orders(bits, little, machine, arch):
    data = build_elf(bits, little, machine, needed=('libz.so.1', 'libc.so.6'), soname='libfoo.so.2',
                     runpath='$ORIGIN/../lib',
                     verneed={'libc.so.6': ('GLIBC_2.17', 'GLIBC_2.34'), 'libz.so.1': ('ZLIB_1.2.3',)})
    got = elf.parse('synthetic', data)
    assert (got.bits, got.little, got.architecture) == (bits, little, arch)
    assert got.needed == ('libz.so.1', 'libc.so.6') and got.soname == 'libfoo.so.2'
    assert got.runpath == '$ORIGIN/../lib' and got.rpath is None and got.interp is None
    assert got.versions == {'libc.so.6': ('GLIBC_2.17', 'GLIBC_2.34'), 'libz.so.1': ('ZLIB_1.2.3',)}
    assert got.glibc_versions() == [(2, 17), (2, 34)]


def test_an_unknown_machine_has_no_architecture_name():
    assert elf.parse('x', build_elf(64, True, 0x7777)).architecture is None


def test_no_dynamic_segment_is_a_static_object():
    data = bytearray(build_elf(64, True, 62, needed=('libc.so.6',)))
    # turn PT_DYNAMIC into PT_NOTE
    struct.pack_into('<I', data, 64 + 56, 4)
    got = elf.parse('static', bytes(data))
    assert got.needed == () and got.versions == {}


@pytest.mark.parametrize('cut', [10, 40, 70, 140])
def test_truncated_objects_are_refused_with_the_path(cut):
    data = build_elf(64, True, 62, needed=('libz.so.1',), verneed={'libc.so.6': ('GLIBC_2.34',)})
    with pytest.raises(elf.ElfError, match='cut.so'):
        elf.parse('cut.so', data[:cut])


def test_not_elf(tmp_path):
    p = tmp_path / 'script'
    p.write_text('#!/bin/sh\n')
    assert not elf.is_elf(str(p)) and not elf.is_elf(str(tmp_path / 'missing'))
    with pytest.raises(elf.ElfError, match='not an ELF object'):
        elf.read(str(p))
    with pytest.raises(elf.ElfError, match='cannot read'):
        elf.read(str(tmp_path / 'missing'))


def test_a_string_outside_the_table_is_refused():
    data = bytearray(build_elf(64, True, 62, needed=('libz.so.1',)))
    # the DT_NEEDED value (first dynamic entry, after the header and two program headers)
    struct.pack_into('<Q', data, 64 + 2 * 56 + 8, 10 ** 6)
    with pytest.raises(elf.ElfError, match='outside the string table'):
        elf.parse('bad', bytes(data))
