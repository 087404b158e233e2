# -*- coding: utf-8 -*-
"""engine.plan(): the one place the skip decision is made (pure, no I/O)."""

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import engine
from ansible_collections.tucked.sysext.plugins.module_utils.engine import Wanted, plan
from ansible_collections.tucked.sysext.plugins.module_utils.state import HierarchyState

REC = {'path': '/var/lib/extensions/foo.raw', 'onMountId': 7, 'fileHandle': {'type': 1, 'handle': 'ab'},
       'crtime': 10, 'mtime': 20}
BAR = {'path': '/var/lib/extensions/bar', 'onMountId': 7, 'inode': 9, 'crtime': 1, 'mtime': 0}


def hier(h='/usr', by='none', names=(), origins=None, mode='no', extra=None):
    origin = None
    if origins is not None:
        origin = {'mutable': {'mode': mode}, 'extensions': origins}
        origin.update(extra or {})
    return HierarchyState(hierarchy=h, cls='sysext', host_path='/r' + h, merged=by != 'none', merged_by=by,
                          extensions=list(names), origin=origin)


def changes(p):
    return sorted(((r.extension or ''), r.change) for r in p.reasons if r.change != 'unchanged')


def test_nothing_merged_nothing_wanted():
    p = plan('sysext', [hier(), hier('/opt')], [])
    assert (p.needs_refresh, p.action, changes(p)) == (False, 'none', [])


def test_nothing_merged_something_wanted():
    p = plan('sysext', [hier(), hier('/opt')], [Wanted('foo', REC, ('/usr',))])
    assert p.needs_refresh and p.action == 'merge' and p.hierarchies == ('/usr',)
    assert changes(p) == [('', 'merge'), ('foo', 'added')]


def test_same_origins_in_another_key_order_skip():
    rec = dict(reversed(list(REC.items())))
    p = plan('sysext', [hier(by='systemd', names=['foo'], origins={'foo': rec}), hier('/opt')],
             [Wanted('foo', REC, ('/usr',))])
    assert (p.needs_refresh, p.action) == (False, 'none')
    assert [r.extension for r in p.reasons if r.change == 'unchanged'] == ['foo']


@pytest.mark.parametrize('field,value', [('mtime', 21), ('crtime', 11), ('onMountId', 8),
                                         ('fileHandle', {'type': 1, 'handle': 'cd'}), ('path', '/etc/extensions/foo.raw')])
def test_each_field_change_is_a_replace(field, value):
    p = plan('sysext', [hier(by='systemd', names=['foo'], origins={'foo': REC})],
             [Wanted('foo', dict(REC, **{field: value}), ('/usr',))])
    assert p.needs_refresh and p.action == 'refresh'
    (r,) = [r for r in p.reasons if r.change == 'replaced']
    assert r.fields == (field,)


def test_added_removed_and_all_removed():
    cur = [hier(by='tucked', names=['bar', 'foo'], origins={'foo': REC, 'bar': BAR})]
    p = plan('sysext', cur, [Wanted('foo', REC, ('/usr',)), Wanted('new', BAR, ('/usr',))])
    assert changes(p) == [('bar', 'removed'), ('new', 'added')]
    p = plan('sysext', cur, [])
    assert p.action == 'unmerge' and changes(p) == [('', 'unmerge'), ('bar', 'removed'), ('foo', 'removed')]


def test_unknown_origin_needs_refresh():
    p = plan('sysext', [hier(by='systemd', names=['foo'], origins=None)], [Wanted('foo', REC, ('/usr',))])
    assert p.needs_refresh and ('', 'unknown') in changes(p) and ('foo', 'unknown') in changes(p)


def test_mutable_mode_change():
    p = plan('sysext', [hier(by='systemd', names=['foo'], origins={'foo': REC}, mode='no')],
             [Wanted('foo', REC, ('/usr',))], mode='yes', mutable_dirs={'/usr': '/var/lib/extensions.mutable/usr'},
             mount_always=('/usr',))
    assert p.needs_refresh and ('', 'mutable') in changes(p)


def test_mutable_modes_mount_every_hierarchy():
    p = plan('sysext', [hier(), hier('/opt')], [], mode='ephemeral', mount_always=('/usr', '/opt'))
    assert p.action == 'merge' and p.hierarchies == ('/opt', '/usr')


def test_new_and_dropped_hierarchies():
    cur = [hier(by='systemd', names=['foo'], origins={'foo': REC}), hier('/opt')]
    p = plan('sysext', cur, [Wanted('foo', REC, ('/usr', '/opt'))])
    assert [(r.hierarchy, r.change) for r in p.reasons if r.hierarchy] == [('/opt', 'merge')]
    cur = [hier(by='systemd', names=['foo'], origins={'foo': REC}),
           hier('/opt', by='systemd', names=['foo'], origins={'foo': REC})]
    p = plan('sysext', cur, [Wanted('foo', REC, ('/usr',))])
    assert [(r.hierarchy, r.change) for r in p.reasons if r.hierarchy] == [('/opt', 'unmerge')]


def test_foreign_overlay_is_reported():
    cur = [hier(by='systemd', names=['foo'], origins={'foo': REC}), hier('/opt', by='foreign')]
    p = plan('sysext', cur, [Wanted('foo', REC, ('/usr',))])
    assert p.needs_refresh and [(r.hierarchy, r.change) for r in p.reasons if r.hierarchy] == [('/opt', 'foreign')]


def test_order_is_systemds_version_order():
    p = plan('sysext', [hier()], [Wanted('e10', REC, ('/usr',)), Wanted('e2', BAR, ('/usr',))])
    assert p.after == ('e2', 'e10')


def test_reordered_stack_is_a_change():
    cur = [hier(by='tucked', names=['foo', 'bar'], origins={'foo': REC, 'bar': BAR})]
    p = plan('sysext', cur, [Wanted('foo', REC, ('/usr',)), Wanted('bar', BAR, ('/usr',))])
    assert p.needs_refresh and ('', 'reordered') in changes(p)


def test_facts_document(tmp_path):
    (tmp_path / 'usr/lib').mkdir(parents=True)
    (tmp_path / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    facts = engine.facts(engine.gather(str(tmp_path)))
    assert facts['needs_refresh'] is False and set(facts['hierarchies']) == {'/usr', '/opt', '/etc'}
    assert facts['host']['id'] == 'debian' and facts['kernel']['move_mount_beneath'] in (True, False, None)


def test_gather_errors(tmp_path):
    with pytest.raises(engine.EngineError, match='does not exist'):
        engine.gather(str(tmp_path / 'nope'))
    with pytest.raises(engine.EngineError, match='no os-release'):
        engine.gather(str(tmp_path))


def test_interrupted_swap_needs_a_refresh():
    h = hier(by='tucked', names=['foo'], origins={'foo': REC})
    h.stacked = 2
    p = plan('sysext', [h], [Wanted('foo', REC, ('/usr',))])
    assert p.needs_refresh and ('', 'interrupted') in changes(p)
