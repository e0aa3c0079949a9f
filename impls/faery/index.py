"""The corpus manager: an index over one backend that takes inserts, updates and deletes between queries.

Ids are stable row numbers.  An insert appends rows (the backend grows its storage
by doubling, so no full rebuild); an update overwrites rows in place; a delete
clears the row's bit in a live mask that every backend's K-selection honours, so a
deleted id never appears again and is never reused.

Scores are float32: a query whose scores could exceed its range (largest row norm
times query norm, see `workloads.embeddings.check_score_range`) is refused, not
answered with Inf scores and arbitrary ids.
"""

from __future__ import annotations

import numpy as np

from impls.faery.backend import Searcher, searcher_class
from workloads.embeddings import as_corpus, as_queries, check_k, check_score_range, max_row_norm


class Index:
    """Exact top-K inner-product search over a mutable corpus, on one backend."""

    def __init__(self, corpus: np.ndarray, backend: str = "cpu") -> None:
        cls = searcher_class(backend)
        corpus = as_corpus(corpus)
        self.backend = backend
        self.dim = corpus.shape[1]
        self.dtype = corpus.dtype
        self._searcher: Searcher = cls(corpus)
        self._live = np.ones(corpus.shape[0], dtype=bool)
        self._n_deleted = 0
        # An upper bound on every row's norm: inserts and updates only raise it.
        self._norm_bound = max_row_norm(corpus)

    @property
    def n_rows(self) -> int:
        """Ids handed out so far (deleted ones included)."""
        return self._live.shape[0]

    @property
    def n_live(self) -> int:
        """Rows that can appear in a result."""
        return self.n_rows - self._n_deleted

    @property
    def k_limit(self) -> int | None:
        return self._searcher.k_limit

    @property
    def searcher(self) -> Searcher:
        """The backend instance (for backend-specific figures such as filter pass rates)."""
        return self._searcher

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32, ids int64), each (B, k), by descending score; ties go to the lower id."""
        queries = as_queries(queries, self.dim)
        check_score_range(self._norm_bound, queries)
        k = check_k(k, self.n_live, self._searcher.k_limit, f"the faery {self.backend} backend")
        live = self._live if self._n_deleted else None
        return self._searcher.search(queries, k, live)

    def insert(self, vectors: np.ndarray) -> np.ndarray:
        """Add embeddings; returns their new ids."""
        vectors = self._rows(vectors, "inserted vectors")
        first = self.n_rows
        self._searcher.append(vectors)
        self._norm_bound = max(self._norm_bound, max_row_norm(vectors))
        self._live = np.concatenate([self._live, np.ones(vectors.shape[0], dtype=bool)])
        return np.arange(first, first + vectors.shape[0], dtype=np.int64)

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace the embeddings of live ids."""
        ids = self._live_ids(ids, "update")
        vectors = self._rows(vectors, "updated vectors")
        if vectors.shape[0] != ids.shape[0]:
            raise ValueError(f"update got {ids.shape[0]} ids but {vectors.shape[0]} vectors")
        if np.unique(ids).shape[0] != ids.shape[0]:
            raise ValueError("update got the same id twice")
        self._searcher.set_rows(ids, vectors)
        self._norm_bound = max(self._norm_bound, max_row_norm(vectors))

    def delete(self, ids: np.ndarray) -> None:
        """Remove live ids from every later result."""
        ids = np.unique(self._live_ids(ids, "delete"))
        self._live[ids] = False
        self._n_deleted += ids.shape[0]

    def _rows(self, vectors: np.ndarray, name: str) -> np.ndarray:
        arr = np.asarray(vectors)
        if arr.ndim == 1:
            arr = arr[None, :]
        arr = as_corpus(arr, name)
        if arr.shape[1] != self.dim:
            raise ValueError(f"{name} have dimension {arr.shape[1]}, but the corpus has dimension {self.dim}")
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def _live_ids(self, ids: np.ndarray, verb: str) -> np.ndarray:
        arr = np.atleast_1d(np.asarray(ids))
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{verb} needs a 1-D array of integer ids, got {arr.dtype} with shape {arr.shape}")
        arr = arr.astype(np.int64)
        unknown = arr[(arr < 0) | (arr >= self.n_rows)]
        if unknown.size:
            raise ValueError(f"{verb}: unknown id {unknown[0]} (ids run from 0 to {self.n_rows - 1})")
        dead = arr[~self._live[arr]]
        if dead.size:
            raise ValueError(f"{verb}: id {dead[0]} was deleted")
        return arr


def search(corpus: np.ndarray, queries: np.ndarray, k: int, backend: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of `queries` against `corpus` by inner product: (scores float32, ids int64), each (B, k)."""
    return Index(corpus, backend).search(queries, k)
