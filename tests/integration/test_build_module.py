# -*- coding: utf-8 -*-
"""sysext_build through real ansible-playbook: a build, a second run with changed=false,
check and diff mode, SOURCE_DATE_EPOCH from the task environment, bad input failing with a
clear message and writing nothing, dm-verity sidecars, and what the facts module then sees.

No mounts: building an image needs none.
"""

import hashlib
import os
import shutil

import pytest

from lib.ansible_run import run_tasks

BUILD = 'tucked.sysext.sysext_build'


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def make_src(path, greeting='hello'):
    (path / 'usr/bin').mkdir(parents=True)
    (path / 'usr/bin/greet').write_text('#!/bin/sh\necho %s\n' % greeting)
    (path / 'usr/bin/greet').chmod(0o755)
    (path / 'usr/share/greet').mkdir(parents=True)
    (path / 'usr/share/greet/README').write_text('greet\n')
    return path


def listing(d):
    return sorted(os.listdir(d))


def test_build_then_nothing_to_do_then_check_mode(tmp_path):
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    dest = out / 'greet.raw'
    args = {'src': str(src), 'dest': str(dest), 'version': '1.0', 'id': 'debian', 'version_id': '12',
            'source_date_epoch': 1700000000}
    first, second = run_tasks([{BUILD: args}, {BUILD: args}])
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] and first['built'] and first['sha256'] == sha(dest)
    assert first['release'] == {'ID': 'debian', 'VERSION_ID': '12', 'IMAGE_VERSION': '1.0'}
    assert first['release_file'] == '/usr/lib/extension-release.d/extension-release.greet'
    assert first['name'] == 'greet' and first['size'] == os.path.getsize(dest) and first['format'] == 'squashfs'
    assert not second['changed'] and not second['built'] and second['sha256'] == first['sha256']
    assert listing(out) == ['greet.raw']
    st = os.stat(dest)

    # Check mode with diff: a changed input is reported with the new release text, nothing written.
    (src / 'usr/bin/greet').write_text('#!/bin/sh\necho hi\n')
    check, = run_tasks([{BUILD: dict(args, version='1.1')}], check_mode=True, diff=True)
    assert check['changed'] and check['sha256'] != first['sha256']
    assert 'IMAGE_VERSION=1.1' in check['diff']['after'] and first['sha256'] in check['diff']['before']
    assert '+IMAGE_VERSION=1.1' in check['_shown'] and '-IMAGE_VERSION=1.0' in check['_shown']
    assert listing(out) == ['greet.raw'] and sha(dest) == first['sha256']
    assert (os.stat(dest).st_ino, os.stat(dest).st_mtime_ns) == (st.st_ino, st.st_mtime_ns)

    # The real run replaces it; the facts module finds the new version in a search directory.
    root = tmp_path / 'root'
    (root / 'var/lib/extensions').mkdir(parents=True)
    (root / 'etc').mkdir()
    (root / 'etc/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    new, facts = run_tasks([
        {BUILD: dict(args, version='1.1', dest=str(root / 'var/lib/extensions/greet.raw'))},
        {'tucked.sysext.sysext_facts': {'root': str(root), 'classes': ['sysext']}},
    ])
    assert new['changed'] and new['sha256'] == check['sha256'], 'check mode predicted the bytes'
    img = next(i for i in facts['ansible_facts']['sysext']['images'] if i['entry'] == '/var/lib/extensions/greet.raw')
    assert img['compatible'] is True and img['version'] == '1.1' and img['type'] == 'raw'


def test_source_date_epoch_from_the_task_environment(tmp_path):
    src = make_src(tmp_path / 'src')
    a, b, c = run_tasks([
        {BUILD: {'src': str(src), 'dest': str(tmp_path / 'a.raw'), 'name': 'greet', 'format': 'erofs'},
         'environment': {'SOURCE_DATE_EPOCH': '1234567890'}},
        {BUILD: {'src': str(src), 'dest': str(tmp_path / 'b.raw'), 'name': 'greet', 'format': 'erofs',
                 'source_date_epoch': 1234567890}},
        {BUILD: {'src': str(src), 'dest': str(tmp_path / 'c.raw'), 'name': 'greet'},
         'module_defaults': {'group/tucked.sysext.sysext': {'format': 'erofs'}}},
    ])
    assert a['source_date_epoch'] == b['source_date_epoch'] == 1234567890
    assert a['sha256'] == b['sha256'] == sha(tmp_path / 'b.raw')
    assert c['format'] == 'erofs' and c['source_date_epoch'] == 0 and c['sha256'] != a['sha256']


def test_bad_input_fails_clearly_and_writes_nothing(tmp_path):
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    (tmp_path / 'mixed/etc').mkdir(parents=True)
    (tmp_path / 'mixed/usr').mkdir()
    results = run_tasks([
        {BUILD: {'src': str(src), 'dest': str(out / 'x.raw'), 'name': 'a/b'}},
        {BUILD: {'src': str(tmp_path / 'mixed'), 'dest': str(out / 'x.raw')}},
        {BUILD: {'src': str(tmp_path / 'nope'), 'dest': str(out / 'x.raw')}},
        {BUILD: {'src': str(src), 'dest': str(tmp_path / 'missing/x.raw')}},
        {BUILD: {'src': str(src), 'dest': str(out / 'x.raw'), 'architecture': 'amd64'}},
        {BUILD: {'src': str(src), 'dest': str(out / 'x.raw'), 'format': 'erofs', 'compression': 'xz'}},
        {BUILD: {'src': str(src), 'dest': str(out / 'x.raw'), 'kind': 'confext'}},
    ])
    assert all(r['failed'] and not r['changed'] for r in results), results
    msgs = [r['msg'] for r in results]
    assert "invalid extension name 'a/b'" in msgs[0]
    assert "holds 'etc' at the top level; a sysext image may only hold usr/ and opt/" in msgs[1]
    assert 'nope does not exist' in msgs[2]
    assert 'missing, does not exist; create it first' in msgs[3]
    assert "architecture 'amd64' is not one of systemd's names" in msgs[4]
    assert "compression 'xz' is not available for erofs" in msgs[5]
    assert "holds 'usr' at the top level; a confext image may only hold etc/" in msgs[6]
    assert 'Traceback' not in results[0]['_shown']
    assert listing(out) == []


def test_what_the_build_returns_is_what_sysext_image_takes(tmp_path):
    """One vocabulary (issue 16 item 7): ``class`` in both modules (``kind`` an alias), and the
    build's ``checksum`` (ALGO:HEX) goes straight into sysext_image's ``checksum``."""
    src, root = tmp_path / 'src', tmp_path / 'root'
    (src / 'etc/site').mkdir(parents=True)
    (src / 'etc/site/site.conf').write_text('site 7\n')
    (root / 'usr/lib').mkdir(parents=True)
    (root / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    dest = tmp_path / 'site-7.raw'
    image = {'name': 'site', 'version': '7', 'class': 'confext', 'src': str(dest), 'remote_src': True,
             'root': str(root)}
    built, stored, wrong = run_tasks([
        {BUILD: {'src': str(src), 'dest': str(dest), 'name': 'site', 'class': 'confext', 'version': '7'}},
        {'tucked.sysext.sysext_image': dict(image, checksum='{{ r0.checksum }}')},
        {'tucked.sysext.sysext_image': dict(image, version='8', checksum='sha256:' + '0' * 64)}])
    assert built['checksum'] == 'sha256:' + sha(dest) == 'sha256:' + built['sha256'], built
    assert built['class'] == built['kind'] == 'confext' and built['release_file'].startswith('/etc/'), built
    assert stored['changed'] and not stored.get('failed') and stored['class'] == 'confext', stored
    assert os.readlink(root / 'var/lib/confexts/site.raw').endswith('/site/site-7.raw'), stored
    assert wrong['failed'] and 'sha256:' + '0' * 64 in wrong['msg'], wrong     # the checksum is checked
    assert sorted(os.listdir(root / 'opt/extensions/site')) == ['site-7.raw']


def test_verity(tmp_path):
    if not (shutil.which('veritysetup') or shutil.which('veritysetup', path='/usr/sbin:/sbin')):
        pytest.skip('veritysetup is not installed: scripts/bootstrap.sh debs installs cryptsetup-bin')
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    args = {'src': str(src), 'dest': str(out / 'greet.raw'), 'verity': True}
    first, second, check_off, off = run_tasks([{BUILD: args}, {BUILD: args},
                                               {BUILD: dict(args, verity=False), 'check_mode': True},
                                               {BUILD: dict(args, verity=False)}])
    assert first['changed'] and len(first['roothash']) == 64
    assert first['roothash_path'] == str(out / 'greet.roothash') and first['verity_path'] == str(out / 'greet.verity')
    assert not second['changed'] and second['roothash'] == first['roothash']
    assert check_off['changed'] and check_off['removed'] == [str(out / 'greet.verity'), str(out / 'greet.roothash')]
    assert off['changed'] and off['roothash'] is None
    assert listing(out) == ['greet.raw']


def test_signed_verity_ddi_and_what_the_facts_module_sees(tmp_path):
    """container: ddi with verity and a signing key, through ansible-playbook: a second run
    changes nothing, check mode with another compression level predicts a change, and
    sysext_facts reads the DDI in place (GPT, erofs root partition, signed)."""
    for tool in ('veritysetup', 'mkfs.erofs', 'openssl'):
        if not (shutil.which(tool) or shutil.which(tool, path='/usr/sbin:/sbin')):
            pytest.skip('%s is not installed' % tool)
    if os.uname().machine != 'x86_64':
        pytest.skip('the partition types below are x86-64 ones')
    import subprocess
    key, crt = str(tmp_path / 'v.key'), str(tmp_path / 'v.crt')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days',
                    '30', '-subj', '/CN=sysext_build test'], check=True, capture_output=True)
    src = make_src(tmp_path / 'src')
    root = tmp_path / 'root'
    (root / 'var/lib/extensions').mkdir(parents=True)
    (root / 'etc').mkdir()
    (root / 'etc/os-release').write_text('ID=debian\nVERSION_ID=13\n')
    dest = root / 'var/lib/extensions/greet.raw'
    args = {'src': str(src), 'dest': str(dest), 'format': 'erofs', 'compression': 'lz4hc', 'compression_level': 12,
            'cluster_size': 65536, 'container': 'ddi', 'verity': True, 'signing_key': key, 'signing_certificate': crt,
            'source_date_epoch': 1700000000}
    first, second, check, facts = run_tasks([
        {BUILD: args}, {BUILD: args}, {BUILD: dict(args, compression_level=9), 'check_mode': True},
        {'tucked.sysext.sysext_facts': {'root': str(root), 'classes': ['sysext']}}])
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] and first['container'] == 'ddi' and first['sha256'] == sha(dest)
    assert [p['label'] for p in first['partitions']] == ['root-x86-64', 'root-x86-64-verity', 'root-x86-64-verity-sig']
    assert first['verity_path'] is None and listing(dest.parent) == ['greet.raw']
    assert not second['changed'] and second['roothash'] == first['roothash']
    assert check['changed'] and sha(dest) == first['sha256']
    img = next(i for i in facts['ansible_facts']['sysext']['images'] if i['name'] == 'greet')
    assert (img['container'], img['fstype'], img['protection'], img['verity_hash']) == (
        'gpt', 'erofs', 'signed', first['roothash']), img
    p = img['partition']
    assert (p['designator'], p['label'], p['verity_partition'], p['signature_partition']) == (
        'root', 'root-x86-64', 2, 3), p


def test_bad_ddi_options_fail_with_a_message(tmp_path):
    src = make_src(tmp_path / 'src')
    res, = run_tasks([{BUILD: {'src': str(src), 'dest': str(tmp_path / 'x.raw'), 'signing_key': '/k.pem',
                               'signing_certificate': '/c.pem'}}])
    assert res['failed'] and 'set container: ddi and verity: true' in res['msg'], res['msg']
    res, = run_tasks([{BUILD: {'src': str(src), 'dest': str(tmp_path / 'x.raw'), 'signing_key': '/k.pem'}}])
    assert res['failed'] and 'signing_certificate' in res['msg'], res['msg']
    assert sorted(os.listdir(tmp_path)) == ['src']
