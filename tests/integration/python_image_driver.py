# -*- coding: utf-8 -*-
"""The Python image of sysext_python on nothing but glibc, inside a private mount namespace:

    unshare -m --propagation private python3 python_image_driver.py IMAGE LIBC6_DEB

A tmpfs root holds only Debian's libc6 (unpacked with dpkg-deb -x), a shell (this machine's
dash as /bin/sh, for the launcher bin/python3) and, read-only, the
image's /usr/lib/tucked-sysext (the image loop-mounted, its prefix bound in), with /proc (the
loader reads $ORIGIN of an executable from /proc/self/exe). There, chrooted, with an
environment of PATH alone: the interpreter imports what modules need and reports its paths,
the shared objects it mapped and whether every .pyc of its standard library is valid for
it; and the dynamic loader lists what each ELF object of the prefix resolves to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.nsroot import COLLECTIONS, emit, in_namespace_guard, make_scratch, sh  # noqa: E402

PREFIX = '/usr/lib/tucked-sysext/python'
CHROOT = shutil.which('chroot') or shutil.which('chroot', path='/usr/sbin:/sbin:/usr/bin:/bin')

CHECK = r'''
import bz2, ctypes, hashlib, importlib.util, json, lzma, marshal, os, platform, sqlite3, ssl, subprocess, sys
import sysconfig, uuid, zlib
out = {'version': platform.python_version(), 'prefix': sys.prefix, 'exec_prefix': sys.exec_prefix,
       'executable': sys.executable, 'path': sys.path, 'paths': sysconfig.get_paths(),
       'ld_library_path': os.environ.get('LD_LIBRARY_PATH'),
       'child_env': subprocess.run(['/proc/self/exe', '-c', 'import os, json; print(json.dumps(dict(os.environ)))'],
                                   capture_output=True, text=True, check=True).stdout}
out['sha256'] = hashlib.sha256(b'tucked').hexdigest()
out['md5'] = hashlib.md5(b'tucked').hexdigest()
out['openssl'] = ssl.OPENSSL_VERSION
ssl.create_default_context()
db = sqlite3.connect(':memory:')
out['sqlite'] = db.execute('select sqlite_version()').fetchone()[0]
data = b'tucked.sysext ' * 100
out['roundtrips'] = [m.decompress(m.compress(data)) == data for m in (lzma, bz2, zlib)]
out['uuid'] = str(uuid.uuid4())
out['getpid'] = ctypes.CDLL(None).getpid() == os.getpid()
out['json'] = json.loads(json.dumps({'a': [1, 2]}))
import decimal, readline, curses, _dbm, nis, crypt, pyexpat, _ctypes, _uuid, _multiprocessing, zoneinfo
out['decimal'] = str(decimal.Decimal('1.1') + decimal.Decimal('2.2'))
with open('/proc/self/maps') as f:
    out['maps'] = sorted({line.split()[-1] for line in f if '.so' in line.split()[-1]})
# every .py of the standard library has a valid hash-based .pyc for this interpreter
n, bad = 0, []
stdlib = sysconfig.get_paths()['stdlib']
for d, dirs, files in os.walk(stdlib):
    dirs.sort()
    for f in sorted(files):
        if not f.endswith('.py'):
            continue
        src = os.path.join(d, f)
        n += 1
        try:
            with open(importlib.util.cache_from_source(src), 'rb') as pf:
                pyc = pf.read()
        except OSError as e:
            bad.append('%s: %s' % (src, e))
            continue
        with open(src, 'rb') as sf:
            source = sf.read()
        flags = int.from_bytes(pyc[4:8], 'little')
        if pyc[:4] != importlib.util.MAGIC_NUMBER or flags != 1 or pyc[8:16] != importlib.util.source_hash(source):
            bad.append('%s: magic %r flags %d' % (src, pyc[:4], flags))
        elif marshal.loads(pyc[16:]).co_filename != src:
            bad.append('%s: co_filename %s' % (src, marshal.loads(pyc[16:]).co_filename))
out['pyc'], out['bad_pyc'] = n, bad
try:
    open(os.path.join(stdlib, 'probe'), 'w')
    out['writable'] = True
except OSError:
    out['writable'] = False
print(json.dumps(out))
'''


def ldd(root: str, loader: str, path: str) -> dict:
    """name -> resolved path (or 'not found') as the loader of the root lists them."""
    res = subprocess.run([CHROOT, root, loader, '--list', path], capture_output=True, text=True, check=False,
                         env={'PATH': '/usr/bin:/bin'})
    out = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if '=>' in parts:
            name, target = parts[0], parts[parts.index('=>') + 1]
            out[name] = 'not found' if target == 'not' else target
    if res.returncode != 0 and not out:
        out['(error)'] = res.stderr.strip()
    return out


def main(image: str, libc6: str) -> dict:
    in_namespace_guard()
    sys.path.insert(0, COLLECTIONS)
    from ansible_collections.tucked.sysext.plugins.module_utils import elf  # pylint: disable=import-outside-toplevel

    scratch = make_scratch()
    root, mnt = os.path.join(scratch, 'root'), os.path.join(scratch, 'image')
    os.makedirs(os.path.join(root, PREFIX.lstrip('/')[:-len('/python')]))
    os.makedirs(os.path.join(root, 'proc'))
    os.makedirs(os.path.join(root, 'bin'))
    os.mkdir(mnt)
    sh('dpkg-deb', '-x', libc6, root)
    # bin/python3 is a shell launcher (module_utils/pylauncher.py): every host has /bin/sh, and
    # this machine's dash needs nothing but libc
    shutil.copyfile(shutil.which('dash'), os.path.join(root, 'bin/sh'))
    os.chmod(os.path.join(root, 'bin/sh'), 0o755)
    sh('mount', '-o', 'loop,ro', '-t', 'squashfs', image, mnt)
    mounts = [mnt]
    try:
        sh('mount', '--bind', os.path.join(mnt, 'usr/lib/tucked-sysext'), os.path.join(root, 'usr/lib/tucked-sysext'))
        mounts.append(os.path.join(root, 'usr/lib/tucked-sysext'))
        sh('mount', '-t', 'proc', 'proc', os.path.join(root, 'proc'))
        mounts.append(os.path.join(root, 'proc'))
        top = sorted(os.listdir(root))
        res = subprocess.run([CHROOT, root, PREFIX + '/bin/python3', '-c', CHECK], capture_output=True, text=True,
                             check=False, env={'PATH': '/usr/bin:/bin'})
        if res.returncode != 0:
            return {'failed': res.stderr[-3000:]}
        out = json.loads(res.stdout)
        out['top'] = top
        out['scratch'] = scratch
        binary = elf.read(os.path.join(root, PREFIX.lstrip('/'), 'bin/python3.11'))
        out['interp'] = binary.interp
        objects = {}
        for d, _dirs, files in os.walk(os.path.join(root, PREFIX.lstrip('/'))):
            for f in files:
                p = os.path.join(d, f)
                if not os.path.islink(p) and elf.is_elf(p):
                    objects['/' + os.path.relpath(p, root)] = ldd(root, binary.interp, '/' + os.path.relpath(p, root))
        out['ldd'] = objects
        out['libc6'] = sorted(os.path.relpath(os.path.join(d, f), root) for d, _x, fs in os.walk(root)
                              for f in fs if '.so' in f and not d.startswith(os.path.join(root, 'usr/lib/tucked')))
        return out
    finally:
        for m in reversed(mounts):
            subprocess.run(['umount', m], capture_output=True, check=False)


if __name__ == '__main__':
    emit(main(sys.argv[1], sys.argv[2]))
