# -*- coding: utf-8 -*-
"""Extension images built the way their producers build them, with the producers' own tools
from the cached Debian sid root (mksquashfs 4.7, mkfs.erofs 1.9, systemd-repart 262,
mkfs.ext4/btrfs/xfs, veritysetup, openssl), run chrooted into it. Each recipe names its
producer and the flags it copies (design.md section 5, read from the producers' build scripts).

    build(sid_path, recipe, tree_inroot, out_inroot)  ->  the image, at out_inroot in the sid root

Must run inside a private mount namespace with the sid root's /proc, /sys and /dev mounted
(nsroot.SidRoot does that): systemd-repart needs loop devices for verity.
"""

from __future__ import annotations

import os
import shutil
import subprocess

# name -> (producer, kind, command or builder); kind: fs (a plain file system image) | ddi
_MKSQ = ['mksquashfs', '{tree}', '{out}', '-quiet', '-noappend', '-all-root']
_MKEROFS = ['mkfs.erofs', '--quiet', '--all-root']
RECIPES = {
    # flatcar/sysext-bakery's default: mksquashfs with its default compression (gzip)
    'squashfs-gzip': ('sysext-bakery (default)', 'fs', _MKSQ),
    # Flatcar before 4628 (build_library/build_sysext / sysext_prod_builder)
    'squashfs-zstd': ('Flatcar < 4628', 'fs', _MKSQ + ['-comp', 'zstd', '-Xcompression-level', '22', '-b', '512k']),
    'squashfs-lz4': ('mksquashfs -comp lz4', 'fs', _MKSQ + ['-comp', 'lz4', '-Xhc']),
    'squashfs-xz': ('mksquashfs -comp xz', 'fs', _MKSQ + ['-comp', 'xz']),
    'squashfs-lzo': ('mksquashfs -comp lzo', 'fs', _MKSQ + ['-comp', 'lzo']),
    # fedora-sysexts (mkosi-less: mkfs.erofs -zlz4)
    'erofs-lz4': ('Fedora sysexts', 'fs', _MKEROFS + ['-zlz4', '{out}', '{tree}']),
    # sysext-bakery --format erofs
    'erofs-lz4hc-fragments': ('sysext-bakery --format erofs', 'fs',
                              _MKEROFS + ['-zlz4hc', '-Efragments,ztailpacking', '{out}', '{tree}']),
    'erofs-zstd-fragments': ('GNOME OS file system', 'fs',
                             _MKEROFS + ['-zzstd', '-Efragments,fragdedupe=inode', '{out}', '{tree}']),
    'erofs-plain': ('mkfs.erofs (no compression)', 'fs', _MKEROFS + ['{out}', '{tree}']),
    'erofs-deflate-dedupe': ('mkfs.erofs -zdeflate -Ededupe', 'fs', _MKEROFS + ['-zdeflate', '-Ededupe', '{out}', '{tree}']),
    'erofs-lzma': ('mkfs.erofs -zlzma', 'fs', _MKEROFS + ['-zlzma', '{out}', '{tree}']),
    # sysext-bakery --format ext4 / btrfs
    'ext4': ('sysext-bakery --format ext4', 'fs', 'ext4'),
    'btrfs-zstd': ('sysext-bakery --format btrfs', 'fs', 'btrfs'),
    'xfs': ('mkfs.xfs', 'fs', 'xfs'),
    # GPT disk images from systemd-repart
    'ddi-erofs': ('mkosi Format=sysext unsigned / systemd-repart, Kairos', 'ddi', {'root': True}),
    'ddi-erofs-lz4hc': ('Flatcar extras file system, unsigned', 'ddi',
                        {'root': True, 'mkfs': '-zlz4hc,12 -C65536 -Efragments,ztailpacking'}),
    'ddi-erofs-zstd': ('GNOME OS file system, unsigned', 'ddi', {'root': True, 'mkfs': '-z zstd -E fragments,fragdedupe=inode'}),
    'ddi-usr-only': ('systemd-repart Type=usr', 'ddi', {'usr': True}),
    'ddi-squashfs': ('systemd-repart Format=squashfs', 'ddi', {'root': True, 'format': 'squashfs'}),
    # systemd-repart --make-ddi=sysext with a key: Flatcar's official sysexts (since 4628)
    'ddi-verity-signed': ('Flatcar official sysexts (systemd-repart --make-ddi, verity + signature)', 'ddi',
                          {'make_ddi': True}),
    'ddi-verity-unsigned': ('systemd-repart Verity=data/hash without signature', 'ddi', {'root': True, 'verity': True}),
}


def _chroot(sid: str, argv: list, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = ['chroot', sid, 'env'] + ['%s=%s' % kv for kv in (env or {}).items()] + argv
    res = subprocess.run(cmd, text=True, capture_output=True, check=False)
    if res.returncode != 0:
        raise RuntimeError('%s failed (%d): %s' % (' '.join(argv), res.returncode, (res.stderr or res.stdout)[-2000:]))
    return res


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def _fs_image(sid: str, kind: str, tree: str, out: str) -> None:
    size = max(_du(os.path.join(sid, tree.lstrip('/'))) * 3, (320 if kind == 'xfs' else 64) << 20)
    host_out = os.path.join(sid, out.lstrip('/'))
    with open(host_out, 'wb') as f:
        f.truncate(size)
    if kind == 'ext4':
        # sysext-bakery: mkfs.ext4 -E root_owner=0:0 -d TREE IMAGE, then resize2fs -M
        _chroot(sid, ['mkfs.ext4', '-q', '-E', 'root_owner=0:0', '-d', tree, out])
        _chroot(sid, ['resize2fs', '-M', out])
    elif kind == 'btrfs':
        # sysext-bakery: mkfs.btrfs --mixed -m single -d single --shrink --compress zstd -r TREE IMAGE
        os.unlink(host_out)
        _chroot(sid, ['mkfs.btrfs', '-q', '--mixed', '-m', 'single', '-d', 'single', '--shrink', '--compress', 'zstd',
                      '-r', tree, out])
    else:
        # mkfs.xfs cannot populate from a directory: fill it through a mount of our own
        _chroot(sid, ['mkfs.xfs', '-q', out])
        mnt = host_out + '.mnt'
        os.mkdir(mnt)
        subprocess.run(['mount', '-o', 'loop', host_out, mnt], check=True)
        try:
            subprocess.run(['cp', '-a', os.path.join(sid, tree.lstrip('/')) + '/.', mnt], check=True)
            subprocess.run(['chown', '-R', '0:0', mnt], check=True)
        finally:
            subprocess.run(['umount', mnt], check=True)
            os.rmdir(mnt)


def test_key(sid: str) -> tuple[str, str]:
    """A self-signed test key and certificate in the sid root (in-root paths), made once."""
    key, crt = '/tmp/producers-test.key', '/tmp/producers-test.crt'
    if not os.path.exists(os.path.join(sid, crt.lstrip('/'))):
        _chroot(sid, ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt,
                      '-days', '3650', '-subj', '/CN=tucked.sysext test verity key'])
    return key, crt


def _definitions(sid: str, cls: str, spec: dict) -> str:
    d = '/tmp/producers-defs-%d' % os.getpid()
    host = os.path.join(sid, d.lstrip('/'))
    shutil.rmtree(host, ignore_errors=True)
    os.makedirs(host)
    if spec.get('usr'):
        files = {'10-usr.conf': ['Type=usr', 'Format=%s' % spec.get('format', 'erofs'), 'CopyFiles=/usr/:/',
                                 'Minimize=best']}
    else:
        copy = ['CopyFiles=/usr/', 'CopyFiles=/opt/'] if cls == 'sysext' else ['CopyFiles=/etc/']
        root = ['Type=root', 'Format=%s' % spec.get('format', 'erofs')] + copy + ['Minimize=best']
        files = {'10-root.conf': root}
        if spec.get('verity'):
            root += ['Verity=data', 'VerityMatchKey=root']
            files['20-root-verity.conf'] = ['Type=root-verity', 'Verity=hash', 'VerityMatchKey=root', 'Minimize=best']
    for name, lines in files.items():
        with open(os.path.join(host, name), 'w') as f:
            f.write('[Partition]\n' + ''.join(ln + '\n' for ln in lines))
    return d


def build(sid: str, recipe: str, tree: str, out: str, cls: str = 'sysext') -> str:
    """Build ``recipe`` from the in-root ``tree`` to the in-root ``out``; returns the host path."""
    _producer, kind, how = RECIPES[recipe]
    host_out = os.path.join(sid, out.lstrip('/'))
    if os.path.exists(host_out):
        os.unlink(host_out)
    if kind == 'fs' and isinstance(how, list):
        _chroot(sid, [a.format(tree=tree, out=out) for a in how])
    elif kind == 'fs':
        _fs_image(sid, how, tree, out)
    else:
        env = {'SYSTEMD_REPART_MKFS_OPTIONS_EROFS': how['mkfs']} if how.get('mkfs') else {}
        argv = ['systemd-repart', '--empty=create', '--size=auto', '--dry-run=no', '--no-pager', '--json=off',
                '--copy-source=' + tree, '--seed=e2a4c9b0-0d1c-4c53-9f4a-5d6ee1b3f2a1']
        if how.get('make_ddi'):
            key, crt = test_key(sid)
            argv += ['--make-ddi=' + cls, '--private-key=' + key, '--certificate=' + crt]
        else:
            argv += ['--definitions=' + _definitions(sid, cls, how)]
        _chroot(sid, argv + [out], env)
    return host_out
