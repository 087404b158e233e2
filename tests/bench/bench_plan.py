# -*- coding: utf-8 -*-
"""Benchmark: the cost of deciding "would a refresh change anything?".

Ours: engine.gather() (discover, read release files, compute origins, plan) for 1, 10,
100 and 1000 directory extensions. Reference, measured in the same run on the same root:
``systemd-sysext refresh`` 262 (chrooted into the sid root) taking its skip path. systemd 262
passes every layer in one mount(2) option page, which holds about 100 short-named
extensions, and overlayfs stacks at most 500 layers: the 1000 row has no reference.
Prints a table of medians and ratios and writes tests/bench/results/plan.json.

    make bench       # or by hand, in a private mount namespace:
    unshare -m --propagation private .venv/bin/python tests/bench/bench_plan.py --quick

Timing never fails anything: the targets are printed next to the numbers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from lib.timing import median_ms  # noqa: E402
from lib.nsroot import SidRoot, engine  # noqa: E402
from lib import producers  # noqa: E402

SKIP_MSG = 'Skipping extension refresh because no change was found'
RESULTS = os.path.join(HERE, 'results')


def skipping(r, what: str):
    """systemd 262's refresh of the root, which must take its skip path (what: for the message)."""
    def systemd_skip():
        res = r.systemd('systemd-sysext', 'refresh', '--no-reload')
        if SKIP_MSG not in res.stderr + res.stdout:
            raise SystemExit('systemd did not skip with %s: %s' % (what, res.stderr))
    return systemd_skip


def planning(r, eng, what: str, merged: bool = True):
    """Our plan of the root, which must want no refresh when it is merged and unchanged."""
    def ours():
        if eng.gather(r.path, ('sysext',)).needs_refresh and merged:
            raise SystemExit('our plan wants a refresh with %s unchanged' % what)
    return ours


def main(quick: bool) -> dict:
    sizes = (1, 10, 100) if quick else (1, 10, 100, 1000)
    reps = 3 if quick else 15
    eng = engine()
    r = SidRoot()
    rows = []
    have = 0
    for n in sizes:
        for i in range(have, n):
            # short names: systemd 262 passes all layers in one mount(2) option page (4 KiB),
            # which 100 extensions with longer names overflow
            r.add_dir('var/lib/extensions', 'e%d' % i)
        have = n
        mergeable = n <= 100
        ref = None
        if mergeable:
            r.systemd('systemd-sysext', 'unmerge', '--no-reload')
            r.systemd('systemd-sysext', 'merge', '--no-reload')
            ref = median_ms(skipping(r, '%d extensions' % n), reps)
        mine = median_ms(planning(r, eng, '%d extensions' % n, merged=mergeable), reps)
        rows.append({'extensions': n, 'ours_ms': round(mine, 3),
                     'systemd_skip_ms': round(ref, 3) if ref is not None else None,
                     'ratio': round(mine / ref, 3) if ref else None})
    r.systemd('systemd-sysext', 'unmerge', '--no-reload')
    refresh_rows = refresh_scaling(r, (1, 10, 100) if quick else (1, 10, 100, 400), 3 if quick else 9)
    mixed = mixed_formats(r, eng, reps)
    by_n = {row['extensions']: row for row in rows}
    summary = {
        'plan_100_vs_systemd_skip_100': by_n[100]['ratio'],
        'target_plan_100_vs_systemd_skip': '<= 1.0',
        'plan_1000_vs_plan_100': round(by_n[1000]['ours_ms'] / by_n[100]['ours_ms'], 2) if 1000 in by_n else None,
        'target_plan_1000_vs_plan_100': '<= 12 (linear: about 10)',
        'mixed_100_vs_systemd_skip_100': mixed['ratio'],
        'target_mixed_100_vs_systemd_skip': '<= 0.5',
    }
    return {'benchmark': 'plan', 'quick': quick, 'repetitions': reps, 'rows': rows, 'summary': summary,
            'refresh_rows': refresh_rows, 'mixed': mixed}


# the mixed row: what the producers ship (design.md section 5), built with their own tools
MIXED = ('ddi-erofs', 'ddi-erofs-lz4hc', 'erofs-lz4', 'erofs-lz4hc-fragments', 'squashfs-zstd')


def mixed_formats(r, eng, reps, n=100):
    """100 image files in the producers' formats (unsigned GPT DDIs with erofs, lz4 erofs,
    zstd squashfs), merged by systemd 262: our no-change plan against its skipping refresh."""
    sdir = 'var/lib/extensions'
    for entry in os.listdir(r.p(sdir)):
        subprocess.run(['rm', '-rf', '--', r.p(os.path.join(sdir, entry))], check=True)
    counts = {}
    for i in range(n):
        recipe = MIXED[i % len(MIXED)]
        name = 'm%d' % i
        tree = '/tmp/mixed-tree-' + name
        r.make_tree(r.p(tree), name, files={'usr/share/%s/hello' % name: name + '\n',
                                            'usr/share/%s/big' % name: 'compressible text\n' * 2000})
        producers.build(r.path, recipe, tree, '/%s/%s.raw' % (sdir, name))
        subprocess.run(['rm', '-rf', '--', r.p(tree)], check=True)
        counts[recipe] = counts.get(recipe, 0) + 1
    r.systemd('systemd-sysext', 'merge', '--no-reload')
    ref = median_ms(skipping(r, '%d mixed images' % n), reps)
    ours = planning(r, eng, '%d mixed images' % n)
    ours()   # (the first plan after systemd's merge reads each image once; then the cache holds)
    mine = median_ms(ours, reps)
    r.systemd('systemd-sysext', 'unmerge', '--no-reload')
    return {'images': n, 'formats': counts, 'ours_ms': round(mine, 3), 'systemd_skip_ms': round(ref, 3),
            'ratio': round(mine / ref, 3)}


def refresh_scaling(r, sizes, reps):
    """A changing refresh (always_refresh) of N extensions: ours vs systemd 262's
    ``refresh --always-refresh=yes`` on the same root, where systemd can merge N at all."""
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh as api  # noqa: E402
    for name in os.listdir(r.p('var/lib/extensions')):
        subprocess.run(['rm', '-rf', r.p('var/lib/extensions/' + name)], check=True)
    rows, have = [], 0
    for n in sizes:
        for i in range(have, n):
            r.add_dir('var/lib/extensions', 'e%d' % i)
        have = n
        opts = api.Options(root=r.path, classes=('sysext',), always_refresh=True, reload=False)
        api.run(opts)
        mine = median_ms(lambda: api.run(opts), reps)
        api.run(api.Options(root=r.path, classes=('sysext',), state='unmerged', reload=False))
        ref = None
        if n <= 100:
            r.systemd('systemd-sysext', 'merge', '--no-reload')
            ref = median_ms(lambda: r.systemd('systemd-sysext', 'refresh', '--always-refresh=yes', '--no-reload'), reps)
            r.systemd('systemd-sysext', 'unmerge', '--no-reload')
        rows.append({'extensions': n, 'ours_ms': round(mine, 3),
                     'systemd_refresh_ms': round(ref, 3) if ref is not None else None,
                     'ratio': round(mine / ref, 3) if ref else None})
    return rows


def _rows(rows: list, ref_key: str) -> list:
    """Markdown rows: extensions, ours, systemd's (or why there is none), ratio."""
    return ['| %d | %.2f | %s | %s |' % (
        row['extensions'], row['ours_ms'],
        '%.2f' % row[ref_key] if row[ref_key] is not None else 'n/a (systemd cannot merge this many)',
        '%.2f' % row['ratio'] if row['ratio'] is not None else '-') for row in rows]


def table(res: dict) -> str:
    s = res['summary']
    lines = ['| extensions | ours: plan (ms) | systemd 262: skipping refresh (ms) | ratio |', '|---:|---:|---:|---:|']
    lines += _rows(res['rows'], 'systemd_skip_ms')
    lines += ['', 'plan(100) / systemd skip(100) = %s (target %s)'
              % (s['plan_100_vs_systemd_skip_100'], s['target_plan_100_vs_systemd_skip'])]
    if s['plan_1000_vs_plan_100'] is not None:
        lines.append('plan(1000) / plan(100) = %s (target %s)'
                     % (s['plan_1000_vs_plan_100'], s['target_plan_1000_vs_plan_100']))
    lines += ['', '| extensions | ours: changing refresh (ms) | systemd 262: refresh --always-refresh (ms) | ratio |',
              '|---:|---:|---:|---:|']
    lines += _rows(res['refresh_rows'], 'systemd_refresh_ms')
    m = res['mixed']
    lines += ['', '| mixed images (%s) | ours: plan (ms) | systemd 262: skipping refresh (ms) | ratio |'
              % ', '.join('%d %s' % (c, k) for k, c in sorted(m['formats'].items())),
              '|---:|---:|---:|---:|', '| %d | %.2f | %.2f | %.3f |' % (m['images'], m['ours_ms'], m['systemd_skip_ms'], m['ratio']),
              '', 'mixed plan(100) / systemd skip(100) = %s (target %s)'
              % (s['mixed_100_vs_systemd_skip_100'], s['target_mixed_100_vs_systemd_skip'])]
    return '\n'.join(lines)


if __name__ == '__main__':
    result = main('--quick' in sys.argv)
    print(table(result), file=sys.stderr)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, 'plan%s.json' % ('-quick' if result['quick'] else '')), 'w') as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result))
