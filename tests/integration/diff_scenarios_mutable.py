# -*- coding: utf-8 -*-
"""Differential scenarios: mutable modes (--mutable=) and submounts, systemd-sysext 262 vs ours."""

from __future__ import annotations

import os
import re
import subprocess

from differential import Scenario, Step
from lib.nsroot import sh

MODES = ('no', 'yes', 'auto', 'import', 'ephemeral', 'ephemeral-import')
MUT = 'var/lib/extensions.mutable'


def _images(r):
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n', 'opt/foo/data': 'opt\n'})
    r.add_raw('var/lib/extensions', 'sqx', files={'usr/share/sqx/hello': 'sqx\n'})


def _replace(r):
    r.add_raw('var/lib/extensions', 'sqx', files={'usr/share/sqx/hello': 'sqx 2\n', 'usr/share/sqx/new': 'new\n'})


def _mkdir(r, rel, mode=0o755, files=None):
    os.makedirs(r.p(rel), exist_ok=True)
    os.chmod(r.p(rel), mode)
    for name, text in (files or {}).items():
        path = os.path.join(r.p(rel), name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)


def _tmpfs(r, rel, files=None, mode='0755'):
    os.makedirs(r.p(rel), exist_ok=True)
    sh('mount', '-t', 'tmpfs', '-o', 'mode=' + mode, 'tmpfs', r.p(rel))
    for name, text in (files or {}).items():
        with open(os.path.join(r.p(rel), name), 'w') as f:
            f.write(text)


WORKDIR = re.compile(r'\.systemd-([^/]+)-workdir(-[0-9a-f]{16})?')


def _norm_mutable(walk: dict) -> dict:
    """Our work directories carry a per-merge suffix (an atomic swap needs the old and the new
    overlay to have one each); systemd's do not. Everything else must be identical."""
    return {WORKDIR.sub(r'.systemd-\1-workdir', k): v for k, v in walk.items()}


def _same_mutable(result):
    for i, rec in enumerate(result['steps']):
        a, b = _norm_mutable(rec['systemd']['mutable']), _norm_mutable(rec['ours']['mutable'])
        assert a == b, 'step %d (%s): mutable dirs differ beyond work dir names:\nsystemd=%s\nours=%s' % (
            i, rec['action'], sorted(set(a.items()) - set(b.items())), sorted(set(b.items()) - set(a.items())))


WORKDIR_DIFFER = {'mutable': 'work directory names: ours have a per-merge suffix; compared normalized by check'}


# ------------------------------------------------------------------ each mode: write, refresh, unmerge
def _mode_setup(mode):
    def setup(r):
        _images(r)
        if mode in ('auto', 'import', 'ephemeral-import'):
            _mkdir(r, MUT + '/usr', files={'share/imported/data': 'imported\n'})
    return setup


def _mode_steps(mode):
    m = {'mutable': mode}
    return [Step('merge', args=m),
            Step('write', path='usr/share/written', content='one\n'),
            Step('write', path='opt/written', content='opt\n'),
            Step('refresh', args=m),
            Step('refresh', args=dict(m, always_refresh=True)),
            Step('write', path='usr/share/second', content='two\n'),
            Step('unmerge'),
            Step('merge', args=m),
            Step('unmerge')]


SCENARIOS = [
    Scenario('mutable-%s-write-refresh-unmerge' % mode, _mode_setup(mode), _mode_steps(mode),
             differ=WORKDIR_DIFFER, check=_same_mutable)
    for mode in MODES
]


# ------------------------------------------------------------------ the upper directory is a symlink
def _upper_link(target, mkdir_target=True, mode=0o755):
    def setup(r):
        _images(r)
        if mkdir_target and not target.startswith('/usr'):
            _mkdir(r, target.lstrip('/'), mode, files={'share/stored/data': 'stored\n'})
        _mkdir(r, MUT)
        r.symlink(MUT + '/usr', target)
    return setup


def _ro_usr(r):
    _upper_link('/usr')(r)
    sh('mount', '--bind', r.p('usr'), r.p('usr'))
    sh('mount', '-o', 'remount,bind,ro', r.p('usr'))


def _link_steps(mode='yes'):
    m = {'mutable': mode}
    return [Step('merge', args=m), Step('write', path='usr/share/written', content='one\n'),
            Step('refresh', args=dict(m, always_refresh=True)), Step('unmerge'),
            Step('merge', args=m), Step('unmerge')]


SCENARIOS += [
    Scenario('mutable-upper-symlink-to-dir', _upper_link('/' + MUT + '/store/usr'), _link_steps(),
             differ=WORKDIR_DIFFER, check=_same_mutable),
    Scenario('mutable-upper-symlink-to-dir-outside', _upper_link('/srv/usr-upper'), _link_steps(),
             differ=WORKDIR_DIFFER, check=_same_mutable),
    Scenario('mutable-upper-symlink-to-hierarchy', _upper_link('/usr'), _link_steps(),
             differ=WORKDIR_DIFFER, check=_same_mutable),
    Scenario('mutable-upper-symlink-to-hierarchy-auto', _upper_link('/usr'), _link_steps('auto'),
             differ=WORKDIR_DIFFER, check=_same_mutable),
    Scenario('mutable-upper-symlink-to-hierarchy-import', _upper_link('/usr'), _link_steps('import')),
    Scenario('mutable-upper-symlink-to-read-only-hierarchy', _ro_usr, _link_steps()),
    Scenario('mutable-upper-dangling-auto', _upper_link('/nowhere', mkdir_target=False), _link_steps('auto')),
    Scenario('mutable-upper-dangling-yes', _upper_link('/nowhere', mkdir_target=False), _link_steps('yes'),
             differ=WORKDIR_DIFFER, check=_same_mutable),
    Scenario('mutable-upper-dangling-import', _upper_link('/nowhere', mkdir_target=False), _link_steps('import')),
]


# ------------------------------------------------------------------ wrong permissions, modes kept
def _bad_mode(r):
    _images(r)
    _mkdir(r, MUT + '/usr', 0o700, files={'share/kept': 'kept\n'})


def _odd_modes(mode):
    def setup(r):
        _images(r)
        os.chmod(r.p('usr'), 0o751)
        os.chmod(r.p('opt'), 0o711)
        if mode in ('auto', 'import', 'ephemeral-import'):
            _mkdir(r, MUT + '/usr', 0o751, files={'share/imported/data': 'imported\n'})
            _mkdir(r, MUT + '/opt', 0o711)
    return setup


SCENARIOS += [
    Scenario('mutable-bad-permissions-%s' % mode, _bad_mode,
             [Step('merge', args={'mutable': mode}), Step('unmerge'), Step('merge'),
              Step('refresh', args={'mutable': mode}), Step('unmerge')], differ=WORKDIR_DIFFER, check=_same_mutable)
    for mode in ('yes', 'auto', 'import', 'ephemeral-import')
] + [
    Scenario('mutable-modes-kept-%s' % mode, _odd_modes(mode),
             [Step('merge', args={'mutable': mode}), Step('refresh', args={'mutable': mode, 'always_refresh': True}),
              Step('unmerge')], differ=WORKDIR_DIFFER, check=_same_mutable)
    for mode in MODES
]


# ------------------------------------------------------------------ malformed work_dir metadata
def _forged_work_dir(text):
    def setup(r):
        _images(r)
        _mkdir(r, MUT + '/usr', files={'.systemd-sysext/work_dir': text})
        _mkdir(r, 'var/lib/precious', files={'data': 'precious\n'})
    return setup


def _systemd_merge_yes(r):
    """systemd 262 merges (mutable=yes) on this side's root, whichever side it is."""
    sid = r.path[:-len(r.inroot)]
    res = subprocess.run(['chroot', sid, 'systemd-sysext', 'merge', '--no-reload', '--mutable=yes',
                          '--root=' + r.inroot], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr


def _forged_kept_ours(result):
    """Ours unmerged, deleted nothing it was pointed at, and left no work directory behind."""
    last = result['steps'][-1]['ours']
    assert last['ok'], last['msg']
    assert last['mounts']['usr']['stacked'] == 0 and last['mounts']['opt']['stacked'] == 0
    assert last['files']['usr'].get('share/base/marker'), 'the base tree is intact'
    assert last['mutable'].get('usr/.systemd-sysext/work_dir'), 'the upper directory is intact'
    assert not [k for k in last['mutable'] if WORKDIR.search(k)], last['mutable']


STUCK = dict.fromkeys(('ok', 'files', 'meta', 'mounts', 'options', 'status'),
                      'systemd 262 fails to unmerge /usr and leaves it merged; ours unmerges')
FORGED = (('base', 'usr/share/base\n',
           {'files': 'systemd 262 deletes the base tree directory a forged work_dir names (rm -rf '
                     'ROOT/usr/share/base); ours never does'}),
          ('upper', 'var/lib/extensions.mutable/usr\n', {}),
          ('dotdot', 'var/lib/extensions.mutable/../../../opt\n', STUCK),
          ('absolute', '/opt\n', STUCK))
FORGED_MUTABLE = {'mutable': 'systemd 262 removes what the forged work_dir names and leaks its own work directory (or, '
                             'for upper, deletes the upper directory with its data); ours reads its own metadata '
                             '(bind-mounted from the top layer, the upper cannot shadow it) and removes only its work '
                             'directory'}

SCENARIOS += [
    Scenario('mutable-forged-work-dir-%s' % name, _forged_work_dir(text),
             [Step('merge', args={'mutable': 'yes'}), Step('unmerge')], differ=dict(FORGED_MUTABLE, **extra),
             check=_forged_kept_ours)
    for name, text, extra in FORGED
] + [
    # ours unmerges a merge made by systemd 262, whose metadata the upper does shadow (a work_dir
    # that is no path inside the root is refused by both: diff_scenarios_hostile.py)
    Scenario('mutable-forged-work-dir-systemd-merge-%s' % name, _forged_work_dir(text),
             [Step('hook', hook=_systemd_merge_yes), Step('unmerge')], differ=dict(FORGED_MUTABLE, **extra),
             check=_forged_kept_ours)
    for name, text, extra in FORGED if name in ('base', 'upper')
]


# ------------------------------------------------------------------ submounts
def _submounts(r):
    _images(r)
    _tmpfs(r, 'usr/share/sub', {'inside': 'usr sub\n'})
    _tmpfs(r, 'opt/x', {'inside': 'opt sub\n'})


def _late_mount(r):
    _tmpfs(r, 'usr/share/foo', {'late': 'late\n'})


def _stacked(r):
    _images(r)
    _tmpfs(r, 'usr/share/sub', {'lower': 'lower\n'})
    _tmpfs(r, 'usr/share/sub', {'upper': 'upper\n'})


def _nested(r):
    _images(r)
    _tmpfs(r, 'usr/share/sub', {'a': 'a\n'})
    _tmpfs(r, 'usr/share/sub/deeper', {'b': 'b\n'})


def _etc_sub(r):
    r.add_dir('var/lib/confexts', 'site', cls='confext')
    _tmpfs(r, 'etc/sub', {'inside': 'etc sub\n'})


SUB_STEPS = [Step('merge'), Step('refresh', args={'always_refresh': True}), Step('hook', hook=_replace),
             Step('refresh'), Step('unmerge'), Step('merge'), Step('unmerge')]

SCENARIOS += [
    Scenario('submount-usr-opt', _submounts, SUB_STEPS),
    Scenario('submount-mounted-while-merged', _images,
             [Step('merge'), Step('hook', hook=_late_mount), Step('refresh', args={'always_refresh': True}),
              Step('unmerge'), Step('merge'), Step('unmerge')]),
    Scenario('submount-stacked', _stacked, SUB_STEPS),
    Scenario('submount-nested', _nested, SUB_STEPS),
    Scenario('submount-mutable-yes', _submounts,
             [Step('merge', args={'mutable': 'yes'}), Step('write', path='usr/share/sub/written'),
              Step('refresh', args={'mutable': 'yes', 'always_refresh': True}), Step('unmerge')],
             differ=WORKDIR_DIFFER, check=_same_mutable),
    Scenario('submount-confext', _etc_sub,
             [Step('merge', cls='confext'), Step('refresh', cls='confext', args={'always_refresh': True}),
              Step('unmerge', cls='confext')]),
]
