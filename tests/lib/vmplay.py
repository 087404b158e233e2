# -*- coding: utf-8 -*-
"""The steps of a test in the QEMU test VM (lib/testvm.py), run as one ansible-playbook play.

On the VM's emulated CPU each ansible-playbook run, each `testvm.sh ssh` and each module start-up
costs seconds, so a test that alternates module calls with looks at the VM (what is merged, the
origin, the dm tables, what systemd-sysext says) runs them all, in their order, as the tasks of
one play: module calls as module tasks, looks and shell commands as ``raw`` tasks (no tty:
stdout and stderr apart, as ``TestVM.ssh`` gives them). ``play`` returns one value per step, in
order; the test then asserts on them in the order it made them. Module calls and systemd-sysext
run with ``ignore_errors`` (lib/ansible_run.py): their failures are results the test asserts
on. What the helpers used to check on the spot ends the play when it fails (the test fails with
ansible-playbook's output, and nothing after it runs on a VM in a state nobody planned): a
``check``-ed shell step that exits non-zero (as ``TestVM.ssh`` raised), a look whose
systemd-sysext status fails, verity dm devices still there after systemd-sysext unmerge.

    r, seen, (rc, said) = play(vm, module('tucked.sysext.sysext_refresh', root='/'),
                               state('signed'), systemd('refresh'))
"""

from __future__ import annotations

import dataclasses
import json
import shlex

from lib.ansible_run import run_tasks

MARK = '@@tucked-probe '
END = '@@tucked-rc '


def _raw(cmd: str, fatal: bool = False) -> dict:
    # no -tt: stderr stays apart from stdout, and nothing colours or pages what systemd prints
    task = {'raw': cmd, 'vars': {'ansible_ssh_use_tty': False}}
    if fatal:
        task['ignore_errors'] = False
    return task


@dataclasses.dataclass(frozen=True)
class Ran:
    """What a shell step gave (the fields of subprocess.CompletedProcess that tests read)."""
    returncode: int
    stdout: str
    stderr: str


class Step:
    """One step: the tasks it runs and, from their results, its value."""

    def tasks(self) -> list:
        raise NotImplementedError

    def value(self, results: list):
        raise NotImplementedError


class _Module(Step):
    def __init__(self, name: str, args: dict):
        self.task = {name: args}

    def tasks(self):
        return [self.task]

    def value(self, results):
        return results[0]


def module(name: str, **args) -> Step:
    """A module task; its value is the registered result."""
    return _Module(name, args)


class _Shell(Step):
    def __init__(self, cmd: str, check: bool):
        self.cmd = cmd
        self.check = check

    def tasks(self):
        return [_raw(self.cmd, fatal=self.check)]

    def value(self, results):
        r = results[0]
        ran = Ran(r.get('rc', -1), r.get('stdout', ''), r.get('stderr', '') or r.get('msg', ''))
        if self.check and ran.returncode != 0:
            raise AssertionError('in the VM: %s -> %d\nstdout:\n%s\nstderr:\n%s'
                                 % (self.cmd, ran.returncode, ran.stdout, ran.stderr))
        return ran


def sh(cmd: str, check: bool = True) -> Step:
    """A shell command line run as root in the VM; its value is a Ran. ``check``: when it exits
    non-zero the play ends there (and taking the value would raise AssertionError)."""
    return _Shell(cmd, check)


class _Systemd(_Shell):
    def __init__(self, verb: str, args: tuple):
        super().__init__(shlex.join(['systemd-sysext', verb, '--no-pager'] + list(args)), check=False)

    def value(self, results):
        ran = super().value(results)
        return ran.returncode, ran.stdout + ran.stderr


def systemd(verb: str, *args) -> Step:
    """The VM's own ``systemd-sysext VERB --no-pager ARGS``; its value is (exit code, what it
    printed on stdout and stderr)."""
    return _Systemd(verb, args)


def sections(stdout: str) -> dict:
    """The probe sections of a shell step's output: {name: (exit code, output)}."""
    out, name, lines = {}, None, []
    for line in stdout.split('\n'):
        if line.startswith(MARK):
            name, lines = line[len(MARK):], []
        elif line.startswith(END) and name is not None:
            out[name] = (int(line[len(END):]), '\n'.join(lines))
            name = None
        elif name is not None:
            lines.append(line)
    return out


def probe_script(parts: list) -> str:
    """A shell script that runs each (name, command line) and prints its output between a
    MARK line and an END line with its exit code (parsed by ``sections``); it exits with the
    first part's exit code."""
    script = ["p() { printf '\\n%s%%s\\n' \"$1\"; shift; eval \"$1\"; rc=$?; printf '\\n%s%%d\\n' $rc; return $rc; }"
              % (MARK, END)]
    script += ['p %s %s; first=$?' % (shlex.quote(name), shlex.quote(cmd)) for name, cmd in parts[:1]]
    script += ['p %s %s' % (shlex.quote(name), shlex.quote(cmd)) for name, cmd in parts[1:]]
    return '\n'.join(script + ['exit $first'])


@dataclasses.dataclass(frozen=True)
class State:
    """What the VM showed at one point of a test."""
    merged: list        # the extensions systemd-sysext status lists on /usr
    origin: dict        # /usr/.systemd-sysext/origin ({} when there is none)
    verity: list        # the dm devices with a verity table (what backs the merged layers)
    content: dict       # NAME -> /usr/share/tucked-vm/NAME stripped, None when unreadable


class _State(Step):
    def __init__(self, names: tuple):
        self.names = names

    def tasks(self):
        parts = [('status', 'systemd-sysext status --json=short --no-pager'),
                 ('origin', 'cat /usr/.systemd-sysext/origin'),
                 ('dmsetup', 'dmsetup table 2>/dev/null || true')]
        parts += [('content ' + n, shlex.join(['cat', '/usr/share/tucked-vm/' + n])) for n in self.names]
        # (systemd-sysext status failing ends the play)
        return [_raw(probe_script(parts), fatal=True)]

    def value(self, results):
        r = results[0]
        if r.get('rc') != 0:
            raise AssertionError('the state probe failed in the VM: %s' % r)
        got = sections(r['stdout'])
        rc, out = got['status']
        if rc != 0:
            raise AssertionError('systemd-sysext status failed in the VM (%d): %s\n%s' % (rc, out, r.get('stderr')))
        merged = []
        for h in json.loads(out):
            if h.get('hierarchy') == '/usr':
                merged = [] if h.get('extensions') in (None, 'none') else list(h['extensions'])
                break
        rc, out = got['origin']
        origin = json.loads(out) if rc == 0 else {}
        verity = [ln.split(':')[0] for ln in got['dmsetup'][1].splitlines() if ' verity ' in ln]
        content = {}
        for n in self.names:
            rc, out = got['content ' + n]
            content[n] = out.strip() if rc == 0 else None
        return State(merged, origin, verity, content)


def state(*names) -> Step:
    """A look at the VM: its value is a State, with the content of the files NAMES of
    /usr/share/tucked-vm (each extension of the tests has one)."""
    return _State(names)


DM_WAIT = ('for i in $(seq 20); do dmsetup ls --target verity 2>/dev/null | grep -v "No devices found" '
           '| grep -q . || break; sleep 0.5; done; dmsetup ls --target verity 2>/dev/null || true')
# ... and exit 1 if there are some
DM_GONE = DM_WAIT + ('; ! dmsetup ls --target verity 2>/dev/null | grep -v "No devices found" | grep -q . '
                     '|| { echo "verity dm devices left" >&2; exit 1; }')


def dm_names(stdout: str) -> list:
    """The device names in the output of ``dmsetup ls``."""
    return [ln.split()[0] for ln in stdout.splitlines() if ln.strip() and 'No devices found' not in ln]


class _DmDevices(_Shell):
    def __init__(self):
        super().__init__(DM_GONE, check=True)

    def value(self, results):
        return dm_names(super().value(results).stdout)


def dm_devices() -> Step:
    """The verity dm devices in the VM, after waiting up to 10 s for them to go (deferred
    removal may take a moment after an unmount); its value is their names, and if there are
    some left the play ends there."""
    return _DmDevices()


class Group(Step):
    """Several steps as one, its value made from theirs by ``combine``."""

    def __init__(self, steps: list, combine):
        self.steps = steps
        self.combine = combine

    def tasks(self):
        return [t for s in self.steps for t in s.tasks()]

    def value(self, results):
        values, i = [], 0
        for s in self.steps:
            n = len(s.tasks())
            values.append(s.value(results[i:i + n]))
            i += n
        return self.combine(*values)


def play(vm, *steps) -> list:
    """Run the steps in the VM as one play; their values, in order."""
    tasks = [s.tasks() for s in steps]
    results = run_tasks([t for ts in tasks for t in ts], inventory=vm.inventory_path, hosts='all')
    values, i = [], 0
    for s, ts in zip(steps, tasks):
        values.append(s.value(results[i:i + len(ts)]))
        i += len(ts)
    return values
