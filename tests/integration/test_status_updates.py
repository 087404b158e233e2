# -*- coding: utf-8 -*-
"""The status playbook's UPDATES (issue 18): which hosts are behind the newest version their
repository offers them, from sysext_image state=query (status_updates_driver.py, real
ansible-playbook on three scratch roots, a repository served on 127.0.0.1); and the rollout's
check mode saying what it would download where. Then the done-when of issue 18: a signed index,
version latest, one host per batch, verified after each refresh; every host on the newest, a
second run that downloads and changes nothing, and a broken newest version rolled back in the
first batch, the later ones untouched."""

import pytest

from conftest import run_driver


@pytest.fixture(scope='module')
def fleet():
    return run_driver('status_updates_driver.py', timeout=600)


def image(fleet, version):
    return '/tool/tool-%s-%s.raw' % (version, fleet['arch'])


def test_the_rollouts_give_t1_the_pinned_version_and_t2_the_latest(fleet):
    t1, t2 = fleet['t1'], fleet['t2']
    assert t1['rc'] == 0 and not t1['traceback'], t1['out']
    assert t1['merged'] == {'t1': '1.0\n', 't2': None, 't3': None}
    assert 't1: changed | sysext tool none -> 1.0 (downloaded %s)' % (fleet['url'] + image(fleet, '1.0')[6:]) in t1['out']
    assert t2['rc'] == 0 and t2['merged'] == {'t1': '1.0\n', 't2': '2.0\n', 't3': None}, t2['out']
    # (the index once per play: the check play's and the batch's)
    assert t2['requests'] == ['/tool/SHA256SUMS', '/tool/SHA256SUMS', image(fleet, '2.0')]


def test_the_rollout_in_check_mode_says_what_it_would_download_where_and_downloads_nothing(fleet):
    c = fleet['check']
    assert c['rc'] == 0 and not c['traceback'], c['out']
    url = fleet['url'] + image(fleet, '2.0')[6:]
    assert 't1: would change | sysext tool 1.0 -> 2.0 (would download %s)' % url in c['out'], c['out']
    assert 't3: would change | sysext tool none -> 2.0 (would download %s)' % url in c['out'], c['out']
    # pending (a repository entry is, until its index is read), but nothing to do: current, at the version chosen
    assert 't2: current | sysext tool 2.0' in c['out'] and 't2: changed' not in c['out'], c['out']
    assert set(c['requests']) == {'/tool/SHA256SUMS'}, 'no image downloaded'
    assert c['merged'] == fleet['t2']['merged']


def test_status_names_the_host_behind_the_current_one_and_the_missing_one(fleet):
    s = fleet['status']
    assert s['rc'] == 0 and not s['traceback'] and s['changed'] == 1, s['out']     # only the JSON file written
    url = fleet['url'] + image(fleet, '2.0')[6:]
    assert 't1: sysext tool BEHIND: runs 1.0, 2.0 available, a rollout downloads %s' % url in s['out'], s['out']
    assert 't2: sysext tool CURRENT: runs 2.0' in s['out']
    assert 't3: sysext tool MISSING: not merged, 2.0 available, a rollout downloads %s' % url in s['out']
    assert 'Behind: t1' in s['out']
    assert s['requests'] == ['/tool/SHA256SUMS'], 'the index once for the play, no image'
    report = s['json']
    assert report['behind'] == ['t1']
    got = {u['host']: (u['state'], u['merged'], u['available'], u['versions'], u['selected']) for u in report['updates']}
    assert got == {'t1': ('behind', '1.0', '2.0', ['1.0'], '1.0'), 't2': ('current', '2.0', '2.0', ['2.0'], '2.0'),
                   't3': ('missing', None, '2.0', [], None)}
    # version latest is no version to drift from: only the host without it drifts
    assert [(d['host'], d['class'], d['state']) for d in report['drift']] == [('t3', 'sysext', 'missing')]
    assert 't3: sysext tool wanted latest: not merged' in s['out']


def test_status_without_sysext_images_reports_as_before(fleet):
    p = fleet['plain']
    assert p['rc'] == 0 and not p['traceback'], p['out']
    assert 'UPDATES' not in p['out'] and 'Behind:' not in p['out'] and p['requests'] == []
    assert p['json']['updates'] == [] and p['json']['behind'] == []
    assert sorted((d['host'], d['state']) for d in p['json']['drift']) == [('t1', 'older'), ('t3', 'missing')]


def test_a_verified_fleet_rollout_of_latest_in_batches_ends_every_host_on_the_newest(fleet):
    f = fleet['fleet']
    assert f['rc'] == 0 and not f['traceback'], f['out']
    assert f['merged'] == {h: '2.0\n' for h in ('t1', 't2', 't3')}
    # the signed index once per play (the check play, the batch play of three batches), 2.0 for t1 and t3 only
    assert sorted(f['requests']) == sorted(['/tool/SHA256SUMS', '/tool/SHA256SUMS.gpg'] * 2 + [image(fleet, '2.0')] * 2), \
        f['requests']
    assert 't1: changed | sysext tool 1.0 -> 2.0' in f['out'] and 't3: changed | sysext tool none -> 2.0' in f['out']


def test_a_second_fleet_run_downloads_nothing_and_changes_nothing(fleet):
    f = fleet['fleet_again']
    assert f['rc'] == 0 and f['changed'] == 0, f['recap']
    assert not [r for r in f['requests'] if r.endswith('.raw')], f['requests']
    assert f['merged'] == fleet['fleet']['merged']


def test_a_broken_newest_version_is_rolled_back_in_the_first_batch_and_stops_the_rollout(fleet):
    b = fleet['broken']
    assert b['rc'] != 0 and 'Verification failed after the refresh' in b['out'] and 'Rolled back: tool' in b['out'], \
        b['out']
    failed = [h for h, r in b['recap'].items() if r['failed']]
    assert failed == ['t1'], b['recap']
    assert b['merged'] == {h: '2.0\n' for h in ('t1', 't2', 't3')}, 'the first batch back on 2.0, the others untouched'
    assert 'tool-3.0.raw' in b['stored']['t1'], b['stored']
    assert all(not any('3.0' in f for f in b['stored'][h]) for h in ('t2', 't3')), b['stored']
    assert [r for r in b['requests'] if r.endswith('.raw')] == [image(fleet, '3.0')], 'only the first batch downloaded it'
