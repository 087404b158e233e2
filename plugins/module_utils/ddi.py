# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Discoverable Disk Image of a file system image, as ``systemd-repart --make-ddi=sysext``
(and ``=confext``) makes one (src/repart/repart.c and definitions/{sysext,confext}.repart.d):

* a root partition of the target architecture's Discoverable Partitions Specification type,
  labelled ``root-ARCH``, holding the erofs (or squashfs) image;
* with verity, a ``root-ARCH-verity`` partition holding ``veritysetup format``'s superblock and
  hash tree (sha256, 4096-byte data and hash blocks, the salt HMAC-SHA256("verity-salt") and
  the superblock UUID HMAC-SHA256("verity-uuid") keyed by the seed); the root partition's UUID
  is the first half of the root hash, the verity partition's UUID the second half;
* with a key and certificate, a 16 KiB ``root-ARCH-verity-sig`` partition holding the JSON
  ``{"rootHash":...,"certificateFingerprint":...,"signature":...}`` padded with NUL bytes, the
  signature a detached, binary, attribute-less PKCS#7 signature of the root hash in hex
  (PKCS7_sign(..., PKCS7_DETACHED|PKCS7_NOATTR|PKCS7_BINARY), here ``openssl smime -sign``);
* the verity partitions read-only (GPT attribute 60), the root partition without verity growfs
  (attribute 59), as repart flags them.

repart's seed is random unless given; here it is derived from the file system image's sha256,
so the same image gives the same disk image (RSA signatures are deterministic; ECDSA ones are
not, so a signed image changes with each build when the key is an EC key)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from typing import NamedTuple

from . import gptwrite
from .buildtools import BuildError, run_tool, verity_format
from .imagefs import gpt

SIG_SIZE = 4 * 4096             # repart's VERITY_SIG_SIZE
_PEM_CERT = re.compile(rb'-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----', re.S)


class Signer(NamedTuple):
    openssl: str                # path of the openssl tool
    key: str                    # PEM private key
    certificate: str            # PEM certificate


class Made(NamedTuple):
    roothash: str | None
    partitions: list            # gptwrite.Part (source paths inside the work directory)
    disk_uuid: str


def seed_of(image_sha: str) -> bytes:
    return hashlib.sha256(('tucked.sysext ddi ' + image_sha).encode()).digest()[:16]


def derive_uuid(seed: bytes, token: str) -> str:
    """repart's derive_uuid(): HMAC-SHA256 of ``token`` keyed by the seed, its first half made a
    version 4 UUID."""
    raw = bytearray(hmac.new(seed, token.encode(), hashlib.sha256).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def derive_salt(seed: bytes, token: str) -> str:
    return hmac.new(seed, token.encode(), hashlib.sha256).hexdigest()


def types(architecture: str) -> tuple[str, str, str]:
    """The root, root-verity and root-verity-sig type UUIDs of ``architecture``."""
    ts = gpt.TYPES.get(architecture)
    if ts is None:
        raise BuildError('architecture %s has no partition types in the Discoverable Partitions Specification; a DDI '
                         'can be built for %s' % (architecture, ', '.join(sorted(gpt.TYPES))))
    return ts[gpt.DESIGNATORS.index('root')], ts[gpt.DESIGNATORS.index('root-verity')], \
        ts[gpt.DESIGNATORS.index('root-verity-sig')]


def certificate_fingerprint(path: str) -> str:
    """sha256 of the certificate's DER encoding (repart's x509_fingerprint())."""
    try:
        with open(path, 'rb') as f:
            pem = f.read(1 << 20)
    except OSError as e:
        raise BuildError('cannot read the signing certificate %s: %s' % (path, e.strerror)) from None
    m = _PEM_CERT.search(pem)
    if not m:
        raise BuildError('%s holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the X.509 certificate of '
                         'the signing key' % path)
    try:
        der = base64.b64decode(b''.join(m.group(1).split()), validate=True)
    except ValueError:
        raise BuildError('the PEM certificate in %s is not valid base64' % path) from None
    return hashlib.sha256(der).hexdigest()


def sign(signer: Signer, roothash: str, work: str) -> bytes:
    """The DER PKCS#7 signature of the root hash in hex, as repart makes it."""
    text, out = os.path.join(work, 'roothash.txt'), os.path.join(work, 'roothash.p7s')
    with open(text, 'w', encoding='ascii') as f:
        f.write(roothash)
    run_tool([signer.openssl, 'smime', '-sign', '-binary', '-noattr', '-outform', 'DER', '-md', 'sha256',
              '-in', text, '-signer', signer.certificate, '-inkey', signer.key, '-out', out],
             'signing the root hash with %s' % signer.key, work)
    with open(out, 'rb') as f:
        return f.read()


def signature_blob(roothash: str, fingerprint: str, signature: bytes) -> bytes:
    text = json.dumps({'rootHash': roothash, 'certificateFingerprint': fingerprint,
                       'signature': base64.b64encode(signature).decode('ascii')}, separators=(',', ':'))
    raw = text.encode('ascii')
    if len(raw) + 1 > SIG_SIZE:
        raise BuildError('the verity signature (%d bytes of JSON) does not fit the %d bytes of the signature '
                         'partition; use a smaller certificate (no chain) or key' % (len(raw), SIG_SIZE))
    return raw.ljust(SIG_SIZE, b'\0')


def _pad(path: str) -> int:
    size = os.path.getsize(path)
    padded = -(-size // gptwrite.GRAIN) * gptwrite.GRAIN
    if padded != size:
        os.truncate(path, padded)
    return padded


def make(image: str, image_sha: str, architecture: str, work: str, verity_tool: str | None,
         signer: Signer | None) -> Made:
    """The partitions of the DDI of the file system ``image`` (padded in place to 4096 bytes)."""
    t_root, t_verity, t_sig = types(architecture)
    seed = seed_of(image_sha)
    label = 'root-' + architecture
    size = _pad(image)
    disk = derive_uuid(seed, 'disk-uuid')
    if verity_tool is None:
        if signer is not None:
            raise BuildError('a signature signs the verity root hash: set verity: true to sign a DDI')
        part = gptwrite.Part(t_root, derive_uuid(seed, 'partition-' + t_root), label, size, gpt.FLAG_GROWFS, image)
        return Made(None, [part], disk)
    tree = os.path.join(work, 'verity-partition')
    roothash = verity_format(verity_tool, image, tree, derive_salt(seed, 'verity-salt'),
                             derive_uuid(seed, 'verity-uuid'), work)
    raw = bytes.fromhex(roothash)
    data_uuid, hash_uuid = str(uuid.UUID(bytes=raw[:16])), str(uuid.UUID(bytes=raw[-16:]))
    parts = [gptwrite.Part(t_root, data_uuid, label, size, gpt.FLAG_READ_ONLY, image),
             gptwrite.Part(t_verity, hash_uuid, label + '-verity', _pad(tree), gpt.FLAG_READ_ONLY, tree)]
    if signer is not None:
        blob = signature_blob(roothash, certificate_fingerprint(signer.certificate), sign(signer, roothash, work))
        parts.append(gptwrite.Part(t_sig, derive_uuid(seed, 'partition-' + t_sig), label + '-verity-sig', SIG_SIZE,
                                   gpt.FLAG_READ_ONLY, data=blob))
    return Made(roothash, parts, disk)


def write(made: Made, out: str) -> None:
    try:
        gptwrite.write(out, made.partitions, made.disk_uuid)
    except ValueError as e:
        raise BuildError('cannot lay out the disk image %s: %s' % (out, e)) from None
