"""After systemd's refresh over our merge, seen from inside each host."""
import json

import pytest
import testinfra


@pytest.fixture(name='node')
def fixture_node(host):
    """The same host through `podman exec`: much faster than an ansible command per check."""
    return testinfra.get_host('podman://' + host.backend.host)


def _systemd_version(node):
    return int(node.check_output('systemd-sysext --version').split()[1])


def test_content_is_merged(node):
    assert node.file('/usr/share/tucked-hello/version').content_string == '1\n'
    assert node.run('/opt/tucked-tools/bin/tool').stdout == 'tucked-tools\n'
    if _systemd_version(node) >= 254:
        assert node.file('/etc/tucked-motd/version').content_string == '1\n'


def test_status_and_facts_agree(host, node):
    facts = host.ansible('tucked.sysext.sysext_facts', check=False)['ansible_facts']['sysext']
    status = json.loads(node.check_output('systemd-sysext status --json=short'))
    assert {s['hierarchy']: sorted(s['extensions']) for s in status} == \
        {h: sorted(facts['hierarchies'][h]['extensions']) for h in ('/usr', '/opt')} == \
        {'/usr': ['tucked-hello', 'tucked-tools'], '/opt': ['tucked-hello', 'tucked-tools']}


def test_our_refresh_skips_after_systemd_262(host, node):
    plan = host.ansible('tucked.sysext.sysext_refresh', check=True)
    # systemd 252 records no origin: our plan cannot prove the merge current and rebuilds
    assert plan['changed'] == (_systemd_version(node) < 260), plan['reasons']


def test_systemd_unmerges_the_merge(node):
    """On 262 the overlays are still ours (its refresh skipped): systemd unmerges them cleanly."""
    node.check_output('systemd-sysext unmerge')
    hierarchies = ['/usr', '/opt']
    if node.exists('systemd-confext'):
        node.check_output('systemd-confext unmerge')
        hierarchies.append('/etc')
    mount_points = [line.split()[4] for line in node.file('/proc/self/mountinfo').content_string.splitlines()]
    assert not set(hierarchies) & set(mount_points)
    assert not node.file('/usr/share/tucked-hello').exists
    assert not node.file('/etc/tucked-motd').exists or not node.exists('systemd-confext')
