"""The level-by-level BFS driver, shared by the CPU and GPU kernels.

For each chunk of initial edges it materialises level after level of the
embedding list (two passes per level: count, prefix-sum, write) and counts the
last level without writing it.  Levels live on one stack-like buffer of
(vertex id, parent index) entries; a level whose size would pass
`max_level_embeddings` is built in halves, one after the other, so memory stays
bounded even inside a chunk.  The peak number of live entries at each level is
recorded, because that memory growth is what a BFS miner pays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from baselines.pangolin_bfs.plans import (FIRST_EDGE_ASCENDING, FIRST_EDGE_DAG, FIRST_EDGE_DESCENDING,
                                          ExtensionPlan)
from workloads.graphs import CSRGraph, orient_by_degree, relabel_by_degree

ENTRY_BYTES = 8  # an int32 vertex id and an int32 parent index
MAX_BUFFER_ENTRIES = 2**31 - 1  # parent indices are int32, as in Pangolin


@dataclass
class BFSResult:
    """Counts by output name, and the embedding-list memory the BFS needed.

    `level_embeddings[l]` is the largest number of embeddings of l+1 vertices
    materialised at once (levels 0 and 1 are the chunk's initial edges; the last
    level is counted, never stored).  `peak_bytes` is the largest live buffer.
    """

    counts: dict[str, int]
    level_embeddings: list[int] = field(default_factory=list)
    peak_bytes: int = 0
    chunks: int = 0

    @property
    def count(self) -> int:
        """The single count of a one-pattern plan (sum over outputs otherwise)."""
        return sum(self.counts.values())


class Kernels(Protocol):
    name: str

    def to_device(self, array: np.ndarray) -> Any: ...
    def empty(self, size: int, dtype: type) -> Any: ...
    def count_level(self, vids: Any, parents: Any, lo: int, hi: int, n: int) -> Any: ...
    def write_level(self, vids: Any, parents: Any, lo: int, hi: int, n: int, offsets: Any, out_start: int) -> None: ...
    def count_last(self, vids: Any, parents: Any, lo: int, hi: int, n: int) -> Any: ...
    def exclusive_scan(self, counts: Any) -> tuple[Any, int]: ...
    def to_host(self, array: Any) -> np.ndarray: ...
    def copy_into(self, dst: Any, src: Any, size: int) -> None: ...


def initial_edges(graph: CSRGraph, plan: ExtensionPlan) -> tuple[np.ndarray, np.ndarray, CSRGraph]:
    """The graph the plan mines and its first-level edges (v0, v1).

    Cliques run on the degree-ordered DAG.  Other plans run on the graph
    relabelled by ascending degree, the same preprocessing G2Miner applies, so
    a comparison measures the search method and not the vertex order.
    """
    if plan.first_edge == FIRST_EDGE_DAG:
        mined = orient_by_degree(graph)
        src, dst = mined.arcs()
        return src, dst, mined
    mined = relabel_by_degree(graph)
    src, dst = mined.undirected_edges()  # src < dst
    if plan.first_edge == FIRST_EDGE_ASCENDING:
        return src, dst, mined
    assert plan.first_edge == FIRST_EDGE_DESCENDING
    return dst, src, mined


class Miner:
    """One plan, ready to run on one graph and backend.

    Construction does the preprocessing (orientation or relabelling, the edge
    list, moving the graph to the device); `run()` is the mining alone.
    """

    def __init__(self, graph: CSRGraph, plan: ExtensionPlan, kernels_for: Any, chunk_edges: int,
                 max_level_embeddings: int) -> None:
        if graph.directed:
            raise ValueError(f"graph {graph.name!r} is oriented; pass the undirected graph")
        if chunk_edges < 1:
            raise ValueError(f"chunk_edges must be at least 1, not {chunk_edges}")
        if max_level_embeddings < 1:
            raise ValueError(f"max_level_embeddings must be at least 1, not {max_level_embeddings}")
        self.plan = plan
        self.chunk_edges = chunk_edges
        self.max_level_embeddings = max_level_embeddings
        self.src, self.dst, mined = initial_edges(graph, plan)
        self.kernels: Kernels = kernels_for(mined.indptr, mined.indices, plan)

    def run(self) -> BFSResult:
        levels = _LevelMiner(self.kernels, self.plan, self.max_level_embeddings,
                             min(len(self.src), self.chunk_edges))
        for start in range(0, len(self.src), self.chunk_edges):
            levels.mine_chunk(self.src[start:start + self.chunk_edges], self.dst[start:start + self.chunk_edges])
        return BFSResult(counts=dict(zip(self.plan.outputs, levels.totals)),
                         level_embeddings=levels.level_embeddings, peak_bytes=levels.peak_entries * ENTRY_BYTES,
                         chunks=levels.chunks)


class _LevelMiner:
    def __init__(self, kernels: Kernels, plan: ExtensionPlan, max_level_embeddings: int, first_chunk: int) -> None:
        self.kernels = kernels
        self.plan = plan
        self.max_level = max_level_embeddings
        self.capacity = 2 * first_chunk + min(max_level_embeddings, 4 * first_chunk)
        self.vids = kernels.empty(self.capacity, np.int32)
        self.parents = kernels.empty(self.capacity, np.int32)
        self.totals = [0] * len(plan.outputs)  # Python ints: sums cannot overflow
        self.level_embeddings = [0] * (plan.k - 1)
        self.peak_entries = 0
        self.chunks = 0

    def mine_chunk(self, src: np.ndarray, dst: np.ndarray) -> None:
        size = len(src)
        self._reserve(2 * size)
        self.kernels.copy_into(self.vids, self.kernels.to_device(np.concatenate([src, dst]).astype(np.int32)), 2 * size)
        self.kernels.copy_into(self.parents, self.kernels.to_device(np.concatenate(
            [np.zeros(size, np.int32), np.arange(size, dtype=np.int32)])), 2 * size)
        self.chunks += 1
        for level in (0, 1):
            self.level_embeddings[level] = max(self.level_embeddings[level], size)
        self._note_live(2 * size)
        self._expand(size, 2 * size, 2, 2 * size)

    def _expand(self, lo: int, hi: int, n: int, top: int) -> None:
        """Extend the embeddings of n vertices at buffer entries lo..hi-1; entries from `top` on are free."""
        if hi == lo:
            return
        kernels = self.kernels
        if n == self.plan.k - 1:
            found = kernels.to_host(kernels.count_last(self.vids, self.parents, lo, hi, n))
            self.totals = [total + int(c) for total, c in zip(self.totals, found)]
            return
        counts = kernels.count_level(self.vids, self.parents, lo, hi, n)
        offsets, total = kernels.exclusive_scan(counts)
        if total > self.max_level and hi - lo > 1:
            del counts, offsets
            middle = (lo + hi) // 2
            self._expand(lo, middle, n, top)
            self._expand(middle, hi, n, top)
            return
        self._reserve(top + total)
        kernels.write_level(self.vids, self.parents, lo, hi, n, offsets, top)
        del counts, offsets
        self.level_embeddings[n] = max(self.level_embeddings[n], total)
        self._note_live(top + total)
        self._expand(top, top + total, n + 1, top + total)

    def _reserve(self, entries: int) -> None:
        if entries > MAX_BUFFER_ENTRIES:
            raise MemoryError(f"embedding list of {entries} entries passes the int32 parent index; "
                              "lower max_level_embeddings or chunk_edges")
        if entries <= self.capacity:
            return
        capacity = min(MAX_BUFFER_ENTRIES, max(entries, 2 * self.capacity))
        vids, parents = self.kernels.empty(capacity, np.int32), self.kernels.empty(capacity, np.int32)
        self.kernels.copy_into(vids, self.vids, self.capacity)
        self.kernels.copy_into(parents, self.parents, self.capacity)
        self.vids, self.parents, self.capacity = vids, parents, capacity

    def _note_live(self, entries: int) -> None:
        self.peak_entries = max(self.peak_entries, entries)
