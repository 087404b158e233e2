# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of tucked.sysext.sysext_image: a ``src`` on the controller is hashed here
and transferred only when the target's store does not already hold those bytes, so a run
with nothing to do costs one module call and no copy."""

from __future__ import annotations

import hashlib

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.tucked.sysext.plugins.module_utils import storefiles
from ansible_collections.tucked.sysext.plugins.plugin_utils import quoting, reposource

MODULE = 'tucked.sysext.sysext_image'


class ActionModule(ActionBase):

    TRANSFERS_FILES = False     # only when the store lacks the image: see run()

    def _from_repository(self, args, task_vars):
        return reposource.run(self, args, task_vars)

    def _module(self, args, task_vars):
        return self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        unquoted = quoting.unquoted(args, ('version',))
        if unquoted:
            result.update(failed=True, msg=unquoted)
            return result
        if args.get('repository') is not None:
            result.update(self._from_repository(args, task_vars))
        elif args.get('state') == 'query':
            result.update(self._module(args, task_vars))     # nothing transferred: the store alone
        else:
            result.update(self._deliver(args, task_vars))
        return result

    def _deliver(self, args, task_vars):
        """The module with ``args``; a controller ``src`` is hashed here and transferred only when the store lacks it."""
        result = {}
        if not args.get('src') or boolean(args.get('remote_src', False), strict=False) or args.get('state') == 'absent':
            result.update(self._module(args, task_vars))
            return result
        try:
            local = self._find_needle('files', args['src'])
            algo, want = storefiles.parse_checksum(args['checksum']) if args.get('checksum') else ('sha256', None)
            digest = hashlib.new(algo)
            with open(local, 'rb') as f:
                for chunk in iter(lambda: f.read(storefiles.CHUNK), b''):
                    digest.update(chunk)
        except (AnsibleError, storefiles.ChecksumError, OSError) as e:
            result.update(failed=True, msg='src %s: %s' % (args['src'], to_text(e)))
            return result
        if want is not None and digest.hexdigest() != want:
            result.update(failed=True, msg='src %s (on the controller) has %s:%s, not the expected %s:%s; nothing '
                                           'was transferred' % (local, algo, digest.hexdigest(), algo, want))
            return result
        checksum = '%s:%s' % (algo, digest.hexdigest())
        try:
            sidecars = storefiles.sidecars_of(local)
            sidecar_checksums = storefiles.sidecar_digests(local)
        except OSError as e:
            result.update(failed=True, msg='the dm-verity sidecars of src %s: %s' % (local, to_text(e)))
            return result

        # Is it already stored, with these sidecars? The module answers without a source (stored=False when not).
        probe = dict(args, checksum=checksum, sidecar_checksums=sidecar_checksums)
        probe.pop('src')
        probe.pop('remote_src', None)
        res = self._module(probe, task_vars)
        if not (res.get('failed') and res.get('stored') is False):
            result.update(res)
            return result

        try:
            if self._connection._shell.tmpdir is None:
                self._make_tmp_path()
            remote = self._connection._shell.join_path(self._connection._shell.tmpdir, 'image.raw')
            self._transfer_file(local, remote)
            # beside it under the names systemd (and the module) look for: image.verity, image.roothash ...
            remote_sidecars = [remote[:-len(storefiles.SUFFIX)] + suffix for suffix in sidecars]
            for suffix, path in zip(sidecars, remote_sidecars):
                self._transfer_file(sidecars[suffix], path)
            self._fixup_perms2([self._connection._shell.tmpdir, remote] + remote_sidecars)
            result.update(self._module(dict(args, src=remote, remote_src=True, checksum=checksum), task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result
