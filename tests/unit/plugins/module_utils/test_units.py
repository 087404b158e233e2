# -*- coding: utf-8 -*-
"""Service manager actions after a change (EXTENSION_RELOAD_MANAGER=, EXTENSION_RESTART_UNITS=,
EXTENSION_RELOAD_OR_RESTART_UNITS=), with a fake systemctl that logs its calls."""

import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import units


@pytest.mark.parametrize('name,ok', [
    ('sshd.service', True), ('getty@tty1.service', True), ('a-b_c:d.timer', True), ('x.mount', True),
    ('foo@.service', False), ('.service', False), ('foo', False), ('foo.conf', False), ('bogus/name', False),
    ('a' * 260 + '.service', False), ('foo bar.service', False), ('@x.service', False)])
def test_unit_names_as_systemd_checks_them(name, ok):
    assert units.unit_name_is_valid(name) is ok


def test_collect_restart_wins_and_listing_implies_the_reload():
    a = units.collect([
        ('a', {'EXTENSION_RELOAD_MANAGER': 'no'}),
        ('b', {'EXTENSION_RESTART_UNITS': '  y.service x.service bogus/name ',
               'EXTENSION_RELOAD_OR_RESTART_UNITS': 'x.service z@1.service'}),
        ('c', {'EXTENSION_RELOAD_MANAGER': 'maybe'})])
    assert a.reload is True
    assert a.restart == ('x.service', 'y.service')
    assert a.reload_or_restart == ('z@1.service',)
    assert a.warnings == ("Invalid unit name 'bogus/name' in EXTENSION_RESTART_UNITS= of b, ignoring.",
                          "Failed to parse EXTENSION_RELOAD_MANAGER= of c, ignoring: 'maybe' is not a boolean")


@pytest.mark.parametrize('fields,reload', [
    ({}, False), ({'EXTENSION_RELOAD_MANAGER': '1'}, True), ({'EXTENSION_RELOAD_MANAGER': 'yes'}, True),
    ({'EXTENSION_RELOAD_MANAGER': '0'}, False), ({'EXTENSION_RESTART_UNITS': ''}, False),
    ({'EXTENSION_RELOAD_OR_RESTART_UNITS': 'a.service'}, True)])
def test_when_the_manager_is_reloaded(fields, reload):
    assert units.collect([('x', fields)]).reload is reload


def test_release_files_read_from_the_merged_tree(tmp_path):
    d = tmp_path / 'usr/lib/extension-release.d'
    d.mkdir(parents=True)
    (d / 'extension-release.tools').write_text('ID=_any\nEXTENSION_RESTART_UNITS="a.service"\n')
    (d / 'extension-release.bad').write_bytes(b'\x00\x01 not a release file')
    e = tmp_path / 'etc/extension-release.d'
    e.mkdir(parents=True)
    (e / 'extension-release.site').write_text('ID=_any\nEXTENSION_RELOAD_MANAGER=1\n')
    assert units.merged_releases(str(tmp_path), 'sysext', ['tools', 'bad', 'gone']) == \
        [('tools', {'ID': '_any', 'EXTENSION_RESTART_UNITS': 'a.service'})]
    assert units.merged_releases(str(tmp_path), 'confext', ['site']) == \
        [('site', {'ID': '_any', 'EXTENSION_RELOAD_MANAGER': '1'})]


def fake_systemctl(tmp_path, not_found=(), failing=()):
    log = tmp_path / 'calls'
    script = tmp_path / 'systemctl'
    script.write_text('#!/bin/sh\necho "$*" >> %s\n' % log
                      + ''.join('[ "$*" = "show -P LoadState %s" ] && { echo not-found; exit 0; }\n' % u for u in not_found)
                      + ''.join('case "$*" in *" %s") echo "Job failed" >&2; exit 1;; esac\n' % u for u in failing)
                      + '[ "$1" = show ] && echo loaded\nexit 0\n')
    os.chmod(script, 0o755)
    return str(script), log


def test_apply_reloads_then_restarts_and_stops_vanished_units(tmp_path):
    systemctl, log = fake_systemctl(tmp_path, not_found=['ext.service'], failing=['broken.service'])
    acts = units.collect([('e', {'EXTENSION_RESTART_UNITS': 'host.service ext.service broken.service',
                                 'EXTENSION_RELOAD_OR_RESTART_UNITS': 'web.service'})])
    done = units.apply(acts, systemctl)
    assert done['reloaded'] is True
    assert done['restarted'] == ['host.service']
    assert done['stopped'] == ['ext.service']
    assert done['reloaded_or_restarted'] == ['web.service']
    assert done['warnings'] == ['systemctl restart broken.service failed: Job failed']
    calls = log.read_text().splitlines()
    assert calls[0] == 'daemon-reload'
    assert '--no-block restart host.service' in calls and '--no-block stop ext.service' in calls
    assert '--no-block reload-or-restart web.service' in calls


def test_apply_does_nothing_without_a_reason(tmp_path):
    systemctl, log = fake_systemctl(tmp_path)
    assert units.apply(units.collect([('e', {'ID': '_any'})]), systemctl)['reloaded'] is False
    assert not log.exists()


def test_not_live_for_another_root(tmp_path):
    assert units.live(str(tmp_path)) is False
