# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the service manager is asked to do after a change, as systemd-sysext 262 does it.

The extension-release files of the extensions merged before and after the change say it:
``EXTENSION_RELOAD_MANAGER=`` (a boolean: daemon-reload), ``EXTENSION_RESTART_UNITS=`` and
``EXTENSION_RELOAD_OR_RESTART_UNITS=`` (whitespace-separated unit names). Listing a unit
implies the reload; a unit in both lists is only restarted; an invalid name is ignored with
a warning. After the reload each listed unit is restarted (started when it was not running)
or reloaded-or-restarted; a unit whose unit file went away with its extension cannot be
restarted and is stopped instead. All of this happens only on a live system (root ``/``,
PID 1 systemd) and never when nothing changed.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import NamedTuple

from . import proc, release, rootfs

RELOAD_MANAGER = 'EXTENSION_RELOAD_MANAGER'
RESTART = 'EXTENSION_RESTART_UNITS'
RELOAD_OR_RESTART = 'EXTENSION_RELOAD_OR_RESTART_UNITS'
UNIT_NAME_MAX = 256
# systemd's unit_name_is_valid(UNIT_NAME_PLAIN|UNIT_NAME_INSTANCE): "a.service", "a@b.service";
# not templates ("a@.service")
_UNIT = re.compile(r'[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]+)?'
                   r'\.(service|socket|target|device|mount|automount|swap|timer|path|slice|scope)')
RELEASE_DIRS = {'sysext': 'usr/lib/extension-release.d', 'confext': 'etc/extension-release.d'}


class Actions(NamedTuple):
    reload: bool
    restart: tuple
    reload_or_restart: tuple
    warnings: tuple


def unit_name_is_valid(name: str) -> bool:
    return 0 < len(name) < UNIT_NAME_MAX and _UNIT.fullmatch(name) is not None


def collect(extensions) -> Actions:
    """``extensions``: (name, extension-release dict) pairs, before and after the change."""
    reload_, restart, reload_or_restart, warnings = False, [], [], []
    for name, fields in extensions:
        value = fields.get(RELOAD_MANAGER, '')
        if value:
            b = release.parse_boolean(value)
            if b is None:
                warnings.append('Failed to parse %s= of %s, ignoring: %r is not a boolean' % (RELOAD_MANAGER, name, value))
            reload_ = reload_ or bool(b)
        for key, into in ((RESTART, restart), (RELOAD_OR_RESTART, reload_or_restart)):
            for unit in fields.get(key, '').split():
                if not unit_name_is_valid(unit):
                    warnings.append("Invalid unit name '%s' in %s= of %s, ignoring." % (unit, key, name))
                elif unit not in into:
                    into.append(unit)
    reload_or_restart = [u for u in reload_or_restart if u not in restart]
    return Actions(reload_ or bool(restart or reload_or_restart), tuple(sorted(restart)),
                   tuple(sorted(reload_or_restart)), tuple(warnings))


def merged_releases(root: str, cls: str, names) -> list:
    """(name, fields) of the extension-release files of ``names`` as the merged tree under
    ``root`` shows them (unreadable or missing ones are left out, as systemd does)."""
    out = []
    for name in names:
        path = os.path.join(root, RELEASE_DIRS[cls], 'extension-release.' + name)
        try:
            out.append((name, release.read_release_bytes(rootfs.read_regular(path, release.MAX_RELEASE_SIZE), path)))
        except (OSError, release.ReleaseError):
            continue
    return out


def live(root: str) -> bool:
    """A running system whose service manager is systemd, and the root is that system's."""
    return os.path.realpath(root) == '/' and os.path.isdir('/run/systemd/system')


def _systemctl(systemctl: str, *args: str) -> subprocess.CompletedProcess:
    return proc.run([systemctl] + list(args), capture_output=True, text=True, check=False)


def apply(actions: Actions, systemctl: str) -> dict:
    """daemon-reload, then (re)start the units; returns what was done and the warnings."""
    done = {'reloaded': False, 'restarted': [], 'reloaded_or_restarted': [], 'stopped': [],
            'warnings': list(actions.warnings)}
    if not actions.reload:
        return done
    res = _systemctl(systemctl, 'daemon-reload')
    if res.returncode != 0:
        done['warnings'].append('systemctl daemon-reload failed: %s' % (res.stderr or res.stdout).strip())
        return done
    done['reloaded'] = True
    for verb, units, key in (('restart', actions.restart, 'restarted'),
                             ('reload-or-restart', actions.reload_or_restart, 'reloaded_or_restarted')):
        for unit in units:
            if _systemctl(systemctl, 'show', '-P', 'LoadState', unit).stdout.strip() == 'not-found':
                verb_now, key_now = 'stop', 'stopped'      # its unit file went away with its extension
            else:
                verb_now, key_now = verb, key
            res = _systemctl(systemctl, '--no-block', verb_now, unit)
            if res.returncode == 0:
                done[key_now].append(unit)
            else:
                done['warnings'].append('systemctl %s %s failed: %s' % (verb_now, unit, (res.stderr or res.stdout).strip()))
    return done
