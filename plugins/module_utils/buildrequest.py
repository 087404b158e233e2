# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A sysext_build request: its options, the extension name, the release fields and their
text (written so that systemd's parser reads back exactly the fields), and the timestamp."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from . import images
from .buildfiles import SUFFIX
from .buildtools import BuildError
from .release import CONFEXT, SYSEXT, ReleaseError, level_key, parse_env, scope_key

FORMATS = ('squashfs', 'erofs')
KINDS = (SYSEXT, CONFEXT)
CONTAINERS = ('filesystem', 'ddi')
SCOPES = ('system', 'initrd', 'portable')
# systemd's architecture names (src/basic/architecture.c), plus _any.
ARCHITECTURES = ('_any', 'alpha', 'arc', 'arc-be', 'arm', 'arm-be', 'arm64', 'arm64-be', 'cris', 'ia64',
                 'loongarch64', 'm68k', 'mips', 'mips-le', 'mips64', 'mips64-le', 'nios2', 'parisc', 'parisc64',
                 'ppc', 'ppc-le', 'ppc64', 'ppc64-le', 'riscv32', 'riscv64', 's390', 's390x', 'sh', 'sh64',
                 'sparc', 'sparc64', 'tilegx', 'x86', 'x86-64')
EPOCH_MAX = 0xFFFFFFFF    # squashfs stores 32-bit unsigned timestamps
RELEASE_PREFIX = 'extension-release.'
# os-release field values that need no quoting (systemd writes them bare too).
_BARE = re.compile(r'^[A-Za-z0-9_.:/@%+=,-]*$')
_KEY = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
# ID, VERSION_ID and the levels follow os-release(5): lower-case letters, digits, '.', '_', '-'.
_ID_LIKE = re.compile(r'^[a-z0-9._-]+$')
_VERSION_ID = re.compile(r'^[A-Za-z0-9._~-]+$')
_VERSION = re.compile(r'^[A-Za-z0-9][A-Za-z0-9.~^-]{0,127}$')


@dataclass
class Options:
    src: str
    dest: str
    name: str | None = None              # default: basename of dest without .raw (and .sysext/.confext)
    kind: str = SYSEXT
    format: str = 'squashfs'
    compression: str | None = None       # default: COMPRESSION[format][0]
    compression_level: int | None = None
    cluster_size: int | None = None      # erofs -C, squashfs -b
    erofs_features: list | None = None   # mkfs.erofs -E
    container: str = 'filesystem'        # or ddi
    release: dict | None = None          # further KEY: value fields
    id: str | None = None                # default _any
    version_id: str | None = None
    level: str | None = None
    architecture: str | None = None
    scope: list | None = None
    version: str | None = None           # IMAGE_VERSION
    source_date_epoch: int | None = None  # default: $SOURCE_DATE_EPOCH, else 0
    xattrs: bool = False
    verity: bool = False
    signing_key: str | None = None       # with container ddi and verity: the signature partition
    signing_certificate: str | None = None
    force: bool = False
    check_mode: bool = False


# ----------------------------------------------------------------------------- validation
def default_name(dest: str, kind: str) -> str:
    """The name systemd gives an image file: the file name without ``.raw``, then without
    the class suffix (``.sysext``/``.confext``)."""
    name = os.path.basename(dest.rstrip('/'))
    if name.endswith(SUFFIX):
        name = name[:-len(SUFFIX)]
    cls_suffix = images.CLASS_SUFFIX[kind]
    if name.endswith(cls_suffix):
        name = name[:-len(cls_suffix)]
    return name


def check_name(name: str) -> None:
    if not images.plain_extension_name(name):
        raise BuildError("invalid extension name %r: use a plain file name such as 'docker' (no '/', no leading '.', "
                         "no whitespace or control characters, without the .raw suffix)" % (name,))
    longest = images.NAME_MAX - len(RELEASE_PREFIX)
    if len(name.encode('utf-8', 'surrogateescape')) > longest:
        raise BuildError('extension name %s... is %d bytes long; its release file %s%s may have at most %d bytes in '
                         'its name (NAME_MAX), so give a name of at most %d bytes' % (
                             name[:40], len(name.encode('utf-8', 'surrogateescape')), RELEASE_PREFIX, 'NAME',
                             images.NAME_MAX, longest))


def _str_value(key: str, value) -> str:
    if isinstance(value, float):
        raise BuildError('release field %s: %r is a float, not a string: quote it (%s: "..."); YAML reads an '
                         'unquoted 1.10 as the number 1.1' % (key, value, key))
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BuildError('release field %s: %r is not a string; quote it in YAML (%s: "...")' % (key, value, key))
    value = str(value)
    if '\n' in value or '\r' in value or '\0' in value:
        raise BuildError('release field %s: the value contains a line break or NUL byte; an extension-release '
                         'value is one line' % key)
    return value


def release_fields(opts: Options) -> dict:
    """The fields of the extension-release file, in the order they are written."""
    kind = opts.kind
    first = [
        ('ID', opts.id if opts.id is not None else '_any', 'id'),
        ('VERSION_ID', opts.version_id, 'version_id'),
        (level_key(kind), opts.level, 'level'),
        ('ARCHITECTURE', opts.architecture, 'architecture'),
        (scope_key(kind), ' '.join(opts.scope) if opts.scope is not None else None, 'scope'),
        ('IMAGE_VERSION', opts.version, 'version'),
    ]
    out: dict = {}
    for key, value, option in first:
        if value is None:
            continue
        value = _str_value(option, value)
        if not value:
            raise BuildError('%s must not be empty (leave it out instead)' % option)
        out[key] = value
    ext_id = out['ID']
    if ext_id != '_any' and not _ID_LIKE.match(ext_id):
        raise BuildError("id %r: use the host's os-release ID (lower-case letters, digits, '.', '_', '-') or _any"
                         % ext_id)
    for key, option in (('VERSION_ID', 'version_id'), (level_key(kind), 'level')):
        if key in out and not _VERSION_ID.match(out[key]):
            raise BuildError("%s %r: use letters, digits, '.', '_', '~' and '-' (compared with the host's os-release "
                             "as a plain string)" % (option, out[key]))
    if 'ARCHITECTURE' in out and out['ARCHITECTURE'] not in ARCHITECTURES:
        raise BuildError("architecture %r is not one of systemd's names; use one of %s (for example x86-64, arm64) "
                         "or _any" % (out['ARCHITECTURE'], ', '.join(ARCHITECTURES[1:])))
    if opts.scope is not None:
        bad = [s for s in opts.scope if s not in SCOPES]
        if bad or not opts.scope:
            raise BuildError('scope %r: give one or more of %s' % (list(opts.scope), ', '.join(SCOPES)))
    if 'IMAGE_VERSION' in out and not _VERSION.match(out['IMAGE_VERSION']):
        raise BuildError("version %r: start with a letter or digit and use only letters, digits and '.', '~', '^', "
                         "'-' (systemd's version comparison ignores every other character)" % out['IMAGE_VERSION'])
    by_option = {k: o for k, _v, o in first}
    extra = opts.release or {}
    if not isinstance(extra, dict):
        raise BuildError('release must be a dictionary of KEY: value fields')
    for key in sorted(extra):
        if not isinstance(key, str) or not _KEY.match(key):
            raise BuildError('release field name %r: use letters, digits and _ (not starting with a digit), as in '
                             'SYSEXT_LEVEL' % (key,))
        value = _str_value(key, extra[key])
        if key in out and out[key] != value:
            raise BuildError('release field %s=%s conflicts with the option %s (%s); set it in one place'
                             % (key, value, by_option.get(key, key), out[key]))
        out[key] = value
    return out


def _quote(value: str) -> str:
    if _BARE.match(value) and value:
        return value
    return '"%s"' % ''.join('\\' + c if c in '"\\`$' else c for c in value)


def release_text(fields: dict) -> str:
    """KEY=VALUE lines that systemd's parse_env_file() reads back as exactly ``fields``."""
    text = ''.join('%s=%s\n' % (k, _quote(v)) for k, v in fields.items())
    try:
        back = parse_env(text)
    except ReleaseError as e:       # pragma: no cover - _quote makes every value parseable
        raise BuildError('cannot write the release fields: %s' % e) from None
    if back != fields:
        bad = sorted(k for k in fields if back.get(k) != fields[k])
        raise BuildError('release field(s) %s cannot be written so that systemd reads them back unchanged (leading '
                         'or trailing blanks?); change the value' % ', '.join(bad))
    return text


def check_epoch(value) -> int:
    if value is None:
        env = os.environ.get('SOURCE_DATE_EPOCH', '').strip()
        if not env:
            return 0
        if not env.isdigit():
            raise BuildError('SOURCE_DATE_EPOCH=%r in the environment is not a number of seconds; fix it or set '
                             'source_date_epoch' % env)
        value = int(env)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= EPOCH_MAX:
        raise BuildError('source_date_epoch %r: give seconds since 1970 between 0 and %d (squashfs stores 32-bit '
                         'timestamps)' % (value, EPOCH_MAX))
    return value
