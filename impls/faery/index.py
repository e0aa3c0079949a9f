"""The corpus manager: an index over one backend that takes inserts, updates and deletes between queries.

Ids are stable row numbers.  An insert appends rows (the backend grows its storage
by doubling, so no full rebuild); an update overwrites rows in place; a delete
clears the row's bit in a live mask that every backend's K-selection honours, so a
deleted id never appears again and is never reused.

Scores are float32: a query whose scores could exceed its range (largest row norm
times query norm, see `workloads.embeddings.check_score_range`) is refused, not
answered with Inf scores and arbitrary ids.

One-call `search()` on a backend that checks its scores in the scan (the CPU's
`search_unchecked`) makes no separate pass over the corpus: a NaN or Inf in it shows
as a NaN or Inf score, and the largest row norm comes from the scan; only then, or
when that norm puts the scores near float32's limit, do the usual checks run, so the
errors are the ones `Index` gives.
"""

from __future__ import annotations

import numpy as np

from impls.faery.backend import NonFiniteScore, Searcher, searcher_class
from workloads.embeddings import (FLOAT_DTYPES, SCORE_LIMIT, as_corpus, as_queries, check_k, check_score_range,
                                  max_row_norm)

# The scan's float32 row norm may differ from max_row_norm's in the last bits: within this
# margin of the limit the exact check decides, so the answer is the one Index gives.
_NORM_MARGIN = 1e-3


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
        ids = live_ids(ids, self._live, "update")
        vectors = self._rows(vectors, "updated vectors")
        if vectors.shape[0] != ids.shape[0]:
            raise ValueError(f"update got {ids.shape[0]} ids but {vectors.shape[0]} vectors")
        if np.unique(ids).shape[0] != ids.shape[0]:
            raise ValueError("update got the same id twice")
        self._searcher.set_rows(ids, vectors)
        self._norm_bound = max(self._norm_bound, max_row_norm(vectors))

    def delete(self, ids: np.ndarray) -> None:
        """Remove live ids from every later result."""
        ids = np.unique(live_ids(ids, self._live, "delete"))
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


def live_ids(ids: np.ndarray, live: np.ndarray, verb: str) -> np.ndarray:
    """`ids` as int64, each one an id handed out (below len(live)) and not deleted (live[id]),
    else ValueError naming the first that is not; `verb` names the operation in the message."""
    arr = np.atleast_1d(np.asarray(ids))
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{verb} needs a 1-D array of integer ids, got {arr.dtype} with shape {arr.shape}")
    arr = arr.astype(np.int64)
    unknown = arr[(arr < 0) | (arr >= live.shape[0])]
    if unknown.size:
        raise ValueError(f"{verb}: unknown id {unknown[0]} (ids run from 0 to {live.shape[0] - 1})")
    dead = arr[~live[arr]]
    if dead.size:
        raise ValueError(f"{verb}: id {dead[0]} was deleted")
    return arr


def search(corpus: np.ndarray, queries: np.ndarray, k: int, backend: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of `queries` against `corpus` by inner product: (scores float32, ids int64), each (B, k)."""
    cls = searcher_class(backend)
    if not hasattr(cls, "search_unchecked"):
        return Index(corpus, backend).search(queries, k)
    rows = _as_scanned_corpus(corpus)
    queries = as_queries(queries, rows.shape[1])
    k = check_k(k, rows.shape[0], cls.k_limit, f"the faery {backend} backend")
    try:
        scores, ids, scanned_norm = cls(rows).search_unchecked(queries, k)
    except NonFiniteScore:
        as_corpus(rows)  # names the first NaN/Inf, row and column
        check_score_range(max_row_norm(rows), queries)  # or the overflow
        raise
    if not scanned_norm * max_row_norm(queries) < SCORE_LIMIT * (1 - _NORM_MARGIN):
        check_score_range(max_row_norm(rows), queries)
    return scores, ids


def _as_scanned_corpus(corpus: object) -> np.ndarray:
    """The corpus as the scan reads it: a float32/float16 C-contiguous matrix is taken as it is
    (the scan checks it for NaN/Inf), anything else goes through `as_corpus`."""
    if (isinstance(corpus, np.ndarray) and corpus.dtype in FLOAT_DTYPES and corpus.ndim == 2
            and corpus.size and corpus.flags.c_contiguous):
        return corpus
    return as_corpus(corpus)
