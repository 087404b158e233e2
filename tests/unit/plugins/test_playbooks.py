# -*- coding: utf-8 -*-
"""The playbooks shipped in the collection: a bare run never targets the controller, and what
they write on the controller is written unprivileged, also under -b."""

import glob
import os

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PLAYBOOKS = sorted(glob.glob(os.path.join(HERE, '..', '..', '..', 'playbooks', '*.yml')))


def tasks(play):
    for key in ('pre_tasks', 'tasks', 'post_tasks', 'handlers'):
        for t in play.get(key) or []:
            yield from [t] + [b for sect in ('block', 'rescue', 'always') for b in t.get(sect) or []]


@pytest.mark.parametrize('path', PLAYBOOKS, ids=os.path.basename)
def test_no_play_defaults_to_the_controller(path):
    for play in yaml.safe_load(open(path)):
        assert 'localhost' not in str(play.get('hosts')), '%s: %s' % (path, play.get('hosts'))


@pytest.mark.parametrize('path', PLAYBOOKS, ids=os.path.basename)
def test_controller_side_writes_do_not_become(path):
    for play in yaml.safe_load(open(path)):
        for t in tasks(play):
            if t.get('delegate_to') == 'localhost' and not set(t) & {'ansible.builtin.debug', 'debug'}:
                assert t.get('become') is False, '%s: %s runs on the controller and picks up -b' % (path, t['name'])


def test_there_are_playbooks():
    assert len(PLAYBOOKS) >= 4
