# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mount one image file (or block device) as a layer of the new overlay, as systemd 262 mounts
it (dissected_image_mount(), mount_partition()): the file system, or the partition of a GPT
image picked as systemd picks it, through a read-only loop device with autoclear (a partition
by offset and size), read-only and nodev, with ``norecovery`` where the file system has it; a
sysext's usr partition at /usr (on a tmpfs when there is no root partition); dm-verity through
the host's veritysetup when the image carries verity data. Runs in the build child's private
mount namespace; every loop and dm device goes away with the overlay that holds it."""

from __future__ import annotations

import errno
import os

from . import mountapi
from .imagefs import image as imagefs
from .engine import ApplyError

# fstype_norecovery_option(): replaying a journal would write to a read-only image. xfs also
# gets nouuid (ours, not systemd's): an atomic refresh mounts the image for the new overlay while
# the old overlay still holds it, and xfs refuses a second mount of one file system UUID
NORECOVERY = {'ext4': 'norecovery', 'xfs': 'norecovery,nouuid', 'btrfs': 'rescue=nologreplay', 'f2fs': 'norecovery'}
FLAGS = mountapi.MS_RDONLY | mountapi.MS_NODEV


def _mount(dev: str, target: str, fstype: str, shown: str) -> None:
    opts = NORECOVERY.get(fstype)
    try:
        mountapi.mount(dev, target, fstype, FLAGS, opts)
    except OSError as e:
        if opts and e.errno == errno.EINVAL:
            # an older kernel without the option (btrfs before rescue=, f2fs without norecovery)
            try:
                mountapi.mount(dev, target, fstype, FLAGS, 'norecovery' if fstype == 'btrfs' else None)
                return
            except OSError:
                pass
        raise ApplyError('cannot mount %s (%s on %s): %s; the image is corrupt or this kernel cannot mount %s'
                         % (shown, fstype, dev, e.strerror, fstype)) from None


def _device(fd: int, shown: str, offset: int, size: int) -> tuple[str, int]:
    try:
        return mountapi.loop_attach(fd, shown, offset=offset, size=size)
    except OSError as e:
        raise ApplyError('cannot set up a loop device for %s: %s' % (shown, e.strerror or e)) from None


def mount_layer(fd: int, layer, target: str, cls: str, architecture: str, root: str) -> None:
    """Mount the pinned image ``fd`` (apply.Layer ``layer``) at ``target``."""
    shown = layer.host_path
    src = imagefs.Source(fd)
    try:
        lay = imagefs.locate(src, cls, architecture)
    except imagefs.ImageError as e:
        raise ApplyError('%s can no longer be merged: %s' % (shown, e)) from None
    if layer.layout is not None and lay != layer.layout:
        raise ApplyError('%s changed while it was being merged (its layout); run again' % shown)
    cleanup = []
    try:
        data = (lay.offset, lay.size) if lay.container == 'gpt' else (0, 0)
        dev, lfd = _device(fd, shown, *data)
        cleanup.append(lambda: os.close(lfd))
        if layer.verity is not None:
            from . import dmverity  # pylint: disable=import-outside-toplevel
            dev = dmverity.open_for(layer.verity, lay, fd, dev, shown, root, cleanup)
        if lay.partition is not None and lay.partition.designator == 'usr':
            # a usr partition alone: systemd mounts a tmpfs as the root and the partition at /usr
            mountapi.mount('tmpfs', target, 'tmpfs', mountapi.MS_NODEV, 'mode=0755')
            os.mkdir(os.path.join(target, 'usr'), 0o755)
            _mount(dev, os.path.join(target, 'usr'), lay.fstype, shown)
        else:
            _mount(dev, target, lay.fstype, shown)
        if lay.usr is not None:
            udev, ufd = _device(fd, shown, lay.usr.offset, lay.usr.size)
            cleanup.append(lambda: os.close(ufd))
            _mount(udev, os.path.join(target, 'usr'), lay.usr_fstype, shown)
    finally:
        for fn in reversed(cleanup):
            fn()
