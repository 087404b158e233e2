# -*- coding: utf-8 -*-
"""The repository index on the controller: read from a directory, its SHA256SUMS.gpg checked
with gpgv against a real throw-away key made here (and refused when another key signed it),
and fetched once per play through the cache shared by the worker processes."""

import hashlib
import multiprocessing
import os
import shutil
import subprocess

import pytest

from ansible_collections.tucked.sysext.plugins.plugin_utils import repofetch, repository
from ansible_collections.tucked.sysext.tests.lib import gpgagent

pytestmark = pytest.mark.skipif(shutil.which('gpg') is None or shutil.which('gpgv') is None,
                                reason='gpg and gpgv are installed by scripts/bootstrap.sh debs')


def gpg(home, *args, data=None):
    res = subprocess.run(['gpg', '--homedir', str(home), '--batch', '--quiet', '--pinentry-mode', 'loopback',
                          '--passphrase', ''] + list(args), input=data, capture_output=True, check=False)
    if res.returncode != 0:     # (what gpg said, not only its exit status)
        raise AssertionError('gpg %s in %s: exit %d: %s' % (' '.join(args), home, res.returncode,
                                                            res.stderr.decode(errors='replace')))
    return res.stdout


@pytest.fixture(scope='module')
def keys(tmp_path_factory):
    """Two throw-away signing keys (no passphrase) and a keyring file of each, as gpg --export writes it."""
    out, homes = {}, []
    try:
        for who in ('trusted', 'stranger'):
            home = tmp_path_factory.mktemp('gnupg-' + who)
            homes.append(home)
            os.chmod(home, 0o700)
            gpg(home, '--quick-gen-key', '%s@example.invalid' % who, 'ed25519', 'sign', '1d')
            ring = home / 'keyring.gpg'
            ring.write_bytes(gpg(home, '--export'))
            out[who] = (home, str(ring))
        yield out
    finally:        # (also when a key could not be made: no gpg-agent is left running)
        for home in homes:
            gpgagent.stop(home)


def repo(tmp_path, signer=None, keys=None, body=None):
    d = tmp_path / 'repo'
    d.mkdir()
    data = body if body is not None else b'%s  d-1-x86-64.raw\n' % hashlib.sha256(b'1').hexdigest().encode()
    (d / 'SHA256SUMS').write_bytes(data)
    if signer:
        (d / 'SHA256SUMS.gpg').write_bytes(gpg(keys[signer][0], '--detach-sign', '-o', '-', data=data))
    return repofetch.Source(directory=str(d))


def no_url(url, missing_ok):
    raise AssertionError('no URL expected: %s' % url)


def test_a_signed_index_is_read_with_the_right_keyring(tmp_path, keys):
    src = repo(tmp_path, 'trusted', keys)
    got = repofetch.fetch_index(src, no_url, keys['trusted'][1])
    assert got['signed'] and got['entries'] == [('d-1-x86-64.raw', hashlib.sha256(b'1').hexdigest())]
    assert not repofetch.fetch_index(src, no_url, None)['signed']      # no keyring: not verified


def test_an_index_signed_by_a_key_not_given_is_refused(tmp_path, keys):
    src = repo(tmp_path, 'stranger', keys)
    with pytest.raises(repository.RepositoryError) as e:
        repofetch.fetch_index(src, no_url, keys['trusted'][1])
    msg = str(e.value)
    ring = keys['trusted'][1]
    assert msg.startswith('%s is refused: it is signed with a key that is not in the keyring %s' % (src.index, ring))
    assert 'nothing was changed' in msg


def test_a_changed_index_or_a_missing_signature_is_refused(tmp_path, keys):
    src = repo(tmp_path, 'trusted', keys)
    with open(src.index, 'ab') as f:
        f.write(b'%s  d-2-x86-64.raw\n' % (b'0' * 64))
    with pytest.raises(repository.RepositoryError, match=r'the signature does not match the index \(the index was '
                                                         r'changed after it was signed\)'):
        repofetch.fetch_index(src, no_url, keys['trusted'][1])
    os.unlink(src.file('SHA256SUMS.gpg'))
    with pytest.raises(repository.RepositoryError, match=r'has no signature .*SHA256SUMS.gpg, but a keyring is given'):
        repofetch.fetch_index(src, no_url, keys['trusted'][1])
    with pytest.raises(repository.RepositoryError, match='keyring /nonexistent is not a file'):
        repofetch.fetch_index(src, no_url, '/nonexistent')


def test_a_missing_index_names_the_directory_and_the_fix(tmp_path):
    d = tmp_path / 'empty'
    d.mkdir()
    with pytest.raises(repository.RepositoryError) as e:
        repofetch.fetch_index(repofetch.Source(directory=str(d)), no_url, None)
    assert '%s/SHA256SUMS does not exist' % d in str(e.value) and 'sha256sum' in str(e.value)


def test_urls_go_through_the_opener():
    seen = []

    def opener(url, missing_ok):
        seen.append((url, missing_ok))
        return b'' if url.endswith('SHA256SUMS') else None
    assert repofetch.fetch_index(repofetch.Source(base='http://h/r'), opener, None)['index'] == 'http://h/r/SHA256SUMS'
    assert seen == [('http://h/r/SHA256SUMS', False)]


def _fetch_in_worker(args):
    play, base, counter, cache = args
    calls = []

    def opener(url, missing_ok):
        calls.append(url)
        with open(counter, 'a') as f:
            f.write(url + '\n')
        return b'%s  d-1-x86-64.raw\n' % (b'a' * 64)
    got, hit = repofetch.cached_index(play, repofetch.Source(base=base), opener, None, cache)
    return got['entries'], hit


def test_the_index_is_fetched_once_per_play_by_concurrent_workers(tmp_path):
    """Each host's task runs in a worker process of its own: five at once fetch once."""
    counter = str(tmp_path / 'fetches')
    base = 'http://h/%s/' % tmp_path.name
    with multiprocessing.get_context('fork').Pool(5) as pool:
        got = pool.map(_fetch_in_worker, [('play-1', base, counter, str(tmp_path))] * 5)
    assert [e for e, _hit in got] == [[('d-1-x86-64.raw', 'a' * 64)]] * 5
    assert sorted(hit for _e, hit in got) == [False, True, True, True, True]
    assert _fetch_in_worker(('play-2', base, counter, str(tmp_path)))[1] is False     # another play fetches again
    with open(counter) as f:
        assert f.read().splitlines() == [base + 'SHA256SUMS'] * 2


def test_a_fetch_error_is_kept_for_the_play_too(tmp_path):
    calls = []

    def opener(url, missing_ok):
        calls.append(url)
        raise repository.RepositoryError('cannot fetch %s: HTTP 404 Not Found' % url)
    src = repofetch.Source(base='http://h/%s/' % tmp_path.name)
    for _attempt in range(3):
        with pytest.raises(repository.RepositoryError, match='HTTP 404'):
            repofetch.cached_index('play-e', src, opener, None, str(tmp_path))
    assert len(calls) == 1
    assert oct(os.stat(tmp_path / 'tucked-sysext-index').st_mode & 0o777) == '0o700'


def test_file_names_are_quoted_in_urls_and_not_in_directories():
    assert repofetch.Source(base='http://h/r').file('d-1~rc1#2?.raw') == 'http://h/r/d-1~rc1%232%3F.raw'
    assert repofetch.Source(directory='/srv/r').file('d-1#2.raw') == '/srv/r/d-1#2.raw'


def test_an_armored_keyring_is_named_as_such(tmp_path, keys):
    """gpgv reads only binary keyrings: an exported --armor key is refused saying so and how to convert it."""
    src = repo(tmp_path, 'trusted', keys)
    armored = tmp_path / 'key.asc'
    armored.write_bytes(gpg(keys['trusted'][0], '--export', '--armor'))
    with pytest.raises(repository.RepositoryError, match=r'is ASCII-armored, which gpgv cannot read: convert it with '
                                                         r'gpg --dearmor'):
        repofetch.fetch_index(src, no_url, str(armored))
