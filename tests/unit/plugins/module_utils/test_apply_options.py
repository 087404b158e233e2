# -*- coding: utf-8 -*-
"""The mount flags of a new overlay: systemd 262's for each class and mode, and the flags among
overlay_options taken out of the option string as systemd's mount_option_mangle() takes them
(the mounts themselves are compared with systemd's in tests/integration/diff_scenarios_settings.py)."""

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import apply, mountapi as m

RO, NODEV, NOSUID, NOEXEC, NOATIME = (m.MOUNT_ATTR_RDONLY, m.MOUNT_ATTR_NODEV, m.MOUNT_ATTR_NOSUID,
                                      m.MOUNT_ATTR_NOEXEC, m.MOUNT_ATTR_NOATIME)


def req(cls='sysext', options=None):
    return apply.BuildRequest(root='/', cls=cls, hierarchies=(), rebuild=(), layers=[], origin_doc={},
                              overlay_options=options)


@pytest.mark.parametrize('options,fs,on,off', [
    ([], [], 0, 0),
    (['redirect_dir=on', 'noatime'], ['redirect_dir=on'], NOATIME, m.MOUNT_ATTR__ATIME & ~NOATIME),
    (['noatime', 'relatime'], [], 0, m.MOUNT_ATTR__ATIME),
    (['ro', 'rw'], [], 0, RO),
    (['nosuid', 'xino=off', 'suid', 'nosuid'], ['xino=off'], NOSUID, 0),
    (['nodiratime', 'strictatime'], [], m.MOUNT_ATTR_NODIRATIME | m.MOUNT_ATTR_STRICTATIME,
     m.MOUNT_ATTR__ATIME & ~m.MOUNT_ATTR_STRICTATIME),
])
def test_split_options(options, fs, on, off):
    assert apply.split_options(options) == (fs, on, off)


def test_attrs_as_systemd_sets_them():
    assert apply._attrs(req(), writable=False) == RO | NODEV
    assert apply._attrs(req(), writable=True) == NODEV | NOATIME            # noatime: a default option
    assert apply._attrs(req(options=''), writable=True) == NODEV            # options given replace the defaults
    assert apply._attrs(req('confext'), writable=False) == RO | NODEV | NOSUID | NOEXEC
    fs, on, off = apply.split_options(['dev', 'exec', 'noatime'])
    assert apply._attrs(req('confext', 'dev,exec,noatime'), False, on, off) == RO | NOSUID | NOATIME


def test_legacy_flags():
    assert apply._ms_flags(RO | NODEV | NOATIME) == m.MS_RDONLY | m.MS_NODEV | m.MS_NOATIME
    assert apply._ms_flags(m.MOUNT_ATTR_STRICTATIME | m.MOUNT_ATTR_NODIRATIME) == m.MS_STRICTATIME | m.MS_NODIRATIME
