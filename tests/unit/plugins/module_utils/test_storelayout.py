# -*- coding: utf-8 -*-
"""The store's layout as read: store file names, versions and their architecture suffix."""

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import release, storelayout


@pytest.mark.parametrize('fname,expected', [
    ('tool-27.3.1-x86-64.raw', ('27.3.1', 'x86-64')),
    ('tool-1.2-arm64-be.raw', ('1.2', 'arm64-be')),
    ('tool-1.2-arm64.raw', ('1.2', 'arm64')),
    ('tool-1-2.raw', ('1-2', None)),
    ('tool-1.raw', ('1', None)),
    ('tool_1.raw', None),
    ('other-1.raw', None),
])
def test_store_file_names_with_an_architecture_as_sysupdate_and_bakery_write_them(fname, expected):
    assert storelayout.parse_store_file('tool', fname) == expected


# ----------------------------------------------------------------------------- store patterns
BAKERY = ['docker-@v-%a.raw']


def test_a_store_pattern_names_and_reads_back_versions(tmp_path):
    lay = storelayout.layout(str(tmp_path), 'docker', '/opt/extensions/docker', '/etc/extensions', BAKERY)
    arch = release.native_architecture()
    assert lay.store == '/opt/extensions/docker'
    assert lay.file_for('27.3.1') == '/opt/extensions/docker/docker-27.3.1-%s.raw' % arch
    assert lay.version_of('docker-27.3.1-%s.raw' % arch) == '27.3.1'
    assert lay.version_of('docker-27.3.1.raw') is None and lay.version_of('docker-27.3.1-riscv32.raw') in (None,)
    assert lay.is_temporary('.#docker-1-%s.raw.123' % arch) and not lay.is_temporary('.#sysupdate.docker.raw')


@pytest.mark.parametrize('pattern,why', [
    ('docker-@v-@l.raw', 'names @l'), ('sub/docker-@v.raw', r'names /'), ('docker-@v.img', r'does not end in \.raw'),
    ('docker-%H-@v.raw', 'names no image'), ('docker.raw', 'no version field @v'),
])
def test_store_patterns_the_store_cannot_name_files_by(tmp_path, pattern, why):
    with pytest.raises(storelayout.StoreError, match=why):
        storelayout.layout(str(tmp_path), 'docker', '/opt/extensions/docker', '/etc/extensions', [pattern])
