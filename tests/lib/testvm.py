# -*- coding: utf-8 -*-
"""QEMU test VMs for pytest: a real Debian sid kernel with device-mapper and dm-verity
(this machine's kernel has none) and systemd 262, reached over ssh (scripts/testvm.sh).

    from lib.testvm import TestVM, available, UNAVAILABLE

    @pytest.fixture(scope='module')
    def vm():
        if not available():
            pytest.fail(UNAVAILABLE)
        with TestVM('verity') as vm:
            yield vm

    def test_dm(vm):
        assert vm.ssh('ls /dev/mapper/control').returncode == 0

The VM boots from the cached image with ``-snapshot``: every ``up`` starts from the pristine
image and nothing a test does in it survives ``down``. Booting takes 40-60 s
(TCG: no KVM on this machine type), so share one VM between the tests of a module.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TESTVM = os.path.join(REPO, 'scripts', 'testvm.sh')

UNAVAILABLE = ('the QEMU test VM image is not built (or is from an older recipe) or qemu is not '
               'installed: run `scripts/bootstrap.sh vm` as root (a minute or two)')


def available() -> bool:
    """Whether the VM image is built with the current recipe and qemu is installed."""
    if shutil.which('qemu-system-x86_64') is None:
        return False
    return subprocess.run([TESTVM, 'ready'], capture_output=True, check=False).returncode == 0


def running() -> list:
    """The names of the test VMs running now."""
    out = subprocess.run([TESTVM, 'list'], capture_output=True, text=True, check=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class TestVM:
    """One test VM, booted by ``up()`` (or ``with``) and always powered off and forgotten by
    ``down()`` (``with`` calls it even when the body or the boot fails).

    Its name in scripts/testvm.sh is NAME-PID (this process's PID): `testvm.sh up` first powers
    off a VM of the same name, so two test runs on one machine (a CI run and a helper's, from
    two checkouts) must never share one."""

    __test__ = False  # not a pytest test class

    def __init__(self, name: str = 'tucked-vm', boot_timeout: int | None = None):
        self.name = '%s-%d' % (name, os.getpid())
        self.boot_timeout = boot_timeout
        self.port: int | None = None
        self._tmp: str | None = None
        self._inventory: str | None = None
        self.boot_log = ''  # what `testvm.sh up` said (boot times, failed units)

    # lifecycle

    def up(self) -> 'TestVM':
        """Boot the VM; a boot whose guest kernel panicked or hung is tried once more (with a
        warning). Under TCG with two vCPUs the guest kernel now and then runs into its own code
        being patched on the other vCPU while it boots: an oops in the middle of an instruction
        (e.g. dequeue_entities+0x1c5, `e9 <61> 01 00 00`, at 11 s), or no progress after
        "smp: Brought up 1 node, 2 CPUs"; two boots in about twenty here."""
        env = dict(os.environ)
        if self.boot_timeout:
            env['TUCKED_VM_BOOT_TIMEOUT'] = str(self.boot_timeout)
        for attempt in (1, 2):
            res = subprocess.run([TESTVM, 'up', self.name], capture_output=True, text=True, env=env, check=False)
            if res.returncode == 0:
                break
            stuck = any(s in res.stderr for s in (': qemu exited while the VM booted', ': no ssh after '))
            if attempt == 2 or not stuck:
                raise RuntimeError('test VM %s did not boot (%d):\n%s%s'
                                   % (self.name, res.returncode, res.stdout, res.stderr[-6000:]))
            warnings.warn('test VM %s: the first boot failed, booting it again:\n%s' % (self.name, res.stderr[-3000:]))
        self.port = int(res.stdout.split()[-1])
        self.boot_log = res.stderr
        return self

    def down(self) -> None:
        subprocess.run([TESTVM, 'down', self.name], capture_output=True, text=True, check=False)
        self.port = None
        self._inventory = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> 'TestVM':
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc) -> None:
        self.down()

    # use

    def ssh(self, cmd, check: bool = True, input: str | bytes | None = None, timeout: float | None = 300,
            text: bool = True) -> subprocess.CompletedProcess:
        """Run ``cmd`` (a shell command line, or an argv list that is quoted for the remote
        shell) as root in the VM; stdout and stderr are captured. ``check``: raise
        AssertionError (with the output) when it exits non-zero."""
        if not isinstance(cmd, str):
            cmd = shlex.join(str(c) for c in cmd)
        if isinstance(input, bytes):
            text = False
        res = subprocess.run([TESTVM, 'ssh', self.name, cmd], capture_output=True, text=text, input=input,
                             timeout=timeout, check=False)
        if check and res.returncode != 0:
            raise AssertionError('in VM %s: %s -> %d\nstdout:\n%s\nstderr:\n%s'
                                 % (self.name, cmd, res.returncode, res.stdout, res.stderr))
        return res

    def copy_to(self, local: str, remote: str, mode: int | None = None) -> None:
        """Copy the file ``local`` to the path ``remote`` in the VM (its parent must exist)."""
        cmd = 'cat > %s' % shlex.quote(remote)
        if mode is not None:
            cmd += ' && chmod %o %s' % (mode, shlex.quote(remote))
        with open(local, 'rb') as f:
            data = f.read()
        self.ssh(cmd, input=data)

    def read(self, remote: str) -> bytes:
        """The content of the file ``remote`` in the VM."""
        return self.ssh(['cat', remote], text=False).stdout

    @property
    def inventory_line(self) -> str:
        return subprocess.run([TESTVM, 'inventory', self.name], capture_output=True, text=True,
                              check=True).stdout.strip()

    @property
    def inventory_path(self) -> str:
        """An Ansible INI inventory file (in a temporary directory, removed by ``down()``) with
        this VM as the only host, reached with the plain ``ssh`` connection."""
        if self._inventory is None:
            if self.port is None:
                raise RuntimeError('test VM %s is not up' % self.name)
            self._tmp = self._tmp or tempfile.mkdtemp(prefix='tucked-vm-')
            self._inventory = os.path.join(self._tmp, 'inventory.ini')
            with open(self._inventory, 'w') as f:
                f.write(self.inventory_line + '\n')
        return self._inventory
