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

from ansible_collections.tucked.sysext.plugins.module_utils.sysupdatepattern import (Host, Pattern, PatternError,
                                                                                     expand_specifiers)
from ansible_collections.tucked.sysext.plugins.module_utils.version import strverscmp_improved
from ansible_collections.tucked.sysext.plugins.module_utils.vpick import version_is_valid

INDEX = 'SHA256SUMS'
SIGNATURE = 'SHA256SUMS.gpg'
DEFAULT_PATTERN = '%s-@v-%%a.raw'      # NAME-@v-%a.raw: the layout of flatcar/sysext-bakery
MAX_INDEX = 16 << 20
_HEX = frozenset('0123456789abcdefABCDEF')
_OPS = ('>=', '<=', '==', '!=', '>', '<')

# a pattern, index or version spec that cannot be used; the message names it and the fix
RepositoryError = PatternError


class Entry(NamedTuple):
    """One file of the index that a pattern matched."""
    name: str
    sha256: str
    version: str
    fields: dict                 # the other @ fields parsed, by letter
    pattern: str                 # the expanded pattern it matched


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
