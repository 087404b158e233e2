# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tree sysext_build turns into an image: its layout checked, every entry scanned in a
fixed order (the record of the inputs), and the staged copy that the image tool reads
(sparse files stay sparse, modes set explicitly, xattrs only when asked for)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from dataclasses import dataclass

from . import imagemeta
from .buildtools import CHUNK, BuildError, hash_file
from .release import CONFEXT, SYSEXT, ReleaseError, parse_env
from .rootfs import read_regular

TOP_LEVEL = {SYSEXT: ('usr', 'opt'), CONFEXT: ('etc',)}
# Deeper trees are refused with their path: mksquashfs and mkfs.erofs walk them recursively and
# their paths soon exceed PATH_MAX (4096); nothing a producer ships comes near.
MAX_DEPTH = 256
_ZEROS = bytes(CHUNK)


def release_path(kind: str, name: str) -> str:
    """The release file's path inside the image, without the leading '/'."""
    return '%s/extension-release.%s' % (imagemeta.RELEASE_DIR[kind].lstrip('/'), name)


def check_layout(src: str, kind: str) -> list[str]:
    """The top-level directories of ``src``. systemd merges only /usr and /opt (sysext) or
    /etc (confext) and silently ignores anything else, so anything else is refused."""
    allowed = TOP_LEVEL[kind]
    try:
        names = sorted(os.listdir(src))
    except OSError as e:
        raise BuildError('cannot list src %s: %s' % (src, e.strerror)) from None
    bad, found = [], []
    for n in names:
        p = os.path.join(src, n)
        if n not in allowed:
            bad.append(n)
        elif os.path.islink(p) or not os.path.isdir(p):
            raise BuildError('%s must be a directory, not %s; a %s image carries the %s tree itself'
                             % (p, 'a symlink' if os.path.islink(p) else 'a file', kind, n))
        else:
            found.append(n)
    if bad:
        raise BuildError('src %s holds %s at the top level; a %s image may only hold %s (systemd-%s ignores '
                         'everything else), so move or remove it' % (
                             src, ', '.join(repr(b) for b in bad), kind, ' and '.join('%s/' % a for a in allowed),
                             kind))
    if not found:
        raise BuildError('src %s is empty: a %s needs content in %s' % (
            src, kind, ' or '.join('%s/' % a for a in allowed)))
    return found


# ----------------------------------------------------------------------------- the tree
@dataclass
class Entry:
    rel: str                    # path inside the image, no leading '/'
    kind: str                   # 'd' directory, 'f' file, 'l' symlink, 'h' hard link to ``target``
    mode: int                   # permission bits (07777)
    target: str = ''            # symlink target, or the first path of a hard-linked file
    xattrs: tuple = ()          # ((name, value bytes), ...) sorted, only with Options.xattrs
    data: bytes | None = None   # content we generate (the release file)

    def record(self, sha: str | None) -> list:
        return [self.rel, self.kind, '%04o' % self.mode, self.target, sha or '',
                [[k, v.hex()] for k, v in self.xattrs]]


def _xattrs_of(path: str) -> tuple:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ()
        raise
    return tuple(sorted((n, os.getxattr(path, n, follow_symlinks=False)) for n in names))


def scan(src: str, kind: str, name: str, text: str, xattrs: bool) -> tuple[list, list]:
    """Every entry of the tree to build, sorted by path, with the release file in place.
    Returns (entries, warnings). Raises BuildError for what an image cannot carry."""
    rel_file = release_path(kind, name)
    rel_dirs = []
    d = os.path.dirname(rel_file)
    while d:
        rel_dirs.append(d)
        d = os.path.dirname(d)
    entries: dict = {}
    warnings: list = []
    inodes: dict = {}

    # Depth first, without recursion (a tree thousands of levels deep is a message, not a
    # RecursionError): each directory's entries are listed in byte order and pushed reversed.
    todo = [(src, '')]
    while todo:
        host, rel = todo.pop()
        try:
            with os.scandir(host) as it:
                names = sorted((e.name for e in it), key=os.fsencode)
        except OSError as e:
            raise BuildError('cannot read %s: %s' % (host, e.strerror)) from None
        subdirs = []
        for n in names:
            hp = os.path.join(host, n)
            rp = n if not rel else rel + '/' + n
            try:
                st = os.lstat(hp)
                xa = _xattrs_of(hp) if xattrs else ()
            except OSError as e:
                raise BuildError('cannot read %s: %s' % (hp, e.strerror)) from None
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                if rp.count('/') >= MAX_DEPTH:
                    raise BuildError('%s is %d directories deep, more than the %d an image built here may hold '
                                     '(its paths would exceed what the tools and the kernel handle); flatten the '
                                     'tree under %s' % (hp, rp.count('/') + 1, MAX_DEPTH, src))
                entries[rp] = Entry(rp, 'd', mode, xattrs=xa)
                subdirs.append((hp, rp))
            elif stat.S_ISLNK(st.st_mode):
                entries[rp] = Entry(rp, 'l', 0o777, target=os.readlink(hp), xattrs=xa)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in inodes:
                    entries[rp] = Entry(rp, 'h', mode, target=inodes[key])
                else:
                    if st.st_nlink > 1:
                        inodes[key] = rp
                    entries[rp] = Entry(rp, 'f', mode, xattrs=xa)
            else:
                raise BuildError('%s is a %s; an extension image holds only directories, regular files and '
                                 'symlinks, so remove it from src' % (hp, _type_name(st.st_mode)))
        todo.extend(reversed(subdirs))
    for d in rel_dirs:
        e = entries.get(d)
        if e is None:
            entries[d] = Entry(d, 'd', 0o755)
        elif e.kind != 'd':
            raise BuildError('%s in src must be a directory (the extension-release file goes there)'
                             % os.path.join(src, d))
    data = text.encode('utf-8')
    old = entries.get(rel_file)
    if old is not None:
        host = os.path.join(src, rel_file)
        if old.kind != 'f':
            raise BuildError('%s is not a regular file; remove it, this module writes the extension-release file'
                             % host)
        try:
            # (read as the scan saw it: a FIFO swapped in since then is refused, never waited on)
            have = parse_env(read_regular(host, 1 << 16, follow=False)[:1 << 16].decode('utf-8', 'replace'))
        except (OSError, ReleaseError) as e:
            raise BuildError('cannot read %s: %s; remove it, this module writes the extension-release file'
                             % (host, e)) from None
        want = parse_env(text)
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise BuildError('%s differs from the release fields of this task (%s); remove it from src (this module '
                             'writes it) or set the same fields in the task' % (host, ', '.join(diff)))
    entries[rel_file] = Entry(rel_file, 'f', 0o644, data=data)
    rdir = os.path.dirname(rel_file)
    for rp in sorted(entries):
        if os.path.dirname(rp) == rdir and rp != rel_file and os.path.basename(rp).startswith('extension-release.'):
            warnings.append('%s also holds %s; systemd reads only extension-release.%s for this image'
                            % (os.path.join(src, rdir), os.path.basename(rp), name))
    # A hard link whose first path was replaced by the generated release file must not point at it.
    for e in entries.values():
        if e.kind == 'h' and e.target == rel_file:
            raise BuildError('%s is a hard link to the extension-release file; remove it from src'
                             % os.path.join(src, e.rel))
    return [entries[k] for k in sorted(entries, key=os.fsencode)], warnings


def _type_name(mode: int) -> str:
    for test, label in ((stat.S_ISCHR, 'character device'), (stat.S_ISBLK, 'block device'),
                        (stat.S_ISFIFO, 'FIFO'), (stat.S_ISSOCK, 'socket')):
        if test(mode):
            return label
    return 'special file'


def hash_sources(entries: list, src: str) -> dict:
    """sha256 of every regular file, read from ``src`` (or the generated data)."""
    out = {}
    for e in entries:
        if e.kind == 'f':
            out[e.rel] = hashlib.sha256(e.data).hexdigest() if e.data is not None else hash_file(
                os.path.join(src, e.rel))
    return out


def stage(entries: list, src: str, dst: str, holes: dict | None = None) -> dict:
    """Copy the tree into ``dst`` (which exists and is empty), hashing each file as it is
    copied. Directories are made in sorted order; modes are set explicitly (no umask);
    xattrs only as listed. Returns the sha256 of every regular file, as copied; ``holes`` gets
    the bytes of holes of each sparse file."""
    hashes = {}
    os.chmod(dst, 0o755)
    dirs = []
    for e in entries:
        out = os.path.join(dst, e.rel)
        if e.kind == 'd':
            os.mkdir(out, 0o700)
            dirs.append(e)
        elif e.kind == 'l':
            os.symlink(e.target, out)
        elif e.kind == 'h':
            os.link(os.path.join(dst, e.target), out)
        else:
            h = hashlib.sha256()
            if e.data is not None:
                with open(out, 'wb') as f:
                    f.write(e.data)
                h.update(e.data)
            else:
                skipped = copy_sparse(os.path.join(src, e.rel), out, h)
                if skipped and holes is not None:
                    holes[e.rel] = skipped
            hashes[e.rel] = h.hexdigest()
            os.chmod(out, e.mode)
        for k, v in e.xattrs:
            try:
                os.setxattr(out, k, v, follow_symlinks=False)
            except OSError as err:
                raise BuildError('cannot copy the xattr %s of %s into the staging tree: %s (set xattrs: false to '
                                 'leave xattrs out)' % (k, os.path.join(src, e.rel), err.strerror)) from None
    for e in reversed(dirs):    # after their contents: a directory without w or x bits is still filled
        os.chmod(os.path.join(dst, e.rel), e.mode)
    return hashes


def copy_sparse(host: str, out: str, h) -> int:
    """Copy ``host`` to ``out`` leaving its holes holes (SEEK_DATA/SEEK_HOLE), feeding every
    byte (holes as zeros) to the hash ``h``. A read error is a BuildError naming ``host``; a
    write error is an OSError, reported by the caller with the free space. Returns the bytes
    of holes left unwritten."""
    try:
        fin = os.open(host, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise BuildError('cannot read %s: %s' % (host, err.strerror)) from None
    try:
        fout = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fin).st_size
            pos = skipped = 0
            while pos < size:
                try:
                    data = os.lseek(fin, pos, os.SEEK_DATA)
                    hole = os.lseek(fin, data, os.SEEK_HOLE)
                except OSError as err:
                    if err.errno == errno.ENXIO:        # only a hole is left
                        data = hole = size
                    elif err.errno in (errno.EINVAL, errno.EOPNOTSUPP):     # no hole support: all data
                        data, hole = pos, size
                    else:
                        raise BuildError('cannot read %s: %s' % (host, err.strerror)) from None
                _hash_zeros(h, data - pos)
                skipped += data - pos
                pos = data
                while pos < hole:
                    try:
                        chunk = os.pread(fin, min(CHUNK, hole - pos), pos)
                    except OSError as err:
                        raise BuildError('cannot read %s: %s' % (host, err.strerror)) from None
                    if not chunk:       # the file shrank while it was copied
                        raise BuildError('%s changed while it was copied (it shrank); build again when it is '
                                         'no longer written' % host)
                    h.update(chunk)
                    done = 0
                    while done < len(chunk):
                        done += os.pwrite(fout, chunk[done:], pos + done)
                    pos += len(chunk)
            os.ftruncate(fout, size)    # a trailing hole
        finally:
            os.close(fout)
    finally:
        os.close(fin)
    return skipped


def _hash_zeros(h, n: int) -> None:
    while n > 0:
        k = min(n, CHUNK)
        h.update(_ZEROS[:k])
        n -= k


def inputs_digest(entries: list, hashes: dict, params: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(params, sort_keys=True).encode())
    for e in entries:
        h.update(b'\n')
        h.update(json.dumps(e.record(hashes.get(e.rel))).encode('utf-8', 'surrogateescape'))
    return h.hexdigest()
