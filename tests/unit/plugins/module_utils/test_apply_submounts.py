# -*- coding: utf-8 -*-
"""Which submounts apply.py carries over, from captured mountinfo (no mounts made): the
visible ones only, outermost only, not the metadata bind; on unmerge only those the overlay
alone has. (The mounting itself runs in tests/integration and tests/faults.)"""

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import apply, mountinfo, submounts

MERGED = """\
1 0 8:1 / / rw - ext4 /dev/sda rw
10 1 0:40 / /R rw shared:1 - tmpfs tmpfs rw
20 10 0:41 / /R/usr/share/sub rw shared:2 - tmpfs tmpfs rw
21 20 0:42 / /R/usr/share/sub/deeper rw shared:3 - tmpfs tmpfs rw
40 10 0:60 / /R/usr/share/stack rw - tmpfs tmpfs rw
41 40 0:61 / /R/usr/share/stack rw - tmpfs tmpfs rw
50 10 0:70 / /R/opt/x rw - tmpfs tmpfs rw
30 10 0:50 / /R/usr ro,nodev - overlay sysext ro,lowerdir+=/a
31 30 0:41 / /R/usr/share/sub rw - tmpfs tmpfs rw
32 31 0:42 / /R/usr/share/sub/deeper rw - tmpfs tmpfs rw
33 30 0:51 / /R/usr/share/late rw - tmpfs tmpfs rw
34 30 0:50 /.systemd-sysext /R/usr/.systemd-sysext ro - overlay sysext ro,lowerdir+=/a
35 30 0:61 / /R/usr/share/stack rw - tmpfs tmpfs rw
36 30 0:80 /data /R/usr/share/bound rw - ext4 /dev/sdb rw
60 1 0:90 / /R/run/tucked-sysext/submounts/usr/share/late rw - tmpfs tmpfs rw
61 60 0:91 / /R/run/tucked-sysext/submounts/usr/share/late/in rw - tmpfs tmpfs rw
62 1 0:92 / /R/run/tucked-sysext/submounts/bogus/x rw - tmpfs tmpfs rw
"""
# what a path lookup reaches now (statx mount id), with the overlay merged
VISIBLE = {'/R/usr/share/sub': 31, '/R/usr/share/sub/deeper': 32, '/R/usr/share/late': 33,
           '/R/usr/.systemd-sysext': 34, '/R/usr/share/stack': 35, '/R/usr/share/bound': 36, '/R/opt/x': 50}


@pytest.fixture(name='visible')
def visible_fixture(monkeypatch):
    table = dict(VISIBLE)

    def mount_id(path):
        if path not in table:
            raise FileNotFoundError(2, 'No such file or directory', path)
        return table[path]
    monkeypatch.setattr(apply.mountapi, 'mount_id', mount_id)
    monkeypatch.setattr(submounts, 'hierarchy_host', lambda root, h: '/R' + h)
    return table


def targets(ms):
    return [(m.mount_id, m.target) for m in ms]


def test_visible_submounts_outermost_and_not_the_metadata(visible):
    ms = mountinfo.parse(MERGED)
    assert targets(submounts.visible_submounts('/R/usr', 'sysext', ms)) == [
        (36, '/R/usr/share/bound'), (33, '/R/usr/share/late'), (35, '/R/usr/share/stack'), (31, '/R/usr/share/sub')]
    assert targets(submounts.visible_submounts('/R/opt', 'sysext', ms)) == [(50, '/R/opt/x')]
    assert submounts.visible_submounts('/R/etc', 'confext', ms) == []


def test_only_the_top_of_a_stack_is_visible(visible):
    ms = [m for m in mountinfo.parse(MERGED) if not 30 <= m.mount_id < 40]
    visible.update({'/R/usr/share/sub': 20, '/R/usr/share/sub/deeper': 21, '/R/usr/share/stack': 41})
    assert targets(submounts.visible_submounts('/R/usr', 'sysext', ms)) == [
        (41, '/R/usr/share/stack'), (20, '/R/usr/share/sub')]


def test_overlay_only_submounts(visible):
    """Clones of base mounts (same filesystem, same place) stay behind on the base already;
    a mount made on the overlay, or a bind of another filesystem, goes back on unmerge."""
    ms = mountinfo.parse(MERGED)
    assert targets(submounts.overlay_only_submounts('/', '/usr', 'sysext', ms)) == [
        (36, '/R/usr/share/bound'), (33, '/R/usr/share/late')]
    assert submounts.overlay_only_submounts('/', '/opt', 'sysext', ms) == [], '/opt is not merged: nothing of an overlay'


def test_overlay_of_another_class_is_not_ours(visible):
    ms = [m._replace(source='confext') if m.fstype == 'overlay' else m for m in mountinfo.parse(MERGED)]
    assert submounts.overlay_only_submounts('/', '/usr', 'sysext', ms) == []


def test_held_mounts(monkeypatch):
    monkeypatch.setattr(apply.os.path, 'realpath', lambda p: p)
    ms = mountinfo.parse(MERGED)
    held = submounts.held_mounts('/R', ms)
    assert [(m.mount_id, h, rel) for m, h, rel in held] == [(60, '/usr', 'share/late')], \
        'outermost only, and only under a hierarchy the collection knows'


OVERLAYS = """\
1 0 8:1 / / rw - ext4 /dev/sda rw
30 1 0:50 / /R/usr rw - overlay sysext rw,lowerdir=/a,upperdir=/R/var/lib/extensions.mutable/usr,\
workdir=/R/var/lib/extensions.mutable/.systemd-usr-workdir-0123456789abcdef,redirect_dir=on
31 1 0:51 / /R/opt rw - overlay sysext rw,lowerdir=/a,upperdir=/diff/var/lib/extensions.mutable/opt,\
workdir=/diff/var/lib/extensions.mutable/.systemd-opt-workdir,redirect_dir=on
32 1 0:52 / /R/etc ro - overlay confext ro,lowerdir=/a
"""


def test_overlay_work_dir_from_the_mount_options(monkeypatch):
    monkeypatch.setattr(submounts, 'hierarchy_host', lambda root, h: '/R' + h)
    monkeypatch.setattr(apply.os.path, 'realpath', lambda p: p)
    ms = mountinfo.parse(OVERLAYS)
    assert apply.overlay_work_dir('/R', '/usr', 'sysext', ms) == \
        'var/lib/extensions.mutable/.systemd-usr-workdir-0123456789abcdef'
    # mounted by a chrooted systemd-sysext --root=/diff: the option names the root as it saw it
    assert apply.overlay_work_dir('/chroot/diff', '/opt', 'sysext', ms) == \
        'var/lib/extensions.mutable/.systemd-opt-workdir'
    assert apply.overlay_work_dir('/R', '/etc', 'confext', ms) is None, 'read-only: no work directory'
    assert apply.overlay_work_dir('/R', '/usr', 'confext', ms) is None, 'not an overlay of this class'
