"""FAERY on the CPU: one fused pass over the corpus, chunks pulled by worker threads.

Per chunk and per block of ROW_BLOCK rows:
1. score: the block against every query, into a small (queries x ROW_BLOCK) buffer
   that stays in cache (no score matrix over the corpus is ever built), in register
   blocks of 2 rows x 4 queries (`scoring.score_rows`, shared with the FPGA model);
2. filter: a query whose block maximum does not beat its running K-th best skips
   the block, and within a block only scores beating it go on (FAERY's filter);
3. K-selection: survivors replace the root of the thread's per-query min-heap.
The threads' heaps are then merged.  The corpus is read from memory once per search,
whatever the batch size: each row block is reused by all queries while it is hot.

Large batches (B >= GEMM_MIN_BATCH) score tiles with BLAS instead (`_search_gemm`):
each worker runs a single-threaded sgemm of all queries against a tile of rows, into a
score tile of about 1 MiB, then the same filter and K-selection over it while it is in cache.  No score matrix over
the corpus exists on either path.

Validation happens in the scan: a NaN or Inf score (from a NaN/Inf in the row, or a
score beyond float32) stops the search with `NonFiniteScore` naming the row.  The
kernels are compiled without fastmath's no-NaN/no-Inf assumptions so such scores
reach the check as IEEE arithmetic makes them.

Chunks are handed out dynamically to one nogil numba worker per thread, rather than
split statically by numba's prange: on a shared machine a descheduled thread then
delays only its current chunk, not a fixed share of the scan.

Ties: rows are scanned in increasing id within a chunk and only a strictly better
score enters the heap, so an equal score never displaces a lower id; the merge
sorts by (score desc, id asc).  fp16 corpora are widened to fp32 one block at a
time, exactly (`scoring.widen_half`: subnormals, Inf and NaN included).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from threadpoolctl import ThreadpoolController

from impls.faery.backend import NonFiniteScore, RowStore, StoredRows
from impls.faery.scoring import FASTMATH, dot, float32_rows, score_rows, split_by_dtype
from topk import heap_replace_root, sort_topk

ROW_BLOCK = 64          # rows scored at once: 64 x 128 fp32 = 32 KB, an L1/L2-sized block
QUERY_TILE = 32         # queries scored against one row block before filtering
CHUNKS_PER_THREAD = 8   # spare chunks so a slow thread does not hold up the others
MIN_CHUNK_ROWS = 4096
MAX_CHUNK_ROWS = 1 << 16  # 32 MB of fp32 d=128 rows: fine-grained enough to balance
# Batches from this size score with BLAS tiles.  Measured (PERFORMANCE.md, "v6: choosing the
# path"): 1M x 128 fp32, K = 100, 2 threads, the two paths interleaved in one process, the
# fused kernel's time over the BLAS path's: B = 16 0.49, 32 0.71, 64 1.07, 96 1.16,
# 128 1.51, 256 1.54.  From 128 BLAS wins clearly; at 64-96 the gain is within the noise.
GEMM_MIN_BATCH = 128
GEMM_SCORE_TILE_BYTES = 1 << 20  # queries x tile rows of fp32 scores: filtered while still in cache


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def _block_max(scores, rows):
    """The largest of scores[:rows], or NaN when any of them is NaN or Inf.

    s * 0 is 0 for a finite s and NaN for NaN or Inf, so the sum of those products
    poisons the maximum exactly then: the validation rides on the vectorised max.
    """
    m = scores[0]
    poison = scores[0] * np.float32(0.0)
    for r in range(1, rows):
        m = max(m, scores[r])
        poison += scores[r] * np.float32(0.0)
    return m + poison


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def _peak_norm2(block, peak):
    """max(peak, the largest squared row norm of block); Inf when one exceeds float32."""
    for r in range(block.shape[0]):
        peak = max(peak, dot(block[r], block[r]))
    return peak


@numba.njit(cache=True, nogil=True)
def _scan_chunk(corpus32, corpus16, is_half, queries, live, use_live, lo, hi, hs, hid, bad, peak):
    """Offer rows [lo, hi) to the per-query heaps hs/hid (B, k); returns the filter's survivors.

    Stops at a block with a NaN or Inf score, its row in bad[0].  With peak[0] >= 0 it
    also keeps there the largest squared row norm seen (for the one-call score-range check).
    """
    d = queries.shape[1]
    b = queries.shape[0]
    block_scores = np.empty((QUERY_TILE, ROW_BLOCK), dtype=np.float32)
    widened = np.empty((ROW_BLOCK, d), dtype=np.float32)
    survivors = 0
    for r0 in range(lo, hi, ROW_BLOCK):
        r1 = min(hi, r0 + ROW_BLOCK)
        rows = r1 - r0
        block = float32_rows(corpus32, corpus16, is_half, r0, r1, widened)
        if peak[0] >= 0:
            peak[0] = _peak_norm2(block, peak[0])
        for q0 in range(0, b, QUERY_TILE):
            q1 = min(b, q0 + QUERY_TILE)
            score_rows(block, queries, q0, q1, block_scores)
            survivors += _filter_block(block_scores[:q1 - q0, :rows], q0, r0, live, use_live, hs, hid, bad)
            if bad[0] >= 0:
                return survivors
    return survivors


@numba.njit(cache=True, nogil=True)
def _filter_block(scores, q0, r0, live, use_live, hs, hid, bad):
    """Offer scores[q, r] (query q0 + q, row r0 + r) to the heaps, ROW_BLOCK columns at a time.

    A column block whose maximum does not beat the query's K-th best is dropped whole
    (one vectorised max); otherwise each score beating it goes to K-selection.  A block
    holding a NaN or Inf score puts the first such row of it (over all queries) in bad[0].
    """
    nq, cols = scores.shape
    survivors = 0
    for q in range(nq):
        row_scores = scores[q]
        heap_s = hs[q0 + q]
        heap_i = hid[q0 + q]
        threshold = heap_s[0]
        for c0 in range(0, cols, ROW_BLOCK):
            c1 = min(cols, c0 + ROW_BLOCK)
            top = _block_max(row_scores[c0:c1], c1 - c0)
            if top <= threshold:
                continue
            if top != top:  # NaN: some score of the block is NaN or Inf
                for c in range(c0, c1):
                    if not math.isfinite(row_scores[c]):
                        if bad[0] < 0 or r0 + c < bad[0]:
                            bad[0] = r0 + c
                        break
                break
            for c in range(c0, c1):
                s = row_scores[c]
                if s > threshold and (not use_live or live[r0 + c]):
                    heap_replace_root(heap_s, heap_i, s, r0 + c)
                    threshold = heap_s[0]
                    survivors += 1
    return survivors


def _worker_count() -> int:
    return max(1, min(numba.get_num_threads(), len(os.sched_getaffinity(0))))


_POOL = ThreadPoolExecutor(max_workers=max(1, _worker_count() - 1), thread_name_prefix="faery-cpu")


class Searcher(StoredRows):
    """The CPU backend (see impls.faery.backend for the contract)."""

    k_limit: int | None = None

    def __init__(self, corpus: np.ndarray) -> None:
        self._store = RowStore(corpus)
        self.last_pass_rate = float("nan")  # filter survivors / scores, of the last search
        self.last_path = ""  # "fused" or "gemm": the scoring path of the last search

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        scores, ids, _ = self._search(queries, k, live, track_norms=False)
        return scores, ids

    def search_unchecked(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
        """`search` over a corpus nobody has checked: also returns its largest row norm, as the scan saw it.

        NaN/Inf are caught by the scan (`NonFiniteScore`); the norm is computed from the
        rows while they are in cache (inf when a squared norm exceeds float32).
        """
        return self._search(queries, k, None, track_norms=True)

    def _search(self, queries: np.ndarray, k: int, live: np.ndarray | None,
                track_norms: bool) -> tuple[np.ndarray, np.ndarray, float]:
        corpus = self._store.rows
        b = queries.shape[0]
        live_mask = live if live is not None else np.ones(1, dtype=bool)
        bad = np.full(1, -1, dtype=np.int64)
        peak = np.full(1, 0.0 if track_norms else -1.0, dtype=np.float32)
        if b >= GEMM_MIN_BATCH:
            self.last_path = "gemm"
            heap_scores, heap_ids, passed = _search_gemm(corpus, queries, k, live_mask, live is not None, bad, peak)
        else:
            self.last_path = "fused"
            heap_scores, heap_ids, passed = _search_fused(corpus, queries, k, live_mask, live is not None, bad, peak)
        if bad[0] >= 0:
            raise NonFiniteScore(int(bad[0]))
        self.last_pass_rate = passed / (corpus.shape[0] * b)
        workers = heap_scores.shape[0]
        merged_scores = heap_scores.transpose(1, 0, 2).reshape(b, workers * k)
        merged_ids = heap_ids.transpose(1, 0, 2).reshape(b, workers * k)
        scores, ids = sort_topk(merged_scores, merged_ids, k)
        return scores, ids, math.sqrt(peak[0]) if track_norms else float("nan")


def _worker_buffers(workers: int, b: int, k: int, peak: np.ndarray):
    """Each worker's own heaps (W, B, k), first bad row and peak squared norm, so workers never share a write."""
    return (np.full((workers, b, k), -np.inf, dtype=np.float32), np.full((workers, b, k), -1, dtype=np.int64),
            np.full((workers, 1), -1, dtype=np.int64), np.repeat(peak[None, :], workers, axis=0))


def _run_on_workers(work, workers: int, bad_rows: np.ndarray, peaks: np.ndarray,
                    bad: np.ndarray, peak: np.ndarray) -> int:
    """`work(w)` on every worker (worker 0 on this thread); the survivors in total, the first bad row
    into `bad` and the largest peak into `peak`."""
    helpers = [_POOL.submit(work, w) for w in range(1, workers)]
    passed = work(0) + sum(h.result() for h in helpers)
    found = bad_rows[bad_rows >= 0]
    if found.size:
        bad[0] = found.min()
    peak[0] = peaks.max()
    return passed


def _search_fused(corpus, queries, k, live, use_live, bad, peak):
    """The fused numba kernel on every worker; returns per-worker heaps (W, B, k) and survivors."""
    n, d = corpus.shape
    b = queries.shape[0]
    workers = _worker_count()
    chunk_rows = min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, -(-n // (workers * CHUNKS_PER_THREAD))))
    chunk_rows = -(-chunk_rows // ROW_BLOCK) * ROW_BLOCK
    n_chunks = -(-n // chunk_rows)
    workers = min(workers, n_chunks)
    heap_scores, heap_ids, bad_rows, peaks = _worker_buffers(workers, b, k, peak)
    args = (*split_by_dtype(corpus), queries, live, use_live)
    next_chunk = itertools.count()  # shared: each worker takes the next unscanned chunk

    def work(w: int) -> int:
        survivors = 0
        while (bad_rows < 0).all() and (c := next(next_chunk)) < n_chunks:
            survivors += _scan_chunk(*args, c * chunk_rows, min(n, (c + 1) * chunk_rows),
                                     heap_scores[w], heap_ids[w], bad_rows[w], peaks[w])
        return survivors

    passed = _run_on_workers(work, workers, bad_rows, peaks, bad, peak)
    return heap_scores, heap_ids, passed


def _search_gemm(corpus, queries, k, live, use_live, bad, peak):
    """Large batches: per tile of rows, a single-threaded BLAS sgemm against every query, then the
    numba filter over the score tile while it is in cache, on every worker, chunks pulled as in
    `_search_fused`.

    BLAS runs inside FAERY's workers with its own pool limited to one thread (`_single_threaded_blas`),
    so the two pools never run at once, and a descheduled thread delays only its chunk: a
    multi-threaded sgemm per tile from one thread waits at every call for its slowest thread, which
    on a loaded machine made B = 256 ten times slower (PERFORMANCE.md).
    """
    n, d = corpus.shape
    b = queries.shape[0]
    tile_rows = max(ROW_BLOCK, GEMM_SCORE_TILE_BYTES // (4 * b) // ROW_BLOCK * ROW_BLOCK)
    workers = _worker_count()
    chunk_rows = -(-min(MAX_CHUNK_ROWS, max(tile_rows, -(-n // (workers * CHUNKS_PER_THREAD)))) // tile_rows) * tile_rows
    n_chunks = -(-n // chunk_rows)
    workers = min(workers, n_chunks)
    heap_scores, heap_ids, bad_rows, peaks = _worker_buffers(workers, b, k, peak)
    corpus32, corpus16, is_half = split_by_dtype(corpus)
    next_chunk = itertools.count()

    def work(w: int) -> int:
        tile_scores = np.empty(b * tile_rows, dtype=np.float32)
        widened = np.empty((tile_rows if is_half else 0, d), dtype=np.float32)
        passed = 0
        while (bad_rows < 0).all() and (c := next(next_chunk)) < n_chunks:
            for r0 in range(c * chunk_rows, min(n, (c + 1) * chunk_rows), tile_rows):
                r1 = min(n, r0 + tile_rows)
                block = float32_rows(corpus32, corpus16, is_half, r0, r1, widened)
                if peaks[w, 0] >= 0:
                    peaks[w, 0] = _peak_norm2(block, peaks[w, 0])
                scores = tile_scores[:b * (r1 - r0)].reshape(b, r1 - r0)  # contiguous, also for the last tile
                with np.errstate(over="ignore", invalid="ignore"):  # the filter reports NaN/Inf scores
                    np.matmul(queries, block.T, out=scores)
                passed += _filter_block(scores, 0, r0, live, use_live, heap_scores[w], heap_ids[w], bad_rows[w])
                if bad_rows[w, 0] >= 0:
                    break
        return passed

    with _single_threaded_blas():
        passed = _run_on_workers(work, workers, bad_rows, peaks, bad, peak)
    return heap_scores, heap_ids, passed


_BLAS_LOCK = threading.Lock()
_blas_users = 0
_blas_limit = None


@contextlib.contextmanager
def _single_threaded_blas():
    """BLAS limited to one thread while any FAERY GEMM search runs (process-wide: BLAS has one
    setting); the first search in sets it, the last out restores the harness's setting."""
    global _blas_users, _blas_limit
    with _BLAS_LOCK:
        if _blas_users == 0:
            _blas_limit = _blas_controller().limit(limits=1, user_api="blas")
        _blas_users += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _blas_users -= 1
            if _blas_users == 0:
                _blas_limit.restore_original_limits()


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()  # finds the loaded BLAS once; each limit() is then cheap
