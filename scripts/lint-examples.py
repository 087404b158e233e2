# -*- coding: utf-8 -*-
"""ansible-lint (production profile) over what a user copies: the EXAMPLES of every module,
lookup and filter of the collection, and the README's playbooks and task lists. ansible-lint
on the checkout does not read them (EXAMPLES are strings in the plugins; the README is
Markdown), so each becomes a playbook in a scratch project of its own, linted there with this
checkout as the collection tucked.sysext (scripts/link-collection.sh).

    .venv/bin/python scripts/lint-examples.py [--keep DIR]     # part of scripts/test.sh lint
"""

from __future__ import annotations

import ast
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FENCE = re.compile(r'^```yaml\n(.*?)^```', re.M | re.S)


def plugin_examples() -> dict:
    """{plugin path: its EXAMPLES text}, for every plugin that has them."""
    out = {}
    for path in sorted(glob.glob(os.path.join(REPO, 'plugins', '*', '*.py'))
                       + glob.glob(os.path.join(REPO, 'plugins', 'filter', '*.yml'))):
        if path.endswith('.yml'):
            with open(path) as f:
                text = (yaml.safe_load(f) or {}).get('EXAMPLES')
        else:
            with open(path) as f:
                tree = ast.parse(f.read())
            text = next((node.value.value for node in tree.body if isinstance(node, ast.Assign)
                         and [getattr(t, 'id', None) for t in node.targets] == ['EXAMPLES']), None)
        if text and text.strip():
            out[os.path.relpath(path, REPO)] = text
    return out


def readme_blocks() -> dict:
    """{README.md:N: block} for the README's YAML blocks that are playbooks or task lists
    (vars files such as wanted.yml are not linted as playbooks)."""
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    out = {}
    for m in FENCE.finditer(text):
        where = 'README.md:%d' % (text[:m.start()].count('\n') + 2)
        try:
            data = yaml.safe_load(m.group(1))
        except yaml.YAMLError as e:
            raise SystemExit('%s: the block is not valid YAML, as a user copying it would find: %s' % (where, e))
        if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
            out[where] = m.group(1)
    return out


def as_playbook(origin: str, text: str) -> str:
    """A playbook: the block itself when it is one, else its tasks in a play."""
    data = yaml.safe_load(text)
    if isinstance(data, list) and data and all('hosts' in x for x in data):
        return '---\n' + text
    body = ''.join('    ' + line + '\n' if line.strip() else '\n' for line in text.strip('\n').splitlines())
    return '---\n- name: Examples of %s\n  hosts: all\n  gather_facts: false\n  tasks:\n%s' % (origin, body)


def main(argv: list) -> int:
    keep = argv[argv.index('--keep') + 1] if '--keep' in argv else None
    work = keep or tempfile.mkdtemp(prefix='tucked-examples-')
    os.makedirs(work, exist_ok=True)
    try:
        sources = dict(plugin_examples(), **readme_blocks())
        names = {}
        for origin, text in sources.items():
            name = re.sub(r'[^A-Za-z0-9]+', '_', origin).strip('_') + '.yml'
            names[name] = origin
            with open(os.path.join(work, name), 'w') as f:
                f.write(as_playbook(origin, text))
        with open(os.path.join(work, '.ansible-lint'), 'w') as f:
            f.write('---\nprofile: production\n')
        subprocess.run(['git', 'init', '-q', work], check=True)     # ansible-lint's project root
        subprocess.run([os.path.join(REPO, 'scripts', 'link-collection.sh')], check=True)
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, '.build', 'collections'))
        env.pop('ANSIBLE_CONFIG', None)
        lint = shutil.which('ansible-lint', path=os.path.dirname(sys.executable)) or 'ansible-lint'
        print('linting the examples of %d plugins and README blocks in %s' % (len(sources), work), flush=True)
        for name, origin in sorted(names.items()):
            print('  %s: %s' % (name, origin))
        res = subprocess.run([lint, '--offline', '--nocolor', '-q'] + sorted(names), cwd=work, env=env, check=False)
        return res.returncode
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
