# -*- coding: utf-8 -*-
"""Run real ansible-playbook from this checkout and return the registered task results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
BIN = os.path.dirname(sys.executable)
CALLBACKS = os.path.join(HERE, 'callback_plugins')


def ansible_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update(ANSIBLE_CONFIG=os.path.join(REPO, 'ansible.cfg'), ANSIBLE_NOCOLOR='1',
               PATH=BIN + os.pathsep + env.get('PATH', ''))
    env.update(extra or {})
    return env


def run_tasks(tasks: list, check_mode: bool = False, diff: bool = False, workdir: str | None = None,
              extra_env: dict | None = None, namespace: 'MountNamespace | None' = None,
              inventory: str | None = None, hosts: str = 'localhost', by_host: bool = False) -> list | dict:
    """Run ``tasks`` (module-name -> args dicts) on ``hosts`` (localhost, or the one host of
    ``inventory``), each registered and with ``ignore_errors`` (unless the task sets it: a task
    with ``ignore_errors: false`` that fails ends the play, and so fails the caller's test);
    return the list of results, each with ``_shown`` (what ansible printed).
    Fails the caller's test on a traceback or on an ansible-playbook failure. ``namespace``: run
    ansible-playbook inside that MountNamespace."""
    work = tempfile.mkdtemp(prefix='tucked-play-', dir=workdir)
    results_file = os.path.join(work, 'results.json')
    play_tasks = []
    for i, t in enumerate(tasks):
        t = dict(t)
        t.setdefault('name', 'task %d' % i)
        t.setdefault('ignore_errors', True)
        t['register'] = 'r%d' % i
        play_tasks.append(t)
    pb = os.path.join(work, 'play.yml')
    with open(pb, 'w') as f:
        json.dump([{'hosts': hosts, 'gather_facts': False, 'tasks': play_tasks}], f)
    cmd = [os.path.join(BIN, 'ansible-playbook'), pb] + (['-i', inventory] if inventory else [])
    cmd += (['--check'] if check_mode else []) + (['--diff'] if diff else [])
    # the results come from a callback (tests/lib/callback_plugins/task_results.py): a copy task
    # to save them cost more than a second per run
    env = ansible_env(dict(extra_env or {}, TASK_RESULTS_FILE=results_file))
    env['ANSIBLE_CALLBACK_PLUGINS'] = os.pathsep.join(p for p in (CALLBACKS, env.get('ANSIBLE_CALLBACK_PLUGINS')) if p)
    env['ANSIBLE_CALLBACKS_ENABLED'] = ','.join(p for p in ('task_results', env.get('ANSIBLE_CALLBACKS_ENABLED')) if p)
    if namespace is not None:
        cmd = namespace.prefix() + cmd
    res = subprocess.run(cmd, cwd=REPO, env=env, text=True, capture_output=True, check=False)
    shown = res.stdout + res.stderr
    if 'Traceback' in shown or res.returncode != 0:
        raise AssertionError('ansible-playbook failed (%d) or printed a traceback:\n%s' % (res.returncode, shown[-6000:]))
    with open(results_file) as f:
        entries = json.load(f)
    if by_host:     # {host: its list of results} for every host the play ran on
        per = {}
        for entry in entries:
            entry['result']['_shown'] = shown
            per.setdefault(entry['host'], []).append(entry['result'])
        if any(len(v) != len(tasks) for v in per.values()):
            raise AssertionError('results %s for %d tasks:\n%s' % ({h: len(v) for h, v in per.items()}, len(tasks),
                                                                   shown[-6000:]))
        for name in (results_file, pb):
            os.unlink(name)
        os.rmdir(work)
        return per
    out = [entry['result'] for entry in entries]
    if len(out) != len(tasks):
        raise AssertionError('%d results for %d tasks:\n%s' % (len(out), len(tasks), shown[-6000:]))
    for r in out:
        r['_shown'] = shown
    for name in (results_file, pb):
        os.unlink(name)
    os.rmdir(work)
    return out


def run_module(module: str, args: dict, check_mode: bool = False, diff: bool = False) -> dict:
    """Run one module of this collection the way Ansible's module runner ends up running it
    (``python -m ansible_collections.tucked.sysext.plugins.modules.NAME ARGS_FILE``, the args
    under ``ANSIBLE_MODULE_ARGS``), without ansible-playbook: a tenth of its start-up cost, for
    harnesses that compare what a module does with what systemd does hundreds of times. The
    transport itself (AnsiballZ, the action plugins, the callbacks) is covered by run_tasks.
    Returns the module's JSON result; fails the caller's test on a traceback or on output that
    is not one JSON document."""
    with tempfile.NamedTemporaryFile('w', suffix='.json', prefix='tucked-args-', delete=False) as f:
        json.dump({'ANSIBLE_MODULE_ARGS': dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)}, f)
    env = ansible_env({'PYTHONPATH': os.path.join(REPO, '.build', 'collections')})
    try:
        res = subprocess.run([sys.executable, '-m', 'ansible_collections.tucked.sysext.plugins.modules.' + module,
                              f.name], cwd='/', env=env, text=True, capture_output=True, check=False)
    finally:
        os.unlink(f.name)
    shown = res.stdout + res.stderr
    try:
        out = json.loads(res.stdout)
    except ValueError:
        out = None
    if 'Traceback' in shown or not isinstance(out, dict) or res.returncode != (1 if out.get('failed') else 0):
        raise AssertionError('module %s failed (%d) or printed a traceback:\n%s' % (module, res.returncode, shown[-6000:]))
    out['_shown'] = shown
    return out


class MountNamespace:
    """A private mount namespace kept alive by a process of its own, in which ``binds`` are
    directories bound onto themselves: a merge simulated by writing systemd's metadata needs a
    mount point there (systemd's is_our_mount_point() checks for one), and every run entered
    into it sees the same mount IDs (the origin's onMountId is per namespace). The process is
    ended (by its PID) on exit, and the namespace with its mounts goes with it."""

    def __init__(self, binds=()):
        self.binds = [str(b) for b in binds]
        self.proc = None

    def __enter__(self):
        for d in self.binds:
            os.makedirs(d, exist_ok=True)
        script = ''.join('mount --bind "%s" "%s" || exit 1; ' % (d, d) for d in self.binds) + 'echo ready; exec sleep 3600'
        self.proc = subprocess.Popen(['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', script],
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != 'ready':
            self.__exit__()
            raise AssertionError('could not set up the mount namespace for %s' % self.binds)
        return self

    def prefix(self) -> list:
        return ['nsenter', '--target', str(self.proc.pid), '--mount', '--']

    def __exit__(self, *exc):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc.stdout.close()
            self.proc = None
