# -*- coding: utf-8 -*-
"""Differential scenarios: versioned image directories (vpick) and symlinks under the root.

What systemd-sysext 262 showed here, and the scenarios hold both sides to:

* ``NAME.raw.v/`` picks the newest ``NAME_VERSION[_ARCH][+LEFT[-DONE]].raw``, ``NAME.v/`` the
  newest ``NAME_VERSION`` directory; an entry with no tries left (``+0``) loses to any other,
  another architecture's is skipped, the native one beats the secondary one beats none; entries
  of the wrong type are passed over; a winner that is a dangling link drops the whole ``.v``;
  ``NAME.sysext.raw.v/`` wants ``NAME_VERSION.sysext.raw``;
* the ``.v`` entry and the entries in it may be symlinks, relative or absolute (re-rooted),
  and the path recorded is the resolved one; a new version in the directory is a change;
* symlinks to images resolve inside the root and never leave it (``..`` stops at the root);
* the release file of ``foo_1.2.raw`` or of a ``bar_3`` directory may be named after the
  image without its version (``extension-release.foo``), else after the image, else marked
  ``user.extension-release.strict=false``.
"""

from __future__ import annotations

import os

from differential import NATIVE, OTHER, Scenario, Step, checks, seen, setups

EXT = 'var/lib/extensions'
CONF = 'var/lib/confexts'
MERGE_UNMERGE = [Step('merge'), Step('unmerge')]


def _v(sdir, name, versions, cls='sysext', raw=True, suffix='.raw'):
    """A setup making ``sdir/name(.raw).v/`` with one image per version, each shipping
    usr/share/NAME/version (etc/NAME.version for confext) with its version in it."""
    def setup(r):
        vdir = os.path.join(sdir, name + (suffix if raw else '') + '.v')
        os.makedirs(r.p(vdir), exist_ok=True)
        for v in versions:
            files = {('usr/share/%s/version' if cls == 'sysext' else 'etc/%s.version') % name: v + '\n'}
            if raw:
                r.add_raw(vdir, name, cls=cls, fname='%s_%s%s' % (name, v, suffix), files=files)
            else:
                r.add_dir(vdir, '%s_%s' % (name, v), cls=cls, release_name=name, files=files)
    return setup


def _add_version(sdir, name, v, raw=True):
    def hook(r):
        _v(sdir, name, [v], raw=raw)(r)
    return hook


def _symlink(rel, target):
    def setup(r):
        os.makedirs(os.path.dirname(r.p(rel)), exist_ok=True)
        if os.path.lexists(r.p(rel)):
            os.remove(r.p(rel))
        os.symlink(target, r.p(rel))
    return setup


def _store_raw(name, fname, **kw):
    def setup(r):
        os.makedirs(r.p('var/lib/store'), exist_ok=True)
        r.add_raw('var/lib/store', name, fname=fname, **kw)
    return setup


def _strict_false_dir(name, release_name):
    def setup(r):
        path = r.add_dir(EXT, name, release_name=release_name)
        os.setxattr(os.path.join(path, 'usr/lib/extension-release.d/extension-release.' + release_name),
                    'user.extension-release.strict', b'false')
    return setup


SCENARIOS = [
    # ---------------------------------------------------------------- vpick
    Scenario('vpick-raw-newest',
             _v(EXT, 'foo', ['1', '2', '10', '11+0', '3_' + OTHER, '4_' + NATIVE, '2_beta']),
             [Step('merge'), Step('refresh'), Step('hook', hook=_add_version(EXT, 'foo', '12')), Step('refresh'),
              Step('unmerge')],
             check=checks(seen(0, 'share/foo/version', '10\n'), seen(3, 'share/foo/version', '12\n'),
                          seen(4, 'share/foo/version', None))),
    Scenario('vpick-dir-versions',
             setups(_v(EXT, 'bar', ['1', '2'], raw=False), _v(EXT, 'bar', ['3'], raw=True, suffix='')),
             [Step('merge'), Step('hook', hook=_add_version(EXT, 'bar', '2.1', raw=False)), Step('refresh'),
              Step('unmerge')],
             check=checks(seen(0, 'share/bar/version', '2\n'), seen(2, 'share/bar/version', '2.1\n'))),
    Scenario('vpick-tries-and-architectures',
             setups(_v(EXT, 'tr', ['5+1-3', '5+1-1', '5+3', '5+0']),
                    _v(EXT, 'ar', ['1_x86', '1_' + NATIVE, '1', '2_' + OTHER])),
             MERGE_UNMERGE,
             check=checks(seen(0, 'share/tr/version', '5+3\n'), seen(0, 'share/ar/version', '1_%s\n' % NATIVE))),
    Scenario('vpick-class-suffix',
             setups(_v(EXT, 'cls', ['1'], suffix='.sysext.raw'), _v(EXT, 'cls', ['2'], suffix='.raw')),
             MERGE_UNMERGE, check=seen(0, 'share/cls/hello', None)),
    Scenario('vpick-symlinked-v-directory',
             setups(_v('var/lib/store', 'app', ['1', '2']), _symlink(EXT + '/app.raw.v', '/var/lib/store/app.raw.v'),
                    _v('var/lib/store', 'lib', ['7'], raw=False),
                    lambda r: os.makedirs(r.p(EXT + '/lib.v')),
                    _symlink(EXT + '/lib.v/lib_7', '../../store/lib.v/lib_7'),
                    _v(EXT, 'lib', ['3'], raw=False)),
             [Step('merge'), Step('hook', hook=_add_version('var/lib/store', 'app', '3')), Step('refresh'),
              Step('unmerge')],
             check=checks(seen(0, 'share/app/version', '2\n'), seen(0, 'share/lib/version', '7\n'),
                          seen(2, 'share/app/version', '3\n'))),
    Scenario('vpick-winner-dangling',
             setups(_v(EXT, 'dang', ['1']), _symlink(EXT + '/dang.raw.v/dang_2.raw', 'nowhere'),
                    lambda r: r.add_dir(EXT, 'other')),
             MERGE_UNMERGE,
             check=checks(seen(0, 'share/dang/version', None), seen(0, 'share/other/hello', 'other\n'))),
    Scenario('vpick-wrong-types-passed-over',
             setups(_v(EXT, 'wt', ['1'], raw=False), _v(EXT, 'wt', ['2', '3'], raw=True, suffix=''),
                    lambda r: os.makedirs(r.p(EXT + '/wr.raw.v/wr_9.raw')), _v(EXT, 'wr', ['4'])),
             MERGE_UNMERGE,
             check=checks(seen(0, 'share/wt/version', '1\n'), seen(0, 'share/wr/version', '4\n'))),
    Scenario('vpick-shadowing',
             setups(lambda r: r.add_raw(EXT, 'sh', files={'usr/share/sh/version': 'plain\n'}),
                    _v('etc/extensions', 'sh', ['9'])),
             MERGE_UNMERGE, check=seen(0, 'share/sh/version', '9\n')),
    Scenario('vpick-nothing-to-pick',
             setups(lambda r: os.makedirs(r.p(EXT + '/empty.v')), _v(EXT, 'none', ['1_' + OTHER]),
                    lambda r: r.add_dir(EXT, 'other')),
             MERGE_UNMERGE, check=seen(0, 'share/other/hello', 'other\n')),
    Scenario('vpick-confext',
             _v(CONF, 'site', ['1', '2'], cls='confext'),
             [Step('merge', cls='confext'), Step('unmerge', cls='confext')],
             check=seen(0, 'site.version', '2\n', h='etc')),
    # ---------------------------------------------------------------- symlinks under the root
    Scenario('symlink-absolute-and-relative',
             setups(_store_raw('foo', 'foo-1.raw'), _symlink('etc/extensions/foo.raw', '/var/lib/store/foo-1.raw'),
                    lambda r: r.add_dir('var/lib/store', 'bar'), _symlink('run/extensions/bar', '../../var/lib/store/bar')),
             [Step('merge'), Step('refresh'),
              Step('hook', hook=setups(_store_raw('foo', 'foo-2.raw', files={'usr/share/foo/hello': 'foo 2\n'}),
                                       _symlink('etc/extensions/foo.raw', '../../var/lib/store/foo-2.raw'))),
              Step('refresh'), Step('unmerge')],
             check=checks(seen(0, 'share/foo/hello', 'foo\n'), seen(0, 'share/bar/hello', 'bar\n'),
                          seen(3, 'share/foo/hello', 'foo 2\n'))),
    Scenario('symlink-escape-stays-in-root',
             setups(lambda r: r.add_raw('', 'esc', fname='outside.raw'),
                    _symlink('etc/extensions/esc.raw', '../../../../../../../../outside.raw'),
                    _symlink('run/extensions/gone', '/../../nonexistent-outside-dir')),
             MERGE_UNMERGE, check=seen(0, 'share/esc/hello', 'esc\n')),
    Scenario('symlink-release-names',
             setups(lambda r: r.add_raw(EXT, 'foo', fname='foo_1.2.raw'),
                    lambda r: r.add_dir(EXT, 'bar_3', release_name='bar'),
                    _strict_false_dir('loose', 'something-else'),
                    lambda r: r.add_dir(EXT, 'strict', release_name='mismatch')),
             MERGE_UNMERGE,
             check=checks(seen(0, 'share/foo/hello', 'foo\n'), seen(0, 'share/bar_3/hello', 'bar_3\n'),
                          seen(0, 'share/loose/hello', 'loose\n'), seen(0, 'share/strict/hello', None))),
    # a renamed image file whose release file matches no name fails the whole merge, as a
    # directory with the same problem is only skipped
    Scenario('symlink-renamed-raw-without-its-release',
             setups(lambda r: r.add_dir(EXT, 'good'), _store_raw('other', 'renamed.raw'),
                    _symlink(EXT + '/qux.raw', '/var/lib/store/renamed.raw')),
             [Step('merge'), Step('unmerge')], check=seen(0, 'share/good/hello', None)),
    Scenario('unreadable-raw-blocks-the-refresh',
             lambda r: r.add_dir(EXT, 'good'),
             [Step('merge'),
              Step('hook', hook=lambda r: open(r.p(EXT + '/junk.raw'), 'wb').write(b'\x17' * 8192)),
              Step('refresh'),
              Step('hook', hook=lambda r: os.remove(r.p(EXT + '/junk.raw'))),
              Step('refresh'), Step('unmerge')],
             check=checks(seen(2, 'share/good/hello', 'good\n'), seen(4, 'share/good/hello', 'good\n'))),
]
