# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Set dm-verity up for an image layer as systemd 262 does (verity_partition() in
dissect-image.c), with the host's ``veritysetup`` (cryptsetup) doing the device-mapper work:

* the hash tree is the image's verity partition (a loop device over it) or the ``.verity``
  file beside a plain image; the root hash is the one the plan found (verity.py);
* a signature (the signature partition's, or ``NAME.roothash.p7s``) is given to the kernel
  first (``--root-hash-signature``: the kernel checks it against its trusted keyrings); when
  the kernel refuses it, it is checked in userspace against the certificates in
  ``/etc|/run|/usr/local/lib|/usr/lib/verity.d/*.crt`` inside the root (``openssl``; the
  signer must be one of them, PKCS#7 over the hex root hash); when that fails too, the
  volume is set up by its root hash alone if the image policy allows ``verity``, else refused;
* the device is removed deferred right after it is mounted, so that it goes with the mount.

Runs in the build child only (a refresh that changes something), never on the no-change path."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import tempfile
from . import mountapi, proc, rootfs, verity
from .imagefs import image as imagefs
from .engine import ApplyError

CERT_DIRS = ('/etc/verity.d', '/run/verity.d', '/usr/local/lib/verity.d', '/usr/lib/verity.d')
DM_PREFIX = 'tucked-verity-'


def certificates(root: str) -> list:
    """conf_files_list(".crt", root, verity.d): one file per name, the first directory wins,
    an empty file or a link to /dev/null masks the name. Each name is resolved inside the root
    (a link to an absolute path leads into the root, never to this machine's own files)."""
    found = {}
    for d in CERT_DIRS:
        try:
            names = os.listdir(rootfs.resolve(root, d))
        except OSError:
            continue
        for n in names:
            if n.endswith('.crt') and n not in found:
                found[n] = '%s/%s' % (d, n)
    out = []
    for n in sorted(found):
        try:
            p = rootfs.resolve(root, found[n])
            st = os.stat(p)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_size > 0:     # (/dev/null, in the root or not, masks it)
            out.append(p)
    return out


def verify_userspace(root: str, roothash: str, signature: bytes, work: str) -> tuple[bool, str]:
    """validate_signature_userspace(): PKCS7_verify(NOINTERN|NOVERIFY) of the hex root hash
    with the signer among the root's verity.d certificates."""
    certs = certificates(root)
    if not certs:
        return False, 'no certificates in %s inside %s' % (', '.join(CERT_DIRS), root)
    openssl = shutil.which('openssl')
    if not openssl:
        return False, 'openssl is not installed, so the signature cannot be checked in userspace'
    content = os.path.join(work, 'roothash')
    sig = os.path.join(work, 'signature.p7s')
    bundle = os.path.join(work, 'certs.pem')
    with open(content, 'w', encoding='ascii') as f:
        f.write(roothash)
    with open(sig, 'wb') as f:
        f.write(signature)
    with open(bundle, 'wb') as out:
        for c in certs:
            with rootfs.open_regular(c) as f:
                out.write(f.read().rstrip(b'\n') + b'\n')
    res = proc.run([openssl, 'smime', '-verify', '-binary', '-inform', 'DER', '-in', sig, '-content', content,
                    '-certfile', bundle, '-nointern', '-noverify', '-out', os.devnull],
                   capture_output=True, text=True, check=False)
    if res.returncode == 0:
        return True, 'signed by one of %s' % ', '.join(certs)
    return False, 'the signature is not made by any of %s (%s)' % (
        ', '.join(certs), (res.stderr.strip().splitlines() or ['openssl failed'])[0])


def _veritysetup() -> str:
    tool = shutil.which('veritysetup')
    if not tool:
        raise ApplyError('this image is protected by dm-verity and the native engine sets that up with veritysetup, '
                         'which is not installed on the managed node (package cryptsetup-bin on Debian, cryptsetup '
                         'elsewhere); nothing was changed')
    return tool


def _open(tool: str, data: str, name: str, hash_dev: str, roothash: str, sig: str | None) -> subprocess.CompletedProcess:
    cmd = [tool, 'open', data, name, hash_dev, roothash]
    if sig:
        cmd.append('--root-hash-signature=' + sig)
    return proc.run(cmd, capture_output=True, text=True, check=False)


def open_for(plan: verity.Plan, lay, fd: int, data_dev: str, shown: str, root: str, cleanup: list) -> str:
    """Set the verity device up over ``data_dev`` and return its node; ``cleanup`` gets the
    callables that release what was made once the device is mounted (or on failure)."""
    tool = _veritysetup()
    work = tempfile.mkdtemp(prefix='tucked-verity-')
    cleanup.append(lambda: shutil.rmtree(work, ignore_errors=True))
    hash_dev = plan.hash_tree
    if hash_dev is None:
        dev, lfd = mountapi.loop_attach(fd, shown, offset=lay.verity.offset, size=lay.verity.size)
        cleanup.append(lambda: os.close(lfd))
        hash_dev = dev
    signature = None
    if plan.signature:
        with rootfs.open_regular(plan.signature) as f:      # (a FIFO put there since the plan never blocks us)
            signature = f.read()
    elif lay is not None and lay.signature is not None:
        try:
            signature = base64.b64decode(verity.signature_json(imagefs.Source(fd), lay.signature)['signature'])
        except (verity.VerityError, ValueError) as e:
            raise ApplyError('%s: %s; nothing was changed' % (shown, e)) from None
    name = DM_PREFIX + plan.roothash[:32] + '-' + os.urandom(4).hex()
    sig_file = None
    if signature is not None:
        sig_file = os.path.join(work, 'kernel.p7s')
        with open(sig_file, 'wb') as f:
            f.write(signature)
    res = _open(tool, data_dev, name, hash_dev, plan.roothash, sig_file)
    if res.returncode != 0 and signature is not None:
        ok, why = verify_userspace(root, plan.roothash, signature, work)
        if not ok and plan.signature_required:
            raise ApplyError('%s: its dm-verity signature was refused by the kernel (%s) and cannot be checked in '
                             'userspace: %s; the image policy requires a signed image, nothing was changed'
                             % (shown, res.stderr.strip() or 'veritysetup failed', why))
        res = _open(tool, data_dev, name, hash_dev, plan.roothash, None)
    elif signature is None and plan.signature_required:
        raise ApplyError('%s has no dm-verity signature, and the image policy requires one; nothing was changed' % shown)
    if res.returncode != 0:
        raise ApplyError('%s: veritysetup could not set up dm-verity (%s); the image or its root hash is wrong, '
                         'nothing was changed' % (shown, res.stderr.strip() or 'exit %d' % res.returncode))
    cleanup.append(lambda: proc.run([tool, 'close', '--deferred', name], capture_output=True, check=False))
    return '/dev/mapper/' + name
