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
import re
import stat
from dataclasses import dataclass, field, replace

from . import config, engine, imagecheck, imagemeta, images, release, rootfs, vpick
from .release import CONFEXT, SYSEXT
from .version import strverscmp_improved, version_key

DEFAULT_STORE_DIR = '/opt/extensions'
# /etc/confexts is not a directory systemd-confext searches; /var/lib/confexts is.
DEFAULT_LINK_DIR = {SYSEXT: '/etc/extensions', CONFEXT: '/var/lib/confexts'}
SUFFIX = '.raw'
TMP_PREFIX = '.#'
STORE_FILE_OF_ANOTHER_TOOL = '%s points to %s, a file in the store this module did not write'
ALGORITHMS = ('sha256', 'sha384', 'sha512')
# dm-verity sidecars systemd looks for beside an image file (.raw replaced), src/shared/dissect-image.c
VERITY_SIDECARS = ('.verity', '.roothash', '.roothash.p7s', '.usrhash', '.usrhash.p7s')
STATES = ('present', 'selected', 'absent')
CHUNK = 1 << 20
_VERSION_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9.~^-]{0,127}$')


class StoreError(Exception):
    """A request that cannot be carried out; nothing on the host was changed.
    ``stored`` is False when the wanted version is not in the store and no source was given."""

    def __init__(self, msg: str, stored: bool | None = None):
        super().__init__(msg)
        self.stored = stored


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
    keep: int = 2
    rollback: bool = False
    image_policy: str | None = None  # None: the root's sysext.conf / confext.conf, else systemd's default
    sidecar_checksums: dict | None = None   # suffix -> 'sha256:HEX' the stored sidecars must have (None: any)
    check_mode: bool = False


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


# ----------------------------------------------------------------------------- validation
def check_name(name: str) -> None:
    if not name or '/' in name or name.startswith('.') or not images.image_name_is_valid(name) \
            or name.endswith(SUFFIX) or any(c.isspace() for c in name):
        raise StoreError("invalid extension name %r: use a plain file name such as 'docker' (no '/', no "
                         "leading '.', no whitespace, without the .raw suffix)" % (name,))


def check_version(version: str) -> None:
    if not version or not _VERSION_RE.match(version):
        raise StoreError("invalid version %r: start with a letter or digit and use only letters, digits and "
                         "'.', '~', '^', '-' (systemd's version comparison ignores every other character, so "
                         "such versions would not sort as they read)" % (version,))
    arch = architecture_suffix(version)
    if arch:
        raise StoreError("version %r ends in the architecture %s, which the NAME-VERSION-ARCH.raw naming of "
                         "systemd-sysupdate and sysext-bakery reads as the architecture, not the version: give the "
                         "version without -%s" % (version, arch, arch))


def architecture_suffix(version: str) -> str | None:
    """The systemd architecture name (src/basic/architecture.c) ``version`` ends in after a '-',
    as in sysext-bakery's and systemd-sysupdate's ``NAME-VERSION-ARCH.raw`` (``docker-27.3.1-x86-64.raw``);
    None when it ends in none. The longest name wins (``arm64-be`` over ``be``)."""
    found = [a for a in vpick.ARCHITECTURES if version.endswith('-' + a) and len(version) > len(a) + 1]
    return max(found, key=len) if found else None


def parse_store_file(name: str, fname: str) -> tuple[str, str | None] | None:
    """(version, architecture) of a store file ``NAME-VERSION[-ARCH].raw``; None for any other
    name. Only files without an architecture are this module's own versions."""
    prefix = name + '-'
    if not (fname.startswith(prefix) and fname.endswith(SUFFIX)):
        return None
    stem = fname[len(prefix):-len(SUFFIX)]
    arch = architecture_suffix(stem)
    version = stem[:-len(arch) - 1] if arch else stem
    return (version, arch) if _VERSION_RE.match(version) else None


def parse_checksum(value: str) -> tuple[str, str]:
    """'sha256:HEX' -> ('sha256', 'hex'); bare hex of 64 characters is sha256."""
    algo, sep, hexd = value.strip().partition(':')
    if not sep:
        algo, hexd = 'sha256', algo
    algo = algo.lower()
    hexd = hexd.lower()
    size = {'sha256': 64, 'sha384': 96, 'sha512': 128}.get(algo)
    if size is None:
        raise StoreError('checksum %r: unsupported algorithm %r; use one of %s, as in sha256:<64 hex digits>'
                         % (value, algo, ', '.join(ALGORITHMS)))
    if len(hexd) != size or any(c not in '0123456789abcdef' for c in hexd):
        raise StoreError('checksum %r: expected %s:<%d hex digits>' % (value, algo, size))
    return algo, hexd


# ----------------------------------------------------------------------------- layout
@dataclass
class Layout:
    root: str
    name: str
    store: str          # in-root store directory of this name (resolved)
    link_dir: str       # in-root link directory (resolved)

    def host(self, inroot: str) -> str:
        return rootfs.host_path(self.root, inroot)

    def file_for(self, version: str) -> str:
        return '%s/%s-%s%s' % (self.store, self.name, version, SUFFIX)

    @property
    def link(self) -> str:
        return '%s/%s%s' % (self.link_dir.rstrip('/'), self.name, SUFFIX)


def _chase_dir(root: str, path: str, what: str) -> str:
    if not path.startswith('/'):
        raise StoreError('%s %r must be an absolute path (inside root)' % (what, path))
    try:
        return rootfs.chase(root, path, missing_ok=True)
    except OSError as e:
        raise StoreError('%s %s cannot be resolved inside %s: %s' % (what, path, root, e.strerror)) from None


def layout(root: str, name: str, store_dir: str, link_dir: str) -> Layout:
    store = _chase_dir(root, store_dir, 'store_dir').rstrip('/') + '/' + name
    store = _chase_dir(root, store, 'store_dir')
    link = _chase_dir(root, link_dir, 'link_dir')
    searched = {d for cls in (SYSEXT, CONFEXT) for d in images.SEARCH_DIRS_INITRD[cls]}
    parent = _chase_dir(root, store_dir, 'store_dir')
    if parent in searched or any(parent.startswith(d + '/') for d in searched):
        raise StoreError('store_dir %s is (inside) a directory systemd searches for extensions, so every '
                         'stored version would be merged; use a directory outside them, such as %s'
                         % (store_dir, DEFAULT_STORE_DIR))
    return Layout(root=os.path.abspath(root), name=name, store=store, link_dir=link)


def _store_entries(lay: Layout) -> list[str]:
    try:
        return os.listdir(lay.host(lay.store))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StoreError('cannot list the store %s: %s' % (lay.host(lay.store), e.strerror)) from None


def stored_versions(lay: Layout) -> list[str]:
    """This module's versions in the store (``NAME-VERSION.raw``), oldest first, in systemd's order."""
    found = []
    for fname in _store_entries(lay):
        parsed = parse_store_file(lay.name, fname)
        if parsed and parsed[1] is None:
            found.append(parsed[0])
    return sorted(found, key=version_key)


def unmanaged_files(lay: Layout) -> list[str]:
    """In-root paths of the files in the store that are not this module's versions nor its
    temporary files (``NAME-VERSION-ARCH.raw`` of sysext-bakery or systemd-sysupdate, anything
    else): never selected, pruned or removed."""
    out = []
    for fname in _store_entries(lay):
        parsed = parse_store_file(lay.name, fname)
        if not (parsed and parsed[1] is None) and not fname.startswith(TMP_PREFIX + lay.name + '-'):
            out.append('%s/%s' % (lay.store, fname))
    return sorted(out)


def leftovers(lay: Layout) -> list[str]:
    """Temporary files of interrupted runs (ours: ``.#NAME-VERSION.raw.PID`` in the store,
    ``.#NAME.raw.PID`` links) whose process is gone: a run still writing one is left alone."""
    out = []
    for d, prefix in ((lay.store, TMP_PREFIX + lay.name + '-'), (lay.link_dir, TMP_PREFIX + lay.name + SUFFIX)):
        try:
            names = os.listdir(lay.host(d))
        except OSError:
            continue
        out += ['%s/%s' % (d, f) for f in names if f.startswith(prefix) and not _writer_alive(f)]
    return out


def _writer_alive(fname: str) -> bool:
    """Whether the process named by the ``.PID`` suffix of a temporary file still runs."""
    # .#NAME-VERSION.raw.PID, its staged sidecars .#NAME-VERSION.raw.PID.verity ...
    m = re.search(r'\.raw\.(\d+)(?:\.|$)', fname)
    pid = m.group(1) if m else ''
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True         # it runs, as another user
    return True


def current_selection(lay: Layout) -> tuple[str | None, str | None]:
    """(version selected by the link, or None; a description when the link exists but is not
    one of ours: a regular file, or a symlink to something outside this name's store)."""
    host_link = lay.host(lay.link)
    try:
        st = os.lstat(host_link)
    except FileNotFoundError:
        return None, None
    except OSError as e:
        raise StoreError('cannot read %s: %s' % (host_link, e.strerror)) from None
    if not stat.S_ISLNK(st.st_mode):
        return None, '%s is a %s, not a symlink into the store' % (
            host_link, 'directory' if stat.S_ISDIR(st.st_mode) else 'file')
    try:
        target = rootfs.chase(lay.root, lay.link)
    except FileNotFoundError:
        return None, '%s is a dangling symlink (to %s)' % (host_link, os.readlink(host_link))
    except OSError as e:
        return None, '%s cannot be resolved: %s' % (host_link, e.strerror)
    d, fname = os.path.split(target)
    parsed = parse_store_file(lay.name, fname) if d == lay.store else None
    if parsed and parsed[1] is None:
        return parsed[0], None
    if d == lay.store:
        return None, STORE_FILE_OF_ANOTHER_TOOL % (host_link, target)
    return None, '%s points to %s, outside the store %s' % (host_link, target, lay.host(lay.store))


# ----------------------------------------------------------------------------- digests
def file_digest(path: str, algo: str = 'sha256', use_cache: bool = True) -> str:
    """Hex digest of a file. For files in the store, the digest is cached in an xattr keyed
    by size, mtime and inode, so that a run with nothing to do reads no image contents."""
    st = os.stat(path)
    if use_cache:
        cached = images.cached_digest(path, st)
        if cached and cached.startswith(algo + ':'):
            return cached[len(algo) + 1:]
    h = hashlib.new(algo)
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(CHUNK), b''):
            h.update(chunk)
    hexd = h.hexdigest()
    if use_cache:
        _cache_digest(path, algo, hexd)
    return hexd


def _cache_digest(path: str, algo: str, hexd: str) -> None:
    try:
        os.setxattr(path, images.DIGEST_XATTR, (images.digest_key(os.stat(path), algo) + hexd).encode())
    except OSError:
        pass        # no user xattrs on this filesystem: the digest is recomputed next time


def sidecars_of(host_path: str) -> dict:
    """suffix -> host path of the dm-verity sidecars beside an image, named as systemd looks for
    them (``NAME.raw`` -> ``NAME.verity``, ``NAME.roothash``, ``NAME.roothash.p7s`` ...)."""
    base = host_path[:-len(SUFFIX)] if host_path.endswith(SUFFIX) else host_path
    return {s: base + s for s in VERITY_SIDECARS if os.path.isfile(base + s)}


def sidecar_digests(host_path: str) -> dict:
    """suffix -> 'sha256:HEX' of the sidecars beside an image."""
    return {s: 'sha256:' + file_digest(p, 'sha256', use_cache=False) for s, p in sidecars_of(host_path).items()}


# ----------------------------------------------------------------------------- writing
def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _space_hint(path: str) -> str:
    try:
        sv = os.statvfs(path)
        return ' (%d bytes free there)' % (sv.f_bavail * sv.f_frsize)
    except OSError:
        return ''


def _write_error(e: OSError, what: str, where: str) -> StoreError:
    if e.errno == errno.ENOSPC:
        return StoreError('%s: no space left on the device of %s%s; free space or choose another store_dir. '
                          'Nothing was replaced.' % (what, where, _space_hint(where)))
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
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as e:
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
        _fsync_dir(host_dir)
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


# ----------------------------------------------------------------------------- the request
def _source_reader(opts: Options, opener):
    if opts.url:
        return opener(opts.url)
    try:
        return open(opts.src, 'rb')
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
        check_version(opts.version)
    if opts.src and opts.url:
        raise StoreError('give either src or url, not both')
    if opts.url and not opts.checksum:
        raise StoreError('url needs a checksum (sha256:<hex>): a download is only stored once it is verified')
    checksum = parse_checksum(opts.checksum) if opts.checksum else None
    if opts.image_policy is not None:
        try:
            opts = replace(opts, image_policy=engine.parse_image_policy(opts.image_policy))
        except engine.EngineError as e:
            raise StoreError(str(e)) from None
    if not os.path.isdir(opts.root):
        raise StoreError('root %s is not a directory' % opts.root)
    lay = layout(opts.root, opts.name, opts.store_dir, opts.link_dir or DEFAULT_LINK_DIR[opts.kind])
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
    _cache_digest(host_file, algo, got)
    _fsync_dir(host_dir)


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
            with open(path, 'rb') as f:
                data = f.read()
            fd = os.open(tmp + suffix, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
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
        raise StoreError('refusing to select %s %s: %s; the selection is unchanged' % (opts.name, opts.version, why))


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
    """Keep the selected version, every newer one (staged) and the ``keep`` newest older ones."""
    if not res.selected:
        return
    versions = stored_versions(lay)
    if opts.check_mode and res.copied and opts.version not in versions:
        versions = sorted(versions + [opts.version], key=version_key)
    older = [v for v in versions if strverscmp_improved(v, res.selected) < 0]
    _remove(opts, lay, res, [lay.file_for(v) for v in older[:max(0, len(older) - opts.keep)]])


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
        res.selected = None
    _remove(opts, lay, res, doomed)
    if not opts.version and not opts.check_mode:
        try:
            os.rmdir(lay.host(lay.store))
        except OSError:
            pass


# ----------------------------------------------------------------------------- fleet rollouts
def class_of(item: dict) -> str:
    """The class (sysext / confext, systemd's word) of a wanted item; ``kind`` is the older word."""
    return item.get('class') or item.get('kind') or SYSEXT


def pending_reasons(facts: dict, wanted: list, store_dir: str = DEFAULT_STORE_DIR, remove: list = (),
                    checksums: dict | None = None) -> list[str]:
    """Why a host (its ``ansible_facts.sysext``) is not yet in the wanted state; [] when it is.

    ``wanted``: items with name, version, class (default sysext; or kind) and optionally checksum;
    ``checksums``: 'KIND/NAME' -> checksum of the controller's file, for items without one;
    ``remove``: names, or dicts with name and class (or kind). Stat-level facts only: an image counts as
    current when the store file of that version is the one systemd would merge, and its cached
    digest (see sysext_image) equals the wanted checksum. Anything unknown counts as pending,
    so the caller then runs the real tasks, which decide exactly.
    """
    reasons = []
    if facts.get('needs_refresh'):
        reasons.append('a refresh is needed (%s)' % ', '.join(
            sorted(c for c, v in (facts.get('classes') or {}).items() if v.get('needs_refresh'))))
    used = {(i.get('class'), i.get('name')): i for i in facts.get('images') or [] if i.get('type') != 'ignored'}
    root_store = '/' + store_dir.strip('/')
    for w in wanted:
        kind, name, version = class_of(w), w['name'], str(w['version'])
        img = used.get((kind, name))
        path = '%s/%s/%s-%s%s' % (root_store, name, name, version, SUFFIX)
        if img is None:
            reasons.append('%s %s: not selected' % (kind, name))
            continue
        if img.get('path') != path:
            reasons.append('%s %s: %s is selected, not %s' % (kind, name, img.get('path'), path))
            continue
        if not img.get('compatible'):
            reasons.append('%s %s: %s' % (kind, name, img.get('reason') or 'not compatible'))
            continue
        want = w.get('checksum') or (checksums or {}).get('%s/%s' % (kind, name))
        if not want:
            reasons.append('%s %s: no checksum to compare with' % (kind, name))
            continue
        try:
            algo, hexd = parse_checksum(want)
        except StoreError as e:
            reasons.append('%s %s: %s' % (kind, name, e))
            continue
        if img.get('digest') != '%s:%s' % (algo, hexd):
            reasons.append('%s %s: the stored file is not known to have %s:%s' % (kind, name, algo, hexd))
    for r in remove:
        kind, name = (class_of(r), r['name']) if isinstance(r, dict) else (SYSEXT, r)
        if (kind, name) in used:
            reasons.append('%s %s: still present, to be removed' % (kind, name))
    return reasons
