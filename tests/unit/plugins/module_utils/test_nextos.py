# -*- coding: utf-8 -*-
"""nextos.py: the next-OS check, release.match() against another os-release, and the strict
reading of that os-release (data, text, a file)."""

import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import engine, nextos, release
from ansible_collections.tucked.sysext.plugins.module_utils.release import Host

ARCH = 'x86-64'
OTHER = 'arm64'
NOW = Host(os_release={'ID': 'debian', 'VERSION_ID': '13'}, architecture=ARCH, source='/etc/os-release')


def nxt(fields, current=NOW):
    host = nextos.host_for(nextos.from_fields(fields), 'next_os_release', current)[0]
    return host


def check(ext, fields, cls='sysext', current=NOW):
    m = release.match('foo', ext, nxt(fields, current), cls)
    return m.compatible, m.field


DEB13 = {'ID': 'debian', 'VERSION_ID': '13'}
LEVEL = {'ID': 'debian', 'VERSION_ID': '13', 'SYSEXT_LEVEL': '1.0', 'CONFEXT_LEVEL': '7'}


@pytest.mark.parametrize('ext,fields,cls,expected', [
    # VERSION_ID bump: an extension pinned to 13 is dropped by 14, one for 14 matches
    (DEB13, {'ID': 'debian', 'VERSION_ID': '14'}, 'sysext', (False, 'VERSION_ID')),
    ({'ID': 'debian', 'VERSION_ID': '14'}, {'ID': 'debian', 'VERSION_ID': '14'}, 'sysext', (True, None)),
    # no VERSION_ID in the extension while the next OS has one
    ({'ID': 'debian'}, {'ID': 'debian', 'VERSION_ID': '14'}, 'sysext', (False, 'VERSION_ID')),
    # ID changes; ID_LIKE of the next OS counts, as systemd's extension_release_validate() does
    (DEB13, {'ID': 'ubuntu', 'VERSION_ID': '13'}, 'sysext', (False, 'ID')),
    (DEB13, {'ID': 'ubuntu', 'ID_LIKE': 'fedora debian', 'VERSION_ID': '13'}, 'sysext', (True, None)),
    (DEB13, {'ID': 'ubuntu', 'ID_LIKE': 'debian', 'VERSION_ID': '14'}, 'sysext', (False, 'VERSION_ID')),
    # SYSEXT_LEVEL: when both sides have one it decides alone, VERSION_ID may change
    ({'ID': 'debian', 'SYSEXT_LEVEL': '1.0', 'VERSION_ID': '13'}, dict(LEVEL, VERSION_ID='14'), 'sysext', (True, None)),
    ({'ID': 'debian', 'SYSEXT_LEVEL': '1.0'}, dict(LEVEL, SYSEXT_LEVEL='2.0'), 'sysext', (False, 'SYSEXT_LEVEL')),
    # a level on the extension only: VERSION_ID is compared
    ({'ID': 'debian', 'SYSEXT_LEVEL': '1.0', 'VERSION_ID': '13'}, {'ID': 'debian', 'VERSION_ID': '14'}, 'sysext',
     (False, 'VERSION_ID')),
    # a level on the next OS only: VERSION_ID is compared
    (DEB13, {'ID': 'debian', 'VERSION_ID': '13', 'SYSEXT_LEVEL': '2'}, 'sysext', (True, None)),
    # confext: CONFEXT_LEVEL, SYSEXT_LEVEL does not count
    ({'ID': 'debian', 'CONFEXT_LEVEL': '7', 'VERSION_ID': '1'}, dict(LEVEL, CONFEXT_LEVEL='8'), 'confext',
     (False, 'CONFEXT_LEVEL')),
    ({'ID': 'debian', 'CONFEXT_LEVEL': '7'}, dict(LEVEL, SYSEXT_LEVEL='9', VERSION_ID='99'), 'confext', (True, None)),
    # _any matches every OS, whatever its version fields
    ({'ID': '_any', 'VERSION_ID': '1', 'SYSEXT_LEVEL': '9'}, {'ID': 'fedora', 'VERSION_ID': '42'}, 'sysext',
     (True, None)),
    # a rolling next OS (neither VERSION_ID nor a level): ID alone
    (DEB13, {'ID': 'debian'}, 'sysext', (True, None)),
    # ARCHITECTURE is matched against the machine, before ID (even for _any)
    ({'ID': '_any', 'ARCHITECTURE': OTHER}, {'ID': 'debian'}, 'sysext', (False, 'ARCHITECTURE')),
    ({'ID': 'debian', 'VERSION_ID': '14', 'ARCHITECTURE': ARCH}, {'ID': 'debian', 'VERSION_ID': '14'}, 'sysext',
     (True, None)),
    # the scope of the root: an initrd-only extension on a system root
    ({'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}, {'ID': 'debian'}, 'sysext', (False, 'SYSEXT_SCOPE')),
    ({'ID': '_any', 'CONFEXT_SCOPE': 'initrd'}, {'ID': 'debian'}, 'confext', (False, 'CONFEXT_SCOPE')),
    ({}, {'ID': 'debian'}, 'sysext', (False, 'extension-release')),
    ({'VERSION_ID': '13'}, {'ID': 'debian'}, 'sysext', (False, 'ID')),
])
def test_match_against_the_next_os(ext, fields, cls, expected):
    assert check(ext, fields, cls) == expected


def test_the_next_os_keeps_the_roots_scope_and_the_machines_architecture():
    initrd = NOW._replace(scope='initrd', architecture=OTHER)
    host, warnings = nextos.host_for({'ID': 'debian', 'ARCHITECTURE': ARCH}, 'next_os_release', initrd)
    assert (host.scope, host.architecture) == ('initrd', OTHER)
    assert warnings == ['next_os_release has ARCHITECTURE=x86-64, but systemd-sysext matches extensions against the '
                        'architecture of the running kernel, arm64; the next-OS check uses arm64']
    assert check({'ID': '_any', 'SYSEXT_SCOPE': 'initrd'}, {'ID': 'debian'}, current=initrd) == (True, None)
    ext = {'ID': '_any', 'ARCHITECTURE': ARCH, 'SYSEXT_SCOPE': 'initrd'}
    assert check(ext, {'ID': 'debian', 'ARCHITECTURE': ARCH}, current=initrd) == (False, 'ARCHITECTURE')
    assert nextos.host_for({'ID': 'debian', 'ARCHITECTURE': OTHER}, 'x', initrd)[1] == []


def test_reason_names_the_next_os_release():
    m = release.match('foo', DEB13, nxt({'ID': 'debian', 'VERSION_ID': '14'}), 'sysext')
    assert m.reason == ("extension 'foo' is for OS version '13' (VERSION_ID=13), but deployed on top of '14' "
                        "(VERSION_ID=14 in next_os_release)")
    m = release.match('foo', {'ID': 'debian', 'SYSEXT_LEVEL': '1'}, nxt(dict(LEVEL, SYSEXT_LEVEL='2')), 'sysext')
    assert 'SYSEXT_LEVEL=2 in next_os_release' in m.reason


def test_validate_is_match_without_the_field():
    for ext in (DEB13, {'ID': 'fedora'}, {}, {'ID': '_any'}):
        m = release.match('foo', ext, NOW, 'sysext')
        assert release.validate('foo', ext, NOW, 'sysext') == (m.compatible, m.reason)


# ----------------------------------------------------------------------------- input
def test_fields_as_data():
    assert nextos.from_fields({'ID': 'debian', 'VERSION_ID': 14}) == {'ID': 'debian', 'VERSION_ID': '14'}
    assert nextos.load({'ID': 'x'}) == ({'ID': 'x'}, 'next_os_release')


@pytest.mark.parametrize('fields,match', [
    ({'ID': 'debian', 'VERSION_ID': 1.1}, 'VERSION_ID is a float .*quote it .*1.10 as the number 1.1'),
    ({'ID': True}, 'ID is a bool .*quote it'),
    ({'ID': ['a']}, 'ID is a list'),
    ({'ID': None}, 'ID is a NoneType'),
    ({'1ID': 'x'}, "'1ID' is not an os-release field name"),
    ({'VERSION ID': 'x'}, "'VERSION ID' is not an os-release field name"),
    (['ID=debian'], 'must be a dict of os-release fields .* not a list'),
    (None, 'not a NoneType'),
])
def test_fields_refused(fields, match):
    with pytest.raises(nextos.NextOSError, match='^next_os_release.*' + match):
        nextos.load(fields)


def test_text_as_data():
    text = '# the next one\nNAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="14"\n\nID_LIKE=\'a b\'\n'
    assert nextos.load(text) == ({'NAME': 'Debian GNU/Linux', 'ID': 'debian', 'VERSION_ID': '14', 'ID_LIKE': 'a b'},
                                 'next_os_release')


@pytest.mark.parametrize('text,match', [
    ('ID=debian\nVERSION_ID 14\n', r"line 2 is not KEY=VALUE \('VERSION_ID 14'\)"),
    ('ID=debian\n1BAD=x\nworse\n', r"line 2 is not KEY=VALUE \('1BAD=x'\).*fix or remove that line \(and 1 more\)"),
    ('ID: debian\n', r"line 1 is not KEY=VALUE \('ID: debian'\)"),
    ('ID=a\0b\n', 'contains NUL bytes; give the text of an os-release file'),
])
def test_text_refused(text, match):
    with pytest.raises(nextos.NextOSError, match='^next_os_release ' + match):
        nextos.load(text)


def test_missing_or_empty_id():
    for fields in ({'VERSION_ID': '14'}, {'ID': '', 'VERSION_ID': '14'}):
        with pytest.raises(nextos.NextOSError, match=r'^next_os_release has no ID .* Add ID=\.\.\.'):
            nextos.host_for(fields, 'next_os_release', NOW)


def test_file(tmp_path):
    p = tmp_path / 'os-release'
    p.write_text('ID=debian\nVERSION_ID=14\n')
    link = tmp_path / 'link'
    os.symlink('os-release', link)
    assert nextos.load(None, str(link)) == ({'ID': 'debian', 'VERSION_ID': '14'}, str(link))
    assert nextos.load({'ignored': 'x'}, str(p))[1] == str(p), 'the file wins (the module makes them exclusive)'


def test_file_refused(tmp_path):
    bad = tmp_path / 'bad'
    bad.write_text('ID=debian\nthis is not an os-release\n')
    with pytest.raises(nextos.NextOSError, match='^%s line 2 is not KEY=VALUE' % bad):
        nextos.load(None, str(bad))
    latin = tmp_path / 'latin'
    latin.write_bytes(b'ID=d\xe9bian\n')
    with pytest.raises(nextos.NextOSError, match='^%s is not valid UTF-8' % latin):
        nextos.load(None, str(latin))
    with pytest.raises(nextos.NextOSError, match='^%s is a directory, not a regular file; give next_os_release_file '
                                                 'as the path of an os-release file' % tmp_path):
        nextos.load(None, str(tmp_path))
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    with pytest.raises(nextos.NextOSError, match='is a FIFO'):
        nextos.load(None, str(fifo))
    with pytest.raises(nextos.NextOSError, match=r'^cannot read next_os_release_file \(%s\): No such file' % (tmp_path / 'no')):
        nextos.load(None, str(tmp_path / 'no'))


# ----------------------------------------------------------------------------- the facts
def _ext(root, sdir, name, text, cls='sysext'):
    rel = 'usr/lib/extension-release.d' if cls == 'sysext' else 'etc/extension-release.d'
    d = root / sdir / name / rel
    d.mkdir(parents=True)
    if text is not None:
        (d / ('extension-release.' + name)).write_text(text)


@pytest.fixture(name='root')
def root_fixture(tmp_path):
    root = tmp_path / 'root'
    for d in ('usr/lib', 'etc', 'opt', 'var/lib/extensions', 'var/lib/confexts'):
        (root / d).mkdir(parents=True)
    (root / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=13\n')
    ext = 'var/lib/extensions'
    _ext(root, ext, 'pinned', 'ID=debian\nVERSION_ID=13\n')
    _ext(root, ext, 'any', 'ID=_any\n')
    _ext(root, ext, 'ready', 'ID=debian\nVERSION_ID=14\n')          # prepared for the update
    _ext(root, ext, 'fedora', 'ID=fedora\nVERSION_ID=14\n')         # matches neither
    _ext(root, ext, 'norelease', None)                              # unreadable: no release file
    (root / ext / 'not-an-image.txt').write_text('x')               # ignored entry
    _ext(root, 'var/lib/confexts', 'conf', 'ID=debian\nVERSION_ID=13\n', cls='confext')
    return root


def test_facts_with_the_next_os(root):
    snap = engine.gather(str(root), cache='off')
    host = nextos.host_for({'ID': 'debian', 'VERSION_ID': '14'}, 'next_os_release', snap.host)[0]
    facts = engine.facts(snap, host)
    by = {(i['class'], i['name'] or i['entry']): i for i in facts['images']}
    assert by[('sysext', 'pinned')]['next_os'] == {
        'compatible': False, 'field': 'VERSION_ID',
        'reason': "extension 'pinned' is for OS version '13' (VERSION_ID=13), but deployed on top of '14' "
                  "(VERSION_ID=14 in next_os_release)"}
    assert by[('sysext', 'pinned')]['compatible'] is True
    assert by[('sysext', 'any')]['next_os']['compatible'] is True
    assert by[('sysext', 'ready')]['next_os'] == {
        'compatible': True, 'field': None, 'reason': "version info of extension 'ready' matches the host"}
    assert by[('sysext', 'fedora')]['next_os']['field'] == 'ID'
    nr = by[('sysext', 'norelease')]['next_os']
    assert nr['compatible'] is None and nr['reason'].startswith('cannot be matched: its release could not be read (')
    assert by[('sysext', '/var/lib/extensions/not-an-image.txt')]['next_os'] is None
    assert by[('confext', 'conf')]['next_os']['field'] == 'VERSION_ID'
    summary = facts['next_os']
    assert {k: summary[k] for k in ('source', 'id', 'version_id', 'id_like', 'scope', 'compatible')} == {
        'source': 'next_os_release', 'id': 'debian', 'version_id': '14', 'id_like': None, 'scope': 'system',
        'compatible': False}
    assert [(d['class'], d['name'], d['field']) for d in summary['dropped']] == [
        ('sysext', 'pinned', 'VERSION_ID'), ('confext', 'conf', 'VERSION_ID')]
    assert summary['dropped'][0]['entry'] == '/var/lib/extensions/pinned'
    assert [g['name'] for g in summary['gained']] == ['ready']


def test_facts_without_the_next_os_are_unchanged(root):
    facts = engine.facts(engine.gather(str(root), cache='off'))
    assert 'next_os' not in facts and not any('next_os' in i for i in facts['images'])


def test_same_os_drops_nothing(root):
    snap = engine.gather(str(root), cache='off')
    host = nextos.host_for(dict(snap.host.os_release), 'next_os_release', snap.host)[0]
    facts = engine.facts(snap, host)
    assert facts['next_os']['compatible'] is True and facts['next_os']['dropped'] == []
    assert facts['next_os']['gained'] == []
    for img in facts['images']:
        if img['type'] != 'ignored' and img['next_os']['compatible'] is not None:
            assert img['next_os']['compatible'] == img['compatible'], img
