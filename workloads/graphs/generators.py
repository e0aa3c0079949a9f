"""Seeded synthetic graphs: Graph500 Kronecker ("kron") and uniform random ("urand").

Both are vectorised numpy and deterministic for a given seed, so a named
workload is the same graph on every machine.
"""

from __future__ import annotations

import numpy as np

from workloads.graphs.csr import CSRGraph, from_edges

GRAPH500_A, GRAPH500_B, GRAPH500_C = 0.57, 0.19, 0.19  # D = 1 - A - B - C = 0.05


def kron(scale: int, edge_factor: int = 16, seed: int = 27491095, name: str | None = None) -> CSRGraph:
    """A Graph500 Kronecker graph with 2**scale vertices.

    Draws edge_factor * 2**scale edges by recursive quadrant choice
    (A = 0.57, B = C = 0.19, D = 0.05), permutes vertex ids at random (as
    Graph500 and GAP do, so ids carry no degree information), then symmetrises
    and removes self loops and duplicates.  Isolated vertices are kept.
    """
    if not 1 <= scale <= 30:
        raise ValueError(f"kron: scale must lie in 1..30, not {scale}")
    if edge_factor < 1:
        raise ValueError(f"kron: edge_factor must be at least 1, not {edge_factor}")
    rng = np.random.default_rng(seed)
    num_vertices = 1 << scale
    num_draws = edge_factor * num_vertices
    src = np.zeros(num_draws, dtype=np.int32)
    dst = np.zeros(num_draws, dtype=np.int32)
    a_given_top = GRAPH500_A / (GRAPH500_A + GRAPH500_B)
    c_given_bottom = GRAPH500_C / (1.0 - GRAPH500_A - GRAPH500_B)
    for bit in range(scale):
        # Choose the row half first (bottom with probability C + D), then the
        # column half conditioned on it; this gives each quadrant its probability.
        bottom = rng.random(num_draws, dtype=np.float32) > (GRAPH500_A + GRAPH500_B)
        right_threshold = np.where(bottom, np.float32(c_given_bottom), np.float32(a_given_top))
        right = rng.random(num_draws, dtype=np.float32) > right_threshold
        src |= bottom.astype(np.int32) << bit
        dst |= right.astype(np.int32) << bit
    permutation = rng.permutation(num_vertices).astype(np.int32)
    return from_edges(permutation[src], permutation[dst], num_vertices,
                      name=name or f"kron{scale}" + ("" if edge_factor == 16 else f"-ef{edge_factor}"))


def urand(num_vertices: int, avg_degree: float, seed: int = 27491095, name: str | None = None) -> CSRGraph:
    """A uniform random (Erdős–Rényi style) graph of about `avg_degree` average degree.

    Draws num_vertices * avg_degree / 2 vertex pairs uniformly, then symmetrises
    and removes self loops and duplicates (a negligible loss on sparse graphs).
    """
    if num_vertices < 2:
        raise ValueError(f"urand: num_vertices must be at least 2, not {num_vertices}")
    if avg_degree <= 0:
        raise ValueError(f"urand: avg_degree must be positive, not {avg_degree}")
    rng = np.random.default_rng(seed)
    num_draws = max(1, round(num_vertices * avg_degree / 2))
    src = rng.integers(0, num_vertices, num_draws, dtype=np.int64)
    dst = rng.integers(0, num_vertices, num_draws, dtype=np.int64)
    return from_edges(src, dst, num_vertices, name=name or f"urand-{num_vertices}-d{avg_degree:g}")
