# -*- coding: utf-8 -*-
"""Differential scenarios of hostile and unusual roots (issue 15), systemd-sysext 262 vs ours:

* ``/opt`` a symlink, relative (``opt -> var/opt``, the Fedora Atomic layout) or absolute:
  the hierarchy is resolved inside the root and merged there;
* a symlink loop in a search directory: no merge at all (systemd: "Failed to discover images");
* the newest entry of a ``NAME.raw.v/`` of the wrong type (a link to a directory, a FIFO, a
  device): the next version is taken;
* an offline copy of a merged tree (``usr/.systemd-sysext/dev`` naming ROOT/usr's own device, no
  mount): not a merge; merging simply merges;
* malformed ``work_dir`` metadata of a mutable merge (shadowed by the upper directory of a merge
  systemd made): the unmerge is refused and nothing is removed.
"""

from __future__ import annotations

import os
import shutil

from differential import Scenario, Step, checks, seen
from diff_scenarios_mutable import MUT, _mkdir, _systemd_merge_yes

EXT = 'var/lib/extensions'


def _opt_link(target):
    def setup(r):
        os.makedirs(r.p('var/opt'))
        os.rename(r.p('opt/base-marker'), r.p('var/opt/base-marker'))
        shutil.rmtree(r.p('opt'))
        os.symlink(target, r.p('opt'))
        r.add_dir(EXT, 'foo', files={'usr/share/foo/hello': 'foo\n', 'opt/foo/data': 'opt\n'})
        r.add_raw(EXT, 'sqx', files={'usr/share/sqx/hello': 'sqx\n', 'opt/sqx/data': 'sqx opt\n'})
    return setup


def _replace(r):
    r.add_raw(EXT, 'sqx', files={'usr/share/sqx/hello': 'sqx 2\n', 'opt/sqx/data': 'sqx opt 2\n'})


def _loop(r):
    r.add_dir(EXT, 'foo')
    os.symlink('loop2', r.p('etc/extensions/loop1'))
    os.symlink('loop1', r.p('etc/extensions/loop2'))


def _wrong_type(r):
    vdir = EXT + '/wt.raw.v'
    os.makedirs(r.p(vdir))
    r.add_raw(vdir, 'wt', fname='wt_1.raw', files={'usr/share/wt/version': '1\n'})
    os.makedirs(r.p('srv/dir'))
    os.mkfifo(r.p('srv/fifo'))
    os.mknod(r.p('srv/null'), 0o600 | 0o020000, os.makedev(1, 3))
    os.symlink('/srv/dir', r.p(vdir + '/wt_9.raw'))
    os.symlink('../../../../srv/fifo', r.p(vdir + '/wt_8.raw'))
    os.symlink('/srv/null', r.p(vdir + '/wt_7.raw'))
    os.makedirs(r.p(vdir + '/wt_6.raw'))


def _offline_copy(r):
    m = r.p('usr/.systemd-sysext')
    os.makedirs(m)
    st = os.stat(r.p('usr'))
    with open(os.path.join(m, 'dev'), 'w') as f:
        f.write('%d:%d\n' % (os.major(st.st_dev), os.minor(st.st_dev)))
    with open(os.path.join(m, 'extensions'), 'w') as f:
        f.write('old\n')
    r.add_dir(EXT, 'foo')


def _malformed_work_dir(text):
    def setup(r):
        r.add_dir(EXT, 'foo', files={'usr/share/foo/hello': 'foo\n'})
        _mkdir(r, MUT + '/usr', files={'.systemd-sysext/work_dir': text, 'kept': 'data\n'})
        _mkdir(r, 'var/lib/precious', files={'data': 'precious\n'})
    return setup


# /opt (merged too: mutable=yes mounts every hierarchy) has a valid work_dir: systemd unmerges it,
# then fails on /usr; ours refuses before anything is touched. _nothing_removed checks /usr.
KEPT_OPT = dict.fromkeys(('meta', 'mounts', 'status', 'mutable', 'options'),
                         'systemd 262 unmerges /opt before it fails on /usr; ours changes nothing')


def _nothing_removed(result):
    for side in ('systemd', 'ours'):
        last = result['steps'][-1][side]
        assert not last['ok'], (side, last['msg'])
        assert last['mutable'].get('usr/kept'), (side, 'the upper directory is intact')
        assert last['mounts']['usr']['stacked'] == 1, (side, 'still merged')
    assert '.systemd-sysext/work_dir' in result['steps'][-1]['ours']['msg'], result['steps'][-1]['ours']['msg']


# ours runs through real ansible-playbook here (see differential.py)
PLAYBOOK = True

SCENARIOS = [
    Scenario('hostile-opt-relative-symlink', _opt_link('var/opt'),
             [Step('merge'), Step('refresh'), Step('hook', hook=_replace), Step('refresh'), Step('cross'),
              Step('unmerge')],
             check=checks(seen(0, 'share/foo/hello', 'foo\n'), seen(0, 'foo/data', 'opt\n', h='opt'),
                          seen(3, 'sqx/data', 'sqx opt 2\n', h='opt'), seen(5, 'foo/data', None, h='opt'))),
    Scenario('hostile-opt-absolute-symlink', _opt_link('/var/opt'),
             [Step('merge'), Step('hook', hook=_replace), Step('refresh'), Step('unmerge')],
             check=checks(seen(0, 'share/sqx/hello', 'sqx\n'), seen(2, 'share/sqx/hello', 'sqx 2\n'))),
    Scenario('hostile-loop-in-search-dir', _loop, [Step('merge'), Step('unmerge')],
             check=checks(seen(0, 'share/foo/hello', None))),
    Scenario('hostile-vpick-wrong-type', _wrong_type, [Step('merge'), Step('refresh'), Step('unmerge')],
             check=checks(seen(0, 'share/wt/version', '1\n'), seen(2, 'share/wt/version', None))),
    Scenario('hostile-offline-copy', _offline_copy,
             [Step('unmerge'), Step('merge'), Step('refresh'), Step('unmerge')],
             check=checks(seen(1, 'share/foo/hello', 'foo\n'))),
] + [
    Scenario('hostile-malformed-work-dir-%s' % name, _malformed_work_dir(text),
             [Step('hook', hook=_systemd_merge_yes), Step('unmerge')], differ=KEPT_OPT, check=_nothing_removed)
    for name, text in (('empty', '\n'), ('dotdot', '../x\n'), ('absolute', '/var/lib/precious\n'))
]
