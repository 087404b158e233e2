# -*- coding: utf-8 -*-
"""The rollout decision on the controller: a host's stat-level facts against the wanted images."""

import os

from ansible_collections.tucked.sysext.plugins.module_utils import engine, rollout
from ansible_collections.tucked.sysext.tests.unit.plugins.module_utils.test_store import run, sha


def facts_of(root):
    return engine.facts(engine.gather(str(root), ('sysext', 'confext')))


def test_pending_reasons_from_stat_level_facts(root, image):
    src = image('1')
    run(root, version='1', src=src)
    facts = facts_of(root)
    img = [i for i in facts['images'] if i['name'] == 'tool'][0]
    assert img['digest'] == sha(src), 'the digest cached by sysext_image is in the facts'
    want = [{'name': 'tool', 'version': '1', 'checksum': sha(src)}]
    # nothing merged yet (a directory root, no overlay): a refresh is needed
    assert rollout.pending_reasons(facts, want) == ['a refresh is needed (sysext)']
    facts['needs_refresh'] = False
    assert rollout.pending_reasons(facts, want) == []
    assert rollout.pending_reasons(facts, [{'name': 'tool', 'version': '1'}],
                                   checksums={'sysext/tool': sha(src)}) == []
    assert 'no checksum to compare with' in rollout.pending_reasons(facts, [{'name': 'tool', 'version': '1'}])[0]
    assert 'is selected, not /opt/extensions/tool/tool-2.raw' in rollout.pending_reasons(
        facts, [{'name': 'tool', 'version': '2', 'checksum': sha(src)}])[0]
    assert 'not known to have sha256:' + 'a' * 64 in rollout.pending_reasons(
        facts, [{'name': 'tool', 'version': '1', 'checksum': 'sha256:' + 'a' * 64}])[0]
    assert rollout.pending_reasons(facts, [{'name': 'site', 'kind': 'confext', 'version': '1', 'checksum': sha(src)}]) \
        == ['confext site: not selected']
    assert rollout.pending_reasons(facts, want, remove=['tool']) == ['sysext tool: still present, to be removed']
    assert rollout.pending_reasons(facts, want, remove=[{'name': 'tool', 'kind': 'confext'}]) == []
    # an image from a repository: only its index says what is wanted, so the host is pending, even when current
    assert rollout.pending_reasons(facts, [dict(want[0], repository='https://h/r/')]) == [
        'sysext tool: version 1 from the repository https://h/r/ is decided when its index is read']
    # the file changed behind our back (mtime): its cached digest no longer counts
    os.utime(root / 'opt/extensions/tool/tool-1.raw', ns=(1, 1))
    facts = facts_of(root)
    facts['needs_refresh'] = False
    assert [i['digest'] for i in facts['images'] if i['name'] == 'tool'] == [None]
    assert 'not known to have' in rollout.pending_reasons(facts, want)[0]
