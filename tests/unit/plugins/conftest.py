# -*- coding: utf-8 -*-
"""Fixtures shared by the unit tests of module_utils and the filters."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from lib.simulated import simulate_merges  # noqa: E402


@pytest.fixture(name='simulated_merge')
def simulated_merge_fixture(monkeypatch):
    """Merges simulated without mounting: see tests/lib/simulated.py."""
    simulate_merges(monkeypatch)
