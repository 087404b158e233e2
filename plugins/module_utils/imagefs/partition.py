# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which partition of a GPT disk image systemd-sysext 262 uses, as dissect_image() picks it
(src/shared/dissect-image.c), and which file systems it allows (allowed_fstypes()).

Root and usr partitions of every architecture count; the native architecture is preferred,
then the secondary one (x86 on x86-64, arm on arm64), then any other, and among partitions of
the same architecture the newest label (strverscmp_improved) wins, the first on a tie.
Partitions labelled ``_empty`` or flagged no-auto are passed over. Without root and usr, a
single Linux generic partition is the root. A sysext uses the root partition and the usr
partition (mounted at /usr), or the usr partition alone; a confext only the root partition.
Each data partition may come with a verity hash partition, and that with a signature
partition."""

from __future__ import annotations

import os
from typing import NamedTuple

from ..version import version_key
from . import gpt
from .tree import ImageError, UnsupportedImage

LINUX_GENERIC = '0fc63daf-8483-4772-8e79-3d69d8477de4'
# dissect-image.c allowed_fstypes(); $SYSTEMD_DISSECT_FILE_SYSTEMS (':'-separated) replaces it
ALLOWED_FSTYPES = ('btrfs', 'erofs', 'ext4', 'f2fs', 'squashfs', 'vfat', 'xfs')


class Pick(NamedTuple):
    data: gpt.Partition               # the partition the tree is read from (root, else usr)
    usr: gpt.Partition | None         # a sysext's usr partition beside its root partition
    verity: gpt.Partition | None      # the data partition's verity hash partition
    signature: gpt.Partition | None   # and its signature partition


def allowed_fstypes() -> tuple:
    env = os.environ.get('SYSTEMD_DISSECT_FILE_SYSTEMS')
    return tuple(f for f in env.split(':') if f) if env is not None else ALLOWED_FSTYPES


def check_fstype(fs: str, part: gpt.Partition | None = None) -> None:
    """Refuse what systemd refuses to mount: an encrypted partition (sysext has no key for it)
    and file systems outside the allow-list."""
    where = 'GPT partition %d (%s)' % (part.number, part.designator) if part else 'the image'
    if fs == 'crypto_LUKS':
        raise UnsupportedImage('%s is LUKS-encrypted; systemd-sysext has no key to unlock it, and neither has this '
                               'module: ship the extension unencrypted (protect it with dm-verity instead)' % where)
    if fs not in allowed_fstypes():
        raise UnsupportedImage('%s holds %s, a file system systemd does not mount from extension images (it allows %s%s)'
                               % (where, fs, ', '.join(allowed_fstypes()),
                                  '' if 'SYSTEMD_DISSECT_FILE_SYSTEMS' not in os.environ else
                                  ', from $SYSTEMD_DISSECT_FILE_SYSTEMS'))


def _rank(arch: str | None, native: str) -> int:
    """compare_arch(): native beats secondary beats any other."""
    if arch == native:
        return 2
    if arch is not None and arch == gpt.SECONDARY.get(native):
        return 1
    return 0


def _best(table: list, designator: str, native: str) -> gpt.Partition | None:
    best = None
    for p in table:
        if p.designator != designator or p.label == '_empty' or p.flags & gpt.FLAG_NO_AUTO:
            continue
        if best is None:
            best = p
            continue
        c = _rank(p.architecture, native) - _rank(best.architecture, native)
        if c > 0 or (c == 0 and version_key(p.label) > version_key(best.label)):
            best = p
    return best


def pick(table: list, cls: str, native: str) -> Pick:
    """The partitions ``cls`` uses; ImageError naming what is missing or ambiguous."""
    found = {d: _best(table, d, native) for d in gpt.DESIGNATORS}
    for kind in ('root', 'usr'):
        if found[kind + '-verity'] and not found[kind]:
            raise ImageError('it has a %s verity hash partition (%d) without a %s data partition'
                             % (kind, found[kind + '-verity'].number, kind))
        if found[kind + '-verity-sig'] and not found[kind + '-verity']:
            raise ImageError('it has a %s verity signature partition (%d) without a %s verity hash partition'
                             % (kind, found[kind + '-verity-sig'].number, kind))
    if found['root-verity'] and found['usr-verity']:
        raise ImageError('it has verity hash partitions for both root and usr, which systemd does not support')
    if found['root-verity'] and found['usr']:
        raise ImageError('it has a verity-protected root partition and a separate usr partition, which systemd does '
                         'not support')
    root, usr = found['root'], found['usr'] if cls == 'sysext' else None
    if root and usr and root.architecture != usr.architecture:
        raise ImageError('its root and usr partitions are for different architectures (%s and %s)'
                         % (root.architecture, usr.architecture))
    if root is None and usr is None:
        generic = [p for p in table if p.type == LINUX_GENERIC and p.label != '_empty' and not p.flags & gpt.FLAG_NO_AUTO]
        if len(generic) > 1:
            raise ImageError('it has no root or usr partition but %d Linux generic partitions (%s); systemd takes a '
                             'single one as the root only' % (len(generic), ', '.join(str(p.number) for p in generic)))
        if not generic:
            wanted = 'root or usr partition' if cls == 'sysext' else 'root partition'
            raise ImageError('its GPT holds no %s (Discoverable Partitions Specification types) and no Linux generic '
                             'partition; systemd finds no partition to use. Make it with systemd-repart --make-ddi=%s'
                             % (wanted, cls))
        return Pick(generic[0], None, None, None)
    if root is not None:
        return Pick(root, usr, found['root-verity'], found['root-verity-sig'])
    return Pick(usr, None, found['usr-verity'], found['usr-verity-sig'])
