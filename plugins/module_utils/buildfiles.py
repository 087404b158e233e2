# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The files sysext_build keeps beside an image: the build record in the image's
``user.tucked.build`` xattr, the verity sidecars systemd looks for, and the work directories
(``.#NAME.build-PID-...``, which systemd ignores) of runs that were killed."""

from __future__ import annotations

import hashlib
import json
import os

from .imagefs import image as imagefs
from .buildtools import hash_file
from .buildtree import release_path
from .fsutil import pid_alive
from .rootfs import read_regular

RECORD_XATTR = 'user.tucked.build'
RECORD_VERSION = 1        # bump when the tool flags change, so that old records no longer match
TMP_PREFIX = '.#'
SUFFIX = '.raw'
# A work directory's name is its prefix plus '-PID-' and 8 random characters: the image's own
# name goes in whole only while that stays within NAME_MAX (255).
_PREFIX_NAME_MAX = 180


def _stat_key(st: os.stat_result) -> list:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def read_record(path: str) -> dict | None:
    """The build record of an image, or None when missing, unreadable or stale (the file was
    changed after the record was written)."""
    try:
        st = os.stat(path)
        raw = os.getxattr(path, RECORD_XATTR)
        rec = json.loads(raw.decode('utf-8'))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get('v') != RECORD_VERSION or rec.get('file') != _stat_key(st):
        return None
    return rec


def write_record(path: str, rec: dict) -> bool:
    """Store the record; False when the filesystem has no user xattrs (later runs then
    compare by building aside)."""
    try:
        rec = dict(rec, v=RECORD_VERSION, file=_stat_key(os.stat(path)))
        os.setxattr(path, RECORD_XATTR, json.dumps(rec, sort_keys=True).encode())
        return True
    except OSError:
        return False


def sidecars(dest: str) -> tuple[str, str]:
    """systemd's verity sidecars of an image (build_auxiliary_path()): ``.raw`` is replaced
    by ``.verity`` and ``.roothash``; other names get the suffix appended."""
    base = dest[:-len(SUFFIX)] if dest.endswith(SUFFIX) else dest
    return base + '.verity', base + '.roothash'


def _read_roothash(path: str) -> str | None:
    """The root hash sidecar's text; None when it cannot be read or is not a regular file (a FIFO
    there never blocks us: read_regular opens it O_NONBLOCK)."""
    try:
        return read_regular(path, 4096).decode('ascii', 'replace').strip()
    except OSError:
        return None


def verity_current(dest: str, roothash: str | None, verity_sha: str | None) -> bool:
    vpath, rpath = sidecars(dest)
    if not roothash or not verity_sha or _read_roothash(rpath) != roothash or not os.path.isfile(vpath):
        return False
    return hash_file(vpath) == verity_sha


def work_prefix(dest: str) -> str:
    base = os.path.basename(dest)
    if len(base.encode('utf-8', 'surrogateescape')) > _PREFIX_NAME_MAX:
        base = base[:60] + '~' + hashlib.sha256(base.encode('utf-8', 'surrogateescape')).hexdigest()[:16]
    return '%s%s.build-' % (TMP_PREFIX, base)


def stale_workdirs(dest: str) -> list[str]:
    """Work directories of runs that were killed (their process is gone)."""
    d, prefix, out = os.path.dirname(dest), work_prefix(dest), []
    try:
        names = os.listdir(d)
    except OSError:
        return []
    for n in names:
        if n.startswith(prefix):
            pid = n[len(prefix):].split('-', 1)[0]
            if pid.isdigit() and not pid_alive(int(pid)):
                out.append(os.path.join(d, n))
    return out


def read_image_release(path: str, kind: str, name: str) -> str | None:
    """The release text inside an image, read without mounting; None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = imagefs.read_file(fd, release_path(kind, name), 1 << 16, kind)
        return data.decode('utf-8', 'replace')
    except (imagefs.ImageError, OSError):
        return None
    finally:
        os.close(fd)
