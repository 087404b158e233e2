# -*- coding: utf-8 -*-
"""Options that must arrive as the strings the user wrote (the action plugins' check)."""

import pytest

from ansible_collections.tucked.sysext.plugins.plugin_utils import quoting


@pytest.mark.parametrize('value,kind', [(1.1, 'a float'), (2, 'an int'), (True, 'a bool'), ([1], 'a list'),
                                        ({'a': 1}, 'a dict')])
def test_what_is_not_a_string_is_named_with_the_fix(value, kind):
    msg = quoting.unquoted({'version': value}, ('version',))
    assert msg == 'version %r is %s, not a string: quote it (version: "%s"); YAML reads an unquoted 1.10 as the ' \
                  'number 1.1' % (value, kind, value)


def test_strings_and_unset_options_pass_and_the_first_bad_option_is_named():
    assert quoting.unquoted({'version': '1.10', 'level': None}, ('version', 'level', 'version_id')) is None
    assert quoting.unquoted({}, ('version',)) is None
    msg = quoting.unquoted({'version': '1', 'version_id': 12, 'level': 1.5}, ('version', 'version_id', 'level'))
    assert msg.startswith('version_id 12 is an int, not a string')


def test_subclasses_are_named_by_what_they_are():
    """Ansible 2.19 passes tagged subclasses of float, int and str."""
    class Tagged(float):
        pass

    class TaggedStr(str):
        pass

    assert quoting.unquoted({'v': Tagged(1.1)}, ('v',)).startswith('v 1.1 is a float')
    assert quoting.unquoted({'v': TaggedStr('1.10')}, ('v',)) is None
