# -*- coding: utf-8 -*-
"""Run one interop case inside a private mount namespace and print the outcome as JSON.

    unshare -m --propagation private python3 interop_driver.py 262 touch-raw

For systemd 262 (sid root, chrooted): set the case up, merge with systemd, apply the
case's change, ask our engine whether a refresh is needed, then run
``systemd-sysext refresh`` (or ``systemd-confext``) and record whether it skipped. The two
answers must agree; after systemd's refresh our engine must say "nothing to do".

For systemd 252 (this machine's own, with --root= on a tmpfs root): 252 records no origin,
so every merged state needs a refresh; our facts must read its metadata correctly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.nsroot import FakeRoot, SidRoot, emit  # noqa: E402

SKIP_MSG = 'Skipping extension refresh because no change was found'


def base_sysext(r):
    r.add_dir('var/lib/extensions', 'foo')
    r.add_raw('var/lib/extensions', 'sqx', fs='squashfs',
              files={'usr/share/sqx/hello': 'sqx\n', 'opt/sqx/data': 'opt\n'})
    r.add_raw('var/lib/extensions', 'ero', fs='erofs')


def base_confext(r):
    r.add_dir('run/confexts', 'cc', cls='confext')
    r.add_raw('var/lib/confexts', 'cr', cls='confext', fs='squashfs')


def _replace_raw(r):
    time.sleep(0.01)
    r.add_raw('var/lib/extensions', 'sqx', fs='squashfs', files={'usr/share/sqx/hello': 'sqx v2\n'})


def _touch(path):
    now = time.time() + 5
    os.utime(path, (now, now))


def _rename(r):
    os.rename(r.p('var/lib/extensions/foo'), r.p('var/lib/extensions/foo2'))
    os.rename(r.p('var/lib/extensions/foo2/usr/lib/extension-release.d/extension-release.foo'),
              r.p('var/lib/extensions/foo2/usr/lib/extension-release.d/extension-release.foo2'))


def _store_symlink_setup(r):
    # versions kept outside the search directories, selected by a symlink (sysupdate style)
    for v in ('1', '2'):
        r.make_tree(r.p('tmp/store/bar-%s' % v), 'bar', files={'usr/share/bar/v': v + '\n'})
    os.symlink('/tmp/store/bar-1', r.p('run/extensions/bar'))


def _retarget(r):
    os.unlink(r.p('run/extensions/bar'))
    os.symlink('/tmp/store/bar-2', r.p('run/extensions/bar'))


def _relink_same(r):
    os.unlink(r.p('run/extensions/bar'))
    os.symlink('/tmp/store/bar-1', r.p('run/extensions/bar'))


def _incompatible(r):
    with open(r.p('var/lib/extensions/foo/usr/lib/extension-release.d/extension-release.foo'), 'w') as f:
        f.write('ID=fedora\nVERSION_ID=40\n')


def _add_renamed_raw(r, fs):
    """An image renamed after it was built: its release file is extension-release.orig,
    marked user.extension-release.strict=false, so systemd accepts it under its new name."""
    tree = r.p('tmp/renamed-' + fs)
    r.make_tree(tree, 'orig', files={'usr/share/orig/hello': 'orig\n'})
    os.setxattr(os.path.join(tree, 'usr/lib/extension-release.d/extension-release.orig'),
                'user.extension-release.strict', b'false')
    out = r.p('var/lib/extensions/renamed-%s.raw' % fs)
    if fs == 'squashfs':
        subprocess.run(['mksquashfs', tree, out, '-quiet', '-noappend', '-all-root'], check=True, capture_output=True)
    else:
        subprocess.run(['mkfs.erofs', '--quiet', '--all-root', out, tree], check=True, capture_output=True)


def _touch_inside_dir(r):
    _touch(r.p('var/lib/extensions/foo/usr/share/foo/hello'))


# name -> (classes, setup, change)
CASES = {
    'unchanged': (('sysext',), base_sysext, lambda r: None),
    'touch-raw': (('sysext',), base_sysext, lambda r: _touch(r.p('var/lib/extensions/sqx.raw'))),
    'touch-erofs': (('sysext',), base_sysext, lambda r: _touch(r.p('var/lib/extensions/ero.raw'))),
    'replace-raw': (('sysext',), base_sysext, _replace_raw),
    'add': (('sysext',), base_sysext, lambda r: r.add_dir('var/lib/extensions', 'newone')),
    'add-hidden': (('sysext',), base_sysext, lambda r: r.add_dir('var/lib/extensions', '.hid')),
    'remove': (('sysext',), base_sysext, lambda r: os.unlink(r.p('var/lib/extensions/ero.raw'))),
    'remove-last-opt': (('sysext',), base_sysext, lambda r: os.unlink(r.p('var/lib/extensions/sqx.raw'))),
    'rename': (('sysext',), base_sysext, _rename),
    'retarget-symlink': (('sysext',), _store_symlink_setup, _retarget),
    'relink-same-target': (('sysext',), _store_symlink_setup, _relink_same),
    'incompatible': (('sysext',), base_sysext, _incompatible),
    'touch-inside-dir': (('sysext',), base_sysext, _touch_inside_dir),
    'shadow-new-earlier': (('sysext',), base_sysext, lambda r: r.add_dir('etc/extensions', 'foo')),
    'nothing-merged-add': (('sysext',), lambda r: None, lambda r: r.add_dir('var/lib/extensions', 'foo')),
    'add-renamed-squashfs': (('sysext',), base_sysext, lambda r: _add_renamed_raw(r, 'squashfs')),
    'add-renamed-erofs': (('sysext',), base_sysext, lambda r: _add_renamed_raw(r, 'erofs')),
    'confext-unchanged': (('confext',), base_confext, lambda r: None),
    'confext-touch': (('confext',), base_confext, lambda r: _touch(r.p('var/lib/confexts/cr.raw'))),
    'confext-add': (('confext',), base_confext,
                    lambda r: r.add_dir('var/lib/confexts', 'c2', cls='confext')),
    'confext-remove': (('confext',), base_confext,
                       lambda r: __import__('shutil').rmtree(r.p('run/confexts/cc'))),
}

TOOL = {'sysext': 'systemd-sysext', 'confext': 'systemd-confext'}


def run_262(case: str) -> dict:
    classes, setup, change = CASES[case]
    r = SidRoot()
    setup(r)
    for cls in classes:
        r.systemd(TOOL[cls], 'merge', '--no-reload')
    before = r.facts(classes)
    change(r)
    ours = r.facts(classes)
    out = {'case': case, 'classes': list(classes), 'ours_before_change': before['needs_refresh'],
           'ours': ours['needs_refresh'], 'reasons': {c: ours['classes'][c]['reasons'] for c in classes},
           'systemd': {}}
    skipped_all = True
    for cls in classes:
        res = r.systemd(TOOL[cls], 'refresh', '--no-reload')
        skipped = SKIP_MSG in res.stderr or SKIP_MSG in res.stdout
        out['systemd'][cls] = {'skipped': skipped, 'output': (res.stderr + res.stdout).strip()}
        skipped_all = skipped_all and skipped
    out['systemd_refreshed'] = not skipped_all
    after = r.facts(classes)
    out['ours_after_refresh'] = after['needs_refresh']
    out['after_reasons'] = {c: after['classes'][c]['reasons'] for c in classes}
    out['hierarchies'] = {h: {k: v for k, v in d.items() if k in ('merged_by', 'extensions')}
                          for h, d in after['hierarchies'].items()}
    status = r.systemd(TOOL[classes[0]], 'status', '--json=short')
    out['systemd_status'] = status.stdout.strip()
    for cls in classes:
        r.systemd(TOOL[cls], 'unmerge', '--no-reload')
    return out


def run_252(case: str) -> dict:
    r = FakeRoot()
    if case == 'merged-dir':
        r.add_dir('var/lib/extensions', 'foo')
        r.add_dir('var/lib/extensions', 'bar')
    elif case == 'merged-raw':
        r.add_raw('var/lib/extensions', 'sq', release={'ID': 'debian', 'VERSION_ID': '12'})
    elif case == 'none':
        pass
    else:
        raise SystemExit('unknown 252 case %s' % case)
    r.host_systemd('merge')
    facts = r.facts(('sysext',))
    usr = facts['hierarchies']['/usr']
    before_id = r.mount_id('/usr')
    res = r.host_systemd('refresh')
    after_id = r.mount_id('/usr')
    visible = sorted(os.listdir(r.p('usr/share')))
    out = {'case': case, 'ours': facts['needs_refresh'], 'merged_by': usr['merged_by'],
           'extensions': usr['extensions'], 'origins': usr['origins'],
           'reasons': facts['classes']['sysext']['reasons'],
           'systemd_refreshed': before_id is not None and before_id != after_id,
           'refresh_output': (res.stderr + res.stdout).strip(), 'visible': visible}
    r.host_systemd('unmerge')
    out['after_unmerge'] = r.facts(('sysext',))['hierarchies']['/usr']['merged_by']
    return out


if __name__ == '__main__':
    version, case = sys.argv[1], sys.argv[2]
    emit(run_262(case) if version == '262' else run_252(case))
