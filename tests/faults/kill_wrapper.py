# -*- coding: utf-8 -*-
"""Run one refresh and SIGKILL a process at the N-th call of a function in module_utils.

    python kill_wrapper.py WHERE:N ROOT MUTABLE

WHERE is ``p`` (the refresh process) or ``c`` (the build child it forks, counted from the
fork); N=0 never kills, and the calls made are printed as JSON. The profile hook is set
here, in the test, not in the code under test, so kills land in every stage: discovery,
release reads, origins, planning, the lock, image mounts, overlay build, metadata writes
(child), the swap, the detach of the old overlay and the clean-up (parent).
"""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from lib.nsroot import engine  # noqa: E402

engine()
from ansible_collections.tucked.sysext.plugins.module_utils import refresh  # noqa: E402

WHERE, N = sys.argv[1].split(':')
N = int(N)
PARENT = os.getpid()
COUNT = {'pid': PARENT, 'n': 0}
MARK = os.sep + 'module_utils' + os.sep
SWAP = {'swap': [], 'unmerge': []}   # where the swap (or the unmerge) starts, for dense kill points


def hook(frame, event, _arg):
    if event != 'call' or MARK not in frame.f_code.co_filename:
        return
    pid = os.getpid()
    if pid != COUNT['pid']:            # first call in the forked build child: count afresh
        COUNT.update(pid=pid, n=0)
    COUNT['n'] += 1
    if pid == PARENT and frame.f_code.co_name in SWAP:
        SWAP[frame.f_code.co_name].append(COUNT['n'])
    if COUNT['n'] == N and (WHERE == 'p') == (pid == PARENT):
        os.kill(pid, signal.SIGKILL)
    if pid != PARENT and N == 0:
        with open(os.environ['CHILD_CALLS'], 'w', encoding='utf-8') as f:
            f.write(str(COUNT['n']))


sys.setprofile(hook)
try:
    # TUCKED_KILL_OPTS: more refresh.Options as JSON (e.g. state=unmerged, atomic=never)
    refresh.run(refresh.Options(root=sys.argv[2], mutable=sys.argv[3], reload=False,
                                **json.loads(os.environ.get('TUCKED_KILL_OPTS') or '{}')))
finally:
    sys.setprofile(None)
print(json.dumps({'calls': COUNT['n'], 'swap_at': SWAP['swap'], 'unmerge_at': SWAP['unmerge']}))
