# -*- coding: utf-8 -*-
"""Hostile and unusual roots (issue 15): see hostile_driver.py."""

from conftest import run_driver


def test_run_symlink_writes_nothing_outside_the_root():
    out = run_driver('hostile_driver.py', 'run-symlink')
    assert out['merge']['ok'] and out['refresh']['ok'] and out['unmerge']['ok'], out
    assert out['seen'] == ['foo', 'sq']
    assert out['outside'] == [], 'lock, stage, held submounts and cache stay inside the root'
    assert 'tucked-sysext.lock' in out['inside'], out['inside']


def _opt(case):
    out = run_driver('hostile_driver.py', case)
    assert out['merge']['ok'], out['merge']
    assert out['seen'] == ['foo', 'opt'], out
    assert out['mounts']['var/opt'] == ['overlay'] and out['mounts']['opt'] == [], out['mounts']
    h = out['facts']['hierarchies']['/opt']
    assert h['merged_by'] == 'tucked' and h['path'].endswith('/var/opt'), h
    assert out['refresh']['ok'] and out['refresh']['changed'], out['refresh']
    assert out['seen_after'] == 'bar'
    assert out['unmerge']['ok'], out['unmerge']
    assert out['after'] == {'var/opt': [], 'usr': []}, out['after']


def test_opt_as_relative_symlink():
    _opt('opt-relative')


def test_opt_as_absolute_symlink_stays_in_the_root():
    _opt('opt-absolute')


def test_fifo_metadata_of_an_unmerged_root_never_blocks():
    out = run_driver('hostile_driver.py', 'fifo-dev')
    assert out['facts']['ok'], out['facts']
    assert out['facts']['hierarchies']['/usr']['merged_by'] == 'none'
    assert out['unmerge']['ok'] and out['unmerge']['changed'] is False, out['unmerge']
    assert out['merge']['ok'] and out['seen'] == 'foo', out
    assert out['unmerge_after']['ok'] and out['unmerge_after']['changed'], out['unmerge_after']


def test_fifo_os_release_unmerge_works_and_merge_names_the_file():
    out = run_driver('hostile_driver.py', 'fifo-os-release')
    assert out['merge']['ok'], out['merge']
    assert not out['refresh']['ok'] and not out['refresh'].get('hung'), out['refresh']
    assert 'os-release' in out['refresh']['error'] and 'FIFO' in out['refresh']['error'], out['refresh']
    assert not out['facts'].get('hung'), out['facts']
    assert out['unmerge']['ok'] and out['unmerge']['changed'], out['unmerge']
    assert out['mounts'] == []


def test_offline_copy_of_a_merged_tree_is_not_a_merge():
    out = run_driver('hostile_driver.py', 'offline-copy')
    h = out['facts']['hierarchies']['/usr']
    assert h['merged_by'] == 'none', h
    assert any('not a mount point' in p for p in h['problems']), h
    assert out['merge']['ok'] and out['seen'] == 'foo' and out['mounts'] == ['overlay'], out
    assert out['unmerge']['ok'] and out['after'] == [], out


def test_block_device_extension_is_merged():
    out = run_driver('hostile_driver.py', 'block-device')
    img = out['facts']['images']['blk.raw']     # systemd names a block device by its whole file name
    assert img['type'] == 'block' and img['compatible'], img
    assert out['merge']['ok'] and out['merge']['changed'] and out['seen'] == 'blk', out
    assert out['again']['ok'] and out['again']['changed'] is False, out['again']
    assert out['unmerge']['ok'], out['unmerge']


def test_backend_systemd_exit_zero_without_a_merge_is_a_failure():
    out = run_driver('hostile_driver.py', 'backend-exit-zero')
    assert out['mounts'] == [], 'systemd-sysext 252 merged nothing'
    m = out['merge']
    assert not m['ok'], m
    assert 'exited 0, but' in m['error'] and 'usr shows no merge instead of foo' in m['error'], m
    assert 'MS_SLAVE' in m['error'] and m['partial'] is False, m


def test_submount_survives_unmerge_of_a_root_bound_onto_itself():
    out = run_driver('hostile_driver.py', 'self-bind-submount')
    assert out['merge']['ok'] and out['unmerge']['ok'], out
    a = out['after']
    assert a['hello'].startswith('error') and a['usr'] == [], 'unmerged'
    assert a['data'] == 'kept' and 'tmpfs' in a['mounts'], a


def test_refresh_in_another_tools_unmount_mount_gap_is_retried_once():
    out = run_driver('hostile_driver.py', 'refresh-race')
    assert out['merge']['ok'], out['merge']
    res = out['refresh']
    assert res['ok'] and res['changed'], res
    assert any('another tool' in w and 'retried' in w for w in res['warnings']), res['warnings']
    assert out['seen'] == ['foo', 'bar'] and out['stack'] == ['overlay'], out
    assert out['unmerge']['ok'] and out['after'] == [], out


def test_unmerge_in_another_tools_unmount_mount_gap_keeps_the_base_and_is_retried_once():
    out = run_driver('hostile_driver.py', 'unmerge-race')
    base = out['base']
    assert len(base) == 1 and out['merge']['ok'], out       # /usr's own mount (a bind of itself)
    assert out['raced'] == 1, 'the other tool\'s remount did not happen'
    res = out['unmerge']
    assert res['ok'] and res['changed'], res
    assert any('another tool' in w and 'retried' in w for w in res['warnings']), res['warnings']
    assert out['after'] == base, 'the base /usr mount must stay, the remounted merge go: %s' % out
    assert out['hello'].startswith('error'), out


def test_a_propagated_copy_below_a_self_bind_is_one_merge_not_an_interrupted_swap():
    out = run_driver('hostile_driver.py', 'self-bind-twice')
    assert out['merge']['ok'] and out['stack'] == ['tmpfs', 'overlay', 'overlay'], out
    again = out['again']
    assert again['ok'] and again['changed'] is False and again['warnings'] == [], again
    assert out['hello'] == 'foo'
    assert out['unmerge']['ok'] and out['unmerge']['changed'] and out['after'] == ['tmpfs'], out


def test_squashfs_out_of_line_xattr_is_read_as_the_kernel_reads_it():
    out = run_driver('hostile_driver.py', 'xattr-kernel')
    for variant, value in (('false', 'false'), ('short-reference', 'false'), ('value-short', None),
                           ('reference-beyond', None)):
        seen = out[variant]
        if value is None:
            assert all(v.startswith('error: ') for v in seen.values()), (variant, seen)
            assert seen['kernel'] == 'error: Input/output error', (variant, seen)
        else:
            assert set(seen.values()) == {value}, (variant, seen)
    images = out['facts']['images']
    assert images['false']['compatible'] and images['short-reference']['compatible'], images
    for variant in ('value-short', 'reference-beyond'):
        img = images[variant]
        assert img['compatible'] is False and '%s.raw has no' % variant in img['reason'], img
        assert ('extension-release.orig in it was passed over, as systemd passes it over: its '
                'user.extension-release.strict xattr cannot be read (corrupt') in img['reason'], img
    assert out['loops'] == []


def test_a_merge_with_a_deeply_nested_origin_is_named_and_can_be_unmerged():
    out = run_driver('hostile_driver.py', 'deep-origin')
    assert out['facts']['ok'] and out['unmerge']['ok'], out
    h = out['facts']['hierarchies']['/usr']
    assert h['merged_by'] == 'systemd' and h['extensions'] == ['old'], out['facts']
    assert any('.systemd-sysext/origin is not an origin record: its JSON is nested too deeply' in p
               for p in h['problems']), h['problems']
    assert out['before'] == ['tmpfs'], out
    assert out['unmerge']['changed'] and out['after'] == [], out


def test_a_fifo_at_the_record_s_temporary_name_never_blocks_backend_systemd():
    out = run_driver('hostile_driver.py', 'record-fifo')
    assert out['merge']['ok'] and out['merge']['changed'], out['merge']
    assert out['record'] == {'tmp_left': False, 'written': True}, out
    assert out['again']['ok'] and out['again']['changed'] is False, 'the record lets 252\'s merge be skipped'
    res = out['in_the_way']
    assert not res['ok'] and res['partial'] is True, res
    assert ('systemd-sysext merged, but the record of what it merged cannot be written to' in res['error']
            and 'record-sysext.json.tmp: File exists; remove it and run again' in res['error']), res
    assert out['unmerge']['ok'] and out['mounts'] == [], out
