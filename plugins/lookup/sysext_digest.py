# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysext_digest
short_description: Checksums of image files on the controller, in the form sysext_image takes
version_added: 0.1.0
description:
  - Returns C(ALGORITHM:HEX) for each controller file given, computed on the controller without
    running a module, in the form the O(tucked.sysext.sysext_image#module:checksum) option and the
    P(tucked.sysext.sysext_pending#filter) filter take.
  - The rollout role uses it once per run for wanted images that have a controller C(src) but no
    C(checksum), so that a host with nothing to do is recognized from its facts alone.
author:
  - The tucked.sysext team (@tucked)
options:
  _terms:
    description:
      - Paths of files on the controller. A relative path is searched as C(ansible.builtin.copy)
        searches its O(ansible.builtin.copy#module:src) and as M(tucked.sysext.sysext_image)
        searches its O(tucked.sysext.sysext_image#module:src) (the C(files/) directory of the role,
        the role, the C(files/) directory of the playbook, the playbook's directory), so both find
        the same file.
    type: list
    elements: path
    required: true
  algorithm:
    description: The hash algorithm.
    type: str
    default: sha256
    choices: [sha256, sha384, sha512]
"""

EXAMPLES = r"""
- name: Select the image built on the controller, with its checksum
  tucked.sysext.sysext_image:
    name: tools
    version: "1.2"
    src: build/tools-1.2.raw
    checksum: "{{ lookup('tucked.sysext.sysext_digest', 'build/tools-1.2.raw') }}"
    state: selected
"""

RETURN = r"""
_raw:
  description: One C(ALGORITHM:HEX) string per term, in order.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.tucked.sysext.plugins.module_utils import storefiles


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        algo = self.get_option('algorithm')
        out = []
        for term in terms:
            path = self.find_file_in_search_path(variables or {}, 'files', term, ignore_missing=True)
            if path is None:
                raise AnsibleLookupError("sysext_digest: could not find the controller file %r in the files/ "
                                         "directories of the role and the playbook, nor in their directories "
                                         "(-vvvvv lists them): check the image path (src) in the wanted images, "
                                         "or give an absolute path" % (term,))
            try:
                out.append('%s:%s' % (algo, storefiles.file_digest(path, algo, use_cache=False)))
            except OSError as e:
                raise AnsibleLookupError('sysext_digest: cannot read the controller file %s (%s): check the '
                                         'image path (src) in the wanted images' % (path, e.strerror or e)) from None
        return out
