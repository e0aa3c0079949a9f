"""The CPU set-operation library that generated numba kernels call.

All inputs are ascending int32 arrays (adjacency lists or earlier results);
outputs stay ascending.  `bound` keeps only elements below it (the symmetry
bound of the level); pass NO_BOUND for none.  Lists of similar length are
merged; a shorter list is searched key by key in the longer one with a
galloping search that never moves backwards (the CPU form of the GPU kernels'
"binary search of the smaller list's keys in the larger"): each key costs the
log of its distance from the previous match, so the search pays off from a
length ratio of a few.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

NO_BOUND = np.int64(2**31 - 1)
# Above this length ratio, galloping search beats a linear merge (measured on
# kron16 diamonds and 4-cliques against ratios 2, 8 and the former 32 with plain binary search).
_SEARCH_RATIO = 4


@njit(cache=True, inline="always")
def gallop(a: np.ndarray, lo: int, hi: int, x: int) -> int:
    """First index in a[lo:hi] whose element is >= x, found by doubling steps from lo, then halving."""
    step = 1
    while lo + step < hi and a[lo + step] < x:
        lo += step
        step <<= 1
    # a[lo] may still be < x; the answer lies in (lo, min(lo + step, hi)] or is lo itself.
    end = min(lo + step, hi)
    while lo < end:
        mid = (lo + end) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            end = mid
    return lo


@njit(cache=True, inline="always")
def lower_bound(a: np.ndarray, lo: int, hi: int, x: int) -> int:
    """First index in a[lo:hi] whose element is >= x (hi when none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def count_below(a: np.ndarray, bound: int) -> int:
    """Elements of a below bound."""
    return lower_bound(a, 0, a.shape[0], bound)


@njit(cache=True)
def contains(a: np.ndarray, x: int) -> bool:
    i = lower_bound(a, 0, a.shape[0], x)
    return i < a.shape[0] and a[i] == x


@njit(cache=True)
def _intersect(a: np.ndarray, b: np.ndarray, bound: int, out: np.ndarray, write: bool) -> int:
    na, nb = a.shape[0], b.shape[0]
    if bound < NO_BOUND:
        na = lower_bound(a, 0, na, bound)
        nb = lower_bound(b, 0, nb, bound)
    if na > nb:
        a, b, na, nb = b, a, nb, na
    n = 0
    if na == 0:
        return 0
    if nb > _SEARCH_RATIO * na:
        lo = 0
        for i in range(na):
            x = a[i]
            lo = gallop(b, lo, nb, x)
            if lo == nb:
                break
            if b[lo] == x:
                if write:
                    out[n] = x
                n += 1
        return n
    # Branch-free merge: the comparisons become increments, so nothing mispredicts.
    i = j = 0
    while i < na and j < nb:
        x, y = a[i], b[j]
        if write:
            out[n] = x
        n += x == y
        i += x <= y
        j += y <= x
    return n


@njit(cache=True)
def _difference(a: np.ndarray, b: np.ndarray, bound: int, out: np.ndarray, write: bool) -> int:
    na, nb = a.shape[0], b.shape[0]
    n = 0
    lo = 0
    for i in range(na):
        x = a[i]
        if x >= bound:
            break
        lo = lower_bound(b, lo, nb, x)
        if lo == nb or b[lo] != x:
            if write:
                out[n] = x
            n += 1
    return n


# The counting forms pass an input array as the (never written) output.

@njit(cache=True)
def intersect(a: np.ndarray, b: np.ndarray, bound: int, out: np.ndarray) -> int:
    """Write a ∩ b (elements below bound) into out; return the length."""
    return _intersect(a, b, bound, out, True)


@njit(cache=True)
def intersect_count(a: np.ndarray, b: np.ndarray, bound: int) -> int:
    """|a ∩ b| over elements below bound."""
    return _intersect(a, b, bound, a, False)


@njit(cache=True)
def difference(a: np.ndarray, b: np.ndarray, bound: int, out: np.ndarray) -> int:
    """Write a − b (elements below bound) into out; return the length."""
    return _difference(a, b, bound, out, True)


@njit(cache=True)
def difference_count(a: np.ndarray, b: np.ndarray, bound: int) -> int:
    """|a − b| over elements below bound."""
    return _difference(a, b, bound, a, False)


@njit(cache=True)
def add_edge_triangles(indptr: np.ndarray, indices: np.ndarray, v0: int, triangles: np.ndarray) -> None:
    """Add one to `triangles` at each of the three arcs of every triangle whose lowest vertex is v0.

    On a graph labelled by ascending degree, a vertex's higher neighbours (the part
    of its sorted list above its own id) are its out-neighbours in the degree
    orientation, at most sqrt(2|E|) of them, so each triangle v0 < v1 < w is found
    once, from v0, by intersecting the part of N(v0) above v1 with the part of N(v1)
    above v1.  An arc is a position in `indices`, always the lower end's (v0's v1,
    v0's w, v1's w), and the intersection knows all three.
    """
    hi0 = indptr[v0 + 1]
    for i1 in range(lower_bound(indices, indptr[v0], hi0, v0 + 1), hi0):
        v1 = indices[i1]
        hi1 = indptr[v1 + 1]
        lo0, lo1 = i1 + 1, lower_bound(indices, indptr[v1], hi1, v1 + 1)
        n0, n1 = hi0 - lo0, hi1 - lo1
        found = 0
        if n0 > _SEARCH_RATIO * n1 or n1 > _SEARCH_RATIO * n0:
            # Lengths far apart: each key of the shorter part, galloping through the longer one.
            short, short_end, long, long_end = (lo1, hi1, lo0, hi0) if n0 > n1 else (lo0, hi0, lo1, hi1)
            for k in range(short, short_end):
                long = gallop(indices, long, long_end, indices[k])
                if long == long_end:
                    break
                if indices[long] == indices[k]:
                    triangles[k] += 1
                    triangles[long] += 1
                    found += 1
        else:
            a, b = lo0, lo1
            while a < hi0 and b < hi1:
                x, y = indices[a], indices[b]
                if x == y:
                    triangles[a] += 1
                    triangles[b] += 1
                    found += 1
                a += x <= y
                b += y <= x
        triangles[i1] += found


@njit(cache=True)
def _add_triangles_of_worker(indptr: np.ndarray, indices: np.ndarray, worker: int, num_workers: int,
                             triangles: np.ndarray) -> None:
    for v0 in range(worker, indptr.shape[0] - 1, num_workers):
        add_edge_triangles(indptr, indices, v0, triangles)


@njit(cache=True)
def _pairs_of_worker(per_worker: np.ndarray, worker: int, num_workers: int) -> tuple[int, bool]:
    """Σ C(t, 2) over arcs worker, worker + W, ..., t summed over the workers' counters; and a wrap."""
    acc = np.int64(0)
    wrapped = False
    for arc in range(worker, per_worker.shape[1], num_workers):
        t = np.int64(0)
        for w in range(per_worker.shape[0]):
            t += per_worker[w, arc]
        acc += t * (t - 1) // 2
        wrapped |= acc < 0
    return acc, wrapped


@njit(parallel=True, cache=True)
def edge_triangle_pairs(indptr: np.ndarray, indices: np.ndarray, num_workers: int) -> tuple[np.ndarray, np.ndarray]:
    """Per worker, its part of Σ over edges of C(t, 2), t the edge's triangles; and whether it wrapped.

    Each worker counts triangles into its own array of arcs (no atomics), then the
    arcs are shared out again and summed over the workers.
    """
    per_worker = np.zeros((num_workers, indices.shape[0]), np.int32)
    for worker in prange(num_workers):
        _add_triangles_of_worker(indptr, indices, worker, num_workers, per_worker[worker])
    totals = np.zeros(num_workers, np.int64)
    overflow = np.zeros(num_workers, np.bool_)
    for worker in prange(num_workers):
        totals[worker], overflow[worker] = _pairs_of_worker(per_worker, worker, num_workers)
    return totals, overflow


@njit(cache=True)
def edge_triangle_pairs_serial(indptr: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`edge_triangle_pairs` on the calling thread, one worker."""
    per_worker = np.zeros((1, indices.shape[0]), np.int32)
    _add_triangles_of_worker(indptr, indices, 0, 1, per_worker[0])
    acc, wrapped = _pairs_of_worker(per_worker, 0, 1)
    return np.array([acc]), np.array([wrapped])
