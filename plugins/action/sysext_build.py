# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of tucked.sysext.sysext_build: the version fields written into the
extension-release file must be the strings the user wrote. The module's ``type: str`` would
turn an unquoted ``version: 1.10`` (YAML's float 1.1) into IMAGE_VERSION=1.1 without a word;
here it is refused with a message that says to quote it. Everything else is the module's."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

from ansible_collections.tucked.sysext.plugins.plugin_utils import quoting

MODULE = 'tucked.sysext.sysext_build'
STRINGS = ('version', 'version_id', 'level')


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        unquoted = quoting.unquoted(self._task.args, STRINGS)
        if unquoted:
            result.update(failed=True, changed=False, msg=unquoted)
            return result
        wrap_async = self._task.async_val and not self._connection.has_native_async
        result = merge_hash(result, self._execute_module(module_name=MODULE, task_vars=task_vars, wrap_async=wrap_async))
        if not wrap_async:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
