# -*- coding: utf-8 -*-
import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import mountinfo

CAPTURED = """\
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
130 27 0:42 / /usr ro,nodev,relatime shared:77 - overlay sysext ro,lowerdir=/run/sysext/meta/usr:/run/sysext/a\\072b/usr:/usr,redirect_dir=on
140 27 0:50 / /my\\040dir rw,relatime master:2 - tmpfs tmpfs rw,size=4k
150 130 0:60 / /usr ro,nodev,relatime - overlay sysext ro,lowerdir=/x\\,y:/z
"""


def test_parse_captured():
    ms = mountinfo.parse(CAPTURED)
    assert [m.mount_id for m in ms] == [27, 130, 140, 150]
    usr = ms[1]
    assert usr.fstype == 'overlay' and usr.source == 'sysext' and usr.dev == '0:42'
    assert usr.optional == ('shared:77',) and 'nodev' in usr.options
    assert usr.super_options.endswith(':/usr,redirect_dir=on') and '/run/sysext/a:b/usr' in usr.super_options
    assert ms[2].target == '/my dir' and ms[2].optional == ('master:2',)
    assert ms[0].super_options == 'rw,discard'
    assert ms[2].parent_id == 27 and ms[3].parent_id == 130


def test_stack_at_lists_stacked_mounts_top_first():
    ms = mountinfo.parse(CAPTURED)
    assert [m.mount_id for m in mountinfo.stack_at(ms, '/usr')] == [150, 130]
    assert mountinfo.stack_at(ms, '/opt') == []


@pytest.mark.parametrize('line', ['garbage', '1 2 3', '27 1 254:0 / / rw shared:1 ext4 /dev/vda rw', 'x 1 254:0 / / rw - ext4 a b'])
def test_malformed(line):
    with pytest.raises(mountinfo.MountinfoError, match='malformed mountinfo line'):
        mountinfo.parse_line(line)


def test_reads_this_process():
    ms = mountinfo.read()
    assert any(m.target == '/' for m in ms)


SELF_BOUND = """\
200 1 0:50 / /R rw - tmpfs tmpfs rw
202 200 0:50 /R /R rw shared:1 - tmpfs tmpfs rw
325 202 0:60 / /R/usr ro shared:2 - overlay sysext ro
203 200 0:61 / /R/usr ro shared:2 - overlay sysext ro
"""


def test_the_stack_a_lookup_reaches_not_the_last_row():
    """A root bound onto itself under shared propagation: the overlay mounted on the bind (325)
    is copied onto the hidden tmpfs below (203, later in the table). A lookup reaches 325."""
    ms = mountinfo.parse(SELF_BOUND)
    assert [m.mount_id for m in mountinfo.stack_at(ms, '/R/usr', reached=325)] == [325]
    assert [m.mount_id for m in mountinfo.stack_at(ms, '/R/usr', reached=202)] == [], 'not a mount point'
    assert [m.mount_id for m in mountinfo.stack_at(ms, '/R/usr')] == [203], 'the table alone cannot tell'
