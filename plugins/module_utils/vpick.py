# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versioned image directories (``NAME.v/``, ``NAME.raw.v/``) picked the way systemd 262's
vpick does it for image discovery (src/shared/vpick.c, path_pick() as image_discover() calls it).

A search directory entry ``foo.raw.v/`` holds ``foo_<version>[_<architecture>][+<tries>].raw``
files, ``foo.v/`` holds ``foo_<version>...`` directories. The winner is, in this order: an
entry with tries left over one without (``+0``), the newer version (strverscmp_improved), the
native architecture over the secondary one over none, more tries left, fewer tries done, and
last the larger file name. Entries of the wrong type (a directory in a ``.raw.v/``, a file in a ``.v/``) are passed over,
as systemd 262 passes them over; symlinks are taken as they are and followed only for the
winner: a winner that is a dangling link or leads to the wrong type makes systemd skip the
whole ``.v`` entry, and so do we. Pure functions on names; the caller lists the directory and
says, through ``usable``, whether an entry has the right type.
"""

from __future__ import annotations

import string
from typing import Callable, NamedTuple

from .version import strverscmp_improved

# src/basic/architecture.c
ARCHITECTURES = frozenset((
    'alpha', 'arc', 'arc-be', 'arm', 'arm64', 'arm64-be', 'arm-be', 'cris', 'ia64', 'loongarch64',
    'm68k', 'mips', 'mips64', 'mips64-le', 'mips-le', 'nios2', 'parisc', 'parisc64', 'ppc', 'ppc64',
    'ppc64-le', 'ppc-le', 'riscv32', 'riscv64', 's390', 's390x', 'sh', 'sh64', 'sparc', 'sparc64',
    'tilegx', 'x86', 'x86-64'))
# ARCHITECTURE_SECONDARY of src/basic/architecture.h
SECONDARY = {'x86-64': 'x86', 'ppc64': 'ppc', 'ppc64-le': 'ppc-le', 's390x': 's390', 'arm64': 'arm'}
# version_is_valid() of systemd 262 (checked against it: "~1" is a version, "1@2" is none)
_VERSION_CHARS = frozenset(string.ascii_letters + string.digits + '.,_-+~^')
_FORMAT_SUFFIXES = ('.raw', '.mstack', '')


class VersionedName(NamedTuple):
    """What a ``.v`` directory entry's own name says: the image name and the suffix the
    versioned entries inside carry (``.raw``, ``.sysext.raw``, or empty for directories)."""
    name: str
    suffix: str

    @property
    def wants_file(self) -> bool:
        return self.suffix.endswith('.raw')


class Candidate(NamedTuple):
    fname: str
    version: str
    architecture: str | None
    tries_left: int | None      # None: no +N suffix
    tries_done: int | None


def split_versioned(fname: str, class_suffix: str) -> VersionedName | None:
    """extract_image_basename() on ``foo.raw.v`` minus ``.v``: the format suffix (``.raw``,
    ``.mstack`` or none) is stripped, then the optional class suffix (``.sysext``), which
    becomes part of the suffix the entries inside carry. None when it is no ``.v`` name."""
    if not fname.endswith('.v'):
        return None
    name = fname[:-2]
    suffix = ''
    for fmt in _FORMAT_SUFFIXES:
        if name.endswith(fmt):
            suffix = fmt
            name = name[:len(name) - len(fmt)] if fmt else name
            break
    if class_suffix and name.endswith(class_suffix):
        name = name[:-len(class_suffix)]
        suffix = class_suffix + suffix
    return VersionedName(name, suffix) if name else None


def parse_tries(s: str) -> tuple[int, int] | None:
    """``+LEFT`` or ``+LEFT-DONE`` (parse_tries()); None when ``s`` is not of that form."""
    if not s.startswith('+'):
        return None
    left, sep, done = s[1:].partition('-')
    if not left.isdigit() or not left.isascii() or (sep and not (done.isdigit() and done.isascii())):
        return None
    return int(left), int(done) if sep else 0


def version_is_valid(s: str) -> bool:
    return bool(s) and s not in ('.', '..') and len(s.encode()) <= 255 and set(s) <= _VERSION_CHARS


def parse_entry(fname: str, vn: VersionedName, native: str) -> Candidate | str:
    """The candidate ``fname`` is inside ``vn``'s directory, or why it is none."""
    if not fname.startswith(vn.name + '_'):
        return 'does not start with %s_' % vn.name
    rest = fname[len(vn.name) + 1:]
    if vn.suffix:
        if not rest.endswith(vn.suffix):
            return 'does not end in %s' % vn.suffix
        rest = rest[:-len(vn.suffix)]
    left = done = None
    plus = rest.rfind('+')
    if plus >= 0:
        tries = parse_tries(rest[plus:])
        if tries is not None:
            left, done = tries
            rest = rest[:plus]
    arch = None
    under = rest.rfind('_')
    if under >= 0:
        named = rest[under + 1:]
        if named in ARCHITECTURES:
            if named not in local_architectures(native):
                return 'for architecture %s' % named
            arch = named
        # systemd chops the last "_..." even when it names no architecture
        rest = rest[:under]
    if not version_is_valid(rest):
        return 'version %r is not valid' % rest
    return Candidate(fname, rest, arch, left, done)


def local_architectures(native: str) -> tuple:
    """Architectures in order of preference; None (no architecture named) comes last."""
    return tuple(a for a in (native, SECONDARY.get(native)) if a)


def _cmp(a, b) -> int:
    return (a > b) - (a < b)


def _rank(arch: str | None, native: str) -> int:
    local = local_architectures(native)
    return local.index(arch) if arch in local else len(local)


def compare(a: Candidate, b: Candidate, native: str) -> int:
    """> 0 when ``a`` is the better pick (make_choice()'s order)."""
    inf = float('inf')
    a_left = inf if a.tries_left is None else a.tries_left
    b_left = inf if b.tries_left is None else b.tries_left
    return (_cmp(a_left != 0, b_left != 0)
            or strverscmp_improved(a.version, b.version)
            or -_cmp(_rank(a.architecture, native), _rank(b.architecture, native))
            or _cmp(a_left, b_left)
            or -_cmp(inf if a.tries_done is None else a.tries_done, inf if b.tries_done is None else b.tries_done)
            or _cmp(a.fname, b.fname))


class Pick(NamedTuple):
    winner: Candidate | None
    candidates: list            # every entry considered: {'entry', 'version', ..., 'reason'}


def pick(fnames, vn: VersionedName, native: str, usable: Callable[[str], str | None] | None = None) -> Pick:
    """The best entry of a ``.v`` directory listing, and what happened to each other one.
    ``usable(fname)``: None when the entry has the type wanted, else why not."""
    best = None
    losers = []
    for fname in sorted(fnames):
        if fname in ('.', '..'):
            continue
        c = parse_entry(fname, vn, native)
        why = c if isinstance(c, str) else usable(fname) if usable else None
        if why:
            losers.append({'entry': fname, 'version': None if isinstance(c, str) else c.version, 'reason': why})
            continue
        if best is None or compare(c, best, native) > 0:
            best, c = c, best
        if c is not None:
            losers.append(c)
    out = []
    for c in losers:
        if isinstance(c, Candidate):
            c = {'entry': c.fname, 'version': c.version, 'reason': 'older than %s' % best.fname
                 if strverscmp_improved(c.version, best.version) < 0 else 'ranked below %s' % best.fname}
        out.append(c)
    return Pick(best, out)
