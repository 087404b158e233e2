# -*- coding: utf-8 -*-
"""Installed in the test VM only (tests/vm/test_verity.py, through a .pth file): a compiled-code
cache for Ansible's own module_utils when they run from an AnsiballZ payload zip.

Ansible ships ``ansible.module_utils`` as source inside every module's zip, and zipimport has no
``__pycache__``: each task compiles ``basic`` and its 50-odd imports again (twice each: once to
find the file name, once to load it). Under the VM's emulated CPU that is about half of the
6-7 s a task costs on the guest. This hook gives those modules the same code objects, compiled
once per VM boot: keyed by the SHA-256 of the Python magic number, module name and source, with
the file name fixed up to the current payload's path, as importlib does for ``__pycache__``.
Nothing else is touched: not the collection's own code (its module_utils have their own cache,
plugins/module_utils/bytecode.py, which the tests exercise as a host runs it), not any module
outside an ``ansible_*_payload.zip``. ``TUCKED_VM_PYCACHE=0`` in the environment turns it off.
"""

from __future__ import annotations

import os
import sys

# (imported by every Python on the VM: what only a payload needs is imported when one runs)

CACHE = '/var/cache/tucked-vm/pycache'


def _archive(entry: str) -> str | None:
    """The payload zip a path entry is in (the zip itself or a directory inside it), or None."""
    head, sep, _rest = entry.partition('_payload.zip')
    if not sep or not os.path.basename(head).startswith('ansible_'):
        return None
    return head + sep


class Loader:
    """One module or package of the payload: zipimport's answers, code from the cache."""

    def __init__(self, zipped, origin: str, source: bytes, package: bool):
        self._zipped = zipped
        self._origin = origin
        self._source = source
        self._package = package

    def __getattr__(self, name):        # get_data, get_resource_reader ... of the zipimporter
        return getattr(self._zipped, name)

    def get_filename(self, fullname):
        return self._origin

    def get_source(self, fullname):
        return self._source.decode('utf-8')

    def is_package(self, fullname):
        return self._package

    def create_module(self, spec):
        return None

    def get_code(self, fullname):
        import hashlib
        import importlib.util
        import marshal
        try:
            from _imp import _fix_co_filename
        except ImportError:  # (CPython has it)
            _fix_co_filename = None

        h = hashlib.sha256(importlib.util.MAGIC_NUMBER)
        h.update(fullname.encode() + b'\0')
        h.update(self._source)
        path = os.path.join(CACHE, h.hexdigest() + '.pyc')
        try:
            with open(path, 'rb') as f:
                code = marshal.loads(f.read())
            if _fix_co_filename is not None:
                _fix_co_filename(code, self._origin)
            return code
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = compile(self._source, self._origin, 'exec', dont_inherit=True)
        tmp = '%s.%d.tmp' % (path, os.getpid())
        try:
            with open(tmp, 'wb') as f:
                f.write(marshal.dumps(code))
            os.rename(tmp, path)
        except OSError:
            pass
        return code

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)  # pylint: disable=exec-used


class Finder:
    """On sys.meta_path: ``ansible`` and ``ansible.*`` from a payload zip get a Loader."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != 'ansible' and not fullname.startswith('ansible.'):
            return None
        import importlib.util
        import zipimport

        leaf = fullname.rpartition('.')[2]
        for entry in (sys.path if path is None else path):
            archive = _archive(entry)
            if archive is None:
                continue
            try:
                zipped = zipimport.zipimporter(archive)
            except zipimport.ZipImportError:
                continue
            for name, package in ((os.path.join(leaf, '__init__.py'), True), (leaf + '.py', False)):
                origin = os.path.join(entry, name)
                try:
                    source = zipped.get_data(origin)
                except OSError:
                    continue
                return importlib.util.spec_from_file_location(
                    fullname, origin, loader=Loader(zipped, origin, source, package),
                    submodule_search_locations=[os.path.join(entry, leaf)] if package else None)
        return None


def install() -> None:
    if os.environ.get('TUCKED_VM_PYCACHE', '1') == '0' or any(isinstance(f, Finder) for f in sys.meta_path):
        return
    try:
        os.makedirs(CACHE, mode=0o700, exist_ok=True)
    except OSError:
        return
    sys.meta_path.insert(0, Finder())


install()
