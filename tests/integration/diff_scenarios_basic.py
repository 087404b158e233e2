# -*- coding: utf-8 -*-
"""Differential scenarios of the plain cases: they keep the harness itself honest."""

from __future__ import annotations

from differential import Scenario, Step


def _images(r):
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n', 'opt/foo/data': 'opt\n'})
    r.add_raw('var/lib/extensions', 'sqx', files={'usr/share/sqx/hello': 'sqx\n'})
    r.add_raw('var/lib/extensions', 'ero', fs='erofs')


def _confexts(r):
    r.add_dir('var/lib/confexts', 'site', cls='confext')


def _replace(r):
    r.add_raw('var/lib/extensions', 'sqx', files={'usr/share/sqx/hello': 'sqx 2\n'})


def _merged_both_ways(result):
    merge = result['steps'][0]
    for side in ('systemd', 'ours'):
        assert merge[side]['ok'], merge[side]['msg']
        assert 'share/sqx/hello' in merge[side]['files']['usr'], side
        assert merge[side]['mounts']['usr']['fstype'] == 'overlay', side


# ours runs through real ansible-playbook here (see differential.py)
PLAYBOOK = True

SCENARIOS = [
    Scenario('basic-merge-replace-unmerge', _images,
             [Step('merge'), Step('refresh'), Step('hook', hook=_replace), Step('refresh'), Step('unmerge')],
             check=_merged_both_ways),
    Scenario('basic-confext', _confexts, [Step('merge', cls='confext'), Step('unmerge', cls='confext')]),
    Scenario('basic-nothing-to-merge', lambda r: None, [Step('merge'), Step('unmerge')]),
]
