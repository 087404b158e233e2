# -*- coding: utf-8 -*-
"""sysext_image through real ansible-playbook, inside a private mount namespace (the store
of one scenario is a 1 MiB tmpfs, to fill it):

    unshare -m --propagation private python3 image_driver.py
"""

from __future__ import annotations

import hashlib
import http.server
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.ansible_run import run_tasks  # noqa: E402
from lib.fleet import build_tree, squashfs  # noqa: E402
from lib.nsroot import FakeRoot, emit, engine, sh  # noqa: E402


def sha256(path):
    with open(path, 'rb') as f:
        return 'sha256:' + hashlib.sha256(f.read()).hexdigest()


def listing(root):
    out = []
    for d, _dirs, files in os.walk(root):
        out += [os.path.relpath(os.path.join(d, f), root) for f in files]
        out += [os.path.relpath(os.path.join(d, x), root) + '@' for x in _dirs if os.path.islink(os.path.join(d, x))]
    return sorted(out)


def serve(directory, truncate=()):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def copyfile(self, source, outputfile):
            data = source.read()
            outputfile.write(data[:len(data) // 2] if self.path.lstrip('/') in truncate else data)

        def log_message(self, *_a):
            pass
    httpd = http.server.HTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, 'http://127.0.0.1:%d/' % httpd.server_address[1]


def main() -> dict:
    r = FakeRoot()
    work = os.path.join(r.scratch, 'work')
    os.makedirs(work)
    img = {}
    for v in ('1', '2'):
        tree = build_tree(os.path.join(work, 'tree-%s' % v), 'tool', 'sysext', v, {'usr/share/tool/VERSION': v})
        img[v] = squashfs(tree, os.path.join(work, 'tool-%s.raw' % v))
    big = build_tree(os.path.join(work, 'tree-big'), 'tool', 'sysext', '3',
                     {'usr/share/tool/blob': os.urandom(3 << 20).hex()})
    img['3'] = squashfs(big, os.path.join(work, 'tool-3.raw'))
    base = {'name': 'tool', 'root': r.path}
    t = 'tucked.sysext.sysext_image'
    out = {}

    # controller src: stored and selected, then the same again (nothing copied), then check mode
    res = run_tasks([{t: dict(base, version='1', src=img['1'])},
                     {t: dict(base, version='1', src=img['1'])},
                     {t: dict(base, version='2', src=img['2']), 'check_mode': True, 'diff': True}])
    out['first'], out['again'], out['check'] = res
    out['after_check'] = listing(r.path)

    # url with checksum; a wrong checksum, a truncated download, an unreachable URL
    httpd, url = serve(work, truncate=('tool-3.raw',))
    try:
        before = listing(r.path)
        res = run_tasks([
            {t: dict(base, version='2', url=url + 'tool-2.raw', checksum='sha256:' + '0' * 64)},
            {t: dict(base, version='3', url=url + 'tool-3.raw', checksum=sha256(img['3']))},
            {t: dict(base, version='2', url='http://127.0.0.1:9/tool-2.raw', checksum=sha256(img['2']))},
            {t: dict(base, name='a/b', version='2', src=img['2'])},
        ])
        out['bad_downloads'] = res
        out['bad_unchanged'] = listing(r.path) == before
        out['url'] = run_tasks([{t: dict(base, version='2', url=url + 'tool-2.raw', checksum=sha256(img['2']))}])[0]
    finally:
        httpd.shutdown()
        httpd.server_close()

    # an image policy the (squashfs) image does not meet, and one that cannot be parsed:
    # version 2 stays selected
    before = listing(r.path)
    out['policy'] = run_tasks([{t: dict(base, version='1', src=img['1'], image_policy='root=erofs')},
                               {t: dict(base, version='1', src=img['1'], image_policy='root=bogus')}])
    out['policy_unchanged'] = listing(r.path) == before
    out['policy_link'] = os.readlink(os.path.join(r.path, 'etc/extensions/tool.raw'))

    # a store on a 1 MiB tmpfs: version 3 (3 MiB+) does not fit
    store = os.path.join(r.path, 'srv/small')
    os.makedirs(store)
    sh('mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', store)
    small = dict(base, store_dir='/srv/small', state='present')
    run_tasks([{t: dict(small, version='1', src=img['1'])}])
    before = listing(r.path)
    out['full'] = run_tasks([{t: dict(small, version='3', src=img['3'])}])[0]
    out['full_unchanged'] = listing(r.path) == before
    out['full_leftovers'] = [f for f in os.listdir(os.path.join(store, 'tool')) if f.startswith('.#')]

    # rollback and absent through the module
    out['rollback'] = run_tasks([{t: dict(base, rollback=True)}, {t: dict(base, rollback=True)}])
    out['link_after_rollback'] = os.readlink(os.path.join(r.path, 'etc/extensions/tool.raw'))
    out['absent'] = run_tasks([{t: dict(base, state='absent')}])[0]
    out['absent_listing'] = [p for p in listing(r.path) if 'tool' in p and not p.startswith('srv/')]
    for v in out.values():
        for x in (v if isinstance(v, list) else [v]):
            if isinstance(x, dict):
                x.pop('_shown', None)
    return out


if __name__ == '__main__':
    engine()
    emit(main())
