# -*- coding: utf-8 -*-
"""mutable.py on scratch roots (no mounts): layouts, the upper directory and its symlinks,
work directories and the validation of recorded work_dir metadata."""

import os
import stat

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import mutable

MUT = 'var/lib/extensions.mutable'


@pytest.fixture(name='r')
def r_fixture(tmp_path):
    r = tmp_path / 'root'
    for d in ('usr/share', 'opt', 'etc', 'var/lib'):
        (r / d).mkdir(parents=True)
    (r / 'usr/share/base').write_text('base\n')
    return r


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_component_and_dirs():
    assert mutable.component('/usr') == 'usr'
    assert mutable.component('/foo/bar/') == 'foo.bar'
    assert mutable.persistent_dir('/opt') == '/var/lib/extensions.mutable/opt'
    assert mutable.workdir_prefix('/etc') == '.systemd-etc-workdir'


def test_layouts(r):
    root = str(r)
    assert mutable.layout(root, '/usr', 'no') == mutable.NONE
    yes = mutable.layout(root, '/usr', 'yes')
    assert yes.upper == '/' + MUT + '/usr' and yes.writable and yes.mounts_always
    assert mutable.layout(root, '/usr', 'auto') == mutable.NONE, 'auto without the directory: read-only'
    assert mutable.layout(root, '/usr', 'import') == mutable.NONE
    eph = mutable.layout(root, '/usr', 'ephemeral')
    assert eph.ephemeral and eph.upper is None and eph.recorded == '/run/systemd/sysext/usr'
    (r / MUT / 'usr').mkdir(parents=True)
    assert mutable.layout(root, '/usr', 'auto').upper == '/' + MUT + '/usr'
    imp = mutable.layout(root, '/usr', 'import')
    assert imp.imported == '/' + MUT + '/usr' and not imp.writable and imp.mounts_always
    assert mutable.layout(root, '/usr', 'ephemeral-import').imported == '/' + MUT + '/usr'
    with pytest.raises(mutable.MutableError, match='unknown mutable mode'):
        mutable.layout(root, '/usr', 'sometimes')


def test_dangling_symlink_is_no_mutable_directory(r):
    (r / MUT).mkdir(parents=True)
    os.symlink('/nowhere', r / MUT / 'usr')
    assert mutable.layout(str(r), '/usr', 'auto') == mutable.NONE
    assert mutable.layout(str(r), '/usr', 'import') == mutable.NONE


def test_absolute_symlinks_resolve_inside_the_root(r):
    """A link to /usr means the root's /usr, never this machine's."""
    (r / MUT).mkdir(parents=True)
    os.symlink('/usr', r / MUT / 'usr')
    assert mutable.resolve_dir(str(r), '/' + MUT + '/usr') == str(r / 'usr')
    with pytest.raises(mutable.MutableError, match='leads to the hierarchy itself'):
        mutable.imported_dir(str(r), '/usr', '/' + MUT + '/usr')
    (r / 'store/usr').mkdir(parents=True)
    os.symlink('/store/usr', r / MUT / 'opt')
    assert mutable.imported_dir(str(r), '/opt', '/' + MUT + '/opt') == str(r / 'store/usr')
    assert mutable.imported_dir(str(r), '/etc', '/' + MUT + '/etc') is None


def test_prepare_upper_creates_with_the_hierarchy_mode(r):
    os.chmod(r / 'usr', 0o751)
    (r / 'var/lib').chmod(0o755)
    old = os.umask(0o077)
    try:
        upper, work = mutable.prepare_upper(str(r), '/usr', '/' + MUT + '/usr')
    finally:
        os.umask(old)
    assert upper == str(r / MUT / 'usr') and mode_of(upper) == 0o751
    assert mode_of(r / MUT) == 0o755, 'missing parents are 0755 whatever the umask'
    assert os.path.dirname(work) == str(r / MUT) and mode_of(work) == 0o700
    name = os.path.basename(work)
    assert name.startswith('.systemd-usr-workdir-') and len(name) == len('.systemd-usr-workdir-') + 16
    upper2, work2 = mutable.prepare_upper(str(r), '/usr', '/' + MUT + '/usr')
    assert upper2 == upper and work2 != work, 'a fresh work directory per merge'


def test_prepare_upper_refuses_another_mode(r):
    (r / MUT / 'usr').mkdir(parents=True)
    os.chmod(r / MUT / 'usr', 0o700)
    with pytest.raises(mutable.MutableError, match='has mode 0700, ought to have mode 0755'):
        mutable.prepare_upper(str(r), '/usr', '/' + MUT + '/usr')
    assert [n for n in os.listdir(r / MUT) if 'workdir' in n] == [], 'nothing made on refusal'


def test_prepare_upper_refuses_a_read_only_filesystem(r, monkeypatch):
    monkeypatch.setattr(mutable, '_read_only', lambda path: True)
    with pytest.raises(mutable.MutableError, match='read-only filesystem'):
        mutable.prepare_upper(str(r), '/usr', '/' + MUT + '/usr')


def test_prepare_upper_through_symlinks(r):
    (r / MUT / 'store/usr').mkdir(parents=True)
    os.symlink('/' + MUT + '/store/usr', r / MUT / 'usr')
    upper, work = mutable.prepare_upper(str(r), '/usr', '/' + MUT + '/usr')
    assert upper == str(r / MUT / 'store/usr')
    assert os.path.dirname(work) == str(r / MUT / 'store'), 'the work directory sits beside the real upper'
    os.symlink('/opt', r / MUT / 'opt')
    upper, work = mutable.prepare_upper(str(r), '/opt', '/' + MUT + '/opt')
    assert upper == str(r / 'opt') and os.path.dirname(work) == str(r), 'the hierarchy itself takes the writes'


def rel(r, path):
    return os.path.relpath(path, r)


def test_work_dirs_ours_and_systemds_are_accepted(r):
    root = str(r)
    _upper, work = mutable.prepare_upper(root, '/usr', '/' + MUT + '/usr')
    assert mutable.check_work_dir(root, '/usr', rel(r, work) + '\n') == (work, None)
    (r / MUT / '.systemd-usr-workdir').mkdir()
    assert mutable.check_work_dir(root, '/usr', MUT + '/.systemd-usr-workdir') == (str(r / MUT / '.systemd-usr-workdir'), None)
    assert mutable.check_work_dir(root, '/usr', MUT + '/.systemd-usr-workdir-0123456789abcdef') == (None, None), \
        'a valid name that does not exist: nothing to do'
    assert mutable.remove_work_dir(root, '/usr', rel(r, work)) is None and not os.path.exists(work)


def test_work_dir_beside_a_symlinked_upper(r):
    (r / 'srv/usr-upper').mkdir(parents=True)
    (r / MUT).mkdir(parents=True)
    os.symlink('/srv/usr-upper', r / MUT / 'usr')
    _upper, work = mutable.prepare_upper(str(r), '/usr', '/' + MUT + '/usr')
    assert rel(r, work).startswith('srv/.systemd-usr-workdir-')
    assert mutable.stale_work_dirs(str(r), ['/usr'], set()) == [rel(r, work)]
    assert mutable.stale_work_dirs(str(r), ['/usr'], {rel(r, work)}) == []
    assert mutable.remove_work_dir(str(r), '/usr', rel(r, work)) is None and not os.path.exists(work)


@pytest.mark.parametrize('recorded', [
    'usr/share', 'usr/share/base', '/opt', 'var/lib/extensions.mutable/usr', 'var/lib/extensions.mutable',
    'var/lib/extensions.mutable/../../../usr/share', 'var/lib/extensions.mutable/./.systemd-usr-workdir',
    'var/lib/extensions.mutable/.systemd-opt-workdir', 'var/lib/extensions.mutable/.systemd-usr-workdirX',
    'var/lib/extensions.mutable/.systemd-usr-workdir-xyz', 'var/lib/.systemd-usr-workdir',
    'var/lib/extensions.mutable/.systemd-usr-workdir\\n', 'var/lib/extensions.mutable/.systemd-usr-workdir\nusr',
    '', 'usr/.systemd-usr-workdir'])
def test_forged_work_dirs_are_refused_and_nothing_deleted(r, recorded):
    (r / MUT / 'usr/share').mkdir(parents=True)
    (r / MUT / 'usr/share/data').write_text('precious\n')
    for d in ('.systemd-opt-workdir', '.systemd-usr-workdirX'):
        (r / MUT / d).mkdir()
    (r / 'var/lib/.systemd-usr-workdir').mkdir()
    (r / 'usr/.systemd-usr-workdir').mkdir()
    before = sorted(os.path.relpath(os.path.join(d, n), r) for d, ds, fs in os.walk(r) for n in ds + fs)
    problem = mutable.remove_work_dir(str(r), '/usr', recorded)
    assert problem and 'nothing was deleted' in problem
    after = sorted(os.path.relpath(os.path.join(d, n), r) for d, ds, fs in os.walk(r) for n in ds + fs)
    assert after == before


def test_a_work_dir_that_is_a_symlink_is_not_followed(r):
    (r / 'precious').mkdir()
    (r / 'precious/data').write_text('x')
    (r / MUT).mkdir(parents=True)
    os.symlink('/precious', r / MUT / '.systemd-usr-workdir')
    assert mutable.remove_work_dir(str(r), '/usr', MUT + '/.systemd-usr-workdir') is None
    assert (r / 'precious/data').exists()


def test_symlinked_base_dir_does_not_escape_the_root(r, tmp_path):
    """extensions.mutable itself a link to an absolute path: resolved in the root, not on the host."""
    outside = tmp_path / 'outside'
    (outside / 'var/lib/extensions.mutable/.systemd-usr-workdir').mkdir(parents=True)
    (r / 'elsewhere/.systemd-usr-workdir').mkdir(parents=True)
    os.symlink(str(outside / 'var/lib/extensions.mutable'), r / MUT)    # absolute: means ROOT + that path
    mutable.remove_work_dir(str(r), '/usr', MUT + '/.systemd-usr-workdir')
    assert (outside / 'var/lib/extensions.mutable/.systemd-usr-workdir').is_dir(), 'the host path is untouched'
    inside = r / str(outside).lstrip('/') / 'var/lib/extensions.mutable/.systemd-usr-workdir'
    inside.mkdir(parents=True)
    assert mutable.remove_work_dir(str(r), '/usr', MUT + '/.systemd-usr-workdir') is None
    assert not inside.exists() and (outside / 'var/lib/extensions.mutable/.systemd-usr-workdir').is_dir()


def test_stale_work_dirs(r):
    root = str(r)
    (r / MUT).mkdir(parents=True)
    a = mutable.prepare_upper(root, '/usr', '/' + MUT + '/usr')[1]
    b = mutable.prepare_upper(root, '/opt', '/' + MUT + '/opt')[1]
    (r / MUT / '.systemd-usr-workdir').mkdir()        # systemd's: never ours to clean up
    assert mutable.stale_work_dirs(root, ['/usr', '/opt'], {rel(r, a)}) == [rel(r, b)]
    assert mutable.stale_work_dirs(root, ['/etc'], set()) == []


@pytest.mark.parametrize('text,bad', [('', True), ('../x', True), ('/var/lib/precious', True),
                                      ('var/lib/extensions.mutable/../../../opt', True), ('var/lib/precious', False),
                                      ('var/lib/extensions.mutable/.systemd-usr-workdir', False)])
def test_malformed_work_dir_as_systemd_262_refuses_it(text, bad):
    """Seen with systemd-sysext 262.1: "Invalid work directory path" for the first four."""
    assert mutable.malformed_work_dir(text) is bad
