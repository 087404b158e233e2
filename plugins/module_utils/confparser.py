# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd's ini-style configuration files as src/shared/conf-parser.c reads them: ``[Section]``
headers, ``Key=Value`` assignments (whitespace around both stripped), comment lines starting with
``#`` or ``;``, a line ending in a backslash continued on the next (the backslash becomes a
space, comment lines inside are skipped), and the files a directory list holds with systemd's
precedence (conf_files_list(): the same file name in an earlier directory masks it in the later
ones, a symlink to /dev/null masks it everywhere, ordered by file name). Nothing here writes."""

from __future__ import annotations

import os
from typing import NamedTuple

from . import rootfs

COMMENTS = '#;'
MAX_FILE = 4 << 20


class ConfError(ValueError):
    """A file systemd refuses to parse (an invalid section header, an unreadable file)."""


class Assignment(NamedTuple):
    section: str
    key: str
    value: str
    where: str            # FILE:LINE, for messages


def _lines(text: str):
    """(line number, stripped logical line): continuations joined, comment lines left out."""
    cont = None
    first = 0
    for n, raw in enumerate(text.split('\n'), 1):
        line = raw.strip()
        if cont is not None and line and line[0] in COMMENTS:
            continue
        if line.endswith('\\') and not _escaped_end(line):
            cont, first = (line[:-1] + ' ', n) if cont is None else (cont + line[:-1] + ' ', first)
            continue
        if cont is not None:
            line, n, cont = (cont + line).strip(), first, None
        if line and line[0] not in COMMENTS:
            yield n, line
    if cont is not None and cont.strip():
        yield first, cont.strip()


def parse(text: str, where: str, sections: tuple, warnings: list) -> list:
    """The assignments of ``text`` in the known ``sections``, in order. What systemd warns about
    and ignores (an unknown section, an assignment outside a section or without '=') is added to
    ``warnings`` as 'FILE:LINE: message'; sections starting with ``X-`` are ignored silently."""
    out = []
    section = None
    skip = False
    for n, line in _lines(text):
        at = '%s:%d' % (where, n)
        if line.startswith('['):
            if not line.endswith(']') or len(line) < 3:
                raise ConfError('%s: invalid section header %r' % (at, line))
            section = line[1:-1]
            skip = section not in sections
            if skip and not section.startswith('X-'):
                warnings.append('%s: unknown section %r, ignoring' % (at, section))
            continue
        if skip:
            continue
        if section is None:
            warnings.append('%s: assignment outside of a section, ignoring' % at)
            continue
        key, eq, value = line.partition('=')
        if not eq:
            warnings.append("%s: missing '=', ignoring line" % at)
            continue
        out.append(Assignment(section, key.strip(), value.strip(), at))
    return out


def _escaped_end(line: str) -> bool:
    """Whether the final backslash is itself escaped (an even run of backslashes)."""
    run = len(line) - len(line.rstrip('\\'))
    return run % 2 == 0


def list_files(root: str, dirs: tuple, suffix: str) -> list:
    """In-root paths of the regular files ending in ``suffix`` in ``dirs`` (in-root, earliest
    first), one per file name, the earliest directory's, ordered by file name; masked names
    (a symlink to /dev/null, or an empty file: null_or_empty()) are left out."""
    found = {}
    for d in dirs:
        try:
            host_dir = rootfs.resolve(root, d)
            names = os.listdir(host_dir)
        except OSError:
            continue
        for fname in names:
            if not fname.endswith(suffix) or fname.startswith('.') or fname in found:
                continue
            inroot = '%s/%s' % (d.rstrip('/'), fname)
            host = os.path.join(host_dir, fname)
            if os.path.islink(host) and os.readlink(host) == '/dev/null':
                found[fname] = None
                continue
            try:
                real = rootfs.resolve(root, inroot)
            except OSError:
                continue
            if os.path.isfile(real):
                found[fname] = inroot if os.path.getsize(real) else None    # an empty file masks too
    return [found[f] for f in sorted(found) if found[f]]


def read(root: str, inroot: str) -> str:
    try:
        data = rootfs.read_regular(rootfs.resolve(root, inroot), MAX_FILE)
    except OSError as e:
        raise ConfError('cannot read %s: %s' % (inroot, e.strerror or e)) from None
    return data.decode('utf-8', 'replace')


def parse_with_dropins(root: str, inroot: str, dirs: tuple, sections: tuple, warnings: list) -> tuple:
    """(assignments, drop-in paths) of a file and of its drop-ins ``FILENAME.d/*.conf`` in
    ``dirs`` (config_parse_many()): the file first, then the drop-ins by file name."""
    fname = os.path.basename(inroot)
    dropins = list_files(root, tuple('%s/%s.d' % (d.rstrip('/'), fname) for d in dirs), '.conf')
    out = parse(read(root, inroot), inroot, sections, warnings)
    for p in dropins:
        out += parse(read(root, p), p, sections, warnings)
    return out, dropins
