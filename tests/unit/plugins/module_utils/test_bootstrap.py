# -*- coding: utf-8 -*-
"""The bootstrap's probe: the shell script it sends (run here with /bin/sh, against candidate
interpreters made in tmp_path), the parser of what it prints (also odd and broken outputs),
and the decisions taken from it (which interpreter, glibc)."""

import os
import subprocess
import sys

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import bootstrap

NONCE = 'c0ffee00c0ffee00'


def _run(script):
    return subprocess.run(['/bin/sh', '-c', script], capture_output=True, text=True, check=False, timeout=60)


def _probe(candidates, nonce=NONCE):
    out = _run(bootstrap.probe_script(nonce, candidates))
    return bootstrap.parse_probe(out.stdout, nonce)


def _fake(tmp_path, name, body):
    path = tmp_path / name
    path.write_text('#!/bin/sh\n' + body + '\n')
    path.chmod(0o755)
    return str(path)


# ----------------------------------------------------------------------------- the script, run
def test_the_probe_reads_this_machine_as_the_standard_library_does():
    found = _probe([sys.executable])
    assert found['complete']
    assert found['machine'] == os.uname().machine
    assert found['os_release_file'] in ('/etc/os-release', '/usr/lib/os-release')
    assert found['os_release'].get('ID')
    libc = os.confstr('CS_GNU_LIBC_VERSION')        # 'glibc 2.36'
    assert found['glibc'] == libc.split()[1] and found['glibc_source'] == 'getconf'
    assert found['interpreters'] == [{'path': sys.executable, 'state': 'ran', 'rc': 0, 'output': '',
                                      'version': '%d.%d.%d' % sys.version_info[:3]}]
    assert bootstrap.choose(found)['path'] == sys.executable


def test_candidates_are_tried_in_order_up_to_the_first_usable_one(tmp_path):
    old = _fake(tmp_path, 'old', 'echo "%s python 3.8.18"' % NONCE)
    two = _fake(tmp_path, 'two', 'echo "%s python 2.7.18"' % NONCE)
    after = _fake(tmp_path, 'after', 'echo ran >> %s/after.log; echo "%s python 3.12.1"' % (tmp_path, NONCE))
    found = _probe([str(tmp_path / 'missing'), old, two, sys.executable, after])
    assert [(c['path'], c['state']) for c in found['interpreters']] == [
        (str(tmp_path / 'missing'), 'missing'), (old, 'ran'), (two, 'ran'), (sys.executable, 'ran')]
    assert not (tmp_path / 'after.log').exists()      # never run: an earlier one was usable
    assert bootstrap.choose(found)['path'] == sys.executable
    assert bootstrap.tried(found) == [str(tmp_path / 'missing') + ': not found',
                                      old + ': Python 3.8.18 is older than 3.9',
                                      two + ': Python 2.7.18 is older than 3.9']


def test_python_3_10_and_later_are_not_taken_for_3_1(tmp_path):
    ten = _fake(tmp_path, 'ten', 'echo "%s python 3.10.4"' % NONCE)
    after = _fake(tmp_path, 'after', 'echo "%s python 3.12.1"' % NONCE)
    found = _probe([ten, after])
    assert [c['path'] for c in found['interpreters']] == [ten]
    assert bootstrap.choose(found)['version'] == '3.10.4'


def test_an_interpreter_that_crashes_fails_or_hangs_is_not_usable(tmp_path, monkeypatch):
    monkeypatch.setattr(bootstrap, 'INTERPRETER_TIMEOUT', 1)
    crash = _fake(tmp_path, 'crash', 'echo "Fatal Python error: init_fs_encoding"; kill -SEGV $$')
    fails = _fake(tmp_path, 'fails', 'echo "error while loading shared libraries: libffi.so.8" >&2; exit 127')
    hangs = _fake(tmp_path, 'hangs', 'sleep 20')
    mute = _fake(tmp_path, 'mute', 'echo hello')
    noexec = tmp_path / 'noexec'
    noexec.write_text('#!/bin/sh\n')
    found = _probe([crash, fails, hangs, mute, str(noexec), str(tmp_path)])
    assert found['complete'] and bootstrap.choose(found) is None
    why = dict(zip((c['path'] for c in found['interpreters']), bootstrap.tried(found)))
    assert why[crash] == crash + ': was killed by signal 11: Fatal Python error: init_fs_encoding'
    assert why[fails] == fails + ': exited with 127: error while loading shared libraries: libffi.so.8'
    assert why[hangs] == hangs + ': did not answer in 1 s'
    assert why[mute] == mute + ': ran but did not say its version: hello'
    assert why[str(noexec)] == str(noexec) + ': not executable'
    assert why[str(tmp_path)] == str(tmp_path) + ': not executable'     # a directory


def test_paths_with_spaces_and_quotes_are_passed_as_they_are(tmp_path):
    odd = _fake(tmp_path, "py 'thon\" $x", 'echo "%s python 3.11.9"' % NONCE)
    found = _probe([odd])
    assert bootstrap.choose(found)['path'] == odd


def test_the_check_of_one_interpreter_alone(tmp_path):
    out = _run(bootstrap.interpreter_script(NONCE, sys.executable))
    cand = bootstrap.parse_interpreter_output(out.stdout, NONCE, sys.executable)
    assert bootstrap.why_unusable(cand) is None and cand['version'] == '%d.%d.%d' % sys.version_info[:3]
    out = _run(bootstrap.interpreter_script(NONCE, str(tmp_path / 'none')))
    assert bootstrap.parse_interpreter_output(out.stdout, NONCE, 'x')['state'] == 'missing'


def test_the_nonce_must_be_a_plain_word():
    with pytest.raises(ValueError):
        bootstrap.probe_script("x'; rm -rf /; '", [])


# ----------------------------------------------------------------------------- odd outputs
def _out(*sections, begin=True, end=True, noise=''):
    text = noise
    if begin:
        text += '\n%s begin 1\n' % NONCE
    for key, body in sections:
        text += '\n%s %s\n%s' % (NONCE, key, body)
    if end:
        text += '\n%s end\n' % NONCE
    return text


def test_no_os_release_and_no_getconf_the_loader_names_glibc():
    found = bootstrap.parse_probe(_out(('machine', 'aarch64\n'), ('glibc-getconf', ''),
                                       ('glibc-loader', 'ld.so (GNU libc) stable release version 2.17, by Roland McGrath et al.\n'),
                                       ('sysext', '')), NONCE)
    assert found['os_release'] == {} and found['os_release_file'] is None
    assert (found['machine'], found['architecture']) == ('aarch64', 'arm64')
    assert (found['glibc'], found['glibc_source']) == ('2.17', 'loader')
    assert found['sysext'] is None and found['interpreters'] == []
    assert bootstrap.report(found)['os'] == {'id': None, 'version_id': None, 'file': None}


def test_a_musl_host_has_no_glibc():
    found = bootstrap.parse_probe(_out(('glibc-getconf', ''), ('glibc-loader', 'musl libc (x86_64)\nVersion 1.2.4\n')),
                                  NONCE)
    assert found['glibc'] is None


def test_a_banner_before_the_probe_and_crlf_line_ends_are_ignored():
    text = _out(('os-release /usr/lib/os-release', 'ID=flatcar\r\nVERSION_ID="4081.2.0"\r\n'),
                ('machine', 'x86_64\r\n'), ('glibc-getconf', 'glibc 2.38\r\n'),
                ('sysext', '/usr/bin/systemd-sysext\r\nsystemd 255 (255)\r\n'),
                ('interpreter /usr/bin/python3', ''), ('missing', ''), noise='Flatcar Container Linux by Kinvolk\n%s end\n'
                % NONCE).replace('\n', '\r\n')
    found = bootstrap.parse_probe(text, NONCE)
    assert found['complete']
    assert (found['os_release'], found['os_release_file']) == ({'ID': 'flatcar', 'VERSION_ID': '4081.2.0'},
                                                               '/usr/lib/os-release')
    assert found['glibc'] == '2.38'
    assert found['sysext'] == {'path': '/usr/bin/systemd-sysext', 'version': 'systemd 255 (255)'}
    assert found['interpreters'][0]['state'] == 'missing'


def test_a_marker_of_another_run_inside_a_file_is_content():
    found = bootstrap.parse_probe(_out(('os-release /etc/os-release', 'ID=x\ndeadbeefdeadbeef end\nVERSION_ID=1\n')),
                                  NONCE)
    assert found['os_release'] == {'ID': 'x', 'VERSION_ID': '1'} and found['complete']


def test_output_cut_short_is_incomplete():
    found = bootstrap.parse_probe(_out(('machine', 'x86_64\n'), ('interpreter /usr/bin/python3', ''), end=False), NONCE)
    assert not found['complete']
    assert bootstrap.why_unusable(found['interpreters'][0]) == 'no answer (the probe was cut short)'


@pytest.mark.parametrize('text,error', [
    ('', 'no output of the probe found'),
    ('sh: 1: Syntax error: "(" unexpected\n', 'no output of the probe found'),
    ('%s begin 7\n%s end\n' % (NONCE, NONCE), "protocol '7'"),
])
def test_output_that_is_not_the_probe_is_an_error(text, error):
    with pytest.raises(bootstrap.ProbeError, match=error):
        bootstrap.parse_probe(text, NONCE)


def test_a_version_line_without_an_exit_status_is_no_answer():
    found = bootstrap.parse_probe(_out(('interpreter /x', ''), ('python', '')), NONCE)
    assert found['interpreters'][0]['state'] == 'unknown'


# ----------------------------------------------------------------------------- decisions
@pytest.mark.parametrize('host,need,problem', [
    ('2.36', '2.35', None),
    ('2.35', '2.35', None),
    ('2.43', '2.35', None),
    ('2.4', '2.35', 'the image needs glibc 2.35 or later, and the host has glibc 2.4'),
    ('2.34', '2.35', 'the image needs glibc 2.35 or later, and the host has glibc 2.34'),
    (None, '2.35', "the image needs glibc 2.35, and the host's C library is not glibc"),
    ('2.17', None, None),
    ('2.17', 'two', "glibc_min 'two' is not a version"),
])
def test_glibc_compare(host, need, problem):
    got = bootstrap.glibc_problem(host, need)
    assert (got is None) == (problem is None) and (problem is None or got.startswith(problem)), got


def test_the_first_usable_interpreter_wins_not_the_newest():
    probe = {'interpreters': [
        {'path': '/a', 'state': 'ran', 'rc': 0, 'version': '3.9.2', 'output': ''},
        {'path': '/b', 'state': 'ran', 'rc': 0, 'version': '3.13.1', 'output': ''}]}
    assert bootstrap.choose(probe)['path'] == '/a'


def test_candidates_keep_their_order_and_come_once():
    assert bootstrap.candidates() == [bootstrap.DEFAULT_INTERPRETER, '/usr/bin/python3', '/usr/libexec/platform-python',
                                      '/opt/bin/python3']
    assert bootstrap.candidates('/usr/bin/python3', ['/opt/pypy/bin/pypy3', '/usr/bin/python3']) == [
        '/usr/bin/python3', '/usr/libexec/platform-python', '/opt/bin/python3', '/opt/pypy/bin/pypy3']


@pytest.mark.parametrize('text,expected', [('3.11.2', (3, 11, 2)), ('2.35', (2, 35)), ('', ()), (None, ()),
                                           ('3.13.0rc1', ())])
def test_version_tuple(text, expected):
    assert bootstrap.version_tuple(text) == expected
