# -*- coding: utf-8 -*-
"""A new user's first hour (issue 16): what the README tells them to write must work, and what
YAML does to their input must not pass silently."""

import json
import os
import subprocess
import sys

from lib.ansible_run import BIN, REPO, ansible_env, run_tasks

IMAGE = 'tucked.sysext.sysext_image'


def play(tmp_path, plays: list, *args: str) -> subprocess.CompletedProcess:
    pb = tmp_path / 'play.yml'
    pb.write_text(json.dumps(plays))
    return subprocess.run([os.path.join(BIN, 'ansible-playbook'), str(pb)] + list(args), cwd=REPO, env=ansible_env(),
                          text=True, capture_output=True, check=False)


def test_unquoted_versions_are_refused_before_anything_is_done(tmp_path):
    """version: 1.10 unquoted is the float 1.1: the module and the role refuse it and say to quote it."""
    root = tmp_path / 'root'
    root.mkdir()
    module, = run_tasks([
        {IMAGE: {'name': 'tool', 'version': 1.10, 'src': str(tmp_path / 'missing.raw'), 'root': str(root)}}])
    assert module['failed'] and module['msg'].startswith("version 1.1 is a float, not a string: quote it"), module
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
