# -*- coding: utf-8 -*-
"""sysext_image state=query: the stored versions in systemd's order, the selection, whether the
version offered is stored (with its checksum), and nothing written."""

import hashlib
import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import images, store, storequery


def stored(root, image, *versions, select=None):
    for v in versions:
        store.ensure(store.Options(name='tool', version=v, root=str(root), src=image(v), keep=9,
                                   state='selected' if v == select else 'present'))


def snapshot(root):
    out = {}
    for d, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.lstat(p)
            out[p] = (st.st_mtime_ns, st.st_ctime_ns, os.readlink(p) if os.path.islink(p) else None)
    return out


def query(root, **kw):
    return storequery.query('tool', kw.pop('kind', 'sysext'), str(root), kw.pop('store_dir', '/opt/extensions'),
                            kw.pop('link_dir', None), **kw)


def test_versions_oldest_first_the_selection_and_the_available_version_stored(root, image):
    stored(root, image, '1.10', '1.9', '1.10~rc1', select='1.9')
    before = snapshot(root)
    q = query(root, version='1.10')
    assert q['versions'] == ['1.9', '1.10~rc1', '1.10'] and q['selected'] == q['previous'] == '1.9'
    assert q['available'] == q['version'] == '1.10' and q['stored'] is True and not q['changed'] and not q['copied']
    assert q['path'] == '/opt/extensions/tool/tool-1.10.raw' and q['link'] == '/etc/extensions/tool.raw'
    assert q['checksum'].startswith('sha256:') and q['removed'] == [] and q['link_problem'] is None
    assert snapshot(root) == before, 'a query writes nothing'


def test_a_version_not_stored_and_no_version_at_all(root, image):
    stored(root, image, '1.0', select='1.0')
    q = query(root, version='2.0')
    assert q['available'] == '2.0' and q['stored'] is False and q['checksum'] is None and q['versions'] == ['1.0']
    q = query(root)
    assert q['available'] is None and q['stored'] is False and q['path'] is None and q['selected'] == '1.0'
    empty = storequery.query('site', 'confext', str(root), '/opt/extensions', None, '7')
    assert empty['versions'] == [] and empty['selected'] is None and empty['link'] == '/var/lib/confexts/site.raw'
    assert empty['stored'] is False and empty['available'] == '7'


def test_the_checksum_tells_a_stored_version_from_another_file_of_that_name(root, image):
    stored(root, image, '1.0')
    path = os.path.join(root, 'opt/extensions/tool/tool-1.0.raw')
    right = 'sha256:' + hashlib.sha256(open(path, 'rb').read()).hexdigest()
    assert query(root, version='1.0', checksum=right)['stored'] is True
    assert query(root, version='1.0', checksum='sha256:' + '0' * 64)['stored'] is False
    # without the digest cache the file is read, and the cache is not written
    os.removexattr(path, images.DIGEST_XATTR)
    assert query(root, version='1.0', checksum=right)['stored'] is True
    assert images.cached_digest(path) is None


def test_a_link_that_is_not_ours_is_reported(root, image):
    (root / 'etc/extensions/tool.raw').write_text('a file')
    q = query(root, version='1')
    assert q['selected'] is None and 'is a file, not a symlink into the store' in q['link_problem']


@pytest.mark.parametrize('kw,match', [
    ({'version': '1+2'}, 'invalid version'),
    ({'version': '1', 'checksum': 'md5:00'}, 'unsupported algorithm'),
    ({'store_dir': '/var/lib/extensions/x'}, 'directory systemd searches'),
])
def test_bad_input_is_refused(root, kw, match):
    with pytest.raises(store.StoreError, match=match):
        query(root, **kw)
