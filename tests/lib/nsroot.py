# -*- coding: utf-8 -*-
"""Scratch roots inside a private mount namespace, for tests and benchmarks.

Everything here must run inside ``unshare --mount --propagation private`` (see ``run_in_ns``):
the mounts it makes vanish with the namespace, and the machine's own /usr, /opt and /etc
are never touched. Two kinds of root:

* ``SidRoot``: the cached debootstrapped Debian sid root (systemd 262), bind-mounted on a
  scratch path, with fresh tmpfs mounts for /run, the image search directories and /tmp, so
  that the cached tree itself is never written. ``systemd-sysext`` runs chrooted into it.
* ``FakeRoot``: a tmpfs with an os-release and empty hierarchies, for the host's own
  systemd-sysext (252 on bookworm) with ``--root=`` and for our engine alone.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get('TUCKED_CACHE', '/var/cache/tucked-sysext')
SID_ROOT = os.environ.get('SID_ROOT', os.path.join(CACHE, 'roots', 'sid'))
COLLECTIONS = os.path.join(REPO, '.build', 'collections')

SEARCH_DIRS = ('etc/extensions', 'run/extensions', 'var/lib/extensions',
               'run/confexts', 'var/lib/confexts')


def sh(*args, check=True, **kw):
    return subprocess.run(list(args), check=check, text=True, capture_output=True, **kw)


def run_in_ns(argv: list, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` in a new private mount namespace (nothing it mounts leaks out)."""
    return subprocess.run(['unshare', '--mount', '--propagation', 'private', '--'] + argv,
                          text=True, capture_output=True, timeout=timeout, env=env, check=False)


def in_namespace_guard():
    """Refuse to mount unless we run in a mount namespace of our own: ``unshare`` execs us,
    so our parent (the test runner or a shell) must be in a different one."""
    if os.readlink('/proc/self/ns/mnt') == os.readlink('/proc/%d/ns/mnt' % os.getppid()):
        raise SystemExit('refusing to mount: not inside a private mount namespace (use run_in_ns)')


def make_scratch() -> str:
    """A tmpfs on a fresh directory in /tmp; at exit it is unmounted and the (then empty)
    directory removed, so that nothing is left behind on the machine."""
    scratch = tempfile.mkdtemp(prefix='tucked-ns-')
    sh('mount', '-t', 'tmpfs', 'tmpfs', scratch)

    def cleanup():
        subprocess.run(['umount', '-R', '-l', scratch], capture_output=True, check=False)
        try:
            os.rmdir(scratch)
        except OSError:
            pass
    atexit.register(cleanup)
    return scratch


def mounts_under(path: str) -> list:
    """(mount point, fstype, st_dev as 'major:minor', mount options, super options) of every
    mount at or below ``path`` in this namespace, in mount order."""
    out = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            left, _sep, right = line.partition(' - ')
            fields = left.split()
            mp = fields[4].replace('\\040', ' ')
            if mp == path or mp.startswith(path + '/'):
                rfields = right.split()
                out.append((mp, rfields[0], fields[2], fields[5], rfields[2] if len(rfields) > 2 else ''))
    return out


def scratch_identity(r) -> dict:
    """What tells the loop devices of ``r``'s scratch root from the other loop devices of this
    shared machine, also after its namespace is gone (see ``loops_of``): the root's path, and
    the devices of the tmpfs mounts the root's files live on. Call it inside the namespace."""
    devs = {dev for _mp, fstype, dev, _mo, _so in mounts_under(r.scratch) if fstype == 'tmpfs'}
    return {'root': r.path, 'devs': sorted(devs)}


def loops_of(ident: dict, wait: float = 0.0) -> list:
    """The loop devices backed by a file of the scratch root ``ident`` (``scratch_identity``),
    as 'NAME BACKING-FILE' lines. While the namespace lives, the kernel shows the backing file's
    whole path (the root's path is in it: other runs' roots are not); once the namespace is
    gone, only its path inside the detached tmpfs ('/sqx.raw'), so the tmpfs's device tells it,
    which no other mounted file system has while a loop device keeps ours alive. ``wait``:
    seconds to wait for loop devices that are still being released (a namespace just ended)."""
    deadline = time.time() + wait
    while True:
        res = subprocess.run(['losetup', '--list', '--json', '-O', 'NAME,BACK-FILE,BACK-MAJ:MIN'], capture_output=True,
                             text=True, check=False)
        found = []
        for d in (json.loads(res.stdout).get('loopdevices', []) if res.stdout.strip() else []):
            back = d.get('back-file') or ''
            dev = (d.get('back-maj:min') or '').strip()
            if ident['root'] in back or (dev in ident['devs'] and not back.startswith('/tmp/')):
                found.append('%s %s' % (d.get('name'), back))
        if not found or time.time() >= deadline:
            return found
        time.sleep(0.1)


def engine():
    """Import the collection's engine (stdlib only) from this checkout."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    from ansible_collections.tucked.sysext.plugins.module_utils import engine as eng
    return eng


class _Root:
    path: str

    def p(self, rel: str) -> str:
        return os.path.join(self.path, rel.lstrip('/'))

    # ---------------------------------------------------------------- image builders
    def release_text(self, fields: dict) -> str:
        return ''.join('%s=%s\n' % kv for kv in fields.items())

    def make_tree(self, tree: str, name: str, cls: str = 'sysext', release: dict | None = None,
                  files: dict | None = None, release_name: str | None = None):
        """An extension tree at ``tree`` (host path) with its release file and files."""
        rel_dir = 'usr/lib/extension-release.d' if cls == 'sysext' else 'etc/extension-release.d'
        os.makedirs(os.path.join(tree, rel_dir), exist_ok=True)
        with open(os.path.join(tree, rel_dir, 'extension-release.' + (release_name or name)), 'w') as f:
            f.write(self.release_text(release if release is not None else {'ID': '_any'}))
        default = {('usr/share/%s/hello' if cls == 'sysext' else 'etc/%s.conf') % name: name + '\n'}
        for rel, content in (files if files is not None else default).items():
            dst = os.path.join(tree, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(dst, 'w') as f:
                f.write(content)
        return tree

    def add_dir(self, sdir: str, name: str, **kw) -> str:
        return self.make_tree(self.p(os.path.join(sdir, name)), name, **kw)

    def add_raw(self, sdir: str, name: str, fs: str = 'squashfs', fname: str | None = None, **kw) -> str:
        """Build a squashfs or erofs image next to its final place and rename it in."""
        work = tempfile.mkdtemp(dir=self.p('tmp'))
        self.make_tree(os.path.join(work, 'tree'), name, **kw)
        dst = self.p(os.path.join(sdir, fname or name + '.raw'))
        tmp = dst + '.new'
        if fs == 'squashfs':
            sh('mksquashfs', os.path.join(work, 'tree'), tmp, '-quiet', '-noappend', '-all-root')
        else:
            sh('mkfs.erofs', '--quiet', '--all-root', tmp, os.path.join(work, 'tree'))
        os.rename(tmp, dst)
        shutil.rmtree(work)
        return dst

    # ---------------------------------------------------------------- our side
    def facts(self, classes=('sysext', 'confext')) -> dict:
        eng = engine()
        return eng.facts(eng.gather(self.path, classes))

    def mount_id(self, hierarchy: str) -> int | None:
        eng = engine()
        st = eng.state.read_hierarchy(self.path, hierarchy, 'confext' if hierarchy == '/etc' else 'sysext')
        return st.mount_id


class SidRoot(_Root):
    """The cached sid root (systemd 262), made writable where tests write."""

    def __init__(self, base: str = SID_ROOT, writable_var_lib: bool = False):
        """``writable_var_lib``: a tmpfs over /var/lib (for /var/lib/extensions.mutable)."""
        in_namespace_guard()
        if not os.path.exists(os.path.join(base, 'usr/bin/systemd-sysext')):
            raise SystemExit('no sid root at %s: run scripts/bootstrap.sh sid-root' % base)
        self.scratch = make_scratch()
        sh('mount', '--make-rshared', '/')
        self.path = os.path.join(self.scratch, 'root')
        os.mkdir(self.path)
        sh('mount', '--rbind', base, self.path)
        sh('mount', '-t', 'proc', 'proc', self.p('proc'))
        sh('mount', '-t', 'sysfs', 'sysfs', self.p('sys'))
        sh('mount', '-t', 'devtmpfs', 'devtmpfs', self.p('dev'))
        if writable_var_lib:
            sh('mount', '-t', 'tmpfs', 'tmpfs', self.p('var/lib'))
            for d in ('extensions', 'confexts'):
                os.mkdir(self.p('var/lib/' + d))
        for d in ('run', 'tmp', 'var/lib/extensions', 'var/lib/confexts', 'etc/extensions'):
            if not os.path.isdir(self.p(d)):
                raise SystemExit('sid root lacks /%s: rerun scripts/bootstrap.sh sid-root' % d)
            sh('mount', '-t', 'tmpfs', 'tmpfs', self.p(d))
        for d in ('run/extensions', 'run/confexts'):
            os.makedirs(self.p(d), exist_ok=True)

    def systemd(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run the sid root's systemd-sysext / systemd-confext 262, chrooted."""
        res = subprocess.run(['chroot', self.path, tool] + list(args), text=True, capture_output=True, check=False)
        if check and res.returncode != 0:
            raise RuntimeError('%s %s failed (%d): %s' % (tool, ' '.join(args), res.returncode, res.stderr))
        return res


class FakeRoot(_Root):
    """A tmpfs root with os-release and empty hierarchies (for --root= runs)."""

    def __init__(self, os_release: dict | None = None):
        in_namespace_guard()
        self.scratch = make_scratch()
        sh('mount', '--make-rshared', '/')
        # systemd-sysext 252 makes /run a slave mount: give this namespace its own /run
        sh('mount', '-t', 'tmpfs', 'tmpfs', '/run')
        self.path = os.path.join(self.scratch, 'root')
        for d in ('usr/lib', 'usr/share/base', 'opt', 'etc', 'run', 'tmp') + SEARCH_DIRS:
            os.makedirs(self.p(d), exist_ok=True)
        with open(self.p('usr/lib/os-release'), 'w') as f:
            f.write(self.release_text(os_release or {'ID': 'debian', 'VERSION_ID': '12'}))
        os.symlink('../usr/lib/os-release', self.p('etc/os-release'))
        with open(self.p('usr/share/base/marker'), 'w') as f:
            f.write('base\n')

    def host_systemd(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(['systemd-sysext', '--root=' + self.path] + list(args), text=True, capture_output=True,
                             check=False)
        if check and res.returncode != 0:
            raise RuntimeError('systemd-sysext %s failed (%d): %s' % (' '.join(args), res.returncode, res.stderr))
        return res


def emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
