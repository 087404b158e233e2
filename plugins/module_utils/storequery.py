# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sysext_image ``state: query``: what the store holds for a name, what its link selects, and
whether a version (the one the source offers: the given one, or the one the controller chose
from a repository's index) is stored already. Reads only: nothing is written, removed or
downloaded, and not even the leftovers of interrupted runs are cleaned up."""

from __future__ import annotations

import os

from .images import cached_digest
from .storefiles import ChecksumError, file_digest, parse_checksum
from .storelayout import StoreError, check_name, check_stored_name, check_version, current_selection, layout, \
    stored_versions, unmanaged_files
from .store import DEFAULT_LINK_DIR, Result


def query(name: str, kind: str, root: str, store_dir: str, link_dir: str | None, version: str | None = None,
          checksum: str | None = None, store_pattern: list | None = None) -> dict:
    """The result of a query: sysext_image's usual keys (``changed`` false, nothing copied or
    removed), ``versions`` the stored ones oldest first, ``selected``, and ``available`` the
    version offered (None when there is none) with ``stored`` whether the store holds it, with
    ``checksum`` when one is given (compared with the file's digest, cached by earlier runs), and ``link_problem``
    when the link exists but is not this module's. ``store_pattern`` names the versions as
    sysext_image's option of that name does (in store_dir itself)."""
    check_name(name)
    algo_hex = None
    if version is not None:
        check_version(version, patterned=bool(store_pattern))
        check_stored_name(name, version)
    if checksum:
        try:
            algo_hex = parse_checksum(checksum)
        except ChecksumError as e:
            raise StoreError(str(e)) from None
    if not os.path.isdir(root):
        raise StoreError('root %s is not a directory' % root)
    lay = layout(root, name, store_dir, link_dir or DEFAULT_LINK_DIR[kind], store_pattern)
    versions = stored_versions(lay)
    selected, foreign = current_selection(lay)
    res = Result(name=name, kind=kind, link=lay.link, selected=selected, previous=selected, version=version,
                 versions=versions, unmanaged=unmanaged_files(lay))
    if version is not None:
        res.path = lay.file_for(version)
        res.stored = version in versions
        if res.stored:
            algo = algo_hex[0] if algo_hex else 'sha256'
            try:
                have = _digest(lay.host(res.path), algo)
            except OSError as e:
                raise StoreError('cannot read %s: %s' % (lay.host(res.path), e.strerror)) from None
            res.checksum = '%s:%s' % (algo, have)
            # another file under that version's name is replaced by the next rollout: not stored yet
            res.stored = algo_hex is None or have == algo_hex[1]
    out = res.as_dict()
    out.update(available=version, link_problem=foreign)
    return out


def _digest(host_file: str, algo: str) -> str:
    """The digest cached in the file's xattr (stat-level), else computed without caching it."""
    cached = cached_digest(host_file)
    if cached and cached.startswith(algo + ':'):
        return cached[len(algo) + 1:]
    return file_digest(host_file, algo, use_cache=False)
