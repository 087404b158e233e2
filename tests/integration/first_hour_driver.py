# -*- coding: utf-8 -*-
"""A new user's first hour, inside a private mount namespace:

    unshare -m --propagation private python3 first_hour_driver.py

The collection is built (ansible-galaxy collection build) and installed into a clean
collections path; a project directory of its own (inventory, files/, ansible.cfg that knows
only that path) runs the README's examples (wanted.yml, site.yml, the sysext_refresh tasks,
every ansible-playbook and ad hoc command line of the user's sections) with -b in check mode
against two scratch roots. What each run printed, and what the roots hold after,
is printed as one JSON line.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.ansible_run import BIN, REPO  # noqa: E402
from lib.fleet import Play, build_tree, squashfs  # noqa: E402
from lib.nsroot import FakeRoot, emit, sh  # noqa: E402

FENCE = re.compile(r'^```(?:yaml|sh)\n(.*?)^```', re.M | re.S)


def readme_block(first_line: str) -> str:
    """The fenced block of README.md that starts with ``first_line``."""
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    for block in FENCE.findall(text):
        if block.startswith(first_line):
            return block
    raise SystemExit('README.md has no block starting with %r' % first_line)


def readme_commands(prefix: str, program: str = 'ansible-playbook') -> list[list[str]]:
    """The ``program ...`` lines of the README block that starts with ``prefix``."""
    out = []
    for line in readme_block(prefix).splitlines():
        line = line.split(' # ', 1)[0].strip()
        if line.startswith(program + ' '):
            out.append(shlex.split(line))
    if not out:
        raise SystemExit('README.md: the block starting with %r has no %s line' % (prefix, program))
    return out


def on_the_scratch_root(argv: list) -> list:
    """An ad hoc line of the README, pointed at each host's scratch root (the README's lines act
    on /, the real root of a real host) and run in check mode."""
    argv = list(argv)
    if '-a' in argv:
        argv[argv.index('-a') + 1] += ' root={{ sysext_root }}'
    else:
        argv += ['-a', 'root={{ sysext_root }}']
    return argv + ['--check']


def as_play(tasks_text: str) -> str:
    """A README block of tasks in a play of its own, with the group's root set as in site.yml."""
    body = ''.join('    ' + line + '\n' if line.strip() else '\n' for line in tasks_text.strip('\n').splitlines())
    return ('- name: The README tasks\n  hosts: all\n  gather_facts: false\n  module_defaults:\n'
            '    group/tucked.sysext.sysext:\n      root: "{{ sysext_root }}"\n  tasks:\n' + body)


def env_for(project: str, collections: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith('ANSIBLE_')}
    env.update(ANSIBLE_CONFIG=os.path.join(project, 'ansible.cfg'), ANSIBLE_NOCOLOR='1', PWD=project,
               ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_LOCAL_TEMP=os.path.join(project, '.tmp'),
               ANSIBLE_HOME=os.path.join(project, '.ansible'), PATH=BIN + os.pathsep + env.get('PATH', ''))
    return env


def run(argv: list, project: str, env: dict) -> dict:
    exe = os.path.join(BIN, argv[0])
    res = subprocess.run([exe] + argv[1:], cwd=project, env=env, text=True, capture_output=True, check=False,
                         timeout=600)
    play = Play(res)
    return {'argv': argv, 'rc': play.rc, 'recap': play.recap, 'out': play.out[-6000:]}


def listing(path: str) -> list:
    out = []
    for d, _dirs, files in os.walk(path):
        out += [os.path.relpath(os.path.join(d, f), path) for f in files]
    return sorted(out)


def shipped_plugins(coll: str) -> dict:
    """{ansible-doc type: [names]} of the modules, filters, lookups and roles in an installed collection."""
    def stems(d, ext):
        return sorted(f[:-len(ext)] for f in os.listdir(os.path.join(coll, d)) if f.endswith(ext) and f[0] != '_')
    filters = stems('plugins/filter', '.yml') + [n for n in stems('plugins/filter', '.py') if n != 'sysext']
    roles = [d for d in os.listdir(os.path.join(coll, 'roles')) if os.path.isdir(os.path.join(coll, 'roles', d))]
    return {'module': stems('plugins/modules', '.py'), 'filter': sorted(filters),
            'lookup': stems('plugins/lookup', '.py'), 'role': sorted(roles)}


def main() -> dict:
    base = FakeRoot()
    work = os.path.join(base.scratch, 'work')
    os.makedirs(work)
    res = {}

    # the published artifact, installed where nothing else is
    built = subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', REPO, '--output-path', work],
                           text=True, capture_output=True, check=False)
    tarball = os.path.join(work, 'tucked-sysext-0.1.0.tar.gz')
    res['build'] = {'rc': built.returncode, 'out': built.stdout + built.stderr}
    with tarfile.open(tarball) as tf:
        res['tarball'] = sorted(tf.getnames())
    collections = os.path.join(work, 'collections')
    empty_cfg = os.path.join(work, 'empty.cfg')
    with open(empty_cfg, 'w') as f:
        f.write('[defaults]\n')
    installed = subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', tarball, '-p',
                                collections], text=True, capture_output=True, check=False,
                               env=dict(os.environ, ANSIBLE_CONFIG=empty_cfg))
    res['install'] = {'rc': installed.returncode, 'out': installed.stdout + installed.stderr}

    # the project: its own ansible.cfg, inventory, files/
    project = os.path.join(work, 'project')
    os.makedirs(os.path.join(project, 'files', 'images'))
    with open(os.path.join(project, 'ansible.cfg'), 'w') as f:
        f.write('[defaults]\ncollections_path = %s\ninterpreter_python = auto_silent\nretry_files_enabled = false\n'
                % collections)
    hosts = {}
    for name in ('node1', 'node2'):
        root = os.path.join(base.scratch, name)
        sh('cp', '-a', base.path, root)
        hosts[name] = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                       'ansible_become_method': 'su', 'sysext_root': root}
    with open(os.path.join(project, 'inventory.yml'), 'w') as f:
        json.dump({'all': {'hosts': hosts}}, f)          # JSON is YAML
    images = os.path.join(project, 'files', 'images')
    squashfs(build_tree(os.path.join(work, 'tree-docker'), 'docker', 'sysext', '27.3.1',
                        {'usr/bin/docker': '#!/bin/sh\n'}), os.path.join(images, 'docker-27.3.1.raw'))
    squashfs(build_tree(os.path.join(work, 'tree-site'), 'site', 'confext', '7', {'etc/site.conf': 'site 7\n'}),
             os.path.join(images, 'site-7.raw'))
    os.makedirs(os.path.join(project, 'files', 'trees', 'tools', 'usr', 'share', 'tools'))
    with open(os.path.join(project, 'files', 'trees', 'tools', 'usr', 'share', 'tools', 'README'), 'w') as f:
        f.write('tools 1.0\n')
    for fname, first in (('wanted.yml', '# wanted.yml'), ('site.yml', '# site.yml')):
        with open(os.path.join(project, fname), 'w') as f:
            f.write(readme_block(first))
    env = env_for(project, collections)
    before = {h: listing(v['sysext_root']) for h, v in hosts.items()}

    # the README's commands, in check mode
    res['commands'] = []
    for argv in readme_commands('cd project'):
        if '--check' not in argv:
            argv = argv + ['--check']
        res['commands'].append(run(argv, project, env))
    res['site'] = run(['ansible-playbook', 'site.yml', '-i', 'inventory.yml', '-b', '--check'], project, env)
    with open(os.path.join(project, 'refresh-tasks.yml'), 'w') as f:
        f.write(as_play(readme_block('- name: Merge or refresh, only when something changed')))
    res['refresh_tasks'] = run(['ansible-playbook', 'refresh-tasks.yml', '-i', 'inventory.yml', '-b', '--check'],
                               project, env)
    res['playbooks'] = [run(argv + ['--check'], project, env)
                        for argv in readme_commands('ansible-playbook tucked.sysext.refresh')]
    res['bare_refresh'] = run(['ansible-playbook', 'tucked.sysext.refresh', '-i', 'inventory.yml', '-b'], project, env)
    res['adhoc'] = [run(on_the_scratch_root(argv), project, env)
                    for argv in readme_commands('ansible all ', program='ansible')]
    res['roots_unchanged'] = {h: listing(v['sysext_root']) == before[h] for h, v in hosts.items()}
    # what ansible-doc shows from the installed collection, for every plugin the tarball ships
    res['docs'] = {}
    for kind, names in shipped_plugins(os.path.join(collections, 'ansible_collections', 'tucked', 'sysext')).items():
        doc = subprocess.run([os.path.join(BIN, 'ansible-doc'), '-t', kind, '--json']
                             + ['tucked.sysext.' + n for n in names], cwd=project, env=env, text=True,
                             capture_output=True, check=False)
        res['docs'][kind] = {'names': names, 'rc': doc.returncode, 'stderr': doc.stderr[-3000:],
                             'documented': sorted(json.loads(doc.stdout or '{}'))}
    res['project'] = listing(project)
    res['used_collection'] = subprocess.run(
        [os.path.join(BIN, 'ansible-galaxy'), 'collection', 'list', 'tucked.sysext', '--format', 'json'],
        cwd=project, env=env, text=True, capture_output=True, check=False).stdout
    return res


if __name__ == '__main__':
    emit(main())
