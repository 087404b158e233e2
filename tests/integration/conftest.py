# -*- coding: utf-8 -*-
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from lib import nsroot  # noqa: E402


@pytest.fixture(scope='session', autouse=True)
def collection_link():
    """The engine is imported from this checkout as ansible_collections.tucked.sysext."""
    subprocess.run([os.path.join(nsroot.REPO, 'scripts', 'link-collection.sh')], check=True)


@pytest.fixture(scope='session', autouse=True)
def no_stale_dm_control():
    """veritysetup and systemd-repart (libdevmapper) create /dev/mapper/control even where the
    kernel has no device-mapper, as this machine's has not: the node they leave on the machine's
    /dev is removed again (only there, and only when it is all /dev/mapper holds)."""
    yield
    if _kernel_has_dm():
        return
    try:
        if os.listdir('/dev/mapper') == ['control']:
            os.unlink('/dev/mapper/control')
            os.rmdir('/dev/mapper')
    except OSError:
        pass


def _kernel_has_dm() -> bool:
    sys.path.insert(0, os.path.join(nsroot.REPO, '.build', 'collections'))
    from ansible_collections.tucked.sysext.plugins.module_utils import imagecheck
    return imagecheck.device_mapper()


@pytest.fixture(scope='session')
def sid_root():
    if not os.path.exists(os.path.join(nsroot.SID_ROOT, 'usr/bin/systemd-sysext')):
        pytest.fail('no sid root at %s: run scripts/bootstrap.sh sid-root (make test does)' % nsroot.SID_ROOT)
    return nsroot.SID_ROOT


def run_driver(script: str, *args: str, timeout: int = 300) -> dict:
    """Run a driver script in a private mount namespace; return its last JSON line."""
    res = nsroot.run_in_ns([sys.executable, os.path.join(HERE, script)] + list(args), timeout=timeout)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith('{')]
    if res.returncode != 0 or not lines:
        raise AssertionError('%s %s failed (%d):\nstdout: %s\nstderr: %s'
                             % (script, ' '.join(args), res.returncode, res.stdout[-3000:], res.stderr[-3000:]))
    return json.loads(lines[-1])
