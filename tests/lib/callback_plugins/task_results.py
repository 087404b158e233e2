# -*- coding: utf-8 -*-
"""Test helper: write each task's result, as ``register`` would hold it, to the JSON file named
by TASK_RESULTS_FILE (tests/lib/ansible_run.py), instead of a copy task per playbook run."""

from __future__ import annotations

DOCUMENTATION = r"""
name: task_results
type: aggregate
short_description: write every task's result to a JSON file (tests only)
description:
  - Used by tests/lib/ansible_run.py; enabled there with ANSIBLE_CALLBACKS_ENABLED=task_results.
options: {}
"""

import json
import os

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'task_results'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._results = []

    def _record(self, result, **defaults):
        res = {k: v for k, v in result._result.items() if not k.startswith('_ansible')}
        res.setdefault('changed', False)
        for key, value in defaults.items():
            res.setdefault(key, value)
        res.setdefault('failed', False)
        self._results.append({'task': result._task.get_name(), 'host': result._host.get_name(), 'result': res})

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True, failed=True)

    def v2_playbook_on_stats(self, stats):
        with open(os.environ['TASK_RESULTS_FILE'], 'w', encoding='utf-8') as f:
            json.dump(self._results, f, default=str)
