# -*- coding: utf-8 -*-
"""The bootstrap role with ``bootstrap_url`` (issue 17, item 2: the user's image from a URL with
a checksum), through real ansible-playbook against two disposable test hosts without any
Python (``scripts/testhosts.sh`` platform bookworm-nopython: systemd 252 as PID 1 in a rootful
podman container, reached with the containers.podman.podman connection; names of this test
run only, removed at the end).

The image is sysext_python's, built here from the cached bookworm packages
(``scripts/bootstrap.sh python-debs``; without them this fails), served by an HTTP server on
127.0.0.1 that this test runs in a thread and that counts the requests. The download runs on
the controller, so the hosts (which have no network) never see the URL.

Checked: options that cannot work fail before the probe; an unreachable URL and a wrong
checksum fail after the probe (which changes nothing) with a message that says which, keep
nothing in the download directory and leave the hosts untouched; the right checksum downloads
once, installs, and a module then runs on the bootstrapped interpreter; a second run downloads
nothing and changes nothing; another host that needs the image later gets the file already
downloaded, with no new request.
"""

import glob
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading

import pytest

from lib import nsroot
from lib.ansible_run import BIN, CALLBACKS, REPO, ansible_env, run_tasks

DEBS = os.path.join(nsroot.CACHE, 'debs', 'python3.11-bookworm')
TESTHOSTS = os.path.join(REPO, 'scripts', 'testhosts.sh')
PLATFORM = 'bookworm-nopython'
PYTHON = '/usr/lib/tucked-sysext/python/bin/python3'
PLAY = [{
    'name': 'bootstrap from a URL', 'hosts': 'all', 'gather_facts': False,
    'roles': [{'role': 'tucked.sysext.bootstrap'}],
    'tasks': [{'name': 'facts on the bootstrapped interpreter',
               'ansible.builtin.setup': {'gather_subset': ['min'], 'filter': ['ansible_python']}}],
}]


@pytest.fixture(scope='module', name='image')
def image_fixture(tmp_path_factory):
    if not glob.glob(os.path.join(DEBS, 'python3.11-minimal_*.deb')):
        pytest.fail('no cached Python packages in %s: run scripts/bootstrap.sh python-debs (make test does)' % DEBS)
    served = tmp_path_factory.mktemp('served')
    built, = run_tasks([{'tucked.sysext.sysext_python': {'debs': DEBS, 'dest': str(served) + '/'}}])
    assert not built.get('failed'), built.get('msg')
    with open(built['dest'], 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert built['checksum'] == 'sha256:' + sha
    return {'dir': str(served), 'file': os.path.basename(built['dest']), 'checksum': 'sha256:' + sha,
            'version': built['version']}


@pytest.fixture(scope='module', name='server')
def server_fixture(image):
    """An HTTP server on 127.0.0.1 serving the image's directory; ``requests`` lists the paths asked for."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kw):
            super().__init__(*args, directory=image['dir'], **kw)

        def do_GET(self):  # noqa: N802 (http.server's name)
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {'base': 'http://127.0.0.1:%d/' % server.server_address[1], 'requests': requests}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope='module', name='hosts')
def hosts_fixture(tmp_path_factory):
    names = {'a': 'tucked-i17url-a-%d' % os.getpid(), 'b': 'tucked-i17url-b-%d' % os.getpid()}
    started = []
    try:
        for name in names.values():
            subprocess.run([TESTHOSTS, 'up', name, PLATFORM], check=True, capture_output=True, text=True, timeout=300)
            started.append(name)
        inv = tmp_path_factory.mktemp('inventory') / 'hosts.ini'
        inv.write_text('[all]\n' + ''.join('%s ansible_host=%s ansible_connection=containers.podman.podman '
                                           'ansible_user=root\n' % (k, v) for k, v in names.items()))
        yield {'names': names, 'inventory': str(inv)}
    finally:
        if started:
            subprocess.run([TESTHOSTS, 'down'] + started, check=False, capture_output=True, timeout=300)


def on_host(hosts, key, script):
    return subprocess.run(['podman', 'exec', hosts['names'][key], 'sh', '-c', script], capture_output=True, text=True,
                          check=False).stdout


def untouched(hosts, key):
    """Nothing of the bootstrap on the host: no store, no link, no interpreter, still no Python."""
    return on_host(hosts, key, 'ls -d /var/lib/tucked-sysext /var/lib/extensions/tucked-python.raw %s '
                               '/usr/bin/python3 2>/dev/null; echo end' % PYTHON) == 'end\n'


def play(hosts, limit, extra, cache):
    """ansible-playbook PLAY on the hosts ``limit``; (rc, output, [(task name, host, result)])."""
    work = tempfile.mkdtemp(prefix='tucked-url-')
    try:
        pb, results = os.path.join(work, 'play.yml'), os.path.join(work, 'results.json')
        with open(pb, 'w') as f:
            json.dump(PLAY, f)
        env = ansible_env({'TASK_RESULTS_FILE': results, 'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS,
                           'ANSIBLE_CALLBACKS_ENABLED': 'task_results'})
        extra = dict(extra, bootstrap_dest=cache)
        res = subprocess.run([os.path.join(BIN, 'ansible-playbook'), pb, '-i', hosts['inventory'], '-l', limit,
                              '-e', json.dumps(extra)], cwd=REPO, env=env, capture_output=True, text=True,
                             check=False, timeout=600)
        shown = res.stdout + res.stderr
        assert 'Traceback' not in shown, shown[-6000:]
        with open(results) as f:
            out = [(e['task'], e['result']) for e in json.load(f)]
        return res.returncode, shown, out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def named(results, prefix):
    """The results of the tasks whose name (without the role's 'tucked.sysext.bootstrap : ') starts with ``prefix``."""
    return [r for task, r in results if task.split(' : ', 1)[-1].startswith(prefix)]


@pytest.fixture(scope='module', name='runs')
def runs_fixture(image, server, hosts, tmp_path_factory):
    """Every run, in order, on the same two hosts and download directory."""
    cache = str(tmp_path_factory.mktemp('cache'))
    url = server['base'] + image['file']
    with socket.socket() as s:      # a port nothing listens on
        s.bind(('127.0.0.1', 0))
        closed = 'http://127.0.0.1:%d/%s' % (s.getsockname()[1], image['file'])
    out = {'cache': cache, 'requests': [], 'closed': closed}

    def step(key, limit, extra):
        rc, shown, results = play(hosts, limit, extra, cache)
        out[key] = {'rc': rc, 'shown': shown, 'results': results, 'cache': sorted(os.listdir(cache)),
                    'untouched': {h: untouched(hosts, h) for h in ('a', 'b')}}
        out['requests'].append(list(server['requests']))

    step('bad_options', 'a', {'bootstrap_url': server['base'] + 'image.raw'})
    step('md5', 'a', {'bootstrap_url': url, 'bootstrap_checksum': 'md5:' + '0' * 32})
    step('unreachable', 'a', {'bootstrap_url': closed, 'bootstrap_checksum': image['checksum']})
    step('wrong_checksum', 'a', {'bootstrap_url': url, 'bootstrap_checksum': 'sha256:' + '0' * 64})
    step('first', 'a', {'bootstrap_url': url, 'bootstrap_checksum': image['checksum']})
    out['a_python'] = on_host(hosts, 'a', PYTHON + ' -c "import sys; print(sys.version.split()[0])"').strip()
    step('second', 'a', {'bootstrap_url': url, 'bootstrap_checksum': image['checksum']})
    step('both', 'all', {'bootstrap_url': url, 'bootstrap_checksum': image['checksum']})
    return out


def test_options_that_cannot_work_fail_before_the_probe(runs):
    run = runs['bad_options']
    assert run['rc'] != 0
    failed, = named(run['results'], 'Check where the image comes from')
    assert failed['failed']
    assert 'bootstrap_url needs bootstrap_checksum, sha256:HEX (or sha384:, sha512:) of the image' in failed['msg'], \
        failed['msg']
    assert ('the file name "image.raw" of bootstrap_url is not tucked-python-VERSION.raw: set bootstrap_version'
            in failed['msg']), failed['msg']
    assert failed['msg'].endswith('Nothing was done on the hosts.')
    assert named(run['results'], 'Look for a usable Python') == [], 'not even the probe ran'
    assert runs['requests'][0] == [] and run['cache'] == [] and run['untouched'] == {'a': True, 'b': True}


def test_a_checksum_the_bootstrap_cannot_verify_fails_before_the_download(runs):
    run = runs['md5']
    failed, = named(run['results'], 'Check where the image comes from')
    assert failed['failed'] and 'it is "md5:' in failed['msg'], failed['msg']
    assert named(run['results'], 'Look for a usable Python') == [], 'not even the probe ran'
    assert runs['requests'][1] == [] and run['cache'] == [] and run['untouched'] == {'a': True, 'b': True}


def test_an_unreachable_url_fails_with_a_clear_message_and_touches_nothing(runs, image):
    run = runs['unreachable']
    assert run['rc'] != 0
    probe, = named(run['results'], 'Look for a usable Python')
    assert probe['needs_image'] and not probe['changed']
    failed, = named(run['results'], 'Say why the download failed')
    assert failed['msg'].startswith('bootstrap_url %s could not be downloaded to %s/%s on the controller: Request '
                                    'failed' % (runs['closed'], runs['cache'], image['file'])), failed['msg']
    assert 'Connection refused' in failed['msg'] and 'Check bootstrap_url and that the controller reaches it' in \
        failed['msg'] and failed['msg'].endswith('Nothing was done on the hosts.'), failed['msg']
    assert named(run['results'], 'Install, merge and verify') == [], 'the install never started'
    assert run['cache'] == [] and run['untouched'] == {'a': True, 'b': True}


def test_a_wrong_checksum_fails_keeps_nothing_and_touches_nothing(runs, image):
    run = runs['wrong_checksum']
    assert run['rc'] != 0
    assert runs['requests'][3] == ['/' + image['file']], 'it was downloaded, once'
    failed, = named(run['results'], 'Say why the download failed')
    assert 'did not match %s; it was %s' % ('0' * 64, image['checksum'].split(':')[1]) in failed['msg'], failed['msg']
    assert ('Its bytes do not have bootstrap_checksum sha256:%s, so nothing was kept' % ('0' * 64)) in failed['msg']
    assert named(run['results'], 'Install, merge and verify') == []
    assert run['cache'] == [] and run['untouched'] == {'a': True, 'b': True}


def test_the_right_checksum_downloads_once_installs_and_modules_run(runs, image):
    run = runs['first']
    assert run['rc'] == 0, run['shown'][-4000:]
    assert runs['requests'][4] == ['/' + image['file']] * 2, 'one more download'
    assert run['cache'] == [image['file']]
    with open(os.path.join(runs['cache'], image['file']), 'rb') as f:
        assert 'sha256:' + hashlib.sha256(f.read()).hexdigest() == image['checksum']
    got, = named(run['results'], 'Download the Python system extension on the controller (once')
    assert got['changed'] and got['checksum_src'] and got['dest'] == os.path.join(runs['cache'], image['file'])
    installed, = named(run['results'], 'Install, merge and verify')
    assert installed['changed'] and installed['source'] == 'installed' and installed['interpreter'] == PYTHON
    assert installed['image']['checksum'] == image['checksum'] and installed['image']['version'] == image['version']
    assert installed['image']['src'] == os.path.join(runs['cache'], image['file'])
    facts, = named(run['results'], 'facts on the bootstrapped interpreter')
    # (bin/python3 is the image's launcher; the interpreter runs as bin/python3.11)
    assert facts['ansible_facts']['ansible_python']['executable'] == PYTHON + '.11'
    assert runs['a_python'].startswith('3.11.')
    assert run['untouched'] == {'a': False, 'b': True}


def test_a_second_run_downloads_nothing_and_changes_nothing(runs):
    run = runs['second']
    assert run['rc'] == 0, run['shown'][-4000:]
    assert runs['requests'][5] == runs['requests'][4], 'no request'
    assert not any(r.get('changed') for _task, r in run['results']), run['results']
    assert named(run['results'], 'Download the Python system extension on the controller (once') == []
    probe, = named(run['results'], 'Look for a usable Python')
    assert probe['source'] == 'existing' and probe['interpreter'] == PYTHON


def test_a_later_host_gets_the_file_already_downloaded(runs, image):
    run = runs['both']
    assert run['rc'] == 0, run['shown'][-4000:]
    assert runs['requests'][6] == runs['requests'][4], 'no request: the file is there with its checksum'
    got, = named(run['results'], 'Download the Python system extension on the controller (once')
    assert not got['changed'] and got['msg'] == 'file already exists', got
    installed = named(run['results'], 'Install, merge and verify')
    # (a: skipped, its probe found the interpreter; b: installed)
    assert sorted(bool(r.get('skipped')) for r in installed) == [False, True], installed
    done, = [r for r in installed if not r.get('skipped')]
    assert done['changed'] and done['source'] == 'installed', done
    assert run['untouched'] == {'a': False, 'b': False}
