# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysext_pending
short_description: What keeps a host from the wanted extension versions
version_added: 0.1.0
description:
  - Compares a host's C(ansible_facts.sysext) (from M(tucked.sysext.sysext_facts)) with the
    wanted images and returns the reasons the host is not current; an empty list when it is.
  - An image is current when the store file of the wanted version is the one systemd would
    merge, it matches the host, its cached digest equals the wanted checksum, and no refresh
    is needed. Anything unknown counts as pending, so that the real tasks then decide exactly.
  - The rollout playbook uses it so that a rollout with nothing to do costs one module call per host.
author:
  - The tucked.sysext team (@tucked)
options:
  _input:
    description: The host's C(ansible_facts.sysext).
    type: dict
    required: true
  wanted:
    description: Images wanted, each with C(name), C(version), C(kind) (default V(sysext)) and optionally C(checksum).
    type: list
    elements: dict
    required: true
  store_dir:
    description: The store directory of M(tucked.sysext.sysext_image).
    type: str
    default: /opt/extensions
  remove:
    description: Extensions that must be absent (names, or dicts with C(name) and C(kind)).
    type: list
    elements: raw
    default: []
  controller_stats:
    description:
      - The results of M(ansible.builtin.stat) with C(checksum_algorithm=sha256), looped over the
        wanted items that have a controller O(wanted[].src) and no O(wanted[].checksum) (each result
        carries its C(item)); their checksums stand in for the missing ones.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Gather the extension state
  tucked.sysext.sysext_facts:

- name: Say what is missing
  ansible.builtin.debug:
    msg: "{{ ansible_facts.sysext | tucked.sysext.sysext_pending(wanted, store_dir='/var/lib/tucked-sysext/store') }}"
  vars:
    wanted:
      - {name: docker, version: 27.3.1, checksum: "sha256:0d4a8d8c6c8e2e0b9a7d1f5a1ad5f7d62b9ac6a55e4f0e9d0cbb8f4aaf7e6b3c"}
"""

RETURN = r"""
_value:
  description: One sentence per difference, naming the class and the extension; empty when the host is current.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.tucked.sysext.plugins.module_utils import store


def _checksums(stats) -> dict:
    out = {}
    for r in stats or []:
        st, item = r.get('stat') or {}, r.get('item') or {}
        if st.get('exists') and st.get('checksum') and item.get('name'):
            out['%s/%s' % (item.get('kind', 'sysext'), item['name'])] = 'sha256:' + st['checksum']
    return out


def sysext_pending(facts, wanted, store_dir=store.DEFAULT_STORE_DIR, remove=(), controller_stats=()):
    if not isinstance(facts, dict) or 'images' not in facts:
        raise AnsibleFilterError('sysext_pending: the input must be ansible_facts.sysext (from tucked.sysext.sysext_facts)')
    try:
        return store.pending_reasons(facts, list(wanted or []), store_dir, list(remove or []),
                                     _checksums(controller_stats))
    except (KeyError, TypeError) as e:
        raise AnsibleFilterError('sysext_pending: every wanted item needs name and version (%s)' % e) from None


class FilterModule:
    def filters(self):
        return {'sysext_pending': sysext_pending}
