# -*- coding: utf-8 -*-
"""sysext_build's signed verity DDI next to ``systemd-repart --make-ddi=sysext``'s of the same
tree and key (ddi_driver.py, in the sid root): the same partition types, labels, attributes
and layout rules, the same verity format, a signature partition of the same shape that openssl
verifies, and systemd-dissect 262 seeing a signed sysext in both. systemd-dissect is in
Debian's systemd-container (in the sid root's package list since this change; set
$SYSTEMD_DISSECT to a systemd-dissect 262 binary for an older sid root)."""

import json
import os

import pytest

from conftest import run_driver

SID_DISSECT = '/var/cache/tucked-sysext/roots/sid/usr/bin/systemd-dissect'


def test_ddi_is_shaped_as_systemd_repart_makes_it(sid_root):
    dissect = os.environ.get('SYSTEMD_DISSECT') or (SID_DISSECT if os.path.exists(SID_DISSECT) else '')
    got = run_driver('ddi_driver.py', dissect, timeout=300)
    rp, us = got['repart'], got['ours']
    assert got['result']['changed'] and got['result']['roothash'] == us['signature']['rootHash']

    def shape(d):
        t = d['sfdisk']
        return {'label': t['label'], 'sectorsize': t['sectorsize'], 'firstlba': t['firstlba'],
                'parts': [(p['type'], p['name'], p.get('attrs')) for p in t['partitions']],
                'first_start': t['partitions'][0]['start'], 'aligned': all(p['start'] % 8 == 0 for p in t['partitions']),
                'backup': d['size'] // 512 - 1 - t['lastlba'], 'sig_size': t['partitions'][2]['size'],
                'header': d['header'], 'mbr_type': d['mbr_entry'][8:10], 'mbr_rest_zero': d['mbr_rest_zero']}
    assert shape(us) == shape(rp)
    assert shape(us)['parts'][0][1:] == ('root-x86-64', 'GUID:60') and shape(us)['first_start'] == 40
    # verity: the same format, block sizes, hash and salt length
    for k in ('Hash type', 'Data block size', 'Hash block size', 'Hash algorithm'):
        assert us['verity'][k] == rp['verity'][k], k
    assert len(us['verity']['Salt']) == len(rp['verity']['Salt']) == 64
    # the partition UUIDs are the two halves of the root hash, on both
    for d in (us, rp):
        rh = d['signature']['rootHash']
        p = d['sfdisk']['partitions']
        assert (p[0]['uuid'] + p[1]['uuid']).replace('-', '').lower() == rh
    for k in ('keys', 'compact', 'fingerprint', 'openssl_verify'):
        assert us['signature'][k] == rp['signature'][k], k
    assert us['signature']['keys'] == ['rootHash', 'certificateFingerprint', 'signature']
    assert us['signature']['openssl_verify'] == 0
    if 'dissect--json=short' not in us:
        pytest.skip('no systemd-dissect 262 (sid root without systemd-container, $SYSTEMD_DISSECT unset); the '
                    'rest was checked')
    for d, name in ((us, 'ours'), (rp, 'repart')):
        assert d['dissect--json=short']['rc'] == 0, d['dissect--json=short']['err']
        doc = json.loads(d['dissect--json=short']['out'])
        assert doc['useSystemExtension'] and doc['sysextRelease'] == ['ID=_any'], doc
        mounts = {m['designator']: m for m in doc['mounts']}
        assert sorted(mounts) == ['root', 'root-verity', 'root-verity-sig'], mounts
        assert mounts['root']['verity'] == 'signed' and mounts['root']['fstype'] == 'erofs', mounts['root']
        assert d['dissect--validate']['rc'] == 0, (name, d['dissect--validate'])
