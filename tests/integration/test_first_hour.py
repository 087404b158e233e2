# -*- coding: utf-8 -*-
"""A new user's first hour (issue 16): what the README tells them to write must work, and what
YAML does to their input must not pass silently."""

import json
import os
import subprocess
import sys

import pytest
from conftest import run_driver

from lib.ansible_run import BIN, REPO, ansible_env, run_tasks

IMAGE = 'tucked.sysext.sysext_image'
BUILD = 'tucked.sysext.sysext_build'


def play(tmp_path, plays: list, *args: str) -> subprocess.CompletedProcess:
    pb = tmp_path / 'play.yml'
    pb.write_text(json.dumps(plays))
    return subprocess.run([os.path.join(BIN, 'ansible-playbook'), str(pb)] + list(args), cwd=REPO, env=ansible_env(),
                          text=True, capture_output=True, check=False)


def test_unquoted_versions_are_refused_before_anything_is_done(tmp_path):
    """version: 1.10 unquoted is the float 1.1: the modules and the role refuse it and say to quote it
    (sysext_build would otherwise write IMAGE_VERSION=1.1 into the image)."""
    root, tree, out = tmp_path / 'root', tmp_path / 'tree', tmp_path / 'out'
    root.mkdir()
    (tree / 'usr/share/tool').mkdir(parents=True)
    (tree / 'usr/share/tool/README').write_text('tool\n')
    out.mkdir()
    build = {'src': str(tree), 'dest': str(out / 'tool.raw')}
    module, built, built_id, built_release, quoted = run_tasks([
        {IMAGE: {'name': 'tool', 'version': 1.10, 'src': str(tmp_path / 'missing.raw'), 'root': str(root)}},
        {BUILD: dict(build, version=1.10)},
        {BUILD: dict(build, version='1', id='debian', version_id=12)},
        {BUILD: dict(build, release={'SYSEXT_LEVEL': 1.10})},
        {BUILD: dict(build, version='1.10'), 'check_mode': True}])
    assert module['failed'] and module['msg'].startswith("version 1.1 is a float, not a string: quote it"), module
    assert built['failed'] and not built['changed'], built
    assert built['msg'].startswith('version 1.1 is a float, not a string: quote it (version: "1.1")'), built
    assert built_id['failed'] and built_id['msg'].startswith('version_id 12 is an int, not a string'), built_id
    assert built_release['failed'] and 'release field SYSEXT_LEVEL: 1.1 is a float' in built_release['msg']
    assert quoted['changed'] and quoted['release']['IMAGE_VERSION'] == '1.10', quoted
    assert os.listdir(out) == []
    res = play(tmp_path, [{'hosts': 'localhost', 'gather_facts': False, 'roles': [{
        'role': 'tucked.sysext.sysext', 'sysext_root': str(root),
        'sysext_images': [{'name': 'tool', 'version': 1.10, 'src': str(tmp_path / 'missing.raw')}]}]}])
    assert res.returncode != 0 and 'sysext tool: version 1.1 is a float, not a string: quote it' in res.stdout, \
        res.stdout[-3000:]
    assert os.listdir(root) == []


def test_verity_sidecars_travel_from_the_controller_with_the_image(tmp_path):
    """sysext_build verity: true writes NAME.verity and NAME.roothash beside NAME.raw: the image
    stored from the controller keeps them, and a second run with the same files changes nothing."""
    root, files = tmp_path / 'root', tmp_path / 'files'
    (root / 'usr/lib').mkdir(parents=True)
    (root / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    files.mkdir()
    (files / 'tool.raw').write_bytes(b'not even an image: state=present does not read it')
    (files / 'tool.verity').write_bytes(b'hash tree')
    (files / 'tool.roothash').write_text('ab' * 32 + '\n')
    task = {IMAGE: {'name': 'tool', 'version': '1', 'src': str(files / 'tool.raw'), 'state': 'present',
                    'root': str(root)}}
    first, again = run_tasks([task, task])
    assert first['changed'] and first['sidecars'] == ['/opt/extensions/tool/tool-1.roothash',
                                                      '/opt/extensions/tool/tool-1.verity'], first
    assert not again['changed'] and again['sidecars'] == first['sidecars'], again
    assert sorted(os.listdir(root / 'opt/extensions/tool')) == ['tool-1.raw', 'tool-1.roothash', 'tool-1.verity']
    assert (root / 'opt/extensions/tool/tool-1.verity').read_bytes() == b'hash tree'


def fake_root(path):
    (path / 'usr/lib').mkdir(parents=True)
    (path / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    for d in ('etc/extensions', 'var/lib/extensions', 'var/lib/confexts'):
        (path / d).mkdir(parents=True)
    return str(path)


def test_the_fleet_report_lists_unreachable_and_failed_hosts(tmp_path):
    """issue 15 item 10: every host of the inventory is in the table and the JSON, marked."""
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}
    inventory = {'all': {'hosts': {
        'good': dict(local, sysext_root=fake_root(tmp_path / 'good')),
        'broken': dict(local, sysext_root=str(tmp_path / 'no-such-root')),
        'down': {'ansible_connection': 'ssh', 'ansible_host': '127.0.0.1', 'ansible_port': 9,
                 'ansible_ssh_common_args': '-o ConnectTimeout=2 -o BatchMode=yes'}}}}
    inv = tmp_path / 'inventory.json'
    inv.write_text(json.dumps(inventory))
    report = tmp_path / 'status.json'
    res = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', str(inv), 'tucked.sysext.status',
                          '-e', 'status_json=%s' % report], cwd=REPO, env=ansible_env(), text=True,
                         capture_output=True, check=False, timeout=300)
    out = res.stdout + res.stderr
    assert report.exists(), out[-4000:]
    rep = json.loads(report.read_text())
    assert [h['host'] for h in rep['hosts']] == ['good', 'broken', 'down'], rep['hosts']
    assert rep['no_facts'] == ['broken', 'down'] and rep['failed'] == ['broken'] and rep['unreachable'] == ['down']
    assert 'no-such-root' in {h['host']: h for h in rep['hosts']}['broken']['error']
    table = out.split('TASK [Print the report]')[1]
    assert 'broken           ?        FAILED: ' in table and 'down             ?        UNREACHABLE' in table, table
    assert 'good             no' in table, table


# ----------------------------------------------------------------------------- from the tarball
@pytest.fixture(scope='module')
def first_hour():
    return run_driver('first_hour_driver.py', timeout=1200)


def test_the_tarball_ships_the_collection_and_not_the_development_tree(first_hour):
    assert first_hour['build']['rc'] == 0 and first_hour['install']['rc'] == 0, first_hour
    names = first_hour['tarball']
    for absent in ('tests', 'demo', 'molecule', 'inventory', 'scripts', 'ansible.cfg', '.ansible-lint', '.gitignore',
                   'Makefile', '.ci', '.venv'):
        assert not [n for n in names if n == absent or n.startswith(absent + '/')], absent
    for present in ('LICENSES/GPL-3.0-or-later.txt', 'README.md', 'meta/runtime.yml', 'playbooks/rollout.yml',
                    'roles/sysext/tasks/main.yml', 'plugins/action/sysext_image.py', 'changelogs/changelog.yaml'):
        assert present in names, present
    used = json.loads(first_hour['used_collection'])
    assert list(used) == [p for p in used if p.endswith('/work/collections/ansible_collections')] and len(used) == 1, used


def test_ansible_doc_documents_every_plugin_of_the_installed_tarball(first_hour):
    docs = first_hour['docs']
    assert docs['module']['names'] == ['sysext_bootstrap', 'sysext_build', 'sysext_facts', 'sysext_image',
                                       'sysext_python', 'sysext_refresh', 'sysext_sysupdate'] \
        and len(docs['filter']['names']) == 7, docs
    assert docs['lookup']['names'] == ['sysext_digest'] and docs['role']['names'] == ['bootstrap', 'sysext'], docs
    for kind, d in docs.items():
        assert d['rc'] == 0 and 'WARNING' not in d['stderr'] and 'ERROR' not in d['stderr'], (kind, d)
        assert d['documented'] == ['tucked.sysext.' + n for n in d['names']], (kind, d)


def test_the_readme_rollout_and_status_run_in_check_mode_from_a_project(first_hour):
    rollout_check, rollout, status = first_hour['commands']
    for r in (rollout_check, rollout, status):
        assert r['rc'] == 0 and 'Traceback' not in r['out'], r['out']
    assert set(rollout['recap']) == {'node1', 'node2'}
    # both hosts would store and select docker, kubelet (not downloaded in check mode) and site
    assert rollout['recap']['node1']['changed'] >= 1 and rollout['recap']['node2']['changed'] >= 1, rollout['recap']
    assert 'was not downloaded, so its checksum and compatibility were not checked' in rollout['out']
    assert 'node1            no' in status['out'] or 'node1            needed' in status['out'], status['out']
    assert 'sysext-status.json' in first_hour['project'], first_hour['project']
    assert first_hour['roots_unchanged'] == {'node1': True, 'node2': True}


def test_the_readme_playbook_with_module_defaults_runs_in_check_mode(first_hour):
    site = first_hour['site']
    assert site['rc'] == 0 and 'Unsupported parameters' not in site['out'], site['out']
    assert 'files/images/tools-1.0.raw' in first_hour['project']
    assert site['recap']['node1']['changed'] >= 2 and site['recap']['node1']['failed'] == 0, site['recap']


def test_the_readme_ad_hoc_lines_and_tasks_run_in_check_mode(first_hour):
    """Every ad hoc line of the README (pointed at the scratch roots) and its sysext_refresh tasks."""
    refresh, unmerge, facts = first_hour['adhoc']
    assert refresh['argv'][:6] == ['ansible', 'all', '-i', 'inventory.yml', '-b', '-m'], refresh['argv']
    assert 'state=unmerged classes=confext root=' in ' '.join(unmerge['argv']), unmerge['argv']
    for r in (refresh, unmerge, facts):
        assert r['rc'] == 0 and 'Traceback' not in r['out'], r['out']
    for r in (refresh, unmerge):        # nothing is merged on the scratch roots, nothing to do
        assert r['out'].count('"changed": false') == 2 and '"changed": true' not in r['out'], r['out']
    assert facts['out'].count('"sysext": {') == 2, facts['out']
    tasks = first_hour['refresh_tasks']
    assert tasks['rc'] == 0 and tasks['recap']['node1'] == dict(tasks['recap']['node1'], ok=2, changed=0, failed=0), \
        tasks['out']


def test_the_readme_refresh_and_facts_report_commands_run_in_check_mode(first_hour):
    refresh, report = first_hour['playbooks']
    assert refresh['argv'][:2] == ['ansible-playbook', 'tucked.sysext.refresh'] and 'target_hosts=all' in refresh['argv']
    assert report['argv'][:2] == ['ansible-playbook', 'tucked.sysext.facts_report'], report['argv']
    for r in (refresh, report):
        assert r['rc'] == 0 and set(r['recap']) == {'node1', 'node2'} and 'Traceback' not in r['out'], r['out']
        assert all(v['failed'] == 0 for v in r['recap'].values()), r['recap']
    assert [v['changed'] for v in refresh['recap'].values()] == [0, 0], refresh['recap']
    assert 'changed=False' in refresh['out'] and 'needs_refresh=False' in report['out'], report['out']
    # check mode: the report would be written once, on the controller, and is not
    assert 'changed: [node1 -> localhost]' in report['out'].split('TASK [Write the facts of every host')[1], report['out']
    assert 'facts.json' not in first_hour['project']


def test_a_bare_refresh_playbook_run_asks_for_its_hosts(first_hour):
    bare = first_hour['bare_refresh']
    assert 'Could not match supplied host pattern, ignoring: target_hosts_not_set' in bare['out'], bare['out']
    assert 'skipping: no hosts matched' in bare['out'] and bare['recap'] == {}, bare['out']
