# -*- coding: utf-8 -*-
"""sysext_image's repository source through real ansible-playbook (two local targets), against
repositories an HTTP server on 127.0.0.1 serves in the test (repo_driver.py): the newest
version for the host's architecture, the index fetched once per play, a second run that
downloads and changes nothing, check mode, the failures (wrong sum, missing index, a line
for a missing file, a malformed index, a slow server, an untrusted signature) leaving the host
as it was, an image for another OS passed over, a signed controller directory, a file:// URL."""

import pytest

from conftest import run_driver


@pytest.fixture(scope='module')
def repo():
    return run_driver('repo_driver.py', timeout=600)


def test_each_host_gets_the_newest_version_for_its_architecture_and_the_index_is_fetched_once(repo):
    arch = repo['arch']
    for host in ('h1', 'h2'):
        r = repo['first'][host]
        assert r['changed'] and r['copied'] and r['selected'] == '1.10', r   # 2.0 is for the other architecture
        assert r['repository']['file'] == 'tool-1.10-%s.raw' % arch and r['repository']['architecture'] == arch
        assert repo['first_listing'][host] == ['etc/extensions/tool.raw', 'opt/extensions/tool/tool-1.10.raw']
    assert sorted(repo['first_requests']) == ['/good/SHA256SUMS'] + ['/good/tool-1.10-%s.raw' % arch] * 2
    assert sorted(r['repository']['cached'] for r in repo['first'].values()) == [False, True]


def test_a_second_run_downloads_nothing_and_changes_nothing(repo):
    for host in ('h1', 'h2'):
        r, = repo['again'][host]
        assert not r['changed'] and not r['copied'] and r['selected'] == r['previous'] == '1.10'
    assert repo['again_requests'] == ['/good/SHA256SUMS']        # the index, once for the play


def test_check_mode_says_what_would_be_downloaded_and_writes_nothing(repo):
    c = repo['check']
    # systemd's order: 1.10~rc1 is older than 1.10 and newer than 1.9
    assert c['changed'] and c['copied'] and c['version'] == '1.10~rc1' and not c['failed']
    assert c['repository']['url'].endswith('/good/tool-1.10~rc1-%s.raw' % repo['arch'])
    assert any('was not downloaded' in w and 'tool-1.10~rc1' in w for w in c['warnings'])
    assert repo['check_unchanged']


def test_failures_are_clear_and_leave_the_host_as_it_was(repo):
    (wrong, missing_index, missing_file, malformed, no_version, bad_pattern, slow_index, slow_image, untrusted,
     exclusive, empty) = repo['errors']
    assert all(e['failed'] for e in repo['errors'])
    assert 'bad/tool-5-' in wrong['msg'] and 'expected sha256:' + '0' * 64 in wrong['msg']
    assert 'nothing was stored' in wrong['msg'] and 'bad/SHA256SUMS lists tool-5-' in wrong['msg']
    assert 'cannot fetch http://127.0.0.1:' in missing_index['msg'] and 'nothing-here/SHA256SUMS: HTTP 404' in \
        missing_index['msg'] and 'the directory holding SHA256SUMS' in missing_index['msg']
    assert 'cannot download http://127.0.0.1:' in missing_file['msg'] and 'missing/tool-6-' in missing_file['msg']
    assert 'the repository does not serve the file it lists' in missing_file['msg']
    assert 'malformed/SHA256SUMS line 2 is malformed' in malformed['msg'] and 'as sha256sum writes it' in malformed['msg']
    assert 'fits version >=3 (versions there: 1.10, 1.10~rc1, 1.9, 1.2, 1.0)' in no_version['msg']
    assert "match pattern 'tool-@v-@q.raw': unknown field @q" in bad_pattern['msg']
    assert 'slow/good/SHA256SUMS: timed out (url_timeout is 1s)' in slow_index['msg']
    assert 'cannot download http://127.0.0.1:' in slow_image['msg'] and 'timed out' in slow_image['msg']
    assert 'strange/SHA256SUMS is refused: it is signed with a key that is not in the keyring' in untrusted['msg']
    assert 'No public key' in untrusted['msg']
    assert 'repository and src are mutually exclusive' in exclusive['msg']
    assert 'empty/SHA256SUMS: HTTP 404' in empty['msg']
    assert repo['errors_unchanged'] and repo['errors_leftovers'] == []


def test_an_image_for_another_os_is_refused_before_the_rename_and_the_next_older_taken(repo):
    r = repo['incompat']
    assert not r['failed'] and r['selected'] == '1.10' and not r['copied']
    refused, = r['repository']['refused']
    assert refused['version'] == '1.20' and "is for OS 'fedora'" in refused['reason']
    assert repo['incompat_requests'] == ['/incompat/SHA256SUMS', '/incompat/tool-1.20-%s.raw' % repo['arch']]
    assert repo['incompat_listing'] == []


def test_a_version_the_store_cannot_hold_is_passed_over_before_any_download(repo):
    r = repo['unstorable']
    assert not r['failed'] and r['selected'] == '1.3', r
    refused, = r['repository']['refused']
    assert refused['version'] == '1.30+k3s1' and "invalid version '1.30+k3s1'" in refused['reason'], refused
    assert repo['unstorable_requests'] == ['/unstorable/SHA256SUMS', '/unstorable/tool-1.3-%s.raw' % repo['arch']]


def test_a_signed_controller_directory_and_a_file_url(repo):
    s = repo['signed_dir']
    assert s['changed'] and s['selected'] == '1.9' and s['repository']['signed'] and s['repository']['src']
    assert repo['signed_requests'] == []         # nothing from the HTTP server
    f = repo['file_url']
    assert f['changed'] and f['selected'] == '1.2' and f['repository']['signed']
    assert f['repository']['url'].startswith('file:///')
    assert repo['link'] == '../../opt/extensions/tool/tool-1.2.raw'


def test_the_role_rolls_a_repository_entry_out_and_a_second_run_changes_nothing(repo):
    first, again = repo['role'], repo['role_again']
    assert first['rc'] == 0 and not first['traceback'] and 'changed=2' in first['recap'] and 'failed=0' in first['recap']
    stored, = first['tasks']['Store and select the wanted extension images'][0]['results']
    assert stored['changed'] and stored['selected'] == '1.10' and stored['repository']['file'].startswith('tool-1.10-')
    assert stored['path'] == '/var/lib/tucked-sysext/store/tool/tool-1.10.raw'
    assert repo['role_merged'] == '1.10 %s' % repo['arch']            # merged: the image's file is in /usr
    assert repo['role_requests'] == ['/good/SHA256SUMS', '/good/tool-1.10-%s.raw' % repo['arch']]
    assert again['rc'] == 0 and 'changed=0' in again['recap'] and 'failed=0' in again['recap']
    assert repo['role_again_requests'] == ['/good/SHA256SUMS']


def test_the_role_in_check_mode_says_what_it_would_download(repo):
    check = repo['role_check']
    assert check['rc'] == 0 and not check['traceback'] and 'failed=0' in check['recap'], check['recap']
    would, = check['tasks']['Store and select the wanted extension images'][0]['results']
    assert would['changed'] and would['copied'] and would['selected'] == '1.9'
    assert would['repository']['url'].endswith('/good/tool-1.9-%s.raw' % repo['arch'])
    assert repo['role_check_requests'] == ['/good/SHA256SUMS'] and repo['role_check_unchanged']
