# -*- coding: utf-8 -*-
"""release.py: systemd's parse_env_file() and extension_release_validate()."""

import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import release
from ansible_collections.tucked.sysext.plugins.module_utils.release import Host, ReleaseError, parse_env, validate


@pytest.mark.parametrize('text,expected', [
    ('ID=debian\nVERSION_ID=12\n', {'ID': 'debian', 'VERSION_ID': '12'}),
    ('ID="debian"\n', {'ID': 'debian'}),
    ("ID='deb ian'\n", {'ID': 'deb ian'}),
    ('ID="a"\'b\'c\n', {'ID': 'abc'}),                       # quoted and bare parts concatenate
    ('ID="a\\"b\\\\c\\$d\\`e"\n', {'ID': 'a"b\\c$d`e'}),     # escapes inside double quotes
    ('ID="a\\nb"\n', {'ID': 'a\\nb'}),                        # other escapes are kept
    ('ID=a\\ b\n', {'ID': 'a b'}),                            # backslash escapes outside quotes
    ('ID=long\\\nvalue\n', {'ID': 'longvalue'}),              # continuation line
    ('  ID  =  spaced  \n', {'ID': 'spaced'}),                # whitespace around key and value
    ('# comment\n; other comment\nID=x\n', {'ID': 'x'}),
    ('NOEQUALS\nID=x\n', {'ID': 'x'}),                        # lines without '=' are ignored
    ('1BAD=x\nGOOD_1=y\n', {'GOOD_1': 'y'}),                  # invalid keys are ignored
    ('ID=\n', {'ID': ''}),
    ('ID=a\nID=b\n', {'ID': 'b'}),                            # the last one wins
    ('ID=x\r\n', {'ID': 'x'}),
    ('', {}),
])
def test_parse_env(text, expected):
    assert parse_env(text) == expected


def test_parse_env_errors():
    with pytest.raises(ReleaseError, match='NUL'):
        parse_env('ID=a\0b\n')


@pytest.mark.parametrize('text,expected', [
    ('ID="open\n', {'ID': 'open\n'}),
    ("ID='open\nB=c\n", {'ID': 'open\nB=c\n'}),
    ('ID=x\nDESCRIPTION="never closed', {'ID': 'x', 'DESCRIPTION': 'never closed'}),
])
def test_a_quote_left_open_takes_the_rest_of_the_file(text, expected):
    """env-file.c pushes the value at the end of the file in any quoted state: no error."""
    assert parse_env(text) == expected


def test_a_long_bare_value_is_parsed_in_linear_time():
    assert len(parse_env('A=' + 'x' * 5000000 + '\n')['A']) == 5000000


def test_read_release_bytes_names_the_file():
    with pytest.raises(ReleaseError, match='/x/rel is larger than'):
        release.read_release_bytes(b'#' * (64 * 1024 * 1024), '/x/rel')
    with pytest.raises(ReleaseError, match='/x/rel is not valid UTF-8'):
        release.read_release_bytes(b'ID=\xff\n', '/x/rel')
    with pytest.raises(ReleaseError, match='/x/rel: contains NUL'):
        release.read_release_bytes(b'ID=\0\n', '/x/rel')


HOST = Host(os_release={'ID': 'debian', 'VERSION_ID': '12', 'ID_LIKE': 'ubuntu'}, scope='system', architecture='x86-64')


@pytest.mark.parametrize('ext,ok,why', [
    ({}, False, 'carries no release data'),
    ({'ID': '_any'}, True, 'any OS'),
    ({'ID': '_any', 'VERSION_ID': '1'}, True, 'any OS'),           # _any skips version checks
    ({'ID': 'debian', 'VERSION_ID': '12'}, True, 'matches'),
    ({'ID': 'debian', 'VERSION_ID': '11'}, False, "for OS version '11'"),
    ({'ID': 'debian'}, False, 'does not contain VERSION_ID'),
    ({'ID': 'fedora', 'VERSION_ID': '12'}, False, "for OS 'fedora'"),
    ({'ID': 'ubuntu', 'VERSION_ID': '12'}, True, 'matches'),       # ID_LIKE of the host counts
    ({'VERSION_ID': '12'}, False, 'does not contain ID'),
    ({'ID': '_any', 'ARCHITECTURE': 'arm64'}, False, "architecture 'arm64'"),
    ({'ID': '_any', 'ARCHITECTURE': 'x86-64'}, True, 'any OS'),
    ({'ID': '_any', 'ARCHITECTURE': '_any'}, True, 'any OS'),
    ({'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}, False, 'not suitable for scope system'),
    ({'ID': '_any', 'SYSEXT_SCOPE': 'initrd system'}, True, 'any OS'),
    ({'ID': '_any', 'SYSEXT_SCOPE': 'portable'}, False, 'scope'),
])
def test_validate_sysext(ext, ok, why):
    got, reason = validate('e', ext, HOST, 'sysext')
    assert got is ok and why in reason, reason


def test_levels_win_over_version_id():
    host = Host(os_release={'ID': 'fedora', 'VERSION_ID': '40', 'SYSEXT_LEVEL': '1.2', 'CONFEXT_LEVEL': '7'},
                architecture='x86-64')
    assert validate('e', {'ID': 'fedora', 'SYSEXT_LEVEL': '1.2', 'VERSION_ID': '39'}, host, 'sysext')[0]
    ok, why = validate('e', {'ID': 'fedora', 'SYSEXT_LEVEL': '1.3'}, host, 'sysext')
    assert not ok and "API level '1.3'" in why
    # without a level on the extension, VERSION_ID decides
    assert validate('e', {'ID': 'fedora', 'VERSION_ID': '40'}, host, 'sysext')[0]
    # confext uses CONFEXT_LEVEL and CONFEXT_SCOPE
    assert validate('e', {'ID': 'fedora', 'CONFEXT_LEVEL': '7'}, host, 'confext')[0]
    assert not validate('e', {'ID': 'fedora', 'CONFEXT_LEVEL': '8'}, host, 'confext')[0]
    assert not validate('e', {'ID': '_any', 'CONFEXT_SCOPE': 'initrd'}, host, 'confext')[0]
    assert validate('e', {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}, host, 'confext')[0]


def test_rolling_release_host_matches_on_id():
    host = Host(os_release={'ID': 'arch'}, architecture='x86-64')
    ok, why = validate('e', {'ID': 'arch', 'VERSION_ID': 'whatever'}, host, 'sysext')
    assert ok and 'rolling release' in why


def test_initrd_scope():
    host = Host(os_release={'ID': 'x'}, scope='initrd', architecture='x86-64')
    assert not validate('e', {'ID': '_any'}, host, 'sysext')[0]        # default scope: system, portable
    assert validate('e', {'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}, host, 'sysext')[0]


def test_native_architecture():
    assert release.native_architecture('x86_64') == 'x86-64'
    assert release.native_architecture('aarch64') == 'arm64'
    assert release.native_architecture('riscv64') == 'riscv64'


def _root(tmp_path, etc=None, usr=None):
    (tmp_path / 'etc').mkdir()
    (tmp_path / 'usr/lib').mkdir(parents=True)
    if usr is not None:
        (tmp_path / 'usr/lib/os-release').write_text(usr)
    if etc == 'symlink':
        os.symlink('../usr/lib/os-release', tmp_path / 'etc/os-release')
    elif etc is not None:
        (tmp_path / 'etc/os-release').write_text(etc)
    return str(tmp_path)


def test_read_host_follows_the_relative_symlink(tmp_path):
    host = release.read_host(_root(tmp_path, etc='symlink', usr='ID=debian\nVERSION_ID=12\n'))
    assert host.id == 'debian' and host.source == '/etc/os-release' and host.scope == 'system'


def test_read_host_absolute_symlink_stays_in_root(tmp_path):
    root = _root(tmp_path, usr='ID=inroot\n')
    os.symlink('/usr/lib/os-release', tmp_path / 'etc/os-release')
    assert release.read_host(root).id == 'inroot'


def test_read_host_falls_back_to_usr_lib(tmp_path):
    host = release.read_host(_root(tmp_path, usr='ID=fallback\n'))
    assert host.id == 'fallback' and host.source == '/usr/lib/os-release'


def test_read_host_missing(tmp_path):
    with pytest.raises(ReleaseError, match='no os-release in'):
        release.read_host(_root(tmp_path))


def test_read_host_initrd(tmp_path):
    root = _root(tmp_path, etc='ID=x\n')
    (tmp_path / 'etc/initrd-release').write_text('')
    assert release.read_host(root).scope == 'initrd'


def test_initrd_release_is_followed_inside_the_root(tmp_path):
    """systemd 262 (measured, diff_scenarios_matching.py): a dangling etc/initrd-release symlink
    does not make an initrd, a directory does, a symlink to an existing file does."""
    root = _root(tmp_path, etc='ID=x\n')
    os.symlink('../usr/lib/initrd-release', tmp_path / 'etc/initrd-release')
    assert release.read_host(root).scope == 'system' and not release.is_initrd(root)
    (tmp_path / 'usr/lib/initrd-release').write_text('ID=x\n')
    assert release.read_host(root).scope == 'initrd'
    os.remove(tmp_path / 'etc/initrd-release')
    os.symlink('/usr/lib/initrd-release', tmp_path / 'etc/initrd-release')    # absolute: inside the root
    assert release.is_initrd(root)
    os.remove(tmp_path / 'etc/initrd-release')
    (tmp_path / 'etc/initrd-release').mkdir()
    assert release.read_host(root).scope == 'initrd'


LEVELS = Host(os_release={'ID': 'debian', 'VERSION_ID': '13', 'ID_LIKE': 'ubuntu fedora', 'SYSEXT_LEVEL': '1.0',
                          'CONFEXT_LEVEL': '7'}, architecture='x86-64', source='/etc/os-release')


@pytest.mark.parametrize('ext,cls,fields', [
    # each refusal names the extension, the field of its release file and the host's value
    ({'ID': 'arch', 'VERSION_ID': '13'}, 'sysext',
     ["'e'", 'ID=arch', 'ID=debian in /etc/os-release', "ID_LIKE='ubuntu fedora'"]),
    ({'ID': 'debian', 'VERSION_ID': '12'}, 'sysext', ['VERSION_ID=12', 'VERSION_ID=13 in /etc/os-release']),
    ({'ID': 'debian', 'SYSEXT_LEVEL': '2.0'}, 'sysext', ['SYSEXT_LEVEL=2.0', 'SYSEXT_LEVEL=1.0 in /etc/os-release']),
    ({'ID': 'debian', 'CONFEXT_LEVEL': '8'}, 'confext', ['CONFEXT_LEVEL=8', 'CONFEXT_LEVEL=7 in /etc/os-release']),
    ({'ID': 'debian'}, 'sysext', ['does not contain VERSION_ID', 'set VERSION_ID=13 or SYSEXT_LEVEL=1.0']),
    ({'ID': '_any', 'ARCHITECTURE': 'arm64'}, 'sysext', ['ARCHITECTURE=arm64', "'x86-64'"]),
    ({'ID': '_any', 'ARCHITECTURE': 'arm64'}, 'confext', ['ARCHITECTURE=arm64']),   # confext checks it too
    ({'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}, 'sysext', ['scope system', 'SYSEXT_SCOPE=initrd']),
    ({'ID': '_any', 'SYSEXT_SCOPE': ''}, 'sysext', ['scope system', 'SYSEXT_SCOPE=']),
    ({'ID': '_any', 'CONFEXT_SCOPE': 'portable'}, 'confext', ['CONFEXT_SCOPE=portable']),
    ({'VERSION_ID': '13'}, 'sysext', ['does not contain ID', 'ID=debian', 'ID=_any']),
])
def test_refusals_name_the_field(ext, cls, fields):
    ok, why = validate('e', ext, LEVELS, cls)
    assert not ok
    for f in fields:
        assert f in why, (f, why)


@pytest.mark.parametrize('ext,cls', [
    ({'ID': 'ubuntu', 'VERSION_ID': '13'}, 'sysext'),             # every ID_LIKE entry counts
    ({'ID': 'fedora', 'SYSEXT_LEVEL': '1.0'}, 'sysext'),
    ({'ID': 'debian', 'SYSEXT_LEVEL': '1.0', 'VERSION_ID': '99'}, 'sysext'),   # the level wins
    ({'ID': 'debian', 'CONFEXT_LEVEL': '7', 'VERSION_ID': '99'}, 'confext'),
    ({'ID': 'debian', 'CONFEXT_LEVEL': '8', 'VERSION_ID': '13'}, 'sysext'),    # the other class's level is ignored
    ({'ID': '_any', 'VERSION_ID': '1', 'SYSEXT_LEVEL': '9', 'ARCHITECTURE': '_any'}, 'sysext'),
    ({'ID': '_any', 'ARCHITECTURE': ''}, 'sysext'),
    ({'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}, 'confext'),          # SYSEXT_SCOPE means nothing to confext
])
def test_accepted(ext, cls):
    ok, why = validate('e', ext, LEVELS, cls)
    assert ok, why


def test_confext_level_mismatch_falls_back_to_nothing():
    # SYSEXT_LEVEL on a confext does not count: VERSION_ID decides
    ok, why = validate('e', {'ID': 'debian', 'SYSEXT_LEVEL': '1.0', 'VERSION_ID': '12'}, LEVELS, 'confext')
    assert not ok and 'VERSION_ID=12' in why


def test_host_level_without_version_id():
    host = Host(os_release={'ID': 'debian', 'SYSEXT_LEVEL': '1'}, architecture='x86-64')
    assert validate('e', {'ID': 'debian'}, host, 'sysext')[0]            # nothing to compare: accepted
    assert not validate('e', {'ID': 'debian', 'SYSEXT_LEVEL': '2'}, host, 'sysext')[0]


def test_initrd_scope_message_names_the_default():
    host = Host(os_release={'ID': 'x'}, scope='initrd', architecture='x86-64')
    ok, why = validate('e', {'ID': '_any'}, host, 'sysext')
    assert not ok and 'no SYSEXT_SCOPE' in why and 'system portable' in why and 'initrd-release' in why


def test_host_without_id():
    host = Host(os_release={'VERSION_ID': '13'}, architecture='x86-64', source='/etc/os-release')
    ok, why = validate('e', {'ID': '_any'}, host, 'sysext')
    assert not ok and 'no ID' in why
    assert 'etc/os-release has no ID' in release.missing_id(host, '/r')
    assert release.missing_id(HOST, '/r') is None
