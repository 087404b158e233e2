# -*- coding: utf-8 -*-
"""imagefs.py: reading files out of squashfs and erofs images without mounting them."""

import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import imagefs

BIG = os.urandom(300 * 1024)
REL = 'usr/lib/extension-release.d/extension-release.foo'


@pytest.fixture(scope='module')
def tree(tmp_path_factory, make_tree):
    t = tmp_path_factory.mktemp('tree')
    make_tree(t, 'foo', files={'usr/share/foo/big': BIG, 'usr/share/foo/deep/er/file': 'deep\n'})
    os.symlink('../../lib/extension-release.d/extension-release.foo', t / 'usr/share/foo/rel-link')
    os.symlink('/usr/lib', t / 'usr/share/foo/abs-link')
    os.symlink('/../../../../usr/lib/extension-release.d/extension-release.foo', t / 'usr/share/foo/escape')
    return t


def open_reader(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return imagefs.open_image(fd), fd
    except BaseException:
        os.close(fd)
        raise


@pytest.mark.parametrize('fs,comp', [('squashfs', 'gzip'), ('squashfs', 'xz'), ('squashfs', 'lzma'), ('erofs', None)])
def test_reads_files_dirs_and_symlinks(tree, tmp_path, fs, comp, build_image):
    img = build_image(tree, tmp_path / 'img.raw', fs, comp)
    r, fd = open_reader(img)
    try:
        assert r.read_file(REL, 4096) == b'ID=_any\n'
        assert r.read_file('usr/share/foo/big', 1 << 20) == BIG
        assert r.read_file('/usr/share/foo/deep/er/file', 100) == b'deep\n'
        assert r.read_file('usr/share/foo/rel-link', 100) == b'ID=_any\n'
        assert r.list_dir('usr/share/foo/abs-link/extension-release.d') == ['extension-release.foo']
        assert r.read_file('usr/share/foo/escape', 100) == b'ID=_any\n', 'absolute targets and .. stay in the image'
        assert r.is_dir('usr') and not r.is_dir('opt') and not r.is_dir(REL)
        assert sorted(r.list_dir('usr/share/foo')) == ['abs-link', 'big', 'deep', 'escape', 'rel-link']
        with pytest.raises(imagefs.NotFound):
            r.read_file('usr/missing', 10)
        with pytest.raises(imagefs.ImageError, match='more than the 10 allowed'):
            r.read_file('usr/share/foo/big', 10)
        with pytest.raises(imagefs.ImageError, match='not a regular file'):
            r.read_file('usr/share', 10)
    finally:
        os.close(fd)


@pytest.mark.parametrize('comp', ['lz4', 'zstd', 'lzo'])
def test_unsupported_squashfs_compression(tree, tmp_path, comp, build_image):
    try:
        img = build_image(tree, tmp_path / 'img.raw', 'squashfs', comp)
    except Exception:  # pylint: disable=broad-except
        pytest.skip('mksquashfs here cannot write %s' % comp)
    with pytest.raises(imagefs.UnsupportedImage, match=comp):
        open_reader(img)


def test_symlink_loop_in_image(tmp_path, make_tree, build_image):
    t = tmp_path / 't'
    make_tree(t, 'foo')
    os.symlink('b', t / 'a')
    os.symlink('a', t / 'b')
    r, fd = open_reader(build_image(t, tmp_path / 'img.raw'))
    try:
        with pytest.raises(imagefs.ImageError, match='too many levels'):
            r.read_file('a', 10)
    finally:
        os.close(fd)


@pytest.mark.parametrize('fs', ['squashfs', 'erofs'])
def test_truncated_images_raise_image_error(tree, tmp_path, fs, build_image):
    data = open(build_image(tree, tmp_path / 'img.raw', fs), 'rb').read()
    for cut in (len(data) // 2, len(data) // 8, 1100, 100):
        (tmp_path / 'cut.raw').write_bytes(data[:cut])
        try:
            r, fd = open_reader(str(tmp_path / 'cut.raw'))
        except imagefs.ImageError:
            continue
        try:
            r.read_file('usr/share/foo/big', 1 << 20)
        except imagefs.ImageError:
            pass
        else:
            pytest.fail('a %s image cut at %d bytes read back whole' % (fs, cut))
        finally:
            os.close(fd)


def test_random_junk_only_raises_image_errors(tmp_path):
    for seed in range(30):
        blob = bytearray(os.urandom(8192))
        if seed % 2:
            blob[0:4] = (0x73717368).to_bytes(4, 'little')     # squashfs magic, garbage after
            blob[28:30] = (4).to_bytes(2, 'little')
        else:
            blob[1024:1028] = (0xE0F5E1E2).to_bytes(4, 'little')  # erofs magic
            blob[1036] = 12
        p = tmp_path / ('j%d.raw' % seed)
        p.write_bytes(bytes(blob))
        try:
            r, fd = open_reader(str(p))
        except imagefs.ImageError:
            continue
        try:
            r.read_file(REL, 4096)
        except imagefs.ImageError:
            pass
        finally:
            os.close(fd)


def test_detect(tmp_path):
    (tmp_path / 'gpt.raw').write_bytes(b'\0' * 512 + b'EFI PART' + b'\0' * 600)
    with pytest.raises(imagefs.UnsupportedImage, match='GPT'):
        open_reader(str(tmp_path / 'gpt.raw'))
    (tmp_path / 'junk.raw').write_bytes(b'hello' * 500)
    with pytest.raises(imagefs.ImageError, match='unknown magic'):
        open_reader(str(tmp_path / 'junk.raw'))
