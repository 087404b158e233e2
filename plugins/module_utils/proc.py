# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where the engine starts a process (the host's mksquashfs, mkfs.erofs,
veritysetup, openssl, systemctl, systemd-sysext). The engine runs without an AnsibleModule
(unit tests, the fault-injection children, the benchmarks), so there is no run_command to
call; ansible-test 2.21's pylint asks for one (ansible-bad-function), and the exemption is
said once, here. Never a shell: the argument list is passed as given."""

from __future__ import annotations

import subprocess


def run(cmd: list, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(cmd, check=check, **kwargs)."""
    return subprocess.run(cmd, check=check, **kwargs)  # pylint: disable=ansible-bad-function
