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
from typing import NamedTuple

from . import verity
from .release import CONFEXT, SYSEXT

DESIGNATORS = ('root', 'usr', 'home', 'srv', 'esp', 'xbootldr', 'swap', 'root-verity', 'root-verity-sig',
               'usr-verity', 'usr-verity-sig', 'tmp', 'var')
# PartitionPolicyFlags of src/shared/image-policy.h, in its order (the canonical text follows it)
FLAGS = {'verity': 1, 'signed': 2, 'encrypted': 4, 'encryptedwithintegrity': 8, 'unprotected': 16, 'unused': 32,
         'absent': 64, 'read-only-off': 1 << 7, 'read-only-on': 1 << 8, 'growfs-off': 1 << 9, 'growfs-on': 1 << 10,
         'btrfs': 1 << 11, 'erofs': 1 << 12, 'ext4': 1 << 13, 'f2fs': 1 << 14, 'squashfs': 1 << 15,
         'vfat': 1 << 16, 'xfs': 1 << 17}
USE = (1 << 7) - 1
OPEN = USE
IGNORE = FLAGS['unused'] | FLAGS['absent']
READ_ONLY = FLAGS['read-only-off'] | FLAGS['read-only-on']
GROWFS = FLAGS['growfs-off'] | FLAGS['growfs-on']
FILESYSTEMS = sum(v for k, v in FLAGS.items() if v >= 1 << 11)
ALIASES = {'open': OPEN, 'ignore': IGNORE}

# the defaults of systemd-sysext 262 (image_policy_sysext / image_policy_confext in image-policy.c)
_ANY = 'verity+signed+encrypted+encryptedwithintegrity+unprotected+absent'
DEFAULT = {SYSEXT: 'root=%s:usr=%s' % (_ANY, _ANY), CONFEXT: 'root=%s' % _ANY}
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


def protection(host_path: str, side=None) -> Protection:
    """How a plain image file is protected, from the sidecar files systemd looks for beside it
    (verity.sidecars(), or ``side`` when the caller has them): verity needs the hash tree
    ``NAME.verity`` and a root hash; a ``NAME.roothash.p7s`` signature makes it signed."""
    side = side or verity.sidecars(host_path, False)
    if not side.hash_tree or not side.roothash or side.designator != 'root':
        return Protection('unprotected', '')
    if side.signature:
        return Protection('signed', '%s, %s and %s' % (side.hash_tree, side.source, side.signature))
    return Protection('verity', '%s and %s' % (side.hash_tree, side.source))


class Found(NamedTuple):
    """A partition as dissect_image() finds it, for the policy checks."""
    designator: str             # root | usr
    flags: int                  # the protection flags it satisfies
    partition_flags: int | None   # its GPT attribute bits (None: a plain file system)
    fstype: str | None


GPT_GROWFS = 1 << 59
GPT_READ_ONLY = 1 << 60
# a plain file system image: one root partition that is exactly this (dissect_image(): naked images)
_NAKED = {'unprotected': FLAGS['unprotected'], 'verity': FLAGS['verity'], 'signed': FLAGS['signed']}
# a GPT partition that is no LUKS volume: anything unencrypted, verity (and signed) when the
# partitions for it exist
_PARTITION = FLAGS['unprotected'] | FLAGS['unused']


def naked(prot: Protection, fstype: str | None) -> list:
    return [Found('root', _NAKED[prot.kind], None, fstype)]


def partitions(layout) -> list:
    """What dissect_image() finds of a GPT image's layout (imagefs.Layout): the data partition
    (a Linux generic one counts as root) and a sysext's usr partition beside it."""
    flags = _PARTITION
    if layout.verity is not None:
        flags |= FLAGS['verity'] | (FLAGS['signed'] if layout.signature is not None else 0)
    out = [Found(layout.partition.designator or 'root', flags, layout.partition.flags, layout.fstype)]
    if layout.usr is not None:
        out.append(Found('usr', _PARTITION, layout.usr.flags, layout.usr_fstype))
    return out


def _rule(pol: Policy, designator: str) -> str:
    if designator in pol.rules:
        return '%s=%s' % (designator, _names(pol.rules[designator]))
    return 'the default rule =%s' % _names(pol.default)


def check(pol: Policy, found: list) -> str | None:
    """Why systemd-sysext would refuse an image whose partitions are ``found`` (Found) under
    ``pol``, or None when the policy allows it."""
    for f in found:
        flags = normalized(pol.flags(f.designator))
        use = flags & USE
        rule = _rule(pol, f.designator)
        part = 'it' if f.partition_flags is None else 'its %s partition' % f.designator
        if use == FLAGS['absent']:
            return 'the image policy says %s must be absent (%s)' % (part, rule)
        if not use & ~IGNORE:
            return ('the image policy uses no %s partition (%s), so nothing in the image can be used'
                    % (f.designator, rule))
        if not f.flags & use:
            kind = 'signed' if f.flags & FLAGS['signed'] else 'verity' if f.flags & FLAGS['verity'] else 'unprotected'
            return '%s is %s, which the image policy does not allow (%s)' % (part, kind, rule)
        for bit, what in ((GPT_READ_ONLY, 'read-only'), (GPT_GROWFS, 'growfs')):
            is_on = bool((f.partition_flags or 0) & bit)
            if not flags & FLAGS['%s-%s' % (what, 'on' if is_on else 'off')]:
                return 'the image policy wants the GPT %s flag %s (%s); %s' % (
                    what, 'off' if is_on else 'on', rule, 'a plain file system has none' if f.partition_flags is None
                    else 'the partition has it %s' % ('on' if is_on else 'off'))
        fs = flags & FILESYSTEMS
        if fs and not (f.fstype and FLAGS.get(f.fstype, 0) & fs):
            return '%s is %s, a file system the image policy does not allow (%s)' % (
                part, f.fstype or 'of an unknown type', rule)
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
