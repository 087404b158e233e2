# -*- coding: utf-8 -*-
"""The update state of an extension on a host, from its sysext_image state=query result and its
facts rows: behind / current / ahead in systemd's version order, missing, unknown, none, error."""

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import updates


def query(available='1.10', stored=False, **kw):
    item = kw.pop('item', {'name': 'tool', 'version': 'latest', 'repository': 'https://r/', 'class': 'sysext'})
    return dict({'name': 'tool', 'class': 'sysext', 'selected': '1.9', 'versions': ['1.2', '1.9'], 'available': available,
                 'stored': stored, 'item': item, 'changed': False,
                 'repository': {'url': 'https://r/tool-%s-x86-64.raw' % available, 'src': None}}, **kw)


def merged(version, name='tool', cls='sysext', current=True):
    return {'name': name, 'class': cls, 'merged': True, 'version': version, 'current': current,
            'running_version': version if current is not False else None}


@pytest.mark.parametrize('running,state', [
    ('1.9', 'behind'), ('1.10~rc1', 'behind'), ('1.10', 'current'), ('1.10^post1', 'ahead'), ('1.10.1', 'ahead'),
    ('1.010', 'current'),
])
def test_the_merged_version_against_the_available_one_in_systemd_order(running, state):
    got = updates.classify(query(), [merged(running)])
    assert got['state'] == state and got['merged'] == running and got['available'] == '1.10'
    assert got['selected'] == '1.9' and got['versions'] == ['1.2', '1.9']


def test_what_the_next_rollout_would_download_or_transfer():
    got = updates.classify(query(), [merged('1.9')])
    assert (got['how'], got['source']) == ('download', 'https://r/tool-1.10-x86-64.raw')
    assert updates.classify(query(stored=True), [merged('1.9')])['how'] is None, 'stored already'
    src = query(item={'name': 'tool', 'version': '1.10', 'src': 'images/tool-1.10.raw'})
    del src['repository']
    assert updates.source_of(src) == ('transfer', 'images/tool-1.10.raw')
    url = dict(src, item={'name': 'tool', 'version': '1.10', 'url': 'https://x/tool.raw', 'checksum': 'sha256:00'})
    assert updates.classify(url, [merged('1.9')])['how'] == 'download'
    directory = query(repository={'url': None, 'src': '/srv/repo/tool-1.10-x86-64.raw'})
    assert updates.source_of(directory) == ('transfer', '/srv/repo/tool-1.10-x86-64.raw')


def test_missing_unknown_none_and_error():
    assert updates.classify(query(), [])['state'] == 'missing'
    assert updates.classify(query(), [merged('1.9', name='other'), merged('1.9', cls='confext')])['state'] == 'missing'
    unknown = updates.classify(query(), [merged('1.9', current=False)])
    assert unknown['state'] == 'unknown' and 'cannot be told' in unknown['reason']
    assert 'no facts' in updates.classify(query(), None)['reason']
    none = updates.classify(query(available=None, repository={'reason': 'tool: no version of ... fits version >=3'}),
                            [merged('1.9')])
    assert none['state'] == 'none' and 'fits version >=3' in none['reason'] and none['merged'] == '1.9'
    assert updates.classify(query(available=None, repository=None), [])['reason'] == 'no version is given'
    failed = {'failed': True, 'msg': 'tool: cannot fetch https://r/SHA256SUMS: HTTP 404',
              'item': {'name': 'tool', 'kind': 'confext'}}
    err = updates.classify(failed, [merged('1.9', cls='confext')])
    assert (err['state'], err['name'], err['class'], err['available']) == ('error', 'tool', 'confext', None)
    assert 'HTTP 404' in err['reason']
    assert updates.classify({'unreachable': True, 'msg': 'ssh: no route'}, None)['state'] == 'error'


def test_results_of_a_loop_one_result_and_nothing():
    loop = {'results': [query(), {'skipped': True, 'item': {'name': 'x'}}, 'odd'], 'changed': False}
    assert updates.results_of(loop) == [query()]
    assert updates.results_of(query()) == [query()]
    assert updates.results_of({'skipped': True}) == [] and updates.results_of(None) == []
    assert set(updates.STATES) == {'behind', 'current', 'ahead', 'missing', 'unknown', 'none', 'error'}
