# -*- coding: utf-8 -*-
"""Merges simulated without mounting, for tests that run outside a mount namespace."""

import os

META_DIRS = ('.systemd-sysext', '.systemd-confext')


def simulate_merges(monkeypatch) -> None:
    """A hierarchy that carries a metadata directory counts as a mount point, as a real merge
    is (without this, such a plain directory is an offline copy of a merged tree)."""
    from ansible_collections.tucked.sysext.plugins.module_utils import mountapi
    real = mountapi.is_mount_point

    def is_mount_point(path, st=None):
        if any(os.path.isdir(os.path.join(path, d)) for d in META_DIRS):
            return True
        return real(path, st)
    monkeypatch.setattr(mountapi, 'is_mount_point', is_mount_point)
