"""k-best lists of (score, id): higher score first, then lower id.

- `heap_replace_root`: the sift-down of a min-heap of the k best (numba, called from kernels);
- `sort_topk`: per row, the best k of candidate lists (numpy), to merge per-worker, per-shard or
  per-tile lists.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def heap_replace_root(hs, hi, score, idx):
    """Replace the worst entry of a k-best min-heap (root: lowest score, highest id among equals), sift down.

    The caller has checked that (score, idx) beats the root.  The tie rule (an equal score with
    a higher id is worse) is what makes every searcher return the lower id on ties.
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


def sort_topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the best k of (scores, ids): descending score, ties by lower id.

    Used to merge candidate lists (per-worker, per-shard or per-tile top-Ks); rows are small.
    """
    order = np.lexsort((ids, -scores.astype(np.float64)), axis=-1)[:, :k]
    return (np.take_along_axis(scores, order, axis=1).astype(np.float32, copy=False),
            np.take_along_axis(ids, order, axis=1).astype(np.int64, copy=False))
