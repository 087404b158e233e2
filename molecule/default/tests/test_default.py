"""The default scenario, seen from inside each host after converge."""
import json

import pytest
import testinfra


@pytest.fixture(name='node')
def fixture_node(host):
    """The same host through `podman exec`: much faster than an ansible command per check."""
    return testinfra.get_host('podman://' + host.backend.host)


def test_files_from_every_extension(node):
    assert node.file('/usr/bin/tucked-hello').mode == 0o755
    assert node.file('/usr/share/tucked-hello/version').content_string == '1\n'
    assert node.run('/opt/tucked-tools/bin/tool').stdout == 'tucked-tools\n'
    assert node.file('/etc/tucked-motd/version').content_string == '1\n'
    assert node.file('/etc/tucked/motd.conf').exists


def test_images_in_the_producers_formats(host, node):
    """An erofs GPT disk image (Flatcar's extras) and a zstd squashfs (Flatcar before 4628) are
    merged with their content, and the facts say what each image is."""
    assert node.file('/usr/share/tucked-ddi/hello').content_string == 'from an erofs GPT disk image\n'
    assert node.file('/usr/share/tucked-zstd/hello').content_string == 'from a zstd squashfs\n'
    facts = host.ansible('tucked.sysext.sysext_facts', check=False)['ansible_facts']['sysext']
    images = {i['name']: i for i in facts['images']}
    ddi, zstd = images['tucked-ddi'], images['tucked-zstd']
    # (erofs records lz4 for lz4hc too: the same format)
    assert (ddi['container'], ddi['fstype'], ddi['compression']) == ('gpt', 'erofs', 'lz4'), ddi
    assert ddi['partition']['designator'] == 'root' and ddi['protection'] == 'unprotected', ddi
    assert (zstd['container'], zstd['fstype'], zstd['compression']) == ('filesystem', 'squashfs', 'zstd'), zstd


def test_hierarchies_are_read_only_overlays(node):
    for path in ('/usr', '/opt', '/etc'):
        mount = node.mount_point(path)
        assert mount.filesystem == 'overlay', path
        assert 'ro' in mount.options, path


def test_service_from_the_extension_runs(node):
    assert node.service('tucked-hello.service').is_running
    assert node.file('/run/tucked-hello.version').content_string == '1\n'


def _status(node, tool):
    """{hierarchy: sorted extension names} from systemd-sysext/systemd-confext status."""
    status = json.loads(node.check_output('%s status --json=short', tool))
    return {s['hierarchy']: sorted(s['extensions']) if isinstance(s['extensions'], list) else [] for s in status}


def test_systemd_status_agrees_with_our_facts(host, node):
    facts = host.ansible('tucked.sysext.sysext_facts', check=False)['ansible_facts']['sysext']
    ours = {h: sorted(v['extensions']) for h, v in facts['hierarchies'].items()}
    # systemd lists every merged extension on every hierarchy of its class
    every = ['tucked-bakery', 'tucked-ddi', 'tucked-hello', 'tucked-tools', 'tucked-zstd']
    assert ours == {'/usr': every, '/opt': every, '/etc': ['tucked-motd']}
    assert _status(node, 'systemd-sysext') == {h: ours[h] for h in ('/usr', '/opt')}
    if node.exists('systemd-confext'):      # systemd >= 254; bookworm has 252
        assert _status(node, 'systemd-confext') == {'/etc': ours['/etc']}


def test_the_sysext_bakery_layout_rolled_out_with_its_own_transfer(node):
    """Version 2 stored under the transfer's names beside version 1 (InstancesMax=3), selected by
    its CurrentSymlink=, merged."""
    arch = {'x86_64': 'x86-64', 'aarch64': 'arm64'}[node.check_output('uname -m')]
    store = '/var/opt/extensions/tucked-bakery'     # (not /opt: tucked-tools provides /opt, see converge.yml)
    assert sorted(node.file(store).listdir()) == ['tucked-bakery-1-%s.raw' % arch, 'tucked-bakery-2-%s.raw' % arch]
    link = node.file('/etc/extensions/tucked-bakery.raw')
    assert link.is_symlink and link.linked_to == '%s/tucked-bakery-2-%s.raw' % (store, arch)
    assert node.file('/usr/share/tucked-bakery/version').content_string == '2\n'
