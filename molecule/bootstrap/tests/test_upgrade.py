"""The bootstrap scenario after its side_effect, v1 -> v2 -> v1 on the bootstrapped interpreter:
version 1 is merged and running, both versions are kept in the store; then an unmerge of /usr,
which would take the running interpreter away, is refused, and done when forced. (pytest runs
this file after test_bootstrap.py: the unmerge comes last.)"""
import time

import pytest
import testinfra

PYTHON = '/usr/lib/tucked-sysext/python/bin/python3'
# the hosts have no Python of their own: the module runs on the bootstrapped one
INTERPRETER = {'ansible_python_interpreter': PYTHON}


@pytest.fixture(name='node')
def fixture_node(host):
    """The same host through `podman exec`: much faster than an ansible command per check."""
    return testinfra.get_host('podman://' + host.backend.host)


def test_version_1_is_back(node):
    assert node.file('/usr/share/tucked-hello/version').content_string == '1\n'
    assert node.file('/etc/tucked-motd/version').content_string == '1\n'
    assert node.file('/run/tucked-hello.version').content_string == '1\n'
    assert node.service('tucked-hello.service').is_running


def test_one_overlay_per_hierarchy(node):
    mount_points = [line.split()[4] for line in node.file('/proc/self/mountinfo').content_string.splitlines()]
    assert mount_points.count('/usr') == 1
    assert mount_points.count('/etc') == 1


def test_both_versions_kept_and_version_1_selected(node):
    store = '/var/lib/tucked-sysext/store'
    for name in ('tucked-hello', 'tucked-motd'):
        assert sorted(node.file('%s/%s' % (store, name)).listdir()) == ['%s-1.raw' % name, '%s-2.raw' % name]
    assert node.file('/var/lib/extensions/tucked-hello.raw').linked_to == store + '/tucked-hello/tucked-hello-1.raw'
    assert node.file('/var/lib/confexts/tucked-motd.raw').linked_to == store + '/tucked-motd/tucked-motd-1.raw'


def test_reload_or_restart_started_once_then_reloaded(node):
    """EXTENSION_RELOAD_OR_RESTART_UNITS: started by the first merge (it was not running), then
    reloaded by each refresh, v1 -> v2 -> v1, in the same process."""
    assert node.file('/run/tucked-hello-reload.log').content_string == 'start 1\nreload 2\nreload 1\n'
    assert node.service('tucked-hello-reload.service').is_running


def test_unmerge_is_refused_while_the_interpreter_lives_in_usr(host, node):
    """The module runs on the interpreter of tucked-python, merged into /usr: an unmerge would
    take it away from every later task, so it is refused before anything changes."""
    try:
        result = host.ansible('tucked.sysext.sysext_refresh', 'state=unmerged', check=False, extra_vars=INTERPRETER)
    except host.ansible.AnsibleException as failed:
        result = failed.result
    # (ansible-core 2.19's ad-hoc output of a failed task has no "failed" key, so testinfra may
    # not raise: the refusal is recognised by what the module returns)
    assert not result.get('changed') and result.get('interpreter', {}).get('extensions') == ['tucked-python'], result
    assert result['msg'].startswith('refusing to unmerge /usr'), result
    assert node.file('/usr/bin/tucked-hello').exists
    assert node.file(PYTHON).exists


def test_forced_unmerge_stops_the_services_of_the_extension(host, node):
    """A listed unit whose extension went away is stopped (systemd 262)."""
    units = ('tucked-hello.service', 'tucked-hello-reload.service')
    result = host.ansible('tucked.sysext.sysext_refresh', 'state=unmerged force=true', check=False,
                          extra_vars=INTERPRETER)
    assert result['changed'] and result['reloaded']
    assert sorted(result['units']['stopped']) == sorted(units), result['units']
    for _attempt in range(50):           # systemctl --no-block stop
        if not any(node.service(unit).is_running for unit in units):
            break
        time.sleep(0.2)
    for unit in units:
        assert not node.service(unit).is_running, unit
    assert not node.file('/usr/bin/tucked-hello').exists
    assert not node.file(PYTHON).exists
