# -*- coding: utf-8 -*-
"""The interpreter stays available (issue 17, item 3), inside a private mount namespace:

    unshare -m --propagation private python3 interpreter_driver.py

A scratch copy of the sid root gets an extension ``tucked-python`` with a Python 3.11 under
/usr/lib/tucked-sysext/python, merged into the root's /usr by our engine: the image
sysext_python builds from the cached bookworm debs when the collection has that module, else a
directory extension holding this machine's Debian python3.11 and its standard library (which it
finds relative to itself). Then real ansible-playbook runs sysext_refresh *on that interpreter*: the local
connection starts ``chroot ROOT /usr/lib/tucked-sysext/python/bin/python3`` (pipelining: the
AnsiballZ payload on its stdin), so the task's own interpreter lies in the overlay the task
replaces, and root=/ inside the chroot is the root being changed. Meanwhile a reader process
loops stat() and open() over the interpreter's files and counts misses. Printed: one JSON line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.ansible_run import BIN, CALLBACKS, REPO, ansible_env, run_tasks  # noqa: E402
from lib.nsroot import SidRoot, emit, engine  # noqa: E402

PREFIX = '/usr/lib/tucked-sysext/python'
PYTHON = PREFIX + '/bin/python3'
HOST_PYTHON = '/usr/bin/python3.11'
HOST_STDLIB = '/usr/lib/python3.11'
# files of the interpreter the reader keeps looking at (relative to PREFIX)
WATCHED = ('bin/python3.11', 'lib/python3.11/os.py', 'lib/python3.11/json/__init__.py',
           'lib/python3.11/encodings/__init__.py', 'lib/python3.11/ctypes/__init__.py',
           'lib/python3.11/zipfile.py', 'lib/python3.11/subprocess.py')

CONTROL_REFRESHES = 30
DEBS = os.path.join(os.environ.get('TUCKED_CACHE', '/var/cache/tucked-sysext'), 'debs', 'python3.11-bookworm')

READER = r'''
import json, os, sys
stop, paths = sys.argv[1], sys.argv[2:]
reads = misses = 0
while not os.path.exists(stop):
    for p in paths:
        reads += 1
        try:
            os.stat(p)
            with open(p, 'rb') as f:
                f.read(1)
        except OSError:
            misses += 1
print(json.dumps({'reads': reads, 'misses': misses}))
'''


def python_extension(r, name='tucked-python') -> str:
    """The interpreter's extension in ROOT/var/lib/extensions: the image sysext_python builds from
    the cached bookworm debs, when this collection has that module and the debs are there; else a
    directory extension with this machine's Debian python3.11 relocated under PREFIX."""
    if os.path.exists(os.path.join(REPO, 'plugins/modules/sysext_python.py')) and os.path.isdir(DEBS):
        dest = r.p('var/lib/extensions/%s.raw' % name)
        res = run_tasks([{'tucked.sysext.sysext_python': {'debs': DEBS, 'dest': dest, 'name': name}}])[0]
        if res.get('failed'):
            raise SystemExit('sysext_python failed: %s' % res.get('msg'))
        return dest
    top = r.p('var/lib/extensions/' + name)
    rel = os.path.join(top, 'usr/lib/extension-release.d')
    os.makedirs(rel)
    with open(os.path.join(rel, 'extension-release.' + name), 'w') as f:
        f.write('ID=_any\n')
    prefix = os.path.join(top, PREFIX.lstrip('/'))
    os.makedirs(os.path.join(prefix, 'bin'))
    shutil.copy2(HOST_PYTHON, os.path.join(prefix, 'bin/python3.11'))
    os.symlink('python3.11', os.path.join(prefix, 'bin/python3'))
    shutil.copytree(HOST_STDLIB, os.path.join(prefix, 'lib/python3.11'), symlinks=True,
                    ignore=shutil.ignore_patterns('config-3.11-*', 'EXTERNALLY-MANAGED'))
    return top


class Reader:
    """A process of its own that stat()s and reads the interpreter's files until stopped."""

    def __init__(self, r):
        self.stop = os.path.join(r.scratch, 'reader-stop-%d' % time.monotonic_ns())   # (created to stop it)
        paths = [r.p(os.path.join(PREFIX, p)) for p in WATCHED]
        self.proc = subprocess.Popen([sys.executable, '-c', READER, self.stop] + paths, stdout=subprocess.PIPE, text=True)
        time.sleep(0.2)

    def result(self) -> dict:
        with open(self.stop, 'w'):
            pass
        out = json.loads(self.proc.communicate(timeout=60)[0])
        os.unlink(self.stop)
        return out


def inventory(r) -> str:
    """An inventory whose one host runs its modules on the interpreter merged into the root's /usr."""
    inv = os.path.join(r.scratch, 'inventory.ini')
    enter = os.path.join(r.scratch, 'python-in-root')    # (an interpreter setting is one word)
    with open(enter, 'w') as f:
        f.write('#!/bin/sh\nexec chroot %s %s "$@"\n' % (r.path, PYTHON))
    os.chmod(enter, 0o755)
    with open(inv, 'w') as f:
        f.write('target ansible_connection=local ansible_python_interpreter=%s\n' % enter)
    return inv


def on_the_interpreter(r, tasks: list, check_mode: bool = False) -> list:
    """Run ``tasks`` with ansible-playbook, each on the interpreter merged into the root's /usr."""
    return run_tasks(tasks, check_mode=check_mode, inventory=inventory(r), hosts='target',
                     extra_env={'ANSIBLE_PIPELINING': '1'})


def role_on_the_interpreter(r, role_vars: dict) -> dict:
    """The role tucked.sysext.sysext on that host: task name -> the results of that name."""
    pb = os.path.join(r.scratch, 'role.yml')
    with open(pb, 'w') as f:
        json.dump([{'hosts': 'target', 'gather_facts': False, 'roles': [{'role': 'tucked.sysext.sysext', 'vars': role_vars}]}],
                  f)
    results = os.path.join(r.scratch, 'role-results.json')
    env = ansible_env({'ANSIBLE_PIPELINING': '1', 'TASK_RESULTS_FILE': results, 'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS,
                       'ANSIBLE_CALLBACKS_ENABLED': 'task_results'})
    res = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', inventory(r), pb], cwd=REPO, env=env, text=True,
                         capture_output=True, check=False)
    out = {'rc': res.returncode, 'traceback': 'Traceback' in res.stdout + res.stderr, 'tasks': {}}
    with open(results) as f:
        for entry in json.load(f):
            out['tasks'].setdefault(entry['task'].split(' : ', 1)[-1], []).append(entry['result'])
    return out


def refresh_task(**args):
    return {'tucked.sysext.sysext_refresh': dict({'classes': ['sysext'], 'reload': False}, **args)}


def brief(res):
    return {k: res.get(k) for k in ('changed', 'failed', 'msg', 'atomic', 'skipped_reason', 'interpreter',
                                    'warnings', 'hierarchies')}


def main() -> dict:
    from ansible_collections.tucked.sysext.plugins.module_utils import refresh as api
    r = SidRoot(writable_var_lib=True)     # (the role's store goes to /var/lib/tucked-sysext)
    for d in ('var/cache', 'var/tmp', 'root'):     # what a module may write there stays out of the cached root
        subprocess.run(['mount', '-t', 'tmpfs', 'tmpfs', r.p(d)], check=True)
    ext = python_extension(r)
    out = {'extension': 'image' if ext.endswith('.raw') else 'directory'}
    merged = api.run(api.Options(root=r.path, classes=('sysext',), reload=False))
    out['merged'] = merged.changed and merged.atomic
    runs = subprocess.run(['chroot', r.path, PYTHON, '-c', 'import sys, ctypes, json; print(sys.prefix)'],
                          capture_output=True, text=True, check=False)
    out['prefix'] = (runs.stdout + runs.stderr).strip()

    # 1. the refresh that adds a second extension, on the interpreter it keeps merged
    r.add_dir('var/lib/extensions', 'extra')
    usr_before = r.mount_id('/usr')
    reader = Reader(r)
    t0 = time.perf_counter()
    setup, add = on_the_interpreter(r, [{'ansible.builtin.setup': {'gather_subset': ['!all', '!min', 'python']}},
                                        refresh_task()])
    out['add_seconds'] = round(time.perf_counter() - t0, 2)
    out['reader'] = reader.result()
    out['task_python'] = setup.get('ansible_facts', {}).get('ansible_python', {}).get('executable')
    out['add'] = brief(add)
    out['usr_swapped'] = r.mount_id('/usr') != usr_before
    out['extra'] = os.path.exists(r.p('usr/share/extra/hello'))

    # 2. unmerging /usr under the interpreter is refused (in check mode too), nothing changes
    usr_now = r.mount_id('/usr')
    out['unmerge_check'] = brief(on_the_interpreter(r, [refresh_task(state='unmerged')], check_mode=True)[0])
    out['unmerge'] = brief(on_the_interpreter(r, [refresh_task(state='unmerged')])[0])
    out['unmerge_kept'] = r.mount_id('/usr') == usr_now

    # 3. the extension gone from the search path (and from where it was merged from): the base
    # tree below the overlay decides, read in a namespace of the module's own
    # (renamed to a temporary name systemd ignores: deleting it would delete the files merged)
    hidden = os.path.join(os.path.dirname(ext), '.#' + os.path.basename(ext))
    os.rename(ext, hidden)
    out['gone'] = brief(on_the_interpreter(r, [refresh_task()])[0])
    out['gone_kept'] = r.mount_id('/usr') == usr_now
    os.rename(hidden, ext)

    # 4. the role stores and selects a tucked-python of its own (an image of the same tree, in
    # /etc/extensions: it shadows the directory), the refresh swaps the interpreter's extension
    # to it, the verification fails: the rollback would remove tucked-python, new in this run,
    # but keeps it (the module refuses), and the host fails naming it
    if ext.endswith('.raw'):
        shutil.copy(ext, r.p('tmp/tucked-python-1.raw'))
    else:
        subprocess.run(['mksquashfs', ext, r.p('tmp/tucked-python-1.raw'), '-quiet', '-noappend', '-all-root',
                        '-comp', 'lz4'], check=True)
    role = role_on_the_interpreter(r, {
        'sysext_images': [{'name': 'tucked-python', 'version': '1', 'src': '/tmp/tucked-python-1.raw', 'remote_src': True}],
        'sysext_link_dir': '/etc/extensions', 'sysext_verify_paths': ['/usr/share/missing'],
        'sysext_refresh_options': {'reload': False}})
    rollback = role['tasks'].get('Select the previous versions again', [{}])[0].get('results', [{}])[0]
    out['role'] = {'rc': role['rc'], 'traceback': role['traceback'],
                   'refreshed': [brief(x) for x in role['tasks'].get('Merge or refresh the extensions (nothing is '
                                                                     'remounted when nothing changed)', [])],
                   'rollback': {k: rollback.get(k) for k in ('failed', 'msg', 'interpreter')},
                   'failure': role['tasks'].get('Fail the host', [{}])[0].get('msg')}
    out['role_link'] = os.readlink(r.p('etc/extensions/tucked-python.raw'))
    out['role_merged'] = r.facts(('sysext',))['hierarchies']['/usr']['origins']['tucked-python']['path']
    # what sysext_remove: [tucked-python] asks for: refused, nothing removed
    out['remove'] = brief(on_the_interpreter(r, [{'tucked.sysext.sysext_image': {
        'name': 'tucked-python', 'state': 'absent', 'link_dir': '/etc/extensions',
        'store_dir': '/var/lib/tucked-sysext/store'}}])[0])
    out['remove_kept'] = os.path.exists(r.p('var/lib/tucked-sysext/store/tucked-python/tucked-python-1.raw'))

    # 5. force: true unmerges anyway
    out['forced'] = brief(on_the_interpreter(r, [refresh_task(state='unmerged', force=True)])[0])
    out['forced_python_left'] = os.path.exists(r.p(PYTHON))

    # 6. the control: the same reader sees the gaps of refreshes that unmount, then mount (our
    # atomic=never: the new overlay is built first, so each gap is short; hence several)
    api.run(api.Options(root=r.path, classes=('sysext',), reload=False))
    reader = Reader(r)
    for _i in range(CONTROL_REFRESHES):
        api.run(api.Options(root=r.path, classes=('sysext',), reload=False, always_refresh=True, atomic='never'))
    out['control'] = dict(reader.result(), refreshes=CONTROL_REFRESHES)
    api.run(api.Options(root=r.path, classes=('sysext',), reload=False, state='unmerged'))
    return out


if __name__ == '__main__':
    engine()  # puts the collection on sys.path
    emit(main())
