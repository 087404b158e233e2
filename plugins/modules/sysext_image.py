#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysext_image
short_description: Store versions of an extension image, select one, roll back, remove
version_added: 0.1.0
description:
  - Keeps versions of an extension image side by side in a store directory
    (C(STORE_DIR/NAME/NAME-VERSION.raw)) and selects the active one with a relative symlink
    in a directory that systemd searches (C(LINK_DIR/NAME.raw)), the layout of sysext-bakery
    and systemd-sysupdate. Merging is left to M(tucked.sysext.sysext_refresh), so that many
    images change with one refresh.
  - The image comes from the controller (O(src)), from a file on the target
    (O(src) with O(remote_src=true)), from O(url) with a mandatory O(checksum), or from a
    O(repository) (see below). Data is
    written to a C(.#) temporary file in the store directory and renamed into place only once
    complete and verified. A wrong checksum, a truncated download or a full disk never
    replaces a good image, and leaves no partial file.
  - Before an image is selected, its extension-release is read (without mounting) and matched
    against the target's os-release the way systemd-sysext does, and the image policy that
    M(tucked.sysext.sysext_refresh) will apply is checked (O(image_policy)); an incompatible
    image is refused and nothing changes.
  - The dm-verity sidecars beside O(src) (C(NAME.verity), C(NAME.roothash), C(NAME.roothash.p7s),
    C(NAME.usrhash), C(NAME.usrhash.p7s) for C(NAME.raw), as M(tucked.sysext.sysext_build) with
    C(verity=true) writes them and as systemd looks for them) are transferred and stored beside the
    version (C(NAME-VERSION.verity) ...), checked with it against the image policy, and removed with
    it. With O(url) no sidecars are downloaded (not supported yet), so the stored image has none.
    The sidecars are renamed into place just before the image; a run killed between the two
    leaves a version whose sidecars do not match it, which the next run replaces.
  - With O(repository), the image is chosen from a published repository, a directory of versioned files
    with a C(SHA256SUMS) index (flatcar/sysext-bakery's and fedora-sysexts' layout, what
    systemd-sysupdate's C(url-file) sources read). On the controller, the index is fetched once per play
    (not once per host), its signature C(SHA256SUMS.gpg) verified with C(gpgv) when O(keyring) is given,
    and parsed as systemd-sysupdate parses it. Its file names are matched against O(match_pattern), the
    syntax of systemd-sysupdate's C(MatchPattern=), after the target's values replace the specifiers
    (C(%a) its architecture); of the versions O(version) allows, the newest in systemd's version order
    comes first. The module then stores it as for O(url) and O(checksum) (for a controller directory, as
    for a controller O(src)). The checksum is the index's, verified before the image is renamed into place.
  - The host's architecture and os-release fields are matched before the download, through the
    specifiers of the pattern (C(%a), C(%w) ...). The image's extension-release can only be read after the
    download, and it is checked before the image is renamed into place (with O(state=selected)); an image
    that does not fit is removed again, nothing changes, and the next older version that O(version)
    allows is tried (C(refused) in RV(repository) lists those passed over). So a repository whose newest image
    never fits a host costs that download on every run.
  - Only C(STORE_DIR/NAME/NAME-VERSION.raw) files are this module's versions. Files of other tools
    in the same directory, such as sysext-bakery's and systemd-sysupdate's C(NAME-VERSION-ARCH.raw)
    (the architecture as systemd names it, C(x86-64), C(arm64) ...), are reported in RV(unmanaged)
    and never pruned or removed; a link to one of them is replaced by the selection, the file stays.
  - When an entry of the same name in a directory systemd searches earlier shadows the link, the
    module warns and returns it in RV(shadowed_by).
  - With O(state=query), the module only reports what the store holds (RV(versions)), what the link
    selects (RV(selected)) and the newest version the source offers this host (RV(available)), and whether
    that one is stored already (RV(stored)); nothing is downloaded, transferred or written.
  - Idempotent. When the version is already stored with the same checksum and selected,
    nothing is copied and the task reports no change. The checksum of a stored file is cached in the
    C(user.tucked.digest) xattr, keyed by size, mtime and inode, so such a run reads no image data.
extends_documentation_fragment:
  - tucked.sysext.bytecode
author:
  - The tucked.sysext team (@tucked)
options:
  name:
    description:
      - The extension name; the link is C(NAME.raw) and the image must carry
        C(extension-release.NAME) (or a single release file marked
        C(user.extension-release.strict=false)).
    type: str
    required: true
  version:
    description:
      - The version to store, select or remove, a string (quote it in YAML, since an unquoted C(1.10) is the
        number 1.1, and a version that is not a string is refused). Versions are ordered with systemd's
        C(strverscmp_improved()) (C(1.10) is newer than C(1.9), C(2~rc1) older than C(2)), so only
        letters, digits, C(.), C(~), C(^) and C(-) are allowed. C(NAME-VERSION.raw) may be at most 232 bytes long
        (the store's temporary and sidecar files add to it, within the file system's 255).
      - Required with O(state=present) and O(state=selected) unless O(rollback=true) or O(repository) is given.
      - With O(state=query) and without O(repository), the version the source offers (RV(available)); it may be
        left out, and RV(available) is then V(null).
      - With O(repository), V(latest) (the default there, the newest version the patterns match), an exact
        version (compared as a string with the C(@v) field of the file names), or constraints separated by
        commas, each one of the operators C(>=), C(>), C(<=), C(<), C(==), C(!=) and a version, compared with
        systemd's version order (V(>=1.2,<2) takes C(1.10) and C(2~rc1) but not C(2)).
    type: str
  class:
    description:
      - Whether the image is a system extension or a configuration extension (systemd's image class).
      - C(kind) is the older name of this option, kept as an alias.
    type: str
    choices: [sysext, confext]
    default: sysext
    aliases: [kind]
  state:
    description:
      - V(present) the version is in the store (the selection does not change).
      - V(selected) the version is in the store and the link points to it.
      - V(absent) with O(version), that version is removed from the store (refused while it is
        selected); without O(version), the link and every stored version of O(name) are removed.
        Removing the extension the task's own interpreter comes from is refused unless O(force=true).
      - V(query) changes nothing and downloads nothing. It returns the stored versions (RV(versions)), the selected
        one (RV(selected)) and RV(available), the newest version the source offers this host, which is O(version)
        without O(repository). With O(repository) it is the version the next run with O(state=selected) would try
        first; the index is fetched on the controller (once per play) and the choice made as for that run, but no
        image is downloaded, so its extension-release is not checked.
      - With V(query), RV(stored) tells whether RV(available) is in the store already (with the checksum of the
        index or of O(checksum), when there is one); when it is not, the next run downloads it (C(url) of RV(repository),
        O(url)) or transfers it (its C(src), O(src)). A controller O(src) is neither read nor transferred.
        What is merged is reported by M(tucked.sysext.sysext_facts).
    type: str
    choices: [present, selected, absent, query]
    default: selected
  src:
    description:
      - A file on the controller (searched like C(ansible.builtin.copy) searches, in C(files/)),
        transferred only when the store does not already hold it; or, with O(remote_src=true), a
        file on the target.
    type: path
  remote_src:
    description: Whether O(src) is a path on the target rather than on the controller.
    type: bool
    default: false
  url:
    description: Download the image from this URL (O(checksum) is then required).
    type: str
  checksum:
    description:
      - The expected checksum, V(sha256:HEX) (also V(sha384:) and V(sha512:); bare hex is sha256).
        Required with O(url). With O(src), the copy is verified against it.
    type: str
  url_timeout:
    description: Timeout in seconds for each read of the download (and of the O(repository) index).
    type: int
    default: 30
  validate_certs:
    description: Whether HTTPS certificates are verified (of the download and of the O(repository) index).
    type: bool
    default: true
  keep:
    description:
      - How many versions older than the selected one stay in the store for O(rollback).
        Versions newer than the selected one (staged) are never removed.
    type: int
    default: 2
  rollback:
    description:
      - Select the newest stored version older than O(version) (or, without O(version), older
        than the newest stored one). Running it again selects the same version, so it is idempotent.
    type: bool
    default: false
  image_policy:
    description:
      - The image policy (systemd.image-policy(7)) an image must meet to be selected, the one
        the following M(tucked.sysext.sysext_refresh) will use, so give both the same value.
      - When not given, C(ImagePolicy=) of the root's C(sysext.conf) / C(confext.conf) applies,
        else systemd's default, which any plain squashfs or erofs image meets.
      - Checked only when selecting (O(state=selected)); storing (O(state=present)) does not check it.
    type: str
  sidecar_checksums:
    description:
      - The checksums (V(sha256:HEX)) of the dm-verity sidecars the stored version must have beside
        it, by suffix (C(.verity), C(.roothash), C(.roothash.p7s), C(.usrhash), C(.usrhash.p7s)).
      - Set by the action plugin from the sidecars beside a controller O(src); there is no need to set it.
    type: dict
  force:
    description:
      - Remove also the extension that provides the interpreter this task runs on.
      - Without it, O(state=absent) of an extension that is merged now and whose image holds the task's
        interpreter (C(sys.executable), symlinks resolved, in a hierarchy under O(root)) fails before anything
        is changed, naming the interpreter and the fix, unless a version that stays selected or another
        merged extension holds it too. That is the case on a host without Python of its own (Flatcar,
        Fedora CoreOS), where the interpreter comes from an extension such as C(tucked-python).
      - Pruning (O(keep)) never removes the selected version; without O(force) it also keeps an older version
        that is merged now and holds the interpreter while the selected one does not, with a warning.
    type: bool
    default: false
  repository:
    description:
      - Where the image is chosen from; the directory that holds the C(SHA256SUMS) index and the files it lists.
      - An C(http://) or C(https://) URL (the index is fetched by the controller, the image by the target), a
        C(file://) URL (a path that the controller and the target both see), or a directory on the controller
        (a relative one is searched like O(src), in C(files/)), whose chosen file is transferred as a
        controller O(src) is.
      - C(SHA256SUMS) has one line per file as C(sha256sum) writes it, C(HEX  NAME) or C(HEX *NAME); a line
        that is not, an absolute or unnormalized path (a file in a subdirectory, C(sub/NAME), is read and matched by a
        pattern naming C(sub/)), or an index that does not end in a newline is refused, as
        systemd-sysupdate refuses it, and so is an index with a C(BEST-BEFORE-YYYY-MM-DD) entry whose date
        has come (from that day on).
      - Not with O(src), O(url), O(checksum) or O(remote_src). With O(state=absent) or O(rollback=true) nothing
        is fetched.
    type: str
  match_pattern:
    description:
      - Patterns for the file names of O(repository), in the syntax of systemd-sysupdate's C(MatchPattern=)
        (sysupdate.d(5)); the first pattern that matches a file gives its version. Default V(NAME-@v-%a.raw)
        (sysext-bakery's layout).
      - C(@v) the version (required); C(@u) partition UUID, C(@f) partition flags, C(@t) modification time,
        C(@m) mode, C(@s) size, C(@d) tries done, C(@l) tries left, C(@a) no-auto flag, C(@r) read-only flag,
        C(@g) growfs flag, C(@h) SHA256 sum are parsed and validated as systemd does (a file whose field does
        not parse does not match), and a C(@h) must equal the sum in the index, but only C(@v) chooses;
        C(@@) is an at sign. Unknown fields are refused, naming the pattern.
      - Specifiers are replaced first, by the target's values, as in a transfer file; C(%a) the
        architecture in systemd's names (C(x86-64), C(arm64) ...), C(%o) C(ID), C(%w) C(VERSION_ID), C(%W)
        C(VARIANT_ID), C(%M) C(IMAGE_ID), C(%A) C(IMAGE_VERSION), C(%B) C(BUILD_ID) of its os-release (empty
        when the field is not there), C(%%) a percent sign. The specifiers of machine state (C(%b), C(%H),
        C(%l), C(%q), C(%m), C(%v), C(%T), C(%V)) are refused.
    type: list
    elements: str
  keyring:
    description:
      - A keyring file on the controller (as C(gpg --export KEYID > FILE) writes it). The index's detached
        signature C(SHA256SUMS.gpg) must then be a good signature by one of its keys (C(gpgv --keyring) on
        the controller); an index without one, or signed with another key, is refused and nothing changes.
      - Without it (and without O(remote_keyring)), the index is not verified.
    type: path
  remote_keyring:
    description:
      - A keyring file on the target (in O(root)), fetched to the controller and used as O(keyring) is, such as
        the one systemd-pull verifies a systemd-sysupdate transfer with (C(/usr/lib/systemd/import-pubring.pgp)).
      - O(keyring) wins when both are given.
    type: path
  probe_host:
    description:
      - Only report the target's architecture and os-release (RV(architecture), RV(os_release)), and change nothing.
      - Set by the action plugin to choose from a O(repository); there is no need to set it.
    type: bool
    default: false
  root:
    description: The root the directories are in, like C(systemd-sysext --root=).
    type: path
    default: /
  store_dir:
    description:
      - Where versions are kept, one sub-directory per name. Must not be a directory that
        systemd searches for extensions.
      - Keep it writable. C(/opt) turns read-only while a merged sysext provides C(/opt).
    type: path
    default: /opt/extensions
  store_pattern:
    description:
      - Name the stored versions as a systemd-sysupdate transfer's target C(MatchPattern=) does (C(@v) the
        version, the specifiers C(%a) (the target's architecture in systemd's names) and C(%o %w %W %M %A %B)
        (its os-release) expanded on the target), such as C(docker-@v-%a.raw). The versions are then in
        O(store_dir) itself, the transfer's C(Target Path=), not in a sub-directory per name.
      - The first pattern names a new version's file; every one recognizes the stored versions, which are
        selected, kept and pruned (O(keep)) like the module's own. Other files in O(store_dir) are left alone.
      - Only C(@v) may be used (no other field, no C(/)), and the name must end in C(.raw).
      - The role passes a transfer's patterns here (see C(sysext_sysupdate) of M(tucked.sysext.sysext)).
    type: list
    elements: str
  link_dir:
    description:
      - The search directory where C(NAME.raw) selects the version.
      - Default C(/etc/extensions) for sysexts and C(/var/lib/confexts) for confexts.
        systemd-confext does not search C(/etc/confexts).
      - C(/etc) is read-only while confexts are merged over it. On such hosts use
        C(/var/lib/extensions) for sysexts.
    type: path
attributes:
  check_mode:
    support: full
    description:
      - Reports what would be stored, selected and removed, and writes nothing.
      - A file from the controller is still transferred to a temporary directory, to check it.
      - With O(repository), the index is fetched and verified and the version chosen; RV(repository) says which
        file would be downloaded from where, and nothing is downloaded (so its extension-release is not checked).
      - O(state=query) runs the same in check mode as without it (it never changes anything).
  diff_mode:
    support: full
    description:
      - The selected version and the stored versions, before and after.
      - O(state=query) returns no diff (nothing changes).
notes:
  - Run M(tucked.sysext.sysext_refresh) afterwards (once, for example from a handler) to merge the selection.
seealso:
  - module: tucked.sysext.sysext_refresh
  - module: tucked.sysext.sysext_build
"""

EXAMPLES = r"""
- name: Roll out docker 27.3.1 from the controller, keeping two older versions
  tucked.sysext.sysext_image:
    name: docker
    version: "27.3.1"
    src: images/docker-27.3.1.raw
  notify: Refresh extensions

- name: Download a kubelet image, verified, without selecting it yet
  tucked.sysext.sysext_image:
    name: kubelet
    version: "1.31.2"
    url: https://example.com/sysext/kubelet-1.31.2-x86-64.raw
    checksum: sha256:0d4a8d8c6c8e2e0b9a7d1f5a1ad5f7d62b9ac6a55e4f0e9d0cbb8f4aaf7e6b3c
    state: present

- name: The newest docker for this host's architecture from a bakery-style repository, its index signed
  tucked.sysext.sysext_image:
    name: docker
    version: latest
    repository: https://sysext.example.com/docker/
    match_pattern: ["docker-@v-%a.raw"]
    keyring: keys/sysext-example.gpg
  notify: Refresh extensions

- name: Kubelet 1.31.x for this Fedora release, from a directory on the controller holding SHA256SUMS
  tucked.sysext.sysext_image:
    name: kubelet
    version: ">=1.31,<1.32"
    repository: repo/kubelet
    match_pattern: ["kubelet-@v-%w-%a.raw"]
  notify: Refresh extensions

- name: Roll back from a broken 27.3.1 (idempotent)
  tucked.sysext.sysext_image:
    name: docker
    version: "27.3.1"
    rollback: true
  notify: Refresh extensions

- name: A confext with site configuration
  tucked.sysext.sysext_image:
    name: site
    class: confext
    version: "7"
    src: images/site-7.raw

- name: Select only erofs images, the policy the refresh below uses too
  tucked.sysext.sysext_image:
    name: monitor
    version: "3.1"
    src: images/monitor-3.1.raw
    image_policy: root=unprotected+erofs
  notify: Refresh extensions (with image_policy root=unprotected+erofs)

- name: What is stored and selected, and the newest docker the repository has for this host (nothing is downloaded)
  tucked.sysext.sysext_image:
    name: docker
    version: latest
    repository: https://sysext.example.com/docker/
    state: query
  register: docker_update

- name: Say when this host is behind
  ansible.builtin.debug:
    msg: >-
      docker {{ docker_update.selected }} is selected, {{ docker_update.available }} is available
      {{- '' if docker_update.stored else ' (not stored yet: ' ~ docker_update.repository.url ~ ')' }}
  when: docker_update.available != docker_update.selected

- name: Remove an extension entirely
  tucked.sysext.sysext_image:
    name: monitor
    state: absent

- name: Remove the Python extension too, although this play's tasks run on it (the last task on this host)
  tucked.sysext.sysext_image:
    name: tucked-python
    state: absent
    force: true
"""

RETURN = r"""
name:
  description: The extension name.
  returned: always
  type: str
class:
  description: V(sysext) or V(confext).
  returned: always
  type: str
kind:
  description: The same as RV(class), under its older name (kept for now).
  returned: always
  type: str
version:
  description: The version this run stored, selected, rolled back to or removed (with O(state=query), RV(available)).
  returned: always
  type: str
  sample: 27.3.1
selected:
  description: The version selected after the run (V(null) when none).
  returned: always
  type: str
previous:
  description: The version selected before the run.
  returned: always
  type: str
path:
  description: The in-root path of that version in the store.
  returned: always
  type: str
  sample: /opt/extensions/docker/docker-27.3.1.raw
link:
  description: The in-root path of the selecting symlink.
  returned: always
  type: str
  sample: /etc/extensions/docker.raw
versions:
  description: The versions in the store after the run, oldest first (systemd's order); with O(state=query), those stored.
  returned: always
  type: list
  elements: str
stored:
  description:
    - Whether the version is in the store after the run.
    - With O(state=query), whether RV(available) is stored (with the expected checksum, when there is one); V(false)
      when RV(available) is V(null).
  returned: always
  type: bool
copied:
  description: Whether image data was copied or downloaded into the store.
  returned: always
  type: bool
removed:
  description: In-root paths removed (old versions beyond O(keep), or what O(state=absent) removed).
  returned: always
  type: list
  elements: str
checksum:
  description: The checksum of the version's file, V(ALGORITHM:HEX).
  returned: always
  type: str
release:
  description: The image's extension-release fields, when it was checked for selection.
  returned: always
  type: dict
compatible:
  description: Whether the image matches the target (V(null) when it was not checked).
  returned: always
  type: bool
compatibility:
  description: Why the image matches or not, in systemd's words.
  returned: always
  type: str
unmanaged:
  description:
    - In-root paths of files in this name's store directory that are not this module's versions,
      such as the C(NAME-VERSION-ARCH.raw) files of sysext-bakery and systemd-sysupdate. They are
      never selected, pruned or removed.
  returned: always
  type: list
  elements: str
  sample: [/opt/extensions/docker/docker-27.3.1-x86-64.raw]
sidecars:
  description: In-root paths of the dm-verity sidecars stored (in check mode, to be stored) beside the version.
  returned: always
  type: list
  elements: str
  sample: [/opt/extensions/docker/docker-27.3.1.roothash, /opt/extensions/docker/docker-27.3.1.verity]
interpreter:
  description:
    - When the removal was refused because it would take away the interpreter this task runs on (see O(force)), this holds
      the interpreter (C(executable), resolved C(path)), its C(hierarchy) and C(class), the C(extensions) it
      comes from and the C(image) merged now.
  returned: when refused for that reason
  type: dict
  sample: {"executable": "/usr/lib/tucked-sysext/python/bin/python3", "path": "/usr/lib/tucked-sysext/python/bin/python3.11",
           "hierarchy": "/usr", "class": "sysext", "extensions": ["tucked-python"],
           "image": "/var/lib/tucked-sysext/store/tucked-python/tucked-python-3.11.2-6.deb12u6.raw"}
repository:
  description:
    - With O(repository), what was chosen. C(index) the index read (URL or controller path), C(signed) whether
      its signature was verified, C(cached) whether another host of the play had fetched it already,
      C(architecture) the target's, C(patterns) the patterns with the specifiers replaced, C(file) the file
      chosen, C(url) or C(src) where it comes from, C(checksum) its sum in the index, C(refused) the newer
      files passed over because the target refused them (C(file), C(version), C(reason)).
    - With O(state=query), the same for RV(available) (no C(file), C(url), C(src) or C(checksum) when it is V(null), and
      C(reason) says why); C(refused) lists only the versions the store cannot hold, since nothing is downloaded.
  returned: when O(repository) is given and the index was read
  type: dict
  sample: {"index": "https://example.com/ext/SHA256SUMS", "signed": true, "cached": false, "architecture": "x86-64",
           "patterns": ["docker-@v-x86-64.raw"], "file": "docker-27.3.1-x86-64.raw",
           "url": "https://example.com/ext/docker-27.3.1-x86-64.raw", "src": null,
           "checksum": "sha256:0d4a8d8c6c8e2e0b9a7d1f5a1ad5f7d62b9ac6a55e4f0e9d0cbb8f4aaf7e6b3c", "refused": []}
architecture:
  description: The target's architecture in systemd's names (with O(probe_host) only).
  returned: with O(probe_host)
  type: str
  sample: x86-64
os_release:
  description: The fields of the target's os-release (with O(probe_host) only; empty when it has none).
  returned: with O(probe_host)
  type: dict
os_release_error:
  description: Why the os-release could not be read, else V(null) (with O(probe_host) only).
  returned: with O(probe_host)
  type: str
available:
  description:
    - With O(state=query), the newest version the source offers this host, V(null) when there is none.
    - With O(repository), the newest version of the index that O(version) allows, fits the host's architecture
      (and the os-release fields the patterns name) and the store can hold; V(null) when none does (then
      C(reason) in RV(repository) says why). Else O(version).
  returned: with O(state=query)
  type: str
  sample: 27.3.1
link_problem:
  description:
    - With O(state=query), why the link (RV(link)) is not this module's when it exists but is a file, a dangling
      symlink, or a symlink outside the store (RV(selected) is then V(null)), else V(null).
  returned: with O(state=query)
  type: str
shadowed_by:
  description:
    - An entry of the same name in a directory systemd searches before the link's (sysext
      C(/etc/extensions), C(/run/extensions), C(/var/lib/extensions); confext C(/run/confexts),
      C(/var/lib/confexts), ...). systemd merges that entry, not the selected version; a warning says so.
    - V(null) when nothing shadows the selection.
  returned: always
  type: str
  sample: /etc/extensions/docker.raw
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import fetch_url

# first: from here on, the compiled code of this collection's module_utils is cached on the target
from ansible_collections.tucked.sysext.plugins.module_utils import bytecode  # noqa: F401 pylint: disable=unused-import
from ansible_collections.tucked.sysext.plugins.module_utils import store, storequery

ARGUMENT_SPEC = {
    'name': {'type': 'str', 'required': True},
    'version': {'type': 'str'},
    'class': {'type': 'str', 'choices': ['sysext', 'confext'], 'default': 'sysext', 'aliases': ['kind']},
    'state': {'type': 'str', 'choices': list(store.STATES) + ['query'], 'default': 'selected'},
    'src': {'type': 'path'},
    'remote_src': {'type': 'bool', 'default': False},
    'url': {'type': 'str'},
    'checksum': {'type': 'str'},
    'url_timeout': {'type': 'int', 'default': 30},
    'validate_certs': {'type': 'bool', 'default': True},
    'keep': {'type': 'int', 'default': 2},
    'rollback': {'type': 'bool', 'default': False},
    'image_policy': {'type': 'str'},
    'sidecar_checksums': {'type': 'dict'},
    'force': {'type': 'bool', 'default': False},
    'repository': {'type': 'str'},
    'match_pattern': {'type': 'list', 'elements': 'str'},
    'keyring': {'type': 'path'},
    'remote_keyring': {'type': 'path'},
    'probe_host': {'type': 'bool', 'default': False},
    'root': {'type': 'path', 'default': '/'},
    'store_dir': {'type': 'path', 'default': store.DEFAULT_STORE_DIR},
    'link_dir': {'type': 'path'},
    'store_pattern': {'type': 'list', 'elements': 'str'},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[('src', 'url')])
    p = module.params
    if p['probe_host']:
        module.exit_json(changed=False, **store.probe_host(p['root']))
    if p['state'] == 'query' and not p['repository']:
        try:
            result = storequery.query(p['name'], p['class'], p['root'], p['store_dir'], p['link_dir'], p['version'],
                                      p['checksum'], p['store_pattern'])
        except store.StoreError as e:
            module.fail_json(msg=str(e))
        module.exit_json(**dict(result, **{'class': p['class']}))
    if p['repository']:
        module.fail_json(msg='repository %s is read on the controller, but the action plugin did not read it; use the '
                             'module through tucked.sysext.sysext_image' % p['repository'])
    if p['src'] and not p['remote_src']:
        module.fail_json(msg='src %s is a controller path, but the action plugin did not transfer it; '
                             'use the module through tucked.sysext.sysext_image, or set remote_src: true' % p['src'])

    def opener(url):
        resp, info = fetch_url(module, url, timeout=p['url_timeout'])
        # (a file:// URL has no status)
        if resp is None or info.get('status') != (None if url.lower().startswith('file:') else 200):
            raise store.StoreError('cannot download %s: %s %s; nothing was stored'
                                   % (url, info.get('status'), info.get('msg', '')))
        return resp

    opts = store.Options(name=p['name'], version=p['version'], kind=p['class'], state=p['state'], root=p['root'],
                         src=p['src'], url=p['url'], checksum=p['checksum'], store_dir=p['store_dir'],
                         link_dir=p['link_dir'], store_pattern=p['store_pattern'], keep=p['keep'], rollback=p['rollback'],
                         image_policy=p['image_policy'], sidecar_checksums=p['sidecar_checksums'],
                         force=p['force'], check_mode=module.check_mode)
    try:
        res = store.ensure(opts, opener)
    except store.InterpreterInUse as e:
        module.fail_json(msg=str(e), stored=e.stored, interpreter=e.details)
    except store.Incompatible as e:
        module.fail_json(msg=str(e), stored=e.stored, compatible=False)
    except store.StoreError as e:
        module.fail_json(msg=str(e), stored=e.stored)
    for w in res.warnings:
        module.warn(w)
    result = res.as_dict()
    result['class'] = result['kind']
    if module._diff:
        result['diff'] = dict(res.diff, before_header=res.link, after_header=res.link)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
