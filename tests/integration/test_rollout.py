# -*- coding: utf-8 -*-
"""The rollout and status playbooks on three throw-away targets (real ansible-playbook)."""

import pytest

from conftest import run_driver

HOSTS = ('t1', 't2', 't3')
V1 = {'usr': '1.0\n', 'opt': 'hello 1.0\n', 'etc': 'motd 1\n', 'selected': '../tucked-sysext/store/hello/hello-1.0.raw'}
V2 = {'usr': '2.0\n', 'opt': 'hello 2.0\n', 'etc': 'motd 2\n', 'selected': '../tucked-sysext/store/hello/hello-2.0.raw'}


@pytest.fixture(scope='module')
def rollout():
    return run_driver('rollout_driver.py', 'rollout', timeout=900)


def shows(step, host, expected):
    return {k: step['seen'][host][k] for k in expected} == expected


def test_preflight_refuses_an_incompatible_image_before_any_host_changes(rollout):
    s = rollout['preflight_incompatible']
    assert s['rc'] != 0 and s['failed'] == list(HOSTS), s['tail']
    assert "is for OS 'fedora'" in s['tail']
    assert all(s['seen'][h]['selected'] is None and s['seen'][h]['stored'] == [] for h in HOSTS)


def test_check_mode_reports_and_changes_nothing(rollout):
    s = rollout['check_v1']
    assert s['rc'] == 0 and s['changed'] == len(HOSTS), s['tail']
    assert all(s['seen'][h]['selected'] is None and s['seen'][h]['stored'] == [] for h in HOSTS)


def test_v1_rollout_merges_on_every_host(rollout):
    s = rollout['v1']
    assert s['rc'] == 0, s['tail']
    assert all(shows(s, h, V1) for h in HOSTS), s['seen']
    # one image task (two images) and one handler refresh per host: one refresh, not one per image
    assert all(s['recap'][h]['changed'] == 2 for h in HOSTS), s['recap']
    assert s['tail'].count('RUNNING HANDLER') == 1 or 'Refresh extensions' in s['tail']


def test_second_run_changes_nothing(rollout):
    s = rollout['v1_again']
    assert s['rc'] == 0 and s['changed'] == 0, s['recap']
    assert all(shows(s, h, V1) for h in HOSTS)
    play = s['tail'].split('PLAY [Roll out, a batch at a time]')[1].split('PLAY [')[0]
    assert 'skipping: no hosts matched' in play, 'hosts already current skip the batches'
    assert all('%s: current | sysext hello 1.0, confext motd 1' % h in s['tail'] for h in HOSTS), 'the summary'


def test_v2_upgrade_keeps_v1_for_rollback(rollout):
    s = rollout['v2']
    assert s['rc'] == 0 and s['changed'] == 2 * len(HOSTS), s['recap']
    assert all(shows(s, h, V2) for h in HOSTS)
    assert all(s['seen'][h]['stored'] == ['hello-1.0.raw', 'hello-2.0.raw'] for h in HOSTS)


def test_preflight_refuses_an_image_the_policy_refuses_before_any_host_changes(rollout):
    s = rollout['preflight_policy']
    assert s['rc'] != 0 and s['failed'] == list(HOSTS), s['tail']
    assert '.raw does not match the image policy root=erofs:=unused+absent (parameter): it is squashfs' in s['tail']
    assert all(shows(s, h, V2) for h in HOSTS), s['seen']


def test_failed_verification_rolls_the_host_back_and_stops_the_rollout(rollout):
    s = rollout['v3_broken']
    assert s['rc'] != 0 and s['failed'] == ['t1'], s['recap']
    assert 'Verification failed after the refresh' in s['tail'] and 'Rolled back: hello' in s['tail']
    assert '/usr/share/hello/VERSION does not exist' in s['tail']
    assert shows(s, 't1', V2), 'the first batch was rolled back to 2.0'
    assert 'hello-3.0.raw' in s['seen']['t1']['stored']
    assert all(shows(s, h, V2) and 'hello-3.0.raw' not in s['seen'][h]['stored'] for h in ('t2', 't3')), \
        'max_fail_percentage 0: the later batches were never touched'


def test_status_reports_versions_refresh_and_drift(rollout):
    s = rollout['status']
    assert s['rc'] == 0 and s['changed'] == 1, s['tail']          # only the JSON file written
    assert 't1               no       sysext hello 2.0*, confext motd 2*' in s['tail']
    assert 't3               needed   sysext hello 1.0!, confext motd 2*' in s['tail']
    assert 't3: sysext hello wanted 2.0: merged, running version unknown; the image in place is 1.0' in s['tail']
    report = s['json']
    assert report['needs_refresh'] == ['t3'] and report['no_facts'] == []
    assert [(d['host'], d['name'], d['state']) for d in report['drift']] == [('t3', 'hello', 'unknown')]
    assert {(r['host'], r['name'], r['running_version']) for r in report['rows']} >= {
        ('t1', 'hello', '2.0'), ('t2', 'hello', '2.0'), ('t1', 'motd', '2')}


def test_facts_report_writes_one_object_by_host_each_from_its_own_root(rollout):
    s = rollout['facts_report']
    assert s['rc'] == 0, s['tail']
    assert sorted(s['json']) == sorted(HOSTS), s['json']
    assert {h: f['root'] for h, f in s['json'].items()} == s['roots']
    assert s['json']['t1']['hierarchies']['/usr']['extensions'] == ['hello']


def test_refresh_playbook_refreshes_each_host_at_its_own_root(rollout):
    s = rollout.get('refresh_playbook')
    assert s is not None, 'not run: the facts report did not show every host at its own root'
    assert s['rc'] == 0, s['tail']
    # t3's selection went back to 1.0 behind the rollout's back: only t3 changes
    assert s['changed'] == 1, s['recap']
    assert s['seen']['t3']['usr'] == '1.0\n' and s['seen']['t1']['usr'] == '2.0\n', s['seen']
