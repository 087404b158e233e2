# -*- coding: utf-8 -*-
"""The next-OS check of sysext_facts against systemd-sysext 262 (nextos_driver.py): for every next
os-release, the images sysext_facts says would still match are exactly those systemd-sysext and
systemd-confext 262 merge once that os-release is in the root's place."""

import pytest

from conftest import run_driver
from nextos_driver import NEXTS


@pytest.fixture(scope='module')
def compared(sid_root):
    return run_driver('nextos_driver.py', timeout=600)


@pytest.mark.parametrize('label', sorted(NEXTS))
def test_would_still_match_is_what_systemd_262_merges(compared, label):
    got = compared[label]
    assert 'error' not in got, got
    assert got['ours'] == got['systemd'], 'ours %s, systemd %s (systemd said %s)' % (
        got['ours'], got['systemd'], got['said'])
    assert got['left_merged'] == [], 'unmerged again'
    assert all(rc == 0 for rc, _msg in got['said'].values()), got['said']


def test_the_cases_are_not_trivial(compared):
    """Every next os-release drops or keeps something different, and each failing field is seen."""
    assert len({tuple(c['ours']) for c in compared.values()}) == len(NEXTS), 'each case merges another set'
    fields = {f for c in compared.values() for f in c['fields'].values()}
    assert fields >= {'ID', 'VERSION_ID', 'SYSEXT_LEVEL', 'CONFEXT_LEVEL', 'ARCHITECTURE', 'SYSEXT_SCOPE', None}, fields
    assert 'sysext ubuntu13' in compared['derivative-id-like']['systemd'], 'ID_LIKE of the next OS counts'
    assert 'sysext pinned13' not in compared['version-bump']['systemd']
