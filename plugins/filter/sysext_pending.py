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
    description: Images wanted, each with C(name), C(version), C(class) (default V(sysext); C(kind), the older word, is taken too) and optionally C(checksum).
    type: list
    elements: dict
    required: true
  store_dir:
    description: The store directory of M(tucked.sysext.sysext_image).
    type: str
    default: /opt/extensions
  remove:
    description: Extensions that must be absent (names, or dicts with C(name) and C(class), or C(kind)).
    type: list
    elements: raw
    default: []
  controller_digests:
    description:
      - Checksums (C(ALGORITHM:HEX)) of controller files by path, as the
        P(tucked.sysext.sysext_digest#lookup) lookup returns them. They stand in for the missing
        O(wanted[].checksum) of wanted items that have a controller O(wanted[].src) (not C(remote_src)).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Gather the extension state
  tucked.sysext.sysext_facts:

- name: Say what is missing
  ansible.builtin.debug:
    msg: "{{ ansible_facts.sysext | tucked.sysext.sysext_pending(wanted, store_dir='/var/lib/tucked-sysext/store') }}"
  vars:
    wanted:
      - {name: docker, version: "27.3.1", checksum: "sha256:0d4a8d8c6c8e2e0b9a7d1f5a1ad5f7d62b9ac6a55e4f0e9d0cbb8f4aaf7e6b3c"}
"""

RETURN = r"""
_value:
  description: One sentence per difference, naming the class and the extension; empty when the host is current.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.tucked.sysext.plugins.module_utils import rollout


def _checksums(wanted, digests) -> dict:
    out = {}
    for item in wanted:
        if not isinstance(item, dict) or item.get('checksum') or item.get('remote_src') or not item.get('src'):
            continue
        digest = (digests or {}).get(item['src'])
        if digest and item.get('name'):
            out['%s/%s' % (rollout.class_of(item), item['name'])] = digest
    return out


def sysext_pending(facts, wanted, store_dir=rollout.DEFAULT_STORE_DIR, remove=(), controller_digests=None):
    if not isinstance(facts, dict) or 'images' not in facts:
        raise AnsibleFilterError('sysext_pending: the input must be ansible_facts.sysext (from tucked.sysext.sysext_facts)')
    if controller_digests is not None and not isinstance(controller_digests, dict):
        raise AnsibleFilterError('sysext_pending: controller_digests must be a dict of controller path to ALGORITHM:HEX')
    wanted = list(wanted or [])
    for item in wanted:
        version = item.get('version') if isinstance(item, dict) else None
        if version is not None and not isinstance(version, str):
            raise AnsibleFilterError('sysext_pending: %s version %r is a %s, not a string: quote it (version: "%s"); '
                                     'YAML reads an unquoted 1.10 as the number 1.1'
                                     % (item.get('name'), version, type(version).__name__, version))
    try:
        return rollout.pending_reasons(facts, wanted, store_dir, list(remove or []), _checksums(wanted, controller_digests))
    except (KeyError, TypeError) as e:
        raise AnsibleFilterError('sysext_pending: every wanted item needs name and version (%s)' % e) from None


class FilterModule:
    def filters(self):
        return {'sysext_pending': sysext_pending}
