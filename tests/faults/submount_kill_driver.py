# -*- coding: utf-8 -*-
"""SIGKILL a refresh or an unmerge while submounts sit below /usr and /opt (inside a private
mount namespace):

    unshare -m --propagation private python3 submount_kill_driver.py MODE KILLS

MODE: ``refresh`` (atomic swaps A <-> B), ``never`` (atomic=never: the old overlay goes before
the new one comes) or ``unmerge``. Two kinds of submount: a tmpfs mounted on the base tree
before the first merge (usr/share/sub, opt/x), and a tmpfs mounted on the merged overlay
(usr/share/foo, a directory an extension ships: only the overlay has it). After every kill
each submount's files are visible at their place (or, for an unmerge killed midway, in the
holding place the next run empties); the next run converges; then every submount is visible
exactly once, not lost and not stacked. Prints a JSON summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.nsroot import SidRoot, emit, engine  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SUBS = {'usr/share/sub': 'base usr', 'opt/x': 'base opt'}     # on the base tree
LATE = 'usr/share/foo'                                        # on the overlay only
HELD = 'run/tucked-sysext/submounts'


def tmpfs(r, rel, text):
    os.makedirs(r.p(rel), exist_ok=True)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', r.p(rel)], check=True)
    with open(os.path.join(r.p(rel), 'inside'), 'w') as f:
        f.write(text + '\n')


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def set_files(r, which):
    r.add_raw('var/lib/extensions', 'sqx', files={'usr/share/sqx/v': which + '\n', 'opt/sqx/v': which + '\n'})


def mounts_at(r):
    """Mounts per submount place (the number of mount table entries with that mount point)."""
    with open('/proc/self/mountinfo') as f:
        targets = [ln.split(' ')[4] for ln in f]
    return {rel: targets.count(r.p(rel)) for rel in list(SUBS) + [LATE]}


def seen(r, late_text):
    out = {rel: read(r.p(rel + '/inside')) for rel in SUBS}
    out[LATE] = read(r.p(LATE + '/inside'))
    want = dict(SUBS, **{LATE: late_text})
    return out, want


def run_wrapper(r, point, opts):
    env = dict(os.environ, CHILD_CALLS=r.p('tmp/child-calls'), TUCKED_KILL_OPTS=json.dumps(opts))
    return subprocess.run([sys.executable, os.path.join(HERE, 'kill_wrapper.py'), point, r.path, 'no'],
                          capture_output=True, text=True, check=False, env=env)


def main(mode: str, kills: int) -> dict:
    engine()
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh
    r = SidRoot()
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n', 'opt/foo/data': 'opt\n'})
    set_files(r, 'A')
    for rel, text in SUBS.items():
        tmpfs(r, rel, text)
    merged = refresh.Options(root=r.path, reload=False)
    unmerged = refresh.Options(root=r.path, reload=False, state='unmerged')
    opts = {'never': {'atomic': 'never'}, 'unmerge': {'state': 'unmerged'}}.get(mode, {})
    late_n = [0]

    def prepare():
        """Merged, with a fresh overlay-only submount on usr/share/foo."""
        refresh.run(merged)
        late_n[0] += 1
        tmpfs(r, LATE, 'late %d' % late_n[0])
        return 'late %d' % late_n[0]

    # the calls one run makes, to spread the kill points over
    late = prepare()
    if mode != 'unmerge':
        set_files(r, 'B')
    probe = json.loads(run_wrapper(r, 'p:0', opts).stdout.strip().splitlines()[-1])
    total = probe['calls']
    child_total = int(read(r.p('tmp/child-calls')) or 0) if mode != 'unmerge' else 0
    got, want = seen(r, late)
    assert got == want, ('the probe run itself lost a submount', got, want)
    dense_from = (probe['unmerge_at'] or probe['swap_at'] or [max(1, total - 60)])[0]

    def spread(lo, hi, k):
        return {max(1, round(lo + i * (hi - lo) / max(1, k - 1))) for i in range(k)}
    # two thirds of the kills from the swap (or unmerge) on, where the submounts move
    dense = {'p:%d' % n for n in spread(dense_from, total, min(total - dense_from + 1, kills * 2 // 3))}
    rest = max(2, kills - len(dense))
    points = {'p:%d' % n for n in spread(1, dense_from, rest - rest // 3)} | dense
    if child_total:
        points |= {'c:%d' % n for n in spread(1, child_total, rest // 3)}
    points = sorted(points, key=lambda p: (p[0] == 'c', int(p[2:])))
    results = {'mode': mode, 'points': len(points), 'calls': total, 'child_calls': child_total, 'kills': 0,
               'completed': 0, 'held_after_kill': 0, 'failures': []}
    if mode == 'unmerge':
        refresh.run(unmerged)
    current = 'B'
    for n in points:
        if mode == 'unmerge':
            subprocess.run(['umount', r.p(LATE)], check=False)    # put back on the base by the last unmerge
            late = prepare()
        else:
            target = 'B' if current == 'A' else 'A'
            set_files(r, target)
        proc = run_wrapper(r, n, opts)
        killed = proc.returncode == -9 or (n.startswith('c:') and 'died without a word' in proc.stderr)
        results['kills' if killed else 'completed'] += 1
        got, want = seen(r, late)
        if got != want:
            held = read(r.p(HELD + '/usr/share/foo/inside'))
            # an unmerge, or a swap without atomicity, killed between taking the old overlay
            # away and putting the submount back: it waits in the holding place
            if mode in ('unmerge', 'never') and got[LATE] is None and held == late and \
                    all(got[k] == want[k] for k in SUBS):
                results['held_after_kill'] += 1      # the next run puts it back
            else:
                results['failures'].append({'kill_at': n, 'stage': 'after kill', 'seen': got, 'want': want,
                                            'rc': proc.returncode, 'stderr': proc.stderr[-800:]})
        try:
            out = refresh.run(unmerged if mode == 'unmerge' else merged)
            again = refresh.run(unmerged if mode == 'unmerge' else merged)
        except Exception as e:  # pylint: disable=broad-except
            results['failures'].append({'kill_at': n, 'stage': 'converge', 'error': str(e)})
            break
        got, want = seen(r, late)
        counts = mounts_at(r)
        # merged: a base submount is mounted twice (the original, hidden under the overlay, and
        # its clone on the overlay); the overlay-only one once, or twice once a killed run held
        # it while the hierarchy was unmerged (put back on the base, as an unmerge does, and
        # carried onto the overlay from there). Unmerged: each once.
        want_counts = {rel: 1 for rel in counts} if mode == 'unmerge' else dict({rel: 2 for rel in SUBS}, **{LATE: 1})
        if mode == 'never' and counts.get(LATE) == 2:
            want_counts[LATE] = 2
            results['late_on_base'] = results.get('late_on_base', 0) + 1
        if got != want or counts != want_counts or again.changed or os.path.exists(r.p(HELD)):
            results['failures'].append({'kill_at': n, 'stage': 'converged', 'seen': got, 'want': want,
                                        'mounts': counts, 'want_mounts': want_counts, 'again': again.changed,
                                        'held_left': os.path.exists(r.p(HELD)), 'warnings': out.warnings})
        if mode != 'unmerge':
            current = target
    refresh.run(unmerged)
    results['after_unmerge'] = {'seen': seen(r, late)[0], 'mounts': mounts_at(r)}
    return results


if __name__ == '__main__':
    emit(main(sys.argv[1], int(sys.argv[2])))
