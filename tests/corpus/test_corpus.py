# -*- coding: utf-8 -*-
"""The bad-input corpus: crafted images, release files and metadata, each with its expected
outcome. Every case must give a clear message naming the file (a reason on the image, a
problem on the hierarchy, or an EngineError), never another exception, and must leave the
root exactly as it was. The cases are built at test time from the table below."""

import os
import shutil
import subprocess

import pytest

from lib import gptimage, squashxattr
from lib.treedigest import tree_digest

R = 'usr/lib/extension-release.d/extension-release.'


def tree(base, name, release=b'ID=_any\n', files=None, cls='sysext'):
    rel = R if cls == 'sysext' else 'etc/extension-release.d/extension-release.'
    os.makedirs(os.path.join(base, os.path.dirname(rel)), exist_ok=True)
    if release is not None:
        with open(os.path.join(base, rel + name), 'wb') as f:
            f.write(release)
    for path, data in (files or {}).items():
        os.makedirs(os.path.dirname(os.path.join(base, path)), exist_ok=True)
        with open(os.path.join(base, path), 'wb') as f:
            f.write(data)
    return base


def squash(src, dst, *extra):
    subprocess.run(['mksquashfs', src, dst, '-quiet', '-noappend', '-all-root'] + list(extra), check=True,
                   capture_output=True)
    return dst


def erofs(src, dst, *extra):
    subprocess.run(['mkfs.erofs', '--quiet', '--all-root'] + list(extra) + [dst, src], check=True, capture_output=True)
    return dst


# --- case builders: each gets (root, work) and returns nothing -------------------------------
def rel_dir(data):
    return lambda root, work: tree(os.path.join(root, 'var/lib/extensions/bad'), 'bad', data)


def rel_sq(data, *extra):
    def make(root, work):
        squash(tree(os.path.join(work, 't'), 'bad', data), os.path.join(root, 'var/lib/extensions/bad.raw'), *extra)
    return make


def image_bytes(fn, fs='squashfs'):
    """A valid image with a 100-200 KB payload, then ``fn`` applied to its bytes."""
    def make(root, work):
        t = tree(os.path.join(work, 't'), 'bad', files={'usr/share/p': os.urandom(200000 if fs == 'squashfs' else 100000)})
        src = (squash if fs == 'squashfs' else erofs)(t, os.path.join(work, 'ok.raw'))
        with open(src, 'rb') as f:
            data = f.read()
        with open(os.path.join(root, 'var/lib/extensions/bad.raw'), 'wb') as f:
            f.write(fn(data))
    return make


def ddi(kinds, fn=lambda d: d, release=b'ID=_any\n'):
    """A GPT disk image with a squashfs in each partition of ``kinds`` (Discoverable Partitions
    Specification designators of x86-64, or a type GUID), then ``fn`` applied to its bytes."""
    def make(root, work):
        import uuid
        from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import gpt
        data = open(squash(tree(os.path.join(work, 't'), 'bad', release), os.path.join(work, 'p.sq')), 'rb').read()
        parts = [gptimage.Part(gpt.TYPES['x86-64'][gpt.DESIGNATORS.index(k)] if k in gpt.DESIGNATORS else k, k[:30], data,
                               0, str(uuid.UUID(int=i + 1))) for i, k in enumerate(kinds)]
        img, _offsets = gptimage.image(parts, disk_uuid=str(uuid.UUID(int=99)))
        with open(os.path.join(root, 'var/lib/extensions/bad.raw'), 'wb') as f:
            f.write(fn(bytes(img)))
    return make


def flip(*offsets):
    """Flip one byte at each offset (negative: from the end)."""
    def fn(d):
        b = bytearray(d)
        for o in offsets:
            b[o] ^= 0xff
        return bytes(b)
    return fn


GENERIC = '0fc63daf-8483-4772-8e79-3d69d8477de4'
ESP = 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b'


def raw_bytes(fn):
    return image_bytes(fn, 'squashfs')


def erofs_bytes(fn):
    return image_bytes(fn, 'erofs')


def _garbage_lz4(root, work):
    """An lz4 squashfs whose compressed metadata blocks are overwritten with noise."""
    t = tree(os.path.join(work, 't'), 'bad', files={'usr/share/p': os.urandom(100000)})
    data = bytearray(open(squash(t, os.path.join(work, 'ok.raw'), '-comp', 'lz4'), 'rb').read())
    inode_table = int.from_bytes(data[64:72], 'little')
    data[inode_table:] = os.urandom(len(data) - inode_table)
    with open(os.path.join(root, 'var/lib/extensions/bad.raw'), 'wb') as f:
        f.write(bytes(data))


def xattr_ool(variant):
    """bad.raw, a renamed image: its only release file is extension-release.orig, with
    user.extension-release.strict stored out of line and patched (tests/lib/squashxattr.py)."""
    def make(root, work):
        t = tree(os.path.join(work, 't'), 'orig', files={'usr/share/p': b'payload\n'})
        squashxattr.build(t, R + 'orig', os.path.join(root, 'var/lib/extensions/bad.raw'), variant)
    return make


def symlink(target, name='bad'):
    return lambda root, work: os.symlink(target, os.path.join(root, 'etc/extensions', name))


def release_link(target):
    def make(root, work):
        d = os.path.join(root, 'var/lib/extensions/bad')
        tree(d, 'bad', None)
        os.symlink(target, os.path.join(d, R + 'bad'))
    return make


def named(fname):
    def make(root, work):
        with open(os.path.join(root, 'var/lib/extensions', fname), 'wb') as f:
            f.write(b'junk')
    return make


def meta(origin_bytes, cls='sysext'):
    def make(root, work):
        h = os.path.join(root, 'usr' if cls == 'sysext' else 'etc')
        m = os.path.join(h, '.systemd-sysext' if cls == 'sysext' else '.systemd-confext')
        os.makedirs(m)
        st = os.stat(h)
        with open(os.path.join(m, 'dev'), 'w') as f:
            f.write('%d:%d\n' % (os.major(st.st_dev), os.minor(st.st_dev)))
        with open(os.path.join(m, 'extensions' if cls == 'sysext' else 'confexts'), 'w') as f:
            f.write('bad\n')
        if origin_bytes is not None:
            with open(os.path.join(m, 'origin'), 'wb') as f:
                f.write(origin_bytes)
    return make


def os_release(data):
    def make(root, work):
        os.unlink(os.path.join(root, 'etc/os-release'))
        with open(os.path.join(root, 'usr/lib/os-release'), 'wb') as f:
            f.write(data)
    return make


# expected: ('image', reason words) | ('ignored', words) | ('problem', words) | ('error', words) | ('ok', None)
CASES = {
    'binary-junk-release': (rel_dir(os.urandom(64) + b'\xff'), 'image', 'not valid UTF-8'),
    'nul-bytes-release': (rel_dir(b'ID=_any\n\0\0'), 'image', 'NUL'),
    # systemd 262 reads release files with read_full_stream() (up to READ_FULL_BYTES_MAX, 64 MiB)
    '10mb-release': (rel_dir(b'ID=_any\n' + b'#' * (10 * 1024 * 1024)), 'compatible', None),
    '70mb-release': (rel_dir(b'ID=_any\n' + b'#' * (70 * 1024 * 1024)), 'image', 'larger than'),
    'empty-release': (rel_dir(b''), 'image', 'carries no release data'),
    'comment-only-release': (rel_dir(b'# nothing\n'), 'image', 'carries no release data'),
    # env-file.c: a quote left open takes the rest of the file into the value, and is no error
    'unterminated-double-quote': (rel_dir(b'ID="_any\n'), 'image', "for OS '_any\n'"),
    'unterminated-single-quote': (rel_dir(b"ID='_any\n"), 'image', "for OS '_any\n'"),
    'unterminated-unused-value': (rel_dir(b'ID=_any\nDESCRIPTION="x\n'), 'compatible', None),
    'squashfs-unterminated-unused-value': (rel_sq(b"ID=_any\nDESCRIPTION='x"), 'compatible', None),
    'missing-release': (rel_dir(None), 'image', 'has no usr/lib/extension-release.d'),
    'wrong-id': (rel_dir(b'ID=fedora\nVERSION_ID=12\n'), 'image', "for OS 'fedora'"),
    'no-id': (rel_dir(b'VERSION_ID=12\n'), 'image', 'does not contain ID'),
    'wrong-version': (rel_dir(b'ID=debian\nVERSION_ID=11\n'), 'image', "OS version '11'"),
    'missing-version': (rel_dir(b'ID=debian\n'), 'image', 'does not contain VERSION_ID'),
    'wrong-arch': (rel_dir(b'ID=_any\nARCHITECTURE=s390x\n'), 'image', "architecture 's390x'"),
    'scope-initrd-only': (rel_dir(b'ID=_any\nSYSEXT_SCOPE=initrd\n'), 'image', 'not suitable for scope system'),
    'scope-portable-only': (rel_dir(b'ID=_any\nSYSEXT_SCOPE=portable\n'), 'image', 'not suitable for scope'),
    'release-is-a-directory': (lambda root, work: os.makedirs(os.path.join(root, 'var/lib/extensions/bad', R + 'bad')),
                               'image', 'not a regular file'),
    'release-symlink-escapes': (release_link('/../../../../../etc/os-release'), 'image', 'has no'),
    'release-symlink-loop': (release_link('extension-release.bad'), 'image', 'bad'),
    'release-symlink-dangling': (release_link('/nowhere'), 'image', 'has no'),
    'squashfs-binary-release': (rel_sq(b'\0\xff' * 50), 'image', 'not valid UTF-8'),
    'squashfs-huge-release': (rel_sq(b'ID=_any\n' + b'A=b\n' * 200000), 'compatible', None),
    'squashfs-wrong-id': (rel_sq(b'ID=arch\n'), 'image', "for OS 'arch'"),
    # (read in place, and through a detached read-only mount: the release file is really read)
    'squashfs-lz4': (rel_sq(b'ID=arch\n', '-comp', 'lz4'), 'image', "for OS 'arch'"),
    'squashfs-zstd': (rel_sq(b'ID=arch\n', '-comp', 'zstd'), 'image', "for OS 'arch'"),
    'squashfs-lz4-garbage-blocks': (_garbage_lz4, 'image', 'bad.raw'),
    'squashfs-truncated-half': (raw_bytes(lambda d: d[:len(d) // 2]), 'image', 'corrupt'),
    'squashfs-truncated-header': (raw_bytes(lambda d: d[:60]), 'image', 'beyond the end'),
    'squashfs-garbage-tables': (raw_bytes(lambda d: d[:96] + os.urandom(len(d) - 96)), 'image', 'bad.raw'),
    # user.extension-release.strict stored out of line, read as the kernel reads it; an xattr that
    # cannot be read passes its file over (systemd: debug message only), and the reason says so
    'squashfs-xattr-out-of-line-false': (xattr_ool('false'), 'compatible', None),
    'squashfs-xattr-out-of-line-short-reference': (xattr_ool('short-reference'), 'compatible', None),
    'squashfs-xattr-out-of-line-value-short': (xattr_ool('value-short'), 'image',
                                               'extension-release.orig in it was passed over, as systemd passes it '
                                               'over: its user.extension-release.strict xattr cannot be read (corrupt'),
    'squashfs-xattr-out-of-line-reference-beyond': (xattr_ool('reference-beyond'), 'image',
                                                    'xattr cannot be read (corrupt squashfs metadata offset)'),
    'squashfs-bad-version': (raw_bytes(lambda d: d[:28] + b'\x09\x00' + d[30:]), 'image', 'version 9'),
    'erofs-truncated': (erofs_bytes(lambda d: d[:2048]), 'image', 'bad.raw'),
    'erofs-garbage-meta': (erofs_bytes(lambda d: d[:1152] + os.urandom(len(d) - 1152)), 'image', 'bad.raw'),
    'erofs-bad-blocksize': (erofs_bytes(lambda d: d[:1036] + b'\x03' + d[1037:]), 'image', 'block size bits'),
    'random-bytes-raw': (raw_bytes(lambda d: os.urandom(65536)), 'image', 'unknown magic'),
    'empty-raw': (raw_bytes(lambda d: b''), 'image', 'unknown magic'),
    'gpt-raw': (raw_bytes(lambda d: b'\0' * 512 + b'EFI PART' + b'\0' * 4000), 'image', 'corrupt GPT partition table'),
    'gpt-both-headers-bad-crc': (ddi(['root'], flip(512 + 16, -512 + 16)), 'image', 'no valid GPT header at sector 1'),
    'gpt-primary-bad-backup-used': (ddi(['root'], flip(512 + 16), b'ID=arch\n'), 'image', "for OS 'arch'"),
    'gpt-entries-bad-crc': (ddi(['root'], flip(1024 + 40, -512 * 33 + 40)), 'image', 'corrupt GPT partition table'),
    'gpt-truncated': (ddi(['root'], lambda d: d[:len(d) // 2]), 'image', 'is the image truncated?'),
    'gpt-no-root-or-usr': (ddi([ESP]), 'image', 'holds no root or usr partition'),
    'gpt-two-generic': (ddi([GENERIC, GENERIC]), 'image', '2 Linux generic partitions'),
    'gpt-verity-without-data': (ddi(['usr', 'root-verity']), 'image', 'verity hash partition'),
    'gpt-root-garbage-fs': (ddi(['root'], lambda d: d[:1 << 20] + os.urandom(4096) + d[(1 << 20) + 4096:]), 'image',
                            'bad.raw'),
    'name-with-dotdot': (named('..raw'), 'ignored', 'invalid name'),
    'name-temp-file': (named('.#bad.raw'), 'ignored', 'invalid name'),
    'name-control-char': (named('bad\x07.raw'), 'ignored', 'invalid name'),
    'name-no-raw-suffix': (named('bad.img'), 'ignored', 'missing .raw suffix'),
    'dangling-symlink': (symlink('/nowhere/at/all'), 'ignored', 'dangling symlink'),
    # discover-image.c: any error of chaseat() but ENOENT fails the whole discovery
    'symlink-loop': (lambda root, work: (symlink('loop2', 'loop1')(root, work), symlink('loop1', 'loop2')(root, work)),
                     'refused', 'symlink loop'),
    'symlink-through-a-file': (symlink('/etc/os-release/x'), 'refused', 'bad'),
    'symlink-to-fifo': (lambda root, work: (os.mkfifo(os.path.join(work, 'fifo')),
                                            symlink(os.path.join(os.path.relpath(work, root), 'fifo'))(root, work)),
                        'ignored', 'dangling'),
    'versioned-dir': (lambda root, work: os.makedirs(os.path.join(root, 'var/lib/extensions/bad.v')), 'ignored', '.v'),
    'origin-truncated': (meta(b'{"mutable": {"mode": "no"}, "extensions": {"bad": {"pa'), 'problem', 'not valid JSON'),
    'origin-not-json': (meta(b'\x00\x01\x02 binary'), 'problem', 'not valid JSON'),
    'origin-not-object': (meta(b'[1, 2, 3]'), 'problem', 'does not hold an origin object'),
    'origin-no-path': (meta(b'{"extensions": {"bad": {"mtime": 1}}}'), 'problem', 'has no "path"'),
    'origin-bad-mutable': (meta(b'{"extensions": {}, "mutable": []}'), 'problem', '"mutable" is not an object'),
    'origin-huge': (meta(b' ' * (5 * 1024 * 1024)), 'problem', 'larger than'),
    'origin-not-utf8': (meta(b'{"extensions": {}}\xff'), 'problem', 'not UTF-8'),
    'origin-deeply-nested': (meta(b'{"mutable": {"mode": "no"}, "extensions": {"bad": {"path": "/x", "n": '
                                  + b'[' * 200000 + b']' * 200000 + b'}}}'), 'problem', 'nested too deeply'),
    'confext-origin-truncated': (meta(b'{"exten', 'confext'), 'problem', 'not valid JSON'),
    'os-release-binary': (os_release(b'\0\xff\xfe'), 'error', 'os-release'),
    'os-release-missing': (lambda root, work: (os.unlink(os.path.join(root, 'etc/os-release')),
                                               os.unlink(os.path.join(root, 'usr/lib/os-release'))), 'error', 'no os-release'),
}


@pytest.fixture
def root(tmp_path):
    r = tmp_path / 'root'
    for d in ('usr/lib', 'opt', 'etc/extensions', 'run/extensions', 'var/lib/extensions', 'run/confexts',
              'var/lib/confexts'):
        (r / d).mkdir(parents=True, exist_ok=True)
    (r / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
    os.symlink('../usr/lib/os-release', r / 'etc/os-release')
    tree(str(r / 'var/lib/extensions/good'), 'good')
    return r


def test_corpus_is_big_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize('case', sorted(CASES))
def test_case(root, tmp_path, case, monkeypatch):
    from ansible_collections.tucked.sysext.plugins.module_utils import engine
    from lib.simulated import simulate_merges
    build, kind, words = CASES[case]
    if kind == 'problem':
        simulate_merges(monkeypatch)     # the metadata cases stand for a merged hierarchy
    work = tmp_path / 'work'
    work.mkdir()
    if not shutil.which('mksquashfs') or not shutil.which('mkfs.erofs'):
        pytest.fail('squashfs-tools and erofs-utils are needed (scripts/bootstrap.sh debs)')
    build(str(root), str(work))
    before = tree_digest(str(root), contents=False)
    if kind == 'error':
        with pytest.raises(engine.EngineError) as e:
            engine.gather(str(root))
        assert words in str(e.value) and str(root) in str(e.value)
    else:
        facts = engine.facts(engine.gather(str(root)))
        if kind == 'compatible':
            bad = [i for i in facts['images'] if i['name'] == 'bad']
            assert len(bad) == 1 and bad[0]['compatible'] is True, bad
            assert facts['classes']['sysext']['after'] == ['bad', 'good']
        elif kind == 'image':
            bad = [i for i in facts['images'] if i['name'] == 'bad' and i['type'] != 'ignored']
            assert len(bad) == 1 and bad[0]['compatible'] is False, facts['images']
            assert words in bad[0]['reason'], bad[0]['reason']
            assert 'bad' in bad[0]['reason'], 'the message names the image'
            assert facts['classes']['sysext']['after'] == ['good'], 'the good image is still used'
        elif kind == 'refused':
            from ansible_collections.tucked.sysext.plugins.module_utils import refresh
            ign = [i for i in facts['images'] if i['type'] == 'ignored' and words in i['reason']]
            assert ign and ign[0]['blocks_merge'] is True, facts['images']
            with pytest.raises(engine.EngineError) as e:
                refresh.run(refresh.Options(root=str(root), check_mode=True, reload=False))
            assert words in str(e.value) and 'nothing was changed' in str(e.value), str(e.value)
            refresh.run(refresh.Options(root=str(root), state='unmerged', check_mode=True, reload=False))
        elif kind == 'ignored':
            ign = [i for i in facts['images'] if i['type'] == 'ignored']
            assert ign and any(words in i['reason'] for i in ign), ign
        elif kind == 'problem':
            probs = [p for h in facts['hierarchies'].values() for p in h['problems']]
            assert any(words in p and ('origin' in p) for p in probs), probs
            assert any(c['needs_refresh'] for c in facts['classes'].values())
    assert tree_digest(str(root), contents=False) == before, 'nothing on the host changed'
