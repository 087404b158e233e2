# -*- coding: utf-8 -*-
"""Differential scenarios: matching an extension-release against the root (ID, ID_LIKE,
ID=_any, VERSION_ID, SYSEXT_LEVEL/CONFEXT_LEVEL, ARCHITECTURE, SYSEXT_SCOPE/CONFEXT_SCOPE,
initrd roots), and roots whose hierarchy is missing or empty; systemd-sysext 262 vs ours.

What 262 does, measured on the sid root (``SYSTEMD_LOG_LEVEL=debug systemd-sysext merge
--root=``) and kept here as scenarios:

* an incompatible extension is skipped (``Extension 'x' is for ...`` at debug level); with
  nothing left the merge says ``No suitable extensions found (N ignored due to incompatible
  image(s)).`` and exits 0;
* the host's ID_LIKE counts: an extension for ``ubuntu`` merges on ``ID=debian
  ID_LIKE="ubuntu fedora"``;
* a root with ``etc/initrd-release`` (a file or a directory; a dangling symlink does not
  count) is an initrd: scope ``initrd``, the initrd search directories (``/.extra/sysext``,
  ``/.extra/global_sysext``; for confext ``/.extra/confext`` but no ``/usr/lib/confexts``);
* a missing scope key means ``system portable``; an empty one matches no scope;
* confext checks ARCHITECTURE too, and only CONFEXT_SCOPE / CONFEXT_LEVEL (SYSEXT_* are
  ignored there);
* a root without os-release, or whose os-release has no ID, fails the merge, even with no
  extension at all; unmerge does not read os-release;
* a missing or empty host hierarchy is left out of the overlay's lower layers, and a missing
  one is created as the mount point.
"""

from __future__ import annotations

import os
import shutil

from differential import NATIVE, OTHER, Scenario, Step, setups

EXT = 'var/lib/extensions'
CONF = 'var/lib/confexts'
MERGE_UNMERGE = [Step('merge'), Step('unmerge')]
CONF_MERGE_UNMERGE = [Step('merge', cls='confext'), Step('unmerge', cls='confext')]


def _exts(spec: dict, sdir: str = EXT, cls: str = 'sysext'):
    """A setup adding one directory extension per name with the given release fields."""
    def setup(r):
        for name, fields in spec.items():
            os.makedirs(r.p(sdir), exist_ok=True)
            r.add_dir(sdir, name, cls=cls, release=fields)
    return setup


def _file(rel: str, text: str):
    def setup(r):
        if os.path.lexists(r.p(rel)):
            os.remove(r.p(rel))
        os.makedirs(os.path.dirname(r.p(rel)), exist_ok=True)
        with open(r.p(rel), 'w') as f:
            f.write(text)
    return setup


def _initrd(r):
    with open(r.p('etc/initrd-release'), 'w') as f:
        f.write('ID=debian\nVERSION_ID=13\n')


def _release_in_etc_only(r):
    """os-release as a file in etc only (usr/lib/os-release gone): it can then be changed while
    /usr is merged."""
    os.remove(r.p('etc/os-release'))
    shutil.copy(r.p('usr/lib/os-release'), r.p('etc/os-release'))
    os.remove(r.p('usr/lib/os-release'))


def _host_version(version: str):
    def hook(r):
        with open(r.p('etc/os-release'), 'w') as f:
            f.write('ID=debian\nVERSION_ID=%s\n' % version)
    return hook


def _no_os_release(r):
    for rel in ('etc/os-release', 'usr/lib/os-release'):
        if os.path.lexists(r.p(rel)):
            os.remove(r.p(rel))


def _sysext_files(obs) -> set:
    return {p.split('/')[1] for p in obs['files']['usr'] if p.startswith('share/') and p.count('/') == 2
            and p.endswith('/hello')}


def _confext_files(obs) -> set:
    return {p[:-len('.conf')] for p in obs['files']['etc'] if p.endswith('.conf') and '/' not in p} - {'base'}


def expect(merged: set, step: int = 0, cls: str = 'sysext', ok: bool = True):
    """A check: after step ``step`` both sides succeeded (or both failed) and show exactly the
    extensions ``merged``."""
    def check(result):
        rec = result['steps'][step]
        for side in ('systemd', 'ours'):
            obs = rec[side]
            assert obs['ok'] is ok, '%s: ok=%s (%s)' % (side, obs['ok'], obs['msg'])
            got = _sysext_files(obs) if cls == 'sysext' else _confext_files(obs)
            assert got == set(merged), '%s merged %s, expected %s' % (side, sorted(got), sorted(merged))
    return check


def _host_error(result):
    for rec in result['steps'][:1]:
        assert not rec['systemd']['ok'] and not rec['ours']['ok']
        assert 'os-release' in rec['ours']['msg'], rec['ours']['msg']
    assert result['steps'][1]['ours']['ok'] and result['steps'][1]['systemd']['ok']


def _opt_missing(r):
    shutil.rmtree(r.p('opt'))
    r.add_dir(EXT, 'foo', release={'ID': '_any'}, files={'usr/share/foo/hello': 'foo\n', 'opt/foo/data': 'opt\n'})


def _usr_empty(r):
    _release_in_etc_only(r)
    shutil.rmtree(r.p('usr'))
    os.mkdir(r.p('usr'))
    r.add_dir(EXT, 'foo', release={'ID': 'debian', 'VERSION_ID': '13'})


def _usr_missing(r):
    _release_in_etc_only(r)
    shutil.rmtree(r.p('usr'))
    r.add_dir(EXT, 'foo', release={'ID': 'debian', 'VERSION_ID': '13'})


def _etc_missing(r):
    shutil.rmtree(r.p('etc'))
    r.add_dir(CONF, 'site', cls='confext', release={'ID': 'debian', 'VERSION_ID': '13'})


DEBIAN13 = {'ID': 'debian', 'VERSION_ID': '13'}
LEVEL_HOST = {'ID': 'debian', 'VERSION_ID': '13', 'SYSEXT_LEVEL': '1.0', 'CONFEXT_LEVEL': '7'}
# MSG: systemd's last line is its summary ("Using extensions ...", "No suitable extensions
# found ..."); ours is the module result; they are never compared (not in KEYS).

SCENARIOS = [
    Scenario('matching-id', _exts({'foo': DEBIAN13, 'fed': {'ID': 'fedora', 'VERSION_ID': '13'}}),
             MERGE_UNMERGE, check=expect({'foo'})),
    Scenario('matching-id-differs-nothing-left', _exts({'fed': {'ID': 'fedora', 'VERSION_ID': '13'},
                                                        'noid': {'VERSION_ID': '13'}}),
             MERGE_UNMERGE, check=expect(set())),
    Scenario('matching-id-like', _exts({'ubu': {'ID': 'ubuntu', 'VERSION_ID': '13'},
                                        'fed': {'ID': 'fedora', 'VERSION_ID': '13'},
                                        'arch': {'ID': 'arch', 'VERSION_ID': '13'},
                                        'ubu12': {'ID': 'ubuntu', 'VERSION_ID': '12'}}),
             MERGE_UNMERGE, os_release={'ID': 'debian', 'ID_LIKE': '"ubuntu fedora"', 'VERSION_ID': '13'},
             check=expect({'ubu', 'fed'})),
    Scenario('matching-id-any', _exts({'any': {'ID': '_any', 'VERSION_ID': '999', 'SYSEXT_LEVEL': '9'},
                                       'any2': {'ID': '_any'}}),
             MERGE_UNMERGE, os_release=LEVEL_HOST, check=expect({'any', 'any2'})),
    Scenario('matching-level-equal', _exts({'lvl': {'ID': 'debian', 'SYSEXT_LEVEL': '1.0', 'VERSION_ID': '99'},
                                            'lvl-only': {'ID': 'debian', 'SYSEXT_LEVEL': '1.0'}}),
             MERGE_UNMERGE, os_release=LEVEL_HOST, check=expect({'lvl', 'lvl-only'})),
    Scenario('matching-level-differs', _exts({'lvl2': {'ID': 'debian', 'SYSEXT_LEVEL': '2.0', 'VERSION_ID': '13'},
                                              'conflvl': {'ID': 'debian', 'CONFEXT_LEVEL': '7', 'VERSION_ID': '12'}}),
             MERGE_UNMERGE, os_release=LEVEL_HOST, check=expect(set())),
    Scenario('matching-level-host-only', _exts({'v13': DEBIAN13, 'v12': {'ID': 'debian', 'VERSION_ID': '12'},
                                                'bare': {'ID': 'debian'}}),
             MERGE_UNMERGE, os_release=LEVEL_HOST, check=expect({'v13'})),
    Scenario('matching-level-host-without-version', _exts({'bare': {'ID': 'debian'},
                                                           'lvl2': {'ID': 'debian', 'SYSEXT_LEVEL': '2'}}),
             MERGE_UNMERGE, os_release={'ID': 'debian', 'SYSEXT_LEVEL': '1'}, check=expect({'bare'})),
    Scenario('matching-version-differs', _exts({'v12': {'ID': 'debian', 'VERSION_ID': '12'},
                                                'bare': {'ID': 'debian'}, 'v13': DEBIAN13}),
             MERGE_UNMERGE, check=expect({'v13'})),
    Scenario('matching-rolling-host', _exts({'arch': {'ID': 'arch', 'VERSION_ID': 'whatever'},
                                             'bare': {'ID': 'arch'}, 'deb': {'ID': 'debian'}}),
             MERGE_UNMERGE, os_release={'ID': 'arch'}, check=expect({'arch', 'bare'})),
    Scenario('matching-architecture', _exts({'other': {'ID': '_any', 'ARCHITECTURE': OTHER},
                                             'native': {'ID': '_any', 'ARCHITECTURE': NATIVE},
                                             'anyarch': {'ID': '_any', 'ARCHITECTURE': '_any'},
                                             'empty': {'ID': '_any', 'ARCHITECTURE': ''}}),
             MERGE_UNMERGE, check=expect({'native', 'anyarch', 'empty'})),
    Scenario('matching-architecture-other-only', _exts({'other': {**DEBIAN13, 'ARCHITECTURE': OTHER}}),
             MERGE_UNMERGE, check=expect(set())),
    Scenario('matching-scope-system-root', _exts({'initrd': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'},
                                                  'both': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd system'},
                                                  'portable': {'ID': '_any', 'SYSEXT_SCOPE': 'portable'},
                                                  'empty': {'ID': '_any', 'SYSEXT_SCOPE': ''},
                                                  'noscope': {'ID': '_any'},
                                                  'confscope': {'ID': '_any', 'CONFEXT_SCOPE': 'initrd'}}),
             MERGE_UNMERGE, check=expect({'both', 'noscope', 'confscope'})),
    Scenario('matching-scope-initrd-root',
             setups(_initrd, setups(_exts({'initrd': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'},
                                           'noscope': {'ID': '_any'},
                                           'system': {'ID': '_any', 'SYSEXT_SCOPE': 'system portable'}}),
                                    setups(_exts({'extra': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}}, sdir='.extra/sysext'),
                                           _exts({'glob': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}},
                                                 sdir='.extra/global_sysext')))),
             MERGE_UNMERGE, check=expect({'initrd', 'extra', 'glob'})),
    Scenario('matching-scope-initrd-release-dir',
             setups(lambda r: os.mkdir(r.p('etc/initrd-release')),
                    _exts({'initrd': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}, 'noscope': {'ID': '_any'}})),
             MERGE_UNMERGE, check=expect({'initrd'})),
    Scenario('matching-scope-initrd-release-dangling',
             setups(lambda r: os.symlink('../usr/lib/initrd-release', r.p('etc/initrd-release')),
                    setups(_exts({'initrd': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}, 'noscope': {'ID': '_any'}}),
                           _exts({'extra': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}}, sdir='.extra/sysext'))),
             MERGE_UNMERGE, check=expect({'noscope'})),
    Scenario('matching-initrd-extra-raw',
             setups(_initrd, setups(lambda r: os.makedirs(r.p('.extra/sysext')),
                                    lambda r: r.add_raw('.extra/sysext', 'rr', release={'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}))),
             MERGE_UNMERGE, check=expect({'rr'})),
    Scenario('matching-incompatible-shadows-compatible',
             setups(_exts({'foo': {'ID': 'fedora', 'VERSION_ID': '13'}}, sdir='etc/extensions'),
                    _exts({'foo': DEBIAN13, 'bar': DEBIAN13})),
             MERGE_UNMERGE, check=expect({'bar'})),
    Scenario('matching-confext-level',
             _exts({'c7': {'ID': 'debian', 'CONFEXT_LEVEL': '7', 'VERSION_ID': '99'},
                    'c8': {'ID': 'debian', 'CONFEXT_LEVEL': '8', 'VERSION_ID': '13'},
                    'sl': {'ID': 'debian', 'SYSEXT_LEVEL': '1.0', 'VERSION_ID': '12'},
                    'v13': DEBIAN13}, sdir=CONF, cls='confext'),
             CONF_MERGE_UNMERGE, os_release=LEVEL_HOST, check=expect({'c7', 'v13'}, cls='confext')),
    Scenario('matching-confext-architecture-scope',
             _exts({'other': {'ID': '_any', 'ARCHITECTURE': OTHER},
                    'initrd': {'ID': '_any', 'CONFEXT_SCOPE': 'initrd'},
                    'sysscope': {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'},
                    'native': {'ID': '_any', 'ARCHITECTURE': NATIVE}}, sdir=CONF, cls='confext'),
             CONF_MERGE_UNMERGE, check=expect({'sysscope', 'native'}, cls='confext')),
    Scenario('matching-confext-initrd-root',
             setups(_initrd, setups(_exts({'usrlib': {'ID': '_any', 'CONFEXT_SCOPE': 'initrd'}}, sdir='usr/lib/confexts',
                                          cls='confext'),
                                    setups(_exts({'extra': {'ID': '_any', 'CONFEXT_SCOPE': 'initrd'}}, sdir='.extra/confext',
                                                 cls='confext'),
                                           _exts({'noscope': {'ID': '_any'}, 'vl': {'ID': '_any', 'CONFEXT_SCOPE': 'initrd'}},
                                                 sdir=CONF, cls='confext')))),
             CONF_MERGE_UNMERGE, check=expect({'extra', 'vl'}, cls='confext')),
    Scenario('matching-host-opt-missing', _opt_missing, MERGE_UNMERGE, check=expect({'foo'})),
    Scenario('matching-host-usr-empty', _usr_empty, MERGE_UNMERGE, check=expect({'foo'})),
    Scenario('matching-host-usr-missing', _usr_missing, MERGE_UNMERGE, check=expect({'foo'})),
    Scenario('matching-host-etc-missing', _etc_missing, CONF_MERGE_UNMERGE, check=expect({'site'}, cls='confext')),
    Scenario('matching-host-os-release-in-etc-wins',
             setups(_file('etc/os-release', 'ID=debian\nVERSION_ID=14\n'),
                    _exts({'v14': {'ID': 'debian', 'VERSION_ID': '14'}, 'v13': DEBIAN13})),
             MERGE_UNMERGE, check=expect({'v14'})),
    Scenario('matching-host-without-id', _exts({'any': {'ID': '_any'}}), MERGE_UNMERGE,
             os_release={'VERSION_ID': '13'}, check=_host_error),
    Scenario('matching-host-without-id-nothing-found', lambda r: None, MERGE_UNMERGE,
             os_release={'VERSION_ID': '13'}, check=_host_error),
    Scenario('matching-host-without-os-release', setups(_no_os_release, _exts({'any': {'ID': '_any'}})),
             MERGE_UNMERGE, check=_host_error),
    Scenario('matching-refresh-host-upgraded',
             setups(_release_in_etc_only, _exts({'v13': DEBIAN13, 'v14': {'ID': 'debian', 'VERSION_ID': '14'}})),
             [Step('merge'), Step('hook', hook=_host_version('14')), Step('refresh'),
              Step('hook', hook=_host_version('15')), Step('refresh'), Step('unmerge')],
             check=expect({'v14'}, step=2)),
    Scenario('matching-unmerge-after-os-release-removed',
             setups(_release_in_etc_only, _exts({'v13': DEBIAN13})),
             [Step('merge'), Step('hook', hook=_no_os_release), Step('refresh'), Step('unmerge')],
             check=expect(set(), step=3)),
]
