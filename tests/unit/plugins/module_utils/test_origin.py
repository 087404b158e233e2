# -*- coding: utf-8 -*-
import json
import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import origin


def test_compute_file_and_directory(tmp_path):
    f = tmp_path / 'img.raw'
    f.write_bytes(b'x')
    d = tmp_path / 'dir'
    d.mkdir()
    rf = origin.compute(str(f), '/var/lib/extensions/img.raw')
    rd = origin.compute(str(d), '/var/lib/extensions/dir')
    assert list(rf) == ['path', 'onMountId', 'fileHandle', 'crtime', 'mtime'] or 'inode' in rf
    assert rf['path'] == '/var/lib/extensions/img.raw' and isinstance(rf['onMountId'], int)
    assert rf['mtime'] == os.stat(f).st_mtime_ns // 1000
    assert rd['mtime'] == 0, 'directories record mtime 0, like systemd'
    if 'fileHandle' in rf:
        bytes.fromhex(rf['fileHandle']['handle'])
    assert rf['crtime'] > 0
    os.utime(f, (1, 2))
    assert origin.differing_fields(rf, origin.compute(str(f), '/var/lib/extensions/img.raw')) == ['mtime']


def test_verity_images_record_only_the_root_hash():
    assert origin.compute('/nonexistent', '/p', verity_hash='ab' * 32) == {'path': '/p', 'verityHash': 'ab' * 32}


def test_dumps_is_systemds_format_and_round_trips():
    doc = origin.document('yes', {'foo': {'path': '/a', 'mtime': 0}}, {'/usr': '/var/lib/extensions.mutable/usr'})
    text = origin.dumps(doc)
    assert text.startswith('{\n\t"mutable" : {\n\t\t"mode" : "yes",') and text.endswith('}\n')
    assert origin.loads(text, 'x') == doc


@pytest.mark.parametrize('text,words', [
    ('{"extensions": {"foo": {"path": "/a"', 'not valid JSON'),
    ('[1, 2]', 'does not hold an origin object'),
    ('{"extensions": {"foo": {"mtime": 1}}}', 'has no "path"'),
    ('{"extensions": {}, "mutable": 3}', '"mutable" is not an object'),
])
def test_loads_errors_name_the_file(text, words):
    with pytest.raises(origin.OriginError, match=words) as e:
        origin.loads(text, '/x/origin')
    assert '/x/origin' in str(e.value)


def test_read(tmp_path):
    assert origin.read(str(tmp_path / 'missing')) is None
    (tmp_path / 'o').write_bytes(b'\xff\xfe')
    with pytest.raises(origin.OriginError, match='not UTF-8'):
        origin.read(str(tmp_path / 'o'))
    (tmp_path / 'o').write_text(json.dumps({'extensions': {}}))
    assert origin.read(str(tmp_path / 'o')) == {'extensions': {}}


def test_differing_fields_ignores_key_order():
    a = {'path': '/a', 'onMountId': 1, 'fileHandle': {'type': 1, 'handle': 'ab'}, 'crtime': 5, 'mtime': 6}
    b = dict(reversed(list(a.items())))
    assert origin.differing_fields(a, b) == []
    assert origin.differing_fields(a, dict(a, fileHandle={'handle': 'ab', 'type': 2})) == ['fileHandle']
    assert origin.differing_fields({'path': '/a', 'inode': 3}, {'path': '/a', 'fileHandle': {}}) == ['fileHandle', 'inode']
