# -*- coding: utf-8 -*-
"""2 and 10 refreshes started at once on one root (inside a private mount namespace): they
serialize on the lock, exactly one makes the change, the others find it made."""

from __future__ import annotations

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.nsroot import SidRoot, emit, engine  # noqa: E402

SCRIPT = '''
import json, sys
sys.path.insert(0, %r)
from ansible_collections.tucked.sysext.plugins.module_utils import refresh
o = refresh.run(refresh.Options(root=%r, classes=('sysext',), reload=False))
print(json.dumps({'changed': o.changed, 'skipped': o.skipped_reason}))
'''


def main():
    engine()
    from ansible_collections.tucked.sysext.plugins.module_utils import mountinfo, refresh
    from lib.nsroot import COLLECTIONS
    r = SidRoot()
    r.add_dir('var/lib/extensions', 'foo')
    out = {}
    for n in (2, 10):
        r.add_raw('var/lib/extensions', 'v%d' % n, files={'usr/share/v%d/f' % n: 'x\n'})
        procs = [subprocess.Popen([sys.executable, '-c', SCRIPT % (COLLECTIONS, r.path)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _i in range(n)]
        results, failed = [], []
        for p in procs:
            so, se = p.communicate(timeout=300)
            if p.returncode != 0:
                failed.append(se[-500:])
            else:
                results.append(json.loads(so.strip().splitlines()[-1]))
        stack = [m for m in mountinfo.stack_at(mountinfo.read(), r.p('usr')) if m.fstype == 'overlay']
        final = refresh.run(refresh.Options(root=r.path, classes=('sysext',), reload=False))
        out[str(n)] = {'changed': sum(1 for x in results if x['changed']), 'failed': failed,
                       'skips': sorted({x['skipped'] for x in results if not x['changed']}),
                       'stack': len(stack), 'final_ok': not final.changed and os.path.exists(r.p('usr/share/v%d/f' % n))}
    refresh.run(refresh.Options(root=r.path, classes=('sysext',), state='unmerged', reload=False))
    out['loops_left'] = [ln for ln in subprocess.run(['losetup', '-a'], capture_output=True, text=True,
                                                     check=False).stdout.splitlines() if r.path in ln]
    return out


if __name__ == '__main__':
    emit(main())
