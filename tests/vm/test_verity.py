# -*- coding: utf-8 -*-
"""dm-verity, signatures and a real /usr, in a QEMU VM with a real Debian sid kernel (which has
device-mapper; this machine's kernel has none) and systemd 262 (scripts/testvm.sh).

The images are built in the VM the way their producers build them (tests/vm/build-images.sh:
systemd-repart --make-ddi=sysext with a key, repart verity definitions without one, mkfs.erofs
with veritysetup sidecars), and one by our own sysext_build (a signed erofs lz4hc DDI). Each
test merges with our sysext_refresh (reached through Ansible's plain ssh connection, root: /)
and with the VM's own systemd-sysext 262, side by side, and leaves the VM unmerged with no dm
device behind.

Each test runs its steps (module calls, systemd-sysext, looks at what is merged) in their order
as one ansible-playbook play (lib/vmplay.py), then asserts on what each step gave: on the
emulated CPU every playbook run and every ssh round trip costs seconds. The VM also caches the
compiled code of Ansible's own module_utils (tests/vm/guest_pycache.py; TUCKED_VM_PYCACHE=0
leaves it out), which is most of what a module's start-up costs there."""

from __future__ import annotations

import base64
import os
import shlex

import pytest

from lib.testvm import UNAVAILABLE, TestVM, available
from lib.vmplay import DM_WAIT, Group, dm_devices, dm_names, module, play, sh, state, systemd

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP_MSG = 'Skipping extension refresh because no change was found'
EXT = '/var/lib/extensions'
SIGNED_ONLY = 'root=signed+absent:usr=signed+absent'
# a directory of site-packages on Debian for every Python 3 version
GUEST_SITE = '/usr/lib/python3/dist-packages'


def _put(local: str, remote: str, mode: int) -> str:
    """A shell command that writes the file ``local`` to ``remote`` in the VM."""
    with open(local, 'rb') as f:
        data = base64.b64encode(f.read()).decode()
    return "base64 -d > %s <<'EOF'\n%s\nEOF\nchmod %o %s\n" % (remote, data, mode, remote)


@pytest.fixture(scope='module')
def vm():
    if not available():
        pytest.fail(UNAVAILABLE)
    with TestVM('verity') as machine:
        # one ssh round trip: the files, the images (what build-images.sh says goes to stderr),
        # then NAME HASH lines for /root/images/NAME.hash
        cmd = 'set -e\n'
        if os.environ.get('TUCKED_VM_PYCACHE', '1') != '0':
            cmd += _put(os.path.join(HERE, 'guest_pycache.py'), GUEST_SITE + '/tucked_vm_pycache.py', 0o644)
            cmd += 'echo import tucked_vm_pycache > %s/tucked_vm_pycache.pth\n' % GUEST_SITE
        cmd += _put(os.path.join(HERE, 'build-images.sh'), '/root/build-images.sh', 0o755)
        cmd += '/root/build-images.sh >&2\n'
        cmd += 'for f in /root/images/*.hash; do printf "%s %s\\n" "$(basename "$f" .hash)" "$(cat "$f")"; done'
        out = machine.ssh(cmd).stdout
        machine.roothashes = {n: h.strip().lower() for n, h in (ln.split(' ', 1) for ln in out.splitlines() if ln.strip())}
        yield machine


@pytest.fixture(scope='module')
def hashes(vm) -> dict:
    """NAME -> the root hash of /root/images/NAME.raw (lowercase hex)."""
    return vm.roothashes


@pytest.fixture(autouse=True)
def clean(vm):
    yield
    # the dm devices are looked for by a shell started after the unmerge (exec): one started
    # while /usr was merged keeps the old overlay, and with it the layers and their dm devices,
    # for as long as it runs
    left = vm.ssh('systemd-sysext unmerge >/dev/null 2>&1; rm -rf %s/* /etc/verity.d; exec /bin/sh -c %s'
                  % (EXT, shlex.quote(DM_WAIT))).stdout
    assert dm_names(left) == [], 'dm devices left after the unmerge'


def install(*names, trust: bool = False):
    """Copy images (with their sidecars) from /root/images into /var/lib/extensions."""
    cmd = ''.join('for f in /root/images/%s.raw /root/images/%s.verity /root/images/%s.roothash '
                  '/root/images/%s.roothash.p7s; do [ -e "$f" ] && cp "$f" %s/; done; ' % (n, n, n, n, EXT) for n in names)
    cmd += 'mkdir -p /etc/verity.d && cp /root/keys/test.crt /etc/verity.d/test.crt' if trust else 'true'
    return sh(cmd)


def ours(**args):
    args = dict({'root': '/', 'classes': ['sysext'], 'state': 'merged'}, **args)
    return module('tucked.sysext.sysext_refresh', **args)


def facts():
    return module('tucked.sysext.sysext_facts', root='/')


def images(f: dict, name: str) -> list:
    return [i for i in f['ansible_facts']['sysext']['images'] if i['name'] == name]


def both(policy: str | None = None):
    """Merge with systemd, then (after its unmerge) with ours: (systemd ok, what it said, our result)."""
    def combine(merge, seen, _unmerge, left, r):
        rc, said = merge
        assert left == [], 'dm devices left after systemd-sysext unmerge: %s' % left
        return rc == 0 and seen.merged != [], said, r
    return Group([systemd('merge', *(['--image-policy=' + policy] if policy else [])), state(), systemd('unmerge'),
                  dm_devices(), ours(**({'image_policy': policy} if policy else {}))], combine)


def test_signed_ddi_merged_by_us_is_verified_and_systemd_skips(vm, hashes):
    _installed, r, seen, (rc, said), again, gone, after = play(
        vm, install('signed', trust=True), ours(), state('signed'), systemd('refresh'), ours(), ours(state='unmerged'),
        state('signed'))
    assert not r.get('failed'), r.get('msg')
    assert r['changed'] is True
    assert seen.content['signed'] == 'signed 1'
    assert len(seen.verity) == 1, 'the layer is not read through dm-verity'
    assert seen.origin['extensions']['signed'] == {'path': EXT + '/signed.raw', 'verityHash': hashes['signed']}
    assert seen.merged == ['signed']
    assert rc == 0 and SKIP_MSG in said, said
    assert again['changed'] is False, again
    assert gone['changed'] is True and after.content['signed'] is None


def test_signed_ddi_merged_by_systemd_is_skipped_by_us(vm, hashes):
    _installed, (rc, said), seen, r, f, _unmerged, _merged, after = play(
        vm, install('signed', trust=True), systemd('merge'), state(), ours(), facts(), systemd('unmerge'), ours(), state())
    assert rc == 0, said
    theirs = seen.origin
    assert theirs['extensions']['signed']['verityHash'] == hashes['signed']
    assert not r.get('failed') and r['changed'] is False, r
    img = images(f, 'signed')
    assert len(img) == 1 and img[0]['protection'] == 'signed', img
    assert img[0]['verity_hash'] == hashes['signed']
    # our own merge of the same image records the same origin, byte for byte in meaning
    assert after.origin['extensions'] == theirs['extensions']


def test_verity_without_signature_merges_and_a_policy_asking_for_signed_refuses_it(vm, hashes):
    _installed, (ok, said, r), seen, _unmerged, (ok2, said2, r2), after = play(
        vm, install('verity'), both(), state(), ours(state='unmerged'), both(SIGNED_ONLY), state())
    assert ok, said
    assert not r.get('failed') and r['changed'], r
    assert len(seen.verity) == 1
    assert seen.origin['extensions']['verity']['verityHash'] == hashes['verity']
    assert not ok2, 'systemd merged an unsigned image under a signed-only policy: ' + said2
    assert r2.get('failed'), r2
    assert 'verity.raw' in r2['msg'], r2['msg']
    assert after.merged == []


def test_signature_from_an_untrusted_key_is_treated_as_systemd_treats_it(vm):
    # no certificate in /etc/verity.d and none in the kernel keyring
    _installed, (ok, said, r), _unmerged, (ok2, said2, r2), after = play(
        vm, install('signed'), both(), ours(state='unmerged'), both(SIGNED_ONLY), state())
    assert ok == (not r.get('failed')), 'systemd: %s\nours: %s' % (said, r.get('msg'))
    assert not ok2, 'systemd merged an untrusted signature under a signed-only policy: ' + said2
    assert r2.get('failed') and 'signed.raw' in r2['msg'], r2
    assert after.merged == []


def test_sidecar_verity_beside_a_plain_image(vm, hashes):
    _installed, (ok, said, r), seen, (rc, said2) = play(
        vm, install('sidecar', trust=True), both(), state('sidecar'), systemd('refresh'))
    assert ok, said
    assert not r.get('failed') and r['changed'], r
    assert seen.content['sidecar'] == 'sidecar 1'
    assert len(seen.verity) == 1
    assert seen.origin['extensions']['sidecar']['verityHash'] == hashes['sidecar']
    assert rc == 0 and SKIP_MSG in said2, said2


# flip one byte in every 4 KiB block of the data partition, away from the erofs superblock
# (at 1024): dm-verity hashes whole blocks, so every block read must now fail
TAMPER = ("python3 - <<'EOF'\n"
          "import json, subprocess\n"
          "p = '%s/verity.raw'\n"
          "t = json.loads(subprocess.check_output(['sfdisk', '--json', p]))['partitiontable']\n"
          "part = t['partitions'][0]\n"
          "with open(p, 'r+b') as f:\n"
          "    for off in range(part['start'] * 512 + 4000, (part['start'] + part['size']) * 512, 4096):\n"
          "        f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xff]))\n"
          "EOF" % EXT)


def test_a_tampered_image_is_refused_and_the_host_is_left_as_it_was(vm):
    _installed, _tampered, (ok, said, r), after = play(vm, install('verity'), sh(TAMPER), both(), state())
    assert not ok, 'systemd merged a tampered verity image: ' + said
    assert r.get('failed'), r
    assert 'verity.raw' in r['msg'], r['msg']
    assert after.merged == [] and after.origin == {}


# a reader in the VM reads a file of the extension all the time the refresh runs
READER = ('rm -f /root/gaps; (while [ ! -e /root/stop ]; do cat /usr/share/tucked-vm/current >/dev/null 2>&1 '
          '|| echo gap >> /root/gaps; done) </dev/null >/dev/null 2>&1 & echo $! > /root/reader.pid')
STOP_READER = 'touch /root/stop; while kill -0 $(cat /root/reader.pid) 2>/dev/null; do sleep 0.1; done; rm -f /root/stop'


def test_refresh_of_the_real_usr_never_shows_a_gap(vm, hashes):
    try:
        _installed, first, _reading, _replaced, r, _stopped, gaps, after = play(
            vm, install('signed', trust=True), ours(), sh(READER),
            sh('cp /root/images/signed-v2.raw %s/signed.raw.new && mv %s/signed.raw.new %s/signed.raw' % (EXT, EXT, EXT)),
            ours(), sh(STOP_READER), sh('cat /root/gaps 2>/dev/null || true'), state('signed'))
    except BaseException:
        vm.ssh(STOP_READER, check=False)
        raise
    assert first['changed']
    assert not r.get('failed') and r['changed'], r
    assert r['atomic'] is True, r
    assert after.content['signed'] == 'signed 2'
    assert gaps.stdout == ''
    assert after.origin['extensions']['signed']['verityHash'] == hashes['signed-v2']
    assert len(after.verity) == 1, 'the old image\'s verity device outlived the refresh'


def test_a_signed_ddi_built_by_sysext_build_is_merged_verified_by_systemd_and_by_us(vm):
    # what a fleet builds itself: Flatcar's extras' flags (erofs lz4hc,12, 64 KiB clusters,
    # fragments, ztailpacking) in a DDI with verity and signature partitions, signed with the key
    # whose certificate the host trusts; built on the VM by our module, then merged by the VM's
    # systemd-sysext 262 (which checks the signature partition against /etc/verity.d) and by us
    build = {'src': '/root/src/built', 'dest': EXT + '/built.raw', 'version': '1', 'format': 'erofs',
             'compression': 'lz4hc', 'compression_level': 12, 'cluster_size': 65536,
             'erofs_features': ['fragments', 'ztailpacking'], 'container': 'ddi', 'verity': True,
             'signing_key': '/root/keys/test.key', 'signing_certificate': '/root/keys/test.crt'}
    # and systemd's own check of the signature is real: with another certificate it refuses
    # the image under a signed-only policy
    _src, b, _trusted, (ok, said, r), seen, f, (rc, said2), _unmerged, _other, (rc3, said3), after = play(
        vm, sh('rm -rf /root/src/built && mkdir -p /root/src/built/usr/share/tucked-vm && '
               'echo "built 1" > /root/src/built/usr/share/tucked-vm/built'),
        module('tucked.sysext.sysext_build', **build),
        sh('mkdir -p /etc/verity.d && cp /root/keys/test.crt /etc/verity.d/test.crt'),
        both(), state('built'), facts(), systemd('refresh'), ours(state='unmerged'),
        sh('cp /root/keys/other.crt /etc/verity.d/test.crt'), systemd('merge', '--image-policy=' + SIGNED_ONLY), state())
    assert not b.get('failed') and b['changed'], b.get('msg')
    assert [p['label'] for p in b['partitions']] == ['root-x86-64', 'root-x86-64-verity', 'root-x86-64-verity-sig']
    assert ok, 'systemd-sysext 262 did not merge the DDI sysext_build made: ' + said
    assert not r.get('failed') and r['changed'], r
    assert seen.content['built'] == 'built 1'
    assert len(seen.verity) == 1, 'the layer is not read through dm-verity'
    assert seen.origin['extensions']['built'] == {'path': EXT + '/built.raw', 'verityHash': b['roothash']}
    img = images(f, 'built')
    assert len(img) == 1 and img[0]['protection'] == 'signed' and img[0]['container'] == 'gpt', img
    assert rc == 0 and SKIP_MSG in said2, said2
    assert rc3 != 0 or after.merged == [], 'systemd merged it under a signed-only policy with another key: ' + said3
