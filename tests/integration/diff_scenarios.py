# -*- coding: utf-8 -*-
"""Every differential scenario: the SCENARIOS lists of all diff_scenarios_*.py modules."""

from __future__ import annotations

import glob
import importlib
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def all_scenarios() -> list:
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, 'diff_scenarios_*.py'))):
        mod = importlib.import_module(os.path.basename(path)[:-3])
        for s in mod.SCENARIOS:
            # (a module's PLAYBOOK = True: its scenarios run ours through real ansible-playbook)
            s.playbook = s.playbook or getattr(mod, 'PLAYBOOK', False)
        out.extend(mod.SCENARIOS)
    names = [s.name for s in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ValueError('differential scenarios named twice: %s' % ', '.join(sorted(dup)))
    return out


def by_name() -> dict:
    return {s.name: s for s in all_scenarios()}
