# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Image policies (systemd.image-policy(7)): systemd's syntax, and how systemd-sysext 262 applies
one to an extension image (src/shared/image-policy.c, dissect-image.c; checked against 262).

A policy is ``designator=flag+flag:...``; an empty designator gives the default for the
designators not listed, ``*`` ``-`` ``~`` are shorthands for everything, nothing and "all
absent". The policy applies to image files and block devices only, never to directories. A
plain squashfs or erofs image (no partition table) is one ``root`` partition, ``unprotected``
unless a ``.verity`` hash tree and a root hash (``.roothash`` file or ``user.verity.roothash``
xattr) lie beside it (then ``verity``, with a ``.roothash.p7s`` signature ``signed``), with the
GPT read-only and growfs flags off. An image the policy refuses makes systemd-sysext's whole
merge fail; so does the module.
"""

from __future__ import annotations

import functools
import os
from typing import NamedTuple

from .release import CONFEXT, SYSEXT

DESIGNATORS = ('root', 'usr', 'home', 'srv', 'esp', 'xbootldr', 'swap', 'root-verity', 'root-verity-sig',
               'usr-verity', 'usr-verity-sig', 'tmp', 'var')
FLAGS = {'verity': 1, 'signed': 2, 'encrypted': 4, 'unprotected': 8, 'unused': 16, 'absent': 32,
         'read-only-off': 64, 'read-only-on': 128, 'growfs-off': 256, 'growfs-on': 512,
         'btrfs': 1 << 10, 'erofs': 1 << 11, 'ext4': 1 << 12, 'f2fs': 1 << 13, 'squashfs': 1 << 14,
         'vfat': 1 << 15, 'xfs': 1 << 16}
USE = 1 | 2 | 4 | 8 | 16 | 32
OPEN = USE
IGNORE = FLAGS['unused'] | FLAGS['absent']
READ_ONLY = FLAGS['read-only-off'] | FLAGS['read-only-on']
GROWFS = FLAGS['growfs-off'] | FLAGS['growfs-on']
FILESYSTEMS = sum(v for k, v in FLAGS.items() if v >= 1 << 10)
ALIASES = {'open': OPEN, 'ignore': IGNORE}

# the defaults of systemd-sysext 262 (--image-policy= in systemd-sysext(8))
DEFAULT = {SYSEXT: 'root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent',
           CONFEXT: 'root=verity+signed+encrypted+unprotected+absent'}
# in an initrd, for images in /.extra/sysext (/.extra/confext) and /.extra/global_*
STRICT = {SYSEXT: 'root=signed+absent:usr=signed+absent', CONFEXT: 'root=signed+absent'}
DENY = '~'


class PolicyError(ValueError):
    """A policy string systemd refuses to parse."""


class Policy(NamedTuple):
    rules: dict                 # designator -> flags
    default: int                # flags of the designators not listed
    text: str                   # the canonical form

    def flags(self, designator: str) -> int:
        return self.rules.get(designator, self.default)


def _flags(text: str, rule: str, graceful: bool) -> int:
    out = 0
    for word in text.split('+'):
        word = word.strip()
        if word in ('', '-'):
            continue
        if word in ALIASES:
            out |= ALIASES[word]
        elif word in FLAGS:
            out |= FLAGS[word]
        elif not graceful:
            raise PolicyError('unknown partition policy flag %r in %r (flags: %s)'
                              % (word, rule, ', '.join(list(FLAGS) + list(ALIASES))))
    return out


def parse(text: str, graceful: bool = False) -> Policy:
    """image_policy_from_string(). ``graceful`` (config files): unknown designators and flags
    are dropped instead of refused; a missing ``=`` or a rule given twice is refused anyway."""
    text = text.strip()
    if text in ('', '-'):
        return _make({}, IGNORE)
    if text == '*':
        return _make({}, OPEN)
    if text == '~':
        return _make({}, FLAGS['absent'])
    rules: dict = {}
    default = None
    for rule in text.split(':'):
        designator, sep, flags = rule.partition('=')
        if not sep:
            raise PolicyError('%r has no "=" (rules are DESIGNATOR=FLAG+FLAG, separated by ":")' % rule)
        designator = designator.strip()
        value = _flags(flags, rule, graceful)
        if designator == '':
            if default is not None:
                raise PolicyError('the default rule (empty designator) is given twice')
            default = value
            continue
        if designator not in DESIGNATORS:
            if graceful:
                continue
            raise PolicyError('unknown partition designator %r in %r (designators: %s)'
                              % (designator, rule, ', '.join(DESIGNATORS)))
        if designator in rules:
            raise PolicyError('duplicate rule for %r' % designator)
        rules[designator] = value
    return _make(rules, IGNORE if default is None else default)


@functools.lru_cache(maxsize=16)
def parse_cached(text: str) -> Policy:
    """parse() of a policy already known to parse (the defaults, canonical texts)."""
    return parse(text)


def _names(flags: int) -> str:
    if flags & USE == OPEN:
        words = ['open'] + [k for k, v in FLAGS.items() if v & flags and not v & USE]
    else:
        words = [k for k, v in FLAGS.items() if v & flags]
    return '+'.join(words) or '-'


def _make(rules: dict, default: int) -> Policy:
    parts = ['%s=%s' % (d, _names(rules[d])) for d in DESIGNATORS if d in rules]
    parts.append('=%s' % _names(default))
    return Policy(rules=rules, default=default, text=':'.join(parts))


def normalized(flags: int) -> int:
    """partition_policy_normalized_flags(): no use flag means all, no read-only or growfs flag
    means either."""
    if not flags & USE:
        flags |= OPEN
    if not flags & READ_ONLY:
        flags |= READ_ONLY
    if not flags & GROWFS:
        flags |= GROWFS
    return flags


class Protection(NamedTuple):
    kind: str                   # unprotected | verity | signed
    detail: str                 # which sidecar files say so


def protection(host_path: str) -> Protection:
    """How a plain image file is protected, from the sidecar files systemd looks for beside it
    (one stat when there is no ``.verity`` file)."""
    base = host_path[:-4] if host_path.endswith('.raw') else host_path
    if not os.path.exists(base + '.verity'):
        return Protection('unprotected', '')
    has_hash = os.path.exists(base + '.roothash')
    if not has_hash:
        try:
            has_hash = bool(os.getxattr(host_path, 'user.verity.roothash'))
        except OSError:
            has_hash = False
    if not has_hash:
        return Protection('unprotected', '')
    if os.path.exists(base + '.roothash.p7s'):
        return Protection('signed', '%s.verity, a root hash and %s.roothash.p7s' % (base, base))
    return Protection('verity', '%s.verity and a root hash' % base)


_FOUND = {'unprotected': FLAGS['unprotected'], 'verity': FLAGS['verity'],
          'signed': FLAGS['signed'] | FLAGS['verity']}


def check(pol: Policy, prot: Protection, fstype: str | None) -> str | None:
    """Why systemd-sysext would refuse a plain image file under ``pol`` (its single
    ``root`` partition), or None when the policy allows it."""
    flags = normalized(pol.flags('root'))
    use = flags & USE
    rule = 'root=%s' % _names(pol.flags('root')) if 'root' in pol.rules else 'the default rule =%s' % _names(pol.default)
    if use == FLAGS['absent']:
        return 'the image policy says its root partition must be absent (%s)' % rule
    if not use & ~IGNORE:
        return 'the image policy uses no root partition (%s), so nothing in the image can be used' % rule
    if not _FOUND[prot.kind] & use:
        return 'it is %s, which the image policy does not allow (%s)' % (prot.kind, rule)
    if not flags & FLAGS['read-only-off']:
        return 'the image policy wants the GPT read-only flag on (%s); a plain file system has none' % rule
    if not flags & FLAGS['growfs-off']:
        return 'the image policy wants the GPT growfs flag on (%s); a plain file system has none' % rule
    fs = flags & FILESYSTEMS
    if fs and not (fstype and FLAGS.get(fstype, 0) & fs):
        return 'it is %s, a file system the image policy does not allow (%s)' % (fstype or 'of an unknown type', rule)
    return None


def for_image(cls: str, chosen: str | None, inroot_path: str, live_initrd: bool) -> str:
    """pick_image_policy(): the policy given always wins; in a running initrd (root /) the
    images in /.extra/ get the strict one (or none at all outside the class's directories)."""
    if chosen is not None:
        return chosen
    if live_initrd and inroot_path.startswith('/.extra/'):
        own = ('/.extra/sysext/', '/.extra/global_sysext/') if cls == SYSEXT else \
            ('/.extra/confext/', '/.extra/global_confext/')
        return STRICT[cls] if inroot_path.startswith(own) else DENY
    return DEFAULT[cls]
