# -*- coding: utf-8 -*-
"""The sysext_pending filter: controller stat results stand in for missing checksums."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.tucked.sysext.plugins.filter.sysext_pending import FilterModule

pending = FilterModule().filters()['sysext_pending']
HEX = 'ab' * 32
FACTS = {'needs_refresh': False, 'classes': {}, 'images': [
    {'name': 'tool', 'class': 'sysext', 'type': 'raw', 'path': '/s/tool/tool-1.raw', 'compatible': True,
     'digest': 'sha256:' + HEX}]}


def stat(name, checksum, exists=True, kind=None):
    item = {'name': name, 'version': '1', 'src': '/x'}
    if kind:
        item['kind'] = kind
    return {'item': item, 'stat': {'exists': exists, 'checksum': checksum}}


def test_controller_checksum_makes_the_host_current():
    wanted = [{'name': 'tool', 'version': '1', 'src': '/x'}]
    assert pending(FACTS, wanted, store_dir='/s', controller_stats=[stat('tool', HEX)]) == []
    assert 'not known to have' in pending(FACTS, wanted, store_dir='/s', controller_stats=[stat('tool', 'cd' * 32)])[0]
    assert 'no checksum' in pending(FACTS, wanted, store_dir='/s', controller_stats=[stat('tool', HEX, exists=False)])[0]
    assert 'no checksum' in pending(FACTS, wanted, store_dir='/s',
                                    controller_stats=[stat('tool', HEX, kind='confext')])[0]
    assert 'no checksum' in pending(FACTS, wanted, store_dir='/s', controller_stats=[{'skipped': True, 'item': {}}])[0]


def test_bad_input_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match='ansible_facts.sysext'):
        pending({'no': 'facts'}, [])
    with pytest.raises(AnsibleFilterError, match='name and version'):
        pending(FACTS, [{'name': 'tool'}])
