"""The contract every FAERY backend follows, and the helpers they share.

A backend is a module `impls.faery.<module>` defining a class `Searcher`:

    Searcher(corpus)            corpus: validated, C-contiguous float32 or float16 (N, d).
                                The searcher may keep a reference to it without copying;
                                it copies before its first write (`set_rows`/`append`).
    .k_limit: int | None        the largest k it supports (None: any k <= N).
    .n_rows: int                rows it holds now (ids 0 .. n_rows-1, deleted ones included).
    .search(queries, k, live)   queries: float32 C-contiguous (B, d); 1 <= k <= live rows
                                (and <= k_limit), already checked by the caller;
                                live: bool (n_rows,) mask of non-deleted rows, or None for all.
                                Returns (scores float32 (B, k), ids int64 (B, k)) sorted by
                                descending score, ties by lower id; a row with live=False
                                never appears.
    .set_rows(ids, vectors)     overwrite rows in place (ids int64, vectors of the corpus dtype).
    .append(vectors)            add rows at the end, with amortised capacity growth.

Optional, for a backend whose scan checks every score it computes:

    .search_unchecked(queries, k)   search a corpus nobody has checked for NaN/Inf:
                                raises `NonFiniteScore` at a NaN or Inf score, and returns
                                (scores, ids, the largest row norm it saw).  One-call
                                `search()` uses it to skip a separate pass over the corpus.

Callers (`Index`, `Cluster`, `search`) validate inputs once; backends trust them.
"""

from __future__ import annotations

import importlib
from typing import Protocol

import numba
import numpy as np

BACKENDS = ("cpu", "opencl", "gpu", "fpga-model", "fpga-rtl")
_MODULES = {"cpu": "cpu", "opencl": "opencl", "gpu": "gpu", "fpga-model": "fpga_model", "fpga-rtl": "rtl.backend"}


class Searcher(Protocol):
    k_limit: int | None

    def __init__(self, corpus: np.ndarray) -> None: ...

    @property
    def n_rows(self) -> int: ...

    def search(self, queries: np.ndarray, k: int,
               live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]: ...

    def set_rows(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...

    def append(self, vectors: np.ndarray) -> None: ...


class NonFiniteScore(ValueError):
    """A scan met a NaN or Inf score: the row holds NaN or Inf, or its score overflows float32."""

    def __init__(self, row: int) -> None:
        super().__init__(f"a score against corpus row {row} is NaN or Inf: the row holds NaN or Inf, "
                         "or its inner product with a query exceeds float32's range")
        self.row = row


def searcher_class(backend: str) -> type[Searcher]:
    """The `Searcher` class of `backend`, imported on first use (so cupy/pyopencl stay optional)."""
    if backend not in _MODULES:
        raise ValueError(f"unknown backend {backend!r} for faery; choose one of {', '.join(BACKENDS)}")
    module = importlib.import_module(f"impls.faery.{_MODULES[backend]}")
    return module.Searcher


class RowStore:
    """Host rows with copy-on-first-write and amortised (doubling) growth.

    Wraps the caller's array without copying, so a read-only benchmark corpus costs
    no memory; the first `set_rows`/`append` copies into an owned buffer with spare
    capacity, so a stream of inserts costs O(1) amortised copies per row.
    """

    def __init__(self, corpus: np.ndarray) -> None:
        self._buffer = corpus
        self._n = corpus.shape[0]
        self._owned = False

    @property
    def rows(self) -> np.ndarray:
        """The current rows, a C-contiguous view (n_rows, d)."""
        return self._buffer[:self._n]

    @property
    def n_rows(self) -> int:
        return self._n

    def set_rows(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._own(self._n)
        self._buffer[ids] = vectors

    def append(self, vectors: np.ndarray) -> None:
        needed = self._n + vectors.shape[0]
        self._own(needed)
        self._buffer[self._n:needed] = vectors
        self._n = needed

    def _own(self, needed: int) -> None:
        if self._owned and needed <= self._buffer.shape[0]:
            return
        # Growing doubles the capacity, so later appends rarely copy; an in-place
        # update of a borrowed corpus copies it once, at its exact size.
        capacity = max(needed, 2 * self._n, 16) if needed > self._n else self._n
        fresh = np.empty((capacity, self._buffer.shape[1]), dtype=self._buffer.dtype)
        fresh[:self._n] = self._buffer[:self._n]
        self._buffer, self._owned = fresh, True


def sort_topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the best k of (scores, ids): descending score, ties by lower id.

    Used to merge candidate lists (per-shard or per-chunk top-Ks); rows are small.
    """
    order = np.lexsort((ids, -scores.astype(np.float64)), axis=-1)[:, :k]
    return (np.take_along_axis(scores, order, axis=1).astype(np.float32, copy=False),
            np.take_along_axis(ids, order, axis=1).astype(np.int64, copy=False))


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge several (B, k_i) top-k lists over disjoint ids into one (B, k) list."""
    scores = np.concatenate([s for s, _ in parts], axis=1)
    ids = np.concatenate([i for _, i in parts], axis=1)
    return sort_topk(scores, ids, k)


@numba.njit(cache=True, nogil=True)
def heap_replace_root(hs, hi, score, idx):
    """Replace the worst entry of a k-best min-heap (root: lowest score, highest id among equals), sift down.

    The tie rule (an equal score with a higher id is worse) is what makes every backend
    return the lower id on ties.  Shared by the CPU kernel and the FPGA model's K-selection.
    """
    k = hs.shape[0]
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= k:
            break
        if child + 1 < k and (hs[child + 1] < hs[child] or (hs[child + 1] == hs[child] and hi[child + 1] > hi[child])):
            child += 1
        if hs[child] < score or (hs[child] == score and hi[child] > idx):
            hs[pos] = hs[child]
            hi[pos] = hi[child]
            pos = child
        else:
            break
    hs[pos] = score
    hi[pos] = idx
