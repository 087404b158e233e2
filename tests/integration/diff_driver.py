# -*- coding: utf-8 -*-
"""Run one differential scenario inside a private mount namespace and print the result as JSON:

    unshare -m --propagation private python3 diff_driver.py SCENARIO
"""

from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import differential  # noqa: E402
import diff_scenarios  # noqa: E402
from lib.nsroot import emit  # noqa: E402


def main(name: str) -> None:
    scenario = diff_scenarios.by_name()[name]
    emit(differential.run(scenario))


if __name__ == '__main__':
    main(sys.argv[1])
