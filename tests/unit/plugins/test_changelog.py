# -*- coding: utf-8 -*-
"""The changelog of the first release (issue 16). While changelogs/changelog.yaml holds no
release, the fragments say what the first release brings: one release summary that names
everything the collection ships, no fixes or breaking changes against a release that never
was (those fragments go to ``trivial``), and every module, plugin, role and playbook listed as
new (antsibull-changelog finds modules, plugins and roles by their ``version_added``,
playbooks by ``add object.playbook``)."""

import ast
import glob
import os

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, '..', '..', '..')
NOT_IN_A_FIRST_RELEASE = ('breaking_changes', 'deprecated_features', 'removed_features', 'security_fixes', 'bugfixes')
SHOWN = ('release_summary', 'major_changes', 'minor_changes', 'known_issues')
# words that describe a change against an earlier state, which a first release does not have
AGAINST_AN_EARLIER_STATE = ('no longer', 'used to', '(was ', ' now costs')


def load(*path):
    with open(os.path.join(TOP, *path)) as f:
        return yaml.safe_load(f)


def fragments() -> dict:
    return {os.path.basename(p): yaml.safe_load(open(p)) or {}
            for p in sorted(glob.glob(os.path.join(TOP, 'changelogs', 'fragments', '*.yml')))}


def documentation(path: str) -> dict:
    if path.endswith('.yml'):
        return load(path)['DOCUMENTATION']
    with open(os.path.join(TOP, path)) as f:
        tree = ast.parse(f.read())
    return yaml.safe_load(next(n.value.value for n in tree.body if isinstance(n, ast.Assign)
                               and [getattr(t, 'id', None) for t in n.targets] == ['DOCUMENTATION']))


def shipped() -> dict:
    """{'module': [names], 'filter': ..., 'lookup': ..., 'role': ..., 'playbook': ...}, from the tree."""
    def names(pattern):
        return sorted(os.path.basename(p).rsplit('.', 1)[0] for p in glob.glob(os.path.join(TOP, pattern))
                      if not os.path.basename(p).startswith('__'))
    return {'module': names('plugins/modules/*.py'), 'lookup': names('plugins/lookup/*.py'),
            'filter': names('plugins/filter/*.yml') + ['sysext_pending'],
            'role': sorted(os.path.basename(os.path.dirname(os.path.dirname(p)))
                           for p in glob.glob(os.path.join(TOP, 'roles', '*', 'meta', 'argument_specs.yml'))),
            'playbook': names('playbooks/*.yml')}


pytestmark = pytest.mark.skipif(bool(load('changelogs', 'changelog.yaml').get('releases')),
                                reason='a release is recorded: these rules are for the first one')


def test_the_tree_ships_what_these_tests_look_at():
    have = shipped()
    assert have['module'] == ['sysext_bootstrap', 'sysext_build', 'sysext_facts', 'sysext_image', 'sysext_python',
                              'sysext_refresh', 'sysext_sysupdate'], have
    assert len(have['filter']) == 7 and have['role'] == ['bootstrap', 'sysext'] and len(have['playbook']) == 4, have


def test_one_release_summary_naming_everything_the_collection_ships():
    summaries = {name: f['release_summary'] for name, f in fragments().items() if 'release_summary' in f}
    assert len(summaries) == 1, 'one release summary for the first release, not %s' % sorted(summaries)
    text, = summaries.values()
    assert text.startswith('First release of tucked.sysext'), text
    for kind, names in shipped().items():
        for name in names:
            assert name in text, 'the release summary does not name the %s %s' % (kind, name)


def test_nothing_is_fixed_or_broken_against_a_release_that_never_was():
    for name, fragment in fragments().items():
        wrong = sorted(set(fragment) & set(NOT_IN_A_FIRST_RELEASE))
        assert not wrong, '%s: %s in the first release; a fix of unreleased work is trivial' % (name, wrong)
        for section in SHOWN:
            entries = fragment.get(section) or []
            for entry in [entries] if isinstance(entries, str) else entries:
                for words in AGAINST_AN_EARLIER_STATE:
                    assert words not in entry, '%s %s: %r compares with a state no release had: %s' % (
                        name, section, words, entry)


def test_every_module_plugin_role_and_playbook_is_listed_as_new():
    version = load('galaxy.yml')['version']
    have = shipped()
    for kind in ('module', 'lookup'):
        for name in have[kind]:
            path = 'plugins/%s/%s.py' % ('modules' if kind == 'module' else kind, name)
            assert str(documentation(path).get('version_added')) == version, path
    for name in have['filter']:
        path = 'plugins/filter/%s' % ('sysext_pending.py' if name == 'sysext_pending' else name + '.yml')
        assert str(documentation(path).get('version_added')) == version, path
    for name in have['role']:
        main = load('roles', name, 'meta', 'argument_specs.yml')['argument_specs']['main']
        assert str(main.get('version_added')) == version, 'role %s: main needs version_added: %s' % (name, version)
    listed = [p['name'] for f in fragments().values() for p in f.get('add object.playbook') or []]
    assert sorted(listed) == have['playbook'], 'add object.playbook lists %s' % listed
