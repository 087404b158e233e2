# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the controller and the target both need to know of an image file of the store: the
checksum form sysext_image takes (``ALGO:HEX``), the digest of a file (cached in an xattr in
the store) and the dm-verity sidecars systemd looks for beside it. The action plugin and the
lookup use this module without the target logic of ``store``."""

from __future__ import annotations

import hashlib
import os

from . import images, rootfs

DEFAULT_STORE_DIR = '/opt/extensions'     # sysext_image's store_dir, the layout of sysext-bakery users
SUFFIX = '.raw'
ALGORITHMS = ('sha256', 'sha384', 'sha512')
# dm-verity sidecars systemd looks for beside an image file (.raw replaced), src/shared/dissect-image.c
VERITY_SIDECARS = ('.verity', '.roothash', '.roothash.p7s', '.usrhash', '.usrhash.p7s')
CHUNK = 1 << 20


class ChecksumError(ValueError):
    """A checksum that is not of the form ``ALGO:HEX`` with a supported algorithm."""


def parse_checksum(value: str) -> tuple[str, str]:
    """'sha256:HEX' -> ('sha256', 'hex'); bare hex of 64 characters is sha256."""
    algo, sep, hexd = value.strip().partition(':')
    if not sep:
        algo, hexd = 'sha256', algo
    algo = algo.lower()
    hexd = hexd.lower()
    size = {'sha256': 64, 'sha384': 96, 'sha512': 128}.get(algo)
    if size is None:
        raise ChecksumError('checksum %r: unsupported algorithm %r; use one of %s, as in sha256:<64 hex digits>'
                            % (value, algo, ', '.join(ALGORITHMS)))
    if len(hexd) != size or any(c not in '0123456789abcdef' for c in hexd):
        raise ChecksumError('checksum %r: expected %s:<%d hex digits>' % (value, algo, size))
    return algo, hexd


def file_digest(path: str, algo: str = 'sha256', use_cache: bool = True) -> str:
    """Hex digest of a file. For files in the store, the digest is cached in an xattr keyed
    by size, mtime and inode, so that a run with nothing to do reads no image contents."""
    st = os.stat(path)
    if use_cache:
        cached = images.cached_digest(path, st)
        if cached and cached.startswith(algo + ':'):
            return cached[len(algo) + 1:]
    h = hashlib.new(algo)
    with rootfs.open_regular(path) as f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            h.update(chunk)
    hexd = h.hexdigest()
    if use_cache:
        cache_digest(path, algo, hexd)
    return hexd


def cache_digest(path: str, algo: str, hexd: str) -> None:
    try:
        os.setxattr(path, images.DIGEST_XATTR, (images.digest_key(os.stat(path), algo) + hexd).encode())
    except OSError:
        pass        # no user xattrs on this filesystem: the digest is recomputed next time


def sidecars_of(host_path: str) -> dict:
    """suffix -> host path of the dm-verity sidecars beside an image, named as systemd looks for
    them (``NAME.raw`` -> ``NAME.verity``, ``NAME.roothash``, ``NAME.roothash.p7s`` ...)."""
    base = host_path[:-len(SUFFIX)] if host_path.endswith(SUFFIX) else host_path
    return {s: base + s for s in VERITY_SIDECARS if os.path.isfile(base + s)}


def sidecar_digests(host_path: str) -> dict:
    """suffix -> 'sha256:HEX' of the sidecars beside an image."""
    return {s: 'sha256:' + file_digest(p, 'sha256', use_cache=False) for s, p in sidecars_of(host_path).items()}
