# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Debian packages a Python image is built from: finding them in a directory, their
control fields (``dpkg-deb -f``), which interpreter they hold, unpacking them
(``dpkg-deb -x``), and the version names derived from the interpreter's package."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass

from . import proc
from .buildtools import BuildError, hash_file

DEB_SUFFIX = '.deb'
# The interpreter's package and the two that hold its standard library (python3.X-minimal
# ships the binary, libpython3.X-minimal the core modules, libpython3.X-stdlib the rest).
_MINIMAL = re.compile(r'^python3\.([0-9]+)-minimal$')
REQUIRED = ('python3.%d-minimal', 'libpython3.%d-minimal', 'libpython3.%d-stdlib')
TOOLS = {'dpkg-deb': 'dpkg', 'patchelf': 'patchelf'}
# what sysext_image's store accepts in a version (and systemd in IMAGE_VERSION)
_VERSION_CHARS = re.compile(r'[^A-Za-z0-9.~^-]')
_UPSTREAM = re.compile(r'^(?:[0-9]+:)?([0-9]+\.[0-9]+(?:\.[0-9]+)?)')


@dataclass(frozen=True)
class Deb:
    path: str
    package: str
    version: str
    architecture: str
    sha256: str

    @property
    def key(self) -> list:
        return [self.package, self.version, self.architecture, self.sha256]


def find_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path='/usr/sbin:/sbin:/usr/bin:/bin')
    if not path:
        raise BuildError('%s is not installed on the controller; install the package %s (Debian and Ubuntu: '
                         'apt-get install %s; Fedora: dnf install %s)' % (name, TOOLS[name], TOOLS[name], TOOLS[name]))
    return path


def _run(cmd: list, what: str) -> str:
    try:
        res = proc.run(cmd, capture_output=True, check=False, env=dict(os.environ, LC_ALL='C'))
    except OSError as e:
        raise BuildError('cannot run %s: %s' % (cmd[0], e.strerror)) from None
    if res.returncode != 0:
        err = (res.stderr or res.stdout).decode('utf-8', 'replace').strip()
        raise BuildError('%s failed (%s exited with %d): %s'
                         % (what, os.path.basename(cmd[0]), res.returncode, err[-2000:] or 'no output'))
    return res.stdout.decode('utf-8', 'replace')


def control(dpkg_deb: str, path: str) -> dict:
    """Package, Version and Architecture of the .deb at ``path``."""
    out = _run([dpkg_deb, '--showformat=${Package}\\n${Version}\\n${Architecture}\\n', '--show', path],
               'reading the control fields of %s' % path)
    lines = out.splitlines()
    if len(lines) < 3 or not all(lines[:3]):
        raise BuildError('%s has no Package, Version and Architecture fields; is it a Debian package?' % path)
    return {'Package': lines[0], 'Version': lines[1], 'Architecture': lines[2]}


def list_debs(directory: str, dpkg_deb: str) -> list[Deb]:
    """The .deb files directly in ``directory`` (not its subdirectories), sorted by package name."""
    if not os.path.isabs(directory) or not os.path.isdir(directory):
        raise BuildError('debs %s %s; give the directory on the controller that holds the .deb files (scripts/'
                         'bootstrap.sh python-debs fills one)' % (directory, 'is not a directory' if os.path.exists(
                             directory) else 'does not exist' if os.path.isabs(directory) else 'is not absolute'))
    names = sorted(n for n in os.listdir(directory) if n.endswith(DEB_SUFFIX))
    debs: dict = {}
    for n in names:
        path = os.path.join(directory, n)
        if not os.path.isfile(path):
            continue
        fields = control(dpkg_deb, path)
        deb = Deb(path, fields['Package'], fields['Version'], fields['Architecture'], hash_file(path))
        other = debs.get(deb.package)
        if other is not None:
            raise BuildError('%s holds two versions of %s (%s in %s, %s in %s); remove the one not to use'
                             % (directory, deb.package, other.version, os.path.basename(other.path), deb.version, n))
        debs[deb.package] = deb
    if not debs:
        raise BuildError('%s holds no .deb files; download them first (scripts/bootstrap.sh python-debs, or '
                         'apt-get download python3.11-minimal libpython3.11-minimal libpython3.11-stdlib and the '
                         'libraries they depend on)' % directory)
    return [debs[k] for k in sorted(debs)]


def interpreter(debs: list[Deb], directory: str) -> tuple[int, Deb]:
    """(X of python3.X, the python3.X-minimal package); checks its standard library packages are there."""
    minimal = [d for d in debs if _MINIMAL.match(d.package)]
    if not minimal:
        raise BuildError('%s holds no python3.X-minimal package (the interpreter); download it with apt-get download '
                         'python3.11-minimal (scripts/bootstrap.sh python-debs)' % directory)
    if len(minimal) > 1:
        raise BuildError('%s holds more than one interpreter (%s); keep the packages of one Python version only'
                         % (directory, ', '.join(d.package for d in minimal)))
    deb = minimal[0]
    minor = int(_MINIMAL.match(deb.package).group(1))
    have = {d.package: d for d in debs}
    missing = [p % minor for p in REQUIRED if p % minor not in have]
    if missing:
        raise BuildError('%s lacks %s, which the interpreter %s needs for its standard library; download %s with '
                         'apt-get download' % (directory, ', '.join(missing), deb.package, ' '.join(missing)))
    for p in REQUIRED[1:]:
        if have[p % minor].version != deb.version:
            raise BuildError('%s is version %s but %s is %s; download matching versions (apt-get download %s=%s)'
                             % (p % minor, have[p % minor].version, deb.package, deb.version, p % minor, deb.version))
    arches = sorted({d.architecture for d in debs} - {'all'})
    if len(arches) > 1:
        raise BuildError('%s mixes packages of the architectures %s; keep those of one architecture'
                         % (directory, ', '.join(arches)))
    return minor, deb


def unpack(dpkg_deb: str, deb: Deb, dest: str) -> None:
    os.makedirs(dest)
    _run([dpkg_deb, '-x', deb.path, dest], 'unpacking %s' % deb.path)


def image_version(debian_version: str) -> str:
    """The Debian version as an image version: every character outside ``[A-Za-z0-9.~^-]``
    becomes ``.`` (``3.11.2-6+deb12u6`` -> ``3.11.2-6.deb12u6``), which sysext_image's store
    and systemd's IMAGE_VERSION accept."""
    return _VERSION_CHARS.sub('.', debian_version)


def python_version(debian_version: str) -> str:
    """The upstream Python version of a Debian version (``3.11.2-6+deb12u6`` -> ``3.11.2``)."""
    m = _UPSTREAM.match(debian_version)
    if not m:
        raise BuildError('cannot read a Python version from the Debian version %r of the interpreter package'
                         % debian_version)
    return m.group(1)
