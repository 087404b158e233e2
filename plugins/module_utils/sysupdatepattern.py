# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd-sysupdate's ``MatchPattern=`` (src/sysupdate/sysupdate-pattern.c) and the specifiers
of its transfer files, stdlib only: the controller matches a repository's index with it, the
target its store files (named by a transfer's target pattern) and its transfer definitions."""

from __future__ import annotations

from typing import NamedTuple

from . import release
from .release import parse_boolean
from .vpick import version_is_valid

# @ fields of pattern_element_type_from_char(); only @v is used for the choice, the others are
# parsed and validated as systemd validates them (a file whose field does not parse does not match)
FIELDS = {'v': 'version', 'u': 'partition UUID', 'f': 'partition flags', 't': 'modification time', 'm': 'mode',
          's': 'size', 'd': 'tries done', 'l': 'tries left', 'a': 'no-auto flag', 'r': 'read-only flag',
          'g': 'growfs flag', 'h': 'SHA256 sum'}
# COMMON_SYSTEM_SPECIFIERS and COMMON_TMP_SPECIFIERS (src/shared/specifier.h) of sysupdate's transfer
# files. These come from the target's architecture and os-release:
OS_RELEASE_SPECIFIERS = {'A': 'IMAGE_VERSION', 'B': 'BUILD_ID', 'M': 'IMAGE_ID', 'o': 'ID', 'w': 'VERSION_ID',
                         'W': 'VARIANT_ID'}
# and these from machine state that names no image (refused, with why)
MACHINE_SPECIFIERS = {'b': 'boot ID', 'H': 'host name', 'l': 'short host name', 'q': 'pretty host name',
                      'm': 'machine ID', 'v': 'kernel release', 'T': 'temporary directory',
                      'V': 'variable temporary directory'}
_INVALID_CHARS = frozenset('$*?[]!\\|')
_HEX = frozenset('0123456789abcdefABCDEF')
USEC_INFINITY = (1 << 64) - 1
TIME_T_MAX = (1 << 63) - 1


class PatternError(ValueError):
    """A pattern or specifier that cannot be used; the message names it and the fix."""


class MachineSpecifier(PatternError):
    """A specifier systemd knows (%H, %m ...) that names machine state, not an image."""


class Host(NamedTuple):
    architecture: str            # systemd's name (x86-64, arm64 ...)
    os_release: dict


def host_of(root: str) -> Host:
    """The values a target's specifiers expand to in ``root``: its architecture and os-release (none
    when it has no readable os-release, as store.probe_host reports it: then the fields are empty)."""
    try:
        host = release.read_host(root)
    except release.ReleaseError:
        return Host(release.native_architecture(), {})
    return Host(host.architecture, dict(host.os_release))


# ----------------------------------------------------------------------------- specifiers
def expand_specifiers(pattern: str, host: Host, what: str = 'match pattern') -> str:
    """``%a`` and the os-release specifiers of ``pattern`` replaced by the target's values (an
    os-release field the target lacks is empty, as systemd makes it); ``%%`` is ``%``. ``what``
    names the value in messages (a match pattern, a Path= ...)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c != '%':
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(pattern):
            raise PatternError('%s %r ends in a lone %%; write %%%% for a percent sign' % (what, pattern))
        s = pattern[i + 1]
        if s == '%':
            out.append('%')
        elif s == 'a':
            out.append(host.architecture)
        elif s in OS_RELEASE_SPECIFIERS:
            out.append(host.os_release.get(OS_RELEASE_SPECIFIERS[s], ''))
        elif s in MACHINE_SPECIFIERS:
            raise MachineSpecifier('%s %r: the specifier %%%s (the %s) names no image and is not supported '
                                   'here; use %%a, %%A, %%B, %%M, %%o, %%w or %%W'
                                   % (what, pattern, s, MACHINE_SPECIFIERS[s]))
        else:
            raise PatternError('%s %r: unknown specifier %%%s (systemd-sysupdate has none of that name '
                               'either); %s may use %%a, %%A, %%B, %%M, %%o, %%w, %%W (and %%%% '
                               'for a percent sign)' % (what, pattern, s, what))
        i += 2
    return ''.join(out)


# ----------------------------------------------------------------------------- patterns
class Pattern:
    """A MatchPattern= after specifier expansion: literals, ``@`` fields and ``/`` (pattern_split())."""

    def __init__(self, text: str, shown: str | None = None):
        self.text = text
        shown = shown or text
        elements = []         # ('lit', str) | ('field', letter) | ('slash', None)
        at = False
        last_literal, last_slash = True, False
        found = set()
        if text.startswith('**/'):
            raise PatternError("match pattern %r: the '**/' prefix (any directory) is not supported here; name "
                               "the directory in the pattern (as in sub/NAME-@v-%%a.raw), or match the files "
                               "in the index's top directory" % shown)
        for c in text:
            if c == '@' and not at:
                at = True
                continue
            if at and c != '@':
                if c not in FIELDS:
                    raise PatternError('match pattern %r: unknown field @%s; systemd-sysupdate knows %s (@@ for an '
                                       'at sign)' % (shown, c, ', '.join('@' + f for f in FIELDS)))
                if c in found:
                    raise PatternError('match pattern %r: the field @%s appears twice' % (shown, c))
                if not last_literal and not last_slash:
                    raise PatternError('match pattern %r: two fields without a literal between them (@%s); '
                                       'separate them, as in @v-@a' % (shown, c))
                elements.append(('field', c))
                found.add(c)
                at = last_literal = last_slash = False
                continue
            at = False
            if c == '/':
                elements.append(('slash', None))
                last_literal, last_slash = False, True
                continue
            if ord(c) < 32 or ord(c) >= 127 or c in _INVALID_CHARS:
                raise PatternError('match pattern %r: the character %r is not allowed (systemd-sysupdate refuses '
                                   'control characters, non-ASCII and %s)' % (shown, c, ' '.join(sorted(_INVALID_CHARS))))
            last_literal, last_slash = True, False
            if elements and elements[-1][0] == 'lit':
                elements[-1] = ('lit', elements[-1][1] + c)
            else:
                elements.append(('lit', c))
        if at:
            raise PatternError('match pattern %r ends in a lone @; write @@ for an at sign' % shown)
        if 'v' not in found:
            raise PatternError('match pattern %r has no version field @v, which systemd-sysupdate requires '
                               '(as in NAME-@v-%%a.raw)' % shown)
        self.elements = elements

    def other_fields(self) -> list:
        """What the pattern names besides the version: its ``/`` and its ``@`` fields other than ``@v``."""
        return ['/' if k == 'slash' else '@' + v for k, v in self.elements if k == 'slash' or (k == 'field' and v != 'v')]

    def match(self, s: str) -> dict | None:
        """The fields of ``s`` by letter when it matches (pattern_match() == PATTERN_MATCH_YES), else None."""
        found = {}
        p = 0
        for k, (kind, val) in enumerate(self.elements):
            if kind == 'slash':
                if s[p:p + 1] != '/':
                    return None
                p += 1
                continue
            if kind == 'lit':
                if not s.startswith(val, p):
                    return None
                p += len(val)
                continue
            if k + 1 < len(self.elements):
                nkind, nval = self.elements[k + 1]
                if nkind == 'slash':
                    n = s.find('/', p)
                    n = len(s) if n < 0 else n
                else:
                    n = s.find(nval, p)
                    if n < 0:
                        return None
            else:
                n = len(s)
            value = _field(val, s[p:n])
            if value is None:
                return None
            found[val] = value
            p = n
        return found if p == len(s) else None


def _u64(t: str) -> int | None:
    return int(t) if t.isdigit() and t.isascii() and int(t) < USEC_INFINITY else None


def _field(letter: str, t: str):
    """The value of one field as systemd parses it, or None (no match)."""
    if letter == 'v':
        return t if version_is_valid(t) else None
    if letter == 'u':
        h = t.replace('-', '') if len(t) == 36 and [len(x) for x in t.split('-')] == [8, 4, 4, 4, 12] else t
        return t.lower() if len(h) == 32 and set(h) <= _HEX else None
    if letter == 'f':
        return int(t, 16) if t and set(t) <= _HEX and int(t, 16) < (1 << 64) else None
    if letter == 't':
        v = _u64(t)
        return v if v is not None and v // 1000000 <= TIME_T_MAX else None
    if letter == 'm':
        if not t or set(t) - set('01234567') or int(t, 8) & ~0o775 or int(t, 8) > 0o7777:
            return None
        return int(t, 8)
    if letter in 'sdl':
        return _u64(t)
    if letter in 'arg':
        return parse_boolean(t) if t == t.strip() else None
    if letter == 'h':
        return t.lower() if len(t) == 64 and set(t) <= _HEX else None
    raise AssertionError(letter)
