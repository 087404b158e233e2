# -*- coding: utf-8 -*-
"""The bootstrap's steps over a host made of directories in tmp_path: the real shell scripts
run with /bin/sh, with the store and link directories in tmp_path and a stand-in
systemd-sysext first on PATH (its refresh makes PREFIX/bin/python3 appear while the link
exists, and disappear when it does not). The host has no Python: the system interpreter paths
of the probe are pointed at nothing. Nothing outside tmp_path is written."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.tucked.sysext.plugins.module_utils import bootstrap, bootstrapflow, bootstrapinstall
from ansible_collections.tucked.sysext.plugins.modules import sysext_bootstrap

FAKE_SYSEXT = r'''#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case $1 in
    --version) echo "systemd 252 (252.39-1~deb12u1)" ;;
    refresh)
        if [ -e "$FAKE_LINK" ]; then
            mkdir -p "$FAKE_PREFIX/bin"; ln -sfn "$FAKE_PAYLOAD" "$FAKE_PREFIX/bin/python3"
            echo "Using extensions 'tucked-python'."; echo "Merged extensions into '/usr'."
        else
            rm -f "$FAKE_PREFIX/bin/python3"; echo "No extensions found."
        fi ;;
esac
'''


class Host(bootstrapflow.Target):

    def __init__(self, tmp_path, payload=sys.executable, become=False, corrupt=False):
        self.tmp = tmp_path
        self.bin = tmp_path / 'bin'
        self.bin.mkdir()
        (self.bin / 'systemd-sysext').write_text(FAKE_SYSEXT)
        (self.bin / 'systemd-sysext').chmod(0o755)
        self.prefix = tmp_path / 'prefix'
        self.store = tmp_path / 'var' / 'store'
        self.ext = tmp_path / 'var' / 'extensions'
        self.payload = payload
        self.become, self.corrupt = become, corrupt
        self.scripts, self.puts = [], []

    @property
    def interpreter(self):
        return str(self.prefix / 'bin' / 'python3')

    def args(self, **kw):
        args = {k: v.get('default') for k, v in bootstrapflow.ARGUMENT_SPEC.items()}
        args.update(interpreter=self.interpreter, store_dir=str(self.store), link_dir=str(self.ext))
        args.update(kw)
        return args

    def run(self, script):
        self.scripts.append(script)
        for path in bootstrap.SYSTEM_INTERPRETERS:          # this host has none of them
            script = script.replace(path, '/nonexistent' + path)
        env = dict(os.environ, PATH='%s:%s' % (self.bin, os.environ['PATH']), FAKE_LOG=str(self.tmp / 'sysext.log'),
                   FAKE_LINK=str(self.ext / 'tucked-python.raw'), FAKE_PREFIX=str(self.prefix), FAKE_PAYLOAD=self.payload)
        res = subprocess.run(['/bin/sh', '-c', script], capture_output=True, text=True, env=env, check=False, timeout=60)
        return res.returncode, res.stdout, res.stderr

    def put(self, local, remote):
        self.puts.append(remote)
        shutil.copyfile(local, remote)
        if self.corrupt:
            with open(remote, 'ab') as f:
                f.write(b'\0')

    def tmpdir(self):
        if not self.become:
            return None
        (self.tmp / 'login-tmp').mkdir(exist_ok=True)
        return str(self.tmp / 'login-tmp')

    def sysext_calls(self):
        log = self.tmp / 'sysext.log'
        return [ln for ln in log.read_text().splitlines() if ln == 'refresh'] if log.exists() else []

    def written(self):
        return sorted(str(p.relative_to(self.tmp)) for d in (self.store, self.ext, self.prefix) if d.exists()
                      for p in d.rglob('*'))


@pytest.fixture(name='pyimage')
def fixture_pyimage(tmp_path, make_tree, build_image):
    manifest = {'name': 'tucked-python', 'version': '3.11.2-6', 'python_version': '3.11.2', 'glibc_min': '2.17',
                'interpreter': bootstrap.DEFAULT_INTERPRETER, 'architecture': 'x86-64', 'packages': {}}
    tree = make_tree(tmp_path / 'tree', 'tucked-python', files={
        'usr/lib/tucked-sysext/python/tucked-python.json': json.dumps(manifest)})
    out = tmp_path / 'images' / 'tucked-python-3.11.2-6.raw'
    out.parent.mkdir()
    build_image(tree, out)
    return str(out)


def _source(path):
    def source():
        with open(path, 'rb') as f:
            return path, hashlib.sha256(f.read()).hexdigest()
    return source


def _run(host, pyimage, check_mode=False, **kw):
    return bootstrapflow.run(host.args(src=pyimage, **kw), host, check_mode, _source(pyimage))


def test_a_host_with_a_usable_interpreter_costs_one_round_trip(tmp_path):
    host = Host(tmp_path)
    res = bootstrapflow.run(host.args(interpreters=[sys.executable]), host, False, None)
    assert len(host.scripts) == 1
    assert res['changed'] is False and res['source'] == 'existing' and res['needs_image'] is False
    assert res['ansible_facts'] == {'discovered_interpreter_python': sys.executable}
    assert host.written() == []


def test_probe_only_and_check_mode_change_nothing(tmp_path, pyimage):
    host = Host(tmp_path)
    res = bootstrapflow.run(host.args(probe_only=True), host, False, None)
    assert res['needs_image'] is True and res['changed'] is False and 'ansible_facts' not in res
    assert res['msg'].startswith('no usable Python (3.9 or later) on the host: %s: not found' % host.interpreter)
    res = _run(host, pyimage, check_mode=True)
    assert res['changed'] is True
    assert res['msg'].startswith('would store %s as %s/tucked-python/tucked-python-3.11.2-6.raw' % (pyimage, host.store))
    assert res['image']['python_version'] == '3.11.2' and res['image']['glibc_min'] == '2.17'
    assert len(host.scripts) == 2 and host.written() == [] and host.sysext_calls() == []


def test_without_src_a_host_without_python_fails(tmp_path):
    host = Host(tmp_path)
    res = bootstrapflow.run(host.args(), host, False, None)
    assert res['failed'] and 'Give src' in res['msg']


@pytest.mark.parametrize('become', [False, True])
def test_install_stores_selects_merges_and_verifies_then_changes_nothing(tmp_path, pyimage, become):
    host = Host(tmp_path, become=become)
    res = _run(host, pyimage)
    assert not res.get('failed'), res['msg']
    assert res['changed'] is True and res['source'] == 'installed' and res['needs_image'] is True
    assert res['ansible_facts'] == {'discovered_interpreter_python': host.interpreter}
    assert res['python_version'] == '%d.%d.%d' % sys.version_info[:3]
    assert res['refresh_output'] == "Using extensions 'tucked-python'.\nMerged extensions into '/usr'."
    stored = host.store / 'tucked-python' / 'tucked-python-3.11.2-6.raw'
    with open(pyimage, 'rb') as a, open(stored, 'rb') as b:
        assert a.read() == b.read()
    assert oct(stored.stat().st_mode & 0o777) == '0o644'
    # the relative link store.set_link writes
    link = host.ext / 'tucked-python.raw'
    assert os.readlink(link) == os.path.relpath(stored, host.ext) == '../store/tucked-python/tucked-python-3.11.2-6.raw'
    assert host.puts == [str(tmp_path / 'login-tmp' / stored.name)] if become else [
        str(host.store / 'tucked-python' / ('.#%s.bootstrap' % stored.name))]
    assert sorted(os.listdir(host.store / 'tucked-python')) == [stored.name]     # no temporary file left
    assert host.sysext_calls() == ['refresh']
    # three raw commands (probe, preparation, activation) and the transfer
    assert len(host.scripts) == 3

    again = _run(host, pyimage)
    assert again['changed'] is False and again['source'] == 'existing' and len(host.scripts) == 4
    assert host.sysext_calls() == ['refresh']


def test_a_stored_copy_is_not_transferred_again(tmp_path, pyimage):
    host = Host(tmp_path)
    assert _run(host, pyimage)['changed']
    os.unlink(host.ext / 'tucked-python.raw')
    (host.prefix / 'bin' / 'python3').unlink()            # unmerged, as after a reboot without the link
    res = _run(host, pyimage)
    assert res['changed'] and res['image']['transferred'] is False and len(host.puts) == 1


def test_a_failed_verification_is_undone(tmp_path, pyimage):
    broken = tmp_path / 'broken-python'
    broken.write_text('#!/bin/sh\necho "Could not find platform independent libraries <prefix>" >&2\nexit 1\n')
    broken.chmod(0o755)
    host = Host(tmp_path, payload=str(broken))
    res = _run(host, pyimage)
    assert res['failed'] and res['changed']
    assert res['msg'].startswith('tucked-python 3.11.2-6 was stored and selected, but %s exited with 1: Could not find '
                                 'platform independent libraries <prefix>. Undone: removed the link and the stored '
                                 'file, then systemd-sysext refresh again (it succeeded).' % host.interpreter)
    assert res['undo_output'] == 'No extensions found.'
    assert host.sysext_calls() == ['refresh', 'refresh']
    # (prefix/bin: the stand-in refresh's directory, empty again)
    assert host.written() == ['prefix/bin', 'var/store/tucked-python'] and 'ansible_facts' not in res


def test_a_transfer_that_arrives_damaged_stores_nothing(tmp_path, pyimage):
    host = Host(tmp_path, corrupt=True)
    res = _run(host, pyimage)
    assert res['failed'] and res['msg'].startswith('the transfer failed on the host (checksum): sha256:')
    assert os.listdir(host.store / 'tucked-python') == [] and host.sysext_calls() == []


def test_other_bytes_under_the_same_version_are_refused(tmp_path, pyimage):
    host = Host(tmp_path)
    (host.store / 'tucked-python').mkdir(parents=True)
    (host.store / 'tucked-python' / 'tucked-python-3.11.2-6.raw').write_bytes(b'other')
    res = _run(host, pyimage)
    assert res['failed'] and 'is already stored with other bytes' in res['msg'] and host.sysext_calls() == []


def test_a_link_that_is_not_ours_is_refused(tmp_path, pyimage):
    host = Host(tmp_path)
    host.ext.mkdir(parents=True)
    os.symlink('/opt/elsewhere/python.raw', host.ext / 'tucked-python.raw')
    res = _run(host, pyimage)
    assert res['failed'] and res['msg'].startswith('%s/tucked-python.raw points to /opt/elsewhere/python.raw, not to a '
                                                   'version of tucked-python' % host.ext)
    assert os.readlink(host.ext / 'tucked-python.raw') == '/opt/elsewhere/python.raw'


def test_another_architecture_or_a_newer_glibc_is_refused_before_anything_is_written(tmp_path, make_tree, build_image):
    tree = make_tree(tmp_path / 'tree', 'tucked-python', release='ID=_any\nARCHITECTURE=s390x\n')
    image = tmp_path / 'tucked-python-1.raw'
    build_image(tree, image)
    host = Host(tmp_path)
    res = _run(host, str(image), glibc_min='9.99')
    assert res['failed'] and len(host.scripts) == 1 and host.written() == []
    assert "is for architecture 's390x'" in res['msg']
    assert 'the image needs glibc 9.99 or later, and the host has glibc %s' % os.confstr('CS_GNU_LIBC_VERSION').split()[1] \
        in res['msg']


def test_check_fit_without_systemd_sysext_or_os_release():
    probe = {'sysext': None, 'os_release_file': None, 'os_release': {}, 'architecture': 'x86-64', 'glibc': '2.36'}
    problems = bootstrapinstall.check_fit(probe, 'tucked-python', {'release': {'ID': '_any'}}, '2.35')
    assert problems == ['the host has no systemd-sysext (systemd 248 or later ships it), which merges the image',
                        'the host has neither /etc/os-release nor /usr/lib/os-release; systemd-sysext merges nothing '
                        'without one']


@pytest.mark.parametrize('src,version,error', [
    ('/x/python.raw', None, 'cannot tell the version of /x/python.raw: name it tucked-python-VERSION.raw'),
    ('/x/tucked-python-1.raw', '1 2', "invalid version '1 2'"),
    ('/x/tucked-python-1-x86-64.raw', None, "ends in the architecture x86-64"),
])
def test_store_paths_refuse_what_sysext_image_refuses(src, version, error):
    with pytest.raises(bootstrapinstall.InstallError, match=error):
        bootstrapinstall.store_paths('tucked-python', version, src, '/var/lib/tucked-sysext/store', '/var/lib/extensions')


def test_a_store_inside_a_search_directory_is_refused():
    with pytest.raises(bootstrapinstall.InstallError, match='is .inside. a directory systemd-sysext searches'):
        bootstrapinstall.store_paths('tucked-python', '1', '/x', '/etc/extensions/store', '/var/lib/extensions')


def test_the_documentation_describes_the_argument_spec():
    doc = yaml.safe_load(sysext_bootstrap.DOCUMENTATION)['options']
    assert set(doc) == set(bootstrapflow.ARGUMENT_SPEC)
    for name, spec in bootstrapflow.ARGUMENT_SPEC.items():
        assert doc[name]['type'] == spec['type'], name
        assert doc[name].get('default') == spec.get('default'), name
        assert doc[name].get('elements') == spec.get('elements'), name
