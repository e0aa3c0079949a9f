"""A Pangolin-style BFS graph pattern miner: the baseline G2Miner is compared with.

Level-by-level BFS over an embedding list (per level: vertex ids and parent
indices), two passes per level (count, prefix-sum, write), canonicality and
symmetry-breaking filters, initial edges in chunks.  See README.md for what it
does and does not do compared with Pangolin.

Every function takes `backend="cpu"` (numba) or `"gpu"` (cupy, imported only
when asked for) and returns a `BFSResult` (counts and embedding-list memory).
`miner(graph, plan, backend)` separates the preprocessing from the mining, for timing.
"""

from __future__ import annotations

from typing import Any

from baselines.pangolin_bfs.engine import BFSResult, Miner
from baselines.pangolin_bfs.plans import (MAX_CLIQUE, MIN_CLIQUE, MOTIF_NAMES, ExtensionPlan, clique_plan,
                                          motif_plan, pattern_plan)
from workloads.graphs import CSRGraph

BACKENDS = ("cpu", "gpu")
DEFAULT_CHUNK_EDGES = 1 << 20
DEFAULT_MAX_LEVEL_EMBEDDINGS = {"cpu": 1 << 26, "gpu": 1 << 28}

__all__ = ["BFSResult", "ExtensionPlan", "BACKENDS", "MOTIF_NAMES", "MIN_CLIQUE", "MAX_CLIQUE", "Miner",
           "miner", "mine", "pattern_plan", "clique_plan", "motif_plan", "count", "triangles", "cliques", "motifs"]


def _kernels_factory(backend: str) -> Any:
    if backend == "cpu":
        from baselines.pangolin_bfs.cpu import CpuKernels
        return CpuKernels
    if backend == "gpu":
        from baselines.pangolin_bfs.gpu import GpuKernels
        return GpuKernels
    raise ValueError(f"unknown backend {backend!r} for pangolin_bfs; choose one of {', '.join(BACKENDS)}")


def miner(graph: CSRGraph, plan: ExtensionPlan, backend: str = "cpu", chunk_edges: int = DEFAULT_CHUNK_EDGES,
          max_level_embeddings: int | None = None) -> Miner:
    """Preprocess `graph` (undirected) for `plan` on `backend`; the returned Miner's `run()` mines."""
    if not isinstance(graph, CSRGraph):
        raise ValueError(f"graph must be a workloads.graphs.CSRGraph, not {type(graph).__name__}")
    factory = _kernels_factory(backend)
    budget = max_level_embeddings or DEFAULT_MAX_LEVEL_EMBEDDINGS[backend]
    return Miner(graph, plan, factory, chunk_edges, budget)


def mine(graph: CSRGraph, plan: ExtensionPlan, backend: str = "cpu", **options: Any) -> BFSResult:
    """Run one extension plan over `graph` on `backend` (options: chunk_edges, max_level_embeddings)."""
    return miner(graph, plan, backend, **options).run()


def count(graph: CSRGraph, pattern: str, backend: str = "cpu", induced: bool = False, **options: Any) -> BFSResult:
    """Count `pattern`: "triangle", "k-clique", "4-cycle"/"rectangle", "diamond".

    Edge-induced by default (as G2Miner's SL); `induced=True` takes the
    vertex-induced count from the motif census of the pattern's size.
    """
    if induced:
        name = "4-cycle" if pattern == "rectangle" else pattern
        if name == "triangle" or name.endswith("-clique"):  # cliques: vertex- and edge-induced alike
            return mine(graph, pattern_plan(name), backend, **options)
        for k, names in MOTIF_NAMES.items():
            if name in names:
                census = motifs(graph, k, backend, **options)
                return BFSResult({name: census.counts[name]}, census.level_embeddings, census.peak_bytes,
                                 census.chunks)
        raise ValueError(f"pattern {pattern!r}: pangolin_bfs counts induced patterns only of "
                         f"{', '.join(n for names in MOTIF_NAMES.values() for n in names)} or k-cliques")
    return mine(graph, pattern_plan(pattern), backend, **options)


def triangles(graph: CSRGraph, backend: str = "cpu", **options: Any) -> BFSResult:
    """Triangle count, on the degree-ordered DAG."""
    return mine(graph, clique_plan(3), backend, **options)


def cliques(graph: CSRGraph, k: int, backend: str = "cpu", **options: Any) -> BFSResult:
    """k-clique count (k = 3..8), on the degree-ordered DAG."""
    return mine(graph, clique_plan(k), backend, **options)


def motifs(graph: CSRGraph, k: int, backend: str = "cpu", **options: Any) -> BFSResult:
    """Vertex-induced k-motif census (k = 3 or 4): counts by pattern name."""
    return mine(graph, motif_plan(k), backend, **options)
