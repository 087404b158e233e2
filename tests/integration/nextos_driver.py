# -*- coding: utf-8 -*-
"""The next-OS check against systemd-sysext 262, inside a private mount namespace:

    unshare -m --propagation private python3 nextos_driver.py

One root (a tmpfs inside the sid root, differential.DiffRoot) on debian 13 with extensions of
every kind of release (ID, ID_LIKE, VERSION_ID, levels, _any, ARCHITECTURE, scope), sysext and
confext. For each next os-release: sysext_facts (run as Ansible runs it) with that os-release
given as next_os_release, while the root still has its own; then the root's os-release is
replaced by the next one and systemd-sysext / systemd-confext 262 merge it (chrooted into the
sid root, --root=), and what they merged is read from the hierarchies; then unmerged. Prints,
per next os-release, what ours said would match and what systemd merged, as one JSON line.
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
from differential import NATIVE, OTHER, DiffRoot  # noqa: E402
from lib.ansible_run import run_module  # noqa: E402
from lib.nsroot import SidRoot, emit  # noqa: E402

CURRENT = {'ID': 'debian', 'VERSION_ID': '13', 'SYSEXT_LEVEL': '1', 'CONFEXT_LEVEL': '7'}
SYSEXTS = {
    'pinned13': {'ID': 'debian', 'VERSION_ID': '13'},
    'pinned14': {'ID': 'debian', 'VERSION_ID': '14'},
    'level1': {'ID': 'debian', 'SYSEXT_LEVEL': '1', 'VERSION_ID': '12'},
    'level2': {'ID': 'debian', 'SYSEXT_LEVEL': '2'},
    'bare': {'ID': 'debian'},
    'any': {'ID': '_any', 'VERSION_ID': '1'},
    'ubuntu13': {'ID': 'ubuntu', 'VERSION_ID': '13'},
    'fedora42': {'ID': 'fedora', 'VERSION_ID': '42'},
    'native': {'ID': 'debian', 'VERSION_ID': '14', 'ARCHITECTURE': NATIVE},
    'otherarch': {'ID': '_any', 'ARCHITECTURE': OTHER},
    'initrdonly': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'},
    'noid': {'VERSION_ID': '14'},
}
CONFEXTS = {
    'c7': {'ID': 'debian', 'CONFEXT_LEVEL': '7'},
    'c8': {'ID': 'debian', 'CONFEXT_LEVEL': '8', 'VERSION_ID': '13'},
    'cv14': {'ID': 'debian', 'VERSION_ID': '14'},
    'csl': {'ID': 'debian', 'SYSEXT_LEVEL': '1', 'VERSION_ID': '13'},
    'cany': {'ID': '_any', 'CONFEXT_SCOPE': 'system'},
}
NEXTS = {
    'same': CURRENT,
    'version-bump': {'ID': 'debian', 'VERSION_ID': '14'},
    'version-bump-levels-kept': {'ID': 'debian', 'VERSION_ID': '14', 'SYSEXT_LEVEL': '1', 'CONFEXT_LEVEL': '8'},
    'level-bump': {'ID': 'debian', 'VERSION_ID': '13', 'SYSEXT_LEVEL': '2', 'CONFEXT_LEVEL': '7'},
    'derivative-id-like': {'ID': 'ubuntu', 'ID_LIKE': 'fedora debian', 'VERSION_ID': '13'},
    'derivative-id-like-quoted': {'ID': 'mint', 'ID_LIKE': '"ubuntu debian"', 'VERSION_ID': '13', 'SYSEXT_LEVEL': '2'},
    'rolling': {'ID': 'debian'},
    'rolling-level-only': {'ID': 'debian', 'SYSEXT_LEVEL': '2'},
    'other-distribution': {'ID': 'fedora', 'VERSION_ID': '42'},
}


def _merged(r: DiffRoot) -> list:
    out = []
    for name in SYSEXTS:
        if os.path.exists(r.p('usr/share/%s/hello' % name)):
            out.append('sysext ' + name)
    for name in CONFEXTS:
        if os.path.exists(r.p('etc/%s.conf' % name)):
            out.append('confext ' + name)
    return out


def main() -> dict:
    sid = SidRoot()
    r = DiffRoot(sid.p('/tmp/nextos'), '/tmp/nextos', CURRENT)
    for name, fields in SYSEXTS.items():
        r.add_dir('var/lib/extensions', name, release=fields)
    for name, fields in CONFEXTS.items():
        r.add_dir('var/lib/confexts', name, cls='confext', release=fields)
    os_release = r.p('usr/lib/os-release')     # etc/os-release is a symlink to it
    out = {}
    for label, fields in NEXTS.items():
        with open(os_release, 'w') as f:
            f.write(r.release_text(CURRENT))
        res = run_module('sysext_facts', {'root': r.path, 'next_os_release': r.release_text(fields)})
        if res.get('failed'):
            out[label] = {'error': res.get('msg')}
            continue
        ours = sorted('%s %s' % (i['class'], i['name']) for i in res['ansible_facts']['sysext']['images']
                      if i['type'] != 'ignored' and i['next_os']['compatible'])
        fields_ours = {'%s %s' % (i['class'], i['name']): i['next_os']['field']
                       for i in res['ansible_facts']['sysext']['images'] if i['type'] != 'ignored'}
        with open(os_release, 'w') as f:
            f.write(r.release_text(fields))
        said = {}
        for tool in ('systemd-sysext', 'systemd-confext'):
            res_s = sid.systemd(tool, '--root=' + r.inroot, 'merge', check=False)
            said[tool] = (res_s.returncode, (res_s.stderr or res_s.stdout).strip().splitlines()[-1:])
        systemd = sorted(_merged(r))
        for tool in ('systemd-sysext', 'systemd-confext'):
            sid.systemd(tool, '--root=' + r.inroot, 'unmerge', check=False)
        out[label] = {'ours': ours, 'systemd': systemd, 'fields': fields_ours, 'said': said,
                      'left_merged': _merged(r)}
    return out


if __name__ == '__main__':
    emit(main())
