# -*- coding: utf-8 -*-
"""pylauncher.py: the launcher bin/python3 of the image, run by real shells (each one found
here) with its paths moved into a scratch directory: it names the first CA bundle that
exists in SSL_CERT_FILE (else a certificate directory in SSL_CERT_DIR), only when OpenSSL's
own defaults are missing and the user set neither variable, and passes every argument and
the standard input on to the interpreter it execs. (tests/integration/test_image_tls.py runs
the real image's launcher on a Fedora- and a Flatcar-style root against a TLS server.)"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import pylauncher

SHELLS = [s for s in ('dash', 'bash', 'busybox') if shutil.which(s)]
REPORT = ('import json, os, sys; print(json.dumps([os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"), '
          'sys.argv[1:], sys.stdin.read()]))')


class Layout:
    """The launcher's paths under ``tmp``: OpenSSL's defaults, three bundles, two directories."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.default_file = self.p('usr/lib/ssl/cert.pem')
        self.default_dir = self.p('usr/lib/ssl/certs')
        self.files = [self.p('etc/ssl/certs/ca-certificates.crt'), self.p('etc/pki/tls/certs/ca-bundle.crt'),
                      self.p('etc/ssl/cert.pem')]
        self.dirs = [self.p('etc/ssl/certs'), self.p('etc/pki/tls/certs')]
        self.launcher = self.p('python3')
        with open(self.launcher, 'w', encoding='utf-8') as f:
            f.write(pylauncher.script(os.path.realpath(sys.executable), (self.default_file, self.default_dir),
                                      self.files, self.dirs))
        os.chmod(self.launcher, 0o755)

    def p(self, rel):
        return os.path.join(self.tmp, rel)

    def make(self, path, directory=False):
        if directory:
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, 'w', encoding='utf-8') as f:
                f.write('ca\n')

    def run(self, shell, env=None, args=('-c', REPORT)):
        cmd = [shell, 'sh', self.launcher] if shell == 'busybox' else [shell, self.launcher]
        res = subprocess.run(cmd + list(args), input='stdin text', capture_output=True, text=True, check=True,
                             env=dict({'PATH': '/usr/bin:/bin'}, **(env or {})))
        return json.loads(res.stdout)


@pytest.fixture(params=SHELLS)
def shell(request):
    return request.param


def test_nothing_to_find_sets_nothing(tmp_path, shell):
    lay = Layout(tmp_path)
    assert lay.run(shell) == [None, None, [], 'stdin text']


def test_the_first_bundle_that_exists_is_named(tmp_path, shell):
    lay = Layout(tmp_path)
    lay.make(lay.files[1])                      # Fedora's
    lay.make(lay.dirs[0], directory=True)       # a directory too: the bundle is enough
    assert lay.run(shell)[:2] == [lay.files[1], None]
    lay.make(lay.files[0])                      # Flatcar's (and Debian's) comes first
    assert lay.run(shell)[:2] == [lay.files[0], None]


def test_a_directory_by_a_bundles_name_is_not_a_bundle(tmp_path, shell):
    lay = Layout(tmp_path)
    lay.make(lay.files[0], directory=True)
    lay.make(lay.files[2])
    assert lay.run(shell)[:2] == [lay.files[2], None]


def test_without_a_bundle_a_certificate_directory(tmp_path, shell):
    lay = Layout(tmp_path)
    lay.make(lay.dirs[1], directory=True)
    assert lay.run(shell)[:2] == [None, lay.dirs[1]]


@pytest.mark.parametrize('which', ['default_file', 'default_dir'])
def test_openssls_own_defaults_existing_change_nothing(tmp_path, shell, which):
    lay = Layout(tmp_path)
    lay.make(lay.files[1])
    lay.make(getattr(lay, which), directory=which == 'default_dir')
    assert lay.run(shell)[:2] == [None, None]


@pytest.mark.parametrize('var', ['SSL_CERT_FILE', 'SSL_CERT_DIR'])
def test_the_users_variable_wins(tmp_path, shell, var):
    lay = Layout(tmp_path)
    lay.make(lay.files[0])
    lay.make(lay.dirs[1], directory=True)
    got = lay.run(shell, env={var: '/the/users/choice'})
    assert got[:2] == (['/the/users/choice', None] if var == 'SSL_CERT_FILE' else [None, '/the/users/choice'])


def test_arguments_and_stdin_pass_through_unchanged(tmp_path, shell):
    lay = Layout(tmp_path)
    args = ['-c', REPORT, 'a b', '', '$HOME', '"*"', '-x']
    assert lay.run(shell, args=args)[2:] == [args[2:], 'stdin text']


def test_the_exit_status_is_the_interpreters(tmp_path, shell):
    lay = Layout(tmp_path)
    cmd = [shell, 'sh', lay.launcher] if shell == 'busybox' else [shell, lay.launcher]
    assert subprocess.run(cmd + ['-c', 'raise SystemExit(7)'], check=False).returncode == 7


def test_the_real_launcher_names_the_real_paths():
    text = pylauncher.script('/usr/lib/tucked-sysext/python/bin/python3.11')
    assert text.startswith('#!/bin/sh\n') and text.endswith('\nexec /usr/lib/tucked-sysext/python/bin/python3.11 "$@"\n')
    assert '[ ! -e /usr/lib/ssl/cert.pem ] && [ ! -d /usr/lib/ssl/certs ]' in text
    assert 'for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt ' in text
    assert '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem' in text


@pytest.mark.parametrize('bad', ['python3', '/usr/bin/py thon', '/x;rm', "/x'y"])
def test_paths_that_need_quoting_are_refused(bad):
    with pytest.raises(ValueError, match='absolute path of plain characters'):
        pylauncher.script(bad)
    with pytest.raises(ValueError):
        pylauncher.script('/usr/bin/python3', files=[bad])
