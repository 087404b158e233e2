# -*- coding: utf-8 -*-
"""pydebs.py: the .deb files of a directory read with the real dpkg-deb (packages made here),
the interpreter and its standard library found, what is missing or mixed named, and the
image and Python versions derived from Debian versions."""

import shutil

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import pydebs
from ansible_collections.tucked.sysext.plugins.module_utils.buildtools import BuildError

from lib.debs import make_deb


@pytest.fixture(name='dpkg_deb')
def dpkg_deb_fixture():
    if not shutil.which('dpkg-deb'):
        pytest.skip('dpkg-deb is not installed')
    return shutil.which('dpkg-deb')


@pytest.mark.parametrize('debian,image', [
    ('3.11.2-6+deb12u6', '3.11.2-6.deb12u6'),
    ('3.11.2-6+deb12u9', '3.11.2-6.deb12u9'),
    ('3.13.5-2', '3.13.5-2'),
    ('3.12.0~rc1-1', '3.12.0~rc1-1'),
    ('1:3.9.2-1+b1', '1.3.9.2-1.b1'),
    ('3.11.4-1ubuntu0.1', '3.11.4-1ubuntu0.1'),
    ('3.11_2+x y', '3.11.2.x.y'),
])
def test_image_version(debian, image):
    assert pydebs.image_version(debian) == image


@pytest.mark.parametrize('debian,upstream', [
    ('3.11.2-6+deb12u6', '3.11.2'), ('3.13.5-2', '3.13.5'), ('1:3.9.2-1', '3.9.2'), ('3.12.0~rc1-1', '3.12.0'),
    ('3.12-1', '3.12'),
])
def test_python_version(debian, upstream):
    assert pydebs.python_version(debian) == upstream


def test_python_version_refuses_what_is_not_one():
    with pytest.raises(BuildError, match="cannot read a Python version from the Debian version 'abc'"):
        pydebs.python_version('abc')


def interpreter_debs(d, version='3.11.2-6+deb12u9', minor=11, arch='amd64', skip=()):
    for pkg in pydebs.REQUIRED:
        if pkg % minor not in skip:
            make_deb(str(d), pkg % minor, version, arch)


def test_list_and_find_the_interpreter(tmp_path, dpkg_deb):
    interpreter_debs(tmp_path)
    make_deb(str(tmp_path), 'zlib1g', '1:1.2.13.dfsg-1', files={'lib/x/libz.so.1': 'z'})
    make_deb(str(tmp_path), 'media-types', '10.0.0', 'all')
    (tmp_path / 'glibc').mkdir()
    make_deb(str(tmp_path / 'glibc'), 'libc6', '2.36-9')           # not read: a subdirectory
    (tmp_path / 'notes.txt').write_text('x')
    debs = pydebs.list_debs(str(tmp_path), dpkg_deb)
    assert [d.package for d in debs] == ['libpython3.11-minimal', 'libpython3.11-stdlib', 'media-types',
                                         'python3.11-minimal', 'zlib1g']
    z = debs[-1]
    assert z.version == '1:1.2.13.dfsg-1' and z.architecture == 'amd64' and len(z.sha256) == 64
    assert z.key == ['zlib1g', '1:1.2.13.dfsg-1', 'amd64', z.sha256]
    minor, deb = pydebs.interpreter(debs, str(tmp_path))
    assert minor == 11 and deb.package == 'python3.11-minimal' and deb.version == '3.11.2-6+deb12u9'
    pydebs.unpack(dpkg_deb, z, str(tmp_path / 'out'))
    assert (tmp_path / 'out/lib/x/libz.so.1').read_text() == 'z'


def test_the_same_content_under_another_name_has_the_same_key(tmp_path, dpkg_deb):
    a = make_deb(str(tmp_path), 'zlib1g', '1.0')
    (tmp_path / 'b').mkdir()
    shutil.copy(a, str(tmp_path / 'b' / 'renamed.deb'))
    assert pydebs.list_debs(str(tmp_path), dpkg_deb)[0].key == pydebs.list_debs(str(tmp_path / 'b'), dpkg_deb)[0].key


def test_two_versions_of_a_package(tmp_path, dpkg_deb):
    make_deb(str(tmp_path), 'zlib1g', '1.0')
    make_deb(str(tmp_path), 'zlib1g', '1.1')
    with pytest.raises(BuildError, match=r'holds two versions of zlib1g \(1.0 in zlib1g_1.0_amd64.deb, 1.1 in '):
        pydebs.list_debs(str(tmp_path), dpkg_deb)


def test_no_debs_and_no_directory(tmp_path, dpkg_deb):
    with pytest.raises(BuildError, match='holds no .deb files; download them first'):
        pydebs.list_debs(str(tmp_path), dpkg_deb)
    with pytest.raises(BuildError, match='does not exist'):
        pydebs.list_debs(str(tmp_path / 'missing'), dpkg_deb)
    with pytest.raises(BuildError, match='is not absolute'):
        pydebs.list_debs('relative/dir', dpkg_deb)


def test_a_file_that_is_no_deb(tmp_path, dpkg_deb):
    (tmp_path / 'broken.deb').write_text('not an archive')
    with pytest.raises(BuildError, match='broken.deb'):
        pydebs.list_debs(str(tmp_path), dpkg_deb)


def test_a_missing_stdlib_package_is_named(tmp_path, dpkg_deb):
    interpreter_debs(tmp_path, skip=('libpython3.11-stdlib',))
    debs = pydebs.list_debs(str(tmp_path), dpkg_deb)
    with pytest.raises(BuildError, match='lacks libpython3.11-stdlib, which the interpreter python3.11-minimal needs'):
        pydebs.interpreter(debs, str(tmp_path))


def test_no_interpreter_or_two(tmp_path, dpkg_deb):
    make_deb(str(tmp_path), 'zlib1g', '1.0')
    with pytest.raises(BuildError, match='holds no python3.X-minimal package'):
        pydebs.interpreter(pydebs.list_debs(str(tmp_path), dpkg_deb), str(tmp_path))
    interpreter_debs(tmp_path)
    interpreter_debs(tmp_path, '3.13.5-2', 13)
    with pytest.raises(BuildError, match=r'more than one interpreter \(python3.11-minimal, python3.13-minimal\)'):
        pydebs.interpreter(pydebs.list_debs(str(tmp_path), dpkg_deb), str(tmp_path))


def test_mismatched_versions_and_architectures(tmp_path, dpkg_deb):
    interpreter_debs(tmp_path, skip=('libpython3.11-stdlib',))
    make_deb(str(tmp_path), 'libpython3.11-stdlib', '3.11.2-6+deb12u8')
    with pytest.raises(BuildError, match=r'libpython3.11-stdlib is version 3.11.2-6\+deb12u8 but python3.11-minimal is'):
        pydebs.interpreter(pydebs.list_debs(str(tmp_path), dpkg_deb), str(tmp_path))
    other = tmp_path / 'arch'
    other.mkdir()
    interpreter_debs(other)
    make_deb(str(other), 'zlib1g', '1.0', 'arm64')
    with pytest.raises(BuildError, match='mixes packages of the architectures amd64, arm64'):
        pydebs.interpreter(pydebs.list_debs(str(other), dpkg_deb), str(other))


def test_a_missing_tool_is_named_with_its_package(monkeypatch):
    monkeypatch.setattr(pydebs.shutil, 'which', lambda *a, **kw: None)
    with pytest.raises(BuildError, match='patchelf is not installed on the controller; install the package patchelf'):
        pydebs.find_tool('patchelf')
    with pytest.raises(BuildError, match=r'dpkg-deb is not installed .* apt-get install dpkg'):
        pydebs.find_tool('dpkg-deb')
