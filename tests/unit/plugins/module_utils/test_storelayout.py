# -*- coding: utf-8 -*-
"""The store's layout as read: store file names, versions and their architecture suffix."""

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import storelayout


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
