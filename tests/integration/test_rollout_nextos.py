# -*- coding: utf-8 -*-
"""The rollout playbook's next-OS check (sysext_next_os_release / sysext_next_os_release_file) on
three throw-away targets (real ansible-playbook): an OS update that would drop an extension is
refused by the pre-flight, naming host, image and field, before any host changes."""

import pytest

from conftest import run_driver

HOSTS = ('t1', 't2', 't3')
V1 = '../tucked-sysext/store/hello/hello-1.0.raw'
V2 = '../tucked-sysext/store/hello/hello-2.0.raw'


@pytest.fixture(scope='module')
def nextos():
    return run_driver('rollout_driver.py', 'nextos', timeout=900)


def unchanged(s):
    return all(s['seen'][h]['selected'] == V1 and s['seen'][h]['stored'] == ['hello-1.0.raw']
               and s['seen'][h]['usr'] == '1.0\n' for h in HOSTS)


def refusal(s, host):
    lines = [ln for ln in s['refusals'] if ln.startswith('fatal: [%s]' % host)]
    assert len(lines) == 1, s['refusals'] or s['tail']
    return lines[0]


def test_v1_rolled_out(nextos):
    s = nextos['v1']
    assert s['rc'] == 0 and unchanged(s), s['tail']


def test_next_os_as_data_refuses_on_every_host_before_any_change(nextos):
    s = nextos['refused_data']
    assert s['rc'] != 0 and s['failed'] == list(HOSTS), s['tail']
    for h in HOSTS:
        line = refusal(s, h)
        assert ('%s: the next OS (next_os_release: ID=debian VERSION_ID=13) would drop 2 extension(s) of %s: sysext '
                'hello 1.0 (/var/lib/extensions/hello.raw), field VERSION_ID: extension \'hello\' is for OS version '
                '\'12\' (VERSION_ID=12), but deployed on top of \'13\' (VERSION_ID=13 in next_os_release); confext '
                'motd 1 (/var/lib/confexts/motd.raw), field VERSION_ID: extension \'motd\' is for OS version \'12\' '
                '(VERSION_ID=12), but deployed on top of \'13\' (VERSION_ID=13 in next_os_release). Make images that '
                'match the next OS available' % (h, nextos['roots'][h])) in line, line
    assert 'PLAY [Roll out, a batch at a time]' not in s['tail']
    assert unchanged(s), s['seen']


def test_check_mode_refuses_too(nextos):
    s = nextos['refused_check']
    assert s['rc'] != 0 and s['failed'] == list(HOSTS), s['tail']
    assert 'field VERSION_ID' in refusal(s, 't1')
    assert unchanged(s)


def test_next_os_release_file_on_each_host_refuses_only_where_it_drops(nextos):
    s = nextos['refused_file']
    assert s['rc'] != 0 and s['failed'] == ['t2'], s['recap']
    line = refusal(s, 't2')
    assert 'the next OS (%s/next-os-release: ID=debian VERSION_ID=13)' % nextos['roots']['t2'] in line, line
    assert not [ln for ln in s['refusals'] if ln.startswith(('fatal: [t1]', 'fatal: [t3]'))]
    assert unchanged(s), 'any_errors_fatal: t1 and t3, fine, were not rolled out either'


def test_malformed_next_os_release_fails_naming_the_line(nextos):
    s = nextos['malformed']
    assert s['rc'] != 0 and s['failed'] == list(HOSTS), s['tail']
    assert "next_os_release line 2 is not KEY=VALUE ('VERSION_ID 13')" in refusal(s, 't1')
    assert unchanged(s)


def test_next_os_that_keeps_the_images_lets_the_rollout_through(nextos):
    s = nextos['accepted_text']
    assert s['rc'] == 0 and s['failed'] == [], s['tail']
    assert all(s['seen'][h]['selected'] == V2 and s['seen'][h]['usr'] == '2.0\n' for h in HOSTS), s['seen']
