# -*- coding: utf-8 -*-
"""Image policies: systemd's syntax and how systemd-sysext 262 applies one to a plain image file
(each case's outcome was seen with systemd-sysext 262 --image-policy= on a squashfs image)."""

import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import policy
from ansible_collections.tucked.sysext.plugins.module_utils.policy import Protection

PLAIN = Protection('unprotected', '')


@pytest.mark.parametrize('text,canonical', [
    ('*', '=open'),
    ('-', '=unused+absent'),
    ('', '=unused+absent'),
    ('~', '=absent'),
    ('=unprotected', '=unprotected'),
    ('root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent',
     'root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent:=unused+absent'),
    (policy.DEFAULT['sysext'], policy.DEFAULT['sysext'] + ':=unused+absent'),
    ('root=encryptedwithintegrity', 'root=encryptedwithintegrity:=unused+absent'),
    ('usr=open:root=ignore', 'root=unused+absent:usr=open:=unused+absent'),
    ('root= verity + signed ', 'root=verity+signed:=unused+absent'),
    ('root=squashfs+read-only-off', 'root=read-only-off+squashfs:=unused+absent'),
    ('root=-', 'root=-:=unused+absent'),
])
def test_parse(text, canonical):
    assert policy.parse(text).text == canonical
    assert policy.parse(canonical).text == canonical           # the canonical form parses to itself


@pytest.mark.parametrize('text,why', [
    ('root', 'has no "="'),
    ('root=bogus', 'unknown partition policy flag'),
    ('bogus=unprotected', 'unknown partition designator'),
    ('root=unprotected:root=verity', 'duplicate rule'),
    ('=open:=absent', 'default rule'),
])
def test_parse_refused(text, why):
    with pytest.raises(policy.PolicyError, match=why):
        policy.parse(text)


def test_graceful_drops_unknown_names_only():
    assert policy.parse('root=bogus+verity:bogus=open', graceful=True).text == 'root=verity:=unused+absent'
    with pytest.raises(policy.PolicyError):
        policy.parse('nocolon', graceful=True)


@pytest.mark.parametrize('text,allowed,why', [
    ('root=absent', False, 'must be absent'),
    ('root=verity', False, 'it is unprotected'),
    ('root=unprotected', True, None),
    ('root=erofs', False, 'it is squashfs'),
    ('root=squashfs', True, None),
    ('usr=unprotected', False, 'uses no root partition'),
    ('~', False, 'must be absent'),
    ('*', True, None),
    ('-', False, 'uses no root partition'),
    ('root=unused', False, 'uses no root partition'),
    ('root=read-only-on', False, 'read-only flag on'),
    ('root=read-only-on+read-only-off', True, None),
    ('root=growfs-off', True, None),
    ('root=growfs-on', False, 'growfs flag on'),
    ('=unprotected', True, None),
    ('root=', True, None),                      # no use flag: open
    (policy.DEFAULT['sysext'], True, None),
    (policy.STRICT['sysext'], False, 'it is unprotected'),
])
def test_check_plain_squashfs(text, allowed, why):
    got = policy.check(policy.parse(text), policy.naked(PLAIN, 'squashfs'))
    assert (got is None) == allowed, got
    if why:
        assert why in got


def test_check_verity():
    verity, signed = Protection('verity', 'x'), Protection('signed', 'x')
    assert policy.check(policy.parse('root=verity'), policy.naked(verity, 'erofs')) is None
    assert 'it is verity' in policy.check(policy.parse('root=unprotected'), policy.naked(verity, 'erofs'))
    # a plain image signed through its sidecars is "signed" only (dissect_image(), naked images)
    assert 'it is signed' in policy.check(policy.parse('root=verity'), policy.naked(signed, 'erofs'))
    assert policy.check(policy.parse(policy.STRICT['sysext']), policy.naked(signed, 'erofs')) is None
    assert 'the default rule' in policy.check(policy.parse('usr=open'), policy.naked(PLAIN, 'erofs'))


def test_protection_from_sidecars(tmp_path):
    img = tmp_path / 'foo.raw'
    img.write_bytes(b'x')
    assert policy.protection(str(img)).kind == 'unprotected'
    (tmp_path / 'foo.roothash').write_text('ab' * 32)
    assert policy.protection(str(img)).kind == 'unprotected'    # a root hash without hash tree covers nothing
    (tmp_path / 'foo.verity').write_bytes(b'v')
    assert policy.protection(str(img)).kind == 'verity'
    (tmp_path / 'foo.roothash.p7s').write_bytes(b's')
    assert policy.protection(str(img)).kind == 'signed'
    os.unlink(tmp_path / 'foo.roothash')
    os.unlink(tmp_path / 'foo.roothash.p7s')
    try:
        os.setxattr(str(img), 'user.verity.roothash', b'ab' * 32)
    except OSError:
        pytest.skip('no user xattrs on %s' % tmp_path)
    assert policy.protection(str(img)).kind == 'verity'


def test_for_image():
    assert policy.for_image('sysext', None, '/var/lib/extensions/a.raw', False) == policy.DEFAULT['sysext']
    assert policy.for_image('sysext', None, '/.extra/sysext/a.raw', False) == policy.DEFAULT['sysext']
    assert policy.for_image('sysext', None, '/.extra/sysext/a.raw', True) == policy.STRICT['sysext']
    assert policy.for_image('confext', None, '/.extra/global_confext/a.raw', True) == policy.STRICT['confext']
    assert policy.for_image('confext', None, '/.extra/sysext/a.raw', True) == policy.DENY
    assert policy.for_image('sysext', '*', '/.extra/sysext/a.raw', True) == '*'
