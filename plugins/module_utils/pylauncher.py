# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PREFIX/bin/python3 of the image sysext_python builds: a POSIX shell launcher that execs the
interpreter PREFIX/bin/python3.X, after naming the host's CA certificates for the bundled
OpenSSL when it would not find them itself.

Why: the image bundles Debian's libssl3, whose built-in defaults are Debian's paths
(OPENSSLDIR /usr/lib/ssl: the file /usr/lib/ssl/cert.pem and the hashed directory
/usr/lib/ssl/certs, a link to /etc/ssl/certs). Fedora CoreOS keeps its CA bundle in
/etc/pki/tls/certs/ca-bundle.crt (/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem),
Flatcar in /etc/ssl/certs/ca-certificates.crt, and neither has /usr/lib/ssl, so every TLS
verification of that interpreter (urllib, ansible's fetch_url on Flatcar) would fail.

How, and why this way: OpenSSL itself reads the environment variables SSL_CERT_FILE and
SSL_CERT_DIR when it loads its default verify locations (what ssl.create_default_context()
does). The launcher sets SSL_CERT_FILE to the first CA bundle of CA_FILES that exists, or
without one SSL_CERT_DIR to the first directory of CA_DIRS, and only when

* neither variable is set (a user's choice always wins), and
* neither of the bundled OpenSSL's own defaults exists (on Debian and Ubuntu hosts nothing
  changes: OpenSSL finds /usr/lib/ssl/certs as it always did).

Nothing of the standard library is edited and no code runs inside the interpreter at start-up
(no sitecustomize, no .pth hook, no pyvenv.cfg), so ``-I``, ``-S`` and ``-E`` change nothing of
it; the interpreter binary itself stays the unchanged ELF file next to the launcher. What it
costs: the interpreter needs ``/bin/sh`` (every host Ansible manages has it), ``sys.executable``
is PREFIX/bin/python3.X (the binary, as exec'd), and children of the interpreter inherit the
variable, which names the host's own CA bundle, the one the host's tools use anyway.
OPENSSL_CONF is left alone: a host's openssl.cnf (Fedora's includes its crypto policies, may
load providers) is written for the host's OpenSSL, not for the bundled one, which runs on its
built-in defaults when /usr/lib/ssl/openssl.cnf is missing.
"""

from __future__ import annotations

import re

# OpenSSL's built-in defaults in Debian's libssl3 (OPENSSLDIR /usr/lib/ssl)
OPENSSL_DEFAULT_FILE = '/usr/lib/ssl/cert.pem'
OPENSSL_DEFAULT_DIR = '/usr/lib/ssl/certs'
# CA bundles in the order they are tried (the same list Go's crypto/x509 reads on Linux):
# Debian, Ubuntu, Gentoo and Flatcar; Fedora, Fedora CoreOS and RHEL; openSUSE; OpenELEC;
# RHEL 7's extracted bundle; Alpine
CA_FILES = ('/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/ca-bundle.pem',
            '/etc/pki/tls/cacert.pem', '/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', '/etc/ssl/cert.pem')
# hashed certificate directories, when there is no bundle
CA_DIRS = ('/etc/ssl/certs', '/etc/pki/tls/certs')


def _path(p: str) -> str:
    if not p.startswith('/') or not re.match(r'^[A-Za-z0-9/._+-]+$', p):
        raise ValueError('%r must be an absolute path of plain characters' % (p,))
    return p


def script(interpreter: str, defaults=(OPENSSL_DEFAULT_FILE, OPENSSL_DEFAULT_DIR), files=CA_FILES,
           dirs=CA_DIRS) -> str:
    """The launcher's text for the interpreter binary at the absolute path ``interpreter``
    (the other arguments exist for the tests: OpenSSL's own default file and directory, the
    bundles and the directories tried)."""
    default_file, default_dir = (_path(p) for p in defaults)
    return '\n'.join([
        '#!/bin/sh',
        '# The Python of this system extension (tucked.sysext.sysext_python). Its OpenSSL (Debian\'s) looks',
        '# for CA certificates in %s and %s; where neither exists (Fedora CoreOS,' % (default_file, default_dir),
        '# Flatcar) and neither SSL_CERT_FILE nor SSL_CERT_DIR is set, the host\'s own CA bundle is',
        '# named in SSL_CERT_FILE (or its certificate directory in SSL_CERT_DIR), which OpenSSL reads.',
        'if [ -z "${SSL_CERT_FILE-}${SSL_CERT_DIR-}" ] && [ ! -e %s ] && [ ! -d %s ]; then' % (default_file, default_dir),
        '    for f in %s; do' % ' '.join(_path(p) for p in files),
        '        if [ -f "$f" ] && [ -r "$f" ]; then SSL_CERT_FILE=$f; export SSL_CERT_FILE; break; fi',
        '    done',
        '    if [ -z "${SSL_CERT_FILE-}" ]; then',
        '        for d in %s; do' % ' '.join(_path(p) for p in dirs),
        '            if [ -d "$d" ] && [ -r "$d" ]; then SSL_CERT_DIR=$d; export SSL_CERT_DIR; break; fi',
        '        done',
        '    fi',
        'fi',
        'exec %s "$@"' % _path(interpreter),
        '',
    ])
