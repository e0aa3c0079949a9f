"""Measurement: repeat rules and statistics (no timing assertions)."""

import time
from pathlib import Path

import numpy as np
import pytest

from harness.compare import mann_whitney_p
from harness.measure import Measurement, PeakMemory, Settings, measure


def test_repeats_until_both_count_and_time():
    calls = []
    m = measure(lambda: calls.append(1), Settings(warmup=2, min_repeats=7, min_time_s=0.0))
    assert len(m.samples) == 7 and len(calls) == 9
    # Each call sleeps at least 20 ms, so 50 ms of minimum time needs at least three calls.
    m = measure(lambda: time.sleep(0.02), Settings(warmup=0, min_repeats=1, min_time_s=0.05))
    assert len(m.samples) >= 3


def test_statistics():
    m = Measurement([1.0, 2.0, 3.0, 4.0, 100.0])
    assert m.median == 3.0 and m.q1 == 2.0 and m.q3 == 4.0 and m.iqr == 2.0 and m.unstable
    assert not Measurement([1.0, 1.01, 0.99]).unstable


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's /proc/self/clear_refs")
def test_peak_memory_sees_a_large_allocation_made_and_freed_inside_the_block():
    before = rss()
    with PeakMemory() as mem:
        block = np.ones(256 * 2**20 // 8)  # 256 MB, touched
        del block
    assert mem.peak is not None and mem.peak >= before + 200 * 2**20


def test_mann_whitney_separates_shifted_samples_from_noise():
    rng = np.random.default_rng(0)
    a = list(rng.normal(1.0, 0.01, 30))
    assert mann_whitney_p(a, list(rng.normal(1.0, 0.01, 30))) > 0.01
    assert mann_whitney_p(a, list(rng.normal(1.2, 0.01, 30))) < 1e-6


def test_slow_experiments_run_exactly_their_repeats():
    calls = []
    m = measure(lambda: calls.append(1), Settings().with_repeats(2))
    assert len(m.samples) == 2 and len(calls) == 3


def test_max_time_bounds_slow_work_below_the_minimum_count():
    m = measure(lambda: time.sleep(0.03), Settings(warmup=0, min_repeats=100, min_time_s=0.0, max_time_s=0.05))
    assert 2 <= len(m.samples) < 100
