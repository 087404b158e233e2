# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``sysext.conf`` / ``confext.conf`` (sysext.conf(5)) as systemd-sysext 262 reads them, and
the effective settings with where each came from.

Checked against systemd 262 with ``--root=``: the files are read inside the root, never the
machine's own. The main file is the first of ``/etc/systemd/``, ``/run/systemd/``,
``/usr/local/lib/systemd/`` and ``/usr/lib/systemd/`` that has one (an empty one in /etc hides
the vendor's); then the drop-ins ``*.conf`` of the four ``sysext.conf.d/`` directories, sorted
by file name, one of a name in a higher directory hiding the others, a symlink to /dev/null
masking. Later assignments win. ``[SysExt]`` (``[ConfExt]``) holds ``Mutable=`` and
``ImagePolicy=``; unknown sections and keys, lines without ``=`` and bad values are warned
about and ignored. A file systemd cannot parse (a broken section header, an image policy
without ``=``) makes it ignore its whole configuration, the files read before included, with
a warning. The environment variable
``SYSTEMD_SYSEXT_MUTABLE_MODE`` (``..._CONFEXT_...``) overrides the files, the module
parameters (systemd's command line) override both.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from . import policy as policy_mod
from . import rootfs
from .release import CONFEXT, SYSEXT, parse_boolean

DIRS = ('/etc/systemd', '/run/systemd', '/usr/local/lib/systemd', '/usr/lib/systemd')
FILE = {SYSEXT: 'sysext.conf', CONFEXT: 'confext.conf'}
SECTION = {SYSEXT: 'SysExt', CONFEXT: 'ConfExt'}
MUTABLE_ENV = {SYSEXT: 'SYSTEMD_SYSEXT_MUTABLE_MODE', CONFEXT: 'SYSTEMD_CONFEXT_MUTABLE_MODE'}
MUTABLE_MODES = ('no', 'yes', 'auto', 'import', 'ephemeral', 'ephemeral-import')
MAX_SIZE = 1 << 20
KEYS = ('Mutable', 'ImagePolicy')


class Setting(NamedTuple):
    value: str | None           # None: systemd's built-in default
    source: str                 # 'default', 'parameter', 'environment' or 'FILE:LINE'

    def as_dict(self) -> dict:
        return {'value': self.value, 'source': self.source}


class Settings(NamedTuple):
    mutable: Setting
    image_policy: Setting
    files: tuple                # in-root paths read, in order
    warnings: tuple


def parse_mutable(value: str) -> str | None:
    """config_parse_mutable_mode(): a mode name or a boolean (true is ``yes``)."""
    if value in MUTABLE_MODES:
        return value
    b = parse_boolean(value)
    if b is None:
        return None
    return 'yes' if b else 'no'


def _in_dir(root: str, d: str, fname: str) -> tuple[str, str] | None:
    """(in-root path, host path) of the entry ``d/fname``: its directory resolved inside the
    root, the entry itself not followed; None when there is no such entry."""
    try:
        host_dir = rootfs.resolve(root, d)
    except OSError:
        return None
    host = os.path.join(host_dir, fname)
    return ('%s/%s' % (d, fname), host) if os.path.lexists(host) else None


def _readable(root: str, inroot: str, host: str) -> str | None:
    """The file to read for the entry ``host``, symlinks followed inside the root; None when it
    is masked (a link to /dev/null) or no regular file."""
    try:
        if os.path.islink(host) and os.readlink(host) == '/dev/null':
            return None
        target = rootfs.resolve(root, inroot)
    except OSError:
        return None
    return target if os.path.isfile(target) else None


def config_files(root: str, cls: str) -> list:
    """(in-root path, host path) of the files systemd reads, in the order it reads them."""
    out = []
    for d in DIRS:
        found = _in_dir(root, d, FILE[cls])
        if found:
            target = _readable(root, *found)
            if target is not None:
                out.append((found[0], target))
            break
    dropins: dict = {}
    for d in DIRS:
        ddir = '%s/%s.d' % (d, FILE[cls])
        try:
            names = os.listdir(rootfs.resolve(root, ddir))
        except OSError:
            continue
        for fname in names:
            if fname.endswith('.conf') and fname not in dropins:
                dropins[fname] = _in_dir(root, ddir, fname)
    for fname in sorted(dropins):
        if dropins[fname]:
            target = _readable(root, *dropins[fname])
            if target is not None:
                out.append((dropins[fname][0], target))
    return out


class ParseError(ValueError):
    """Something systemd cannot parse: it stops reading its configuration there."""


def parse(text: str, where: str, section: str) -> tuple[list, list, ParseError | None]:
    """config_parse(): ([(key, value, line number)], warnings, error) of ``section``; the items
    are those before the error, if there is one."""
    items, warnings = [], []
    current = None
    lines = text.split('\n')
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i]
        i += 1
        while line.endswith('\\') and i < len(lines):   # continuation lines
            line = line[:-1] + ' ' + lines[i]
            i += 1
        line = line.strip()
        if not line or line[0] in '#;':
            continue
        if line.startswith('['):
            if not line.endswith(']') or len(line) < 3:
                return items, warnings, ParseError('%s:%d: invalid section header %r' % (where, lineno, line))
            current = line[1:-1]
            if current != section and not current.startswith('X-'):
                warnings.append("%s:%d: unknown section '%s', ignoring it (systemd reads [%s])"
                                % (where, lineno, current, section))
            continue
        key, sep, value = line.partition('=')
        if not sep:
            warnings.append('%s:%d: missing "=", ignoring the line' % (where, lineno))
            continue
        if current is None:
            warnings.append('%s:%d: assignment outside of a section, ignoring it' % (where, lineno))
            continue
        if current != section:
            continue
        key = key.strip()
        if key not in KEYS:
            if not key.startswith('X-'):
                warnings.append("%s:%d: unknown key '%s' in [%s], ignoring it" % (where, lineno, key, section))
            continue
        items.append((key, value.strip(), lineno))
    return items, warnings, None


def load(root: str, cls: str, environ=None) -> Settings:
    """The settings of ``cls`` from the root's config files and the environment (stat-level
    when there are none: four lstat and four listdir calls)."""
    environ = os.environ if environ is None else environ
    mutable = Setting(None, 'default')
    policy = Setting(None, 'default')
    files, warnings = [], []
    for inroot, host in config_files(root, cls):
        files.append(inroot)
        items, error = _read(inroot, host, cls, warnings)
        for key, value, lineno in items:
            src = '%s:%d' % (inroot, lineno)
            if key == 'Mutable':
                mutable = _mutable_setting(value, src, warnings) or mutable
                continue
            try:
                policy = _policy_setting(value, src)
            except ParseError as e:
                error = e
                break
        if error is not None:
            # systemd then uses none of its configuration (checked against 262)
            warnings.append('%s; systemd-%s ignores all of its configuration then' % (error, cls))
            mutable = policy = Setting(None, 'default')
            break
    env = environ.get(MUTABLE_ENV[cls])
    if env is not None:
        mode = parse_mutable(env)
        if mode is None:
            warnings.append('%s=%s is not a mutable mode, ignoring it' % (MUTABLE_ENV[cls], env))
        else:
            mutable = Setting(mode, 'environment')
    return Settings(mutable=mutable, image_policy=policy, files=tuple(files), warnings=tuple(warnings))


def _read(inroot: str, host: str, cls: str, warnings: list) -> tuple[list, ParseError | None]:
    try:
        data = rootfs.read_regular(host, MAX_SIZE)
    except OSError as e:
        return [], ParseError('%s: %s' % (inroot, e.strerror))
    if len(data) > MAX_SIZE:
        return [], ParseError('%s is larger than %d bytes' % (inroot, MAX_SIZE))
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        return [], ParseError('%s is not valid UTF-8 (byte %d)' % (inroot, e.start))
    items, warns, error = parse(text, inroot, SECTION[cls])
    warnings.extend(warns)
    return items, error


def _mutable_setting(value: str, src: str, warnings: list) -> Setting | None:
    """config_parse_mutable_mode(): a bad (also an empty) value is ignored with a warning."""
    mode = parse_mutable(value)
    if mode is None:
        warnings.append('%s: Mutable=%s is not one of %s or a boolean, ignoring it' % (src, value, ', '.join(MUTABLE_MODES)))
        return None
    return Setting(mode, src)


def _policy_setting(value: str, src: str) -> Setting:
    """config_parse_image_policy(): parsed gracefully (unknown names and flags dropped), the
    empty value resets to the default; a value that cannot be parsed raises ParseError."""
    if not value:
        return Setting(None, src)
    try:
        return Setting(policy_mod.parse(value, graceful=True).text, src)
    except policy_mod.PolicyError as e:
        raise ParseError('%s: ImagePolicy=%s cannot be parsed: %s' % (src, value, e)) from None


def effective(settings: Settings, mutable: str | None, image_policy: str | None) -> Settings:
    """``settings`` with the module parameters (systemd's command line) applied on top."""
    return settings._replace(
        mutable=Setting(mutable, 'parameter') if mutable is not None else settings.mutable,
        image_policy=Setting(image_policy, 'parameter') if image_policy is not None else settings.image_policy)
