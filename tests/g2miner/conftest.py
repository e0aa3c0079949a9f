"""Shared fixtures for the G2Miner tests: citeseer, fresh random graphs, and the backends CI runs."""

from __future__ import annotations

import random
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from workloads.graphs import CSRGraph, from_edges, load

CITESEER = Path(__file__).resolve().parents[2] / "workloads" / "data" / "citeseer" / "graph"


# The backends that run in CI: numba always, OpenCL where pyopencl has a device (PoCL in CI).
CI_BACKENDS = ["cpu", pytest.param("opencl", marks=pytest.mark.opencl)]


@pytest.fixture(scope="session")
def citeseer() -> CSRGraph:
    return load(CITESEER)


def fresh_seed() -> int:
    """A new seed per call (inputs are fresh on every run); tests print it when they fail."""
    return random.SystemRandom().randrange(2**32)


def random_graph(seed: int, num_vertices: int = 18, density: float = 0.35,
                 labels: int | None = None) -> tuple[CSRGraph, nx.Graph]:
    """A G(n, p) graph as a CSRGraph and as networkx (the reference side); never edgeless."""
    rng = np.random.default_rng(seed)
    while True:
        reference = nx.gnp_random_graph(num_vertices, density, seed=int(rng.integers(2**31)))
        if reference.number_of_edges() >= 3:
            break
    src, dst = (np.array(x, dtype=np.int64) for x in zip(*reference.edges()))
    vlabels = rng.integers(0, labels, num_vertices) if labels else None
    if vlabels is not None:
        nx.set_node_attributes(reference, {v: int(vlabels[v]) for v in reference}, "label")
    return from_edges(src, dst, num_vertices, vlabels, name=f"gnp-{seed}"), reference
