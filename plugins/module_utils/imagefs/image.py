# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image access: open an extension image, get a read-only tree (list, lstat, read, xattr).

This is the package's interface (``from .imagefs import image as imagefs``; the package's
``__init__.py`` stays empty, as ansible-test 2.16's empty-init check wants). One
implementation per container and file system, each in a file of its own:

* ``gpt.py``: GPT disk images (DDIs); ``partition.py`` picks the partition systemd 262 uses;
* ``squashfs.py`` and ``erofs.py`` read those in place (``lz4.py`` decodes LZ4 blocks);
* ``mounted.py`` reads everything else the kernel can mount (zstd/lzo squashfs, compressed
  erofs, ext4, btrfs, xfs) through a detached read-only mount nobody else sees;
* ``fdtree.py`` serves a directory (a directory extension, or such a mount);
* ``probe.py`` names the file system and its compression from the superblock.

``locate()`` finds where the file system is (the whole image, or the partition), ``open_tree()``
gives the tree, in place when a reader here decodes it, else through a mount.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from .. import verity
from . import gpt, partition, probe
from .erofs import Erofs
from .squashfs import Squashfs
from .tree import (ImageError, NeedsMount, NeedsPrivilege, NotFound, Source, TooLarge, Tree, UnsupportedImage, WithUsr,
                   device_size)

__all__ = ['ImageError', 'NeedsMount', 'NeedsPrivilege', 'NotFound', 'Source', 'TooLarge', 'Tree', 'UnsupportedImage',
           'Layout', 'locate', 'open_tree', 'open_image', 'read_file', 'open_directory', 'device_size']

IN_PLACE = {'squashfs': Squashfs, 'erofs': Erofs}


class Layout(NamedTuple):
    """Where an image's file system lies, and what it is."""
    container: str                      # filesystem | gpt
    fstype: str
    compression: str | None
    offset: int                         # of the file system in the image, bytes
    size: int
    partition: gpt.Partition | None     # the partition used (GPT)
    verity: gpt.Partition | None        # its verity hash partition, if any
    signature: gpt.Partition | None     # its verity signature partition, if any
    usr: gpt.Partition | None = None    # a sysext's usr partition beside its root partition
    usr_fstype: str | None = None
    table: tuple = ()                   # every partition of the GPT
    roothash: str | None = None         # hex: from the signature partition, else from the partition UUIDs

    def source(self, src: Source) -> Source:
        return Source(src.fd, self.offset, self.size) if self.container == 'gpt' else src

    def as_dict(self) -> dict:
        return {'container': self.container, 'fstype': self.fstype, 'compression': self.compression,
                'partition': self.partition.as_dict() if self.partition else None,
                'usr_partition': self.usr.as_dict() if self.usr else None,
                'verity_partition': self.verity.number if self.verity else None,
                'signature_partition': self.signature.number if self.signature else None}

    def to_json(self) -> list:
        return [self.container, self.fstype, self.compression, self.offset, self.size,
                *(list(p) if p is not None else None for p in (self.partition, self.verity, self.signature, self.usr)),
                self.usr_fstype, [list(p) for p in self.table], self.roothash]

    @classmethod
    def from_json(cls, doc: list) -> Layout:
        """The inverse of to_json(); TypeError/ValueError on anything else."""
        if not isinstance(doc, list) or len(doc) != 12:
            raise ValueError('not a layout')
        parts = [gpt.Partition(*p) if p is not None else None for p in doc[5:9]]
        return cls(*doc[:5], *parts, doc[9], tuple(gpt.Partition(*p) for p in doc[10]), doc[11])

    @property
    def protection(self) -> str:
        """What dissect_image() finds for the data partition: signed (verity and signature
        partitions), verity, or unprotected."""
        if self.verity is None:
            return 'unprotected'
        return 'signed' if self.signature is not None else 'verity'


def locate(src: Source, cls: str, architecture: str) -> Layout:
    """The file system of the image in ``src`` that systemd 262 would use for ``cls``: the
    image itself, or the partition of a GPT image picked as systemd picks it (partition.py).
    ImageError/UnsupportedImage name what is wrong and what to do."""
    ss = gpt.sector_size(src)
    if ss is None:
        fs = probe.fstype(src)
        if fs is None:
            raise ImageError('neither a file system image (squashfs, erofs, ext4, btrfs, xfs, ...) nor a GPT disk '
                             'image: unknown magic; replace it with an image made by mksquashfs, mkfs.erofs or '
                             'systemd-repart')
        partition.check_fstype(fs)
        return Layout('filesystem', fs, probe.compression(src, fs), 0, src.size, None, None, None)
    table = gpt.read_table(src, ss)
    pick = partition.pick(table, cls, architecture)
    fs, comp = _partition_fs(src, pick.data)
    usr_fs = _partition_fs(src, pick.usr)[0] if pick.usr else None
    roothash = None
    if pick.signature is not None:
        roothash = verity.signature_json(src, pick.signature)['rootHash']
    elif pick.verity is not None:
        roothash = verity.guessed_roothash(pick.data.uuid, pick.verity.uuid)
    return Layout('gpt', fs, comp, pick.data.offset, pick.data.size, pick.data, pick.verity, pick.signature,
                  pick.usr, usr_fs, tuple(table), roothash)


def _partition_fs(src: Source, part: gpt.Partition) -> tuple:
    part_src = src.sub(part.offset, part.size)
    fs = probe.fstype(part_src)
    if fs is None:
        raise ImageError('GPT partition %d (%s) holds no file system this can name (unknown magic)'
                         % (part.number, part.designator or part.type))
    partition.check_fstype(fs, part)
    return fs, probe.compression(part_src, fs)


def open_tree(src: Source, layout: Layout, name: str, mount: bool = False) -> Tree:
    """A read-only tree of the file system ``layout`` names (with a sysext's usr partition at
    /usr): read in place when a reader here decodes it (unless ``mount``), else through a
    detached read-only mount (which needs root)."""
    if layout.usr is None:
        tree = _fs_tree(layout.source(src), layout.fstype, layout.compression, name, mount)
        if layout.partition is not None and layout.partition.designator == 'usr':
            return WithUsr(None, tree)      # a usr partition alone: an empty root holding /usr
        return tree
    usr = _fs_tree(Source(src.fd, layout.usr.offset, layout.usr.size), layout.usr_fstype,
                   probe.compression(Source(src.fd, layout.usr.offset, layout.usr.size), layout.usr_fstype),
                   name, mount)
    try:
        root = _fs_tree(layout.source(src), layout.fstype, layout.compression, name, mount)
    except BaseException:
        usr.close()
        raise
    return WithUsr(root, usr)


def _fs_tree(src: Source, fstype: str, compression: str | None, name: str, mount: bool) -> Tree:
    reader = IN_PLACE.get(fstype)
    if reader is not None and not mount:
        try:
            return reader(src)
        except NeedsMount:
            pass
    # imported here: only images the readers cannot decode need the mount code
    from .mounted import mount_tree  # pylint: disable=import-outside-toplevel
    return mount_tree(src, fstype, name, compression)


def open_image(fd: int, cls: str = 'sysext', architecture: str | None = None, mount: bool = False) -> Tree:
    """locate() and open_tree() in one: the tree of the open image ``fd`` for ``cls``."""
    if architecture is None:
        from ..release import native_architecture  # pylint: disable=import-outside-toplevel
        architecture = native_architecture()
    src = Source(fd)
    return open_tree(src, locate(src, cls, architecture), '/proc/self/fd/%d' % fd, mount)


def read_file(fd: int, path: str, limit: int, cls: str = 'sysext') -> bytes:
    """One file of the open image ``fd``, through a mount when only the kernel decodes it."""
    for mount in (False, True):
        with open_image(fd, cls, mount=mount) as tree:
            try:
                return tree.read_file(path, limit)
            except NeedsMount:
                if mount:
                    raise
    raise AssertionError('not reached')


def open_directory(path: str) -> Tree:
    """A tree of the directory ``path`` (a directory extension), its descriptor owned by the tree."""
    from .fdtree import FdTree  # pylint: disable=import-outside-toplevel
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    return FdTree(fd, owned=True)
