# -*- coding: utf-8 -*-
"""CI runs the benchmarks in quick mode only to prove they still work: no timing asserts."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from lib import nsroot  # noqa: E402


def test_plan_benchmark_runs():
    subprocess.run([os.path.join(nsroot.REPO, 'scripts', 'link-collection.sh')], check=True)
    res = nsroot.run_in_ns([sys.executable, os.path.join(HERE, 'bench_plan.py'), '--quick'])
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert [r['extensions'] for r in out['rows']] == [1, 10, 100]
    for row in out['rows']:
        assert row['ours_ms'] > 0 and row['systemd_skip_ms'] > 0 and row['ratio'] > 0, row
    assert '| 100 |' in res.stderr, 'the table is printed'
    mixed = out['mixed']
    assert mixed['images'] == 100 and len(mixed['formats']) == 5, mixed
    assert mixed['ours_ms'] > 0 and mixed['systemd_skip_ms'] > 0, mixed


def test_refresh_benchmark_runs():
    subprocess.run([os.path.join(nsroot.REPO, 'scripts', 'link-collection.sh')], check=True)
    res = subprocess.run([sys.executable, os.path.join(HERE, 'bench_refresh.py'), '--quick'],
                         capture_output=True, text=True, timeout=900, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out['gap']['ours']['refreshes'] == 10 and out['gap']['ours']['reads'] > 0
    assert out['gap']['systemd_262']['reads'] > 0
    assert out['changing_refresh']['ours_ms'] > 0 and out['changing_refresh']['systemd_always_refresh_ms'] > 0
    costs = out['task_costs']
    assert costs['ping_ms'] > 0 and costs['sysext_refresh_ms'] > 0 and costs['sysext_facts_ms'] > 0
    assert costs['all_ok_no_change'], 'the no-change tasks reported no change'
    assert '| no-change sysext_refresh task' in res.stderr


def test_fleet_benchmark_runs():
    res = subprocess.run([sys.executable, os.path.join(HERE, 'bench_fleet.py'), '--quick'],
                         capture_output=True, text=True, timeout=900, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out['targets'] == 20 and out['forks'] == 10
    assert out['ping_playbook_s'] > 0 and out['rollout_playbook_s'] > 0
    assert out['changed_tasks'] == 0, 'the rollout over merged targets changes nothing'
