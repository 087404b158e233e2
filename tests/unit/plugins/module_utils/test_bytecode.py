# -*- coding: utf-8 -*-
"""The compiled-code cache for module_utils run from a zip (as AnsiballZ runs them).

Each case builds a zip laid out like an AnsiballZ payload (this collection's bytecode.py and
a small module_utils module) and imports from it in a fresh interpreter."""

import json
import os
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import bytecode

PKG = 'ansible_collections/tucked/sysext/plugins/module_utils'
PROBE = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.tucked.sysext.plugins.module_utils import bytecode
from ansible_collections.tucked.sysext.plugins.module_utils import sample
print(json.dumps({'hook': any(isinstance(f, bytecode.Finder) for f in sys.meta_path),
                  'value': sample.VALUE, 'file': sample.__file__,
                  'loader': type(sample.__loader__).__name__}))
'''


def make_zip(path, sample_source):
    with open(bytecode.__file__, 'rb') as f:
        own = f.read()
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        for d in ('ansible_collections', 'ansible_collections/tucked', 'ansible_collections/tucked/sysext',
                  'ansible_collections/tucked/sysext/plugins', PKG):
            z.writestr(d + '/__init__.py', '')
        z.writestr(PKG + '/bytecode.py', own)
        z.writestr(PKG + '/sample.py', sample_source)
    return str(path)


def probe(zip_path, cache, **env):
    full = dict(os.environ, TUCKED_SYSEXT_PYCACHE_DIR=str(cache), **env)
    res = subprocess.run([sys.executable, '-B', '-c', PROBE, zip_path], capture_output=True, text=True, env=full, check=True)
    return json.loads(res.stdout)


def entries(cache):
    return sorted(n for n in os.listdir(cache) if n.endswith('.pyc')) if os.path.isdir(cache) else []


def test_second_import_uses_the_cache(tmp_path):
    z = make_zip(tmp_path / 'payload.zip', 'VALUE = 1\n')
    cache = tmp_path / 'cache'
    first = probe(z, cache)
    assert first == {'hook': True, 'value': 1, 'file': z + '/' + PKG + '/sample.py', 'loader': 'CachingLoader'}
    assert len(entries(cache)) == 1 and oct(os.stat(cache).st_mode & 0o777) == '0o700'
    # the cached code is what runs: swap in the code of another source under the same key
    name = entries(cache)[0]
    bytecode.store(str(cache), name[:-4], compile('VALUE = 42\n', 'x', 'exec'))
    assert probe(z, cache)['value'] == 42


def test_changed_source_is_compiled_again(tmp_path):
    cache = tmp_path / 'cache'
    probe(make_zip(tmp_path / 'a.zip', 'VALUE = 1\n'), cache)
    assert probe(make_zip(tmp_path / 'b.zip', 'VALUE = 2\n'), cache)['value'] == 2
    assert len(entries(cache)) == 2


def test_untrusted_cache_is_not_used(tmp_path):
    z = make_zip(tmp_path / 'payload.zip', 'VALUE = 1\n')
    cache = tmp_path / 'cache'
    probe(z, cache)
    name = entries(cache)[0]
    bytecode.store(str(cache), name[:-4], compile('VALUE = 42\n', 'x', 'exec'))
    os.chmod(cache / name, 0o666)            # writable by others: ignored
    assert probe(z, cache)['value'] == 1
    os.chmod(cache, 0o777)                   # so is a directory writable by others
    assert probe(z, cache) == {'hook': False, 'value': 1, 'file': z + '/' + PKG + '/sample.py', 'loader': 'zipimporter'}
    os.chmod(cache, 0o700)
    os.unlink(cache / name)
    os.symlink('/etc/hostname', cache / name)  # entries are never followed
    assert probe(z, cache)['value'] == 1


def test_garbage_in_the_cache_falls_back_to_compiling(tmp_path):
    z = make_zip(tmp_path / 'payload.zip', 'VALUE = 1\n')
    cache = tmp_path / 'cache'
    probe(z, cache)
    with open(cache / entries(cache)[0], 'wb') as f:
        f.write(b'\x00garbage')
    assert probe(z, cache)['value'] == 1


def test_switched_off_and_outside_a_zip(tmp_path):
    z = make_zip(tmp_path / 'payload.zip', 'VALUE = 1\n')
    cache = tmp_path / 'cache'
    assert probe(z, cache, TUCKED_SYSEXT_PYCACHE='0')['hook'] is False
    assert not cache.exists()
    # imported from files (unit tests, plain Python): nothing is installed
    assert bytecode.install() is False


def test_stale_entries_are_pruned(tmp_path):
    cache = tmp_path / 'cache'
    cache.mkdir(mode=0o700)
    old = cache / ('0' * 64 + '.pyc')
    old.write_bytes(b'x')
    os.utime(old, (1, 1))
    bytecode.store(str(cache), '1' * 64, compile('', 'x', 'exec'))
    assert entries(cache) == ['1' * 64 + '.pyc']


@pytest.mark.parametrize('mode', [0o600, 0o644])
def test_private_files_are_trusted(tmp_path, mode):
    cache = tmp_path / 'cache'
    cache.mkdir(mode=0o700)
    bytecode.store(str(cache), 'k', compile('VALUE = 3\n', 'x', 'exec'))
    os.chmod(cache / 'k.pyc', mode)
    ns = {}
    exec(bytecode.load(str(cache), 'k'), ns)  # pylint: disable=exec-used
    assert ns['VALUE'] == 3
