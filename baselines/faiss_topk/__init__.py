"""Faiss's brute-force exact top-K inner-product search, as the FAERY paper's baseline.

The method of Faiss's flat index: a GEMM over tiles of queries x corpus, a
k-selection per tile that keeps only scores beating the running K-th best, and a
merge across tiles.  `FlatIndex` validates the corpus once; `search` is the
one-call form.  K is limited to 2048, Faiss's GPU_MAX_SELECTION_K.  Queries
whose float32 scores could overflow are refused (`check_score_range`).
"""

from __future__ import annotations

import numpy as np

from workloads.embeddings import as_corpus, as_queries, check_k, check_score_range, max_row_norm

MAX_K = 2048
BACKENDS = ("cpu", "gpu")


class FlatIndex:
    """An exact inner-product index over a fixed corpus (checked once, on construction)."""

    def __init__(self, corpus: np.ndarray, backend: str = "cpu") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r} for faiss_topk; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.corpus = as_corpus(corpus)
        self._corpus_norm = max_row_norm(self.corpus)
        if backend == "cpu":
            from baselines.faiss_topk import cpu as impl
        else:
            from baselines.faiss_topk import gpu as impl
        self._impl = impl.Searcher(self.corpus)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids), each (B, k), sorted by descending score; ties go to the lower id."""
        queries = as_queries(queries, self.corpus.shape[1])
        check_score_range(self._corpus_norm, queries)
        k = check_k(k, self.corpus.shape[0], MAX_K, "faiss_topk (Faiss's GPU_MAX_SELECTION_K)")
        return self._impl.search(queries, k)


def search(corpus: np.ndarray, queries: np.ndarray, k: int, backend: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of `queries` against `corpus` by inner product: (scores float32, ids int64), each (B, k)."""
    return FlatIndex(corpus, backend).search(queries, k)
