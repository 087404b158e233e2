# -*- coding: utf-8 -*-
"""dm-verity, signatures and a real /usr, in a QEMU VM with a real Debian sid kernel (which has
device-mapper; this machine's kernel has none) and systemd 262 (scripts/testvm.sh).

The images are built in the VM the way their producers build them (tests/vm/build-images.sh:
systemd-repart --make-ddi=sysext with a key, repart verity definitions without one, mkfs.erofs
with veritysetup sidecars), and one by our own sysext_build (a signed erofs lz4hc DDI). Each
test merges with our sysext_refresh (reached through Ansible's plain ssh connection, root: /)
and with the VM's own systemd-sysext 262, side by side, and leaves the VM unmerged with no dm
device behind."""

from __future__ import annotations

import json
import os
import time

import pytest

from lib.ansible_run import run_tasks
from lib.testvm import UNAVAILABLE, TestVM, available

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP_MSG = 'Skipping extension refresh because no change was found'
EXT = '/var/lib/extensions'


@pytest.fixture(scope='module')
def vm():
    if not available():
        pytest.fail(UNAVAILABLE)
    with TestVM('verity') as machine:
        machine.copy_to(os.path.join(HERE, 'build-images.sh'), '/root/build-images.sh', mode=0o755)
        machine.ssh('/root/build-images.sh')
        yield machine


@pytest.fixture(autouse=True)
def clean(vm):
    yield
    vm.ssh('systemd-sysext unmerge >/dev/null 2>&1; rm -rf %s/* /etc/verity.d; true' % EXT)
    assert _dm_devices(vm) == [], 'dm devices left after the unmerge'


def _dm_devices(vm, wait: float = 10) -> list:
    """The dm devices in the VM (deferred removal may take a moment after an unmount)."""
    deadline = time.monotonic() + wait
    while True:
        out = vm.ssh('dmsetup ls --target verity 2>/dev/null || true').stdout
        names = [ln.split()[0] for ln in out.splitlines() if ln.strip() and 'No devices found' not in ln]
        if not names or time.monotonic() > deadline:
            return names
        time.sleep(0.5)


def roothash(vm, name: str) -> str:
    return vm.ssh(['cat', '/root/images/%s.hash' % name]).stdout.strip().lower()


def install(vm, *names, trust: bool = False) -> None:
    """Copy images (with their sidecars) from /root/images into /var/lib/extensions."""
    for n in names:
        vm.ssh('for f in /root/images/%s.raw /root/images/%s.verity /root/images/%s.roothash '
               '/root/images/%s.roothash.p7s; do [ -e "$f" ] && cp "$f" %s/; done; true' % (n, n, n, n, EXT))
    if trust:
        vm.ssh('mkdir -p /etc/verity.d && cp /root/keys/test.crt /etc/verity.d/test.crt')


def ours(vm, **args) -> dict:
    args = dict({'root': '/', 'classes': ['sysext'], 'state': 'merged'}, **args)
    return run_tasks([{'tucked.sysext.sysext_refresh': args}], inventory=vm.inventory_path, hosts='all')[0]


def facts(vm) -> dict:
    return run_tasks([{'tucked.sysext.sysext_facts': {'root': '/'}}], inventory=vm.inventory_path, hosts='all')[0]


def systemd(vm, verb: str, *args):
    res = vm.ssh(['systemd-sysext', verb, '--no-pager'] + list(args), check=False)
    return res.returncode, res.stdout + res.stderr


def merged(vm) -> list:
    out = vm.ssh('systemd-sysext status --json=short --no-pager').stdout
    for h in json.loads(out):
        if h.get('hierarchy') == '/usr':
            return [] if h.get('extensions') in (None, 'none') else list(h['extensions'])
    return []


def origin(vm) -> dict:
    res = vm.ssh('cat /usr/.systemd-sysext/origin', check=False)
    return json.loads(res.stdout) if res.returncode == 0 else {}


def content(vm, name: str) -> str | None:
    res = vm.ssh(['cat', '/usr/share/tucked-vm/' + name], check=False)
    return res.stdout.strip() if res.returncode == 0 else None


def verity_backed(vm) -> list:
    """The dm devices with a verity table (what backs the merged layers)."""
    out = vm.ssh('dmsetup table 2>/dev/null || true').stdout
    return [ln.split(':')[0] for ln in out.splitlines() if ' verity ' in ln]


def test_signed_ddi_merged_by_us_is_verified_and_systemd_skips(vm):
    install(vm, 'signed', trust=True)
    r = ours(vm)
    assert not r.get('failed'), r.get('msg')
    assert r['changed'] is True
    assert content(vm, 'signed') == 'signed 1'
    assert len(verity_backed(vm)) == 1, 'the layer is not read through dm-verity'
    assert origin(vm)['extensions']['signed'] == {'path': EXT + '/signed.raw', 'verityHash': roothash(vm, 'signed')}
    assert merged(vm) == ['signed']
    rc, said = systemd(vm, 'refresh')
    assert rc == 0 and SKIP_MSG in said, said
    again = ours(vm)
    assert again['changed'] is False, again
    gone = ours(vm, state='unmerged')
    assert gone['changed'] is True and content(vm, 'signed') is None


def test_signed_ddi_merged_by_systemd_is_skipped_by_us(vm):
    install(vm, 'signed', trust=True)
    rc, said = systemd(vm, 'merge')
    assert rc == 0, said
    theirs = origin(vm)
    assert theirs['extensions']['signed']['verityHash'] == roothash(vm, 'signed')
    r = ours(vm)
    assert not r.get('failed') and r['changed'] is False, r
    img = [i for i in facts(vm)['ansible_facts']['sysext']['images'] if i['name'] == 'signed']
    assert len(img) == 1 and img[0]['protection'] == 'signed', img
    assert img[0]['verity_hash'] == roothash(vm, 'signed')
    # our own merge of the same image records the same origin, byte for byte in meaning
    systemd(vm, 'unmerge')
    ours(vm)
    assert origin(vm)['extensions'] == theirs['extensions']


def _both(vm, policy: str | None = None):
    """Merge with systemd, then (after its unmerge) with ours: (systemd ok, what it said, our result)."""
    rc, said = systemd(vm, 'merge', *(['--image-policy=' + policy] if policy else []))
    theirs = merged(vm)
    systemd(vm, 'unmerge')
    assert _dm_devices(vm) == []
    r = ours(vm, **({'image_policy': policy} if policy else {}))
    return rc == 0 and theirs != [], said, r


def test_verity_without_signature_merges_and_a_policy_asking_for_signed_refuses_it(vm):
    install(vm, 'verity')
    ok, said, r = _both(vm)
    assert ok, said
    assert not r.get('failed') and r['changed'], r
    assert len(verity_backed(vm)) == 1
    assert origin(vm)['extensions']['verity']['verityHash'] == roothash(vm, 'verity')
    ours(vm, state='unmerged')
    ok, said, r = _both(vm, 'root=signed+absent:usr=signed+absent')
    assert not ok, 'systemd merged an unsigned image under a signed-only policy: ' + said
    assert r.get('failed'), r
    assert 'verity.raw' in r['msg'], r['msg']
    assert merged(vm) == []


def test_signature_from_an_untrusted_key_is_treated_as_systemd_treats_it(vm):
    # no certificate in /etc/verity.d and none in the kernel keyring
    install(vm, 'signed')
    ok, said, r = _both(vm)
    assert ok == (not r.get('failed')), 'systemd: %s\nours: %s' % (said, r.get('msg'))
    ours(vm, state='unmerged')
    ok, said, r = _both(vm, 'root=signed+absent:usr=signed+absent')
    assert not ok, 'systemd merged an untrusted signature under a signed-only policy: ' + said
    assert r.get('failed') and 'signed.raw' in r['msg'], r
    assert merged(vm) == []


def test_sidecar_verity_beside_a_plain_image(vm):
    install(vm, 'sidecar', trust=True)
    ok, said, r = _both(vm)
    assert ok, said
    assert not r.get('failed') and r['changed'], r
    assert content(vm, 'sidecar') == 'sidecar 1'
    assert len(verity_backed(vm)) == 1
    assert origin(vm)['extensions']['sidecar']['verityHash'] == roothash(vm, 'sidecar')
    rc, said = systemd(vm, 'refresh')
    assert rc == 0 and SKIP_MSG in said, said


def test_a_tampered_image_is_refused_and_the_host_is_left_as_it_was(vm):
    install(vm, 'verity')
    # flip one byte in every 4 KiB block of the data partition, away from the erofs superblock
    # (at 1024): dm-verity hashes whole blocks, so every block read must now fail
    vm.ssh("python3 - <<'EOF'\n"
           "import json, subprocess\n"
           "p = '%s/verity.raw'\n"
           "t = json.loads(subprocess.check_output(['sfdisk', '--json', p]))['partitiontable']\n"
           "part = t['partitions'][0]\n"
           "with open(p, 'r+b') as f:\n"
           "    for off in range(part['start'] * 512 + 4000, (part['start'] + part['size']) * 512, 4096):\n"
           "        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff]))\n"
           "EOF" % EXT)
    ok, said, r = _both(vm)
    assert not ok, 'systemd merged a tampered verity image: ' + said
    assert r.get('failed'), r
    assert 'verity.raw' in r['msg'], r['msg']
    assert merged(vm) == [] and origin(vm) == {}


def test_refresh_of_the_real_usr_never_shows_a_gap(vm):
    install(vm, 'signed', trust=True)
    assert ours(vm)['changed']
    # a reader in the VM reads a file of the extension all the time the refresh runs
    vm.ssh('rm -f /root/gaps; (while [ ! -e /root/stop ]; do cat /usr/share/tucked-vm/current >/dev/null 2>&1 '
           '|| echo gap >> /root/gaps; done) >/dev/null 2>&1 & echo $! > /root/reader.pid')
    try:
        vm.ssh('cp /root/images/signed-v2.raw %s/signed.raw.new && mv %s/signed.raw.new %s/signed.raw' % (EXT, EXT, EXT))
        r = ours(vm)
    finally:
        vm.ssh('touch /root/stop; while kill -0 $(cat /root/reader.pid) 2>/dev/null; do sleep 0.1; done; rm -f /root/stop')
    assert not r.get('failed') and r['changed'], r
    assert r['atomic'] is True, r
    assert content(vm, 'signed') == 'signed 2'
    assert vm.ssh('cat /root/gaps 2>/dev/null || true').stdout == ''
    assert origin(vm)['extensions']['signed']['verityHash'] == roothash(vm, 'signed-v2')
    assert len(verity_backed(vm)) == 1, 'the old image\'s verity device outlived the refresh'


def test_a_signed_ddi_built_by_sysext_build_is_merged_verified_by_systemd_and_by_us(vm):
    # what a fleet builds itself: Flatcar's extras' flags (erofs lz4hc,12, 64 KiB clusters,
    # fragments, ztailpacking) in a DDI with verity and signature partitions, signed with the key
    # whose certificate the host trusts; built on the VM by our module, then merged by the VM's
    # systemd-sysext 262 (which checks the signature partition against /etc/verity.d) and by us
    vm.ssh('rm -rf /root/src/built && mkdir -p /root/src/built/usr/share/tucked-vm && '
           'echo "built 1" > /root/src/built/usr/share/tucked-vm/built')
    build = {'src': '/root/src/built', 'dest': EXT + '/built.raw', 'version': '1', 'format': 'erofs',
             'compression': 'lz4hc', 'compression_level': 12, 'cluster_size': 65536,
             'erofs_features': ['fragments', 'ztailpacking'], 'container': 'ddi', 'verity': True,
             'signing_key': '/root/keys/test.key', 'signing_certificate': '/root/keys/test.crt'}
    b = run_tasks([{'tucked.sysext.sysext_build': build}], inventory=vm.inventory_path, hosts='all')[0]
    assert not b.get('failed') and b['changed'], b.get('msg')
    assert [p['label'] for p in b['partitions']] == ['root-x86-64', 'root-x86-64-verity', 'root-x86-64-verity-sig']
    vm.ssh('mkdir -p /etc/verity.d && cp /root/keys/test.crt /etc/verity.d/test.crt')
    ok, said, r = _both(vm)
    assert ok, 'systemd-sysext 262 did not merge the DDI sysext_build made: ' + said
    assert not r.get('failed') and r['changed'], r
    assert content(vm, 'built') == 'built 1'
    assert len(verity_backed(vm)) == 1, 'the layer is not read through dm-verity'
    assert origin(vm)['extensions']['built'] == {'path': EXT + '/built.raw', 'verityHash': b['roothash']}
    img = [i for i in facts(vm)['ansible_facts']['sysext']['images'] if i['name'] == 'built']
    assert len(img) == 1 and img[0]['protection'] == 'signed' and img[0]['container'] == 'gpt', img
    rc, said = systemd(vm, 'refresh')
    assert rc == 0 and SKIP_MSG in said, said
    # and systemd's own check of the signature is real: with another certificate it refuses
    # the image under a signed-only policy
    ours(vm, state='unmerged')
    vm.ssh('cp /root/keys/other.crt /etc/verity.d/test.crt')
    rc, said = systemd(vm, 'merge', '--image-policy=root=signed+absent:usr=signed+absent')
    assert rc != 0 or merged(vm) == [], 'systemd merged it under a signed-only policy with another key: ' + said
