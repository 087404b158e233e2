# -*- coding: utf-8 -*-
"""Hostile and unusual roots (issue 15), each case inside a private mount namespace:

    unshare -m --propagation private python3 hostile_driver.py CASE

The engine is called directly (refresh.run / engine.gather, no ansible-playbook) on a scratch
root; every call runs under an alarm, so a call that blocks shows as ``{'hung': True}``
instead of hanging the test. What was seen is printed as one JSON line.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.nsroot import FakeRoot, emit, engine, make_scratch, sh  # noqa: E402

ALARM = 15


class Hung(Exception):
    pass


def _alarm(_sig, _frame):
    raise Hung()


def call(fn, *args, **kw) -> dict:
    """Run ``fn``; {'ok': True, 'value': ...} or {'ok': False, 'error': message} or {'hung': True}."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(ALARM)
    try:
        return {'ok': True, 'value': fn(*args, **kw)}
    except Hung:
        return {'ok': False, 'hung': True}
    except Exception as e:  # pylint: disable=broad-except
        return {'ok': False, 'error': '%s: %s' % (type(e).__name__, e), 'partial': getattr(e, 'partial', None)}
    finally:
        signal.alarm(0)


def api():
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh
    return refresh


def run(r, **kw) -> dict:
    kw.setdefault('classes', ('sysext',))
    kw.setdefault('reload', False)
    res = call(lambda: api().run(api().Options(root=r.path, **kw)))
    if res.get('ok'):
        out = res.pop('value')
        res.update(changed=out.changed, warnings=out.warnings, hierarchies=out.hierarchies)
    return res


def facts(r, classes=('sysext',)) -> dict:
    res = call(r.facts, classes)
    if res.get('ok'):
        f = res.pop('value')
        res['hierarchies'] = {h: {k: d[k] for k in ('path', 'merged_by', 'extensions', 'problems')}
                              for h, d in f['hierarchies'].items()}
        res['images'] = {i['name']: {k: i[k] for k in ('type', 'compatible', 'reason', 'blocks_merge')}
                         for i in f['images']}
        res['warnings'] = f['classes']
    return res


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as e:
        return 'error: %s' % e.strerror


def mounts_at(path) -> list:
    with open('/proc/self/mountinfo') as f:
        return [ln.split(' - ')[1].split()[0] for ln in f if ln.split(' ')[4] == path]


def listing(top) -> list:
    out = []
    for dirpath, dirs, files in os.walk(top):
        out += [os.path.relpath(os.path.join(dirpath, n), top) for n in dirs + files]
    return sorted(out)


# ------------------------------------------------------------------ item 2
def run_symlink():
    """ROOT/run -> an absolute path outside the root: nothing may be written there."""
    r = FakeRoot()
    outside = os.path.join(make_scratch(), 'outside')
    os.mkdir(outside)
    shutil.rmtree(r.p('run'))
    os.symlink(outside, r.p('run'))
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n', 'usr/share/foo/sub/k': ''})
    r.add_raw('var/lib/extensions', 'sq', files={'usr/share/sq/hello': 'sq\n'})
    out = {'merge': run(r)}
    out['seen'] = [read(r.p('usr/share/foo/hello')), read(r.p('usr/share/sq/hello'))]
    # a submount only the overlay has: unmerging holds it under ROOT/run/tucked-sysext/submounts
    sh('mount', '-t', 'tmpfs', 'tmpfs', r.p('usr/share/foo/sub'))
    os.utime(r.p('var/lib/extensions/sq.raw'), (1, 1))
    out['refresh'] = run(r, atomic='never')
    out['unmerge'] = run(r, state='unmerged')
    out['outside'] = listing(outside)
    out['inside'] = listing(r.p(outside))
    return out


# ------------------------------------------------------------------ item 1
def opt_symlink(target):
    def case():
        r = FakeRoot()
        shutil.rmtree(r.p('opt'))
        os.makedirs(r.p('var/opt'))
        with open(r.p('var/opt/base-marker'), 'w') as f:
            f.write('base\n')
        os.symlink(target, r.p('opt'))
        r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n', 'opt/foo/data': 'opt\n'})
        # (ROOT/opt itself is not read: an absolute link leads to this machine's /var/opt from here)
        out = {'merge': run(r), 'seen': [read(r.p('usr/share/foo/hello')), read(r.p('var/opt/foo/data'))]}
        out['mounts'] = {'var/opt': mounts_at(r.p('var/opt')), 'opt': mounts_at(r.p('opt'))}
        out['facts'] = facts(r)
        r.add_dir('var/lib/extensions', 'bar', files={'opt/bar/data': 'bar\n'})
        out['refresh'] = run(r)
        out['seen_after'] = read(r.p('var/opt/bar/data'))
        out['unmerge'] = run(r, state='unmerged')
        out['after'] = {'var/opt': mounts_at(r.p('var/opt')), 'usr': mounts_at(r.p('usr'))}
        return out
    return case


# ------------------------------------------------------------------ items 3 and 7 (offline copy)
def _fake_meta(r, dev_text=None, fifo=False):
    m = r.p('usr/.systemd-sysext')
    os.makedirs(m)
    if fifo:
        os.mkfifo(os.path.join(m, 'dev'))
    else:
        st = os.stat(r.p('usr'))
        with open(os.path.join(m, 'dev'), 'w') as f:
            f.write(dev_text or '%d:%d\n' % (os.major(st.st_dev), os.minor(st.st_dev)))
    with open(os.path.join(m, 'extensions'), 'w') as f:
        f.write('old\n')


def fifo_dev():
    """A FIFO at ROOT/usr/.systemd-sysext/dev of a root that is not merged."""
    r = FakeRoot()
    _fake_meta(r, fifo=True)
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n'})
    out = {'facts': facts(r), 'unmerge': run(r, state='unmerged'), 'merge': run(r)}
    out['seen'] = read(r.p('usr/share/foo/hello'))
    out['unmerge_after'] = run(r, state='unmerged')
    return out


def fifo_os_release():
    """A FIFO etc/os-release: unmerge (which does not need it) works, merge says what is wrong."""
    r = FakeRoot()
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n'})
    out = {'merge': run(r)}
    os.unlink(r.p('etc/os-release'))
    os.mkfifo(r.p('etc/os-release'))
    out['refresh'] = run(r, always_refresh=True)
    out['facts'] = facts(r)
    out['unmerge'] = run(r, state='unmerged')
    out['mounts'] = mounts_at(r.p('usr'))
    return out


def offline_copy():
    """An unmounted ROOT/usr whose .systemd-sysext/dev is its own st_dev (a copy of a merged tree)."""
    r = FakeRoot()
    _fake_meta(r)
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n'})
    out = {'facts': facts(r), 'merge': run(r)}
    out['seen'] = read(r.p('usr/share/foo/hello'))
    out['mounts'] = mounts_at(r.p('usr'))
    out['unmerge'] = run(r, state='unmerged')
    out['after'] = mounts_at(r.p('usr'))
    return out


# ------------------------------------------------------------------ item 4
def block_device():
    """A loop device of a squashfs image, linked into a search directory (its node in ROOT/dev)."""
    r = FakeRoot()
    img = r.add_raw('tmp', 'blk', files={'usr/share/blk/hello': 'blk\n'})
    loop = sh('losetup', '--find', '--show', '--read-only', img).stdout.strip()
    try:
        os.makedirs(r.p('dev'), exist_ok=True)
        st = os.stat(loop)
        os.mknod(r.p('dev/blk0'), 0o600 | 0o060000, st.st_rdev)
        os.symlink('/dev/blk0', r.p('run/extensions/blk.raw'))
        out = {'facts': facts(r), 'merge': run(r)}
        out['seen'] = read(r.p('usr/share/blk/hello'))
        out['again'] = run(r)
        out['unmerge'] = run(r, state='unmerged')
        return out
    finally:
        subprocess.run(['losetup', '-d', loop], check=False)


# ------------------------------------------------------------------ item 9
def backend_exit_zero():
    """This machine's systemd-sysext 252 exits 0 without merging when /run is not a mount point
    ("Failed to remount /run/ MS_SLAVE")."""
    r = FakeRoot()
    sh('umount', '/run')       # FakeRoot's own /run tmpfs (this namespace only)
    r.add_dir('var/lib/extensions', 'foo', release={'ID': 'debian', 'VERSION_ID': '12'})
    out = {'merge': run(r, backend='systemd'), 'mounts': mounts_at(r.p('usr'))}
    return out


# ------------------------------------------------------------------ no blocking open (done-when)
def record_fifo():
    """backend=systemd with this machine's systemd-sysext 252 (< 260: we keep a record of the
    origin): a FIFO at the record's temporary name is replaced, never opened; a directory there
    is a message naming it, after the merge (partial)."""
    r = FakeRoot()
    r.add_dir('var/lib/extensions', 'foo', release={'ID': 'debian', 'VERSION_ID': '12'})
    tmp = r.p('run/tucked-sysext/record-sysext.json.tmp')
    os.makedirs(os.path.dirname(tmp))
    os.mkfifo(tmp)
    out = {'merge': run(r, backend='systemd')}
    out['record'] = {'tmp_left': os.path.lexists(tmp), 'written': os.path.isfile(r.p('run/tucked-sysext/record-sysext.json'))}
    out['again'] = run(r, backend='systemd')
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.mkdir(tmp)
    r.add_dir('var/lib/extensions', 'bar', release={'ID': 'debian', 'VERSION_ID': '12'})
    out['in_the_way'] = run(r, backend='systemd')
    out['unmerge'] = run(r, state='unmerged', backend='systemd')
    out['mounts'] = mounts_at(r.p('usr'))
    return out


# ------------------------------------------------------------------ item 5
def self_bind_submount():
    """The root bind-mounted onto itself under shared propagation (arch-chroot): a tmpfs in a
    directory only the extension provides must survive the unmerge, with its data."""
    r = FakeRoot()
    sh('mount', '--bind', r.path, r.path)
    sh('mount', '--make-rshared', r.path)
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n', 'usr/share/foo/sub/k': ''})
    out = {'merge': run(r)}
    sub = r.p('usr/share/foo/sub')
    sh('mount', '-t', 'tmpfs', 'tmpfs', sub)
    with open(os.path.join(sub, 'data'), 'w') as f:
        f.write('kept\n')
    out['unmerge'] = run(r, state='unmerged')
    out['after'] = {'hello': read(r.p('usr/share/foo/hello')), 'data': read(os.path.join(sub, 'data')),
                    'mounts': mounts_at(sub), 'usr': mounts_at(r.p('usr'))}
    return out


# ------------------------------------------------------------------ item 8 (refresh race)
def remount_in_the_next(fn_name: str, usr: str) -> list:
    """Make the next call of apply.FN_NAME first do what another tool's refresh does to ``usr``:
    unmount the overlay there, and mount the same overlay again 0.3 s later (in a thread; the
    returned list gets it, to join)."""
    import threading
    import time
    from ansible_collections.tucked.sysext.plugins.module_utils import apply, mountapi
    orig = getattr(apply, fn_name)
    threads = []

    def racing(*args, **kw):
        top = mountapi.open_tree(usr)
        mountapi.umount2(usr, mountapi.MNT_DETACH)

        def remount():
            time.sleep(0.3)
            mountapi.move_mount_fd(top, usr)
            os.close(top)
        threads.append(threading.Thread(target=remount))
        threads[0].start()
        setattr(apply, fn_name, orig)
        return orig(*args, **kw)
    setattr(apply, fn_name, racing)
    return threads


def bind_onto_itself(path: str) -> None:
    from ansible_collections.tucked.sysext.plugins.module_utils import mountapi
    fd = mountapi.open_tree(path)
    mountapi.move_mount_fd(fd, path)
    os.close(fd)


def refresh_race():
    """Another tool remounts /usr the way systemd-sysext refreshes (unmount, then mount) while our
    refresh is between its plan and its swap."""
    r = FakeRoot()
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n'})
    out = {'merge': run(r)}
    r.add_dir('var/lib/extensions', 'bar', files={'usr/share/bar/hello': 'bar\n'})
    usr = r.p('usr')
    threads = remount_in_the_next('build', usr)
    out['refresh'] = run(r)
    for t in threads:
        t.join()
    out['seen'] = [read(r.p('usr/share/foo/hello')), read(r.p('usr/share/bar/hello'))]
    out['stack'] = mounts_at(usr)
    out['unmerge'] = run(r, state='unmerged')
    out['after'] = mounts_at(usr)
    return out


def unmerge_race():
    """Another tool remounts /usr (unmount, then mount 0.3 s later) just as our unmerge is about
    to detach it, on a root whose /usr is a mount of its own (as on Flatcar): the base tree must
    stay, and the remounted merge be unmerged."""
    r = FakeRoot()
    usr = r.p('usr')
    bind_onto_itself(usr)                       # /usr a mount of its own
    sh('mount', '--make-private', usr)          # (its own, as Flatcar's /usr: no propagated copies)
    out = {'base': mounts_at(usr)}
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n'})
    out['merge'] = run(r)
    threads = remount_in_the_next('unmerge', usr)
    out['unmerge'] = run(r, state='unmerged')
    out['raced'] = len(threads)
    for t in threads:
        t.join()
    out['after'] = mounts_at(usr)
    out['hello'] = read(r.p('usr/share/foo/hello'))
    return out


def self_bind_twice():
    """/usr a bind of itself under shared propagation: every overlay mounted on it gets a
    propagated copy below the bind (overlay, bind, overlay), which is one merge: a second run
    has nothing to do."""
    r = FakeRoot()
    usr = r.p('usr')
    bind_onto_itself(usr)
    r.add_dir('var/lib/extensions', 'foo', files={'usr/share/foo/hello': 'foo\n'})
    out = {'merge': run(r), 'stack': mounts_at(usr)}
    out['again'] = run(r)
    out['hello'] = read(r.p('usr/share/foo/hello'))
    out['unmerge'] = run(r, state='unmerged')
    out['after'] = mounts_at(usr)
    return out


# ------------------------------------------------------------------ item 6 (deep origin)
def deep_origin():
    """A merge (/usr a mount: bound onto itself, with systemd's metadata) whose origin is JSON
    nested 200,000 levels deep: the facts name the file, and the merge is unmerged, as systemd
    unmerges it (it does not need the origin for that)."""
    r = FakeRoot()
    usr = r.p('usr')
    bind_onto_itself(usr)
    _fake_meta(r)
    with open(r.p('usr/.systemd-sysext/origin'), 'wb') as f:
        f.write(b'{"mutable": {"mode": "no"}, "extensions": {"old": {"path": "/x", "n": ' + b'[' * 200000
                + b']' * 200000 + b'}}}')
    out = {'facts': facts(r), 'before': mounts_at(usr)}
    out['unmerge'] = run(r, state='unmerged')
    out['after'] = mounts_at(usr)
    return out


# ------------------------------------------------------------------ item 6 (squashfs xattr)
def _kernel_xattr(path: str) -> str:
    try:
        return os.getxattr(path, 'user.extension-release.strict').decode('utf-8', 'replace')
    except OSError as e:
        return 'error: %s' % e.strerror


def xattr_kernel():
    """user.extension-release.strict stored out of line and patched (tests/lib/squashxattr.py):
    the kernel (the image loop-mounted, getxattr) and our reader, in place and through a
    detached mount, read the same value or all fail; the facts say which file was passed over."""
    from lib import squashxattr
    from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import image as imagefs
    r = FakeRoot()
    rel = 'usr/lib/extension-release.d/extension-release.orig'
    out = {}
    for variant in squashxattr.VARIANTS:
        tree = r.make_tree(r.p('tmp/t-' + variant), 'orig')
        img = squashxattr.build(tree, rel, r.p('var/lib/extensions/%s.raw' % variant), variant)
        mnt = r.p('tmp/m-' + variant)
        os.mkdir(mnt)
        sh('mount', '-t', 'squashfs', '-o', 'loop,ro', img, mnt)
        try:
            seen = {'kernel': _kernel_xattr(os.path.join(mnt, rel))}
        finally:
            sh('umount', mnt)
        fd = os.open(img, os.O_RDONLY | os.O_CLOEXEC)
        try:
            for how, mount in (('in place', False), ('mounted', True)):
                def get(mount=mount):
                    with imagefs.open_image(fd, mount=mount) as t:
                        return t.get_xattr('/' + rel, 'user.extension-release.strict')
                res = call(get)
                if not res.get('ok'):
                    seen[how] = 'error: ' + res['error']
                else:
                    seen[how] = 'absent' if res['value'] is None else res['value'].decode('utf-8', 'replace')
        finally:
            os.close(fd)
        out[variant] = seen
    out['facts'] = facts(r)
    out['loops'] = [ln for ln in sh('losetup', '-a').stdout.splitlines() if r.path in ln]
    return out


CASES = {
    'record-fifo': record_fifo,
    'deep-origin': deep_origin,
    'xattr-kernel': xattr_kernel,
    'unmerge-race': unmerge_race,
    'self-bind-twice': self_bind_twice,
    'refresh-race': refresh_race,
    'self-bind-submount': self_bind_submount,
    'backend-exit-zero': backend_exit_zero,
    'block-device': block_device,
    'fifo-dev': fifo_dev,
    'fifo-os-release': fifo_os_release,
    'offline-copy': offline_copy,
    'run-symlink': run_symlink,
    'opt-relative': opt_symlink('var/opt'),
    'opt-absolute': opt_symlink('/var/opt'),
}

if __name__ == '__main__':
    engine()  # puts the collection on sys.path
    emit(CASES[sys.argv[1]]())
