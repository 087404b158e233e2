# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller side of sysext_image's ``repository`` source, without Ansible: the ``SHA256SUMS``
index (read as systemd-sysupdate reads it, src/sysupdate/sysupdate-resource.c,
resource_load_from_web()), match patterns in the syntax of systemd-sysupdate's ``MatchPattern=``
(src/sysupdate/sysupdate-pattern.c; the unit specifiers ``%a`` ... expanded first, as
sysupdate's transfer files expand them), version specs (``latest``, an exact version, or
constraints such as ``>=1.2,<2``) and the choice of the newest matching version in systemd's
version order (strverscmp_improved())."""

from __future__ import annotations

import datetime
import re
from typing import NamedTuple

from ansible_collections.tucked.sysext.plugins.module_utils.release import parse_boolean
from ansible_collections.tucked.sysext.plugins.module_utils.version import strverscmp_improved
from ansible_collections.tucked.sysext.plugins.module_utils.vpick import version_is_valid

INDEX = 'SHA256SUMS'
SIGNATURE = 'SHA256SUMS.gpg'
DEFAULT_PATTERN = '%s-@v-%%a.raw'      # NAME-@v-%a.raw: the layout of flatcar/sysext-bakery
MAX_INDEX = 16 << 20

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
_OPS = ('>=', '<=', '==', '!=', '>', '<')
USEC_INFINITY = (1 << 64) - 1
TIME_T_MAX = (1 << 63) - 1


class RepositoryError(ValueError):
    """A pattern, index or version spec that cannot be used; the message names it and the fix."""


class Host(NamedTuple):
    architecture: str            # systemd's name (x86-64, arm64 ...)
    os_release: dict


class Entry(NamedTuple):
    """One file of the index that a pattern matched."""
    name: str
    sha256: str
    version: str
    fields: dict                 # the other @ fields parsed, by letter
    pattern: str                 # the expanded pattern it matched


# ----------------------------------------------------------------------------- specifiers
def expand_specifiers(pattern: str, host: Host) -> str:
    """``%a`` and the os-release specifiers of ``pattern`` replaced by the target's values (an
    os-release field the target lacks is empty, as systemd makes it); ``%%`` is ``%``."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c != '%':
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(pattern):
            raise RepositoryError('match pattern %r ends in a lone %%; write %%%% for a percent sign' % pattern)
        s = pattern[i + 1]
        if s == '%':
            out.append('%')
        elif s == 'a':
            out.append(host.architecture)
        elif s in OS_RELEASE_SPECIFIERS:
            out.append(host.os_release.get(OS_RELEASE_SPECIFIERS[s], ''))
        elif s in MACHINE_SPECIFIERS:
            raise RepositoryError('match pattern %r: the specifier %%%s (the %s) names no image and is not supported '
                                  'here; use %%a, %%A, %%B, %%M, %%o, %%w or %%W' % (pattern, s, MACHINE_SPECIFIERS[s]))
        else:
            raise RepositoryError('match pattern %r: unknown specifier %%%s (systemd-sysupdate has none of that name '
                                  'either); a match pattern here may use %%a, %%A, %%B, %%M, %%o, %%w, %%W (and %%%% '
                                  'for a percent sign)' % (pattern, s))
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
            raise RepositoryError("match pattern %r: the '**/' prefix (any directory) is not supported here; name "
                                  "the directory in the pattern (as in sub/NAME-@v-%%a.raw), or match the files "
                                  "in the index's top directory" % shown)
        for c in text:
            if c == '@' and not at:
                at = True
                continue
            if at and c != '@':
                if c not in FIELDS:
                    raise RepositoryError('match pattern %r: unknown field @%s; systemd-sysupdate knows %s (@@ for an '
                                          'at sign)' % (shown, c, ', '.join('@' + f for f in FIELDS)))
                if c in found:
                    raise RepositoryError('match pattern %r: the field @%s appears twice' % (shown, c))
                if not last_literal and not last_slash:
                    raise RepositoryError('match pattern %r: two fields without a literal between them (@%s); '
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
                raise RepositoryError('match pattern %r: the character %r is not allowed (systemd-sysupdate refuses '
                                      'control characters, non-ASCII and %s)' % (shown, c, ' '.join(sorted(_INVALID_CHARS))))
            last_literal, last_slash = True, False
            if elements and elements[-1][0] == 'lit':
                elements[-1] = ('lit', elements[-1][1] + c)
            else:
                elements.append(('lit', c))
        if at:
            raise RepositoryError('match pattern %r ends in a lone @; write @@ for an at sign' % shown)
        if 'v' not in found:
            raise RepositoryError('match pattern %r has no version field @v, which systemd-sysupdate requires '
                                  '(as in NAME-@v-%%a.raw)' % shown)
        self.elements = elements

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


def patterns_for(name: str, patterns, host: Host) -> list:
    """The Pattern objects of ``patterns`` (one string or a list; default NAME-@v-%a.raw)."""
    if not patterns:
        patterns = [DEFAULT_PATTERN % name]
    elif isinstance(patterns, str):
        patterns = [patterns]
    return [Pattern(expand_specifiers(p, host), shown=p) for p in patterns]


# ----------------------------------------------------------------------------- the index
def _filename_ok(fn: str) -> bool:
    """A file name, or a relative path in the repository ("subdir/file"), as systemd-sysupdate
    accepts them: not absolute, normalized (no empty, "." or ".." component), each component a
    valid file name, no control characters."""
    parts = fn.split('/')
    return all(p not in ('', '.', '..') and len(p.encode()) <= 255 for p in parts) and \
        not any(ord(c) < 32 or ord(c) == 127 for c in fn)


def parse_index(data: bytes, source: str, today: datetime.date | None = None) -> list:
    """[(file name, lower-case hex sha256)] of a SHA256SUMS file as sha256sum writes it
    (``HEX  NAME`` or ``HEX *NAME``, one a line, each ending in a newline), refused as
    systemd-sysupdate refuses it. ``BEST-BEFORE-YYYY-MM-DD`` entries are honoured as it honours
    them: an index past that date is refused. ``source`` names the index in messages."""
    if len(data) > MAX_INDEX:
        raise RepositoryError('%s is larger than %d bytes; is it an index?' % (source, MAX_INDEX))
    if b'\0' in data:
        raise RepositoryError('%s has a NUL byte; it is no SHA256SUMS file' % source)
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError:
        raise RepositoryError('%s is not valid UTF-8; it is no SHA256SUMS file' % source) from None
    if text and not text.endswith('\n'):
        raise RepositoryError('%s: line %d does not end in a newline (truncated?); write it as sha256sum writes it'
                              % (source, text.count('\n') + 1))
    out = []
    seen = {}
    for nr, line in enumerate(text.split('\n')[:-1], 1):
        how = 'write each line as sha256sum writes it: 64 hex digits, two spaces (or a space and *), the file name'
        if line.startswith('\\'):
            raise RepositoryError('%s line %d: escaped file names are not supported (systemd-sysupdate refuses them)'
                                  % (source, nr))
        hexd, fn = line[:64], line[66:]
        if len(line) < 67 or not set(hexd) <= _HEX or line[64] != ' ' or line[65] not in ' *':
            raise RepositoryError('%s line %d is malformed (%r); %s' % (source, nr, line[:100], how))
        if not _filename_ok(fn):
            raise RepositoryError('%s line %d: %r is not a valid file name or relative path in the repository (not '
                                  'absolute, no empty, . or .. component, no control characters)' % (source, nr, fn))
        hexd = hexd.lower()
        if seen.get(fn, hexd) != hexd:
            raise RepositoryError('%s lists %s twice with different sums (lines %d and %d)'
                                  % (source, fn, seen[fn + '\0'], nr))
        if fn in seen:
            continue
        seen[fn], seen[fn + '\0'] = hexd, nr
        _best_before(fn, source, today)
        out.append((fn, hexd))
    return out


def _best_before_date(fn: str) -> datetime.date | None:
    """The date of a ``BEST-BEFORE-YYYY-MM-DD`` entry; None for other names (and for such names that
    are not a real date, which systemd ignores with a warning and matches like any other file)."""
    m = re.fullmatch(r'BEST-BEFORE-(\d{4})-(\d{2})-(\d{2})', fn)
    try:
        return datetime.date(*map(int, m.groups())) if m else None
    except ValueError:
        return None


def _best_before(fn: str, source: str, today) -> None:
    date = _best_before_date(fn)
    if date is None:
        return
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    if date <= today:       # (systemd: the date's start is before now)
        raise RepositoryError('%s is out of date: it lists %s, and today is %s (UTC); the repository must publish a '
                              'fresh index' % (source, fn, today.isoformat()))


def is_magic(fn: str) -> bool:
    """A BEST-BEFORE marker, which is never a candidate (process_magic_file() returning 1)."""
    return _best_before_date(fn) is not None


# ----------------------------------------------------------------------------- versions
class Spec(NamedTuple):
    text: str
    exact: str | None
    constraints: tuple          # ((op, version), ...)

    def allows(self, version: str) -> bool:
        if self.exact is not None:
            return version == self.exact
        return self.deviation(version) == 0

    def deviation(self, version: str) -> int | None:
        """0 when ``version`` fits (``latest``: any version), -1 when it is below what the spec allows
        (an exact version, or a ``>``, ``>=``, ``==`` bound), 1 when above, None when a ``!=`` excludes it;
        in systemd's version order."""
        if self.exact is not None:
            return strverscmp_improved(version, self.exact)
        for op, want in self.constraints:
            c = strverscmp_improved(version, want)
            if not {'>=': c >= 0, '<=': c <= 0, '==': c == 0, '!=': c != 0, '>': c > 0, '<': c < 0}[op]:
                return None if op == '!=' else c or (-1 if op == '>' else 1)
        return 0


def parse_spec(text: str | None) -> Spec:
    """``latest`` (or None), an exact version (``1.2.3``), or comma-separated constraints each an
    operator (>=, >, <=, <, ==, !=) and a version, compared with systemd's version order."""
    text = 'latest' if text is None else text.strip()
    if text == 'latest':
        return Spec(text, None, ())
    if not text.startswith(tuple(_OPS) + ('=',)):
        if not version_is_valid(text):
            raise RepositoryError('version %r is neither latest, a version, nor constraints such as >=1.2,<2' % text)
        return Spec(text, text, ())
    out = []
    for part in text.split(','):
        part = part.strip()
        op = next((o for o in _OPS if part.startswith(o)), None)
        want = part[len(op):].strip() if op else ''
        if op is None or not version_is_valid(want):
            raise RepositoryError('version %r: %r is no constraint; write constraints as >=1.2,<2 (operators >=, >, '
                                  '<=, <, ==, !=, each followed by a version)' % (text, part))
        out.append((op, want))
    return Spec(text, None, tuple(out))


class Choice(NamedTuple):
    candidates: list            # Entry, best first
    matched: list               # Entry of every file a pattern matched, newest first (for messages)


def choose(index: list, patterns: list, spec: Spec) -> Choice:
    """The index entries the patterns match (the first matching pattern of each file gives its
    fields, as pattern_match_many()), those the version spec allows newest first, ties by file
    name (instance_cmp()). A ``@h`` field must equal the file's sum in the index."""
    matched = []
    for fn, hexd in index:
        if is_magic(fn):
            continue
        for pat in patterns:
            fields = pat.match(fn)
            if fields is None:
                continue
            if 'h' in fields and fields['h'] != hexd:
                raise RepositoryError('%s: the SHA256 sum in its name (@h) is not the one the index lists for it '
                                      '(%s); the repository is inconsistent' % (fn, hexd))
            matched.append(Entry(fn, hexd, fields.pop('v'), fields, pat.text))
            break
    import functools    # pylint: disable=import-outside-toplevel

    def order(a, b):
        return -strverscmp_improved(a.version, b.version) or (a.name > b.name) - (a.name < b.name)
    matched.sort(key=functools.cmp_to_key(order))
    return Choice([e for e in matched if spec.allows(e.version)], matched)


def no_match_message(name: str, source: str, patterns: list, spec: Spec, choice: Choice, index: list) -> str:
    shown = ', '.join(p.text for p in patterns)
    if not choice.matched:
        files = [fn for fn, _sum in index if not is_magic(fn)]
        return ('%s: no file of %s matches %s (%d file(s) listed%s); give match_pattern as the repository names its '
                'files, with @v for the version and %%a for the architecture' % (
                    name, source, shown, len(files), ': ' + ', '.join(files[:8]) + (' ...' if len(files) > 8 else '')
                    if files else ''))
    versions = []
    for e in choice.matched:
        if e.version not in versions:
            versions.append(e.version)
    return ('%s: no version of %s matching %s fits version %s (versions there: %s); nothing was changed'
            % (name, source, shown, spec.text, ', '.join(versions[:12]) + (' ...' if len(versions) > 12 else '')))
