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
