# -*- coding: utf-8 -*-
"""imagefs: reading squashfs, erofs and GPT disk images in place (the mount fallback is covered
by the integration tests: it mounts, which needs a private mount namespace)."""

import os
import sys
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..'))
from lib import gptimage  # noqa: E402 pylint: disable=wrong-import-position

from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import image as imagefs
from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import gpt, lz4, partition, probe
from ansible_collections.tucked.sysext.plugins.module_utils.imagefs.erofs import Erofs
from ansible_collections.tucked.sysext.plugins.module_utils.imagefs.squashfs import Squashfs

BIG = os.urandom(300 * 1024)
REL = 'usr/lib/extension-release.d/extension-release.foo'
ROOT, USR, ROOT_VERITY, USR_VERITY, ROOT_SIG, USR_SIG = gpt.TYPES['x86-64']


@pytest.fixture(scope='module')
def tree(tmp_path_factory, make_tree):
    t = tmp_path_factory.mktemp('tree')
    make_tree(t, 'foo', files={'usr/share/foo/big': BIG, 'usr/share/foo/deep/er/file': 'deep\n',
                               'usr/share/foo/text': 'compressible text\n' * 5000})
    os.symlink('../../lib/extension-release.d/extension-release.foo', t / 'usr/share/foo/rel-link')
    os.symlink('/usr/lib', t / 'usr/share/foo/abs-link')
    os.symlink('/../../../../usr/lib/extension-release.d/extension-release.foo', t / 'usr/share/foo/escape')
    return t


class Opened:
    def __init__(self, path, cls='sysext'):
        self.fd = os.open(path, os.O_RDONLY)
        self.src = imagefs.Source(self.fd)
        try:
            self.layout = imagefs.locate(self.src, cls, 'x86-64')
        except BaseException:
            os.close(self.fd)
            raise

    def tree(self):
        return {'squashfs': Squashfs, 'erofs': Erofs}[self.layout.fstype](self.layout.source(self.src))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


@pytest.mark.parametrize('fs,comp', [('squashfs', 'gzip'), ('squashfs', 'xz'), ('squashfs', 'lzma'),
                                     ('squashfs', 'lz4'), ('erofs', None)])
def test_reads_files_dirs_and_symlinks_in_place(tree, tmp_path, fs, comp, build_image):
    img = build_image(tree, tmp_path / 'img.raw', fs, comp)
    with Opened(img) as o:
        assert (o.layout.container, o.layout.fstype, o.layout.compression) == ('filesystem', fs, comp or 'none')
        r = o.tree()
        assert r.read_file(REL, 4096) == b'ID=_any\n'
        assert r.read_file('usr/share/foo/big', 1 << 20) == BIG
        assert r.read_file('usr/share/foo/text', 1 << 20) == b'compressible text\n' * 5000 or fs == 'erofs'
        assert r.read_file('/usr/share/foo/deep/er/file', 100) == b'deep\n'
        assert r.read_file('usr/share/foo/rel-link', 100) == b'ID=_any\n'
        assert r.list_dir('usr/share/foo/abs-link/extension-release.d') == ['extension-release.foo']
        assert r.read_file('usr/share/foo/escape', 100) == b'ID=_any\n', 'absolute targets and .. stay in the image'
        assert r.is_dir('usr') and not r.is_dir('opt') and not r.is_dir(REL)
        assert sorted(r.list_dir('usr/share/foo')) == ['abs-link', 'big', 'deep', 'escape', 'rel-link', 'text']
        with pytest.raises(imagefs.NotFound):
            r.read_file('usr/missing', 10)
        with pytest.raises(imagefs.ImageError, match='more than the 10 allowed'):
            r.read_file('usr/share/foo/big', 10)
        with pytest.raises(imagefs.ImageError, match='not a regular file'):
            r.read_file('usr/share', 10)


@pytest.mark.parametrize('comp', ['zstd', 'lzo'])
def test_kernel_only_squashfs_compression_needs_a_mount(tree, tmp_path, comp, build_image):
    try:
        img = build_image(tree, tmp_path / 'img.raw', 'squashfs', comp)
    except Exception:  # pylint: disable=broad-except
        pytest.skip('mksquashfs here cannot write %s' % comp)
    with Opened(img) as o:
        assert o.layout.compression == comp
        with pytest.raises(imagefs.NeedsMount, match=comp):
            o.tree()


def test_compressed_erofs_file_needs_a_mount(tree, tmp_path, build_image):
    with Opened(build_image(tree, tmp_path / 'img.raw', 'erofs', 'lz4')) as o:
        assert o.layout.compression == 'lz4'
        r = o.tree()
        assert r.read_file('usr/share/foo/big', 1 << 20) == BIG       # incompressible: stored as it is
        with pytest.raises(imagefs.NeedsMount, match='compressed'):
            r.read_file('usr/share/foo/text', 1 << 20)


def test_symlink_loop_in_image(tmp_path, make_tree, build_image):
    t = tmp_path / 't'
    make_tree(t, 'foo')
    os.symlink('b', t / 'a')
    os.symlink('a', t / 'b')
    with Opened(build_image(t, tmp_path / 'img.raw')) as o:
        with pytest.raises(imagefs.ImageError, match='too many levels'):
            o.tree().read_file('a', 10)


@pytest.mark.parametrize('fs', ['squashfs', 'erofs'])
def test_truncated_images_raise_image_error(tree, tmp_path, fs, build_image):
    data = open(build_image(tree, tmp_path / 'img.raw', fs), 'rb').read()
    for cut in (len(data) // 2, len(data) // 8, 1100, 100):
        (tmp_path / 'cut.raw').write_bytes(data[:cut])
        try:
            with Opened(str(tmp_path / 'cut.raw')) as o:
                o.tree().read_file('usr/share/foo/big', 1 << 20)
        except imagefs.ImageError:
            continue
        pytest.fail('a %s image cut at %d bytes read back whole' % (fs, cut))


def test_random_junk_only_raises_image_errors(tmp_path):
    for seed in range(30):
        blob = bytearray(os.urandom(8192))
        if seed % 2:
            blob[0:4] = (0x73717368).to_bytes(4, 'little')     # squashfs magic, garbage after
            blob[28:30] = (4).to_bytes(2, 'little')
            blob[20:22] = (1 + seed % 5).to_bytes(2, 'little')
        else:
            blob[1024:1028] = (0xE0F5E1E2).to_bytes(4, 'little')  # erofs magic
            blob[1036] = 12
            blob[1104:1108] = b'\0\0\0\0'
        p = tmp_path / ('j%d.raw' % seed)
        p.write_bytes(bytes(blob))
        try:
            with Opened(str(p)) as o:
                o.tree().read_file(REL, 4096)
        except imagefs.ImageError:
            pass


def test_unknown_content(tmp_path):
    (tmp_path / 'junk.raw').write_bytes(b'hello' * 500)
    with pytest.raises(imagefs.ImageError, match='unknown magic'):
        Opened(str(tmp_path / 'junk.raw'))


# ---------------------------------------------------------------------------- probing
def test_probe_names_the_file_systems(tmp_path):
    def probed(blob):
        p = tmp_path / 'p.raw'
        p.write_bytes(blob)
        fd = os.open(p, os.O_RDONLY)
        try:
            return probe.fstype(imagefs.Source(fd))
        finally:
            os.close(fd)
    ext = bytearray(4096)
    ext[1080:1082] = b'\x53\xef'
    assert probed(bytes(ext)) == 'ext2'
    ext[1120] = 0x40                                    # incompat: extents
    assert probed(bytes(ext)) == 'ext4'
    assert probed(b'XFSB' + bytes(8192)) == 'xfs'
    assert probed(bytes(0x10040) + b'_BHRfS_M' + bytes(64)) == 'btrfs'
    assert probed(b'LUKS\xba\xbe' + bytes(4096)) == 'crypto_LUKS'
    assert probed(bytes(8192)) is None


@pytest.mark.parametrize('fs,ok', [('ext4', True), ('btrfs', True), ('xfs', True), ('vfat', True), ('ext2', False),
                                   ('ext3', False), ('crypto_LUKS', False)])
def test_file_systems_systemd_allows(fs, ok, monkeypatch):
    monkeypatch.delenv('SYSTEMD_DISSECT_FILE_SYSTEMS', raising=False)
    if ok:
        partition.check_fstype(fs)
    else:
        with pytest.raises(imagefs.UnsupportedImage, match='LUKS' if fs == 'crypto_LUKS' else 'does not mount'):
            partition.check_fstype(fs)
    monkeypatch.setenv('SYSTEMD_DISSECT_FILE_SYSTEMS', 'ext2:erofs')
    partition.check_fstype('ext2')
    with pytest.raises(imagefs.UnsupportedImage, match='SYSTEMD_DISSECT_FILE_SYSTEMS'):
        partition.check_fstype('ext4')


# ---------------------------------------------------------------------------- GPT
def ddi(path, parts, ss=512):
    """A GPT disk image of ``parts``: (type, label, data[, flags, uuid])."""
    gptimage.write(path, [gptimage.Part(*p) for p in parts], ss)
    return str(path)


@pytest.fixture(scope='module')
def erofs_of(tmp_path_factory, make_tree, build_image):
    made = {}

    def get(name, cls='sysext', release='ID=_any\n'):
        key = (name, cls, release)
        if key not in made:
            d = tmp_path_factory.mktemp('t')
            make_tree(d, name, cls=cls, release=release, files={'opt/%s/x' % name: name})
            made[key] = open(build_image(d, d / 'i.raw', 'erofs'), 'rb').read()
        return made[key]
    return get


def test_gpt_root_partition(tmp_path, erofs_of):
    img = ddi(tmp_path / 'a.raw', [(ROOT, 'root-x86-64', erofs_of('foo'))])
    with Opened(img) as o:
        lay = o.layout
        assert (lay.container, lay.fstype, lay.partition.designator, lay.partition.number) == ('gpt', 'erofs', 'root', 1)
        assert lay.protection == 'unprotected' and lay.roothash is None
        with imagefs.open_tree(o.src, lay, img) as t:
            assert t.read_file(REL, 100) == b'ID=_any\n' and t.is_dir('opt')
        assert imagefs.Layout.from_json(lay.to_json()) == lay


@pytest.mark.parametrize('ss', [512, 4096])
def test_gpt_sector_sizes(tmp_path, erofs_of, ss):
    with Opened(ddi(tmp_path / 'a.raw', [(ROOT, 'r', erofs_of('foo'))], ss)) as o:
        assert o.layout.partition.designator == 'root'


def test_gpt_usr_partition_alone_is_mounted_at_usr(tmp_path, erofs_of, make_tree, build_image):
    d = tmp_path / 'u'
    make_tree(d, 'foo', release='ID=_any\n')
    usr_only = tmp_path / 'usr.raw'
    import subprocess
    subprocess.run(['mkfs.erofs', '--quiet', '--all-root', str(usr_only), str(d / 'usr')], check=True, capture_output=True)
    img = ddi(tmp_path / 'a.raw', [(USR, 'usr-x86-64', usr_only.read_bytes())])
    with Opened(img) as o:
        assert o.layout.partition.designator == 'usr'
        with imagefs.open_tree(o.src, o.layout, img) as t:
            assert t.list_dir('/') == ['usr'] and t.read_file(REL, 100) == b'ID=_any\n'
    with pytest.raises(imagefs.ImageError, match='no root partition'):
        Opened(img, 'confext')


def test_gpt_partition_choice(tmp_path, erofs_of):
    old, new = erofs_of('foo', release='ID=_any\nVERSION=1\n'), erofs_of('foo', release='ID=_any\nVERSION=2\n')
    x86 = gpt.TYPES['x86'][0]
    arm = gpt.TYPES['arm64'][0]
    cases = [
        ([(x86, 'v9', old), (ROOT, 'v1', new)], 2),                # native beats secondary, whatever the label
        ([(arm, 'v9', old), (x86, 'v1', new)], 2),                 # secondary beats a foreign one
        ([(arm, 'foreign', new)], 1),                              # a foreign one is still used
        ([(ROOT, 'os_1.9', old), (ROOT, 'os_1.10', new)], 2),      # the newest label wins
        ([(ROOT, 'same', new), (ROOT, 'same', old)], 1),           # the first on a tie
        ([(ROOT, '_empty', old), (ROOT, 'v1', new)], 2),           # _empty is passed over
        ([(ROOT, 'v9', old, gpt.FLAG_NO_AUTO), (ROOT, 'v1', new)], 2),   # so is no-auto
        ([(partition.LINUX_GENERIC, 'data', new)], 1),             # a single generic partition is the root
    ]
    for parts, number in cases:
        with Opened(ddi(tmp_path / 'c.raw', parts)) as o:
            assert o.layout.partition.number == number, parts


@pytest.mark.parametrize('parts,why', [
    ([('generic', 'a'), ('generic', 'b')], 'Linux generic partitions'),
    ([('home', 'h')], 'no root or usr partition'),
    ([('root-verity', 'v')], 'verity hash partition .* without a root data partition'),
    ([('root', 'r'), ('root-verity-sig', 's')], 'signature partition .* without a root verity hash partition'),
    ([('root', 'r'), ('root-verity', 'v'), ('usr', 'u')], 'separate usr partition'),
    ([('root', 'r'), ('arm-usr', 'u')], 'different architectures'),
])
def test_gpt_refusals(tmp_path, erofs_of, parts, why):
    types = {'generic': partition.LINUX_GENERIC, 'home': '933ac7e1-2eb4-4f13-b844-0e14e2aef915', 'root': ROOT,
             'root-verity': ROOT_VERITY, 'root-verity-sig': ROOT_SIG, 'usr': USR, 'arm-usr': gpt.TYPES['arm64'][1]}
    with pytest.raises(imagefs.ImageError, match=why):
        Opened(ddi(tmp_path / 'r.raw', [(types[t], label, erofs_of('foo')) for t, label in parts]))


def test_gpt_verity_partitions_and_root_hash(tmp_path, erofs_of):
    data_uuid, verity_uuid = str(uuid.uuid4()), str(uuid.uuid4())
    img = ddi(tmp_path / 'v.raw', [(ROOT, 'r', erofs_of('foo'), 0, data_uuid),
                                   (ROOT_VERITY, 'rv', b'hash tree', 0, verity_uuid)])
    with Opened(img) as o:
        assert o.layout.protection == 'verity' and o.layout.verity.number == 2
        assert o.layout.roothash == uuid.UUID(data_uuid).hex + uuid.UUID(verity_uuid).hex   # from the UUIDs
    sig = b'{"rootHash": "' + b'ab' * 32 + b'", "signature": "AAAA"}' + b'\0' * 100
    img = ddi(tmp_path / 's.raw', [(ROOT, 'r', erofs_of('foo')), (ROOT_VERITY, 'rv', b'hash tree'), (ROOT_SIG, 's', sig)])
    with Opened(img) as o:
        assert o.layout.protection == 'signed' and o.layout.roothash == 'ab' * 32


@pytest.mark.parametrize('corrupt,why', [
    (lambda b: b[:512] + b'EFI PART' + b'\0' * 84 + b[604:], 'no valid GPT header'),
    (lambda b: b[:600] + bytes([b[600] ^ 0xFF]) + b[601:], 'no valid GPT header at sector 1'),
    (lambda b: b[:1024] + bytes([b[1024] ^ 0xFF]) + b[1025:], 'fail their CRC32'),
])
def test_gpt_corrupt_primary_falls_back_to_the_backup_or_fails(tmp_path, erofs_of, corrupt, why):
    good = open(ddi(tmp_path / 'g.raw', [(ROOT, 'r', erofs_of('foo'))]), 'rb').read()
    bad = corrupt(good)
    (tmp_path / 'b.raw').write_bytes(bad)
    with Opened(str(tmp_path / 'b.raw')) as o:            # the backup header at the end is intact
        assert o.layout.partition.designator == 'root'
    (tmp_path / 'b.raw').write_bytes(bad[:-512])           # ... and now it is gone too
    with pytest.raises(imagefs.ImageError, match=why):
        Opened(str(tmp_path / 'b.raw'))


def test_gpt_partition_outside_the_image(tmp_path, erofs_of):
    img = ddi(tmp_path / 'o.raw', [(ROOT, 'r', erofs_of('foo'))])
    with open(img, 'r+b') as f:
        f.truncate(gptimage.MIB + 2048)                      # the partition starts at 1 MiB and is 4 KiB
    with pytest.raises(imagefs.ImageError, match='usable area end at sector .* beyond the image.s 2052 sectors'):
        Opened(img)


# ---------------------------------------------------------------------------- lz4
def test_lz4_literals_and_overlapping_matches():
    # token 0x1F: 1 literal, match of 15+4+10; offset 1 repeats the literal; then the last
    # sequence: 5 literals (the block format's end rules: lz4 itself refuses shorter tails)
    block = bytes([0x1F]) + b'a' + b'\x01\x00' + bytes([10]) + bytes([0x50]) + b'end!\n'
    assert lz4.decompress(block, 100) == b'a' * (1 + 29) + b'end!\n'
    assert lz4.decompress(block, 35) == b'a' * 30 + b'end!\n'
    with pytest.raises(lz4.LZ4Error, match='more than 29 bytes'):
        lz4.decompress(block, 29)
    with pytest.raises(lz4.LZ4Error, match='match at 5 ends in the last 5 bytes'):
        lz4.decompress(block, 34)
    with pytest.raises(lz4.LZ4Error, match='must be the last .* but the block goes on'):
        lz4.decompress(block, 12)
    for bad, why in ((b'', 'empty'), (bytes([0x1F]) + b'a' + b'\x05\x00', 'must be the last'),
                     (bytes([0xF0]) + b'\xff', 'literal length at 1'), (bytes([0x40]) + b'ab', 'must be the last'),
                     (bytes([0x13, 0, 0, 0, 0x50]) + bytes(5), 'match offset 0 '),
                     (bytes([0x1F]) + b'a' + b'\x01\x00' + b'\xff' * 9 + b'abc', 'length at 12 runs into')):
        with pytest.raises(lz4.LZ4Error, match=why):
            lz4.decompress(bad, 100)
    assert lz4.decompress(b'\x00', 0) == b''
