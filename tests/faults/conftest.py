# -*- coding: utf-8 -*-
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from lib import nsroot  # noqa: E402


@pytest.fixture(scope='session', autouse=True)
def collection_link():
    subprocess.run([os.path.join(nsroot.REPO, 'scripts', 'link-collection.sh')], check=True)
    if not os.path.exists(os.path.join(nsroot.SID_ROOT, 'usr/bin/systemd-sysext')):
        pytest.fail('no sid root at %s: run scripts/bootstrap.sh sid-root (make test does)' % nsroot.SID_ROOT)
