# -*- coding: utf-8 -*-
"""sysext_facts' next-OS check (next_os_release / next_os_release_file) through real
ansible-playbook, on a scratch root: which images another os-release would drop, with the
field that fails; bad input fails the task naming the input and the fix. Nothing is mounted
and the root is left exactly as it was (check mode gives the same answer)."""

import os
import subprocess

import pytest

from lib.ansible_run import run_tasks
from lib.treedigest import tree_digest

ARCH = {'x86_64': 'x86-64', 'aarch64': 'arm64'}.get(os.uname().machine, os.uname().machine)
OTHER = 'arm64' if ARCH != 'arm64' else 'x86-64'


def add_ext(root, sdir, name, release, cls='sysext'):
    rel = 'usr/lib/extension-release.d' if cls == 'sysext' else 'etc/extension-release.d'
    d = root / sdir / name
    (d / rel).mkdir(parents=True)
    (d / rel / ('extension-release.' + name)).write_text(release)
    return d


@pytest.fixture(scope='module')
def scratch(tmp_path_factory):
    """A root on debian 13 (SYSEXT_LEVEL 1) with: pinned (VERSION_ID=13), level (SYSEXT_LEVEL=1,
    VERSION_ID=12), any (ID=_any), ubuntu (ID=ubuntu VERSION_ID=13, matched through nothing now),
    ready (VERSION_ID=14, for the update), the squashfs image pinned.raw in /etc/extensions
    (ARCHITECTURE of another machine), and the confext conf (CONFEXT_LEVEL=7)."""
    tmp = tmp_path_factory.mktemp('nextos')
    root = tmp / 'root'
    for d in ('usr/lib', 'opt', 'etc/extensions', 'var/lib/extensions', 'var/lib/confexts'):
        (root / d).mkdir(parents=True)
    (root / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=13\nSYSEXT_LEVEL=1\nCONFEXT_LEVEL=7\n')
    os.symlink('../usr/lib/os-release', root / 'etc/os-release')
    ext = 'var/lib/extensions'
    add_ext(root, ext, 'pinned', 'ID=debian\nVERSION_ID=13\n')
    add_ext(root, ext, 'level', 'ID=debian\nSYSEXT_LEVEL=1\nVERSION_ID=12\n')
    add_ext(root, ext, 'any', 'ID=_any\n')
    add_ext(root, ext, 'ubuntu', 'ID=ubuntu\nVERSION_ID=13\n')
    add_ext(root, ext, 'ready', 'ID=debian\nVERSION_ID=14\n')
    tree = add_ext(tmp, 'trees', 'foreign', 'ID=_any\nARCHITECTURE=%s\n' % OTHER)
    subprocess.run(['mksquashfs', str(tree), str(root / 'etc/extensions/foreign.raw'), '-quiet', '-noappend',
                    '-all-root'], check=True)
    add_ext(root, 'var/lib/confexts', 'conf', 'ID=debian\nCONFEXT_LEVEL=7\n', cls='confext')
    files = tmp / 'files'
    files.mkdir()
    (files / 'next-os-release').write_text('# Debian 14, on the controller\nID=debian\nVERSION_ID="14"\n'
                                           'SYSEXT_LEVEL=1\nCONFEXT_LEVEL=8\n')
    (files / 'ubuntu-os-release').write_text('ID=ubuntu\nID_LIKE=debian\nVERSION_ID=13\n')
    (files / 'no-id').write_text('VERSION_ID=14\n')
    (files / 'broken').write_text('ID=debian\nVERSION_ID 14\n')
    return root, files


def facts_task(root, **args):
    return {'tucked.sysext.sysext_facts': dict({'root': str(root)}, **args)}


@pytest.fixture(scope='module')
def results(scratch):
    root, files = scratch
    before = tree_digest(root)
    tasks = [
        facts_task(root, next_os_release={'ID': 'debian', 'VERSION_ID': '13', 'SYSEXT_LEVEL': '1',
                                          'CONFEXT_LEVEL': '7'}),
        facts_task(root, next_os_release={'ID': 'debian', 'VERSION_ID': 14}),
        facts_task(root, next_os_release="{{ lookup('ansible.builtin.file', '%s') }}" % (files / 'next-os-release')),
        facts_task(root, next_os_release_file=str(files / 'ubuntu-os-release')),
        facts_task(root, next_os_release={'ID': 'debian', 'VERSION_ID': '13', 'SYSEXT_LEVEL': '2',
                                          'CONFEXT_LEVEL': '7'}),
        dict(facts_task(root, next_os_release={'ID': 'debian', 'VERSION_ID': '14'}), check_mode=True),
        facts_task(root, next_os_release_file=str(files / 'no-id')),
        facts_task(root, next_os_release_file=str(files / 'broken')),
        facts_task(root, next_os_release={'ID': 'debian', 'VERSION_ID': 14.1}),
        facts_task(root, next_os_release={'ID': 'debian'}, next_os_release_file=str(files / 'no-id')),
        facts_task(root, next_os_release_file=str(files / 'missing')),
        facts_task(root),
    ]
    out = run_tasks(tasks)
    assert tree_digest(root) == before, 'the root is unchanged'
    return out


def by_name(res):
    return {(i['class'], i['name']): i for i in res['ansible_facts']['sysext']['images'] if i['type'] != 'ignored'}


def dropped(res):
    return [(d['class'], d['name'], d['field']) for d in res['ansible_facts']['sysext']['next_os']['dropped']]


def test_the_same_os_drops_nothing(results):
    res = results[0]
    nxt = res['ansible_facts']['sysext']['next_os']
    assert nxt['compatible'] is True and nxt['dropped'] == [] and nxt['gained'] == []
    assert (nxt['source'], nxt['architecture'], nxt['scope']) == ('next_os_release', ARCH, 'system')
    for img in by_name(res).values():
        assert img['next_os']['compatible'] is img['compatible'], img


def test_version_bump_drops_the_pinned_images(results):
    res = results[1]
    assert res['changed'] is False
    imgs = by_name(res)
    assert imgs[('sysext', 'pinned')]['compatible'] is True
    assert imgs[('sysext', 'pinned')]['next_os'] == {
        'compatible': False, 'field': 'VERSION_ID',
        'reason': "extension 'pinned' is for OS version '13' (VERSION_ID=13), but deployed on top of '14' "
                  "(VERSION_ID=14 in next_os_release)"}
    # the next OS has no SYSEXT_LEVEL: level's VERSION_ID=12 is compared; conf has no VERSION_ID
    assert dropped(res) == [('sysext', 'level', 'VERSION_ID'), ('sysext', 'pinned', 'VERSION_ID'),
                            ('confext', 'conf', 'VERSION_ID')]
    assert [g['name'] for g in res['ansible_facts']['sysext']['next_os']['gained']] == ['ready']
    assert imgs[('sysext', 'any')]['next_os']['compatible'] is True
    assert imgs[('sysext', 'foreign')]['next_os']['field'] == 'ARCHITECTURE'
    assert res['ansible_facts']['sysext']['next_os']['version_id'] == '14', 'the integer is taken as its digits'


def test_controller_file_as_text_keeps_the_level_and_drops_the_confext(results):
    res = results[2]
    assert dropped(res) == [('sysext', 'pinned', 'VERSION_ID'), ('confext', 'conf', 'CONFEXT_LEVEL')]
    imgs = by_name(res)
    assert imgs[('sysext', 'level')]['next_os']['compatible'] is True, 'SYSEXT_LEVEL=1 on both sides'
    assert "running on API level '8' (CONFEXT_LEVEL=8 in next_os_release)" in imgs[('confext', 'conf')]['next_os']['reason']


def test_target_file_with_id_like(results, scratch):
    res = results[3]
    nxt = res['ansible_facts']['sysext']['next_os']
    assert nxt['source'] == str(scratch[1] / 'ubuntu-os-release') and nxt['id_like'] == 'debian'
    imgs = by_name(res)
    assert imgs[('sysext', 'pinned')]['next_os']['compatible'] is True, 'ID_LIKE=debian matches ID=debian'
    assert imgs[('sysext', 'ubuntu')]['next_os']['compatible'] is True
    assert [g['name'] for g in nxt['gained']] == ['ubuntu']
    # without levels on the next OS, VERSION_ID decides: level is for 12, conf has none
    assert dropped(res) == [('sysext', 'level', 'VERSION_ID'), ('confext', 'conf', 'VERSION_ID')]


def test_level_bump(results):
    res = results[4]
    assert dropped(res) == [('sysext', 'level', 'SYSEXT_LEVEL')]
    assert "is for API level '1' (SYSEXT_LEVEL=1), but running on API level '2' (SYSEXT_LEVEL=2 in next_os_release)" \
        in by_name(res)[('sysext', 'level')]['next_os']['reason']


def test_check_mode_gives_the_same_answer(results):
    assert results[5]['ansible_facts']['sysext']['next_os'] == results[1]['ansible_facts']['sysext']['next_os']


def test_bad_input_fails_naming_it(results, scratch):
    files = scratch[1]
    no_id, broken, floating, both, missing = results[6:11]
    assert no_id['failed'] and no_id['msg'] == (
        "%s has no ID (or an empty one); systemd-sysext refuses to merge onto such an OS. Add ID=... (the next OS's "
        "identifier, e.g. ID=fedora)" % (files / 'no-id'))
    assert broken['failed'] and broken['msg'].startswith(
        "%s line 2 is not KEY=VALUE ('VERSION_ID 14'); an os-release file holds KEY=VALUE lines" % (files / 'broken'))
    assert floating['failed'] and 'VERSION_ID is a float (14.1), not a string: quote it' in floating['msg']
    assert both['failed'] and 'mutually exclusive' in both['msg']
    assert missing['failed'] and missing['msg'].startswith(
        'cannot read next_os_release_file (%s): No such file or directory' % (files / 'missing'))


def test_without_the_option_nothing_is_added(results):
    facts = results[11]['ansible_facts']['sysext']
    assert 'next_os' not in facts and not any('next_os' in i for i in facts['images'])
