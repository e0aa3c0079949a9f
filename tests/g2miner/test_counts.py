"""Counts from generated kernels: citeseer ground truth, identities, brute force on fresh random graphs.

Every test runs on each backend CI has: numba ("cpu") and OpenCL on PoCL ("opencl").
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from impls import g2miner
from impls.g2miner import pattern as patterns
from workloads.graphs import orient_by_degree

from tests.g2miner.conftest import CI_BACKENDS, fresh_seed, random_graph

EDGE_INDUCED_TRUTH = {"triangle": 1166, "4-clique": 255, "5-clique": 46, "4-cycle": 6059, "diamond": 3730}
MOTIF_TRUTH = {3: {"wedge": 23380, "triangle": 1166},
               4: {"4-path": 111153, "3-star": 222630, "4-cycle": 3094, "tailed-triangle": 22900,
                   "diamond": 2200, "4-clique": 255}}
# A user pattern given only as an edge list: a triangle with two tails on one vertex.
USER_PATTERN = [(0, 1), (1, 2), (2, 0), (0, 3), (0, 4)]
# Kernels PoCL builds in seconds; the 5-vertex vertex-induced ones take a minute or more each there
# and run on numba only.
OPENCL_PATTERNS = ["triangle", "4-path", "3-star", "4-cycle", "tailed-triangle", "diamond", "4-clique"]
OPENCL_EDGE_INDUCED_PATTERNS = OPENCL_PATTERNS + ["house", "pentagon", "user"]


def brute_force(reference: nx.Graph, pattern: patterns.Pattern, induced: bool) -> int:
    """Subgraph count by networkx matching, divided by the pattern's automorphisms."""
    small = nx.Graph(pattern.edges)
    automorphisms = sum(1 for _ in nx.isomorphism.GraphMatcher(small, small).isomorphisms_iter())
    matcher = nx.isomorphism.GraphMatcher(reference, small)
    matches = matcher.subgraph_isomorphisms_iter() if induced else matcher.subgraph_monomorphisms_iter()
    return sum(1 for _ in matches) // automorphisms


@pytest.mark.parametrize("backend", CI_BACKENDS)
def test_citeseer_edge_induced_counts(citeseer, backend):
    assert g2miner.triangles(citeseer, backend=backend) == 1166
    assert g2miner.cliques(citeseer, 4, backend=backend) == 255
    assert g2miner.cliques(citeseer, 5, backend=backend) == 46
    for name in ("4-cycle", "rectangle", "diamond"):
        expected = EDGE_INDUCED_TRUTH[patterns.get(name).name]
        assert g2miner.count(citeseer, name, backend=backend) == expected, name


@pytest.mark.parametrize("backend", CI_BACKENDS)
@pytest.mark.parametrize("k", [3, 4])
def test_citeseer_motifs(citeseer, backend, k):
    assert g2miner.motifs(citeseer, k, backend=backend) == MOTIF_TRUTH[k]


def test_citeseer_induced_counts_match_motifs(citeseer):
    for name, expected in MOTIF_TRUTH[4].items():
        assert g2miner.count(citeseer, name, induced=True) == expected, name


@pytest.mark.parametrize("backend", CI_BACKENDS)
def test_citeseer_identities(citeseer, backend):
    def c(name: str, induced: bool) -> int:
        return g2miner.count(citeseer, name, backend=backend, induced=induced)

    cliques4 = c("4-clique", False)
    assert c("4-cycle", False) == c("4-cycle", True) + c("diamond", True) + 3 * cliques4
    assert c("diamond", False) == c("diamond", True) + 6 * cliques4


@pytest.mark.parametrize("induced", [False, True])
@pytest.mark.parametrize("name", sorted(patterns.LIBRARY) + ["user"])
def test_random_graphs_match_brute_force_cpu(name, induced):
    pattern = patterns.get(USER_PATTERN if name == "user" else name)
    for _ in range(2):
        seed = fresh_seed()
        graph, reference = random_graph(seed)
        expected = brute_force(reference, pattern, induced)
        assert g2miner.count(graph, pattern, induced=induced) == expected, f"seed {seed}"


@pytest.mark.parametrize("backend", CI_BACKENDS[1:])
@pytest.mark.parametrize("induced", [False, True])
def test_random_graphs_match_brute_force_opencl(backend, induced):
    seed = fresh_seed()
    graph, reference = random_graph(seed, num_vertices=20)
    for name in OPENCL_PATTERNS if induced else OPENCL_EDGE_INDUCED_PATTERNS:
        pattern = patterns.get(USER_PATTERN if name == "user" else name)
        expected = brute_force(reference, pattern, induced)
        assert g2miner.count(graph, pattern, backend=backend, induced=induced) == expected, f"{name}, seed {seed}"


@pytest.mark.parametrize("backend", CI_BACKENDS[1:])
def test_opencl_twin_and_dfs_kernels_agree(backend):
    """A whole edge list takes the twin kernel, a part of one the DFS: both equal brute force."""
    from impls.g2miner import opencl
    from impls.g2miner.prepare import prepare

    seed = fresh_seed()
    graph, reference = random_graph(seed, num_vertices=40, density=0.3)
    pattern = patterns.get("4-cycle")
    plan = g2miner.plan(pattern)
    expected = brute_force(reference, pattern, induced=False)
    prepared = prepare(graph, plan)
    assert plan.twin_aggregate is not None and prepared.complete
    assert opencl.count(plan, prepared) == expected, f"twin, seed {seed}"
    assert opencl.count(plan, prepared.subset(np.arange(prepared.num_edges))) == expected, f"DFS, seed {seed}"


@pytest.mark.parametrize("backend", CI_BACKENDS)
def test_large_cliques_match_networkx(backend):
    seed = fresh_seed()
    graph, reference = random_graph(seed, num_vertices=22, density=0.7)
    by_size: dict[int, int] = {}
    for clique in nx.enumerate_all_cliques(reference):
        by_size[len(clique)] = by_size.get(len(clique), 0) + 1
    # PoCL takes minutes to build the deepest clique kernels; nvcc compiles them all (test_cuda_source).
    sizes = [4, 5, 6, 7, 8] if backend == "cpu" else [4, 5]
    for k in sizes:
        assert g2miner.cliques(graph, k, backend=backend) == by_size.get(k, 0), f"k={k}, seed {seed}"


def test_bad_arguments_are_refused(citeseer):
    with pytest.raises(ValueError, match="backend must be one of .*, not 'tpu'"):
        g2miner.count(citeseer, "triangle", backend="tpu")
    with pytest.raises(ValueError, match="oriented"):
        g2miner.triangles(orient_by_degree(citeseer))
    with pytest.raises(ValueError, match="CSRGraph"):
        g2miner.triangles([[0, 1]])
    with pytest.raises(ValueError, match="motif size k=5"):
        g2miner.motifs(citeseer, 5)


@pytest.mark.parametrize("name", ["4-cycle", "diamond", "house", "5-clique"])
def test_parallel_serial_and_twin_kernels_agree(monkeypatch, name):
    """Small inputs take the serial kernels; force the parallel ones too, and the DFS beside the twin aggregation."""
    from impls.g2miner import cpu
    from impls.g2miner.prepare import prepare

    seed = fresh_seed()
    graph, reference = random_graph(seed, num_vertices=30, density=0.3)
    pattern = patterns.get(name)
    plan = g2miner.plan(pattern)
    expected = brute_force(reference, pattern, induced=False)
    prepared = prepare(graph, plan)
    whole_as_part = prepared.subset(np.arange(prepared.num_edges))  # not `complete`: no twin aggregation
    assert cpu.count(plan, prepared) == expected, f"serial, seed {seed}"
    assert cpu.count(plan, whole_as_part) == expected, f"serial DFS, seed {seed}"
    monkeypatch.setattr(cpu, "SERIAL_BELOW", 0)
    assert cpu.count(plan, prepared) == expected, f"parallel, seed {seed}"
    assert cpu.count(plan, whole_as_part) == expected, f"parallel DFS, seed {seed}"


def test_kron12_ground_truth_matches_dense_reference():
    """The quick tier's kron12 counts, recomputed with adjacency-matrix algebra (no miner involved)."""
    from workloads import catalog
    from workloads.graphs.named import KRON12_GROUND_TRUTH

    graph = catalog.load("kron12")
    n = graph.num_vertices
    adjacency = np.zeros((n, n), np.float32)
    adjacency[np.repeat(np.arange(n), np.diff(graph.indptr)), graph.indices] = 1
    codegree = (adjacency @ adjacency).astype(np.int64)  # exact: entries stay below 2^24
    on_edges = codegree[adjacency == 1]  # per ordered edge
    np.fill_diagonal(codegree, 0)
    linked = adjacency.astype(bool)
    cliques4 = 0
    for u, v in zip(*np.nonzero(np.triu(linked))):
        common = np.flatnonzero(linked[u] & linked[v])
        cliques4 += int(adjacency[np.ix_(common, common)].sum()) // 2  # edges inside N(u) ∩ N(v)
    assert KRON12_GROUND_TRUTH == {
        "triangle": int(on_edges.sum()) // 6,
        "4-clique": cliques4 // 6,  # each 4-clique: each of its 6 edges sees the opposite edge
        "4-cycle": int((codegree * (codegree - 1) // 2).sum()) // 4,  # 2 diagonals, each pair ordered twice
        "diamond": int((on_edges * (on_edges - 1) // 2).sum()) // 2,
    }
    assert g2miner.count(graph, "4-cycle") == KRON12_GROUND_TRUTH["4-cycle"]


def test_set_operations_match_numpy():
    """Merge and galloping paths of the set library, against numpy, on lists of very different lengths."""
    from impls.g2miner import setops

    rng = np.random.default_rng(fresh_seed())
    for _ in range(200):
        a = np.unique(rng.integers(0, 500, rng.integers(0, 40))).astype(np.int32)
        b = np.unique(rng.integers(0, 500, rng.integers(0, 400))).astype(np.int32)
        bound = int(rng.integers(0, 520))
        expected = np.intersect1d(a, b)
        expected = expected[expected < bound]
        out = np.empty(len(a) + len(b), np.int32)
        assert np.array_equal(out[:setops.intersect(a, b, bound, out)], expected)
        assert setops.intersect_count(b, a, bound) == len(expected)
