# -*- coding: utf-8 -*-
"""refresh.py decisions that need no mounts: atomic mode, unsupported options, reload, record."""

import os

import pytest

from ansible_collections.tucked.sysext.plugins.module_utils import engine, imagecheck, images, refresh, state, units


def test_atomic_auto_uses_beneath_when_the_kernel_has_it(monkeypatch):
    monkeypatch.setattr(refresh, 'kernel_can_tuck', lambda: (True, 'available'))
    out = refresh.Outcome()
    assert refresh._atomic_mode(refresh.Options(atomic='auto'), out) is True
    assert out.warnings == []


def test_atomic_auto_falls_back_with_a_warning(monkeypatch):
    monkeypatch.setattr(refresh, 'kernel_can_tuck', lambda: (False, 'kernel 6.1 lacks MOVE_MOUNT_BENEATH'))
    out = refresh.Outcome()
    assert refresh._atomic_mode(refresh.Options(atomic='auto'), out) is False
    assert any('not be atomic' in w and '6.1' in w for w in out.warnings)


def test_atomic_required_fails_before_touching_anything(monkeypatch):
    monkeypatch.setattr(refresh, 'kernel_can_tuck', lambda: (False, 'kernel 6.1 lacks MOVE_MOUNT_BENEATH'))
    with pytest.raises(engine.EngineError, match='atomic=required.*nothing was changed'):
        refresh._atomic_mode(refresh.Options(atomic='required'), refresh.Outcome())


def test_atomic_required_cannot_be_met_by_systemd():
    with pytest.raises(engine.EngineError, match='backend=systemd'):
        refresh._atomic_mode(refresh.Options(atomic='required', backend='systemd'), refresh.Outcome())


def test_atomic_never(monkeypatch):
    monkeypatch.setattr(refresh, 'kernel_can_tuck', lambda: (True, 'available'))
    assert refresh._atomic_mode(refresh.Options(atomic='never'), refresh.Outcome()) is False


def test_unknown_mutable_mode_is_refused_early(tmp_path):
    with pytest.raises(refresh.UnsupportedOption, match="unknown mutable mode 'maybe'"):
        refresh.run(refresh.Options(root=str(tmp_path), mutable='maybe'))


def test_no_service_manager_for_other_roots(tmp_path):
    assert units.live(str(tmp_path)) is False


def _merged_root(tmp_path):
    root = tmp_path / 'root'
    (root / 'usr/lib').mkdir(parents=True)
    (root / 'usr/lib/os-release').write_text('ID=debian\n')
    meta = root / 'usr/.systemd-sysext'
    meta.mkdir()
    st = os.stat(root / 'usr')
    (meta / 'dev').write_text('%d:%d\n' % (os.major(st.st_dev), os.minor(st.st_dev)))
    (meta / 'extensions').write_text('foo\n')
    return root


@pytest.mark.usefixtures('simulated_merge')
def test_record_gives_systemd_252_merges_an_origin(tmp_path):
    root = _merged_root(tmp_path)
    before = state.read_hierarchy(str(root), '/usr', 'sysext', mounts=[])
    assert before.merged_by == 'systemd' and before.origin is None
    doc = {'mutable': {'mode': 'no'}, 'extensions': {'foo': {'path': '/var/lib/extensions/foo'}}}
    state.write_record(str(root), 'sysext', [before], doc)
    after = state.read_hierarchy(str(root), '/usr', 'sysext', mounts=[])
    assert after.origin == doc and after.origin_source == 'record'
    state.drop_record(str(root), 'sysext')
    assert state.read_hierarchy(str(root), '/usr', 'sysext', mounts=[]).origin is None


def test_record_of_another_overlay_is_ignored(tmp_path):
    root = _merged_root(tmp_path)
    hs = state.read_hierarchy(str(root), '/usr', 'sysext', mounts=[])
    hs.mount_id = (hs.mount_id or 0) + 1        # a later overlay that reused the same dev
    state.write_record(str(root), 'sysext', [hs], {'mutable': {'mode': 'no'}, 'extensions': {}})
    assert state.read_hierarchy(str(root), '/usr', 'sysext', mounts=[]).origin is None


@pytest.mark.usefixtures('simulated_merge')
def test_corrupt_record_is_a_problem_not_a_crash(tmp_path):
    root = _merged_root(tmp_path)
    rec = root / state.RECORD_FILE.lstrip('/').replace('%s', 'sysext')
    rec.parent.mkdir(parents=True)
    rec.write_text('{"hierarchies": ')
    hs = state.read_hierarchy(str(root), '/usr', 'sysext', mounts=[])
    assert hs.origin is None and any('not valid JSON' in p and str(rec) in p for p in hs.problems)


def test_decide_refuses_foreign_overlays(tmp_path):
    hs = state.HierarchyState(hierarchy='/opt', cls='sysext', host_path='/x/opt', merged=True, merged_by='foreign',
                              problems=['/x/opt is an overlay mount'])
    p = engine.plan('sysext', [hs], [engine.Wanted('foo', {'path': '/p'}, ('/usr',))])
    cs = engine.ClassSnapshot(cls='sysext', discovery=None, hierarchies=[hs], wanted=[], plan=p)
    snap = engine.Snapshot(root=str(tmp_path), host=None, classes={'sysext': cs}, kernel={})
    with pytest.raises(engine.EngineError, match='/x/opt: a foreign overlay'):
        refresh._decide(snap, refresh.Options(), refresh.Outcome())


def test_escape_layer():
    from ansible_collections.tucked.sysext.plugins.module_utils import apply
    assert apply.escape_layer('/a:b,c\\d') == '/a\\:b\\,c\\\\d'


class _Ran:
    def __init__(self):
        self.cmds = []

    def __call__(self, cmd, **kw):
        self.cmds.append(cmd)

        class R:
            returncode = 0
            stdout = stderr = ''
        return R()


def test_reload_on_a_systemd_host_when_an_extension_asks(monkeypatch, tmp_path):
    ran = _Ran()
    monkeypatch.setattr(refresh.shutil, 'which', lambda name: '/usr/bin/' + name)
    monkeypatch.setattr(units.subprocess, 'run', ran)
    opts = refresh.Options(root=str(tmp_path), classes=('sysext',))
    out = refresh.Outcome()
    assert refresh._reload(str(tmp_path), opts, out, [('x', {'EXTENSION_RELOAD_MANAGER': '1'})]) is True
    assert ran.cmds == [['/usr/bin/systemctl', 'daemon-reload']]
    assert out.units == {'restarted': [], 'reloaded_or_restarted': [], 'stopped': []}
    # nothing merged before or after asks for it: no reload (as systemd-sysext 262)
    ran.cmds.clear()
    assert refresh._reload(str(tmp_path), opts, refresh.Outcome(), [('x', {'ID': '_any'})]) is False
    assert ran.cmds == []


def test_no_service_manager_without_systemd_as_pid1(monkeypatch):
    monkeypatch.setattr(units.os.path, 'isdir', lambda p: False)
    assert units.live('/') is False


def test_no_reload_when_nothing_changed(tmp_path, monkeypatch):
    (tmp_path / 'usr/lib').mkdir(parents=True)
    (tmp_path / 'usr/lib/os-release').write_text('ID=debian\n')
    called = []
    monkeypatch.setattr(refresh, '_reload', lambda root, opts, out, before: called.append(root) or True)
    out = refresh.run(refresh.Options(root=str(tmp_path)))
    assert out.changed is False and out.reloaded is False and called == []
    assert out.skipped_reason == 'no change was found'


def _plain_root(tmp_path, os_release='ID=debian\nVERSION_ID=13\n'):
    root = tmp_path / 'root'
    (root / 'usr/lib').mkdir(parents=True)
    (root / 'etc').mkdir()
    if os_release is not None:
        (root / 'usr/lib/os-release').write_text(os_release)
    return root


def _ext(root, name, text, sdir='var/lib/extensions'):
    rel = root / sdir / name / 'usr/lib/extension-release.d'
    rel.mkdir(parents=True)
    (rel / ('extension-release.' + name)).write_text(text)
    (root / sdir / name / 'usr/share').mkdir()


def test_refused_extensions_are_skipped_with_a_warning_naming_the_field(tmp_path):
    root = _plain_root(tmp_path)
    _ext(root, 'old', 'ID=debian\nVERSION_ID=12\n')
    _ext(root, 'arm', 'ID=_any\nARCHITECTURE=%s\n' % ('arm64' if os.uname().machine != 'aarch64' else 'x86-64'))
    out = refresh.run(refresh.Options(root=str(root), classes=('sysext',), check_mode=True))
    assert not out.changed and out.classes['sysext']['action'] == 'none'
    old = [w for w in out.warnings if 'var/lib/extensions/old' in w]
    arm = [w for w in out.warnings if 'var/lib/extensions/arm' in w]
    assert len(old) == 1 and 'not merging' in old[0] and 'VERSION_ID=12' in old[0] and 'VERSION_ID=13' in old[0]
    assert len(arm) == 1 and 'ARCHITECTURE=' in arm[0]


def test_merge_refuses_a_root_without_id_even_with_nothing_to_merge(tmp_path):
    root = _plain_root(tmp_path, 'VERSION_ID=13\n')
    with pytest.raises(engine.EngineError, match='has no ID'):
        refresh.run(refresh.Options(root=str(root), classes=('sysext',), check_mode=True))


def test_unmerge_needs_no_os_release(tmp_path):
    root = _plain_root(tmp_path, None)
    _ext(root, 'any', 'ID=_any\n')
    with pytest.raises(engine.EngineError, match='no os-release'):
        refresh.run(refresh.Options(root=str(root), classes=('sysext',), check_mode=True))
    out = refresh.run(refresh.Options(root=str(root), classes=('sysext',), state='unmerged', check_mode=True))
    assert not out.changed and out.warnings == []


def _verity_image(tmp_path):
    img = tmp_path / 'vv.raw'
    img.write_bytes(b'x')
    (tmp_path / 'vv.verity').write_bytes(b'v')
    (tmp_path / 'vv.roothash').write_text('ab' * 32)
    return images.Image(name='vv', cls='sysext', entry='/var/lib/extensions/vv.raw',
                        path='/var/lib/extensions/vv.raw', host_path=str(img), type='raw', fstype='squashfs')


def test_verity_without_device_mapper_fails_the_merge(tmp_path):
    img = _verity_image(tmp_path)
    assert imagecheck.check(img, 'sysext', None, False, dm=False)
    assert 'protected by dm-verity (the verity data beside it), and this kernel (%s) has no device-mapper' \
        % os.uname().release in img.fatal
    assert img.verity_hash == 'ab' * 32 and img.protection == 'verity'


def test_device_mapper_is_what_the_kernel_offers(tmp_path, monkeypatch):
    misc = tmp_path / 'misc'
    real_open = open

    def fake_open(path, *a, **kw):
        return real_open(misc if path == '/proc/misc' else path, *a, **kw)
    monkeypatch.setattr('builtins.open', fake_open)
    mods = tmp_path / 'modules'
    monkeypatch.setattr(imagecheck, 'MODULE_DIRS', (str(mods),))
    misc.write_text(' 63 vga_arbiter\n236 device-mapper\n')
    assert imagecheck.device_mapper()
    misc.write_text(' 63 vga_arbiter\n183 hw_random\n')
    assert not imagecheck.device_mapper()          # (a /dev/mapper/control node would not change that)
    md = mods / os.uname().release / 'kernel' / 'drivers' / 'md'
    md.mkdir(parents=True)
    (md / 'dm-mod.ko.xz').write_bytes(b'')
    assert imagecheck.device_mapper()              # loaded on demand


def test_verity_with_device_mapper_is_planned(tmp_path):
    img = _verity_image(tmp_path)
    assert not imagecheck.check(img, 'sysext', None, False, dm=True)
    assert img.verity_plan.roothash == 'ab' * 32 and img.verity_plan.hash_tree == str(tmp_path / 'vv.verity')
    assert not img.verity_plan.signature_required
    (tmp_path / 'vv.roothash.p7s').write_bytes(b's')
    assert not imagecheck.check(img, 'sysext', None, False, dm=True)
    assert img.protection == 'signed' and img.verity_plan.signature == str(tmp_path / 'vv.roothash.p7s')


def test_a_root_hash_alone_is_recorded_but_protects_nothing(tmp_path):
    img = _verity_image(tmp_path)
    os.unlink(tmp_path / 'vv.verity')
    assert not imagecheck.check(img, 'sysext', None, False, dm=False)
    assert img.protection == 'unprotected' and img.verity_hash == 'ab' * 32 and img.verity_plan is None
