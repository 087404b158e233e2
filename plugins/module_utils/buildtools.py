# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tools behind sysext_build: finding them, their identity (part of the inputs), the
compressors and erofs features they take, the command lines that make a reproducible image,
and running them with their output kept for the error message."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass

from . import proc
from .fsutil import space_hint

TOOLS = {'squashfs': ('mksquashfs', 'squashfs-tools'), 'erofs': ('mkfs.erofs', 'erofs-utils'),
         'verity': ('veritysetup', 'cryptsetup-bin'), 'openssl': ('openssl', 'openssl')}
CHUNK = 1 << 20
# Compressors each tool accepts; the first is the default.
COMPRESSION = {'squashfs': ('gzip', 'xz', 'lzma', 'lzo', 'lz4', 'zstd'),
               'erofs': ('none', 'lz4', 'lz4hc', 'zstd', 'deflate', 'lzma')}
# compression_level: the ranges the tools accept (mksquashfs -Xcompression-level, mkfs.erofs -zALG,LEVEL);
# a compressor missing here takes no level.
LEVELS = {'squashfs': {'gzip': ((1, 9),), 'lzo': ((1, 9),), 'zstd': ((1, 22),)},
          'erofs': {'lz4hc': ((0, 12),), 'zstd': ((0, 22),), 'deflate': ((0, 9),), 'lzma': ((0, 9), (100, 109))}}
# mkfs.erofs -E: the extended options producers use, and the others of erofs-utils 1.9;
# a value only where the option takes one.
EROFS_FEATURES = {'fragments': None, 'all-fragments': None, 'ztailpacking': None, 'dedupe': None,
                  'fragdedupe': ('off', 'inode', 'full'), 'legacy-compress': None, 'noinline_data': None,
                  'force-inode-compact': None, 'force-inode-extended': None, 'force-inode-blockmap': None,
                  'force-chunk-indexes': None, 'nosbcrc': None, '48bit': None, 'dot-omitted': None,
                  'plain-xattr-prefixes': None, 'xattr-name-filter': None}
# Features that only apply to compressed files.
EROFS_COMPRESSED_ONLY = ('fragments', 'all-fragments', 'ztailpacking', 'dedupe', 'fragdedupe', 'legacy-compress')
BLOCK = 4096


class BuildError(Exception):
    """A request that cannot be carried out; ``dest`` was not changed."""


def hash_file(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(CHUNK), b''):
                h.update(chunk)
    except OSError as e:
        raise BuildError('cannot read %s: %s' % (path, e.strerror)) from None
    return h.hexdigest()


# ----------------------------------------------------------------------------- compression options
def check_compression(fmt: str, comp: str, level, cluster: int | None, features: list | None) -> list:
    """Validate the compression options; returns the erofs features as given (a list)."""
    if comp not in COMPRESSION[fmt]:
        raise BuildError('compression %r is not available for %s; use one of %s'
                         % (comp, fmt, ', '.join(COMPRESSION[fmt])))
    if level is not None:
        ranges = LEVELS[fmt].get(comp)
        if isinstance(level, bool) or not isinstance(level, int):
            raise BuildError('compression_level %r must be a whole number' % (level,))
        if not ranges:
            takes = ', '.join(sorted(LEVELS[fmt]))
            raise BuildError('compression %s of %s takes no compression_level (%s do); leave it out'
                             % (comp, fmt, takes))
        if not any(lo <= level <= hi for lo, hi in ranges):
            raise BuildError('compression_level %d is out of range for %s %s: use %s' % (
                level, fmt, comp, ' or '.join('%d to %d' % r for r in ranges)))
    if cluster is not None:
        if isinstance(cluster, bool) or not isinstance(cluster, int):
            raise BuildError('cluster_size %r must be a number of bytes' % (cluster,))
        if fmt == 'squashfs' and (cluster < BLOCK or cluster > 1 << 20 or cluster & (cluster - 1)):
            raise BuildError('cluster_size %d: squashfs takes a block size that is a power of 2 from 4096 to '
                             '1048576 (mksquashfs -b), for example 131072 (the default) or 524288' % cluster)
        if fmt == 'erofs':
            if comp == 'none':
                raise BuildError('cluster_size applies to compressed erofs only; set compression or leave it out')
            if cluster < BLOCK or cluster % BLOCK or cluster > 1 << 20:
                raise BuildError('cluster_size %d: erofs takes a multiple of its 4096-byte block up to 1048576 '
                                 '(mkfs.erofs -C), for example 65536' % cluster)
    features = list(features or [])
    if features and fmt != 'erofs':
        raise BuildError('erofs_features apply to format erofs only; leave them out for %s' % fmt)
    seen = set()
    for feat in features:
        if not isinstance(feat, str):
            raise BuildError('erofs_features: %r is not a string' % (feat,))
        key, _sep, value = feat.partition('=')
        if key not in EROFS_FEATURES:
            raise BuildError('erofs_features: %r is not a mkfs.erofs extended option; use some of %s'
                             % (feat, ', '.join(sorted(EROFS_FEATURES))))
        allowed = EROFS_FEATURES[key]
        if allowed is None and _sep:
            raise BuildError('erofs_features: %s takes no value; write %s' % (feat, key))
        if allowed is not None and value not in allowed:
            raise BuildError('erofs_features: %s needs a value, one of %s (as in %s=%s)'
                             % (feat, ', '.join(allowed), key, allowed[1]))
        if key in seen:
            raise BuildError('erofs_features: %s is given twice' % key)
        seen.add(key)
        if key in EROFS_COMPRESSED_ONLY and comp == 'none':
            raise BuildError('erofs_features: %s applies to compressed erofs only; set compression (for example '
                             'lz4hc) or leave it out' % key)
    return features


def erofs_compressors(tool: str) -> tuple | None:
    """The compressors this mkfs.erofs was built with (its -V or --help says), or None when
    it does not say."""
    out = ''
    for arg in ('-V', '--help'):
        try:
            res = proc.run([tool, arg], capture_output=True, check=False, env=_tool_env(), timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        out += (res.stdout + res.stderr).decode('utf-8', 'replace') + '\n'
    m = re.search(r'(?im)^\s*available compressors(?: are)?:\s*(.+)$', out)
    if not m:
        return None
    return tuple(c.strip() for c in m.group(1).split(',') if c.strip())


def check_tool_compression(tool: str, comp: str) -> None:
    if comp == 'none':
        return
    have = erofs_compressors(tool)
    if have is not None and comp not in have:
        raise BuildError('%s on the target cannot compress with %s (it offers %s); install a newer erofs-utils '
                         '(1.6 or later for zstd, deflate and lzma) or choose one of those'
                         % (tool, comp, ', '.join(have) or 'none'))


# ----------------------------------------------------------------------------- tools
def find_tool(what: str) -> str:
    tool, package = TOOLS[what]
    path = shutil.which(tool) or shutil.which(tool, path='/usr/sbin:/sbin:/usr/bin:/bin')
    if not path:
        raise BuildError('%s is not installed on the target; install the Debian package %s (apt-get install %s)'
                         % (tool, package, package))
    return path


def tool_identity(path: str) -> str:
    """The tool's name and the sha256 of its executable: a new version (or build) of the tool
    may write other bytes, so it is part of the inputs."""
    return '%s sha256:%s' % (os.path.basename(path), hash_file(os.path.realpath(path)))


def tool_version(path: str, build_output: str = '') -> str:
    """A readable version: ``mksquashfs -version``, or the first line mkfs.erofs prints."""
    if os.path.basename(path) == 'mksquashfs':
        try:
            out = proc.run([path, '-version'], capture_output=True, check=False, env=_tool_env()).stdout
            build_output = out.decode('utf-8', 'replace')
        except OSError:
            build_output = ''
    for line in build_output.splitlines():
        m = re.match(r'^(mksquashfs version \S+|mkfs\.erofs \S+)', line.strip())
        if m:
            return m.group(1)
    return os.path.basename(path)


def fs_uuid(seed: str) -> str:
    """A fixed filesystem UUID derived from the inputs (mkfs.erofs would pick a random one)."""
    return str(uuid.UUID(bytes=hashlib.sha256(('tucked.sysext build ' + seed).encode()).digest()[:16], version=4))


@dataclass
class FsSpec:
    """What shapes the file system image (every field is part of the inputs)."""
    format: str
    compression: str
    level: int | None = None
    cluster: int | None = None
    features: tuple = ()
    epoch: int = 0
    xattrs: bool = False


def build_command(spec: FsSpec, tool: str, tree: str, out: str, seed: str) -> list:
    comp = spec.compression
    if spec.format == 'squashfs':
        cmd = [tool, tree, out, '-noappend', '-quiet', '-no-progress', '-exit-on-error', '-reproducible',
               '-all-root', '-root-mode', '755', '-mkfs-time', str(spec.epoch), '-all-time', str(spec.epoch),
               '-comp', comp, '-xattrs' if spec.xattrs else '-no-xattrs']
        if spec.level is not None:
            cmd += ['-Xcompression-level', str(spec.level)]
        if spec.cluster is not None:
            cmd += ['-b', str(spec.cluster)]
        return cmd
    cmd = [tool, '--all-root', '-T%d' % spec.epoch, '-U', fs_uuid(seed)]
    if not spec.xattrs:
        cmd.append('-x-1')
    if comp != 'none':
        cmd.append('-z' + comp + ('' if spec.level is None else ',%d' % spec.level))
    if spec.cluster is not None:
        cmd.append('-C%d' % spec.cluster)
    if spec.features:
        cmd.append('-E' + ','.join(spec.features))
    return cmd + [out, tree]


def _tool_env() -> dict:
    env = dict(os.environ)
    # mksquashfs >= 4.6 refuses SOURCE_DATE_EPOCH together with -mkfs-time/-all-time; the
    # timestamps are given on the command line.
    env.pop('SOURCE_DATE_EPOCH', None)
    env['LC_ALL'] = 'C'
    return env


def run_tool(cmd: list, what: str, where: str) -> str:
    try:
        res = proc.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=_tool_env(), check=False)
    except OSError as e:
        raise BuildError('%s: cannot run %s: %s' % (what, cmd[0], e.strerror)) from None
    out = (res.stdout + res.stderr).decode('utf-8', 'replace')
    if res.returncode != 0:
        tail = '\n'.join(ln for ln in out.strip().splitlines()[-8:])
        hint = ''
        if 'space' in out.lower() or 'ENOSPC' in out:
            hint = '; free space in %s%s' % (where, space_hint(where))
        raise BuildError('%s: %s failed (exit %d)%s; nothing was replaced. Its output: %s'
                         % (what, os.path.basename(cmd[0]), res.returncode, hint, tail or '(none)'))
    return out


def verity_format(tool: str, data: str, tree_file: str, salt: str, vuuid: str, where: str) -> str:
    """``veritysetup format`` of ``data`` into ``tree_file`` (superblock, sha256, 4096-byte data and
    hash blocks, as systemd-repart formats it), with the given salt (hex) and superblock UUID, so
    that the hash tree and root hash are reproducible. Returns the root hash (hex)."""
    cmd = [tool, 'format', '--hash=sha256', '--format=1', '--data-block-size=%d' % BLOCK,
           '--hash-block-size=%d' % BLOCK, '--salt=' + salt, '--uuid=' + vuuid, data, tree_file]
    out = run_tool(cmd, 'dm-verity hash tree for %s' % data, where)
    for line in out.splitlines():
        if line.startswith('Root hash:'):
            value = line.split(':', 1)[1].strip()
            if re.match(r'^[0-9a-f]{64,}$', value):
                return value
    raise BuildError('veritysetup printed no root hash; its output: %s' % out.strip()[-500:])
