# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's systemd-sysupdate transfer definitions, read as systemd reads them
(src/sysupdate/sysupdate.c, sysupdate-transfer.c transfer_read_definition() and
transfer_finalize()), so that the role can roll out the extensions they describe:

- the directories: ``sysupdate.d`` (no component) or ``sysupdate.COMPONENT.d`` (``-C``) in /etc,
  /run, /usr/local/lib, /usr/lib, an earlier one masking the same file name in a later one;
  ``*.transfer`` files, and only when there is none ``*.conf`` (the names before v257);
  each file's drop-ins ``FILE.d/*.conf`` in the same directories;
- the keys of [Transfer], [Source] and [Target], each value as systemd parses it: a value
  systemd warns about and ignores is reported as a warning naming FILE:LINE and ignored; a
  MatchPattern= it refuses, or a definition transfer_finalize() refuses, makes the transfer
  ``invalid`` with systemd's reason;
- the defaults: Target Type= from the source, Target MatchPattern= the source's, InstancesMax=
  3 for files (1 is raised to 2), Verify= yes.

Only a ``url-file`` source with a ``regular-file`` target, selected by an absolute
CurrentSymlink=, is an extension image this collection can roll out; any other transfer is
returned with ``supported: false`` and why. Path= and CurrentSymlink= are returned with their
specifiers expanded (the root's architecture and os-release); the MatchPattern= values as
written, since sysext_image expands them itself (the source's on the controller, the target's
on the host)."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from . import confparser
from .images import plain_extension_name
from .release import parse_boolean
from .sysupdatepattern import Host, MachineSpecifier, Pattern, PatternError, expand_specifiers
from .vpick import version_is_valid

CONF_DIRS = ('/etc', '/run', '/usr/local/lib', '/usr/lib')
# the keyrings systemd-pull verifies SHA256SUMS.gpg with (the first that exists)
KEYRINGS = ('/etc/systemd/import-pubring.pgp', '/etc/systemd/import-pubring.gpg', '/usr/lib/systemd/import-pubring.pgp')
SECTIONS = ('Transfer', 'Source', 'Target')
SOURCE_TYPES = ('url-file', 'url-tar', 'tar', 'regular-file', 'directory', 'subvolume')
TARGET_TYPES = ('partition', 'regular-file', 'directory', 'subvolume')
TYPES = SOURCE_TYPES + ('partition',)          # resource_type_from_string()
RELATIVE_TO = ('root', 'esp', 'xbootldr', 'boot', 'explicit')
DEFAULT_FILE_INSTANCES_MAX = 3
# keys systemd knows that decide nothing this collection does (partitions, metadata URLs)
IGNORED = {'Transfer': ('ChangeLog', 'AppStream'),
           'Target': ('MatchPartitionType', 'PartitionUUID', 'PartitionFlags', 'PartitionNoAuto',
                      'PartitionGrowFileSystem', 'ReadOnly', 'Mode', 'TriesLeft', 'TriesDone', 'RemoveTemporary')}


class SysupdateError(ValueError):
    """A component name or a root that cannot be read."""


@dataclass
class Resource:
    type: str | None = None
    path: str | None = None
    path_relative_to: str = 'root'
    patterns: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {'type': self.type, 'path': self.path, 'path_relative_to': self.path_relative_to,
                'match_pattern': list(self.patterns)}


@dataclass
class Transfer:
    id: str
    file: str                       # in-root path of the definition
    component: str | None
    dropins: list = field(default_factory=list)
    source: Resource = field(default_factory=Resource)
    target: Resource = field(default_factory=Resource)
    current_symlink: str | None = None
    instances_max: int = 0
    verify: bool | None = None
    min_version: str | None = None
    max_version: str | None = None
    protect_version: list = field(default_factory=list)
    features: list = field(default_factory=list)
    requisite_features: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)   # the IGNORED keys given, as written
    machine_specifiers: list = field(default_factory=list)   # values with %H, %m ... (systemd expands them)
    invalid: str | None = None      # why systemd refuses this definition
    unsupported: str | None = None  # why this collection cannot roll it out
    warnings: list = field(default_factory=list)

    @property
    def supported(self) -> bool:
        return not self.invalid and not self.unsupported

    def as_dict(self) -> dict:
        return {'id': self.id, 'file': self.file, 'component': self.component, 'dropins': self.dropins,
                'source': self.source.as_dict(),
                'target': dict(self.target.as_dict(), current_symlink=self.current_symlink),
                'instances_max': self.instances_max or None,    # (None: every partition slot)
                'keep': max(0, self.instances_max - 1) if self.instances_max else None,
                'verify': self.verify, 'min_version': self.min_version, 'max_version': self.max_version,
                'protect_version': self.protect_version, 'features': self.features,
                'requisite_features': self.requisite_features, 'settings': self.settings,
                'supported': self.supported, 'invalid': self.invalid, 'unsupported': self.unsupported,
                'warnings': self.warnings}


# ----------------------------------------------------------------------------- discovery
def check_component(name: str) -> None:
    if not name or '/' in name or name.startswith('.') or any(c.isspace() for c in name):
        raise SysupdateError('invalid sysupdate component %r: give the NAME of /etc/sysupdate.NAME.d' % (name,))


def definition_dirs(component: str | None) -> tuple:
    sub = 'sysupdate.d' if component is None else 'sysupdate.%s.d' % component
    return tuple('%s/%s' % (d, sub) for d in CONF_DIRS)


def components(root: str) -> list:
    """The components with a ``sysupdate.NAME.d`` directory (``systemd-sysupdate components``)."""
    found = set()
    for d in CONF_DIRS:
        try:
            names = os.listdir(os.path.join(root, d.lstrip('/')))
        except OSError:
            continue
        found |= {n[len('sysupdate.'):-2] for n in names
                  if n.startswith('sysupdate.') and n.endswith('.d') and len(n) > len('sysupdate..d')}
    return sorted(found)


def read_transfers(root: str, component: str | None, host: Host) -> list:
    """The Transfer records systemd-sysupdate (``-C component``) reads in ``root``."""
    if component is not None:
        check_component(component)
    dirs = definition_dirs(component)
    files = confparser.list_files(root, dirs, '.transfer') or confparser.list_files(root, dirs, '.conf')
    return [read_transfer(root, f, dirs, component, host) for f in files]


# ----------------------------------------------------------------------------- one definition
def read_transfer(root: str, inroot: str, dirs: tuple, component: str | None, host: Host) -> Transfer:
    fname = os.path.basename(inroot)
    t = Transfer(id=fname.rsplit('.', 1)[0], file=inroot, component=component)
    try:
        items, t.dropins = confparser.parse_with_dropins(root, inroot, dirs, SECTIONS, t.warnings)
        for a in items:
            _assign(t, a, host)
    except (confparser.ConfError, PatternError) as e:
        t.invalid = str(e)
        return t
    t.invalid = _finalize(t)
    if not t.invalid:
        t.unsupported = _unsupported(t, host)
    return t


def _assign(t: Transfer, a: confparser.Assignment, host: Host) -> None:
    sec, key, val = a.section, a.key, a.value
    res = t.source if sec == 'Source' else t.target

    def warn(msg):
        t.warnings.append('%s: %s' % (a.where, msg))

    if key in IGNORED.get(sec, ()):
        t.settings[key] = val
    elif sec in ('Source', 'Target') and key == 'Type':
        if val in TYPES:
            res.type = val
        else:
            warn('failed to parse %s Type=, ignoring: %s' % (sec, val))
    elif sec in ('Source', 'Target') and key == 'Path':
        res.path = _expand(t, val, host, a, warn, 'Path=') or res.path     # (an error: ignored, as systemd does)
    elif sec in ('Source', 'Target') and key == 'PathRelativeTo':
        if val in RELATIVE_TO or not val:
            res.path_relative_to = val or 'root'
        else:
            warn('failed to parse PathRelativeTo=, ignoring: %s' % val)
    elif sec in ('Source', 'Target') and key == 'MatchPattern':
        res.patterns = [] if not val else _patterns(t, res.patterns, val, sec == 'Source', host, a, warn)
    elif sec == 'Target' and key == 'CurrentSymlink':
        path = _expand(t, val, host, a, warn, 'CurrentSymlink=') if val else None
        if path or not val:
            t.current_symlink = os.path.normpath(path) if path else None
    elif sec == 'Target' and key == 'InstancesMax':
        if not val:
            t.instances_max = 0
        elif val.isdigit():
            t.instances_max = int(val)
            if t.instances_max == 1:
                warn('InstancesMax= value must be at least 2, bumping: 1')
                t.instances_max = 2
        else:
            warn('failed to parse InstancesMax= value, ignoring: %s' % val)
    elif sec == 'Transfer' and key == 'Verify':
        b = parse_boolean(val) if val else None
        if val and b is None:
            warn('failed to parse Verify=, ignoring: %s' % val)
        elif not val or b is not None:
            t.verify = b
    elif sec == 'Transfer' and key in ('MinVersion', 'MaxVersion'):
        v = _expand(t, val, host, a, warn, key + '=') if val else None
        if v is not None and not version_is_valid(v):
            warn('%s= is not a valid version, ignoring: %s' % (key, val))
        elif v is not None or not val:
            setattr(t, 'min_version' if key == 'MinVersion' else 'max_version', v)
    elif sec == 'Transfer' and key == 'ProtectVersion':
        if not val:
            t.protect_version = []
        for word in _words(val, warn):
            v = _expand(t, word, host, a, warn, 'ProtectVersion=')
            if v and version_is_valid(v):
                t.protect_version.append(v)
            elif v is not None:
                warn('ProtectVersion= is not a valid version, ignoring: %s' % word)
    elif sec == 'Transfer' and key in ('Features', 'RequisiteFeatures'):
        lst = t.features if key == 'Features' else t.requisite_features
        if not val:
            del lst[:]
        lst.extend(_words(val, warn))
    else:
        warn("unknown key '%s' in section [%s], ignoring" % (key, sec))


def _expand(t: Transfer, val: str, host: Host, a, warn, what: str) -> str | None:
    """``val`` with its specifiers expanded; None (warned) for one systemd does not know either,
    the value as written (and the transfer unsupported) for one naming machine state."""
    try:
        return expand_specifiers(val, host, what)
    except MachineSpecifier as e:
        t.machine_specifiers.append('%s: %s' % (a.where, e))
        return val
    except PatternError as e:
        warn('failed to expand specifiers in %s, ignoring (%s)' % (what, e))
        return None


def _words(val: str, warn) -> list:
    """extract_first_word() with quotes and C escapes, as systemd splits list values."""
    try:
        return shlex.split(val, comments=False, posix=True)
    except ValueError as e:
        warn('failed to split %r, ignoring: %s' % (val, e))
        return []


def _patterns(t: Transfer, current: list, val: str, is_source: bool, host: Host, a, warn) -> list:
    out = list(current)
    for word in _words(val, warn):
        try:
            expanded = expand_specifiers(word, host)
        except MachineSpecifier as e:
            t.machine_specifiers.append('%s: %s' % (a.where, e))
            out.append(word)
            continue
        except PatternError as e:
            warn('failed to expand specifiers in MatchPattern=, ignoring: %s (%s)' % (val, e))
            return current
        body = expanded[3:] if expanded.startswith('**/') else expanded
        if body is not expanded and not is_source:
            raise PatternError("%s: '**/' prefix is only supported in a source MatchPattern=, refusing: %s"
                               % (a.where, word))
        try:
            Pattern(body)
        except PatternError as e:
            raise PatternError('%s: MatchPattern= string is not valid, refusing: %s (%s)' % (a.where, word, e)) from None
        if word not in out:
            out.append(word)
    return out


def _finalize(t: Transfer) -> str | None:
    """transfer_finalize(): the defaults filled in; systemd's refusal, or None."""
    where = t.file
    if t.source.type not in SOURCE_TYPES:
        return '%s: Source Type= must be one of %s' % (where, ', '.join(SOURCE_TYPES))
    if t.target.type is None:
        if t.source.type in ('url-file', 'regular-file'):
            t.target.type = 'partition' if (t.target.path or '').startswith('/dev/') else 'regular-file'
        else:
            t.target.type = 'subvolume' if t.source.type == 'subvolume' else 'directory'
    if t.target.type not in TARGET_TYPES:
        return '%s: Target Type= must be one of %s' % (where, ', '.join(TARGET_TYPES))
    files = (t.source.type in ('url-file', 'partition', 'regular-file'),
             t.target.type in ('partition', 'regular-file'))
    if files[0] != files[1]:
        return "%s: Target type '%s' is incompatible with source type '%s', refusing" % (
            where, t.target.type, t.source.type)
    if not t.source.path:
        return '%s: Source specification lacks Path=' % where
    if t.source.type.startswith('url-') and not t.source.path.startswith(('http://', 'https://', 'file://')):
        return '%s: Source path is not a valid HTTP, HTTPS or file URL: %s' % (where, t.source.path)
    if not t.source.type.startswith('url-') and not _normalized_absolute(t.source.path):
        return '%s: Source path is not a normalized, absolute path: %s' % (where, t.source.path)
    if not t.source.patterns:
        return '%s: Source specification lacks MatchPattern=' % where
    if not t.target.path:
        return '%s: Target specification lacks Path= field' % where
    if t.target.path != 'auto' and not _normalized_absolute(t.target.path):
        return '%s: Target path is not a normalized, absolute path: %s' % (where, t.target.path)
    if t.target.path_relative_to == 'explicit':
        return '%s: PathRelativeTo=explicit can only be used in source specifications' % where
    if not t.target.patterns:
        stripped = [p[3:] if p.startswith('**/') else p for p in t.source.patterns]
        t.target.patterns = [p for i, p in enumerate(stripped) if p not in stripped[:i]]
    if t.instances_max == 0:
        t.instances_max = DEFAULT_FILE_INSTANCES_MAX if t.target.type != 'partition' else 0
    if t.verify is None:
        t.verify = True
    return None


def _normalized_absolute(path: str) -> bool:
    return path.startswith('/') and os.path.normpath(path) == path and not path.startswith('//')


def _unsupported(t: Transfer, host: Host) -> str | None:
    """Why the role cannot roll this transfer out, or None."""
    if (t.source.type, t.target.type) != ('url-file', 'regular-file'):
        return ('%s: a %s source with a %s target is not an extension image this collection rolls out (only '
                'Source Type=url-file with Target Type=regular-file is)' % (t.file, t.source.type, t.target.type))
    if t.target.path_relative_to != 'root':
        return '%s: Target PathRelativeTo=%s is not supported (only root)' % (t.file, t.target.path_relative_to)
    if t.machine_specifiers:
        return '%s (systemd expands it with the machine\'s state; not supported here)' % t.machine_specifiers[0]
    if t.features or t.requisite_features:
        return '%s: Features=/RequisiteFeatures= (sysupdate.features) are not supported' % t.file
    if not t.current_symlink or not t.current_symlink.startswith('/'):
        return ('%s: the role selects a version by a symlink, and this transfer has no absolute CurrentSymlink= '
                '(%s)' % (t.file, t.current_symlink or 'none'))
    name = os.path.basename(t.current_symlink)
    if not name.endswith('.raw') or not plain_extension_name(name[:-4]):
        return ('%s: CurrentSymlink=%s is not named NAME.raw, the name systemd-sysext merges an image file by'
                % (t.file, t.current_symlink))
    if t.protect_version:
        return ('%s: ProtectVersion= is not supported (the store would not know to keep %s when it prunes)'
                % (t.file, ', '.join(t.protect_version)))
    for p in t.target.patterns:
        extra = Pattern(expand_specifiers(p, host)).other_fields()
        if extra:
            return ('%s: the target MatchPattern= %s names %s; the store names its files by @v alone, in the '
                    'target directory' % (t.file, p, ', '.join(extra)))
    if 'Mode' in t.settings or 'TriesLeft' in t.settings or 'TriesDone' in t.settings:
        keys = [k for k in ('Mode', 'TriesLeft', 'TriesDone') if k in t.settings]
        return '%s: %s= is not supported (the store writes its files 0644, without tries)' % (t.file, '=, '.join(keys))
    return None


# ----------------------------------------------------------------------------- what the role rolls out
def image_entry(t: Transfer) -> dict:
    """The role's image entry for a supported transfer: the extension named by CurrentSymlink=,
    from the source's repository and patterns, stored under the target's path and patterns,
    keeping InstancesMax= - 1 older versions (systemd keeps at most InstancesMax= instances,
    the new one included)."""
    spec = ','.join(x for x in ('>=' + t.min_version if t.min_version else '',
                                '<=' + t.max_version if t.max_version else '') if x)
    return {'name': os.path.basename(t.current_symlink)[:-len('.raw')], 'version': spec or 'latest',
            'repository': t.source.path, 'match_pattern': list(t.source.patterns), 'store_dir': t.target.path,
            'store_pattern': list(t.target.patterns), 'link_dir': os.path.dirname(t.current_symlink),
            'keep': max(0, t.instances_max - 1), 'verify': bool(t.verify), 'transfer': t.file,
            'component': t.component}


def host_keyring(root: str) -> str | None:
    """The in-root keyring systemd-pull would verify a transfer's index with, or None."""
    for k in KEYRINGS:
        if os.path.isfile(os.path.join(root, k.lstrip('/'))):
            return k
    return None


def read_all(root: str, components_wanted: list | None, host: Host) -> list:
    """The transfers of the wanted components (None: the component-less directories and every
    component found); a component is named by NAME of sysupdate.NAME.d, '' for sysupdate.d."""
    wanted = [''] + components(root) if components_wanted is None else components_wanted
    out = []
    for c in wanted:
        out += read_transfers(root, c or None, host)
    return out
