"""G2Miner: graph pattern mining with kernels generated from search plans.

The user names a pattern (or writes its edge list); the analyser builds a
search plan (`plan`), and a backend generates and runs a kernel for it:

- "cpu": numba (`impls.g2miner.numba_backend`);
- "opencl": OpenCL C on pyopencl (`impls.g2miner.opencl_backend`);
- "gpu": CUDA C on cupy (`impls.g2miner.cuda_backend`).

Problems: `count`, `triangles`, `cliques`, `motifs`, `fsm`.  Every function
takes `backend=`; multi-device runs go through `impls.g2miner.scheduler`.
"""

from __future__ import annotations

from typing import Iterable, Sequence

from impls.g2miner import pattern as patterns
from impls.g2miner.analyser import SearchPlan
from impls.g2miner.analyser import plan as _plan
from impls.g2miner.fsm import FrequentPattern, fsm
from impls.g2miner.motifs import motifs
from impls.g2miner.pattern import Pattern
from impls.g2miner.runner import BACKENDS, count_plan
from workloads.graphs import CSRGraph

CLIQUE_SIZES = range(4, 9)

__all__ = ["BACKENDS", "CLIQUE_SIZES", "FrequentPattern", "Pattern", "SearchPlan", "cliques", "count", "fsm",
           "motifs", "plan", "triangles"]


def plan(pattern: "str | Pattern | Iterable[Sequence[int]]", induced: bool = False) -> SearchPlan:
    """The search plan for a named pattern, a Pattern or an edge list; `print` it to read it."""
    return _plan(patterns.get(pattern), bool(induced))


def count(graph: CSRGraph, pattern: "str | Pattern | Iterable[Sequence[int]]", backend: str = "cpu",
          induced: bool = False) -> int:
    """Subgraphs of `graph` matching `pattern`: edge-induced by default, vertex-induced when `induced`."""
    return count_plan(graph, plan(pattern, induced), backend)


def triangles(graph: CSRGraph, backend: str = "cpu") -> int:
    """Triangle count (TC)."""
    return count(graph, "triangle", backend)


def cliques(graph: CSRGraph, k: int, backend: str = "cpu") -> int:
    """k-clique count (k-CL), k = 4..8."""
    if k not in CLIQUE_SIZES:
        raise ValueError(f"k={k} is outside the supported clique sizes {CLIQUE_SIZES.start}..{CLIQUE_SIZES.stop - 1}")
    return count(graph, patterns.clique(k), backend)
