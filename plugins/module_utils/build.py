# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Building extension images from a directory tree, reproducibly.

The tree in ``src`` is copied into a staging directory next to ``dest`` (``src`` is never
changed), the extension-release file is written into the copy, and ``mksquashfs`` or
``mkfs.erofs`` turns it into an image with every owner root, every timestamp
``SOURCE_DATE_EPOCH`` and every directory sorted, so that the same inputs give the same bytes.
The image is renamed into place only when complete; a failure leaves no partial file and
never replaces a good image.

Idempotence: after a build, a record is stored in the ``user.tucked.build`` xattr of ``dest``
(keyed by its size, mtime and inode): the digest of the inputs (every staged path, type,
mode, symlink target, hard link, xattr and the sha256 of every file, the parameters and
the identity of the tool) and the image's sha256. A later run hashes ``src`` and, when the
digest matches, does nothing. Without a matching record (another tool made ``dest``, no
user xattrs on that filesystem, changed inputs) the image is built aside and compared
byte for byte: an identical image is kept as it is (same inode, same mtime), so an overlay
that merged it is not seen as replaced.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field

from . import imagefs, imagemeta, images
from .release import CONFEXT, SYSEXT, ReleaseError, level_key, parse_env, scope_key

FORMATS = ('squashfs', 'erofs')
KINDS = (SYSEXT, CONFEXT)
# Compressors each tool accepts; the first is the default.
COMPRESSION = {'squashfs': ('gzip', 'xz', 'lzma', 'lzo', 'lz4', 'zstd'), 'erofs': ('none', 'lz4', 'lz4hc')}
# What imagefs.py (and so sysext_facts and sysext_image) can read without mounting.
# read in place (imagefs); the others only through a read-only mount, which needs root
READABLE = {'squashfs': ('gzip', 'xz', 'lzma', 'lz4'), 'erofs': ('none',)}
TOOLS = {'squashfs': ('mksquashfs', 'squashfs-tools'), 'erofs': ('mkfs.erofs', 'erofs-utils'),
         'verity': ('veritysetup', 'cryptsetup-bin')}
TOP_LEVEL = {SYSEXT: ('usr', 'opt'), CONFEXT: ('etc',)}
SCOPES = ('system', 'initrd', 'portable')
# systemd's architecture names (src/basic/architecture.c), plus _any.
ARCHITECTURES = ('_any', 'alpha', 'arc', 'arc-be', 'arm', 'arm-be', 'arm64', 'arm64-be', 'cris', 'ia64',
                 'loongarch64', 'm68k', 'mips', 'mips-le', 'mips64', 'mips64-le', 'nios2', 'parisc', 'parisc64',
                 'ppc', 'ppc-le', 'ppc64', 'ppc64-le', 'riscv32', 'riscv64', 's390', 's390x', 'sh', 'sh64',
                 'sparc', 'sparc64', 'tilegx', 'x86', 'x86-64')
RECORD_XATTR = 'user.tucked.build'
RECORD_VERSION = 1        # bump when the tool flags change, so that old records no longer match
TMP_PREFIX = '.#'
SUFFIX = '.raw'
EPOCH_MAX = 0xFFFFFFFF    # squashfs stores 32-bit unsigned timestamps
CHUNK = 1 << 20
# os-release field values that need no quoting (systemd writes them bare too).
_BARE = re.compile(r'^[A-Za-z0-9_.:/@%+=,-]*$')
_KEY = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
# ID, VERSION_ID and the levels follow os-release(5): lower-case letters, digits, '.', '_', '-'.
_ID_LIKE = re.compile(r'^[a-z0-9._-]+$')
_VERSION_ID = re.compile(r'^[A-Za-z0-9._~-]+$')
_VERSION = re.compile(r'^[A-Za-z0-9][A-Za-z0-9.~^-]{0,127}$')


class BuildError(Exception):
    """A request that cannot be carried out; ``dest`` was not changed."""


@dataclass
class Options:
    src: str
    dest: str
    name: str | None = None              # default: basename of dest without .raw (and .sysext/.confext)
    kind: str = SYSEXT
    format: str = 'squashfs'
    compression: str | None = None       # default: COMPRESSION[format][0]
    release: dict | None = None          # further KEY: value fields
    id: str | None = None                # default _any
    version_id: str | None = None
    level: str | None = None
    architecture: str | None = None
    scope: list | None = None
    version: str | None = None           # IMAGE_VERSION
    source_date_epoch: int | None = None  # default: $SOURCE_DATE_EPOCH, else 0
    xattrs: bool = False
    verity: bool = False
    force: bool = False
    check_mode: bool = False


@dataclass
class Result:
    changed: bool = False
    built: bool = False                  # whether a build ran (also a comparison build)
    path: str = ''
    name: str = ''
    kind: str = SYSEXT
    format: str = 'squashfs'
    compression: str = ''
    sha256: str | None = None
    size: int | None = None
    release: dict = field(default_factory=dict)
    release_file: str = ''
    inputs: str = ''
    tool: str = ''
    source_date_epoch: int = 0
    roothash: str | None = None
    verity_path: str | None = None
    roothash_path: str | None = None
    removed: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    diff: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        keys = ('changed', 'built', 'path', 'name', 'kind', 'format', 'compression', 'sha256', 'size', 'release',
                'release_file', 'inputs', 'tool', 'source_date_epoch', 'roothash', 'verity_path', 'roothash_path',
                'removed')
        return {k: getattr(self, k) for k in keys}


# ----------------------------------------------------------------------------- validation
def default_name(dest: str, kind: str) -> str:
    """The name systemd gives an image file: the file name without ``.raw``, then without
    the class suffix (``.sysext``/``.confext``)."""
    name = os.path.basename(dest.rstrip('/'))
    if name.endswith(SUFFIX):
        name = name[:-len(SUFFIX)]
    cls_suffix = images.CLASS_SUFFIX[kind]
    if name.endswith(cls_suffix):
        name = name[:-len(cls_suffix)]
    return name


def check_name(name: str) -> None:
    if not name or '/' in name or name.startswith('.') or not images.image_name_is_valid(name) \
            or name.endswith(SUFFIX) or any(c.isspace() for c in name):
        raise BuildError("invalid extension name %r: use a plain file name such as 'docker' (no '/', no leading '.', "
                         "no whitespace or control characters, without the .raw suffix)" % (name,))


def _str_value(key: str, value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BuildError('release field %s: %r is not a string; quote it in YAML (%s: "...")' % (key, value, key))
    value = str(value)
    if '\n' in value or '\r' in value or '\0' in value:
        raise BuildError('release field %s: the value contains a line break or NUL byte; an extension-release '
                         'value is one line' % key)
    return value


def release_fields(opts: Options) -> dict:
    """The fields of the extension-release file, in the order they are written."""
    kind = opts.kind
    first = [
        ('ID', opts.id if opts.id is not None else '_any', 'id'),
        ('VERSION_ID', opts.version_id, 'version_id'),
        (level_key(kind), opts.level, 'level'),
        ('ARCHITECTURE', opts.architecture, 'architecture'),
        (scope_key(kind), ' '.join(opts.scope) if opts.scope is not None else None, 'scope'),
        ('IMAGE_VERSION', opts.version, 'version'),
    ]
    out: dict = {}
    for key, value, option in first:
        if value is None:
            continue
        value = _str_value(option, value)
        if not value:
            raise BuildError('%s must not be empty (leave it out instead)' % option)
        out[key] = value
    ext_id = out['ID']
    if ext_id != '_any' and not _ID_LIKE.match(ext_id):
        raise BuildError("id %r: use the host's os-release ID (lower-case letters, digits, '.', '_', '-') or _any"
                         % ext_id)
    for key, option in (('VERSION_ID', 'version_id'), (level_key(kind), 'level')):
        if key in out and not _VERSION_ID.match(out[key]):
            raise BuildError("%s %r: use letters, digits, '.', '_', '~' and '-' (compared with the host's os-release "
                             "as a plain string)" % (option, out[key]))
    if 'ARCHITECTURE' in out and out['ARCHITECTURE'] not in ARCHITECTURES:
        raise BuildError("architecture %r is not one of systemd's names; use one of %s (for example x86-64, arm64) "
                         "or _any" % (out['ARCHITECTURE'], ', '.join(ARCHITECTURES[1:])))
    if opts.scope is not None:
        bad = [s for s in opts.scope if s not in SCOPES]
        if bad or not opts.scope:
            raise BuildError('scope %r: give one or more of %s' % (list(opts.scope), ', '.join(SCOPES)))
    if 'IMAGE_VERSION' in out and not _VERSION.match(out['IMAGE_VERSION']):
        raise BuildError("version %r: start with a letter or digit and use only letters, digits and '.', '~', '^', "
                         "'-' (systemd's version comparison ignores every other character)" % out['IMAGE_VERSION'])
    by_option = {k: o for k, _v, o in first}
    extra = opts.release or {}
    if not isinstance(extra, dict):
        raise BuildError('release must be a dictionary of KEY: value fields')
    for key in sorted(extra):
        if not isinstance(key, str) or not _KEY.match(key):
            raise BuildError('release field name %r: use letters, digits and _ (not starting with a digit), as in '
                             'SYSEXT_LEVEL' % (key,))
        value = _str_value(key, extra[key])
        if key in out and out[key] != value:
            raise BuildError('release field %s=%s conflicts with the option %s (%s); set it in one place'
                             % (key, value, by_option.get(key, key), out[key]))
        out[key] = value
    return out


def _quote(value: str) -> str:
    if _BARE.match(value) and value:
        return value
    return '"%s"' % ''.join('\\' + c if c in '"\\`$' else c for c in value)


def release_text(fields: dict) -> str:
    """KEY=VALUE lines that systemd's parse_env_file() reads back as exactly ``fields``."""
    text = ''.join('%s=%s\n' % (k, _quote(v)) for k, v in fields.items())
    try:
        back = parse_env(text)
    except ReleaseError as e:       # pragma: no cover - _quote makes every value parseable
        raise BuildError('cannot write the release fields: %s' % e) from None
    if back != fields:
        bad = sorted(k for k in fields if back.get(k) != fields[k])
        raise BuildError('release field(s) %s cannot be written so that systemd reads them back unchanged (leading '
                         'or trailing blanks?); change the value' % ', '.join(bad))
    return text


def release_path(kind: str, name: str) -> str:
    """The release file's path inside the image, without the leading '/'."""
    return '%s/extension-release.%s' % (imagemeta.RELEASE_DIR[kind].lstrip('/'), name)


def check_epoch(value) -> int:
    if value is None:
        env = os.environ.get('SOURCE_DATE_EPOCH', '').strip()
        if not env:
            return 0
        if not env.isdigit():
            raise BuildError('SOURCE_DATE_EPOCH=%r in the environment is not a number of seconds; fix it or set '
                             'source_date_epoch' % env)
        value = int(env)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= EPOCH_MAX:
        raise BuildError('source_date_epoch %r: give seconds since 1970 between 0 and %d (squashfs stores 32-bit '
                         'timestamps)' % (value, EPOCH_MAX))
    return value


def check_layout(src: str, kind: str) -> list[str]:
    """The top-level directories of ``src``. systemd merges only /usr and /opt (sysext) or
    /etc (confext) and silently ignores anything else, so anything else is refused."""
    allowed = TOP_LEVEL[kind]
    try:
        names = sorted(os.listdir(src))
    except OSError as e:
        raise BuildError('cannot list src %s: %s' % (src, e.strerror)) from None
    bad, found = [], []
    for n in names:
        p = os.path.join(src, n)
        if n not in allowed:
            bad.append(n)
        elif os.path.islink(p) or not os.path.isdir(p):
            raise BuildError('%s must be a directory, not %s; a %s image carries the %s tree itself'
                             % (p, 'a symlink' if os.path.islink(p) else 'a file', kind, n))
        else:
            found.append(n)
    if bad:
        raise BuildError('src %s holds %s at the top level; a %s image may only hold %s (systemd-%s ignores '
                         'everything else), so move or remove it' % (
                             src, ', '.join(repr(b) for b in bad), kind, ' and '.join('%s/' % a for a in allowed),
                             kind))
    if not found:
        raise BuildError('src %s is empty: a %s needs content in %s' % (
            src, kind, ' or '.join('%s/' % a for a in allowed)))
    return found


# ----------------------------------------------------------------------------- the tree
@dataclass
class Entry:
    rel: str                    # path inside the image, no leading '/'
    kind: str                   # 'd' directory, 'f' file, 'l' symlink, 'h' hard link to ``target``
    mode: int                   # permission bits (07777)
    target: str = ''            # symlink target, or the first path of a hard-linked file
    xattrs: tuple = ()          # ((name, value bytes), ...) sorted, only with Options.xattrs
    data: bytes | None = None   # content we generate (the release file)

    def record(self, sha: str | None) -> list:
        return [self.rel, self.kind, '%04o' % self.mode, self.target, sha or '',
                [[k, v.hex()] for k, v in self.xattrs]]


def _xattrs_of(path: str) -> tuple:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return ()
        raise
    return tuple(sorted((n, os.getxattr(path, n, follow_symlinks=False)) for n in names))


def scan(src: str, kind: str, name: str, text: str, xattrs: bool) -> tuple[list, list]:
    """Every entry of the tree to build, sorted by path, with the release file in place.
    Returns (entries, warnings). Raises BuildError for what an image cannot carry."""
    rel_file = release_path(kind, name)
    rel_dirs = []
    d = os.path.dirname(rel_file)
    while d:
        rel_dirs.append(d)
        d = os.path.dirname(d)
    entries: dict = {}
    warnings: list = []
    inodes: dict = {}

    def walk(host: str, rel: str) -> None:
        try:
            with os.scandir(host) as it:
                names = sorted((e.name for e in it), key=os.fsencode)
        except OSError as e:
            raise BuildError('cannot read %s: %s' % (host, e.strerror)) from None
        for n in names:
            hp = os.path.join(host, n)
            rp = n if not rel else rel + '/' + n
            try:
                st = os.lstat(hp)
                xa = _xattrs_of(hp) if xattrs else ()
            except OSError as e:
                raise BuildError('cannot read %s: %s' % (hp, e.strerror)) from None
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                entries[rp] = Entry(rp, 'd', mode, xattrs=xa)
                walk(hp, rp)
            elif stat.S_ISLNK(st.st_mode):
                entries[rp] = Entry(rp, 'l', 0o777, target=os.readlink(hp), xattrs=xa)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in inodes:
                    entries[rp] = Entry(rp, 'h', mode, target=inodes[key])
                else:
                    if st.st_nlink > 1:
                        inodes[key] = rp
                    entries[rp] = Entry(rp, 'f', mode, xattrs=xa)
            else:
                raise BuildError('%s is a %s; an extension image holds only directories, regular files and '
                                 'symlinks, so remove it from src' % (hp, _type_name(st.st_mode)))

    walk(src, '')
    for d in rel_dirs:
        e = entries.get(d)
        if e is None:
            entries[d] = Entry(d, 'd', 0o755)
        elif e.kind != 'd':
            raise BuildError('%s in src must be a directory (the extension-release file goes there)'
                             % os.path.join(src, d))
    data = text.encode('utf-8')
    old = entries.get(rel_file)
    if old is not None:
        host = os.path.join(src, rel_file)
        if old.kind != 'f':
            raise BuildError('%s is not a regular file; remove it, this module writes the extension-release file'
                             % host)
        try:
            with open(host, 'rb') as f:
                have = parse_env(f.read(1 << 16).decode('utf-8', 'replace'))
        except (OSError, ReleaseError) as e:
            raise BuildError('cannot read %s: %s; remove it, this module writes the extension-release file'
                             % (host, e)) from None
        want = parse_env(text)
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise BuildError('%s differs from the release fields of this task (%s); remove it from src (this module '
                             'writes it) or set the same fields in the task' % (host, ', '.join(diff)))
    entries[rel_file] = Entry(rel_file, 'f', 0o644, data=data)
    rdir = os.path.dirname(rel_file)
    for rp in sorted(entries):
        if os.path.dirname(rp) == rdir and rp != rel_file and os.path.basename(rp).startswith('extension-release.'):
            warnings.append('%s also holds %s; systemd reads only extension-release.%s for this image'
                            % (os.path.join(src, rdir), os.path.basename(rp), name))
    # A hard link whose first path was replaced by the generated release file must not point at it.
    for e in entries.values():
        if e.kind == 'h' and e.target == rel_file:
            raise BuildError('%s is a hard link to the extension-release file; remove it from src'
                             % os.path.join(src, e.rel))
    return [entries[k] for k in sorted(entries, key=os.fsencode)], warnings


def _type_name(mode: int) -> str:
    for test, label in ((stat.S_ISCHR, 'character device'), (stat.S_ISBLK, 'block device'),
                        (stat.S_ISFIFO, 'FIFO'), (stat.S_ISSOCK, 'socket')):
        if test(mode):
            return label
    return 'special file'


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(CHUNK), b''):
                h.update(chunk)
    except OSError as e:
        raise BuildError('cannot read %s: %s' % (path, e.strerror)) from None
    return h.hexdigest()


def hash_sources(entries: list, src: str) -> dict:
    """sha256 of every regular file, read from ``src`` (or the generated data)."""
    out = {}
    for e in entries:
        if e.kind == 'f':
            out[e.rel] = hashlib.sha256(e.data).hexdigest() if e.data is not None else _hash_file(
                os.path.join(src, e.rel))
    return out


def stage(entries: list, src: str, dst: str) -> dict:
    """Copy the tree into ``dst`` (which exists and is empty), hashing each file as it is
    copied. Directories are made in sorted order; modes are set explicitly (no umask);
    xattrs only as listed. Returns the sha256 of every regular file, as copied."""
    hashes = {}
    os.chmod(dst, 0o755)
    dirs = []
    for e in entries:
        out = os.path.join(dst, e.rel)
        if e.kind == 'd':
            os.mkdir(out, 0o700)
            dirs.append(e)
        elif e.kind == 'l':
            os.symlink(e.target, out)
        elif e.kind == 'h':
            os.link(os.path.join(dst, e.target), out)
        else:
            h = hashlib.sha256()
            if e.data is not None:
                with open(out, 'wb') as f:
                    f.write(e.data)
                h.update(e.data)
            else:
                host = os.path.join(src, e.rel)
                try:
                    with open(host, 'rb') as fin, open(out, 'wb') as fout:
                        for chunk in iter(lambda f=fin: f.read(CHUNK), b''):
                            h.update(chunk)
                            fout.write(chunk)
                except OSError as err:
                    if err.filename != host:
                        raise       # writing the copy: reported by the caller, with the free space
                    raise BuildError('cannot read %s: %s' % (host, err.strerror)) from None
            hashes[e.rel] = h.hexdigest()
            os.chmod(out, e.mode)
        for k, v in e.xattrs:
            try:
                os.setxattr(out, k, v, follow_symlinks=False)
            except OSError as err:
                raise BuildError('cannot copy the xattr %s of %s into the staging tree: %s (set xattrs: false to '
                                 'leave xattrs out)' % (k, os.path.join(src, e.rel), err.strerror)) from None
    for e in reversed(dirs):    # after their contents: a directory without w or x bits is still filled
        os.chmod(os.path.join(dst, e.rel), e.mode)
    return hashes


def inputs_digest(entries: list, hashes: dict, params: dict) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(params, sort_keys=True).encode())
    for e in entries:
        h.update(b'\n')
        h.update(json.dumps(e.record(hashes.get(e.rel))).encode('utf-8', 'surrogateescape'))
    return h.hexdigest()


# ----------------------------------------------------------------------------- tools
def find_tool(what: str) -> str:
    tool, package = TOOLS[what]
    path = shutil.which(tool) or shutil.which(tool, path='/usr/sbin:/sbin:/usr/bin:/bin')
    if not path:
        raise BuildError('%s is not installed on the target; install the Debian package %s (apt-get install %s)'
                         % (tool, package, package))
    return path


def tool_identity(path: str) -> str:
    """The tool's name and the sha256 of its executable: a new version (or build) of the tool
    may write other bytes, so it is part of the inputs."""
    return '%s sha256:%s' % (os.path.basename(path), _hash_file(os.path.realpath(path)))


def tool_version(path: str, build_output: str = '') -> str:
    """A readable version: ``mksquashfs -version``, or the first line mkfs.erofs prints."""
    if os.path.basename(path) == 'mksquashfs':
        try:
            out = subprocess.run([path, '-version'], capture_output=True, check=False, env=_tool_env()).stdout
            build_output = out.decode('utf-8', 'replace')
        except OSError:
            build_output = ''
    for line in build_output.splitlines():
        m = re.match(r'^(mksquashfs version \S+|mkfs\.erofs \S+)', line.strip())
        if m:
            return m.group(1)
    return os.path.basename(path)


def fs_uuid(seed: str) -> str:
    """A fixed filesystem UUID derived from the inputs (mkfs.erofs would pick a random one)."""
    return str(uuid.UUID(bytes=hashlib.sha256(('tucked.sysext build ' + seed).encode()).digest()[:16], version=4))


def build_command(fmt: str, tool: str, comp: str, tree: str, out: str, epoch: int, xattrs: bool, seed: str) -> list:
    if fmt == 'squashfs':
        return [tool, tree, out, '-noappend', '-quiet', '-no-progress', '-exit-on-error', '-reproducible',
                '-all-root', '-root-mode', '755', '-mkfs-time', str(epoch), '-all-time', str(epoch),
                '-comp', comp, '-xattrs' if xattrs else '-no-xattrs']
    cmd = [tool, '--all-root', '-T%d' % epoch, '-U', fs_uuid(seed)]
    if not xattrs:
        cmd.append('-x-1')
    if comp != 'none':
        cmd.append('-z' + comp)
    return cmd + [out, tree]


def _tool_env() -> dict:
    env = dict(os.environ)
    # mksquashfs >= 4.6 refuses SOURCE_DATE_EPOCH together with -mkfs-time/-all-time; the
    # timestamps are given on the command line.
    env.pop('SOURCE_DATE_EPOCH', None)
    env['LC_ALL'] = 'C'
    return env


def _space_hint(path: str) -> str:
    try:
        sv = os.statvfs(path)
        return ' (%d bytes free there)' % (sv.f_bavail * sv.f_frsize)
    except OSError:
        return ''


def run_tool(cmd: list, what: str, where: str) -> str:
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=_tool_env(), check=False)
    except OSError as e:
        raise BuildError('%s: cannot run %s: %s' % (what, cmd[0], e.strerror)) from None
    out = (res.stdout + res.stderr).decode('utf-8', 'replace')
    if res.returncode != 0:
        tail = '\n'.join(ln for ln in out.strip().splitlines()[-8:])
        hint = ''
        if 'space' in out.lower() or 'ENOSPC' in out:
            hint = '; free space in %s%s' % (where, _space_hint(where))
        raise BuildError('%s: %s failed (exit %d)%s; nothing was replaced. Its output: %s'
                         % (what, os.path.basename(cmd[0]), res.returncode, hint, tail or '(none)'))
    return out


def verity_format(tool: str, image: str, hash_file: str, image_sha: str, where: str) -> str:
    """``veritysetup format`` with the salt and UUID derived from the image's sha256, so the
    hash tree and root hash are reproducible too. Returns the root hash (hex)."""
    cmd = [tool, 'format', '--salt=' + image_sha, '--uuid=' + fs_uuid('verity ' + image_sha), image, hash_file]
    out = run_tool(cmd, 'dm-verity hash tree for %s' % image, where)
    for line in out.splitlines():
        if line.startswith('Root hash:'):
            value = line.split(':', 1)[1].strip()
            if re.match(r'^[0-9a-f]{64,}$', value):
                return value
    raise BuildError('veritysetup printed no root hash; its output: %s' % out.strip()[-500:])


# ----------------------------------------------------------------------------- files
def _stat_key(st: os.stat_result) -> list:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def read_record(path: str) -> dict | None:
    """The build record of an image, or None when missing, unreadable or stale (the file was
    changed after the record was written)."""
    try:
        st = os.stat(path)
        raw = os.getxattr(path, RECORD_XATTR)
        rec = json.loads(raw.decode('utf-8'))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get('v') != RECORD_VERSION or rec.get('file') != _stat_key(st):
        return None
    return rec


def write_record(path: str, rec: dict) -> bool:
    """Store the record; False when the filesystem has no user xattrs (later runs then
    compare by building aside)."""
    try:
        rec = dict(rec, v=RECORD_VERSION, file=_stat_key(os.stat(path)))
        os.setxattr(path, RECORD_XATTR, json.dumps(rec, sort_keys=True).encode())
        return True
    except OSError:
        return False


def sidecars(dest: str) -> tuple[str, str]:
    """systemd's verity sidecars of an image (build_auxiliary_path()): ``.raw`` is replaced
    by ``.verity`` and ``.roothash``; other names get the suffix appended."""
    base = dest[:-len(SUFFIX)] if dest.endswith(SUFFIX) else dest
    return base + '.verity', base + '.roothash'


def _read_roothash(path: str) -> str | None:
    try:
        with open(path, 'r', encoding='ascii', errors='replace') as f:
            return f.read(4096).strip()
    except OSError:
        return None


def _verity_current(dest: str, roothash: str | None, verity_sha: str | None) -> bool:
    vpath, rpath = sidecars(dest)
    if not roothash or not verity_sha or _read_roothash(rpath) != roothash or not os.path.isfile(vpath):
        return False
    return _hash_file(vpath) == verity_sha


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def work_prefix(dest: str) -> str:
    return '%s%s.build-' % (TMP_PREFIX, os.path.basename(dest))


def stale_workdirs(dest: str) -> list[str]:
    """Work directories of runs that were killed (their process is gone)."""
    d, prefix, out = os.path.dirname(dest), work_prefix(dest), []
    try:
        names = os.listdir(d)
    except OSError:
        return []
    for n in names:
        if n.startswith(prefix):
            pid = n[len(prefix):].split('-', 1)[0]
            if pid.isdigit() and not _pid_alive(int(pid)):
                out.append(os.path.join(d, n))
    return out


def read_image_release(path: str, kind: str, name: str) -> str | None:
    """The release text inside an image, read without mounting; None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = imagefs.read_file(fd, release_path(kind, name), 1 << 16, kind)
        return data.decode('utf-8', 'replace')
    except (imagefs.ImageError, OSError):
        return None
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- the run
def _check_paths(opts: Options) -> tuple[str, str]:
    src = opts.src
    if not src or not os.path.isabs(src):
        raise BuildError('src %r must be an absolute path to a directory on the target' % (src,))
    if not os.path.isdir(src):
        raise BuildError('src %s %s; give the directory tree to build from' % (
            src, 'is not a directory' if os.path.exists(src) else 'does not exist'))
    dest = opts.dest
    if not dest or not os.path.isabs(dest) or dest.endswith('/'):
        raise BuildError('dest %r must be an absolute path of the image file to write, such as '
                         '/var/lib/extensions/NAME.raw' % (dest,))
    parent = os.path.dirname(dest)
    if not os.path.isdir(parent):
        raise BuildError('the directory of dest, %s, does not exist; create it first (ansible.builtin.file '
                         'state=directory)' % parent)
    if os.path.islink(dest):
        raise BuildError('dest %s is a symlink; give the path of the image file itself (%s)'
                         % (dest, os.path.realpath(dest)))
    if os.path.lexists(dest) and not os.path.isfile(dest):
        raise BuildError('dest %s exists and is not a regular file; remove it or choose another dest' % dest)
    rsrc, rdest = os.path.realpath(src), os.path.realpath(parent)
    if rdest == rsrc or rdest.startswith(rsrc.rstrip('/') + '/'):
        raise BuildError('dest %s is inside src %s; the image would contain itself, so write it elsewhere'
                         % (dest, src))
    return src, dest


def run(opts: Options) -> Result:
    """Carry out one sysext_build request. Raises BuildError (dest unchanged) on bad input."""
    if opts.kind not in KINDS:
        raise BuildError('kind must be one of %s' % ', '.join(KINDS))
    if opts.format not in FORMATS:
        raise BuildError('format must be one of %s' % ', '.join(FORMATS))
    comp = opts.compression or COMPRESSION[opts.format][0]
    if comp not in COMPRESSION[opts.format]:
        raise BuildError('compression %r is not available for %s; use one of %s'
                         % (comp, opts.format, ', '.join(COMPRESSION[opts.format])))
    src, dest = _check_paths(opts)
    name = opts.name if opts.name is not None else default_name(dest, opts.kind)
    check_name(name)
    epoch = check_epoch(opts.source_date_epoch)
    fields = release_fields(opts)
    text = release_text(fields)
    res = Result(path=dest, name=name, kind=opts.kind, format=opts.format, compression=comp, release=fields,
                 release_file='/' + release_path(opts.kind, name), source_date_epoch=epoch)
    if not dest.endswith(SUFFIX):
        res.warnings.append('dest %s does not end in .raw; systemd only picks up image files named NAME.raw'
                            % dest)
    if comp not in READABLE[opts.format]:
        res.warnings.append('%s images compressed with %s are used by systemd, but sysext_facts and sysext_image '
                            'read their release file only through a read-only mount, so only as root (become); '
                            '%s are read without one' % (opts.format, comp, ', '.join(READABLE[opts.format])))
    if fields['ID'] == '_any' and ('VERSION_ID' in fields or level_key(opts.kind) in fields):
        res.warnings.append('ID=_any matches every host and systemd then ignores VERSION_ID and %s; set id to the '
                            "host's os-release ID to have them checked" % level_key(opts.kind))
    check_layout(src, opts.kind)
    tool = find_tool(opts.format)
    vtool = find_tool('verity') if opts.verity else None
    entries, warns = scan(src, opts.kind, name, text, opts.xattrs)
    res.warnings += warns
    ident = tool_identity(tool)
    params = {'format': opts.format, 'compression': comp, 'epoch': epoch, 'xattrs': opts.xattrs, 'tool': ident,
              'flags': RECORD_VERSION}
    vpath, rpath = sidecars(dest)

    existing = os.path.isfile(dest)
    record = read_record(dest) if existing else None
    old_sha = record.get('sha256') if record else None
    before_text = _describe(old_sha, record.get('roothash') if record else None,
                            read_image_release(dest, opts.kind, name) if existing else None) if existing else ''

    if record and not opts.force:
        digest = inputs_digest(entries, hash_sources(entries, src), params)
        if digest == record.get('inputs'):
            res.inputs, res.sha256, res.size = digest, record['sha256'], os.path.getsize(dest)
            res.tool = record.get('tool', ident)
            _settle_verity(opts, res, dest, vtool, record, None)
            res.diff = {'before': before_text, 'after': _describe(res.sha256, res.roothash, text)}
            return res

    if not existing and opts.check_mode:
        res.changed = True
        res.inputs = inputs_digest(entries, hash_sources(entries, src), params)
        res.diff = {'before': '', 'after': _describe(None, None, text)}
        if opts.verity:
            res.verity_path, res.roothash_path = vpath, rpath
        return res

    for p in stale_workdirs(dest) if not opts.check_mode else ():
        shutil.rmtree(p, ignore_errors=True)
        res.warnings.append('removed the work directory of an interrupted build: %s' % p)
    parent = os.path.dirname(dest)
    try:
        if opts.check_mode:
            work = tempfile.mkdtemp(prefix='tucked-sysext-build-')
        else:
            work = tempfile.mkdtemp(prefix='%s%d-' % (work_prefix(dest), os.getpid()), dir=parent)
    except OSError as e:
        raise BuildError('cannot create a work directory in %s: %s' % (
            tempfile.gettempdir() if opts.check_mode else parent, e.strerror)) from None
    try:
        _build(opts, res, entries, src, dest, work, tool, vtool, comp, epoch, params, text, record, existing)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.diff = {'before': before_text, 'after': _describe(res.sha256, res.roothash, text)}
    return res


def _describe(sha: str | None, roothash: str | None, text: str | None) -> str:
    lines = ['sha256: %s' % (sha or '(known after the build)')]
    if roothash:
        lines.append('roothash: %s' % roothash)
    if text is not None:
        lines.append('--- extension-release')
        lines.append(text.rstrip('\n'))
    return '\n'.join(lines) + '\n'


def _build(opts, res, entries, src, dest, work, tool, vtool, comp, epoch, params, text, record, existing) -> None:
    tree = os.path.join(work, 'tree')
    image = os.path.join(work, 'image')
    os.mkdir(tree)
    try:
        hashes = stage(entries, src, tree)
    except OSError as e:
        raise BuildError('cannot copy %s into the staging directory %s: %s%s; nothing was replaced'
                         % (src, work, e.strerror, _space_hint(work) if e.errno == errno.ENOSPC else '')) from None
    digest = inputs_digest(entries, hashes, params)
    out = run_tool(build_command(opts.format, tool, comp, tree, image, epoch, opts.xattrs, digest),
                   'building %s' % dest, work)
    res.built = True
    res.inputs = digest
    res.tool = '%s (%s)' % (tool_version(tool, out), params['tool'])
    sha = _hash_file(image)
    res.sha256, res.size = sha, os.path.getsize(image)
    if comp in READABLE[opts.format]:
        back = read_image_release(image, opts.kind, res.name)
        if back != text:
            raise BuildError('the image built for %s does not carry the release file as written (read back: %r); '
                             'nothing was replaced' % (dest, back))
    new_record = {'inputs': digest, 'sha256': sha, 'tool': res.tool}
    old_sha = (record or {}).get('sha256') or (_hash_file(dest) if existing else None)
    if existing and old_sha == sha:
        # Same bytes: keep the file (inode and mtime unchanged); only the record is renewed.
        if not opts.check_mode:
            write_record(dest, dict(new_record, roothash=(record or {}).get('roothash'),
                                    verity_sha256=(record or {}).get('verity_sha256')))
        _settle_verity(opts, res, dest, vtool, read_record(dest) or record, (work, image))
        return

    res.changed = True
    if opts.check_mode:
        if opts.verity:
            res.verity_path, res.roothash_path = sidecars(dest)
        return
    vpath, rpath = sidecars(dest)
    parent = os.path.dirname(dest)
    try:
        if opts.verity:
            roothash, vsha = _make_verity(vtool, image, sha, work)
            new_record.update(roothash=roothash, verity_sha256=vsha)
            res.roothash, res.verity_path, res.roothash_path = roothash, vpath, rpath
        os.chmod(image, 0o644)
        _fsync(image)
        # The record goes on the new file before it is renamed (a rename keeps inode and mtime),
        # so image and record arrive together.
        write_record(image, new_record)
        if opts.verity:
            # The work directory is in dest's directory: every rename below stays on one
            # filesystem. Hash tree and root hash first, then the image: a run interrupted in
            # between leaves the old image with new sidecars, which the next run rebuilds.
            for fname, final in (('verity', vpath), ('roothash', rpath)):
                os.chmod(os.path.join(work, fname), 0o644)
                _fsync(os.path.join(work, fname))
                os.rename(os.path.join(work, fname), final)
        os.rename(image, dest)
        if not opts.verity:
            # Sidecars of an earlier verity build would not match the new image.
            for p in (vpath, rpath):
                if os.path.lexists(p):
                    os.unlink(p)
                    res.removed.append(p)
        _fsync(parent)
    except OSError as e:
        raise BuildError('cannot put the image in place at %s: %s%s; the previous image was kept'
                         % (dest, e.strerror, _space_hint(parent) if e.errno == errno.ENOSPC else '')) from None


def _make_verity(vtool: str, image: str, sha: str, work: str) -> tuple[str, str]:
    vfile = os.path.join(work, 'verity')
    roothash = verity_format(vtool, image, vfile, sha, work)
    with open(os.path.join(work, 'roothash'), 'w', encoding='ascii') as f:
        f.write(roothash + '\n')
    return roothash, _hash_file(vfile)


def _settle_verity(opts, res, dest, vtool, record, built) -> None:
    """The image at dest is current; make its sidecars match ``verity``."""
    vpath, rpath = sidecars(dest)
    rec = record or {}
    if not opts.verity:
        stale = [p for p in (vpath, rpath) if os.path.lexists(p)]
        if stale:
            res.changed = True
            if not opts.check_mode:
                for p in stale:
                    os.unlink(p)
                if rec.get('roothash'):
                    write_record(dest, dict(rec, roothash=None, verity_sha256=None))
            res.removed += stale
        return
    res.verity_path, res.roothash_path = vpath, rpath
    if _verity_current(dest, rec.get('roothash'), rec.get('verity_sha256')):
        res.roothash = rec['roothash']
        return
    if built is not None:
        # A comparison build made the same image: its hash tree is the one dest needs.
        work, image = built
        roothash, vsha = _make_verity(vtool, image, res.sha256, work)
        if _verity_current(dest, roothash, vsha):
            res.roothash = roothash
            if not opts.check_mode:
                write_record(dest, dict(rec, roothash=roothash, verity_sha256=vsha))
            return
    res.changed = True
    if opts.check_mode:
        return
    parent = os.path.dirname(dest)
    work = tempfile.mkdtemp(prefix='%s%d-' % (work_prefix(dest), os.getpid()), dir=parent)
    try:
        roothash, vsha = _make_verity(vtool, dest, res.sha256 or _hash_file(dest), work)
        for name, final in (('verity', vpath), ('roothash', rpath)):
            os.chmod(os.path.join(work, name), 0o644)
            os.rename(os.path.join(work, name), final)
        _fsync(parent)
    except OSError as e:
        raise BuildError('cannot write the verity sidecars of %s: %s' % (dest, e.strerror)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.roothash = roothash
    rec = read_record(dest) or rec
    write_record(dest, dict(rec, roothash=roothash, verity_sha256=vsha))
