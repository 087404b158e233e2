"""The bootstrap scenario, seen from inside each host after converge: a host that had no Python
runs ours from a system extension, next to the extensions the sysext role rolled out."""
import json

import pytest
import testinfra

PREFIX = '/usr/lib/tucked-sysext/python'
STORE = '/var/lib/tucked-sysext/store/tucked-python'


@pytest.fixture(name='node')
def fixture_node(host):
    """The host through `podman exec` (testinfra's ansible backend would need Python on the host)."""
    return testinfra.get_host('podman://' + host.backend.host)


def _status(node, tool):
    status = json.loads(node.check_output('%s status --json=short', tool))
    return {s['hierarchy']: sorted(s['extensions']) if isinstance(s['extensions'], list) else [] for s in status}


def test_python_and_the_test_extensions_are_merged(node):
    every = ['tucked-hello', 'tucked-python', 'tucked-tools']
    assert _status(node, 'systemd-sysext') == {'/usr': every, '/opt': every}
    if node.exists('systemd-confext'):      # systemd >= 254; bookworm has 252
        assert _status(node, 'systemd-confext') == {'/etc': ['tucked-motd']}
    assert node.file('/etc/tucked/motd.conf').exists
    assert node.run('/opt/tucked-tools/bin/tool').stdout == 'tucked-tools\n'
    assert node.service('tucked-hello.service').is_running


def test_the_interpreter_runs_what_the_modules_need(node):
    out = node.check_output(PREFIX + '/bin/python3 -c "import sys, ctypes, json, zlib, hashlib; print(sys.prefix)"')
    assert out == PREFIX


def test_it_is_stored_as_sysext_image_stores_its_images(node):
    stored = node.check_output('ls -A %s', STORE)
    assert stored.startswith('tucked-python-') and stored.endswith('.raw') and '\n' not in stored
    link = node.file('/var/lib/extensions/tucked-python.raw')
    assert link.is_symlink and link.linked_to == STORE + '/' + stored
    # the relative form store.set_link writes
    assert node.check_output('readlink /var/lib/extensions/tucked-python.raw') == \
        '../tucked-sysext/store/tucked-python/' + stored


def test_nothing_python_like_outside_the_prefix(node):
    for d in ('/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/lib', '/usr/local/lib', '/usr/libexec'):
        names = node.run('ls -A %s', d).stdout.split()
        assert [n for n in names if 'python' in n.lower()] == [], d
    # the prefix is all the extension adds besides its release file
    assert node.check_output('ls -A /usr/lib/tucked-sysext') == 'python'


def test_the_sid_host_was_reached_as_core_who_became_root(host, node):
    """molecule.yml: the sid host is reached as the user core (uid 500) with become (sudo), as
    Flatcar and Fedora CoreOS hosts are: Ansible's temporary files went to core's home, and
    what the roles installed belongs to root."""
    core = node.file('/home/core/.ansible')
    if not host.backend.host.endswith('-sid'):
        assert not core.exists
        return
    assert core.is_directory and core.user == 'core' and core.uid == 500
    assert node.check_output('sudo -n -u core sudo -n id -u') == '0'
    for path in (STORE, STORE + '/' + node.check_output('ls -A %s', STORE), '/var/lib/extensions/tucked-python.raw'):
        assert node.file(path).user == 'root', path
