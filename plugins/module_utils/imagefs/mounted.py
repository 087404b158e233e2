# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what only the kernel decodes (zstd or lzo squashfs, compressed erofs, ext4, btrfs,
xfs, ...) through a read-only mount that nobody else can see: a loop device over the image
(or one partition of it) with autoclear, and a detached mount from fsopen()/fsmount() that
is never attached anywhere. Closing the tree unmounts it, and the loop device goes with it.
Needs CAP_SYS_ADMIN; systemd-sysext reads image metadata through a mount as well."""

from __future__ import annotations

import errno
import os

from .. import mountapi
from .fdtree import FdTree
from .tree import ImageError, NeedsPrivilege, Source, UnsupportedImage

# no journal replay on a read-only image; xfs refuses a second mount of a file system UUID that
# is mounted already (by a merged overlay) unless told not to check
OPTIONS = {'ext4': ('norecovery',), 'xfs': ('norecovery', 'nouuid'), 'f2fs': ('norecovery',)}
ATTRS = mountapi.MOUNT_ATTR_RDONLY | mountapi.MOUNT_ATTR_NODEV | mountapi.MOUNT_ATTR_NOSUID | \
    mountapi.MOUNT_ATTR_NOEXEC


def mount_tree(src: Source, fstype: str, name: str, compression: str | None = None) -> FdTree:
    """A tree of the file system ``fstype`` in ``src``; ``name`` names the image in messages."""
    what = '%s%s' % (fstype, ' (%s)' % compression if compression else '')
    try:
        dev, lfd = mountapi.loop_attach(src.fd, name, offset=src.offset, size=src.size)
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EACCES):
            raise NeedsPrivilege('reading this %s image needs a read-only mount, and that needs root '
                                 '(CAP_SYS_ADMIN); run the task with become' % what) from None
        raise NeedsPrivilege('cannot set up a loop device to read this %s image: %s'
                             % (what, e.strerror or e)) from None
    try:
        try:
            ctx = mountapi.FsContext(fstype)
        except OSError as e:
            if e.errno == errno.ENODEV:
                raise UnsupportedImage('this kernel cannot mount %s file systems (no %s driver loaded or built in)'
                                       % (fstype, fstype)) from None
            raise UnsupportedImage('cannot mount this %s image: %s' % (what, e.strerror or e)) from None
        with ctx:
            try:
                ctx.set_string('source', dev)
                ctx.set_flag('ro')
                for opt in OPTIONS.get(fstype, ()):
                    ctx.set_flag(opt)
                mfd = ctx.mount(ATTRS)
            except OSError as e:
                if e.errno == errno.EPERM:
                    raise NeedsPrivilege('reading this %s image needs a read-only mount, and that needs root '
                                         '(CAP_SYS_ADMIN); run the task with become' % what) from None
                raise ImageError('the kernel refuses to mount this %s image read-only: %s (is the image corrupt, or '
                                 'made with features this kernel lacks?)' % (what, e.strerror or e)) from None
    finally:
        os.close(lfd)
    return FdTree(mfd, fstype, compression, owned=True)
