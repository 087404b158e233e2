# -*- coding: utf-8 -*-
"""The role rolling out a host laid out for systemd-sysupdate as Flatcar's sysext-bakery lays it
out, with the host's own transfer definition (sysupdate_driver.py): the newest version stored
under the transfer's names, the CurrentSymlink= switched, InstancesMax= honoured, the index
verified with the host's import keyring, a second run changing nothing, and systemd-sysupdate 262
reading the result as its own."""

import pytest

from conftest import run_driver


@pytest.fixture(scope='module')
def run():
    return run_driver('sysupdate_driver.py', timeout=600)


def ok(play):
    return play['rc'] == 0 and not play['traceback'] and 'failed=0' in play['recap']


def test_verify_without_a_keyring_and_unsupported_transfers_are_refused_before_any_change(run):
    no_keyring, unsupported = run['no_keyring'], run['unsupported']
    assert no_keyring['rc'] != 0 and not no_keyring['traceback']
    msg, = [r['msg'] for rs in no_keyring['tasks'].values() for r in rs if r.get('failed')]
    assert '/etc/sysupdate.docker.d/docker.conf ask for the verification of SHA256SUMS.gpg' in msg
    assert 'give sysext_keyring' in msg
    msg, = [r['msg'] for rs in unsupported['tasks'].values() for r in rs if r.get('failed')]
    assert '/etc/sysupdate.tree.d/tree.conf: a url-tar source with a directory target' in msg
    assert run['refused_unchanged'] and run['refused_requests'] == []


def test_check_mode_says_what_it_would_download_and_writes_nothing(run):
    check = run['check']
    assert ok(check), check['recap']
    would, = check['tasks']['Store and select the wanted extension images'][0]['results']
    assert would['changed'] and would['selected'] == '2.0' and would['repository']['signed']
    assert would['path'] == '/opt/extensions/docker/docker-2.0-%s.raw' % run['arch']
    assert run['check_unchanged'] and run['check_requests'] == ['/docker/SHA256SUMS', '/docker/SHA256SUMS.gpg']


def test_the_newest_version_lands_under_the_transfers_names_and_the_link_is_switched(run):
    arch = run['arch']
    first = run['first']
    assert ok(first) and 'changed=' in first['recap'], first['recap']
    stored, = first['tasks']['Store and select the wanted extension images'][0]['results']
    assert stored['selected'] == '2.0' and stored['previous'] == '1.0' and stored['repository']['signed']
    assert stored['link'] == '/etc/extensions/docker.raw'
    # InstancesMax=2: the new one and one older; 0.9 is pruned
    assert run['store'] == ['docker-1.0-%s.raw' % arch, 'docker-2.0-%s.raw' % arch]
    assert stored['removed'] == ['/opt/extensions/docker/docker-0.9-%s.raw' % arch]
    assert run['link'] == '../../opt/extensions/docker/docker-2.0-%s.raw' % arch
    assert run['merged'] == '2.0'
    assert run['first_requests'] == ['/docker/SHA256SUMS', '/docker/SHA256SUMS.gpg', '/docker/docker-2.0-%s.raw' % arch]


def test_a_second_run_changes_and_downloads_nothing(run):
    again = run['again']
    assert ok(again) and 'changed=0' in again['recap'], again['recap']
    assert run['again_requests'] == ['/docker/SHA256SUMS', '/docker/SHA256SUMS.gpg']


def test_the_rollout_playbook_reads_the_transfers_in_its_pre_flight_and_its_batches(run):
    rollout = run['rollout']
    assert ok(rollout) and 'changed=0' in rollout['recap'], rollout['recap']
    check, batch = rollout['tasks']['Store and select the wanted extension images']
    for stored, in (check['results'], batch['results']):
        assert not stored['changed'] and stored['selected'] == '2.0', stored
        assert stored['path'] == '/opt/extensions/docker/docker-2.0-%s.raw' % run['arch']
    # the index: in the check play and in the batch (one fetch per play)
    assert run['rollout_requests'] == ['/docker/SHA256SUMS', '/docker/SHA256SUMS.gpg'] * 2


def test_systemd_sysupdate_reads_the_result_as_its_own(run):
    got = run['sysupdate']
    if 'skipped' in got:
        pytest.skip(got['skipped'])
    assert got['rc'] == 0, got['stderr']
    assert got['list']['current'] == '2.0' and got['list']['all'] == ['2.0', '1.0'], got
