# -*- coding: utf-8 -*-
"""Stand-in for pip's get-pip.py, used by ansible-test to put pip into the empty virtual
environments it creates. The real script is downloaded from a host this machine type
cannot reach; this one bootstraps Python's bundled pip (ensurepip) and then installs what
ansible-test asked for (its pinned pip and packages) from the package index.

scripts/bootstrap.sh copies it to ~/.ansible/test/cache/get_pip_<version>.py.
"""

import ensurepip
import os
import subprocess
import sys

# The bundled pip (23.x) ignores a `cert` set in pip.conf for this first download; name
# the system CA bundle explicitly where there is one (a TLS-intercepting proxy's CA is there).
SYSTEM_CA = '/etc/ssl/certs/ca-certificates.crt'


def main():
    args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
    ensurepip.bootstrap(upgrade=True)
    cert = os.environ.get('PIP_CERT') or (SYSTEM_CA if os.path.exists(SYSTEM_CA) else None)
    subprocess.check_call([sys.executable, '-m', 'pip', 'install'] + (['--cert', cert] if cert else []) + args)


if __name__ == '__main__':
    main()
