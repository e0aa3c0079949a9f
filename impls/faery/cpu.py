"""FAERY on the CPU: one fused pass over the corpus, chunks pulled by worker threads.

Per chunk and per block of ROW_BLOCK rows:
1. score: the block against every query, into a small (queries x ROW_BLOCK) buffer
   that stays in cache (no score matrix over the corpus is ever built), in register
   blocks of 2 rows x 4 queries (PERFORMANCE.md shows the kernels this beat);
2. filter: a query whose block maximum does not beat its running K-th best skips
   the block, and within a block only scores beating it go on (FAERY's filter);
3. K-selection: survivors replace the root of the thread's per-query min-heap.
The threads' heaps are then merged.  The corpus is read from memory once per search,
whatever the batch size: each row block is reused by all queries while it is hot.

Chunks are handed out dynamically to one nogil numba worker per thread, rather than
split statically by numba's prange: on a shared machine a descheduled thread then
delays only its current chunk, not a fixed share of the scan.

Ties: rows are scanned in increasing id within a chunk and only a strictly better
score enters the heap, so an equal score never displaces a lower id; the merge
sorts by (score desc, id asc).  fp16 corpora are widened to fp32 one block at a
time with an exact bit-level conversion (numba has no float16 type on the CPU).
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from impls.faery.backend import RowStore, heap_replace_root, sort_topk

ROW_BLOCK = 64          # rows scored at once: 64 x 128 fp32 = 32 KB, an L1/L2-sized block
QUERY_TILE = 32         # queries scored against one row block before filtering
CHUNKS_PER_THREAD = 8   # spare chunks so a slow thread does not hold up the others
MIN_CHUNK_ROWS = 4096
MAX_CHUNK_ROWS = 1 << 16  # 32 MB of fp32 d=128 rows: fine-grained enough to balance
_HALF_TO_FLOAT_SCALE = np.float32(2.0 ** 112)  # re-biases a half's exponent field inside a float32


@numba.njit(cache=True, fastmath=True, nogil=True)  # scores of finite inputs: no NaN/Inf to preserve
def _score_rows(block, queries, q0, q1, out):
    """out[q - q0, r] = block[r] . queries[q], a register block of 2 rows x 4 queries at a time.

    Each step of the dimension loop loads 2 row values and 4 query values for 8 FMAs,
    so loads stay below FMAs; LLVM vectorises the loop over the dimension.
    """
    rows, d = block.shape
    r = 0
    while r + 2 <= rows:
        q = q0
        while q + 4 <= q1:
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = np.float32(0.0)
            for j in range(d):
                x = block[r, j]
                y = block[r + 1, j]
                c0 = queries[q, j]
                c1 = queries[q + 1, j]
                c2 = queries[q + 2, j]
                c3 = queries[q + 3, j]
                a0 += x * c0
                a1 += x * c1
                a2 += x * c2
                a3 += x * c3
                b0 += y * c0
                b1 += y * c1
                b2 += y * c2
                b3 += y * c3
            o = q - q0
            out[o, r], out[o + 1, r], out[o + 2, r], out[o + 3, r] = a0, a1, a2, a3
            out[o, r + 1], out[o + 1, r + 1], out[o + 2, r + 1], out[o + 3, r + 1] = b0, b1, b2, b3
            q += 4
        for q in range(q, q1):  # the last 1-3 queries of the tile
            out[q - q0, r] = _dot(block[r], queries[q])
            out[q - q0, r + 1] = _dot(block[r + 1], queries[q])
        r += 2
    if r < rows:  # an odd last row
        for q in range(q0, q1):
            out[q - q0, r] = _dot(block[r], queries[q])


@numba.njit(cache=True, fastmath=True, nogil=True)
def _dot(a, b):
    acc = np.float32(0.0)
    for j in range(a.shape[0]):
        acc += a[j] * b[j]
    return acc


@numba.njit(cache=True, nogil=True)
def _widen_half(src_bits, r0, r1, bits, as_float):
    """float16 rows (as uint16 bits) -> float32, exactly, subnormals included.

    Moving a half's exponent+mantissa up 13 bits gives a float32 whose value is the
    half's times 2**-112 (normal and subnormal alike); one multiply restores it.
    """
    d = src_bits.shape[1]
    for i in range(r1 - r0):
        for j in range(d):
            h = np.uint32(src_bits[r0 + i, j])
            bits[i, j] = ((h & np.uint32(0x7FFF)) << np.uint32(13)) | ((h & np.uint32(0x8000)) << np.uint32(16))
    for i in range(r1 - r0):
        for j in range(d):
            as_float[i, j] *= _HALF_TO_FLOAT_SCALE


@numba.njit(cache=True, fastmath=True, nogil=True)  # finite scores only
def _block_max(scores, rows):
    m = scores[0]
    for r in range(1, rows):
        m = max(m, scores[r])
    return m


@numba.njit(cache=True, nogil=True)
def _scan_chunk(corpus32, corpus16, is_half, queries, live, use_live, lo, hi, hs, hid):
    """Offer rows [lo, hi) to the per-query heaps hs/hid (B, k); returns the filter's survivors."""
    d = queries.shape[1]
    b = queries.shape[0]
    block_scores = np.empty((QUERY_TILE, ROW_BLOCK), dtype=np.float32)
    bits = np.empty((ROW_BLOCK, d), dtype=np.uint32)
    widened = bits.view(np.float32)
    survivors = 0
    for r0 in range(lo, hi, ROW_BLOCK):
        r1 = min(hi, r0 + ROW_BLOCK)
        rows = r1 - r0
        if is_half:
            _widen_half(corpus16, r0, r1, bits, widened)
            block = widened[:rows]
        else:
            block = corpus32[r0:r1]
        for q0 in range(0, b, QUERY_TILE):
            q1 = min(b, q0 + QUERY_TILE)
            _score_rows(block, queries, q0, q1, block_scores)
            survivors += _filter_block(block_scores[:q1 - q0, :rows], q0, r0, live, use_live, hs, hid)
    return survivors


@numba.njit(cache=True, nogil=True)
def _filter_block(scores, q0, r0, live, use_live, hs, hid):
    """Offer scores[q, r] (query q0 + q, row r0 + r) to the heaps, ROW_BLOCK columns at a time.

    A column block whose maximum does not beat the query's K-th best is dropped whole
    (one vectorised max); otherwise each score beating it goes to K-selection.
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
            if _block_max(row_scores[c0:c1], c1 - c0) <= threshold:
                continue
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


class Searcher:
    """The CPU backend (see impls.faery.backend for the contract)."""

    k_limit: int | None = None

    def __init__(self, corpus: np.ndarray) -> None:
        self._store = RowStore(corpus)
        self.last_pass_rate = float("nan")  # filter survivors / scores, of the last search

    @property
    def n_rows(self) -> int:
        return self._store.n_rows

    def set_rows(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._store.set_rows(ids, vectors)

    def append(self, vectors: np.ndarray) -> None:
        self._store.append(vectors)

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        corpus = self._store.rows
        n, d = corpus.shape
        b = queries.shape[0]
        workers = _worker_count()
        chunk_rows = min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, -(-n // (workers * CHUNKS_PER_THREAD))))
        chunk_rows = -(-chunk_rows // ROW_BLOCK) * ROW_BLOCK
        n_chunks = -(-n // chunk_rows)
        workers = min(workers, n_chunks)
        heap_scores = np.full((workers, b, k), -np.inf, dtype=np.float32)
        heap_ids = np.full((workers, b, k), -1, dtype=np.int64)
        is_half = corpus.dtype == np.float16
        args = (np.empty((0, d), dtype=np.float32) if is_half else corpus,
                corpus.view(np.uint16) if is_half else np.empty((0, d), dtype=np.uint16), is_half,
                queries, live if live is not None else np.ones(1, dtype=bool), live is not None)
        next_chunk = itertools.count()  # shared: each worker takes the next unscanned chunk

        def work(w: int) -> int:
            survivors = 0
            while (c := next(next_chunk)) < n_chunks:
                survivors += _scan_chunk(*args, c * chunk_rows, min(n, (c + 1) * chunk_rows),
                                         heap_scores[w], heap_ids[w])
            return survivors

        helpers = [_POOL.submit(work, w) for w in range(1, workers)]
        passed = work(0) + sum(h.result() for h in helpers)
        self.last_pass_rate = passed / (n * b)
        merged_scores = heap_scores.transpose(1, 0, 2).reshape(b, workers * k)
        merged_ids = heap_ids.transpose(1, 0, 2).reshape(b, workers * k)
        return sort_topk(merged_scores, merged_ids, k)
