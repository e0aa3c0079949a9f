"""baselines.pangolin_bfs: counts against ground truth and brute force, memory bounds, bad input, CUDA."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import baselines.pangolin_bfs as pangolin
from baselines.pangolin_bfs.plans import MOTIF_NAMES
from workloads.graphs import CSRGraph, from_edges, kron, load, orient_by_degree
from workloads.graphs.named import CITESEER_GROUND_TRUTH, CITESEER_PREFIX

MOTIF_TEMPLATES = {
    "wedge": nx.path_graph(3), "triangle": nx.complete_graph(3),
    "4-path": nx.path_graph(4), "3-star": nx.star_graph(3), "4-cycle": nx.cycle_graph(4),
    "tailed-triangle": nx.Graph([(0, 1), (1, 2), (2, 0), (0, 3)]),
    "diamond": nx.Graph([(0, 1), (1, 2), (2, 0), (0, 3), (1, 3)]), "4-clique": nx.complete_graph(4),
}


@pytest.fixture(scope="module")
def citeseer() -> CSRGraph:
    return load(CITESEER_PREFIX)


def all_counts(graph: CSRGraph, backend: str = "cpu", **options) -> dict[str, object]:
    return {
        "triangle": pangolin.triangles(graph, backend, **options).count,
        "4-clique": pangolin.cliques(graph, 4, backend, **options).count,
        "5-clique": pangolin.cliques(graph, 5, backend, **options).count,
        "4-cycle": pangolin.count(graph, "4-cycle", backend, **options).count,
        "diamond": pangolin.count(graph, "diamond", backend, **options).count,
        "3-motifs": pangolin.motifs(graph, 3, backend, **options).counts,
        "4-motifs": pangolin.motifs(graph, 4, backend, **options).counts,
    }


def test_citeseer_ground_truth(citeseer: CSRGraph) -> None:
    counts = all_counts(citeseer)
    assert counts == CITESEER_GROUND_TRUTH
    induced = counts["4-motifs"]
    assert counts["4-cycle"] == induced["4-cycle"] + induced["diamond"] + 3 * induced["4-clique"]
    assert counts["diamond"] == induced["diamond"] + 6 * induced["4-clique"]


def test_parallel_kernels_give_the_same_counts(citeseer: CSRGraph, monkeypatch: pytest.MonkeyPatch) -> None:
    import baselines.pangolin_bfs.cpu as cpu

    monkeypatch.setattr(cpu, "SERIAL_BELOW", 0)  # small levels run serially otherwise
    assert all_counts(citeseer) == CITESEER_GROUND_TRUTH


def brute_force(graph: CSRGraph) -> dict[str, object]:
    """Every count by enumerating vertex subsets of a small graph."""
    g = nx.Graph(list(zip(*(a.tolist() for a in graph.undirected_edges()))))
    g.add_nodes_from(range(graph.num_vertices))
    cliques = {k: 0 for k in (3, 4, 5)}
    for clique in nx.enumerate_all_cliques(g):
        if len(clique) in cliques:
            cliques[len(clique)] += 1
    motifs = {k: dict.fromkeys(names, 0) for k, names in MOTIF_NAMES.items()}
    cycles = diamonds = 0
    for k in (3, 4):
        for nodes in itertools.combinations(range(graph.num_vertices), k):
            sub = g.subgraph(nodes)
            if not nx.is_connected(sub):
                continue
            name = next(n for n in MOTIF_NAMES[k] if nx.is_isomorphic(sub, MOTIF_TEMPLATES[n]))
            motifs[k][name] += 1
            if k == 4:
                a, b, c, d = nodes
                for cycle in ((a, b, c, d), (a, b, d, c), (a, c, b, d)):
                    cycles += all(sub.has_edge(cycle[i], cycle[(i + 1) % 4]) for i in range(4))
                for missing in itertools.combinations(nodes, 2):
                    diamonds += all(sub.has_edge(u, v) for u, v in itertools.combinations(nodes, 2)
                                    if {u, v} != set(missing))
    return {"triangle": cliques[3], "4-clique": cliques[4], "5-clique": cliques[5], "4-cycle": cycles,
            "diamond": diamonds, "3-motifs": motifs[3], "4-motifs": motifs[4]}


def random_graph(seed: int, num_vertices: int, probability: float) -> CSRGraph:
    rng = np.random.default_rng(seed)
    pairs = np.array([(u, v) for u in range(num_vertices) for v in range(u + 1, num_vertices)
                      if rng.random() < probability])
    return from_edges(pairs[:, 0], pairs[:, 1], num_vertices, name=f"random{seed}")


@pytest.mark.parametrize("seed, num_vertices, probability", [(1, 18, 0.35), (2, 24, 0.2), (3, 14, 0.6)])
def test_random_graphs_match_brute_force(seed: int, num_vertices: int, probability: float) -> None:
    graph = random_graph(seed, num_vertices, probability)
    assert all_counts(graph) == brute_force(graph)


def test_kron_matches_networkx_cliques() -> None:
    graph = kron(8, edge_factor=8, seed=5)
    g = nx.Graph(list(zip(*(a.tolist() for a in graph.undirected_edges()))))
    sizes = np.bincount([len(c) for c in nx.enumerate_all_cliques(g)], minlength=6)
    assert [pangolin.cliques(graph, k).count for k in (3, 4, 5)] == sizes[3:6].tolist()


def test_chunks_and_level_budget_bound_memory_not_counts(citeseer: CSRGraph) -> None:
    whole = pangolin.motifs(citeseer, 4)
    assert whole.chunks == 1 and len(whole.level_embeddings) == 3
    assert whole.level_embeddings[:2] == [4536, 4536] and whole.level_embeddings[2] > 0
    assert whole.peak_bytes == 8 * (2 * 4536 + whole.level_embeddings[2])
    small = pangolin.motifs(citeseer, 4, chunk_edges=500, max_level_embeddings=300)
    assert small.counts == whole.counts
    assert small.chunks == 10 and small.peak_bytes < whole.peak_bytes / 5
    cycles = pangolin.count(citeseer, "rectangle", chunk_edges=1000, max_level_embeddings=64)
    assert cycles.count == CITESEER_GROUND_TRUTH["4-cycle"]


def test_induced_counts_come_from_the_census(citeseer: CSRGraph) -> None:
    truth = CITESEER_GROUND_TRUTH["4-motifs"]
    assert pangolin.count(citeseer, "diamond", induced=True).count == truth["diamond"]
    assert pangolin.count(citeseer, "rectangle", induced=True).count == truth["4-cycle"]
    assert pangolin.count(citeseer, "4-clique", induced=True).count == truth["4-clique"]
    assert pangolin.count(citeseer, "wedge", induced=True).count == CITESEER_GROUND_TRUTH["3-motifs"]["wedge"]


def test_bad_input_is_refused(citeseer: CSRGraph) -> None:
    with pytest.raises(ValueError, match="pattern 'house' is not supported"):
        pangolin.count(citeseer, "house")
    with pytest.raises(ValueError, match="pattern 'pentagon'"):
        pangolin.count(citeseer, "pentagon", induced=True)
    for k in (2, 9):
        with pytest.raises(ValueError, match=f"k must lie in 3..8 for cliques, not {k}"):
            pangolin.cliques(citeseer, k)
    with pytest.raises(ValueError, match="k must be one of \\[3, 4\\] for motifs, not 5"):
        pangolin.motifs(citeseer, 5)
    with pytest.raises(ValueError, match="unknown backend 'tpu'"):
        pangolin.triangles(citeseer, backend="tpu")
    with pytest.raises(ValueError, match="is oriented"):
        pangolin.triangles(orient_by_degree(citeseer))
    with pytest.raises(ValueError, match="chunk_edges must be at least 1"):
        pangolin.triangles(citeseer, chunk_edges=0)
    with pytest.raises(ValueError, match="CSRGraph"):
        pangolin.triangles(np.zeros((3, 3)))


def test_plans_print_readably() -> None:
    from baselines.pangolin_bfs.plans import pattern_plan

    text = str(pattern_plan("4-cycle"))
    assert "v2 in N(v0), < v1" in text and "v3 in N(v2), adj v1, < v0" in text


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cuda_source_compiles_with_nvcc(tmp_path: Path) -> None:
    from baselines.pangolin_bfs.gpu import KERNEL_SOURCE

    result = subprocess.run(["nvcc", "-arch=sm_90", "-std=c++17", "-c", str(KERNEL_SOURCE), "-o",
                             str(tmp_path / "kernels.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.gpu
def test_gpu_counts_equal_cpu_counts(citeseer: CSRGraph) -> None:
    assert all_counts(citeseer, "gpu") == CITESEER_GROUND_TRUTH
    graph = kron(10, seed=9)
    assert all_counts(graph, "gpu") == all_counts(graph, "cpu")
    small = all_counts(graph, "gpu", chunk_edges=3000, max_level_embeddings=20000)
    assert small == all_counts(graph, "cpu")


def test_harness_runs_and_checks_the_quick_baseline_experiments() -> None:
    from harness import registry
    from workloads import catalog

    quick = [e for e in registry.experiments(system="g2miner", tier="quick")
             if e.impl not in ("adjacency-floor", "plain-triangles")]  # the gate's machine references
    assert {e.params["problem"] for e in quick} == {"TC", "4-CL", "5-CL", "4-cycle", "diamond", "3-MC", "4-MC", "3-FSM"}
    assert {(e.impl, e.backend) for e in quick} == {("g2miner", "cpu"), ("g2miner", "opencl"), ("g2miner", "gpu"),
                                                    ("pangolin_bfs", "cpu"), ("pangolin_bfs", "gpu")}
    assert all(e.params.get("gpus") == 1 for e in quick if e.impl == "g2miner" and e.backend == "gpu")
    for exp in (e for e in quick if e.impl == "pangolin_bfs" and e.backend == "cpu"):
        trial = exp.build(catalog.load(exp.workload), exp.params)
        result = trial.run()
        trial.check(result)
        metrics = trial.metrics(result)
        assert metrics["count"] > 0 and metrics["peak_embedding_bytes"] > 0


def test_cli_prints_plans_and_counts() -> None:
    from click.testing import CliRunner

    from harness.systems.g2miner import cli

    runner = CliRunner()
    counted = runner.invoke(cli, ["count", str(CITESEER_PREFIX), "diamond"])
    assert counted.exit_code == 0, counted.output
    assert counted.stdout.splitlines()[0] == "3730"
    planned = runner.invoke(cli, ["plan", "0-1,1-2,2-0"])
    assert planned.exit_code == 0, planned.output
    assert "3 vertices, 3 edges" in planned.output


def test_agrees_with_g2miner_on_a_kron_graph() -> None:
    import impls.g2miner as g2miner

    graph = kron(8, seed=4)
    assert all_counts(graph) == {
        "triangle": g2miner.triangles(graph), "4-clique": g2miner.cliques(graph, 4),
        "5-clique": g2miner.cliques(graph, 5), "4-cycle": g2miner.count(graph, "4-cycle"),
        "diamond": g2miner.count(graph, "diamond"), "3-motifs": g2miner.motifs(graph, 3),
        "4-motifs": g2miner.motifs(graph, 4)}
