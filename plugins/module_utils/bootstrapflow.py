# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What tucked.sysext.sysext_bootstrap does, step by step, over a ``Target`` (raw command
execution and file transfer, which the action plugin provides from the connection): probe;
when no usable interpreter is found and an image is given, check it against the host, store
it, select it, merge it with ``systemd-sysext refresh``, verify the interpreter, undo on
failure. Nothing here needs Ansible.

Round trips: one when an interpreter is usable (the probe), and in check mode and with
``probe_only``; to install, the probe, a preparation, the transfer, the activation (and an
undo when the verification fails).
"""

from __future__ import annotations

import secrets

from . import bootstrap
from .bootstrapinstall import (DEFAULT_LINK_DIR, DEFAULT_NAME, DEFAULT_STORE_DIR, InstallError, activate_script,
                               check_fit, inspect_image, parse_prepare, parse_steps, prepare_script, refresh_failed,
                               store_paths, temp_file, undo_script)

ARGUMENT_SPEC = {
    'src': {'type': 'path'},
    'checksum': {'type': 'str'},
    'name': {'type': 'str', 'default': DEFAULT_NAME},
    'version': {'type': 'str'},
    'glibc_min': {'type': 'str'},
    'interpreter': {'type': 'path'},
    'interpreters': {'type': 'list', 'elements': 'path', 'default': []},
    'store_dir': {'type': 'path', 'default': DEFAULT_STORE_DIR},
    'link_dir': {'type': 'path', 'default': DEFAULT_LINK_DIR},
    'probe_only': {'type': 'bool', 'default': False},
}


class Target:
    """The host as the action plugin reaches it. ``run`` executes a shell script with the
    task's become and returns (rc, stdout, stderr); ``put`` transfers a controller file as the
    login user; ``tmpdir`` is None when the raw commands run as the login user (files are then
    put straight into the store), else a temporary directory of the login user to put them in
    first; ``cleanup`` removes it."""

    def run(self, script: str) -> tuple:
        raise NotImplementedError

    def put(self, local: str, remote: str) -> None:
        raise NotImplementedError

    def tmpdir(self) -> str | None:
        return None

    def cleanup(self) -> None:
        return None


def _output(rc, out, err) -> str:
    text = (out or '')[-1500:]
    if err:
        text += ' (stderr: %s)' % err[-800:]
    return 'exit status %s, output: %s' % (rc, text)


def _found(result: dict, cand: dict, source: str) -> dict:
    result.update(interpreter=cand['path'], python_version=cand['version'], source=source,
                  needs_image=source != 'existing', ansible_facts={'discovered_interpreter_python': cand['path']})
    return result


def probe(target: Target, args: dict, nonce: str) -> tuple[dict, dict]:
    """(probe, result so far); the result is failed when the probe could not be read."""
    first = args.get('interpreter') or bootstrap.DEFAULT_INTERPRETER
    rc, out, err = target.run(bootstrap.probe_script(nonce, bootstrap.candidates(first, args.get('interpreters') or ())))
    try:
        found = bootstrap.parse_probe(out, nonce)
    except bootstrap.ProbeError as e:
        return {}, {'failed': True, 'changed': False,
                    'msg': 'the probe of the host gave no answer we can read (%s): %s' % (e, _output(rc, out, err))}
    if not found['complete']:
        return found, {'failed': True, 'changed': False,
                       'msg': 'the probe of the host was cut short: %s' % _output(rc, out, err)}
    result = dict(bootstrap.report(found), changed=False, tried=bootstrap.tried(found))
    return found, result


def run(args: dict, target: Target, check_mode: bool, source, nonce: str | None = None) -> dict:
    """The whole task. ``source()`` gives (controller path, sha256 hex) of ``src``, resolved and
    checked (InstallError when it cannot); it is only called when an image is needed."""
    nonce = nonce or secrets.token_hex(8)
    found, result = probe(target, args, nonce)
    if result.get('failed'):
        return result
    chosen = bootstrap.choose(found)
    if chosen is not None:
        return _found(result, chosen, 'existing')
    result['needs_image'] = True
    none_usable = 'no usable Python (%s or later) on the host: %s' % (
        '.'.join(str(p) for p in bootstrap.MIN_PYTHON), '; '.join(result['tried']) or 'no candidate')
    if args.get('probe_only'):
        result['msg'] = none_usable
        return result
    if not args.get('src'):
        result.update(failed=True, msg=none_usable + '. Give src, a Python system extension image (the role '
                      'tucked.sysext.bootstrap builds one with tucked.sysext.sysext_python)')
        return result
    try:
        local, sha256 = source()
        paths = store_paths(args['name'], args.get('version'), local, args['store_dir'], args['link_dir'])
        image = inspect_image(local, args['name'], found['architecture'])
    except InstallError as e:
        result.update(failed=True, msg=str(e))
        return result
    manifest = image['manifest'] or {}
    glibc_min = args.get('glibc_min') or manifest.get('glibc_min')
    interpreter = args.get('interpreter') or manifest.get('interpreter') or bootstrap.DEFAULT_INTERPRETER
    result['image'] = {'name': paths['name'], 'version': paths['version'], 'src': local, 'checksum': 'sha256:' + sha256,
                       'stored': paths['stored'], 'link': paths['link'], 'glibc_min': glibc_min,
                       'python_version': manifest.get('python_version'), 'checked': image['note'] or 'release file read '
                       'on the controller and matched against the host'}
    problems = check_fit(found, args['name'], image, glibc_min)
    if problems:
        result.update(failed=True, msg='%s %s cannot be installed on this host: %s. Nothing was changed.'
                      % (paths['name'], paths['version'], '; '.join(problems)))
        return result
    if check_mode:
        result.update(changed=True, interpreter=interpreter, source='installed',
                      msg='would store %s as %s, select it with %s, merge it with systemd-sysext refresh and use %s'
                      % (local, paths['stored'], paths['link'], interpreter))
        return result
    try:
        return _install(result, target, nonce, paths, local, sha256, interpreter)
    finally:
        target.cleanup()


def _install(result, target, nonce, paths, local, sha256, interpreter) -> dict:
    rc, out, err = target.run(prepare_script(nonce, paths))
    try:
        prep = parse_prepare(out, nonce, paths, sha256)
    except (InstallError, bootstrap.ProbeError) as e:
        result.update(failed=True, msg='%s (%s)' % (e, _output(rc, out, err)))
        return result
    # the same paths with the directories as the host resolved them (symlinks followed)
    real = dict(paths, store=prep['store_real'], stored='%s/%s' % (prep['store_real'], paths['file']),
                link_dir=prep['link_dir_real'], link='%s/%s' % (prep['link_dir_real'], paths['link'].rsplit('/', 1)[1]))
    copy_from = None
    if prep['transfer']:
        tmpd = target.tmpdir()
        remote = temp_file(real) if tmpd is None else '%s/%s' % (tmpd.rstrip('/'), real['file'])
        try:
            target.put(local, remote)
        except Exception as e:  # pylint: disable=broad-except   # what the connection raises varies
            result.update(failed=True, msg='transferring %s to %s failed: %s' % (local, remote, e))
            return result
        copy_from = remote if tmpd is not None else None
    result['image'].update(transferred=prep['transfer'], target=prep['target'])
    rc, out, err = target.run(activate_script(nonce, real, prep['target'], sha256 if prep['transfer'] else None,
                                              interpreter, copy_from))
    try:
        steps = parse_steps(out, nonce)
    except bootstrap.ProbeError as e:
        result.update(failed=True, changed=True, msg='the activation on the host gave no answer we can read (%s): %s'
                      % (e, _output(rc, out, err)))
        return result
    stored_now = prep['transfer'] and 'stored' in steps
    if 'failed' in steps:
        step, text = steps['failed'][0], steps['failed'][1]
        result.update(failed=True, changed=stored_now,
                      msg='%s failed on the host (%s): %s%s' % (
                          {'copy': 'copying the image into the store', 'checksum': 'the transfer',
                           'store': 'storing the image', 'link': 'selecting the image'}.get(step, step),
                          step, text, '; the image stays stored, not selected' if stored_now else ''))
        return result
    result['refresh_output'] = steps.get('refresh', ('', ''))[1]
    cand = steps.get('interpreter') or {'path': interpreter, 'state': 'unknown', 'rc': None, 'version': None,
                                        'output': ''}
    problem = refresh_failed(steps) or bootstrap.why_unusable(cand)
    if problem is None:
        result.update(changed=True)
        return _found(result, cand, 'installed')
    why = refresh_failed(steps) or '%s %s' % (interpreter, problem)
    rc, out, err = target.run(undo_script(nonce, real, prep['previous'], stored_now))
    try:
        undo = parse_steps(out, nonce)
    except bootstrap.ProbeError:
        undo = {'refresh': ('', _output(rc, out, err))}
    undone = ('selected %s again' % prep['previous'] if prep['previous'] else 'removed the link') + (
        ' and the stored file' if stored_now else '')
    result.update(failed=True, changed=True, undo_output=undo.get('refresh', ('', ''))[1],
                  msg='%s %s was stored and selected, but %s. Undone: %s, then systemd-sysext refresh again (%s). '
                  'The first systemd-sysext refresh printed: %s' % (
                      real['name'], real['version'], why, undone, refresh_failed(undo) or 'it succeeded',
                      result['refresh_output'] or '(nothing)'))
    return result
