# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side filters over ``ansible_facts.sysext`` (see sysext_facts): jmespath queries,
one row per extension, a fleet report with drift against wanted versions, and systemd's
version ordering (strverscmp_improved). The documentation of each filter is in the
``<filter name>.yml`` file next to this one.

jmespath is only needed by ``sysext_query`` and ``sysext_hosts_below``, on the controller;
it is imported guarded so that ansible-doc and the other filters work without it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.tucked.sysext.plugins.module_utils import updates as upd
from ansible_collections.tucked.sysext.plugins.module_utils.version import strverscmp_improved, version_key
from ansible_collections.tucked.sysext.plugins.plugin_utils import repository

try:
    import jmespath
    from jmespath import exceptions as jmespath_exceptions
    from jmespath import functions as jmespath_functions
    HAS_JMESPATH = True
except ImportError:
    jmespath = None
    HAS_JMESPATH = False

NO_JMESPATH = ('the %s filter needs the Python library jmespath on the controller '
               '(the machine running ansible-playbook): pip install jmespath on the controller')

DRIFT_STATES = ('missing', 'older', 'newer', 'excluded', 'unknown')


# ------------------------------------------------------------------------ versions
def _version(value, what: str) -> str | None:
    """A version argument as text. A YAML float (1.10 read as 1.1) would silently compare
    wrong, so it is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or isinstance(value, float):
        raise AnsibleFilterError('%s %r is a %s, not a string: quote it (YAML reads 1.10 as the number 1.1)'
                                 % (what, value, type(value).__name__))
    if isinstance(value, int):
        return str(int(value))
    if not isinstance(value, str):
        raise AnsibleFilterError('%s must be a string, got %s' % (what, type(value).__name__))
    return str(value)


def sysext_version_compare(a, b) -> int:
    """-1, 0 or 1: systemd's strverscmp_improved(a, b)."""
    return strverscmp_improved(_version(a, 'version'), _version(b, 'version'))


def sysext_version_sort(values, attribute=None, reverse=False) -> list:
    """Sort versions (or dicts by ``attribute``) in systemd's order; None sorts first."""
    if isinstance(values, (str, Mapping)) or not hasattr(values, '__iter__'):
        raise AnsibleFilterError('sysext_version_sort expects a list, got %s' % type(values).__name__)
    items = list(values)

    def key(item):
        v = item
        if attribute is not None:
            if not isinstance(item, Mapping):
                raise AnsibleFilterError('sysext_version_sort: attribute=%r given but an item is a %s, not a dict'
                                         % (attribute, type(item).__name__))
            v = item.get(attribute)
        return version_key(_version(v, 'version') or '')

    return sorted(items, key=key, reverse=bool(reverse))


# ------------------------------------------------------------------------ jmespath
def _jp_type(value) -> str:
    """The jmespath type of ``value`` by isinstance, so Ansible's tagged strings and lazy
    containers (subclasses of str, int, dict and list) and hostvars (a Mapping) are typed
    like the plain values they stand for. jmespath itself compares type names."""
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'boolean'
    if isinstance(value, (int, float)):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, Mapping):
        return 'object'
    if isinstance(value, (list, tuple)):
        return 'array'
    if type(value).__name__ == '_Expression':
        return 'expref'
    return 'unknown'


if HAS_JMESPATH:
    class _Functions(jmespath_functions.Functions):
        """jmespath's functions with isinstance-based type checks, plus sysext_version_cmp()."""

        def _type_check_single(self, current, types, function_name):
            actual = _jp_type(current)
            if actual not in [t.split('-', 1)[0] for t in types]:
                raise jmespath_exceptions.JMESPathTypeError(function_name, current, actual, types)
            subtypes = [t.split('-', 1)[1] for t in types if '-' in t]
            if subtypes and actual == 'array' and current:
                seen = {_jp_type(e) for e in current}
                ok = seen <= {subtypes[0]} if len(subtypes) == 1 else (len(seen) == 1 and seen <= set(subtypes))
                if not ok:
                    bad = next(e for e in current if _jp_type(e) not in subtypes or len(seen) > 1)
                    raise jmespath_exceptions.JMESPathTypeError(function_name, bad, _jp_type(bad), types)

        def _create_key_func(self, expref, allowed_types, function_name):
            def keyfunc(x):
                result = expref.visit(expref.expression, x)
                actual = _jp_type(result)
                if actual not in allowed_types:
                    raise jmespath_exceptions.JMESPathTypeError(function_name, result, actual, allowed_types)
                return result
            return keyfunc

        @jmespath_functions.signature({'types': ['array']}, {'types': ['expref']})
        def _func_sort_by(self, array, expref):
            if not array:
                return array
            required = _jp_type(expref.visit(expref.expression, array[0]))
            if required not in ('number', 'string'):
                raise jmespath_exceptions.JMESPathTypeError('sort_by', array[0], required, ['string', 'number'])
            return list(sorted(array, key=self._create_key_func(expref, [required], 'sort_by')))

        @jmespath_functions.signature({'types': []})
        def _func_type(self, arg):
            return _jp_type(arg)

        @jmespath_functions.signature({'types': ['string', 'null']}, {'types': ['string', 'null']})
        def _func_sysext_version_cmp(self, a, b):
            return strverscmp_improved(a, b)

        @jmespath_functions.signature({'types': ['array']}, {'types': ['expref']})
        def _func_sysext_version_sort_by(self, array, expref):
            keyfunc = self._create_key_func(expref, ['string', 'null'], 'sysext_version_sort_by')
            return sorted(array, key=lambda x: version_key(keyfunc(x) or ''))

    _OPTIONS = jmespath.Options(custom_functions=_Functions())


def _search(expr, data, filter_name: str):
    if not HAS_JMESPATH:
        raise AnsibleFilterError(NO_JMESPATH % filter_name)
    if not isinstance(expr, str):
        raise AnsibleFilterError('%s: the expression must be a string, got %s' % (filter_name, type(expr).__name__))
    try:
        compiled = jmespath.compile(str(expr))
    except jmespath_exceptions.JMESPathError as e:
        raise AnsibleFilterError('%s: invalid jmespath expression %r: %s' % (filter_name, str(expr), e)) from None
    try:
        return compiled.search(data, options=_OPTIONS)
    except jmespath_exceptions.JMESPathError as e:
        raise AnsibleFilterError('%s: jmespath expression %r failed: %s' % (filter_name, str(expr), e)) from None
    except (TypeError, ValueError) as e:
        raise AnsibleFilterError('%s: jmespath expression %r failed on this data: %s'
                                 % (filter_name, str(expr), e)) from None


def sysext_query(data, expr):
    """jmespath search; the function sysext_version_cmp(a, b) is available in expressions."""
    return _search(expr, data, 'sysext_query')


def _jp_literal(value) -> str:
    """A JSON literal for a jmespath expression (backticks escaped)."""
    return '`%s`' % json.dumps(value).replace('`', '\\`')


# ------------------------------------------------------------------------ rows
def _plain(value):
    """A deep copy with plain dict/list/str/int/float/bool/None (no tags, no lazy templating)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _is_facts(value) -> bool:
    return isinstance(value, Mapping) and 'images' in value and 'hierarchies' in value


def _facts_of(value, var=None):
    """``ansible_facts.sysext`` from: the facts dict itself, hostvars of one host (or a
    registered sysext_facts result: both have ansible_facts.sysext), facts injected as the
    variable ansible_sysext, or the variable named ``var``. None when there are none."""
    if not isinstance(value, Mapping):
        return None
    if var:
        if var not in value:
            return None
        return _facts_of(value[var])
    if _is_facts(value):
        return value
    af = value.get('ansible_facts') if 'ansible_facts' in value else None
    if isinstance(af, Mapping) and _is_facts(af.get('sysext') if 'sysext' in af else None):
        return af['sysext']
    inj = value.get('ansible_sysext') if 'ansible_sysext' in value else None
    if _is_facts(inj):
        return inj
    return None


def _check_facts(facts, what='sysext_extensions'):
    if not _is_facts(facts):
        raise AnsibleFilterError('%s expects ansible_facts.sysext (the facts tucked.sysext.sysext_facts gathers, '
                                 'with "images" and "hierarchies"), got %s' % (what, type(facts).__name__))


def _current(hierarchies: dict, names_in: list, name: str, image_origin):
    """Whether the merge of ``name`` is of this very image: True when every recorded origin
    equals the image's origin now, False when one differs (or there is no image), None when
    a hierarchy recorded no origin (merged by systemd < 260)."""
    unknown = False
    for h in names_in:
        origins = hierarchies[h].get('origins')
        if origins is None:
            unknown = True
        elif image_origin is None or origins.get(name) != image_origin:
            return False
    return None if unknown else True


def sysext_extensions(facts, ignored=False) -> list:
    """One row per image found (winners, in the order of the facts) and one per merged
    extension that has no image any more."""
    _check_facts(facts)
    facts = _plain(facts)
    hierarchies = facts.get('hierarchies') or {}
    merged_in: dict = {}          # (class, name) -> hierarchies, in the facts' order
    for h, hs in hierarchies.items():
        if hs.get('merged'):
            for n in hs.get('extensions') or []:
                merged_in.setdefault((hs.get('class'), n), []).append(h)
    rows = []
    seen = set()
    for img in facts.get('images') or []:
        is_ignored = img.get('type') == 'ignored'
        if is_ignored and not ignored:
            continue
        key = (img.get('class'), img.get('name'))
        hiers = [] if is_ignored else merged_in.get(key, [])
        if not is_ignored:
            seen.add(key)
        current = _current(hierarchies, hiers, img.get('name'), img.get('origin')) if hiers else False
        rows.append(_row(img.get('name'), img.get('class'), img.get('version'), hiers, img.get('path'),
                         img.get('type'), img.get('compatible'), img.get('reason'), current))
    for (cls, name), hiers in merged_in.items():
        if (cls, name) in seen:
            continue
        path = None
        for h in hiers:
            rec = (hierarchies[h].get('origins') or {}).get(name)
            if rec and rec.get('path'):
                path = rec['path']
                break
        rows.append(_row(name, cls, None, hiers, path, None, None,
                         'merged, but no image of this name is found any more; a refresh removes it', False))
    return rows


def _row(name, cls, version, hiers, path, typ, compatible, reason, current) -> dict:
    merged = bool(hiers)
    return {
        'name': name,
        'class': cls,
        'version': version,
        'merged': merged,
        'hierarchies': list(hiers),
        'path': path,
        'type': typ,
        'compatible': compatible,
        'reason': reason,
        'current': current,
        'running_version': version if merged and current is not False else None,
    }


# ------------------------------------------------------------------------ fleet
def _wanted_list(wanted) -> list:
    if wanted is None:
        return []
    out = []
    if isinstance(wanted, Mapping):
        for name, spec in wanted.items():
            if isinstance(spec, Mapping):
                out.append({'name': name, 'version': spec.get('version'), 'class': spec.get('class'),
                            'repository': spec.get('repository')})
            else:
                out.append({'name': name, 'version': spec, 'class': None, 'repository': None})
    elif isinstance(wanted, (list, tuple)):
        for item in wanted:
            if not isinstance(item, Mapping) or not item.get('name'):
                raise AnsibleFilterError('wanted: every item of the list needs a name (and a version), got %r' % (item,))
            out.append({'name': item['name'], 'version': item.get('version'), 'class': item.get('class'),
                        'repository': item.get('repository')})
    else:
        raise AnsibleFilterError('wanted must be a dict (name: version) or a list of {name, version}, got %s'
                                 % type(wanted).__name__)
    for w in out:
        w['name'] = _plain(w['name'])
        w['version'] = _version(w['version'], 'wanted version of %s' % w['name'])
        if w['class'] not in (None, 'sysext', 'confext'):
            raise AnsibleFilterError('wanted %s: class must be sysext or confext, got %r' % (w['name'], w['class']))
        w['spec'] = _spec(w)
        # no version, or latest from a repository: any version merged will do (updates= tells the newest)
        w['any'] = w['version'] is None or (w['spec'] is not None and w['spec'].text == 'latest')
    return out


def _spec(w: dict):
    """The version spec of a wanted entry with a repository (latest, exact, or constraints), or of a
    version that starts with an operator (>=1.2,<2); None for an exact version."""
    version = w['version']
    if not w.get('repository') and not (version or '').startswith(('<', '>', '=', '!')):
        return None
    try:
        return repository.parse_spec(version)
    except repository.RepositoryError as e:
        raise AnsibleFilterError('wanted %s: %s' % (w['name'], e)) from None


def _deviation(version: str, w: dict) -> int | None:
    """0 when ``version`` is what ``w`` wants, -1 older, 1 newer, None excluded (a != constraint)."""
    if w['spec'] is not None:
        return w['spec'].deviation(version)
    return strverscmp_improved(version, w['version'])


def _drift(host: str, rows: list, w: dict) -> list:
    rows = [r for r in rows if r['name'] == w['name'] and (w['class'] is None or r['class'] == w['class'])]
    image = next((r for r in rows if r['type'] not in (None, 'ignored') and r['compatible']), None)
    image_version = image['version'] if image else None
    fixable = image is not None and (w['any'] or (
        image_version is not None and _deviation(image_version, w) == 0))
    merged = [r for r in rows if r['merged']]
    base = {'host': host, 'name': w['name'], 'wanted': w['version'], 'image_version': image_version}
    if not merged:
        return [dict(base, **{'class': w['class'] or (image or {}).get('class'), 'version': None,
                              'state': 'missing', 'fixed_by_refresh': fixable})]
    out = []
    for r in merged:
        if w['any']:
            continue
        if r['running_version'] is None:
            state = 'unknown'
        else:
            c = _deviation(r['running_version'], w)
            if c == 0:
                continue
            state = 'excluded' if c is None else 'older' if c < 0 else 'newer'
        out.append(dict(base, **{'class': r['class'], 'version': r['running_version'], 'state': state,
                                 'fixed_by_refresh': fixable and (state == 'unknown' or not r['current'])}))
    return out


def sysext_fleet(hostvars, hosts=None, wanted=None, var=None, updates=None) -> dict:
    """Fleet report: rows host x extension, per-host summary, hosts needing a refresh, hosts
    without facts, drift from ``wanted``, and with ``updates`` (the registered sysext_image
    state=query results) each extension's update state and the hosts behind."""
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError('sysext_fleet expects hostvars (or a dict host: facts), got %s'
                                 % type(hostvars).__name__)
    if hosts is None:
        names = [str.__str__(h) if isinstance(h, str) else h for h in hostvars]
    elif isinstance(hosts, str):
        names = [str.__str__(hosts)]
    else:
        names = [_plain(h) for h in hosts]
    wants = _wanted_list(wanted)
    if updates is not None and not isinstance(updates, (str, Mapping)):
        raise AnsibleFilterError('sysext_fleet: updates must be the name of the variable the sysext_image state=query '
                                 'task registered, or a dict host: registered result, got %s' % type(updates).__name__)
    report = {'rows': [], 'hosts': [], 'needs_refresh': [], 'no_facts': [], 'unreachable': [], 'failed': [],
              'drift': [], 'updates': [], 'behind': []}
    for host in names:
        facts = _facts_of(hostvars[host], var) if host in hostvars else None
        if facts is None:
            state, error = _why_no_facts(hostvars[host] if host in hostvars else None, var)
            report['no_facts'].append(host)
            if state in ('unreachable', 'failed'):
                report[state].append(host)
            report['hosts'].append({'host': host, 'has_facts': False, 'state': state, 'error': error,
                                    'needs_refresh': None, 'actions': {}, 'merged': [], 'problems': []})
            report['updates'].extend(_updates(hostvars, host, updates, None))
            continue
        facts = _plain(facts)
        rows = sysext_extensions(facts)
        for r in rows:
            report['rows'].append(dict({'host': host}, **r))
        needs = bool(facts.get('needs_refresh'))
        problems = []
        for h, hs in (facts.get('hierarchies') or {}).items():
            problems.extend(hs.get('problems') or [])
        report['hosts'].append({
            'host': host,
            'has_facts': True,
            'state': 'ok',
            'error': None,
            'needs_refresh': needs,
            'actions': {cls: c.get('action') for cls, c in (facts.get('classes') or {}).items()},
            'merged': [r['name'] for r in rows if r['merged']],
            'problems': problems,
        })
        if needs:
            report['needs_refresh'].append(host)
        for w in wants:
            report['drift'].extend(_drift(host, rows, w))
        report['updates'].extend(_updates(hostvars, host, updates, rows))
    report['behind'] = list(dict.fromkeys(u['host'] for u in report['updates'] if u['state'] == 'behind'))
    return report


def _updates(hostvars, host, updates, rows) -> list:
    """The update state of each extension the host's query results name (updates.classify)."""
    if updates is None:
        return []
    if isinstance(updates, str):
        value = hostvars[host] if host in hostvars else None
        registered = value[updates] if isinstance(value, Mapping) and updates in value else None
    else:
        registered = updates[host] if host in updates else None
    return [dict({'host': host}, **upd.classify(r, rows)) for r in upd.results_of(_plain(registered))]


def _why_no_facts(value, var) -> tuple[str, str | None]:
    """('unreachable' | 'failed' | 'no_facts', the message) of a host without facts, from the
    registered result named ``var`` (a task that failed or could not reach the host)."""
    if not isinstance(value, Mapping):
        return 'no_facts', 'not in the inventory'
    result = value.get(var) if var and var in value else None
    if not isinstance(result, Mapping):
        return 'no_facts', None
    msg = result.get('msg') if 'msg' in result else None
    msg = _plain(msg) if msg is not None else None
    if result.get('unreachable'):
        return 'unreachable', msg
    if result.get('failed'):
        return 'failed', msg
    if result.get('skipped'):
        return 'no_facts', 'the facts task was skipped'
    return 'no_facts', None


def _rows_of(data, what: str) -> list:
    if isinstance(data, Mapping) and isinstance(data.get('rows') if 'rows' in data else None, list):
        return _plain(data['rows'])
    if isinstance(data, Mapping):
        return sysext_fleet(data)['rows']
    if isinstance(data, (list, tuple)):
        rows = _plain(list(data))
        for r in rows:
            if not isinstance(r, dict) or 'host' not in r or 'name' not in r:
                raise AnsibleFilterError('%s: list items must be the rows of sysext_fleet (with host and name), '
                                         'got %r' % (what, r))
        return rows
    raise AnsibleFilterError('%s expects hostvars, the result of sysext_fleet or its rows, got %s'
                             % (what, type(data).__name__))


def sysext_hosts_below(data, name, version, unknown=False) -> list:
    """Hosts where extension ``name`` is merged with a version below ``version`` (systemd's
    order); with unknown=true also hosts where it is merged but its version cannot be told."""
    if not HAS_JMESPATH:
        raise AnsibleFilterError(NO_JMESPATH % 'sysext_hosts_below')
    version = _version(version, 'version')
    if not version:
        raise AnsibleFilterError('sysext_hosts_below: a version to compare with is required')
    rows = _rows_of(data, 'sysext_hosts_below')
    below = 'running_version != null && sysext_version_cmp(running_version, %s) < `0`' % _jp_literal(version)
    if unknown:
        below = '(running_version == null || %s)' % below
    expr = '[?name == %s && merged && %s].host' % (_jp_literal(_plain(name)), below)
    return list(dict.fromkeys(_search(expr, rows, 'sysext_hosts_below')))


class FilterModule(object):
    """tucked.sysext filters."""

    def filters(self):
        return {
            'sysext_query': sysext_query,
            'sysext_extensions': sysext_extensions,
            'sysext_fleet': sysext_fleet,
            'sysext_hosts_below': sysext_hosts_below,
            'sysext_version_compare': sysext_version_compare,
            'sysext_version_sort': sysext_version_sort,
        }
