# -*- coding: utf-8 -*-
"""pytree.py: the packages' trees merged, symlinks resolved inside them, the file list of the
relocated Python (kept, linked and dropped), glibc's libraries told from the others, and the
libraries of real binaries of this machine found and bundled, or named when missing."""

import glob
import os
import re
import shutil

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import elf, pytree
from ansible_collections.tucked.sysext.plugins.module_utils.buildtools import BuildError

P = pytree.PREFIX


def put(root, rel, content='x', link=None):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if link is not None:
        os.symlink(link, path)
    elif isinstance(content, bytes):
        with open(path, 'wb') as f:
            f.write(content)
    else:
        with open(path, 'w') as f:
            f.write(content)
    return path


def index_of(tmp_path, packages):
    idx = pytree.Index()
    for pkg, files in packages.items():
        root = str(tmp_path / pkg)
        os.makedirs(root, exist_ok=True)
        for rel, spec in files.items():
            if isinstance(spec, tuple):
                put(root, rel, link=spec[1])
            elif spec is None:
                os.makedirs(os.path.join(root, rel), exist_ok=True)
            else:
                put(root, rel, spec)
        idx.add(pkg, root)
    return idx


# ----------------------------------------------------------------------------- glibc
@pytest.mark.parametrize('name', ['libc.so.6', 'libm.so.6', 'libpthread.so.0', 'libdl.so.2', 'librt.so.1',
                                  'libutil.so.1', 'libresolv.so.2', 'libanl.so.1', 'libnsl.so.1', 'libmvec.so.1',
                                  'libnss_files.so.2', 'libnss_dns.so.2', 'ld-linux-x86-64.so.2',
                                  'ld-linux-aarch64.so.1', 'ld-linux-armhf.so.3', 'ld64.so.2', 'ld64.so.1',
                                  'ld-linux-riscv64-lp64d.so.1', 'ld-linux.so.2', 'libthread_db.so.1', 'libc.so.6.1'])
def test_glibc_libraries(name):
    assert pytree.is_glibc(name)


@pytest.mark.parametrize('name', ['libnsl.so.2', 'libcrypt.so.1', 'libz.so.1', 'libssl.so.3', 'libcrypto.so.3',
                                  'libmagic.so.1', 'libmpdec.so.3', 'libc++.so.1', 'libcap.so.2', 'libgcc_s.so.1',
                                  'libdb-5.3.so', 'libldap.so.2', 'libmd.so.0'])
def test_other_libraries_are_bundled(name):
    assert not pytree.is_glibc(name)


def test_the_glibc_list_matches_the_libraries_libc6_ships():
    """Every shared library of this machine's glibc (its libc6 package) counts as glibc's."""
    listing = '/var/lib/dpkg/info/libc6:amd64.list'
    if not os.path.exists(listing):
        pytest.skip('no dpkg listing of libc6:amd64 here')
    with open(listing) as f:
        names = {os.path.basename(p.strip()) for p in f if '.so' in p and '/gconv/' not in p and '/audit/' not in p}
    names = {n for n in names if re.search(r'\.so(\.[0-9.]+)?$', n)}
    assert names and all(pytree.is_glibc(n) for n in names), sorted(n for n in names if not pytree.is_glibc(n))


# ----------------------------------------------------------------------------- index
def test_resolve_follows_links_inside_the_merged_tree(tmp_path):
    idx = index_of(tmp_path, {
        'a': {'usr/lib/x/libz.so.1': ('l', 'libz.so.1.2.13'), 'usr/lib/x/libz.so.1.2.13': 'z',
              'usr/share/doc/a': ('l', 'b'), 'lib/abs': ('l', '/usr/lib/x/libz.so.1'),
              'usr/lib/up': ('l', '../lib/x/./libz.so.1'), 'loop1': ('l', 'loop2'), 'loop2': ('l', 'loop1'),
              'dangling': ('l', 'nowhere')},
        'b': {'usr/share/doc/b/copyright': 'c'},
    })
    assert idx.resolve('usr/lib/x/libz.so.1') == 'usr/lib/x/libz.so.1.2.13'
    assert idx.resolve('lib/abs') == 'usr/lib/x/libz.so.1.2.13'
    assert idx.resolve('usr/lib/up') == 'usr/lib/x/libz.so.1.2.13'
    # a link to a directory of another package, then a file in it
    assert idx.file('usr/share/doc/a/copyright').package == 'b'
    assert idx.resolve('loop1') is None and idx.resolve('dangling') is None
    assert idx.resolve('usr/lib/x/libz.so.1.2.13/below') is None
    assert idx.file('usr/lib') is None


def test_packages_may_share_directories_and_identical_files_only(tmp_path):
    idx = index_of(tmp_path, {'a': {'usr/lib/same': 's', 'usr/lib/l': ('l', 't')},
                              'b': {'usr/lib/same': 's', 'usr/lib/l': ('l', 't')}})
    assert idx.nodes['usr/lib/same'].package == 'a'
    put(str(tmp_path / 'c'), 'usr/lib/same', 'other')
    with pytest.raises(BuildError, match='the packages a and c both ship /usr/lib/same'):
        idx.add('c', str(tmp_path / 'c'))


# ----------------------------------------------------------------------------- the file list
def stdlib_packages():
    return {
        'python3.11-minimal': {'usr/bin/python3.11': 'bin', 'usr/share/man/man1/python3.11.1': 'man'},
        'libpython3.11-minimal': {
            'usr/lib/python3.11/os.py': 'os', 'usr/lib/python3.11/encodings/__init__.py': 'e',
            'usr/lib/python3.11/sitecustomize.py': ('l', '/etc/python3.11/sitecustomize.py'),
            'etc/python3.11/sitecustomize.py': 'apport',
            'usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so': 'elf',
            'usr/lib/python3.11/_sysconfigdata__x86_64-linux-gnu.py': 'cfg'},
        'libpython3.11-stdlib': {
            'usr/lib/python3.11/_sysconfigdata__linux_x86_64-linux-gnu.py': ('l', '_sysconfigdata__x86_64-linux-gnu.py'),
            'usr/lib/python3.11/test/__init__.py': 't', 'usr/lib/python3.11/test/support/__init__.py': 't',
            'usr/lib/python3.11/ctypes/__init__.py': 'c', 'usr/lib/python3.11/ctypes/test/test_x.py': 't',
            'usr/lib/python3.11/idlelib/idle.py': 'i', 'usr/lib/python3.11/turtle.py': 't',
            'usr/lib/python3.11/ensurepip/__init__.py': 'e', 'usr/lib/python3.11/ensurepip/_bundled/pip.whl': 'w',
            'usr/lib/python3.11/lib-dynload/_testcapi.cpython-311-x86_64-linux-gnu.so': 't',
            'usr/lib/python3.11/lib-dynload/xxlimited_35.cpython-311-x86_64-linux-gnu.so': 't',
            'usr/lib/python3.11/lib-dynload/_json.cpython-311-x86_64-linux-gnu.so': 'j',
            'usr/lib/python3.11/outside.py': ('l', '../../share/x.py'), 'usr/share/x.py': 'x',
            'usr/lib/python3.11/EXTERNALLY-MANAGED': 'm'},
    }


def test_the_file_list(tmp_path):
    lay = pytree.select(index_of(tmp_path, stdlib_packages()), 11)
    lib = P + '/lib/python3.11/'
    assert sorted(lay.files) == sorted([
        P + '/bin/python3.11', lib + 'os.py', lib + 'encodings/__init__.py',
        lib + 'lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so', lib + '_sysconfigdata__x86_64-linux-gnu.py',
        lib + 'ctypes/__init__.py', lib + 'ensurepip/__init__.py', lib + 'EXTERNALLY-MANAGED',
        lib + 'lib-dynload/_json.cpython-311-x86_64-linux-gnu.so'])
    assert lay.links == {lib + '_sysconfigdata__linux_x86_64-linux-gnu.py': '_sysconfigdata__x86_64-linux-gnu.py'}
    # bin/python3 is the launcher of the binary (test_pylauncher.py runs it)
    assert list(lay.scripts) == [P + '/bin/python3']
    assert lay.scripts[P + '/bin/python3'].startswith('#!/bin/sh\n')
    assert lay.scripts[P + '/bin/python3'].endswith('\nexec /%s/bin/python3.11 "$@"\n' % P)
    assert sorted(lay.dropped) == sorted([
        lib + 'sitecustomize.py', lib + 'test', lib + 'ctypes/test', lib + 'idlelib', lib + 'turtle.py',
        lib + 'ensurepip/_bundled', lib + 'lib-dynload/_testcapi.cpython-311-x86_64-linux-gnu.so',
        lib + 'lib-dynload/xxlimited_35.cpython-311-x86_64-linux-gnu.so', lib + 'outside.py'])
    assert all(p.startswith(P + '/') for p in list(lay.files) + list(lay.links) + list(lay.scripts))
    assert lay.packages() == ['libpython3.11-minimal', 'libpython3.11-stdlib', 'python3.11-minimal']
    assert lay.binary == P + '/bin/python3.11' and lay.stdlib == 'usr/lib/python3.11'


def test_no_interpreter_or_no_stdlib_is_named(tmp_path):
    pk = stdlib_packages()
    with pytest.raises(BuildError, match=r'/usr/bin/python3.12, the interpreter'):
        pytree.select(index_of(tmp_path / 'a', pk), 12)
    del pk['libpython3.11-minimal'], pk['libpython3.11-stdlib']
    with pytest.raises(BuildError, match=r'/usr/lib/python3.11, the standard library; add libpython3.11-minimal'):
        pytree.select(index_of(tmp_path / 'b', pk), 11)


@pytest.mark.parametrize('image_path,want', [
    (P + '/bin/python3.11', '$ORIGIN/../lib'),
    (P + '/lib/python3.11/lib-dynload/_ssl.so', '$ORIGIN/../..'),
    (P + '/lib/libssl.so.3', '$ORIGIN'),
])
def test_runpath(image_path, want):
    assert pytree.runpath(image_path) == want


# ----------------------------------------------------------------------------- libraries (real ones)
def machine_lib(name):
    for d in glob.glob('/lib/*-linux-gnu') + glob.glob('/usr/lib/*-linux-gnu'):
        p = os.path.join(d, name)
        if os.path.exists(p):
            return os.path.realpath(p), os.path.basename(d)
    pytest.skip('%s is not on this machine' % name)


def debian_python():
    exe = sorted(glob.glob('/usr/bin/python3.[0-9]*'))
    exe = [p for p in exe if os.path.basename(p).replace('python3.', '').isdigit() and elf.is_elf(p)]
    if not exe:
        pytest.skip("no Debian python3.X binary here")
    got = elf.read(exe[0])
    if 'libz.so.1' not in got.needed or 'libexpat.so.1' not in got.needed:
        pytest.skip('%s does not link libz and libexpat' % exe[0])
    return exe[0]


def real_tree(tmp_path, with_expat=True):
    exe = debian_python()
    minor = int(os.path.basename(exe).split('.')[1])
    libz, triplet = machine_lib('libz.so.1')
    libexpat = machine_lib('libexpat.so.1')[0]
    pk = {'python3.%d-minimal' % minor: {'usr/bin/python3.%d' % minor: None},
          'zlib1g': {'lib/%s/libz.so.1' % triplet: ('l', os.path.basename(libz)),
                     'lib/%s/%s' % (triplet, os.path.basename(libz)): None},
          'libexpat1': {'usr/lib/%s/libexpat.so.1' % triplet: None}}
    idx = pytree.Index()
    for pkg, files in pk.items():
        if pkg == 'libexpat1' and not with_expat:
            continue
        root = str(tmp_path / pkg)
        for rel, spec in files.items():
            dst = os.path.join(root, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if isinstance(spec, tuple):
                os.symlink(spec[1], dst)
            else:
                src = {'python3': exe, 'libz.so': libz, 'libexpa': libexpat}[
                    next(k for k in ('python3', 'libz.so', 'libexpa') if k in os.path.basename(rel))]
                shutil.copyfile(src, dst)
        os.makedirs(os.path.join(root, 'usr/lib/python3.%d' % minor), exist_ok=True)
        idx.add(pkg, root)
    return idx, minor, triplet


def test_the_libraries_of_a_real_interpreter_are_found(tmp_path):
    idx, minor, triplet = real_tree(tmp_path)
    assert pytree.search_dirs(idx)[:2] == ['lib/' + triplet, 'usr/lib/' + triplet]
    lay = pytree.select(idx, minor)
    objects = {rel: elf.read(n.host) for rel, n in lay.files.items()}
    found = pytree.bundle(idx, lay, objects)
    assert sorted(lay.libs) == ['libexpat.so.1', 'libz.so.1']
    assert lay.libs['libz.so.1'].package == 'zlib1g' and lay.needed_by['libz.so.1'] == '/' + lay.binary
    assert sorted(found) == sorted([lay.binary, P + '/lib/libexpat.so.1', P + '/lib/libz.so.1'])
    assert lay.packages() == sorted(['libexpat1', 'python3.%d-minimal' % minor, 'zlib1g'])
    # glibc_min: the newest GLIBC_ version of any of them, as readelf would say
    newest = max(v[-1] for v in (o.glibc_versions(pytree.is_glibc) for o in found.values()) if v)
    assert pytree.glibc_min(found) == newest and newest >= (2, 2)
    assert pytree.private_glibc(found) == []


def test_a_missing_library_is_named_with_what_needs_it(tmp_path):
    idx, minor = real_tree(tmp_path, with_expat=False)[:2]
    lay = pytree.select(idx, minor)
    objects = {rel: elf.read(n.host) for rel, n in lay.files.items()}
    with pytest.raises(BuildError, match=r'/%s needs libexpat.so.1, which none of the debs ships' % lay.binary):
        pytree.bundle(idx, lay, objects)


def test_private_glibc_is_found():
    o = elf.Elf('x', 64, True, 62, elf.ET_DYN, versions={'libc.so.6': ('GLIBC_2.2.5', 'GLIBC_PRIVATE')})
    fine = elf.Elf('y', 64, True, 62, elf.ET_DYN, versions={'libfoo.so': ('GLIBC_PRIVATE',)})
    assert pytree.private_glibc({'usr/a': o, 'usr/b': fine}) == ['/usr/a']
    assert pytree.glibc_min({'usr/a': o, 'usr/b': fine}) == (2, 2, 5)
    assert pytree.glibc_min({'usr/b': fine}) is None
