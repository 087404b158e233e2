# -*- coding: utf-8 -*-
"""Scenarios for sysext_refresh, each run inside a private mount namespace:

    unshare -m --propagation private python3 refresh_driver.py SCENARIO

The module is driven through real ansible-playbook (tests/lib/ansible_run.py) against a
scratch root; what a user would see (files, mount IDs, systemd's own view) is recorded and
printed as one JSON line for the pytest side to judge.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.ansible_run import run_tasks  # noqa: E402
from lib.nsroot import FakeRoot, SidRoot, emit, engine, scratch_identity  # noqa: E402

SKIP_MSG = 'Skipping extension refresh because no change was found'


def refresh(r, **args):
    args.setdefault('root', r.path)
    return run_tasks([{'tucked.sysext.sysext_refresh': args}])[0]


def brief(res):
    return {k: res.get(k) for k in ('changed', 'failed', 'msg', 'atomic', 'reloaded', 'skipped_reason', 'hierarchies',
                                    'classes', 'reasons', 'partial')}


def loops(r) -> str:
    """The loop devices backed by a file of this scratch root (other loop devices of this shared
    machine are not ours to count), one per line."""
    out = subprocess.run(['losetup', '-a'], capture_output=True, text=True, check=False).stdout
    return '\n'.join(ln for ln in out.splitlines() if r.path in ln)


def read(r, rel):
    try:
        with open(r.p(rel)) as f:
            return f.read().strip()
    except OSError:
        return None


def lifecycle():
    r = SidRoot()
    r.add_dir('var/lib/extensions', 'foo')
    r.add_raw('var/lib/extensions', 'sqx', files={'usr/share/sqx/hello': 'sqx 1\n', 'opt/sqx/data': 'opt\n'})
    r.add_raw('var/lib/extensions', 'ero', fs='erofs')
    r.add_dir('run/confexts', 'site', cls='confext')
    steps = {}
    base_usr = r.mount_id('/usr')
    steps['merge'] = brief(refresh(r))
    steps['merge']['usr_id'] = r.mount_id('/usr')
    steps['merge']['files'] = [read(r, 'usr/share/foo/hello'), read(r, 'usr/share/sqx/hello'),
                               read(r, 'opt/sqx/data'), read(r, 'usr/share/ero/hello'), read(r, 'etc/site.conf')]
    steps['again'] = brief(refresh(r))
    steps['again']['usr_id'] = r.mount_id('/usr')
    r.add_dir('var/lib/extensions', 'newone')
    check = run_tasks([{'tucked.sysext.sysext_refresh': {'root': r.path}}], check_mode=True, diff=True)[0]
    steps['check'] = brief(check)
    steps['check']['usr_id'] = r.mount_id('/usr')
    steps['check']['diff_shown'] = '+newone' in check['_shown']
    steps['add'] = brief(refresh(r))
    steps['add']['usr_id'] = r.mount_id('/usr')
    steps['add']['files'] = [read(r, 'usr/share/newone/hello')]
    time.sleep(0.01)
    r.add_raw('var/lib/extensions', 'sqx', files={'usr/share/sqx/hello': 'sqx 2\n', 'opt/sqx/data': 'opt 2\n'})
    busy = open(r.p('usr/share/sqx/hello'))     # a reader keeps the old overlay busy
    steps['replace'] = brief(refresh(r))
    steps['replace']['files'] = [read(r, 'usr/share/sqx/hello'), read(r, 'opt/sqx/data')]
    steps['replace']['busy_reader_sees'] = busy.read().strip()   # the old file, still readable
    busy.close()
    os.unlink(r.p('var/lib/extensions/ero.raw'))
    steps['remove'] = brief(refresh(r))
    steps['remove']['files'] = [read(r, 'usr/share/ero/hello')]
    steps['status_262'] = r.systemd('systemd-sysext', 'status', '--json=short').stdout.strip()
    steps['refresh_262'] = r.systemd('systemd-sysext', 'refresh', '--no-reload').stderr.strip()
    steps['confext_refresh_262'] = r.systemd('systemd-confext', 'refresh', '--no-reload').stderr.strip()
    steps['unmerge'] = brief(refresh(r, state='unmerged'))
    steps['unmerge']['usr_id'] = r.mount_id('/usr')
    steps['unmerge']['files'] = [read(r, 'usr/share/foo/hello'), read(r, 'etc/site.conf')]
    steps['unmerge_again'] = brief(refresh(r, state='unmerged'))
    return {'base_usr_id': base_usr, 'steps': steps, 'loops': loops(r)}


def interop_262():
    """systemd 262 merges, we skip; we refresh, systemd skips and unmerges ours."""
    r = SidRoot()
    r.add_dir('var/lib/extensions', 'foo')
    r.add_raw('var/lib/extensions', 'sqx')
    r.add_dir('run/confexts', 'site', cls='confext')
    r.systemd('systemd-sysext', 'merge', '--no-reload')
    r.systemd('systemd-confext', 'merge', '--no-reload')
    out = {'id_systemd': r.mount_id('/usr')}
    out['ours_on_systemds'] = brief(refresh(r))
    out['id_after_skip'] = r.mount_id('/usr')
    os.utime(r.p('var/lib/extensions/sqx.raw'), (time.time() + 5, time.time() + 5))
    out['ours_refresh'] = brief(refresh(r))
    out['id_ours'] = r.mount_id('/usr')
    out['facts'] = {h: d['merged_by'] for h, d in r.facts()['hierarchies'].items()}
    out['systemd_refresh'] = r.systemd('systemd-sysext', 'refresh', '--no-reload').stderr.strip()
    out['systemd_status'] = r.systemd('systemd-sysext', 'status', '--json=short').stdout.strip()
    out['systemd_unmerge'] = r.systemd('systemd-sysext', 'unmerge', '--no-reload').stderr.strip()
    out['systemd_confext_unmerge'] = r.systemd('systemd-confext', 'unmerge', '--no-reload').stderr.strip()
    out['after'] = {h: d['merged_by'] for h, d in r.facts()['hierarchies'].items()}
    out['scratch'] = scratch_identity(r)
    return out


def interop_252():
    """This machine's systemd-sysext 252 (no origin) and us, both ways; backend=systemd skips."""
    r = FakeRoot()
    r.add_dir('var/lib/extensions', 'foo', release={'ID': 'debian', 'VERSION_ID': '12'})
    r.add_raw('var/lib/extensions', 'sq')
    out = {}
    r.host_systemd('merge')
    out['ours_on_252'] = brief(refresh(r, classes=['sysext']))
    out['ours_again'] = brief(refresh(r, classes=['sysext']))
    out['merged_by'] = r.facts(('sysext',))['hierarchies']['/usr']['merged_by']
    res = r.host_systemd('unmerge')
    out['unmerge_252'] = (res.stderr + res.stdout).strip()
    out['after_unmerge'] = r.facts(('sysext',))['hierarchies']['/usr']['merged_by']
    # backend=systemd: 252 mounts, our plan decides, and our record gives 252 the skip
    out['sys_merge'] = brief(refresh(r, classes=['sysext'], backend='systemd'))
    out['sys_merge_by'] = r.facts(('sysext',))['hierarchies']['/usr']['merged_by']
    out['sys_again'] = brief(refresh(r, classes=['sysext'], backend='systemd'))
    out['origin_source'] = r.facts(('sysext',))['hierarchies']['/usr']['origin_source']
    os.utime(r.p('var/lib/extensions/sq.raw'), (time.time() + 5, time.time() + 5))
    out['sys_change'] = brief(refresh(r, classes=['sysext'], backend='systemd'))
    out['sys_unmerge'] = brief(refresh(r, classes=['sysext'], backend='systemd', state='unmerged'))
    out['visible'] = sorted(os.listdir(r.p('usr/share')))
    return out


def _reader(path, stop, counts):
    while not stop.is_set():
        counts[1] += 1
        try:
            os.stat(path)
        except FileNotFoundError:
            counts[0] += 1


def probe(r, swap, n, path):
    """Misses of a reader stat()ing ``path`` while ``swap`` runs ``n`` times."""
    stop, counts = threading.Event(), [0, 0]
    t = threading.Thread(target=_reader, args=(path, stop, counts))
    t.start()
    t0 = time.perf_counter()
    for _i in range(n):
        swap()
    elapsed = time.perf_counter() - t0
    stop.set()
    t.join()
    return {'refreshes': n, 'misses': counts[0], 'reads': counts[1], 'seconds': round(elapsed, 3)}


def atomicity(n=100, systemd=True, extensions=10):
    """A file shipped by every extension must never vanish during ``n`` refreshes."""
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh as api
    r = SidRoot()
    for i in range(extensions):
        r.add_dir('var/lib/extensions', 'x%d' % i, files={'usr/share/common/file': 'x%d\n' % i})
    path = r.p('usr/share/common/file')
    opts = api.Options(root=r.path, classes=('sysext',), always_refresh=True, reload=False)
    api.run(opts)
    out = {'ours': probe(r, lambda: api.run(opts), n, path)}
    out['ours']['atomic'] = api.run(opts).atomic
    api.run(api.Options(root=r.path, classes=('sysext',), state='unmerged'))
    if systemd:
        r.systemd('systemd-sysext', 'merge', '--no-reload')
        out['systemd_262'] = probe(
            r, lambda: r.systemd('systemd-sysext', 'refresh', '--always-refresh=yes', '--no-reload'), n, path)
        r.systemd('systemd-sysext', 'unmerge', '--no-reload')
    out['loops'] = loops(r)
    return out


def faults():
    """Bad input between plan and apply: clear error, previous state intact."""
    from ansible_collections.tucked.sysext.plugins.module_utils import apply as apply_mod
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh as api
    r = SidRoot()
    r.add_dir('var/lib/extensions', 'foo')
    r.add_raw('var/lib/extensions', 'sqx')
    first = brief(refresh(r, classes=['sysext']))
    good_id = r.mount_id('/usr')
    out = {'first': first}

    def state():
        return {'usr_id': r.mount_id('/usr'), 'foo': read(r, 'usr/share/foo/hello'),
                'sqx': read(r, 'usr/share/sqx/hello')}

    out['good'] = state()
    snap_opts = api.Options(root=r.path, classes=('sysext',), reload=False)
    orig_build = apply_mod.build

    def between_plan_and_build(disturb):
        """Run a refresh that calls ``disturb`` after planning, right before the build."""
        def build(req):
            disturb()
            return orig_build(req)
        apply_mod.build = build
        try:
            api.run(snap_opts)
            res = {'error': None}
        except apply_mod.ApplyError as e:
            res = {'error': str(e)}
        finally:
            apply_mod.build = orig_build
        res.update(state())
        return res

    # 1. a squashfs that fails to mount: valid when planned, its tables overwritten with
    # garbage before the build (mtime restored, so the origin still matches: a disk error)
    r.add_raw('var/lib/extensions', 'bad')
    bad = r.p('var/lib/extensions/bad.raw')

    def corrupt():
        st = os.stat(bad)
        with open(bad, 'r+b') as f:
            f.seek(96)
            f.write(os.urandom(st.st_size - 96))
        os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns))
    out['corrupt'] = between_plan_and_build(corrupt)
    os.unlink(bad)

    # 2. an image deleted between plan and apply
    r.add_dir('var/lib/extensions', 'gone')
    out['deleted'] = between_plan_and_build(lambda: shutil.rmtree(r.p('var/lib/extensions/gone')))

    # 3. an image replaced between plan and apply
    os.utime(r.p('var/lib/extensions/sqx.raw'), (time.time() + 5, time.time() + 5))

    def replace():
        time.sleep(0.01)
        r.add_raw('var/lib/extensions', 'sqx', files={'usr/share/sqx/hello': 'swapped\n'})
    out['replaced'] = between_plan_and_build(replace)

    # 4. a foreign overlay on /opt: refused, nothing touched
    os.makedirs(r.p('tmp/fl/lower'), exist_ok=True)
    os.system('mount -t overlay foreign -o lowerdir=%s:%s %s' % (r.p('tmp/fl/lower'), r.p('opt'), r.p('opt')))
    r.add_raw('var/lib/extensions', 'optx', files={'opt/optx/f': 'x\n'})
    res = refresh(r, classes=['sysext'])
    out['foreign'] = brief(res)
    out['foreign'].update(state())
    os.system('umount %s' % r.p('opt'))
    os.unlink(r.p('var/lib/extensions/optx.raw'))

    # 5. the legacy mount(2) path (kernels without lowerdir+) and atomic=never still work
    api_opts = api.Options(root=r.path, classes=('sysext',), reload=False, always_refresh=True, legacy_mount=True)
    out['legacy'] = {'atomic': api.run(api_opts).atomic}
    out['legacy'].update(state())
    with open('/proc/self/mountinfo') as f:   # mount(2) shows lowerdir=a:b, fsconfig lowerdir+=a,lowerdir+=b
        usr_line = [ln for ln in f if ln.split(' ')[4] == r.p('usr')][-1]
    out['legacy']['option_string'] = 'lowerdir=' in usr_line and 'lowerdir+=' not in usr_line
    out['never'] = brief(refresh(r, classes=['sysext'], always_refresh=True, atomic='never'))
    out['never'].update(state())
    out['good_id'] = good_id
    api.run(api.Options(root=r.path, classes=('sysext',), state='unmerged'))
    out['loops'] = loops(r)
    out['scratch'] = scratch_identity(r)
    return out


def mutable_modes():
    """Every mutable mode: writable or not, data kept across refreshes (or dropped for the
    ephemeral modes), systemd 262 skips on our merge and unmerges it, modes of hierarchies
    unchanged; then the mutable directory faults."""
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh as api
    r = SidRoot(writable_var_lib=True)
    r.add_dir('var/lib/extensions', 'foo')
    r.add_dir('var/lib/confexts', 'cc', cls='confext')
    mode_of = {h: oct(os.stat(r.p(h)).st_mode & 0o7777) for h in ('usr', 'opt', 'etc')}
    out = {'modes': {}, 'hier_modes_before': mode_of}
    for mode in ('yes', 'auto', 'import', 'ephemeral', 'ephemeral-import', 'no'):
        res = {}
        res['merge'] = brief(refresh(r, mutable=mode, reload=False))
        res['hier_modes_merged'] = {h: oct(os.stat(r.p(h)).st_mode & 0o7777) for h in ('usr', 'opt', 'etc')}
        w = subprocess.run(['chroot', r.path, 'sh', '-c', 'echo %s > /usr/share/written-%s' % (mode, mode)],
                           capture_output=True, text=True, check=False)
        res['writable'] = w.returncode == 0
        res['refresh'] = brief(refresh(r, mutable=mode, always_refresh=True, reload=False))
        res['kept'] = read(r, 'usr/share/written-%s' % mode)
        res['systemd_refresh'] = r.systemd('systemd-sysext', 'refresh', '--no-reload', '--mutable=' + mode,
                                           check=False).stderr.strip()
        res['again'] = brief(refresh(r, mutable=mode, reload=False))
        res['unmerge'] = brief(refresh(r, mutable=mode, state='unmerged', reload=False))
        res['in_upper'] = read(r, 'var/lib/extensions.mutable/usr/share/written-%s' % mode)
        res['hier_modes_after'] = {h: oct(os.stat(r.p(h)).st_mode & 0o7777) for h in ('usr', 'opt', 'etc')}
        res['leftover_workdirs'] = sorted(n for n in os.listdir(r.p('var/lib/extensions.mutable'))
                                          if 'workdir' in n) if os.path.isdir(r.p('var/lib/extensions.mutable')) else []
        out['modes'][mode] = res
    # faults: wrong mode on the mutable directory; mutable directory on a read-only filesystem
    refresh(r, classes=['sysext'], reload=False)
    good = r.mount_id('/usr')
    os.chmod(r.p('var/lib/extensions.mutable/usr'), 0o700)
    out['wrong_mode'] = brief(refresh(r, classes=['sysext'], mutable='yes', reload=False))
    out['wrong_mode']['usr_id_kept'] = r.mount_id('/usr') == good
    os.chmod(r.p('var/lib/extensions.mutable/usr'), 0o755)
    shutil.rmtree(r.p('var/lib/extensions.mutable'))
    os.mkdir(r.p('var/lib/extensions.mutable'))
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'ro', 'tmpfs', r.p('var/lib/extensions.mutable')], check=True)
    out['read_only'] = brief(refresh(r, classes=['sysext'], mutable='yes', reload=False))
    out['read_only']['usr_id_kept'] = r.mount_id('/usr') == good
    out['read_only']['foo'] = read(r, 'usr/share/foo/hello')
    subprocess.run(['umount', r.p('var/lib/extensions.mutable')], check=True)
    # the filesystem of the mutable directory is full (no inode left for the work directory)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k,nr_inodes=4', 'tmpfs', r.p('var/lib/extensions.mutable')],
                   check=True)
    os.mkdir(r.p('var/lib/extensions.mutable/usr'), 0o755)
    os.mkdir(r.p('var/lib/extensions.mutable/opt'), 0o755)
    out['full'] = brief(refresh(r, classes=['sysext'], mutable='yes', reload=False))
    out['full']['usr_id_kept'] = r.mount_id('/usr') == good
    out['full']['foo'] = read(r, 'usr/share/foo/hello')
    api.run(api.Options(root=r.path, state='unmerged'))
    out['loops'] = loops(r)
    return out


SCENARIOS = {'mutable': mutable_modes, 'lifecycle': lifecycle, 'interop-262': interop_262, 'interop-252': interop_252,
             'atomicity': atomicity, 'faults': faults}

if __name__ == '__main__':
    engine()  # puts the collection on sys.path
    emit(SCENARIOS[sys.argv[1]]())
