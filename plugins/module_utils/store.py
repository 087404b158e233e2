# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The image store: versions of an extension image kept side by side in a store directory,
the active one selected by a symlink in a search directory, the layout sysext-bakery and
systemd-sysupdate users have::

    ROOT/opt/extensions/NAME/NAME-VERSION.raw                   (store_dir, one directory per name)
    ROOT/etc/extensions/NAME.raw -> ../../opt/extensions/NAME/NAME-VERSION.raw      (link_dir)

Every write goes to a ``.#`` temporary file next to its destination (systemd ignores such
names) and is renamed into place only when complete and verified, so a failed copy, a
wrong checksum, a full disk or a kill never replaces a good image or a good link.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass, field, replace

from . import config, engine, imagecheck, imagemeta, images, release, rootfs
from .fsutil import create_new, fsync_path, space_hint
from .release import CONFEXT, SYSEXT
from .storefiles import (CHUNK, DEFAULT_STORE_DIR, SUFFIX, VERITY_SIDECARS, ChecksumError, cache_digest, file_digest,
                         parse_checksum, sidecar_digests, sidecars_of)
from .storelayout import (TMP_PREFIX, Layout, StoreError, check_name, check_stored_name, check_version, current_selection,
                          layout, leftovers, stored_versions, unmanaged_files)
from .version import strverscmp_improved, version_key

# /etc/confexts is not a directory systemd-confext searches; /var/lib/confexts is.
DEFAULT_LINK_DIR = {SYSEXT: '/etc/extensions', CONFEXT: '/var/lib/confexts'}
STATES = ('present', 'selected', 'absent')


@dataclass
class Options:
    name: str
    version: str | None = None
    kind: str = SYSEXT
    state: str = 'selected'
    root: str = '/'
    src: str | None = None           # a file on the target (already transferred from the controller)
    url: str | None = None
    checksum: str | None = None      # 'sha256:HEX' (sha384/sha512 too; bare hex is sha256)
    store_dir: str = DEFAULT_STORE_DIR
    link_dir: str | None = None      # default DEFAULT_LINK_DIR[kind]
    store_pattern: list | None = None   # sysupdate target MatchPattern= list: versions in store_dir as named
    keep: int = 2
    rollback: bool = False
    image_policy: str | None = None  # None: the root's sysext.conf / confext.conf, else systemd's default
    sidecar_checksums: dict | None = None   # suffix -> 'sha256:HEX' the stored sidecars must have (None: any)
    check_mode: bool = False
    force: bool = False              # remove also the image the task's own interpreter comes from


@dataclass
class Result:
    changed: bool = False
    name: str = ''
    kind: str = SYSEXT
    selected: str | None = None      # version selected after the run
    previous: str | None = None      # version selected before
    version: str | None = None       # the version this run was about
    path: str | None = None          # in-root path of that version's file
    link: str = ''                   # in-root path of the selecting symlink
    versions: list = field(default_factory=list)   # stored versions after, oldest first
    stored: bool = False             # whether that version is (or, in check mode, would be) in the store
    copied: bool = False
    removed: list = field(default_factory=list)    # in-root paths removed (pruned or absent)
    checksum: str | None = None      # 'sha256:HEX' of that version's file
    sidecars: list = field(default_factory=list)   # in-root paths of its dm-verity sidecars
    release: dict | None = None
    compatible: bool | None = None
    compatibility: str = ''
    unmanaged: list = field(default_factory=list)  # in-root store files of other tools, left alone
    shadowed_by: str | None = None   # an entry earlier in systemd's search order with the same name
    warnings: list = field(default_factory=list)
    diff: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        keys = ('changed', 'name', 'kind', 'selected', 'previous', 'version', 'path', 'link', 'versions',
                'stored', 'copied', 'removed', 'checksum', 'release', 'compatible', 'compatibility', 'unmanaged',
                'shadowed_by', 'sidecars')
        return {k: getattr(self, k) for k in keys}


class InterpreterInUse(StoreError):
    """The removal would take away the interpreter the task runs on; nothing was changed.
    ``details``: the interpreter and the extension (interpreter.Refusal)."""

    def __init__(self, msg: str, details: dict):
        super().__init__(msg)
        self.details = details


class Incompatible(StoreError):
    """The image does not fit the target (its extension-release, or the image policy); nothing was changed."""


# ----------------------------------------------------------------------------- writing
def _write_error(e: OSError, what: str, where: str) -> StoreError:
    if e.errno == errno.ENOSPC:
        return StoreError('%s: no space left on the device of %s%s; free space or choose another store_dir. '
                          'Nothing was replaced.' % (what, where, space_hint(where)))
    if e.errno == errno.EROFS:
        return StoreError('%s: %s is read-only (is an extension merged over it? /etc is read-only while confexts '
                          'are merged, /opt while a sysext provides /opt); choose a store_dir/link_dir on a '
                          'writable filesystem, such as /var/lib/extensions for links' % (what, where))
    return StoreError('%s: %s' % (what, os.strerror(e.errno or 0) if not e.strerror else e.strerror))


def makedirs(host_dir: str) -> None:
    """Create missing directories 0755 (like systemd's mkdir_p)."""
    old = os.umask(0o022)
    try:
        os.makedirs(host_dir, mode=0o755, exist_ok=True)
    finally:
        os.umask(old)


def copy_in(reader, host_dir: str, final_name: str, algo: str, source: str) -> tuple[str, str]:
    """Copy from ``reader`` (has .read(n)) into a temporary file in ``host_dir``, hashing on
    the way. Returns (temporary path, hex digest); removes the file on any failure."""
    tmp = os.path.join(host_dir, '%s%s.%d' % (TMP_PREFIX, final_name, os.getpid()))
    h = hashlib.new(algo)
    try:
        try:
            fd = create_new(tmp, 0o644)     # (whatever is left at tmp is removed, never opened)
        except OSError as e:
            if e.errno == errno.EEXIST:
                raise StoreError('storing %s: %s is in the way of the temporary file; remove it' % (final_name, tmp)) \
                    from None
            raise _write_error(e, 'storing %s' % final_name, host_dir) from None
        try:
            while True:
                try:
                    chunk = reader.read(CHUNK)
                except Exception as e:  # http.client.IncompleteRead, socket timeouts, I/O errors
                    raise StoreError('%s: reading failed after %d bytes: %s; nothing was stored'
                                     % (source, os.lseek(fd, 0, os.SEEK_CUR), str(e) or type(e).__name__)) from None
                if not chunk:
                    break
                h.update(chunk)
                view = memoryview(chunk)
                try:
                    while view:
                        view = view[os.write(fd, view):]
                except OSError as e:
                    _unlink_quiet(tmp)      # first, so that the free space reported is the real one
                    raise _write_error(e, 'storing %s' % final_name, host_dir) from None
            _check_length(reader, os.lseek(fd, 0, os.SEEK_CUR), source)
            try:
                os.fchmod(fd, 0o644)
                os.fsync(fd)
            except OSError as e:
                raise _write_error(e, 'storing %s' % final_name, host_dir) from None
        finally:
            os.close(fd)
    except BaseException:
        _unlink_quiet(tmp)
        raise
    return tmp, h.hexdigest()


def _check_length(reader, got: int, source: str) -> None:
    """An HTTP response that announced a length must deliver all of it."""
    headers = getattr(reader, 'headers', None)
    announced = headers.get('Content-Length') if headers is not None else None
    if announced and announced.isdigit() and int(announced) != got:
        raise StoreError('%s: download truncated: %d of the %s bytes announced arrived; nothing was stored'
                         % (source, got, announced))


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def set_link(lay: Layout, target_inroot: str) -> None:
    """Point LINK at ``target_inroot`` with a relative symlink, replaced atomically."""
    host_dir = lay.host(lay.link_dir)
    rel = os.path.relpath(target_inroot, lay.link_dir)
    tmp = os.path.join(host_dir, '%s%s%s.%d' % (TMP_PREFIX, lay.name, SUFFIX, os.getpid()))
    try:
        makedirs(host_dir)
        _unlink_quiet(tmp)
        os.symlink(rel, tmp)
        os.replace(tmp, lay.host(lay.link))
        fsync_path(host_dir, directory=True)
    except OSError as e:
        _unlink_quiet(tmp)
        raise _write_error(e, 'selecting %s' % target_inroot, host_dir) from None


# ----------------------------------------------------------------------------- compatibility
def check_image(root: str, name: str, kind: str, host_file: str, inroot: str,
                image_policy: str | None = None, link: str | None = None) -> tuple[bool, str, dict | None]:
    """Read the image's extension-release (as the link name will make systemd look for it),
    apply the image policy systemd-sysext would apply to it through ``link`` (``image_policy``,
    else the root's config file, else systemd's default) and match it against the root's
    os-release. (compatible, reason, release fields); the reason names the image by ``inroot``."""
    img = images.Image(name=name, cls=kind, entry=inroot, path=link or inroot, host_path=host_file, type='raw')
    host_error = ''
    try:
        host = release.read_host(root)
    except release.ReleaseError as e:
        host = None
        host_error = str(e)
    imagemeta.load(img, imagemeta.Cache(root, enabled=False),
                   host.architecture if host else release.native_architecture())
    if not img.readable:
        return False, img.reason, None
    settings = config.effective(config.load(root, kind), None, image_policy)
    live_initrd = os.path.realpath(root) == '/' and release.is_initrd('/')
    if imagecheck.check(img, kind, settings, live_initrd, inroot):
        return False, img.reason, img.release
    if host is None:
        return False, host_error, img.release
    ok, why = release.validate(name, img.release or {}, host, kind)
    return ok, why, img.release


def probe_host(root: str) -> dict:
    """What the controller needs to choose an image from a repository for this target: its
    architecture (systemd's name) and os-release (empty, with ``os_release_error``, when it has none)."""
    try:
        host = release.read_host(root)
    except release.ReleaseError as e:
        return {'architecture': release.native_architecture(), 'os_release': {}, 'os_release_error': str(e)}
    return {'architecture': host.architecture, 'os_release': dict(host.os_release), 'os_release_error': None}


# ----------------------------------------------------------------------------- the request
def _source_reader(opts: Options, opener):
    if opts.url:
        return opener(opts.url)
    try:
        return rootfs.open_regular(opts.src)
    except OSError as e:
        raise StoreError('cannot read src %s: %s' % (opts.src, e.strerror)) from None


def _source_digest(opts: Options, algo: str) -> str:
    try:
        return file_digest(opts.src, algo, use_cache=False)
    except OSError as e:
        raise StoreError('cannot read src %s: %s' % (opts.src, e.strerror)) from None


def ensure(opts: Options, opener=None) -> Result:
    """Carry out one sysext_image request. Raises StoreError (host unchanged) on bad input."""
    check_name(opts.name)
    if opts.state not in STATES:
        raise StoreError('state must be one of %s' % ', '.join(STATES))
    if opts.keep < 0:
        raise StoreError('keep must be 0 or more')
    if opts.version is not None:
        check_version(opts.version, patterned=bool(opts.store_pattern))
        if not opts.store_pattern:
            check_stored_name(opts.name, opts.version)
    if opts.src and opts.url:
        raise StoreError('give either src or url, not both')
    if opts.url and not opts.checksum:
        raise StoreError('url needs a checksum (sha256:<hex>): a download is only stored once it is verified')
    try:
        checksum = parse_checksum(opts.checksum) if opts.checksum else None
    except ChecksumError as e:
        raise StoreError(str(e)) from None
    if opts.image_policy is not None:
        try:
            opts = replace(opts, image_policy=engine.parse_image_policy(opts.image_policy))
        except engine.EngineError as e:
            raise StoreError(str(e)) from None
    if not os.path.isdir(opts.root):
        raise StoreError('root %s is not a directory' % opts.root)
    lay = layout(opts.root, opts.name, opts.store_dir, opts.link_dir or DEFAULT_LINK_DIR[opts.kind], opts.store_pattern)
    if opts.version is not None and lay.patterns:
        _check_patterned_name(lay, opts.version)
    res = Result(name=opts.name, kind=opts.kind, link=lay.link)
    versions = stored_versions(lay)
    selected, foreign = current_selection(lay)
    res.previous = res.selected = selected
    res.diff = {'before': _state_text(selected, versions)}

    stale = leftovers(lay)
    if stale and not opts.check_mode:
        for p in stale:
            _unlink_quiet(lay.host(p))
        res.warnings.append('removed %d temporary file(s) of an interrupted run: %s' % (len(stale), ', '.join(stale)))

    if opts.state == 'absent':
        _absent(opts, lay, res, versions, selected, foreign)
    else:
        if opts.rollback:
            opts = _rollback_target(opts, versions, selected)
        elif not opts.version:
            raise StoreError('version is required with state=%s (or rollback: true)' % opts.state)
        if foreign and opts.state == 'selected':
            if not foreign.endswith('this module did not write'):
                raise StoreError('%s; move that image into the store or remove it, then run again' % foreign)
            res.warnings.append('%s; the link is replaced, that file is left in place' % foreign)
        _store(opts, lay, res, versions, checksum, opener)
        if opts.state == 'selected':
            _select(opts, lay, res)
        _prune(opts, lay, res)
    res.unmanaged = unmanaged_files(lay)
    if opts.state == 'absent' and not opts.version and res.unmanaged:
        res.warnings.append('left in the store, not written by this module: %s' % ', '.join(res.unmanaged))
    if res.selected:
        _check_shadowing(opts, lay, res)
    if opts.check_mode:
        after = set(versions) | ({res.version} if res.copied else set())
        res.versions = sorted((v for v in after if lay.file_for(v) not in res.removed), key=version_key)
    else:
        res.versions = stored_versions(lay)
    res.diff['after'] = _state_text(res.selected, res.versions)
    return res


def _check_patterned_name(lay: Layout, version: str) -> None:
    """The file the store pattern names ``version`` must be read back as that version."""
    fname = os.path.basename(lay.file_for(version))
    check_stored_name(lay.name, version, fname)
    if lay.version_of(fname) != version:
        raise StoreError('version %s: the store pattern %s names it %s, which that pattern reads back as version %s; '
                         'the version cannot be stored under this pattern' % (
                             version, lay.patterns[0].text, fname, lay.version_of(fname)))


def _check_shadowing(opts, lay, res) -> None:
    """Warn when systemd would merge another entry of this name: one in a directory it searches
    before the link's (systemd's search order: the first directory that has the name wins)."""
    disc = images.discover(opts.root, opts.kind)
    winner = next((i for i in disc.images if i.name == opts.name), None)
    if winner is None or winner.entry == lay.link:
        return
    link_dir = os.path.dirname(lay.link)
    try:
        shadowed = lay.link in winner.shadows or disc.search_dirs.index(os.path.dirname(winner.entry)) < \
            disc.search_dirs.index(link_dir)
    except ValueError:
        shadowed = link_dir not in disc.search_dirs
    if not shadowed:
        return
    res.shadowed_by = winner.entry
    res.warnings.append('%s %s is selected in %s, but %s comes earlier in systemd\'s search order (%s), so a '
                        'refresh merges that one, not %s; remove %s or select in its directory (link_dir)'
                        % (opts.kind, opts.name, lay.link, winner.entry, ', '.join(disc.search_dirs),
                           res.selected, winner.entry))


def _state_text(selected, versions) -> str:
    return 'selected: %s\nstored: %s\n' % (selected or '-', ' '.join(versions) or '-')


def _rollback_target(opts: Options, versions: list, selected: str | None) -> Options:
    """rollback: the newest stored version older than ``version`` (default: the newest stored
    one). Idempotent: a second run selects the same version again."""
    if not versions:
        raise StoreError('rollback of %s: nothing is stored' % opts.name)
    upper = opts.version or versions[-1]
    older = [v for v in versions if strverscmp_improved(v, upper) < 0]
    if not older:
        raise StoreError('rollback of %s: no stored version is older than %s (stored: %s); nothing to roll back to'
                         % (opts.name, upper, ', '.join(versions)))
    return Options(**dict(opts.__dict__, version=older[-1], state='selected', src=None, url=None, checksum=None,
                          rollback=False))


def _store(opts, lay, res, versions, checksum, opener) -> None:
    version = opts.version
    res.version, res.path = version, lay.file_for(version)
    same = [v for v in versions if v != version and strverscmp_improved(v, version) == 0]
    if same:
        raise StoreError('version %s of %s sorts the same as the stored %s under systemd\'s version comparison; '
                         'pick a version that sorts distinctly' % (version, opts.name, same[0]))
    host_file = lay.host(res.path)
    algo = checksum[0] if checksum else 'sha256'
    have = None
    if os.path.lexists(host_file):
        if not os.path.isfile(host_file) or os.path.islink(host_file):
            raise StoreError('%s is not a regular file; remove it' % host_file)
        have = file_digest(host_file, algo)
    want = checksum[1] if checksum else None
    if have is not None and want is None and opts.src:
        want = _source_digest(opts, algo)      # no checksum given: the same bytes as src is the same image
    want_side = _source_sidecars(opts)
    have_side = sidecar_digests(host_file) if have is not None else {}
    sidecars_ok = want_side is None or want_side == have_side
    if have is not None and (want is None or have == want) and sidecars_ok:
        res.stored = True
        res.checksum = '%s:%s' % (algo, have)
        res.sidecars = [res.path[:-len(SUFFIX)] + s for s in sorted(have_side)]
        return
    if not opts.src and not opts.url:
        if have is not None and not sidecars_ok:
            raise StoreError('%s is stored, but its dm-verity sidecars (%s) are not the source\'s (%s); give src '
                             'to store them' % (host_file, ', '.join(sorted(have_side)) or 'none',
                                                ', '.join(sorted(want_side)) or 'none'), stored=False)
        if have is not None:
            raise StoreError('%s has %s:%s, not the expected %s:%s; give src or url to replace it'
                             % (host_file, algo, have, algo, want), stored=False)
        raise StoreError('version %s of %s is not in the store %s; give src or url' % (version, opts.name,
                                                                                       lay.host(lay.store)), stored=False)
    res.checksum = '%s:%s' % (algo, want) if want else None
    res.stored = res.copied = res.changed = True
    res.sidecars = [res.path[:-len(SUFFIX)] + s for s in sorted(want_side or {})]
    if opts.check_mode:
        if opts.src and checksum and _source_digest(opts, algo) != want:
            raise StoreError('%s: src %s has %s:%s, expected %s:%s; nothing was stored'
                             % (opts.name, opts.src, algo, _source_digest(opts, algo), algo, want))
        if opts.src and opts.state == 'selected':
            _require_compatible(opts, res, opts.src)
        elif opts.url:
            res.warnings.append('check mode: %s was not downloaded, so its checksum and compatibility were not checked'
                                % opts.url)
        return
    host_dir = lay.host(lay.store)
    try:
        makedirs(host_dir)
    except OSError as e:
        raise _write_error(e, 'creating the store', os.path.dirname(host_dir)) from None
    reader = _source_reader(opts, opener)
    try:
        tmp, got = copy_in(reader, host_dir, os.path.basename(host_file), algo, opts.url or opts.src)
    finally:
        reader.close()
    try:
        if want is not None and got != want:
            raise StoreError('%s: %s has %s:%s, expected %s:%s (truncated or wrong file?); nothing was stored'
                             % (opts.name, opts.url or opts.src, algo, got, algo, want))
        res.checksum = '%s:%s' % (algo, got)
        staged = _stage_sidecars(opts, tmp, host_dir)
        if opts.state == 'selected':
            _require_compatible(opts, res, tmp)      # with the sidecars beside it, as they will be
        for suffix in VERITY_SIDECARS:
            final = host_file[:-len(SUFFIX)] + suffix
            if suffix in staged:
                os.replace(staged.pop(suffix), final)
            else:
                _unlink_quiet(final)                # a sidecar of the earlier file, not of this one
        os.replace(tmp, host_file)
    except BaseException:
        _unlink_quiet(tmp)
        for suffix in VERITY_SIDECARS:
            _unlink_quiet(tmp + suffix)
        raise
    cache_digest(host_file, algo, got)
    fsync_path(host_dir, directory=True)


def _source_sidecars(opts) -> dict | None:
    """suffix -> checksum of the sidecars the stored version must have: those beside src, else
    the ones the action plugin found beside the controller's file; None (any) for a url."""
    if opts.src:
        try:
            return sidecar_digests(opts.src)
        except OSError as e:
            raise StoreError('cannot read the dm-verity sidecars of src %s: %s' % (opts.src, e.strerror)) from None
    return opts.sidecar_checksums


def _stage_sidecars(opts, tmp: str, host_dir: str) -> dict:
    """Copy the sidecars of src beside the temporary image (``TMP.verity`` ..., where the policy
    check of TMP looks for them); suffix -> staged path."""
    staged = {}
    for suffix, path in (sidecars_of(opts.src) if opts.src else {}).items():
        staged[suffix] = tmp + suffix
        try:
            with rootfs.open_regular(path) as f:
                data = f.read()
            fd = create_new(tmp + suffix, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise _write_error(e, 'storing the sidecar %s' % path, host_dir) from None
    return staged


def _require_compatible(opts, res, host_file) -> None:
    ok, why, rel = check_image(opts.root, opts.name, opts.kind, host_file, res.path, opts.image_policy, res.link)
    res.compatible, res.compatibility, res.release = ok, why, rel
    if not ok:
        raise Incompatible('refusing to select %s %s: %s; the selection is unchanged' % (opts.name, opts.version, why))


def _select(opts, lay, res) -> None:
    if res.compatible is None:
        host_file = lay.host(res.path) if not (opts.check_mode and res.copied) else None
        if host_file:
            _require_compatible(opts, res, host_file)
    if res.selected == opts.version:
        return
    res.changed = True
    res.selected = opts.version
    if not opts.check_mode:
        set_link(lay, res.path)


def _prune(opts, lay, res) -> None:
    """Keep the selected version, every newer one (staged) and the ``keep`` newest older ones;
    also an older one that is merged now and provides the task's interpreter while the selected
    one lacks it (the rollback target when the next refresh is refused for that)."""
    if not res.selected:
        return
    versions = stored_versions(lay)
    if opts.check_mode and res.copied and opts.version not in versions:
        versions = sorted(versions + [opts.version], key=version_key)
    older = [v for v in versions if strverscmp_improved(v, res.selected) < 0]
    doomed = [lay.file_for(v) for v in older[:max(0, len(older) - opts.keep)]]
    refusal = _interpreter_refusal(opts, lay, doomed, False, res.selected, res)
    if refusal is not None:
        kept = [p for p in doomed if os.path.realpath(lay.host(p)) == os.path.realpath(refusal.details['image'])]
        doomed = [p for p in doomed if p not in kept]
        res.warnings.append('kept %s beyond keep=%d: it is merged now and holds %s, the interpreter this task runs '
                            'on, which the selected version %s lacks' % (', '.join(kept), opts.keep,
                                                                         refusal.details['path'], res.selected))
    _remove(opts, lay, res, doomed)


def _interpreter_refusal(opts, lay, doomed: list, link_goes: bool, selected: str | None, res):
    """interpreter.removal_refusal() for removing the in-root paths ``doomed`` (with the link
    when ``link_goes``); with force, a warning instead (None)."""
    if not doomed and not link_goes:
        return None
    from . import interpreter  # pylint: disable=import-outside-toplevel
    remaining = None
    if selected and not link_goes:
        # in check mode a version to be copied is not in the store yet: its source is
        new = opts.check_mode and res.copied and selected == res.version
        remaining = (opts.src if opts.src else None) if new else lay.host(lay.file_for(selected))
    refusal = interpreter.removal_refusal(opts.root, opts.kind, opts.name, [lay.host(p) for p in doomed],
                                          link_goes, remaining)
    if refusal is not None and opts.force:
        res.warnings.append(refusal.forced)
        return None
    return refusal


def _remove(opts, lay, res, doomed: list) -> None:
    """Remove in-root paths, each store file with its dm-verity sidecars (check mode: report only)."""
    for path in doomed:
        paths = [path] + ([p for p in (path[:-len(SUFFIX)] + s for s in VERITY_SIDECARS)
                           if os.path.lexists(lay.host(p))] if path.startswith(lay.store + '/') else [])
        for p in paths:
            if not opts.check_mode:
                try:
                    os.unlink(lay.host(p))
                except FileNotFoundError:
                    continue
                except OSError as e:
                    raise _write_error(e, 'removing %s' % p, os.path.dirname(lay.host(p))) from None
            res.removed.append(p)
            res.changed = True


def _absent(opts, lay, res, versions, selected, foreign) -> None:
    if opts.version:
        res.version, res.path = opts.version, lay.file_for(opts.version)
        if opts.version == selected:
            raise StoreError('version %s of %s is selected (%s); select another version first, or remove the '
                             'whole extension with state=absent and no version' % (opts.version, opts.name, lay.link))
        doomed = [res.path] if opts.version in versions else []
    else:
        if foreign:
            raise StoreError('%s; it was not made by this module, remove it yourself' % foreign)
        doomed = ([lay.link] if selected else []) + [lay.file_for(v) for v in versions]
    files = [p for p in doomed if p != lay.link]
    refusal = _interpreter_refusal(opts, lay, files, lay.link in doomed, selected, res)
    if refusal is not None:
        raise InterpreterInUse(refusal.msg, refusal.details)
    if not opts.version:
        res.selected = None
    _remove(opts, lay, res, doomed)
    if not opts.version and not opts.check_mode:
        try:
            os.rmdir(lay.host(lay.store))
        except OSError:
            pass
