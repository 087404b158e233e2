# -*- coding: utf-8 -*-
"""Fleet benchmark: a no-change rollout (the tucked.sysext.rollout playbook: pre-flight of one
sysext image per host, refresh check, batches skipped, summary) over 20 throw-away targets
with forks=10, vs a ping playbook over the same targets, in the same run. The single
sysext_refresh task (playbooks/refresh.yml) is measured too.

The targets are scratch roots on tmpfs in a private mount namespace, reached with the local
connection (one inventory host per root); the image was rolled out once before, so every
task is ``ok`` and nothing is copied or remounted. Target: <= 1.5x the ping playbook.

    .venv/bin/python tests/bench/bench_fleet.py [--quick]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from lib.ansible_run import BIN, REPO, ansible_env  # noqa: E402
from lib.fleet import build_tree, squashfs  # noqa: E402
from lib.nsroot import FakeRoot, engine, run_in_ns  # noqa: E402

RESULTS = os.path.join(HERE, 'results')
PING = [{'name': 'ping', 'hosts': 'fleet', 'gather_facts': False, 'tasks': [{'name': 'ping', 'ansible.builtin.ping': {}}]}]


def inside(n_targets: int, reps: int) -> dict:
    engine()
    base = FakeRoot()
    hosts = {}
    for i in range(n_targets):
        root = os.path.join(base.scratch, 't%02d' % i)
        subprocess.run(['cp', '-a', base.path, root], check=True)
        hosts['t%02d' % i] = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                              'sysext_root': root}
    work = tempfile.mkdtemp(dir=base.scratch)
    image = squashfs(build_tree(os.path.join(work, 'tree'), 'tools', 'sysext', '1.0', {'usr/share/tools/v': '1.0'}),
                     os.path.join(work, 'tools-1.0.raw'))
    wanted = os.path.join(work, 'wanted.json')
    with open(wanted, 'w') as f:
        json.dump({'sysext_images': [{'name': 'tools', 'version': '1.0', 'src': image}], 'rollout_serial': '100%'}, f)
    inv = os.path.join(work, 'inventory.json')
    with open(inv, 'w') as f:
        json.dump({'fleet': {'hosts': hosts}}, f)
    ping_pb = os.path.join(work, 'ping.yml')
    with open(ping_pb, 'w') as f:
        json.dump(PING, f)

    def play(pb, *extra):
        t0 = time.perf_counter()
        res = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', inv, '-f', '10', pb,
                              '-e', 'target_hosts=fleet'] + list(extra), cwd=REPO, env=ansible_env(),
                             text=True, capture_output=True, check=False)
        if res.returncode != 0:
            raise SystemExit(res.stdout[-3000:])
        return time.perf_counter() - t0, res.stdout

    def changed(out):
        return sum(int(x.split('=')[1]) for x in out.split() if x.startswith('changed='))

    rollout = ['tucked.sysext.rollout', '-e', '@' + wanted]
    first = changed(play(*rollout)[1])          # the real rollout, once
    ping_t, rollout_t, refresh_t, changes = [], [], [], []
    for _rep in range(reps):    # interleaved
        ping_t.append(play(ping_pb)[0])
        t, out = play(*rollout)
        rollout_t.append(t)
        changes.append(changed(out))
        t, out = play(os.path.join(REPO, 'playbooks', 'refresh.yml'))
        refresh_t.append(t)
        changes.append(changed(out))
    ping = statistics.median(ping_t)
    return {'targets': n_targets, 'forks': 10, 'repetitions': reps, 'first_rollout_changed': first,
            'ping_playbook_s': round(ping, 3),
            'rollout_playbook_s': round(statistics.median(rollout_t), 3),
            'ratio': round(statistics.median(rollout_t) / ping, 3),
            'refresh_playbook_s': round(statistics.median(refresh_t), 3),
            'refresh_ratio': round(statistics.median(refresh_t) / ping, 3),
            'changed_tasks': sum(changes), 'target': '<= 1.5'}


def table(res):
    return '\n'.join(['| measure | ours | reference | ratio | target |', '|---|---:|---:|---:|---:|',
                      '| no-change rollout playbook, %d targets, forks=10 (s) | %.2f | ping playbook: %.2f | %.2f | <= 1.5 |'
                      % (res['targets'], res['rollout_playbook_s'], res['ping_playbook_s'], res['ratio']),
                      '| no-change sysext_refresh playbook, same targets (s) | %.2f | ping playbook: %.2f | %.2f | |'
                      % (res['refresh_playbook_s'], res['ping_playbook_s'], res['refresh_ratio'])])


if __name__ == '__main__':
    quick = '--quick' in sys.argv
    if '--inside' in sys.argv:
        print(json.dumps(inside(20, 1 if quick else 3)))
        sys.exit(0)
    res = run_in_ns([sys.executable, os.path.abspath(__file__), '--inside'] + (['--quick'] if quick else []), timeout=1800)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-4000:])
    result = json.loads(res.stdout.strip().splitlines()[-1])
    result.update(benchmark='fleet', quick=quick)
    print(table(result), file=sys.stderr)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'fleet%s.json' % ('-quick' if quick else '')), 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))
