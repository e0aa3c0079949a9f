"""Machine floors measured in the same run as the kernels they bound.

A floor is the least time this machine needs for the data movement a kernel cannot
avoid, measured with a plain numba loop over the same data.  Dividing a kernel's
time by its floor gives a figure that holds across x86-64 CPUs: both sides are
numba code over the same bytes, so a faster or slower CPU, a different cache size or
a different BLAS kernel moves both.  The regression gate uses these ratios.

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
