# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of sysext_image's ``repository`` source: the ``SHA256SUMS`` index fetched
(from a URL or read from a controller directory), its signature ``SHA256SUMS.gpg`` checked with
``gpgv`` against the keyring given, and the result kept for the rest of the play.

Ansible runs each host's task in a worker process of its own (forked per task and host), so a
cache in memory would be per host. The index is kept in a file instead, keyed by the play's
UUID, the index location and the keyring, in a private directory (mode 0700): the action plugin
gives ansible-playbook's own local temporary directory (``DEFAULT_LOCAL_TMP``, which Ansible
removes when the run ends, as it does with its AnsiballZ cache there). A lock makes the first
worker fetch while the others of the same play wait and read what it fetched (or the error it
got). A new play fetches again."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse

from ansible_collections.tucked.sysext.plugins.plugin_utils import repository

CACHE_TTL = 24 * 3600     # older cache files (of plays long gone) are removed


class Source:
    """Where the index is: ``base`` a URL ending in '/', or ``directory`` on the controller."""

    def __init__(self, base: str | None = None, directory: str | None = None):
        self.base = base if base is None or base.endswith('/') else base + '/'
        self.directory = directory

    @property
    def index(self) -> str:
        return self.base + repository.INDEX if self.base else os.path.join(self.directory, repository.INDEX)

    def file(self, name: str) -> str:
        """Where the index's file ``name`` is; in a URL, quoted (a '#' or '?' in a name stays part of the path)."""
        return self.base + urllib.parse.quote(name) if self.base else os.path.join(self.directory, name)


def _read(source: Source, name: str, opener, missing_ok: bool = False) -> bytes | None:
    where = source.file(name)
    if source.directory:
        try:
            with open(where, 'rb') as f:
                return f.read(repository.MAX_INDEX + 1)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise repository.RepositoryError('%s does not exist: the repository directory %s has no %s (write it '
                                             'with sha256sum NAME-VERSION-ARCH.raw ... > %s)'
                                             % (where, source.directory, name, name)) from None
        except OSError as e:
            raise repository.RepositoryError('cannot read %s: %s' % (where, e.strerror)) from None
    return opener(where, missing_ok)


def verify_signature(data: bytes, signature: bytes, keyring: str, index: str, sig_name: str) -> None:
    """gpgv on the controller: ``signature`` must be a good signature of ``data`` by a key in ``keyring``."""
    gpgv = shutil.which('gpgv')
    if gpgv is None:
        raise repository.RepositoryError('keyring given, but gpgv is not installed on the controller (Debian: apt-get '
                                         'install gpgv), so %s cannot be verified' % sig_name)
    try:
        work = tempfile.mkdtemp(prefix='tucked-gpgv-')
    except OSError as e:
        raise repository.RepositoryError('%s could not be verified: no temporary directory for gpgv on the '
                                         'controller: %s' % (index, e.strerror or e)) from None
    try:
        for fname, content in (('index', data), ('index.sig', signature)):
            with open(os.path.join(work, fname), 'wb') as f:
                f.write(content)
        home = os.path.join(work, 'home')
        os.mkdir(home, 0o700)
        # (the verdict from gpgv's machine-readable status lines, in any locale)
        res = subprocess.run([gpgv, '--homedir', home, '--status-fd', '1', '--keyring', keyring,
                              os.path.join(work, 'index.sig'), os.path.join(work, 'index')],
                             capture_output=True, text=True, errors='replace', check=False, timeout=120,
                             env=dict(os.environ, LC_ALL='C'))
    except (OSError, subprocess.SubprocessError) as e:
        raise repository.RepositoryError('%s could not be verified: gpgv failed to run: %s' % (index, e)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    status = {line.split()[1] for line in res.stdout.splitlines() if line.startswith('[GNUPG:] ') and len(line.split()) > 1}
    if res.returncode != 0 or 'VALIDSIG' not in status:
        said = ' '.join(re.sub(r'^gpgv:\s*', '', line.strip()) for line in res.stderr.splitlines() if line.strip())
        if 'NO_PUBKEY' in status and _armored(keyring):
            why = ('the keyring %s is ASCII-armored, which gpgv cannot read: convert it with gpg --dearmor < %s > '
                   'FILE.gpg and give that' % (keyring, keyring))
        elif 'NO_PUBKEY' in status:
            why = 'it is signed with a key that is not in the keyring %s' % keyring
        elif 'BADSIG' in status:
            why = 'the signature does not match the index (the index was changed after it was signed)'
        else:
            why = 'the signature does not verify against the keyring %s' % keyring
        raise repository.RepositoryError('%s is refused: %s (gpgv: %s); give the keyring of the key that signs the '
                                         'repository, or fix the index; nothing was changed'
                                         % (index, why, said or 'exit %d' % res.returncode))


def _armored(keyring: str) -> bool:
    try:
        with open(keyring, 'rb') as f:
            return f.read(64).lstrip().startswith(b'-----BEGIN PGP')
    except OSError:
        return False


def fetch_index(source: Source, opener, keyring: str | None) -> dict:
    """{'entries': [(name, hex)], 'index': location, 'signed': bool}; RepositoryError on any problem."""
    if keyring:
        keyring = os.path.abspath(os.path.expanduser(keyring))
        if not os.path.isfile(keyring):
            raise repository.RepositoryError('keyring %s is not a file on the controller; give a keyring exported '
                                             'with gpg --export KEYID > FILE' % keyring)
    data = _read(source, repository.INDEX, opener)
    signed = False
    if keyring:
        sig = _read(source, repository.SIGNATURE, opener, missing_ok=True)
        if sig is None:
            raise repository.RepositoryError('%s has no signature %s, but a keyring is given; the index cannot be '
                                             'trusted, so nothing was changed' % (source.index,
                                                                                  source.file(repository.SIGNATURE)))
        verify_signature(data, sig, keyring, source.index, source.file(repository.SIGNATURE))
        signed = True
    entries = repository.parse_index(data, source.index)
    return {'entries': entries, 'index': source.index, 'signed': signed}


def _cache_dir(parent: str | None) -> str:
    d = os.path.join(parent, 'tucked-sysext-index') if parent else \
        os.path.join(tempfile.gettempdir(), 'tucked-sysext-index-%d' % os.getuid())
    try:
        os.mkdir(d, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(d)
    if not os.path.isdir(d) or os.path.islink(d) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise repository.RepositoryError('%s is not a private directory of this user; remove it' % d)
    return d


def cached_index(play: str, source: Source, opener, keyring: str | None, directory: str | None = None) \
        -> tuple[dict, bool]:
    """fetch_index() once per play: (the result, whether it came from the cache). An error is
    cached too and raised again for every host of the play. ``directory``: where the cache
    directory is made (default: the system's temporary directory)."""
    key = hashlib.sha256(json.dumps([play, source.index, keyring]).encode()).hexdigest()[:32]
    try:
        return _cached_index(key, source, opener, keyring, directory)
    except OSError as e:
        raise repository.RepositoryError('the index cache %s on the controller: %s; check that directory (its '
                                         'disk, its permissions)' % (e.filename or directory, e.strerror or e)) from None


def _cached_index(key: str, source: Source, opener, keyring: str | None, directory: str | None) -> tuple[dict, bool]:
    d = _cache_dir(directory)
    path = os.path.join(d, key + '.json')
    with open(os.path.join(d, key + '.lock'), 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                got = json.load(f)
            hit = True
        except (OSError, ValueError):
            hit = False
            try:
                got = fetch_index(source, opener, keyring)
            except repository.RepositoryError as e:
                got = {'error': str(e)}
            tmp = path + '.%d' % os.getpid()
            with open(tmp, 'w') as f:
                json.dump(got, f)
            os.replace(tmp, path)
            _expire(d)
    if 'error' in got:
        raise repository.RepositoryError(got['error'])
    got['entries'] = [tuple(e) for e in got['entries']]
    return got, hit


def _expire(d: str) -> None:
    now = time.time()
    for fname in os.listdir(d):
        if fname.endswith('.lock'):     # (never written, so never fresh: another worker may hold it)
            continue
        p = os.path.join(d, fname)
        try:
            if now - os.lstat(p).st_mtime > CACHE_TTL:
                os.unlink(p)
        except OSError:
            pass
