# -*- coding: utf-8 -*-
"""sysext.conf / confext.conf: which files, in which order, and what wins (each rule was seen
with systemd-sysext 262 --root=, see tests/integration/diff_scenarios_settings.py)."""

import os

from ansible_collections.tucked.sysext.plugins.module_utils import config


def write(root, rel, text):
    path = root / rel.lstrip('/')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(root, cls='sysext', env=None):
    return config.load(str(root), cls, env or {})


def test_nothing_configured(root):
    s = load(root)
    assert s.mutable == config.Setting(None, 'default')
    assert s.image_policy == config.Setting(None, 'default')
    assert s.files == () and s.warnings == ()


def test_main_file_first_found_wins(root):
    write(root, '/usr/lib/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\n')
    assert load(root).mutable == ('ephemeral', '/usr/lib/systemd/sysext.conf:2')
    write(root, '/etc/systemd/sysext.conf', '[SysExt]\n')       # an (empty) one in /etc hides the vendor's
    s = load(root)
    assert s.mutable.value is None and s.files == ('/etc/systemd/sysext.conf',)


def test_dropins_sorted_by_name_across_directories(root):
    write(root, '/usr/lib/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\n')
    write(root, '/etc/systemd/sysext.conf.d/50-no.conf', '[SysExt]\nMutable=no\n')
    assert load(root).mutable == ('no', '/etc/systemd/sysext.conf.d/50-no.conf:2')
    write(root, '/usr/lib/systemd/sysext.conf.d/60-eph.conf', '[SysExt]\nMutable=ephemeral\n')
    assert load(root).mutable.value == 'ephemeral'
    write(root, '/etc/systemd/sysext.conf.d/60-eph.conf', '[SysExt]\nMutable=import\n')   # hides the /usr/lib one
    s = load(root)
    assert s.mutable == ('import', '/etc/systemd/sysext.conf.d/60-eph.conf:2')
    assert s.files == ('/usr/lib/systemd/sysext.conf', '/etc/systemd/sysext.conf.d/50-no.conf',
                       '/etc/systemd/sysext.conf.d/60-eph.conf')
    write(root, '/etc/systemd/sysext.conf.d/not-a-dropin.txt', '[SysExt]\nMutable=yes\n')
    assert load(root).mutable.value == 'import'


def test_dev_null_masks(root):
    write(root, '/usr/lib/systemd/sysext.conf.d/60-eph.conf', '[SysExt]\nMutable=ephemeral\n')
    os.makedirs(root / 'etc/systemd/sysext.conf.d')
    os.symlink('/dev/null', root / 'etc/systemd/sysext.conf.d/60-eph.conf')
    assert load(root).mutable.value is None


def test_sections_keys_and_values(root):
    write(root, '/etc/systemd/sysext.conf', '# comment\n[Sysext]\nMutable=ephemeral\n[SysExt]\nMutable=bogus\n'
          'Foo=1\n; other comment\nMutable = true \n')
    s = load(root)
    assert s.mutable == ('yes', '/etc/systemd/sysext.conf:8')
    assert any("unknown section 'Sysext'" in w for w in s.warnings)
    assert any('Mutable=bogus' in w for w in s.warnings)
    assert any("unknown key 'Foo'" in w for w in s.warnings)
    assert load(root, 'confext').files == ()                    # confext reads confext.conf


def test_confext_section(root):
    write(root, '/etc/systemd/confext.conf', '[SysExt]\nMutable=yes\n[ConfExt]\nMutable=ephemeral\n')
    assert load(root, 'confext').mutable == ('ephemeral', '/etc/systemd/confext.conf:4')


def test_environment_beats_files(root):
    write(root, '/etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\n')
    assert load(root, env={'SYSTEMD_SYSEXT_MUTABLE_MODE': 'no'}).mutable == ('no', 'environment')
    assert load(root, env={'SYSTEMD_CONFEXT_MUTABLE_MODE': 'no'}).mutable.value == 'ephemeral'
    s = load(root, env={'SYSTEMD_SYSEXT_MUTABLE_MODE': 'nope'})
    assert s.mutable.value == 'ephemeral' and any('SYSTEMD_SYSEXT_MUTABLE_MODE=nope' in w for w in s.warnings)


def test_parameters_beat_everything(root):
    write(root, '/etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\nImagePolicy=root=verity\n')
    s = config.effective(load(root, env={'SYSTEMD_SYSEXT_MUTABLE_MODE': 'auto'}), 'import', '*')
    assert s.mutable == ('import', 'parameter') and s.image_policy == ('*', 'parameter')
    s = config.effective(load(root), None, None)
    assert s.mutable.value == 'ephemeral' and s.image_policy == ('root=verity:=unused+absent', '/etc/systemd/sysext.conf:3')


def test_image_policy_values(root):
    write(root, '/etc/systemd/sysext.conf', '[SysExt]\nImagePolicy=root=bogus+verity\n')
    assert load(root).image_policy.value == 'root=verity:=unused+absent'       # graceful
    write(root, '/etc/systemd/sysext.conf.d/10-x.conf', '[SysExt]\nImagePolicy=\n')
    assert load(root).image_policy == (None, '/etc/systemd/sysext.conf.d/10-x.conf:2')   # empty: default


def test_unparsable_policy_voids_the_configuration(root):
    write(root, '/etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\nImagePolicy=nocolon\nMutable=yes\n')
    write(root, '/etc/systemd/sysext.conf.d/50-x.conf', '[SysExt]\nMutable=import\n')
    s = load(root)
    assert s.mutable == config.Setting(None, 'default')      # not even what was read before the error
    assert any('ignores all of its configuration' in w for w in s.warnings)
    assert load(root, env={'SYSTEMD_SYSEXT_MUTABLE_MODE': 'yes'}).mutable == ('yes', 'environment')


def test_broken_section_header_voids_the_configuration(root):
    write(root, '/etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\n[SysExt\nMutable=yes\n')
    write(root, '/etc/systemd/sysext.conf.d/50-x.conf', '[SysExt]\nMutable=import\n')
    s = load(root)
    assert s.mutable == config.Setting(None, 'default')
    assert any('invalid section header' in w and 'ignores all' in w for w in s.warnings)


def test_lines_without_equals_and_empty_values_are_ignored(root):
    write(root, '/etc/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\nMutable\nMutable=\n')
    s = load(root)
    assert s.mutable == ('ephemeral', '/etc/systemd/sysext.conf:2')
    assert any('missing "="' in w for w in s.warnings) and any('Mutable= is not one of' in w for w in s.warnings)


def test_not_utf8_voids_the_configuration(root):
    (root / 'etc/systemd').mkdir(parents=True)
    (root / 'etc/systemd/sysext.conf').write_bytes(b'[SysExt]\nMutable=\xff\n')
    write(root, '/etc/systemd/sysext.conf.d/50-x.conf', '[SysExt]\nMutable=import\n')
    s = load(root)
    assert s.mutable.value is None and any('not valid UTF-8' in w for w in s.warnings)


def test_continuation_lines(root):
    write(root, '/etc/systemd/sysext.conf', '[SysExt]\nImagePolicy=root=verity+\\\nsigned\n')
    assert load(root).image_policy.value == 'root=verity+signed:=unused+absent'


def test_directories_resolve_inside_the_root(root, tmp_path):
    """/etc/systemd as an absolute link means the root's own /usr/lib/systemd, never this machine's."""
    write(root, '/usr/lib/systemd/sysext.conf', '[SysExt]\nMutable=ephemeral\n')
    outside = tmp_path / 'outside'
    write(outside, '/sysext.conf', '[SysExt]\nMutable=yes\n')
    os.symlink('/usr/lib/systemd', root / 'etc/systemd')
    assert load(root).mutable == ('ephemeral', '/etc/systemd/sysext.conf:2')
    os.unlink(root / 'etc/systemd')
    os.symlink(str(outside), root / 'etc/systemd')             # the machine's path: missing in the root
    assert load(root).mutable == ('ephemeral', '/usr/lib/systemd/sysext.conf:2')
