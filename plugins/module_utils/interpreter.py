# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Keep the interpreter a task runs on available.

On a host without Python of its own (Flatcar, Fedora CoreOS) our modules run on an interpreter
that an extension merged into ``/usr`` provides (``/usr/lib/tucked-sysext/python/bin/python3`` of
``tucked-python``, ``/usr/bin/python3`` of ``flatcar-python``). Unmerging ``/usr``, or a refresh
whose new set of extensions no longer holds that file, would make it vanish under the running
task and every later one; removing the extension's image from the store prepares the same.
This decides, before anything is changed, whether a change would do that:

* the interpreter is ``sys.executable``, resolved (symlinks followed), and only counts when it
  lies in a hierarchy under the root being changed (ROOT/usr, ROOT/opt, ROOT/etc);
* an extension *provides* it when the extension's own tree holds that path: a directory
  extension is walked in the directory, an image file through the collection's image readers
  (imagefs: one lookup, in place where a reader decodes the format, else through a detached
  read-only mount), each component a directory as overlayfs requires, the last one anything;
* the image an extension is merged from is the one its recorded origin names, if that file is
  still the one recorded; else its image in the search path. When neither can be read any
  more (deleted), the base tree below the overlay decides, read in a private mount namespace
  of a child: the interpreter there means no extension is needed for it.

A refresh that keeps every extension merged now, unchanged, cannot remove the interpreter: that
is decided without reading any image.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import NamedTuple

from . import images as images_mod
from . import mountapi, origin, rootfs, state
from .imagefs import image as imagefs

MERGED = ('systemd', 'tucked')
FIX = ('run this task on another interpreter (ansible_python_interpreter), or set force: true to go ahead anyway '
       '(the interpreter\'s files vanish then)')


class Interpreter(NamedTuple):
    """The interpreter this process runs on, where it lies under the root."""
    executable: str     # sys.executable, as the task was started with it
    path: str           # the same, resolved (host path)
    cls: str            # the class of the hierarchy it lies in
    hierarchy: str      # /usr, /opt or /etc
    inpath: str         # its path inside an extension's tree (/usr/lib/...)

    def shown(self) -> str:
        return self.executable if self.path == self.executable else '%s (%s)' % (self.executable, self.path)


class Provider(NamedTuple):
    """An extension image to look the interpreter up in."""
    name: str
    kind: str           # directory | raw | block
    host_path: str
    layout: object = None   # imagefs.Layout when known (image files)


def locate(root: str, classes, executable: str | None = None) -> Interpreter | None:
    """The running interpreter, when it lies in a hierarchy of ``classes`` under ``root``."""
    exe = sys.executable if executable is None else executable
    if not exe:
        return None
    real = os.path.realpath(exe)
    top = os.path.realpath(root).rstrip('/') + '/'
    if not real.startswith(top):
        return None     # (a hierarchy resolved inside the root never leads out of it)
    for cls in classes:
        for h in state.HIERARCHIES[cls]:
            try:
                host = os.path.realpath(state.hierarchy_path(root, h))
            except state.StateError:
                continue
            if real.startswith(host.rstrip('/') + '/'):
                return Interpreter(exe, real, cls, h, h + real[len(host.rstrip('/')):])
    return None


# ---------------------------------------------------------------------------- "provides"
def tree_has(tree: imagefs.Tree, path: str) -> bool:
    """Whether ``tree`` holds ``path`` as overlayfs would take it from this layer: every
    component but the last a directory (a symlink on the way is not followed: overlayfs would
    show the symlink, not what it points to), the last one of any type."""
    ino = tree.root()
    for name in (p for p in path.encode('utf-8', 'surrogateescape').split(b'/') if p):
        if not stat.S_ISDIR(tree.mode(ino)):
            return False
        ino = tree.lookup(ino, name)
        if ino is None:
            return False
    return True


def provides(p: Provider, inpath: str, cls: str, architecture: str) -> bool:
    """Whether the extension image ``p`` holds ``inpath``. OSError / imagefs.ImageError when
    it cannot be read."""
    if p.kind == 'directory':
        with imagefs.open_directory(p.host_path) as tree:
            return tree_has(tree, inpath)
    fd = os.open(p.host_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        src = imagefs.Source(fd)
        layout = p.layout or imagefs.locate(src, cls, architecture)
        for mount in (False, True):
            try:
                with imagefs.open_tree(src, layout, p.host_path, mount=mount) as tree:
                    return tree_has(tree, inpath)
            except imagefs.NeedsMount:
                if mount:
                    raise
        raise AssertionError('not reached')
    finally:
        os.close(fd)


def _try(p: Provider, it: Interpreter, architecture: str) -> bool | None:
    try:
        return provides(p, it.inpath, it.cls, architecture)
    except (OSError, imagefs.ImageError):
        return None


def _kind(st: os.stat_result) -> str | None:
    if stat.S_ISDIR(st.st_mode):
        return 'directory'
    if stat.S_ISREG(st.st_mode):
        return 'raw'
    return 'block' if stat.S_ISBLK(st.st_mode) else None


def merged_image(root: str, h: state.HierarchyState, name: str) -> Provider | None:
    """The image ``name`` is merged from now: the file its recorded origin names, if it is still
    the one recorded (same identity); None when that cannot be established."""
    rec = (h.origins or {}).get(name)
    if not isinstance(rec, dict) or not isinstance(rec.get('path'), str):
        return None
    host = rootfs.host_path(root, rec['path'])
    try:
        kind = _kind(os.stat(host))
        now = origin.compute(host, rec['path'], rec.get('verityHash'))
    except OSError:
        return None
    if kind is None or origin.differing_fields(rec, now):
        return None
    return Provider(name, kind, host)


def _discovered(img) -> Provider:
    return Provider(img.name, img.type, img.host_path, img.layout)


def base_has(root: str, it: Interpreter) -> bool | None:
    """Whether the base tree below the overlay on the interpreter's hierarchy holds it: looked
    at in a forked child, in a private mount namespace where the overlays are detached (only
    there). None when that cannot be done (no privilege to unshare)."""
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            mountapi.die_with_parent(parent)
            mountapi.unshare(mountapi.CLONE_NEWNS)
            mountapi.mount(None, '/', None, mountapi.MS_REC | mountapi.MS_PRIVATE)
            host = state.hierarchy_path(root, it.hierarchy)
            while state.read_hierarchy(root, it.hierarchy, it.cls, mounts=[]).merged_by in MERGED:
                mountapi.umount2(host, mountapi.MNT_DETACH)
            with imagefs.open_directory(host) as tree:
                code = 0 if tree_has(tree, it.inpath[len(it.hierarchy):]) else 1
        except BaseException:  # pylint: disable=broad-except
            code = 3
        finally:
            os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return {0: True, 1: False}.get(code)


# ---------------------------------------------------------------------------- decisions
class Refusal(NamedTuple):
    msg: str            # why the change is refused, and the fix
    details: dict       # the interpreter and the extension(s), for the task result
    forced: str         # the warning when force: true goes ahead anyway


def _details(it: Interpreter, names: list, image: str | None) -> dict:
    return {'executable': it.executable, 'path': it.path, 'hierarchy': it.hierarchy, 'class': it.cls,
            'extensions': list(names), 'image': image}


def refresh_refusal(snap, actions: dict, executable: str | None = None) -> Refusal | None:
    """Would the change ``actions`` (class -> merge | refresh | unmerge, as decided for the
    engine.Snapshot ``snap``) remove the running interpreter? A Refusal saying why, else None."""
    it = locate(snap.root, [c for c, a in actions.items() if a in ('refresh', 'unmerge')], executable)
    if it is None:
        return None
    cs = snap.classes[it.cls]
    h = next((x for x in cs.hierarchies if x.hierarchy == it.hierarchy), None)
    if h is None or h.merged_by not in MERGED or not h.extensions:
        return None
    unmerging = actions[it.cls] == 'unmerge'
    staying = [] if unmerging else [w for w in cs.wanted if it.hierarchy in w.provides]
    rec = h.origins or {}
    same = {w.name for w in staying if isinstance(rec.get(w.name), dict) and not origin.differing_fields(rec[w.name], w.origin)}
    going = [n for n in h.extensions if n not in same]
    if not going:
        return None     # every extension merged now stays, unchanged: so does whatever it provides
    found = {img.name: img for img in cs.discovery.images}
    arch = snap.host.architecture
    # first the extensions that go or change: on a host whose interpreter is its own, none of
    # them holds it, and that is all there is to read
    providers, unknown = [], []
    for name in going:
        if name in rec:
            p = merged_image(snap.root, h, name)    # None: the recorded file is gone or changed
        else:
            # merged without an origin record (systemd < 260): its image in the search path
            p = _discovered(found[name]) if name in found else None
        has = _try(p, it, arch) if p is not None else None
        if has:
            providers.append(p)
        elif has is None:
            unknown.append(name)
    if not providers and not unknown:
        return None
    # then the extensions merged after the change: the new and changed ones first (a new version
    # of the interpreter's extension is the likely provider), then the unchanged ones
    for w in sorted(staying, key=lambda w: w.name in same):
        if w.name in found and _try(_discovered(found[w.name]), it, arch):
            return None
    if not providers and base_has(snap.root, it):
        return None     # the images are gone; the base tree has the interpreter itself
    names = [p.name for p in providers] or unknown
    if providers:
        src = 'the %s %s provides it there (%s)' % (it.cls, providers[0].name, providers[0].host_path)
    else:
        src = ('it comes from %s, whose image%s cannot be read any more (%s), and the base tree below the overlay lacks '
               'it' % (' or '.join(unknown), 's' if len(unknown) > 1 else '',
                       ', '.join(rec[n]['path'] if isinstance(rec.get(n), dict) else 'not recorded' for n in unknown)))
    verb = 'unmerge' if unmerging else 'refresh'
    what = '%s %s' % (verb, h.host_path)
    if unmerging:
        why = 'unmerging removes every extension from %s' % h.hierarchy
    else:
        kept = {w.name for w in staying}
        why = 'no extension merged after the refresh provides it (%s)' % (
            ', '.join('%s %s' % (n, 'would be merged from an image that lacks it' if n in kept else
                                 'would no longer be merged' if n in found else 'is no longer in the search path')
                      for n in names))
    if unmerging:
        other = 'confext' if it.cls == 'sysext' else 'sysext'
        keep = 'leave %s merged (classes: [%s] unmerges the other class only)' % (h.hierarchy, other)
    else:
        keep = 'keep %s in a search directory (%s)' % (' and '.join(names), ', '.join(cs.discovery.search_dirs))
    msg = ('refusing to %s: this task runs on the interpreter %s, and %s; %s, so its files would vanish under this '
           'task and every later one. Nothing was changed. To fix: %s, %s'
           % (what, it.shown(), src, why, keep, FIX))
    forced = 'force: true: %s %s although the interpreter %s this task runs on comes from %s' % (
        {'unmerge': 'unmerging', 'refresh': 'refreshing'}[verb], h.host_path, it.shown(), ' or '.join(names))
    return Refusal(msg, _details(it, names, providers[0].host_path if providers else None), forced)


def removal_refusal(root: str, cls: str, name: str, doomed: list, link_goes: bool, remaining: str | None,
                    executable: str | None = None) -> Refusal | None:
    """Would removing the host paths ``doomed`` (store files; ``link_goes``: also the link that
    selects ``name``) take away the image of ``name`` that provides the running interpreter, while
    the image selected after the removal (host path ``remaining``, None for none) and the other
    extensions merged with it do not provide it?"""
    if not doomed and not link_goes:
        return None
    it = locate(root, (cls,), executable)
    if it is None:
        return None
    h = state.read_hierarchy(root, it.hierarchy, cls)
    if h.merged_by not in MERGED or name not in h.extensions:
        return None
    arch = _architecture(root)
    doomed_real = {os.path.realpath(p) for p in doomed}
    now = merged_image(root, h, name)
    if now is None:
        # the recorded image cannot be established: the one the search path shows now
        found = {img.name: img for img in images_mod.discover(root, cls).images}
        now = Provider(name, found[name].type, found[name].host_path) if name in found else None
    if now is None or not _try(now, it, arch):
        return None
    if not link_goes and os.path.realpath(now.host_path) not in doomed_real:
        return None     # the image merged now stays where it is
    if remaining is not None:
        kind = 'raw'
        try:
            kind = _kind(os.stat(remaining)) or 'raw'
        except OSError:
            pass
        if _try(Provider(name, kind, remaining), it, arch):
            return None     # the version selected after the removal holds it too
    for other in h.extensions:
        p = merged_image(root, h, other) if other != name else None
        if p is not None and _try(p, it, arch):
            return None     # another extension merged there provides it as well
    msg = ('refusing to remove %s %s: this task runs on the interpreter %s, which %s provides (merged into %s from %s); '
           'after the next refresh its files would vanish under the running tasks. Nothing was changed. To fix: keep %s '
           '(drop it from what is removed, e.g. sysext_remove), %s'
           % (cls, name, it.shown(), name, h.host_path, now.host_path, name, FIX))
    forced = 'force: true: removing %s %s although the interpreter %s this task runs on comes from it' % (
        cls, name, it.shown())
    return Refusal(msg, _details(it, [name], now.host_path), forced)


def _architecture(root: str) -> str:
    from . import release  # pylint: disable=import-outside-toplevel
    try:
        return release.read_host(root).architecture
    except release.ReleaseError:
        return release.native_architecture()
