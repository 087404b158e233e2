# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the plan needs to know of each image: its container, file system, compression and
partition, its extension-release (found as open_extension_release() finds it) and the
hierarchies it has directories for.

Image files are read through ``imagefs`` (in place where a reader here decodes the format,
else through a detached read-only mount) once per identity: the result is kept in
ROOT/run/tucked-sysext/images.json, keyed by the class, the name, and the image's device,
inode, size, mtime and ctime, so that the no-change path of every format is one stat and one
small JSON read, with no decoding and no mounting. ``TUCKED_SYSEXT_IMAGE_CACHE=0`` turns it off.
Directories are read every time (their content changes without any of those changing).
"""

from __future__ import annotations

import base64
import errno
import json
import os
import stat

from . import rootfs, verity
from .imagefs import image as imagefs
from .imagefs import partition as partition_mod
from .release import MAX_RELEASE_SIZE, ReleaseError, parse_boolean, read_release_bytes

RELEASE_DIR = {'sysext': '/usr/lib/extension-release.d', 'confext': '/etc/extension-release.d'}
HIERARCHIES = {'sysext': ('/usr', '/opt'), 'confext': ('/etc',)}
STRICT_XATTR = 'user.extension-release.strict'
MAX_RELEASE = MAX_RELEASE_SIZE    # as systemd reads it: read_full_stream(), up to READ_FULL_BYTES_MAX
CACHE_FILE = 'images.json'
CACHE_DIR = '/run/tucked-sysext'
CACHE_VERSION = 1
CACHE_MAX_ENTRIES = 4096
CACHE_MAX_BYTES = 4 * 1024 * 1024


class NotRegular(imagefs.ImageError):
    """A release file that is not a regular file."""


class NoReleaseFile(FileNotFoundError):
    """No release file for the image; ``unreadable`` lists the candidates passed over because
    their user.extension-release.strict xattr could not be read ((path, error) pairs)."""

    def __init__(self, wanted: str, unreadable: list):
        super().__init__(errno.ENOENT, 'no %s' % wanted)
        self.unreadable = unreadable


def base_name(name: str) -> str:
    """path_extract_image_name(): the name without image suffixes and without the version or
    tries counter that follow the first ``_`` or ``+`` (``foo_1.2`` -> ``foo``)."""
    for suf in ('.sysext.raw', '.confext.raw', '.raw'):
        if name.endswith(suf):
            name = name[:-len(suf)]
            break
    for i, c in enumerate(name):
        if c in '_+':
            return name[:i]
    return name


def _valid_name(name: str) -> bool:
    from .images import image_name_is_valid  # pylint: disable=import-outside-toplevel
    return image_name_is_valid(name)


def find_release(tree: imagefs.Tree, name: str, cls: str) -> str:
    """open_extension_release(): the in-image path of the release file for ``name``.

    ``extension-release.NAME`` first; if it is missing (a renamed image), the single file
    ``extension-release.*`` named after NAME without its version (``foo`` for ``foo_1.2`` or
    ``foo+3``, path_extract_image_name()) or whose user.extension-release.strict xattr is false.
    Raises FileNotFoundError (NoReleaseFile) when there is none and ReleaseError when several
    qualify. A candidate whose xattr cannot be read is passed over, as systemd passes it over
    (extension_release_strict_xattr_value() logs it at debug level only); NoReleaseFile names
    it, so that the reason can say why a release file that is there was not taken.
    """
    rdir = RELEASE_DIR[cls]
    wanted = '%s/extension-release.%s' % (rdir, name)
    if tree.exists(wanted):
        return wanted
    try:
        candidates = sorted(tree.list_dir(rdir))
    except (OSError, imagefs.ImageError):
        raise FileNotFoundError(errno.ENOENT, 'no %s' % wanted) from None
    found = None
    unreadable = []
    base = base_name(name)
    for fname in candidates:
        other = fname[len('extension-release.'):] if fname.startswith('extension-release.') else None
        if not other or not _valid_name(other):
            continue
        path = '%s/%s' % (rdir, fname)
        try:
            if not stat.S_ISREG(tree.lstat_mode(path)):
                continue
        except (OSError, imagefs.ImageError):
            continue
        if other != base:
            try:
                xv = tree.get_xattr(path, STRICT_XATTR)
            except imagefs.NeedsMount:
                raise
            except (OSError, imagefs.ImageError) as e:
                unreadable.append((path, str(e)))
                continue
            if xv is None or parse_boolean(xv.decode('utf-8', 'replace')) is not False:
                continue
        if found is not None:
            raise ReleaseError('%s holds more than one release file that may be %s\'s (named %s or marked %s=false: '
                               '%s, %s); keep one' % (rdir, name, 'extension-release.' + base, STRICT_XATTR, found, path))
        found = path
    if found is None:
        raise NoReleaseFile(wanted, unreadable)
    return found


def read_tree(tree: imagefs.Tree, name: str, cls: str) -> dict:
    """release_file, release (bytes) and provides of the extension ``name`` in ``tree``."""
    rel = find_release(tree, name, cls)
    try:
        data = tree.read_file(rel, MAX_RELEASE)
    except imagefs.TooLarge:
        raise
    except imagefs.NeedsMount:
        raise
    except imagefs.ImageError as e:
        if 'not a regular file' in str(e):
            raise NotRegular('%s is not a regular file' % rel) from None
        raise
    provides = tuple(h for h in HIERARCHIES[cls] if tree.is_dir(h))
    return {'release_file': rel, 'release': data, 'provides': provides}


def read_file_image(host_path: str, name: str, cls: str, architecture: str) -> dict:
    """The metadata of an image file or block device: its layout and what ``read_tree`` finds."""
    fd = os.open(host_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise NotRegular('%s is neither a regular file nor a block device' % host_path)
        src = imagefs.Source(fd)
        layout = imagefs.locate(src, cls, architecture)
        meta = {'layout': layout}
        try:
            with imagefs.open_tree(src, layout, host_path) as tree:
                meta.update(read_tree(tree, name, cls))
        except imagefs.NeedsMount:
            with imagefs.open_tree(src, layout, host_path, mount=True) as tree:
                meta.update(read_tree(tree, name, cls))
        return meta
    finally:
        os.close(fd)


def read_directory(host_path: str, name: str, cls: str) -> dict:
    with imagefs.open_directory(host_path) as tree:
        return dict(read_tree(tree, name, cls), layout=None)


# ---------------------------------------------------------------------------- the cache
def _key(st: os.stat_result, name: str, cls: str, architecture: str) -> str:
    return '%s %s %s %d:%d %d %d %d %d %s' % (cls, architecture, ':'.join(partition_mod.allowed_fstypes()), st.st_dev,
                                              st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                              stat.S_IFMT(st.st_mode), name)


def _encode(meta: dict, host_path: str, name: str, cls: str, architecture: str) -> dict:
    lay = meta['layout']
    return {'path': host_path, 'name': name, 'class': cls, 'architecture': architecture,
            'layout': lay.to_json() if lay is not None else None, 'release_file': meta['release_file'],
            'release': base64.b64encode(meta['release']).decode('ascii'), 'provides': list(meta['provides'])}


def _decode(entry: dict) -> dict | None:
    try:
        lay = entry['layout']
        return {'layout': imagefs.Layout.from_json(lay) if lay is not None else None,
                'release_file': entry['release_file'], 'release': base64.b64decode(entry['release']),
                'provides': tuple(entry['provides'])}
    except (KeyError, TypeError, ValueError, IndexError):
        return None


class Cache:
    """ROOT/run/tucked-sysext/images.json, read at the first lookup and written back once
    (``save``) when something was added; every failure to read or write it is harmless.
    ``write``: ``create`` (make ROOT/run/tucked-sysext when missing), ``update`` (write only into
    an existing one, which a merge of ours leaves) or ``off`` (check mode: write nothing)."""

    def __init__(self, root: str, enabled: bool | None = None, write: str = 'update'):
        if write not in ('create', 'update', 'off'):
            raise ValueError('write=%r' % write)
        self.root = root
        self.enabled = os.environ.get('TUCKED_SYSEXT_IMAGE_CACHE', '1') != '0' if enabled is None else enabled
        self.write = write
        self._entries: dict | None = None
        self._used: set = set()
        self._dirty = False

    def _dir(self, create: bool) -> str | None:
        try:
            run = rootfs.resolve(self.root, '/run')
        except OSError:
            return None
        path = os.path.join(run, os.path.basename(CACHE_DIR))
        if create and not os.path.lexists(path):
            try:
                os.mkdir(path, 0o755)
            except OSError:
                return None
        try:
            st = os.lstat(path)
        except OSError:
            return None
        return path if stat.S_ISDIR(st.st_mode) else None

    def _load(self) -> dict:
        if self._entries is None:
            self._entries = {}
            d = self._dir(create=False) if self.enabled else None
            if d is not None:
                try:
                    fd = os.open(os.path.join(d, CACHE_FILE), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
                    try:
                        if stat.S_ISREG(os.fstat(fd).st_mode):
                            doc = json.loads(os.read(fd, CACHE_MAX_BYTES + 1).decode('utf-8'))
                            if isinstance(doc, dict) and doc.get('version') == CACHE_VERSION \
                                    and isinstance(doc.get('entries'), dict):
                                self._entries = doc['entries']
                    finally:
                        os.close(fd)
                except (OSError, ValueError, RecursionError):
                    pass
        return self._entries

    def get(self, key: str) -> dict | None:
        if not self.enabled:
            return None
        entry = self._load().get(key)
        meta = _decode(entry) if isinstance(entry, dict) else None
        if meta is not None:
            self._used.add(key)
        return meta

    def put(self, key: str, meta: dict, img, architecture: str) -> None:
        if self.enabled:
            self._load()[key] = _encode(meta, img.host_path, img.name, img.cls, architecture)
            self._used.add(key)
            self._dirty = True

    def save(self) -> None:
        """Write the entries back when some were added: the ones used now, and the others whose
        image is still there unchanged."""
        if not self._dirty or self.write == 'off':
            return
        self._dirty = False
        keep = {}
        for key, entry in self._load().items():
            if key not in self._used:
                try:
                    if _key(os.stat(entry['path']), entry['name'], entry['class'], entry['architecture']) != key:
                        continue
                except (OSError, KeyError, TypeError):
                    continue
            keep[key] = entry
            if len(keep) >= CACHE_MAX_ENTRIES:
                break
        d = self._dir(create=self.write == 'create')
        if d is None:
            return
        tmp = os.path.join(d, '.#%s.%d' % (CACHE_FILE, os.getpid()))
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            try:
                os.write(fd, json.dumps({'version': CACHE_VERSION, 'entries': keep}).encode('utf-8'))
            finally:
                os.close(fd)
            os.rename(tmp, os.path.join(d, CACHE_FILE))
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# ---------------------------------------------------------------------------- filling an Image
def load(img, cache: Cache | None, architecture: str) -> None:
    """Fill ``img`` (images.Image): release, release_file, provides, fstype, compression,
    container, layout; on failure ``readable``/``reason``."""
    shown = img.host_path
    try:
        if img.type == 'directory':
            meta = read_directory(img.host_path, img.name, img.cls)
        else:
            st = img.st or os.stat(img.host_path)
            key = _key(st, img.name, img.cls, architecture) if stat.S_ISREG(st.st_mode) else None
            meta = cache.get(key) if cache is not None and key else None
            if meta is None:
                meta = read_file_image(img.host_path, img.name, img.cls, architecture)
                if cache is not None and key:
                    cache.put(key, meta, img, architecture)
        lay = meta['layout']
        img.layout = lay
        if lay is not None:
            img.container, img.fstype, img.compression = lay.container, lay.fstype, lay.compression
        img.release_file = meta['release_file']
        img.provides = meta['provides']
        img.release = read_release_bytes(meta['release'], '%s (in %s)' % (meta['release_file'], shown))
    except FileNotFoundError as e:
        img.readable = False
        if e.filename and not str(e).startswith('no '):
            img.reason = '%s: %s' % (e.filename, e.strerror)
            return
        names = dict.fromkeys((img.name, base_name(img.name)))
        img.reason = ('%s has no %s/extension-release.%s; add one (or set %s=false on a renamed image\'s '
                      'release file)' % (shown, RELEASE_DIR[img.cls].lstrip('/'), ' or extension-release.'.join(names),
                                         STRICT_XATTR))
        for path, why in getattr(e, 'unreadable', ()):
            img.reason += ('; %s in it was passed over, as systemd passes it over: its %s xattr cannot be read (%s): '
                           'is the image corrupt?' % (path, STRICT_XATTR, why))
    except imagefs.TooLarge:
        img.readable = False
        img.reason = ('%s: its release file %s is larger than %d bytes; a release file holds a few KEY=VALUE '
                      'lines' % (shown, img.release_file or 'extension-release.' + img.name, MAX_RELEASE))
    except NotRegular as e:
        img.readable = False
        img.reason = '%s: %s; make it a file with KEY=VALUE lines' % (shown, e)
    except imagefs.UnsupportedImage as e:
        img.readable = False
        img.reason = '%s: %s' % (shown, e)
        img.fatal_shared = not isinstance(e, imagefs.NeedsPrivilege)
    except verity.VerityError as e:
        img.readable = False
        img.reason = '%s: %s' % (shown, e)
    except imagefs.ImageError as e:
        img.readable = False
        img.reason = '%s: cannot read the release file: %s (is the image corrupt?)' % (shown, e)
    except ReleaseError as e:
        img.readable = False
        img.reason = str(e)
    except OSError as e:
        img.readable = False
        img.reason = '%s: %s' % (e.filename or shown, e.strerror)
