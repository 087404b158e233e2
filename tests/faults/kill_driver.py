# -*- coding: utf-8 -*-
"""Fault injection, inside a private mount namespace:

    unshare -m --propagation private python3 kill_driver.py KILLS [MUTABLE]

Alternates a scratch root between two extension sets (A and B: a squashfs image with new
content, a directory extension added or removed, an erofs image) and SIGKILLs the refresh
at KILLS points spread evenly over all the calls it makes. After every kill: each hierarchy
shows the complete old set or the complete new set (never the bare base tree, never a mix),
the next run converges and the one after it changes nothing; no loop device, staging mount,
stray process or work directory is left. Prints a JSON summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.nsroot import SidRoot, emit, engine, scratch_identity  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def set_files(r, which):
    """Make the search directories hold set A or set B."""
    r.add_raw('var/lib/extensions', 'sqx', files={'usr/share/sqx/v': which + '\n', 'opt/sqx/v': which + '\n'})
    extra = r.p('var/lib/extensions/extra')
    if which == 'B' and not os.path.isdir(extra):
        r.add_dir('var/lib/extensions', 'extra', files={'usr/share/extra/v': 'B\n'})
    elif which == 'A' and os.path.isdir(extra):
        subprocess.run(['rm', '-rf', extra], check=True)


EXPECT = {'A': {'/usr': (['ero', 'foo', 'sqx'], {'sqx': 'A', 'extra': None}),
                '/opt': (['ero', 'foo', 'sqx'], {'sqx': 'A'})},
          'B': {'/usr': (['ero', 'extra', 'foo', 'sqx'], {'sqx': 'B', 'extra': 'B'}),
                '/opt': (['ero', 'extra', 'foo', 'sqx'], {'sqx': 'B'})}}


def observe(r):
    """What a reader sees now, per hierarchy: the metadata's list and the payload files."""
    out = {}
    for h in ('/usr', '/opt'):
        names = None
        try:
            with open(r.p(h.lstrip('/') + '/.systemd-sysext/extensions')) as f:
                names = f.read().split()
        except OSError:
            pass
        files = {}
        for ext in ('sqx', 'extra'):
            p = r.p('%s/%s/%s/v' % (h.lstrip('/'), 'share' if h == '/usr' else '', ext)).replace('//', '/')
            try:
                with open(p) as f:
                    files[ext] = f.read().strip()
            except OSError:
                files[ext] = None
        out[h] = {'names': names, 'files': files, 'foo': os.path.exists(r.p('usr/share/foo/hello'))}
    return out


def matches_h(seen, which, h):
    """Hierarchy ``h`` shows set ``which`` completely: its metadata and its payload agree."""
    names, files = EXPECT[which][h]
    s = seen[h]
    return s['names'] == names and s['foo'] and all(s['files'].get(k) == v for k, v in files.items())


def matches(seen, which):
    return all(matches_h(seen, which, h) for h in EXPECT[which])


def loops_of(r):
    res = subprocess.run(['losetup', '-a'], capture_output=True, text=True, check=False)
    return [ln for ln in res.stdout.splitlines() if r.path in ln]


def staging_mounts(r):
    """Mounts whose mount point is in our staging directory (they belong in the build child's
    namespace only)."""
    with open('/proc/self/mountinfo') as f:
        return [ln for ln in f if ln.split(' ')[4].startswith(r.p('run/tucked-sysext/stage'))]


def wait_quiet(r, want_loops, timeout=5.0):
    """Orphaned build children exit on their own; give them a moment, then judge."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(loops_of(r)) == want_loops and not staging_mounts(r):
            return True
        time.sleep(0.05)
    return False


def run_wrapper(r, point, mode):
    env = dict(os.environ, CHILD_CALLS=r.p('tmp/child-calls'))
    return subprocess.run([sys.executable, os.path.join(HERE, 'kill_wrapper.py'), point, r.path, mode],
                          capture_output=True, text=True, check=False, env=env)


def main(kills: int, mode: str) -> dict:
    eng = engine()
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh
    r = SidRoot(writable_var_lib=True)
    r.add_dir('var/lib/extensions', 'foo')
    r.add_raw('var/lib/extensions', 'ero', fs='erofs')
    set_files(r, 'A')
    opts = refresh.Options(root=r.path, mutable=mode, reload=False)
    refresh.run(opts)
    assert matches(observe(r), 'A'), observe(r)
    if mode in ('yes', 'auto'):
        with open(r.p('usr/share/precious'), 'w') as f:     # written through the merged /usr
            f.write('keep\n')
    raw_layers = 2
    # calls made by one full refresh A -> B (the kill points are spread over them)
    set_files(r, 'B')
    probe = json.loads(run_wrapper(r, 'p:0', mode).stdout.strip().splitlines()[-1])
    total = probe['calls']
    with open(r.p('tmp/child-calls')) as f:
        child_total = int(f.read())
    set_files(r, 'A')
    refresh.run(opts)
    # evenly over every call, and on every call of the swap (tuck beneath, detach the old
    # top, clean up): those are a handful of calls among thousands
    swap_from = probe['swap_at'][0] if probe['swap_at'] else total - 40
    swap_calls = {'p:%d' % n for n in range(swap_from, min(total, swap_from + 40) + 1)}
    rest = max(4, kills - len(swap_calls))
    in_child = rest // 3

    def spread(lo, hi, k):
        return {max(1, round(lo + i * (hi - lo) / max(1, k - 1))) for i in range(k)}
    points = sorted({'p:%d' % n for n in spread(1, swap_from, rest - in_child)}
                    | {'c:%d' % n for n in spread(1, child_total, in_child)} | swap_calls,
                    key=lambda p: (p[0] == 'c', int(p[2:])))
    results = {'points': len(points), 'total_calls': total, 'child_calls': child_total, 'kills': 0, 'completed': 0,
               'failures': [], 'seen_new': 0, 'seen_old': 0, 'seen_mixed': 0,
               'stacked_recovered': 0}
    current = 'A'
    for n in points:
        target = 'B' if current == 'A' else 'A'
        set_files(r, target)
        proc = run_wrapper(r, n, mode)
        killed = proc.returncode == -9 or (n.startswith('c:') and 'died without a word' in proc.stderr)
        results['kills' if killed else 'completed'] += 1
        # each hierarchy is swapped on its own (as systemd does too): each one must show a
        # complete set, the old or the new one; /usr new and /opt still old is allowed
        seen = observe(r)
        per_h = []
        for h in EXPECT[target]:
            if matches_h(seen, target, h):
                per_h.append('new')
            elif matches_h(seen, current, h):
                per_h.append('old')
            else:
                results['failures'].append({'kill_at': n, 'stage': 'after kill', 'hierarchy': h, 'seen': seen[h],
                                            'rc': proc.returncode, 'stderr': proc.stderr[-800:]})
        key = 'seen_new' if set(per_h) == {'new'} else 'seen_old' if set(per_h) == {'old'} else 'seen_mixed'
        results[key] = results.get(key, 0) + 1
        reasons = eng.facts(eng.gather(r.path, ('sysext',)))['classes']['sysext']['reasons']
        if any(x.get('change') == 'interrupted' for x in reasons):
            results['stacked_recovered'] += 1
        try:
            refresh.run(opts)                        # converge
            again = refresh.run(opts)                # and then nothing to do
        except Exception as e:  # pylint: disable=broad-except
            results['failures'].append({'kill_at': n, 'stage': 'converge', 'error': str(e)})
            break
        if not matches(observe(r), target) or again.changed:
            results['failures'].append({'kill_at': n, 'stage': 'converged', 'seen': observe(r), 'again': again.changed})
        if not wait_quiet(r, raw_layers):
            results['failures'].append({'kill_at': n, 'stage': 'leak', 'loops': loops_of(r),
                                        'staging': staging_mounts(r)})
        base = r.p('var/lib/extensions.mutable')
        with open('/proc/self/mountinfo') as f:
            in_use = f.read()
        stale = [x for x in os.listdir(base) if 'workdir' in x and 'workdir=%s/%s' % (base, x) not in in_use] \
            if os.path.isdir(base) else []
        if stale:
            results['failures'].append({'kill_at': n, 'stage': 'work dirs', 'left': stale})
        current = target
        if mode in ('yes', 'auto'):
            data = r.p('var/lib/extensions.mutable/usr/share/precious')
            if not os.path.exists(data) or open(data).read() != 'keep\n':
                results['failures'].append({'kill_at': n, 'stage': 'mutable data lost'})
    refresh.run(refresh.Options(root=r.path, state='unmerged', reload=False))
    results['loops_after_unmerge'] = loops_of(r)
    results['mode'] = mode
    results['scratch'] = scratch_identity(r)
    return results


if __name__ == '__main__':
    emit(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else 'no'))
