# -*- coding: utf-8 -*-
"""sysext_python through real ansible-playbook, from the bookworm packages that
``scripts/bootstrap.sh python-debs`` caches (make test runs that step; without them this
fails): the image is built, a second run and check mode change nothing, a build into another
directory gives the same bytes, the image holds nothing outside the prefix but its release
file, sysext_facts accepts it as a sysext for any OS, and the interpreter runs on nothing but
glibc (libc6, the test-only package in glibc/ of the cache) and a shell (for the launcher
bin/python3), loop-mounted read-only in a
private mount namespace: every library it maps and the loader resolves is inside the prefix
or glibc's, no LD_LIBRARY_PATH, every .pyc valid. Missing packages fail with their names.
"""

import glob
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import time

import pytest

from conftest import run_driver
from lib import nsroot
from lib.ansible_run import run_tasks

MOD = 'tucked.sysext.sysext_python'
DEBS = os.path.join(nsroot.CACHE, 'debs', 'python3.11-bookworm')
PREFIX = 'usr/lib/tucked-sysext/python'
RELEASE = 'usr/lib/extension-release.d/extension-release.tucked-python'
if nsroot.COLLECTIONS not in sys.path:
    sys.path.insert(0, nsroot.COLLECTIONS)


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def deb_field(path, field):
    return subprocess.run(['dpkg-deb', '-f', path, field], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope='module', name='debs')
def debs_fixture():
    if not glob.glob(os.path.join(DEBS, 'python3.11-minimal_*.deb')) or not glob.glob(
            os.path.join(DEBS, 'glibc', 'libc6_*.deb')):
        pytest.fail('no cached Python packages in %s: run scripts/bootstrap.sh python-debs (make test does)' % DEBS)
    return DEBS


@pytest.fixture(scope='module', name='built')
def built_fixture(debs, tmp_path_factory):
    out = tmp_path_factory.mktemp('pyimage')
    (out / 'a').mkdir()
    (out / 'b').mkdir()
    args = {'debs': debs, 'dest': str(out / 'a') + '/'}
    start = time.monotonic()
    results = run_tasks([{MOD: args}, {MOD: args}, {MOD: args, 'check_mode': True},
                         {MOD: dict(args, dest=str(out / 'b'))}], diff=True)
    for r in results:
        assert not r.get('failed'), r.get('msg')
    return {'dir': out, 'results': results, 'seconds': time.monotonic() - start}


def test_the_build_returns_what_the_contract_says(built, debs):
    first = built['results'][0]
    minimal = glob.glob(os.path.join(debs, 'python3.11-minimal_*.deb'))[0]
    debian_version = deb_field(minimal, 'Version')
    version = re.sub(r'[^A-Za-z0-9.~^-]', '.', debian_version)
    assert first['changed'] and first['built']
    assert first['name'] == 'tucked-python' and first['version'] == version
    assert first['dest'] == str(built['dir'] / 'a' / ('tucked-python-%s.raw' % version))
    assert first['checksum'] == 'sha256:' + sha(first['dest']) == 'sha256:' + first['sha256']
    assert first['size'] == os.path.getsize(first['dest'])
    assert first['interpreter'] == '/usr/lib/tucked-sysext/python/bin/python3'
    assert first['python_version'] == debian_version.split('-')[0] and first['python_version'].startswith('3.11.')
    assert re.match(r'^2\.[0-9]+$', first['glibc_min']) and first['architecture'] == 'x86-64'
    assert first['bytecode'].startswith('bundled interpreter 3.11.')
    pk = first['packages']
    for p in ('python3.11-minimal', 'libpython3.11-minimal', 'libpython3.11-stdlib', 'libssl3', 'zlib1g', 'libffi8',
              'libexpat1', 'liblzma5', 'libbz2-1.0', 'libsqlite3-0', 'libuuid1'):
        assert p in pk, p
    assert 'libc6' not in pk and pk['python3.11-minimal'] == debian_version
    assert PREFIX + '/lib/python3.11/test' in ''.join(first['dropped'])
    assert '"glibc_min": "%s"' % first['glibc_min'] in first['diff']['after']


def test_a_second_run_and_check_mode_change_nothing(built):
    first, second, check, _other = built['results']
    assert not second['changed'] and not second['built'] and second['checksum'] == first['checksum']
    assert {k: second[k] for k in ('glibc_min', 'packages', 'version', 'python_version', 'dropped', 'dest')} == {
        k: first[k] for k in ('glibc_min', 'packages', 'version', 'python_version', 'dropped', 'dest')}
    assert not check['changed'] and check['checksum'] == first['checksum']
    assert sorted(os.listdir(built['dir'] / 'a')) == [os.path.basename(first['dest'])], 'no work directory left'


def test_the_build_is_reproducible(built):
    first, other = built['results'][0], built['results'][3]
    assert other['changed'] and other['built'] and other['dest'] != first['dest']
    assert other['checksum'] == first['checksum'] and sha(other['dest']) == sha(first['dest'])


def walk(tree, path=''):
    out = [path]
    if tree.is_dir(path or '/'):
        for n in tree.list_dir(path or '/'):
            out += walk(tree, path + '/' + n)
    return out


def test_nothing_outside_the_prefix_but_the_release_file(built):
    from ansible_collections.tucked.sysext.plugins.module_utils import pyimage
    from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import image as imagefs
    first = built['results'][0]
    fd = os.open(first['dest'], os.O_RDONLY)
    try:
        with imagefs.open_image(fd, 'sysext') as tree:
            paths = [p.lstrip('/') for p in walk(tree) if p]
            release = tree.read_file(RELEASE, 4096).decode()
            modes = {p: tree.lstat_mode(p) for p in paths}
            launcher = tree.read_file(PREFIX + '/bin/python3', 4096).decode()
    finally:
        os.close(fd)
    parents = {'usr', 'usr/lib', 'usr/lib/tucked-sysext', 'usr/lib/extension-release.d'}
    outside = [p for p in paths if p not in parents and p != RELEASE and not (p == PREFIX or p.startswith(PREFIX + '/'))]
    assert outside == []
    assert PREFIX + '/bin/python3' in paths and PREFIX + '/lib/libssl.so.3' in paths
    assert PREFIX + '/lib/python3.11/os.py' in paths and PREFIX + '/lib/python3.11/__pycache__/os.cpython-311.pyc' in paths
    assert not any(p.startswith(PREFIX + '/lib/python3.11/test/') for p in paths)
    assert release == 'ID=_any\nARCHITECTURE=x86-64\nIMAGE_VERSION=%s\n' % first['version']
    # no mode of the build's umask: directories 0755, files 0644 or 0755
    assert {stat.S_IMODE(m) for p, m in modes.items() if stat.S_ISDIR(m)} == {0o755}
    assert {stat.S_IMODE(m) for p, m in modes.items() if stat.S_ISREG(m)} == {0o644, 0o755}
    # bin/python3 is the launcher of bin/python3.11 (module_utils/pylauncher.py)
    assert stat.S_ISREG(modes[PREFIX + '/bin/python3']) and stat.S_IMODE(modes[PREFIX + '/bin/python3']) == 0o755
    assert launcher.startswith('#!/bin/sh\n') and launcher.endswith('\nexec /%s/bin/python3.11 "$@"\n' % PREFIX)
    manifest = pyimage.read_manifest(first['dest'])
    assert manifest == {k: first[k] for k in ('name', 'version', 'python_version', 'interpreter', 'glibc_min',
                                              'architecture', 'packages')}


def test_sysext_facts_accepts_it_as_a_sysext_for_any_os(built, tmp_path):
    first = built['results'][0]
    root = tmp_path / 'root'
    (root / 'var/lib/extensions').mkdir(parents=True)
    (root / 'etc').mkdir()
    (root / 'etc/os-release').write_text('ID=flatcar\nVERSION_ID=4230.2.0\n')
    # (a symlink would be resolved inside the root, as systemd does)
    shutil.copyfile(first['dest'], str(root / 'var/lib/extensions/tucked-python.raw'))
    facts, = run_tasks([{'tucked.sysext.sysext_facts': {'root': str(root), 'classes': ['sysext']}}])
    img = next(i for i in facts['ansible_facts']['sysext']['images'] if i['name'] == 'tucked-python')
    assert img['compatible'] is True and img['version'] == first['version']


def test_it_runs_on_nothing_but_glibc(built, debs):
    from ansible_collections.tucked.sysext.plugins.module_utils.pytree import is_glibc
    first = built['results'][0]
    libc6 = glob.glob(os.path.join(debs, 'glibc', 'libc6_*.deb'))[0]
    out = run_driver('python_image_driver.py', first['dest'], libc6)
    assert 'failed' not in out, out.get('failed')
    prefix = '/' + PREFIX
    assert out['top'] == ['bin', 'etc', 'lib', 'lib64', 'proc', 'usr'], 'the root holds libc6, a shell and the image only'
    assert not os.path.exists(out['scratch']), 'the scratch root is gone'
    assert out['version'] == first['python_version']
    assert out['prefix'] == out['exec_prefix'] == prefix and out['executable'] == prefix + '/bin/python3.11'
    assert all(p.startswith(prefix + '/') for p in out['path'] if p), out['path']
    assert out['paths']['stdlib'] == prefix + '/lib/python3.11'
    assert out['paths']['purelib'].startswith(prefix + '/')
    assert out['ld_library_path'] is None and 'LD_LIBRARY_PATH' not in out['child_env']
    assert out['sha256'] == hashlib.sha256(b'tucked').hexdigest() and out['md5'] == hashlib.md5(b'tucked').hexdigest()
    assert out['openssl'].startswith('OpenSSL 3.') and out['sqlite'].startswith('3.')
    assert out['roundtrips'] == [True, True, True] and out['getpid'] and out['decimal'] == '3.3'
    # every shared object mapped is the image's or glibc's
    glibc = [m for m in out['maps'] if not m.startswith(prefix + '/')]
    assert glibc and all(is_glibc(os.path.basename(m)) and m.startswith('/lib/') for m in glibc), glibc
    assert {os.path.basename(m) for m in glibc} >= {'libc.so.6', 'libm.so.6', 'ld-linux-x86-64.so.2'}
    assert any(m.endswith('/lib/libssl.so.3') for m in out['maps'])
    # what the loader resolves for every ELF object of the prefix
    assert len(out['ldd']) > 40
    for obj, libs in out['ldd'].items():
        for name, target in libs.items():
            assert target != 'not found', '%s: %s not found' % (obj, name)
            if is_glibc(name):
                assert not target.startswith(prefix), (obj, name, target)
            else:
                assert os.path.normpath(target).startswith(prefix + '/lib/'), (obj, name, target)
    # bytecode: present and valid for every source file, on a read-only tree
    assert out['pyc'] > 500 and out['bad_pyc'] == []
    assert out['writable'] is False


def test_missing_packages_are_named(debs, tmp_path):
    partial = tmp_path / 'partial'
    partial.mkdir()
    for p in glob.glob(os.path.join(debs, '*.deb')):
        if not os.path.basename(p).startswith(('libssl3_', 'libpython3.11-stdlib_')):
            os.symlink(p, str(partial / os.path.basename(p)))
    no_stdlib, = run_tasks([{MOD: {'debs': str(partial), 'dest': str(tmp_path) + '/'}}])
    assert no_stdlib['failed'] and 'lacks libpython3.11-stdlib' in no_stdlib['msg']
    os.symlink(glob.glob(os.path.join(debs, 'libpython3.11-stdlib_*.deb'))[0], str(partial / 'stdlib.deb'))
    no_ssl, = run_tasks([{MOD: {'debs': str(partial), 'dest': str(tmp_path) + '/'}}], check_mode=True)
    assert no_ssl['failed'] and re.search(r'needs lib(ssl|crypto).so.3, which none of the debs ships', no_ssl['msg'])
    assert sorted(os.listdir(str(tmp_path))) == ['partial']
