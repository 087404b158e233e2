# -*- coding: utf-8 -*-
"""build.py behind sysext_build: release text, names, layout, the inputs digest, and real
builds with mksquashfs and mkfs.erofs: byte-identical rebuilds, idempotence, check mode,
failures leaving no partial file, verity sidecars, and our own reader finding the release."""

import errno
import hashlib
import os
import shutil
import stat
import subprocess
import time

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import build, buildfiles, buildtools, imagemeta, images, release
from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import image as imagefs
from ansible_collections.tucked.sysext.plugins.module_utils.build import BuildError, Options
from ansible_collections.tucked.sysext.plugins.module_utils.buildtools import COMPRESSION, FsSpec

FORMATS = ['squashfs', 'erofs']


def need(fmt):
    tool = {'squashfs': 'mksquashfs', 'erofs': 'mkfs.erofs', 'verity': 'veritysetup'}[fmt]
    if not shutil.which(tool) and not shutil.which(tool, path='/usr/sbin:/sbin'):
        pytest.skip('%s is not installed (scripts/bootstrap.sh debs)' % tool)


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def sha(path):
    return hashlib.sha256(read(path)).hexdigest()


def write(path, content, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(content.encode() if isinstance(content, str) else content)
    os.chmod(path, mode)


FILES = [('usr/bin/hello', '#!/bin/sh\necho hello\n', 0o755), ('usr/share/hello/a.txt', 'a\n', 0o644),
         ('usr/share/hello/b.txt', 'b' * 70000, 0o600), ('opt/hello/data', os.urandom(1000), 0o644)]


def make_src(path, reverse=False, mtime=None):
    """The same tree, created in either order, with its own mtimes."""
    for rel, content, mode in (reversed(FILES) if reverse else FILES):
        write(os.path.join(str(path), rel), content, mode)
    link = os.path.join(str(path), 'usr/share/hello/link')
    os.symlink('a.txt', link)
    os.link(os.path.join(str(path), 'usr/share/hello/a.txt'), os.path.join(str(path), 'usr/share/hello/hard'))
    if mtime is not None:
        for d, dirs, files in os.walk(str(path)):
            for n in dirs + files:
                os.utime(os.path.join(d, n), (mtime, mtime), follow_symlinks=False)
    return str(path)


def listing(d):
    return sorted(os.listdir(str(d)))


def snapshot(path):
    """Content, mode and mtime of every entry: what 'never modify src' means."""
    out = []
    for d, dirs, files in os.walk(str(path)):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(d, n)
            st = os.lstat(p)
            data = read(p) if stat.S_ISREG(st.st_mode) else os.readlink(p) if os.path.islink(p) else b''
            out.append((os.path.relpath(p, str(path)), st.st_mode, st.st_mtime_ns, data))
    return out


# ----------------------------------------------------------------------------- pure logic
def test_release_text_round_trips_through_systemds_parser():
    opts = Options(src='/s', dest='/d/foo.raw', id='debian', version_id='12', level='1.2', architecture='x86-64',
                   scope=['system', 'portable'], version='27.3.1',
                   release={'NAME': 'Foo "the tool" $HOME `x` \\', 'B_KEY': 7, 'A_KEY': 'plain', 'PAD': ' padded '})
    fields = build.release_fields(opts)
    assert list(fields) == ['ID', 'VERSION_ID', 'SYSEXT_LEVEL', 'ARCHITECTURE', 'SYSEXT_SCOPE', 'IMAGE_VERSION',
                            'A_KEY', 'B_KEY', 'NAME', 'PAD']
    text = build.release_text(fields)
    assert text.startswith('ID=debian\nVERSION_ID=12\nSYSEXT_LEVEL=1.2\nARCHITECTURE=x86-64\n'
                           'SYSEXT_SCOPE="system portable"\nIMAGE_VERSION=27.3.1\nA_KEY=plain\nB_KEY=7\n')
    assert release.parse_env(text) == fields
    assert fields['NAME'] == 'Foo "the tool" $HOME `x` \\' and fields['PAD'] == ' padded '


def test_release_defaults_and_confext_keys():
    fields = build.release_fields(Options(src='/s', dest='/d/x.raw', kind='confext', level='3', scope=['initrd']))
    assert fields == {'ID': '_any', 'CONFEXT_LEVEL': '3', 'CONFEXT_SCOPE': 'initrd'}
    assert build.release_fields(Options(src='/s', dest='/d/x.raw')) == {'ID': '_any'}


@pytest.mark.parametrize('kw,match', [
    ({'id': 'Debian 12'}, "id 'Debian 12'"),
    ({'architecture': 'amd64'}, "architecture 'amd64' is not one of systemd's names"),
    ({'scope': ['host']}, 'scope'),
    ({'scope': []}, 'scope'),
    ({'version': '1.0 beta'}, "version '1.0 beta'"),
    ({'version_id': '12 bookworm'}, 'version_id'),
    ({'version': ''}, 'version must not be empty'),
    ({'release': {'NAME': 'a\nb'}}, 'line break'),
    ({'release': {'FLAG': True}}, 'not a string'),
    ({'release': {'SYSEXT_LEVEL': 1.10}}, r'release field SYSEXT_LEVEL: 1.1 is a float, not a string: quote it'),
    ({'release': {'bad-key': 'x'}}, "release field name 'bad-key'"),
    ({'release': {'ID': 'fedora'}}, 'conflicts with the option id'),
    ({'id': 'debian', 'release': {'ID': 'fedora'}}, 'ID=fedora conflicts'),
])
def test_bad_release_fields_are_refused(kw, match):
    with pytest.raises(BuildError, match=match):
        build.release_text(build.release_fields(Options(src='/s', dest='/d/x.raw', **kw)))


def test_integers_in_release_are_written_as_they_read():
    fields = build.release_fields(Options(src='/s', dest='/d/x.raw', release={'EXTENSION_RELOAD_MANAGER': 1}))
    assert fields['EXTENSION_RELOAD_MANAGER'] == '1'


def test_same_value_in_release_and_option_is_fine():
    assert build.release_fields(Options(src='/s', dest='/d/x.raw', id='debian', release={'ID': 'debian'}))['ID'] == 'debian'


@pytest.mark.parametrize('dest,kind,name', [
    ('/x/foo.raw', 'sysext', 'foo'), ('/x/foo.sysext.raw', 'sysext', 'foo'), ('/x/foo.confext.raw', 'confext', 'foo'),
    ('/x/foo.confext.raw', 'sysext', 'foo.confext'), ('/x/docker-27.3.1.raw', 'sysext', 'docker-27.3.1'),
    ('/x/foo', 'sysext', 'foo'),
])
def test_default_name_is_systemds_image_name(dest, kind, name):
    assert build.default_name(dest, kind) == name


@pytest.mark.parametrize('name', ['a/b', '.hidden', '.#tmp', 'with space', 'foo.raw', '', 'tab\tx', 'ctl\x01'])
def test_bad_names(name):
    with pytest.raises(BuildError, match='invalid extension name'):
        build.check_name(name)


def test_good_names():
    for name in ('docker', 'docker-27.3.1', 'a_b', 'x' * 200):
        build.check_name(name)


def test_source_date_epoch(monkeypatch):
    monkeypatch.delenv('SOURCE_DATE_EPOCH', raising=False)
    assert build.check_epoch(None) == 0
    monkeypatch.setenv('SOURCE_DATE_EPOCH', '1700000000')
    assert build.check_epoch(None) == 1700000000
    assert build.check_epoch(5) == 5
    monkeypatch.setenv('SOURCE_DATE_EPOCH', 'yesterday')
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH='yesterday'"):
        build.check_epoch(None)
    for bad in (-1, 1 << 32, True):
        with pytest.raises(BuildError, match='source_date_epoch'):
            build.check_epoch(bad)


def test_layout_check(tmp_path):
    s = tmp_path / 's'
    (s / 'usr/bin').mkdir(parents=True)
    (s / 'opt').mkdir()
    assert build.check_layout(str(s), 'sysext') == ['opt', 'usr']
    with pytest.raises(BuildError, match=r"holds 'opt', 'usr' at the top level; a confext image may only hold etc/"):
        build.check_layout(str(s), 'confext')
    (s / 'etc').mkdir()
    (s / 'README').write_text('x')
    with pytest.raises(BuildError, match=r"holds 'README', 'etc' at the top level; a sysext image may only hold usr/ "
                                         r"and opt/ \(systemd-sysext ignores everything else\)"):
        build.check_layout(str(s), 'sysext')
    c = tmp_path / 'c'
    c.mkdir()
    with pytest.raises(BuildError, match='is empty: a confext needs content in etc/'):
        build.check_layout(str(c), 'confext')
    (c / 'etc').write_text('not a dir')
    with pytest.raises(BuildError, match='must be a directory, not a file'):
        build.check_layout(str(c), 'confext')
    os.unlink(c / 'etc')
    os.symlink('/etc', c / 'etc')
    with pytest.raises(BuildError, match='must be a directory, not a symlink'):
        build.check_layout(str(c), 'confext')


def test_scan_inserts_the_release_file_and_refuses_special_files(tmp_path):
    s = tmp_path / 's'
    (s / 'usr/bin').mkdir(parents=True)
    (s / 'usr/bin/x').write_text('x')
    entries, warns = build.scan(str(s), 'sysext', 'foo', 'ID=_any\n', False)
    assert [e.rel for e in entries] == ['usr', 'usr/bin', 'usr/bin/x', 'usr/lib', 'usr/lib/extension-release.d',
                                        'usr/lib/extension-release.d/extension-release.foo']
    assert entries[-1].data == b'ID=_any\n' and entries[-1].mode == 0o644 and warns == []
    os.mkfifo(str(s / 'usr/bin/fifo'))
    with pytest.raises(BuildError, match=r'usr/bin/fifo is a FIFO; an extension image holds only'):
        build.scan(str(s), 'sysext', 'foo', 'ID=_any\n', False)


def test_existing_release_file_in_src(tmp_path):
    s = tmp_path / 's'
    rd = s / 'usr/lib/extension-release.d'
    rd.mkdir(parents=True)
    (rd / 'extension-release.foo').write_text('# written by hand\nID="_any"\n')
    entries = build.scan(str(s), 'sysext', 'foo', 'ID=_any\n', False)[0]
    assert entries[-1].data == b'ID=_any\n', 'same fields: ours replaces it'
    (rd / 'extension-release.foo').write_text('ID=fedora\nVERSION_ID=40\n')
    with pytest.raises(BuildError, match=r'extension-release.foo differs from the release fields of this task '
                                         r'\(ID, VERSION_ID\); remove it from src'):
        build.scan(str(s), 'sysext', 'foo', 'ID=_any\n', False)
    os.unlink(rd / 'extension-release.foo')
    (rd / 'extension-release.other').write_text('ID=_any\n')
    warns = build.scan(str(s), 'sysext', 'foo', 'ID=_any\n', False)[1]
    assert warns and 'also holds extension-release.other' in warns[0]
    shutil.rmtree(str(s / 'usr/lib'))
    (s / 'usr/lib').mkdir()
    os.symlink('/somewhere', s / 'usr/lib/extension-release.d')
    with pytest.raises(BuildError, match='must be a directory'):
        build.scan(str(s), 'sysext', 'foo', 'ID=_any\n', False)


def digest_of(src, params=None, name='foo', text='ID=_any\n', xattrs=False):
    entries = build.scan(str(src), 'sysext', name, text, xattrs)[0]
    return build.inputs_digest(entries, build.hash_sources(entries, str(src)), params or {'p': 1})


def test_inputs_digest_sees_content_modes_links_and_params_but_not_mtimes(tmp_path):
    a = make_src(tmp_path / 'a', mtime=1000)
    b = make_src(tmp_path / 'b', reverse=True, mtime=2000000)
    base = digest_of(a)
    assert digest_of(b) == base, 'creation order and mtimes are not inputs'
    assert digest_of(a, params={'p': 2}) != base
    assert digest_of(a, text='ID=debian\n') != base
    assert digest_of(a, name='bar') != base
    changes = [
        lambda: write(os.path.join(b, 'usr/share/hello/b.txt'), 'B' * 70000, 0o600),
        lambda: os.chmod(os.path.join(b, 'usr/bin/hello'), 0o700),
        lambda: (os.unlink(os.path.join(b, 'usr/share/hello/link')),
                 os.symlink('b.txt', os.path.join(b, 'usr/share/hello/link'))),
        lambda: (os.unlink(os.path.join(b, 'usr/share/hello/hard')),
                 write(os.path.join(b, 'usr/share/hello/hard'), 'a\n')),     # same content, no longer a hard link
        lambda: os.mkdir(os.path.join(b, 'opt/empty')),
    ]
    seen = {base}
    for change in changes:
        change()
        d = digest_of(b)
        assert d not in seen
        seen.add(d)


def test_sidecar_names_follow_systemd():
    assert build.sidecars('/x/foo.raw') == ('/x/foo.verity', '/x/foo.roothash')
    assert build.sidecars('/x/foo.img') == ('/x/foo.img.verity', '/x/foo.img.roothash')


def test_bad_paths(tmp_path):
    src = make_src(tmp_path / 'src')
    (tmp_path / 'out').mkdir()
    (tmp_path / 'empty').mkdir()
    cases = [
        (Options(src=str(tmp_path / 'nope'), dest=str(tmp_path / 'out/x.raw')), 'nope does not exist'),
        (Options(src=str(tmp_path / 'empty'), dest=str(tmp_path / 'out/x.raw')), 'is empty: a sysext needs content'),
        (Options(src=str(tmp_path / 'out'), dest=str(tmp_path / 'out/x.raw')), 'is inside src'),
        (Options(src='relative', dest=str(tmp_path / 'out/x.raw')), 'must be an absolute path'),
        (Options(src=src, dest=str(tmp_path / 'missing/x.raw')), r'missing, does not exist; create it first'),
        (Options(src=src, dest=os.path.join(src, 'usr/x.raw')), 'is inside src'),
        (Options(src=src, dest=str(tmp_path / 'out')), 'exists and is not a regular file'),
        (Options(src=src, dest=str(tmp_path / 'out/a/b.raw'), name='a/b'), 'does not exist'),
        (Options(src=src, dest=str(tmp_path / 'out/x.raw'), name='a/b'), "invalid extension name 'a/b'"),
        (Options(src=src, dest=str(tmp_path / 'out/x.raw'), format='erofs', compression='xz'),
         "compression 'xz' is not available for erofs"),
        (Options(src=src, dest=str(tmp_path / 'out/x.raw'), kind='confext'), "holds 'opt', 'usr' at the top level"),
    ]
    os.symlink('elsewhere.raw', tmp_path / 'out/link.raw')
    cases.append((Options(src=src, dest=str(tmp_path / 'out/link.raw')), 'is a symlink'))
    for opts, match in cases:
        with pytest.raises(BuildError, match=match):
            build.run(opts)
    assert listing(tmp_path / 'out') == ['link.raw']


def test_missing_tools_name_the_debian_package(tmp_path, monkeypatch):
    src = make_src(tmp_path / 'src')
    monkeypatch.setattr(build.shutil, 'which', lambda *a, **k: None)
    for fmt, pkg in (('squashfs', 'squashfs-tools'), ('erofs', 'erofs-utils')):
        with pytest.raises(BuildError, match='install the Debian package %s' % pkg):
            build.run(Options(src=src, dest=str(tmp_path / 'x.raw'), format=fmt))
    with pytest.raises(BuildError, match=r'veritysetup is not installed on the target; install the Debian package '
                                         r'cryptsetup-bin'):
        build.find_tool('verity')


# ----------------------------------------------------------------------------- real builds
def run(src, dest, **kw):
    kw.setdefault('source_date_epoch', 1700000000)
    return build.run(Options(src=str(src), dest=str(dest), **kw))


@pytest.mark.parametrize('fmt', FORMATS)
def test_byte_identical_from_trees_made_differently(tmp_path, fmt):
    need(fmt)
    a = make_src(tmp_path / 'a', mtime=1000)
    time.sleep(1.1)         # a later second: staging copies get other mtimes too
    b = make_src(tmp_path / 'b', reverse=True, mtime=1600000000)
    os.chown(os.path.join(b, 'usr/bin/hello'), 1234, 1234)
    (tmp_path / 'o1').mkdir()
    (tmp_path / 'o2').mkdir()
    r1 = run(a, tmp_path / 'o1/hello.raw', format=fmt, version='1')
    time.sleep(1.1)
    r2 = run(b, tmp_path / 'o2/hello.raw', format=fmt, version='1')
    assert r1.changed and r2.changed and r1.built
    assert r1.sha256 == r2.sha256 == sha(tmp_path / 'o1/hello.raw') == sha(tmp_path / 'o2/hello.raw')
    assert r1.size == os.path.getsize(tmp_path / 'o1/hello.raw')
    assert r1.inputs == r2.inputs
    # Other inputs, other bytes: the epoch, and the content.
    r3 = run(a, tmp_path / 'o1/other.raw', format=fmt, version='1', name='hello', source_date_epoch=1700000001)
    assert r3.sha256 != r1.sha256
    write(os.path.join(b, 'usr/share/hello/a.txt'), 'changed\n')
    assert run(b, tmp_path / 'o2/hello.raw', format=fmt, version='1').sha256 != r1.sha256


@pytest.mark.parametrize('fmt', FORMATS)
def test_tool_flags_normalise_owner_times_and_order(tmp_path, fmt):
    """The tool itself, fed two trees that differ only in owners, mtimes and creation order."""
    need(fmt)
    tool = build.find_tool(fmt)
    outs = []
    for i, (rev, mtime, uid) in enumerate(((False, 1000, 0), (True, 1600000000, 4321))):
        t = make_src(tmp_path / ('t%d' % i), reverse=rev, mtime=mtime)
        for d, dirs, files in os.walk(t):
            for n in dirs + files:
                os.lchown(os.path.join(d, n), uid, uid)
        os.chown(t, uid, uid)
        os.utime(t, (mtime, mtime))
        out = str(tmp_path / ('img%d' % i))
        build.run_tool(build.build_command(FsSpec(fmt, COMPRESSION[fmt][0], epoch=42), tool, t, out, 'seed'), 'test',
                       str(tmp_path))
        outs.append(sha(out))
    assert outs[0] == outs[1]


@pytest.mark.parametrize('fmt,comp', [('squashfs', 'gzip'), ('squashfs', 'xz'), ('squashfs', 'lzma'), ('erofs', 'none')])
def test_our_reader_finds_the_release_in_the_image(tmp_path, fmt, comp):
    need(fmt)
    src = make_src(tmp_path / 'src')
    dest = tmp_path / 'docker-27.3.1.raw'
    res = run(src, dest, format=fmt, compression=comp, name='docker', id='debian', version_id='12',
              architecture='x86-64', version='27.3.1')
    assert res.release_file == '/usr/lib/extension-release.d/extension-release.docker'
    img = images.Image(name='docker', cls='sysext', entry=str(dest), path=str(dest), host_path=str(dest), type='raw')
    imagemeta.load(img, None, 'x86-64')
    assert img.readable, img.reason
    assert img.release == {'ID': 'debian', 'VERSION_ID': '12', 'ARCHITECTURE': 'x86-64', 'IMAGE_VERSION': '27.3.1'}
    assert img.version == '27.3.1' and img.provides == ('/usr', '/opt')
    fd = os.open(str(dest), os.O_RDONLY)
    try:
        r = imagefs.open_image(fd)
        assert r.read_file('usr/bin/hello', 100) == b'#!/bin/sh\necho hello\n'
        assert r.read_file('usr/share/hello/link', 100) == b'a\n'
        assert r.read_file('usr/share/hello/b.txt', 1 << 20) == b'b' * 70000
        assert r.get_xattr('usr/bin/hello', 'user.x') is None
    finally:
        os.close(fd)


@pytest.mark.parametrize('fmt', FORMATS)
def test_confext(tmp_path, fmt):
    need(fmt)
    src = tmp_path / 'src'
    write(str(src / 'etc/site/site.conf'), 'x=1\n')
    res = run(src, tmp_path / 'site.raw', kind='confext', format=fmt, level='2', scope=['system'])
    img = images.Image(name='site', cls='confext', entry='', path='', host_path=str(tmp_path / 'site.raw'), type='raw')
    imagemeta.load(img, None, 'x86-64')
    assert img.release == {'ID': '_any', 'CONFEXT_LEVEL': '2', 'CONFEXT_SCOPE': 'system'} == res.release
    assert img.provides == ('/etc',)


def test_squashfs_owner_and_times(tmp_path):
    need('squashfs')
    if not shutil.which('unsquashfs'):
        pytest.skip('unsquashfs is not installed')
    src = make_src(tmp_path / 'src')
    os.chown(os.path.join(src, 'usr/bin/hello'), 1234, 1234)
    run(src, tmp_path / 'x.raw', source_date_epoch=86400 * 365)
    out = subprocess.run(['unsquashfs', '-lln', str(tmp_path / 'x.raw')], capture_output=True, text=True,
                         check=True, env=dict(os.environ, TZ='UTC')).stdout
    rows = [ln for ln in out.splitlines() if 'squashfs-root' in ln]
    assert len(rows) == 16
    assert all(' 0/0 ' in ln and ' 1971-01-01 00:00 ' in ln for ln in rows), out
    assert any(ln.startswith('-rwxr-xr-x') and ln.endswith('/usr/bin/hello') for ln in rows)
    assert any(ln.startswith('-rw-------') and ln.endswith('/usr/share/hello/b.txt') for ln in rows)


def test_xattrs_only_when_asked(tmp_path):
    need('squashfs')
    src = make_src(tmp_path / 'src')
    try:
        os.setxattr(os.path.join(src, 'usr/bin/hello'), 'user.x', b'1')
    except OSError:
        pytest.skip('no user xattrs on %s' % tmp_path)
    for xattrs, want in ((False, None), (True, b'1')):
        dest = str(tmp_path / ('x-%s.raw' % xattrs))
        run(src, dest, name='x', xattrs=xattrs)
        fd = os.open(dest, os.O_RDONLY)
        try:
            assert imagefs.open_image(fd).get_xattr('usr/bin/hello', 'user.x') == want
        finally:
            os.close(fd)


@pytest.mark.parametrize('fmt', FORMATS)
def test_second_run_changes_nothing_and_reads_no_image(tmp_path, fmt, monkeypatch):
    need(fmt)
    src = make_src(tmp_path / 'src')
    dest = tmp_path / 'out/hello.raw'
    dest.parent.mkdir()
    before = snapshot(src)
    first = run(src, dest, format=fmt)
    assert first.changed and first.built
    st = os.stat(dest)
    assert snapshot(src) == before, 'src is never changed'
    assert listing(dest.parent) == ['hello.raw'], 'no work directory left'
    assert os.getxattr(str(dest), buildfiles.RECORD_XATTR)

    monkeypatch.setattr(build, 'run_tool', lambda *a, **k: pytest.fail('no build when the record matches'))
    again = run(src, dest, format=fmt)
    assert not again.changed and not again.built and again.sha256 == first.sha256 and again.inputs == first.inputs
    monkeypatch.undo()
    st2 = os.stat(dest)
    assert (st2.st_ino, st2.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)

    # Without the record (another tool made it, or no xattrs there): built aside, found identical, kept.
    os.removexattr(str(dest), buildfiles.RECORD_XATTR)
    third = run(src, dest, format=fmt)
    assert third.built and not third.changed and third.sha256 == first.sha256
    st3 = os.stat(dest)
    assert (st3.st_ino, st3.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), 'an identical image is not replaced'
    assert build.read_record(str(dest))['inputs'] == first.inputs, 'the record is renewed'
    forced = run(src, dest, format=fmt, force=True)
    assert forced.built and not forced.changed and os.stat(dest).st_ino == st.st_ino

    # A changed input: rebuilt and replaced.
    write(os.path.join(src, 'usr/share/hello/a.txt'), 'new\n')
    changed = run(src, dest, format=fmt)
    assert changed.changed and changed.sha256 != first.sha256 == third.sha256
    assert sha(dest) == changed.sha256
    assert listing(dest.parent) == ['hello.raw']
    # An option that shapes the image is an input too.
    assert run(src, dest, format=fmt, version='2').changed
    assert not run(src, dest, format=fmt, version='2').changed


def test_a_record_of_another_file_is_ignored(tmp_path):
    need('squashfs')
    src = make_src(tmp_path / 'src')
    dest = tmp_path / 'hello.raw'
    run(src, dest)
    # Someone writes other bytes into the file in place: size/mtime no longer match the record.
    with open(dest, 'r+b') as f:
        f.seek(0, 2)
        f.write(b'\0' * 4096)
    assert build.read_record(str(dest)) is None
    res = run(src, dest)
    assert res.changed and res.built and sha(dest) == res.sha256


@pytest.mark.parametrize('fmt', FORMATS)
def test_check_mode_writes_nothing(tmp_path, fmt):
    need(fmt)
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    dest = out / 'hello.raw'
    res = run(src, dest, format=fmt, check_mode=True)
    assert res.changed and not res.built and res.sha256 is None
    assert res.diff['before'] == '' and 'ID=_any' in res.diff['after']
    assert listing(out) == []
    real = run(src, dest, format=fmt)
    st = os.stat(dest)
    assert not run(src, dest, format=fmt, check_mode=True).changed
    write(os.path.join(src, 'usr/bin/hello'), 'other\n', 0o755)
    check = run(src, dest, format=fmt, check_mode=True, version='9')
    assert check.changed and check.built and check.sha256 != real.sha256
    assert 'IMAGE_VERSION=9' in check.diff['after'] and real.sha256 in check.diff['before']
    assert listing(out) == ['hello.raw'] and sha(dest) == real.sha256
    assert (os.stat(dest).st_ino, os.stat(dest).st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    os.removexattr(str(dest), buildfiles.RECORD_XATTR)
    write(os.path.join(src, 'usr/bin/hello'), FILES[0][1], 0o755)
    same = run(src, dest, format=fmt, check_mode=True)
    assert same.built and not same.changed, 'without a record, check mode compares a build made aside'
    with pytest.raises(OSError):
        os.getxattr(str(dest), buildfiles.RECORD_XATTR)


def fake_tool(tmp_path, body):
    p = tmp_path / 'fake-tool'
    p.write_text('#!/bin/sh\n' + body)
    p.chmod(0o755)
    return str(p)


def test_a_failing_tool_leaves_no_partial_file_and_keeps_the_image(tmp_path, monkeypatch):
    need('squashfs')
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    dest = out / 'hello.raw'
    good = run(src, dest)
    write(os.path.join(src, 'usr/bin/hello'), 'v2\n', 0o755)
    # The tool writes half an image, then fails (as on a full disk).
    tool = fake_tool(tmp_path, 'for a; do last=$a; done\nout=$2\nhead -c 5000 /dev/urandom > "$out"\n'
                               'echo "Write failed because No space left on device" >&2\nexit 1\n')
    real_cmd = build.build_command
    monkeypatch.setattr(build, 'build_command', lambda spec, t, *a: real_cmd(spec, tool, *a))
    with pytest.raises(BuildError, match=r'building .*hello.raw: fake-tool failed \(exit 1\); free space in .*'
                                         r'nothing was replaced. Its output: Write failed because No space left'):
        run(src, dest)
    assert listing(out) == ['hello.raw'] and sha(dest) == good.sha256
    monkeypatch.undo()
    assert run(src, dest).changed


def test_a_failure_after_the_build_leaves_nothing_either(tmp_path, monkeypatch):
    need('squashfs')
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    dest = out / 'hello.raw'

    def boom(*a, **k):
        raise BuildError('veritysetup exploded')
    monkeypatch.setattr(build, 'verity_format', boom)
    monkeypatch.setattr(build, 'find_tool', lambda what: shutil.which(buildtools.TOOLS[what][0]) or '/bin/true')
    with pytest.raises(BuildError, match='exploded'):
        run(src, dest, verity=True)
    assert listing(out) == []


def test_a_release_that_does_not_read_back_is_refused(tmp_path, monkeypatch):
    need('squashfs')
    src = make_src(tmp_path / 'src')
    monkeypatch.setattr(build, 'read_image_release', lambda *a: 'ID=other\n')
    with pytest.raises(BuildError, match='does not carry the release file as written'):
        run(src, tmp_path / 'x.raw')
    assert not os.path.exists(tmp_path / 'x.raw')


def test_work_directories_of_killed_runs_are_removed(tmp_path):
    need('squashfs')
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    dead = subprocess.Popen(['true'])
    dead.wait()
    stale = out / ('.#hello.raw.build-%d-abc' % dead.pid)
    (stale / 'tree').mkdir(parents=True)
    alive = out / ('.#hello.raw.build-%d-xyz' % os.getpid())
    alive.mkdir()
    res = run(src, out / 'hello.raw')
    assert any('interrupted build' in w for w in res.warnings)
    assert listing(out) == sorted(['hello.raw', alive.name]), 'a running build is left alone'


@pytest.mark.parametrize('fmt', FORMATS)
def test_verity_sidecars(tmp_path, fmt):
    need(fmt)
    need('verity')
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    dest = out / 'hello.raw'
    res = run(src, dest, format=fmt, verity=True)
    assert res.changed and res.roothash and len(res.roothash) == 64
    assert listing(out) == ['hello.raw', 'hello.roothash', 'hello.verity']
    assert (out / 'hello.roothash').read_text() == res.roothash + '\n'
    assert res.verity_path == str(out / 'hello.verity') and res.roothash_path == str(out / 'hello.roothash')
    vs = build.find_tool('verity')
    ok = subprocess.run([vs, 'verify', str(dest), str(out / 'hello.verity'), res.roothash], capture_output=True, check=False)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([vs, 'verify', str(dest), str(out / 'hello.verity'), '0' * 64], capture_output=True, check=False)
    assert bad.returncode != 0

    again = run(src, dest, format=fmt, verity=True)
    assert not again.changed and again.roothash == res.roothash and not again.built
    # Reproducible: the same image elsewhere gets the same hash tree and root hash.
    other = tmp_path / 'other'
    other.mkdir()
    res2 = run(src, other / 'hello.raw', format=fmt, verity=True)
    assert res2.roothash == res.roothash and sha(other / 'hello.verity') == sha(out / 'hello.verity')
    # A damaged hash tree is repaired without rebuilding the image.
    with open(out / 'hello.verity', 'r+b') as f:
        f.seek(4096)
        f.write(b'\xff' * 32)
    st = os.stat(dest)
    fixed = run(src, dest, format=fmt, verity=True)
    assert fixed.changed and not fixed.built and os.stat(dest).st_ino == st.st_ino
    assert sha(out / 'hello.verity') == sha(other / 'hello.verity')
    # verity: false removes the sidecars, which would not match another image.
    off = run(src, dest, format=fmt)
    assert off.changed and sorted(off.removed) == [str(out / 'hello.roothash'), str(out / 'hello.verity')]
    assert listing(out) == ['hello.raw'] and off.roothash is None
    assert not run(src, dest, format=fmt).changed
    # A new image replaces stale sidecars of an old one.
    on = run(src, dest, format=fmt, verity=True)
    assert on.changed and on.roothash == res.roothash
    write(os.path.join(src, 'usr/bin/hello'), 'v2\n', 0o755)
    new = run(src, dest, format=fmt, verity=True)
    assert new.changed and new.roothash != res.roothash
    assert (out / 'hello.roothash').read_text().strip() == new.roothash
    assert listing(out) == ['hello.raw', 'hello.roothash', 'hello.verity']


def test_verity_check_mode(tmp_path):
    need('squashfs')
    need('verity')
    src = make_src(tmp_path / 'src')
    dest = tmp_path / 'hello.raw'
    run(src, dest)
    res = run(src, dest, verity=True, check_mode=True)
    assert res.changed and not os.path.exists(tmp_path / 'hello.verity')


def test_a_full_disk_while_staging_leaves_nothing(tmp_path, monkeypatch):
    need('squashfs')
    src = make_src(tmp_path / 'src')
    out = tmp_path / 'out'
    out.mkdir()
    good = run(src, out / 'hello.raw')
    write(os.path.join(src, 'usr/bin/hello'), 'v2\n', 0o755)
    real_stage = build.stage

    def full(entries, s, dst, *_holes):
        real_stage(entries[:3], s, dst)     # part of the copy is made, then the disk is full
        raise OSError(errno.ENOSPC, 'No space left on device', os.path.join(dst, entries[3].rel))
    monkeypatch.setattr(build, 'stage', full)
    with pytest.raises(BuildError, match=r'cannot copy .*src into the staging directory .*: No space left on device '
                                         r'\(\d+ bytes free there\); nothing was replaced'):
        run(src, out / 'hello.raw')
    assert listing(out) == ['hello.raw'] and sha(out / 'hello.raw') == good.sha256


def test_what_is_read_only_through_a_mount_is_said(tmp_path):
    need('squashfs')
    src = make_src(tmp_path / 'src')
    assert not [w for w in run(src, tmp_path / 'g.raw').warnings if 'read-only mount' in w]
    assert not [w for w in run(src, tmp_path / 'l.raw', compression='lz4').warnings if 'read-only mount' in w]
    warn = [w for w in run(src, tmp_path / 'z.raw', compression='zstd').warnings if 'read-only mount' in w]
    assert warn and 'only as root' in warn[0] and 'gzip, xz, lzma, lz4' in warn[0], warn


class _Module:
    """What module_result uses of AnsibleModule: fail_json ends the task, warn, _diff."""

    class Failed(Exception):
        pass

    def __init__(self, diff):
        self._diff = diff
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)

    def fail_json(self, **kw):
        raise self.Failed(kw)


def test_module_result_turns_errors_warnings_and_diff_into_the_task_result():
    opts = Options(src='/src', dest='/out/foo.raw')

    def broken(_opts):
        raise BuildError('the tree /src has no release file: add usr/lib/extension-release.d/extension-release.foo')
    with pytest.raises(_Module.Failed) as e:
        build.module_result(_Module(False), broken, opts, 'path')
    assert e.value.args[0] == {'msg': 'the tree /src has no release file: add usr/lib/extension-release.d/'
                                      'extension-release.foo', 'changed': False, 'path': '/out/foo.raw'}

    def full(_opts):
        raise OSError(errno.ENOSPC, 'No space left on device', '/out/.foo.tmp')
    with pytest.raises(_Module.Failed) as e:
        build.module_result(_Module(False), full, opts, 'dest')
    assert e.value.args[0] == {'msg': '/out/.foo.tmp: No space left on device', 'changed': False, 'dest': '/out/foo.raw'}

    def built(_opts):
        return build.Result(changed=True, path='/out/foo.raw', warnings=['sparse'], diff={'after': 'sha256 abc\n'})
    module = _Module(True)
    res = build.module_result(module, built, opts, 'path')
    assert module.warnings == ['sparse']
    assert res['changed'] and res['path'] == '/out/foo.raw'
    assert res['diff'] == {'before_header': '/out/foo.raw', 'after_header': '/out/foo.raw', 'before': '', 'after': 'sha256 abc\n'}
    assert 'diff' not in build.module_result(_Module(False), built, opts, 'path')
