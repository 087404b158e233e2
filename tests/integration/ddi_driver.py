# -*- coding: utf-8 -*-
"""Build the same tree twice inside the sid root, once with ``systemd-repart --make-ddi=sysext``
(key and certificate given) and once with sysext_build's code (container ddi, verity, the same
key), and describe both with independent tools: sfdisk --json, veritysetup dump of the hash
partition, the signature partition's JSON and openssl smime -verify, and systemd-dissect 262
(--json=short and --validate) when it is there. Prints one JSON line.

    unshare -m --propagation private python3 ddi_driver.py [SYSTEMD_DISSECT]
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from lib import nsroot, producers  # noqa: E402

GPT_HEADER = '<8sIIIIQQQQ16sQIII'


def chroot(sid, *argv, check=True):
    res = subprocess.run(['chroot', sid] + list(argv), capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (' '.join(argv), res.returncode, res.stderr[-2000:]))
    return res


def ours(sid, tree, out, key, crt):
    coll = os.path.join(sid, 'tmp/tucked-coll/ansible_collections/tucked/sysext/plugins')
    shutil.copytree(os.path.join(REPO, 'plugins', 'module_utils'), os.path.join(coll, 'module_utils'),
                    ignore=shutil.ignore_patterns('__pycache__'))
    opts = {'src': tree, 'dest': out, 'format': 'erofs', 'container': 'ddi', 'verity': True, 'signing_key': key,
            'signing_certificate': crt}
    code = ('import json, sys; sys.path.insert(0, "/tmp/tucked-coll"); '
            'from ansible_collections.tucked.sysext.plugins.module_utils import build; '
            'print(json.dumps(build.run(build.Options(**json.loads(sys.argv[1]))).as_dict()))')
    return json.loads(chroot(sid, 'python3', '-c', code, json.dumps(opts)).stdout)


def describe(sid, image, crt, dissect):
    import struct
    host = os.path.join(sid, image.lstrip('/'))
    with open(host, 'rb') as f:
        raw = f.read()
    table = json.loads(chroot(sid, 'sfdisk', '--json', image).stdout)['partitiontable']
    hdr = struct.unpack_from(GPT_HEADER, raw, 512)
    out = {'sfdisk': table, 'size': len(raw), 'mbr_entry': raw[446:462].hex(), 'mbr_rest_zero': raw[:446].count(0),
           'header': {'revision': hdr[1], 'size': hdr[2], 'first_usable': hdr[7], 'entries_lba': hdr[10],
                      'entries': hdr[11], 'entry_size': hdr[12]}}
    parts = {p['name']: p for p in table['partitions']}
    for name, p in parts.items():
        data = raw[p['start'] * 512:(p['start'] + p['size']) * 512]
        if name.endswith('-verity'):
            with open(host + '.hash', 'wb') as f:
                f.write(data)
            dump = chroot(sid, 'veritysetup', 'dump', image + '.hash').stdout
            out['verity'] = {ln.split(':', 1)[0].strip(): ln.split(':', 1)[1].strip() for ln in dump.splitlines()
                             if ':' in ln and not ln.startswith('VERITY')}
        elif name.endswith('-verity-sig'):
            text = data.rstrip(b'\0')
            doc = json.loads(text)
            out['signature'] = {'keys': list(doc), 'compact': b' ' not in text, 'padding': len(data) - len(text),
                                'rootHash': doc['rootHash'], 'fingerprint': doc['certificateFingerprint']}
            with open(host + '.rh', 'w') as f:
                f.write(doc['rootHash'])
            with open(host + '.p7s', 'wb') as f:
                f.write(base64.b64decode(doc['signature']))
            v = chroot(sid, 'openssl', 'smime', '-verify', '-binary', '-inform', 'DER', '-in', image + '.p7s',
                       '-content', image + '.rh', '-CAfile', crt, '-purpose', 'any', check=False)
            out['signature']['openssl_verify'] = v.returncode
    if dissect:
        s = os.path.join(sid, 'usr/lib64/ld-linux-x86-64.so.2')
        libs = '%s/usr/lib/x86_64-linux-gnu:%s/usr/lib/x86_64-linux-gnu/systemd' % (sid, sid)
        for args in (['--json=short'], ['--validate']):
            res = subprocess.run([s, '--library-path', libs, dissect] + args + [host], capture_output=True, text=True,
                                 check=False)
            out['dissect' + args[0]] = {'rc': res.returncode, 'out': res.stdout, 'err': res.stderr[-1000:]}
    return out


def main(dissect: str | None) -> None:
    sid = nsroot.SidRoot()
    tree = sid.p('tmp/tree')
    os.makedirs(tree + '/usr/lib/extension-release.d')
    os.makedirs(tree + '/usr/share/demo')
    with open(tree + '/usr/lib/extension-release.d/extension-release.repart', 'w') as f:
        f.write('ID=_any\n')
    with open(tree + '/usr/share/demo/hello', 'w') as f:
        f.write('hello\n' * 1000)
    key, crt = producers.test_key(sid.path)
    producers.build(sid.path, 'ddi-verity-signed', '/tmp/tree', '/tmp/repart.raw')
    os.rename(tree + '/usr/lib/extension-release.d/extension-release.repart',
              tree + '/usr/lib/extension-release.d/extension-release.ours')
    res = ours(sid.path, '/tmp/tree', '/tmp/ours.raw', key, crt)
    nsroot.emit({'result': res, 'repart': describe(sid.path, '/tmp/repart.raw', crt, dissect),
                 'ours': describe(sid.path, '/tmp/ours.raw', crt, dissect)})


if __name__ == '__main__':
    main(sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] else None)
