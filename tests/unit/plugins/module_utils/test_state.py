# -*- coding: utf-8 -*-
"""state.py on fake metadata (no mounts): the dev check decides whose merge it is."""

import os

from ansible_collections.tucked.sysext.plugins.module_utils import state


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
