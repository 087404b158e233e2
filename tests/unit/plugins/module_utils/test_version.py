# -*- coding: utf-8 -*-
"""strverscmp_improved(): systemd's ordering (cases from systemd's test-string-util.c idea)."""

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils.version import sort_names, strverscmp_improved


@pytest.mark.parametrize('older,newer', [
    ('1.0', '1.1'),
    ('1.9', '1.10'),
    ('122', '123'),
    ('5', '5.0'),               # more segments is newer
    ('123.a', '123a'),          # '123a' is newer than '123.a'
    ('1~rc1', '1'),             # '~' marks a pre-release
    ('1~rc1', '1~rc2'),
    ('1-9', '1.1-1'),           # '-' separates version and release
    ('1.0', '1.0^p1'),          # '^' marks a patched release
    ('a', 'b'),
    ('abc', 'abcd'),
    ('abc', '1'),               # numeric segments are newer than alphabetic ones
    ('e2', 'e10'),
    ('1.2', '1_2'),             # '_' is skipped, the '.' makes 1.2 older
])
def test_order(older, newer):
    assert strverscmp_improved(older, newer) == -1
    assert strverscmp_improved(newer, older) == 1


@pytest.mark.parametrize('a,b', [('1.0', '1.0'), ('00123', '123'), ('1.01', '1.1'), ('', '')])
def test_equal(a, b):
    assert strverscmp_improved(a, b) == 0


def test_empty_is_oldest():
    assert strverscmp_improved('', '1') == -1
    assert strverscmp_improved(None, '1') == -1
    assert strverscmp_improved('1', None) == 1


def test_stacking_order_is_systemds():
    # systemd-sysext 262 listed these exactly so (see tests/integration)
    assert sort_names(['sqx', 'foo', '.hid', 'ero']) == ['.hid', 'ero', 'foo', 'sqx']
    assert sort_names(['e10', 'e2', 'e1', 'e100', 'e0']) == ['e0', 'e1', 'e2', 'e10', 'e100']


def test_ties_are_deterministic():
    assert sort_names(['e01', 'e1']) == sort_names(['e1', 'e01']) == ['e01', 'e1']
