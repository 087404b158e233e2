# -*- coding: utf-8 -*-
"""The gpg-agent a test's throw-away gpg home started, stopped and seen gone (by its PID).

``gpgconf --kill all`` alone left an agent running now and then (seen twice under ansible-test
units, its home already removed), so the agent's PID is asked first and the process is checked,
then ended by that PID if it is still there."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def _pid(home: str) -> int | None:
    res = subprocess.run(['gpg-connect-agent', '--homedir', str(home), '--no-autostart', 'getinfo pid', '/bye'],
                         capture_output=True, text=True, check=False)
    for line in res.stdout.splitlines():
        if line.startswith('D ') and line[2:].strip().isdigit():
            return int(line[2:].strip())
    return None


def _gone(pid: int) -> bool:
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rpartition(')')[2].split()[0] in ('Z', 'X')    # (a zombie has exited)
    except OSError:
        return True


def stop(home: str) -> None:
    """Stop the agent of ``home`` (none running: nothing to do)."""
    pid = _pid(home)
    subprocess.run(['gpgconf', '--homedir', str(home), '--kill', 'all'], check=False, capture_output=True)
    if pid is None:
        return
    for _attempt in range(50):
        if _gone(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGTERM)
