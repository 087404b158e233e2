#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysext_build
short_description: Build a reproducible system or configuration extension image from a directory tree
version_added: 0.1.0
description:
  - Builds a squashfs or erofs extension image at O(dest) from the directory tree O(src) on the
    target, with the extension-release file written from the options
    (C(usr/lib/extension-release.d/extension-release.NAME) for a sysext,
    C(etc/extension-release.d/extension-release.NAME) for a confext).
  - O(src) is never changed. It is copied into a staging directory (a C(.#) directory next to
    O(dest), which systemd ignores), the release file is written into the copy, and the image is
    built from the copy.
  - Reproducible. Every file is owned by root, every timestamp is O(source_date_epoch), the
    directories are sorted, xattrs are left out (see O(xattrs)) and the erofs UUID is derived from
    the inputs, so the same inputs give a byte-identical image on every machine with the same
    tool version. C(mksquashfs -all-root -all-time -mkfs-time -root-mode 755 -no-xattrs -reproducible)
    and C(mkfs.erofs --all-root -T -U -x-1).
  - Atomic. The image is built in the staging directory and renamed over O(dest) only when complete
    and verified (the release file is read back from the image). A failing tool, a full disk or a
    kill never leaves a partial file at O(dest) or replaces a good image. Work directories of killed
    runs are removed by the next run.
  - Idempotent. After a build, a record goes into the C(user.tucked.build) xattr of O(dest) (keyed by
    its size, mtime and inode) with a digest of the inputs (every path, type, mode, symlink target,
    hard link and xattr of the staged tree, the sha256 of every file, the options that shape the image
    and the sha256 of the tool's executable) and the image's sha256. A later run hashes O(src); when
    the digest matches, nothing is built and RV(changed=false).
  - Without a matching record (inputs changed, O(dest) made by something else, a filesystem without
    user xattrs, O(force)) the image is built aside and compared byte for byte with O(dest). An
    identical image leaves O(dest) untouched (same inode and mtime, so a merged overlay is not seen as
    replaced) and RV(changed=false).
extends_documentation_fragment:
  - tucked.sysext.bytecode
author:
  - The tucked.sysext team (@tucked)
options:
  src:
    description:
      - The directory tree on the target to build from. A sysext may hold only C(usr/) and C(opt/) at
        the top level, a confext only C(etc/); anything else is refused, since systemd would ignore it.
      - Only directories, regular files (hard links kept) and symlinks; device nodes, FIFOs and sockets
        are refused.
      - When O(src) already holds the release file for O(name), it must carry the same fields as this
        task (it is then replaced by the one written here); a release file with other fields is refused,
        so that the image never says something the task did not.
    type: path
    required: true
  dest:
    description:
      - The image file to write, for example C(/var/lib/extensions/NAME.raw), or a versioned file for
        M(tucked.sysext.sysext_image) such as C(/srv/images/docker-27.3.1.raw) (then set O(name)).
      - Its directory must exist. systemd only uses files named C(NAME.raw).
      - With O(verity=true) the hash tree and root hash are written next to it the way systemd looks
        for them (C(foo.raw) gets C(foo.verity) and C(foo.roothash)).
    type: path
    required: true
  name:
    description:
      - The extension name, used for C(extension-release.NAME). It must be the name the image has
        where systemd finds it (the file or link name without C(.raw)).
      - Default the file name of O(dest) without C(.raw) (and without C(.sysext)/C(.confext)).
      - A plain file name, no C(/), not starting with C(.), no whitespace.
    type: str
  class:
    description:
      - Whether to build a system extension (C(/usr), C(/opt)) or a configuration extension (C(/etc)),
        systemd's image class.
      - C(kind) is the older name of this option, kept as an alias.
    type: str
    choices: [sysext, confext]
    default: sysext
    aliases: [kind]
  format:
    description: The filesystem of the image.
    type: str
    choices: [squashfs, erofs]
    default: squashfs
  compression:
    description:
      - The compressor. squashfs V(gzip) (default), V(xz), V(lzma), V(lzo), V(lz4), V(zstd);
        erofs V(none) (default), V(lz4), V(lz4hc), V(zstd), V(deflate), V(lzma) (the last three need
        erofs-utils 1.6 or later; the compressors the target's C(mkfs.erofs) offers are checked first).
      - M(tucked.sysext.sysext_facts) and M(tucked.sysext.sysext_image) read the release file of
        squashfs with V(gzip), V(xz), V(lzma) or V(lz4) and of uncompressed erofs in place; with any
        other compressor they read it through a read-only mount, which needs root (a warning says so).
    type: str
    choices: [gzip, xz, lzma, lzo, lz4, zstd, none, lz4hc, deflate]
  compression_level:
    description:
      - The compression level. squashfs (C(-Xcompression-level)) V(gzip) and V(lzo) 1 to 9, V(zstd) 1 to 22;
        erofs (C(-zALG,LEVEL)) V(lz4hc) 0 to 12, V(zstd) 0 to 22, V(deflate) 0 to 9, V(lzma) 0 to 9 or 100 to 109.
        Other compressors take none. Default the tool's.
    type: int
  cluster_size:
    description:
      - erofs, compressed only, the physical cluster size in bytes (C(mkfs.erofs -C)), a multiple of 4096
        up to 1048576, for example V(65536) as Flatcar's extras use.
      - squashfs, the block size in bytes (C(mksquashfs -b)), a power of 2 from 4096 to 1048576, for example
        V(524288) as Flatcar before 4628 used.
    type: int
  erofs_features:
    description:
      - erofs extended options (C(mkfs.erofs -E)), for example V([fragments, ztailpacking]) (Flatcar's extras)
        or V([fragments, fragdedupe=inode]) (GNOME OS). V(fragments), V(all-fragments), V(ztailpacking),
        V(dedupe), V(fragdedupe=off|inode|full) and V(legacy-compress) need compression.
      - Also V(noinline_data), V(force-inode-compact), V(force-inode-extended), V(force-inode-blockmap),
        V(force-chunk-indexes), V(nosbcrc), V(48bit), V(dot-omitted), V(plain-xattr-prefixes),
        V(xattr-name-filter); an option the target's C(mkfs.erofs) does not know fails the build with its message.
    type: list
    elements: str
  container:
    description:
      - V(filesystem) (default) writes the file system image itself.
      - V(ddi) writes a GPT disk image as C(systemd-repart --make-ddi=sysext) (or C(=confext)) makes it, with a
        root partition of the Discoverable Partitions type of O(architecture) (default the target's),
        labelled C(root-ARCH), holding the image; with O(verity) a C(root-ARCH-verity) partition with the
        hash tree, the partition UUIDs the two halves of the root hash; with O(signing_key) a
        C(root-ARCH-verity-sig) partition with the signed root hash. Everything (disk and partition UUIDs,
        verity salt) is derived from the file system image, so the same inputs give the same disk image.
    type: str
    choices: [filesystem, ddi]
    default: filesystem
  signing_key:
    description:
      - With O(container=ddi) and O(verity=true), the PEM private key on the target that signs the root hash
        (C(openssl smime -sign -binary -noattr), a detached PKCS#7 signature as systemd-repart makes it).
        Needs O(signing_certificate). systemd then checks the signature against the certificates in
        C(/etc/verity.d) and the kernel keyring.
      - An RSA key gives the same signature on every build; an EC key a new one each time, so the disk
        image then changes whenever it is rebuilt.
    type: path
  signing_certificate:
    description: The PEM X.509 certificate of O(signing_key), whose sha256 fingerprint goes into the signature partition.
    type: path
  id:
    description:
      - C(ID) of the release file, the os-release C(ID) of the hosts the image is for.
      - Default V(_any), an image for every OS (systemd then ignores O(version_id) and O(level)).
    type: str
  version_id:
    description:
      - C(VERSION_ID), the os-release C(VERSION_ID) the image is for (checked when O(id) is not V(_any)).
      - A string; a number (an unquoted C(12) or C(12.10) in YAML) is refused, quote it.
    type: str
  level:
    description:
      - C(SYSEXT_LEVEL) (sysext) or C(CONFEXT_LEVEL) (confext); when both the image and the host
        declare one, it is compared instead of C(VERSION_ID).
      - A string; a number is refused, quote it.
    type: str
  architecture:
    description:
      - C(ARCHITECTURE), in systemd's names (V(x86-64), V(arm64), ...) or V(_any).
      - With O(container=ddi) also the architecture of the partition types (default the target's own).
    type: str
  scope:
    description: C(SYSEXT_SCOPE) / C(CONFEXT_SCOPE), where the image may be used.
    type: list
    elements: str
    choices: [system, initrd, portable]
  version:
    description:
      - C(IMAGE_VERSION), the version of the extension itself (reported as the image's version by
        M(tucked.sysext.sysext_facts)). Letters, digits, C(.), C(~), C(^), C(-).
      - A string; a number is refused with a message that says to quote it, since YAML reads an unquoted
        C(1.10) as the number 1.1.
    type: str
  release:
    description:
      - Further release fields, a dictionary from field name to value (for example C(SYSEXT_IMAGE_ID) or C(EXTENSION_RELOAD_MANAGER)).
        A key also set by an option above must have the same value. Values are strings or integers; a
        float (an unquoted C(1.10)) is refused, quote it.
    type: dict
  source_date_epoch:
    description:
      - Seconds since 1970 used for every timestamp in the image (0 to 4294967295).
      - Default the C(SOURCE_DATE_EPOCH) environment variable of the module (set it with the task's
        C(environment)), else V(0).
    type: int
  xattrs:
    description:
      - Copy the extended attributes of O(src) (for example C(security.capability) of a binary) into the
        image. Off by default, because the xattrs of a build directory are mostly accidental (SELinux
        labels of the build host, C(user.*) of other tools) and would make the image differ between hosts.
    type: bool
    default: false
  verity:
    description:
      - Also write a dm-verity hash tree and its root hash next to the image (C(veritysetup format),
        Debian package C(cryptsetup-bin)), with the salt and UUID derived from the image so they are
        reproducible too. systemd then mounts the image verified.
      - With O(container=ddi) the hash tree goes into a verity partition of the disk image instead.
      - V(false) (and V(container=ddi)) removes such files left by an earlier build, since they would not match
        a new image.
    type: bool
    default: false
  force:
    description:
      - Build even when the record says the inputs are unchanged. O(dest) is still only replaced when
        the new image differs.
    type: bool
    default: false
  root:
    description:
      - Not used. Accepted so that C(module_defaults) of the action group C(tucked.sysext.sysext)
        (C(group/tucked.sysext.sysext)) can set O(root) for the target modules; O(src) and O(dest)
        are always paths on the host that builds, whatever O(root) says.
    type: path
attributes:
  check_mode:
    support: full
    description:
      - Reports whether O(dest) would change and writes nothing next to it. When O(dest) exists without a
        matching record, the comparison build runs in a private temporary directory, removed afterwards.
  diff_mode:
    support: full
    description: The sha256 (and root hash) of the image and its release file, before and after.
notes:
  - Needs C(mksquashfs) (Debian package C(squashfs-tools)) or C(mkfs.erofs) (C(erofs-utils)) on the target,
    C(veritysetup) (C(cryptsetup-bin)) for O(verity) and C(openssl) for O(signing_key).
  - Building needs no device-mapper, no loop device and no mount; using a verity image does (systemd refuses
    verity images on a kernel without device-mapper).
  - Byte-identical output is promised for the same tool version; a new tool version counts as a new input.
  - While building, the directory of O(dest) needs room for a copy of O(src) and the new image. Sparse
    files stay sparse in that copy; squashfs and compressed erofs keep their holes small, uncompressed
    erofs stores them as zeros (a warning says so).
  - A tree deeper than 256 directories is refused with the path named.
  - The hash tree, the root hash and the image are three renames; a run killed between them leaves a
    mismatch that the next run repairs by building again.
seealso:
  - module: tucked.sysext.sysext_image
  - module: tucked.sysext.sysext_refresh
  - name: systemd-sysext(8)
    description: Extension images, their release files and the verity sidecars.
    link: https://www.freedesktop.org/software/systemd/man/latest/systemd-sysext.html
"""

EXAMPLES = r"""
- name: Build a sysext for any OS from a staged tree
  tucked.sysext.sysext_build:
    src: /srv/build/hello
    dest: /var/lib/extensions/hello.raw
    version: "1.2"

- name: A versioned docker image for Debian 12 on x86-64, verified with dm-verity
  tucked.sysext.sysext_build:
    src: /srv/build/docker
    dest: /srv/images/docker-27.3.1.raw
    name: docker
    id: debian
    version_id: "12"
    architecture: x86-64
    version: "27.3.1"
    verity: true
  environment:
    SOURCE_DATE_EPOCH: "1700000000"
  register: docker_image

- name: A confext with site configuration, as erofs
  tucked.sysext.sysext_build:
    src: /srv/build/site-etc
    dest: /var/lib/confexts/site.raw
    class: confext
    format: erofs
    scope: [system]
    release:
      EXTENSION_RELOAD_MANAGER: "1"

- name: A signed dm-verity DDI with lz4hc erofs, as Flatcar builds its extras
  tucked.sysext.sysext_build:
    src: /srv/build/python
    dest: /srv/images/python.raw
    format: erofs
    compression: lz4hc
    compression_level: 12
    cluster_size: 65536
    erofs_features: [fragments, ztailpacking]
    container: ddi
    verity: true
    signing_key: /etc/tucked-sysext/verity.key
    signing_certificate: /etc/tucked-sysext/verity.crt

- name: Store and select the image built above
  tucked.sysext.sysext_image:
    name: docker
    version: "27.3.1"
    src: /srv/images/docker-27.3.1.raw
    remote_src: true
    checksum: "{{ docker_image.checksum }}"
"""

RETURN = r"""
changed:
  description: Whether the image or its sidecars were (in check mode, would be) written or removed.
  returned: always
  type: bool
built:
  description: Whether an image was built in this run (also a comparison build whose result was identical).
  returned: always
  type: bool
path:
  description: The image file (O(dest)).
  returned: always
  type: str
  sample: /var/lib/extensions/hello.raw
name:
  description: The extension name the release file was written for.
  returned: always
  type: str
  sample: hello
class:
  description: V(sysext) or V(confext).
  returned: always
  type: str
kind:
  description: The same as RV(class), under its older name (kept for now).
  returned: always
  type: str
format:
  description: V(squashfs) or V(erofs).
  returned: always
  type: str
compression:
  description: The compressor used.
  returned: always
  type: str
  sample: gzip
checksum:
  description:
    - V(sha256:HEX) of the image at RV(path), the form O(tucked.sysext.sysext_image#module:checksum)
      takes (V(null) when RV(sha256) is).
  returned: always
  type: str
  sample: sha256:1eca25626e38d5e5a7c3f6b1a9f0e0d3c2b1a09f8e7d6c5b4a39281706f5e4d3
sha256:
  description: The sha256 of the image at RV(path) (V(null) in check mode when the image does not exist yet).
  returned: always
  type: str
  sample: 1eca25626e38d5e5a7c3f6b1a9f0e0d3c2b1a09f8e7d6c5b4a39281706f5e4d3
size:
  description: The size of the image in bytes.
  returned: always
  type: int
release:
  description: The fields written to the release file, in the order written.
  returned: always
  type: dict
  sample: {"ID": "_any", "IMAGE_VERSION": "1.2"}
release_file:
  description: The path of the release file inside the image.
  returned: always
  type: str
  sample: /usr/lib/extension-release.d/extension-release.hello
inputs:
  description: The digest of all inputs (see the description); equal digests give equal images.
  returned: always
  type: str
tool:
  description: The tool that built the image, its version and the sha256 of its executable.
  returned: always
  type: str
  sample: mksquashfs version 4.5.1 (mksquashfs sha256:efdc...)
source_date_epoch:
  description: The timestamp used for every file.
  returned: always
  type: int
container:
  description: V(filesystem) or V(ddi).
  returned: always
  type: str
partitions:
  description: The partitions of a DDI (label, type UUID, partition UUID, byte offset and size, GPT attribute bits); empty otherwise.
  returned: always
  type: list
  elements: dict
  sample: [{"label": "root-x86-64", "type": "4f68bce3-e8cd-4db1-96e7-fbcaf984b709", "uuid": "e93cbef4-50ed-5c0c-b2a2-a5e33ea25b74",
            "offset": 20480, "size": 520192, "flags": 1152921504606846976}]
roothash:
  description: The dm-verity root hash (hex), also in RV(roothash_path) (or in the DDI's partitions); V(null) without O(verity).
  returned: always
  type: str
verity_path:
  description: The hash tree file; V(null) without O(verity).
  returned: always
  type: str
  sample: /var/lib/extensions/hello.verity
roothash_path:
  description: The root hash file; V(null) without O(verity).
  returned: always
  type: str
  sample: /var/lib/extensions/hello.roothash
removed:
  description: Sidecar files removed (an earlier verity build's, with O(verity=false)).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

# first: from here on, the compiled code of this collection's module_utils is cached on the target
from ansible_collections.tucked.sysext.plugins.module_utils import bytecode  # noqa: F401 pylint: disable=unused-import
from ansible_collections.tucked.sysext.plugins.module_utils import build, buildrequest

ARGUMENT_SPEC = {
    'src': {'type': 'path', 'required': True},
    'dest': {'type': 'path', 'required': True},
    'name': {'type': 'str'},
    'class': {'type': 'str', 'choices': list(build.KINDS), 'default': 'sysext', 'aliases': ['kind']},
    'format': {'type': 'str', 'choices': list(build.FORMATS), 'default': 'squashfs'},
    'compression': {'type': 'str', 'choices': list(dict.fromkeys(c for cs in build.COMPRESSION.values() for c in cs))},
    'id': {'type': 'str'},
    'version_id': {'type': 'str'},
    'level': {'type': 'str'},
    'architecture': {'type': 'str'},
    'scope': {'type': 'list', 'elements': 'str', 'choices': list(buildrequest.SCOPES)},
    'version': {'type': 'str'},
    'release': {'type': 'dict'},
    'source_date_epoch': {'type': 'int'},
    'xattrs': {'type': 'bool', 'default': False},
    'verity': {'type': 'bool', 'default': False},
    'compression_level': {'type': 'int'},
    'cluster_size': {'type': 'int'},
    'erofs_features': {'type': 'list', 'elements': 'str'},
    'container': {'type': 'str', 'choices': list(build.CONTAINERS), 'default': 'filesystem'},
    'signing_key': {'type': 'path', 'no_log': False},
    'signing_certificate': {'type': 'path'},
    'force': {'type': 'bool', 'default': False},
    'root': {'type': 'path'},       # not used: see the documentation
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True,
                           required_together=[('signing_key', 'signing_certificate')])
    p = module.params
    opts = build.Options(src=p['src'], dest=p['dest'], name=p['name'], kind=p['class'], format=p['format'],
                         compression=p['compression'], release=p['release'], id=p['id'], version_id=p['version_id'],
                         level=p['level'], architecture=p['architecture'], scope=p['scope'], version=p['version'],
                         source_date_epoch=p['source_date_epoch'], xattrs=p['xattrs'], verity=p['verity'],
                         compression_level=p['compression_level'], cluster_size=p['cluster_size'],
                         erofs_features=p['erofs_features'], container=p['container'], signing_key=p['signing_key'],
                         signing_certificate=p['signing_certificate'], force=p['force'], check_mode=module.check_mode)
    result = build.module_result(module, build.run, opts, 'path')
    result['class'] = result['kind']
    result['checksum'] = 'sha256:' + result['sha256'] if result.get('sha256') else None
    module.exit_json(**result)


if __name__ == '__main__':
    main()
