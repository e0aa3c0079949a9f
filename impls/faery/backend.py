"""The contract every FAERY backend follows, the table of backends, and the helpers they share.

A backend is a class `Searcher` (in a module `impls.faery.<module>`):

    Searcher(corpus)            corpus: validated, C-contiguous float32 or float16 (N, d).
                                The searcher may keep a reference to it without copying;
                                it copies before its first write (`set_rows`/`append`).
    .k_limit: int | None        the largest k it supports (None: any k <= N).
    .n_rows: int                rows it holds now (ids 0 .. n_rows-1, deleted ones included).
    .last_pass_rate: float      the share of the last search's scores that its filter let
                                through to K-selection; NaN before a search, or where the
                                backend does not count them.
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

Adding a backend: a module with its `Searcher` (`StoredRows` and its `RowStore` keep the rows,
`topk` has the k-best heap and merge), and one line in `_SEARCHER_MODULES` below; `register_backend`
does the same at run time, for a `Searcher` defined elsewhere.

Callers (`Index`, `Cluster`, `search`) validate inputs once; backends trust them.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Protocol

import numpy as np

from topk import sort_topk

# Backend name -> the module defining its Searcher, imported on first use (so cupy/pyopencl stay optional).
_SEARCHER_MODULES: dict[str, str] = {
    "cpu": "impls.faery.cpu", "opencl": "impls.faery.opencl", "gpu": "impls.faery.gpu",
    "fpga-model": "impls.faery.fpga_model.backend", "fpga-rtl": "impls.faery.rtl.backend"}
BACKENDS = tuple(_SEARCHER_MODULES)
_REGISTERED: dict[str, type[Searcher]] = {}


class Searcher(Protocol):
    k_limit: int | None
    last_pass_rate: float

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


def backends() -> tuple[str, ...]:
    """Every backend name: the built-in ones, then those registered at run time."""
    return BACKENDS + tuple(name for name in _REGISTERED if name not in _SEARCHER_MODULES)


def register_backend(name: str, searcher: type[Searcher]) -> None:
    """Make `searcher` (a class following the contract above) the FAERY backend `name`."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a backend name must be a non-empty string, not {name!r}")
    if name in _SEARCHER_MODULES:
        raise ValueError(f"backend {name!r} is built in; choose another name")
    _REGISTERED[name] = searcher


def searcher_class(backend: str) -> type[Searcher]:
    """The `Searcher` class of `backend`, imported on first use (so cupy/pyopencl stay optional)."""
    if backend in _REGISTERED:
        return _REGISTERED[backend]
    if backend not in _SEARCHER_MODULES:
        raise ValueError(f"unknown backend {backend!r} for faery; choose one of {', '.join(backends())}")
    return importlib.import_module(_SEARCHER_MODULES[backend]).Searcher


class RowStore:
    """A corpus's rows in a buffer with spare capacity that doubles as it grows, so a stream of
    appends costs O(1) amortised copies per row.  Every backend keeps its rows in one.

    On the host (no `allocate`): wraps the caller's array without copying, so a read-only
    benchmark corpus costs no memory; the first `set_rows`/`append` copies it into an owned
    buffer.  In device memory: `allocate(capacity)` gives an uninitialised (capacity, d)
    device array (cupy or pyopencl; of the corpus dtype or another of its size holding the
    bits, as pyopencl arrays hold fp16), the corpus is copied in at once, and host rows go in
    with the array's `.set` on a contiguous slice (pyopencl arrays take no index arrays, so
    `set_rows` writes each run of consecutive ids in one copy).
    """

    def __init__(self, corpus: np.ndarray, allocate: Callable[[int], Any] | None = None) -> None:
        self._n = corpus.shape[0]
        self._allocate = allocate
        if allocate is None:
            self._buffer, self._owned = corpus, False
        else:
            self._buffer, self._owned = allocate(self._n), True
            self._put(0, corpus)

    @property
    def rows(self) -> Any:
        """The current rows, a C-contiguous view (n_rows, d) of the buffer."""
        return self._buffer[:self._n]

    @property
    def n_rows(self) -> int:
        return self._n

    def set_rows(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._own(self._n)
        if self._allocate is None:
            self._buffer[ids] = vectors
            return
        order = np.argsort(ids, kind="stable")
        ids, vectors = ids[order], vectors[order]
        starts = np.flatnonzero(np.diff(ids, prepend=ids[:1] - 2) != 1)  # where a run of consecutive ids begins
        for begin, end in zip(starts, [*starts[1:], ids.shape[0]]):
            self._put(int(ids[begin]), vectors[begin:end])

    def append(self, vectors: np.ndarray) -> None:
        needed = self._n + vectors.shape[0]
        self._own(needed)
        self._put(self._n, vectors)
        self._n = needed

    def _put(self, first: int, rows: np.ndarray) -> None:
        """Host rows into buffer rows first .. first + len(rows)."""
        if not rows.shape[0]:
            return
        view = self._buffer[first:first + rows.shape[0]]
        if self._allocate is None:
            view[...] = rows
        else:
            view.set(np.ascontiguousarray(rows).view(view.dtype))  # a device array may hold the bits (same itemsize)

    def _own(self, needed: int) -> None:
        if self._owned and needed <= self._buffer.shape[0]:
            return
        # Growing doubles the capacity, so later appends rarely copy; an in-place
        # update of a borrowed corpus copies it once, at its exact size.
        capacity = max(needed, 2 * self._n, 16) if needed > self._n else self._n
        if self._allocate is None:
            fresh = np.empty((capacity, self._buffer.shape[1]), dtype=self._buffer.dtype)
        else:
            fresh = self._allocate(capacity)
        fresh[:self._n] = self._buffer[:self._n]
        self._buffer, self._owned = fresh, True


class StoredRows:
    """The row-keeping half of a `Searcher`, from the `RowStore` in `self._store`: `n_rows`,
    `set_rows` and `append`.  A backend subclasses it and sets `self._store`."""

    _store: RowStore

    @property
    def n_rows(self) -> int:
        return self._store.n_rows

    def set_rows(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._store.set_rows(ids, vectors)

    def append(self, vectors: np.ndarray) -> None:
        self._store.append(vectors)


def merge_topk(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge several (B, k_i) top-k lists over disjoint ids into one (B, k) list."""
    scores = np.concatenate([s for s, _ in parts], axis=1)
    ids = np.concatenate([i for _, i in parts], axis=1)
    return sort_topk(scores, ids, k)
