"""k-motif counting (k = 3, 4): vertex-induced counts of every connected k-vertex pattern.

Only the patterns that need a search run a generated kernel; the rest follow
exactly from degrees and those counts:

- k = 3: open wedges = Σ C(d, 2) − 3·triangles.
- k = 4: the kernels count 4-cliques, and edge-induced diamonds, 4-cycles and
  tailed triangles; edge-induced 3-stars are Σ C(d, 3) and edge-induced 4-paths
  Σ over edges (d(u) − 1)(d(v) − 1) − 3·triangles.  Each edge-induced count is
  the sum, over the vertex-induced patterns, of how many copies of it each one
  contains (e.g. a 4-clique holds 6 diamonds and 3 4-cycles), a triangular
  system that is solved from the densest pattern down.
"""

from __future__ import annotations

import numpy as np

from impls.g2miner import pattern as patterns
from impls.g2miner.analyser import plan
from impls.g2miner.dispatch import check_backend, count_plan
from workloads.graphs import CSRGraph

MOTIF_SIZES = (3, 4)
MOTIF_NAMES = {3: ("wedge", "triangle"),
               4: ("4-path", "3-star", "4-cycle", "tailed-triangle", "diamond", "4-clique")}


def motifs(graph: CSRGraph, k: int, backend: str = "cpu") -> dict[str, int]:
    """Vertex-induced counts of every connected k-vertex pattern, by pattern name."""
    if k not in MOTIF_SIZES:
        raise ValueError(f"motif size k={k} is not supported; choose one of {MOTIF_SIZES}")
    check_backend(backend)

    def edge_induced(name: str) -> int:
        return count_plan(graph, plan(patterns.get(name), False), backend)

    degrees = graph.degrees.astype(np.int64)
    if graph.max_degree >= 2**20:
        raise OverflowError(f"graph {graph.name!r}: degree {graph.max_degree} is too large for 64-bit motif formulas")
    triangles = edge_induced("triangle")
    wedges = _exact_sum(degrees * (degrees - 1) // 2, "wedges")
    if k == 3:
        return {"wedge": wedges - 3 * triangles, "triangle": triangles}

    src, dst = graph.undirected_edges()
    paths = _exact_sum((degrees[src] - 1) * (degrees[dst] - 1), "4-paths") - 3 * triangles
    stars = _exact_sum(degrees * (degrees - 1) * (degrees - 2) // 6, "3-stars")
    clique = edge_induced("4-clique")
    diamond = edge_induced("diamond") - 6 * clique
    cycle = edge_induced("4-cycle") - diamond - 3 * clique
    tailed = edge_induced("tailed-triangle") - 4 * diamond - 12 * clique
    star = stars - tailed - 2 * diamond - 4 * clique
    path = paths - 2 * tailed - 4 * cycle - 6 * diamond - 12 * clique
    return {"4-path": path, "3-star": star, "4-cycle": cycle, "tailed-triangle": tailed,
            "diamond": diamond, "4-clique": clique}


def _exact_sum(terms: np.ndarray, what: str) -> int:
    """Σ terms in int64, refusing a sum that a float estimate shows would overflow."""
    if float(np.sum(terms, dtype=np.float64)) >= 2.0**62:
        raise OverflowError(f"the number of {what} does not fit 64 bits")
    return int(np.sum(terms, dtype=np.int64))
