# -*- coding: utf-8 -*-
"""Benchmarks for sysext_refresh, each against a reference measured in the same run:

* gap: missed reads of a file present before and after, by a reader running during 100
  refreshes; ours (atomic=auto) vs ``systemd-sysext refresh --always-refresh=yes`` 262;
* changing refresh of 100 directory extensions: ours (refresh.run, always_refresh) vs
  ``systemd-sysext refresh --always-refresh=yes`` 262 on the same root (target <= 1.5x);
* no-change task: a ``tucked.sysext.sysext_refresh`` task (and a ``sysext_facts`` task)
  vs an ``ansible.builtin.ping`` task on the same host, medians of per-task wall times
  taken by a callback (target <= 1.2x).

    make bench       # or: .venv/bin/python tests/bench/bench_refresh.py [--quick]
                     # (each part runs in a private mount namespace of its own)

Prints a Markdown table and writes tests/bench/results/refresh.json. Never fails on timing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'integration'))
from lib.ansible_run import BIN, REPO, ansible_env  # noqa: E402
from lib.timing import median_ms  # noqa: E402
from lib.nsroot import SidRoot, engine, run_in_ns  # noqa: E402

RESULTS = os.path.join(HERE, 'results')


def gap(n):
    engine()
    import refresh_driver  # pylint: disable=import-outside-toplevel
    return refresh_driver.atomicity(n=n)


def changing_refresh(n_ext, reps):
    engine()
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh as api
    r = SidRoot()
    for i in range(n_ext):
        r.add_dir('var/lib/extensions', 'e%d' % i)
    opts = api.Options(root=r.path, classes=('sysext',), always_refresh=True, reload=False)
    api.run(opts)
    ours = median_ms(lambda: api.run(opts), reps)
    api.run(api.Options(root=r.path, classes=('sysext',), state='unmerged'))
    r.systemd('systemd-sysext', 'merge', '--no-reload')
    ref = median_ms(lambda: r.systemd('systemd-sysext', 'refresh', '--always-refresh=yes', '--no-reload'), reps)
    r.systemd('systemd-sysext', 'unmerge', '--no-reload')
    return {'extensions': n_ext, 'ours_ms': round(ours, 2), 'systemd_always_refresh_ms': round(ref, 2),
            'ratio': round(ours / ref, 3), 'target': '<= 1.5'}


def task_costs(reps):
    r = SidRoot()
    for i in range(10):
        r.add_dir('var/lib/extensions', 'e%d' % i)
    engine()
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh as api
    api.run(api.Options(root=r.path, classes=('sysext',), reload=False))
    tasks = []
    for i in range(reps):   # interleaved, so that drift hits all three alike
        tasks += [{'name': 'ping %d' % i, 'ansible.builtin.ping': {}},
                  {'name': 'refresh %d' % i, 'tucked.sysext.sysext_refresh': {'root': r.path, 'classes': ['sysext']}},
                  {'name': 'facts %d' % i, 'tucked.sysext.sysext_facts': {'root': r.path, 'classes': ['sysext']}}]
    work = tempfile.mkdtemp(dir=r.p('tmp'))
    pb, times = os.path.join(work, 'play.yml'), os.path.join(work, 'times.json')
    with open(pb, 'w') as f:
        json.dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], f)
    env = ansible_env({'ANSIBLE_CALLBACK_PLUGINS': os.path.join(HERE, 'callback_plugins'),
                       'ANSIBLE_CALLBACKS_ENABLED': 'task_times', 'TASK_TIMES_FILE': times})
    res = subprocess.run([os.path.join(BIN, 'ansible-playbook'), pb], cwd=REPO, env=env, text=True,
                         capture_output=True, check=False)
    if res.returncode != 0:
        raise SystemExit(res.stdout[-3000:] + res.stderr[-3000:])
    with open(times) as f:
        rows = json.load(f)
    changed = 'changed=0' in res.stdout
    by = {}
    for row in rows:
        by.setdefault(row['task'].split()[0], []).append(row['seconds'] * 1000)
    ping, refresh_, facts = (statistics.median(by[k]) for k in ('ping', 'refresh', 'facts'))
    api.run(api.Options(root=r.path, classes=('sysext',), state='unmerged'))
    return {'tasks_each': reps, 'ping_ms': round(ping, 1), 'sysext_refresh_ms': round(refresh_, 1),
            'sysext_facts_ms': round(facts, 1), 'refresh_vs_ping': round(refresh_ / ping, 3),
            'facts_vs_ping': round(facts / ping, 3), 'all_ok_no_change': changed, 'target': '<= 1.2'}


def table(res):
    g, c, t = res['gap'], res['changing_refresh'], res['task_costs']
    return '\n'.join([
        '| measure | ours | reference | ratio | target |', '|---|---:|---:|---:|---:|',
        '| missed reads during %d refreshes | %d of %d | systemd 262: %d of %d | - | ours 0 |' % (
            g['ours']['refreshes'], g['ours']['misses'], g['ours']['reads'], g['systemd_262']['misses'],
            g['systemd_262']['reads']),
        '| changing refresh, %d extensions (ms) | %.1f | systemd 262 --always-refresh: %.1f | %.2f | <= 1.5 |' % (
            c['extensions'], c['ours_ms'], c['systemd_always_refresh_ms'], c['ratio']),
        '| no-change sysext_refresh task (ms) | %.1f | ping task: %.1f | %.2f | <= 1.2 |' % (
            t['sysext_refresh_ms'], t['ping_ms'], t['refresh_vs_ping']),
        '| sysext_facts task (ms) | %.1f | ping task: %.1f | %.2f | <= 1.2 |' % (
            t['sysext_facts_ms'], t['ping_ms'], t['facts_vs_ping']),
    ])


def part(name: str, quick: bool):
    """Each part runs in a private mount namespace of its own (a scratch root apiece)."""
    res = run_in_ns([sys.executable, os.path.abspath(__file__), '--part', name] + (['--quick'] if quick else []),
                    timeout=1800)
    if res.returncode != 0:
        raise SystemExit('benchmark part %s failed:\n%s' % (name, res.stderr[-4000:]))
    return json.loads(res.stdout.strip().splitlines()[-1])


PARTS = {'gap': lambda q: gap(10 if q else 100),
         'changing_refresh': lambda q: changing_refresh(100, 3 if q else 15),
         'task_costs': lambda q: task_costs(3 if q else 20)}

if __name__ == '__main__':
    quick = '--quick' in sys.argv
    if '--part' in sys.argv:
        print(json.dumps(PARTS[sys.argv[sys.argv.index('--part') + 1]](quick)))
        sys.exit(0)
    result = {'benchmark': 'refresh', 'quick': quick}
    for name in PARTS:
        result[name] = part(name, quick)
    print(table(result), file=sys.stderr)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'refresh%s.json' % ('-quick' if quick else '')), 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))
