# -*- coding: utf-8 -*-
"""Differential harness: one scenario, two implementations.

Each scenario builds a fake root twice with the same setup function, inside one private
mount namespace (the driver runs under ``unshare``):

* ``systemd``: systemd-sysext / systemd-confext 262 from the sid root, run chrooted into it
  with ``--root=/tmp/diff-systemd``;
* ``ours``: the ``tucked.sysext.sysext_refresh`` module with ``root=`` the same kind of tree
  (``/tmp/diff-ours`` inside the sid root): through real ansible-playbook for the scenarios
  marked ``playbook`` (diff_scenarios_basic and _hostile; every scenario with
  TUCKED_DIFF_PLAYBOOK=1), else run as Ansible's module runner runs it (run_module), which
  costs a tenth of ansible-playbook's start-up and gives the same module the same arguments.

After every step both sides are observed the way a user would look at them (files visible,
mounts read-only or writable, hierarchy modes, data in the mutable directory, exit status,
and what ``systemd-sysext status --json`` of 262 says about that root) and the observations
are compared key by key. A scenario names the keys allowed to differ, with the reason.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.ansible_run import run_module, run_tasks  # noqa: E402
from lib.nsroot import SidRoot, _Root, mounts_under, sh  # noqa: E402

HIERARCHIES = {'sysext': ('usr', 'opt'), 'confext': ('etc',)}
TOOLS = {'sysext': 'systemd-sysext', 'confext': 'systemd-confext'}
META = {'sysext': '.systemd-sysext', 'confext': '.systemd-confext'}
# the keys compared after every step
KEYS = ('ok', 'files', 'meta', 'mounts', 'modes', 'status', 'mutable', 'written', 'options')
# overlayfs options naming layers: their paths differ between the two sides by design
PATH_OPTIONS = ('lowerdir', 'lowerdir+', 'datadir+', 'upperdir', 'workdir')
# common settings: how each reaches systemd (a CLI flag or an environment variable)
SYSTEMD_FLAGS = {'mutable': '--mutable=%s', 'image_policy': '--image-policy=%s',
                 'always_refresh': '--always-refresh=%s'}
SYSTEMD_ENV = {'overlay_options': 'SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS'}
SIDES = ('systemd', 'ours')
_UNAME = {'x86_64': 'x86-64', 'aarch64': 'arm64', 'i686': 'x86', 'ppc64le': 'ppc64-le', 's390x': 's390x',
          'riscv64': 'riscv64'}
NATIVE = _UNAME.get(os.uname().machine, os.uname().machine)   # systemd's name for this architecture
OTHER = 'arm64' if NATIVE != 'arm64' else 'x86-64'             # an architecture this machine is not


@dataclass
class Step:
    """One action, applied to both sides.

    ``action``: merge, refresh, unmerge (the tools' verbs; ours maps merge/refresh to
    state=merged and unmerge to state=unmerged), write (``content`` to root-relative
    ``path``), hook (``hook(root)`` on each side, e.g. to replace an image) or cross: each
    side's merge is refreshed by the other implementation, and ``ok`` says whether that one
    found nothing to change (systemd 262 printed its skip message, ours reported changed=false)."""
    action: str
    cls: str = 'sysext'
    args: dict = field(default_factory=dict)
    systemd_args: list = field(default_factory=list)
    systemd_env: dict = field(default_factory=dict)
    ours: dict = field(default_factory=dict)
    path: str | None = None
    content: str = 'written\n'
    hook: Callable | None = None


@dataclass
class Scenario:
    name: str
    setup: Callable
    steps: list
    os_release: dict | None = None
    differ: dict = field(default_factory=dict)
    check: Callable | None = None
    skip: str | None = None
    playbook: bool = False


class DiffRoot(_Root):
    """A root of its own (a tmpfs) at ``path`` inside the sid root, with os-release, the
    hierarchies and the search directories."""

    def __init__(self, path: str, inroot: str, os_release: dict | None = None):
        self.path = path
        self.inroot = inroot  # the same path as the chrooted systemd sees it
        os.makedirs(path)
        sh('mount', '-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', path)
        for d in ('usr/lib', 'usr/share/base', 'opt', 'etc', 'run', 'tmp', 'var/lib',
                  'etc/extensions', 'run/extensions', 'var/lib/extensions',
                  'etc/confexts', 'run/confexts', 'var/lib/confexts'):
            os.makedirs(self.p(d), exist_ok=True)
        with open(self.p('usr/lib/os-release'), 'w') as f:
            f.write(self.release_text(os_release or {'ID': 'debian', 'VERSION_ID': '13'}))
        os.symlink('../usr/lib/os-release', self.p('etc/os-release'))
        for rel, text in (('usr/share/base/marker', 'base\n'), ('opt/base-marker', 'base\n'),
                          ('etc/base.conf', 'base\n')):
            with open(self.p(rel), 'w') as f:
                f.write(text)

    def symlink(self, rel: str, target: str) -> None:
        """A symlink at root-relative ``rel`` pointing to ``target`` (as given: absolute
        targets are meant inside the root)."""
        os.makedirs(os.path.dirname(self.p(rel)), exist_ok=True)
        os.symlink(target, self.p(rel))


# ------------------------------------------------------------------ observation
def _entry(path: str) -> str:
    st = os.lstat(path)
    perms = '%04o' % stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return 'l ' + os.readlink(path)
    if stat.S_ISDIR(st.st_mode):
        return 'd ' + perms
    if stat.S_ISREG(st.st_mode):
        try:
            with open(path, 'rb') as f:
                digest = hashlib.sha256(f.read(1 << 20)).hexdigest()[:12]
        except OSError as e:
            digest = 'unreadable:' + errno.errorcode.get(e.errno, str(e.errno))
        return 'f %s %s' % (perms, digest)
    return 'o %o' % stat.S_IFMT(st.st_mode)


def walk(top: str, skip: tuple = ()) -> dict:
    """path relative to ``top`` -> type, mode and content digest; symlinks not followed."""
    out = {}
    if not os.path.lexists(top):
        return out
    for dirpath, dirs, files in os.walk(top):
        rel_dir = os.path.relpath(dirpath, top)
        dirs[:] = sorted(d for d in dirs if not (rel_dir == '.' and d in skip))
        for name in dirs + sorted(files):
            full = os.path.join(dirpath, name)
            out[os.path.normpath(os.path.join(rel_dir, name))] = _entry(full)
    return out


def _mounts_under(path: str) -> list:
    """(mount point, fstype, mount options, super options) of every mount at or below ``path``,
    in mount order."""
    return [(mp, fstype, mo, so) for mp, fstype, _dev, mo, so in mounts_under(path)]


def _options(top) -> dict | None:
    """The mount flags and the overlayfs options (layer paths left out) of the overlay on top."""
    if not top or top[1] != 'overlay':
        return None
    sup = [o for o in top[3].split(',') if o.split('=', 1)[0] not in PATH_OPTIONS]
    return {'mount': sorted(top[2].split(',')), 'super': sorted(sup)}


def observe(r: DiffRoot, cls: str) -> dict:
    obs = {'files': {}, 'mounts': {}, 'modes': {}, 'meta': {}, 'options': {}}
    for h in HIERARCHIES[cls]:
        top = r.p(h)
        obs['files'][h] = walk(top, skip=(META[cls],))
        meta = os.path.join(top, META[cls])
        # our own marker file ('tucked': who merged, with which options) is the one
        # deliberate addition to systemd's metadata; systemd ignores it
        obs['meta'][h] = sorted(set(os.listdir(meta)) - {'tucked'}) if os.path.isdir(meta) else None
        try:
            st = os.stat(top)
            obs['modes'][h] = '%04o %d:%d' % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        except FileNotFoundError:
            obs['modes'][h] = None    # a root without this hierarchy
        stack = _mounts_under(top)
        at = [m for m in stack if m[0] == top]
        obs['mounts'][h] = {
            'stacked': len(at),
            'fstype': at[-1][1] if at else None,
            'ro': ('ro' in at[-1][2].split(',')) if at else None,
            'submounts': sorted({os.path.relpath(m[0], top) for m in stack if m[0] != top}),
        }
        obs['options'][h] = _options(at[-1] if at else None)
    obs['mutable'] = walk(r.p('var/lib/extensions.mutable'))
    return obs


def status(sid: SidRoot, r: DiffRoot, cls: str):
    """What systemd 262 says of this root: ``status --json=short``, timestamps dropped."""
    import json
    res = sid.systemd(TOOLS[cls], '--root=' + r.inroot, 'status', '--json=short', check=False)
    if res.returncode != 0:
        return {'error': res.returncode}
    doc = json.loads(res.stdout or 'null')
    if isinstance(doc, list):
        for h in doc:
            if isinstance(h, dict):
                h.pop('since', None)
    return doc


# ------------------------------------------------------------------ the two sides
def _systemd_step(sid: SidRoot, r: DiffRoot, step: Step, full: bool = False) -> tuple:
    verb = step.action
    argv = ['--root=' + r.inroot]
    env = {}
    for key, val in step.args.items():
        if key in SYSTEMD_FLAGS:
            argv.append(SYSTEMD_FLAGS[key] % (('yes' if val else 'no') if isinstance(val, bool) else val))
        elif key in SYSTEMD_ENV:
            env[SYSTEMD_ENV[key]] = val
        else:
            raise ValueError('no systemd equivalent for %r: use systemd_args/systemd_env' % key)
    argv += step.systemd_args
    env.update(step.systemd_env)
    cmd = ['chroot', sid.path, 'env'] + ['%s=%s' % kv for kv in env.items()] + [TOOLS[step.cls], verb] + argv
    res = subprocess.run(cmd, text=True, capture_output=True, check=False)
    if full:
        return res.returncode == 0, res.stderr + res.stdout
    msg = (res.stderr or res.stdout).strip().splitlines()
    return res.returncode == 0, msg[-1] if msg else ''


def _refresh(args: dict, playbook: bool) -> dict:
    if playbook or os.environ.get('TUCKED_DIFF_PLAYBOOK') == '1':
        return run_tasks([{'tucked.sysext.sysext_refresh': args}])[0]
    return run_module('sysext_refresh', args)


def _ours_step(r: DiffRoot, step: Step, playbook: bool) -> tuple:
    args = {'root': r.path, 'classes': [step.cls],
            'state': 'unmerged' if step.action == 'unmerge' else 'merged'}
    args.update(step.args)
    args.update(step.ours)
    res = _refresh(args, playbook)
    return not res.get('failed'), res.get('msg') or ('changed' if res.get('changed') else 'ok')


SKIP_MSG = 'Skipping extension refresh because no change was found'


def _cross_step(sid: SidRoot, r: DiffRoot, step: Step, side: str, playbook: bool) -> tuple:
    """Refresh the merge one side made with the other implementation: (skipped, what it said)."""
    if side == 'systemd':
        args = dict({'root': r.path, 'classes': [step.cls], 'state': 'merged'}, **step.args, **step.ours)
        res = _refresh(args, playbook)
        return not res.get('failed') and not res.get('changed'), 'ours: %s' % (
            res.get('msg') or res.get('skipped_reason') or ('changed' if res.get('changed') else 'ok'))
    ok, msg = _systemd_step(sid, r, Step('refresh', cls=step.cls, args=step.args, systemd_args=step.systemd_args,
                                         systemd_env=step.systemd_env), full=True)
    return ok and SKIP_MSG in msg, 'systemd: ' + msg.strip().splitlines()[-1] if msg.strip() else 'systemd: (nothing)'


def _write(r: DiffRoot, path: str, content: str) -> str:
    try:
        os.makedirs(os.path.dirname(r.p(path)), exist_ok=True)
        with open(r.p(path), 'w') as f:
            f.write(content)
        return 'ok'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def run(scenario: Scenario) -> dict:
    """Run every step on both sides; return {'steps': [{'action', 'systemd': obs, 'ours': obs}]}."""
    sid = SidRoot()
    roots = {}
    for side in SIDES:
        inroot = '/tmp/diff-' + side
        roots[side] = DiffRoot(sid.p(inroot), inroot, scenario.os_release)
        scenario.setup(roots[side])
    steps = []
    for step in scenario.steps:
        rec = {'action': step.action, 'cls': step.cls}
        for side in SIDES:
            r = roots[side]
            written = None
            if step.action == 'write':
                ok, msg = True, ''
                written = _write(r, step.path, step.content)
            elif step.action == 'hook':
                ok, msg = True, ''
                step.hook(r)
            elif step.action == 'cross':
                ok, msg = _cross_step(sid, r, step, side, scenario.playbook)
            elif side == 'systemd':
                ok, msg = _systemd_step(sid, r, step)
            else:
                ok, msg = _ours_step(r, step, scenario.playbook)
            obs = observe(r, step.cls)
            obs.update(ok=ok, msg=msg, written=written, status=status(sid, r, step.cls))
            rec[side] = obs
        steps.append(rec)
    return {'steps': steps}


def differences(scenario: Scenario, result: dict) -> list:
    """Human-readable differences between the sides, for the keys not allowed to differ."""
    out = []
    for i, rec in enumerate(result['steps']):
        for key in KEYS:
            if key in scenario.differ:
                continue
            a, b = rec['systemd'].get(key), rec['ours'].get(key)
            if a != b:
                out.append('step %d (%s %s) %s: systemd=%s ours=%s (systemd msg: %s | ours msg: %s)'
                           % (i, rec['action'], rec['cls'], key, _short(a, other=b), _short(b, other=a),
                              rec['systemd']['msg'], rec['ours']['msg']))
    return out


def _short(value, other):
    """For dicts, only the entries that differ from ``other``."""
    if isinstance(value, dict) and isinstance(other, dict):
        return {k: _short(v, other.get(k)) for k, v in value.items() if other.get(k) != v} | \
            {k: '<missing>' for k in other if k not in value}
    return value


# ------------------------------------------------------------------ helpers for scenario files
def setups(*fns) -> Callable:
    """One setup (or hook) running ``fns`` in order."""
    def setup(r):
        for fn in fns:
            fn(r)
    return setup


def checks(*fns) -> Callable:
    """One check running ``fns`` in order."""
    def check(result):
        for fn in fns:
            fn(result)
    return check


def seen(step: int, rel: str, text: str | None, h: str = 'usr') -> Callable:
    """A check: after ``step`` both sides show ``h/rel`` with the content ``text``, or neither
    shows it (``text`` None)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:12] if text is not None else None

    def check(result):
        for side in SIDES:
            got = result['steps'][step][side]['files'][h].get(rel)
            if digest is None:
                assert got is None, (side, step, rel, got)
            else:
                assert got is not None and got.endswith(digest), (side, step, rel, got)
    return check
