# -*- coding: utf-8 -*-
"""pyimage.py: the manifest (the contract's keys, stable text, read back from a real image),
the image path, RUNPATHs set with the real patchelf and read back, hash-based bytecode valid
for the Python that compiles it, and requests refused before anything is unpacked."""

import importlib.util
import json
import marshal
import os
import shutil
import stat
import sys

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import build, elf, pyimage, pytree
from ansible_collections.tucked.sysext.plugins.module_utils.buildtools import BuildError

from lib.debs import make_deb

P = pytree.PREFIX
CONTRACT = ('name', 'version', 'python_version', 'interpreter', 'glibc_min', 'architecture', 'packages')


def need(tool):
    if not shutil.which(tool) and not shutil.which(tool, path='/usr/sbin:/sbin'):
        pytest.skip('%s is not installed (scripts/bootstrap.sh debs)' % tool)


def sample_result():
    return pyimage.Result(name='tucked-python', version='3.11.2-6.deb12u9', python_version='3.11.2',
                          interpreter='/%s/bin/python3' % P, glibc_min='2.36', architecture='x86-64',
                          packages={'zlib1g': '1:1.2.13', 'python3.11-minimal': '3.11.2-6+deb12u9'})


def test_the_manifest_has_the_contract_keys_and_stable_text():
    m = sample_result().manifest()
    assert tuple(m) == CONTRACT
    text = pyimage.manifest_text(m)
    assert json.loads(text) == m and text.endswith('\n')
    assert text == pyimage.manifest_text(dict(reversed(list(m.items()))))     # key order never matters
    assert m['interpreter'] == '/usr/lib/tucked-sysext/python/bin/python3'


def test_the_manifest_is_read_back_from_a_real_image(tmp_path):
    need('mksquashfs')
    tree = tmp_path / 'tree'
    (tree / P).mkdir(parents=True)
    m = sample_result().manifest()
    (tree / P / pyimage.MANIFEST).write_text(pyimage.manifest_text(m))
    dest = tmp_path / 'tucked-python-1.raw'
    build.run(build.Options(src=str(tree), dest=str(dest), name='tucked-python', architecture='x86-64'))
    assert pyimage.read_manifest(str(dest)) == m
    assert pyimage.read_manifest(str(tmp_path / 'missing.raw')) is None
    (tmp_path / 'junk.raw').write_bytes(b'\0' * 8192)
    assert pyimage.read_manifest(str(tmp_path / 'junk.raw')) is None


def test_dest_path(tmp_path):
    assert pyimage.dest_path(str(tmp_path), 'tucked-python', '3.11.2-6.deb12u9') == str(
        tmp_path / 'tucked-python-3.11.2-6.deb12u9.raw')
    assert pyimage.dest_path('/srv/new/', 'py', '1') == '/srv/new/py-1.raw'
    assert pyimage.dest_path('/srv/x.raw', 'py', '1') == '/srv/x.raw'
    with pytest.raises(BuildError, match='must be an absolute path'):
        pyimage.dest_path('images/', 'py', '1')


def test_the_inputs_digest_depends_on_every_input():
    from ansible_collections.tucked.sysext.plugins.module_utils.pydebs import Deb
    a = [Deb('/x/a.deb', 'a', '1', 'amd64', '0' * 64)]
    base = pyimage.inputs_digest(a, {'format': 'squashfs'})
    assert base == pyimage.inputs_digest([Deb('/elsewhere/a.deb', 'a', '1', 'amd64', '0' * 64)], {'format': 'squashfs'})
    assert base != pyimage.inputs_digest([Deb('/x/a.deb', 'a', '1', 'amd64', '1' * 64)], {'format': 'squashfs'})
    assert base != pyimage.inputs_digest(a, {'format': 'erofs'})


# ----------------------------------------------------------------------------- patchelf
def test_runpaths_are_set_and_read_back(tmp_path):
    need('patchelf')
    libz = next((os.path.realpath(p) for p in ('/lib/x86_64-linux-gnu/libz.so.1', '/usr/lib/x86_64-linux-gnu/libz.so.1',
                                               '/lib/aarch64-linux-gnu/libz.so.1') if os.path.exists(p)), None)
    if libz is None:
        pytest.skip('no libz.so.1 here')
    exe = os.path.realpath(sys.executable)
    objects = {}
    for rel, src in ((P + '/lib/libz.so.1', libz), (P + '/bin/python3.%d' % sys.version_info[1], exe),
                     (P + '/lib/python3.11/lib-dynload/_z.so', libz)):
        dst = tmp_path / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        objects[rel] = elf.read(str(dst))
    pyimage._patch(shutil.which('patchelf'), objects, str(tmp_path))
    got = {rel: elf.read(str(tmp_path / rel)) for rel in objects}
    assert got[P + '/lib/libz.so.1'].runpath == '$ORIGIN'
    assert got[P + '/bin/python3.%d' % sys.version_info[1]].runpath == '$ORIGIN/../lib'
    assert got[P + '/lib/python3.11/lib-dynload/_z.so'].runpath == '$ORIGIN/../..'
    assert all(g.rpath is None and g.needed == objects[r].needed for r, g in got.items())


def test_a_failing_patchelf_is_reported(tmp_path):
    need('patchelf')
    (tmp_path / 'usr').mkdir()
    (tmp_path / 'usr/x.so').write_text('not elf')
    with pytest.raises(BuildError, match='patchelf --set-rpath .* /usr/x.so failed'):
        pyimage._patch(shutil.which('patchelf'), {'usr/x.so': elf.Elf('x', 64, True, 62, 3)}, str(tmp_path))


# ----------------------------------------------------------------------------- bytecode
def stdlib_tree(tmp_path, minor, runnable=False):
    tree = tmp_path / 'tree'
    lib = tree / P / 'lib' / ('python3.%d' % minor)
    (lib / 'pkg').mkdir(parents=True)
    (lib / 'mod.py').write_text('X = 1\n')
    (lib / 'pkg/__init__.py').write_text('def f():\n    return "f"\n')
    binary = tree / P / 'bin' / ('python3.%d' % minor)
    binary.parent.mkdir(parents=True)
    binary.write_text('#!/bin/sh\nexit 1\n')
    binary.chmod(0o755)
    return tree, lib


def test_bytecode_by_the_controllers_python_when_the_bundled_one_cannot_run(tmp_path):
    minor = sys.version_info[1]
    tree, lib = stdlib_tree(tmp_path, minor)
    how = pyimage.compile_stdlib(str(tree), pytree.Layout(minor), 'x86-64')
    assert how.startswith('controller python 3.%d.' % minor)
    for rel in ('mod.py', 'pkg/__init__.py'):
        src = lib / rel
        pyc = importlib.util.cache_from_source(str(src))
        data = open(pyc, 'rb').read()
        assert data[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(data[4:8], 'little') == 0b01, 'hash-based, source not checked'
        assert data[8:16] == importlib.util.source_hash(src.read_bytes())
        code = marshal.loads(data[16:])
        assert code.co_filename == '/%s/lib/python3.%d/%s' % (P, minor, rel), 'the path on the host, not the work dir'


def test_bytecode_by_the_bundled_interpreter_when_it_runs(tmp_path):
    """A stand-in for the bundled interpreter: the Python running the tests, copied in place
    (the bytecode must then be written by that copy, with the final paths)."""
    minor = sys.version_info[1]
    tree, lib = stdlib_tree(tmp_path, minor)
    binary = tree / P / 'bin' / ('python3.%d' % minor)
    binary.unlink()
    binary.write_text('#!/bin/sh\nexec %s -I "$@"\n' % os.path.realpath(sys.executable))
    binary.chmod(0o755)
    how = pyimage.compile_stdlib(str(tree), pytree.Layout(minor), 'x86-64')
    assert how == 'bundled interpreter %d.%d.%d' % sys.version_info[:3]
    data = open(importlib.util.cache_from_source(str(lib / 'mod.py')), 'rb').read()
    assert int.from_bytes(data[4:8], 'little') == 0b01
    assert marshal.loads(data[16:]).co_filename == '/%s/lib/python3.%d/mod.py' % (P, minor)


def test_modes_do_not_depend_on_the_umask(tmp_path):
    minor = sys.version_info[1]
    tree, lib = stdlib_tree(tmp_path, minor)
    old = os.umask(0o077)
    try:
        pyimage.compile_stdlib(str(tree), pytree.Layout(minor), 'x86-64')
        (lib / 'data.txt').write_text('d')
    finally:
        os.umask(old)
    pycache = lib / '__pycache__'
    assert stat.S_IMODE(os.stat(pycache).st_mode) == 0o700, 'compileall made it under the umask'
    pyimage.normalize_modes(str(tree))
    modes = {os.path.relpath(os.path.join(d, n), str(tree)): stat.S_IMODE(os.lstat(os.path.join(d, n)).st_mode)
             for d, ds, fs in os.walk(str(tree)) for n in ds + fs}
    assert modes[os.path.relpath(str(pycache), str(tree))] == 0o755
    assert modes[os.path.relpath(str(lib / 'data.txt'), str(tree))] == 0o644
    assert modes['%s/bin/python3.%d' % (P, minor)] == 0o755
    assert set(modes.values()) == {0o755, 0o644}


def test_no_python_to_compile_with(tmp_path):
    tree, _lib = stdlib_tree(tmp_path, 99)
    with pytest.raises(BuildError, match=r'cannot precompile the standard library: the bundled interpreter \(x86-64\) '
                                         r'does not run on this controller .* not 3.99'):
        pyimage.compile_stdlib(str(tree), pytree.Layout(99), 'x86-64')


# ----------------------------------------------------------------------------- requests refused early
@pytest.fixture(name='debs_dir')
def debs_dir_fixture(tmp_path):
    need('dpkg-deb')
    need('patchelf')
    need('mksquashfs')
    d = tmp_path / 'debs'
    d.mkdir()
    for pkg in ('python3.11-minimal', 'libpython3.11-minimal', 'libpython3.11-stdlib'):
        make_deb(str(d), pkg, '3.11.2-6+deb12u9')
    (tmp_path / 'out').mkdir()
    return d


@pytest.mark.parametrize('change,message', [
    ({'name': 'a/b'}, "invalid extension name 'a/b'"),
    ({'version': '3.11 2'}, "version '3.11 2': start with a letter or digit"),
    ({'dest': '/nonexistent-dir/x/'}, 'the directory of dest, /nonexistent-dir/x, does not exist'),
    ({'format': 'ext4'}, 'format must be one of squashfs, erofs'),
    ({'source_date_epoch': -1}, 'source_date_epoch -1: give seconds since 1970'),
])
def test_bad_requests_fail_before_anything_is_written(tmp_path, debs_dir, change, message):
    opts = dict(debs=str(debs_dir), dest=str(tmp_path / 'out') + '/')
    opts.update(change)
    with pytest.raises(BuildError, match=message):
        pyimage.run(pyimage.Options(**opts))
    assert os.listdir(str(tmp_path / 'out')) == []


def test_source_date_epoch_from_the_environment_is_checked(tmp_path, debs_dir, monkeypatch):
    monkeypatch.setenv('SOURCE_DATE_EPOCH', 'yesterday')
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH='yesterday' in the environment is not a number"):
        pyimage.run(pyimage.Options(debs=str(debs_dir), dest=str(tmp_path / 'out')))


def test_an_interpreter_without_its_binary_is_named(tmp_path, debs_dir):
    with pytest.raises(BuildError, match=r'no package ships /usr/bin/python3.11, the interpreter'):
        pyimage.run(pyimage.Options(debs=str(debs_dir), dest=str(tmp_path / 'out')))
    assert os.listdir(str(tmp_path / 'out')) == [], 'the work directory is gone'


def test_check_mode_writes_nothing(tmp_path, debs_dir):
    with pytest.raises(BuildError, match='the interpreter'):
        pyimage.run(pyimage.Options(debs=str(debs_dir), dest=str(tmp_path / 'out'), check_mode=True))
    assert os.listdir(str(tmp_path / 'out')) == []
