# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""merge / refresh / unmerge: the pipeline behind the sysext_refresh module.

gather -> plan -> (check mode stops here) -> lock -> re-plan -> build -> swap -> reload.
The decision is always ``engine.plan()``'s; two backends do the mount work: ``native``
(apply.py, atomic where the kernel allows) and ``systemd`` (the host's systemd-sysext /
systemd-confext).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field

from . import engine, mountapi, mountinfo, mutable, origin, proc, release, rootfs, state, units
from .version import version_key

ATOMIC_CHOICES = ('auto', 'required', 'never')
BACKENDS = ('native', 'systemd')
TOOLS = {'sysext': 'systemd-sysext', 'confext': 'systemd-confext'}
OVERLAY_ENV = {'sysext': 'SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS', 'confext': 'SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS'}
HELD_SUBMOUNTS = '/run/tucked-sysext/submounts'   # submounts.HELD_DIR (imported only to mount)


class UnsupportedOption(engine.EngineError):
    """A parameter value this release cannot honour; raised before anything is touched."""


class InterpreterInUse(engine.EngineError):
    """The change would remove the interpreter the task runs on; raised before anything is touched.
    ``details``: the interpreter and the extension that provides it (interpreter.Refusal)."""

    def __init__(self, msg: str, details: dict):
        super().__init__(msg)
        self.details = details


@dataclass
class Options:
    root: str = '/'
    classes: tuple = ('sysext', 'confext')
    state: str = 'merged'
    always_refresh: bool = False
    mutable: str | None = None          # None: Mutable= of sysext.conf, else 'no'
    image_policy: str | None = None     # None: ImagePolicy= of sysext.conf, else systemd's default
    reload: bool = True
    atomic: str = 'auto'
    backend: str = 'native'
    check_mode: bool = False
    overlay_options: str | None = None  # None: systemd's defaults (none read-only, mutable.OPTIONS writable)
    legacy_mount: bool = False
    force: bool = False                 # go ahead even when the change removes the task's own interpreter


@dataclass
class Outcome:
    changed: bool = False
    classes: dict = field(default_factory=dict)
    hierarchies: dict = field(default_factory=dict)
    atomic: bool | None = None
    reloaded: bool = False
    units: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    skipped_reason: str | None = None
    warnings: list = field(default_factory=list)
    timing: dict = field(default_factory=dict)
    diff: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        reasons = [dict(r, **{'class': cls}) for cls, c in self.classes.items() for r in c['reasons']]
        return {'changed': self.changed, 'classes': self.classes, 'hierarchies': self.hierarchies,
                'reasons': reasons, 'atomic': self.atomic, 'reloaded': self.reloaded, 'units': self.units,
                'settings': self.settings,
                'skipped_reason': self.skipped_reason, 'timing': self.timing}


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 3)


def _versions(cs: engine.ClassSnapshot) -> dict:
    return {img.name: img.version for img in cs.discovery.images}


def _listing(names, versions) -> str:
    return ''.join('%s %s\n' % (n, versions.get(n) or '-') for n in names)


def kernel_can_tuck() -> tuple[bool | None, str]:
    return mountapi.move_mount_beneath_supported()


def _apply_module():
    """The mount code is imported only when something is to be mounted: the no-change path
    (every play, on every host) compiles and imports as little as possible."""
    from . import apply  # pylint: disable=import-outside-toplevel
    return apply


def run(opts: Options) -> Outcome:
    """Do what ``opts`` asks; raise engine.EngineError (ApplyError for failed changes) with a message."""
    t0 = time.perf_counter()
    out = Outcome()
    if opts.mutable is not None and opts.mutable not in mutable.MODES:
        raise UnsupportedOption('unknown mutable mode %r; use one of %s' % (opts.mutable, ', '.join(mutable.MODES)))
    if not opts.check_mode and _has_held(opts.root):
        _release_held(opts.root, out)    # a run killed while it unmerged left submounts to put back
    merging = opts.state != 'unmerged'
    snap = engine.gather(opts.root, opts.classes, mode=opts.mutable, need_host=merging,
                         image_policy=opts.image_policy, cache='off' if opts.check_mode else 'create')
    if merging:
        _check_host(snap, out)
    out.warnings.extend(engine.warnings_of(snap))
    out.settings = {cls: cs.settings_dict() for cls, cs in snap.classes.items()}
    out.timing['plan_ms'] = _ms(t0)

    todo = _decide(snap, opts, out)
    _keep_interpreter(snap, todo, opts, out)
    if not todo:
        out.skipped_reason = out.skipped_reason or 'no change was found'
        out.timing['total_ms'] = _ms(t0)
        return out
    out.changed = True
    if opts.check_mode:
        out.skipped_reason = 'check mode'
        out.timing['total_ms'] = _ms(t0)
        return out

    # only replacing a merged overlay can leave a gap; merging and unmerging cannot
    replacing = any(out.classes[cls]['action'] == 'refresh' for cls in todo)
    atomic = _atomic_mode(opts, out) if replacing else opts.backend == 'native' and opts.atomic != 'never'
    t1 = time.perf_counter()
    # the units the extensions merged now ask for (read from the merged trees before they go)
    before = _merged_releases(snap, opts) if opts.reload and units.live(snap.root) else None
    apply = _apply_module()
    with apply.Lock(snap.root) as lock:
        fixed = []
        for cls in opts.classes:
            fixed += apply.finish_interrupted_swaps(snap.root, list(state.HIERARCHIES[cls]), (cls,))
        if fixed:
            out.warnings.append('finished the swap of an interrupted earlier run on %s' % ', '.join(fixed))
        if lock.waited or fixed or _remounted_since(snap):
            # another run held the lock and may have made our change: decide again
            snap = engine.gather(opts.root, opts.classes, mode=opts.mutable, image_policy=opts.image_policy,
                                 cache='create')
            out.classes, out.hierarchies, out.diff = {}, {}, {}
            todo = _decide(snap, opts, out)
            _keep_interpreter(snap, todo, opts, out)
            if not todo:
                out.changed = bool(fixed)
                out.skipped_reason = None if fixed else 'another run made the change first'
        # (images changed since the plan are caught in the build: their origin is checked again)
        try:
            _apply_classes(snap, todo, opts, atomic, out)
        except engine.RemountRace as e:
            if e.partial:
                raise
            # another tool's unmount-then-mount: wait for its mount, decide again, retry once
            _wait_mounted(snap, _reached(snap))
            out.warnings.append('%s; retried once' % e)
            snap = engine.gather(opts.root, opts.classes, mode=opts.mutable, image_policy=opts.image_policy,
                                 cache='create')
            out.classes, out.hierarchies, out.diff = {}, {}, {}
            todo = _decide(snap, opts, out)
            _keep_interpreter(snap, todo, opts, out)
            _apply_classes(snap, todo, opts, atomic, out)
            out.changed = out.changed and bool(todo)
    out.timing['apply_ms'] = _ms(t1)
    _report_after(opts, out)
    if out.changed and before is not None:
        out.reloaded = _reload(snap.root, opts, out, before)
    out.timing['total_ms'] = _ms(t0)
    return out


def _has_held(root: str) -> bool:
    try:
        return os.path.isdir(rootfs.inside(os.path.abspath(root), HELD_SUBMOUNTS))
    except OSError:
        return False


def _apply_classes(snap: engine.Snapshot, todo: list, opts: Options, atomic: bool, out: Outcome) -> None:
    for cls in todo:
        if opts.backend == 'systemd':
            _apply_systemd(snap, cls, opts)
            out.atomic = False
        elif _apply_native(snap, cls, opts, atomic, out.warnings):
            out.atomic = atomic if out.atomic is None else (out.atomic and atomic)


REMOUNT_WAIT = 2.0      # seconds: systemd-sysext's gap between unmount and mount is milliseconds


def _merged_paths(snap: engine.Snapshot) -> list:
    return [h.host_path for cs in snap.classes.values() for h in cs.hierarchies if h.merged]


def _reached(snap: engine.Snapshot) -> dict:
    """path -> the mount ID a lookup reaches now, for the hierarchies merged when planned."""
    out = {}
    for p in _merged_paths(snap):
        try:
            out[p] = mountapi.statx(p).mnt_id
        except OSError:
            out[p] = None
    return out


def _wait_mounted(snap: engine.Snapshot, gap: dict) -> None:
    """Until every hierarchy that was merged when planned is a mount point again, with another
    mount than ``gap`` (what it showed in the other tool's gap: the base tree, which may be a
    mount of its own); at most REMOUNT_WAIT."""
    deadline = time.monotonic() + REMOUNT_WAIT
    while time.monotonic() < deadline:
        try:
            if all(mountapi.is_mount_point(p) and mountapi.statx(p).mnt_id != gap.get(p) for p in _merged_paths(snap)):
                return
        except OSError:
            pass
        time.sleep(0.02)


def _release_held(root: str, out: Outcome) -> None:
    apply = _apply_module()
    with apply.Lock(engine.check_root(root)):
        done, problems = apply.submounts.release_held(engine.check_root(root))
    out.warnings.extend(problems)
    if done:
        out.changed = True
        out.warnings.append('put back the submount(s) %s that an interrupted run had held' % ', '.join(done))


def _remounted_since(snap: engine.Snapshot) -> bool:
    """Did another run swap a hierarchy between our plan and our taking the lock? (Unique
    mount IDs are never reused: one statx per hierarchy tells.)"""
    for cs in snap.classes.values():
        for h in cs.hierarchies:
            try:
                now = mountapi.statx(h.host_path).mnt_id
            except OSError:
                now = None
            if now != h.mount_id:
                return True
    return False


def _check_host(snap: engine.Snapshot, out: Outcome) -> None:
    """Like systemd-sysext 262's merge and refresh: a root whose os-release has no ID is an
    error (even with no extension to merge), and so is an image file it cannot read or that
    its image policy refuses; each extension refused by the matching is skipped, with a
    warning naming it and the field that does not match."""
    why = release.missing_id(snap.host, snap.root)
    if why:
        raise engine.EngineError(why)
    broken = [why for cs in snap.classes.values() for why in cs.discovery.fatal]
    if broken:
        raise engine.EngineError('nothing was changed: %s' % '; '.join(broken))
    fatal = [img for cs in snap.classes.values() for img in cs.discovery.images if img.fatal]
    if fatal:
        shared = all(img.fatal_shared for img in fatal)
        raise engine.EngineError('nothing was changed: %s%s. Fix or remove the image, or choose another image_policy'
                                 % ('; '.join(img.fatal for img in fatal),
                                    ' (systemd-sysext 262 fails its whole merge on such an image too)' if shared else ''))
    for cs in snap.classes.values():
        for img in cs.discovery.images:
            if img.readable and not img.compatible and img.reason not in cs.warnings:
                out.warnings.append('not merging %s: %s' % (rootfs.host_path(snap.root, img.entry), img.reason))


def _decide(snap: engine.Snapshot, opts: Options, out: Outcome) -> list:
    """Classes that need work; fills the per-class and per-hierarchy report."""
    todo = []
    for cls, cs in snap.classes.items():
        p = cs.plan
        merged = [h for h in cs.hierarchies if h.merged_by in ('systemd', 'tucked')]
        foreign = [h for h in cs.hierarchies if h.merged_by == 'foreign']
        if opts.state == 'unmerged':
            action = 'unmerge' if merged else 'none'
            after = ()
            reasons = [{'extension': None, 'change': 'unmerge', 'hierarchy': h.hierarchy,
                        'detail': 'state=unmerged'} for h in merged]
        else:
            action = p.action
            if opts.always_refresh and p.after and action == 'none':
                action = 'refresh' if merged else 'merge'
            after = p.after
            reasons = p.as_dict()['reasons']
            if opts.always_refresh and action != 'none' and not reasons:
                reasons = [{'extension': None, 'change': 'always_refresh', 'detail': 'always_refresh=true'}]
            if foreign and action != 'none':
                raise engine.EngineError(
                    '%s: a foreign overlay is mounted there (not systemd-sysext\'s, not ours); it is left '
                    'alone. Unmount it first or exclude the class with classes=' % ', '.join(h.host_path for h in foreign))
        versions = _versions(cs)
        out.classes[cls] = {'action': action, 'reasons': reasons, 'before': list(p.before), 'after': list(after)}
        for h in cs.hierarchies:
            b = list(h.extensions) if h.merged_by in ('systemd', 'tucked') else []
            provided = [n for n in after if any(w.name == n and h.hierarchy in w.provides for w in cs.wanted)]
            a = list(after) if provided else []
            out.hierarchies[h.hierarchy] = {'before': b, 'after': a if action != 'none' else b,
                                            'merged_by': h.merged_by}
            if action != 'none':
                out.diff[h.hierarchy] = (_listing(b, versions), _listing(a, versions))
        if action != 'none':
            todo.append(cls)
    return todo


def _keep_interpreter(snap: engine.Snapshot, todo: list, opts: Options, out: Outcome) -> None:
    """Refuse a change that would remove the interpreter this task runs on (unless forced).
    Nothing to do means nothing to check: the no-change path reads no image and imports nothing."""
    if not todo:
        return
    from . import interpreter  # pylint: disable=import-outside-toplevel
    refusal = interpreter.refresh_refusal(snap, {cls: out.classes[cls]['action'] for cls in todo})
    if refusal is None:
        return
    if not opts.force:
        raise InterpreterInUse(refusal.msg, refusal.details)
    out.warnings.append(refusal.forced)


def _atomic_mode(opts: Options, out: Outcome) -> bool:
    if opts.backend == 'systemd':
        if opts.atomic == 'required':
            raise engine.EngineError('atomic=required cannot be met with backend=systemd: systemd-sysext '
                                     'unmounts and remounts; use backend=native')
        return False
    if opts.atomic == 'never':
        return False
    ok, why = kernel_can_tuck()
    if ok:
        return True
    if opts.atomic == 'required':
        raise engine.EngineError('atomic=required, but %s; nothing was changed. Use atomic=auto to accept a '
                                 'short gap, or a kernel with MOVE_MOUNT_BENEATH (Linux 6.5+)' % why)
    out.warnings.append('refresh will not be atomic: %s; readers may see the base tree for a moment' % why)
    return False


def _apply_native(snap: engine.Snapshot, cls: str, opts: Options, atomic: bool, warnings: list) -> bool:
    """Make the change for one class; True when new overlays were swapped in (False when
    overlays were only removed)."""
    apply = _apply_module()
    cs = snap.classes[cls]
    merged = [h.hierarchy for h in cs.hierarchies if h.merged_by in ('systemd', 'tucked')]
    for h in cs.hierarchies:
        if h.hierarchy in merged and h.work_dir is not None and mutable.malformed_work_dir(h.work_dir):
            raise engine.ApplyError(
                '%s names %r as the work directory of the merge on %s, which is not a path inside the root (empty, '
                'absolute or with ".."); systemd-sysext 262 refuses to unmerge such a merge too ("Invalid work '
                'directory path"). Nothing was changed: correct or remove that file, then run again'
                % (os.path.join(h.host_path, state.META_DIR[cls], 'work_dir'), h.work_dir, h.hierarchy))
    old_work, problems = apply.old_work_dirs(snap.root, cls, [h for h in cs.hierarchies if h.hierarchy in merged])
    warnings.extend(problems)
    mount_always = [h for h, lay in cs.layouts.items() if lay.mounts_always]
    if opts.state == 'unmerged' or not (cs.wanted or mount_always):
        _done, problems = apply.unmerge(snap.root, merged, old_work, cls,
                                        expect={h.hierarchy: h.mount_id for h in cs.hierarchies if h.hierarchy in merged})
        warnings.extend(problems)
        return False
    images = {img.name: img for img in cs.discovery.images}
    want_h = [h for h in state.HIERARCHIES[cls] if h in mount_always or any(h in w.provides for w in cs.wanted)]
    layers = [apply.Layer(name=w.name, kind=images[w.name].type, host_path=images[w.name].host_path,
                          inroot_path=images[w.name].path, origin=w.origin, provides=w.provides,
                          layout=images[w.name].layout, verity_hash=images[w.name].verity_hash,
                          verity=images[w.name].verity_plan)
              for w in sorted(cs.wanted, key=lambda w: version_key(w.name))]
    req = apply.BuildRequest(root=snap.root, cls=cls, hierarchies=tuple(want_h),
                             rebuild=tuple(h for h in merged if h in want_h), layers=layers,
                             origin_doc=origin.document(cs.mode, {la.name: la.origin for la in layers},
                                                        mutable.recorded_dirs(cs.layouts)),
                             mode=cs.mode, layouts=cs.layouts, overlay_options=opts.overlay_options,
                             legacy_mount=opts.legacy_mount, architecture=snap.host.architecture)
    built = apply.build(req)
    swapped = apply.swap(snap.root, cls, built, merged_now=[h for h in merged if h in want_h],
                         drop=[h for h in merged if h not in want_h], atomic=atomic)
    warnings.extend(swapped.problems)
    warnings.extend(apply.cleanup_work_dirs(snap.root, old_work, built.work_dirs))
    if any(lay.upper for lay in cs.layouts.values()):
        warnings.extend(apply.cleanup_stale_work_dirs(snap.root, want_h))
    return True


def systemd_version(tool: str) -> int | None:
    path = shutil.which(tool)
    if not path:
        return None
    res = proc.run([path, '--version'], capture_output=True, text=True, check=False)
    m = re.match(r'systemd (\d+)', res.stdout)
    return int(m.group(1)) if m else None


def _apply_systemd(snap: engine.Snapshot, cls: str, opts: Options) -> None:
    tool = TOOLS[cls]
    version = systemd_version(tool)
    if version is None:
        raise engine.ApplyError('backend=systemd needs %s on the managed node; it was not found '
                                '(confext needs systemd 254 or newer). Use backend=native' % tool)
    cs = snap.classes[cls]
    merged = any(h.merged_by in ('systemd', 'tucked') for h in cs.hierarchies)
    verb = 'unmerge' if opts.state == 'unmerged' else ('refresh' if merged else 'merge')
    cmd = [tool, verb]
    if snap.root != '/':
        cmd.append('--root=' + snap.root)
    if version >= 254:
        cmd.append('--no-reload')       # we reload ourselves, once, and only after a change
    env = None
    if verb != 'unmerge':
        if cs.mode != 'no':
            if version < 256:
                raise engine.ApplyError('mutable=%s needs systemd-sysext 256 or newer (found %d)' % (cs.mode, version))
            cmd.append('--mutable=' + cs.mode)
        if opts.image_policy is not None:
            if version < 254:
                raise engine.ApplyError('image_policy needs systemd-sysext 254 or newer (found %d)' % version)
            cmd.append('--image-policy=' + cs.settings.image_policy.value)
        if opts.overlay_options is not None:
            env = dict(os.environ, **{OVERLAY_ENV[cls]: opts.overlay_options})
    if verb == 'refresh' and version >= 260:
        cmd.append('--always-refresh=yes')   # our plan already decided that something changed
    res = proc.run(cmd, capture_output=True, text=True, check=False, env=env)
    if res.returncode != 0:
        raise engine.ApplyError('%s failed (exit %d): %s'
                                % (' '.join(cmd), res.returncode, (res.stderr or res.stdout).strip()))
    now = state.read_class(snap.root, cls)
    _check_backend_result(cmd, res, cs, now, verb)
    if verb == 'unmerge' or not cs.wanted:
        state.drop_record(snap.root, cls)
    elif version < 260:
        # systemd < 260 writes no origin: keep the one we planned with, bound to its overlays
        try:
            state.write_record(snap.root, cls, now, origin.document(cs.mode, {w.name: w.origin for w in cs.wanted}))
        except OSError as e:
            where = e.filename or state.RECORD_FILE % cls
            raise engine.ApplyError('%s merged, but the record of what it merged cannot be written to %s: %s; %s and '
                                    'run again (until then every run merges again)'
                                    % (cmd[0], where, e.strerror, 'remove it' if e.errno == errno.EEXIST
                                       else 'fix that'), partial=True) from None


def _check_backend_result(cmd: list, res: subprocess.CompletedProcess, cs: engine.ClassSnapshot, now: list,
                          verb: str) -> None:
    """The exit status of the tool is not the result (systemd-sysext 252 prints "Failed to remount
    /run/ MS_SLAVE" and exits 0 without merging): what is mounted now must be what was planned."""
    merged = ('systemd', 'tucked')
    always = {h for h, lay in cs.layouts.items() if lay.mounts_always}
    wrong = []
    for h in now:
        # a merged hierarchy lists every extension of the merge, also those without files for it
        mounted = verb != 'unmerge' and (h.hierarchy in always or any(h.hierarchy in w.provides for w in cs.wanted))
        want = cs.plan.after if mounted else ()
        have = tuple(h.extensions) if h.merged_by in merged else None
        if want and (have is None or sorted(have) != sorted(want)):
            wrong.append('%s shows %s instead of %s' % (h.host_path, 'no merge' if have is None else ', '.join(have)
                                                        or 'no extension', ', '.join(want)))
        elif not want and have is not None:
            wrong.append('%s is still merged (%s)' % (h.host_path, ', '.join(have) or 'no extension'))
    if wrong:
        before = {h.hierarchy: (h.merged_by, tuple(h.extensions)) for h in cs.hierarchies}
        after = {h.hierarchy: (h.merged_by, tuple(h.extensions)) for h in now}
        said = (res.stderr + res.stdout).strip()
        raise engine.ApplyError('%s exited 0, but %s%s. Run it by hand to see why, or use backend=native'
                                % (' '.join(cmd), '; '.join(wrong), ' (it printed: %s)' % said if said else ''),
                                partial=before != after)


def _merged_releases(snap: engine.Snapshot, opts: Options) -> list:
    """(name, extension-release) of every extension merged now, as the merged trees show them."""
    out = []
    for cls in opts.classes:
        names = {n for h in snap.classes[cls].hierarchies if h.merged_by in ('systemd', 'tucked') for n in h.extensions}
        out += units.merged_releases(snap.root, cls, sorted(names))
    return out


def _reload(root: str, opts: Options, out: Outcome, before: list) -> bool:
    """As systemd-sysext 262 does after a change on a live system: daemon-reload when an
    extension merged before or after asks for it (EXTENSION_RELOAD_MANAGER=, or listing units),
    then restart or reload-or-restart the units listed (stop those whose unit file went away)."""
    systemctl = shutil.which('systemctl')
    if not systemctl:
        return False
    after = []
    for cls in opts.classes:
        names = {n for hp in state.HIERARCHIES[cls] for n in (out.hierarchies.get(hp) or {}).get('after') or []}
        after += units.merged_releases(root, cls, sorted(names))
    done = units.apply(units.collect(before + after), systemctl)
    out.warnings.extend(done.pop('warnings'))
    out.units = {k: v for k, v in done.items() if k != 'reloaded'}
    return done['reloaded']


def _report_after(opts: Options, out: Outcome) -> None:
    """Re-read the hierarchies to report what is mounted now (cheap: no image reads)."""
    mounts = mountinfo.read()
    for cls in opts.classes:
        for h in state.read_class(opts.root, cls, mounts):
            if h.hierarchy in out.hierarchies:
                out.hierarchies[h.hierarchy]['after'] = list(h.extensions) if h.merged_by in ('systemd', 'tucked') else []
                out.hierarchies[h.hierarchy]['merged_by_after'] = h.merged_by
                out.hierarchies[h.hierarchy]['mount_id'] = h.mount_id
