"""MLPerf-LoadGen-style scenarios for any retrieval function.

The system under test is a plain callable `search(queries) -> result` taking a
float32 (B, d) batch; the query library is an array of query vectors, reused
cyclically; this module is the load generator.  It knows nothing of FAERY.

- single-stream: one query at a time, the next issued when the last returns;
  latency percentiles over at least `min_queries` queries.
- offline: all queries available at once, issued in batches of a given size;
  throughput in queries per second.
- server: Poisson arrivals at a target rate, served in arrival order by one
  server that takes every query already waiting (up to `max_batch`) as one batch;
  the latency of a query runs from its arrival to the return of its batch.
  The rate rises until the p99 latency exceeds the bound; the result is the
  highest rate that met it (MLPerf's server scenario, with FAERY's 10 ms bound).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

Search = Callable[[np.ndarray], Any]


class Clock:
    """Wall-clock time for the load generator; tests substitute a virtual clock."""

    def now(self) -> float:
        return time.perf_counter()

    def wait_until(self, t: float) -> None:
        """Idle until now() >= t: sleep the bulk, spin the last millisecond for precision."""
        remaining = t - self.now()
        if remaining > 2e-3:
            time.sleep(remaining - 1e-3)
        while self.now() < t:
            pass


WALL_CLOCK = Clock()


def _batch(pool: np.ndarray, start: int, size: int) -> np.ndarray:
    """`size` queries from the pool, starting at `start`, wrapping around."""
    idx = (start + np.arange(size)) % pool.shape[0]
    return pool[idx]


def _check_pool(queries: np.ndarray) -> np.ndarray:
    pool = np.asarray(queries)
    if pool.ndim != 2 or pool.shape[0] == 0:
        raise ValueError(f"queries must be a non-empty 2-D array (B, d), got shape {pool.shape}")
    return np.ascontiguousarray(pool, dtype=np.float32)


@dataclass(frozen=True)
class LatencyStats:
    queries: int
    p50_s: float
    p90_s: float
    p99_s: float
    mean_s: float
    max_s: float

    @classmethod
    def of(cls, latencies: np.ndarray) -> "LatencyStats":
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        return cls(int(latencies.size), float(p50), float(p90), float(p99),
                   float(latencies.mean()), float(latencies.max()))


def single_stream(search: Search, queries: np.ndarray, min_queries: int = 100,
                  min_time_s: float = 0.0, warmup: int = 2, clock: Clock = WALL_CLOCK) -> LatencyStats:
    """Batch-1 latency percentiles over >= `min_queries` queries (and >= `min_time_s`)."""
    pool = _check_pool(queries)
    if min_queries < 1:
        raise ValueError(f"min_queries must be at least 1, got {min_queries}")
    for i in range(warmup):
        search(_batch(pool, i, 1))
    latencies = []
    began = clock.now()
    i = 0
    while len(latencies) < min_queries or clock.now() - began < min_time_s:
        q = _batch(pool, i, 1)
        t0 = clock.now()
        search(q)
        latencies.append(clock.now() - t0)
        i += 1
    return LatencyStats.of(np.asarray(latencies))


@dataclass(frozen=True)
class OfflineResult:
    batch: int
    queries: int
    seconds: float
    qps: float


def offline(search: Search, queries: np.ndarray, batch: int, total_queries: int | None = None,
            warmup: int = 1, clock: Clock = WALL_CLOCK) -> OfflineResult:
    """Throughput with every query available up front, issued in batches of `batch`."""
    pool = _check_pool(queries)
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    total = total_queries if total_queries is not None else max(batch, pool.shape[0])
    batches = -(-total // batch)
    for i in range(warmup):
        search(_batch(pool, i * batch, batch))
    t0 = clock.now()
    for i in range(batches):
        search(_batch(pool, i * batch, batch))
    seconds = clock.now() - t0
    return OfflineResult(batch, batches * batch, seconds, batches * batch / seconds)


MAX_STEPS_DOWN = 4  # below start_qps / growth**4 a lower rate no longer changes the queueing much


@dataclass(frozen=True)
class ServerStep:
    target_qps: float
    achieved_qps: float
    latency: LatencyStats
    mean_batch: float
    met_bound: bool


def serve_at(search: Search, queries: np.ndarray, target_qps: float, n_queries: int,
             latency_bound_s: float, max_batch: int = 1, seed: int = 0,
             clock: Clock = WALL_CLOCK) -> ServerStep:
    """Serve `n_queries` Poisson arrivals at `target_qps` in real time."""
    pool = _check_pool(queries)
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / target_qps, n_queries))
    latencies = np.empty(n_queries)
    batches = 0
    t0 = clock.now()
    i = 0
    while i < n_queries:
        clock.wait_until(t0 + arrivals[i])  # idle server: wait for the next arrival
        now = clock.now() - t0
        j = i + max(1, min(max_batch, int(np.searchsorted(arrivals, now, side="right")) - i))
        search(_batch(pool, i, j - i))
        latencies[i:j] = (clock.now() - t0) - arrivals[i:j]
        batches += 1
        i = j
    elapsed = clock.now() - t0
    stats = LatencyStats.of(latencies)
    return ServerStep(target_qps, n_queries / elapsed, stats, n_queries / batches, stats.p99_s <= latency_bound_s)


@dataclass(frozen=True)
class ServerResult:
    latency_bound_s: float
    qps_at_bound: float          # the highest target rate whose p99 met the bound (0 if none did)
    p99_at_bound_s: float
    steps: tuple[ServerStep, ...]
    unloaded_p99_s: float        # single-stream p99 before the run: the floor of any rate's p99


def server(search: Search, queries: np.ndarray, latency_bound_s: float = 0.010, max_batch: int = 1,
           start_qps: float | None = None, growth: float = 1.25, min_queries: int = 100,
           step_seconds: float = 0.5, max_steps: int = 30, seed: int = 0,
           clock: Clock = WALL_CLOCK) -> ServerResult:
    """Raise the Poisson arrival rate by `growth` per step until p99 exceeds `latency_bound_s`.

    The first rate, unless given, is half the single-query service rate; if it already
    breaks the bound, the rate falls by `growth` per step (at most MAX_STEPS_DOWN times)
    until one meets it.  When even the unloaded single-stream p50 breaks the bound, no
    rate can meet it and the result is 0 QPS with no steps.  Each step serves
    max(min_queries, rate x step_seconds) queries.
    """
    pool = _check_pool(queries)
    if latency_bound_s <= 0 or growth <= 1 or max_batch < 1:
        raise ValueError("server needs latency_bound_s > 0, growth > 1 and max_batch >= 1")
    unloaded = single_stream(search, pool, min_queries=20, clock=clock)
    if unloaded.p50_s > latency_bound_s:
        # Half the queries break the bound on an idle server, one at a time: no arrival rate can meet it.
        return ServerResult(latency_bound_s, 0.0, float("nan"), (), unloaded.p99_s)
    if start_qps is None:
        start_qps = 0.5 / max(unloaded.p50_s, 1e-6)
    steps: list[ServerStep] = []
    best: ServerStep | None = None
    qps = start_qps
    for step in range(max_steps):
        n = max(min_queries, int(qps * step_seconds))
        result = serve_at(search, pool, qps, n, latency_bound_s, max_batch, seed + step, clock)
        steps.append(result)
        if result.met_bound:
            best = result
            qps *= growth
        elif best is None and step < MAX_STEPS_DOWN:
            qps /= growth  # the first rate was too high: come down until one meets the bound
        else:
            break
    return ServerResult(latency_bound_s, best.target_qps if best else 0.0,
                        best.latency.p99_s if best else float("nan"), tuple(steps), unloaded.p99_s)
