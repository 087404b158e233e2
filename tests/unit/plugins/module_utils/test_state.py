# -*- coding: utf-8 -*-
"""state.py on fake metadata (no mounts): the dev check decides whose merge it is."""

import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import state

pytestmark = pytest.mark.usefixtures('simulated_merge')


def meta(root, hier='usr', cls_dir='.systemd-sysext', dev=None, names='foo\n', origin=None, marker=False):
    h = root / hier
    h.mkdir(parents=True, exist_ok=True)
    m = h / cls_dir
    m.mkdir()
    st = os.stat(h)
    (m / 'dev').write_text((dev or '%d:%d' % (os.major(st.st_dev), os.minor(st.st_dev))) + '\n')
    (m / ('confexts' if 'confext' in cls_dir else 'extensions')).write_text(names)
    if origin is not None:
        (m / 'origin').write_text(origin)
    if marker:
        (m / 'tucked').write_text('1\n')
    return m


def test_not_merged(tmp_path):
    (tmp_path / 'usr').mkdir()
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    assert (hs.merged, hs.merged_by, hs.extensions, hs.origin) == (False, 'none', [], None)


def test_missing_hierarchy(tmp_path):
    hs = state.read_hierarchy(str(tmp_path), '/opt', 'sysext', mounts=[])
    assert hs.merged_by == 'none' and hs.host_path == str(tmp_path / 'opt')


def test_merged_by_systemd_without_origin(tmp_path):
    meta(tmp_path, names='a\nb\n')
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    assert hs.merged_by == 'systemd' and hs.extensions == ['a', 'b'] and hs.origin is None and hs.origins is None


def test_merged_by_us_with_origin(tmp_path):
    meta(tmp_path, origin='{"mutable": {"mode": "no"}, "extensions": {"foo": {"path": "/p"}}}', marker=True)
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    assert hs.merged_by == 'tucked' and hs.origins == {'foo': {'path': '/p'}} and hs.origin_source == 'metadata'


def test_confext(tmp_path):
    meta(tmp_path, hier='etc', cls_dir='.systemd-confext', names='site\n')
    hs = state.read_hierarchy(str(tmp_path), '/etc', 'confext', mounts=[])
    assert hs.merged_by == 'systemd' and hs.extensions == ['site']


def test_stale_dev_is_not_a_merge(tmp_path):
    meta(tmp_path, dev='0:9999')
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    assert not hs.merged and any('stale metadata' in p for p in hs.problems)


def test_truncated_origin_is_a_problem(tmp_path):
    m = meta(tmp_path, origin='{"extensions": {"foo": ')
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    assert hs.merged_by == 'systemd' and hs.origin is None
    assert any(str(m / 'origin') in p and 'not valid JSON' in p for p in hs.problems)


def test_work_dir_is_read(tmp_path):
    m = meta(tmp_path)
    (m / 'work_dir').write_text('var/lib/extensions.mutable/.systemd-usr-workdir\n')
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    assert hs.work_dir == 'var/lib/extensions.mutable/.systemd-usr-workdir'


def test_huge_metadata_is_refused(tmp_path):
    m = meta(tmp_path)
    (m / 'extensions').write_bytes(b'x' * (state.MAX_META_SIZE + 10))
    try:
        state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    except state.StateError as e:
        assert str(m / 'extensions') in str(e)
    else:
        raise AssertionError('a 1 MiB extensions file must be refused')


def _overlay_at(path, minor=99, major=0):
    from ansible_collections.tucked.sysext.plugins.module_utils import mountinfo
    return mountinfo.Mount(mount_id=90 + minor, parent_id=1, major=major, minor=minor, root='/',
                           target=os.path.realpath(path), options=('ro',), optional=(), fstype='overlay',
                           source='sysext', super_options='ro')


def _swapping(monkeypatch, mounted, fresh_table):
    """state's view of the world: what statx sees at each call and what a fresh mountinfo shows."""
    calls = {'mounted': 0, 'mountinfo': 0}

    def statx_view(_host):
        calls['mounted'] += 1
        return mounted[min(calls['mounted'], len(mounted)) - 1]

    def mountinfo_read():
        calls['mountinfo'] += 1
        return fresh_table
    monkeypatch.setattr(state, '_mounted', statx_view)
    monkeypatch.setattr(state.mountinfo, 'reached', lambda _path: None)   # the table is made up: no lookup
    monkeypatch.setattr(state.mountinfo, 'read', mountinfo_read)
    return calls


def test_a_swap_during_the_read_is_read_again_not_taken_for_a_foreign_overlay(tmp_path, monkeypatch):
    """Without the lock, another run may swap the overlay between reading its recorded dev and
    stat-ing the hierarchy: the mix looks like a foreign overlay. The read is done again."""
    meta(tmp_path)          # records the device the new overlay has
    usr = tmp_path / 'usr'
    new = os.stat(usr).st_dev
    old_overlay, new_overlay = (7, 0, 4242, True), (8, os.major(new), os.minor(new), True)
    calls = _swapping(monkeypatch, [old_overlay, new_overlay], [_overlay_at(usr, os.minor(new), os.major(new))])
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[_overlay_at(usr, 4242)])
    assert hs.merged_by == 'systemd' and hs.problems == [] and hs.mount_id == 8
    assert calls['mountinfo'] == 1, 'the mount table passed in was stale: read again, once'


def test_a_mount_table_older_than_the_mount_is_read_again(tmp_path, monkeypatch):
    """The table (read before) shows an overlay that is gone: unmounted by a run that does not
    tuck (atomic=never), the base tree is visible for a moment. Not foreign: not merged."""
    (tmp_path / 'usr').mkdir()
    calls = _swapping(monkeypatch, [(5, 8, 1, True)], [])
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[_overlay_at(tmp_path / 'usr', 1)])
    assert (hs.merged_by, hs.problems, calls['mountinfo']) == ('none', [], 1)


def test_without_a_swap_the_hierarchy_is_read_once(tmp_path, monkeypatch):
    meta(tmp_path, dev='0:4242')
    usr = tmp_path / 'usr'
    calls = _swapping(monkeypatch, [(8, 0, 2, True)], [])
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[_overlay_at(usr, 2)])
    assert hs.merged_by == 'foreign' and calls['mounted'] == 2 and calls['mountinfo'] == 0


def test_an_offline_copy_is_not_a_merge(tmp_path, monkeypatch):
    """Metadata whose dev is the directory's own st_dev, but no mount there: systemd's
    is_our_mount_point() checks the mount point first, and so do we."""
    monkeypatch.undo()
    meta(tmp_path)
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    assert (hs.merged, hs.merged_by) == (False, 'none')
    assert any('not a mount point' in p for p in hs.problems), hs.problems


def test_a_fifo_in_the_metadata_of_an_unmerged_hierarchy_is_not_opened(tmp_path, monkeypatch):
    monkeypatch.undo()
    (tmp_path / 'usr/.systemd-sysext').mkdir(parents=True)
    os.mkfifo(tmp_path / 'usr/.systemd-sysext/dev')
    hs = state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    assert hs.merged_by == 'none'


def test_a_fifo_in_the_metadata_of_a_mount_point_is_refused_without_blocking(tmp_path):
    (tmp_path / 'usr/.systemd-sysext').mkdir(parents=True)
    os.mkfifo(tmp_path / 'usr/.systemd-sysext/dev')
    with pytest.raises(state.StateError) as e:
        state.read_hierarchy(str(tmp_path), '/usr', 'sysext', mounts=[])
    assert 'usr/.systemd-sysext/dev' in str(e.value) and 'FIFO' in str(e.value)
