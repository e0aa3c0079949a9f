"""The LoadGen scenarios, on a virtual clock: the system under test advances time by its service time.

No wall-clock timing is asserted; the scenarios' arithmetic is checked exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness import loadgen

QUERIES = np.zeros((8, 4), dtype=np.float32)


class VirtualClock(loadgen.Clock):
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def wait_until(self, t: float) -> None:
        self.t = max(self.t, t)


class FixedCostSystem:
    """Serves a batch in `fixed + per_query * B` virtual seconds; records the batch sizes."""

    def __init__(self, clock: VirtualClock, fixed: float, per_query: float = 0.0) -> None:
        self.clock, self.fixed, self.per_query = clock, fixed, per_query
        self.batches: list[int] = []

    def __call__(self, queries: np.ndarray) -> np.ndarray:
        assert queries.dtype == np.float32 and queries.shape[1] == 4
        self.batches.append(queries.shape[0])
        self.clock.t += self.fixed + self.per_query * queries.shape[0]
        return queries


def test_single_stream_issues_one_query_at_a_time() -> None:
    clock = VirtualClock()
    system = FixedCostSystem(clock, 0.002)
    stats = loadgen.single_stream(system, QUERIES, min_queries=100, warmup=1, clock=clock)
    assert stats.queries == 100
    assert set(system.batches) == {1}
    assert stats.p50_s == pytest.approx(0.002) and stats.p99_s == pytest.approx(0.002)


def test_offline_reports_throughput_over_whole_batches() -> None:
    clock = VirtualClock()
    system = FixedCostSystem(clock, 0.0, per_query=0.001)
    result = loadgen.offline(system, QUERIES, batch=5, total_queries=12, warmup=0, clock=clock)
    assert system.batches == [5, 5, 5] and result.queries == 15
    assert result.qps == pytest.approx(1000.0)


def test_server_rate_rises_until_p99_breaks_the_bound() -> None:
    # One query at a time at 2 ms each: utilisation, and so queueing delay, grows with the rate;
    # the p99 bound of 10 ms holds well below 500 QPS and fails before it.
    clock = VirtualClock()
    system = FixedCostSystem(clock, 0.002)
    result = loadgen.server(system, QUERIES, latency_bound_s=0.010, start_qps=50, growth=1.5,
                            min_queries=200, step_seconds=1.0, max_steps=20, clock=clock)
    assert 50 <= result.qps_at_bound < 500
    assert result.p99_at_bound_s <= 0.010
    assert not result.steps[-1].met_bound and all(s.met_bound for s in result.steps[:-1])
    assert [s.target_qps for s in result.steps] == pytest.approx([50 * 1.5 ** i for i in range(len(result.steps))])


def test_server_latency_counts_queueing_from_arrival() -> None:
    clock = VirtualClock()
    system = FixedCostSystem(clock, 0.010)
    step = loadgen.serve_at(system, QUERIES, target_qps=1000, n_queries=50, latency_bound_s=0.010, clock=clock)
    # Arrivals every ~1 ms against a 10 ms service: the queue grows, and with it the latency.
    assert step.latency.max_s > 0.1 and not step.met_bound
    assert step.achieved_qps == pytest.approx(100, rel=0.05)


def test_server_batches_waiting_queries() -> None:
    clock = VirtualClock()
    system = FixedCostSystem(clock, 0.003, per_query=1e-5)
    step = loadgen.serve_at(system, QUERIES, target_qps=2000, n_queries=400, latency_bound_s=0.05,
                            max_batch=32, clock=clock)
    assert max(system.batches) > 1 and step.mean_batch > 1
    assert max(system.batches) <= 32 and sum(system.batches) == 400
    assert step.met_bound  # batching keeps up where one-at-a-time (333 QPS) could not


def test_bad_arguments_are_refused() -> None:
    clock = VirtualClock()
    with pytest.raises(ValueError, match="non-empty 2-D"):
        loadgen.single_stream(FixedCostSystem(clock, 0), np.zeros((0, 4)), clock=clock)
    with pytest.raises(ValueError, match="batch must be at least 1"):
        loadgen.offline(FixedCostSystem(clock, 0), QUERIES, batch=0, clock=clock)
    with pytest.raises(ValueError, match="growth > 1"):
        loadgen.server(FixedCostSystem(clock, 0), QUERIES, growth=1.0, clock=clock)


def test_server_comes_down_when_the_first_rate_is_too_high() -> None:
    clock = VirtualClock()
    system = FixedCostSystem(clock, 0.004)
    result = loadgen.server(system, QUERIES, latency_bound_s=0.010, start_qps=1000, growth=2.0,
                            min_queries=100, step_seconds=0.5, max_steps=12, clock=clock)
    assert not result.steps[0].met_bound
    assert 0 < result.qps_at_bound < 250 and result.p99_at_bound_s <= 0.010


def test_server_gives_up_when_one_query_alone_breaks_the_bound() -> None:
    clock = VirtualClock()
    system = FixedCostSystem(clock, 0.020)
    result = loadgen.server(system, QUERIES, latency_bound_s=0.010, clock=clock)
    assert result.qps_at_bound == 0 and result.steps == () and result.unloaded_p99_s == pytest.approx(0.020)
