# -*- coding: utf-8 -*-
"""The rollout workflow end to end, inside a private mount namespace:

    unshare -m --propagation private python3 rollout_driver.py SCENARIO

Three throw-away targets (tmpfs roots, local connection), sample images built from trees,
the tucked.sysext.rollout and tucked.sysext.status playbooks run through real
ansible-playbook; what each host shows afterwards is printed as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.fleet import Fleet, build_tree, squashfs  # noqa: E402
from lib.nsroot import emit, engine  # noqa: E402


def samples(work: str) -> dict:
    """hello 1.0/2.0 (a sysext with /usr and /opt), hello 3.0 (broken: no VERSION file),
    hello 9 for another OS, and the confext motd 1/2."""
    out = {}
    for v in ('1.0', '2.0', '3.0'):
        files = {'usr/share/hello/VERSION': v + '\n', 'opt/hello/README': 'hello %s\n' % v}
        if v == '3.0':
            files = {'usr/share/hello/BROKEN': 'no VERSION file\n'}
        out['hello-' + v] = squashfs(build_tree(os.path.join(work, 'tree-hello-' + v), 'hello', 'sysext', v, files),
                                     os.path.join(work, 'hello-%s.raw' % v))
    out['hello-9'] = squashfs(build_tree(os.path.join(work, 'tree-hello-9'), 'hello', 'sysext', '9',
                                         {'usr/share/hello/VERSION': '9\n'}, release='ID=fedora\nVERSION_ID=40\n'),
                              os.path.join(work, 'hello-9.raw'))
    for v in ('1', '2'):
        out['motd-' + v] = squashfs(build_tree(os.path.join(work, 'tree-motd-' + v), 'motd', 'confext', v,
                                               {'etc/motd.d/hello.conf': 'motd %s\n' % v}),
                                    os.path.join(work, 'motd-%s.raw' % v))
    return out


def wanted(img: dict, hello: str, motd: str = '1', **extra) -> dict:
    return dict({'sysext_images': [{'name': 'hello', 'version': hello, 'src': img['hello-' + hello]}],
                 'sysext_confexts': [{'name': 'motd', 'version': motd, 'src': img['motd-' + motd]}],
                 'sysext_verify_paths': ['/usr/share/hello/VERSION', '/etc/motd.d/hello.conf']}, **extra)


def seen(fleet: Fleet) -> dict:
    out = {}
    for h in fleet.hosts:
        link = fleet.path(h, 'var/lib/extensions/hello.raw')
        out[h] = {'usr': fleet.read(h, 'usr/share/hello/VERSION'), 'opt': fleet.read(h, 'opt/hello/README'),
                  'etc': fleet.read(h, 'etc/motd.d/hello.conf'),
                  'selected': os.readlink(link) if os.path.islink(link) else None,
                  'stored': sorted(os.listdir(fleet.path(h, 'var/lib/tucked-sysext/store/hello')))
                  if os.path.isdir(fleet.path(h, 'var/lib/tucked-sysext/store/hello')) else []}
    return out


def step(fleet: Fleet, play) -> dict:
    return {'rc': play.rc, 'changed': play.changed(), 'failed': play.failed(), 'recap': play.recap,
            'seen': seen(fleet), 'tail': play.out[-2500:]}


def rollout() -> dict:
    fleet = Fleet(3)
    img = samples(fleet.work)
    pb = 'tucked.sysext.rollout'
    res = {}
    res['preflight_incompatible'] = step(fleet, fleet.play(pb, wanted(img, '9')))
    res['check_v1'] = step(fleet, fleet.play(pb, wanted(img, '1.0'), '--check'))
    res['v1'] = step(fleet, fleet.play(pb, wanted(img, '1.0')))
    res['v1_again'] = step(fleet, fleet.play(pb, wanted(img, '1.0')))
    res['v2'] = step(fleet, fleet.play(pb, wanted(img, '2.0', motd='2', rollout_serial=2)))
    # an image policy the squashfs images do not meet: refused by the pre-flight on every host
    res['preflight_policy'] = step(fleet, fleet.play(pb, wanted(img, '1.0', motd='2', sysext_refresh_options={
        'image_policy': 'root=erofs'})))
    res['v3_broken'] = step(fleet, fleet.play(pb, wanted(img, '3.0', motd='2')))
    report = os.path.join(fleet.work, 'status.json')
    # drift: t3 gets hello 1.0 selected again behind the rollout's back (and is not refreshed)
    os.unlink(fleet.path('t3', 'var/lib/extensions/hello.raw'))
    os.symlink('../tucked-sysext/store/hello/hello-1.0.raw', fleet.path('t3', 'var/lib/extensions/hello.raw'))
    st = fleet.play('tucked.sysext.status', {'status_json': report,
                                             'status_wanted': {'hello': '2.0', 'motd': {'version': '2', 'class': 'confext'}}})
    res['status'] = step(fleet, st)
    res['status']['json'] = json.load(open(report)) if os.path.exists(report) else None
    # the shipped playbooks take each host's sysext_root from the inventory
    facts_json = os.path.join(fleet.work, 'facts.json')
    fr = fleet.play('tucked.sysext.facts_report', {'target_hosts': 'all', 'report_json': facts_json})
    res['facts_report'] = step(fleet, fr)
    res['facts_report']['json'] = json.load(open(facts_json)) if os.path.exists(facts_json) else None
    res['facts_report']['roots'] = dict(fleet.hosts)
    got = res['facts_report']['json'] or {}
    # (refresh only when the report shows every host's own scratch root, never this machine's /)
    if sorted(got) == sorted(fleet.hosts) and all(got[h].get('root') == r for h, r in fleet.hosts.items()):
        res['refresh_playbook'] = step(fleet, fleet.play('tucked.sysext.refresh', {'target_hosts': 'all'}))
    return res


def nextos() -> dict:
    """The pre-flight's next-OS check: hello 1.0 and the confext motd 1 (both for debian 12,
    VERSION_ID pinned) rolled out; then rollouts of hello 2.0 pointed at a next OS, refused before any
    host changes (data, a file on each host, check mode, malformed input), or let through."""
    fleet = Fleet(3)
    hello = {v: squashfs(build_tree(os.path.join(fleet.work, 'tree-hello-' + v), 'hello', 'sysext', v,
                                    {'usr/share/hello/VERSION': v + '\n'}, release='ID=debian\nVERSION_ID=12\n'),
                         os.path.join(fleet.work, 'hello-%s.raw' % v)) for v in ('1.0', '2.0')}
    motd = squashfs(build_tree(os.path.join(fleet.work, 'tree-motd'), 'motd', 'confext', '1',
                               {'etc/motd.d/hello.conf': 'motd 1\n'}, release='ID=debian\nVERSION_ID=12\n'),
                    os.path.join(fleet.work, 'motd-1.raw'))

    def want(v: str, **extra) -> dict:
        return dict({'sysext_images': [{'name': 'hello', 'version': v, 'src': hello[v]}],
                     'sysext_confexts': [{'name': 'motd', 'version': '1', 'src': motd}]}, **extra)

    def run(extra: dict, *args: str) -> dict:
        play = fleet.play('tucked.sysext.rollout', extra, *args)
        out = step(fleet, play)
        out['refusals'] = [ln for ln in play.out.splitlines() if 'would drop' in ln or 'next_os_release' in ln]
        return out

    debian13 = {'ID': 'debian', 'VERSION_ID': '13'}
    res = {'v1': run(want('1.0'))}
    res['refused_data'] = run(want('2.0', sysext_next_os_release=debian13))
    res['refused_check'] = run(want('2.0', sysext_next_os_release=debian13), '--check')
    for h in fleet.hosts:          # only t2's next OS is 13
        with open(fleet.path(h, 'next-os-release'), 'w') as f:
            f.write('ID=debian\nVERSION_ID=%s\n' % ('13' if h == 't2' else '12'))
    res['refused_file'] = run(want('2.0', sysext_next_os_release_file='{{ sysext_root }}/next-os-release'))
    res['malformed'] = run(want('2.0', sysext_next_os_release='ID=debian\nVERSION_ID 13\n'))
    text = os.path.join(fleet.work, 'next-os-release')
    with open(text, 'w') as f:
        f.write('# a derivative: ID_LIKE counts\nID=mydeb\nID_LIKE=debian\nVERSION_ID=12\n')
    res['accepted_text'] = run(want('2.0', sysext_next_os_release="{{ lookup('ansible.builtin.file', '%s') }}" % text))
    res['roots'] = dict(fleet.hosts)
    return res


SCENARIOS = {'rollout': rollout, 'nextos': nextos}

if __name__ == '__main__':
    engine()
    emit(SCENARIOS[sys.argv[1]]())
