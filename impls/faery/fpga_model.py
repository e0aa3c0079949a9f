"""A cycle-level model of the FAERY accelerator.  Every figure it produces is modelled.

The model runs the real data through the accelerator's dataflow, one clock cycle at
a time, so the filter's pass rate and the stalls it causes are the data's own:

    HBM read --> read buffer --> N_E score units --> filter --> filter buffer --> K-selection
    (bytes/cycle)   (backpressure)   (N_E per cycle)   (> K-th best)  (FIFO, 2K deep)   (1 per cycle)

Per cycle, in this order:
1. K-selection takes one score from the filter buffer and inserts it into the running
   top-K.  The new K-th best is forwarded to the filter within the cycle, as SNARY's
   analysis assumes (it is what makes filtering start at cycle K+2).
2. The score units take up to N_E embeddings that arrived in earlier cycles, score
   them, and the filter keeps those strictly above the K-th best (a later item with an
   equal score has a higher id, so it can never enter the top-K).  When the filter
   buffer has fewer than N_E free slots the stage stalls: that is a filter stall.
3. HBM delivers its bandwidth's worth of embeddings into the read buffer, unless the
   buffer is full (then the stall propagates back to memory).

The loop gives the scan cycles; fixed latencies (HBM read, score pipeline, K-selection
pipeline, reading out the k sorted results) are added to give the total, which is the
form of SNARY's closed model L = M/B + C.

`FpgaConfig` is the one description of the accelerator: this model and the RTL in
`impls/faery/rtl/` both derive their parameters from it (the RTL through
`impls.faery.rtl.params`), and the RTL's cycle counts are checked against this loop.  Scores themselves are computed in float32
(a parallel numba kernel) before the loop: they are data, and their timing is what the
loop models.

Deleted rows are still read from HBM (the corpus manager marks them; it does not
compact the corpus) but their score is forced to -inf, so the filter drops them.
One query is processed at a time, as FAERY scans the corpus once per query, so the
modelled throughput of one accelerator is 1 / modelled latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable

import numba
import numpy as np

from impls.faery.backend import RowStore, heap_replace_root, sort_topk

# SNARY (USENIX ATC 2025), Alveo U50: kernel clock by K-selection size.  A larger
# K-selector has longer wires, so the clock falls as K grows.
SNARY_CLOCK_MHZ = {512: 302.0, 1024: 285.0, 2048: 279.0, 4096: 235.0}

# Floating-point latencies of a fully pipelined fp32 multiplier and adder, in cycles:
# assumed, of the order the Xilinx Floating-Point Operator (PG060) reports at full speed.
FP_MUL_CYCLES = 6
FP_ADD_CYCLES = 8

# Score arithmetic: "float" (fp32/fp16 operators, latencies above) or "int8" (SNARY's U50
# build: int8 products, int32 sums, one register after the multiplies and after each
# adder-tree level, as the RTL's score units are built).
ARITHMETIC = ("float", "int8")
# K-selector structure: "mni" (Matsumoto, Nakano & Ito, ISPDC 2015, the sorter FAERY and
# SNARY cite: log2 K + 1 pipeline stages) or "shift-register" (the RTL's insertion sorter:
# a score lands in its place in the cycle it is taken, so no stages beyond the loop's).
SELECTORS = ("mni", "shift-register")

# SNARY's Alveo U50 build: 16 HBM pseudo-channels read 32 bytes per beat each; the U50's
# HBM2 gives 316 GB/s over 32 pseudo-channels (AMD DS965), 9.875 GB/s each, more than
# 32 B at SNARY's clocks, so the 32-byte port is what bounds a channel.
U50_CHANNELS = 16
U50_PORT_BYTES = 32
U50_CHANNEL_BYTES_PER_S = 316e9 / 32


@dataclass(frozen=True)
class FpgaConfig:
    """The accelerator's parameters: FAERY's VU35P HBM, and SNARY's measured clocks
    (FAERY's own clock is not public)."""

    # VU35P HBM2: 32 pseudo-channels x 14.375 GB/s = 460 GB/s (AMD UG1393, the same HBM
    # subsystem as the U280/U55C).
    hbm_channels: int = 32
    channel_bytes_per_s: float = 14.375e9
    # Kernel-side AXI port per channel: 512 bits = 64 bytes per cycle (UG1393: the HBM
    # ports are 256-bit at up to 450 MHz; a 2:1 width converter gives 512 bits at the
    # kernel clock).  The port caps a channel's bytes per cycle at high kernel clocks.
    port_bytes: int = 64
    # FAERY: HBM needs accesses of >= 64 bytes for > 90% of its bandwidth, so small
    # embeddings are packed several per access and large ones span several accesses.
    access_bytes: int = 64
    # Kernel clock in Hz; None takes SNARY's measured U50 clock for this K (above).
    clock_hz: float | None = None
    # Score units N_E (one embedding each per cycle); None matches HBM bandwidth:
    # ceil(embeddings delivered per cycle).
    score_units: int | None = None
    # The K-selector's size, a power of two (SNARY's design point: 1024).  A query's k
    # must not exceed it; the filter compares against the query's own k-th best.
    k_max: int = 1024
    # Filter buffer depth in scores; None gives 2K, the size SNARY gives its filter FIFOs.
    filter_depth: int | None = None
    # Read buffer: 64 entries of one access per channel (assumed: a shallow AXI data FIFO).
    read_buffer_accesses: int = 64
    # HBM read latency: assumed about 100 ns, the order Shuhai (FCCM 2020) measured on
    # the U280's HBM.  It is a few dozen cycles, negligible against a scan.
    hbm_latency_s: float = 100e-9
    # Every `hbm_stall_period`-th cycle of the scan HBM delivers nothing (as a refresh
    # would); 0: never.  Assumed, for studying stalls; no source gives a figure.
    hbm_stall_period: int = 0
    # Score arithmetic and K-selector structure (ARITHMETIC, SELECTORS above).
    arithmetic: str = "float"
    selector: str = "mni"

    def __post_init__(self) -> None:
        for name in ("hbm_channels", "port_bytes", "access_bytes", "k_max", "read_buffer_accesses"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FpgaConfig.{name} must be positive, got {getattr(self, name)}")
        if self.k_max & (self.k_max - 1):
            raise ValueError(f"FpgaConfig.k_max must be a power of two, got {self.k_max}")
        if self.clock_hz is None and self.k_max > max(SNARY_CLOCK_MHZ):
            raise ValueError(f"FpgaConfig.k_max={self.k_max} has no measured clock (SNARY's "
                             f"largest K is {max(SNARY_CLOCK_MHZ)}); give clock_hz")
        if self.clock_hz is not None and self.clock_hz <= 0:
            raise ValueError(f"FpgaConfig.clock_hz must be positive, got {self.clock_hz}")
        if self.score_units is not None and self.score_units <= 0:
            raise ValueError(f"FpgaConfig.score_units must be positive, got {self.score_units}")
        if self.channel_bytes_per_s <= 0 or self.hbm_latency_s < 0:
            raise ValueError("FpgaConfig.channel_bytes_per_s must be positive and hbm_latency_s >= 0")
        if self.filter_depth is not None and self.filter_depth <= 0:
            raise ValueError(f"FpgaConfig.filter_depth must be positive, got {self.filter_depth}")
        if self.hbm_stall_period < 0 or self.hbm_stall_period == 1:
            raise ValueError(f"FpgaConfig.hbm_stall_period must be 0 (none) or at least 2, got {self.hbm_stall_period}")
        if self.arithmetic not in ARITHMETIC:
            raise ValueError(f"FpgaConfig.arithmetic must be one of {', '.join(ARITHMETIC)}, got {self.arithmetic!r}")
        if self.selector not in SELECTORS:
            raise ValueError(f"FpgaConfig.selector must be one of {', '.join(SELECTORS)}, got {self.selector!r}")

    @classmethod
    def snary_u50(cls, k_max: int = 1024, **changes) -> "FpgaConfig":
        """SNARY's U50 configuration (16 channels x 32 B, int8 scores; 128-d int8 embeddings
        then arrive 4 per cycle), with the RTL's shift-register K-selector."""
        return cls(**{"hbm_channels": U50_CHANNELS, "port_bytes": U50_PORT_BYTES, "access_bytes": U50_PORT_BYTES,
                      "channel_bytes_per_s": U50_CHANNEL_BYTES_PER_S, "k_max": k_max, "arithmetic": "int8",
                      "selector": "shift-register", **changes})

    @property
    def clock(self) -> float:
        """Kernel clock in Hz."""
        if self.clock_hz is not None:
            return self.clock_hz
        # A K below SNARY's smallest design (512) is assumed to close timing at 512's clock.
        return 1e6 * SNARY_CLOCK_MHZ[max(self.k_max, min(SNARY_CLOCK_MHZ))]

    @property
    def bytes_per_cycle(self) -> float:
        """B: bytes HBM delivers per kernel cycle, over all channels."""
        return self.hbm_channels * min(self.port_bytes, self.channel_bytes_per_s / self.clock)

    @property
    def buffer_depth(self) -> int:
        return self.filter_depth if self.filter_depth is not None else 2 * self.k_max

    @property
    def selection_depth(self) -> int:
        """Pipeline stages of the K-selector beyond the cycle the loop takes a score in:
        O(log K) for Matsumoto, Nakano & Ito's sorter, none for the shift-register one."""
        return int(math.log2(self.k_max)) + 1 if self.selector == "mni" else 0

    @property
    def hbm_latency_cycles(self) -> int:
        return math.ceil(self.hbm_latency_s * self.clock)

    def score_pipeline_cycles(self, dim: int) -> int:
        """Register stages of one score unit: the multiply, then a balanced adder tree."""
        levels = math.ceil(math.log2(max(dim, 1)))
        if self.arithmetic == "int8":
            return 1 + levels
        return FP_MUL_CYCLES + FP_ADD_CYCLES * levels


@dataclass(frozen=True)
class Layout:
    """How embeddings of one size travel from HBM: packing, bytes read, arrival rate."""

    embedding_bytes: int
    access_bytes: int
    per_access: int           # embeddings packed in one access (1 when an embedding spans several)
    accesses_per_item: int    # accesses one embedding spans (1 when packed)
    items_per_cycle: float    # embeddings HBM delivers per cycle
    score_units: int          # N_E
    read_capacity: int        # read buffer, in embeddings

    def bytes_read(self, n: int) -> int:
        """M: bytes read to scan n embeddings, the padding of packed accesses included."""
        return -(-n // self.per_access) * self.accesses_per_item * self.access_bytes


def layout(config: FpgaConfig, embedding_bytes: int) -> Layout:
    """The packing and rates for embeddings of `embedding_bytes` under `config`."""
    if embedding_bytes <= 0:
        raise ValueError(f"embedding_bytes must be positive, got {embedding_bytes}")
    access = config.access_bytes
    per_access = max(1, access // embedding_bytes)
    accesses_per_item = -(-embedding_bytes // access)
    items_per_cycle = config.bytes_per_cycle / access * per_access / accesses_per_item
    units = config.score_units if config.score_units is not None else math.ceil(items_per_cycle)
    read_capacity = max(units, config.hbm_channels * config.read_buffer_accesses * per_access // accesses_per_item)
    return Layout(embedding_bytes, access, per_access, accesses_per_item, items_per_cycle, units, read_capacity)


def fixed_latency_cycles(config: FpgaConfig, dim: int, k: int) -> int:
    """C: cycles outside the scan loop (HBM latency, score pipeline, K-selection, read-out).

    The loop itself already spends one cycle per stage on the first item; these are the
    pipeline depths beyond that, plus k cycles to read the sorted top-k out one per cycle.
    """
    return config.hbm_latency_cycles + config.score_pipeline_cycles(dim) + config.selection_depth + k


def closed_form_cycles(config: FpgaConfig, n: int, dim: int, itemsize: int, k: int) -> float:
    """SNARY's latency model L = M/B + C, in cycles, for a scan of n embeddings."""
    lay = layout(config, dim * itemsize)
    return lay.bytes_read(n) / config.bytes_per_cycle + fixed_latency_cycles(config, dim, k)


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


# --------------------------------------------------------------------------- the cycle loop

@numba.njit(cache=True)
def _is_worse(s_a, i_a, s_b, i_b):
    # Lower score is worse; at an equal score the higher id is worse (ties go to the lower id).
    return s_a < s_b or (s_a == s_b and i_a > i_b)


@numba.njit(cache=True)
def _heap_offer(heap_s, heap_i, size, k, s, i):
    """Offer (s, i) to a min-heap of the k best (root = worst kept); returns the new size."""
    if size < k:
        pos = size
        while pos > 0:
            parent = (pos - 1) // 2
            if _is_worse(s, i, heap_s[parent], heap_i[parent]):
                heap_s[pos] = heap_s[parent]
                heap_i[pos] = heap_i[parent]
                pos = parent
            else:
                break
        heap_s[pos] = s
        heap_i[pos] = i
        return size + 1
    if _is_worse(heap_s[0], heap_i[0], s, i):
        heap_replace_root(heap_s, heap_i, s, i)
    return size


@numba.njit(cache=True)
def _scan(scores, k, items_per_cycle, score_units, read_capacity, buffer_depth, stall_period,
          heap_s, heap_i, trace_cycle, trace_passed):
    """Run the scan loop; fills the heap with the top k; returns (cycles, stalls, passed, peak fill)."""
    n = scores.shape[0]
    tracing = trace_cycle.shape[0] == n
    fifo_s = np.empty(buffer_depth, dtype=np.float32)
    fifo_i = np.empty(buffer_depth, dtype=np.int64)
    head = 0
    fill = 0
    peak = 0
    size = 0
    read = 0          # embeddings HBM has delivered
    done = 0          # embeddings through the filter
    credit = 0.0      # fractional embeddings of bandwidth not yet delivered
    cycle = 0
    stalls = 0
    passed = 0
    while done < n or fill > 0:
        cycle += 1
        # 1. K-selection: one score per cycle; the new k-th best reaches the filter this cycle.
        if fill > 0:
            size = _heap_offer(heap_s, heap_i, size, k, fifo_s[head], fifo_i[head])
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
                threshold = heap_s[0] if size == k else -np.inf
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
    heap_s = np.empty(k, dtype=np.float32)
    heap_i = np.empty(k, dtype=np.int64)
    trace_cycle = np.zeros(n if trace else 0, dtype=np.int64)
    trace_passed = np.zeros(n if trace else 0, dtype=np.bool_)
    loop, stalls, passed, peak = _scan(scores, k, lay.items_per_cycle, lay.score_units, lay.read_capacity,
                                       config.buffer_depth, config.hbm_stall_period,
                                       heap_s, heap_i, trace_cycle, trace_passed)
    top_s, top_i = sort_topk(heap_s[None, :], heap_i[None, :], k)
    stats = ScanStats(items=n, k=k, cycles=loop + fixed_latency_cycles(config, dim, k), scan_cycles=loop,
                      stall_cycles=stalls, passed=passed, max_buffer_fill=peak, clock_hz=config.clock)
    return top_s[0], top_i[0], stats, (ScanTrace(trace_cycle, trace_passed) if trace else None)


# --------------------------------------------------------------------------- on a corpus

# Scores for a group of queries are held as (group, N) float32; this bounds that matrix.
SCORE_BUFFER_BYTES = 1 << 28
SCORE_BLOCK = 4096               # rows per parallel work item when scoring
_HALF_SCALE = np.float32(2.0 ** 112)


@numba.njit(cache=True, parallel=True, fastmath=True)
def _score_rows(rows32, rows16, queries, out):
    """out[q, i] = rows[i] . queries[q] in float32.  fp16 rows arrive as uint16 bits in
    `rows16` (then `rows32` is empty): numba has no float16 on the CPU, so each half is
    widened exactly by moving its sign and exponent+mantissa into a float32's bits,
    which gives the value times 2**-112 (subnormals included), undone by one multiply."""
    is_half = rows16.shape[0] > 0
    n = rows16.shape[0] if is_half else rows32.shape[0]
    b, d = queries.shape
    for block in numba.prange((n + SCORE_BLOCK - 1) // SCORE_BLOCK):
        bits = np.empty(d, dtype=np.uint32)
        widened = bits.view(np.float32)
        for i in range(block * SCORE_BLOCK, min(n, (block + 1) * SCORE_BLOCK)):
            if is_half:
                for j in range(d):
                    h = np.uint32(rows16[i, j])
                    bits[j] = ((h & 0x8000) << 16) | ((h & 0x7FFF) << 13)
                for q in range(b):
                    acc = np.float32(0.0)
                    for j in range(d):
                        acc += widened[j] * queries[q, j]
                    out[q, i] = acc * _HALF_SCALE
            else:
                for q in range(b):
                    acc = np.float32(0.0)
                    for j in range(d):
                        acc += rows32[i, j] * queries[q, j]
                    out[q, i] = acc


def _score_group(rows: np.ndarray, queries: np.ndarray, live: np.ndarray | None) -> np.ndarray:
    """(B, N) float32 scores in scan order, -inf on deleted rows."""
    out = np.empty((queries.shape[0], rows.shape[0]), dtype=np.float32)
    if rows.dtype == np.float16:
        _score_rows(np.empty((0, rows.shape[1]), dtype=np.float32), rows.view(np.uint16), queries, out)
    else:
        _score_rows(rows, np.empty((0, rows.shape[1]), dtype=np.uint16), queries, out)
    if live is not None:
        out[:, ~live] = -np.inf
    return out


def model_queries(rows: np.ndarray, queries: np.ndarray, k: int, config: FpgaConfig = FpgaConfig(),
                  live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[ScanStats]]:
    """Each query scanned through the modelled accelerator: (scores (B,k), ids (B,k), stats per query)."""
    b = queries.shape[0]
    scores = np.empty((b, k), dtype=np.float32)
    ids = np.empty((b, k), dtype=np.int64)
    stats: list[ScanStats] = []
    group = max(1, min(b, SCORE_BUFFER_BYTES // (4 * rows.shape[0])))
    emb_bytes = rows.shape[1] * rows.dtype.itemsize
    for q0 in range(0, b, group):
        group_scores = _score_group(rows, queries[q0:q0 + group], live)
        for r, row_scores in enumerate(group_scores):
            scores[q0 + r], ids[q0 + r], st, _ = simulate_scan(row_scores, k, emb_bytes, rows.shape[1], config)
            stats.append(st)
    return scores, ids, stats


class Searcher:
    """The fpga-model backend: exact results, and the modelled figures of the last search.

    `last_stats` holds one `ScanStats` per query of the last `search`.
    """

    def __init__(self, corpus: np.ndarray, config: FpgaConfig = FpgaConfig()) -> None:
        self.config = config
        self.k_limit: int | None = config.k_max
        self._rows = RowStore(corpus)
        self.last_stats: list[ScanStats] = []

    @property
    def n_rows(self) -> int:
        return self._rows.n_rows

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        scores, ids, self.last_stats = model_queries(self._rows.rows, queries, k, self.config, live)
        return scores, ids

    def set_rows(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._rows.set_rows(ids, vectors)

    def append(self, vectors: np.ndarray) -> None:
        self._rows.append(vectors)


# --------------------------------------------------------------------------- sweeps

def sweep(rows: np.ndarray, query: np.ndarray, channels: Iterable[int] = (8, 16, 32),
          score_units: Iterable[int | None] = (None,), ks: Iterable[int] = (1024,),
          base: FpgaConfig = FpgaConfig()) -> list[dict[str, float]]:
    """The modelled figures of one query over a grid of HBM channels, N_E and K (= k_max = k).

    N_E None means bandwidth-matched.  The query's scores are computed once; only the
    accelerator changes.  Every row carries kind="modelled".
    """
    row_scores = _score_group(rows, np.atleast_2d(np.asarray(query, dtype=np.float32)), None)[0]
    emb_bytes = rows.shape[1] * rows.dtype.itemsize
    table = []
    for ch in channels:
        for units in score_units:
            for k in ks:
                config = replace(base, hbm_channels=ch, score_units=units, k_max=k)
                _, _, st, _ = simulate_scan(row_scores, k, emb_bytes, rows.shape[1], config)
                lay = layout(config, emb_bytes)
                table.append({"kind": "modelled", "channels": ch, "score_units": lay.score_units, "k": k,
                              "clock_mhz": config.clock / 1e6,
                              "modelled_bandwidth_gb_s": config.bytes_per_cycle * config.clock / 1e9,
                              "modelled_closed_form_cycles": closed_form_cycles(
                                  config, rows.shape[0], rows.shape[1], rows.dtype.itemsize, k),
                              **st.figures()})
    return table
