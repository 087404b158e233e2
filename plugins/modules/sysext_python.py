#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: sysext_python
short_description: Build a relocatable Python system extension from Debian's python3 packages, offline
version_added: 0.1.0
description:
  - Builds, on the controller, a system extension image holding a complete Python interpreter for hosts
    that have none (Flatcar Container Linux, Fedora CoreOS), from the Debian C(.deb) files in O(debs)
    (for example bookworm's C(python3.11-minimal), C(libpython3.11-minimal), C(libpython3.11-stdlib) and
    the libraries they depend on, as C(scripts/bootstrap.sh python-debs) downloads them). No network is used.
  - Everything lives under the private prefix C(/usr/lib/tucked-sysext/python) (PREFIX); the image holds
    nothing else but its release file. It never ships C(/usr/bin/python3), C(/usr/lib/python3.X) or anything
    that could shadow the host's files or another Python extension. PREFIX holds C(bin/python3.X) (the
    interpreter), C(bin/python3) (the interpreter to use, a C(/bin/sh) launcher that execs C(python3.X); see
    below), the standard library in C(lib/python3.X) (with C(lib-dynload)), the bundled shared
    libraries in C(lib/), the Debian copyright files of the packages used in C(share/doc/), and the
    manifest C(tucked-python.json) (RV(name), RV(version), RV(python_version), RV(interpreter),
    RV(glibc_min), RV(architecture), RV(packages)).
  - Every shared library the interpreter and its extension modules need (found by their C(DT_NEEDED)
    entries, read from the ELF files by the module itself) is bundled, except glibc's own (C(libc), C(libm),
    C(libpthread), C(libdl), C(librt), C(libutil), C(libresolv), C(libanl), C(libnsl.so.1), the dynamic loader
    and the NSS modules), which the host provides. Each ELF object gets a C($ORIGIN)-relative C(RUNPATH)
    (C(patchelf)) leading to C(PREFIX/lib), so nothing depends on C(LD_LIBRARY_PATH), which children such as
    C(systemctl) would inherit.
  - The standard library is compiled to bytecode in the image (it is read-only on the host), as unchecked
    hash-based C(.pyc) files (PEP 552), so file times never matter. The bundled interpreter compiles it
    when it runs on the controller (same architecture, glibc at least RV(glibc_min)); otherwise the
    controller's own Python does, which must then be the same 3.X (the bytes may then differ from a build
    by the bundled interpreter).
  - Dropped from Debian's standard library, since they cannot work or are not wanted in the image, are
    C(test/) (and any C(test), C(tests) or C(idle_test) package, C(idlelib), C(tkinter), C(turtledemo),
    C(turtle.py), C(lib2to3/tests), C(ensurepip/_bundled) when present), the test-only extension modules
    (C(_test*), C(_ctypes_test), C(_xxtestfuzz), C(xxlimited), C(xxlimited_35)), and Debian's
    C(sitecustomize.py), a link to the host's C(/etc/python3.X/sitecustomize.py). RV(dropped) lists them.
    Debian itself ships C(tkinter), C(idlelib), C(lib2to3), C(distutils) and C(ensurepip) in other packages.
  - The bundled OpenSSL (Debian's) looks for CA certificates in Debian's C(/usr/lib/ssl/cert.pem) and
    C(/usr/lib/ssl/certs), which Fedora CoreOS and Flatcar do not have. So when neither exists and neither
    C(SSL_CERT_FILE) nor C(SSL_CERT_DIR) is set, the launcher C(bin/python3) sets C(SSL_CERT_FILE) to the host's
    CA bundle, the first of C(/etc/ssl/certs/ca-certificates.crt) (Debian, Flatcar),
    C(/etc/pki/tls/certs/ca-bundle.crt) (Fedora), C(/etc/ssl/ca-bundle.pem), C(/etc/pki/tls/cacert.pem),
    C(/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem) and C(/etc/ssl/cert.pem) that exists (without one,
    C(SSL_CERT_DIR) to C(/etc/ssl/certs) or C(/etc/pki/tls/certs)), so that TLS verification (M(tucked.sysext.sysext_image)
    with O(tucked.sysext.sysext_image#module:url), urllib) works there. Nothing of the standard library is changed;
    C(sys.executable) is C(bin/python3.X); children inherit the variable (naming the host's own bundle).
    C(OPENSSL_CONF) is left unset, since the host's C(openssl.cnf) is written for its own OpenSSL.
  - With the default packages of C(scripts/bootstrap.sh python-debs) (bookworm's Python 3.11.2) the image
    needs glibc 2.36 or later on the host (as measured, C(libexpat.so.1) and C(libcrypt.so.1) need
    C(GLIBC_2.36), the interpreter itself C(GLIBC_2.35)); RV(glibc_min) is measured on every build from the
    C(.gnu.version_r) sections of every ELF object in the image.
  - Reproducible and atomic. The image is built from the laid-out tree by the code of
    M(tucked.sysext.sysext_build) (every owner root, every time O(source_date_epoch), sorted directories),
    so the same packages and options give the same bytes, and it replaces O(dest) only when complete.
  - Idempotent. The digest of the inputs (each package's name, version, architecture and sha256, the
    options, the identities of C(patchelf) and of the image tool, and the controller's architecture, glibc
    and Python version) is kept with M(tucked.sysext.sysext_build)'s record in the C(user.tucked.build) xattr of
    the image. A later run with the same digest unpacks nothing and returns RV(changed=false); without the
    record (another file system, a copied image) the image is built aside and compared byte for byte, and an
    identical one is left untouched.
  - Meant to run on the controller (C(delegate_to=localhost), C(run_once=true)); the image is then stored
    and merged on the hosts (see the bootstrap of this collection, or M(tucked.sysext.sysext_image) with
    RV(checksum)).
extends_documentation_fragment:
  - tucked.sysext.bytecode
author:
  - The tucked.sysext team (@tucked)
options:
  debs:
    description:
      - The directory on the controller holding the C(.deb) files (only those directly in it, not in its
        subdirectories). It must hold one C(python3.X-minimal) with its C(libpython3.X-minimal) and
        C(libpython3.X-stdlib) of the same version, and every package whose library they need (the packages of
        one architecture; C(all) ones are accepted too). Packages not needed are left out of the image.
      - C(scripts/bootstrap.sh python-debs) of a checkout fills C(/var/cache/tucked-sysext/debs/python3.11-bookworm)
        with bookworm's packages (C(apt-get download) on Debian 12).
    type: path
    required: true
  dest:
    description:
      - The image file to write. An existing directory (or a path ending in C(/)) gets
        C(NAME-VERSION.raw) inside it, the name M(tucked.sysext.sysext_image)'s store gives a version.
      - Its directory must exist.
    type: path
    required: true
  name:
    description: The extension name (C(extension-release.NAME) in the image, RV(name) in the manifest).
    type: str
    default: tucked-python
  version:
    description:
      - The image version (C(IMAGE_VERSION) of the release file, RV(version) of the manifest).
      - Default the Debian version of C(python3.X-minimal) with every character outside C([A-Za-z0-9.~^-])
        replaced by C(.), for example V(3.11.2-6.deb12u9) for C(3.11.2-6+deb12u9).
    type: str
  format:
    description:
      - The file system of the image. V(squashfs) (default) with V(gzip) compression is squashfs's original
        compressor, enabled by default in every kernel's squashfs (C(CONFIG_SQUASHFS_ZLIB=y); Flatcar's and
        Fedora's kernels have it), and what this collection reads in place without mounting.
    type: str
    choices: [squashfs, erofs]
    default: squashfs
  compression:
    description:
      - The compressor, as O(tucked.sysext.sysext_build#module:compression). Default V(gzip) for squashfs and
        V(none) for erofs.
    type: str
    choices: [gzip, xz, lzma, lzo, lz4, zstd, none, lz4hc, deflate]
  source_date_epoch:
    description:
      - Seconds since 1970 used for every timestamp in the image.
      - Default the C(SOURCE_DATE_EPOCH) environment variable of the module (set it with the task's
        C(environment)), else the modification time of the interpreter in its package (the time Debian built it).
    type: int
  force:
    description: Build even when the record says the inputs are unchanged; O(dest) is still only replaced when the new image differs.
    type: bool
    default: false
  root:
    description:
      - Not used. Accepted so that C(module_defaults) of the action group C(tucked.sysext.sysext) can set O(root)
        for the target modules; O(debs) and O(dest) are always paths on the host that builds.
    type: path
attributes:
  check_mode:
    support: full
    description:
      - Reports whether O(dest) would change and writes nothing next to it. When O(dest) does not exist, the
        packages are unpacked in a private temporary directory to report RV(glibc_min), RV(packages) and the
        other facts, without building; when it exists without a matching record, the image is built in a
        private temporary directory and compared.
  diff_mode:
    support: full
    description: The manifest of the image before and after.
notes:
  - Needs on the controller C(dpkg-deb) (package C(dpkg)), C(patchelf) 0.10 or later (package C(patchelf)) and
    C(mksquashfs) (C(squashfs-tools)) or C(mkfs.erofs) (C(erofs-utils)) for O(format), and Python 3.X itself when
    the bundled interpreter cannot run on the controller.
  - While building, the directory of O(dest) needs room for the unpacked packages, the laid-out tree (about
    45 MB for Python 3.11) and a copy of it.
  - The bundled OpenSSL looks for its configuration and certificates where Debian puts them (C(/usr/lib/ssl),
    C(/etc/ssl/certs)); on hosts that keep them elsewhere, set E(SSL_CERT_FILE) or E(SSL_CERT_DIR) for tasks that
    verify TLS certificates. OpenSSL's engines and the legacy provider are not bundled.
  - The interpreter finds its libraries through C($ORIGIN), which the dynamic loader reads from C(/proc/self/exe),
    so C(/proc) must be mounted, as it is on every booted host.
  - C(ctypes.util.find_library) and the terminfo database are the host's. Nothing can be installed into the
    read-only image (C(pip) is not in it, and Debian's C(EXTERNALLY-MANAGED) marker of PEP 668 is kept).
seealso:
  - module: tucked.sysext.sysext_build
  - module: tucked.sysext.sysext_image
"""

EXAMPLES = r"""
- name: Build the Python extension from the packages the bootstrap script downloaded
  tucked.sysext.sysext_python:
    debs: /var/cache/tucked-sysext/debs/python3.11-bookworm
    dest: /srv/images/
  delegate_to: localhost
  run_once: true
  register: python_image

- name: Store and select it on a host, by the checksum the build returned
  tucked.sysext.sysext_image:
    name: "{{ python_image.name }}"
    version: "{{ python_image.version }}"
    src: "{{ python_image.dest }}"
    checksum: "{{ python_image.checksum }}"
  become: true

- name: An erofs image with a version of its own
  tucked.sysext.sysext_python:
    debs: /srv/debs/python3.11
    dest: /srv/images/tucked-python-site1.raw
    version: "3.11.2-site1"
    format: erofs
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
changed:
  description: Whether the image was (in check mode, would be) written.
  returned: always
  type: bool
built:
  description: Whether an image was built in this run (also a comparison build whose result was identical).
  returned: always
  type: bool
dest:
  description: The image file.
  returned: always
  type: str
  sample: /srv/images/tucked-python-3.11.2-6.deb12u9.raw
checksum:
  description:
    - V(sha256:HEX) of the image, the form O(tucked.sysext.sysext_image#module:checksum) takes; V(null) in check
      mode when the image does not exist yet.
  returned: always
  type: str
  sample: sha256:a133a7fa60be8f51fc0c9a5c9bea3efa7075f456d1cc878b8343c8fda787d98b
sha256:
  description: The same digest without the prefix (V(null) when RV(checksum) is).
  returned: always
  type: str
size:
  description: The size of the image in bytes (V(null) when RV(checksum) is).
  returned: always
  type: int
  sample: 15278080
name:
  description: The extension name.
  returned: always
  type: str
  sample: tucked-python
version:
  description: The image version (C(IMAGE_VERSION)).
  returned: always
  type: str
  sample: 3.11.2-6.deb12u9
interpreter:
  description: The interpreter's path on a host where the image is merged.
  returned: always
  type: str
  sample: /usr/lib/tucked-sysext/python/bin/python3
python_version:
  description: The Python version (the upstream part of the Debian version of C(python3.X-minimal)).
  returned: always
  type: str
  sample: 3.11.2
glibc_min:
  description: The oldest glibc the image runs on, the newest C(GLIBC_x.y) symbol version any ELF object in it needs.
  returned: always
  type: str
  sample: "2.36"
architecture:
  description: systemd's name of the architecture of the interpreter (C(ARCHITECTURE) of the release file).
  returned: always
  type: str
  sample: x86-64
packages:
  description: The Debian packages whose files are in the image, with their versions.
  returned: always
  type: dict
  sample: {"python3.11-minimal": "3.11.2-6+deb12u9", "libssl3": "3.0.22-1~deb12u2", "zlib1g": "1:1.2.13.dfsg-1+deb12u1"}
format:
  description: V(squashfs) or V(erofs).
  returned: always
  type: str
compression:
  description: The compressor.
  returned: always
  type: str
  sample: gzip
dropped:
  description: The paths of the standard library left out of the image (a directory is named once).
  returned: always
  type: list
  elements: str
  sample: [/usr/lib/tucked-sysext/python/lib/python3.11/test, /usr/lib/tucked-sysext/python/lib/python3.11/sitecustomize.py]
bytecode:
  description: Which Python compiled the bytecode (empty in check mode without a build).
  returned: always
  type: str
  sample: bundled interpreter 3.11.2
source_date_epoch:
  description: The timestamp of every file in the image.
  returned: always
  type: int
inputs:
  description: The digest of the inputs; equal digests give equal images.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

# first: from here on, the compiled code of this collection's module_utils is cached on the host
from ansible_collections.tucked.sysext.plugins.module_utils import bytecode  # noqa: F401 pylint: disable=unused-import
from ansible_collections.tucked.sysext.plugins.module_utils import build, pyimage

ARGUMENT_SPEC = {
    'debs': {'type': 'path', 'required': True},
    'dest': {'type': 'path', 'required': True},
    'name': {'type': 'str', 'default': pyimage.DEFAULT_NAME},
    'version': {'type': 'str'},
    'format': {'type': 'str', 'choices': list(build.FORMATS), 'default': 'squashfs'},
    'compression': {'type': 'str', 'choices': list(dict.fromkeys(c for cs in build.COMPRESSION.values() for c in cs))},
    'source_date_epoch': {'type': 'int'},
    'force': {'type': 'bool', 'default': False},
    'root': {'type': 'path'},       # not used: see the documentation
}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    opts = pyimage.Options(debs=p['debs'], dest=p['dest'], name=p['name'], version=p['version'], format=p['format'],
                           compression=p['compression'], source_date_epoch=p['source_date_epoch'], force=p['force'],
                           check_mode=module.check_mode)
    result = build.module_result(module, pyimage.run, opts, 'dest')
    module.exit_json(**result)


if __name__ == '__main__':
    main()
