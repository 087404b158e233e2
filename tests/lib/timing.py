# -*- coding: utf-8 -*-
"""Median wall time of a call, for the benchmarks."""

import statistics
import time


def median_ms(fn, reps: int) -> float:
    samples = []
    for _rep in range(reps):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)
