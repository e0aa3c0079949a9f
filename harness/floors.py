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
        acc = np.uint64(0)
        for i in range(b * _WORDS_PER_BLOCK, min((b + 1) * _WORDS_PER_BLOCK, words.shape[0])):
            acc ^= words[i]
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
