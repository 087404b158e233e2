# -*- coding: utf-8 -*-
"""What the controller and the target share of a store file: the checksum form, digests and
the dm-verity sidecars beside an image."""

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import storefiles


@pytest.mark.parametrize('value,expected', [
    ('sha256:' + 'A' * 64, ('sha256', 'a' * 64)),
    ('b' * 64, ('sha256', 'b' * 64)),
    ('sha512:' + 'c' * 128, ('sha512', 'c' * 128)),
])
def test_parse_checksum(value, expected):
    assert storefiles.parse_checksum(value) == expected


@pytest.mark.parametrize('value', ['md5:' + 'a' * 32, 'sha256:abc', 'sha256:' + 'g' * 64, ''])
def test_parse_checksum_refuses(value):
    with pytest.raises(storefiles.ChecksumError, match='checksum'):
        storefiles.parse_checksum(value)
