# -*- coding: utf-8 -*-
"""sysext_image's repository source through real ansible-playbook, against repositories served by
an HTTP server on 127.0.0.1 started here (and a controller directory), for two targets (roots
reached with the local connection), inside a private mount namespace:

    unshare -m --propagation private python3 repo_driver.py
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.ansible_run import BIN, CALLBACKS, REPO, ansible_env, run_tasks  # noqa: E402
from lib.fleet import build_tree, squashfs  # noqa: E402
from lib import gpgagent  # noqa: E402
from lib.nsroot import FakeRoot, emit, engine, sh  # noqa: E402

SLOW = 4            # seconds the slow server waits; the tasks' url_timeout is 1


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def listing(root):
    out = []
    for d, _dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


class Server:
    """A threading HTTP server over ``directory`` that records every GET; paths under /slow/ answer after SLOW s."""

    def __init__(self, directory):
        self.log = []
        log = self.log

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=directory, **kw)

            def do_GET(self):
                log.append(self.path)
                for prefix in ('/slow/', '/slowimage/'):
                    if self.path.startswith(prefix):
                        if prefix == '/slow/' or self.path.endswith('.raw'):
                            time.sleep(SLOW)
                        self.path = self.path[len(prefix) - 1:]
                super().do_GET()

            def log_message(self, *_a):
                pass

        class Quiet(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass    # a client that timed out and closed the connection
        self.httpd = Quiet(('127.0.0.1', 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = 'http://127.0.0.1:%d/' % self.httpd.server_address[1]

    def take(self):
        out = list(self.log)
        del self.log[:]
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def gpg(home, *args, data=None):
    res = subprocess.run(['gpg', '--homedir', home, '--batch', '--quiet', '--pinentry-mode', 'loopback',
                          '--passphrase', ''] + list(args), input=data, capture_output=True, check=False)
    if res.returncode != 0:     # (what gpg said, not only its exit status)
        raise AssertionError('gpg %s in %s: exit %d: %s' % (' '.join(args), home, res.returncode,
                                                            res.stderr.decode(errors='replace')))
    return res.stdout


def make_key(work, who, homes):
    home = os.path.join(work, 'gnupg-' + who)
    os.mkdir(home, 0o700)
    homes.append(home)
    gpg(home, '--quick-gen-key', '%s@example.invalid' % who, 'ed25519', 'sign', '1d')
    ring = os.path.join(work, who + '.gpg')
    with open(ring, 'wb') as f:
        f.write(gpg(home, '--export'))
    return home, ring


def write_index(d, lines, signer=None):
    data = ''.join('%s  %s\n' % (h, n) for n, h in lines).encode()
    with open(os.path.join(d, 'SHA256SUMS'), 'wb') as f:
        f.write(data)
    if signer:
        with open(os.path.join(d, 'SHA256SUMS.gpg'), 'wb') as f:
            f.write(gpg(signer, '--detach-sign', '-o', '-', data=data))


def second_root(scratch):
    root = os.path.join(scratch, 'root2')
    os.makedirs(os.path.join(root, 'usr/lib'))
    os.makedirs(os.path.join(root, 'etc'))
    with open(os.path.join(root, 'usr/lib/os-release'), 'w') as f:
        f.write('ID=debian\nVERSION_ID=12\n')
    os.symlink('../usr/lib/os-release', os.path.join(root, 'etc/os-release'))
    return root


def role(work, inventory, role_vars, check=False, playbook=None) -> dict:
    """The role tucked.sysext.sysext on h1 (or ``playbook`` with ``role_vars`` as extra vars): rc, and
    task name -> its results."""
    pb = os.path.join(work, 'role.yml')
    with open(pb, 'w') as f:
        json.dump([{'hosts': 'h1', 'gather_facts': False, 'roles': [{'role': 'tucked.sysext.sysext', 'vars': role_vars}]}],
                  f)
    args = [pb]
    if playbook:
        with open(os.path.join(work, 'extra-vars.json'), 'w') as f:
            json.dump(role_vars, f)
        args = [playbook, '-e', '@' + os.path.join(work, 'extra-vars.json')]
    results = os.path.join(work, 'role-results.json')
    env = ansible_env({'TASK_RESULTS_FILE': results, 'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS,
                       'ANSIBLE_CALLBACKS_ENABLED': 'task_results'})
    res = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', inventory] + args + (['--check'] if check else []),
                         cwd=REPO, env=env, text=True, capture_output=True, check=False)
    out = {'rc': res.returncode, 'traceback': 'Traceback' in res.stdout + res.stderr, 'tasks': {},
           'recap': res.stdout[res.stdout.find('PLAY RECAP'):].strip()}
    with open(results) as f:
        for entry in json.load(f):
            res_ = entry['result']
            res_.pop('invocation', None)
            out['tasks'].setdefault(entry['task'].split(' : ', 1)[-1], []).append(res_)
    return out


def main() -> dict:
    r = FakeRoot()
    work = os.path.join(r.scratch, 'work')
    served = os.path.join(work, 'served')
    roots = {'h1': r.path, 'h2': second_root(r.scratch)}
    inventory = os.path.join(work, 'inventory.json')
    os.makedirs(served)
    with open(inventory, 'w') as f:
        json.dump({'all': {'hosts': {h: {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                                         'target_root': root} for h, root in roots.items()}}}, f)
    from ansible_collections.tucked.sysext.plugins.module_utils import release  # pylint: disable=import-outside-toplevel
    arch = release.native_architecture()
    other = 'arm64' if arch != 'arm64' else 'x86-64'

    def image(repo, version, a, release='ID=_any\n'):
        d = os.path.join(served, repo)
        os.makedirs(d, exist_ok=True)
        tree = build_tree(os.path.join(work, 'tree-%s-%s-%s' % (repo, version, a)), 'tool', 'sysext', version,
                          {'usr/share/tool/VERSION': version + ' ' + a}, release)
        path = squashfs(tree, os.path.join(d, 'tool-%s-%s.raw' % (version, a)))
        return os.path.basename(path), digest(path)

    # the main repository: many versions, two architectures (the other one has the newest version)
    good = [image('good', v, arch) for v in ('1.0', '1.9', '1.10', '1.2', '1.10~rc1')]
    good += [image('good', v, other) for v in ('2.0', '1.10')]
    write_index(os.path.join(served, 'good'), good)
    # an image whose sum in the index is wrong; a line for a file that is not there; a malformed line
    bad = image('bad', '5', arch)
    write_index(os.path.join(served, 'bad'), [(bad[0], '0' * 64)])
    os.makedirs(os.path.join(served, 'missing'))
    write_index(os.path.join(served, 'missing'), [('tool-6-%s.raw' % arch, '1' * 64)])
    os.makedirs(os.path.join(served, 'malformed'))
    with open(os.path.join(served, 'malformed', 'SHA256SUMS'), 'w') as f:
        f.write('%s  tool-1-%s.raw\nnot a line\n' % ('2' * 64, arch))
    os.makedirs(os.path.join(served, 'empty'))
    # the newest image is for another OS: refused after its download, the next older one is taken
    incompat = [image('incompat', '1.20', arch, 'ID=fedora\nVERSION_ID=41\n'), image('incompat', '1.10', arch)]
    write_index(os.path.join(served, 'incompat'), incompat)
    # the newest version is one the store cannot hold (a '+' in it): passed over before any download
    unstorable = [image('unstorable', '1.30+k3s1', arch), image('unstorable', '1.3', arch)]
    write_index(os.path.join(served, 'unstorable'), unstorable)
    # signed indexes: a controller directory signed with the trusted key, a URL signed with another one
    homes = []
    try:
        trusted, trusted_ring = make_key(work, 'trusted', homes)
        stranger, _ring = make_key(work, 'stranger', homes)
        signed_dir = os.path.join(work, 'signed')
        os.makedirs(signed_dir)
        for n, _h in good:
            shutil.copy(os.path.join(served, 'good', n), signed_dir)
        write_index(signed_dir, good, signer=trusted)
        shutil.copytree(os.path.join(served, 'good'), os.path.join(served, 'strange'))
        write_index(os.path.join(served, 'strange'), good, signer=stranger)
    finally:
        for home in homes:      # the gpg-agent each key's making started
            gpgagent.stop(home)

    srv = Server(served)
    t = 'tucked.sysext.sysext_image'
    base = {'name': 'tool', 'root': '{{ target_root }}', 'url_timeout': 1}
    out = {'arch': arch, 'other': other}

    def play(tasks, hosts='h1', check_mode=False):
        res = run_tasks(tasks, inventory=inventory, hosts=hosts, check_mode=check_mode)
        for x in res:
            x.pop('_shown', None)
        return res

    def play_all(tasks):
        res = run_tasks(tasks, inventory=inventory, hosts='all', by_host=True)
        return {h: [dict(x, _shown=None) for x in v] for h, v in res.items()}

    try:
        # two hosts, the newest version for this architecture: the index is fetched once, each host downloads once
        before = {h: listing(root) for h, root in roots.items()}
        t0 = time.monotonic()
        res = run_tasks([{t: dict(base, repository=srv.url + 'good/', version='latest')}], inventory=inventory,
                        hosts='all', by_host=True)
        out['first_seconds'] = time.monotonic() - t0
        out['first_shown'] = res['h1'][0]['_shown']
        out['first'] = {h: dict(x[0], _shown=None) for h, x in res.items()}
        out['first_requests'] = srv.take()
        out['first_listing'] = {h: sorted(set(listing(root)) - set(before[h])) for h, root in roots.items()}
        # the same again: one index fetch for the play, no download, no change
        out['again'] = play_all([{t: dict(base, repository=srv.url + 'good/', version='latest')}])
        out['again_requests'] = srv.take()
        # check mode with a constraint: says what it would download, writes nothing
        before = listing(r.path)
        out['check'] = play([{t: dict(base, repository=srv.url + 'good', version='>=1.2,<1.10',
                                      match_pattern=['tool-@v-%a.raw'])}], hosts='h1', check_mode=True)[0]
        out['check_unchanged'] = listing(r.path) == before
        srv.take()

        # every failure leaves the host as it was
        before = listing(r.path)
        t0 = time.monotonic()
        out['errors'] = play([
            {t: dict(base, repository=srv.url + 'bad/', version='latest')},
            {t: dict(base, repository=srv.url + 'nothing-here/', version='latest')},
            {t: dict(base, repository=srv.url + 'missing/', version='latest')},
            {t: dict(base, repository=srv.url + 'malformed/', version='latest')},
            {t: dict(base, repository=srv.url + 'good/', version='>=3')},
            {t: dict(base, repository=srv.url + 'good/', version='latest', match_pattern=['tool-@v-@q.raw'])},
            {t: dict(base, repository=srv.url + 'slow/good/', version='latest')},
            {t: dict(base, repository=srv.url + 'slowimage/good/', version='1.0')},
            {t: dict(base, repository=srv.url + 'strange/', version='latest', keyring=trusted_ring)},
            {t: dict(base, repository=srv.url + 'good/', version='latest', src='x.raw')},
            {t: dict(base, repository=srv.url + 'empty/', version='latest')},
        ], hosts='h1')
        out['errors_seconds'] = time.monotonic() - t0
        out['errors_unchanged'] = listing(r.path) == before
        out['errors_leftovers'] = [p for p in listing(r.path) if '/.#' in p]
        srv.take()

        # the newest image does not fit the host's os-release: downloaded, refused before the rename, the next taken
        out['incompat'] = play([{t: dict(base, repository=srv.url + 'incompat/', version='latest')}], hosts='h1')[0]
        out['incompat_requests'] = srv.take()
        out['incompat_listing'] = [p for p in listing(r.path) if '1.20' in p]
        out['unstorable'] = play([{t: dict(base, repository=srv.url + 'unstorable/', version='latest')}],
                                 hosts='h1')[0]
        out['unstorable_requests'] = srv.take()

        # a controller directory with a signed index, an exact version: the controller's src path
        out['signed_dir'] = play([{t: dict(base, repository=signed_dir, version='1.9', keyring=trusted_ring)}],
                                 hosts='h1')[0]
        out['signed_requests'] = srv.take()
        # a file:// URL (the controller and this local target see the same file)
        out['file_url'] = play([{t: dict(base, repository='file://' + signed_dir, version='1.2',
                                         keyring=trusted_ring)}], hosts='h1')[0]
        out['link'] = os.readlink(os.path.join(r.path, 'etc/extensions/tool.raw'))
        srv.take()

        # the role: an entry with a repository, rolled out (stored, selected, merged), then again; the
        # module's link above (in /etc/extensions, which systemd searches first) would shadow the role's
        os.unlink(os.path.join(r.path, 'etc/extensions/tool.raw'))
        role_vars = {'sysext_root': r.path, 'sysext_refresh_options': {'reload': False},
                     'sysext_images': [{'name': 'tool', 'version': '<2', 'repository': srv.url + 'good/'}]}
        out['role'] = role(work, inventory, role_vars)
        out['role_requests'] = srv.take()
        with open(os.path.join(r.path, 'usr/share/tool/VERSION')) as f:
            out['role_merged'] = f.read()
        out['role_again'] = role(work, inventory, role_vars)
        out['role_again_requests'] = srv.take()
        # in check mode, another version: said, not downloaded, nothing written
        before = listing(r.path)
        pinned = [dict(role_vars['sysext_images'][0], version='1.9')]
        out['role_check'] = role(work, inventory, dict(role_vars, sysext_images=pinned), check=True)
        out['role_check_requests'] = srv.take()
        out['role_check_unchanged'] = listing(r.path) == before
        sh('umount', os.path.join(r.path, 'usr'))
    finally:
        srv.close()
    out['first_shown'] = out['first_shown'][-4000:]
    return out


if __name__ == '__main__':
    engine()
    emit(main())
