# -*- coding: utf-8 -*-
import errno
import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import rootfs


def test_relative_and_absolute_symlinks_stay_in_root(tmp_path):
    (tmp_path / 'a/b').mkdir(parents=True)
    os.symlink('b', tmp_path / 'a/rel')
    os.symlink('/a/b', tmp_path / 'abs')
    assert rootfs.chase(str(tmp_path), '/a/rel') == '/a/b'
    assert rootfs.chase(str(tmp_path), '/abs') == '/a/b'
    assert rootfs.resolve(str(tmp_path), 'abs') == str(tmp_path / 'a/b')


def test_dotdot_never_climbs_above_the_root(tmp_path):
    (tmp_path / 'a').mkdir()
    os.symlink('../../../../etc', tmp_path / 'a/up')
    (tmp_path / 'etc').mkdir()
    assert rootfs.chase(str(tmp_path), '/a/up') == '/etc'
    assert rootfs.chase(str(tmp_path), '/../../a/../..') == '/'


def test_loop(tmp_path):
    os.symlink('two', tmp_path / 'one')
    os.symlink('one', tmp_path / 'two')
    with pytest.raises(rootfs.RootError) as e:
        rootfs.chase(str(tmp_path), '/one')
    assert e.value.errno == errno.ELOOP


def test_missing_and_missing_ok(tmp_path):
    (tmp_path / 'a').mkdir()
    with pytest.raises(FileNotFoundError):
        rootfs.chase(str(tmp_path), '/a/b/c')
    assert rootfs.chase(str(tmp_path), '/a/b/c', missing_ok=True) == '/a/b/c'


def test_not_a_directory(tmp_path):
    (tmp_path / 'f').write_text('x')
    with pytest.raises(rootfs.RootError) as e:
        rootfs.chase(str(tmp_path), '/f/x')
    assert e.value.errno == errno.ENOTDIR


def test_follow_last(tmp_path):
    os.symlink('/target', tmp_path / 'link')
    assert rootfs.chase(str(tmp_path), '/link', follow_last=False) == '/link'


def test_inside_reroots_an_absolute_run_link_and_keeps_the_missing_rest(tmp_path):
    root, outside = tmp_path / 'root', tmp_path / 'outside'
    root.mkdir()
    outside.mkdir()
    os.symlink(str(outside), root / 'run')
    assert rootfs.inside(str(root), '/run/tucked-sysext/x.lock') == str(root) + str(outside) + '/tucked-sysext/x.lock'
    made = rootfs.makedirs(str(root), '/run/tucked-sysext/stage', 0o700)
    assert made.startswith(str(root) + '/') and os.path.isdir(made)
    assert os.listdir(outside) == []
