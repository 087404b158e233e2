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

A third host gets an image shaped like Flatcar's ``flatcar-python`` (the user's image of item 2,
taken from ``bootstrap_src``): the same interpreter, as ``/usr/bin/python3`` outside a private
prefix, no manifest, an extension-release tied to the exact OS release (``ID`` and
``VERSION_ID``, as Flatcar ties it), in erofs made with Flatcar's extras' flags (``-zlz4hc,12
-C65536 -Efragments,ztailpacking``). Flatcar wraps that file system in a signed GPT disk image;
here it is a plain file system image, because the host's own systemd-sysext does this merge
and, in a podman test host (no udev, no device-mapper), 252 cannot use a disk image's
partitions ("Failed to read metadata for image flatcar-python: No such file or directory",
seen). One tied to another OS release is refused before anything is installed, with
the field that does not match; the right one is installed and merged by the host's own
systemd-sysext 252, a module runs on ``/usr/bin/python3``, and a second run changes nothing.
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
    names = {k: 'tucked-i17url-%s-%d' % (k, os.getpid()) for k in 'abc'}
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
    step('both', 'a:b', {'bootstrap_url': url, 'bootstrap_checksum': image['checksum']})
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


FLATCAR_NAME = 'flatcar-python'
FLATCAR_PYTHON = '/usr/bin/python3'


@pytest.fixture(scope='module', name='flatcar')
def flatcar_fixture(image, tmp_path_factory):
    """Two images shaped like Flatcar's flatcar-python (see the module's docstring), made from the
    same interpreter: ``fits`` tied to the test hosts' release (bookworm, VERSION_ID 12),
    ``other`` to VERSION_ID 11. Each in a directory of its own, as NAME-VERSION.raw."""
    tree = str(tmp_path_factory.mktemp('flatcar') / 'tree')
    subprocess.run(['unsquashfs', '-no-xattrs', '-q', '-d', tree, os.path.join(image['dir'], image['file'])],
                   check=True, capture_output=True)
    os.remove(os.path.join(tree, 'usr/lib/extension-release.d/extension-release.tucked-python'))
    os.remove(os.path.join(tree, 'usr/lib/tucked-sysext/python/tucked-python.json'))     # Flatcar's has no manifest
    os.makedirs(os.path.join(tree, 'usr/bin'))
    os.symlink('../lib/tucked-sysext/python/bin/python3', os.path.join(tree, 'usr/bin/python3'))
    out = {}
    for key, version_id in (('fits', '12'), ('other', '11')):
        dest = str(tmp_path_factory.mktemp('flatcar-' + key) / ('%s-%s.raw' % (FLATCAR_NAME, image['version'])))
        built, = run_tasks([{'tucked.sysext.sysext_build': {
            'src': tree, 'dest': dest, 'name': FLATCAR_NAME, 'id': 'debian', 'version_id': version_id,
            'format': 'erofs', 'compression': 'lz4hc', 'compression_level': 12, 'cluster_size': 65536,
            'erofs_features': ['fragments', 'ztailpacking'], 'source_date_epoch': 0}}])
        assert not built.get('failed'), built.get('msg')
        with open(dest, 'rb') as f:
            assert f.read(1028)[1024:1028] == b'\xe2\xe1\xf5\xe0', 'an erofs image'
        out[key] = dest
    return out


@pytest.fixture(scope='module', name='flatcar_runs')
def flatcar_runs_fixture(flatcar, hosts, tmp_path_factory):
    """The bootstrap on host c with the Flatcar-shaped images, in order: the other OS release's,
    the fitting one, the fitting one again."""
    cache = str(tmp_path_factory.mktemp('cache-c'))
    given = {'bootstrap_name': FLATCAR_NAME, 'bootstrap_interpreter': FLATCAR_PYTHON}
    out = {}
    for key, src in (('other', flatcar['other']), ('first', flatcar['fits']), ('second', flatcar['fits'])):
        rc, shown, results = play(hosts, 'c', dict(given, bootstrap_src=src), cache)
        out[key] = {'rc': rc, 'shown': shown, 'results': results,
                    'untouched': on_host(hosts, 'c', 'ls -d /var/lib/tucked-sysext /var/lib/extensions/%s.raw %s '
                                                     '2>/dev/null; echo end' % (FLATCAR_NAME, FLATCAR_PYTHON)) == 'end\n'}
        if key == 'first':
            out['python'] = on_host(hosts, 'c', FLATCAR_PYTHON + ' -c "import sys, ssl; print(sys.version.split()[0])"')
            out['status'] = on_host(hosts, 'c', 'systemd-sysext list --no-legend; systemd-sysext status --no-legend')
    return out


def test_a_user_image_tied_to_another_os_release_is_refused_before_anything_is_installed(flatcar_runs):
    run = flatcar_runs['other']
    assert run['rc'] != 0
    probe, = named(run['results'], 'Look for a usable Python')
    assert probe['needs_image'] and not probe['changed']
    failed, = named(run['results'], 'Install, merge and verify')
    assert failed['failed'] and not failed.get('changed'), failed
    assert FLATCAR_NAME in failed['msg'] and 'VERSION_ID' in failed['msg'] and "'11'" in failed['msg'], failed['msg']
    assert run['untouched'], 'nothing stored, linked or merged'


def test_a_flatcar_shaped_user_image_is_merged_by_the_hosts_systemd_and_modules_run_on_it(flatcar_runs):
    run = flatcar_runs['first']
    assert run['rc'] == 0, run['shown'][-4000:]
    installed, = named(run['results'], 'Install, merge and verify')
    assert installed['changed'] and installed['source'] == 'installed', installed
    assert installed['interpreter'] == FLATCAR_PYTHON
    facts, = named(run['results'], 'facts on the bootstrapped interpreter')
    assert facts['ansible_facts']['ansible_python']['executable'] == PYTHON + '.11'
    assert flatcar_runs['python'].strip().startswith('3.11.')
    assert FLATCAR_NAME in flatcar_runs['status'], flatcar_runs['status']
    assert not run['untouched']


def test_a_second_run_with_the_user_image_changes_nothing(flatcar_runs):
    run = flatcar_runs['second']
    assert run['rc'] == 0, run['shown'][-4000:]
    assert not any(r.get('changed') for _task, r in run['results']), run['results']
    probe, = named(run['results'], 'Look for a usable Python')
    assert probe['source'] == 'existing' and probe['interpreter'] == FLATCAR_PYTHON
