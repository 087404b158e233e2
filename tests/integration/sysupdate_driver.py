# -*- coding: utf-8 -*-
"""The role's sysext_sysupdate through real ansible-playbook on a scratch root laid out as
Flatcar's sysext-bakery lays a host out (/etc/sysupdate.docker.d/docker.conf, versions in
/opt/extensions/docker/docker-VERSION-ARCH.raw, /etc/extensions/docker.raw the CurrentSymlink=),
the repository served over HTTP on 127.0.0.1 (repo_driver's server, index signed with a
throw-away key that is the root's /usr/lib/systemd/import-pubring.pgp), then systemd-sysupdate 262
(the sid root, chrooted) listing the result as its own. Inside a private mount namespace:

    unshare -m --propagation private python3 sysupdate_driver.py
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib import gpgagent  # noqa: E402
from lib.fleet import build_tree, squashfs  # noqa: E402
from lib.nsroot import SID_ROOT, FakeRoot, emit, engine, sh  # noqa: E402
from repo_driver import Server, digest, listing, make_key, role, write_index  # noqa: E402

TRANSFER = '''[Source]
Type=url-file
Path=%s
MatchPattern=docker-@v-%%a.raw

[Target]
InstancesMax=2
Type=regular-file
Path=/opt/extensions/docker
CurrentSymlink=/etc/extensions/docker.raw
'''


def write(root, rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb' if isinstance(data, bytes) else 'w') as f:
        f.write(data)
    return path


def sysupdate_list(root):
    """systemd-sysupdate 262 of the sid root, chrooted, on ``root`` (bound into it): its JSON list."""
    if not os.path.exists(os.path.join(SID_ROOT, 'usr/lib/systemd/systemd-sysupdate')):
        return {'skipped': 'no sid root with systemd-sysupdate at %s' % SID_ROOT}
    sid = os.path.join(os.path.dirname(root), 'sid')
    os.mkdir(sid)
    sh('mount', '--rbind', SID_ROOT, sid)
    sh('mount', '-t', 'proc', 'proc', os.path.join(sid, 'proc'))
    sh('mount', '-t', 'tmpfs', 'tmpfs', os.path.join(sid, 'tmp'))
    os.mkdir(os.path.join(sid, 'tmp/r'))
    sh('mount', '--bind', root, os.path.join(sid, 'tmp/r'))
    res = subprocess.run(['chroot', sid, '/usr/lib/systemd/systemd-sysupdate', '--root=/tmp/r', '-C', 'docker',
                          '--offline', '--json=short', 'list'], text=True, capture_output=True, check=False)
    sh('umount', '-R', sid)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith('{')]
    return {'rc': res.returncode, 'list': json.loads(lines[-1]) if lines else None, 'stderr': res.stderr[-2000:]}


def main() -> dict:
    r = FakeRoot()
    root = r.path
    work = os.path.join(r.scratch, 'work')
    served = os.path.join(work, 'served', 'docker')
    os.makedirs(served)
    inventory = write(work, 'inventory.json', json.dumps({'all': {'hosts': {'h1': {
        'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}}}}))
    from ansible_collections.tucked.sysext.plugins.module_utils import release  # pylint: disable=import-outside-toplevel
    arch = release.native_architecture()
    other = 'arm64' if arch != 'arm64' else 'x86-64'

    def image(version, a, where):
        tree = build_tree(os.path.join(work, 'tree-%s-%s' % (version, a)), 'docker', 'sysext', version,
                          {'usr/share/docker/VERSION': version})
        return os.path.basename(squashfs(tree, os.path.join(where, 'docker-%s-%s.raw' % (version, a))))

    # the repository: 2.0 is the newest for this architecture, 3.0 only for the other one
    entries = [(n, digest(os.path.join(served, n))) for n in
               (image('1.0', arch, served), image('2.0', arch, served), image('3.0', other, served))]
    homes = []
    try:
        signer, ring = make_key(work, 'bakery', homes)
        write_index(served, entries, signer=signer)
    finally:
        for home in homes:
            gpgagent.stop(home)

    # the host, as the bakery's Butane config leaves it: two versions, the older one selected
    store = os.path.join(root, 'opt/extensions/docker')
    os.makedirs(store)
    for v in ('0.9', '1.0'):
        image(v, arch, store)
    os.makedirs(os.path.join(root, 'etc/extensions'), exist_ok=True)
    os.symlink('/opt/extensions/docker/docker-1.0-%s.raw' % arch, os.path.join(root, 'etc/extensions/docker.raw'))
    srv = Server(os.path.dirname(served))
    write(root, 'etc/sysupdate.docker.d/docker.conf', TRANSFER % (srv.url + 'docker/'))
    # a component the role cannot roll out (a tar source)
    write(root, 'etc/sysupdate.tree.d/tree.conf', (TRANSFER % (srv.url + 'docker/')).replace('url-file', 'url-tar')
          .replace('regular-file', 'directory'))
    role_vars = {'sysext_root': root, 'sysext_refresh_options': {'reload': False}, 'sysext_sysupdate': ['docker']}
    out = {'arch': arch}
    try:
        before = listing(root)
        # Verify=yes (the default) and no keyring on the host nor sysext_keyring: refused, nothing changes
        out['no_keyring'] = role(work, inventory, role_vars)
        # a component whose transfer the role cannot roll out: refused, naming its file
        write(root, 'usr/lib/systemd/import-pubring.pgp', open(ring, 'rb').read())
        out['unsupported'] = role(work, inventory, dict(role_vars, sysext_sysupdate=['docker', 'tree']))
        out['refused_unchanged'] = listing(root) == sorted(before + ['usr/lib/systemd/import-pubring.pgp'])
        out['refused_requests'] = srv.take()

        # check mode: says what it would download, writes nothing
        out['check'] = role(work, inventory, role_vars, check=True)
        out['check_unchanged'] = listing(root) == sorted(before + ['usr/lib/systemd/import-pubring.pgp'])
        out['check_requests'] = srv.take()

        # the rollout: 2.0 stored by the transfer's names, the link switched, InstancesMax=2 keeps 1.0
        out['first'] = role(work, inventory, role_vars)
        out['first_requests'] = srv.take()
        out['store'] = sorted(os.listdir(store))
        out['link'] = os.readlink(os.path.join(root, 'etc/extensions/docker.raw'))
        merged = os.path.join(root, 'usr/share/docker/VERSION')
        out['merged'] = open(merged).read() if os.path.exists(merged) else None
        out['again'] = role(work, inventory, role_vars)
        out['again_requests'] = srv.take()
        # the rollout playbook (pre-flight, check, batches) reads the transfers in each play
        out['rollout'] = role(work, inventory, role_vars, playbook='tucked.sysext.rollout')
        out['rollout_requests'] = srv.take()
        if out['merged'] is not None:
            sh('umount', os.path.join(root, 'usr'))
    finally:
        srv.close()
    out['sysupdate'] = sysupdate_list(root)
    shutil.rmtree(work, ignore_errors=True)
    return out


if __name__ == '__main__':
    engine()
    emit(main())
