# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""sysext_image's ``repository`` source in the action plugin: the target's architecture and
os-release asked once (the module's ``probe_host``), the index fetched once per play
(repofetch), the version chosen (repository), then the module called as for an explicit
``url`` + ``checksum`` (or a controller ``src``), newest candidate first; a candidate whose image
the module refuses to select on this host (its extension-release, read after the download and
before the rename into place, or the image policy) is passed over for the next older one. With
``state: query`` nothing is downloaded: the first candidate the store can hold is the version
``available``, and the module reports what the store holds beside it."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from urllib.error import HTTPError, URLError

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.module_utils.urls import open_url

from ansible_collections.tucked.sysext.plugins.module_utils import storelayout
from ansible_collections.tucked.sysext.plugins.plugin_utils import repofetch, repository

OPTIONS = ('repository', 'match_pattern', 'keyring', 'remote_keyring')
NOT_WITH = ('src', 'url', 'checksum', 'remote_src')
URL = re.compile(r'^(https?|file)://', re.IGNORECASE)


def _opener(timeout: int, validate_certs: bool):
    def opener(url: str, missing_ok: bool) -> bytes | None:
        try:
            resp = open_url(url, timeout=timeout, validate_certs=validate_certs)
            try:
                data = resp.read(repository.MAX_INDEX + 1)
            finally:
                resp.close()
            return data
        except HTTPError as e:
            if e.code == 404 and missing_ok:
                return None
            raise repository.RepositoryError('cannot fetch %s: HTTP %s %s%s' % (
                url, e.code, e.reason, '; is the repository URL right? It must be the directory holding SHA256SUMS'
                if e.code == 404 else '')) from None
        except URLError as e:
            reason = getattr(e, 'reason', e)
            if missing_ok and isinstance(reason, FileNotFoundError):
                return None
            raise repository.RepositoryError('cannot fetch %s: %s' % (url, to_text(reason))) from None
        except Exception as e:  # socket timeouts, connection resets, TLS errors
            raise repository.RepositoryError('cannot fetch %s: %s (url_timeout is %ss)'
                                             % (url, to_text(e) or type(e).__name__, timeout)) from None
    return opener


def _play_id(action) -> str:
    try:
        return action._task.get_play()._uuid
    except Exception:   # a task without a play (ansible -m): one "play" per controller process group
        return 'pgid-%d' % os.getpgid(0)


def _choice(action, args: dict, task_vars: dict):
    """The index read and the candidates chosen for this host: (the source, the index, the result's
    ``repository`` info, the choice, the spec), or a failed result."""
    name = args.get('name')
    try:
        spec = repository.parse_spec(args.get('version'))
    except repository.RepositoryError as e:
        return {'failed': True, 'msg': '%s: %s' % (name, e)}
    probe = action._module({'name': name, 'probe_host': True, 'root': args.get('root') or '/'}, task_vars)
    if probe.get('failed'):
        return probe
    host = repository.Host(probe['architecture'], probe.get('os_release') or {})
    try:
        patterns = repository.patterns_for(name, args.get('match_pattern'), host)
        source = _source(action, args['repository'])
        keyring = _keyring(action, args.get('keyring'))
        if args.get('remote_keyring') and not keyring:
            keyring = _remote_keyring(action, args['remote_keyring'], args.get('root') or '/')
        timeout = int(args.get('url_timeout') or 30)
        index, cached = repofetch.cached_index(_play_id(action), source, _opener(timeout, boolean(
            args.get('validate_certs', True), strict=False)), keyring, C.DEFAULT_LOCAL_TMP)
        choice = repository.choose(index['entries'], patterns, spec)
    except (repository.RepositoryError, AnsibleError) as e:
        return {'failed': True, 'msg': '%s: %s' % (name, to_text(e)), 'changed': False}
    info = {'index': index['index'], 'signed': index['signed'], 'cached': cached, 'architecture': host.architecture,
            'patterns': [p.text for p in patterns], 'refused': []}
    if not choice.candidates:
        info['reason'] = repository.no_match_message(name, index['index'], patterns, spec, choice, index['entries'])
    return source, index, info, choice, spec


def _storable(name: str, entry, info: dict, patterned: bool) -> bool:
    """Whether the store can hold the entry's version (named by a ``store_pattern`` when ``patterned``);
    if not, it is listed as refused in ``info``."""
    try:
        storelayout.check_version(entry.version, patterned=patterned)
        storelayout.check_stored_name(name, entry.version)
    except storelayout.StoreError as e:
        info['refused'].append({'file': entry.name, 'version': entry.version, 'reason': str(e)})
        return False
    return True


def _none_storable(name: str, index: dict, choice, spec, info: dict) -> str:
    return ('%s: none of the %d version(s) of %s that fit version %s can be stored and selected on this host: %s; '
            'nothing was changed' % (name, len(choice.candidates), index['index'], spec.text,
                                     '; '.join('%s: %s' % (r['file'], r['reason']) for r in info['refused'])))


def run(action, args: dict, task_vars: dict) -> dict:
    name = args.get('name')
    given = [k for k in NOT_WITH if args.get(k) not in (None, False)]
    if given:
        return {'failed': True, 'msg': '%s: repository and %s are mutually exclusive (the repository gives the file and '
                                       'its checksum); drop %s' % (name, ', '.join(given), ', '.join(given))}
    plain = {k: v for k, v in args.items() if k not in OPTIONS}
    if plain.get('state') == 'absent' or boolean(plain.get('rollback', False), strict=False):
        return action._module(plain, task_vars)       # nothing to fetch: the store alone
    got = _choice(action, args, task_vars)
    if isinstance(got, dict):
        return got
    source, index, info, choice, spec = got
    if plain.get('state') == 'query':
        return _query(action, task_vars, plain, source, index, info, choice, spec)
    if not choice.candidates:
        return {'failed': True, 'changed': False, 'repository': info, 'msg': info.pop('reason')}
    res = {}
    for entry in choice.candidates:
        if not _storable(name, entry, info, bool(args.get('store_pattern'))):     # passed over, as a version the host refuses
            continue
        call = dict(plain, version=entry.version, checksum='sha256:' + entry.sha256)
        if source.base:
            call['url'] = source.file(entry.name)
            res = action._module(call, task_vars)
        else:
            call['src'] = source.file(entry.name)
            res = action._deliver(call, task_vars)
        info.update(file=entry.name, url=call.get('url'), src=call.get('src'), checksum=call['checksum'])
        res['repository'] = dict(info)
        if res.get('failed') and res.get('compatible') is False:
            info['refused'].append({'file': entry.name, 'version': entry.version, 'reason': res.get('msg')})
            continue
        if res.get('failed'):
            res['msg'] = '%s: %s; %s lists %s with that checksum%s' % (
                name, res.get('msg'), index['index'], entry.name,
                ': the repository does not serve the file it lists, so it is incomplete (publish the file or drop its '
                'line), or pin another version' if str(res.get('msg', '')).startswith('cannot download') else
                ': the file or the index is wrong; fix the repository, or pin another version')
        return res
    res.update(failed=True, changed=False, repository=info, msg=_none_storable(name, index, choice, spec, info))
    return res


def _query(action, task_vars, plain, source, index, info, choice, spec) -> dict:
    """state=query: the first candidate the store can hold is the version available (not downloaded,
    so its extension-release is not checked); the module says what is stored and selected."""
    name = plain.get('name')
    entry = next((e for e in choice.candidates if _storable(name, e, info, bool(plain.get('store_pattern')))), None)
    call = dict(plain, version=entry.version if entry else None, checksum='sha256:' + entry.sha256 if entry else None)
    res = action._module(call, task_vars)
    if entry is not None:
        info.update(file=entry.name, url=source.file(entry.name) if source.base else None,
                    src=None if source.base else source.file(entry.name), checksum=call['checksum'])
    elif choice.candidates:
        info['reason'] = _none_storable(name, index, choice, spec, info)
    res['repository'] = info
    return res


def _keyring(action, keyring: str | None) -> str | None:
    """A relative keyring is searched like src (files/ of the role and the playbook)."""
    if not keyring or os.path.isabs(os.path.expanduser(keyring)):
        return keyring
    try:
        return action._find_needle('files', keyring)
    except AnsibleError:
        raise repository.RepositoryError('keyring %s: no such file on the controller (a relative path is searched '
                                         'like src, in files/)' % keyring) from None


def _remote_keyring(action, path: str, root: str) -> str:
    """The target's keyring ``path`` (in ``root``) copied into ansible-playbook's local temporary
    directory, named by its checksum (so that hosts with the same keyring share the index cache)."""
    remote = os.path.join(root, path.lstrip('/'))
    fd, tmp = tempfile.mkstemp(prefix='sysext-keyring-', dir=C.DEFAULT_LOCAL_TMP)
    os.close(fd)
    try:
        action._connection.fetch_file(remote, tmp)
        with open(tmp, 'rb') as f:
            data = f.read()
    except (AnsibleError, OSError) as e:
        os.unlink(tmp)
        raise repository.RepositoryError('remote_keyring %s: cannot fetch it from the target: %s' % (path, to_text(e))) \
            from None
    if not data:
        os.unlink(tmp)
        raise repository.RepositoryError('remote_keyring %s on the target is empty or missing' % path)
    final = os.path.join(C.DEFAULT_LOCAL_TMP, 'sysext-keyring-%s.pgp' % hashlib.sha256(data).hexdigest()[:32])
    os.replace(tmp, final)
    return final


def _source(action, location: str) -> repofetch.Source:
    if URL.match(location):
        return repofetch.Source(base=location)
    try:
        found = action._find_needle('files', location)
    except AnsibleError:
        raise repository.RepositoryError('repository %s: no such directory on the controller (a relative path is '
                                         'searched like src, in files/); give a directory holding SHA256SUMS, or an '
                                         'http(s):// or file:// URL' % location) from None
    if not os.path.isdir(found):
        raise repository.RepositoryError('repository %s (%s) is not a directory; give the directory holding '
                                         'SHA256SUMS' % (location, found))
    return repofetch.Source(directory=found)
