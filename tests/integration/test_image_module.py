# -*- coding: utf-8 -*-
"""sysext_image through real ansible-playbook: a controller src copied once, check and diff
mode, downloads verified, bad input and a full store leaving everything as it was."""

import pytest

from conftest import run_driver


@pytest.fixture(scope='module')
def image():
    return run_driver('image_driver.py', timeout=600)


def test_controller_src_is_stored_once(image):
    assert image['first']['changed'] and image['first']['copied'] and image['first']['selected'] == '1'
    again = image['again']
    assert not again['changed'] and not again['copied'] and again['previous'] == again['selected'] == '1'


def test_check_mode_with_diff_changes_nothing(image):
    c = image['check']
    assert c['changed'] and c['selected'] == '2' and c['versions'] == ['1', '2']
    assert c['diff']['before'] == 'selected: 1\nstored: 1\n' and c['diff']['after'] == 'selected: 2\nstored: 1 2\n'
    assert 'opt/extensions/tool/tool-2.raw' not in image['after_check']


def test_bad_downloads_and_names_fail_clearly_and_change_nothing(image):
    wrong, truncated, unreachable, bad_name = image['bad_downloads']
    assert wrong['failed'] and 'expected sha256:000' in wrong['msg'] and 'nothing was stored' in wrong['msg']
    assert truncated['failed'] and 'download truncated' in truncated['msg']
    assert unreachable['failed'] and 'cannot download http://127.0.0.1:9/' in unreachable['msg']
    assert bad_name['failed'] and "invalid extension name 'a/b'" in bad_name['msg']
    assert image['bad_unchanged'], 'no partial file, no changed link'
    assert image['url']['changed'] and image['url']['selected'] == '2'


def test_image_policy_refusal_fails_clearly_and_changes_nothing(image):
    refused, unparsable = image['policy']
    assert refused['failed'] and refused['msg'].startswith('refusing to select tool 1: /opt/extensions/tool/tool-1.raw '
                                                           'does not match the image policy root=')
    assert 'it is squashfs, a file system the image policy does not allow' in refused['msg']
    assert unparsable['failed'] and "image_policy 'root=bogus' cannot be parsed" in unparsable['msg']
    assert image['policy_unchanged'] and image['policy_link'] == '../../opt/extensions/tool/tool-2.raw'


def test_full_store_fails_clearly_and_leaves_no_partial_file(image):
    assert image['full']['failed'] and 'no space left' in image['full']['msg']
    assert 'Nothing was replaced' in image['full']['msg']
    assert image['full_unchanged'] and image['full_leftovers'] == []


def test_rollback_is_idempotent_and_absent_removes_everything(image):
    first, second = image['rollback']
    assert first['changed'] and first['previous'] == '2' and first['selected'] == '1'
    assert not second['changed'] and second['selected'] == '1'
    assert image['link_after_rollback'] == '../../opt/extensions/tool/tool-1.raw'
    assert image['absent']['changed'] and image['absent']['versions'] == []
    assert image['absent_listing'] == []
