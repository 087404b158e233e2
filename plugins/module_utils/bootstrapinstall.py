# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The install half of tucked.sysext.sysext_bootstrap, for a host without a usable Python:
what the image is (read on the controller), whether it fits the host the probe described,
and the shell scripts that store it where tucked.sysext.sysext_image stores images, select
it with the same relative symlink, merge it with the host's own ``systemd-sysext refresh``
and check the interpreter (or undo all that). Each script prints marker sections in the
probe's format (module_utils/bootstrap.py). Nothing here needs Ansible.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex

from . import bootstrap
from .images import SEARCH_DIRS_INITRD
from .release import SYSEXT, Host, ReleaseError, read_release_bytes, validate
from .storefiles import SUFFIX
from .storelayout import TMP_PREFIX, StoreError, check_name, check_stored_name, check_version

DEFAULT_NAME = 'tucked-python'
DEFAULT_STORE_DIR = '/var/lib/tucked-sysext/store'      # the sysext role's sysext_store_dir
DEFAULT_LINK_DIR = '/var/lib/extensions'                # the sysext role's sysext_link_dir
MANIFEST = bootstrap.PREFIX + '/tucked-python.json'
MAX_MANIFEST = 1 << 20
TMP_TAG = 'bootstrap'       # .#NAME-VERSION.raw.bootstrap: a leftover sysext_image cleans up


class InstallError(Exception):
    """The image cannot be installed on this host; nothing was changed. The message says why."""


# ----------------------------------------------------------------------------- the request
def version_from_file(name: str, path: str) -> str | None:
    """VERSION of a file named NAME-VERSION.raw, else None."""
    base = os.path.basename(path)
    prefix = name + '-'
    if base.startswith(prefix) and base.endswith(SUFFIX) and len(base) > len(prefix) + len(SUFFIX):
        return base[len(prefix):-len(SUFFIX)]
    return None


def store_paths(name: str, version: str | None, src: str, store_dir: str, link_dir: str) -> dict:
    """name, version, store (STORE_DIR/NAME), file (NAME-VERSION.raw), stored, link: checked as
    sysext_image checks them. InstallError when something is not acceptable."""
    if version is None:
        version = version_from_file(name, src)
        if version is None:
            raise InstallError('cannot tell the version of %s: name it %s-VERSION.raw or give version' % (src, name))
    for path, what in ((store_dir, 'store_dir'), (link_dir, 'link_dir')):
        if not path.startswith('/') or '\n' in path:
            raise InstallError('%s %r must be an absolute path' % (what, path))
    try:
        check_name(name)
        check_version(version)
        check_stored_name(name, version)
    except StoreError as e:
        raise InstallError(str(e)) from None
    store_dir = posixpath.normpath(store_dir)
    searched = SEARCH_DIRS_INITRD[SYSEXT] + ('/usr/lib/extensions', '/usr/local/lib/extensions')
    if any(store_dir == d or store_dir.startswith(d + '/') for d in searched):
        raise InstallError('store_dir %s is (inside) a directory systemd-sysext searches, so every stored version '
                           'would be merged; use a directory outside them, such as %s' % (store_dir, DEFAULT_STORE_DIR))
    fname = '%s-%s%s' % (name, version, SUFFIX)
    store = '%s/%s' % (store_dir.rstrip('/'), name)
    return {'name': name, 'version': version, 'store': store, 'file': fname, 'stored': '%s/%s' % (store, fname),
            'link_dir': posixpath.normpath(link_dir), 'link': '%s/%s%s' % (posixpath.normpath(link_dir).rstrip('/'),
                                                                           name, SUFFIX)}


# ----------------------------------------------------------------------------- the image, on the controller
def inspect_image(path: str, name: str, architecture: str | None) -> dict:
    """What the image says of itself, read in place on the controller (squashfs and erofs,
    also in a GPT image; nothing is mounted): release (dict or None), manifest (the
    PREFIX/tucked-python.json of images tucked.sysext.sysext_python builds, or None), note
    (why something could not be read, or None)."""
    # imported here: the readers are only needed on this path, and only on the controller
    from .imagefs import image as imagefs  # pylint: disable=import-outside-toplevel
    from . import imagemeta  # pylint: disable=import-outside-toplevel
    out = {'release': None, 'manifest': None, 'note': None}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise InstallError('%s: %s' % (path, e.strerror)) from None
    try:
        src = imagefs.Source(fd)
        layout = imagefs.locate(src, SYSEXT, architecture or 'x86-64')
        with imagefs.open_tree(src, layout, path) as tree:
            meta = imagemeta.read_tree(tree, name, SYSEXT)
            out['release'] = read_release_bytes(meta['release'], meta['release_file'])
            if tree.exists(MANIFEST.lstrip('/')):
                doc = json.loads(tree.read_file(MANIFEST.lstrip('/'), MAX_MANIFEST).decode('utf-8'))
                out['manifest'] = doc if isinstance(doc, dict) else None
    except imagefs.UnsupportedImage as e:
        out['note'] = 'not read on the controller (%s); systemd-sysext on the host decides' % e
    except FileNotFoundError:
        raise InstallError('%s holds no usr/lib/extension-release.d/extension-release.%s: it is not the system '
                           'extension %s (give its name with name)' % (path, name, name)) from None
    except (imagefs.ImageError, ReleaseError, ValueError, OSError) as e:
        raise InstallError('%s cannot be read as an extension image: %s' % (path, e)) from None
    finally:
        os.close(fd)
    return out


def check_fit(probe: dict, name: str, image: dict, glibc_min: str | None) -> list[str]:
    """Why the image cannot be merged on the host the probe describes ([] when it can), as far
    as the controller can tell: systemd-sysext present, os-release readable, the release
    file matching (systemd's rules), glibc new enough."""
    problems = []
    if not probe['sysext']:
        problems.append('the host has no systemd-sysext (systemd 248 or later ships it), which merges the image')
    if probe['os_release_file'] is None:
        problems.append('the host has neither /etc/os-release nor /usr/lib/os-release; systemd-sysext merges '
                        'nothing without one')
    elif not probe['os_release'].get('ID'):
        problems.append('%s has no ID; systemd-sysext refuses to merge onto such a host' % probe['os_release_file'])
    if image.get('release') is not None and probe['os_release'].get('ID'):
        host = Host(os_release=probe['os_release'], scope='system', architecture=probe['architecture'] or '',
                    source=probe['os_release_file'] or '')
        ok, why = validate(name, image['release'], host, SYSEXT)
        if not ok:
            problems.append(why)
    glibc = bootstrap.glibc_problem(probe['glibc'], glibc_min)
    if glibc:
        problems.append(glibc)
    return problems


def link_target(store_real: str, fname: str, link_dir_real: str) -> str:
    """The symlink text sysext_image writes: the stored file relative to the (resolved) link
    directory (store.set_link)."""
    return posixpath.relpath('%s/%s' % (store_real, fname), link_dir_real)


# ----------------------------------------------------------------------------- scripts
def _q(s: str) -> str:
    return shlex.quote(s)


def prepare_script(nonce: str, paths: dict) -> str:
    """Make the store and link directories; say where they really are (symlinks resolved), what
    the link is now and the sha256 of a file already stored under the name."""
    lines = bootstrap.preamble(nonce) + [
        's=%s; l=%s; f=%s' % (_q(paths['store']), _q(paths['link_dir']), _q(paths['file'])),
        'link="$l"/%s' % _q(paths['name'] + SUFFIX),
        'm mkdir; mkdir -p -- "$s" "$l" 2>&1; m rc $?',
        'm store-real; (cd -P -- "$s" && pwd -P)',
        'm link-real; (cd -P -- "$l" && pwd -P)',
        'm link',
        'if [ -L "$link" ]; then echo symlink; readlink -- "$link"; elif [ -d "$link" ]; then echo directory;'
        ' elif [ -e "$link" ]; then echo file; else echo none; fi',
        'm stored',
        'if [ -L "$s/$f" ] || { [ -e "$s/$f" ] && [ ! -f "$s/$f" ]; }; then echo other;'
        ' elif [ -f "$s/$f" ]; then sha256sum < "$s/$f" 2>&1; else echo none; fi',
        'm tools; for t in sha256sum mv ln; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done',
        'm end',
    ]
    return '\n'.join(lines) + '\n'


def parse_prepare(stdout: str, nonce: str, paths: dict, sha256: str) -> dict:
    """store_real, link_dir_real, previous (the link's text when it selects another of our
    versions, else None), transfer (False when the same bytes are stored already). InstallError
    when the directories cannot be made or something else is in the way."""
    sections, ended = bootstrap.sections_of(stdout, nonce)
    if not ended:
        raise InstallError('the preparation on the host was cut short: %s' % stdout[-500:])
    sec = {key: (arg, bootstrap.text_of(lines)) for key, arg, lines in sections}
    if sec.get('rc', ('1', ''))[0].strip() != '0':
        raise InstallError('cannot create %s and %s: %s' % (paths['store'], paths['link_dir'], sec.get('mkdir', ('', ''))[1]))
    store_real = sec.get('store-real', ('', ''))[1].strip()
    link_real = sec.get('link-real', ('', ''))[1].strip()
    if not store_real.startswith('/') or not link_real.startswith('/'):
        raise InstallError('cannot resolve %s and %s on the host' % (paths['store'], paths['link_dir']))
    missing = sec.get('tools', ('', ''))[1].split()
    if missing:
        raise InstallError('the host lacks %s, which the bootstrap needs' % ', '.join(missing))
    link = sec.get('link', ('', 'none'))[1].splitlines() or ['none']
    previous = None
    if link[0] == 'symlink':
        text = link[1] if len(link) > 1 else ''
        target = posixpath.normpath(posixpath.join(link_real, text))
        d, fname = posixpath.split(target)
        if d != store_real or not (fname.startswith(paths['name'] + '-') and fname.endswith(SUFFIX)):
            raise InstallError('%s points to %s, not to a version of %s in the store %s: remove it or choose another '
                               'name' % (paths['link'], text, paths['name'], paths['store']))
        previous = text
    elif link[0] != 'none':
        raise InstallError('%s is a %s, not a symlink into the store %s: remove it or choose another name'
                           % (paths['link'], link[0], paths['store']))
    stored = sec.get('stored', ('', 'none'))[1].strip()
    if stored == 'other':
        raise InstallError('%s exists and is not a regular file: remove it' % paths['stored'])
    transfer = True
    if stored != 'none':
        got = stored.split()[0] if stored.split() else ''
        if got != sha256:
            raise InstallError('%s is already stored with other bytes (sha256:%s, the image is sha256:%s): remove it, or '
                               'give this image another version' % (paths['stored'], got, sha256))
        transfer = False
    return {'store_real': store_real, 'link_dir_real': link_real, 'previous': previous, 'transfer': transfer,
            'target': link_target(store_real, paths['file'], link_real)}


def temp_file(paths: dict) -> str:
    """STORE/.#NAME-VERSION.raw.bootstrap, where the image arrives."""
    return '%s/%s%s.%s' % (paths['store'], TMP_PREFIX, paths['file'], TMP_TAG)


def link_temp(paths: dict) -> str:
    """.#NAME.raw.bootstrap, the new link before it is renamed over LINK_DIR/NAME.raw."""
    return '%s%s%s.%s' % (TMP_PREFIX, paths['name'], SUFFIX, TMP_TAG)


def activate_script(nonce: str, paths: dict, target: str, sha256: str | None, interpreter: str,
                    copy_from: str | None = None) -> str:
    """Put the transferred file in place (copied from ``copy_from`` first, when it was sent to
    the login user's temporary directory; its sha256 checked when ``sha256`` is given: it was
    transferred), point the link at it, run ``systemd-sysext refresh``, check ``interpreter``.
    A step that fails prints ``failed STEP`` and its output, and stops the script."""
    lines = bootstrap.preamble(nonce) + [
        's=%s; f=%s; t=%s; l=%s' % (_q(paths['store']), _q(paths['file']), _q(temp_file(paths)), _q(paths['link_dir'])),
        'link="$l"/%s; lt="$l"/%s' % (_q(paths['name'] + SUFFIX), _q(link_temp(paths))),
        'fail() { m failed "$1"; printf \'%s\\n\' "$2"; m end; exit 0; }',
    ]
    if copy_from is not None:
        lines.append('o=$(cp -- %s "$t" 2>&1) || { rm -f -- "$t"; fail copy "$o"; }' % _q(copy_from))
    if sha256 is not None:
        lines += [
            'got=$(sha256sum < "$t" 2>&1 | cut -d" " -f1)',
            'if [ "$got" != %s ]; then rm -f -- "$t"; fail checksum "sha256:$got arrived, not sha256:%s"; fi'
            % (_q(sha256), sha256),
            'o=$(chmod 0644 -- "$t" 2>&1 && mv -f -- "$t" "$s/$f" 2>&1) || { rm -f -- "$t"; fail store "$o"; }',
            'sync -- "$s/$f" "$s" 2>/dev/null || sync',
            'm stored',
        ]
    lines += [
        'rm -f -- "$lt"',
        'o=$(ln -s -- %s "$lt" 2>&1 && mv -f -- "$lt" "$link" 2>&1) || { rm -f -- "$lt"; fail link "$o"; }' % _q(target),
        'm linked',
        'm refresh; systemd-sysext refresh 2>&1; m refresh-rc $?',
    ]
    lines += bootstrap.interpreter_lines(interpreter, nonce)
    lines.append('m end')
    return '\n'.join(lines) + '\n'


def undo_script(nonce: str, paths: dict, previous: str | None, remove_stored: bool) -> str:
    """Select what was selected before (or nothing), drop the stored file when this run stored
    it, and refresh again."""
    lines = bootstrap.preamble(nonce) + [
        'l=%s; link="$l"/%s; lt="$l"/%s' % (_q(paths['link_dir']), _q(paths['name'] + SUFFIX), _q(link_temp(paths))),
        'm unlink',
    ]
    if previous:
        lines.append('rm -f -- "$lt"; ln -s -- %s "$lt" 2>&1 && mv -f -- "$lt" "$link" 2>&1' % _q(previous))
    else:
        lines.append('rm -f -- "$link" 2>&1')
    if remove_stored:
        lines.append('rm -f -- %s 2>&1' % _q(paths['stored']))
    lines += ['m refresh; systemd-sysext refresh 2>&1; m refresh-rc $?', 'm end']
    return '\n'.join(lines) + '\n'


def parse_steps(stdout: str, nonce: str) -> dict:
    """{key: (arg, text)} of an activate or undo script's sections, and 'complete'. The
    interpreter's sections are parsed into 'interpreter' (a candidate dict)."""
    sections, ended = bootstrap.sections_of(stdout, nonce)
    out = {'complete': ended}
    body, path = [], None
    for key, arg, lines in sections:
        if key == 'interpreter':
            path = arg
            body.append(('output', '', lines))
        elif path is not None and key in ('missing', 'not-executable', 'python', 'rc'):
            body.append((key, arg, lines))
        else:
            out[key] = (arg, bootstrap.text_of(lines))
    if path is not None:
        out['interpreter'] = bootstrap.parse_candidate(path, body)
    return out


def refresh_failed(steps: dict) -> str | None:
    """Why the refresh in ``steps`` did not succeed, or None."""
    if 'refresh-rc' not in steps:
        return 'systemd-sysext refresh did not run to its end'
    rc = steps['refresh-rc'][0].strip()
    if rc != '0':
        return 'systemd-sysext refresh exited with %s: %s' % (rc, steps.get('refresh', ('', ''))[1][-1000:])
    return None


def sha256_ok(text: str) -> bool:
    return bool(re.match(r'^[0-9a-f]{64}$', text))
