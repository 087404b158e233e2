# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What systemd-sysext 262 checks of an image file (or block device) before it mounts one,
after its metadata was read (imagemeta.py): the image policy against what the image really is,
the verity data beside it or in it, and whether this kernel can set dm-verity up.

Every refusal here fails systemd's whole merge (``fatal``): at its metadata stage (a DDI with a
verity partition on a kernel without device-mapper) or at its merge stage (a policy refusal, a
``.verity`` file beside a GPT image, a plain image with verity data and no device-mapper). The
module refuses the same images before anything is touched."""

from __future__ import annotations

import os

from . import policy, verity

MODULE_DIRS = ('/lib/modules', '/usr/lib/modules')


def device_mapper() -> bool:
    """Whether the running kernel offers device-mapper: registered now (/proc/misc), or as the
    dm-mod module it loads on demand. (/dev/mapper/control alone says nothing: libdevmapper
    creates that node even where the kernel has no device-mapper.)"""
    try:
        with open('/proc/misc', encoding='ascii', errors='replace') as f:
            if any(line.split()[1:2] == ['device-mapper'] for line in f):
                return True
    except OSError:
        pass
    release = os.uname().release
    for d in MODULE_DIRS:
        md = os.path.join(d, release, 'kernel', 'drivers', 'md')
        if any(os.path.exists(os.path.join(md, 'dm-mod.ko' + ext)) for ext in ('', '.xz', '.zst', '.gz')):
            return True
    return False


def _refuse(img, why: str) -> bool:
    img.compatible = False
    img.reason = img.fatal = why
    return True


def check(img, cls: str, settings, live_initrd: bool, shown: str | None = None, dm: bool | None = None) -> bool:
    """Check the image file ``img`` (images.Image, its metadata loaded); True when it is refused
    (``reason`` and ``fatal`` then say why). Sets ``protection`` and ``verity_hash`` (the root
    hash the origin records). ``shown``: how messages name the image (default: its host path)."""
    shown = shown or img.host_path
    lay = img.layout
    try:
        side = verity.sidecars(img.host_path, verity.is_block(img.st))
    except verity.VerityError as e:
        return _refuse(img, '%s: %s' % (shown, e))
    if lay is not None and lay.container == 'gpt':
        if side.hash_tree:
            return _refuse(img, '%s is a GPT disk image with an external verity hash tree beside it (%s); systemd '
                                'refuses to combine the two: remove %s (a DDI carries its verity data in a partition)'
                           % (shown, side.hash_tree, side.hash_tree))
        if side.roothash and not side.roothash.startswith(lay.partition.uuid.replace('-', '')):
            return _refuse(img, '%s: the root hash in %s selects the partition with UUID %s, which the image does not '
                                'have (its %s partition is %s); fix or remove %s'
                           % (shown, side.source, side.roothash[:32], lay.partition.designator, lay.partition.uuid,
                              side.source))
        img.protection = lay.protection
        img.verity_hash = side.roothash or lay.roothash
        found = policy.partitions(lay)
        protected = lay.verity is not None
        hash_tree = signature = None
    else:
        prot = policy.protection(img.host_path, side)
        img.protection = prot.kind
        img.verity_hash = side.roothash
        found = policy.naked(prot, img.fstype)
        protected = prot.kind != 'unprotected'
        hash_tree, signature = side.hash_tree, side.signature
    chosen = settings.image_policy.value if settings else None
    pol = policy.parse_cached(policy.for_image(cls, chosen, img.path, live_initrd))
    why = policy.check(pol, found)
    if why is not None:
        source = settings.image_policy.source if settings and chosen is not None else 'default'
        return _refuse(img, '%s does not match the image policy %s (%s): %s' % (shown, pol.text, source, why))
    use = policy.normalized(pol.flags(found[0].designator))
    verity_ok, signed_ok = bool(use & policy.FLAGS['verity']), bool(use & policy.FLAGS['signed'])
    # (a policy allowing neither: systemd mounts the partition without verity)
    use_verity = protected and (verity_ok or signed_ok)
    img.verity_plan = verity.Plan(img.verity_hash, hash_tree, signature, signed_ok and not verity_ok) \
        if use_verity else None
    # a DDI's verity is set up to read its metadata already, under the default policy: without
    # device-mapper systemd fails there, whatever the policy given
    needs_dm = use_verity or (protected and lay is not None and lay.container == 'gpt')
    if needs_dm and not (device_mapper() if dm is None else dm):
        where = ('its verity partition %d' % lay.verity.number if lay is not None and lay.container == 'gpt'
                 else 'the verity data beside it')
        return _refuse(img, '%s is protected by dm-verity (%s), and this kernel (%s) has no device-mapper (neither in '
                            '/proc/misc nor as the dm-mod module), so it cannot be verified: use a kernel with dm-verity, '
                            'or an unprotected image' % (shown, where, os.uname().release))
    return False
