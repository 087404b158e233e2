# -*- coding: utf-8 -*-
"""The action group: every module in it accepts what the README says the group can set."""

import importlib
import os

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME = os.path.join(HERE, '..', '..', '..', 'meta', 'runtime.yml')


def _group():
    with open(RUNTIME) as f:
        return yaml.safe_load(f)['action_groups']['sysext']


def test_every_module_of_the_group_accepts_root():
    for name in _group():
        mod = importlib.import_module('ansible_collections.tucked.sysext.plugins.modules.' + name)
        assert 'root' in mod.ARGUMENT_SPEC, '%s is in group/tucked.sysext.sysext but does not accept root' % name
        assert 'root' in yaml.safe_load(mod.DOCUMENTATION)['options'], name
