# -*- coding: utf-8 -*-
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from lib import nsroot  # noqa: E402


@pytest.fixture(scope='session', autouse=True)
def collection_on_path():
    subprocess.run([os.path.join(nsroot.REPO, 'scripts', 'link-collection.sh')], check=True)
    nsroot.engine()
