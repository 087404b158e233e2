# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""os-release / extension-release: parsing (systemd's parse_env_file) and matching
(systemd's extension_release_validate(), src/shared/extension-util.c)."""

from __future__ import annotations

import os
import re
from typing import NamedTuple

SYSEXT = 'sysext'
CONFEXT = 'confext'
CLASSES = (SYSEXT, CONFEXT)

# systemd reads env files with read_full_stream(), which refuses files larger than
# READ_FULL_BYTES_MAX (src/basic/fileio.h): 64 MiB - 1
MAX_RELEASE_SIZE = 64 * 1024 * 1024 - 1

KEY = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_SHELL_NEED_ESCAPE = '"\\`$'

# uname machine -> systemd architecture name (src/basic/architecture.c)
_ARCHITECTURES = {
    'x86_64': 'x86-64', 'i386': 'x86', 'i486': 'x86', 'i586': 'x86', 'i686': 'x86',
    'aarch64': 'arm64', 'aarch64_be': 'arm64-be', 'armv7l': 'arm', 'armv8l': 'arm', 'armv6l': 'arm',
    'ppc64le': 'ppc64-le', 'ppc64': 'ppc64', 'ppc': 'ppc', 's390x': 's390x', 's390': 's390',
    'riscv64': 'riscv64', 'riscv32': 'riscv32', 'loongarch64': 'loongarch64', 'mips64': 'mips64',
    'mips': 'mips', 'sparc64': 'sparc64', 'sparc': 'sparc', 'alpha': 'alpha', 'ia64': 'ia64',
    'parisc': 'parisc', 'parisc64': 'parisc64', 'sh': 'sh', 'arc': 'arc', 'm68k': 'm68k',
}


class ReleaseError(ValueError):
    """A release file cannot be parsed; the message names the problem."""


def _add(val: list, size: int, part: str) -> int:
    val.append(part)
    return size + len(part)


def _line_at(text: str, start: int) -> tuple[int, str]:
    """(line number, the line) of the line starting at offset ``start``."""
    end = text.find('\n', start)
    return text.count('\n', 0, start) + 1, text[start:end if end >= 0 else len(text)].strip()


def parse_env(text: str, ignored: list | None = None) -> dict[str, str]:
    """Parse an os-release style file the way systemd's parse_env_file() does.

    KEY=VALUE lines; ``#`` and ``;`` start comments; values may be single- or
    double-quoted (quoted parts and bare parts concatenate); backslash escapes the next
    character outside quotes, and ``"\\`$`` inside double quotes; a backslash before a
    newline continues the line. Whitespace around keys and bare values is dropped.
    Lines without ``=`` or with an invalid key are ignored, as systemd does. A quote left open
    takes the rest of the file into the value (env-file.c pushes the value at the end in any
    quoted state). Raises ReleaseError for NUL bytes. ``ignored``, when given, receives
    (line number, line) of every line systemd would ignore (no ``=``, or an invalid key).
    """
    if '\0' in text:
        raise ReleaseError('contains NUL bytes')
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        # PRE_KEY
        while i < n and text[i] in ' \t\r\n':
            i += 1
        if i >= n:
            break
        if text[i] in '#;':
            while i < n and text[i] != '\n':
                i += 1
            continue
        start = i
        while i < n and text[i] not in '=\n':
            i += 1
        key = text[start:i].strip()
        if i >= n or text[i] == '\n':
            if ignored is not None:
                ignored.append(_line_at(text, start))
            continue  # no '=': ignored
        i += 1  # '='
        # PRE_VALUE: skip blanks
        while i < n and text[i] in ' \t':
            i += 1
        val: list[str] = []
        size = 0          # the length of ''.join(val), kept as it grows (values may be megabytes)
        last_significant = 0  # length of val up to the last char not to be trimmed
        while i < n and text[i] != '\n':
            ch = text[i]
            if ch == "'":
                end = text.find("'", i + 1)
                if end < 0:
                    end = n         # unterminated: the rest of the file
                size = _add(val, size, text[i + 1:end])
                last_significant = size
                i = end + 1
            elif ch == '"':
                i += 1
                while i < n:        # unterminated: the rest of the file
                    c = text[i]
                    if c == '"':
                        i += 1
                        break
                    if c == '\\' and i + 1 < n:
                        nxt = text[i + 1]
                        if nxt == '\n':
                            i += 2
                            continue
                        if nxt in _SHELL_NEED_ESCAPE:
                            size = _add(val, size, nxt)
                        else:
                            size = _add(val, size, '\\' + nxt)
                        i += 2
                        continue
                    size = _add(val, size, c)
                    i += 1
                last_significant = size
            elif ch == '\\':
                if i + 1 < n and text[i + 1] == '\n':
                    i += 2  # continuation
                    continue
                if i + 1 < n:
                    size = _add(val, size, text[i + 1])
                    last_significant = size
                i += 2
            else:
                size = _add(val, size, ch)
                if ch not in ' \t\r':
                    last_significant = size
                i += 1
        value = ''.join(val)[:last_significant]
        if KEY.match(key):
            out[key] = value
        elif ignored is not None:
            ignored.append(_line_at(text, start))
    return out


def read_release_bytes(data: bytes, what: str, ignored: list | None = None) -> dict[str, str]:
    """Decode and parse; errors name ``what`` (the file). ``ignored``: see parse_env()."""
    if len(data) > MAX_RELEASE_SIZE:
        raise ReleaseError('%s is larger than %d bytes; a release file holds a few KEY=VALUE lines'
                           % (what, MAX_RELEASE_SIZE))
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as e:
        raise ReleaseError('%s is not valid UTF-8 (byte %d); rewrite it as KEY=VALUE text' % (what, e.start)) from None
    try:
        return parse_env(text, ignored)
    except ReleaseError as e:
        raise ReleaseError('%s: %s' % (what, e)) from None


def native_architecture(machine: str | None = None) -> str:
    machine = machine or os.uname().machine
    return _ARCHITECTURES.get(machine, machine)


class Host(NamedTuple):
    """What an extension is matched against: the root's os-release and scope."""
    os_release: dict = {}
    scope: str = 'system'            # 'initrd' when the root has /etc/initrd-release
    architecture: str = native_architecture()
    source: str = ''                 # the os-release file read

    @property
    def id(self) -> str:
        return self.os_release.get('ID', '')


def is_initrd(root: str) -> bool:
    """systemd 262 takes a root with /etc/initrd-release for an initrd (scope ``initrd``, the
    initrd search directories). Symlinks are followed inside the root: a dangling one does
    not count; a directory does."""
    from . import rootfs  # local import: rootfs imports nothing from here
    try:
        rootfs.chase(root, '/etc/initrd-release')
        return True
    except OSError:
        return False


def read_host(root: str, machine: str | None = None) -> Host:
    """Read ROOT/etc/os-release, falling back to ROOT/usr/lib/os-release, as systemd does.
    Symlinks are resolved inside ``root`` (os-release is usually a relative symlink)."""
    from . import rootfs  # local import: rootfs imports nothing from here
    last_err = None
    for rel in ('/etc/os-release', '/usr/lib/os-release'):
        try:
            real = rootfs.resolve(root, rel)
            data = rootfs.read_regular(real, MAX_RELEASE_SIZE)
        except FileNotFoundError:
            continue
        except rootfs.NotRegular as e:
            # systemd takes the first of the two that exists (only ENOENT moves on) and fails on it
            raise ReleaseError('%s %s; make it a regular file (or a symlink to one)'
                               % (os.path.join(root, rel.lstrip('/')), e.strerror)) from None
        except rootfs.RootError as e:
            last_err = str(e)
            continue
        except OSError as e:
            last_err = '%s: %s' % (os.path.join(root, rel.lstrip('/')), e.strerror)
            continue
        info = read_release_bytes(data, os.path.join(root, rel.lstrip('/')))
        return Host(os_release=info, scope='initrd' if is_initrd(root) else 'system',
                    architecture=native_architecture(machine), source=rel)
    raise ReleaseError('no os-release in %s (looked for etc/os-release and usr/lib/os-release)%s'
                       % (root, ': ' + last_err if last_err else ''))


def missing_id(host: Host, root: str) -> str | None:
    """Why nothing can be merged onto this root (systemd 262 refuses the whole merge when the
    root's os-release has no ID, even with no extension at all); None when it has one."""
    if host.id:
        return None
    return ("%s has no ID (or an empty one); systemd-sysext refuses to merge onto such a root. "
            "Add ID=... (the distribution's identifier) to it" % os.path.join(root, host.source.lstrip('/')))


def level_key(cls: str) -> str:
    return 'CONFEXT_LEVEL' if cls == CONFEXT else 'SYSEXT_LEVEL'


def scope_key(cls: str) -> str:
    return 'CONFEXT_SCOPE' if cls == CONFEXT else 'SYSEXT_SCOPE'


def _host_field(host: Host, key: str) -> str:
    return '%s=%s in %s' % (key, host.os_release.get(key, ''), host.source or 'os-release')


def validate(name: str, ext: dict[str, str], host: Host, cls: str) -> tuple[bool, str]:
    """systemd's extension_release_validate(): (compatible, reason). See match()."""
    m = match(name, ext, host, cls)
    return m.compatible, m.reason


class Match(NamedTuple):
    compatible: bool
    reason: str
    field: str | None = None   # the release field that fails (None when compatible)


def match(name: str, ext: dict[str, str], host: Host, cls: str) -> Match:
    """systemd's extension_release_validate(): whether ``ext`` matches ``host``, why, and the
    field that fails (``SYSEXT_SCOPE``/``CONFEXT_SCOPE``, ``ARCHITECTURE``, ``ID``,
    ``SYSEXT_LEVEL``/``CONFEXT_LEVEL``, ``VERSION_ID``; ``extension-release`` for no data).

    The order of checks and their meaning follow src/shared/extension-util.c (262): scope,
    architecture, ID (``_any`` matches every host and skips the version checks; ID_LIKE of
    the host counts), then the extension level when both sides declare one, else VERSION_ID
    (hosts without either are rolling releases and match on ID alone). A refusal names the
    field of the extension-release file that does not match, and the host's value.
    """
    if not ext:
        return Match(False, "extension '%s' carries no release data" % name, 'extension-release')
    if not host.id:
        return Match(False, "extension '%s' cannot be matched: the root's os-release has no ID" % name, 'ID')

    skey = scope_key(cls)
    scopes = ext.get(skey)
    allowed = scopes.split() if scopes is not None else ['system', 'portable']
    if host.scope not in allowed:
        if scopes is None:
            why = 'it has no %s, which means "system portable"' % skey
        else:
            why = '%s=%s' % (skey, scopes)
        return Match(False, "extension '%s' is not suitable for scope %s: %s%s" % (
            name, host.scope, why,
            ' (the root is an initrd: it has /etc/initrd-release)' if host.scope == 'initrd' else ''), skey)

    arch = ext.get('ARCHITECTURE', '')
    if arch and arch != '_any' and arch != host.architecture:
        return Match(False, "extension '%s' is for architecture '%s' (ARCHITECTURE=%s), but deployed on top of '%s'" % (
            name, arch, arch, host.architecture), 'ARCHITECTURE')

    ext_id = ext.get('ID', '')
    if not ext_id:
        return Match(False, "extension '%s' does not contain ID in its release file (use the host's ID=%s, an ID "
                            "of its ID_LIKE, or ID=_any)" % (name, host.id), 'ID')
    if ext_id == '_any':
        return Match(True, "extension '%s' matches any OS (ID=_any)" % name)

    host_id = host.id
    like = host.os_release.get('ID_LIKE', '').split()
    if ext_id != host_id and ext_id not in like:
        return Match(False, "extension '%s' is for OS '%s' (ID=%s), but deployed on top of '%s' (%s%s)" % (
            name, ext_id, ext_id, host_id, _host_field(host, 'ID'),
            ", ID_LIKE='%s'" % ' '.join(like) if like else ''), 'ID')

    lkey = level_key(cls)
    host_version = host.os_release.get('VERSION_ID', '')
    host_level = host.os_release.get(lkey, '')
    if not host_version and not host_level:
        return Match(True, "no version info on the host (rolling release?), ID of '%s' matched" % name)

    ext_level = ext.get(lkey, '')
    if host_level and ext_level:
        if host_level != ext_level:
            return Match(False, "extension '%s' is for API level '%s' (%s=%s), but running on API level '%s' (%s)" % (
                name, ext_level, lkey, ext_level, host_level, _host_field(host, lkey)), lkey)
    elif host_version:
        ext_version = ext.get('VERSION_ID', '')
        if not ext_version:
            return Match(False, "extension '%s' does not contain VERSION_ID in its release file but the host requires "
                                "'%s' (%s); set VERSION_ID=%s%s, or ID=_any" % (
                                    name, host_version, _host_field(host, 'VERSION_ID'), host_version,
                                    ' or %s=%s' % (lkey, host_level) if host_level else ''), 'VERSION_ID')
        if ext_version != host_version:
            return Match(False, "extension '%s' is for OS version '%s' (VERSION_ID=%s), but deployed on top of '%s' (%s)" % (
                name, ext_version, ext_version, host_version, _host_field(host, 'VERSION_ID')), 'VERSION_ID')
    return Match(True, "version info of extension '%s' matches the host" % name)


def parse_boolean(v: str) -> bool | None:
    """systemd's parse_boolean(): True, False, or None when ``v`` is not a boolean."""
    v = v.strip().lower()
    if v in ('1', 'yes', 'y', 'true', 't', 'on'):
        return True
    if v in ('0', 'no', 'n', 'false', 'f', 'off'):
        return False
    return None
