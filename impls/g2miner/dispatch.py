"""Backend dispatch: one entry point that runs a plan's generated kernel on a prepared graph."""

from __future__ import annotations

import importlib

from impls.g2miner.analyser import SearchPlan
from impls.g2miner.prepare import PreparedGraph, prepare
from workloads.graphs import CSRGraph

# backend name -> module with `count(plan, prepared_graph) -> int`; imported on first use,
# so pyopencl and cupy stay optional.
_MODULES = {"cpu": "impls.g2miner.cpu",
            "opencl": "impls.g2miner.opencl",
            "gpu": "impls.g2miner.gpu"}
BACKENDS = tuple(_MODULES)


def check_backend(backend: str) -> None:
    if backend not in _MODULES:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def count_prepared(plan: SearchPlan, graph: PreparedGraph, backend: str) -> int:
    """The plan's count over `graph`'s edge list on `backend`."""
    check_backend(backend)
    return importlib.import_module(_MODULES[backend]).count(plan, graph)


def count_plan(graph: CSRGraph, plan: SearchPlan, backend: str = "cpu") -> int:
    """Prepare `graph` for `plan` and count on `backend`."""
    check_backend(backend)
    return count_prepared(plan, prepare(graph, plan), backend)
