# -*- coding: utf-8 -*-
"""Turn tests/bench/results/*.json into docs/performance.md and docs/scaling.png.

    make bench      # runs every benchmark, then this
"""

from __future__ import annotations

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RESULTS = os.path.join(HERE, 'results')
DOCS = os.path.join(REPO, 'docs')


def load(name):
    with open(os.path.join(RESULTS, name + '.json')) as f:
        return json.load(f)


def plot(plan, path):
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, rows, ours_key, ref_key, title, ref_label in (
            (a, plan['rows'], 'ours_ms', 'systemd_skip_ms', 'No-change decision', 'systemd 262 skipping refresh'),
            (b, plan['refresh_rows'], 'ours_ms', 'systemd_refresh_ms', 'Changing refresh',
             'systemd 262 refresh --always-refresh')):
        xs = [r['extensions'] for r in rows]
        ax.plot(xs, [r[ours_key] for r in rows], 'o-', label='tucked.sysext')
        ref = [(r['extensions'], r[ref_key]) for r in rows if r[ref_key] is not None]
        ax.plot([x for x, _y in ref], [y for _x, y in ref], 's--', label=ref_label)
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel('extensions')
        ax.set_ylabel('ms (median)')
        ax.set_title(title)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    plan, refresh, fleet = load('plan'), load('refresh'), load('fleet')
    os.makedirs(DOCS, exist_ok=True)
    plot(plan, os.path.join(DOCS, 'scaling.png'))
    sys.path.insert(0, HERE)
    import bench_fleet  # pylint: disable=import-outside-toplevel
    import bench_plan  # pylint: disable=import-outside-toplevel
    import bench_refresh  # pylint: disable=import-outside-toplevel
    text = '''# Performance

Every number is a ratio against a reference measured in the same run on the same machine
(this machine type is shared and noisy: absolute times move, ratios much less). Reproduce
all of it with `make bench`, which runs `tests/bench/bench_plan.py`, `bench_refresh.py` and
`bench_fleet.py` (each in private mount namespaces on scratch roots; systemd 262 runs
chrooted in the debootstrapped sid root) and then `tests/bench/report.py`, which writes
this page and the plot. The test suite runs the same benchmarks in quick mode, only to
prove they still work: timing never fails a test.

## Deciding whether anything changed (plan) vs systemd's skip path

%s

## Refresh, gap, and cost per task

%s

## Fleet

%s

![scaling](scaling.png)

Notes:

- systemd 262 passes all layers to one mount(2) call, whose option string is limited to a
  page (4 KiB): about 100 short-named extensions. We use `fsconfig(lowerdir+)` (Linux 6.8+),
  which has no such limit (overlayfs itself stops at 500 layers), so the 400 and 1000 rows
  have no systemd reference.
- "missed reads": a thread stat()s a file shipped by every extension while the hierarchy is
  refreshed 100 times. Ours tucks the new overlay beneath the old one and then detaches the
  old one; systemd unmounts, then mounts.
- Task costs are medians of per-task wall times taken by a callback plugin
  (`tests/bench/callback_plugins/task_times.py`), tasks interleaved so that drift hits all
  alike. A module task's cost is dominated by Ansible's own module transfer and start-up.
  What is left of ours is importing the collection's module_utils: Python 3.11's zipimport
  compiles every module of an AnsiballZ payload twice, so the modules keep the compiled code
  on the target (`plugins/module_utils/bytecode.py`); that took the no-change
  sysext_refresh task from 1.16-1.29 to 1.07-1.09 times a ping task (2026-11-24).
- The fleet rollout's pre-flight hashes controller images with the `sysext_digest` lookup
  (no module call) and touches a host with one `sysext_facts` call; hosts with nothing to do
  skip the check and the batches.
''' % (bench_plan.table(plan), bench_refresh.table(refresh), bench_fleet.table(fleet))
    with open(os.path.join(DOCS, 'performance.md'), 'w') as f:
        f.write(text)
    print(text)


if __name__ == '__main__':
    main()
