# -*- coding: utf-8 -*-
"""TLS verification by sysext_python's image on Fedora- and Flatcar-style hosts (issue 17):
its bundled OpenSSL (Debian's) looks for CA certificates in Debian's /usr/lib/ssl, which those
hosts lack; the launcher bin/python3 names the host's CA bundle (module_utils/pylauncher.py).

The image is built from the cached bookworm packages (``scripts/bootstrap.sh python-debs``;
without them this fails) and run on nothing but libc6 and a shell, chrooted in a private mount
namespace (image_tls_driver.py), against a TLS server on 127.0.0.1 this test runs, whose
certificate a throw-away CA (made here with openssl) signed; that CA is in the root only where
the layout's distribution keeps its bundle, and nobody sets an environment variable. The
control is the interpreter binary run without its launcher: it fails the same verification.
"""

import glob
import http.server
import os
import ssl
import subprocess
import sys
import threading

import pytest

from conftest import run_driver
from lib import nsroot
from lib.ansible_run import run_tasks

DEBS = os.path.join(nsroot.CACHE, 'debs', 'python3.11-bookworm')
PREFIX = '/usr/lib/tucked-sysext/python'
BODY = 'tucked over TLS'


def openssl(*args, cwd):
    subprocess.run(['openssl'] + list(args), cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope='module', name='pki')
def pki_fixture(tmp_path_factory):
    """A throw-away CA and a server certificate for 127.0.0.1 it signed."""
    d = str(tmp_path_factory.mktemp('pki'))
    ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
    openssl('req', '-x509', *ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tucked test CA',
            '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', cwd=d)
    openssl('req', *ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1', cwd=d)
    with open(os.path.join(d, 'ext.cnf'), 'w') as f:
        f.write('subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n')
    openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out',
            'server.pem', '-days', '2', '-extfile', 'ext.cnf', cwd=d)
    return d


@pytest.fixture(scope='module', name='url')
def server_fixture(pki):
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            requests.append(self.path)
            body = BODY.encode()
            self.send_response(200)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(pki, 'server.pem'), os.path.join(pki, 'server.key'))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'https://127.0.0.1:%d/hello' % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(scope='module', name='image')
def image_fixture(tmp_path_factory):
    if not glob.glob(os.path.join(DEBS, 'python3.11-minimal_*.deb')) or not glob.glob(
            os.path.join(DEBS, 'glibc', 'libc6_*.deb')):
        pytest.fail('no cached Python packages in %s: run scripts/bootstrap.sh python-debs (make test does)' % DEBS)
    out = tmp_path_factory.mktemp('tlsimage')
    built, = run_tasks([{'tucked.sysext.sysext_python': {'debs': DEBS, 'dest': str(out) + '/'}}])
    assert not built.get('failed'), built.get('msg')
    return built['dest']


@pytest.fixture(scope='module', name='runs')
def runs_fixture(image, pki, url):
    import ansible
    libc6 = glob.glob(os.path.join(DEBS, 'glibc', 'libc6_*.deb'))[0]
    out = run_driver('image_tls_driver.py', image, libc6, os.path.join(pki, 'ca.pem'), url,
                     os.path.dirname(ansible.__file__), timeout=400)
    assert 'failed' not in out, out
    assert not os.path.exists(out['scratch']), 'the scratch root is gone'
    return out


def verify_failed(text):
    return text.startswith('error: ') and 'CERTIFICATE_VERIFY_FAILED' in text


def ok(text):
    return text == 'ok: ' + BODY


def test_the_root_has_no_ca_of_this_machine_and_bin_python3_is_the_launcher(runs):
    assert runs['top'] == ['bin', 'etc', 'lib', 'lib64', 'opt', 'proc', 'tmp', 'usr'], 'libc6, a shell, ansible\'s module_utils, the image, /proc, /tmp'
    assert runs['launcher_head'] == '#!/bin/sh\n' and runs['binaries'] == ['python3.11']
    # nothing found means no CA at all in the root: not even the binary verifies there
    none = runs['none']
    assert none['launcher']['env'] == {'SSL_CERT_FILE': None, 'SSL_CERT_DIR': None}
    for run in none.values():
        assert verify_failed(run['urllib']) and verify_failed(run['fetch_url']), run


def test_fedora_the_launcher_names_the_ca_bundle_and_tls_verifies(runs):
    run = runs['fedora']['launcher']
    assert run['env'] == {'SSL_CERT_FILE': '/etc/pki/tls/certs/ca-bundle.crt', 'SSL_CERT_DIR': None}
    assert ok(run['urllib']) and ok(run['fetch_url']), run
    assert run['executable'] == PREFIX + '/bin/python3.11'


def test_fedora_without_the_launcher_urllib_fails(runs):
    run = runs['fedora']['binary']
    assert run['env'] == {'SSL_CERT_FILE': None, 'SSL_CERT_DIR': None}
    assert run['defaults'][2:] == ['SSL_CERT_FILE', '/usr/lib/ssl/cert.pem', 'SSL_CERT_DIR', '/usr/lib/ssl/certs']
    assert verify_failed(run['urllib']), run
    # ansible's own make_context reads every .crt of /etc/pki/tls/certs on Linux: fetch_url verified there already
    assert ok(run['fetch_url']), run


def test_flatcar_the_launcher_names_the_ca_bundle_and_tls_verifies(runs):
    run = runs['flatcar']['launcher']
    assert run['env'] == {'SSL_CERT_FILE': '/etc/ssl/certs/ca-certificates.crt', 'SSL_CERT_DIR': None}
    assert ok(run['urllib']) and ok(run['fetch_url']), run


def test_flatcar_without_the_launcher_urllib_and_fetch_url_fail(runs):
    run = runs['flatcar']['binary']
    assert verify_failed(run['urllib']) and verify_failed(run['fetch_url']), run


def test_debian_nothing_is_set_and_openssls_own_default_verifies(runs):
    for run in runs['debian'].values():
        assert run['env'] == {'SSL_CERT_FILE': None, 'SSL_CERT_DIR': None}
        assert ok(run['urllib']) and ok(run['fetch_url']), run


def test_the_users_ssl_cert_file_wins(runs):
    run = runs['users_choice']
    assert run.get('env') == {'SSL_CERT_FILE': '/etc/no-such-bundle.pem', 'SSL_CERT_DIR': None}, run
    assert verify_failed(run['urllib']), run


if __name__ == '__main__':
    sys.exit(pytest.main([__file__]))
