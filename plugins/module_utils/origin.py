# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Origin records: the identity of each merged extension as systemd-sysext >= 260 writes
it to ``.systemd-sysext/origin`` (PR #39980), computed with the same rules as
image_make() in src/shared/discover-image.c, read back, formatted and compared."""

from __future__ import annotations

import errno
import json
import os
import stat

from . import fsutil, mountapi

# Errors of name_to_handle_at() that mean "no handle here, use the inode" rather than
# "something is broken" (is_name_to_handle_at_fatal_error() in systemd).
_HANDLE_UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOSYS, errno.EPERM, errno.EACCES, errno.EOVERFLOW,
                       getattr(errno, 'ENOTSUP', errno.EOPNOTSUPP))
CRTIME_XATTR = 'user.crtime_usec'
MAX_ORIGIN_SIZE = 4 * 1024 * 1024


class OriginError(ValueError):
    """An origin file cannot be used; the message names the file."""


def _file_handle(path: str):
    """name_to_handle_at_try_fid(): try AT_HANDLE_FID first, then a plain handle."""
    for flags in (mountapi.AT_HANDLE_FID, 0):
        try:
            return mountapi.name_to_handle_at(path, flags=flags)
        except OSError as e:
            if e.errno == errno.EINVAL and flags:
                continue
            if e.errno in _HANDLE_UNSUPPORTED:
                return None
            raise
    return None


def _crtime_usec(path: str, stx: mountapi.Statx) -> int:
    """fd_getcrtime(): the birth time from statx, else the user.crtime_usec xattr, else 0."""
    if stx.btime_usec is not None and stx.btime_usec > 0:
        return stx.btime_usec
    try:
        raw = os.getxattr(path, CRTIME_XATTR)
        if len(raw) == 8:
            return int.from_bytes(raw, 'little')
    except OSError:
        pass
    return 0


def compute(host_path: str, inroot_path: str, verity_hash: str | None = None) -> dict:
    """The origin entry systemd 262 records for the image at ``host_path`` (``inroot_path``
    is the resolved path inside the root, which is what systemd writes as ``path``).

    Keys in systemd's order: path, then verityHash (verity images) or onMountId and
    fileHandle (inode when there is no handle), then crtime and mtime (microseconds;
    mtime is 0 for directories, whose own mtime says nothing about the tree)."""
    if verity_hash:
        return {'path': inroot_path, 'verityHash': verity_hash}
    stx = mountapi.statx(host_path)
    fh = _file_handle(host_path)
    rec: dict = {'path': inroot_path, 'onMountId': stx.mnt_id}
    if fh is not None:
        rec['fileHandle'] = {'type': fh.handle_type, 'handle': fh.handle.hex()}
    else:
        rec['inode'] = stx.ino
    # a block device (IMAGE_BLOCK in discover-image.c) gets neither time
    rec['crtime'] = 0 if stat.S_ISBLK(stx.mode) else _crtime_usec(host_path, stx)
    if stat.S_ISREG(stx.mode):
        rec['mtime'] = stx.mtime_usec or 0
    else:
        rec['mtime'] = 0
    return rec


def document(mode: str, extensions: dict[str, dict], mutable_dirs: dict[str, str] | None = None) -> dict:
    """The whole origin object for one hierarchy."""
    mutable: dict = {'mode': mode}
    if mutable_dirs:
        mutable['mutableDirs'] = dict(mutable_dirs)
    return {'mutable': mutable, 'extensions': dict(extensions)}


def dumps(doc: dict) -> str:
    """Format like sd_json_variant_format(SD_JSON_FORMAT_PRETTY|SD_JSON_FORMAT_NEWLINE):
    tab indentation and ``" : "`` between key and value."""
    text = json.dumps(doc, indent='\t', separators=(',', ' : '), ensure_ascii=False)
    return text + '\n'


def loads(text: str, what: str) -> dict:
    """Parse and validate an origin file; raise OriginError naming ``what``."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise OriginError('%s is not valid JSON (%s); the next refresh rewrites it, or remove the merge with '
                          'systemd-sysext unmerge' % (what, e)) from None
    except RecursionError:
        raise OriginError('%s is not an origin record: its JSON is nested too deeply to be read; the next refresh '
                          'rewrites it, or remove the merge with systemd-sysext unmerge' % what) from None
    if not isinstance(doc, dict) or not isinstance(doc.get('extensions', {}), dict):
        raise OriginError('%s does not hold an origin object with an "extensions" map' % what)
    exts = doc.get('extensions', {})
    for name, rec in exts.items():
        if not isinstance(rec, dict) or not isinstance(rec.get('path'), str):
            raise OriginError('%s: extension %r has no "path"' % (what, name))
    if 'mutable' in doc and not isinstance(doc['mutable'], dict):
        raise OriginError('%s: "mutable" is not an object' % what)
    return doc


def read(path: str) -> dict | None:
    """Read an origin file; None if it does not exist (systemd < 260)."""
    data = fsutil.read_bounded(path, MAX_ORIGIN_SIZE, OriginError)
    if data is None:
        return None
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        raise OriginError('%s is not UTF-8 text' % path) from None
    return loads(text, path)


def differing_fields(old: dict, new: dict) -> list[str]:
    """Names of the fields that differ between two origin entries (semantic: key order and
    integer formatting do not matter)."""
    keys = list(new) + [k for k in old if k not in new]
    return [k for k in keys if old.get(k) != new.get(k)]
