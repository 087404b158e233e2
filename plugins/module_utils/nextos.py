# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The next-OS check: would the extension images found on a root still match another
os-release, the one an OS update would bring?

The images are matched with release.match(), the rules this collection applies to the running
OS (systemd's extension_release_validate()), against a Host made of the next os-release and
what an OS update does not change: the scope of the root (``initrd`` with /etc/initrd-release)
and the machine's architecture (systemd compares ARCHITECTURE= of an extension with the running
kernel's, uname, never with the os-release's ARCHITECTURE=).

The next os-release is given as data (a dict of fields, or the text of an os-release file, e.g.
read on the controller) or as a file on the managed node. It is read more strictly than systemd
reads os-release: a line that is not KEY=VALUE, a field that is not a string, or a missing ID is
an error naming the input and the fix, as a typo would otherwise change the answer silently.
"""

from __future__ import annotations

from . import release, rootfs

PARAM = 'next_os_release'
FILE_PARAM = 'next_os_release_file'
EXAMPLE = "{ID: fedora, VERSION_ID: '42'}"


class NextOSError(ValueError):
    """The next os-release cannot be used; the message names the input and the fix."""


def from_fields(fields: dict, what: str = PARAM) -> dict:
    """The fields of a dict given as data, checked: os-release names, string values (integers are
    taken as their digits; a float or a boolean is refused, YAML reads 1.10 as 1.1)."""
    if not isinstance(fields, dict):
        raise NextOSError('%s must be a dict of os-release fields (e.g. %s) or the text of an os-release file, '
                          'not a %s' % (what, EXAMPLE, type(fields).__name__))
    out = {}
    for key, value in fields.items():
        if not isinstance(key, str) or not release.KEY.match(key):
            raise NextOSError('%s: %r is not an os-release field name (letters, digits and _, not starting with a '
                              'digit, e.g. VERSION_ID); give the fields as KEY: value, e.g. %s' % (what, key, EXAMPLE))
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise NextOSError('%s: %s is a %s (%r), not a string: quote it (%s: "...")%s'
                              % (what, key, type(value).__name__, value, key,
                                 '; YAML reads an unquoted 1.10 as the number 1.1' if isinstance(value, float) else ''))
        out[key] = str(value)
    return out


def _strict(what: str, ignored: list) -> None:
    if ignored:
        line, text = ignored[0]
        raise NextOSError('%s line %d is not KEY=VALUE (%r); an os-release file holds KEY=VALUE lines (KEY: letters, '
                          'digits and _) and # comments, see os-release(5): fix or remove that line%s'
                          % (what, line, text[:80], ' (and %d more)' % (len(ignored) - 1) if len(ignored) > 1 else ''))


def from_text(text: str, what: str = PARAM) -> dict:
    """The fields of os-release text given as data (parsed as systemd parses it, strictly)."""
    ignored: list = []
    try:
        fields = release.parse_env(text, ignored)
    except release.ReleaseError as e:
        raise NextOSError('%s %s; give the text of an os-release file (KEY=VALUE lines)' % (what, e)) from None
    _strict(what, ignored)
    return fields


def read_file(path: str) -> dict:
    """The fields of the os-release file ``path`` on this machine (not inside a root)."""
    try:
        data = rootfs.read_regular(path, release.MAX_RELEASE_SIZE)
    except rootfs.NotRegular as e:
        raise NextOSError('%s %s; give %s as the path of an os-release file (e.g. the new OS\'s usr/lib/os-release)'
                          % (path, e.strerror, FILE_PARAM)) from None
    except OSError as e:
        raise NextOSError('cannot read %s (%s): %s; give the path of an os-release file on the managed node, or the '
                          'fields as %s' % (FILE_PARAM, path, e.strerror or e, PARAM)) from None
    ignored: list = []
    try:
        fields = release.read_release_bytes(data, path, ignored)
    except release.ReleaseError as e:
        raise NextOSError(str(e)) from None
    _strict(path, ignored)
    return fields


def load(value=None, path: str | None = None) -> tuple[dict, str]:
    """(fields, source) of the next os-release: ``value`` a dict of fields or os-release text,
    else the file ``path``; source names it in messages (PARAM, or the path)."""
    if path:
        return read_file(path), path
    if isinstance(value, str):
        return from_text(value), PARAM
    return from_fields(value), PARAM


def host_for(fields: dict, source: str, current: release.Host) -> tuple[release.Host, list]:
    """The Host the images are matched against for the next OS, and warnings. ``current``: the
    root's Host now, whose scope and architecture an OS update keeps."""
    if not fields.get('ID'):
        raise NextOSError('%s has no ID (or an empty one); systemd-sysext refuses to merge onto such an OS. Add ID=... '
                          '(the next OS\'s identifier, e.g. ID=fedora)' % source)
    warnings = []
    arch = fields.get('ARCHITECTURE')
    if arch and arch != current.architecture:
        warnings.append('%s has ARCHITECTURE=%s, but systemd-sysext matches extensions against the architecture of '
                        'the running kernel, %s; the next-OS check uses %s'
                        % (source, arch, current.architecture, current.architecture))
    return release.Host(os_release=dict(fields), scope=current.scope, architecture=current.architecture,
                        source=source), warnings


def image_match(img, nxt: release.Host) -> dict:
    """``next_os`` of one image (images.Image): compatible (None when its release could not be
    read), the field that fails, and why."""
    if not img.readable:
        return {'compatible': None, 'field': None,
                'reason': 'cannot be matched: its release could not be read (%s)' % img.reason}
    m = release.match(img.name, img.release or {}, nxt, img.cls)
    return {'compatible': m.compatible, 'field': m.field, 'reason': m.reason}


def summary(nxt: release.Host, current: release.Host, found: list) -> dict:
    """``ansible_facts.sysext.next_os``: the next OS, the images it would drop (compatible now,
    refused by the next OS: ``field`` and ``reason`` say why) and those it would gain (refused
    now by their release, matching the next OS). ``found``: (images.Image, its next_os) pairs."""
    dropped, gained = [], []
    for img, nm in found:
        base = {'name': img.name, 'class': img.cls, 'entry': img.entry, 'version': img.version}
        if img.compatible and nm['compatible'] is False:
            dropped.append(dict(base, field=nm['field'], reason=nm['reason']))
        elif nm['compatible'] and not release.match(img.name, img.release or {}, current, img.cls).compatible:
            gained.append(base)
    osr = nxt.os_release
    return {'source': nxt.source, 'id': osr.get('ID'), 'version_id': osr.get('VERSION_ID'),
            'id_like': osr.get('ID_LIKE'), 'sysext_level': osr.get('SYSEXT_LEVEL'),
            'confext_level': osr.get('CONFEXT_LEVEL'), 'architecture': nxt.architecture, 'scope': nxt.scope,
            'compatible': not dropped, 'dropped': dropped, 'gained': gained}
