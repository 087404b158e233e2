#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysext_sysupdate
short_description: Read a host's systemd-sysupdate transfer definitions
version_added: 0.1.0
description:
  - Reads the transfer definitions C(systemd-sysupdate) reads on the host, C(sysupdate.d) and C(sysupdate.NAME.d)
    (C(-C NAME)) in C(/etc), C(/run), C(/usr/local/lib) and C(/usr/lib), as systemd 262 reads them. An earlier
    directory masks a file of the same name in a later one, C(*.transfer) files and only without any C(*.conf)
    files, each file's drop-ins C(FILE.d/*.conf), the defaults systemd fills in (the target's C(MatchPattern=)
    the source's, C(InstancesMax=3), C(Verify=yes)).
  - A value systemd ignores with a warning is reported in the transfer's C(warnings) with the file and line; a
    definition systemd refuses is reported with C(invalid) naming why.
  - Returns in RV(images) the entries of the role M(tucked.sysext.sysext)'s C(sysext_images) for the transfers
    it can roll out (a C(url-file) source with a C(regular-file) target selected by an absolute
    C(CurrentSymlink=)); the others are in RV(transfers) with C(supported=false) and C(unsupported) saying why.
  - This is what C(sysext_sysupdate) of the role uses, so that hosts laid out for systemd-sysupdate (Flatcar's
    sysext-bakery, C(/opt/extensions/NAME), C(CurrentSymlink=/etc/extensions/NAME.raw)) are rolled out with
    their own definitions.
  - Reads only; changes nothing.
extends_documentation_fragment:
  - tucked.sysext.bytecode
author:
  - The tucked.sysext team (@tucked)
options:
  root:
    description: The root the definitions are read in, like C(systemd-sysupdate --root=).
    type: path
    default: /
  components:
    description:
      - The components to read, each the NAME of C(sysupdate.NAME.d); the empty string is C(sysupdate.d).
      - Default every component found and C(sysupdate.d).
    type: list
    elements: str
attributes:
  check_mode:
    support: full
    description: Reads only, in check mode as in a normal run.
  diff_mode:
    support: none
    description: Nothing changes, so there is no difference to show.
seealso:
  - module: tucked.sysext.sysext_image
  - name: sysupdate.d(5)
    description: The transfer definitions of systemd-sysupdate.
    link: https://www.freedesktop.org/software/systemd/man/latest/sysupdate.d.html
"""

EXAMPLES = r"""
- name: Read the transfer definitions of the docker component
  tucked.sysext.sysext_sysupdate:
    components: [docker]
  register: transfers

- name: Roll out what they describe
  tucked.sysext.sysext_image:
    name: "{{ item.name }}"
    version: "{{ item.version }}"
    repository: "{{ item.repository }}"
    match_pattern: "{{ item.match_pattern }}"
    store_dir: "{{ item.store_dir }}"
    store_pattern: "{{ item.store_pattern }}"
    link_dir: "{{ item.link_dir }}"
    keep: "{{ item.keep }}"
  loop: "{{ transfers.images }}"
  loop_control:
    label: "{{ item.name }}"
"""

RETURN = r"""
transfers:
  description:
    - Every transfer definition read, in the order of the components and file names. Each has C(id), C(file) (the
      in-root path), C(component), C(dropins), C(source) and C(target) (C(type), C(path), C(path_relative_to),
      C(match_pattern); the target also C(current_symlink)), C(instances_max), C(keep) (C(instances_max) - 1),
      C(verify), C(min_version), C(max_version), C(protect_version), C(features), C(requisite_features),
      C(settings) (keys read but not used, as written), C(supported), C(invalid), C(unsupported) and C(warnings).
    - C(Path=), C(CurrentSymlink=) and the versions have their specifiers expanded with the root's architecture and
      os-release; the C(match_pattern) lists are as written (M(tucked.sysext.sysext_image) expands them).
  returned: always
  type: list
  elements: dict
  sample: [{"id": "docker", "file": "/etc/sysupdate.docker.d/docker.conf", "component": "docker",
            "source": {"type": "url-file", "path": "https://extensions.flatcar.org/extensions/docker",
                       "path_relative_to": "root", "match_pattern": ["docker-@v-%a.raw"]},
            "target": {"type": "regular-file", "path": "/opt/extensions/docker", "path_relative_to": "root",
                       "match_pattern": ["docker-@v-%a.raw"], "current_symlink": "/etc/extensions/docker.raw"},
            "instances_max": 3, "keep": 2, "verify": false, "supported": true, "invalid": null,
            "unsupported": null, "warnings": []}]
images:
  description:
    - For each supported transfer, the entry of the role's C(sysext_images) that rolls it out - C(name) (from
      C(CurrentSymlink=)), C(version) (C(latest), or the C(MinVersion=)/C(MaxVersion=) bounds), C(repository)
      (C(Source Path=)), C(match_pattern), C(store_dir) (C(Target Path=)), C(store_pattern) (the target's
      patterns), C(link_dir), C(keep), C(verify), C(transfer) (the file) and C(component).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "docker", "version": "latest", "repository": "https://extensions.flatcar.org/extensions/docker",
            "match_pattern": ["docker-@v-%a.raw"], "store_dir": "/opt/extensions/docker",
            "store_pattern": ["docker-@v-%a.raw"], "link_dir": "/etc/extensions", "keep": 2, "verify": false,
            "transfer": "/etc/sysupdate.docker.d/docker.conf", "component": "docker"}]
refused:
  description: For each transfer that is not supported, why (C(invalid) or C(unsupported), naming the file).
  returned: always
  type: list
  elements: str
  sample: ["/usr/lib/sysupdate.d/50-usr.transfer: a url-file source with a partition target is not an extension image
            this collection rolls out (only Source Type=url-file with Target Type=regular-file is)"]
keyring:
  description:
    - The in-root keyring systemd-pull verifies a C(SHA256SUMS.gpg) with (C(/etc/systemd/import-pubring.pgp),
      C(/etc/systemd/import-pubring.gpg) or C(/usr/lib/systemd/import-pubring.pgp), the first there), or V(null).
  returned: always
  type: str
  sample: /usr/lib/systemd/import-pubring.pgp
"""

from ansible.module_utils.basic import AnsibleModule

# first: from here on, the compiled code of this collection's module_utils is cached on the target
from ansible_collections.tucked.sysext.plugins.module_utils import bytecode  # noqa: F401 pylint: disable=unused-import
from ansible_collections.tucked.sysext.plugins.module_utils import sysupdate
from ansible_collections.tucked.sysext.plugins.module_utils.sysupdatepattern import host_of

ARGUMENT_SPEC = {
    'root': {'type': 'path', 'default': '/'},
    'components': {'type': 'list', 'elements': 'str'},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    root = module.params['root']
    try:
        transfers = sysupdate.read_all(root, module.params['components'], host_of(root))
    except sysupdate.SysupdateError as e:
        module.fail_json(msg=str(e))
    for t in transfers:
        for w in t.warnings:
            module.warn(w)
    module.exit_json(changed=False, transfers=[t.as_dict() for t in transfers],
                     images=[sysupdate.image_entry(t) for t in transfers if t.supported],
                     refused=[t.invalid or t.unsupported for t in transfers if not t.supported],
                     keyring=sysupdate.host_keyring(root))


if __name__ == '__main__':
    main()
