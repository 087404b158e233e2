# -*- coding: utf-8 -*-
"""Helpers shared by the unit tests: tiny extension trees and images built in tmp_path."""

import os
import shutil
import subprocess

import pytest


def make_tree(path, name, cls='sysext', release='ID=_any\n', files=None):
    rel_dir = 'usr/lib/extension-release.d' if cls == 'sysext' else 'etc/extension-release.d'
    os.makedirs(os.path.join(path, rel_dir), exist_ok=True)
    if release is not None:
        with open(os.path.join(path, rel_dir, 'extension-release.' + name), 'wb') as f:
            f.write(release.encode() if isinstance(release, str) else release)
    for rel, content in (files or {}).items():
        dst = os.path.join(path, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, 'wb') as f:
            f.write(content.encode() if isinstance(content, str) else content)
    return str(path)


def build_image(tree, out, fs='squashfs', comp=None):
    if fs == 'squashfs':
        if not shutil.which('mksquashfs'):
            pytest.skip('mksquashfs is not installed (scripts/bootstrap.sh debs)')
        cmd = ['mksquashfs', str(tree), str(out), '-quiet', '-noappend', '-all-root'] + (['-comp', comp] if comp else [])
    else:
        if not shutil.which('mkfs.erofs'):
            pytest.skip('mkfs.erofs is not installed (scripts/bootstrap.sh debs)')
        cmd = ['mkfs.erofs', '--quiet', '--all-root'] + (['-z' + comp] if comp else []) + [str(out), str(tree)]
    subprocess.run(cmd, check=True, capture_output=True)
    return str(out)


@pytest.fixture(name='make_tree', scope='session')
def make_tree_fixture():
    return make_tree


@pytest.fixture(name='build_image', scope='session')
def build_image_fixture():
    return build_image


@pytest.fixture
def root(tmp_path):
    """A scratch root with os-release and the sysext/confext search directories."""
    r = tmp_path / 'root'
    for d in ('usr/lib', 'opt', 'etc/extensions', 'run/extensions', 'var/lib/extensions',
              'run/confexts', 'var/lib/confexts', 'usr/local/lib/confexts', 'usr/lib/confexts'):
        (r / d).mkdir(parents=True, exist_ok=True)
    (r / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    os.symlink('../usr/lib/os-release', r / 'etc/os-release')
    return r


@pytest.fixture
def image(tmp_path, make_tree, build_image):
    """image(version, release=...) -> path of a squashfs image of extension 'tool'
    (the store's tests and the rollout's)."""
    def make(version, release='ID=_any\n', name='tool', cls='sysext', tag=''):
        tree = tmp_path / ('tree-%s-%s%s' % (name, version, tag))
        files = {'usr/share/%s/VERSION' % name: version} if cls == 'sysext' else {'etc/%s.conf' % name: version}
        make_tree(tree, name, cls=cls, release=release + 'IMAGE_VERSION=%s\n' % version, files=files)
        return build_image(tree, tmp_path / ('%s-%s%s.img' % (name, version, tag)))
    return make
