#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

# The documentation of the action plugin plugins/action/sysext_bootstrap.py, which does all the
# work on the controller (as ansible.builtin.raw's documentation sits in modules/raw.py).

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysext_bootstrap
short_description: Give a host without Python an interpreter, from a system extension, with raw commands only
version_added: 0.1.0
description:
  - The first task for hosts without Python (Flatcar Container Linux, Fedora CoreOS). It reaches
    the host only with raw commands over the connection and file transfers, never with a module,
    so it runs where nothing else of the collection can.
  - One raw command probes the host, for its os-release (C(/etc/os-release), else C(/usr/lib/os-release)),
    C(uname -m), the glibc version (C(getconf GNU_LIBC_VERSION), else the dynamic loader's C(--version)),
    C(systemd-sysext), and the interpreters C(/usr/lib/tucked-sysext/python/bin/python3) (or
    O(interpreter)), C(/usr/bin/python3), C(/usr/libexec/platform-python), C(/opt/bin/python3) and
    O(interpreters), in this order, up to the first that runs, imports C(json) and C(zlib) and is
    Python 3.9 or later.
  - When one is usable, the task changes nothing and sets C(ansible_facts.discovered_interpreter_python)
    to it, so that every later task of the play runs its modules with it. That is the whole run, one round trip.
  - Otherwise, with O(src), the image is read on the controller (without mounting) and checked against
    the host, for its release file as systemd-sysext matches it (C(ID), C(ARCHITECTURE)), C(systemd-sysext)
    present, and the host's glibc at least O(glibc_min). It is then transferred into the store of
    M(tucked.sysext.sysext_image), C(STORE_DIR/NAME/NAME-VERSION.raw), selected with the same relative
    symlink C(LINK_DIR/NAME.raw), and merged by the host's own C(systemd-sysext refresh), which merges
    every extension in its search path. The interpreter is run; when it does not work, the selection is
    undone, C(systemd-sysext refresh) runs again and the task fails with what the interpreter printed.
  - Later runs of the collection's modules see the image as one of their own stored versions, and their
    refreshes keep it merged.
  - Idempotent; a second run finds the interpreter and changes nothing.
author:
  - The tucked.sysext team (@tucked)
options:
  src:
    description:
      - The Python system extension image on the controller, C(NAME-VERSION.raw). A relative path is
        searched as M(ansible.builtin.copy) searches its C(src) (the C(files/) directories of the role
        and the playbook).
      - Built by M(tucked.sysext.sysext_python), or any image that provides O(interpreter).
      - Needed only when the host has no usable interpreter; without it such a host fails the task
        (unless O(probe_only=true)).
    type: path
  checksum:
    description:
      - V(sha256:HEX) (or sha384, sha512) the file O(src) must have; checked on the controller before anything
        is transferred. The transferred copy is checked on the host with C(sha256sum) either way.
    type: str
  name:
    description: The extension name; the image must carry C(extension-release.NAME).
    type: str
    default: tucked-python
  version:
    description:
      - The version the image is stored as. Default, from the file name C(NAME-VERSION.raw) of O(src).
      - Letters, digits, C(.), C(~), C(^) and C(-) only, as M(tucked.sysext.sysext_image) takes it.
    type: str
  glibc_min:
    description:
      - The oldest glibc the image runs on (M(tucked.sysext.sysext_python) returns it). The install is
        refused on a host with an older glibc, or whose C library is not glibc.
      - Default, the C(glibc_min) of the image's manifest C(/usr/lib/tucked-sysext/python/tucked-python.json);
        for an image without one, not checked.
    type: str
  interpreter:
    description:
      - The interpreter the image provides, probed first and verified after the merge.
      - Default, the C(interpreter) of the image's manifest, else C(/usr/lib/tucked-sysext/python/bin/python3).
        For Flatcar's C(flatcar-python) image, V(/usr/bin/python3).
    type: path
  interpreters:
    description: More interpreters to try, after the usual ones.
    type: list
    elements: path
    default: []
  store_dir:
    description: The store, as M(tucked.sysext.sysext_image) and the C(tucked.sysext.sysext) role use it.
    type: path
    default: /var/lib/tucked-sysext/store
  link_dir:
    description: The directory of the selecting symlink, one that C(systemd-sysext) searches.
    type: path
    default: /var/lib/extensions
  probe_only:
    description:
      - Only probe. Reports RV(needs_image) and sets the interpreter fact when one is usable; never changes anything.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description:
      - Probes (one round trip), checks the image on the controller, and reports what it would install. Writes nothing.
      - A host that would get the image has no interpreter in check mode, so later module tasks fail there.
  diff_mode:
    support: none
    description: The selection it changes is reported in RV(image) instead.
notes:
  - Run it with C(gather_facts=false) in the play (fact gathering is a module and needs Python); gather
    facts afterwards with M(ansible.builtin.setup) if needed.
  - C(become) is honoured as by M(ansible.builtin.raw). With become, the image is transferred to the login
    user's temporary directory and copied into the store by the raw command.
  - An C(ansible_python_interpreter) set in the inventory wins over the fact this task sets.
  - The only time the host's own C(systemd-sysext) merges for this collection. It merges every extension
    of its search path, not only this one, and on systemd 252 also unmerges and merges again what is merged.
  - The role C(tucked.sysext.bootstrap) builds the image on the controller when needed and runs this task.
seealso:
  - module: tucked.sysext.sysext_image
  - module: tucked.sysext.sysext_refresh
  - module: ansible.builtin.raw
"""

EXAMPLES = r"""
# The first task of a play with gather_facts: false on hosts without Python (Flatcar, Fedora CoreOS)
- name: Make sure a Python interpreter is there
  tucked.sysext.sysext_bootstrap:
    src: files/tucked-python-3.11.2-6.deb12u9.raw
    checksum: "sha256:5b0a1c0e0e5f8c3d2a7b9e1f4c6d8a0b2c4e6f8a1b3d5f7092a4c6e8b0d2f4a6"
    glibc_min: "2.36"
  become: true

- name: Every later task runs its modules with it
  tucked.sysext.sysext_facts:

- name: Flatcar's own Python extension, downloaded to the controller before
  tucked.sysext.sysext_bootstrap:
    src: files/flatcar-python-4081.2.0.raw
    name: flatcar-python
    interpreter: /usr/bin/python3
  become: true

- name: Which hosts need an image? (changes nothing)
  tucked.sysext.sysext_bootstrap:
    probe_only: true
  register: probe
"""

RETURN = r"""
interpreter:
  description: The usable interpreter, also set as C(ansible_facts.discovered_interpreter_python).
  returned: when one is usable (or would be, in check mode)
  type: str
  sample: /usr/lib/tucked-sysext/python/bin/python3
python_version:
  description: Its version.
  returned: when an interpreter is usable
  type: str
  sample: 3.11.2
source:
  description: V(existing) when the interpreter was there, V(installed) when this task installed the image.
  returned: when an interpreter is usable
  type: str
  sample: existing
needs_image:
  description: Whether the probe found no usable interpreter (true also when this task then installed one).
  returned: always (unless the probe failed)
  type: bool
  sample: false
tried:
  description: The candidates that are not usable, and why.
  returned: always (unless the probe failed)
  type: list
  elements: str
  sample: ["/usr/lib/tucked-sysext/python/bin/python3: not found", "/usr/bin/python3: not found"]
os:
  description: C(ID) and C(VERSION_ID) of the host's os-release, and the file read.
  returned: always (unless the probe failed)
  type: dict
  sample: {id: flatcar, version_id: "4081.2.0", file: /etc/os-release}
architecture:
  description: The host's architecture as systemd names it (C(uname -m) is in RV(machine)).
  returned: always (unless the probe failed)
  type: str
  sample: x86-64
machine:
  description: What C(uname -m) printed.
  returned: always (unless the probe failed)
  type: str
  sample: x86_64
glibc:
  description: The host's glibc version; null when it has none or it cannot be read.
  returned: always (unless the probe failed)
  type: str
  sample: "2.36"
systemd_sysext:
  description: The path and version of the host's C(systemd-sysext); null when it has none.
  returned: always (unless the probe failed)
  type: dict
  sample: {path: /usr/bin/systemd-sysext, version: "systemd 252 (252.39-1~deb12u1)"}
image:
  description: The image installed (or that would be, or could not be).
  returned: when an image was needed and O(src) given
  type: dict
  sample:
    name: tucked-python
    version: 3.11.2-6.deb12u6
    src: /home/me/project/files/tucked-python-3.11.2-6.deb12u6.raw
    checksum: "sha256:5b0a1c0e0e5f8c3d2a7b9e1f4c6d8a0b2c4e6f8a1b3d5f7092a4c6e8b0d2f4a6"
    stored: /var/lib/tucked-sysext/store/tucked-python/tucked-python-3.11.2-6.deb12u6.raw
    link: /var/lib/extensions/tucked-python.raw
    target: ../tucked-sysext/store/tucked-python/tucked-python-3.11.2-6.deb12u6.raw
    transferred: true
    glibc_min: "2.35"
    python_version: 3.11.2
    checked: release file read on the controller and matched against the host
refresh_output:
  description: What the host's C(systemd-sysext refresh) printed.
  returned: when the image was merged
  type: str
  sample: "Using extensions 'tucked-python'.\nMerged extensions into '/usr'."
undo_output:
  description: What C(systemd-sysext refresh) printed after the selection was undone.
  returned: when the verification failed
  type: str
"""
