# -*- coding: utf-8 -*-
"""The tucked.sysext filters in real ansible-playbook runs, over facts sysext_facts gathers
from scratch roots (no mounts: a merge is left behind as systemd-sysext 262 leaves its
metadata, with the origin records the module itself reported for the images).

Inside a play the filters see Ansible's own types (tagged strings, lazy containers,
hostvars), which is what these tests are for besides the examples of the documentation.
"""

from __future__ import annotations

import json
import os
import subprocess

from lib.ansible_run import BIN, REPO, MountNamespace, ansible_env, run_tasks

FLT = 'tucked.sysext.'


def make_root(tmp_path, name):
    root = tmp_path / name
    for d in ('usr/lib', 'opt', 'etc', 'var/lib/extensions', 'var/lib/confexts', 'run/extensions',
              'run/confexts', 'etc/extensions'):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    os.symlink('../usr/lib/os-release', root / 'etc/os-release')
    return root


def add_ext(root, name, version, os_id='_any', cls='sysext'):
    sdir, rel = (('var/lib/extensions', 'usr/lib/extension-release.d') if cls == 'sysext'
                 else ('var/lib/confexts', 'etc/extension-release.d'))
    d = root / sdir / name / rel
    d.mkdir(parents=True)
    (d / ('extension-release.' + name)).write_text('ID=%s\nIMAGE_VERSION=%s\n' % (os_id, version))


def fake_merge(root, names, facts):
    """The metadata systemd-sysext 262 leaves in /usr after merging ``names`` (the images
    the facts list now), so sysext_facts reports them merged and current."""
    recs = {i['name']: i['origin'] for i in facts['images'] if i['class'] == 'sysext'}
    meta = root / 'usr/.systemd-sysext'
    meta.mkdir()
    st = os.stat(root / 'usr')
    (meta / 'dev').write_text('%d:%d\n' % (os.major(st.st_dev), os.minor(st.st_dev)))
    (meta / 'extensions').write_text(''.join(n + '\n' for n in names))
    doc = {'mutable': {'mode': 'no'}, 'extensions': {n: recs[n] for n in names}}
    (meta / 'origin').write_text(json.dumps(doc, indent='\t', separators=(',', ' : ')) + '\n')


def fleet_roots(tmp_path, ns):
    """web-a runs foo 1.10 and has the confext site 7 found but not merged; web-b runs foo 1.9;
    web-c has foo 1.10~rc1 found, not merged, and an image made for Fedora."""
    a, b, c = (make_root(tmp_path, n) for n in ('web-a', 'web-b', 'web-c'))
    add_ext(a, 'foo', '1.10')
    add_ext(a, 'site', '7', cls='confext')
    add_ext(b, 'foo', '1.9')
    add_ext(c, 'foo', '1.10~rc1')
    add_ext(c, 'fed', '40', os_id='fedora')
    first = run_tasks([{'tucked.sysext.sysext_facts': {'root': str(r)}} for r in (a, b)], namespace=ns)
    for root, res in zip((a, b), first):
        fake_merge(root, ['foo'], res['ansible_facts']['sysext'])
    return a, b, c


def test_filters_in_a_play(tmp_path):
    # web-a and web-b are "merged": their /usr a mount point in the namespace all runs share
    with MountNamespace([tmp_path / 'web-a/usr', tmp_path / 'web-b/usr']) as ns:
        _filters_in_a_play(tmp_path, ns)


def _filters_in_a_play(tmp_path, ns):
    a, b, c = fleet_roots(tmp_path, ns)
    fleet = "{'web-a': r0, 'web-b': r1, 'web-c': r2}"
    tasks = [
        # 0-2: the facts of three "hosts" (the last one stays in ansible_facts.sysext)
        {'tucked.sysext.sysext_facts': {'root': str(a)}},
        {'tucked.sysext.sysext_facts': {'root': str(b)}},
        {'tucked.sysext.sysext_facts': {'root': str(c)}},
        # 3: the report from registered results, with drift
        {'ansible.builtin.set_fact': {'report': "{{ %s | %ssysext_fleet(wanted=wanted) }}" % (fleet, FLT)},
         'vars': {'wanted': {'foo': '1.10', 'site': {'version': '7', 'class': 'confext'}}}},
        # 4: hosts below, from the report and from the registered results
        {'ansible.builtin.debug': {'msg': {
            'from_report': "{{ report | %ssysext_hosts_below('foo', '1.10') }}" % FLT,
            'from_results': "{{ %s | %ssysext_hosts_below('foo', '1.10^post') }}" % (fleet, FLT),
            'none': "{{ report | %ssysext_hosts_below('foo', '1.9') }}" % FLT}}},
        # 5: the examples of sysext_query, on this host's facts (web-c)
        {'ansible.builtin.debug': {'msg': {
            'incompatible': "{{ ansible_facts.sysext | tucked.sysext.sysext_query("
                            "'images[?type != `ignored` && !compatible].name') }}",
            'usr': "{{ ansible_facts.sysext | tucked.sysext.sysext_query('hierarchies.\"/usr\".extensions') }}",
            'pairs': "{{ r0.ansible_facts.sysext | tucked.sysext.sysext_extensions"
                     " | tucked.sysext.sysext_query(\"[?merged].join('=', [name, version || '?'])\") }}",
            'refresh': "{{ hostvars | tucked.sysext.sysext_fleet(hosts=ansible_play_hosts)"
                       " | tucked.sysext.sysext_query('hosts[?needs_refresh].host') }}",
            'below': "{{ %s | tucked.sysext.sysext_fleet | tucked.sysext.sysext_query(\"rows[?name == 'foo' && merged"
                     "\n && sysext_version_cmp(running_version, '1.10') < `0`].host\") }}" % fleet}}},
        # 6: sysext_extensions rows, selectattr on them, the newest foo (doc example)
        {'ansible.builtin.debug': {'msg': {
            'rows': "{{ r0.ansible_facts.sysext | tucked.sysext.sysext_extensions }}",
            'stale': "{{ r0.ansible_facts.sysext | tucked.sysext.sysext_extensions | selectattr('merged')"
                     " | selectattr('current', 'false') | map(attribute='name') }}",
            'newest': "{{ (ansible_facts.sysext | tucked.sysext.sysext_extensions | selectattr('name', '==', 'foo')"
                      " | tucked.sysext.sysext_version_sort(attribute='version', reverse=true) | first).version }}",
            'sorted': "{{ ['1.10', '1.9', '1.10~rc1', '1.10^post1'] | tucked.sysext.sysext_version_sort }}"}}},
        # 7: the example of sysext_version_compare
        {'ansible.builtin.assert': {'that': [
            "'1.10' | tucked.sysext.sysext_version_compare('1.9') == 1",
            "'1.0~rc1' | tucked.sysext.sysext_version_compare('1.0') == -1",
            "'1.0^post' | tucked.sysext.sysext_version_compare('1.0') == 1",
            "'001' | tucked.sysext.sysext_version_compare('1') == 0"]}},
        # 8: Ansible's own types: task vars (tagged strings in a lazy list) and hostvars
        {'ansible.builtin.debug': {'msg': {
            'tagged': "{{ names | tucked.sysext.sysext_query(\"[?starts_with(@, '\" ~ prefix ~ \"')] | sort(@)\") }}",
            'hostvars': "{{ hostvars | tucked.sysext.sysext_query('localhost.ansible_facts.sysext.host.id') }}",
            'var': "{{ hostvars | tucked.sysext.sysext_fleet(hosts=['localhost'], var='r1')"
                   " | tucked.sysext.sysext_hosts_below('foo', '1.10') }}"}},
         'vars': {'names': ['web2', 'db1', 'web1'], 'prefix': 'w'}},
        # 9-11: clear errors
        {'ansible.builtin.debug': {'msg': "{{ ansible_facts.sysext | tucked.sysext.sysext_query('images[?') }}"}},
        {'ansible.builtin.debug': {'msg': "{{ report | tucked.sysext.sysext_fleet(wanted={'foo': 1.10}) }}"}},
        {'ansible.builtin.debug': {'msg': "{{ 'nope' | tucked.sysext.sysext_extensions }}"}},
        # 12: the report as this play left it
        {'ansible.builtin.debug': {'var': 'report'}},
        # 13-14: this host gathers web-b's facts; the examples over hostvars
        {'tucked.sysext.sysext_facts': {'root': str(b)}},
        {'ansible.builtin.debug': {'msg': {
            'below': "{{ hostvars | tucked.sysext.sysext_hosts_below('foo', '1.10') | intersect(ansible_play_hosts) }}",
            'fleet': "{{ hostvars | tucked.sysext.sysext_fleet(hosts=ansible_play_hosts, wanted={'foo': '1.10'}) }}",
            'drifting': "{{ report.drift | map(attribute='host') | unique }}"}}},
    ]
    res = run_tasks(tasks, namespace=ns)
    for i in range(9):
        assert not res[i].get('failed'), (i, res[i].get('msg'))
    report = res[12]['report']
    assert [h['host'] for h in report['hosts']] == ['web-a', 'web-b', 'web-c']
    rows = {(r['host'], r['name']): r for r in report['rows']}
    assert (rows[('web-a', 'foo')]['version'], rows[('web-a', 'foo')]['merged'], rows[('web-a', 'foo')]['current']) \
        == ('1.10', True, True)
    assert rows[('web-b', 'foo')]['running_version'] == '1.9'
    assert rows[('web-c', 'fed')]['compatible'] is False and rows[('web-c', 'foo')]['merged'] is False
    assert rows[('web-a', 'site')]['class'] == 'confext'
    # web-a: sysext current, but confext site found and not merged: a refresh would merge it
    assert report['needs_refresh'] == ['web-a', 'web-c']
    drift = sorted((d['host'], d['name'], d['state'], d['fixed_by_refresh']) for d in report['drift'])
    assert drift == [('web-a', 'site', 'missing', True), ('web-b', 'foo', 'older', False),
                     ('web-b', 'site', 'missing', False), ('web-c', 'foo', 'missing', False),
                     ('web-c', 'site', 'missing', False)]
    assert res[4]['msg'] == {'from_report': ['web-b'], 'from_results': ['web-a', 'web-b'], 'none': []}
    q = res[5]['msg']
    assert q['incompatible'] == ['fed'] and q['usr'] == [] and q['pairs'] == ['foo=1.10']
    assert q['refresh'] == ['localhost'] and q['below'] == ['web-b']
    e = res[6]['msg']
    assert [(r['name'], r['merged']) for r in e['rows']] == [('foo', True), ('site', False)]
    assert e['stale'] == [] and e['newest'] == '1.10~rc1'
    assert e['sorted'] == ['1.9', '1.10~rc1', '1.10', '1.10^post1']
    assert res[7].get('failed') is not True
    assert res[8]['msg'] == {'tagged': ['web1', 'web2'], 'hostvars': 'debian', 'var': ['localhost']}
    assert res[9]['failed'] and 'invalid jmespath expression' in res[9]['msg']
    assert res[10]['failed'] and 'quote it' in res[10]['msg']
    assert res[11]['failed'] and 'ansible_facts.sysext' in res[11]['msg']
    m = res[14]['msg']
    assert m['below'] == ['localhost'] and m['drifting'] == ['web-a', 'web-b', 'web-c']
    assert [(d['host'], d['state'], d['version']) for d in m['fleet']['drift']] == [('localhost', 'older', '1.9')]
    assert m['fleet']['needs_refresh'] == [] and m['fleet']['no_facts'] == []


def test_without_jmespath_on_the_controller(tmp_path):
    """jmespath hidden from the controller: a clear message naming the fix; the filters that
    do not need it and ansible-doc still work."""
    hide = tmp_path / 'hide'
    (hide / 'jmespath').mkdir(parents=True)
    (hide / 'jmespath' / '__init__.py').write_text("raise ImportError('jmespath hidden by the test')\n")
    env = {'PYTHONPATH': str(hide)}
    root = make_root(tmp_path, 'web')
    add_ext(root, 'foo', '2')
    res = run_tasks([
        {'tucked.sysext.sysext_facts': {'root': str(root)}},
        {'ansible.builtin.debug': {'msg': "{{ ansible_facts.sysext | tucked.sysext.sysext_query('images[].name') }}"}},
        {'ansible.builtin.debug': {'msg': "{{ {'web': r0} | tucked.sysext.sysext_hosts_below('foo', '3') }}"}},
        {'ansible.builtin.debug': {'msg': "{{ {'web': r0} | tucked.sysext.sysext_fleet(wanted={'foo': '2'}) }}"}},
    ], extra_env=env)
    assert res[1]['failed'] and 'pip install jmespath on the controller' in res[1]['msg']
    assert 'sysext_query' in res[1]['msg']
    assert res[2]['failed'] and 'pip install jmespath on the controller' in res[2]['msg']
    assert not res[3].get('failed') and res[3]['msg']['drift'][0]['state'] == 'missing'
    doc = subprocess.run([os.path.join(BIN, 'ansible-doc'), '-t', 'filter', 'tucked.sysext.sysext_query'], cwd=REPO,
                         env=ansible_env(env), text=True, capture_output=True, check=False)
    assert doc.returncode == 0 and 'sysext_version_cmp' in doc.stdout, doc.stderr


def test_ansible_doc_lists_and_renders_every_filter():
    env = ansible_env()
    res = subprocess.run([os.path.join(BIN, 'ansible-doc'), '-t', 'filter', '-l', 'tucked.sysext'], cwd=REPO,
                         env=env, text=True, capture_output=True, check=False)
    assert res.returncode == 0, res.stderr
    names = ['sysext_extensions', 'sysext_fleet', 'sysext_hosts_below', 'sysext_query',
             'sysext_version_compare', 'sysext_version_sort']
    for n in names:
        assert 'tucked.sysext.' + n in res.stdout
    for n in names:
        doc = subprocess.run([os.path.join(BIN, 'ansible-doc'), '-t', 'filter', '--json', 'tucked.sysext.' + n],
                             cwd=REPO, env=env, text=True, capture_output=True, check=False)
        assert doc.returncode == 0, doc.stderr
        d = json.loads(doc.stdout)['tucked.sysext.' + n]
        assert d['doc']['name'] == n and d['examples'].strip() and d['return'], n
        assert 'WARNING' not in doc.stderr, doc.stderr
