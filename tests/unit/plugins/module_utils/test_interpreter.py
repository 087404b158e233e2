# -*- coding: utf-8 -*-
"""interpreter.py: where the running interpreter lies, which extension provides it, and which
changes of sysext_refresh and sysext_image are refused for it (merges simulated, no mounts)."""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', '..'))
from lib import gptimage  # noqa: E402 pylint: disable=wrong-import-position

from ansible_collections.tucked.sysext.plugins.module_utils import engine, interpreter, origin, refresh, store
from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import gpt
from ansible_collections.tucked.sysext.plugins.module_utils.imagefs import image as imagefs

PREFIX = 'usr/lib/tucked-sysext/python'
EXE = PREFIX + '/bin/python3'
REAL = PREFIX + '/bin/python3.11'
RELEASE = 'usr/lib/extension-release.d/extension-release.'


def python_tree(path, name='tucked-python', version='1', with_python=True):
    """An extension tree: the release file, and (with_python) an interpreter under PREFIX."""
    os.makedirs(os.path.join(path, 'usr/lib/extension-release.d'), exist_ok=True)
    with open(os.path.join(path, RELEASE + name), 'w') as f:
        f.write('ID=_any\nIMAGE_VERSION=%s\n' % version)
    os.makedirs(os.path.join(path, 'usr/share', name), exist_ok=True)
    with open(os.path.join(path, 'usr/share', name, 'VERSION'), 'w') as f:
        f.write(version)
    if with_python:
        os.makedirs(os.path.join(path, PREFIX, 'bin'))
        with open(os.path.join(path, REAL), 'w') as f:
            f.write('#!binary\n')
        os.symlink('python3.11', os.path.join(path, EXE))
    return str(path)


class Host:
    """A scratch root whose /usr looks merged (metadata as systemd writes it, the merged files
    copied into ROOT/usr), with directory extensions kept in ROOT/store and selected by symlinks
    in ROOT/var/lib/extensions."""

    def __init__(self, tmp_path):
        self.root = tmp_path / 'root'
        for d in ('usr/lib', 'etc', 'opt', 'var/lib/extensions', 'store', 'run'):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / 'usr/lib/os-release').write_text('ID=debian\nVERSION_ID=12\n')
        os.symlink('../usr/lib/os-release', self.root / 'etc/os-release')

    def p(self, rel):
        return str(self.root / rel)

    def add(self, name, version='1', with_python=False, select=True):
        tree = python_tree(self.p('store/%s-%s' % (name, version)), name, version, with_python)
        if select:
            self.select(name, version)
        return tree

    def select(self, name, version):
        link = self.p('var/lib/extensions/' + name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink('../../../store/%s-%s' % (name, version), link)

    def merge(self):
        """Record what is selected now as merged, and show its interpreter in ROOT/usr."""
        names, recs = [], {}
        for entry in sorted(os.listdir(self.p('var/lib/extensions'))):
            host = os.path.realpath(self.p('var/lib/extensions/' + entry))
            name = entry[:-len('.raw')] if entry.endswith('.raw') else entry
            recs[name] = origin.compute(host, '/' + os.path.relpath(host, self.p('')))
            names.append(name)
            if os.path.isfile(host) or os.path.lexists(os.path.join(host, REAL)):
                # (the files of an image are not copied: an interpreter is shown in any case)
                os.makedirs(self.p(PREFIX + '/bin'), exist_ok=True)
                with open(self.p(REAL), 'w') as f:
                    f.write('#!binary\n')
                if not os.path.lexists(self.p(EXE)):
                    os.symlink('python3.11', self.p(EXE))
        meta = self.root / 'usr/.systemd-sysext'
        meta.mkdir(exist_ok=True)
        st = os.stat(self.p('usr'))
        (meta / 'dev').write_text('%d:%d\n' % (os.major(st.st_dev), os.minor(st.st_dev)))
        (meta / 'extensions').write_text(''.join(n + '\n' for n in names))
        (meta / 'origin').write_text(origin.dumps(origin.document('no', recs)))

    def snap(self):
        return engine.gather(self.p(''), ('sysext',), cache='off')

    @property
    def exe(self):
        return self.p(EXE)


@pytest.fixture
def host(tmp_path):
    return Host(tmp_path)


@pytest.fixture
def reads(monkeypatch):
    """The image lookups made (extension names), counted."""
    seen = []
    real = interpreter.provides

    def counting(p, *a):
        seen.append(p.name)
        return real(p, *a)
    monkeypatch.setattr(interpreter, 'provides', counting)
    return seen


pytestmark = pytest.mark.usefixtures('simulated_merge')


# ---------------------------------------------------------------------------- locate
def test_locate_resolves_the_executable_inside_the_root(host):
    host.add('tucked-python', with_python=True)
    host.merge()
    it = interpreter.locate(host.p(''), ('sysext', 'confext'), host.exe)
    assert (it.cls, it.hierarchy, it.inpath) == ('sysext', '/usr', '/' + REAL)
    assert it.path == host.p(REAL) and it.executable == host.exe
    assert it.shown() == '%s (%s)' % (host.exe, host.p(REAL))


def test_locate_ignores_interpreters_outside_the_root_and_other_classes(host, tmp_path):
    assert interpreter.locate(host.p(''), ('sysext',), str(tmp_path / 'elsewhere/usr/bin/python3')) is None
    assert interpreter.locate(host.p(''), ('confext',), host.p('usr/bin/python3')) is None
    assert interpreter.locate(host.p(''), ('sysext',), '') is None
    assert interpreter.locate(host.p(''), ('confext',), host.p('etc/py')).hierarchy == '/etc'


def test_locate_follows_opt_as_a_symlink_inside_the_root(host):
    shutil.rmtree(host.p('opt'))
    os.makedirs(host.p('var/opt/py/bin'))
    os.symlink('var/opt', host.p('opt'))
    it = interpreter.locate(host.p(''), ('sysext',), host.p('opt/py/bin/python3'))
    assert (it.hierarchy, it.inpath) == ('/opt', '/opt/py/bin/python3')


# ---------------------------------------------------------------------------- provides
def test_tree_has_walks_like_overlayfs(tmp_path):
    tree = python_tree(tmp_path / 't')
    os.symlink('/', os.path.join(tree, 'usr/lib/host'))          # would lead out of the extension
    os.symlink(PREFIX.split('/', 1)[1], os.path.join(tree, 'usr/alias'))
    with imagefs.open_directory(tree) as t:
        assert interpreter.tree_has(t, '/' + REAL) and interpreter.tree_has(t, '/' + EXE)   # a symlink itself counts
        assert not interpreter.tree_has(t, '/usr/lib/tucked-sysext/python/bin/python9')
        assert not interpreter.tree_has(t, '/usr/lib/host/usr/lib/os-release'), 'no symlink followed on the way'
        assert not interpreter.tree_has(t, '/usr/alias/bin/python3.11')
        assert not interpreter.tree_has(t, '/' + REAL + '/x'), 'a file is no directory'


@pytest.mark.parametrize('fs,comp', [('squashfs', None), ('squashfs', 'zstd'), ('erofs', None), ('erofs', 'lz4hc')])
def test_provides_reads_image_files(tmp_path, build_image, fs, comp):
    with_py = build_image(python_tree(tmp_path / 'a'), tmp_path / 'a.raw', fs, comp)
    without = build_image(python_tree(tmp_path / 'b', with_python=False), tmp_path / 'b.raw', fs, comp)
    for path, want in ((with_py, True), (without, False)):
        p = interpreter.Provider('tucked-python', 'raw', path)
        assert interpreter.provides(p, '/' + REAL, 'sysext', 'x86-64') is want, (fs, comp, path)


def test_provides_reads_a_ddi_with_a_usr_partition(tmp_path):
    import subprocess
    tree = python_tree(tmp_path / 't')
    usr = tmp_path / 'usr.erofs'
    subprocess.run(['mkfs.erofs', '--quiet', '--all-root', str(usr), os.path.join(tree, 'usr')], check=True,
                   capture_output=True)
    img = tmp_path / 'tucked-python.raw'
    gptimage.write(str(img), [gptimage.Part(gpt.TYPES['x86-64'][1], 'usr-x86-64', usr.read_bytes())])
    p = interpreter.Provider('tucked-python', 'raw', str(img))
    assert interpreter.provides(p, '/' + REAL, 'sysext', 'x86-64') is True
    assert interpreter.provides(p, '/usr/bin/python3', 'sysext', 'x86-64') is False


def test_provides_raises_on_an_unreadable_image(tmp_path):
    (tmp_path / 'junk.raw').write_bytes(b'\0' * 8192)
    with pytest.raises(imagefs.ImageError):
        interpreter.provides(interpreter.Provider('x', 'raw', str(tmp_path / 'junk.raw')), '/' + REAL, 'sysext', 'x86-64')
    with pytest.raises(OSError):
        interpreter.provides(interpreter.Provider('x', 'directory', str(tmp_path / 'gone')), '/' + REAL, 'sysext', 'x')


# ---------------------------------------------------------------------------- sysext_refresh
def _refusal(host, actions):
    return interpreter.refresh_refusal(host.snap(), actions, host.exe)


def test_unmerge_is_refused_naming_the_interpreter_and_the_extension(host):
    host.add('foo')
    host.add('tucked-python', with_python=True)
    host.merge()
    r = _refusal(host, {'sysext': 'unmerge'})
    assert r.msg.startswith('refusing to unmerge %s: this task runs on the interpreter %s (%s)'
                            % (host.p('usr'), host.exe, host.p(REAL))), r.msg
    assert 'the sysext tucked-python provides it there (%s)' % host.p('store/tucked-python-1') in r.msg
    assert 'Nothing was changed' in r.msg and 'leave /usr merged (classes: [confext]' in r.msg
    assert 'ansible_python_interpreter' in r.msg and 'force: true' in r.msg
    assert r.details == {'executable': host.exe, 'path': host.p(REAL), 'hierarchy': '/usr', 'class': 'sysext',
                         'extensions': ['tucked-python'], 'image': host.p('store/tucked-python-1')}
    assert 'unmerging' in r.forced and 'tucked-python' in r.forced


def test_refresh_keeping_every_extension_reads_no_image(host, reads):
    host.add('tucked-python', with_python=True)
    host.merge()
    host.add('bar')                                   # a second extension: tucked-python stays as it is
    snap = host.snap()
    assert snap.classes['sysext'].plan.action == 'refresh'
    assert interpreter.refresh_refusal(snap, {'sysext': 'refresh'}, host.exe) is None
    assert reads == [], 'decided from the origins alone'


def test_refresh_without_the_extension_is_refused(host, reads):
    host.add('foo')
    host.add('tucked-python', with_python=True)
    host.merge()
    os.unlink(host.p('var/lib/extensions/tucked-python'))    # no longer selected; its image is still there
    r = _refusal(host, {'sysext': 'refresh'})
    assert r.msg.startswith('refusing to refresh %s' % host.p('usr'))
    assert 'tucked-python is no longer in the search path' in r.msg
    assert 'keep tucked-python in a search directory (/etc/extensions, /run/extensions, /var/lib/extensions)' in r.msg
    assert r.details['image'] == host.p('store/tucked-python-1')
    assert reads == ['tucked-python', 'foo'], 'the image merged now, then what stays'


def test_refresh_to_a_version_without_the_interpreter_is_refused(host):
    host.add('tucked-python', with_python=True)
    host.merge()
    host.add('tucked-python', version='2', with_python=False)
    r = _refusal(host, {'sysext': 'refresh'})
    assert 'tucked-python would be merged from an image that lacks it' in r.msg, r.msg
    assert r.details['image'] == host.p('store/tucked-python-1'), 'the image merged now provides it'


def test_refresh_to_a_version_with_the_interpreter_goes_ahead(host, reads):
    host.add('tucked-python', with_python=True)
    host.merge()
    host.add('tucked-python', version='2', with_python=True)
    assert _refusal(host, {'sysext': 'refresh'}) is None
    assert reads == ['tucked-python', 'tucked-python'], 'the old image, then the new one'


def test_another_extension_providing_it_is_enough(host):
    host.add('tucked-python', with_python=True)
    host.add('other-python', with_python=True)
    host.merge()
    os.unlink(host.p('var/lib/extensions/tucked-python'))
    assert _refusal(host, {'sysext': 'refresh'}) is None


def test_a_deleted_image_leaves_the_decision_to_the_base_tree(host, monkeypatch):
    host.add('tucked-python', with_python=True)
    host.merge()
    shutil.rmtree(host.p('store/tucked-python-1'))
    os.unlink(host.p('var/lib/extensions/tucked-python'))
    asked = []
    monkeypatch.setattr(interpreter, 'base_has', lambda root, it: asked.append(it.inpath) or False)
    r = _refusal(host, {'sysext': 'refresh'})
    assert asked == ['/' + REAL]
    assert 'it comes from tucked-python, whose image cannot be read any more (/store/tucked-python-1), and the base ' \
           'tree below the overlay lacks it' in r.msg and r.details['image'] is None
    monkeypatch.setattr(interpreter, 'base_has', lambda root, it: True)
    assert _refusal(host, {'sysext': 'refresh'}) is None


def test_an_interpreter_of_the_base_tree_is_not_an_extensions_business(host, reads):
    host.add('foo')
    host.add('tucked-python', with_python=True)
    host.merge()
    os.makedirs(host.p('usr/bin'))
    with open(host.p('usr/bin/python3.11'), 'w') as f:
        f.write('base\n')
    assert interpreter.refresh_refusal(host.snap(), {'sysext': 'unmerge'}, host.p('usr/bin/python3.11')) is None
    assert sorted(reads) == ['foo', 'tucked-python'], 'only the extensions that go are read'


def test_not_merged_or_outside_the_root_is_never_refused(host, tmp_path, reads):
    host.add('tucked-python', with_python=True)
    snap = host.snap()
    assert interpreter.refresh_refusal(snap, {'sysext': 'merge'}, host.exe) is None
    host.merge()
    assert interpreter.refresh_refusal(host.snap(), {'sysext': 'unmerge'}, str(tmp_path / 'python3')) is None
    assert interpreter.refresh_refusal(host.snap(), {'confext': 'unmerge'}, host.exe) is None
    assert reads == []


def test_run_refuses_before_anything_is_changed(host, monkeypatch):
    host.add('tucked-python', with_python=True)
    host.merge()
    monkeypatch.setattr(sys, 'executable', host.exe)
    before = sorted(os.listdir(host.p('usr/.systemd-sysext')))
    for check_mode in (True, False):
        with pytest.raises(refresh.InterpreterInUse, match='refusing to unmerge') as e:
            refresh.run(refresh.Options(root=host.p(''), classes=('sysext',), state='unmerged', check_mode=check_mode))
        assert e.value.details['extensions'] == ['tucked-python']
    assert sorted(os.listdir(host.p('usr/.systemd-sysext'))) == before
    # nothing to do: nothing refused
    out = refresh.run(refresh.Options(root=host.p(''), classes=('sysext',), check_mode=True))
    assert out.changed is False


# ---------------------------------------------------------------------------- sysext_image
@pytest.fixture
def stored(host, make_tree, build_image, tmp_path, monkeypatch):
    """tucked-python 1 (with the interpreter) stored and selected by sysext_image, merged."""
    monkeypatch.setattr(sys, 'executable', host.exe)

    def put(version, with_python=True, state='selected', keep=2):
        img = build_image(python_tree(tmp_path / ('tree-%s' % version), version=version, with_python=with_python),
                          tmp_path / ('tp-%s.raw' % version))
        return store.ensure(store.Options(name='tucked-python', version=version, src=img, root=host.p(''),
                                          state=state, keep=keep, link_dir='/var/lib/extensions'))
    put('1')
    host.merge()
    return put


def _absent(host, **kw):
    return store.ensure(store.Options(name='tucked-python', state='absent', root=host.p(''),
                                      link_dir='/var/lib/extensions', **kw))


def test_absent_is_refused_for_the_interpreters_extension(host, stored):
    for check_mode in (True, False):
        with pytest.raises(store.InterpreterInUse, match='refusing to remove sysext tucked-python: this task runs on '
                                                         'the interpreter %s' % host.exe) as e:
            _absent(host, check_mode=check_mode)
    assert e.value.details['image'] == host.p('opt/extensions/tucked-python/tucked-python-1.raw')
    assert 'force: true' in str(e.value) and 'sysext_remove' in str(e.value)
    assert os.path.exists(host.p('opt/extensions/tucked-python/tucked-python-1.raw'))
    assert os.path.lexists(host.p('var/lib/extensions/tucked-python.raw'))


def test_absent_with_force_removes_it_with_a_warning(host, stored):
    res = _absent(host, force=True)
    assert res.changed and res.versions == [] and not os.path.lexists(host.p('var/lib/extensions/tucked-python.raw'))
    assert any(w.startswith('force: true: removing sysext tucked-python') for w in res.warnings)


def test_removing_an_older_version_than_the_one_merged_is_allowed(host, stored):
    stored('2')
    host.merge()                                     # 2 is merged now; 1 is only kept for rollback
    res = store.ensure(store.Options(name='tucked-python', version='1', state='absent', root=host.p(''),
                                     link_dir='/var/lib/extensions'))
    assert res.changed and res.versions == ['2']


def test_removing_a_version_that_is_not_merged_is_allowed(host, stored):
    stored('2', with_python=False)                  # selected, not merged yet (1 is), lacks the interpreter
    stored('3', with_python=False, state='present')
    res = store.ensure(store.Options(name='tucked-python', version='3', state='absent', root=host.p(''),
                                     link_dir='/var/lib/extensions'))
    assert res.changed and res.versions == ['1', '2'], 'the image merged now (1) stays: the refresh decides later'


def test_prune_never_removes_the_selected_version_and_keeps_the_merged_provider(host, stored):
    res = stored('2', with_python=False, keep=0)     # 1 is merged and holds the interpreter, 2 does not
    assert res.selected == '2' and res.versions == ['1', '2'] and res.removed == []
    assert any('kept /opt/extensions/tucked-python/tucked-python-1.raw beyond keep=0' in w for w in res.warnings)
    res = stored('3', with_python=True, keep=0)      # 3 holds it: 1 (merged) and 2 may go
    assert res.selected == '3' and res.versions == ['3']


def test_other_extensions_are_removed_as_before(host, stored, build_image, tmp_path):
    img = build_image(python_tree(tmp_path / 'foo', name='foo'), tmp_path / 'foo.raw')
    store.ensure(store.Options(name='foo', version='1', src=img, root=host.p(''), link_dir='/var/lib/extensions'))
    host.merge()
    res = store.ensure(store.Options(name='foo', state='absent', root=host.p(''), link_dir='/var/lib/extensions'))
    assert res.changed and res.warnings == []
