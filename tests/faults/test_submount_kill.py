# -*- coding: utf-8 -*-
"""SIGKILL a refresh (atomic, and atomic=never) or an unmerge while submounts sit below /usr and
/opt: none is ever lost or stacked. Each run in its own mount namespace."""

import json
import os
import sys

import pytest

from lib import nsroot

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize('mode,kills', [('refresh', 150), ('never', 150), ('unmerge', 200)])
def test_sigkill_keeps_every_submount(mode, kills):
    res = nsroot.run_in_ns([sys.executable, os.path.join(HERE, 'submount_kill_driver.py'), mode, str(kills)],
                           timeout=900)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith('{')]
    assert res.returncode == 0 and lines, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads(lines[-1])
    assert out['kills'] >= kills * 2 // 3, out
    assert out['failures'] == [], json.dumps(out['failures'][:5], indent=1)
    if mode == 'unmerge':
        assert out['held_after_kill'] > 0, 'kills landed while a submount was held, and it came back'
    assert out['after_unmerge']['seen'] == {'usr/share/sub': 'base usr', 'opt/x': 'base opt',
                                            'usr/share/foo': out['after_unmerge']['seen']['usr/share/foo']}
    assert out['after_unmerge']['seen']['usr/share/foo'] is not None
    assert out['after_unmerge']['mounts'] == {'usr/share/sub': 1, 'opt/x': 1, 'usr/share/foo': 1}
