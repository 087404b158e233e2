# -*- coding: utf-8 -*-
"""Differential scenarios: every image format the producers ship (tests/lib/producers.py builds
each the way its producer does), merged once by systemd-sysext 262 and once by us.

For each format that this kernel can mount: both merge the same content with the same mount
flags and metadata, a second refresh changes nothing on either side, and each side's merge is
skipped by the other implementation (systemd's refresh after ours prints its skip message, ours
after systemd's reports changed=false). A DDI with dm-verity partitions cannot be merged on
this kernel (no device-mapper): systemd 262 fails every merge with "Failed to read metadata for
image ...: Operation not supported", and so do we, with the image and the missing feature named.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from differential import SIDES, Scenario, Step, checks, seen

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib import producers  # noqa: E402

EXT = 'var/lib/extensions'
CONF = 'var/lib/confexts'


def _image(recipe, name='fmt', cls='sysext', sdir=EXT, text=None):
    def setup(r):
        tree = 'tmp/tree-' + name
        files = ({'usr/share/%s/hello' % name: text or '%s %s\n' % (name, recipe), 'opt/%s/data' % name: 'opt\n',
                  'usr/share/%s/big' % name: 'compressible text\n' * 4000}
                 if cls == 'sysext' else {'etc/%s.conf' % name: text or '%s %s\n' % (name, recipe)})
        r.make_tree(r.p(tree), name, cls=cls, files=files)
        sid = r.path[:-len(r.inroot)]
        producers.build(sid, recipe, r.inroot + '/' + tree, '%s/%s/%s.raw' % (r.inroot, sdir, name), cls)
    return setup


REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _built(name='fmt', cls='sysext', sdir=EXT, signed=False, **options):
    """An image made by sysext_build's code (plugins/module_utils/build.py), run with the sid
    root's python3 and its tools (mkfs.erofs 1.9, veritysetup, openssl), chrooted."""
    def setup(r):
        sid = r.path[:-len(r.inroot)]
        coll = os.path.join(sid, 'tmp/tucked-coll/ansible_collections/tucked/sysext/plugins')
        if not os.path.isdir(coll):
            shutil.copytree(os.path.join(REPO, 'plugins', 'module_utils'), os.path.join(coll, 'module_utils'),
                            ignore=shutil.ignore_patterns('__pycache__'))
        tree = 'tmp/tree-' + name
        label = '%s %s' % (name, json.dumps(options, sort_keys=True))
        files = ({'usr/share/%s/hello' % name: label + '\n', 'opt/%s/data' % name: 'opt\n',
                  'usr/share/%s/big' % name: 'compressible text\n' * 4000}
                 if cls == 'sysext' else {'etc/%s.conf' % name: label + '\n'})
        r.make_tree(r.p(tree), name, cls=cls, files=files)
        opts = dict(options, src=r.inroot + '/' + tree, dest='%s/%s/%s.raw' % (r.inroot, sdir, name), kind=cls)
        if signed:
            key, crt = producers.test_key(sid)
            opts.update(signing_key=key, signing_certificate=crt)
        code = ('import json, sys; sys.path.insert(0, "/tmp/tucked-coll"); '
                'from ansible_collections.tucked.sysext.plugins.module_utils import build; '
                'print(json.dumps(build.run(build.Options(**json.loads(sys.argv[1]))).as_dict()))')
        res = subprocess.run(['chroot', sid, 'python3', '-c', code, json.dumps(opts)], capture_output=True, text=True,
                             check=False)
        if res.returncode != 0:
            raise RuntimeError('sysext_build in the sid root failed: %s' % res.stderr[-2000:])
    return setup


def _built_mergeable(scenario, **options):
    text = 'fmt %s\n' % json.dumps(options, sort_keys=True)
    return Scenario('format-built-' + scenario, _built(**options), LIFECYCLE,
                    check=checks(seen(0, 'share/fmt/hello', text), seen(0, 'fmt/data', 'opt\n', h='opt'),
                                 seen(3, 'share/fmt/hello', None), _skipped_both_ways(1)))


def _refused_by_both(*needles):
    def check(result):
        for side in SIDES:
            step = result['steps'][0][side]
            assert not step['ok'], (side, step['msg'])
        for needle in needles:
            assert needle in result['steps'][0]['ours']['msg'], result['steps'][0]['ours']['msg']
    return check


def _ours_ok(*steps):
    def check(result):
        for step in steps:
            assert result['steps'][step]['ours']['ok'], result['steps'][step]['ours']['msg']
    return check


def _ours_shows(step, *paths):
    def check(result):
        files = result['steps'][step]['ours']['files']['usr']
        for path in paths:
            assert path in files, (path, sorted(files))
    return check


def _skipped_both_ways(step):
    def check(result):
        for side in SIDES:
            assert result['steps'][step][side]['ok'], (side, result['steps'][step][side]['msg'])
    return check


LIFECYCLE = [Step('merge'), Step('cross'), Step('refresh'), Step('unmerge')]


def _mergeable(recipe):
    return Scenario('format-' + recipe, _image(recipe), LIFECYCLE,
                    check=checks(seen(0, 'share/fmt/hello', 'fmt %s\n' % recipe), seen(0, 'fmt/data', 'opt\n', h='opt'),
                                 seen(3, 'share/fmt/hello', None), _skipped_both_ways(1)))


def _add_dir(r):
    r.add_dir(EXT, 'zz', files={'usr/share/zz/hello': 'zz\n'})


def _refresh_with_change(recipe, **kw):
    """A change elsewhere while the image stays merged: the image is mounted for the new
    overlay while the old one still holds it."""
    return Scenario('format-%s-stays-merged' % recipe, _image(recipe), [Step('merge'), Step('hook', hook=_add_dir),
                                                                        Step('refresh'), Step('unmerge')],
                    check=checks(seen(2, 'share/fmt/hello', 'fmt %s\n' % recipe), seen(2, 'share/zz/hello', 'zz\n')),
                    **kw)


XFS_TWICE = ('systemd 262 reads the metadata of every image before it refreshes, through a second mount of it, and '
             'xfs refuses a second mount of a file system UUID that is mounted already (by the merged overlay): its '
             'refresh fails with "Failed to read metadata for image fmt: Invalid argument". We read it from the cache '
             'and mount layers of xfs with nouuid')

SCENARIOS = [_mergeable(r) for r in (
    'squashfs-gzip', 'squashfs-zstd', 'squashfs-lz4', 'squashfs-xz', 'squashfs-lzo',
    'erofs-lz4', 'erofs-lz4hc-fragments', 'erofs-zstd-fragments', 'erofs-plain', 'erofs-deflate-dedupe', 'erofs-lzma',
    'ext4', 'btrfs-zstd',
    'ddi-erofs', 'ddi-erofs-lz4hc', 'ddi-erofs-zstd', 'ddi-squashfs')] + [
    Scenario('format-xfs', _image('xfs'), LIFECYCLE,
             differ={k: XFS_TWICE for k in ('ok', 'files', 'meta', 'mounts', 'options', 'status')},
             check=checks(seen(0, 'share/fmt/hello', 'fmt xfs\n'), _skipped_both_ways(1), _ours_ok(2))),
    _refresh_with_change('ext4'), _refresh_with_change('btrfs-zstd'), _refresh_with_change('ddi-erofs-zstd'),
    _refresh_with_change('squashfs-zstd'),
    Scenario('format-xfs-stays-merged', _image('xfs'), [Step('merge'), Step('hook', hook=_add_dir), Step('refresh')],
             differ={k: XFS_TWICE for k in ('ok', 'files', 'meta', 'mounts', 'options', 'status')},
             check=checks(_ours_ok(0, 2), _ours_shows(2, 'share/zz/hello', 'share/fmt/hello'))),
] + [
    Scenario('format-ddi-usr-only', _image('ddi-usr-only'), LIFECYCLE,
             check=checks(seen(0, 'share/fmt/hello', 'fmt ddi-usr-only\n'), _skipped_both_ways(1))),
    Scenario('format-confext-ddi', _image('ddi-erofs', cls='confext', sdir=CONF),
             [Step('merge', cls='confext'), Step('cross', cls='confext'), Step('unmerge', cls='confext')],
             check=checks(seen(0, 'fmt.conf', 'fmt ddi-erofs\n', h='etc'), _skipped_both_ways(1))),
    Scenario('format-ddi-verity-signed-without-device-mapper', _image('ddi-verity-signed'), [Step('merge')],
             check=_refused_by_both('verity partition', 'no device-mapper')),
    Scenario('format-ddi-verity-unsigned-without-device-mapper', _image('ddi-verity-unsigned'), [Step('merge')],
             check=_refused_by_both('verity partition', 'no device-mapper')),
] + [
    # images made by sysext_build itself: the rows of the producers' table that this kernel mounts
    _built_mergeable('ddi-erofs-lz4hc', format='erofs', compression='lz4hc', compression_level=12, cluster_size=65536,
                     erofs_features=['fragments', 'ztailpacking'], container='ddi'),
    _built_mergeable('ddi-erofs', format='erofs', container='ddi'),
    _built_mergeable('ddi-squashfs-zstd', format='squashfs', compression='zstd', container='ddi'),
    _built_mergeable('erofs-zstd', format='erofs', compression='zstd', erofs_features=['fragments', 'fragdedupe=inode']),
    _built_mergeable('erofs-lz4', format='erofs', compression='lz4'),
    _built_mergeable('squashfs-zstd', format='squashfs', compression='zstd', compression_level=22, cluster_size=524288),
    Scenario('format-built-confext-ddi', _built(cls='confext', sdir=CONF, format='erofs', container='ddi'),
             [Step('merge', cls='confext'), Step('cross', cls='confext'), Step('unmerge', cls='confext')],
             check=checks(seen(0, 'fmt.conf', 'fmt {"container": "ddi", "format": "erofs"}\n', h='etc'),
                          _skipped_both_ways(1))),
    # systemd 262 dissects them as verity images and refuses them for want of device-mapper, as we do
    Scenario('format-built-ddi-verity-signed-without-device-mapper',
             _built(format='erofs', compression='lz4hc', container='ddi', verity=True, signed=True), [Step('merge')],
             check=_refused_by_both('verity partition', 'no device-mapper')),
    Scenario('format-built-ddi-verity-without-device-mapper',
             _built(format='erofs', container='ddi', verity=True), [Step('merge')],
             check=_refused_by_both('verity partition', 'no device-mapper')),
]
