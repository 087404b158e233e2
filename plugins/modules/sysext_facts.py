#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysext_facts
short_description: Gather the state of systemd system and configuration extensions
version_added: 0.1.0
description:
  - Reads which extensions are merged into C(/usr), C(/opt) and C(/etc), where each came
    from (the origin systemd-sysext 260+ records), which images the search directories hold
    and whether they match the host, and decides, with the rules of C(systemd-sysext refresh)
    262, whether a refresh would change anything.
  - Runs nothing and changes nothing on the host (apart from the caches described below and in the
    notes); the work is a few C(stat) calls and small
    reads per image. C(.raw) images are read in place where that is small (GPT disk images,
    squashfs with gzip, xz, lzma or lz4, erofs without compression); the others (zstd or lzo
    squashfs, compressed erofs, ext4, btrfs, xfs, f2fs) through a detached read-only mount that
    no one else sees and that is released at once, which needs root (become).
  - What was read from an image is kept in C(ROOT/run/tucked-sysext/images.json), by the image's
    identity (device, inode, size, mtime, ctime), so an unchanged image is not read again. This
    module only updates that file where a merge of M(tucked.sysext.sysext_refresh) left the
    directory, and writes nothing in check mode; E(TUCKED_SYSEXT_IMAGE_CACHE=0) turns it off.
  - Hierarchies merged by systemd older than 260 carry no origin record; their origins are
    reported as unknown, which means a refresh is needed (as systemd 252 always refreshes).
extends_documentation_fragment:
  - tucked.sysext.bytecode
author:
  - The tucked.sysext team (@tucked)
options:
  root:
    description:
      - The root directory to inspect, like C(systemd-sysext --root=). Search directories,
        C(os-release) and the paths recorded in metadata are taken relative to it.
    type: path
    default: /
  classes:
    description:
      - Which extension classes to inspect.
    type: list
    elements: str
    choices: [sysext, confext]
    default: [sysext, confext]
  mutable:
    description:
      - The mutable mode a refresh would use (see M(tucked.sysext.sysext_refresh)); the refresh
        decision depends on it. When not given, C(Mutable=) of the root's C(sysext.conf) /
        C(confext.conf) (or C(SYSTEMD_SYSEXT_MUTABLE_MODE) in the environment), else V(no).
    type: str
    choices: ['no', 'yes', auto, import, ephemeral, ephemeral-import]
  image_policy:
    description:
      - The image policy a refresh would use (systemd.image-policy(7)); images it refuses are
        reported as not compatible, with the rule. When not given, C(ImagePolicy=) of the root's
        C(sysext.conf) / C(confext.conf), else systemd's default.
    type: str
  next_os_release:
    description:
      - Another os-release to match every image against, the one an OS update would bring, as a dict
        of its fields (C(ID) V(fedora), C(VERSION_ID) V("42")), or the text of an os-release file (for a
        file on the controller, C(lookup('ansible.builtin.file', 'next-os-release'))). Each image then
        says in C(next_os) whether it would still match that OS, and if not the field that fails and
        why; C(ansible_facts.sysext.next_os) lists the images the update would drop.
      - The images are matched with the rules used for the running OS (systemd's
        C(extension_release_validate()) of 262) against C(ID), C(ID_LIKE), C(VERSION_ID) and
        C(SYSEXT_LEVEL) / C(CONFEXT_LEVEL) of this os-release, the scope of O(root) and the
        architecture of the running kernel (systemd compares C(ARCHITECTURE=) of an extension with
        the kernel's, not with the os-release's C(ARCHITECTURE=), so an OS update does not change it).
      - Read more strictly than systemd reads os-release, as a typo would change the answer silently;
        a line that is not C(KEY=VALUE), a value that is not a string (quote V("42"); an integer is
        taken as its digits) or a missing C(ID) fails the task, naming the input and the fix.
      - Only the images in the search directories are matched (those a merge after the update would
        consider, the selected versions of M(tucked.sysext.sysext_image) included); versions kept in
        its store that no link selects are not read (M(tucked.sysext.sysext_image) matches a version
        against the os-release in place when it selects one, so a rollback after the update is checked
        then).
    type: raw
  next_os_release_file:
    description:
      - The same as O(next_os_release), read from an os-release file on the managed node (for
        example the new OS's C(usr/lib/os-release), unpacked or mounted somewhere). The path is taken
        as it is, not relative to O(root).
      - Mutually exclusive with O(next_os_release).
    type: path
attributes:
  check_mode:
    support: full
    description:
      - The module changes nothing on the host, so it gathers the same in check mode; of its caches
        (see the description and the notes), check mode writes only the compiled code's.
  diff_mode:
    support: none
    description: Nothing is changed, so there is no diff.
  facts:
    support: full
    description: Everything is returned under C(ansible_facts.sysext).
notes:
  - Images are looked up where systemd looks for them; sysext C(/etc/extensions),
    C(/run/extensions), C(/var/lib/extensions); confext C(/run/confexts), C(/var/lib/confexts),
    C(/usr/local/lib/confexts), C(/usr/lib/confexts) (in an initrd, C(/.extra/...) too).
    An image found earlier shadows one of the same name found later.
  - A versioned C(NAME.v/) (directories C(NAME_VERSION)) or C(NAME.raw.v/) (files C(NAME_VERSION.raw))
    entry gives the newest version inside, picked as systemd's vpick picks it (tries counters
    C(+LEFT-DONE), architecture suffixes C(_x86-64)); C(picked) in the facts' C(images)
    says which version won and why each other one lost.
  - GPT disk images (DDIs) are read as systemd 262 reads them, from the root partition, else
    (sysext) the usr partition of the host's architecture. An image file that cannot be read,
    that the image policy refuses, or that is protected by dm-verity on a kernel without
    device-mapper, would make a merge fail (C(blocks_merge)); C(reason) says why.
  - The decision uses the same settings a refresh would, O(mutable) and O(image_policy), else
    those of the root's C(sysext.conf) / C(confext.conf) and their drop-ins.
  - A renamed image is matched through the single release file marked
    C(user.extension-release.strict=false), as systemd does; the attribute is read from
    directories and from inside squashfs and erofs images.
seealso:
  - name: systemd-sysext(8)
    description: The tool whose on-disk format and decisions this module follows.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd-sysext.html
"""

EXAMPLES = r"""
- name: Gather extension facts
  tucked.sysext.sysext_facts:

- name: Show whether a refresh would change anything
  ansible.builtin.debug:
    msg: "{{ ansible_facts.sysext.needs_refresh }}"

- name: Inspect a mounted image of another system, sysext only
  tucked.sysext.sysext_facts:
    root: /mnt/target
    classes: [sysext]

- name: Refuse an OS update that would drop extensions (fields given as data)
  tucked.sysext.sysext_facts:
    next_os_release:
      ID: debian
      VERSION_ID: "14"

- name: Fail naming each image the next OS would drop, and the field
  ansible.builtin.assert:
    that: ansible_facts.sysext.next_os.compatible
    fail_msg: "{{ ansible_facts.sysext.next_os.dropped | map(attribute='reason') | list }}"

- name: The next os-release as a file on the controller
  tucked.sysext.sysext_facts:
    next_os_release: "{{ lookup('ansible.builtin.file', 'next-os-release') }}"

- name: Fail when an image in a search directory does not match the host
  ansible.builtin.assert:
    that: ansible_facts.sysext.images | selectattr('type', 'ne', 'ignored') | rejectattr('compatible') | list | length == 0
    fail_msg: "incompatible images: {{ ansible_facts.sysext.images | rejectattr('compatible') | map(attribute='reason') | list }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added under C(ansible_facts.sysext).
  returned: always
  type: complex
  contains:
    sysext:
      description: The extension state of the host.
      returned: always
      type: complex
      contains:
        root:
          description: The root directory that was inspected (absolute).
          type: str
          sample: /
        needs_refresh:
          description: Whether a refresh of any inspected class would change anything.
          type: bool
          sample: false
        classes:
          description: Per class (C(sysext), C(confext)), the refresh decision.
          type: dict
          contains:
            needs_refresh:
              description: Whether C(systemd-sysext refresh) (262) would do something for this class.
              type: bool
            action:
              description: What a refresh would do, C(none), C(merge), C(refresh) or C(unmerge).
              type: str
            reasons:
              description:
                - Every difference found. C(change) is one of C(added), C(removed), C(replaced)
                  (C(fields) names the origin fields that differ), C(reordered), C(unknown) (no
                  origin recorded), C(merge), C(unmerge), C(mutable), C(foreign) or C(inconsistent).
              type: list
              elements: dict
              sample: [{extension: foo, change: replaced, fields: [mtime], detail: "/var/lib/extensions/foo.raw changed: mtime"}]
            unchanged:
              description: Extensions whose recorded origin matches the image found now.
              type: list
              elements: str
            before:
              description: Extensions merged now, lowest layer first.
              type: list
              elements: str
            after:
              description: Extensions a refresh would merge, lowest layer first.
              type: list
              elements: str
            hierarchies:
              description: Hierarchies a refresh would touch.
              type: list
              elements: str
            settings:
              description:
                - The effective C(mutable) mode and C(image_policy), each a dict with its C(value) and
                  C(source) (V(parameter), V(environment), V(FILE:LINE) of a config file, or V(default)),
                  and C(files), the config files read (sysext.conf(5), inside O(root)).
              type: dict
              sample:
                mutable: {"value": "no", "source": "default"}
                image_policy: {"value": "=open", "source": "/etc/systemd/sysext.conf:2"}
                files: ["/etc/systemd/sysext.conf"]
        hierarchies:
          description: Per hierarchy (C(/usr), C(/opt), C(/etc)), what is mounted there now.
          type: dict
          contains:
            class:
              description: C(sysext) or C(confext).
              type: str
            path:
              description: The hierarchy's path on the managed node (under O(root)).
              type: str
            merged:
              description: Whether an overlay is mounted on the hierarchy.
              type: bool
            merged_by:
              description: C(systemd), C(tucked), C(foreign) (an overlay nobody here made) or C(none).
              type: str
            extensions:
              description: The merged extensions, lowest layer first.
              type: list
              elements: str
            origins:
              description:
                - Extension name to the recorded origin record (C(path), C(onMountId), C(fileHandle)
                  or C(inode), C(crtime), C(mtime), or C(verityHash)), exactly as systemd wrote it.
                - V(null) when the merge recorded no origin (systemd before 260).
              type: dict
            origin_source:
              description:
                - Where C(origins) came from, V(metadata) (systemd's C(origin) file, systemd 260+ or
                  this collection), V(record) (this collection's record of a merge it had systemd < 260
                  make, see M(tucked.sysext.sysext_refresh) O(tucked.sysext.sysext_refresh#module:backend=systemd)),
                  or V(null).
              type: str
            mutable:
              description: The recorded mutable settings (C(mode), C(mutableDirs)), V(null) when not recorded.
              type: dict
            mount_id:
              description: Mount ID of the mount visible at the hierarchy.
              type: int
            dev:
              description: The C(major:minor) recorded in the metadata C(dev) file.
              type: str
            backing:
              description: The C(major:minor) of the host filesystem below the overlay, if recorded.
              type: str
            problems:
              description: Anything wrong with the metadata (stale, unreadable, foreign overlay).
              type: list
              elements: str
        images:
          description: Every entry found in the search directories, winners first by class.
          type: list
          elements: dict
          contains:
            name:
              description: The extension name (file name without C(.raw) and C(.sysext)/C(.confext)).
              type: str
            class:
              description: C(sysext) or C(confext).
              type: str
            path:
              description: Resolved path inside O(root), as systemd records it.
              type: str
            entry:
              description: The directory entry in the search directory (before following symlinks).
              type: str
            type:
              description: C(directory), C(raw), C(block), or C(ignored) for entries that are not used.
              type: str
            version:
              description:
                - The image's version from its release file (C(IMAGE_VERSION), C(SYSEXT_VERSION_ID) or
                  C(CONFEXT_VERSION_ID), C(VERSION), else C(VERSION_ID)).
              type: str
            compatible:
              description: Whether systemd would merge the image on this host.
              type: bool
            reason:
              description: Why the image is not used (incompatible, unreadable, shadowed, invalid name).
              type: str
            release_file:
              description: The release file used, inside the image.
              type: str
            provides:
              description: The hierarchies the image has content for.
              type: list
              elements: str
            shadows:
              description: Entries of the same name in later search directories that this image hides.
              type: list
              elements: str
            origin:
              description: The origin record a merge would write for this image now.
              type: dict
            digest:
              description:
                - V(ALGORITHM:HEX) of an image file, when M(tucked.sysext.sysext_image) cached it (the
                  C(user.tucked.digest) xattr) and the file is unchanged since (size, mtime, inode); else V(null).
                  Nothing is hashed to report it.
              type: str
            picked:
              description:
                - For an image picked from a versioned C(NAME.v/) or C(NAME.raw.v/) directory, C(from) (the
                  C(.v) entry), C(entry) (the file or directory picked), C(version), C(architecture),
                  C(tries_left) and C(tries_done) (V(null) without a C(+N) counter), and C(candidates), each
                  other entry with its C(version) and the C(reason) it lost. V(null) for other images.
              type: dict
            container:
              description:
                - C(directory), C(filesystem) (an image file holding one file system) or C(gpt) (a GPT disk
                  image, a DDI as C(systemd-repart --make-ddi) and mkosi make them).
              type: str
            fstype:
              description:
                - The file system the tree is read from, C(squashfs), C(erofs), C(ext4), C(btrfs), C(xfs), C(f2fs)
                  or C(vfat) (for a DDI, that of the partition used); V(null) for directories.
              type: str
            compression:
              description:
                - What the file system's superblock names, e.g. C(gzip), C(zstd), C(lz4) (squashfs) or C(lz4),
                  C(zstd), C(deflate), C(lzma) (erofs, where C(lz4) also stands for lz4hc, which writes the same
                  format); V(null) when uncompressed or a directory.
              type: str
            partition:
              description:
                - For a GPT disk image, the partition whose file system is used, picked as systemd picks it (a
                  sysext's root partition, else its usr partition, of the host's architecture; a confext's root
                  partition), with C(number), C(designator), C(architecture), C(type), C(uuid), C(label), C(offset),
                  C(size), C(read_only), C(growfs), C(no_auto), and C(usr_partition), C(verity_partition),
                  C(signature_partition) (numbers, or V(null)). V(null) for other images.
              type: dict
            protection:
              description:
                - For image files, what the image policy sees, C(unprotected), C(verity) (a C(.verity) hash
                  tree and a root hash beside a file system image, or a verity partition in a DDI) or C(signed)
                  (also a C(.roothash.p7s), or a signature partition); V(null) for directories.
              type: str
            verity_hash:
              description:
                - The dm-verity root hash (hex) a merge records in the image's origin, as systemd 262 does; V(null)
                  for an image without one.
              type: str
            blocks_merge:
              description:
                - Whether this image would make a merge by M(tucked.sysext.sysext_refresh) fail (an image file
                  that cannot be read, one the image policy refuses, or one protected by dm-verity on a kernel
                  without device-mapper; for an ignored entry, one that cannot be resolved, such as a symlink
                  loop, which fails systemd's whole image discovery); C(reason) says why, naming the file and
                  the fix.
              type: bool
            next_os:
              description:
                - Whether the image's extension-release would match the os-release of O(next_os_release) /
                  O(next_os_release_file), C(compatible) (V(null) when its release could not be read), C(field),
                  the field that fails (C(ID), C(VERSION_ID), C(SYSEXT_LEVEL), C(CONFEXT_LEVEL), C(ARCHITECTURE),
                  C(SYSEXT_SCOPE), C(CONFEXT_SCOPE), or C(extension-release) for an image without release data;
                  V(null) when it matches), and C(reason), why it matches or not, naming the field and both values.
                - Only the extension-release is judged (the image policy and the file's readability are as today,
                  see C(compatible)). V(null) for an ignored entry.
              returned: when O(next_os_release) or O(next_os_release_file) is given
              type: dict
              sample: {"compatible": false, "field": "VERSION_ID", "reason": "extension 'foo' is for OS version '13'
                (VERSION_ID=13), but deployed on top of '14' (VERSION_ID=14 in next_os_release)"}
        host:
          description: The host the images are matched against (from O(root)'s os-release).
          type: dict
          contains:
            id:
              description: C(ID).
              type: str
            version_id:
              description: C(VERSION_ID).
              type: str
            id_like:
              description: C(ID_LIKE).
              type: str
            sysext_level:
              description: C(SYSEXT_LEVEL).
              type: str
            confext_level:
              description: C(CONFEXT_LEVEL).
              type: str
            architecture:
              description: systemd's name for the machine architecture, for example C(x86-64).
              type: str
            scope:
              description: C(system), or C(initrd) when the root has C(/etc/initrd-release).
              type: str
        next_os:
          description:
            - The next-OS check of O(next_os_release) / O(next_os_release_file), summed up.
          returned: when O(next_os_release) or O(next_os_release_file) is given
          type: dict
          contains:
            source:
              description: V(next_os_release) (given as data), or the path of O(next_os_release_file).
              type: str
              sample: next_os_release
            id:
              description: C(ID) of the next os-release.
              type: str
              sample: debian
            version_id:
              description: C(VERSION_ID) of the next os-release, V(null) without one.
              type: str
              sample: "14"
            id_like:
              description: C(ID_LIKE) of the next os-release, V(null) without one.
              type: str
            sysext_level:
              description: C(SYSEXT_LEVEL) of the next os-release, V(null) without one.
              type: str
            confext_level:
              description: C(CONFEXT_LEVEL) of the next os-release, V(null) without one.
              type: str
            architecture:
              description: The architecture matched against, that of the running kernel (systemd's name).
              type: str
              sample: x86-64
            scope:
              description: The scope matched against, that of O(root) (C(system), or C(initrd)).
              type: str
              sample: system
            compatible:
              description: Whether every image compatible now would still match the next OS (C(dropped) is empty).
              type: bool
              sample: false
            dropped:
              description:
                - The images compatible now that the next OS would refuse, each with C(name), C(class), C(entry),
                  C(version), C(field) (the field that fails) and C(reason).
              type: list
              elements: dict
              sample: [{"name": "foo", "class": "sysext", "entry": "/var/lib/extensions/foo.raw", "version": "1.0",
                        "field": "VERSION_ID", "reason": "extension 'foo' is for OS version '13' (VERSION_ID=13), but
                        deployed on top of '14' (VERSION_ID=14 in next_os_release)"}]
            gained:
              description:
                - The images whose extension-release does not match the OS now but would match the next one
                  (prepared for the update), each with C(name), C(class), C(entry) and C(version).
              type: list
              elements: dict
              sample: [{"name": "foo-14", "class": "sysext", "entry": "/var/lib/extensions/foo-14", "version": "1.0"}]
        kernel:
          description: What the running kernel offers for an atomic refresh.
          type: dict
          contains:
            move_mount_beneath:
              description: Whether C(move_mount) with C(MOVE_MOUNT_BENEATH) (Linux 6.5+) is available; V(null) when it cannot be probed.
              type: bool
            detail:
              description: How that was found out.
              type: str
            release:
              description: The kernel release.
              type: str
"""

from ansible.module_utils.basic import AnsibleModule

# first: from here on, the compiled code of this collection's module_utils is cached on the target
from ansible_collections.tucked.sysext.plugins.module_utils import bytecode  # noqa: F401 pylint: disable=unused-import
from ansible_collections.tucked.sysext.plugins.module_utils import engine, nextos

ARGUMENT_SPEC = {
    'root': {'type': 'path', 'default': '/'},
    'classes': {'type': 'list', 'elements': 'str', 'choices': ['sysext', 'confext'],
                'default': ['sysext', 'confext']},
    'mutable': {'type': 'str', 'choices': ['no', 'yes', 'auto', 'import', 'ephemeral', 'ephemeral-import']},
    'image_policy': {'type': 'str'},
    'next_os_release': {'type': 'raw'},
    'next_os_release_file': {'type': 'path'},
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           mutually_exclusive=[('next_os_release', 'next_os_release_file')])
    params = module.params
    classes = tuple(dict.fromkeys(params['classes']))
    next_fields = None
    try:
        if params['next_os_release'] is not None or params['next_os_release_file']:
            next_fields = nextos.load(params['next_os_release'], params['next_os_release_file'])
    except nextos.NextOSError as e:
        module.fail_json(msg=str(e))
    try:
        snap = engine.gather(params['root'], classes, mode=params['mutable'],
                             image_policy=params['image_policy'], cache='off' if module.check_mode else 'update')
    except engine.EngineError as e:
        module.fail_json(msg=str(e))
    next_host = None
    if next_fields is not None:
        try:
            next_host, warnings = nextos.host_for(next_fields[0], next_fields[1], snap.host)
        except nextos.NextOSError as e:
            module.fail_json(msg=str(e))
        for w in warnings:
            module.warn(w)
    for w in engine.warnings_of(snap):
        module.warn(w)
    module.exit_json(changed=False, ansible_facts={'sysext': engine.facts(snap, next_host)})


if __name__ == '__main__':
    main()
