# -*- coding: utf-8 -*-
"""images.py: systemd's discovery rules and release-file lookup."""

import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import imagemeta, images
from ansible_collections.tucked.sysext.plugins.module_utils.images import discover, extract_name, image_name_is_valid


def names(d):
    return [i.name for i in d.images]


@pytest.mark.parametrize('name,ok', [('foo', True), ('.hidden', True), ('.#tmp', False), ('a/b', False),
                                     ('..', False), ('.', False), ('', False), ('bad\x01', False), ('x' * 256, False),
                                     ('spaces are ok', True)])
def test_image_name_is_valid(name, ok):
    assert image_name_is_valid(name) is ok


@pytest.mark.parametrize('name,ok', [('docker', True), ('docker-27.3.1', True), ('a.b_c', True), ('.hidden', False),
                                     ('a/b', False), ('x.raw', False), ('two words', False), ('tab\tx', False),
                                     ('', False), ('.#tmp', False), ('x' * 256, False)])
def test_plain_extension_name_is_what_sysext_image_and_sysext_build_take(name, ok):
    from ansible_collections.tucked.sysext.plugins.module_utils import buildrequest, storelayout
    assert images.plain_extension_name(name) is ok
    for module, error in ((storelayout, storelayout.StoreError), (buildrequest, buildrequest.BuildError)):
        if ok:
            module.check_name(name)
        else:
            with pytest.raises(error, match='invalid extension name'):
                module.check_name(name)


def test_extract_name():
    assert extract_name('foo.raw', 'sysext', ('.raw',)) == 'foo'
    assert extract_name('foo.sysext.raw', 'sysext', ('.raw',)) == 'foo'
    assert extract_name('foo.confext.raw', 'sysext', ('.raw',)) == 'foo.confext'
    assert extract_name('foo.confext', 'confext', None) == 'foo'
    assert extract_name('foo.img', 'sysext', ('.raw',)) is None
    assert extract_name('..raw', 'sysext', ('.raw',)) is None


def test_precedence_shadowing_and_order(root, make_tree):
    make_tree(root / 'var/lib/extensions/foo', 'foo')
    make_tree(root / 'etc/extensions/foo', 'foo')
    make_tree(root / 'run/extensions/bar', 'bar')
    make_tree(root / 'var/lib/extensions/e10', 'e10')
    make_tree(root / 'var/lib/extensions/e2', 'e2')
    d = discover(str(root), 'sysext')
    assert names(d) == ['bar', 'e2', 'e10', 'foo'], 'version order, like systemd'
    winner = d.images[-1]
    assert winner.entry == '/etc/extensions/foo' and winner.shadows == ['/var/lib/extensions/foo']
    assert any(i['reason'] == 'shadowed by /etc/extensions/foo' for i in d.ignored)


def test_kinds_and_suffixes(root, tmp_path, make_tree, build_image):
    make_tree(tmp_path / 't', 'sq')
    build_image(tmp_path / 't', root / 'var/lib/extensions/sq.sysext.raw')
    (root / 'var/lib/extensions/notraw.img').write_bytes(b'x')
    (root / 'var/lib/extensions/.#partial.raw').write_bytes(b'x')
    make_tree(root / 'var/lib/extensions/dir.sysext', 'dir')
    os.mkdir(root / 'var/lib/extensions/pick.v')
    d = discover(str(root), 'sysext')
    assert {(i.name, i.type) for i in d.images} == {('sq', 'raw'), ('dir', 'directory')}
    reasons = {i['entry']: i['reason'] for i in d.ignored}
    assert 'does not look like an image' in reasons['/var/lib/extensions/notraw.img']
    assert 'does not look like an image' in reasons['/var/lib/extensions/.#partial.raw']
    assert 'holds no usable directory named pick_VERSION' in reasons['/var/lib/extensions/pick.v']


def test_symlinks_resolve_inside_the_root(root, make_tree):
    make_tree(root / 'opt/store/bar-1', 'bar')
    os.symlink('/opt/store/bar-1', root / 'etc/extensions/bar')           # absolute: re-rooted
    os.symlink('../../opt/store/bar-1', root / 'run/extensions/rel')      # relative
    os.symlink('/nowhere', root / 'etc/extensions/dangling')
    os.symlink('l2', root / 'etc/extensions/l1')
    os.symlink('l1', root / 'etc/extensions/l2')
    d = discover(str(root), 'sysext')
    linked = next(i for i in d.images if i.name == 'bar')
    assert linked.path == '/opt/store/bar-1' and linked.host_path == str(root / 'opt/store/bar-1')
    assert next(i for i in d.images if i.name == 'rel').path == '/opt/store/bar-1'
    assert any('dangling symlink' in w and str(root / 'etc/extensions/dangling') in w for w in d.warnings)
    assert any('symlink loop' in w and 'l1' in w for w in d.warnings)


def test_initrd_and_confext_dirs(root, make_tree):
    assert images.search_dirs(str(root), 'confext')[0] == '/run/confexts'
    assert '/.extra/sysext' not in images.search_dirs(str(root), 'sysext')
    (root / 'etc/initrd-release').write_text('')
    assert images.search_dirs(str(root), 'sysext')[-2:] == ('/.extra/sysext', '/.extra/global_sysext')
    make_tree(root / 'usr/lib/confexts/site', 'site', cls='confext')
    assert names(discover(str(root), 'confext')) == []   # not searched in an initrd
    (root / 'etc/initrd-release').unlink()
    assert names(discover(str(root), 'confext')) == ['site']


def load(root, name, sdir='var/lib/extensions'):
    d = discover(str(root), 'sysext')
    img = next(i for i in d.images if i.name == name)
    imagemeta.load(img, None, 'x86-64')
    return img


def test_release_found_and_provides(root, make_tree):
    make_tree(root / 'var/lib/extensions/foo', 'foo', release='ID=_any\nIMAGE_VERSION=1.2\n', files={'opt/foo/x': 'x'})
    img = load(root, 'foo')
    assert img.readable and img.release == {'ID': '_any', 'IMAGE_VERSION': '1.2'} and img.version == '1.2'
    assert img.provides == ('/usr', '/opt')


def _xattr_ok(path):
    try:
        os.setxattr(path, imagemeta.STRICT_XATTR, b'0')
        return True
    except OSError:
        return False


def test_renamed_image_falls_back_only_with_strict_false(root, make_tree):
    make_tree(root / 'var/lib/extensions/renamed', 'original')
    rel = root / 'var/lib/extensions/renamed/usr/lib/extension-release.d/extension-release.original'
    img = load(root, 'renamed')
    assert not img.readable and 'has no usr/lib/extension-release.d/extension-release.renamed' in img.reason
    if not _xattr_ok(str(rel)):
        pytest.skip('no user xattrs on this filesystem')
    os.setxattr(str(rel), imagemeta.STRICT_XATTR, b'false')
    img = load(root, 'renamed')
    assert img.readable and img.release_file.endswith('extension-release.original')
    os.setxattr(str(rel), imagemeta.STRICT_XATTR, b'true')
    assert not load(root, 'renamed').readable
    os.setxattr(str(rel), imagemeta.STRICT_XATTR, b'0')
    other = rel.parent / 'extension-release.other'
    other.write_text('ID=_any\n')
    os.setxattr(str(other), imagemeta.STRICT_XATTR, b'no')
    img = load(root, 'renamed')
    assert not img.readable and 'more than one release file' in img.reason


def test_release_symlink_outside_the_image_stays_inside(root, tmp_path):
    (tmp_path / 'secret').write_text('ID=_any\n')
    d = root / 'var/lib/extensions/esc/usr/lib/extension-release.d'
    d.mkdir(parents=True)
    os.symlink(str(tmp_path / 'secret'), d / 'extension-release.esc')
    img = load(root, 'esc')
    assert not img.readable and 'has no' in img.reason


@pytest.mark.parametrize('data,words', [
    (b'\x00\xff' * 100, 'not valid UTF-8'),
    (b'ID=_any\n' + b'#' * (64 * 1024 * 1024), 'larger than'),
])
def test_bad_release_files(root, data, words, make_tree):
    make_tree(root / 'var/lib/extensions/bad', 'bad', release=data)
    img = load(root, 'bad')
    assert not img.readable and words in img.reason and str(root / 'var/lib/extensions/bad') in img.reason


def test_release_in_images(root, tmp_path, make_tree, build_image):
    make_tree(tmp_path / 't', 'sq', release='ID=debian\nVERSION_ID=12\n', files={'opt/sq/f': 'f'})
    build_image(tmp_path / 't', root / 'var/lib/extensions/sq.raw')
    build_image(tmp_path / 't', root / 'var/lib/extensions/er.raw', fs='erofs')
    img = load(root, 'sq')
    assert img.readable and img.release['VERSION_ID'] == '12' and img.provides == ('/usr', '/opt')
    er = load(root, 'er')
    assert not er.readable and 'extension-release.er' in er.reason   # renamed: its release says sq


def test_renamed_images_with_strict_false(root, tmp_path, make_tree, build_image):
    make_tree(tmp_path / 't', 'orig')
    rel = tmp_path / 't/usr/lib/extension-release.d/extension-release.orig'
    if not _xattr_ok(str(rel)):
        pytest.skip('no user xattrs on this filesystem')
    os.setxattr(str(rel), imagemeta.STRICT_XATTR, b'false')
    build_image(tmp_path / 't', root / 'var/lib/extensions/sqren.raw')
    build_image(tmp_path / 't', root / 'var/lib/extensions/erren.raw', fs='erofs')
    for name in ('sqren', 'erren'):
        img = load(root, name)
        assert img.readable and img.release_file.endswith('extension-release.orig'), img.reason
    os.setxattr(str(rel), imagemeta.STRICT_XATTR, b'true')
    build_image(tmp_path / 't', root / 'var/lib/extensions/strict.raw')
    assert not load(root, 'strict').readable
    (root / 'var/lib/extensions/junk.raw').write_bytes(os.urandom(4096))
    junk = load(root, 'junk')
    assert not junk.readable and 'unknown magic' in junk.reason
