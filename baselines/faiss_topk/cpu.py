"""CPU flat search: BLAS GEMM per tile, then a heap per query that admits only scores beating its root.

This is Faiss's `knn_inner_product` structure (BLAS tiles + per-query heaps).  The
GEMM uses BLAS's threads; the heap pass is serial numba.  A parallel heap pass was
slower: numba's workers and BLAS's spinning threads fight over the cores between
every tile.  Scanning ids in increasing order means an equal score never displaces
a kept one, which gives the lower-id tie rule for free.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from topk import heap_replace_root, sort_topk

# A score tile holds at most SCORE_TILE floats (16 MB): large batches get short corpus
# tiles, and a single query streams the corpus in one long GEMV instead of paying
# BLAS's per-call thread wake-up once per short tile.
QUERY_TILE = 256
SCORE_TILE = 1 << 22
MIN_CORPUS_TILE = 1 << 12


@numba.njit(cache=True, nogil=True)
def _push_tile(tile_scores, id_offset, heap_scores, heap_ids):
    rows, cols = tile_scores.shape
    for r in range(rows):
        hs = heap_scores[r]
        hi = heap_ids[r]
        for c in range(cols):
            s = tile_scores[r, c]
            if s > hs[0]:  # beats the current K-th best: replace the root, sift down
                heap_replace_root(hs, hi, s, id_offset + c)


class Searcher:
    def __init__(self, corpus: np.ndarray) -> None:
        self.corpus = corpus

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._search(queries, k, None)

    def phase_times(self, queries: np.ndarray, k: int) -> dict[str, float]:
        """Seconds in the GEMM (with fp16 widening) and in k-selection (heaps and final sort); they sum to the total."""
        phases = {"gemm_s": 0.0, "select_s": 0.0}
        self._search(queries, k, phases)
        return phases

    def _search(self, queries: np.ndarray, k: int,
                phases: dict[str, float] | None) -> tuple[np.ndarray, np.ndarray]:
        clock = time.perf_counter if phases is not None else None
        n = self.corpus.shape[0]
        b = queries.shape[0]
        scores = np.empty((b, k), dtype=np.float32)
        ids = np.empty((b, k), dtype=np.int64)
        for q0 in range(0, b, QUERY_TILE):
            q = queries[q0:q0 + QUERY_TILE]
            heap_scores = np.full((q.shape[0], k), -np.inf, dtype=np.float32)
            heap_ids = np.full((q.shape[0], k), -1, dtype=np.int64)
            corpus_tile = max(MIN_CORPUS_TILE, SCORE_TILE // q.shape[0])
            for c0 in range(0, n, corpus_tile):
                t0 = clock() if clock else 0.0
                block = self.corpus[c0:c0 + corpus_tile]
                if block.dtype != np.float32:  # fp16 storage: widen one tile for BLAS
                    block = block.astype(np.float32)
                tile_scores = q @ block.T
                t1 = clock() if clock else 0.0
                _push_tile(tile_scores, c0, heap_scores, heap_ids)
                if phases is not None:
                    phases["gemm_s"] += t1 - t0
                    phases["select_s"] += clock() - t1
            t0 = clock() if clock else 0.0
            scores[q0:q0 + q.shape[0]], ids[q0:q0 + q.shape[0]] = sort_topk(heap_scores, heap_ids, k)
            if phases is not None:
                phases["select_s"] += clock() - t0
        return scores, ids
