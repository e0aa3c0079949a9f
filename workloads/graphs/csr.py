"""The CSR graph type and the preprocessing that builds clean graphs.

Every graph the project mines is simple: symmetric adjacency, no self loops, no
duplicate edges, each adjacency list sorted ascending (set operations and
binary searches rely on it).  `from_edges` is the one constructor that turns
raw edge arrays into such a graph; loaders and generators all go through it.

Orientation (`orient_by_degree`) gives a `CSRGraph` with `directed=True`: the
same type, so every kernel reads it the same way, but each undirected edge
appears once, as the arc from its lower-ranked to its higher-ranked end.

Sparse vertex ids (SNAP files with gaps, ids up to 2^63 - 1) are compacted:
memory follows the edges, never the largest id, and `original_ids` keeps the
id each vertex had, so results can name it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class CSRGraph:
    """A graph in compressed sparse row form.

    - `indptr`: int64, |V|+1 row pointers; row v is `indices[indptr[v]:indptr[v+1]]`.
    - `indices`: int32 column ids, sorted ascending within each row.
    - `vlabels`: optional uint8 vertex labels (FSM), one per vertex.
    - `directed`: False for a symmetric (undirected) graph; True for an oriented DAG
      made by `orient_by_degree`, where each undirected edge is stored once.
    - `original_ids`: int64, the id vertex v had in its file or source graph
      (`original_ids[v]`), when vertices were renumbered (sparse ids compacted,
      `relabel_by_degree`); None when vertex v is id v.
    """

    indptr: np.ndarray
    indices: np.ndarray
    vlabels: np.ndarray | None = None
    name: str = "graph"
    directed: bool = False
    original_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.indptr.dtype != np.int64 or self.indptr.ndim != 1 or len(self.indptr) < 1:
            raise ValueError(f"graph {self.name!r}: indptr must be a 1-D int64 array of |V|+1 entries")
        if self.indices.dtype != np.int32 or self.indices.ndim != 1:
            raise ValueError(f"graph {self.name!r}: indices must be a 1-D int32 array")
        if self.indptr[0] != 0 or self.indptr[-1] != len(self.indices):
            raise ValueError(f"graph {self.name!r}: indptr must start at 0 and end at len(indices)"
                             f" ({len(self.indices)}), not {self.indptr[0]}..{self.indptr[-1]}")
        if self.vlabels is not None and (self.vlabels.dtype != np.uint8 or self.vlabels.shape != (self.num_vertices,)):
            raise ValueError(f"graph {self.name!r}: vlabels must be a uint8 array of {self.num_vertices} labels")
        if self.original_ids is not None and (self.original_ids.dtype != np.int64
                                              or self.original_ids.shape != (self.num_vertices,)):
            raise ValueError(f"graph {self.name!r}: original_ids must be an int64 array of {self.num_vertices} ids")

    @property
    def num_vertices(self) -> int:
        return len(self.indptr) - 1

    @property
    def num_arcs(self) -> int:
        """Stored adjacency entries (twice the edges of an undirected graph)."""
        return len(self.indices)

    @property
    def num_edges(self) -> int:
        """Undirected edges (each stored twice when undirected, once when oriented)."""
        return self.num_arcs if self.directed else self.num_arcs // 2

    @functools.cached_property
    def degrees(self) -> np.ndarray:
        """Out-degree of every vertex (the degree, for an undirected graph), int64."""
        return np.diff(self.indptr)

    @property
    def max_degree(self) -> int:
        return int(self.degrees.max()) if self.num_vertices else 0

    def neighbors(self, v: int) -> np.ndarray:
        """The sorted (out-)neighbours of vertex `v`."""
        if not 0 <= v < self.num_vertices:
            raise ValueError(f"graph {self.name!r}: vertex {v} is outside 0..{self.num_vertices - 1}")
        return self.indices[self.indptr[v]:self.indptr[v + 1]]

    def arcs(self) -> tuple[np.ndarray, np.ndarray]:
        """Every stored adjacency entry as (src int32, dst int32) arrays, in CSR order."""
        src = np.repeat(np.arange(self.num_vertices, dtype=np.int32), self.degrees)
        return src, self.indices

    def undirected_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """Each undirected edge once: (u, v) with u < v for an undirected graph, every arc when oriented."""
        src, dst = self.arcs()
        if self.directed:
            return src, dst
        keep = src < dst
        return src[keep], dst[keep]

    def __repr__(self) -> str:
        kind = "DAG" if self.directed else "undirected"
        labels = ", labelled" if self.vlabels is not None else ""
        return (f"CSRGraph({self.name!r}, {kind}{labels}, |V|={self.num_vertices}, "
                f"|E|={self.num_edges}, max degree={self.max_degree})")


# Below this many ids, max id + 1 vertices cost at most 8 MB of row pointers, so
# ids are kept as given even when some are on no edge (small hand-written files
# keep their numbering); above it, an id space larger than the number of edge
# endpoints is compacted.
DENSE_ID_LIMIT = 1 << 20


def from_edges(src: np.ndarray, dst: np.ndarray, num_vertices: int | None = None,
               vlabels: np.ndarray | None = None, name: str = "graph") -> CSRGraph:
    """A clean undirected graph from raw edge arrays.

    Symmetrises (each (u, v) also gives (v, u)), drops self loops and duplicates,
    and sorts every adjacency list.  Ids must lie in 0..num_vertices-1.  When
    `num_vertices` is not given, it is len(vlabels) for a labelled graph, else
    max id + 1, unless that id space is sparse (larger than `DENSE_ID_LIMIT` and
    than the number of edge endpoints): then the ids that occur are renumbered
    0..n-1 in ascending order, vertices on no edge are not kept, and the graph's
    `original_ids` maps each vertex back.  A graph with no edge left is refused.
    """
    src = np.asarray(src)
    dst = np.asarray(dst)
    if src.shape != dst.shape or src.ndim != 1:
        raise ValueError(f"graph {name!r}: src and dst must be 1-D arrays of one length, "
                         f"not {src.shape} and {dst.shape}")
    if not (np.issubdtype(src.dtype, np.integer) and np.issubdtype(dst.dtype, np.integer)):
        raise ValueError(f"graph {name!r}: vertex ids must be integers, not {src.dtype}/{dst.dtype}")
    if len(src) == 0:
        raise ValueError(f"graph {name!r}: empty graph (no edges)")
    labels = None if vlabels is None else _labels(vlabels, name)
    lowest = min(int(src.min()), int(dst.min()))
    highest = max(int(src.max()), int(dst.max()))
    if lowest < 0:
        raise ValueError(f"graph {name!r}: negative vertex id {lowest}")
    original_ids = None
    if num_vertices is None and labels is not None:
        num_vertices = len(labels)  # one label per vertex: the labels say how many there are
    if num_vertices is None and highest + 1 > max(DENSE_ID_LIMIT, 2 * len(src)):
        src, dst, original_ids = _compact(src, dst)
        num_vertices = len(original_ids)
    elif num_vertices is None:
        num_vertices = highest + 1
    elif highest >= num_vertices:
        raise ValueError(f"graph {name!r}: vertex id {highest} is beyond |V| = {num_vertices}")
    if num_vertices >= 2**31:
        raise ValueError(f"graph {name!r}: {num_vertices} vertices do not fit int32 column ids")

    src = src.astype(np.int64, copy=False)
    dst = dst.astype(np.int64, copy=False)
    loops = src == dst
    if loops.any():
        src, dst = src[~loops], dst[~loops]
    if len(src) == 0:
        raise ValueError(f"graph {name!r}: empty graph (only self loops)")
    # One sorted key per arc, row-major, both directions: sorting and deduplicating
    # the keys gives symmetric, duplicate-free, sorted adjacency in one pass.
    keys = np.concatenate([src * num_vertices + dst, dst * num_vertices + src])
    keys.sort()
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    keys = keys[keep]
    rows = keys // num_vertices
    indices = (keys - rows * num_vertices).astype(np.int32)
    indptr = np.zeros(num_vertices + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=num_vertices), out=indptr[1:])
    if labels is not None and labels.shape != (num_vertices,):
        raise ValueError(f"graph {name!r}: {len(labels)} vertex labels for {num_vertices} vertices")
    return CSRGraph(indptr, indices, labels, name, original_ids=original_ids)


def _labels(vlabels: object, name: str) -> np.ndarray:
    """Vertex labels as uint8, refusing what a cast would silently change (floats, NaN, out of range)."""
    labels = np.asarray(vlabels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"graph {name!r}: vertex labels must be a 1-D array of integers in 0..255, "
                         f"not {labels.dtype} of shape {labels.shape}")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) > 255):
        raise ValueError(f"graph {name!r}: vertex labels must lie in 0..255, "
                         f"not {int(labels.min())}..{int(labels.max())}")
    return labels.astype(np.uint8)


def _compact(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ids renumbered 0..n-1 in ascending order of the ids that occur, and those ids (int64)."""
    ids, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
    return inverse[:len(src)], inverse[len(src):], ids.astype(np.int64)


def relabel_by_degree(graph: CSRGraph, descending: bool = False) -> CSRGraph:
    """The same graph with vertices renumbered by degree (ties by old id).

    Ascending order (the default) makes "lower id" mean "lower degree", so an
    orientation by id equals the orientation by degree.
    """
    _require_undirected(graph, "relabel_by_degree")
    key = -graph.degrees if descending else graph.degrees
    order = np.argsort(key, kind="stable")  # new id -> old id
    new_id = np.empty_like(order)
    new_id[order] = np.arange(graph.num_vertices)
    src, dst = graph.undirected_edges()
    labels = None if graph.vlabels is None else graph.vlabels[order]
    relabelled = from_edges(new_id[src], new_id[dst], graph.num_vertices, labels, graph.name)
    # New vertex v is old vertex order[v], whose own original id may differ from it.
    original_ids = order if graph.original_ids is None else graph.original_ids[order]
    return dataclasses.replace(relabelled, original_ids=original_ids.astype(np.int64))


def orient_by_degree(graph: CSRGraph) -> CSRGraph:
    """The degree-ordered DAG: keep u -> v when deg(u) < deg(v), ties broken by id.

    Returns a `CSRGraph` with `directed=True`; each undirected edge appears once
    and adjacency lists stay sorted.  Cliques are counted on it with no symmetry
    check, and out-degrees are far smaller than degrees on skewed graphs.
    """
    _require_undirected(graph, "orient_by_degree")
    src, dst = graph.arcs()
    deg = graph.degrees
    keep = (deg[src] < deg[dst]) | ((deg[src] == deg[dst]) & (src < dst))
    indptr = np.zeros(graph.num_vertices + 1, dtype=np.int64)
    np.cumsum(np.bincount(src[keep], minlength=graph.num_vertices), out=indptr[1:])
    return CSRGraph(indptr, np.ascontiguousarray(dst[keep]), graph.vlabels, graph.name, directed=True,
                    original_ids=graph.original_ids)


def _require_undirected(graph: CSRGraph, what: str) -> None:
    if graph.directed:
        raise ValueError(f"{what}: graph {graph.name!r} is already oriented; pass the undirected graph")
