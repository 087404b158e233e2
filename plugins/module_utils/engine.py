# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pipeline: discover -> match -> origin -> compare with the recorded state -> plan.

``plan()`` is the one place that decides whether a refresh would change anything; it is a
pure function of the recorded hierarchy states and the would-be extensions.
``gather()`` does the (stat-level) I/O that feeds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import NamedTuple

from . import config, imagecheck, imagemeta, images as images_mod
from . import mountapi, mountinfo, mutable, nextos, origin, policy, release, state
from .version import version_key

DEFAULT_MUTABLE = 'no'


class EngineError(RuntimeError):
    """The host state cannot be read or changed; the message names the file and the fix."""


class ApplyError(EngineError):
    """A change could not be made. The host is as it was, unless ``partial`` is true."""

    def __init__(self, msg: str, partial: bool = False):
        super().__init__(msg)
        self.partial = partial


class RemountRace(ApplyError):
    """A merged hierarchy was not mounted when it was to be replaced: another tool (systemd-sysext's
    refresh unmounts, then mounts) is remounting it. Nothing was changed; a retry will do."""


# Immutable records are NamedTuples: every module run defines these classes, and a frozen
# dataclass costs about 0.5 ms to define, a NamedTuple a tenth of that.
class Wanted(NamedTuple):
    """An extension that a refresh would merge now."""
    name: str
    origin: dict
    provides: tuple


class Reason(NamedTuple):
    extension: str | None        # None for a hierarchy-level reason
    change: str                  # added | removed | replaced | reordered | unchanged | unknown |
    #                              merge | unmerge | mutable | foreign | inconsistent
    hierarchy: str | None = None
    fields: tuple = ()
    detail: str = ''

    def as_dict(self) -> dict:
        d = {'extension': self.extension, 'change': self.change, 'detail': self.detail}
        if self.hierarchy:
            d['hierarchy'] = self.hierarchy
        if self.fields:
            d['fields'] = list(self.fields)
        return d


class ClassPlan(NamedTuple):
    cls: str
    needs_refresh: bool
    action: str                  # none | merge | refresh | unmerge
    reasons: tuple
    before: tuple                # extension names merged now (lowest first)
    after: tuple                 # extension names a refresh would merge (lowest first)
    hierarchies: tuple           # hierarchies a refresh would touch

    def as_dict(self) -> dict:
        return {'needs_refresh': self.needs_refresh, 'action': self.action,
                'reasons': [r.as_dict() for r in self.reasons if r.change != 'unchanged'],
                'unchanged': [r.extension for r in self.reasons if r.change == 'unchanged'],
                'before': list(self.before), 'after': list(self.after),
                'hierarchies': list(self.hierarchies)}


_NO_CHANGE = ('unchanged',)


def plan(cls: str, current: list, wanted: list, mode: str = DEFAULT_MUTABLE,
         mutable_dirs: dict | None = None, mount_always: tuple = (), stale: tuple = ()) -> ClassPlan:
    """Decide, like systemd-sysext 262's refresh, whether anything would change.

    ``current``: HierarchyState per hierarchy of the class. ``wanted``: the compatible
    extensions a merge would use now, in stacking order. ``mount_always``: hierarchies the
    mutable mode mounts even without extension files for them. The recorded origin documents
    are compared semantically (key order never matters) with the would-be document.
    """
    wanted = sorted(wanted, key=lambda w: version_key(w.name))  # systemd's stacking order
    after = tuple(w.name for w in wanted)
    new_doc = origin.document(mode, {w.name: w.origin for w in wanted}, mutable_dirs)
    reasons: list[Reason] = []
    touched: list[str] = []

    ours = [h for h in current if h.merged_by in ('systemd', 'tucked')]
    recorded = ours[0] if ours else None
    before = tuple(recorded.extensions) if recorded else ()

    for h in current:
        want = h.hierarchy in mount_always or any(h.hierarchy in w.provides for w in wanted)
        if h.merged_by == 'foreign':
            reasons.append(Reason(None, 'foreign', h.hierarchy, detail='; '.join(h.problems)))
            continue
        have = h.merged_by in ('systemd', 'tucked')
        if want and not have:
            reasons.append(Reason(None, 'merge', h.hierarchy, detail='%s is not merged' % h.hierarchy))
            touched.append(h.hierarchy)
        elif have and not want:
            reasons.append(Reason(None, 'unmerge', h.hierarchy,
                                  detail='no extension provides %s any more' % h.hierarchy))
            touched.append(h.hierarchy)
        elif have:
            touched.append(h.hierarchy)
            if h.stacked > 1:
                reasons.append(Reason(None, 'interrupted', h.hierarchy,
                                      detail='%d overlays are stacked on %s: an earlier run was interrupted '
                                             'mid-swap' % (h.stacked, h.hierarchy)))
            if h.origin is None:
                reasons.append(Reason(None, 'unknown', h.hierarchy,
                                      detail='%s was merged without an origin record (systemd < 260 or '
                                             'unreadable origin)%s' % (h.hierarchy, ': ' + '; '.join(h.problems) if h.problems else '')))
            elif h.origin != new_doc and recorded is not None and h.origin != recorded.origin:
                reasons.append(Reason(None, 'inconsistent', h.hierarchy,
                                      detail='%s records a different origin than %s' % (h.hierarchy, recorded.hierarchy)))

    if recorded is not None and recorded.origin is not None:
        rec_mut = recorded.origin.get('mutable', {'mode': DEFAULT_MUTABLE})
        if rec_mut != new_doc['mutable']:
            reasons.append(Reason(None, 'mutable', detail='mutable mode %r recorded, %r wanted' % (
                rec_mut.get('mode') if isinstance(rec_mut, dict) else rec_mut, mode)))
        extra = sorted(set(recorded.origin) - {'mutable', 'extensions'})
        for key in extra:
            reasons.append(Reason(None, 'replaced', fields=(key,), detail='origin records %r, which this merge would not' % key))
    reasons.extend(_extension_reasons(recorded, wanted, after))
    for path in stale:
        reasons.append(Reason(None, 'stale', detail='/%s is the work directory of an interrupted run; a refresh '
                                                    'removes it' % path))

    hier_changes = [r for r in reasons if r.extension is None]
    ext_changes = [r for r in reasons if r.extension is not None and r.change not in _NO_CHANGE]
    needs = bool(hier_changes or ext_changes)
    if not needs:
        action = 'none'
    elif not ours:
        action = 'merge' if (wanted or mount_always) else 'none'
        needs = bool(wanted or mount_always) or any(r.change == 'foreign' for r in hier_changes)
    elif not wanted and not mount_always:
        action = 'unmerge'
    else:
        action = 'refresh'
    return ClassPlan(cls=cls, needs_refresh=needs, action=action, reasons=tuple(reasons), before=before,
                     after=after, hierarchies=tuple(sorted(set(touched))))


def _extension_reasons(recorded, wanted: list, after: tuple) -> list:
    out: list[Reason] = []
    if recorded is None:
        return [Reason(w.name, 'added', detail='would be merged') for w in wanted]
    names_before = list(recorded.extensions)
    rec = recorded.origins
    for w in wanted:
        if w.name not in names_before and (rec is None or w.name not in rec):
            out.append(Reason(w.name, 'added', detail='new extension %s' % w.origin.get('path')))
        elif rec is None or w.name not in rec:
            out.append(Reason(w.name, 'unknown', detail='merged, but its origin was not recorded'))
        else:
            diff = origin.differing_fields(rec[w.name], w.origin)
            if diff:
                out.append(Reason(w.name, 'replaced', fields=tuple(diff),
                                  detail='%s changed: %s' % (w.origin.get('path'), ', '.join(diff))))
            else:
                out.append(Reason(w.name, 'unchanged'))
    wanted_names = set(after)
    for name in names_before + sorted(set(rec or {}) - set(names_before)):
        if name not in wanted_names:
            path = (rec or {}).get(name, {}).get('path')
            out.append(Reason(name, 'removed', detail='no longer %s' % ('found at ' + path if path else 'available')))
    common_before = [n for n in names_before if n in wanted_names]
    common_after = [n for n in after if n in set(names_before)]
    if common_before != common_after:
        out.append(Reason(None, 'reordered', detail='stacking order %s becomes %s' % (
            ' < '.join(common_before), ' < '.join(common_after))))
    return out


# ---------------------------------------------------------------------------- gathering
@dataclass
class ClassSnapshot:
    cls: str
    discovery: images_mod.Discovery
    hierarchies: list
    wanted: list
    plan: ClassPlan
    warnings: list = field(default_factory=list)
    layouts: dict = field(default_factory=dict)     # hierarchy -> mutable.Layout
    settings: config.Settings | None = None         # effective Mutable= / ImagePolicy=, with their sources

    def settings_dict(self) -> dict:
        """The effective settings as reported: value and source of each, the files read."""
        st = self.settings or config.Settings(config.Setting(None, 'default'), config.Setting(None, 'default'), (), ())
        return {'mutable': dict(st.mutable.as_dict(), value=self.mode),
                'image_policy': dict(st.image_policy.as_dict(),
                                     value=policy.parse_cached(st.image_policy.value or policy.DEFAULT[self.cls]).text),
                'files': list(st.files)}

    def wanted_images(self) -> list:
        """The images of the extensions a merge would use now."""
        names = {w.name for w in self.wanted}
        return [img for img in self.discovery.images if img.name in names]

    @property
    def mode(self) -> str:
        """The effective mutable mode."""
        return (self.settings.mutable.value if self.settings else None) or DEFAULT_MUTABLE


@dataclass
class Snapshot:
    root: str
    host: release.Host
    classes: dict
    kernel: dict

    @property
    def needs_refresh(self) -> bool:
        return any(c.plan.needs_refresh for c in self.classes.values())


def check_root(root: str) -> str:
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise EngineError('root %s does not exist or is not a directory; pass the root of the target '
                          'filesystem (default /)' % root)
    return root


def gather(root: str, classes=release.CLASSES, mode: str | None = None, machine: str | None = None,
           need_host: bool = True, image_policy: str | None = None, environ=None,
           cache: str = 'update') -> Snapshot:
    """Read everything ``plan()`` needs: no subprocesses, and no mounts visible to anyone (an image
    only the kernel decodes is read through a detached read-only mount, released at once).
    What was read from images is kept in ROOT/run/tucked-sysext/images.json, by each image's
    identity (imagemeta.Cache): ``cache`` ``create`` makes that directory when missing,
    ``update`` writes only into an existing one, ``off`` writes nothing (check mode).
    ``mode`` / ``image_policy``: the mutable mode and image policy asked for (systemd's
    ``--mutable=`` / ``--image-policy=``); None takes them from the root's sysext.conf /
    confext.conf and ``environ``, else systemd's defaults.
    ``need_host=False`` (unmerging): a root without a readable os-release is no error, as
    systemd-sysext unmerge never reads it; no extension is compatible then."""
    root = check_root(root)
    if mode is not None and mode not in mutable.MODES:
        raise EngineError('unknown mutable mode %r; use one of %s' % (mode, ', '.join(mutable.MODES)))
    if image_policy is not None:
        image_policy = parse_image_policy(image_policy)
    try:
        host = release.read_host(root, machine)
    except release.ReleaseError as e:
        if need_host:
            raise EngineError('%s; the extensions cannot be matched without it' % e) from None
        host = release.Host(scope='initrd' if release.is_initrd(root) else 'system',
                            architecture=release.native_architecture(machine))
    try:
        mounts = mountinfo.read()
    except (OSError, mountinfo.MountinfoError) as e:
        raise EngineError('cannot read /proc/self/mountinfo: %s' % e) from None
    out = {}
    meta_cache = imagemeta.Cache(root, write=cache)
    for cls in classes:
        settings = config.effective(config.load(root, cls, environ), mode, image_policy)
        out[cls] = gather_class(root, cls, host, mounts, settings, meta_cache)
    meta_cache.save()
    supported, why = mountapi.move_mount_beneath_supported()
    kernel = {'move_mount_beneath': supported, 'detail': why, 'release': os.uname().release}
    return Snapshot(root=root, host=host, classes=out, kernel=kernel)


def parse_image_policy(text: str) -> str:
    """The image_policy parameter, normalized; EngineError names the fix when it cannot be parsed."""
    try:
        return policy.parse(text).text
    except policy.PolicyError as e:
        raise EngineError('image_policy %r cannot be parsed: %s; see systemd.image-policy(7), for example '
                          '"root=verity+signed+unprotected+absent:usr=verity+signed+unprotected+absent"'
                          % (text, e)) from None


def gather_class(root: str, cls: str, host: release.Host, mounts: list,
                 settings: config.Settings | None = None, cache: imagemeta.Cache | None = None) -> ClassSnapshot:
    mode = (settings.mutable.value if settings else None) or DEFAULT_MUTABLE
    try:
        hier = state.read_class(root, cls, mounts)
    except state.StateError as e:
        raise EngineError(str(e)) from None
    disc = images_mod.discover(root, cls)
    warnings = list(disc.warnings) + list(settings.warnings if settings else ())
    wanted = []
    hierarchies = state.HIERARCHIES[cls]
    live_initrd = root == '/' and release.is_initrd('/')
    for img in disc.images:
        imagemeta.load(img, cache, host.architecture)
        if not img.readable:
            img.compatible = False
            if img.type != 'directory':
                # systemd-sysext reads the metadata of every image file first: one it cannot
                # read makes the whole merge fail ("Failed to read metadata for image ...")
                img.fatal = img.reason
            warnings.append(img.reason)
            continue
        if img.type != 'directory' and imagecheck.check(img, cls, settings, live_initrd):
            warnings.append(img.reason)
            continue
        ok, why = release.validate(img.name, img.release, host, cls)
        img.compatible, img.reason = ok, why
        if not ok:
            continue
        try:
            rec = origin.compute(img.host_path, img.path, img.verity_hash)
        except OSError as e:
            img.compatible = False
            img.reason = '%s: cannot identify the image: %s' % (img.host_path, e.strerror)
            warnings.append(img.reason)
            continue
        wanted.append(Wanted(name=img.name, origin=rec, provides=img.provides))
    for h in hier:
        warnings.extend(h.problems)
    try:
        layouts = {h: mutable.layout(root, h, mode) for h in hierarchies}
    except mutable.MutableError as e:
        raise EngineError(str(e)) from None
    stale = ()
    if any(lay.upper for lay in layouts.values()):
        stale = tuple(mutable.stale_work_dirs(root, list(hierarchies), {h.work_dir for h in hier if h.work_dir}))
    p = plan(cls, hier, wanted, mode, mutable.recorded_dirs(layouts),
             tuple(h for h, lay in layouts.items() if lay.mounts_always), stale)
    return ClassSnapshot(cls=cls, discovery=disc, hierarchies=hier, wanted=wanted, plan=p, warnings=warnings,
                         layouts=layouts, settings=settings)


def _partition(layout) -> dict | None:
    """The GPT partition an image's tree comes from, with the verity partitions beside it."""
    if layout is None or layout.container != 'gpt':
        return None
    d = layout.as_dict()
    return dict(d['partition'] or {}, usr_partition=d['usr_partition'], verity_partition=d['verity_partition'],
                signature_partition=d['signature_partition'])


def facts(snap: Snapshot, next_host: release.Host | None = None) -> dict:
    """The ``ansible_facts.sysext`` document. ``next_host`` (nextos.host_for()): each image also
    says whether it would match that OS (``next_os``), and ``next_os`` sums it up."""
    hierarchies = {}
    images = []
    classes = {}
    next_found = []
    for cls, cs in snap.classes.items():
        classes[cls] = dict(cs.plan.as_dict(), settings=cs.settings_dict())
        for h in cs.hierarchies:
            hierarchies[h.hierarchy] = {
                'class': cls,
                'path': h.host_path,
                'merged': h.merged,
                'merged_by': h.merged_by,
                'extensions': list(h.extensions),
                'origins': h.origins,
                'origin_source': h.origin_source,
                'mutable': (h.origin or {}).get('mutable') if h.origin is not None else None,
                'mount_id': h.mount_id,
                'dev': h.dev,
                'backing': h.backing,
                'problems': list(h.problems),
            }
        origins = {w.name: w.origin for w in cs.wanted}
        for img in cs.discovery.images:
            images.append({
                'name': img.name,
                'class': cls,
                'path': img.path,
                'entry': img.entry,
                'type': img.type,
                'version': img.version,
                'compatible': img.compatible,
                'reason': img.reason if not img.compatible else None,
                'release_file': img.release_file,
                'provides': list(img.provides),
                'shadows': list(img.shadows),
                'origin': origins.get(img.name),
                'digest': images_mod.cached_digest(img.host_path) if img.type == 'raw' else None,
                'picked': img.picked,
                'container': img.container if img.type == 'raw' else 'directory',
                'fstype': img.fstype,
                'compression': img.compression,
                'partition': _partition(img.layout),
                'protection': img.protection,
                'verity_hash': img.verity_hash,
                'blocks_merge': bool(img.fatal),
            })
            if next_host is not None:
                images[-1]['next_os'] = nextos.image_match(img, next_host)
                next_found.append((img, images[-1]['next_os']))
        for ign in cs.discovery.ignored:
            images.append({'name': ign.get('name'), 'class': cls, 'path': None, 'entry': ign['entry'],
                           'type': 'ignored', 'version': None, 'compatible': False, 'reason': ign['reason'],
                           'release_file': None, 'provides': [], 'shadows': [], 'origin': None, 'picked': None,
                           'container': None, 'fstype': None, 'compression': None, 'partition': None,
                           'protection': None, 'verity_hash': None, 'blocks_merge': bool(ign.get('fatal'))})
            if next_host is not None:
                images[-1]['next_os'] = None
    doc = {
        'root': snap.root,
        'needs_refresh': snap.needs_refresh,
        'classes': classes,
        'hierarchies': hierarchies,
        'images': images,
        'host': {'id': snap.host.os_release.get('ID'), 'version_id': snap.host.os_release.get('VERSION_ID'),
                 'id_like': snap.host.os_release.get('ID_LIKE'),
                 'sysext_level': snap.host.os_release.get('SYSEXT_LEVEL'),
                 'confext_level': snap.host.os_release.get('CONFEXT_LEVEL'),
                 'architecture': snap.host.architecture, 'scope': snap.host.scope},
        'kernel': snap.kernel,
    }
    if next_host is not None:
        doc['next_os'] = nextos.summary(next_host, snap.host, next_found)
    return doc


def warnings_of(snap: Snapshot) -> list:
    out = []
    for cs in snap.classes.values():
        for w in cs.warnings:
            if w not in out:
                out.append(w)
    return out
