# -*- coding: utf-8 -*-
"""The sysext_digest lookup: checksums of controller files, no module call."""

import hashlib
import os

import pytest
import yaml
from ansible import constants as C
from ansible.errors import AnsibleLookupError
from ansible.parsing.dataloader import DataLoader

from ansible_collections.tucked.sysext.plugins.lookup import sysext_digest

NAME = 'tucked.sysext.sysext_digest'


def LookupModule():  # noqa: N802
    """The plugin with its documented options registered, as the plugin loader would."""
    C.config.initialize_plugin_configuration_definitions('lookup', NAME, yaml.safe_load(sysext_digest.DOCUMENTATION)['options'])
    plugin = sysext_digest.LookupModule(loader=DataLoader())
    plugin._load_name = NAME
    return plugin


def test_digests_in_order_and_algorithm(tmp_path):
    a, b = tmp_path / 'a.raw', tmp_path / 'b.raw'
    a.write_bytes(b'a' * 100000)
    b.write_bytes(b'')
    lookup = LookupModule()
    assert lookup.run([str(a), str(b)]) == ['sha256:' + hashlib.sha256(b'a' * 100000).hexdigest(),
                                            'sha256:' + hashlib.sha256(b'').hexdigest()]
    assert lookup.run([str(a)], algorithm='sha512') == ['sha512:' + hashlib.sha512(b'a' * 100000).hexdigest()]


def test_controller_files_are_not_marked(tmp_path):
    a = tmp_path / 'a.raw'
    a.write_bytes(b'x')
    LookupModule().run([str(a)])
    assert [x for x in os.listxattr(a) if x.startswith('user.tucked')] == []


def test_missing_file_names_it(tmp_path):
    with pytest.raises(AnsibleLookupError, match='missing.raw.*src'):
        LookupModule().run([str(tmp_path / 'missing.raw')])


def test_relative_paths_are_searched_as_copy_and_sysext_image_search_them(tmp_path, monkeypatch):
    """files/ of the role, then of the play (the task's ansible_search_path), never the current directory."""
    role, play, cwd = tmp_path / 'roles' / 'r', tmp_path / 'project', tmp_path / 'elsewhere'
    for d in (role / 'files' / 'images', play / 'files' / 'images', cwd / 'images'):
        d.mkdir(parents=True)
    (play / 'files' / 'images' / 'x.raw').write_bytes(b'play')
    (cwd / 'images' / 'x.raw').write_bytes(b'cwd')
    monkeypatch.chdir(cwd)
    variables = {'ansible_search_path': [str(role), str(play)], 'role_path': str(role)}
    sha = 'sha256:' + hashlib.sha256(b'play').hexdigest()
    assert LookupModule().run(['images/x.raw'], variables) == [sha]
    (role / 'files' / 'images' / 'x.raw').write_bytes(b'role')
    assert LookupModule().run(['images/x.raw'], variables) == ['sha256:' + hashlib.sha256(b'role').hexdigest()]
    assert LookupModule().run([str(play / 'files' / 'images' / 'x.raw')], variables) == [sha]


def test_relative_path_not_found_names_it(tmp_path):
    with pytest.raises(AnsibleLookupError, match="could not find the controller file 'images/none.raw'"):
        LookupModule().run(['images/none.raw'], {'ansible_search_path': [str(tmp_path)]})
