"""The CPU kernels of the BFS engine (numba, parallel over embeddings).

Each level runs Pangolin's two passes: `count_level` counts every embedding's
valid extensions, the engine prefix-sums the counts, and `write_level` writes
the new vertex ids and parent indices at those offsets.  The last level only
counts (`count_last`), classifying motifs when the plan asks for it.

An embedding is not stored whole: the buffer holds, per entry, the newest
vertex id and the buffer index of its parent entry (a prefix tree); a kernel
rebuilds an embedding by following parents to the root.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from baselines.pangolin_bfs.plans import ExtensionPlan

ACTION_COUNT, ACTION_WRITE, ACTION_CLASSIFY = 0, 1, 2
MAX_K = 8


@njit(cache=True, inline="always")
def _row_contains(indptr, indices, row, value):
    lo, hi = indptr[row], indptr[row + 1]
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo < indptr[row + 1] and indices[lo] == value


@njit(cache=True, inline="always")
def _adjacent(indptr, indices, oriented, a, b):
    """Whether a and b are adjacent; on the DAG, a must be the lower-ranked end."""
    if oriented or indptr[a + 1] - indptr[a] <= indptr[b + 1] - indptr[b]:
        return _row_contains(indptr, indices, a, b)
    return _row_contains(indptr, indices, b, a)


@njit(cache=True)
def _rebuild(vids, parents, entry, n, emb):
    for position in range(n - 1, -1, -1):
        emb[position] = vids[entry]
        entry = parents[entry]


@njit(cache=True)
def motif_code(k, num_edges, max_degree):
    """Index of a connected k-vertex subgraph in MOTIF_NAMES[k], from its edge count and max degree."""
    if k == 3:
        return num_edges - 2
    if num_edges == 3:
        return 0 if max_degree == 2 else 1
    if num_edges == 4:
        return 2 if max_degree == 2 else 3
    return num_edges - 1  # 5 edges: diamond (4), 6 edges: 4-clique (5)


@njit(cache=True)
def _extend(indptr, indices, oriented, canonical, source, connected, less, greater, emb, scratch, n, action,
            out_vids, out_parents, out_start, parent_entry, code_counts):
    """Visit the valid extensions of `emb[:n]`; count, write or classify them. Returns how many.

    `scratch` is 2 * MAX_K int64 of per-thread work space (no allocation per embedding).
    """
    found = 0
    if canonical:
        # Pangolin's vertex-induced automorphism check: u is added from the first
        # embedding vertex it is adjacent to, must exceed v0, and must exceed every
        # vertex added after its source; each connected vertex set is found once.
        internal_edges = 0
        degree = scratch[:MAX_K]
        adjacency = scratch[MAX_K:]
        degree[:] = 0
        if action == ACTION_CLASSIFY:
            for i in range(n):
                for j in range(i + 1, n):
                    if _adjacent(indptr, indices, False, emb[i], emb[j]):
                        internal_edges += 1
                        degree[i] += 1
                        degree[j] += 1
        for idx in range(n):
            src = emb[idx]
            for e in range(indptr[src], indptr[src + 1]):
                u = indices[e]
                if u <= emb[0]:
                    continue
                keep = True
                for j in range(idx + 1, n):
                    if u <= emb[j]:  # also rejects u already in the embedding
                        keep = False
                        break
                if not keep:
                    continue
                for j in range(1, idx + 1):
                    if u == emb[j]:
                        keep = False
                        break
                if not keep:
                    continue
                for j in range(idx):
                    if _adjacent(indptr, indices, False, emb[j], u):
                        keep = False
                        break
                if not keep:
                    continue
                if action == ACTION_WRITE:
                    out_vids[out_start + found] = u
                    out_parents[out_start + found] = parent_entry
                elif action == ACTION_CLASSIFY:
                    edges = internal_edges + 1
                    u_degree = 1
                    for j in range(n):
                        adjacency[j] = 1 if j == idx else 0
                    for j in range(idx + 1, n):
                        if _adjacent(indptr, indices, False, emb[j], u):
                            adjacency[j] = 1
                            edges += 1
                            u_degree += 1
                    max_degree = u_degree
                    for j in range(n):
                        if degree[j] + adjacency[j] > max_degree:
                            max_degree = degree[j] + adjacency[j]
                    code_counts[motif_code(n + 1, edges, max_degree)] += 1
                found += 1
        return found

    src = emb[source[n]]
    check = connected[n] & ~(1 << source[n])
    upper = np.int64(2**31)
    lower = np.int64(-1)
    for p in range(n):
        if less[n] >> p & 1 and emb[p] < upper:
            upper = emb[p]
        if greater[n] >> p & 1 and emb[p] > lower:
            lower = emb[p]
    for e in range(indptr[src], indptr[src + 1]):
        u = indices[e]
        if u >= upper:
            break  # sorted adjacency: every later neighbour is out of bounds too
        if u <= lower:
            continue
        keep = True
        for p in range(n):
            if u == emb[p] or (check >> p & 1 and not _adjacent(indptr, indices, oriented, emb[p], u)):
                keep = False
                break
        if not keep:
            continue
        if action == ACTION_WRITE:
            out_vids[out_start + found] = u
            out_parents[out_start + found] = parent_entry
        elif action == ACTION_CLASSIFY:
            code_counts[0] += 1
        found += 1
    return found


@njit(cache=True)
def _run_block(indptr, indices, oriented, canonical, source, connected, less, greater,
               vids, parents, lo, start, stop, n, action, offsets, out_start, counts, block_codes):
    """Apply `_extend` to the embeddings at buffer entries lo+start..lo+stop-1."""
    emb = np.empty(MAX_K, dtype=np.int32)
    scratch = np.empty(2 * MAX_K, dtype=np.int64)
    for i in range(start, stop):
        _rebuild(vids, parents, lo + i, n, emb)
        out = out_start + offsets[i] if action == ACTION_WRITE else 0
        found = _extend(indptr, indices, oriented, canonical, source, connected, less, greater, emb, scratch,
                        n, action, vids, parents, out, lo + i, block_codes)
        if action == ACTION_COUNT:
            counts[i] = found


@njit(cache=True, parallel=True)
def _run_level(indptr, indices, oriented, canonical, source, connected, less, greater,
               vids, parents, lo, hi, n, action, offsets, out_start, num_codes, num_blocks):
    """`_run_block` over entries lo..hi-1 in `num_blocks` parallel blocks.

    Returns per-embedding extension counts (ACTION_COUNT) and the code counts
    (ACTION_CLASSIFY; prange has no array reduction, so each block keeps its own row).
    """
    total = hi - lo
    counts = np.zeros(total if action == ACTION_COUNT else 0, dtype=np.int64)
    per_block = np.zeros((num_blocks, num_codes), dtype=np.int64)
    for block in prange(num_blocks):
        _run_block(indptr, indices, oriented, canonical, source, connected, less, greater, vids, parents, lo,
                   total * block // num_blocks, total * (block + 1) // num_blocks, n, action, offsets, out_start,
                   counts, per_block[block])
    return counts, per_block.sum(axis=0)


_NO_OFFSETS = np.zeros(1, dtype=np.int64)
SERIAL_BELOW = 1 << 15  # embeddings in a level below which the kernels run on the calling thread


class CpuKernels:
    """The engine's kernel interface on the CPU; arrays are numpy."""

    name = "cpu"

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, plan: ExtensionPlan) -> None:
        self.graph = (indptr, indices)
        self.plan_args = (plan.oriented, plan.canonical, plan.source, plan.connected, plan.less, plan.greater)
        self.num_codes = len(plan.outputs)
        self.num_blocks = 64 * numba.get_num_threads()

    def to_device(self, array: np.ndarray) -> np.ndarray:
        return array

    def empty(self, size: int, dtype: type) -> np.ndarray:
        return np.empty(size, dtype=dtype)

    def _run(self, vids: np.ndarray, parents: np.ndarray, lo: int, hi: int, n: int, action: int,
             offsets: np.ndarray = _NO_OFFSETS, out_start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        total = hi - lo
        if total < SERIAL_BELOW:
            # A parallel region costs a thread wake-up (and a scheduler time slice on
            # a busy machine); small levels are cheaper on the calling thread.
            counts = np.zeros(total if action == ACTION_COUNT else 0, dtype=np.int64)
            codes = np.zeros(self.num_codes, dtype=np.int64)
            _run_block(*self.graph, *self.plan_args, vids, parents, lo, 0, total, n, action, offsets, out_start,
                       counts, codes)
            return counts, codes
        return _run_level(*self.graph, *self.plan_args, vids, parents, lo, hi, n, action, offsets, out_start,
                          self.num_codes, min(self.num_blocks, total))

    def count_level(self, vids: np.ndarray, parents: np.ndarray, lo: int, hi: int, n: int) -> np.ndarray:
        return self._run(vids, parents, lo, hi, n, ACTION_COUNT)[0]

    def write_level(self, vids: np.ndarray, parents: np.ndarray, lo: int, hi: int, n: int,
                    offsets: np.ndarray, out_start: int) -> None:
        self._run(vids, parents, lo, hi, n, ACTION_WRITE, offsets, out_start)

    def count_last(self, vids: np.ndarray, parents: np.ndarray, lo: int, hi: int, n: int) -> np.ndarray:
        return self._run(vids, parents, lo, hi, n, ACTION_CLASSIFY)[1]

    def exclusive_scan(self, counts: np.ndarray) -> tuple[np.ndarray, int]:
        offsets = np.empty_like(counts)
        offsets[0] = 0
        np.cumsum(counts[:-1], out=offsets[1:])
        return offsets, int(offsets[-1] + counts[-1])

    def to_host(self, array: np.ndarray) -> np.ndarray:
        return array

    def copy_into(self, dst: np.ndarray, src: np.ndarray, size: int) -> None:
        dst[:size] = src[:size]
