# -*- coding: utf-8 -*-
"""No module blocks on a file it opens (issue 15): a FIFO (or a device, or a symlink) left where
we write a temporary file, or where a sidecar is read, is removed or refused, never opened
blocking. Each case runs under an alarm: a blocking open() would otherwise hang the test."""

import contextlib
import json
import os
import signal

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import buildfiles, fsutil, state, store, verity

from ansible_collections.tucked.sysext.tests.unit.plugins.module_utils.test_store import run


@contextlib.contextmanager
def never_blocks(seconds=10):
    def blocked(_sig, _frame):
        raise AssertionError('blocked for %d s' % seconds)
    old = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_create_new_replaces_what_is_in_the_way_and_never_follows_it(tmp_path):
    outside = tmp_path / 'outside'
    outside.write_text('keep\n')
    for make in (os.mkfifo, lambda p: os.symlink(str(outside), p), lambda p: open(p, 'w').write('stale')):
        tmp = tmp_path / 'x.tmp'
        make(str(tmp))
        with never_blocks():
            fd = fsutil.create_new(str(tmp), 0o600)
        os.write(fd, b'new')
        os.close(fd)
        assert tmp.read_bytes() == b'new' and not tmp.is_symlink() and oct(tmp.stat().st_mode & 0o777) == '0o600'
        tmp.unlink()
    assert outside.read_text() == 'keep\n'
    (tmp_path / 'd.tmp').mkdir()
    with pytest.raises(FileExistsError):
        fsutil.create_new(str(tmp_path / 'd.tmp'), 0o600)


def test_the_record_of_a_systemd_merge_is_written_over_a_fifo(tmp_path):
    """ROOT/run/tucked-sysext/record-sysext.json.tmp a FIFO: it used to block in open()."""
    path = tmp_path / state.RECORD_FILE.lstrip('/').replace('%s', 'sysext')
    path.parent.mkdir(parents=True)
    os.mkfifo(str(path) + '.tmp')
    doc = {'mutable': {'mode': 'no'}, 'extensions': {}}
    with never_blocks():
        state.write_record(str(tmp_path), 'sysext', [], doc)
    assert json.loads(path.read_text()) == {'hierarchies': {}, 'origin': doc}
    assert not os.path.lexists(str(path) + '.tmp')


def test_the_store_copies_over_a_fifo_at_its_temporary_name(root, image, monkeypatch):
    """A FIFO at the store's temporary name for this process (.#NAME-VERSION.raw.PID), put there
    after the clean-up of leftovers ran (which removes a file of our own PID): copy_in() itself
    must not open it."""
    run(root, version='1', src=image('1'))
    monkeypatch.setattr(store, 'leftovers', lambda lay: [])
    tmp = root / ('opt/extensions/tool/.#tool-2.raw.%d' % os.getpid())
    os.mkfifo(tmp)
    with never_blocks():
        res = run(root, version='2', src=image('2'))
    assert res.changed and (root / 'opt/extensions/tool/tool-2.raw').is_file() and not os.path.lexists(tmp)
    tmp = root / ('opt/extensions/tool/.#tool-3.raw.%d' % os.getpid())
    tmp.mkdir()
    with never_blocks(), pytest.raises(store.StoreError, match='%s is in the way of the temporary file; remove it'
                                       % tmp):
        run(root, version='3', src=image('3'))


def test_a_fifo_as_the_root_hash_sidecar_of_a_build_is_not_read(tmp_path):
    dest = tmp_path / 'x.raw'
    dest.write_bytes(b'image')
    (tmp_path / 'x.verity').write_bytes(b'tree')
    os.mkfifo(tmp_path / 'x.roothash')
    with never_blocks():
        assert buildfiles.verity_current(str(dest), 'ab' * 32, 'cd' * 32) is False


@pytest.mark.parametrize('sidecar,words', [('x.verity', 'is a FIFO; a dm-verity hash tree is a regular file or a block '
                                                        'device'),
                                           ('x.roothash.p7s', 'is a FIFO, not a regular file; remove it')])
def test_a_fifo_as_a_verity_sidecar_is_refused_naming_it(tmp_path, sidecar, words):
    """systemd's verity_settings_load() would hand a FIFO hash tree to libcryptsetup and read a
    FIFO signature with read_full_file(): both block. Here both are refused."""
    img = tmp_path / 'x.raw'
    img.write_bytes(b'image')
    (tmp_path / 'x.roothash').write_text('ab' * 32)
    for other in ('x.verity', 'x.roothash.p7s'):
        if other != sidecar:
            (tmp_path / other).write_bytes(b'data')
    os.mkfifo(tmp_path / sidecar)
    with never_blocks(), pytest.raises(verity.VerityError) as e:
        verity.sidecars(str(img), False)
    assert str(tmp_path / sidecar) in str(e.value) and words in str(e.value), str(e.value)


def test_a_release_file_swapped_for_a_fifo_after_the_build_scanned_it_is_refused(tmp_path, monkeypatch):
    from ansible_collections.tucked.sysext.plugins.module_utils import buildtree
    src = tmp_path / 'src'
    rel = src / 'usr/lib/extension-release.d/extension-release.foo'
    rel.parent.mkdir(parents=True)
    rel.write_text('ID=_any\n')
    seen = buildtree._xattrs_of

    def swap(path):          # the scan has just lstat'ed it as a regular file
        if path == str(rel):
            rel.unlink()
            os.mkfifo(str(rel))
        return seen(path)
    monkeypatch.setattr(buildtree, '_xattrs_of', swap)
    with never_blocks(), pytest.raises(buildtree.BuildError) as e:
        buildtree.scan(str(src), 'sysext', 'foo', 'ID=_any\n', xattrs=True)
    assert str(rel) in str(e.value) and 'not a regular file' in str(e.value)
