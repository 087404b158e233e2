# -*- coding: utf-8 -*-
"""TLS verification by the Python image of sysext_python on hosts that keep their CA
certificates elsewhere than Debian, inside a private mount namespace:

    unshare -m --propagation private python3 image_tls_driver.py IMAGE LIBC6_DEB CA_PEM URL ANSIBLE_PKG

A tmpfs root holds Debian's libc6, a POSIX shell (this machine's dash as /bin/sh, which needs
nothing but libc), the image's /usr/lib/tucked-sysext read-only (the image loop-mounted, its
prefix bound in), /proc, ansible's module_utils (copied from ANSIBLE_PKG, the controller's ansible
package) and, per layout, the throw-away CA CA_PEM where one distribution keeps its CA bundle:
Fedora (/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem, linked from
/etc/pki/tls/certs/ca-bundle.crt, /etc/ssl/certs a link to /etc/pki/tls/certs), Flatcar
(/etc/ssl/certs/ca-certificates.crt), Debian (a hashed link in /etc/ssl/certs, found through
/usr/lib/ssl/certs) or nowhere. There, chrooted, with an environment of PATH alone (or one
SSL_CERT_FILE a user set), the launcher PREFIX/bin/python3 and, as the control without the
launcher, the binary PREFIX/bin/python3.X fetch URL (a TLS server on 127.0.0.1 the test runs,
its certificate signed by that CA) with urllib and with ansible's fetch_url (what sysext_image
calls for url:, from an AnsibleModule). Printed: one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.nsroot import emit, in_namespace_guard, make_scratch, sh  # noqa: E402

PREFIX = '/usr/lib/tucked-sysext/python'
CHROOT = shutil.which('chroot') or shutil.which('chroot', path='/usr/sbin:/sbin:/usr/bin:/bin')
LIB = '/opt/ansible-lib'

CHECK = r'''
import json, os, ssl, sys, urllib.request
url = sys.argv[1]
out = {'env': {k: os.environ.get(k) for k in ('SSL_CERT_FILE', 'SSL_CERT_DIR')}, 'executable': sys.executable,
       'defaults': list(ssl.get_default_verify_paths())}
def attempt(fetch):
    try:
        return 'ok: ' + fetch()
    except Exception as e:
        return 'error: ' + type(e).__name__ + ': ' + str(e)
out['urllib'] = attempt(lambda: urllib.request.urlopen(url, timeout=20).read().decode())
sys.path.insert(0, LIB)
# fetch_url as sysext_image calls it, from a module of no options (its arguments in a file, as
# AnsiballZ hands them over)
with open('/tmp/args.json', 'w') as f:
    json.dump({'ANSIBLE_MODULE_ARGS': {'_ansible_remote_tmp': '/tmp'}}, f)
sys.argv[1:] = ['/tmp/args.json']
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import fetch_url
def fetch():
    resp, info = fetch_url(AnsibleModule(argument_spec={}), url, timeout=20)
    if info.get('status') != 200:
        raise RuntimeError(info.get('msg'))
    return resp.read().decode()
out['fetch_url'] = attempt(fetch)
print(json.dumps(out))
'''.replace('LIB', repr(LIB), 1)

LAYOUTS = ('fedora', 'flatcar', 'debian', 'none')


def place_ca(root: str, layout: str, ca_pem: str, ca_hash: str) -> None:
    """Empty ROOT/etc/pki, ROOT/etc/ssl and ROOT/usr/lib/ssl, then put the CA where ``layout`` keeps it."""
    for d in ('etc/pki', 'etc/ssl', 'usr/lib/ssl'):
        shutil.rmtree(os.path.join(root, d), ignore_errors=True)

    def put(rel):
        os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
        shutil.copyfile(ca_pem, os.path.join(root, rel))

    if layout == 'fedora':
        put('etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem')
        os.makedirs(os.path.join(root, 'etc/pki/tls/certs'))
        os.symlink('/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem', os.path.join(root, 'etc/pki/tls/certs/ca-bundle.crt'))
        os.symlink('/etc/pki/tls/certs/ca-bundle.crt', os.path.join(root, 'etc/pki/tls/cert.pem'))
        os.makedirs(os.path.join(root, 'etc/ssl'))
        os.symlink('../pki/tls/certs', os.path.join(root, 'etc/ssl/certs'))
    elif layout == 'flatcar':
        put('etc/ssl/certs/ca-certificates.crt')
    elif layout == 'debian':
        # Debian's openssl package: /usr/lib/ssl/certs -> /etc/ssl/certs, hashed links there
        put('usr/share/ca-certificates/tucked/tucked-ca.crt')
        os.makedirs(os.path.join(root, 'etc/ssl/certs'))
        os.symlink('/usr/share/ca-certificates/tucked/tucked-ca.crt', os.path.join(root, 'etc/ssl/certs', ca_hash + '.0'))
        os.makedirs(os.path.join(root, 'usr/lib/ssl'))
        os.symlink('/etc/ssl/certs', os.path.join(root, 'usr/lib/ssl/certs'))


def run(root: str, python: str, url: str, env: dict) -> dict:
    res = subprocess.run([CHROOT, root, python, '-c', CHECK, url], capture_output=True, text=True, check=False,
                         env=dict({'PATH': '/usr/bin:/bin'}, **env), timeout=120)
    if res.returncode != 0:
        return {'failed': 'exit %d: %s' % (res.returncode, res.stderr[-2000:])}
    return json.loads(res.stdout)


def main(image: str, libc6: str, ca_pem: str, url: str, ansible_pkg: str) -> dict:
    in_namespace_guard()
    ca_hash = subprocess.run(['openssl', 'x509', '-hash', '-noout', '-in', ca_pem], capture_output=True, text=True,
                             check=True).stdout.strip()
    scratch = make_scratch()
    root, mnt = os.path.join(scratch, 'root'), os.path.join(scratch, 'image')
    os.makedirs(os.path.join(root, PREFIX.lstrip('/')[:-len('/python')]))
    os.makedirs(os.path.join(root, 'bin'))
    os.makedirs(os.path.join(root, 'proc'))
    os.makedirs(os.path.join(root, 'tmp'))
    os.mkdir(mnt)
    sh('dpkg-deb', '-x', libc6, root)
    shutil.copyfile(shutil.which('dash'), os.path.join(root, 'bin/sh'))
    os.chmod(os.path.join(root, 'bin/sh'), 0o755)
    lib = os.path.join(root, LIB.lstrip('/'), 'ansible')
    shutil.copytree(os.path.join(ansible_pkg, 'module_utils'), os.path.join(lib, 'module_utils'),
                    ignore=shutil.ignore_patterns('__pycache__'))
    open(os.path.join(lib, '__init__.py'), 'w').close()
    sh('mount', '-o', 'loop,ro', '-t', 'squashfs', image, mnt)
    mounts = [mnt]
    try:
        sh('mount', '--bind', os.path.join(mnt, 'usr/lib/tucked-sysext'), os.path.join(root, 'usr/lib/tucked-sysext'))
        mounts.append(os.path.join(root, 'usr/lib/tucked-sysext'))
        # (the loader reads $ORIGIN of the executable from /proc/self/exe)
        sh('mount', '-t', 'proc', 'proc', os.path.join(root, 'proc'))
        mounts.append(os.path.join(root, 'proc'))
        binary = sorted(n for n in os.listdir(os.path.join(root, PREFIX.lstrip('/'), 'bin')) if n != 'python3')
        out = {'scratch': scratch, 'binaries': binary, 'top': sorted(os.listdir(root))}
        with open(os.path.join(root, PREFIX.lstrip('/'), 'bin/python3'), encoding='utf-8') as f:
            out['launcher_head'] = f.read(10)
        for layout in LAYOUTS:
            place_ca(root, layout, ca_pem, ca_hash)
            out[layout] = {'launcher': run(root, PREFIX + '/bin/python3', url, {}),
                           'binary': run(root, PREFIX + '/bin/' + binary[0], url, {})}
        place_ca(root, 'fedora', ca_pem, ca_hash)
        out['users_choice'] = run(root, PREFIX + '/bin/python3', url, {'SSL_CERT_FILE': '/etc/no-such-bundle.pem'})
        return out
    finally:
        for m in reversed(mounts):
            subprocess.run(['umount', m], capture_output=True, check=False)


if __name__ == '__main__':
    emit(main(*sys.argv[1:6]))
