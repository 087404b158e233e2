# -*- coding: utf-8 -*-
"""The image store behind sysext_image: layout, selection, checksums, rollback, pruning and
every bad input leaving the store and the selection exactly as they were."""

import errno
import hashlib
import http.server
import os
import subprocess
import threading
import urllib.request

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import store


def sha(path):
    return 'sha256:' + hashlib.sha256(open(path, 'rb').read()).hexdigest()


def run(root, **kw):
    kw.setdefault('name', 'tool')
    return store.ensure(store.Options(root=str(root), **kw))


def listing(root):
    out = []
    for d, _dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
    return sorted(out)


def link_target(root, name='tool', link_dir='etc/extensions'):
    return os.readlink(os.path.join(root, link_dir, name + '.raw'))


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize('name', ['a/b', '.hidden', '', 'tool.raw', 'with space', '.#tmp'])
def test_bad_names_are_refused(root, name):
    with pytest.raises(store.StoreError, match='invalid extension name'):
        run(root, name=name, version='1')


@pytest.mark.parametrize('version', ['1_2', '1+2', '', '-1', '../1', 'v/1', '1 2'])
def test_versions_systemd_would_misorder_are_refused(root, version):
    with pytest.raises(store.StoreError, match='invalid version'):
        run(root, version=version, state='present', src='/nonexistent')


def test_url_needs_a_checksum(root):
    with pytest.raises(store.StoreError, match='url needs a checksum'):
        run(root, version='1', url='http://127.0.0.1:9/x.raw')


def test_store_inside_a_search_directory_is_refused(root, image):
    with pytest.raises(store.StoreError, match='directory systemd searches'):
        run(root, version='1', src=image('1'), store_dir='/var/lib/extensions/store')


# ----------------------------------------------------------------------------- store and select
def test_selected_stores_links_relative_and_is_idempotent(root, image, monkeypatch):
    src = image('1.0')
    r = run(root, version='1.0', src=src, checksum=sha(src))
    assert r.changed and r.copied and r.selected == '1.0' and r.previous is None
    assert r.path == '/opt/extensions/tool/tool-1.0.raw' and r.link == '/etc/extensions/tool.raw'
    assert link_target(root) == '../../opt/extensions/tool/tool-1.0.raw'
    assert r.compatible is True and r.release['IMAGE_VERSION'] == '1.0'
    assert open(os.path.join(root, 'usr/lib/os-release')).read()        # the root itself untouched
    assert not [f for f in os.listdir(root / 'opt/extensions/tool') if f.startswith('.#')]
    assert oct(os.stat(root / 'opt/extensions/tool').st_mode & 0o777) == '0o755'

    # Second run: nothing copied, nothing hashed (the digest comes from the xattr cache).
    def no_hashing(*_a, **_k):
        raise AssertionError('image data was hashed on the no-change path')
    monkeypatch.setattr(store.hashlib, 'new', no_hashing)
    r2 = run(root, version='1.0', checksum=sha(src))
    assert not r2.changed and not r2.copied and r2.selected == r2.previous == '1.0'


def test_present_does_not_select(root, image):
    # (one image: two builds a second apart differ in their timestamps)
    src = image('1')
    r = run(root, version='1', src=src, state='present')
    assert r.changed and r.stored and r.selected is None
    assert not os.path.lexists(root / 'etc/extensions/tool.raw')
    assert not run(root, version='1', src=src, state='present').changed


def test_versions_are_ordered_like_systemd(root, image):
    for v in ('1.9', '1.10', '1.0~rc1', '1.0', '1.0^post1'):
        run(root, version=v, src=image(v), state='present', keep=10)
    assert store.stored_versions(store.layout(str(root), 'tool', '/opt/extensions', '/etc/extensions')) == \
        ['1.0~rc1', '1.0', '1.0^post1', '1.9', '1.10']


def test_version_sorting_like_a_stored_one_is_refused(root, image):
    run(root, version='1.0', src=image('1.0'), state='present')
    with pytest.raises(store.StoreError, match='sorts the same as the stored 1.0'):
        run(root, version='1.00', src=image('1.00'), state='present')


def test_confext_default_link_dir_is_searched_by_systemd(root, image):
    r = run(root, name='site', kind='confext', version='7', src=image('7', name='site', cls='confext'))
    assert r.link == '/var/lib/confexts/site.raw' and r.selected == '7'


def test_symlinked_store_dir_is_resolved_inside_root(root, image):
    os.makedirs(root / 'var/opt')
    os.rmdir(root / 'opt')
    os.symlink('/var/opt', root / 'opt')            # absolute: re-rooted, not the host's /var/opt
    r = run(root, version='1', src=image('1'))
    assert r.path == '/var/opt/extensions/tool/tool-1.raw'
    assert os.path.isfile(root / 'var/opt/extensions/tool/tool-1.raw')
    assert link_target(root) == '../../var/opt/extensions/tool/tool-1.raw'


def test_bakery_style_absolute_link_counts_as_selected(root, image):
    run(root, version='1', src=image('1'), state='present')
    os.symlink('/opt/extensions/tool/tool-1.raw', root / 'etc/extensions/tool.raw')
    r = run(root, version='1')
    assert not r.changed and r.previous == '1'


# ----------------------------------------------------------------------------- bad input: nothing changes
def test_wrong_checksum_leaves_nothing(root, image):
    run(root, version='1', src=image('1'))
    before = listing(root)
    with pytest.raises(store.StoreError, match='expected sha256'):
        run(root, version='2', src=image('2'), checksum='sha256:' + '0' * 64)
    assert listing(root) == before and link_target(root).endswith('tool-1.raw')


def test_incompatible_image_is_refused_and_nothing_changes(root, image):
    run(root, version='1', src=image('1'))
    before = listing(root)
    with pytest.raises(store.Incompatible, match="refusing to select tool 2: .*is for OS 'fedora'"):
        run(root, version='2', src=image('2', release='ID=fedora\nVERSION_ID=40\n'))
    assert listing(root) == before and link_target(root).endswith('tool-1.raw')
    # storing it without selecting is allowed (present), and says nothing about compatibility
    r = run(root, version='2', src=image('2', release='ID=fedora\nVERSION_ID=40\n'), state='present')
    assert r.stored and r.compatible is None


# ----------------------------------------------------------------------------- image policy
def test_image_the_policy_refuses_is_not_selected(root, image):
    run(root, version='1', src=image('1'))
    before = listing(root)
    with pytest.raises(store.StoreError, match=r'refusing to select tool 2: /opt/extensions/tool/tool-2\.raw does not match the image '
                                               r'policy root=.*erofs.* \(parameter\): it is squashfs, a file system '
                                               r'the image policy does not allow \(root=.*erofs.*\); the selection is unchanged'):
        run(root, version='2', src=image('2'), image_policy='root=erofs')
    assert listing(root) == before and link_target(root).endswith('tool-1.raw')
    # stored without selecting: the policy is not checked
    assert run(root, version='2', src=image('2'), state='present', image_policy='root=erofs').compatible is None
    # and a policy the image meets selects it
    r = run(root, version='2', image_policy='root=unprotected+squashfs:usr=absent')
    assert r.changed and r.compatible and link_target(root).endswith('tool-2.raw')


def test_the_roots_config_file_policy_applies_without_the_parameter(root, image):
    run(root, version='1', src=image('1'))
    (root / 'etc/systemd').mkdir(parents=True)
    (root / 'etc/systemd/sysext.conf').write_text('[SysExt]\nImagePolicy=root=signed+absent\n')
    before = listing(root)
    with pytest.raises(store.StoreError, match=r'tool-2\.raw does not match the image policy root=signed\+absent:=unused\+absent '
                                               r'\(/etc/systemd/sysext.conf:2\): it is unprotected'):
        run(root, version='2', src=image('2'))
    assert listing(root) == before and link_target(root).endswith('tool-1.raw')
    # the parameter wins over the file, as systemd's --image-policy= does
    assert run(root, version='2', src=image('2'), image_policy='*').compatible


def test_confext_conf_does_not_apply_to_a_sysext(root, image):
    (root / 'etc/systemd').mkdir(parents=True)
    (root / 'etc/systemd/confext.conf').write_text('[ConfExt]\nImagePolicy=root=absent\n')
    assert run(root, version='1', src=image('1')).compatible
    with pytest.raises(store.StoreError, match='image policy root=absent'):
        run(root, name='site', kind='confext', version='1', src=image('1', name='site', cls='confext'))


def test_unparsable_image_policy_is_refused_before_anything_is_stored(root, image):
    with pytest.raises(store.StoreError, match=r"image_policy 'root=bogus' cannot be parsed: .*systemd.image-policy\(7\)"):
        run(root, version='1', src=image('1'), image_policy='root=bogus')
    assert not os.path.exists(root / 'opt/extensions')


def test_image_without_release_for_the_name_is_refused(root, image):
    with pytest.raises(store.StoreError, match='no usr/lib/extension-release.d/extension-release.other'):
        run(root, name='other', version='1', src=image('1'))
    assert not os.path.exists(root / 'opt/extensions/other/other-1.raw')


def test_corrupt_image_is_refused(root, tmp_path):
    junk = tmp_path / 'junk.raw'
    junk.write_bytes(b'\0junk' * 1000)
    with pytest.raises(store.StoreError, match='refusing to select'):
        run(root, version='1', src=str(junk))
    assert not os.listdir(root / 'opt/extensions/tool')


def test_disk_full_leaves_no_partial_file(root, image, monkeypatch):
    run(root, version='1', src=image('1'))
    before = listing(root)
    real_write = os.write

    def full(fd, data):
        if os.fstat(fd).st_size >= 1024:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real_write(fd, data[:1024])
    monkeypatch.setattr(store.os, 'write', full)
    with pytest.raises(store.StoreError, match='no space left .*Nothing was replaced'):
        run(root, version='2', src=image('2'))
    assert listing(root) == before and link_target(root).endswith('tool-1.raw')


def test_a_fifo_or_a_directory_as_src_is_refused_without_blocking(root, image, tmp_path):
    run(root, version='1', src=image('1'))
    before = listing(root)
    fifo = tmp_path / 'pipe.raw'
    os.mkfifo(fifo)
    # (no writer: a blocking open would never return)
    for src, what in ((fifo, 'a FIFO'), (tmp_path, 'a directory')):
        for kw in ({}, {'checksum': 'sha256:' + 'a' * 64}):
            with pytest.raises(store.StoreError, match='cannot read src %s: is %s, not a regular file' % (src, what)):
                run(root, version='2', src=str(src), **kw)
            with pytest.raises(store.StoreError, match='%s(: is %s| is neither a regular file)' % (src, what)):
                run(root, version='2', src=str(src), check_mode=True, **kw)
    assert listing(root) == before and not os.path.exists(root / 'opt/extensions/tool/tool-2.raw')


def test_a_name_too_long_for_the_store_is_refused_before_anything_is_written(root, image):
    before = listing(root)
    # (265 bytes: the file system refuses it; 233 and 236: its temporary and sidecar names would not fit)
    for name, version in (('n' * 200, '1' * 60), ('n' * 230, '1'), ('n' * 200, '1' * 28)):
        with pytest.raises(store.StoreError, match='is %d bytes long.*up to 232 bytes' % (len(name) + len(version) + 5)):
            run(root, name=name, version=version, src=image('1'))
    assert listing(root) == before and not os.path.exists(root / 'opt/extensions')
    res = run(root, name='n' * 200, version='1' * 27, src=image('1', name='n' * 200))
    assert res.stored and os.path.isfile(root / ('opt/extensions/%s/%s-%s.raw' % ('n' * 200, 'n' * 200, '1' * 27)))


def test_missing_version_without_source_says_so(root):
    with pytest.raises(store.StoreError, match='not in the store') as e:
        run(root, version='3')
    assert e.value.stored is False


def test_stored_file_with_other_checksum_without_source(root, image):
    run(root, version='1', src=image('1'))
    with pytest.raises(store.StoreError, match='give src or url to replace it') as e:
        run(root, version='1', checksum='sha256:' + 'a' * 64)
    assert e.value.stored is False


def test_republished_version_is_replaced(root, image, tmp_path):
    src1 = image('1')
    run(root, version='1', src=src1)
    other = image('1', release='ID=_any\nSYSEXT_SCOPE=system\n', tag='b')
    assert sha(other) != sha(src1)
    r = run(root, version='1', src=other)
    assert r.changed and r.copied and r.checksum == sha(other)
    assert sha(root / 'opt/extensions/tool/tool-1.raw') == sha(other)


def test_foreign_file_at_the_link_is_left_alone(root, image):
    (root / 'etc/extensions/tool.raw').write_bytes(b'theirs')
    with pytest.raises(store.StoreError, match='is a file, not a symlink into the store'):
        run(root, version='1', src=image('1'))
    assert (root / 'etc/extensions/tool.raw').read_bytes() == b'theirs'
    with pytest.raises(store.StoreError, match='not made by this module'):
        run(root, state='absent')


def test_the_temporary_file_of_a_run_still_going_is_left_alone(root, image):
    """Two runs for one name: the second must not delete the first one's file while it writes it."""
    run(root, version='1', src=image('1'))
    other = subprocess.Popen(['sleep', '60'])
    try:
        tmp = root / ('opt/extensions/tool/.#tool-2.raw.%d' % other.pid)
        link_tmp = root / ('etc/extensions/.#tool.raw.%d' % other.pid)
        tmp.write_bytes(b'being written')
        os.symlink('x', link_tmp)
        r = run(root, version='1')
        assert not r.changed and r.warnings == [] and tmp.read_bytes() == b'being written' and os.path.islink(link_tmp)
    finally:
        other.kill()
        other.wait()
    r = run(root, version='1')
    assert 'removed 2 temporary file(s) of an interrupted run' in r.warnings[0]
    assert not os.path.lexists(tmp) and not os.path.lexists(link_tmp)


def test_leftovers_of_a_killed_run_are_removed(root, image):
    run(root, version='1', src=image('1'))
    (root / 'opt/extensions/tool/.#tool-2.raw.4242').write_bytes(b'half')
    r = run(root, version='1')
    assert not r.changed and 'interrupted run' in r.warnings[0]
    assert not os.path.exists(root / 'opt/extensions/tool/.#tool-2.raw.4242')


# ----------------------------------------------------------------------------- keep, rollback, absent
def test_keep_prunes_older_versions_but_never_staged_ones(root, image):
    for v in ('1', '2', '3', '4'):
        run(root, version=v, src=image(v), keep=10)
    run(root, version='6', src=image('6'), state='present', keep=10)     # staged
    r = run(root, version='5', src=image('5'), keep=2)
    assert r.removed == ['/opt/extensions/tool/tool-1.raw', '/opt/extensions/tool/tool-2.raw']
    assert r.versions == ['3', '4', '5', '6']
    assert run(root, version='5', keep=0).versions == ['5', '6']


def test_rollback_is_idempotent(root, image):
    for v in ('1', '2', '3'):
        run(root, version=v, src=image(v))
    r = run(root, rollback=True)
    assert r.changed and r.previous == '3' and r.selected == '2'
    r = run(root, rollback=True)
    assert not r.changed and r.selected == '2'
    r = run(root, version='2', rollback=True)
    assert r.changed and r.selected == '1' and link_target(root).endswith('tool-1.raw')
    with pytest.raises(store.StoreError, match='no stored version is older than 1'):
        run(root, version='1', rollback=True)


def test_absent(root, image):
    for v in ('1', '2'):
        run(root, version=v, src=image(v))
    with pytest.raises(store.StoreError, match='version 2 of tool is selected'):
        run(root, version='2', state='absent')
    r = run(root, version='1', state='absent')
    assert r.changed and r.removed == ['/opt/extensions/tool/tool-1.raw'] and r.versions == ['2']
    assert not run(root, version='1', state='absent').changed
    r = run(root, state='absent')
    assert r.changed and r.selected is None and r.versions == []
    assert not os.path.lexists(root / 'etc/extensions/tool.raw')
    assert not os.path.exists(root / 'opt/extensions/tool')
    assert not run(root, state='absent').changed


def test_check_mode_writes_nothing_and_predicts(root, image):
    run(root, version='1', src=image('1'))
    run(root, version='2', src=image('2'))
    before = listing(root)
    r = run(root, version='3', src=image('3'), keep=0, check_mode=True)
    assert r.changed and r.selected == '3' and r.versions == ['3']
    assert r.removed == ['/opt/extensions/tool/tool-1.raw', '/opt/extensions/tool/tool-2.raw']
    assert listing(root) == before and link_target(root).endswith('tool-2.raw')
    with pytest.raises(store.StoreError, match='refusing to select'):
        run(root, version='3', src=image('3', release='ID=fedora\n'), check_mode=True)
    r = run(root, rollback=True, check_mode=True)
    assert r.changed and r.selected == '1' and link_target(root).endswith('tool-2.raw')


# ----------------------------------------------------------------------------- downloads
class _Server:
    def __init__(self, files, truncate=False):
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = files_.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header('Content-Length', str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2] if truncate else data)

            def log_message(self, *_a):
                pass
        self.httpd = http.server.HTTPServer(('127.0.0.1', 0), Handler)
        self.url = 'http://127.0.0.1:%d' % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def opener(url):
    try:
        return urllib.request.urlopen(url, timeout=5)
    except OSError as e:
        raise store.StoreError('cannot download %s: %s' % (url, e)) from None


def test_download_verified_and_stored(root, image):
    src = image('1')
    srv = _Server({'/tool-1.raw': open(src, 'rb').read()})
    try:
        r = store.ensure(store.Options(root=str(root), name='tool', version='1', url=srv.url + '/tool-1.raw',
                                       checksum=sha(src)), opener)
        assert r.changed and r.selected == '1' and r.checksum == sha(src)
        before = listing(root)
        with pytest.raises(store.StoreError, match='expected sha256'):
            store.ensure(store.Options(root=str(root), name='tool', version='2', url=srv.url + '/tool-1.raw',
                                       checksum='sha256:' + '1' * 64), opener)
        with pytest.raises(store.StoreError, match='404'):
            store.ensure(store.Options(root=str(root), name='tool', version='2', url=srv.url + '/missing.raw',
                                       checksum=sha(src)), opener)
        assert listing(root) == before
    finally:
        srv.close()


def test_truncated_download_leaves_nothing(root, image):
    src = image('1')
    srv = _Server({'/tool-1.raw': open(src, 'rb').read()}, truncate=True)
    try:
        with pytest.raises(store.StoreError, match='truncated: .* of the .* bytes'):
            store.ensure(store.Options(root=str(root), name='tool', version='1', url=srv.url + '/tool-1.raw',
                                       checksum=sha(src)), opener)
    finally:
        srv.close()
    assert not os.listdir(root / 'opt/extensions/tool')
    assert not os.path.lexists(root / 'etc/extensions/tool.raw')


def test_unreachable_url(root):
    with pytest.raises(store.StoreError, match='cannot download'):
        store.ensure(store.Options(root=str(root), name='tool', version='1', url='http://127.0.0.1:9/tool.raw',
                                   checksum='sha256:' + 'a' * 64), opener)
    assert not os.path.exists(root / 'opt/extensions/tool') or not os.listdir(root / 'opt/extensions/tool')


# ----------------------------------------------------------------------------- hosts laid out by other tools
def test_versions_ending_in_an_architecture_are_refused(root):
    with pytest.raises(store.StoreError, match='ends in the architecture x86-64'):
        run(root, version='1-x86-64', state='present', src='/nonexistent')


def test_a_bakery_store_is_read_as_versions_with_an_architecture_and_never_pruned(root, image):
    """NAME-VERSION-ARCH.raw files (sysext-bakery, systemd-sysupdate) are not versions of this
    module: keep: 1 in check mode and for real leaves all of them, and absent leaves them too."""
    store_dir = root / 'opt/extensions/tool'
    store_dir.mkdir(parents=True)
    for v in ('1.0', '1.1', '1.2'):
        (store_dir / ('tool-%s-x86-64.raw' % v)).write_bytes(open(image(v), 'rb').read())
    os.symlink('/opt/extensions/tool/tool-1.2-x86-64.raw', root / 'etc/extensions/tool.raw')
    theirs = ['/opt/extensions/tool/tool-%s-x86-64.raw' % v for v in ('1.0', '1.1', '1.2')]
    for check in (True, False):
        r = run(root, version='2.0', src=image('2.0'), keep=1, check_mode=check)
        assert r.removed == [] and r.versions == ['2.0'] and r.previous is None and r.selected == '2.0', r
        assert r.unmanaged == theirs
        assert any('tool-1.2-x86-64.raw, a file in the store this module did not write' in w for w in r.warnings)
    assert link_target(root) == '../../opt/extensions/tool/tool-2.0.raw'
    r = run(root, version='3.0', src=image('3.0'), keep=0)
    assert r.removed == ['/opt/extensions/tool/tool-2.0.raw'] and r.versions == ['3.0']
    r = run(root, state='absent')
    assert r.removed == ['/etc/extensions/tool.raw', '/opt/extensions/tool/tool-3.0.raw']
    assert 'left in the store, not written by this module' in r.warnings[-1]
    assert sorted(os.listdir(store_dir)) == ['tool-%s-x86-64.raw' % v for v in ('1.0', '1.1', '1.2')]


def test_a_selection_shadowed_earlier_in_the_search_order_is_reported(root, image):
    """/etc/extensions/NAME.raw wins over /var/lib/extensions/NAME.raw: systemd merges the first."""
    (root / 'var/lib/extensions').mkdir(parents=True, exist_ok=True)
    (root / 'etc/extensions/tool.raw').write_bytes(open(image('0'), 'rb').read())
    for check in (True, False):
        r = run(root, version='1', src=image('1'), link_dir='/var/lib/extensions', check_mode=check)
        assert r.changed and r.selected == '1' and r.shadowed_by == '/etc/extensions/tool.raw', r
        assert any("/etc/extensions/tool.raw comes earlier in systemd's search order" in w for w in r.warnings)
    os.unlink(root / 'etc/extensions/tool.raw')
    r = run(root, version='1', link_dir='/var/lib/extensions')
    assert r.shadowed_by is None and not r.warnings
    r = run(root, version='1')      # /etc/extensions comes first: nothing shadows it
    assert r.shadowed_by is None and r.link == '/etc/extensions/tool.raw'


# ----------------------------------------------------------------------------- dm-verity sidecars
def verity_src(tmp_path, image, version, roothash='ab' * 32):
    """An image with the .verity and .roothash sidecars beside it, as sysext_build verity: true writes them."""
    d = tmp_path / ('verity-src-' + version)
    d.mkdir()
    src = d / ('tool-%s.raw' % version)
    src.write_bytes(open(image(version), 'rb').read())
    (d / ('tool-%s.verity' % version)).write_bytes(b'hash tree ' + version.encode())
    (d / ('tool-%s.roothash' % version)).write_text(roothash + '\n')
    return str(src)


def test_verity_sidecars_are_stored_with_the_image_and_removed_with_it(root, image, tmp_path):
    src = verity_src(tmp_path, image, '1')
    store_dir = root / 'opt/extensions/tool'
    r = run(root, version='1', src=src, state='present', check_mode=True)
    assert r.copied and r.sidecars == ['/opt/extensions/tool/tool-1.roothash', '/opt/extensions/tool/tool-1.verity']
    assert not store_dir.exists()
    r = run(root, version='1', src=src, state='present')
    assert r.copied and sorted(os.listdir(store_dir)) == ['tool-1.raw', 'tool-1.roothash', 'tool-1.verity']
    assert (store_dir / 'tool-1.verity').read_bytes() == b'hash tree 1'
    # the same bytes again: nothing to do; a new root hash beside the same image: stored again
    assert not run(root, version='1', src=src, state='present').changed
    with open(src[:-4] + '.roothash', 'w') as f:
        f.write('cd' * 32 + '\n')
    r = run(root, version='1', src=src, state='present')
    assert r.changed and (store_dir / 'tool-1.roothash').read_text() == 'cd' * 32 + '\n'
    # the action plugin's probe: the checksums of the controller's sidecars, without src
    want = store.sidecar_digests(src)
    assert not run(root, version='1', state='present', sidecar_checksums=want).changed
    with pytest.raises(store.StoreError, match='dm-verity sidecars') as e:
        run(root, version='1', state='present', sidecar_checksums={})
    assert e.value.stored is False
    # a source without sidecars replaces them: the stored version has none left
    plain = tmp_path / 'plain' / 'tool-1.raw'
    plain.parent.mkdir()
    plain.write_bytes(open(src, 'rb').read())
    r = run(root, version='1', src=str(plain), state='present')
    assert r.changed and r.sidecars == [] and sorted(os.listdir(store_dir)) == ['tool-1.raw']
    run(root, version='1', src=src, state='present')
    r = run(root, state='absent')
    assert sorted(r.removed) == ['/opt/extensions/tool/tool-1.raw', '/opt/extensions/tool/tool-1.roothash',
                                 '/opt/extensions/tool/tool-1.verity'] and not store_dir.exists()


def test_the_selection_check_sees_the_sidecars(root, image, tmp_path, monkeypatch):
    """The image policy is checked with the sidecars beside the image, as systemd will find them."""
    r = run(root, version='1', src=verity_src(tmp_path, image, '1'), state='present')
    with pytest.raises(store.StoreError) as e:
        run(root, version='2', src=verity_src(tmp_path, image, '2'), image_policy='root=unprotected')
    assert 'tool-2.raw does not match the image policy root=unprotected' in str(e.value), e.value
    assert 'it is verity, which the image policy does not allow' in str(e.value), e.value
    assert r.versions == ['1'] and sorted(os.listdir(root / 'opt/extensions/tool')) == [
        'tool-1.raw', 'tool-1.roothash', 'tool-1.verity']


def test_probe_host_reports_the_architecture_and_os_release_for_a_repository_choice(root, tmp_path):
    from ansible_collections.tucked.sysext.plugins.module_utils import release
    got = store.probe_host(str(root))
    assert got == {'architecture': release.native_architecture(), 'os_release': {'ID': 'debian', 'VERSION_ID': '12'},
                   'os_release_error': None}
    bare = tmp_path / 'bare'
    bare.mkdir()
    got = store.probe_host(str(bare))
    assert got['os_release'] == {} and 'no os-release in %s' % bare in got['os_release_error']


# ----------------------------------------------------------------------------- store patterns
def test_a_store_pattern_stores_selects_and_prunes_as_the_transfer_names_versions(root, image):
    arch = store.release.native_architecture()
    kw = dict(store_dir='/opt/extensions/tool', store_pattern=['tool-@v-%a.raw'], keep=1)
    os.makedirs(str(root / 'opt/extensions/tool'))
    (root / 'opt/extensions/tool/notes.txt').write_text('not a version\n')
    for v in ('1.0', '2.0', '3.0'):
        res = run(root, version=v, src=image(v), **kw)
    assert res.selected == '3.0' and res.versions == ['2.0', '3.0']
    assert res.removed == ['/opt/extensions/tool/tool-1.0-%s.raw' % arch]
    assert res.unmanaged == ['/opt/extensions/tool/notes.txt']
    assert link_target(root) == '../../opt/extensions/tool/tool-3.0-%s.raw' % arch
    again = run(root, version='3.0', src=image('3.0'), **kw)
    assert not again.changed and again.previous == '3.0'
    back = run(root, rollback=True, **kw)
    assert back.selected == '2.0'


def test_a_version_the_pattern_would_read_back_otherwise_is_refused(root, image):
    with pytest.raises(store.StoreError, match='reads back as version'):
        run(root, version='1-p.raw-2', src=image('1'), store_dir='/opt/x', store_pattern=['tool-@v-p.raw'])
