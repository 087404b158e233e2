# -*- coding: utf-8 -*-
"""A throw-away fleet for playbook tests: N target roots on a tmpfs inside a private mount
namespace (must already be in one: see nsroot.run_in_ns), one inventory host per root, reached
with the local connection and ``sysext_root``; plus sample images built from trees.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from .ansible_run import BIN, REPO, ansible_env
from .nsroot import FakeRoot, sh

RECAP = re.compile(r'^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)\s+skipped=(\d+)'
                   r'\s+rescued=(\d+)\s+ignored=(\d+)', re.M)


class Play:
    def __init__(self, res: subprocess.CompletedProcess):
        self.rc, self.out = res.returncode, res.stdout + res.stderr
        self.recap = {m.group(1): dict(zip(('ok', 'changed', 'unreachable', 'failed', 'skipped', 'rescued', 'ignored'),
                                           map(int, m.groups()[1:]))) for m in RECAP.finditer(self.out)}

    def changed(self) -> int:
        return sum(h['changed'] for h in self.recap.values())

    def failed(self) -> list:
        return sorted(h for h, r in self.recap.items() if r['failed'] or r['unreachable'])


class Fleet:
    def __init__(self, n: int = 3, os_release: dict | None = None):
        base = FakeRoot(os_release)
        self.scratch = base.scratch
        self.hosts = {}
        for i in range(1, n + 1):
            name = 't%d' % i
            root = os.path.join(self.scratch, name)
            sh('cp', '-a', base.path, root)
            self.hosts[name] = root
        self.work = os.path.join(self.scratch, 'work')
        os.makedirs(self.work)
        self.inventory = os.path.join(self.work, 'inventory.json')
        self.write_inventory()

    def write_inventory(self, host_vars: dict | None = None):
        hosts = {h: dict({'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                          'sysext_root': r}, **(host_vars or {}).get(h, {})) for h, r in self.hosts.items()}
        with open(self.inventory, 'w') as f:
            json.dump({'all': {'children': {'fleet': {'hosts': hosts}}}}, f)

    def path(self, host: str, rel: str) -> str:
        return os.path.join(self.hosts[host], rel.lstrip('/'))

    def read(self, host: str, rel: str) -> str | None:
        try:
            with open(self.path(host, rel)) as f:
                return f.read()
        except OSError:
            return None

    def play(self, playbook: str, extra_vars: dict | None = None, *args: str) -> Play:
        cmd = [os.path.join(BIN, 'ansible-playbook'), '-i', self.inventory, playbook]
        if extra_vars:
            ev = os.path.join(self.work, 'extra-vars.json')
            with open(ev, 'w') as f:
                json.dump(extra_vars, f)
            cmd += ['-e', '@' + ev]
        res = subprocess.run(cmd + list(args), cwd=REPO, env=ansible_env(), text=True, capture_output=True, check=False)
        return Play(res)


def build_tree(path: str, name: str, cls: str, version: str, files: dict, release: str = 'ID=_any\n') -> str:
    rel_dir = 'usr/lib/extension-release.d' if cls == 'sysext' else 'etc/extension-release.d'
    files = dict(files, **{'%s/extension-release.%s' % (rel_dir, name): release + 'IMAGE_VERSION=%s\n' % version})
    for rel, content in files.items():
        dst = os.path.join(path, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, 'w') as f:
            f.write(content)
    return path


def squashfs(tree: str, out: str) -> str:
    sh('mksquashfs', tree, out, '-quiet', '-noappend', '-all-root')
    return out


__all__ = ['Fleet', 'Play', 'build_tree', 'squashfs', 'REPO']
