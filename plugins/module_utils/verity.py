# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""dm-verity as systemd 262 finds it for an extension image (dissect-image.c):

* beside a plain image: ``NAME.verity`` (the hash tree), the root hash from the
  ``user.verity.roothash`` xattr or ``NAME.roothash`` (else ``usrhash``), and the signature
  ``NAME.roothash.p7s``; none of them for block devices;
* in a GPT image: the data partition's verity partition, the root hash from a sidecar as
  above, else from the signature partition's JSON (``rootHash``), else the data partition's
  UUID followed by the verity partition's UUID.

The root hash found is what the origin records (``verityHash``), whether verity is then set
up or not. Setting it up is ``activate.py``'s job."""

from __future__ import annotations

import json
import os
import stat
import uuid
from typing import NamedTuple

from . import rootfs

MAX_SIG_PARTITION = 4 * 1024 * 1024


class VerityError(ValueError):
    """Verity data that systemd refuses; the message names the file."""


class Sidecars(NamedTuple):
    roothash: str | None        # hex, from the xattr or the file
    designator: str | None      # root | usr: which hash it was
    signature: str | None       # path of NAME.roothash.p7s (NAME.usrhash.p7s)
    hash_tree: str | None       # path of NAME.verity
    source: str = ''            # where the root hash came from, for messages


NONE = Sidecars(None, None, None, None)


class Plan(NamedTuple):
    """How the native engine sets dm-verity up for a layer (dmverity.open_for())."""
    roothash: str                  # hex
    hash_tree: str | None          # NAME.verity beside a plain image (None: the verity partition)
    signature: str | None          # NAME.roothash.p7s beside it (None: the signature partition, if any)
    signature_required: bool       # the image policy allows signed but not plain verity


def _base(host_path: str) -> str:
    return host_path[:-4] if host_path.endswith('.raw') else host_path


def _hex(text: str, where: str) -> str:
    value = text.strip().lower()
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise VerityError('%s does not hold a hex root hash' % where) from None
    if len(raw) < 16:
        raise VerityError('%s holds a root hash of %d bytes; a dm-verity root hash has at least 16' % (where, len(raw)))
    return raw.hex()


def sidecars(host_path: str, is_block: bool) -> Sidecars:
    """verity_settings_load(): the sidecar files and xattrs of the image at ``host_path``."""
    if is_block:
        return NONE
    base = _base(host_path)
    found = None
    for designator, suffix in (('root', 'roothash'), ('usr', 'usrhash')):
        try:
            value = os.getxattr(host_path, 'user.verity.' + suffix)
            found = (_hex(value.decode('ascii', 'replace'), '%s (xattr user.verity.%s)' % (host_path, suffix)),
                     designator, 'the user.verity.%s xattr of %s' % (suffix, host_path), suffix)
            break
        except OSError:
            pass
        path = '%s.%s' % (base, suffix)
        try:
            text = rootfs.read_regular(path, 4096).decode('ascii', 'replace')
        except FileNotFoundError:
            continue
        except OSError as e:
            raise VerityError('cannot read %s: %s' % (path, e.strerror)) from None
        found = (_hex(text, path), designator, path, suffix)
        break
    hash_tree = base + '.verity'
    st = _stat(hash_tree)
    if st is None:
        hash_tree = None
    elif not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        # (veritysetup would open it, and block on a FIFO)
        raise VerityError('%s is %s; a dm-verity hash tree is a regular file or a block device: remove it or '
                          'put the hash tree there' % (hash_tree, rootfs.kind(st.st_mode)))
    if found is None:
        return Sidecars(None, None, None, hash_tree)
    roothash, designator, source, suffix = found
    sig = '%s.%s.p7s' % (base, suffix)
    st = _stat(sig)
    if st is None:
        sig = None
    elif not stat.S_ISREG(st.st_mode):
        raise VerityError('%s is %s, not a regular file; remove it or put the PKCS#7 signature of the root hash '
                          'there' % (sig, rootfs.kind(st.st_mode)))
    elif st.st_size == 0:
        raise VerityError('%s is empty; remove it or put the PKCS#7 signature of the root hash there' % sig)
    return Sidecars(roothash, designator, sig, hash_tree, source)


def _stat(path: str) -> os.stat_result | None:
    """stat() of a sidecar (a symlink followed, as systemd opens it); None when there is none."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise VerityError('cannot read %s: %s' % (path, e.strerror)) from None


def signature_json(src, part) -> dict:
    """acquire_sig_for_roothash(): the JSON object of a verity signature partition
    (``rootHash`` and ``signature``, base64 PKCS#7)."""
    if part.size > MAX_SIG_PARTITION:
        raise VerityError('its verity signature partition (%d) is larger than 4 MiB' % part.number)
    data = src.pread(part.size, part.offset)
    text, _nul, rest = data.partition(b'\0')
    if rest.strip(b'\0'):
        raise VerityError('its verity signature partition (%d) holds data after a NUL byte' % part.number)
    try:
        doc = json.loads(text.decode('utf-8'))
    except (UnicodeDecodeError, ValueError) as e:
        raise VerityError('its verity signature partition (%d) is not JSON: %s' % (part.number, e)) from None
    except RecursionError:
        raise VerityError('its verity signature partition (%d) holds JSON nested too deeply' % part.number) from None
    if not isinstance(doc, dict):
        raise VerityError('its verity signature partition (%d) holds no JSON object' % part.number)
    if not isinstance(doc.get('rootHash'), str):
        raise VerityError("its verity signature partition (%d) lacks the 'rootHash' field" % part.number)
    if not isinstance(doc.get('signature'), str):
        raise VerityError("its verity signature partition (%d) lacks the 'signature' field" % part.number)
    doc['rootHash'] = _hex(doc['rootHash'], 'its verity signature partition (%d)' % part.number)
    return doc


def guessed_roothash(data_uuid: str, verity_uuid: str) -> str:
    """dissected_image_guess_verity_roothash(): the data partition's UUID and the verity
    partition's UUID, 16 bytes each, in the byte order of their string form."""
    return (uuid.UUID(data_uuid).bytes + uuid.UUID(verity_uuid).bytes).hex()


def is_block(st: os.stat_result | None) -> bool:
    return st is not None and stat.S_ISBLK(st.st_mode)
