# -*- coding: utf-8 -*-
"""Our needs_refresh agrees with real systemd-sysext: 262 (sid root) and 252 (this host)."""

import json
import shutil

import pytest

from conftest import run_driver
from interop_driver import CASES

# cases where systemd 262 must skip the refresh (the others must refresh)
SKIPS = {'unchanged', 'relink-same-target', 'touch-inside-dir', 'confext-unchanged'}


@pytest.mark.parametrize('case', sorted(CASES))
def test_agrees_with_systemd_262(sid_root, case):
    out = run_driver('interop_driver.py', '262', case)
    detail = json.dumps(out, indent=1)
    assert out['ours_before_change'] is False, 'right after systemd merged, nothing may need a refresh\n' + detail
    assert out['systemd_refreshed'] is (case not in SKIPS), 'systemd did not do what the case expects\n' + detail
    assert out['ours'] is out['systemd_refreshed'], 'our decision differs from systemd 262\n' + detail
    assert out['ours_after_refresh'] is False, 'after systemd refreshed, we still see a change\n' + detail
    # status --json of systemd and our facts name the same extensions per hierarchy
    status = {e['hierarchy']: e['extensions'] for e in json.loads(out['systemd_status'])}
    for hier, ext in status.items():
        assert out['hierarchies'][hier]['extensions'] == ext, detail
        assert out['hierarchies'][hier]['merged_by'] == ('systemd' if ext else 'none'), detail


@pytest.mark.skipif(not shutil.which('systemd-sysext'), reason='this machine has no systemd-sysext')
@pytest.mark.parametrize('case,names', [('merged-dir', ['bar', 'foo']), ('merged-raw', ['sq']), ('none', [])])
def test_reads_systemd_252_merges(case, names):
    out = run_driver('interop_driver.py', '252', case)
    detail = json.dumps(out, indent=1)
    assert out['extensions'] == names, detail
    if names:
        assert out['merged_by'] == 'systemd', detail
        assert out['origins'] is None, '252 records no origin\n' + detail
        assert out['ours'] is True, 'no origin recorded means a refresh is needed\n' + detail
        assert {r['change'] for r in out['reasons']} == {'unknown'}, detail
        assert out['systemd_refreshed'] is True, '252 always refreshes\n' + detail
        assert set(names) <= set(out['visible']), detail
    else:
        assert out['ours'] is False and out['merged_by'] == 'none', detail
    assert out['after_unmerge'] == 'none', detail
