# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side, shared by the action plugins: options that must arrive as the strings the
user wrote. A module's ``type: str`` turns YAML's float 1.1 (an unquoted ``1.10``) into '1.1'
without a word, so the action plugin looks at the value before the module sees it."""

from __future__ import annotations


def a_type(value) -> str:
    """'a float', 'an int' ... by isinstance (Ansible 2.19 passes tagged subclasses)."""
    for kind, name in ((bool, 'a bool'), (int, 'an int'), (float, 'a float'), (dict, 'a dict'), (list, 'a list')):
        if isinstance(value, kind):
            return name
    return 'a ' + type(value).__name__


def unquoted(args: dict, options) -> str | None:
    """The message for the first of ``options`` in ``args`` that is set but not a string, else None."""
    for option in options:
        value = args.get(option)
        if value is not None and not isinstance(value, str):
            return ('%s %r is %s, not a string: quote it (%s: "%s"); YAML reads an unquoted 1.10 as the number 1.1'
                    % (option, value, a_type(value), option, value))
    return None
