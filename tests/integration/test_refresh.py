# -*- coding: utf-8 -*-
"""sysext_refresh end to end, each scenario in its own private mount namespace."""

import json
import os
import subprocess
import sys

import pytest

from conftest import run_driver
from lib import nsroot

SKIP_MSG = 'Skipping extension refresh because no change was found'


def loops_of(out):
    """The loop devices of the driver's scratch root that outlived its namespace (the other loop
    devices of this shared machine, other runs' included, are not ours to count)."""
    return nsroot.loops_of(out['scratch'], wait=5.0)


LEAK = r"""
import json, subprocess, sys
sys.path.insert(0, sys.argv[1])
from lib.nsroot import FakeRoot, loops_of, scratch_identity
r = FakeRoot()
img = r.add_raw('var/lib/extensions', 'leak')
loop = subprocess.run(['losetup', '--find', '--show', '--read-only', img], check=True, capture_output=True,
                      text=True).stdout.strip()
print(json.dumps({'scratch': scratch_identity(r), 'loop': loop, 'inside': loops_of(scratch_identity(r))}))
"""


def test_the_loop_check_sees_a_loop_device_that_outlives_its_namespace():
    """loops_of() must be able to fail: a loop device left behind by a namespace that is gone
    (its backing file then shows only as /root/var/lib/extensions/leak.raw) is found by its
    scratch identity, and not by another root's."""
    res = nsroot.run_in_ns([sys.executable, '-c', LEAK, os.path.dirname(nsroot.HERE)], timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    try:
        assert [ln.split()[0] for ln in out['inside']] == [out['loop']], out
        found = nsroot.loops_of(out['scratch'])
        assert [ln.split()[0] for ln in found] == [out['loop']], (found, out)
        other = dict(out['scratch'], root='/tmp/tucked-ns-elsewhere/root', devs=['0:1'])
        assert out['loop'] not in ' '.join(nsroot.loops_of(other))
    finally:
        subprocess.run(['losetup', '-d', out['loop']], check=False)


@pytest.fixture(scope='module')
def lifecycle(sid_root):
    return run_driver('refresh_driver.py', 'lifecycle')


def test_merge_makes_everything_visible(lifecycle):
    m = lifecycle['steps']['merge']
    assert m['changed'] is True and m['atomic'] is True, m
    assert m['files'] == ['foo', 'sqx 1', 'opt', 'ero', 'site'], 'directory, squashfs, erofs, /opt and confext'
    assert m['usr_id'] != lifecycle['base_usr_id']
    assert m['hierarchies']['/usr']['after'] == ['ero', 'foo', 'sqx']
    assert m['hierarchies']['/usr']['merged_by_after'] == 'tucked'


def test_second_run_changes_nothing(lifecycle):
    s = lifecycle['steps']
    assert s['again']['changed'] is False
    assert s['again']['skipped_reason'] == 'no change was found'
    assert s['again']['usr_id'] == s['merge']['usr_id'], 'nothing was remounted'


def test_check_mode_reports_but_mounts_nothing(lifecycle):
    s = lifecycle['steps']
    assert s['check']['changed'] is True and s['check']['skipped_reason'] == 'check mode'
    assert s['check']['usr_id'] == s['merge']['usr_id']
    assert s['check']['diff_shown'], 'the diff lists the new extension'


def test_add_replace_remove(lifecycle):
    s = lifecycle['steps']
    assert s['add']['changed'] is True and s['add']['files'] == ['newone']
    assert s['add']['usr_id'] != s['merge']['usr_id']
    assert s['replace']['changed'] is True and s['replace']['files'] == ['sqx 2', 'opt 2']
    assert s['replace']['busy_reader_sees'] == 'sqx 1', 'a busy old overlay does not block the swap'
    assert [r['class'] for r in s['replace']['reasons']] == ['sysext'] * len(s['replace']['reasons'])
    assert s['remove']['changed'] is True and s['remove']['files'] == [None]
    assert all(s[k]['atomic'] is True for k in ('add', 'replace', 'remove'))


def test_systemd_262_reads_our_merge(lifecycle):
    s = lifecycle['steps']
    status = {e['hierarchy']: e['extensions'] for e in json.loads(s['status_262'])}
    assert status == {'/usr': ['foo', 'newone', 'sqx'], '/opt': ['foo', 'newone', 'sqx']}
    assert SKIP_MSG in s['refresh_262'], 'systemd-sysext refresh 262 skips after our merge'
    assert SKIP_MSG in s['confext_refresh_262'], 'systemd-confext refresh 262 skips after our merge'


def test_unmerge(lifecycle):
    s = lifecycle['steps']
    assert s['unmerge']['changed'] is True and s['unmerge']['files'] == [None, None]
    assert s['unmerge_again']['changed'] is False
    assert lifecycle['loops'] == '', 'no loop device left behind'


def test_interop_with_systemd_262(sid_root):
    out = run_driver('refresh_driver.py', 'interop-262')
    assert out['ours_on_systemds']['changed'] is False, "systemd 262's merge is what we would merge"
    assert out['id_after_skip'] == out['id_systemd']
    assert out['ours_refresh']['changed'] is True and out['ours_refresh']['atomic'] is True
    assert out['facts']['/usr'] == 'tucked'
    assert SKIP_MSG in out['systemd_refresh']
    assert json.loads(out['systemd_status'])[1]['extensions'] == ['foo', 'sqx']
    assert "Unmerged '/usr'." in out['systemd_unmerge']
    assert out['after'] == {'/usr': 'none', '/opt': 'none', '/etc': 'none'}
    assert not loops_of(out)


def test_interop_with_systemd_252():
    out = run_driver('refresh_driver.py', 'interop-252')
    assert out['ours_on_252']['changed'] is True, '252 records no origin: refresh'
    assert out['ours_again']['changed'] is False
    assert out['merged_by'] == 'tucked'
    assert 'Unmerged' in out['unmerge_252'] and out['after_unmerge'] == 'none', '252 unmerges our merge'
    assert out['sys_merge']['changed'] is True and out['sys_merge_by'] == 'systemd'
    assert out['sys_again']['changed'] is False, 'backend=systemd on 252 still skips'
    assert out['origin_source'] == 'record'
    assert out['sys_change']['changed'] is True and out['sys_change']['atomic'] is False
    assert out['sys_unmerge']['changed'] is True and out['visible'] == ['base']


def test_no_gap_during_100_refreshes(sid_root):
    out = run_driver('refresh_driver.py', 'atomicity')
    ours = out['ours']
    assert ours['atomic'] is True
    assert ours['refreshes'] == 100 and ours['reads'] > 1000
    assert ours['misses'] == 0, ours
    assert out['loops'] == ''


def test_faults_leave_the_previous_state(sid_root):
    out = run_driver('refresh_driver.py', 'faults')
    good = out['good']
    assert good['foo'] == 'foo' and good['sqx'] == 'sqx'
    for case, words in (('corrupt', 'cannot mount'), ('deleted', 'disappeared'), ('replaced', 'changed while')):
        c = out[case]
        assert c['error'] and words in c['error'], (case, c)
        assert 'var/lib/extensions/' in c['error'], 'the message names the image'
        assert (c['usr_id'], c['foo'], c['sqx']) == (good['usr_id'], 'foo', 'sqx'), (case, 'previous state intact')
    f = out['foreign']
    assert f['failed'] is True and 'foreign overlay' in f['msg'] and '/opt' in f['msg']
    assert f['usr_id'] == good['usr_id']
    assert out['legacy']['atomic'] is True and out['legacy']['sqx'] == 'swapped'
    assert out['legacy']['option_string'], 'the mount(2) fallback was the one used'
    assert out['never']['changed'] is True and out['never']['atomic'] is False and out['never']['foo'] == 'foo'
    assert not loops_of(out), 'no loop device outlives the namespace'


def test_mutable_modes(sid_root):
    out = run_driver('refresh_driver.py', 'mutable')
    modes = out['modes']
    for mode, res in modes.items():
        assert res['merge']['changed'] is True and res['merge']['atomic'] is True, (mode, res)
        assert SKIP_MSG in res['systemd_refresh'], (mode, 'systemd 262 accepts our %s merge' % mode)
        assert res['again']['changed'] is False, mode
        assert res['unmerge']['changed'] is True, mode
        assert res['hier_modes_merged'] == res['hier_modes_after'] == out['hier_modes_before'], mode
        assert res['leftover_workdirs'] == [], (mode, 'work directories are removed with their overlay')
    for mode in ('yes', 'auto'):
        assert modes[mode]['writable'] is True
        assert modes[mode]['kept'] == mode, 'data written through a mutable merge survives a refresh'
        assert modes[mode]['in_upper'] == mode, 'and stays in the mutable directory after unmerge'
    for mode in ('ephemeral', 'ephemeral-import'):
        assert modes[mode]['writable'] is True and modes[mode]['kept'] is None and modes[mode]['in_upper'] is None
    for mode in ('import', 'no'):
        assert modes[mode]['writable'] is False
    assert out['wrong_mode']['failed'] and 'has mode 0700, ought to have mode 0755' in out['wrong_mode']['msg']
    assert out['wrong_mode']['usr_id_kept'], 'the previous merge is intact'
    assert out['read_only']['failed'] and 'Read-only file system' in out['read_only']['msg']
    assert out['read_only']['usr_id_kept'] and out['read_only']['foo'] == 'foo'
    assert out['full']['failed'] and 'No space left on device' in out['full']['msg'], out['full']
    assert out['full']['usr_id_kept'] and out['full']['foo'] == 'foo', 'a full disk leaves the merge as it was'
    assert out['loops'] == ''
