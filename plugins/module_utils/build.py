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
import os
import shutil
import tempfile
from dataclasses import dataclass, field

from . import ddi
from .buildfiles import (SUFFIX, read_image_release, read_record, sidecars, stale_workdirs, verity_current,
                         work_prefix, write_record)
from .buildtools import (COMPRESSION, BuildError, FsSpec, build_command, check_compression, check_tool_compression,
                         find_tool, fs_uuid, hash_file, run_tool, tool_identity, tool_version, verity_format)
from .buildrequest import (CONTAINERS, FORMATS, KINDS, Options, check_epoch, check_name, default_name,
                           release_fields, release_text)
from .buildtree import check_layout, hash_sources, inputs_digest, release_path, scan, stage
from .fsutil import fsync_path, space_hint
from .release import SYSEXT, level_key, native_architecture

# read in place (imagefs); the others only through a read-only mount, which needs root
READABLE = {'squashfs': ('gzip', 'xz', 'lzma', 'lz4'), 'erofs': ('none',)}
SPARSE_WARN = 1 << 20     # holes of uncompressed erofs builds worth a warning


@dataclass
class Result:
    changed: bool = False
    built: bool = False                  # whether a build ran (also a comparison build)
    path: str = ''
    name: str = ''
    kind: str = SYSEXT
    format: str = 'squashfs'
    compression: str = ''
    container: str = 'filesystem'
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
    partitions: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    diff: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        keys = ('changed', 'built', 'path', 'name', 'kind', 'format', 'compression', 'container', 'sha256', 'size',
                'release', 'release_file', 'inputs', 'tool', 'source_date_epoch', 'roothash', 'verity_path',
                'roothash_path', 'partitions', 'removed')
        return {k: getattr(self, k) for k in keys}


def module_result(module, run, opts, key: str) -> dict:
    """What a build module returns for ``run(opts)``: a BuildError or OSError fails the task
    (changed=False, ``opts.dest`` under ``key``), the run's warnings become the task's, and in
    diff mode the image's record before and after is the diff (headed by the result's ``key``)."""
    where = opts.dest
    try:
        out = run(opts)
    except BuildError as e:
        module.fail_json(msg=str(e), changed=False, **{key: where})
    except OSError as e:
        module.fail_json(msg='%s: %s' % (e.filename or where, e.strerror or e), changed=False, **{key: where})
    for w in out.warnings:
        module.warn(w)
    result = out.as_dict()
    if module._diff:
        header = getattr(out, key)
        result['diff'] = {'before_header': header, 'after_header': header,
                          'before': out.diff.get('before', ''), 'after': out.diff.get('after', '')}
    return result


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


@dataclass
class _Job:
    """One build request, checked."""
    opts: Options
    src: str
    dest: str
    spec: FsSpec
    text: str
    tool: str
    params: dict
    entries: list
    vtool: str | None = None            # veritysetup, for sidecars or the verity partition
    architecture: str | None = None     # of a DDI's partition types
    signer: ddi.Signer | None = None

    @property
    def ddi(self) -> bool:
        return self.opts.container == 'ddi'

    @property
    def sidecars(self) -> bool:
        """Verity beside a plain image, as NAME.verity and NAME.roothash."""
        return self.opts.verity and not self.ddi


def _check_ddi(opts: Options, fields: dict) -> tuple:
    """(architecture, signer) of a DDI; refuses signing options that cannot be honoured."""
    if opts.container not in CONTAINERS:
        raise BuildError('container must be one of %s' % ', '.join(CONTAINERS))
    signing = (opts.signing_key, opts.signing_certificate)
    if any(signing) and not all(signing):
        raise BuildError('signing_key and signing_certificate go together: give the PEM private key and its X.509 '
                         'certificate')
    if any(signing) and (opts.container != 'ddi' or not opts.verity):
        raise BuildError('a signature signs the dm-verity root hash of a disk image: set container: ddi and '
                         'verity: true to sign, or leave signing_key and signing_certificate out')
    for option, path in zip(('signing_key', 'signing_certificate'), signing):
        if path is not None and (not os.path.isabs(path) or not os.path.isfile(path)):
            raise BuildError('%s %s %s; give the absolute path of a PEM file on the target' % (
                option, path, 'is not a regular file' if os.path.exists(path) else 'does not exist'))
    if opts.container != 'ddi':
        return None, None
    arch = fields.get('ARCHITECTURE', '_any')
    arch = native_architecture() if arch == '_any' else arch
    ddi.types(arch)
    signer = ddi.Signer(find_tool('openssl'), opts.signing_key, opts.signing_certificate) if all(signing) else None
    return arch, signer


def _prepare(opts: Options, res: Result, src: str, name: str, text: str, epoch: int) -> _Job:
    comp = res.compression
    features = check_compression(opts.format, comp, opts.compression_level, opts.cluster_size, opts.erofs_features)
    arch, signer = _check_ddi(opts, res.release)
    check_layout(src, opts.kind)
    tool = find_tool(opts.format)
    if opts.format == 'erofs':
        check_tool_compression(tool, comp)
    vtool = find_tool('verity') if opts.verity else None
    entries, warns = scan(src, opts.kind, name, text, opts.xattrs)
    res.warnings += warns
    spec = FsSpec(opts.format, comp, opts.compression_level, opts.cluster_size, tuple(features), epoch, opts.xattrs)
    params = {'format': opts.format, 'compression': comp, 'epoch': epoch, 'xattrs': opts.xattrs,
              'tool': tool_identity(tool), 'flags': 1}
    # only what is set, so that the records of earlier builds still match
    for key, value in (('level', spec.level), ('cluster', spec.cluster), ('features', list(spec.features))):
        if value:
            params[key] = value
    if arch is not None:
        params['ddi'] = {'architecture': arch, 'verity': tool_identity(vtool) if vtool else None,
                         'certificate': ddi.certificate_fingerprint(signer.certificate) if signer else None,
                         'openssl': tool_identity(signer.openssl) if signer else None}
    return _Job(opts, src, res.path, spec, text, tool, params, entries, vtool, arch, signer)


def run(opts: Options) -> Result:
    """Carry out one sysext_build request. Raises BuildError (dest unchanged) on bad input."""
    if opts.kind not in KINDS:
        raise BuildError('kind must be one of %s' % ', '.join(KINDS))
    if opts.format not in FORMATS:
        raise BuildError('format must be one of %s' % ', '.join(FORMATS))
    comp = opts.compression or COMPRESSION[opts.format][0]
    check_compression(opts.format, comp, None, None, None)
    src, dest = _check_paths(opts)
    name = opts.name if opts.name is not None else default_name(dest, opts.kind)
    check_name(name)
    epoch = check_epoch(opts.source_date_epoch)
    fields = release_fields(opts)
    text = release_text(fields)
    res = Result(path=dest, name=name, kind=opts.kind, format=opts.format, compression=comp, container=opts.container,
                 release=fields, release_file='/' + release_path(opts.kind, name), source_date_epoch=epoch)
    if not dest.endswith(SUFFIX):
        res.warnings.append('dest %s does not end in .raw; systemd only picks up image files named NAME.raw'
                            % dest)
    if comp not in READABLE[opts.format]:
        res.warnings.append('%s images compressed with %s are used by systemd, but sysext_facts and sysext_image '
                            'read their release file only through a read-only mount, so only as root (become); '
                            '%s read without one' % (opts.format, comp, _readable_text(opts.format)))
    if fields['ID'] == '_any' and ('VERSION_ID' in fields or level_key(opts.kind) in fields):
        res.warnings.append('ID=_any matches every host and systemd then ignores VERSION_ID and %s; set id to the '
                            "host's os-release ID to have them checked" % level_key(opts.kind))
    job = _prepare(opts, res, src, name, text, epoch)

    existing = os.path.isfile(dest)
    record = read_record(dest) if existing else None
    old_sha = record.get('sha256') if record else None
    before_text = _describe(old_sha, _roothash_of(record),
                            read_image_release(dest, opts.kind, name) if existing else None) if existing else ''

    if record and not opts.force:
        digest = inputs_digest(job.entries, hash_sources(job.entries, src), job.params)
        if digest == record.get('inputs'):
            res.inputs, res.sha256, res.size = digest, record['sha256'], os.path.getsize(dest)
            res.tool = record.get('tool', job.params['tool'])
            res.partitions = record.get('partitions') or []
            res.roothash = record.get('ddi_roothash')
            _settle_verity(job, res, record, None)
            res.diff = {'before': before_text, 'after': _describe(res.sha256, res.roothash, text)}
            return res

    if not existing and opts.check_mode:
        res.changed = True
        res.inputs = inputs_digest(job.entries, hash_sources(job.entries, src), job.params)
        res.diff = {'before': '', 'after': _describe(None, None, text)}
        if job.sidecars:
            res.verity_path, res.roothash_path = sidecars(dest)
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
        _build(job, res, work, record, existing)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.diff = {'before': before_text, 'after': _describe(res.sha256, res.roothash, text)}
    return res


def _readable_text(fmt: str) -> str:
    if fmt == 'erofs':
        return 'uncompressed erofs is'
    return '%s %s are' % (fmt, ', '.join(READABLE[fmt]))


def _roothash_of(record: dict | None) -> str | None:
    return (record or {}).get('ddi_roothash') or (record or {}).get('roothash')


def _describe(sha: str | None, roothash: str | None, text: str | None) -> str:
    lines = ['sha256: %s' % (sha or '(known after the build)')]
    if roothash:
        lines.append('roothash: %s' % roothash)
    if text is not None:
        lines.append('--- extension-release')
        lines.append(text.rstrip('\n'))
    return '\n'.join(lines) + '\n'


def _make_image(job: _Job, res: Result, work: str) -> str:
    """The image (file system, or the DDI around it) in ``work``; returns its path."""
    tree = os.path.join(work, 'tree')
    image = os.path.join(work, 'image')
    os.mkdir(tree)
    holes: dict = {}
    try:
        hashes = stage(job.entries, job.src, tree, holes)
    except OSError as e:
        raise BuildError('cannot copy %s into the staging directory %s: %s%s; nothing was replaced'
                         % (job.src, work, e.strerror, space_hint(work) if e.errno == errno.ENOSPC else '')) from None
    digest = inputs_digest(job.entries, hashes, job.params)
    out = run_tool(build_command(job.spec, job.tool, tree, image, digest), 'building %s' % job.dest, work)
    shutil.rmtree(tree, ignore_errors=True)     # room for the disk image
    if job.spec.format == 'erofs' and job.spec.compression == 'none' and sum(holes.values()) >= SPARSE_WARN:
        biggest = max(holes, key=holes.get)
        res.warnings.append('uncompressed erofs stores the holes of sparse files as zeros (%d bytes here, %d of them '
                            'in %s), so the image is %d bytes; compression (lz4) or squashfs keeps them small'
                            % (sum(holes.values()), holes[biggest], os.path.join(job.src, biggest),
                               os.path.getsize(image)))
    res.built = True
    res.inputs = digest
    res.tool = '%s (%s)' % (tool_version(job.tool, out), job.params['tool'])
    if job.ddi:
        made = ddi.make(image, hash_file(image), job.architecture, work, job.vtool, job.signer)
        disk = os.path.join(work, 'disk')
        ddi.write(made, disk)
        os.unlink(image)
        image = disk
        res.roothash = made.roothash
        offsets = ddi.gptwrite.layout(made.partitions)[0]
        res.partitions = [{'label': p.label, 'type': p.type, 'uuid': p.uuid, 'offset': off, 'size': p.size,
                           'flags': p.flags} for p, off in zip(made.partitions, offsets)]
    readable = job.spec.compression in READABLE[job.opts.format] and (
        not job.ddi or job.architecture == native_architecture())
    if readable:
        back = read_image_release(image, job.opts.kind, res.name)
        if back != job.text:
            raise BuildError('the image built for %s does not carry the release file as written (read back: %r); '
                             'nothing was replaced' % (job.dest, back))
    return image


def _build(job: _Job, res: Result, work: str, record: dict | None, existing: bool) -> None:
    opts, dest = job.opts, job.dest
    image = _make_image(job, res, work)
    sha = hash_file(image)
    res.sha256, res.size = sha, os.path.getsize(image)
    new_record = {'inputs': res.inputs, 'sha256': sha, 'tool': res.tool}
    if job.ddi:
        new_record.update(ddi_roothash=res.roothash, partitions=res.partitions)
    old_sha = (record or {}).get('sha256') or (hash_file(dest) if existing else None)
    if existing and old_sha == sha:
        # Same bytes: keep the file (inode and mtime unchanged); only the record is renewed.
        if not opts.check_mode:
            write_record(dest, dict(new_record, roothash=(record or {}).get('roothash'),
                                    verity_sha256=(record or {}).get('verity_sha256')))
        _settle_verity(job, res, read_record(dest) or record, (work, image))
        return

    res.changed = True
    if opts.check_mode:
        if job.sidecars:
            res.verity_path, res.roothash_path = sidecars(dest)
        return
    vpath, rpath = sidecars(dest)
    parent = os.path.dirname(dest)
    try:
        if job.sidecars:
            roothash, vsha = _make_verity(job.vtool, image, sha, work)
            new_record.update(roothash=roothash, verity_sha256=vsha)
            res.roothash, res.verity_path, res.roothash_path = roothash, vpath, rpath
        os.chmod(image, 0o644)
        fsync_path(image)
        # The record goes on the new file before it is renamed (a rename keeps inode and mtime),
        # so image and record arrive together.
        write_record(image, new_record)
        if job.sidecars:
            # The work directory is in dest's directory: every rename below stays on one
            # filesystem. Hash tree and root hash first, then the image: a run interrupted in
            # between leaves the old image with new sidecars, which the next run rebuilds.
            for fname, final in (('verity', vpath), ('roothash', rpath)):
                os.chmod(os.path.join(work, fname), 0o644)
                fsync_path(os.path.join(work, fname))
                os.rename(os.path.join(work, fname), final)
        os.rename(image, dest)
        if not job.sidecars:
            # Sidecars of an earlier verity build would not match the new image.
            for p in (vpath, rpath):
                if os.path.lexists(p):
                    os.unlink(p)
                    res.removed.append(p)
        fsync_path(parent)
    except OSError as e:
        raise BuildError('cannot put the image in place at %s: %s%s; the previous image was kept'
                         % (dest, e.strerror, space_hint(parent) if e.errno == errno.ENOSPC else '')) from None


def _make_verity(vtool: str, image: str, sha: str, work: str) -> tuple[str, str]:
    """The sidecar hash tree of a plain image: salt the image's sha256, UUID derived from it."""
    vfile = os.path.join(work, 'verity')
    roothash = verity_format(vtool, image, vfile, sha, fs_uuid('verity ' + sha), work)
    with open(os.path.join(work, 'roothash'), 'w', encoding='ascii') as f:
        f.write(roothash + '\n')
    return roothash, hash_file(vfile)


def _settle_verity(job: _Job, res: Result, record: dict | None, built: tuple | None) -> None:
    """The image at dest is current; make its sidecars match."""
    opts, dest, vtool = job.opts, job.dest, job.vtool
    vpath, rpath = sidecars(dest)
    rec = record or {}
    if not job.sidecars:
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
    if verity_current(dest, rec.get('roothash'), rec.get('verity_sha256')):
        res.roothash = rec['roothash']
        return
    if built is not None:
        # A comparison build made the same image: its hash tree is the one dest needs.
        work, image = built
        roothash, vsha = _make_verity(vtool, image, res.sha256, work)
        if verity_current(dest, roothash, vsha):
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
        roothash, vsha = _make_verity(vtool, dest, res.sha256 or hash_file(dest), work)
        for name, final in (('verity', vpath), ('roothash', rpath)):
            os.chmod(os.path.join(work, name), 0o644)
            os.rename(os.path.join(work, name), final)
        fsync_path(parent)
    except OSError as e:
        raise BuildError('cannot write the verity sidecars of %s: %s' % (dest, e.strerror)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.roothash = roothash
    rec = read_record(dest) or rec
    write_record(dest, dict(rec, roothash=roothash, verity_sha256=vsha))
