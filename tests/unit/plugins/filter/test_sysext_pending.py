# -*- coding: utf-8 -*-
"""The sysext_pending filter: controller digests stand in for missing checksums."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tucked.sysext.plugins.filter.sysext_pending import FilterModule

pending = FilterModule().filters()['sysext_pending']
HEX = 'ab' * 32
FACTS = {'needs_refresh': False, 'classes': {}, 'images': [
    {'name': 'tool', 'class': 'sysext', 'type': 'raw', 'path': '/s/tool/tool-1.raw', 'compatible': True,
     'digest': 'sha256:' + HEX}]}


def test_controller_digest_makes_the_host_current():
    wanted = [{'name': 'tool', 'version': '1', 'src': '/x'}]
    assert pending(FACTS, wanted, store_dir='/s', controller_digests={'/x': 'sha256:' + HEX}) == []
    assert 'not known to have' in pending(FACTS, wanted, store_dir='/s', controller_digests={'/x': 'sha256:' + 'cd' * 32})[0]
    assert 'no checksum' in pending(FACTS, wanted, store_dir='/s', controller_digests={'/other': 'sha256:' + HEX})[0]
    assert 'no checksum' in pending(FACTS, wanted, store_dir='/s')[0]
    # a src on the target is not the controller's file
    remote = [{'name': 'tool', 'version': '1', 'src': '/x', 'remote_src': True}]
    assert 'no checksum' in pending(FACTS, remote, store_dir='/s', controller_digests={'/x': 'sha256:' + HEX})[0]
    # a checksum given wins over the controller's file
    given = [{'name': 'tool', 'version': '1', 'src': '/x', 'checksum': 'sha256:' + 'cd' * 32}]
    assert 'not known to have' in pending(FACTS, given, store_dir='/s', controller_digests={'/x': 'sha256:' + HEX})[0]
    confext = [{'name': 'tool', 'version': '1', 'src': '/x', 'kind': 'confext'}]
    assert pending(FACTS, confext, store_dir='/s', controller_digests={'/x': 'sha256:' + HEX}) == ['confext tool: not selected']


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match='ansible_facts.sysext'):
        pending({'no': 'facts'}, [])
    with pytest.raises(AnsibleFilterError, match='controller_digests must be a dict'):
        pending(FACTS, [], controller_digests=['sha256:' + HEX])
    with pytest.raises(AnsibleFilterError, match='name and version'):
        pending(FACTS, [{'name': 'tool'}])


def test_a_version_that_is_not_a_string_is_refused():
    """YAML reads an unquoted 1.10 as 1.1: compared as '1.1' it would silently be another version."""
    with pytest.raises(AnsibleFilterError, match=r'tool version 1\.1 is a float, not a string: quote it'):
        pending(FACTS, [{'name': 'tool', 'version': 1.10}], store_dir='/s')
    with pytest.raises(AnsibleFilterError, match='is a int, not a string'):
        pending(FACTS, [{'name': 'tool', 'version': 7}], store_dir='/s')


def test_class_is_the_word_and_kind_is_taken_too():
    confext = {'needs_refresh': False, 'classes': {}, 'images': [dict(FACTS['images'][0], **{'class': 'confext'})]}
    for key in ('class', 'kind'):
        wanted = [{'name': 'tool', 'version': '1', 'src': '/x', key: 'confext'}]
        assert pending(confext, wanted, store_dir='/s', controller_digests={'/x': 'sha256:' + HEX}) == [], key
        assert pending(confext, [], store_dir='/s', remove=[{'name': 'tool', key: 'confext'}]) == [
            'confext tool: still present, to be removed'], key


def test_a_repository_entry_is_pending_with_its_version_spec_not_compared_as_a_version():
    """Its version is latest or constraints: only the index says which version is wanted, so the
    stored tool-1.raw is neither current nor 'not the wanted path'."""
    for version in ('latest', '>=1,<2', '1'):
        wanted = [{'name': 'tool', 'version': version, 'repository': 'https://r/'}]
        reasons = pending(FACTS, wanted, store_dir='/s')
        assert reasons == ['sysext tool: version %s from the repository https://r/ is decided when its index is read'
                           % version], reasons
