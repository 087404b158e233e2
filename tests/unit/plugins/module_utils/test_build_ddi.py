# -*- coding: utf-8 -*-
"""sysext_build's compressed erofs and DDI output: the GPT writer's layout and CRCs, DDIs
with and without verity and signature read back by our reader and checked by independent
tools (veritysetup verify, openssl smime -verify, the sid root's sfdisk and mkfs.erofs 1.9),
and byte-identical rebuilds."""

import base64
import binascii
import json
import os
import shutil
import struct
import subprocess
import uuid

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import build, ddi, gptwrite
from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import image as imagefs
from ansible_collections.tucked.sysext.plugins.module_utils.build import BuildError, Options
from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import gpt

SID = os.environ.get('SID_ROOT', '/var/cache/tucked-sysext/roots/sid')
ROOT, _USR, ROOT_VERITY, _UV, ROOT_SIG, _US = gpt.TYPES['x86-64']


def which(tool):
    return shutil.which(tool) or shutil.which(tool, path='/usr/sbin:/sbin')


def need(*tools):
    for t in tools:
        if not which(t):
            pytest.skip('%s is not installed' % t)


def sid_tool(tmp_path, rel):
    """A wrapper running the sid root's binary with the sid root's libraries (no chroot)."""
    loader = os.path.join(SID, 'usr/lib64/ld-linux-x86-64.so.2')
    if not os.path.exists(os.path.join(SID, rel)) or not os.path.exists(loader):
        pytest.skip('no sid root with %s at %s' % (rel, SID))
    d = tmp_path / 'sidbin'
    d.mkdir(exist_ok=True)
    w = d / os.path.basename(rel)
    w.write_text('#!/bin/sh\nexec %s --library-path %s %s "$@"\n' % (
        loader, os.path.join(SID, 'usr/lib/x86_64-linux-gnu'), os.path.join(SID, rel)))
    w.chmod(0o755)
    return str(w)


def make_src(path, reverse=False):
    files = [('usr/share/demo/hello', b'hello\n'), ('usr/share/demo/big', b'compressible text\n' * 5000),
             ('opt/demo/bin', bytes(range(256)) * 64)]
    for rel, data in (reversed(files) if reverse else files):
        p = path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return str(path)


def key_and_cert(tmp_path):
    need('openssl')
    key, crt = str(tmp_path / 'v.key'), str(tmp_path / 'v.crt')
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-days',
                    '30', '-subj', '/CN=tucked.sysext unit test'], check=True, capture_output=True)
    return key, crt


def read(path, off, size):
    with open(path, 'rb') as f:
        f.seek(off)
        return f.read(size)


# ----------------------------------------------------------------------------- the GPT writer
def test_gpt_writer_layout_headers_and_crcs(tmp_path):
    src = tmp_path / 'data'
    src.write_bytes(b'\x01' * 5000)
    parts = [gptwrite.Part(ROOT, str(uuid.UUID(int=1)), 'root-x86-64', 8192, gpt.FLAG_READ_ONLY, str(src)),
             gptwrite.Part(ROOT_SIG, str(uuid.UUID(int=2)), 'root-x86-64-verity-sig', 16384, 0, data=b'{"x":1}')]
    out = str(tmp_path / 'disk.raw')
    offsets = gptwrite.write(out, parts, str(uuid.UUID(int=3)))
    size = os.path.getsize(out)
    # repart's layout: first partition at sector 40, back to back on 4 KiB, 33 sectors of backup
    assert offsets == [20480, 20480 + 8192] and size == 20480 + 8192 + 16384 + 33 * 512
    sectors = size // 512
    mbr = read(out, 0, 512)
    assert mbr[510:] == b'\x55\xaa' and mbr[450] == 0xEE and struct.unpack_from('<II', mbr, 454) == (1, sectors - 1)
    for lba, alt, entries in ((1, sectors - 1, 2), (sectors - 1, 1, sectors - 33)):
        hdr = read(out, lba * 512, 92)
        assert hdr[:8] == b'EFI PART'
        crc = struct.unpack_from('<I', hdr, 16)[0]
        assert binascii.crc32(hdr[:16] + b'\0' * 4 + hdr[20:]) == crc
        my, other, first, last = struct.unpack_from('<QQQQ', hdr, 24)
        assert (my, other, first, last) == (lba, alt, 34, sectors - 34)
        ent_lba, count, esize, ecrc = struct.unpack_from('<QIII', hdr, 72)
        assert (ent_lba, count, esize) == (entries, 128, 128)
        assert binascii.crc32(read(out, ent_lba * 512, 128 * 128)) == ecrc
    assert read(out, 20480, 5001) == b'\x01' * 5000 + b'\0'
    assert read(out, 28672, 8) == b'{"x":1}\0'
    # our reader
    fd = os.open(out, os.O_RDONLY)
    try:
        table = gpt.read_table(imagefs.Source(fd), 512)
    finally:
        os.close(fd)
    assert [(p.number, p.designator, p.label, p.offset, p.size, p.flags, p.uuid) for p in table] == [
        (1, 'root', 'root-x86-64', 20480, 8192, gpt.FLAG_READ_ONLY, str(uuid.UUID(int=1))),
        (2, 'root-verity-sig', 'root-x86-64-verity-sig', 28672, 16384, 0, str(uuid.UUID(int=2)))]


def test_gpt_writer_is_read_by_sfdisk(tmp_path):
    sfdisk = sid_tool(tmp_path, 'usr/sbin/sfdisk')
    parts = [gptwrite.Part(ROOT, str(uuid.UUID(int=7)), 'root-x86-64', 4096, gpt.FLAG_GROWFS, data=b'x')]
    out = str(tmp_path / 'disk.raw')
    gptwrite.write(out, parts, str(uuid.UUID(int=8)))
    res = subprocess.run([sfdisk, '--json', '--verify', out], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr
    table = json.loads(subprocess.run([sfdisk, '--json', out], capture_output=True, text=True, check=True).stdout)
    pt = table['partitiontable']
    assert (pt['label'], pt['firstlba'], pt['lastlba'], pt['id'].lower()) == ('gpt', 34, 40 + 8 - 1,
                                                                              str(uuid.UUID(int=8)))
    assert pt['partitions'] == [{'node': out + '1', 'start': 40, 'size': 8, 'type': ROOT.upper(),
                                 'uuid': str(uuid.UUID(int=7)).upper(), 'name': 'root-x86-64', 'attrs': 'GUID:59'}]


# ----------------------------------------------------------------------------- DDIs
def build_ddi(src, dest, **kw):
    kw.setdefault('format', 'erofs')
    kw.setdefault('compression', 'lz4hc')
    return build.run(Options(src=src, dest=str(dest), container='ddi', architecture='x86-64', **kw))


def test_signed_verity_ddi_is_what_repart_makes(tmp_path):
    need('mkfs.erofs', 'veritysetup')
    key, crt = key_and_cert(tmp_path)
    src = make_src(tmp_path / 'src')
    dest = tmp_path / 'out' / 'demo.raw'
    dest.parent.mkdir()
    res = build_ddi(src, dest, compression_level=12, cluster_size=65536, verity=True, signing_key=key,
                    signing_certificate=crt)
    assert res.changed and res.container == 'ddi' and os.listdir(dest.parent) == ['demo.raw']
    labels = [(p['label'], p['type'], p['flags']) for p in res.partitions]
    assert labels == [('root-x86-64', ROOT, gpt.FLAG_READ_ONLY), ('root-x86-64-verity', ROOT_VERITY, gpt.FLAG_READ_ONLY),
                      ('root-x86-64-verity-sig', ROOT_SIG, gpt.FLAG_READ_ONLY)]
    data, tree, sig = res.partitions
    rh = bytes.fromhex(res.roothash)
    assert data['uuid'] == str(uuid.UUID(bytes=rh[:16])) and tree['uuid'] == str(uuid.UUID(bytes=rh[16:]))
    # veritysetup checks the hash partition against the data partition and the root hash
    for part, name in ((data, 'data'), (tree, 'hash')):
        (tmp_path / name).write_bytes(read(str(dest), part['offset'], part['size']))
    v = subprocess.run([which('veritysetup'), 'verify', str(tmp_path / 'data'), str(tmp_path / 'hash'), res.roothash],
                       capture_output=True, text=True, check=False)
    assert v.returncode == 0, v.stderr
    dump = subprocess.run([which('veritysetup'), 'dump', str(tmp_path / 'hash')], capture_output=True, text=True,
                          check=True).stdout
    assert 'Data block size: \t4096' in dump and 'Hash algorithm:  \tsha256' in dump
    # the signature partition: repart's JSON, NUL-padded to 16 KiB, a signature openssl verifies
    blob = read(str(dest), sig['offset'], sig['size'])
    assert sig['size'] == 16384 and blob.endswith(b'\0')
    text = blob.rstrip(b'\0')
    assert text.startswith(b'{"rootHash":"%s","certificateFingerprint":"' % res.roothash.encode())
    doc = json.loads(text)
    der = subprocess.run(['openssl', 'x509', '-in', crt, '-outform', 'DER'], capture_output=True, check=True).stdout
    assert doc['certificateFingerprint'] == __import__('hashlib').sha256(der).hexdigest()
    (tmp_path / 'rh').write_text(res.roothash)
    (tmp_path / 'p7s').write_bytes(base64.b64decode(doc['signature']))
    ok = subprocess.run(['openssl', 'smime', '-verify', '-binary', '-inform', 'DER', '-in', str(tmp_path / 'p7s'),
                         '-content', str(tmp_path / 'rh'), '-CAfile', crt, '-purpose', 'any'],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    # our reader: the root partition, its verity and signature partitions, the signed root hash
    fd = os.open(str(dest), os.O_RDONLY)
    try:
        lay = imagefs.locate(imagefs.Source(fd), 'sysext', 'x86-64')
    finally:
        os.close(fd)
    assert (lay.container, lay.fstype, lay.partition.number, lay.verity.number, lay.signature.number) == (
        'gpt', 'erofs', 1, 2, 3)
    assert lay.roothash == res.roothash and lay.protection == 'signed'
    # reproducible: another tree of the same content elsewhere gives the same bytes
    dest2 = tmp_path / 'out2' / 'demo.raw'
    dest2.parent.mkdir()
    again = build_ddi(make_src(tmp_path / 'src2', reverse=True), dest2, compression_level=12, cluster_size=65536,
                      verity=True, signing_key=key, signing_certificate=crt)
    assert again.sha256 == res.sha256 and again.roothash == res.roothash
    assert not build_ddi(src, dest, compression_level=12, cluster_size=65536, verity=True, signing_key=key,
                         signing_certificate=crt).changed


def test_verity_only_and_plain_ddis(tmp_path):
    need('mksquashfs', 'veritysetup')
    src = make_src(tmp_path / 'src')
    plain = build_ddi(src, tmp_path / 'plain.raw', format='squashfs', compression='gzip')
    assert [(p['label'], p['flags']) for p in plain.partitions] == [('root-x86-64', gpt.FLAG_GROWFS)]
    assert plain.roothash is None
    assert build.read_image_release(str(tmp_path / 'plain.raw'), 'sysext', 'plain') == 'ID=_any\nARCHITECTURE=x86-64\n'
    ver = build_ddi(src, tmp_path / 'ver.raw', format='squashfs', compression='gzip', verity=True)
    assert [p['label'] for p in ver.partitions] == ['root-x86-64', 'root-x86-64-verity']
    fd = os.open(str(tmp_path / 'ver.raw'), os.O_RDONLY)
    try:
        lay = imagefs.locate(imagefs.Source(fd), 'sysext', 'x86-64')
    finally:
        os.close(fd)
    assert lay.protection == 'verity' and lay.roothash == ver.roothash and lay.signature is None
    assert not os.path.exists(tmp_path / 'ver.verity') and not os.path.exists(tmp_path / 'ver.roothash')


def test_an_earlier_sidecar_build_is_cleaned_up_by_a_ddi(tmp_path):
    need('mksquashfs', 'veritysetup')
    src = make_src(tmp_path / 'src')
    build.run(Options(src=src, dest=str(tmp_path / 'x.raw'), verity=True))
    assert os.path.exists(tmp_path / 'x.verity')
    res = build_ddi(src, tmp_path / 'x.raw', format='squashfs', compression='gzip', verity=True)
    assert sorted(os.listdir(tmp_path)) == ['src', 'x.raw'] and sorted(res.removed) == [
        str(tmp_path / 'x.roothash'), str(tmp_path / 'x.verity')]


@pytest.mark.parametrize('kw,match', [
    (dict(signing_key='/k'), 'signing_key and signing_certificate go together'),
    (dict(signing_key='/k', signing_certificate='/c'), 'set container: ddi and verity: true'),
    (dict(container='ddi', signing_key='/nonexistent.key', signing_certificate='/nonexistent.crt', verity=True),
     'signing_key /nonexistent.key does not exist'),
    (dict(container='ddi', architecture='m68k'), 'architecture m68k has no partition types'),
    (dict(container='tar'), 'container must be one of filesystem, ddi'),
    (dict(format='erofs', compression='lz4', compression_level=3), 'lz4 of erofs takes no compression_level'),
    (dict(format='erofs', compression='lz4hc', compression_level=13), 'out of range for erofs lz4hc: use 0 to 12'),
    (dict(format='erofs', compression='lzma', compression_level=50), 'use 0 to 9 or 100 to 109'),
    (dict(format='squashfs', compression='zstd', compression_level=0), 'use 1 to 22'),
    (dict(format='squashfs', cluster_size=3000), 'power of 2 from 4096 to 1048576'),
    (dict(format='erofs', cluster_size=65536), 'cluster_size applies to compressed erofs only'),
    (dict(format='erofs', compression='lz4', cluster_size=5000), 'multiple of its 4096-byte block'),
    (dict(format='erofs', erofs_features=['fragments']), 'fragments applies to compressed erofs only'),
    (dict(format='erofs', compression='lz4', erofs_features=['turbo']), "'turbo' is not a mkfs.erofs extended"),
    (dict(format='erofs', compression='zstd', erofs_features=['fragdedupe']), 'fragdedupe needs a value'),
    (dict(format='erofs', compression='zstd', erofs_features=['ztailpacking=1']), 'takes no value'),
    (dict(format='squashfs', erofs_features=['fragments']), 'erofs_features apply to format erofs only'),
])
def test_bad_compression_and_ddi_options_are_refused(tmp_path, kw, match):
    src = make_src(tmp_path / 'src')
    with pytest.raises(BuildError, match=match):
        build.run(Options(src=src, dest=str(tmp_path / 'x.raw'), **kw))
    assert sorted(os.listdir(tmp_path)) == ['src']


# ----------------------------------------------------------------------------- compressed erofs
PRODUCERS = [
    ('lz4', None, None, []),                                        # Fedora sysexts: -zlz4
    ('lz4hc', 12, 65536, ['fragments', 'ztailpacking']),             # Flatcar extras
    ('zstd', None, None, ['fragments', 'fragdedupe=inode']),         # GNOME OS
    ('zstd', 15, 131072, ['dedupe']),
    ('deflate', 6, None, []),
    ('lzma', 6, None, ['ztailpacking']),
]


@pytest.mark.parametrize('comp,level,cluster,features', PRODUCERS)
def test_compressed_erofs_is_reproducible_and_what_was_asked(tmp_path, monkeypatch, comp, level, cluster, features):
    """With the sid root's mkfs.erofs 1.9 (every compressor): two trees of the same content,
    made in different orders, give the same bytes, and the superblock says the compressor."""
    tool = sid_tool(tmp_path, 'usr/bin/mkfs.erofs')
    monkeypatch.setenv('PATH', os.path.dirname(tool) + ':' + os.environ['PATH'])
    shas = []
    for i in range(2):
        dest = tmp_path / ('o%d' % i) / 'demo.raw'
        dest.parent.mkdir()
        res = build.run(Options(src=make_src(tmp_path / ('s%d' % i), reverse=bool(i)), dest=str(dest), format='erofs',
                                compression=comp, compression_level=level, cluster_size=cluster,
                                erofs_features=features))
        shas.append(res.sha256)
        assert 'mkfs.erofs 1.9' in res.tool
    assert shas[0] == shas[1]
    fd = os.open(str(tmp_path / 'o0' / 'demo.raw'), os.O_RDONLY)
    try:
        lay = imagefs.locate(imagefs.Source(fd), 'sysext', 'x86-64')
    finally:
        os.close(fd)
    assert (lay.fstype, lay.compression) == ('erofs', 'lz4' if comp == 'lz4hc' else comp)


def test_a_compressor_the_tool_lacks_is_named(tmp_path, monkeypatch):
    fake = tmp_path / 'bin' / 'mkfs.erofs'
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "Available compressors are: lz4hc, lz4"\nexit 0\n')
    fake.chmod(0o755)
    monkeypatch.setenv('PATH', str(fake.parent) + ':' + os.environ['PATH'])
    with pytest.raises(BuildError, match=r'mkfs.erofs on the target cannot compress with zstd \(it offers lz4hc, lz4\)'):
        build.run(Options(src=make_src(tmp_path / 'src'), dest=str(tmp_path / 'x.raw'), format='erofs',
                          compression='zstd'))


def test_ddi_seed_derivations_follow_repart():
    seed = bytes(range(16))
    u = ddi.derive_uuid(seed, 'disk-uuid')
    assert uuid.UUID(u).version == 4 and u == ddi.derive_uuid(seed, 'disk-uuid') != ddi.derive_uuid(seed, 'x')
    import hashlib
    import hmac
    assert ddi.derive_salt(seed, 'verity-salt') == hmac.new(seed, b'verity-salt', hashlib.sha256).hexdigest()
