# -*- coding: utf-8 -*-
"""A host's systemd-sysupdate transfer definitions, read as systemd 262 reads them (the messages
and defaults checked here were seen from systemd-sysupdate 262 on the same files)."""

import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import confparser, sysupdate
from ansible_collections.tucked.sysext.plugins.module_utils.sysupdatepattern import Host

HOST = Host('x86-64', {'ID': 'flatcar', 'VERSION_ID': '4081.2.0'})

# what flatcar/sysext-bakery publishes beside its images (release_build_versions.txt's template)
BAKERY = '''[Transfer]
Verify=false
[Source]
Type=url-file
Path=https://extensions.flatcar.org/extensions/docker
MatchPattern=docker-@v-%a.raw
[Target]
InstancesMax=3
Type=regular-file
Path=/opt/extensions/docker
CurrentSymlink=/etc/extensions/docker.raw
'''


def write(root, rel, text):
    path = os.path.join(str(root), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)
    return path


def one(root, component='docker'):
    got = sysupdate.read_transfers(str(root), component, HOST)
    assert len(got) == 1, got
    return got[0]


def test_the_bakery_definition_is_an_extension_the_role_can_roll_out(tmp_path):
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY)
    t = one(tmp_path).as_dict()
    assert t['supported'] and not t['warnings'], t
    assert t['id'] == 'docker' and t['file'] == '/etc/sysupdate.docker.d/docker.conf'
    assert t['source'] == {'type': 'url-file', 'path': 'https://extensions.flatcar.org/extensions/docker',
                           'path_relative_to': 'root', 'match_pattern': ['docker-@v-%a.raw']}
    # no target MatchPattern=: "Assuming same value as in source specification"
    assert t['target'] == {'type': 'regular-file', 'path': '/opt/extensions/docker', 'path_relative_to': 'root',
                           'match_pattern': ['docker-@v-%a.raw'], 'current_symlink': '/etc/extensions/docker.raw'}
    assert (t['instances_max'], t['keep'], t['verify']) == (3, 2, False)


def test_defaults_verify_yes_three_instances_target_type_from_the_source(tmp_path):
    write(tmp_path, 'etc/sysupdate.d/tool.transfer', '[Source]\nType=url-file\nPath=https://x.example/\n'
          'MatchPattern=**/tool-@v.raw\n[Target]\nPath=/opt/extensions/tool\nCurrentSymlink=/etc/extensions/tool.raw\n')
    t = one(tmp_path, None)
    assert (t.verify, t.instances_max, t.target.type, t.target.patterns) == (True, 3, 'regular-file', ['tool-@v.raw'])


@pytest.mark.parametrize('value,expected,warned', [('1', 2, 'must be at least 2, bumping'), ('', 3, None),
                                                   ('x', 3, 'failed to parse InstancesMax='), ('5', 5, None)])
def test_instances_max_as_systemd_parses_it(tmp_path, value, expected, warned):
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY.replace('InstancesMax=3', 'InstancesMax=' + value))
    t = one(tmp_path)
    assert t.instances_max == expected
    assert (warned in ' '.join(t.warnings)) if warned else not t.warnings


def test_unknown_keys_and_sections_are_warned_about_with_file_and_line_and_ignored(tmp_path):
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY + 'Bogus=1\n[Other]\nA=b\n[X-Mine]\nC=d\n')
    t = one(tmp_path)
    assert t.supported
    assert sorted(t.warnings) == ["/etc/sysupdate.docker.d/docker.conf:12: unknown key 'Bogus' in section [Target], "
                                  "ignoring", "/etc/sysupdate.docker.d/docker.conf:13: unknown section 'Other', ignoring"]


def test_comments_and_continuation_lines():
    warnings = []
    got = confparser.parse('# c\n; c\n[Source]\nMatchPattern=a-@v.raw \\\n# skipped\n  b-@v.raw\n', 'f', ('Source',),
                           warnings)
    assert [(a.key, a.value, a.where) for a in got] == [('MatchPattern', 'a-@v.raw  b-@v.raw', 'f:4')]
    with pytest.raises(confparser.ConfError, match='f:1: invalid section header'):
        confparser.parse('[Source\n', 'f', ('Source',), [])


def test_an_invalid_pattern_makes_the_transfer_invalid_naming_file_and_line(tmp_path):
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY.replace('docker-@v-%a.raw', 'docker-%a.raw'))
    t = one(tmp_path)
    assert not t.supported
    assert t.invalid.startswith('/etc/sysupdate.docker.d/docker.conf:6: MatchPattern= string is not valid, refusing')


def test_drop_ins_and_precedence_earlier_directory_masks_later(tmp_path):
    write(tmp_path, 'usr/lib/sysupdate.docker.d/docker.conf', BAKERY.replace('docker.raw', 'old.raw'))
    write(tmp_path, 'usr/lib/sysupdate.docker.d/other.conf', BAKERY.replace('extensions/docker', 'extensions/other'))
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY)
    write(tmp_path, 'run/sysupdate.docker.d/docker.conf.d/10-keep.conf', '[Target]\nInstancesMax=5\n')
    os.makedirs(str(tmp_path / 'etc/sysupdate.docker.d'), exist_ok=True)
    os.symlink('/dev/null', str(tmp_path / 'etc/sysupdate.docker.d/other.conf'))
    write(tmp_path, 'usr/lib/sysupdate.docker.d/empty.conf', BAKERY)
    write(tmp_path, 'run/sysupdate.docker.d/empty.conf', '')     # an empty file masks, as systemd 262 does
    got = sysupdate.read_transfers(str(tmp_path), 'docker', HOST)
    assert [t.file for t in got] == ['/etc/sysupdate.docker.d/docker.conf']
    assert got[0].current_symlink == '/etc/extensions/docker.raw' and got[0].instances_max == 5
    assert got[0].dropins == ['/run/sysupdate.docker.d/docker.conf.d/10-keep.conf']


def test_transfer_files_win_over_conf_files(tmp_path):
    write(tmp_path, 'etc/sysupdate.d/a.conf', BAKERY)
    write(tmp_path, 'usr/lib/sysupdate.d/b.transfer', BAKERY)
    assert [t.id for t in sysupdate.read_transfers(str(tmp_path), None, HOST)] == ['b']
    assert sysupdate.components(str(tmp_path)) == []
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY)
    assert sysupdate.components(str(tmp_path)) == ['docker']


@pytest.mark.parametrize('change,why', [
    (('Type=url-file', 'Type=url-tar'), "Target type 'regular-file' is incompatible with source type 'url-tar'"),
    (('Type=regular-file', 'Type=directory'), "Target type 'directory' is incompatible with source type 'url-file'"),
    (('Path=https://', 'Path=ftp://'), 'Source path is not a valid HTTP, HTTPS or file URL'),
    (('Path=/opt/extensions/docker', 'Path=opt/x'), 'Target path is not a normalized, absolute path'),
])
def test_definitions_systemd_refuses(tmp_path, change, why):
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY.replace(*change))
    assert why in one(tmp_path).invalid


@pytest.mark.parametrize('extra,why', [
    ('[Transfer]\nProtectVersion=%w\n', 'ProtectVersion= is not supported'),
    ('[Target]\nMatchPattern=docker-@v+@l-%a.raw\n', 'names @l'),
    ('[Target]\nCurrentSymlink=\n', 'no absolute CurrentSymlink='),
    ('[Target]\nMode=0600\n', 'Mode= is not supported'),
    ('[Transfer]\nFeatures=devel\n', 'Features='),
])
def test_transfers_valid_for_systemd_that_the_role_does_not_roll_out(tmp_path, extra, why):
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY + extra)
    t = one(tmp_path)
    assert t.invalid is None and why in t.unsupported, t.unsupported


def test_specifiers_are_expanded_in_paths_patterns_kept_as_written(tmp_path):
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY.replace('/opt/extensions/docker', '/opt/%o/docker') +
          '[Transfer]\nMinVersion=%w\n')
    t = one(tmp_path)
    assert (t.target.path, t.min_version, t.source.patterns) == ('/opt/flatcar/docker', '4081.2.0', ['docker-@v-%a.raw'])


def test_component_names_are_checked():
    with pytest.raises(sysupdate.SysupdateError):
        sysupdate.read_transfers('/', '../x', HOST)


def test_the_role_entry_of_a_bakery_transfer_and_the_host_keyring(tmp_path):
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY.replace('Verify=false', 'MinVersion=27'))
    write(tmp_path, 'usr/lib/sysupdate.d/tar.transfer', BAKERY.replace('url-file', 'url-tar'))
    write(tmp_path, 'usr/lib/systemd/import-pubring.pgp', 'keys')
    got = sysupdate.read_all(str(tmp_path), None, HOST)
    assert [(t.component, t.supported) for t in got] == [(None, False), ('docker', True)]
    assert sysupdate.image_entry(got[1]) == {
        'name': 'docker', 'version': '>=27', 'repository': 'https://extensions.flatcar.org/extensions/docker',
        'match_pattern': ['docker-@v-%a.raw'], 'store_dir': '/opt/extensions/docker',
        'store_pattern': ['docker-@v-%a.raw'], 'link_dir': '/etc/extensions', 'keep': 2, 'verify': True,
        'transfer': '/etc/sysupdate.docker.d/docker.conf', 'component': 'docker'}
    assert sysupdate.host_keyring(str(tmp_path)) == '/usr/lib/systemd/import-pubring.pgp'
    assert [t.id for t in sysupdate.read_all(str(tmp_path), ['docker'], HOST)] == ['docker']


def test_machine_specifiers_make_the_transfer_unsupported_unknown_ones_are_ignored_as_systemd_does(tmp_path):
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY.replace('docker-@v-%a.raw', 'docker-%H-@v.raw'))
    t = one(tmp_path)
    assert t.invalid is None and 'the specifier %H (the host name)' in t.unsupported, t.unsupported
    write(tmp_path, 'etc/sysupdate.docker.d/docker.conf', BAKERY + 'CurrentSymlink=/etc/extensions/%Z.raw\n')
    t = one(tmp_path)
    assert t.current_symlink == '/etc/extensions/docker.raw' and 'failed to expand specifiers' in t.warnings[0]
