# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Python system extension built from Debian's packages, behind sysext_python.

The .deb files are unpacked (``dpkg-deb -x``) into a work directory, the interpreter and its
standard library are laid out under the private prefix ``/usr/lib/tucked-sysext/python``
(pytree), every shared library they need except glibc's is bundled into ``PREFIX/lib`` and
found through a ``$ORIGIN``-relative RUNPATH (``patchelf``), the standard library is compiled
to hash-based bytecode, the manifest ``PREFIX/tucked-python.json`` is written, and the image
is built from that tree by sysext_build's own code (build.run), so it is reproducible and
replaced atomically.

Idempotence: the digest of the inputs (each package's name, version, architecture and sha256,
the options, the identities of patchelf and of the image tool, and what decides which Python
compiles the bytecode) is kept with sysext_build's record in the image's ``user.tucked.build``
xattr. A later run with the same digest unpacks nothing and reports changed=false.
"""

from __future__ import annotations

import compileall
import dataclasses
import hashlib
import json
import os
import platform
import py_compile
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from . import build, buildrequest, elf, proc, pydebs, pytree
from .buildfiles import SUFFIX, read_record, write_record
from .buildtools import BuildError, find_tool, tool_identity
from .fsutil import pid_alive
from .imagefs import image as imagefs

LAYOUT_VERSION = 2          # bump when the layout changes, so that images of older code are rebuilt
RECORD_KEY = 'python_image'
MANIFEST = 'tucked-python.json'
DEFAULT_NAME = 'tucked-python'
_WORK = '.pyimage-'


@dataclass
class Options:
    debs: str
    dest: str
    name: str = DEFAULT_NAME
    version: str | None = None          # default: the Debian version of python3.X-minimal, mangled
    format: str = 'squashfs'
    compression: str | None = None      # default: sysext_build's (squashfs gzip)
    source_date_epoch: int | None = None  # default: $SOURCE_DATE_EPOCH, else the interpreter's mtime in its package
    force: bool = False
    check_mode: bool = False


@dataclass
class Result:
    changed: bool = False
    built: bool = False
    dest: str = ''
    checksum: str | None = None
    sha256: str | None = None
    size: int | None = None
    name: str = DEFAULT_NAME
    version: str = ''
    interpreter: str = ''
    python_version: str = ''
    glibc_min: str | None = None
    architecture: str | None = None
    packages: dict = field(default_factory=dict)
    format: str = 'squashfs'
    compression: str = ''
    dropped: list = field(default_factory=list)
    bytecode: str = ''
    source_date_epoch: int | None = None
    inputs: str = ''
    warnings: list = field(default_factory=list)
    diff: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        keys = ('changed', 'built', 'dest', 'checksum', 'sha256', 'size', 'name', 'version', 'interpreter',
                'python_version', 'glibc_min', 'architecture', 'packages', 'format', 'compression', 'dropped',
                'bytecode', 'source_date_epoch', 'inputs')
        return {k: getattr(self, k) for k in keys}

    def manifest(self) -> dict:
        return {k: getattr(self, k) for k in ('name', 'version', 'python_version', 'interpreter', 'glibc_min',
                                              'architecture', 'packages')}


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + '\n'


def dest_path(dest: str, name: str, version: str) -> str:
    """``dest``, or ``dest/NAME-VERSION.raw`` when it names a directory."""
    if not dest or not os.path.isabs(dest):
        raise BuildError('dest %r must be an absolute path on the controller: the image file, or a directory for '
                         'NAME-VERSION.raw' % (dest,))
    if dest.endswith('/') or os.path.isdir(dest):
        return os.path.join(dest, '%s-%s%s' % (name, version, SUFFIX))
    return dest


def _controller() -> dict:
    """What decides which Python compiles the bytecode (see compile_stdlib)."""
    return {'machine': platform.machine(), 'libc': os.confstr('CS_GNU_LIBC_VERSION') if hasattr(os, 'confstr')
            and 'CS_GNU_LIBC_VERSION' in os.confstr_names else None, 'python': list(sys.version_info[:3])}


def inputs_digest(debs: list, params: dict) -> str:
    doc = {'layout': LAYOUT_VERSION, 'debs': [d.key for d in debs], 'params': params}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def read_manifest(image: str) -> dict | None:
    """The manifest inside a built image, read without mounting; None when unreadable."""
    try:
        fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return json.loads(imagefs.read_file(fd, '%s/%s' % (pytree.PREFIX, MANIFEST), 1 << 20).decode('utf-8'))
    except (imagefs.ImageError, OSError, ValueError):
        return None
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- the tree
def _mode(node_host: str) -> int:
    """Regular files 0755 when executable in the package, else 0644 (umask and user never matter)."""
    return 0o755 if os.stat(node_host).st_mode & 0o111 else 0o644


def _makedirs(tree: str, rel: str) -> None:
    parts = rel.split('/')
    for i in range(1, len(parts) + 1):
        p = os.path.join(tree, *parts[:i])
        if not os.path.isdir(p):
            os.mkdir(p)
            os.chmod(p, 0o755)


def _write_tree(tree: str, lay: pytree.Layout, index: pytree.Index) -> dict:
    """Copies the layout into ``tree``; returns image path -> host path of every file written."""
    written = {}
    files = dict(lay.files)
    files.update(('%s/lib/%s' % (pytree.PREFIX, so), node) for so, node in lay.libs.items())
    for pkg in lay.packages():
        node = index.file('usr/share/doc/%s/copyright' % pkg)
        if node is not None:
            files['%s/share/doc/%s/copyright' % (pytree.PREFIX, pkg)] = node
    for rel in sorted(files):
        _makedirs(tree, os.path.dirname(rel))
        host = os.path.join(tree, rel)
        shutil.copyfile(files[rel].host, host)
        os.chmod(host, _mode(files[rel].host))
        written[rel] = host
    for rel in sorted(lay.links):
        _makedirs(tree, os.path.dirname(rel))
        os.symlink(lay.links[rel], os.path.join(tree, rel))
    for rel in sorted(lay.scripts):
        _makedirs(tree, os.path.dirname(rel))
        host = os.path.join(tree, rel)
        with open(host, 'w', encoding='utf-8') as f:
            f.write(lay.scripts[rel])
        os.chmod(host, 0o755)
    return written


def _patch(patchelf: str, objects: dict, tree: str) -> None:
    """RUNPATH ``$ORIGIN/...`` -> PREFIX/lib on every ELF object, checked by reading it back."""
    for rel in sorted(objects):
        want = pytree.runpath(rel)
        host = os.path.join(tree, rel)
        try:
            res = proc.run([patchelf, '--set-rpath', want, host], capture_output=True, check=False)
        except OSError as e:
            raise BuildError('cannot run %s: %s' % (patchelf, e.strerror)) from None
        if res.returncode != 0:
            raise BuildError('patchelf --set-rpath %s /%s failed (%d): %s' % (
                want, rel, res.returncode, res.stderr.decode('utf-8', 'replace').strip()[-1000:]))
        back = elf.read(host)
        if back.runpath != want or back.rpath is not None or back.needed != objects[rel].needed:
            raise BuildError('/%s after patchelf: RUNPATH %r, RPATH %r, needed %r; expected RUNPATH %r and the same '
                             'needed libraries (is patchelf older than 0.10?)' % (
                                 rel, back.runpath, back.rpath, back.needed, want))


def _tool_env() -> dict:
    """No LD_LIBRARY_PATH, PYTHON* or locale of the caller: the bundled interpreter must find
    everything by itself."""
    return {'PATH': os.environ.get('PATH', '/usr/bin:/bin'), 'LC_ALL': 'C.UTF-8'}


def compile_stdlib(tree: str, lay: pytree.Layout, arch: str | None) -> str:
    """Hash-based (unchecked) bytecode for the standard library, each file's name the final path.
    With the bundled interpreter when it runs here (then the bytes do not depend on the
    controller's Python), else with the controller's own Python when it is the same 3.X."""
    stdlib = os.path.join(tree, pytree.PREFIX, 'lib', 'python3.%d' % lay.minor)
    binary = os.path.join(tree, lay.binary)
    try:
        probe = proc.run([binary, '-I', '-S', '-B', '-c', 'import sys; print(sys.version.split()[0])'],
                         capture_output=True, check=False, env=_tool_env(), timeout=60)
        runs = probe.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        probe, runs = None, False
    if runs:
        cmd = [binary, '-I', '-S', '-B', '-m', 'compileall', '-q', '-f', '-j', '1', '-o', '0',
               '--invalidation-mode', 'unchecked-hash', '-s', tree, '-p', '/', stdlib]
        res = proc.run(cmd, capture_output=True, check=False, env=_tool_env())
        if res.returncode != 0:
            raise BuildError('compiling the standard library with the bundled interpreter failed (%d): %s' % (
                res.returncode, (res.stdout + res.stderr).decode('utf-8', 'replace').strip()[-2000:]))
        return 'bundled interpreter %s' % probe.stdout.decode().strip()
    if sys.version_info[:2] == (3, lay.minor):
        ok = compileall.compile_dir(stdlib, quiet=1, force=True, optimize=0, workers=1, stripdir=tree,
                                    prependdir='/', invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        if not ok:
            raise BuildError('compiling the standard library of the image with the controller\'s Python %s failed'
                             % platform.python_version())
        return 'controller python %s' % platform.python_version()
    why = (probe.stderr.decode('utf-8', 'replace').strip()[-300:] if probe is not None else
           'it cannot be executed here')
    raise BuildError('cannot precompile the standard library: the bundled interpreter (%s) does not run on this '
                     'controller (%s) and the controller\'s Python is %s, not 3.%d; build on a %s controller whose '
                     'glibc is at least the image\'s, or run the module with Python 3.%d' % (
                         arch, why or 'exit %d' % probe.returncode, platform.python_version(), lay.minor, arch,
                         lay.minor))


def stage(opts: Options, debs: list, minor: int, work: str, patchelf: str | None, res: Result) -> str:
    """Unpack, lay out, bundle, patch, compile and describe; returns the tree to build from.
    With ``patchelf`` None (check mode without an image to compare) it stops after the facts."""
    dpkg_deb = pydebs.find_tool('dpkg-deb')
    index = pytree.Index()
    for deb in debs:
        root = os.path.join(work, 'debs', deb.package)
        pydebs.unpack(dpkg_deb, deb, root)
        index.add(deb.package, root)
    lay = pytree.select(index, minor)
    objects = {}
    for rel, node in sorted(lay.files.items()):
        if elf.is_elf(node.host):
            try:
                objects[rel] = elf.read(node.host)
            except elf.ElfError as e:
                raise BuildError('%s (from %s): %s' % ('/' + rel, node.package, e)) from None
    objects = pytree.bundle(index, lay, objects)
    interp = objects[lay.binary]
    res.architecture = interp.architecture
    if res.architecture is None:
        raise BuildError('the interpreter /usr/bin/python3.%d is for a machine (ELF e_machine %d) that systemd has '
                         'no architecture name for' % (minor, interp.machine))
    private = pytree.private_glibc(objects)
    if private:
        raise BuildError('%s need(s) GLIBC_PRIVATE symbols, which only match the exact glibc they were built with; '
                         'leave them out' % ', '.join(private))
    res.glibc_min = elf.version_text(pytree.glibc_min(objects))
    res.packages = {d.package: d.version for d in debs if d.package in lay.packages()}
    res.dropped = ['/' + p for p in lay.dropped]
    res.interpreter = '/%s/bin/python3' % pytree.PREFIX
    res.source_date_epoch = opts.source_date_epoch
    if res.source_date_epoch is None:
        res.source_date_epoch = int(os.stat(lay.files[lay.binary].host).st_mtime)
    tree = os.path.join(work, 'tree')
    os.mkdir(tree)
    os.chmod(tree, 0o755)
    if patchelf is None:
        return tree
    _write_tree(tree, lay, index)
    shutil.rmtree(os.path.join(work, 'debs'))
    _patch(patchelf, objects, tree)
    res.bytecode = compile_stdlib(tree, lay, res.architecture)
    with open(os.path.join(tree, pytree.PREFIX, MANIFEST), 'w', encoding='utf-8') as f:
        f.write(manifest_text(res.manifest()))
    normalize_modes(tree)
    return tree


def normalize_modes(tree: str) -> None:
    """Directories 0755, files 0755 or 0644: what compileall and open() made under the caller's
    umask (``__pycache__``, the .pyc files, the manifest) must not change the image."""
    for dirpath, dirnames, filenames in os.walk(tree):
        os.chmod(dirpath, 0o755)
        for n in filenames:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                os.chmod(p, 0o755 if os.lstat(p).st_mode & 0o100 else 0o644)
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


# ----------------------------------------------------------------------------- the run
def _work_dir(dest: str, check_mode: bool) -> str:
    if check_mode:
        return tempfile.mkdtemp(prefix='tucked-sysext-python-')
    parent = os.path.dirname(dest)
    prefix = '.#%s%s' % (os.path.basename(dest)[:150], _WORK)
    for n in os.listdir(parent):
        pid = n[len(prefix):].split('-', 1)[0]
        if n.startswith(prefix) and pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(os.path.join(parent, n), ignore_errors=True)
    try:
        return tempfile.mkdtemp(prefix='%s%d-' % (prefix, os.getpid()), dir=parent)
    except OSError as e:
        raise BuildError('cannot create a work directory in %s: %s' % (parent, e.strerror)) from None


def _from_record(res: Result, rec: dict, mine: dict) -> None:
    for k, v in mine['manifest'].items():
        setattr(res, k, v)
    res.dropped, res.bytecode = mine.get('dropped', []), mine.get('bytecode', '')
    res.source_date_epoch = mine.get('source_date_epoch')
    res.sha256, res.size = rec['sha256'], os.path.getsize(res.dest)


def run(opts: Options) -> Result:
    """Carry out one sysext_python request. Raises BuildError (dest unchanged) on bad input."""
    buildrequest.check_name(opts.name)
    if opts.format not in buildrequest.FORMATS:
        raise BuildError('format must be one of %s' % ', '.join(buildrequest.FORMATS))
    dpkg_deb = pydebs.find_tool('dpkg-deb')
    patchelf = pydebs.find_tool('patchelf')
    image_tool = find_tool(opts.format)
    debs = pydebs.list_debs(opts.debs, dpkg_deb)
    minor, deb = pydebs.interpreter(debs, opts.debs)
    version = opts.version if opts.version is not None else pydebs.image_version(deb.version)
    buildrequest.release_fields(buildrequest.Options(src='', dest='', version=version))
    if opts.source_date_epoch is not None or os.environ.get('SOURCE_DATE_EPOCH', '').strip():
        opts = dataclasses.replace(opts, source_date_epoch=buildrequest.check_epoch(opts.source_date_epoch))
    dest = dest_path(opts.dest, opts.name, version)
    if not os.path.isdir(os.path.dirname(dest)):
        raise BuildError('the directory of dest, %s, does not exist; create it first' % os.path.dirname(dest))
    res = Result(dest=dest, name=opts.name, version=version, format=opts.format,
                 compression=opts.compression or build.COMPRESSION[opts.format][0],
                 python_version=pydebs.python_version(deb.version))
    params = {'name': opts.name, 'version': version, 'format': opts.format, 'compression': res.compression,
              'epoch': opts.source_date_epoch, 'patchelf': tool_identity(patchelf), 'tool': tool_identity(image_tool),
              'controller': _controller()}
    res.inputs = inputs_digest(debs, params)
    existing = os.path.isfile(dest)
    rec = read_record(dest) if existing else None
    mine = (rec or {}).get(RECORD_KEY) or {}
    before = manifest_text(mine['manifest']) if mine.get('manifest') else (
        manifest_text(read_manifest(dest) or {}) if existing else '')
    if mine.get('inputs') == res.inputs and not opts.force:
        _from_record(res, rec, mine)
        res.checksum = 'sha256:' + res.sha256
        res.diff = {'before': before, 'after': before}
        return res

    work = _work_dir(dest, opts.check_mode)
    try:
        # check mode without an image to compare: the facts only, no patching or compiling
        quick = opts.check_mode and not existing
        tree = stage(opts, debs, minor, work, None if quick else patchelf, res)
        if quick:
            res.changed = True
            res.diff = {'before': '', 'after': manifest_text(res.manifest())}
            return res
        out = build.run(build.Options(src=tree, dest=dest, name=opts.name, format=opts.format,
                                      compression=opts.compression, architecture=res.architecture, version=version,
                                      source_date_epoch=res.source_date_epoch, force=opts.force,
                                      check_mode=opts.check_mode))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.warnings += out.warnings
    res.changed, res.built, res.sha256, res.size = out.changed, out.built, out.sha256, out.size
    res.checksum = 'sha256:' + res.sha256 if res.sha256 else None
    res.diff = {'before': before, 'after': manifest_text(res.manifest())}
    if not opts.check_mode:
        new = read_record(dest)
        mine = {'inputs': res.inputs, 'manifest': res.manifest(), 'dropped': res.dropped, 'bytecode': res.bytecode,
                'source_date_epoch': res.source_date_epoch}
        if new is None or not write_record(dest, dict(new, **{RECORD_KEY: mine})):
            res.warnings.append('%s keeps no user xattrs, so the inputs of this build cannot be recorded: every run '
                                'builds the image again to compare it (changed stays false when it is identical)'
                                % os.path.dirname(dest))
    return res
