# -*- coding: utf-8 -*-
"""The tucked.sysext filters over facts made by the real engine (engine.gather/facts, the
code sysext_facts runs) on scratch roots, so a change of the facts' shape breaks these tests.

A merge is simulated the way systemd-sysext 262 leaves it behind, without mounting: the
metadata directory (``.systemd-sysext/dev`` naming the hierarchy's own device, the names
and the origin records of the images found now); without an origin file it is a merge by
systemd < 260.
"""

from __future__ import annotations

import os
import shutil

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.tucked.sysext.plugins.filter import sysext as flt
from ansible_collections.tucked.sysext.plugins.module_utils import engine, origin, state

pytestmark = pytest.mark.usefixtures('simulated_merge')

needs_jmespath = pytest.mark.skipif(not flt.HAS_JMESPATH, reason='jmespath is not installed in this Python')

SEARCH = {'sysext': 'var/lib/extensions', 'confext': 'var/lib/confexts'}
HIER = {'sysext': 'usr', 'confext': 'etc'}


def new_root(tmp_path, name='root'):
    r = tmp_path / name
    for d in ('usr/lib', 'opt', 'etc/extensions', 'run/extensions', 'var/lib/extensions',
              'run/confexts', 'var/lib/confexts', 'usr/local/lib/confexts', 'usr/lib/confexts'):
        (r / d).mkdir(parents=True, exist_ok=True)
    (r / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    os.symlink('../usr/lib/os-release', r / 'etc/os-release')
    return r


def add_image(r, name, version=None, cls='sysext', os_id='_any', sdir=None):
    """A directory image; replaces one of the same name (a new inode: a new origin)."""
    d = r / (sdir or SEARCH[cls]) / name
    if d.exists():
        shutil.rmtree(d)
    rel = d / ('usr/lib/extension-release.d' if cls == 'sysext' else 'etc/extension-release.d')
    rel.mkdir(parents=True)
    text = 'ID=%s\n' % os_id + ('IMAGE_VERSION=%s\n' % version if version else '')
    (rel / ('extension-release.' + name)).write_text(text)
    return d


def facts(r):
    return engine.facts(engine.gather(str(r)))


def merge(r, names, cls='sysext', record=True, extra_origins=None):
    """Leave the metadata of a merge of ``names`` (the images found now) like systemd 262
    (record=True) or systemd 252 (no origin file) does."""
    recs = {i['name']: i['origin'] for i in facts(r)['images'] if i['class'] == cls and i['origin']}
    recs.update(extra_origins or {})
    hier = r / HIER[cls]
    meta = hier / state.META_DIR[cls]
    meta.mkdir(exist_ok=True)
    st = os.stat(hier)
    (meta / 'dev').write_text('%d:%d\n' % (os.major(st.st_dev), os.minor(st.st_dev)))
    (meta / state.NAMES_FILE[cls]).write_text(''.join(n + '\n' for n in names))
    if record:
        (meta / 'origin').write_text(origin.dumps(origin.document('no', {n: recs[n] for n in names})))


def row(rows, name, cls='sysext'):
    (r,) = [x for x in rows if x['name'] == name and x['class'] == cls]
    return r


GONE = {'path': '/var/lib/extensions/old.raw', 'onMountId': 3, 'inode': 5, 'crtime': 0, 'mtime': 1}


@pytest.fixture(name='fleet')
def fleet_fixture(tmp_path):
    """Hosts in the states a fleet report must tell apart."""
    hosts = {}
    # web1: foo 1.10 and confext site 7 merged, current
    r = new_root(tmp_path, 'web1')
    add_image(r, 'foo', '1.10')
    add_image(r, 'site', '7', cls='confext')
    merge(r, ['foo'])
    merge(r, ['site'], cls='confext')
    hosts['web1'] = facts(r)
    # web2: foo 1.9 merged, current
    r = new_root(tmp_path, 'web2')
    add_image(r, 'foo', '1.9')
    merge(r, ['foo'])
    hosts['web2'] = facts(r)
    # web3: 1.9 was merged, then the image was replaced by 1.10 (a refresh is pending)
    r = new_root(tmp_path, 'web3')
    add_image(r, 'foo', '1.9')
    merge(r, ['foo'])
    add_image(r, 'foo', '1.10')
    hosts['web3'] = facts(r)
    # web4: a release candidate merged; bar found but not merged
    r = new_root(tmp_path, 'web4')
    add_image(r, 'foo', '1.10~rc1')
    merge(r, ['foo'])
    add_image(r, 'bar', '2.0')
    hosts['web4'] = facts(r)
    # web5: merged by systemd 252 (no origin recorded), a patched release
    r = new_root(tmp_path, 'web5')
    add_image(r, 'foo', '1.10^post1')
    merge(r, ['foo'], record=False)
    hosts['web5'] = facts(r)
    # web6: foo not there at all; 'old' merged but its image removed; an image for fedora
    r = new_root(tmp_path, 'web6')
    add_image(r, 'fed', '1', os_id='fedora')
    merge(r, ['old'], extra_origins={'old': GONE})
    hosts['web6'] = facts(r)
    return hosts


def hostvars_of(fleet):
    """What ``hostvars`` looks like on the controller (facts also injected as ansible_sysext)."""
    hv = {h: {'ansible_facts': {'sysext': f}, 'inventory_hostname': h} for h, f in fleet.items()}
    hv['nofacts'] = {'inventory_hostname': 'nofacts', 'ansible_facts': {}}
    return hv


# ------------------------------------------------------------------ versions
@pytest.mark.parametrize('a,b,expect', [
    ('1.10', '1.9', 1), ('1.9', '1.10', -1), ('1.0~rc1', '1.0', -1), ('1.0', '1.0~rc1', 1),
    ('1.0^post', '1.0', 1), ('1.0', '1.0^post', -1), ('1.0', '1.0', 0), ('2', '10', -1),
    ('1.0-2', '1.0-10', -1), ('1.0~rc1', '1.0~rc2', -1), ('1.0', '1.0.1', -1), ('1.0a', '1.0', 1),
    ('001', '1', 0), (10, '9', 1),
])
def test_version_compare(a, b, expect):
    assert flt.sysext_version_compare(a, b) == expect


def test_version_compare_refuses_yaml_floats():
    with pytest.raises(AnsibleFilterError, match='quote it'):
        flt.sysext_version_compare(1.10, '1.9')


def test_version_sort_strings_and_attribute():
    vs = ['1.10', '1.9', '1.0~rc1', '1.0^post', '1.0', '1.2-3']
    assert flt.sysext_version_sort(vs) == ['1.0~rc1', '1.0', '1.0^post', '1.2-3', '1.9', '1.10']
    assert flt.sysext_version_sort(vs, reverse=True)[0] == '1.10'
    items = [{'v': '1.10'}, {'v': None}, {'v': '1.9'}]
    assert [i['v'] for i in flt.sysext_version_sort(items, attribute='v')] == [None, '1.9', '1.10']
    with pytest.raises(AnsibleFilterError, match='expects a list'):
        flt.sysext_version_sort('1.10')
    with pytest.raises(AnsibleFilterError, match='not a dict'):
        flt.sysext_version_sort(['1'], attribute='v')


# ------------------------------------------------------------------ sysext_extensions
def test_extensions_rows(fleet):
    rows = flt.sysext_extensions(fleet['web1'])
    assert [(r['name'], r['class']) for r in rows] == [('foo', 'sysext'), ('site', 'confext')]
    foo_row = row(rows, 'foo')
    assert foo_row == {'name': 'foo', 'class': 'sysext', 'version': '1.10', 'merged': True, 'hierarchies': ['/usr'],
                       'path': '/var/lib/extensions/foo', 'type': 'directory', 'compatible': True, 'reason': None,
                       'current': True, 'running_version': '1.10'}
    site = row(rows, 'site', 'confext')
    assert (site['merged'], site['hierarchies'], site['version'], site['current']) == (True, ['/etc'], '7', True)


def test_extensions_replaced_image_is_not_current(fleet):
    foo3 = row(flt.sysext_extensions(fleet['web3']), 'foo')
    assert (foo3['version'], foo3['merged'], foo3['current'], foo3['running_version']) == ('1.10', True, False, None)


def test_extensions_not_merged_and_no_origin(fleet):
    rows = flt.sysext_extensions(fleet['web4'])
    bar4 = row(rows, 'bar')
    assert (bar4['merged'], bar4['hierarchies'], bar4['current'], bar4['running_version']) == (False, [], False, None)
    foo5 = row(flt.sysext_extensions(fleet['web5']), 'foo')
    assert (foo5['current'], foo5['running_version']) == (None, '1.10^post1'), 'systemd 252: best knowledge'


def test_extensions_merged_without_image_and_incompatible(fleet):
    rows = flt.sysext_extensions(fleet['web6'])
    fed = row(rows, 'fed')
    assert fed['compatible'] is False and 'fedora' in fed['reason'] and fed['merged'] is False
    old = row(rows, 'old')
    assert old['merged'] is True and old['type'] is None and old['version'] is None
    assert old['path'] == GONE['path'] and old['compatible'] is None and 'no image' in old['reason']
    assert rows[-1] is old, 'merged extensions without an image come after the images'


def test_extensions_ignored_entries(tmp_path):
    r = new_root(tmp_path)
    add_image(r, 'foo', '2', sdir='etc/extensions')
    add_image(r, 'foo', '1')                       # shadowed by /etc/extensions/foo
    add_image(r, 'foo.v', None)                    # a .v directory without versions: listed, not used
    merge(r, ['foo'])
    f = facts(r)
    assert [x['name'] for x in flt.sysext_extensions(f)] == ['foo']
    rows = flt.sysext_extensions(f, ignored=True)
    assert len(rows) == 3
    ignored = {x['reason'].rsplit(' ', 3)[-1]: x for x in rows if x['type'] == 'ignored' and x['name'] == 'foo'}
    assert set(ignored) == {'/etc/extensions/foo', 'pick'}, ignored
    assert ignored['pick']['merged'] is False and 'holds no usable directory named foo_VERSION' in ignored['pick']['reason']
    assert ignored['/etc/extensions/foo']['merged'] is False
    assert ignored['/etc/extensions/foo']['reason'] == 'shadowed by /etc/extensions/foo'
    assert row([x for x in rows if x['type'] != 'ignored'], 'foo')['running_version'] == '2'


def test_extensions_bad_input():
    with pytest.raises(AnsibleFilterError, match='ansible_facts.sysext'):
        flt.sysext_extensions({'ansible_facts': {}})


# ------------------------------------------------------------------ sysext_fleet
def test_fleet_rows_hosts_and_refresh(fleet):
    rep = flt.sysext_fleet(hostvars_of(fleet), hosts=['web1', 'web2', 'web3', 'web4', 'web5', 'web6', 'nofacts',
                                                      'notininventory'])
    assert rep['no_facts'] == ['nofacts', 'notininventory']
    assert ('web1', 'foo', '1.10') in [(r['host'], r['name'], r['version']) for r in rep['rows']]
    assert {r['host'] for r in rep['rows']} == set(fleet)
    by_host = {h['host']: h for h in rep['hosts']}
    assert by_host['web1']['needs_refresh'] is False
    assert by_host['web1']['actions'] == {'sysext': 'none', 'confext': 'none'}
    assert by_host['web3']['needs_refresh'] is True and by_host['web3']['actions']['sysext'] == 'refresh'
    assert by_host['web6']['merged'] == ['old']
    assert by_host['nofacts']['has_facts'] is False
    assert rep['needs_refresh'] == [h for h in ('web1', 'web2', 'web3', 'web4', 'web5', 'web6')
                                    if fleet[h]['needs_refresh']]
    assert 'web3' in rep['needs_refresh'] and 'web5' in rep['needs_refresh'] and 'web1' not in rep['needs_refresh']
    assert rep['drift'] == []


def test_fleet_accepts_facts_registered_results_and_injected_vars(fleet):
    plain = flt.sysext_fleet({'a': fleet['web1']})
    registered = flt.sysext_fleet({'a': {'r': {'changed': False, 'ansible_facts': {'sysext': fleet['web1']}}}}, var='r')
    injected = flt.sysext_fleet({'a': {'ansible_sysext': fleet['web1']}})
    assert plain == registered == injected and plain['rows'] and plain['no_facts'] == []
    assert flt.sysext_fleet({'a': {'other': 1}}, var='r')['no_facts'] == ['a']


def test_fleet_drift(fleet):
    hv = hostvars_of(fleet)
    rep = flt.sysext_fleet(hv, hosts=sorted(fleet), wanted={'foo': '1.10', 'site': {'version': '7', 'class': 'confext'}})
    got = {(d['host'], d['name']): d for d in rep['drift']}
    states = {k: d['state'] for k, d in got.items()}
    assert states == {
        ('web2', 'foo'): 'older', ('web3', 'foo'): 'unknown', ('web4', 'foo'): 'older', ('web5', 'foo'): 'newer',
        ('web6', 'foo'): 'missing',
        ('web2', 'site'): 'missing', ('web3', 'site'): 'missing', ('web4', 'site'): 'missing',
        ('web5', 'site'): 'missing', ('web6', 'site'): 'missing',
    }
    assert got[('web2', 'foo')]['version'] == '1.9' and got[('web2', 'foo')]['fixed_by_refresh'] is False
    assert got[('web3', 'foo')]['image_version'] == '1.10' and got[('web3', 'foo')]['fixed_by_refresh'] is True
    assert got[('web6', 'foo')]['fixed_by_refresh'] is False and got[('web6', 'foo')]['class'] is None
    assert got[('web2', 'site')]['class'] == 'confext' and got[('web2', 'site')]['wanted'] == '7'
    # the same wanted versions as a list, as the role's variables give them
    as_list = flt.sysext_fleet(hv, hosts=sorted(fleet), wanted=[{'name': 'foo', 'version': '1.10', 'source': 'x'},
                                                                {'name': 'site', 'version': '7', 'class': 'confext'}])
    assert as_list['drift'] == rep['drift']


def test_fleet_drift_missing_but_fixed_by_refresh(fleet):
    rep = flt.sysext_fleet({'web4': fleet['web4']}, wanted={'bar': '2.0'})
    assert [(d['state'], d['image_version'], d['fixed_by_refresh']) for d in rep['drift']] == [('missing', '2.0', True)]
    assert flt.sysext_fleet({'web4': fleet['web4']}, wanted={'bar': None})['drift'][0]['state'] == 'missing'
    assert flt.sysext_fleet({'web1': fleet['web1']}, wanted={'foo': None})['drift'] == [], 'any version will do'
    rep = flt.sysext_fleet({'web4': fleet['web4']}, wanted={'bar': '2.1'})
    assert rep['drift'][0]['fixed_by_refresh'] is False


@pytest.mark.parametrize('wanted,match', [
    ({'foo': 1.10}, 'quote it'),
    ([{'version': '1'}], 'needs a name'),
    ('foo', 'must be a dict'),
    ({'foo': {'version': '1', 'class': 'portable'}}, 'sysext or confext'),
])
def test_fleet_bad_wanted(fleet, wanted, match):
    with pytest.raises(AnsibleFilterError, match=match):
        flt.sysext_fleet({'web1': fleet['web1']}, wanted=wanted)


def test_fleet_bad_input():
    with pytest.raises(AnsibleFilterError, match='expects hostvars'):
        flt.sysext_fleet(['web1'])


# ------------------------------------------------------------------ jmespath
@needs_jmespath
def test_hosts_below(fleet):
    hv = hostvars_of(fleet)
    assert flt.sysext_hosts_below(hv, 'foo', '1.10') == ['web2', 'web4']
    assert flt.sysext_hosts_below(hv, 'foo', '1.10', unknown=True) == ['web2', 'web3', 'web4']
    assert flt.sysext_hosts_below(hv, 'foo', '1.9') == []
    assert flt.sysext_hosts_below(hv, 'foo', '1.10^post2') == ['web1', 'web2', 'web4', 'web5']
    assert flt.sysext_hosts_below(hv, 'bar', '9') == [], 'found but not merged: not running'
    rep = flt.sysext_fleet(hv)
    assert flt.sysext_hosts_below(rep, 'foo', '1.10') == flt.sysext_hosts_below(rep['rows'], 'foo', '1.10') \
        == ['web2', 'web4']
    assert flt.sysext_hosts_below(hv, 'site', 8) == ['web1']


@needs_jmespath
def test_hosts_below_odd_names_are_literals(fleet):
    rows = [dict(r, name='a`b"c') for r in flt.sysext_fleet({'web2': fleet['web2']})['rows']]
    assert flt.sysext_hosts_below(rows, 'a`b"c', '2') == ['web2']


@needs_jmespath
def test_hosts_below_bad_input(fleet):
    with pytest.raises(AnsibleFilterError, match='rows of sysext_fleet'):
        flt.sysext_hosts_below([{'name': 'foo'}], 'foo', '1')
    with pytest.raises(AnsibleFilterError, match='quote it'):
        flt.sysext_hosts_below({'web1': fleet['web1']}, 'foo', 1.10)


@needs_jmespath
def test_query_facts(fleet):
    f = fleet['web6']
    assert flt.sysext_query(f, 'images[?compatible == `false`].name') == ['fed']
    assert flt.sysext_query(f, 'hierarchies."/usr".extensions') == ['old']
    assert flt.sysext_query(flt.sysext_extensions(fleet['web1']), "[?merged].join('=', [name, version])") \
        == ['foo=1.10', 'site=7']
    hv = hostvars_of(fleet)
    assert sorted(flt.sysext_query(hv, '*.ansible_facts.sysext.needs_refresh')) == sorted(
        f['needs_refresh'] for f in fleet.values())


@needs_jmespath
def test_query_version_functions(fleet):
    rows = flt.sysext_fleet(hostvars_of(fleet))['rows']
    expr = "[?name == 'foo' && sysext_version_cmp(version, '1.10') < `0`].host"
    assert flt.sysext_query(rows, expr) == ['web2', 'web4']
    expr = "sysext_version_sort_by([?name == 'foo'], &version)[].version"
    assert flt.sysext_query(rows, expr) == ['1.9', '1.10~rc1', '1.10', '1.10', '1.10^post1']


class TaggedStr(str):
    """Stands for Ansible's tagged strings (a str subclass jmespath does not know by name)."""


class LazyList(list):
    pass


@needs_jmespath
def test_query_on_str_and_list_subclasses():
    data = {'names': LazyList([TaggedStr('web1'), TaggedStr('db1')]), 'n': LazyList([3, 1, 2])}
    assert flt.sysext_query(data, "names[?starts_with(@, 'w')]") == ['web1']
    assert flt.sysext_query(data, 'sort(names)') == ['db1', 'web1']
    assert flt.sysext_query(data, 'max(n)') == 3
    assert flt.sysext_query(data, 'type(names[0])') == 'string'
    assert flt.sysext_query([{'v': TaggedStr('b')}, {'v': TaggedStr('a')}], 'sort_by(@, &v)[].v') == ['a', 'b']


@needs_jmespath
@pytest.mark.parametrize('expr,match', [
    ('images[?', 'invalid jmespath expression'),
    ('foo bar', 'invalid jmespath expression'),
    ('length(`1`)', 'failed'),
    ('sysext_version_cmp(`1`, `2`)', 'failed'),
    ('nosuchfunction(@)', 'nosuchfunction'),
])
def test_query_bad_expressions(fleet, expr, match):
    with pytest.raises(AnsibleFilterError, match=match):
        flt.sysext_query(fleet['web1'], expr)


@needs_jmespath
def test_query_expression_not_a_string(fleet):
    with pytest.raises(AnsibleFilterError, match='must be a string'):
        flt.sysext_query(fleet['web1'], 3)


def test_missing_jmespath_is_a_clear_error(monkeypatch, fleet):
    monkeypatch.setattr(flt, 'HAS_JMESPATH', False)
    with pytest.raises(AnsibleFilterError, match='pip install jmespath on the controller') as e:
        flt.sysext_query({}, 'a')
    assert 'sysext_query' in str(e.value)
    with pytest.raises(AnsibleFilterError, match='sysext_hosts_below.*pip install jmespath'):
        flt.sysext_hosts_below({'web1': fleet['web1']}, 'foo', '1')
    # the other filters do not need it
    assert flt.sysext_fleet({'web1': fleet['web1']})['rows']
    assert flt.sysext_version_compare('1.10', '1.9') == 1


def test_filter_module_names():
    assert sorted(flt.FilterModule().filters()) == ['sysext_extensions', 'sysext_fleet', 'sysext_hosts_below',
                                                    'sysext_query', 'sysext_version_compare', 'sysext_version_sort']


def test_fleet_marks_unreachable_and_failed_hosts_from_the_registered_result(fleet):
    """Every host stays in the report: the status playbook registers the facts task with
    ignore_errors and ignore_unreachable and names the result with var."""
    hv = {'ok': {'r': {'changed': False, 'ansible_facts': {'sysext': fleet['web1']}}},
          'down': {'r': {'unreachable': True, 'msg': 'Failed to connect to the host via ssh'}},
          'broken': {'r': {'failed': True, 'msg': 'root /nope is not a directory'}},
          'skipped': {'r': {'skipped': True}}}
    rep = flt.sysext_fleet(hv, hosts=['ok', 'down', 'broken', 'skipped', 'gone'], var='r')
    assert rep['no_facts'] == ['down', 'broken', 'skipped', 'gone']
    assert rep['unreachable'] == ['down'] and rep['failed'] == ['broken']
    by_host = {h['host']: h for h in rep['hosts']}
    assert [h['host'] for h in rep['hosts']] == ['ok', 'down', 'broken', 'skipped', 'gone']
    assert (by_host['ok']['state'], by_host['ok']['error']) == ('ok', None)
    assert (by_host['down']['state'], by_host['down']['error']) == ('unreachable', 'Failed to connect to the host via ssh')
    assert (by_host['broken']['state'], by_host['broken']['error']) == ('failed', 'root /nope is not a directory')
    assert by_host['skipped']['state'] == 'no_facts' and by_host['gone']['error'] == 'not in the inventory'


# ------------------------------------------------------------------ repository entries and updates
def test_fleet_drift_of_repository_entries_follows_their_version_spec(fleet):
    """latest, or constraints, are no versions to compare with: latest asks for the extension to be
    merged, constraints for a version they allow (below, above, or excluded by !=)."""
    hv = hostvars_of(fleet)
    hosts = ['web1', 'web2', 'web4', 'web5', 'web6']

    def states(version, **extra):
        item = dict({'name': 'foo', 'version': version, 'repository': 'https://r/'}, **extra)
        return {d['host']: d['state'] for d in flt.sysext_fleet(hv, hosts=hosts, wanted=[item])['drift']}
    assert states('latest') == {'web6': 'missing'}
    assert states('>=1.10,<=1.10') == {'web2': 'older', 'web4': 'older', 'web5': 'newer', 'web6': 'missing'}
    assert states('>=1.9, !=1.10') == {'web1': 'excluded', 'web6': 'missing'}
    assert states('1.9') == {'web1': 'newer', 'web4': 'newer', 'web5': 'newer', 'web6': 'missing'}
    # a constraint without a repository is one too (a version never starts with an operator)
    assert {d['host'] for d in flt.sysext_fleet(hv, hosts=hosts, wanted={'foo': '>=1.9'})['drift']} == {'web6'}
    missing = flt.sysext_fleet({'web4': fleet['web4']}, wanted=[{'name': 'bar', 'version': '<3', 'repository': 'x'}])
    assert [(d['state'], d['fixed_by_refresh']) for d in missing['drift']] == [('missing', True)]
    with pytest.raises(AnsibleFilterError, match=r"wanted foo: version '>=1,<': '<' is no constraint"):
        flt.sysext_fleet(hv, hosts=hosts, wanted=[{'name': 'foo', 'version': '>=1,<', 'repository': 'x'}])


def foo_query(available='1.10', **kw):
    return dict({'name': 'foo', 'class': 'sysext', 'available': available, 'stored': False, 'selected': None,
                 'versions': [], 'repository': {'url': 'https://r/foo-%s.raw' % available},
                 'item': {'name': 'foo', 'version': 'latest', 'repository': 'https://r/', 'class': 'sysext'}}, **kw)


def test_fleet_updates_from_the_registered_query_results(fleet):
    hv = hostvars_of(fleet)
    for h in hv:
        hv[h]['q'] = {'changed': False, 'results': [foo_query(), {'skipped': True, 'item': {'name': 'x'}}]}
    hv['web2']['q']['results'][0]['stored'] = True
    hv['web6']['q'] = {'results': [foo_query(), foo_query(None, name='bar', repository={'reason': 'none fits'}),
                                   {'failed': True, 'msg': 'cannot fetch', 'item': {'name': 'site', 'class': 'confext'}}]}
    hosts = ['web1', 'web2', 'web3', 'web4', 'web5', 'web6', 'nofacts']
    rep = flt.sysext_fleet(hv, hosts=hosts, updates='q')
    got = {(u['host'], u['name']): u['state'] for u in rep['updates']}
    assert got == {('web1', 'foo'): 'current', ('web2', 'foo'): 'behind', ('web3', 'foo'): 'unknown',
                   ('web4', 'foo'): 'behind', ('web5', 'foo'): 'ahead', ('web6', 'foo'): 'missing',
                   ('web6', 'bar'): 'none', ('web6', 'site'): 'error', ('nofacts', 'foo'): 'unknown'}
    assert rep['behind'] == ['web2', 'web4']
    web2, web4 = (next(u for u in rep['updates'] if u['host'] == h) for h in ('web2', 'web4'))
    assert (web2['merged'], web2['how']) == ('1.9', None), 'stored already: nothing to download'
    assert (web4['merged'], web4['how'], web4['source']) == ('1.10~rc1', 'download', 'https://r/foo-1.10.raw')
    # the same as a dict host -> registered result (or a list of results); hosts without a query have no rows
    by_dict = flt.sysext_fleet(hv, hosts=hosts, updates={h: hv[h]['q'] for h in hosts[:-1]})
    assert by_dict['updates'] == [u for u in rep['updates'] if u['host'] != 'nofacts']
    listed = flt.sysext_fleet(hv, hosts=['web2'], updates={'web2': hv['web2']['q']['results']})
    assert [u['state'] for u in listed['updates']] == ['behind']
    assert flt.sysext_fleet(hv, hosts=hosts)['updates'] == [] and flt.sysext_fleet(hv, hosts=hosts)['behind'] == []
    with pytest.raises(AnsibleFilterError, match='updates must be the name of the variable'):
        flt.sysext_fleet(hv, hosts=hosts, updates=['q'])
