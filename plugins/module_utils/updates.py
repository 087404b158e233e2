# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which hosts are behind, on the controller: one ``sysext_image state=query`` result (what the
store holds and what the entry's source offers this host) and the host's facts rows for that
extension (what is merged, from sysext_facts) give the extension's update state on the host, in
systemd's version order (strverscmp_improved). Reads results only, never a host."""

from __future__ import annotations

from .version import strverscmp_improved

# behind: the merged version is older than the one available; current: the same; ahead: newer;
# missing: not merged; unknown: merged, but which version runs cannot be told (or no facts);
# none: the source offers this host no version; error: the query failed
STATES = ('behind', 'current', 'ahead', 'missing', 'unknown', 'none', 'error')


def _get(value, key):
    return value.get(key) if isinstance(value, dict) else None


def identity(result: dict) -> tuple:
    """(class, name) of a query result; from its loop item when the task failed before the module ran."""
    item = result.get('item') if isinstance(result.get('item'), dict) else {}
    return (result.get('class') or item.get('class') or item.get('kind') or 'sysext', result.get('name') or item.get('name'))


def source_of(result: dict) -> tuple:
    """('download', URL) or ('transfer', SRC) of the version available, or (None, None)."""
    repo = result.get('repository') if isinstance(result.get('repository'), dict) else {}
    item = result.get('item') if isinstance(result.get('item'), dict) else {}
    if repo.get('url') or (not repo and item.get('url')):
        return 'download', repo.get('url') or item.get('url')
    if repo.get('src') or (not repo and item.get('src')):
        return 'transfer', repo.get('src') or item.get('src')
    return None, None


def classify(result: dict, rows: list | None) -> dict:
    """The update state of one extension on one host: ``result`` its query result (a registered
    loop item), ``rows`` the host's sysext_extensions rows (None: the host has no facts).
    ``merged`` is the version running, ``how``/``source`` what the next rollout would do to get
    ``available`` when the store does not hold it yet."""
    cls, name = identity(result)
    out = {'name': name, 'class': cls, 'state': None, 'merged': None, 'selected': result.get('selected'),
           'versions': list(result.get('versions') or []), 'available': result.get('available'),
           'stored': bool(result.get('stored')), 'how': None, 'source': None, 'reason': None}
    if result.get('failed') or result.get('unreachable'):
        return dict(out, state='error', available=None, reason=result.get('msg') or 'the query failed')
    if not out['stored'] and out['available'] is not None:
        out['how'], out['source'] = source_of(result)
    merged = [r for r in rows or [] if r.get('merged') and r.get('name') == name and r.get('class') == cls]
    if merged:
        out['merged'] = merged[0].get('running_version')
    if out['available'] is None:
        return dict(out, state='none', reason=_get(result.get('repository'), 'reason') or 'no version is given')
    if rows is None:
        return dict(out, state='unknown', reason='no facts from this host: what is merged is not known')
    if not merged:
        return dict(out, state='missing', reason='not merged')
    if out['merged'] is None:
        return dict(out, state='unknown', reason='merged, but the version running cannot be told (a refresh is due)')
    c = strverscmp_improved(out['merged'], out['available'])
    return dict(out, state='behind' if c < 0 else 'ahead' if c > 0 else 'current')


def results_of(registered) -> list:
    """The query results in a registered variable: a loop's ``results`` (or that list itself), skipped
    items left out, or one result; a failed task without results (an unreachable host) is one result."""
    if isinstance(registered, dict) and isinstance(registered.get('results'), list):
        registered = registered['results']
    if isinstance(registered, list):
        return [r for r in registered if isinstance(r, dict) and not r.get('skipped')]
    if not isinstance(registered, dict) or registered.get('skipped'):
        return []
    return [registered]
