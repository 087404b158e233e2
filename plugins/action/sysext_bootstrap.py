# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tucked.sysext.sysext_bootstrap: runs entirely on the controller and reaches the host only
with raw commands (the connection's exec_command, through the task's become) and file
transfers, like ansible.builtin.raw, so it works on a host without Python. The steps are in
module_utils/bootstrapflow.py."""

from __future__ import annotations

import hashlib

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase

from ansible_collections.tucked.sysext.plugins.module_utils import bootstrapflow, storefiles
from ansible_collections.tucked.sysext.plugins.module_utils.bootstrapinstall import InstallError


class _Connection(bootstrapflow.Target):
    """The task's connection as bootstrapflow sees it."""

    def __init__(self, action: ActionModule):
        self._action = action
        self._tmp = None

    def run(self, script: str) -> tuple:
        res = self._action._low_level_execute_command(script, sudoable=True)
        return res.get('rc'), res.get('stdout', ''), res.get('stderr', '')

    def put(self, local: str, remote: str) -> None:
        self._action._transfer_file(local, remote)

    def tmpdir(self) -> str | None:
        # With become the raw commands run as another user than the one files arrive as: put
        # them into a temporary directory of the login user, the activation copies them.
        if not self._action._connection.become:
            return None
        if self._tmp is None:
            self._tmp = self._action._make_tmp_path()
        return self._tmp

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._action._remove_tmp_path(self._tmp)
            self._tmp = None


class ActionModule(ActionBase):

    TRANSFERS_FILES = False     # only when an image is installed, and then into the store
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=bootstrapflow.ARGUMENT_SPEC)

        def source():
            try:
                local = self._find_needle('files', args['src'])
                algo, want = storefiles.parse_checksum(args['checksum']) if args.get('checksum') else ('sha256', None)
                digest, plain = hashlib.new(algo), hashlib.sha256()
                with open(local, 'rb') as f:
                    for chunk in iter(lambda: f.read(storefiles.CHUNK), b''):
                        digest.update(chunk)
                        plain.update(chunk)
            except (AnsibleError, storefiles.ChecksumError, OSError) as e:
                raise InstallError('src %s: %s' % (args['src'], to_text(e))) from None
            if want is not None and digest.hexdigest() != want:
                raise InstallError('src %s (on the controller) has %s:%s, not the expected %s:%s; nothing was '
                                   'transferred' % (local, algo, digest.hexdigest(), algo, want))
            return local, plain.hexdigest()

        result.update(bootstrapflow.run(args, _Connection(self), bool(self._task.check_mode), source))
        return result
