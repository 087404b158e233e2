# -*- coding: utf-8 -*-
"""Which hosts are behind their repository, through real ansible-playbook, inside a private mount
namespace:

    unshare -m --propagation private python3 status_updates_driver.py

Three scratch roots (lib/fleet.py) and a repository with tool 1.0 and 2.0 served by an HTTP server on
127.0.0.1 (repo_driver.Server): the rollout playbook gives t1 version 1.0 and t2 the latest (2.0), t3
nothing; then the rollout in check mode says what it would download where, and the status playbook
says t1 is behind, t2 current, t3 missing, without downloading an image.

Then issue 18's done-when as a fleet sees it: the index is signed (SHA256SUMS.gpg, the keyring
given), the rollout names tool with version latest and the repository, one host per batch, with
a verification path; every host ends on 2.0, and a second run downloads nothing and changes
nothing. 3.0 is published broken (its VERSION file missing): the first batch takes it, fails the
verification and is rolled back to 2.0, and the later batches are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib import gpgagent  # noqa: E402
from lib.fleet import Fleet, build_tree, squashfs  # noqa: E402
from lib.nsroot import emit, engine  # noqa: E402
from repo_driver import Server, digest, make_key, write_index  # noqa: E402


def main() -> dict:
    from ansible_collections.tucked.sysext.plugins.module_utils import release  # pylint: disable=import-outside-toplevel
    arch = release.native_architecture()
    fleet = Fleet(3)
    served = os.path.join(fleet.work, 'served', 'tool')
    os.makedirs(served)
    files = []
    for v in ('1.0', '2.0', '3.0'):
        content = {'usr/share/tool/BROKEN': 'no VERSION\n'} if v == '3.0' else {'usr/share/tool/VERSION': v + '\n'}
        tree = build_tree(os.path.join(fleet.work, 'tree-' + v), 'tool', 'sysext', v, content)
        path = squashfs(tree, os.path.join(fleet.work, 'tool-%s-%s.raw' % (v, arch)))
        files.append((os.path.basename(path), digest(path)))
    publish(served, files[:2])
    srv = Server(os.path.dirname(served))
    out = {'arch': arch, 'url': srv.url + 'tool/'}

    def wanted(version: str, **extra) -> dict:
        return dict({'sysext_images': [{'name': 'tool', 'version': version, 'repository': srv.url + 'tool/'}],
                     'sysext_refresh_options': {'reload': False}}, **extra)

    def step(playbook: str, extra: dict, *args: str) -> dict:
        play = fleet.play(playbook, extra, *args)
        return {'rc': play.rc, 'changed': play.changed(), 'recap': play.recap, 'out': play.out[-6000:],
                'traceback': 'Traceback' in play.out, 'requests': srv.take(),
                'merged': {h: fleet.read(h, 'usr/share/tool/VERSION') for h in fleet.hosts}}

    homes = []
    try:
        out['t1'] = step('tucked.sysext.rollout', wanted('1.0', rollout_hosts='t1'))
        out['t2'] = step('tucked.sysext.rollout', wanted('latest', rollout_hosts='t2'))
        out['check'] = step('tucked.sysext.rollout', wanted('latest'), '--check')
        report = os.path.join(fleet.work, 'status.json')
        out['status'] = step('tucked.sysext.status', wanted('latest', status_json=report))
        with open(report) as f:
            out['status']['json'] = json.load(f)
        # hosts without sysext_images: the report as before, no UPDATES
        os.unlink(report)
        out['plain'] = step('tucked.sysext.status', {'status_json': report, 'status_wanted': {'tool': '2.0'}})
        with open(report) as f:
            out['plain']['json'] = json.load(f)

        # the fleet, verified: a signed index, one host per batch, a path that must exist after the refresh
        signer, ring = make_key(fleet.work, 'publisher', homes)
        publish(served, files[:2], signer)
        fleet_vars = {'sysext_keyring': ring, 'rollout_serial': 1, 'sysext_verify_paths': ['/usr/share/tool/VERSION']}
        out['fleet'] = step('tucked.sysext.rollout', wanted('latest', **fleet_vars))
        out['fleet_again'] = step('tucked.sysext.rollout', wanted('latest', **fleet_vars))
        publish(served, files, signer)
        out['broken'] = step('tucked.sysext.rollout', wanted('latest', **fleet_vars))
        out['broken']['stored'] = {h: sorted(os.listdir(fleet.path(h, 'var/lib/tucked-sysext/store/tool')))
                                   for h in fleet.hosts}
    finally:
        srv.close()
        for home in homes:      # the gpg-agent the key's making started
            gpgagent.stop(home)
    return out


def publish(served: str, files: list, signer: str | None = None) -> None:
    """The images of ``files`` (name, sha256) copied into the served directory, and their index (signed by ``signer``)."""
    for name, _sha in files:
        if not os.path.exists(os.path.join(served, name)):
            shutil.copy(os.path.join(os.path.dirname(os.path.dirname(served)), name), served)
    write_index(served, files, signer)


if __name__ == '__main__':
    engine()
    emit(main())
