"""The cycle loop: one query's score stream through the modelled accelerator, a clock cycle at a time.

Every figure it produces is modelled (see the package's docstring for the dataflow and the
order of the stages within a cycle).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from impls.faery.fpga_model.config import FpgaConfig, fixed_latency_cycles, layout
from topk import heap_replace_root, sort_topk


@dataclass(frozen=True)
class ScanStats:
    """The modelled figures of one query's scan (all modelled, none measured)."""

    items: int
    k: int
    cycles: int               # total: scan loop + fixed latencies
    scan_cycles: int          # cycles of the scan loop
    stall_cycles: int         # cycles the score stage waited for room in the filter buffer
    passed: int               # scores the filter let through to K-selection
    max_buffer_fill: int      # the filter buffer's peak occupancy
    clock_hz: float

    @property
    def pass_rate(self) -> float:
        return self.passed / self.items

    @property
    def latency_s(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def qps(self) -> float:
        """One accelerator, one query at a time."""
        return 1.0 / self.latency_s

    def figures(self) -> dict[str, float]:
        """Named figures for a results table; every name says "modelled"."""
        return {"modelled_cycles": float(self.cycles), "modelled_scan_cycles": float(self.scan_cycles),
                "modelled_stall_cycles": float(self.stall_cycles),
                "modelled_pass_rate": self.pass_rate, "modelled_max_buffer_fill": float(self.max_buffer_fill),
                "modelled_latency_us": 1e6 * self.latency_s, "modelled_qps": self.qps}


@dataclass(frozen=True)
class ScanTrace:
    """Per item: the cycle its score reached the filter, and whether it passed."""

    filter_cycle: np.ndarray
    passed: np.ndarray


@numba.njit(cache=True)
def _scan(scores, items_per_cycle, score_units, read_capacity, buffer_depth, stall_period,
          heap_s, heap_i, trace_cycle, trace_passed):
    """Run the scan loop; fills the heap (given as k entries of (-inf, -1)) with the top k;
    returns (cycles, stalls, passed, peak fill)."""
    n = scores.shape[0]
    tracing = trace_cycle.shape[0] == n
    fifo_s = np.empty(buffer_depth, dtype=np.float32)
    fifo_i = np.empty(buffer_depth, dtype=np.int64)
    head = 0
    fill = 0
    peak = 0
    read = 0          # embeddings HBM has delivered
    done = 0          # embeddings through the filter
    credit = 0.0      # fractional embeddings of bandwidth not yet delivered
    cycle = 0
    stalls = 0
    passed = 0
    while done < n or fill > 0:
        cycle += 1
        # 1. K-selection: one score per cycle; the new k-th best reaches the filter this cycle.
        # Scores arrive in id order, so an equal score (a higher id) never beats the k-th best.
        if fill > 0:
            if fifo_s[head] > heap_s[0]:
                heap_replace_root(heap_s, heap_i, fifo_s[head], fifo_i[head])
            head += 1
            if head == buffer_depth:
                head = 0
            fill -= 1
        # 2. Score units and filter, on embeddings delivered in earlier cycles.
        ready = read - done
        if ready > 0:
            if buffer_depth - fill < score_units:
                stalls += 1
            else:
                threshold = heap_s[0]  # the k-th best, -inf while fewer than k are kept
                stop = done + min(ready, score_units)
                for j in range(done, stop):
                    s = scores[j]
                    keep = s > threshold
                    if keep:
                        tail = head + fill
                        if tail >= buffer_depth:
                            tail -= buffer_depth
                        fifo_s[tail] = s
                        fifo_i[tail] = j
                        fill += 1
                        passed += 1
                    if tracing:
                        trace_cycle[j] = cycle
                        trace_passed[j] = keep
                done = stop
                if fill > peak:
                    peak = fill
        # 3. HBM delivers into the read buffer; a full buffer holds memory back.
        if read < n and not (stall_period > 0 and cycle % stall_period == 0):
            credit += items_per_cycle
            whole = int(credit)
            got = min(whole, read_capacity - (read - done), n - read)
            read += got
            credit -= got if got == whole else whole  # bandwidth not taken up is lost
    return cycle, stalls, passed, peak


def simulate_scan(scores: np.ndarray, k: int, embedding_bytes: int, dim: int,
                  config: FpgaConfig = FpgaConfig(), trace: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, ScanStats, ScanTrace | None]:
    """Run one query's score stream (in scan order) through the modelled accelerator.

    Returns the exact top-k (scores float32, ids int64; descending, ties by lower id),
    the modelled figures, and, with `trace`, each item's filter cycle and pass flag.
    A score of -inf marks a deleted row: it is read but never selected.
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    n = scores.shape[0]
    if not 1 <= k <= min(n, config.k_max):
        raise ValueError(f"k={k} must be between 1 and min(N={n}, the K-selector's size {config.k_max})")
    lay = layout(config, embedding_bytes)
    if lay.score_units > config.buffer_depth:
        raise ValueError(f"the filter buffer ({config.buffer_depth}) must hold at least N_E={lay.score_units} scores")
    heap_s = np.full(k, -np.inf, dtype=np.float32)
    heap_i = np.full(k, -1, dtype=np.int64)
    trace_cycle = np.zeros(n if trace else 0, dtype=np.int64)
    trace_passed = np.zeros(n if trace else 0, dtype=np.bool_)
    loop, stalls, passed, peak = _scan(scores, lay.items_per_cycle, lay.score_units, lay.read_capacity,
                                       config.buffer_depth, config.hbm_stall_period,
                                       heap_s, heap_i, trace_cycle, trace_passed)
    top_s, top_i = sort_topk(heap_s[None, :], heap_i[None, :], k)
    stats = ScanStats(items=n, k=k, cycles=loop + fixed_latency_cycles(config, dim, k), scan_cycles=loop,
                      stall_cycles=stalls, passed=passed, max_buffer_fill=peak, clock_hz=config.clock)
    return top_s[0], top_i[0], stats, (ScanTrace(trace_cycle, trace_passed) if trace else None)
