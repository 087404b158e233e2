# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fleet rollouts, on the controller: whether a host (its gathered facts) is already in the
wanted state, so that the rollout role runs the real tasks only where something is pending.
Used by the sysext_pending filter; it reads facts only, never a host."""

from __future__ import annotations

from .release import SYSEXT
from .storefiles import DEFAULT_STORE_DIR, SUFFIX, ChecksumError, parse_checksum


def class_of(item: dict) -> str:
    """The class (sysext / confext, systemd's word) of a wanted item; ``kind`` is the older word."""
    return item.get('class') or item.get('kind') or SYSEXT


def pending_reasons(facts: dict, wanted: list, store_dir: str = DEFAULT_STORE_DIR, remove: list = (),
                    checksums: dict | None = None) -> list[str]:
    """Why a host (its ``ansible_facts.sysext``) is not yet in the wanted state; [] when it is.

    ``wanted``: items with name, version, class (default sysext; or kind) and optionally checksum;
    ``checksums``: 'KIND/NAME' -> checksum of the controller's file, for items without one;
    ``remove``: names, or dicts with name and class (or kind). Stat-level facts only: an image counts as
    current when the store file of that version is the one systemd would merge, and its cached
    digest (see sysext_image) equals the wanted checksum. Anything unknown counts as pending,
    so the caller then runs the real tasks, which decide exactly.
    """
    reasons = []
    if facts.get('needs_refresh'):
        reasons.append('a refresh is needed (%s)' % ', '.join(
            sorted(c for c, v in (facts.get('classes') or {}).items() if v.get('needs_refresh'))))
    used = {(i.get('class'), i.get('name')): i for i in facts.get('images') or [] if i.get('type') != 'ignored'}
    root_store = '/' + store_dir.strip('/')
    for w in wanted:
        kind, name, version = class_of(w), w['name'], str(w['version'])
        if w.get('repository'):
            # only the repository's index says which version and checksum are wanted: sysext_image reads it
            reasons.append('%s %s: version %s from the repository %s is decided when its index is read'
                           % (kind, name, version, w['repository']))
            continue
        img = used.get((kind, name))
        path = '%s/%s/%s-%s%s' % (root_store, name, name, version, SUFFIX)
        if img is None:
            reasons.append('%s %s: not selected' % (kind, name))
            continue
        if img.get('path') != path:
            reasons.append('%s %s: %s is selected, not %s' % (kind, name, img.get('path'), path))
            continue
        if not img.get('compatible'):
            reasons.append('%s %s: %s' % (kind, name, img.get('reason') or 'not compatible'))
            continue
        want = w.get('checksum') or (checksums or {}).get('%s/%s' % (kind, name))
        if not want:
            reasons.append('%s %s: no checksum to compare with' % (kind, name))
            continue
        try:
            algo, hexd = parse_checksum(want)
        except ChecksumError as e:
            reasons.append('%s %s: %s' % (kind, name, e))
            continue
        if img.get('digest') != '%s:%s' % (algo, hexd):
            reasons.append('%s %s: the stored file is not known to have %s:%s' % (kind, name, algo, hexd))
    for r in remove:
        kind, name = (class_of(r), r['name']) if isinstance(r, dict) else (SYSEXT, r)
        if (kind, name) in used:
            reasons.append('%s %s: still present, to be removed' % (kind, name))
    return reasons
