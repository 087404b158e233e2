# -*- coding: utf-8 -*-
# Copyright: (c) 2026, tucked.sysext contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The probe of tucked.sysext.sysext_bootstrap: one POSIX shell script, run with the
connection's raw command execution on a host that may have no Python at all, and the parser
of what it prints. Nothing here needs Ansible; the action plugin only runs the script.

The script prints sections, each opened by a marker line ``NONCE KEY [ARG]`` (NONCE is a
random word the controller chooses for each run, so no file content can pass for a marker),
the section's text following it. Lines before the ``begin`` marker (a login banner, sudo's
noise) are ignored; a missing ``end`` marker means the output was cut short.
"""

from __future__ import annotations

import re
import shlex

from .release import ReleaseError, native_architecture, parse_env

PROTOCOL = '1'
PREFIX = '/usr/lib/tucked-sysext/python'
DEFAULT_INTERPRETER = PREFIX + '/bin/python3'
# where an interpreter may already be, after ours: Debian/Fedora, RHEL 8's platform Python,
# the PyPy kubespray's Flatcar bootstrap puts into /opt/bin
SYSTEM_INTERPRETERS = ('/usr/bin/python3', '/usr/libexec/platform-python', '/opt/bin/python3')
MIN_PYTHON = (3, 9)                 # tests/config.yml: python_requires >=3.9 for the modules
INTERPRETER_TIMEOUT = 30            # seconds a candidate may take to say its version
MAX_OUTPUT = 4000                   # characters kept of what a candidate printed
# the dynamic loaders of glibc (architecture by architecture), asked for the version when
# getconf is missing
LOADERS = ('/lib64/ld-linux-x86-64.so.2', '/lib/ld-linux-aarch64.so.1', '/lib/ld-linux-armhf.so.3',
           '/lib64/ld64.so.2', '/lib/ld64.so.1', '/lib/ld-linux-riscv64-lp64d.so.1', '/lib64/ld-linux-loongarch-lp64d.so.1',
           '/lib/ld-linux.so.2', '/lib/ld-linux.so.3')


class ProbeError(Exception):
    """The probe's output cannot be read; the message says what was wrong with it."""


def candidates(first: str = DEFAULT_INTERPRETER, extra=()) -> list[str]:
    """The interpreters to try, in order, each once: ``first`` (the bootstrap image's), the
    usual system paths, then the user's."""
    out = []
    for path in [first, *SYSTEM_INTERPRETERS, *extra]:
        if path and path not in out:
            out.append(path)
    return out


def check_code(nonce: str) -> str:
    """What a candidate runs: the modules every Ansible module needs (json; zlib for the
    AnsiballZ payload), then its version on a marker line. Python 2 runs it too (and is
    then refused for its version)."""
    return ('import sys, json, zlib; sys.stdout.write("%s python %%d.%%d.%%d\\n" %% tuple(sys.version_info[:3]))'
            % nonce)


def interpreter_lines(path: str, nonce: str, stop_when_usable: bool = False) -> list[str]:
    """The shell lines that check one candidate. With ``stop_when_usable``, the candidate is
    skipped once an earlier one answered with a usable version ($ok set)."""
    q = shlex.quote(path)
    too_old = '|'.join('*"$N python %d.%d."*' % (MIN_PYTHON[0], minor) for minor in range(MIN_PYTHON[1]))
    lines = [
        'm interpreter %s' % q,
        'if [ -x %s ] && [ ! -d %s ]; then' % (q, q),
        '    o=$($T %s -c %s </dev/null 2>&1); r=$?' % (q, shlex.quote(check_code(nonce))),
        "    printf '%%.%ds\\n' \"$o\"" % MAX_OUTPUT,
        '    m rc "$r"',
    ]
    if stop_when_usable:
        lines.append('    if [ "$r" = 0 ]; then case $o in %s) ;; *"$N python %d."*) ok=1 ;; esac; fi'
                     % (too_old or '""', MIN_PYTHON[0]))
    lines.append('elif [ -e %s ]; then m not-executable; else m missing; fi' % q)
    if stop_when_usable:
        lines = ['if [ -z "$ok" ]; then'] + ['    ' + ln for ln in lines] + ['fi']
    return lines


def preamble(nonce: str) -> list[str]:
    if not re.match(r'^[A-Za-z0-9]{8,64}$', nonce):
        raise ValueError('nonce %r: 8 to 64 letters and digits' % (nonce,))
    return [
        'N=%s' % nonce,
        # a marker on a line of its own, also after a section that did not end in a newline
        "m() { printf '\\n%s %s\\n' \"$N\" \"$*\"; }",
        'T=; command -v timeout >/dev/null 2>&1 && T="timeout %d"' % INTERPRETER_TIMEOUT,
        'm begin %s' % PROTOCOL,
    ]


def probe_script(nonce: str, interpreters) -> str:
    """The whole probe: os-release, machine, glibc, systemd-sysext and each interpreter."""
    lines = preamble(nonce) + [
        'for f in /etc/os-release /usr/lib/os-release; do',
        # (the first that exists, as systemd takes it; a FIFO or directory is not read)
        '    if [ -e "$f" ]; then m os-release "$f"; if [ -f "$f" ]; then cat "$f" 2>&1; fi; break; fi',
        'done',
        'm machine; uname -m 2>&1',
        'm glibc-getconf; getconf GNU_LIBC_VERSION 2>/dev/null',
        'm glibc-loader',
        'for ld in %s; do' % ' '.join(LOADERS),
        '    if [ -x "$ld" ]; then "$ld" --version 2>&1 | head -n 1; break; fi',
        'done',
        'm sysext',
        'if command -v systemd-sysext >/dev/null 2>&1; then command -v systemd-sysext;'
        ' systemd-sysext --version 2>/dev/null | head -n 1; fi',
    ]
    # the candidates in order, up to the first usable one
    lines.append('ok=')
    for path in interpreters:
        lines += interpreter_lines(path, nonce, stop_when_usable=True)
    lines.append('m end')
    return '\n'.join(lines) + '\n'


def interpreter_script(nonce: str, path: str) -> str:
    """Only the check of one interpreter, in the probe's format (the verification after a merge)."""
    return '\n'.join(preamble(nonce) + interpreter_lines(path, nonce) + ['m end']) + '\n'


# ----------------------------------------------------------------------------- parsing
def sections_of(stdout: str, nonce: str) -> tuple[list, bool]:
    """[(key, arg, [text lines])] after the begin marker, and whether the end marker came."""
    out, seen_begin, ended = [], False, False
    prefix = nonce + ' '
    for line in stdout.splitlines():
        line = line.rstrip('\r')        # a tty (ssh -tt for become) turns \n into \r\n
        if line.startswith(prefix):
            key, _sep, arg = line[len(prefix):].partition(' ')
            if key == 'begin':
                if arg.strip() != PROTOCOL:
                    raise ProbeError('the probe speaks protocol %r, this controller %s' % (arg, PROTOCOL))
                out, seen_begin, ended = [], True, False
                continue
            if not seen_begin:
                continue
            if key == 'end':
                ended = True
                break
            out.append((key, arg, []))
        elif seen_begin and out:
            out[-1][2].append(line)
    if not seen_begin:
        raise ProbeError('no output of the probe found (its begin marker is missing)')
    return out, ended


def text_of(lines: list) -> str:
    return '\n'.join(lines).strip('\n')


def parse_glibc(getconf: str, loader: str) -> tuple[str | None, str | None]:
    """(version 'X.Y', how it was found) from ``getconf GNU_LIBC_VERSION`` ('glibc 2.36') or,
    without it, the loader's first line ('ld.so (Debian GLIBC 2.36-9) stable release version
    2.36.'); (None, None) for another C library (musl) or nothing."""
    m = re.match(r'^\s*glibc\s+(\d+\.\d+)', getconf)
    if m:
        return m.group(1), 'getconf'
    if re.search(r'\b(GNU C Library|GNU libc|GLIBC|ld\.so)\b', loader):
        m = re.search(r'version\s+(\d+\.\d+)', loader) or re.search(r'GLIBC\s+(\d+\.\d+)', loader)
        if m:
            return m.group(1), 'loader'
    return None, None


def parse_candidate(path: str, body: list) -> dict:
    """One candidate: state (missing, not-executable, ran), rc, version, output."""
    cand = {'path': path, 'state': 'unknown', 'rc': None, 'version': None, 'output': ''}
    text = []
    for key, arg, lines in body:
        if key in ('missing', 'not-executable'):
            cand['state'] = key
        elif key == 'python':
            m = re.match(r'^(\d+)\.(\d+)\.(\d+)$', arg.strip())
            cand['version'] = '%s.%s.%s' % m.groups() if m else None
        elif key == 'rc':
            cand['state'] = 'ran'
            cand['rc'] = int(arg) if arg.strip().isdigit() else None
        text += lines
    cand['output'] = text_of(text)[:MAX_OUTPUT]
    return cand


def parse_probe(stdout: str, nonce: str) -> dict:
    """What the probe found: os_release (dict, file), machine, architecture (systemd's name),
    glibc, glibc_source, sysext ({path, version} or None), interpreters (in probe order),
    complete (False when the output was cut short)."""
    sections, ended = sections_of(stdout, nonce)
    res = {'os_release': {}, 'os_release_file': None, 'os_release_error': None, 'machine': None,
           'architecture': None, 'glibc': None, 'glibc_source': None, 'sysext': None, 'interpreters': [],
           'complete': ended}
    raw = {}
    current = None
    for key, arg, lines in sections:
        if key == 'interpreter':
            current = {'path': arg, 'body': [('output', '', lines)]}   # what it printed comes first
            res['interpreters'].append(current)
        elif key in ('missing', 'not-executable', 'python', 'rc') and current is not None:
            current['body'].append((key, arg, lines))
        else:
            current = None
            raw[key] = (arg, lines)
    if 'os-release' in raw:
        arg, lines = raw['os-release']
        res['os_release_file'] = arg
        try:
            res['os_release'] = parse_env(text_of(lines) + '\n')
        except ReleaseError as e:
            res['os_release_error'] = str(e)
    machine = text_of(raw.get('machine', ('', []))[1]).strip()
    if re.match(r'^[A-Za-z0-9_.-]+$', machine):
        res['machine'] = machine
        res['architecture'] = native_architecture(machine)
    res['glibc'], res['glibc_source'] = parse_glibc(text_of(raw.get('glibc-getconf', ('', []))[1]),
                                                    text_of(raw.get('glibc-loader', ('', []))[1]))
    sysext = [ln.strip() for ln in raw.get('sysext', ('', []))[1] if ln.strip()]
    if sysext and sysext[0].startswith('/'):
        res['sysext'] = {'path': sysext[0], 'version': sysext[1] if len(sysext) > 1 else None}
    res['interpreters'] = [parse_candidate(c['path'], c['body']) for c in res['interpreters']]
    return res


def parse_interpreter_output(stdout: str, nonce: str, path: str) -> dict:
    """The result of interpreter_script(): the candidate dict (state 'unknown' when cut short)."""
    sections, _ended = sections_of(stdout, nonce)
    return parse_candidate(path, [('output', '', s[2]) if s[0] == 'interpreter' else s for s in sections])


# ----------------------------------------------------------------------------- decisions
def version_tuple(text: str | None) -> tuple:
    """'3.11.2' -> (3, 11, 2); '2.35' -> (2, 35); () for anything else."""
    if not text or not re.match(r'^\d+(\.\d+)*$', text.strip()):
        return ()
    return tuple(int(p) for p in text.strip().split('.'))


def why_unusable(cand: dict, minimum: tuple = MIN_PYTHON) -> str | None:
    """None when the candidate can run Ansible's modules, else why not (for the report)."""
    if cand['state'] == 'missing':
        return 'not found'
    if cand['state'] == 'not-executable':
        return 'not executable'
    if cand['state'] != 'ran':
        return 'no answer (the probe was cut short)'
    if cand['rc'] != 0:
        if cand['rc'] == 124:
            what = 'did not answer in %d s' % INTERPRETER_TIMEOUT
        elif cand['rc'] is not None and cand['rc'] > 128:
            what = 'was killed by signal %d' % (cand['rc'] - 128)
        else:
            what = 'exited with %s' % cand['rc']
        return '%s%s' % (what, ': ' + cand['output'][-300:] if cand['output'] else '')
    if not cand['version']:
        return 'ran but did not say its version%s' % (': ' + cand['output'][-300:] if cand['output'] else '')
    if version_tuple(cand['version']) < minimum:
        return 'Python %s is older than %s' % (cand['version'], '.'.join(str(p) for p in minimum))
    return None


def choose(probe: dict, minimum: tuple = MIN_PYTHON) -> dict | None:
    """The first usable interpreter in probe order, or None."""
    for cand in probe['interpreters']:
        if why_unusable(cand, minimum) is None:
            return cand
    return None


def tried(probe: dict, minimum: tuple = MIN_PYTHON) -> list[str]:
    """'PATH: why not' for every candidate that is not usable."""
    return ['%s: %s' % (c['path'], why_unusable(c, minimum)) for c in probe['interpreters']
            if why_unusable(c, minimum) is not None]


def glibc_problem(host_glibc: str | None, glibc_min: str | None) -> str | None:
    """Why the image cannot run on this host's C library; None when it can (or nothing is
    asked: no glibc_min)."""
    if not glibc_min:
        return None
    need = version_tuple(glibc_min)
    if not need:
        return 'glibc_min %r is not a version such as 2.35' % (glibc_min,)
    if host_glibc is None:
        return ('the image needs glibc %s, and the host\'s C library is not glibc or its version cannot be read '
                '(neither getconf GNU_LIBC_VERSION nor the dynamic loader\'s --version named one)' % glibc_min)
    if version_tuple(host_glibc) < need:
        return 'the image needs glibc %s or later, and the host has glibc %s' % (glibc_min, host_glibc)
    return None


def report(probe: dict) -> dict:
    """The result keys that describe the host (os, architecture, glibc, systemd_sysext)."""
    osr = probe['os_release']
    return {'os': {'id': osr.get('ID'), 'version_id': osr.get('VERSION_ID'), 'file': probe['os_release_file']},
            'architecture': probe['architecture'], 'machine': probe['machine'], 'glibc': probe['glibc'],
            'systemd_sysext': probe['sysext']}
