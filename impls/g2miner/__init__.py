"""G2Miner: graph pattern mining with kernels generated from search plans.

The user names a pattern (or writes its edge list); the analyser builds a
search plan (`plan`), and a backend generates and runs a kernel for it:

- "cpu": numba (`impls.g2miner.cpu`);
- "opencl": OpenCL C on pyopencl (`impls.g2miner.opencl`);
- "gpu": CUDA C on cupy (`impls.g2miner.gpu`).

Problems: `count`, `triangles`, `cliques`, `motifs`, `fsm`.  Every function
takes `backend=`; multi-device runs go through `impls.g2miner.partition`.
Arguments of the wrong type (a pattern of None, k=4.0, a backend that is not a
name) are refused with a ValueError naming the parameter.
"""

from __future__ import annotations

import numbers
from typing import Iterable, Sequence

import numpy as np

from impls.g2miner import pattern as patterns
from impls.g2miner.analyser import SearchPlan
from impls.g2miner.analyser import plan as _plan
from impls.g2miner import fsm as _fsm
from impls.g2miner import motifs as _motifs
from impls.g2miner.fsm import FrequentPattern
from impls.g2miner.pattern import Pattern
from impls.g2miner.dispatch import BACKENDS, count_plan
from workloads.graphs import CSRGraph
from workloads.limits import quote

CLIQUE_SIZES = range(4, 9)

__all__ = ["BACKENDS", "CLIQUE_SIZES", "FrequentPattern", "Pattern", "SearchPlan", "cliques", "count", "fsm",
           "motifs", "plan", "triangles"]


def plan(pattern: "str | Pattern | Iterable[Sequence[int]]", induced: bool = False) -> SearchPlan:
    """The search plan for a named pattern, a Pattern or an edge list; `print` it to read it."""
    if pattern is None:
        raise ValueError("pattern must be a pattern name, a Pattern or an edge list, not None")
    if not (isinstance(induced, (bool, np.bool_)) or (isinstance(induced, numbers.Integral) and induced in (0, 1))):
        raise ValueError(f"induced must be True or False, not {quote(induced)}")
    return _plan(patterns.get(pattern), bool(induced))


def count(graph: CSRGraph, pattern: "str | Pattern | Iterable[Sequence[int]]", backend: str = "cpu",
          induced: bool = False) -> int:
    """Subgraphs of `graph` matching `pattern`: edge-induced by default, vertex-induced when `induced`."""
    _check_graph_and_backend(graph, backend)
    return count_plan(graph, plan(pattern, induced), backend)


def triangles(graph: CSRGraph, backend: str = "cpu") -> int:
    """Triangle count (TC)."""
    return count(graph, "triangle", backend)


def cliques(graph: CSRGraph, k: int, backend: str = "cpu") -> int:
    """k-clique count (k-CL), k = 4..8."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k not in CLIQUE_SIZES:
        raise ValueError(f"k={quote(k)} is outside the supported clique sizes "
                         f"{CLIQUE_SIZES.start}..{CLIQUE_SIZES.stop - 1} (an integer)")
    return count(graph, patterns.clique(int(k)), backend)


def motifs(graph: CSRGraph, k: int, backend: str = "cpu") -> dict[str, int]:
    """Vertex-induced counts of every connected k-vertex pattern (k = 3, 4), by pattern name."""
    _check_graph_and_backend(graph, backend)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise ValueError(f"motif size k must be an integer (3 or 4), not {quote(k)}")
    return _motifs.motifs(graph, int(k), backend)


def fsm(graph: CSRGraph, support: int, max_edges: int = 2, backend: str = "cpu") -> list[FrequentPattern]:
    """Frequent labelled patterns of up to `max_edges` edges (see `impls.g2miner.fsm.fsm`)."""
    _check_graph_and_backend(graph, backend)
    if isinstance(max_edges, bool) or not isinstance(max_edges, numbers.Integral):
        raise ValueError(f"max_edges must be an integer (1 or 2), not {quote(max_edges)}")
    return _fsm.fsm(graph, support, int(max_edges), backend)


def _check_graph_and_backend(graph: object, backend: object) -> None:
    if not isinstance(graph, CSRGraph):
        raise ValueError(f"graph must be a CSRGraph (workloads.graphs), not {type(graph).__name__}")
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {quote(backend)}")
