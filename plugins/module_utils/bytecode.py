# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A compiled-code cache for this collection's module_utils when they run from an AnsiballZ zip.

Ansible ships module_utils as source inside the module's zip and Python compiles them on every
task (no ``__pycache__`` in a zip): for the engine that is most of what a no-change task costs
beyond a ping. Imported first by the modules, this installs an import hook that, for this
collection's modules loaded from a zip only, keeps their code objects in a private cache
directory, keyed by the SHA-256 of the Python magic number, module name and source, so a
changed collection or Python never reuses stale code.

The cache directory is ``/var/cache/tucked-sysext/pycache`` for root and
``$XDG_CACHE_HOME/tucked-sysext/pycache`` (default ``~/.cache``) for other users. It is used
only when it is a real directory owned by the user running the module and writable by no one
else; entries must be regular files with the same owner. Anything unexpected falls back to
compiling, as Python would. In the target's environment, ``TUCKED_SYSEXT_PYCACHE=0`` turns the
cache off and ``TUCKED_SYSEXT_PYCACHE_DIR`` puts it elsewhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import marshal
import os
import stat
import sys
import time
import zipimport

PREFIX = __name__.rpartition('.')[0] + '.'
MAX_AGE = 30 * 86400          # entries unused that long are removed when a new one is written


def cache_dir() -> str:
    if os.environ.get('TUCKED_SYSEXT_PYCACHE_DIR'):
        return os.environ['TUCKED_SYSEXT_PYCACHE_DIR']
    if os.geteuid() == 0:
        return '/var/cache/tucked-sysext/pycache'
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'tucked-sysext', 'pycache')


def _private(st: os.stat_result, kind) -> bool:
    return kind(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _usable_dir(path: str, create: bool) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return False
        try:
            os.makedirs(path, mode=0o700)
            st = os.lstat(path)
        except OSError:
            return False
    except OSError:
        return False
    return _private(st, stat.S_ISDIR)


def _key(fullname: str, source: bytes) -> str:
    h = hashlib.sha256(importlib.util.MAGIC_NUMBER)
    h.update(fullname.encode() + b'\0')
    h.update(source)
    return h.hexdigest()


def load(directory: str, key: str):
    """The cached code object for ``key``, or None."""
    try:
        fd = os.open(os.path.join(directory, key + '.pyc'), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not _private(os.fstat(fd), stat.S_ISREG):
            return None
        with os.fdopen(fd, 'rb', closefd=False) as f:
            return marshal.loads(f.read())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    finally:
        os.close(fd)


def store(directory: str, key: str, code) -> None:
    """Write ``code`` atomically (a temporary file renamed in); prune entries gone stale."""
    tmp = os.path.join(directory, '.#%s.%d' % (key, os.getpid()))
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, 'wb') as f:
            f.write(marshal.dumps(code))
        os.rename(tmp, os.path.join(directory, key + '.pyc'))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return
    _prune(directory)


def _prune(directory: str) -> None:
    now = time.time()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and now - max(st.st_atime, st.st_mtime) > MAX_AGE:
                os.unlink(path)
        except OSError:
            pass


class CachingLoader:
    """Loads one of our modules from the zip: same module, cached code.

    zipimport itself (Python 3.11) compiles a module once to find its file name and once more
    to load it; this loader reads the source once and compiles it at most once."""

    def __init__(self, zipped: zipimport.zipimporter, origin: str, source: bytes, directory: str):
        self._zipped = zipped
        self._origin = origin
        self._source = source
        self._dir = directory

    def __getattr__(self, name):        # get_data, get_resource_reader ... of the zipimporter
        return getattr(self._zipped, name)

    def get_filename(self, fullname: str) -> str:    # pylint: disable=unused-argument
        return self._origin

    def get_source(self, fullname: str) -> str:      # pylint: disable=unused-argument
        return self._source.decode('utf-8')

    def is_package(self, fullname: str) -> bool:     # pylint: disable=unused-argument
        return False

    def create_module(self, spec):      # pylint: disable=unused-argument
        return None

    def get_code(self, fullname: str):
        key = _key(fullname, self._source)
        code = load(self._dir, key)
        if code is None:
            code = compile(self._source, self._origin, 'exec', dont_inherit=True)
            store(self._dir, key, code)
        return code

    def exec_module(self, module) -> None:
        exec(self.get_code(module.__name__), module.__dict__)  # pylint: disable=exec-used


class Finder:
    """On sys.meta_path: our plain modules inside a zip get a CachingLoader; anything else
    (packages, modules outside a zip) is left to the usual finders."""

    def __init__(self, directory: str):
        self.directory = directory

    def find_spec(self, fullname, path=None, target=None):    # pylint: disable=unused-argument
        if not fullname.startswith(PREFIX) or not path:
            return None
        leaf = fullname.rpartition('.')[2]
        for entry in path:
            zipped = sys.path_importer_cache.get(entry)
            if not isinstance(zipped, zipimport.zipimporter):
                continue
            origin = os.path.join(entry, leaf + '.py')
            try:
                source = zipped.get_data(origin)
            except OSError:
                continue
            loader = CachingLoader(zipped, origin, source, self.directory)
            return importlib.util.spec_from_file_location(fullname, origin, loader=loader)
        return None


def install() -> bool:
    """Install the hook when this module itself was imported from a zip (an AnsiballZ
    payload) and the cache directory is usable; return whether it was."""
    if not isinstance(globals().get('__loader__'), (zipimport.zipimporter, CachingLoader)):
        return False
    if os.environ.get('TUCKED_SYSEXT_PYCACHE', '1') == '0' or any(isinstance(f, Finder) for f in sys.meta_path):
        return False
    directory = cache_dir()
    if not _usable_dir(directory, create=True):
        return False
    sys.meta_path.insert(0, Finder(directory))
    return True


install()
