# -*- coding: utf-8 -*-
"""galaxy.yml as a user of the published collection sees it (issue 16): what is in it is
true, and what is not set is said so in the README (no made-up URLs)."""

import os
import re

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.join(HERE, '..', '..', '..')
LINKS = ('repository', 'documentation', 'issues')


def read(name):
    with open(os.path.join(TOP, name)) as f:
        return f.read()


def test_links_are_urls_or_the_readme_says_they_are_not_set():
    galaxy = yaml.safe_load(read('galaxy.yml'))
    readme = read('README.md')
    unset = [k for k in LINKS if not galaxy.get(k)]
    for key in LINKS:
        if galaxy.get(key):
            assert re.match(r'https://[^/\s]+/\S+$', galaxy[key]), '%s: %r is not a URL' % (key, galaxy[key])
    if unset:
        assert '**Publishing: not done yet.**' in readme, 'galaxy.yml sets no %s and the README does not say so' % unset
        for key in unset:
            assert '`%s`' % key in readme.split('**Publishing: not done yet.**')[1].split('\n\n')[0], key
    else:
        assert 'Publishing: not done yet' not in readme, 'the README still says the links are not set'
        assert 'galaxy[no-repository]' not in read('.ansible-lint'), 'the lint skip for the missing URL is left'


def test_the_license_the_headers_cite_is_shipped():
    assert yaml.safe_load(read('galaxy.yml'))['license'] == ['GPL-3.0-or-later']
    assert 'GNU GENERAL PUBLIC LICENSE' in read('LICENSES/GPL-3.0-or-later.txt')
    assert 'LICENSES' not in (yaml.safe_load(read('galaxy.yml')).get('build_ignore') or [])
