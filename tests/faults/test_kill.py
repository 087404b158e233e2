# -*- coding: utf-8 -*-
"""SIGKILL the refresh at every stage; concurrent runs. Each run in its own mount namespace."""

import json
import os
import sys

import pytest

from lib import nsroot

HERE = os.path.dirname(os.path.abspath(__file__))


def drive(*args, timeout=900):
    res = nsroot.run_in_ns([sys.executable, os.path.join(HERE, 'kill_driver.py')] + list(args), timeout=timeout)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith('{')]
    assert res.returncode == 0 and lines, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(lines[-1])


@pytest.mark.parametrize('mode,kills', [('no', 240), ('yes', 60)])
def test_sigkill_at_every_stage(mode, kills):
    out = drive(str(kills), mode)
    assert out['kills'] >= (200 if mode == 'no' else 50), out
    assert out['failures'] == [], json.dumps(out['failures'][:5], indent=1)
    assert out['seen_old'] > 0 and out['seen_new'] > 0, 'kills landed before and after the swap'
    assert out['stacked_recovered'] > 0, 'a kill between tuck and detach was recovered'
    assert out['loops_after_unmerge'] == []
    assert nsroot.loops_of(out['scratch'], wait=5.0) == [], 'no loop device outlives the namespace'


def test_concurrent_runs_are_serialized():
    out = nsroot.run_in_ns([sys.executable, os.path.join(HERE, 'concurrency_driver.py')], timeout=600)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith('{')]
    assert out.returncode == 0 and lines, out.stderr[-3000:]
    res = json.loads(lines[-1])
    for n in ('2', '10'):
        r = res[n]
        assert r['failed'] == [], r
        assert r['changed'] == 1, ('exactly one of the concurrent runs made the change', r)
        assert r['final_ok'] and r['stack'] == 1, r
    assert res['loops_left'] == []
