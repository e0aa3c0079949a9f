"""Turning a graph into what a plan's kernel walks: CSR arrays plus an edge list.

- Clique plans run on a degree-ordered DAG, over every arc.
- Other plans run on the graph relabelled by ascending degree, so that the
  symmetry bounds (`v_j < v_i`) put the high-degree vertices at the top
  levels and cut the long adjacency lists short; over each edge once
  (`halved`, v1 < v0) or in both directions (`full`), as the plan says.

Preparation is cached per graph object (weakly: it goes when the graph goes).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from impls.g2miner.analyser import SearchPlan
from workloads.graphs import CSRGraph, relabel_by_degree


@dataclass(frozen=True)
class PreparedGraph:
    """CSR arrays and the edge list (src, dst int32) a kernel iterates over."""

    indptr: np.ndarray
    indices: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    max_degree: int
    mode: str
    # False for a part of the edge list: kernels that aggregate over a whole
    # neighbourhood (the twin aggregation) need every edge of it.
    complete: bool = True

    @property
    def num_edges(self) -> int:
        return len(self.src)

    @property
    def num_vertices(self) -> int:
        return len(self.indptr) - 1

    def subset(self, edge_ids: np.ndarray) -> "PreparedGraph":
        """The same graph with only the listed edges of the edge list to start from."""
        return PreparedGraph(self.indptr, self.indices, self.src[edge_ids], self.dst[edge_ids],
                             self.max_degree, self.mode, complete=False)


_CACHE: "weakref.WeakKeyDictionary[CSRGraph, dict[str, PreparedGraph]]" = weakref.WeakKeyDictionary()


def check_graph(graph: CSRGraph) -> None:
    """Refuse what no kernel can mine: non-graphs, oriented input, empty graphs."""
    if not isinstance(graph, CSRGraph):
        raise ValueError(f"graph must be a workloads.graphs.CSRGraph, not {type(graph).__name__}")
    if graph.directed:
        raise ValueError(f"graph {graph.name!r} is oriented; pass the undirected graph (orientation is done here)")
    if graph.num_edges == 0:
        raise ValueError(f"graph {graph.name!r} is empty (no edges)")


def prepare(graph: CSRGraph, plan: SearchPlan) -> PreparedGraph:
    """The prepared form of `graph` for `plan` (cached per graph and edge-list mode)."""
    check_graph(graph)
    per_graph = _CACHE.setdefault(graph, {})
    mode = plan.edge_list
    if mode not in per_graph:
        per_graph[mode] = _build(graph, mode)
    return per_graph[mode]


def _build(graph: CSRGraph, mode: str) -> PreparedGraph:
    if mode == "oriented":
        # Rank by descending degree and keep the arcs to lower ranks: a degree
        # orientation (short out-lists) in which every arc points to a lower id,
        # so clique candidates are below every vertex bound so far (see analyser).
        ranked = relabel_by_degree(graph, descending=True)
        src, dst = ranked.arcs()
        keep = dst < src
        src, dst = src[keep], dst[keep]
        indptr = np.zeros(graph.num_vertices + 1, dtype=np.int64)
        np.cumsum(np.bincount(src, minlength=graph.num_vertices), out=indptr[1:])
        indices = np.ascontiguousarray(dst)
    else:
        ranked = relabel_by_degree(graph)
        indptr, indices = ranked.indptr, ranked.indices
        src, dst = ranked.arcs()
        if mode == "halved":
            keep = dst < src
            src, dst = src[keep], dst[keep]
    max_degree = int(np.diff(indptr).max())
    return PreparedGraph(indptr, indices, np.ascontiguousarray(src), np.ascontiguousarray(dst),
                         max(max_degree, 1), mode)
