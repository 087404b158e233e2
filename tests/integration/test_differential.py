# -*- coding: utf-8 -*-
"""Differential tests: every scenario of diff_scenarios_*.py, run once with systemd-sysext 262
(--root=, sid root) and once with sysext_refresh (root=); what a user sees must agree.
See differential.py."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import differential  # noqa: E402
import diff_scenarios  # noqa: E402
from conftest import run_driver  # noqa: E402

SCENARIOS = diff_scenarios.all_scenarios()


@pytest.mark.parametrize('scenario', SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_same_as_systemd_262(sid_root, scenario):
    if scenario.skip:
        pytest.skip(scenario.skip)
    result = run_driver('diff_driver.py', scenario.name, timeout=600)
    diffs = differential.differences(scenario, result)
    assert not diffs, 'ours and systemd 262 differ:\n' + '\n'.join(diffs)
    if scenario.check:
        scenario.check(result)
