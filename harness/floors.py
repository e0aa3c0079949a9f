"""Machine floors measured in the same run as the kernels they bound.

A floor is the least time this machine needs for work a kernel cannot avoid (the bytes
it must read, or the arithmetic it must do), measured with a plain numba loop over the
same data.  Dividing a kernel's time by its floor gives a figure that holds across x86-64
CPUs: both sides are numba code over the same bytes, so a faster or slower CPU, a
different cache size or a different BLAS kernel moves both.  The regression gate uses
these ratios.

- `read_floor(corpus)`: one pass over every byte of an embedding corpus (what
  exact top-K must read), XOR-folded as 8-byte words so no arithmetic hides the reads.
- `adjacency_floor(graph)`: for every edge (u, v), one pass over both adjacency
  lists (what a merge-based triangle count must read).

A read floor measures memory alone, so an implementation's ratio to it still moves with
the CPU's balance of arithmetic to bandwidth (a core with wider vectors computes more per
byte read).  The plain kernels below do the implementation's essential work in the
simplest numba loop instead, so the ratio isolates what the implementation adds or saves:

- `plain_score_scan(corpus, query)`: every row's inner product with one query, the
  largest kept (exact top-K's arithmetic, without the selection);
- `plain_triangle_count(graph)`: the textbook edge iterator, a merge of both sorted
  adjacency lists of every edge u < v, counting the common neighbours above v.

The read floor and the plain score scan are bound by memory bandwidth, and on a shared cloud VM
the bandwidth a guest gets moves with its neighbours' traffic: on an AMD EPYC Zen 4 the same
copy of a 205 MB corpus took 4.3 ms or 6.5 ms to read, in windows a second apart, while
FAERY-CPU, bound by its selection, moved 11%.  So a ratio over them moves with the neighbours.
`resident_score_scan` does the plain scan's arithmetic over rows held in the cores' own
caches: memory is out of it, and it moved 2% or less between those windows.  The gate divides
FAERY-CPU by the geometric mean of the plain and the resident scan (ci/README.md):

- `resident_score_scan(rows, queries, passes)`: about n × d multiply-adds, one plain scan's
  count rounded up to whole passes, over a few cache-sized blocks of the corpus's rows
  (`resident_rows(corpus)` gives them and the passes).
"""

from __future__ import annotations

import numba
import numpy as np

_WORDS_PER_BLOCK = 1 << 14  # 128 KiB per parallel task: long sequential streams, enough tasks for two cores


@numba.njit(parallel=True, cache=True)
def _xor_fold(words: np.ndarray) -> np.uint64:
    blocks = (words.shape[0] + _WORDS_PER_BLOCK - 1) // _WORDS_PER_BLOCK
    folded = np.zeros(blocks, dtype=np.uint64)
    for b in numba.prange(blocks):
        # A slice, indexed from 0: with indices numba cannot prove non-negative, each read carries a
        # wraparound check that kept LLVM from vectorising on some CPUs (4x slower on an AMD Zen 4).
        block = words[b * _WORDS_PER_BLOCK:(b + 1) * _WORDS_PER_BLOCK]
        acc = np.uint64(0)
        for i in range(block.shape[0]):
            acc ^= block[i]
        folded[b] = acc
    out = np.uint64(0)
    for b in range(blocks):
        out ^= folded[b]
    return out


def corpus_words(corpus: np.ndarray) -> np.ndarray:
    """The corpus's bytes as 8-byte words (a view; a trailing partial word is left out)."""
    flat = np.ascontiguousarray(corpus).reshape(-1).view(np.uint8)
    return flat[: flat.size // 8 * 8].view(np.uint64)


def read_floor(words: np.ndarray) -> int:
    """Read every word once (see `corpus_words`); returns their XOR so the reads cannot be elided."""
    return int(_xor_fold(words))


@numba.njit(parallel=True, cache=True)
def _adjacency_pass(indptr: np.ndarray, indices: np.ndarray) -> np.int64:
    total = 0
    for u in numba.prange(indptr.shape[0] - 1):
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            if v <= u:
                continue
            acc = 0
            for i in range(indptr[u], indptr[u + 1]):
                acc += indices[i]
            for i in range(indptr[v], indptr[v + 1]):
                acc += indices[i]
            total += acc & 1
    return total


def adjacency_floor(indptr: np.ndarray, indices: np.ndarray) -> int:
    """Read both adjacency lists of every edge (u < v) once; returns a checksum so the reads stay."""
    return int(_adjacency_pass(indptr, indices))


_ROWS_PER_BLOCK = 1024


@numba.njit(parallel=True, fastmath=True, cache=True)
def _best_score(corpus: np.ndarray, query: np.ndarray) -> np.float32:
    n, d = corpus.shape
    blocks = (n + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK
    best = np.full(blocks, -np.inf, dtype=np.float32)
    for b in numba.prange(blocks):
        top = np.float32(-np.inf)
        for i in range(b * _ROWS_PER_BLOCK, min(n, (b + 1) * _ROWS_PER_BLOCK)):
            acc = np.float32(0.0)
            for j in range(d):   # fastmath lets numba vectorise the sum, as a tuned kernel would
                acc += corpus[i, j] * query[j]
            top = max(top, acc)
        best[b] = top
    return best.max()


def plain_score_scan(corpus: np.ndarray, query: np.ndarray) -> float:
    """Score every fp32 row against one query; returns the best score (fp32 sums, any order)."""
    if corpus.dtype != np.float32 or query.dtype != np.float32 or corpus.ndim != 2 or query.shape != corpus.shape[1:]:
        raise ValueError(f"plain_score_scan needs an fp32 (n, d) corpus and a (d,) query, got {corpus.dtype} "
                         f"{corpus.shape} and {query.dtype} {query.shape}")
    return float(_best_score(corpus, query))


@numba.njit(parallel=True, cache=True)
def _edge_iterator_triangles(indptr: np.ndarray, indices: np.ndarray) -> np.int64:
    total = 0
    for u in numba.prange(indptr.shape[0] - 1):
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            if v <= u:
                continue
            i, i_end, j, j_end = indptr[u], indptr[u + 1], indptr[v], indptr[v + 1]
            while i < i_end and j < j_end:
                a, b = indices[i], indices[j]
                if a < b:
                    i += 1
                elif b < a:
                    j += 1
                else:
                    total += a > v
                    i += 1
                    j += 1
    return total


def plain_triangle_count(indptr: np.ndarray, indices: np.ndarray) -> int:
    """Triangles of a simple undirected graph in CSR form with sorted lists, each counted once."""
    return int(_edge_iterator_triangles(indptr, indices))


# 16 blocks of 1024 rows, one at a time per core: 512 KiB at d = 128, within a Zen 4 core's 1 MiB L2 (on a
# 512 KiB L2 it spills to L3, still on chip); a wider d makes the block larger
_RESIDENT_BLOCKS = 16
_RESIDENT_QUERIES = 4     # cycled over the passes, so no pass repeats the one before (nothing to hoist)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _best_resident_score(rows: np.ndarray, queries: np.ndarray, passes: int) -> np.float32:
    blocks = rows.shape[0] // _ROWS_PER_BLOCK
    best = np.full(blocks, -np.inf, dtype=np.float32)
    for b in numba.prange(blocks):
        block = rows[b * _ROWS_PER_BLOCK:(b + 1) * _ROWS_PER_BLOCK]
        top = np.float32(-np.inf)
        for p in range(passes):
            query = queries[p % queries.shape[0]]
            for i in range(block.shape[0]):
                acc = np.float32(0.0)
                for j in range(block.shape[1]):
                    acc += block[i, j] * query[j]
                top = max(top, acc)
        best[b] = top
    return best.max()


def resident_rows(corpus: np.ndarray) -> tuple[np.ndarray, int]:
    """The rows `resident_score_scan` scores (the corpus's first blocks, a view where it is
    C-contiguous) and how many passes over them reach one scan of the whole corpus in
    multiply-adds (rounded up: +31% at 25k rows, +2% at 400k)."""
    if corpus.dtype != np.float32 or corpus.ndim != 2:
        raise ValueError(f"resident_rows needs an fp32 (n, d) corpus, got {corpus.dtype} {corpus.shape}")
    rows = _RESIDENT_BLOCKS * _ROWS_PER_BLOCK
    if corpus.shape[0] < rows:
        raise ValueError(f"resident_rows needs at least {rows} rows, got {corpus.shape[0]}")
    return np.ascontiguousarray(corpus[:rows]), -(-corpus.shape[0] // rows)


def resident_queries(queries: np.ndarray, passes: int) -> np.ndarray:
    """The queries `passes` passes of `resident_score_scan` score against: pass p takes the
    (p mod m)-th of these, m = min(len(queries), passes, 4)."""
    return np.ascontiguousarray(queries[:min(passes, _RESIDENT_QUERIES)])


def resident_score_scan(rows: np.ndarray, queries: np.ndarray, passes: int) -> float:
    """Score `rows` (see `resident_rows`) `passes` times, pass p against the (p mod m)-th of
    `resident_queries(queries, passes)`; returns the best score (fp32 sums, any order)."""
    queries = resident_queries(queries, passes)
    if (rows.dtype != np.float32 or queries.dtype != np.float32 or rows.ndim != 2 or queries.ndim != 2
            or queries.shape[1] != rows.shape[1] or len(queries) == 0 or rows.shape[0] == 0
            or rows.shape[0] % _ROWS_PER_BLOCK or passes < 1):
        raise ValueError(f"resident_score_scan needs fp32 rows in whole blocks of {_ROWS_PER_BLOCK}, fp32 queries "
                         f"of the same width and passes >= 1, got {rows.dtype} {rows.shape}, {queries.dtype} "
                         f"{queries.shape} and {passes}")
    return float(_best_resident_score(rows, queries, passes))
