# -*- coding: utf-8 -*-
"""sysext_build's staging on hostile trees (issue 15 items 6 and 11): a tree thousands of
levels deep is a message naming the path, sparse files stay sparse (a 2 GiB one builds on a
64 MiB file system), and over-long names are refused before anything is written."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import build
from ansible_collections.tucked.sysext.plugins.module_utils.build import BuildError, Options

from ansible_collections.tucked.sysext.tests.unit.plugins.module_utils.test_build import listing, make_src, need


def _remove_deep(top):
    """Remove a tree too deep for shutil.rmtree (and for pytest's own clean-up of old tmp_paths):
    GNU rm walks it with fts, without recursion and without one descriptor per level (ansible-test
    units runs with 1,024 descriptors)."""
    subprocess.run(['rm', '-rf', '--one-file-system', top], check=True)


def test_a_tree_too_deep_is_a_message_naming_the_path(tmp_path):
    """1,100 levels: before, scan() recursed into a RecursionError (a traceback from the module)."""
    src = tmp_path / 'src'
    (src / 'usr').mkdir(parents=True)
    try:
        fd = os.open(str(src / 'usr'), os.O_RDONLY | os.O_DIRECTORY)
        try:
            for _level in range(1100):
                os.mkdir('d', dir_fd=fd)
                nfd = os.open('d', os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
                os.close(fd)
                fd = nfd
        finally:
            os.close(fd)
        with pytest.raises(BuildError, match=r'src/usr(/d){256} is 257 directories deep, more than the 256 an image '
                                             r'built here may hold .* flatten the tree under .*src'):
            build.run(Options(src=str(src), dest=str(tmp_path / 'deep.raw')))
        assert sorted(os.listdir(tmp_path)) == ['src']
    finally:
        _remove_deep(str(src / 'usr'))


def test_sparse_files_stay_sparse_while_staging(tmp_path):
    src = tmp_path / 'src'
    (src / 'usr/share').mkdir(parents=True)
    big = src / 'usr/share/sparse'
    with open(big, 'wb') as f:
        f.seek(128 << 20)
        f.write(b'middle')
        f.truncate(256 << 20)               # 256 MiB, 4 KiB of data (2 GiB: the next test)
    entries, _w = build.scan(str(src), 'sysext', 'x', 'ID=_any\n', False)
    dst = tmp_path / 'stage'
    dst.mkdir()
    hashes = build.stage(entries, str(src), str(dst))
    st = os.stat(dst / 'usr/share/sparse')
    assert st.st_size == 256 << 20 and st.st_blocks * 512 <= 64 << 10, st.st_blocks
    h = hashlib.sha256()
    with open(big, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 24), b''):
            h.update(chunk)
    assert hashes['usr/share/sparse'] == h.hexdigest() == build.hash_sources(entries, str(src))['usr/share/sparse']
    with open(dst / 'usr/share/sparse', 'rb') as f:
        f.seek(128 << 20)
        assert f.read(6) == b'middle'


def test_a_2_gib_sparse_file_builds_on_a_small_filesystem(tmp_path):
    """In a private mount namespace, on a 64 MiB tmpfs: before, staging wrote 2 GiB of zeros and
    failed with "No space left on device"."""
    need('squashfs')
    if os.geteuid() != 0 or not shutil.which('unshare'):
        pytest.skip('needs root and unshare for a private tmpfs')
    script = r'''
import os, subprocess, sys
d = sys.argv[1]
subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', d], check=True)
os.makedirs(d + '/src/usr/share')
with open(d + '/src/usr/share/sparse', 'wb') as f:
    f.seek(1 << 30); f.write(b'x'); f.truncate(2 << 30)
from ansible_collections.tucked.sysext.plugins.module_utils import build
r = build.run(build.Options(src=d + '/src', dest=d + '/sparse.raw'))
print(r.size, sorted(os.listdir(d)))
'''
    (tmp_path / 'mnt').mkdir()
    res = subprocess.run(['unshare', '--mount', '--propagation', 'private', '--', sys.executable, '-c', script,
                          str(tmp_path / 'mnt')], capture_output=True, text=True, check=False,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    assert res.returncode == 0, res.stderr[-2000:]
    size, names = res.stdout.split(' ', 1)
    assert int(size) < 1 << 20 and names.strip() == "['sparse.raw', 'src']", res.stdout


@pytest.mark.parametrize('fmt,comp,small', [('squashfs', 'gzip', True), ('erofs', 'lz4', True), ('erofs', 'none', False)])
def test_sparse_files_make_small_images_or_a_warning(tmp_path, fmt, comp, small):
    """mksquashfs and compressed erofs keep a 64 MiB hole small; uncompressed erofs writes it
    out, and the warning says so."""
    need(fmt)
    src = tmp_path / 'src'
    (src / 'usr/share').mkdir(parents=True)
    with open(src / 'usr/share/sparse', 'wb') as f:
        f.truncate(64 << 20)
    res = build.run(Options(src=str(src), dest=str(tmp_path / 'x.raw'), format=fmt, compression=comp))
    warn = [w for w in res.warnings if 'holes of sparse files' in w]
    assert (res.size < 1 << 20) is small
    assert bool(warn) is not small, res.warnings
    if warn:
        assert '67108864 bytes here' in warn[0] and str(src / 'usr/share/sparse') in warn[0], warn


def test_an_over_long_name_is_refused_before_anything_is_written(tmp_path):
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    with pytest.raises(BuildError, match=r'is 240 bytes long; its release file extension-release.NAME may have at '
                                         r'most 255 bytes in its name .* at most 237 bytes'):
        build.run(Options(src=src, dest=str(out / 'x.raw'), name='n' * 240))
    assert listing(out) == []
    # a long dest name (250 bytes) still builds: the work directory's name is shortened
    need('squashfs')
    dest = out / ('d' * 246 + '.raw')
    res = build.run(Options(src=src, dest=str(dest), name='short'))
    assert res.changed and listing(out) == [dest.name]
