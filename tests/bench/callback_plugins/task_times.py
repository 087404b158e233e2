# -*- coding: utf-8 -*-
"""Benchmark helper: record each task's wall time to the JSON file named by TASK_TIMES_FILE."""

from __future__ import annotations

DOCUMENTATION = r"""
name: task_times
type: aggregate
short_description: write per-task wall times to a JSON file (benchmarks only)
description:
  - Used by tests/bench; enabled there with ANSIBLE_CALLBACKS_ENABLED=task_times.
options: {}
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_times'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._start = {}
        self._times = []

    def v2_runner_on_start(self, host, task):
        self._start[task._uuid] = time.perf_counter()

    def _done(self, result):
        t0 = self._start.pop(result._task._uuid, None)
        if t0 is not None:
            self._times.append({'task': result._task.get_name(), 'action': result._task.action,
                                'seconds': time.perf_counter() - t0})

    v2_runner_on_ok = _done
    v2_runner_on_failed = _done

    def v2_playbook_on_stats(self, stats):
        with open(os.environ['TASK_TIMES_FILE'], 'w', encoding='utf-8') as f:
            json.dump(self._times, f)
