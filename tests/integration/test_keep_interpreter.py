# -*- coding: utf-8 -*-
"""The interpreter stays available (issue 17, item 3): see interpreter_driver.py."""

import pytest

from conftest import run_driver

PYTHON = '/usr/lib/tucked-sysext/python/bin/python3'


def running(kept):
    """sys.executable of the tasks: the image's bin/python3 is a launcher that execs bin/python3.11
    (module_utils/pylauncher.py); the directory extension's a link to it."""
    return PYTHON + '.11' if kept['extension'] == 'image' else PYTHON


@pytest.fixture(scope='module')
def kept(sid_root):
    return run_driver('interpreter_driver.py', timeout=600)


def test_the_extension_holds_a_working_interpreter(kept):
    assert kept['extension'] in ('image', 'directory'), 'sysext_python\'s image when the collection has it'
    assert kept['merged'] is True
    assert kept['prefix'] == '/usr/lib/tucked-sysext/python', 'Debian python finds its stdlib relative to itself'
    assert kept['task_python'] == running(kept), 'the tasks ran on the interpreter merged into the root /usr'


def test_refresh_from_a_task_on_that_interpreter_never_loses_its_files(kept):
    add = kept['add']
    assert add['changed'] is True and add['atomic'] is True and not add['failed'], add
    assert add['hierarchies']['/usr']['after'] == ['extra', 'tucked-python']
    assert kept['usr_swapped'] and kept['extra'], 'the overlay under the running task was replaced'
    reader = kept['reader']
    assert reader['reads'] > 10000 and reader['misses'] == 0, reader


def test_the_reader_sees_the_gap_of_an_unmount_then_mount(kept):
    assert kept['control']['misses'] > 0, 'the same reader counts misses when there is a gap'


def test_unmerge_under_the_interpreter_is_refused(kept):
    for step in ('unmerge_check', 'unmerge'):
        res = kept[step]
        assert res['failed'] and res['msg'].startswith('refusing to unmerge /usr: this task runs on the interpreter '
                                                       + running(kept)), res
        assert 'the sysext tucked-python provides it' in res['msg'] and 'force: true' in res['msg']
        assert res['interpreter']['extensions'] == ['tucked-python'] and res['interpreter']['executable'] == running(kept)
    assert kept['unmerge_kept'], 'nothing was unmounted'


def test_an_extension_gone_from_the_search_path_is_refused_by_the_base_tree(kept):
    res = kept['gone']
    assert res['failed'] and res['msg'].startswith('refusing to refresh /usr'), res
    assert 'the base tree below the overlay lacks it' in res['msg'] and 'tucked-python' in res['msg']
    assert res['interpreter']['image'] is None and kept['gone_kept']


def test_force_unmerges_anyway(kept):
    res = kept['forced']
    assert res['changed'] is True and not res['failed'], res
    assert res['hierarchies']['/usr']['merged_by_after'] == 'none'
    assert any(w.startswith('force: true: unmerging /usr') and 'tucked-python' in w for w in res['warnings'])
    assert kept['forced_python_left'] is False, 'and the interpreter is gone from /usr'


def test_the_role_swaps_the_interpreters_extension_and_its_rollback_keeps_it(kept):
    role = kept['role']
    assert role['rc'] == 2 and not role['traceback'], 'the verification failed the host, nothing crashed'
    swap = role['refreshed'][0]
    assert swap['changed'] and swap['atomic'] and not swap['failed'], swap
    assert kept['role_merged'] == '/var/lib/tucked-sysext/store/tucked-python/tucked-python-1.raw', \
        'the interpreter running the role now comes from the image the role stored'
    rb = role['rollback']
    assert rb['failed'] is False and rb['interpreter']['extensions'] == ['tucked-python'], rb
    assert rb['msg'].startswith('refusing to remove sysext tucked-python: this task runs on the interpreter ' + PYTHON)
    assert 'Rolled back: nothing to roll back.' in role['failure']
    assert 'Kept tucked-python, new in this run: refusing to remove sysext tucked-python' in role['failure']
    assert kept['role_link'] == '../../var/lib/tucked-sysext/store/tucked-python/tucked-python-1.raw', 'still selected'


def test_sysext_remove_of_the_interpreters_extension_is_refused(kept):
    res = kept['remove']
    assert res['failed'] and 'refusing to remove sysext tucked-python' in res['msg'] and 'sysext_remove' in res['msg']
    assert res['interpreter']['image'] == '/var/lib/tucked-sysext/store/tucked-python/tucked-python-1.raw'
    assert kept['remove_kept'], 'nothing was removed'
