# -*- coding: utf-8 -*-
"""vpick: the choice systemd 262 makes in a NAME.v/ or NAME.raw.v/ directory (the cases were
checked against systemd-sysext 262 in the sid root, see tests/integration/diff_scenarios_vpick.py)."""

import os
import stat
import subprocess

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import vpick
from ansible_collections.tucked.sysext.plugins.module_utils.imagemeta import base_name
from ansible_collections.tucked.sysext.plugins.module_utils.images import discover

RAW = vpick.VersionedName('foo', '.raw')
DIRS = vpick.VersionedName('foo', '')


@pytest.mark.parametrize('fname,expected', [
    ('foo.raw.v', ('foo', '.raw')),
    ('foo.v', ('foo', '')),
    ('foo.sysext.raw.v', ('foo', '.sysext.raw')),
    ('foo.sysext.v', ('foo', '.sysext')),
    ('foo.mstack.v', ('foo', '.mstack')),
    ('foo', None),
    ('.v', None),
])
def test_split_versioned(fname, expected):
    got = vpick.split_versioned(fname, '.sysext')
    assert (tuple(got) if got else None) == expected


@pytest.mark.parametrize('s,expected', [
    ('+3', (3, 0)), ('+3-1', (3, 1)), ('+0', (0, 0)), ('+', None), ('+a', None), ('3', None), ('+3-', None),
    ('+3-x', None), ('+٣', None),
])
def test_parse_tries(s, expected):
    assert vpick.parse_tries(s) == expected


@pytest.mark.parametrize('fname,version,arch,left,done', [
    ('foo_1.raw', '1', None, None, None),
    ('foo_1.2-3.raw', '1.2-3', None, None, None),
    ('foo_1_x86-64.raw', '1', 'x86-64', None, None),
    ('foo_1_x86.raw', '1', 'x86', None, None),
    ('foo_2_beta.raw', '2', None, None, None),        # systemd chops a last "_..." that is no architecture
    ('foo_5+1-3.raw', '5', None, 1, 3),
    ('foo_5_x86-64+2.raw', '5', 'x86-64', 2, 0),
    ('foo_~1.raw', '~1', None, None, None),
    ('foo_x86-64.raw', 'x86-64', None, None, None),   # no "_": the whole rest is the version
])
def test_parse_entry(fname, version, arch, left, done):
    c = vpick.parse_entry(fname, RAW, 'x86-64')
    assert (c.version, c.architecture, c.tries_left, c.tries_done) == (version, arch, left, done)


@pytest.mark.parametrize('fname,why', [
    ('bar_1.raw', 'does not start with foo_'),
    ('foo1.raw', 'does not start with foo_'),
    ('foo_1.img', 'does not end in .raw'),
    ('foo_1_arm64.raw', 'for architecture arm64'),
    ('foo_.raw', 'not valid'),
    ('foo_1@2.raw', 'not valid'),
])
def test_parse_entry_refused(fname, why):
    got = vpick.parse_entry(fname, RAW, 'x86-64')
    assert isinstance(got, str) and why in got


def winner(names, vn=RAW, native='x86-64', usable=None):
    p = vpick.pick(names, vn, native, usable)
    return p.winner.fname if p.winner else None


def test_newest_version_wins():
    assert winner(['foo_1.raw', 'foo_10.raw', 'foo_2.raw', 'foo_1.9.raw']) == 'foo_10.raw'


def test_no_tries_left_loses_to_older():
    assert winner(['foo_11+0.raw', 'foo_10.raw']) == 'foo_10.raw'
    assert winner(['foo_11+0.raw']) == 'foo_11+0.raw'      # still picked when it is the only one


def test_tries_order():
    # same version: more tries left first, then fewer done; no counter counts as the most left
    assert winner(['foo_5+1-3.raw', 'foo_5+1-1.raw', 'foo_5+3.raw', 'foo_5+0.raw', 'foo_5.raw']) == 'foo_5.raw'
    assert winner(['foo_5+1-3.raw', 'foo_5+1-1.raw', 'foo_5+3.raw']) == 'foo_5+3.raw'
    assert winner(['foo_5+1-3.raw', 'foo_5+1-1.raw']) == 'foo_5+1-1.raw'


def test_architecture_order():
    names = ['foo_1_x86.raw', 'foo_1_x86-64.raw', 'foo_1.raw', 'foo_2_arm64.raw', 'foo_0.9_x86-64.raw']
    assert winner(names) == 'foo_1_x86-64.raw'
    assert winner(['foo_1_x86.raw', 'foo_1.raw']) == 'foo_1_x86.raw'    # secondary over none
    assert winner(names, native='arm64') == 'foo_2_arm64.raw'
    assert vpick.local_architectures('riscv64') == ('riscv64',)


def test_last_tie_break_is_the_file_name():
    assert winner(['foo_1.0.raw', 'foo_1.00.raw']) == 'foo_1.00.raw'


def test_losers_are_reported():
    p = vpick.pick(['foo_1.raw', 'foo_2.raw', 'bar_3.raw', 'foo_3_arm64.raw'], RAW, 'x86-64')
    assert p.winner.version == '2'
    why = {c['entry']: c['reason'] for c in p.candidates}
    assert why == {'foo_1.raw': 'older than foo_2.raw', 'bar_3.raw': 'does not start with foo_',
                   'foo_3_arm64.raw': 'for architecture arm64'}


def test_usable_filters_before_the_comparison():
    p = vpick.pick(['foo_1', 'foo_2.raw', 'foo_3'], DIRS, 'x86-64', lambda f: 'not a directory' if f.endswith('.raw') else None)
    assert p.winner.fname == 'foo_3'
    assert {'entry': 'foo_2.raw', 'version': '2.raw', 'reason': 'not a directory'} in p.candidates


def test_nothing_to_pick():
    assert vpick.pick([], RAW, 'x86-64').winner is None
    assert vpick.pick(['bar_1.raw'], RAW, 'x86-64').winner is None


@pytest.mark.parametrize('name,base', [('foo_1.2', 'foo'), ('foo+3', 'foo'), ('foo', 'foo'), ('foo.raw', 'foo'),
                                       ('foo_1.sysext.raw', 'foo'), ('_x', '')])
def test_base_name(name, base):
    assert base_name(name) == base


# ------------------------------------------------------------------ discovery
def test_discovery_picks_from_v_directories(root, make_tree, build_image, tmp_path):
    ext = root / 'var/lib/extensions'
    (ext / 'foo.raw.v').mkdir()
    for v in ('1', '2', '10', '11+0'):
        make_tree(tmp_path / ('t' + v), 'foo')
        build_image(tmp_path / ('t' + v), ext / 'foo.raw.v' / ('foo_%s.raw' % v))
    (ext / 'bar.v').mkdir()
    make_tree(ext / 'bar.v' / 'bar_3', 'bar')
    (root / 'var/lib/store').mkdir()
    make_tree(root / 'var/lib/store/bar-7', 'bar')
    os.symlink('/var/lib/store/bar-7', ext / 'bar.v' / 'bar_7')          # absolute: meant inside the root
    d = discover(str(root), 'sysext')
    got = {i.name: (i.path, i.type, i.picked['version']) for i in d.images}
    assert got == {'foo': ('/var/lib/extensions/foo.raw.v/foo_10.raw', 'raw', '10'),
                   'bar': ('/var/lib/store/bar-7', 'directory', '7')}
    img = [i for i in d.images if i.name == 'foo'][0]
    assert img.picked['from'] == '/var/lib/extensions/foo.raw.v' and img.picked['entry'] == 'foo_10.raw'
    assert {c['entry'] for c in img.picked['candidates']} == {'foo_1.raw', 'foo_2.raw', 'foo_11+0.raw'}


def test_discovery_v_symlink_and_wrong_winner(root, make_tree):
    ext = root / 'var/lib/extensions'
    (root / 'srv/versions').mkdir(parents=True)
    make_tree(root / 'srv/versions/app_2', 'app')
    os.symlink('../../../srv/versions', ext / 'app.v')                 # the .v entry itself a relative link
    (ext / 'dang.raw.v').mkdir()
    (ext / 'dang.raw.v' / 'dang_1.raw').write_bytes(b'x')
    os.symlink('nowhere', ext / 'dang.raw.v' / 'dang_2.raw')           # the winner dangles: all of it skipped
    d = discover(str(root), 'sysext')
    assert [(i.name, i.path) for i in d.images] == [('app', '/srv/versions/app_2')]
    why = {i['entry']: i['reason'] for i in d.ignored}
    assert 'dang_2.raw is a dangling symlink; systemd-sysext skips all of' in why['/var/lib/extensions/dang.raw.v']
    assert d.warnings


def test_discovery_v_newest_of_the_wrong_type_is_passed_over(root, make_tree):
    """vpick.c's pin_choice() follows the entry's symlinks and skips an inode of the wrong type:
    the next version is taken (a link to a directory, a FIFO, a character device)."""
    ext = root / 'var/lib/extensions'
    (ext / 'wt.raw.v').mkdir()
    make_tree(root / 'srv/t', 'wt')
    subprocess.run(['mksquashfs', str(root / 'srv/t'), str(ext / 'wt.raw.v/wt_1.raw'), '-quiet', '-all-root'],
                   check=True, capture_output=True)
    os.mkfifo(root / 'srv/fifo')
    os.symlink('/srv', ext / 'wt.raw.v/wt_9.raw')
    os.symlink('../../../../srv/fifo', ext / 'wt.raw.v/wt_8.raw')
    os.mknod(root / 'srv/null', 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.symlink('/srv/null', ext / 'wt.raw.v/wt_7.raw')
    d = discover(str(root), 'sysext')
    assert [(i.name, i.path) for i in d.images] == [('wt', '/var/lib/extensions/wt.raw.v/wt_1.raw')]
    why = {c['entry']: c['reason'] for c in d.images[0].picked['candidates']}
    assert why['wt_9.raw'] == 'leads to a directory, not a regular file or block device'
    assert why['wt_8.raw'].startswith('leads to a FIFO') and why['wt_7.raw'].startswith('leads to a character device')


def test_discovery_v_never_escapes_the_root(root, make_tree, tmp_path):
    outside = tmp_path / 'outside'
    make_tree(outside / 'esc_1', 'esc')
    ext = root / 'var/lib/extensions'
    (ext / 'esc.v').mkdir()
    os.symlink('../../../../../../../../' + str(outside / 'esc_1').lstrip('/'), ext / 'esc.v' / 'esc_1')
    d = discover(str(root), 'sysext')
    assert not d.images
    assert 'esc_1 is a dangling symlink' in {i['entry']: i['reason'] for i in d.ignored}['/var/lib/extensions/esc.v']
