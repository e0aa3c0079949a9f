"""The plan walker, its rewrite passes and the launcher contract the C backends share."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import types

import numpy as np
import pytest

from impls import g2miner
from impls.g2miner import analyser, cpu, emit_c, gpu, launch
from impls.g2miner.emit_numba import numba_source
from impls.g2miner.prepare import prepare
from workloads.graphs import from_edges

from tests.g2miner.conftest import CI_BACKENDS, fresh_seed, random_graph
from tests.g2miner.test_counts import brute_force


def test_count_pairs_is_a_pass_every_dialect_and_the_printer_get():
    plan = g2miner.plan("diamond")
    assert plan.count_pairs == analyser.CountPairs(level=2)
    assert analyser.lower(plan.pattern).count_pairs is None  # the lowering alone has none
    assert "C(n, 2) rewrite: level 3 counts cand2[:i2]" in str(plan)
    marker = "summed over v2 as C(n, 2)"
    assert marker in numba_source(plan)
    for dialect in (emit_c.CUDA, emit_c.OPENCL):
        text = emit_c.kernel_source(plan, dialect)
        assert marker in text and "for (i32 i2" not in text, dialect.name  # no loop over level 2 left
    # Vertex-induced, the last level subtracts a neighbour list: no prefix count, no rewrite.
    assert g2miner.plan("diamond", induced=True).count_pairs is None


@pytest.mark.parametrize("backend", CI_BACKENDS)
def test_count_pairs_and_edge_triangles_match_brute_force(monkeypatch, backend):
    """Diamonds: on a whole edge list by edge triangles, on a part of one by the levels with C(n, 2)."""
    seed = fresh_seed()
    graph, reference = random_graph(seed, num_vertices=24, density=0.4)
    plan = g2miner.plan("diamond")
    assert plan.edge_triangles is not None and "edge triangles: the count is" in str(plan)
    expected = brute_force(reference, plan.pattern, False)
    assert g2miner.count(graph, "diamond", backend=backend) == expected, seed
    prepared = prepare(graph, plan)
    whole_as_part = prepared.subset(np.arange(prepared.num_edges))
    assert importlib.import_module(f"impls.g2miner.{backend}").count(plan, whole_as_part) == expected, seed
    if backend == "cpu":
        monkeypatch.setattr(cpu, "SERIAL_BELOW", 0)  # the parallel edge-triangles kernel too
        assert cpu.count(plan, prepared) == expected, seed
    assert analyser.edge_triangles_pass(g2miner.plan("diamond", induced=True)).edge_triangles is None


def test_every_kernel_signature_is_the_contracts():
    plan = g2miner.plan("4-cycle")
    text = emit_c.kernel_source(plan, emit_c.CUDA)
    for kernel in (launch.LEVELS_KERNEL, launch.TWIN_KERNEL):
        assert f"KERNEL {kernel.name()}({kernel.c_params()}) {{" in text
    with pytest.raises(KeyError, match="no value for src, dst"):
        launch.LEVELS_KERNEL.arguments({"indptr": 0, "indices": 0})


def test_twin_or_levels_choice_and_overflow_check():
    graph, _ = random_graph(fresh_seed(), num_vertices=20)
    plan = g2miner.plan("4-cycle")
    prepared = prepare(graph, plan)
    part = prepared.subset(np.arange(prepared.num_edges))
    assert launch.kernels_for(plan, prepared) == (launch.TWIN_KERNEL, launch.LEVELS_KERNEL)
    assert launch.kernels_for(plan, part) == (launch.LEVELS_KERNEL,)
    diamond = g2miner.plan("diamond")
    assert launch.kernels_for(diamond, prepare(graph, diamond)) == (launch.EDGE_TRIANGLES_KERNEL, launch.LEVELS_KERNEL)
    assert launch.EDGE_TRIANGLES_KERNEL.chain() == (launch.EDGE_TRIANGLES_KERNEL, launch.EDGE_TRIANGLE_PAIRS_KERNEL)
    assert launch.kernels_for(diamond, prepare(graph, diamond).subset(np.arange(3))) == (launch.LEVELS_KERNEL,)
    # The twin kernel's |V| arrays do not fit: the levels run.
    fits = {launch.TWIN_KERNEL: 0, launch.LEVELS_KERNEL: 3}
    assert launch.choose_launch(plan, prepared, fits.get) == (launch.LEVELS_KERNEL, 3)
    with pytest.raises(MemoryError):
        launch.choose_launch(plan, prepared, lambda kernel: 0)
    assert launch.checked_total(plan, 7, 0) == 7
    with pytest.raises(OverflowError):
        launch.checked_total(plan, 7, 1)
    with pytest.raises(OverflowError):
        launch.checked_total(plan, 2**63, 0)


def test_a_graph_is_uploaded_once_per_device_and_its_parts_share_the_adjacency():
    uploads = []
    graphs = launch.DeviceGraphs(lambda array, device: uploads.append((len(array), device)) or array)
    graph, _ = random_graph(fresh_seed(), num_vertices=20)
    prepared = prepare(graph, g2miner.plan("diamond"))
    graphs.arrays(prepared, 0)
    graphs.arrays(prepared, 0)
    assert len(uploads) == 4  # indptr, indices, src, dst: once
    graphs.arrays(prepared, 1)
    assert len(uploads) == 8  # again on another device
    graphs.arrays(prepared.subset(np.arange(3)), 0)
    assert len(uploads) == 10  # a part: its own src and dst, the adjacency already there


class _FakeCupy:
    """Enough of cupy for the CUDA launcher to run on the host: arrays are numpy, memory is `free` bytes."""

    int32, uint64 = np.int32, np.uint64

    def __init__(self, free: int) -> None:
        self.cuda = types.SimpleNamespace(Device=lambda device: contextlib.nullcontext(),
                                          runtime=types.SimpleNamespace(memGetInfo=lambda: (free, free)))

    zeros = staticmethod(np.zeros)
    empty = staticmethod(np.empty)
    asarray = staticmethod(np.asarray)


@pytest.mark.parametrize("free_bytes, expected", [(1 << 34, launch.TWIN_KERNEL), (1 << 10, launch.LEVELS_KERNEL)])
def test_cuda_launcher_passes_the_contracts_arguments_by_name(monkeypatch, free_bytes, expected):
    """The CUDA launcher without a GPU: the arguments reach the kernel in the contract's order."""
    graph, _ = random_graph(fresh_seed(), num_vertices=30, density=0.3)
    plan = g2miner.plan("4-cycle")
    prepared = prepare(graph, plan)
    launched = []

    def fake_kernel(plan_, kernel, device=0):
        return lambda grid, block, args: launched.append((kernel, grid, args))

    monkeypatch.setattr(gpu, "_cupy", lambda: _FakeCupy(free_bytes))
    monkeypatch.setattr(gpu, "compile_kernel", fake_kernel)
    monkeypatch.setattr(gpu, "resident_blocks", lambda kernel, block, device: 4)
    monkeypatch.setattr(gpu, "_GRAPHS", launch.DeviceGraphs(lambda array, device: array))
    gpu.launch(plan, prepared)
    kernel, (blocks,), args = launched[-1]
    assert kernel == expected and blocks >= 1
    by_name = dict(zip((p.name for p in kernel.params), args))
    assert by_name["indptr"] is prepared.indptr and by_name["max_degree"] == prepared.max_degree
    warps = blocks * (emit_c.CUDA_BLOCK_SIZE // emit_c.WARP_SIZE)
    if kernel == launch.TWIN_KERNEL:
        assert by_name["num_vertices"] == prepared.num_vertices
        assert len(by_name["wedge_counts"]) == warps * prepared.num_vertices and not by_name["wedge_counts"].any()
    else:
        assert by_name["num_edges"] == prepared.num_edges and by_name["dst"] is prepared.dst
    assert by_name["total"].dtype == np.uint64 and by_name["overflow"].dtype == np.int32


def test_local_graph_is_a_pass_for_cliques_of_five_or_more():
    assert g2miner.plan("4-clique").local_graph is None  # its last level is the row itself: nothing to gain
    for k in range(5, 9):
        plan = g2miner.plan(f"{k}-clique")
        assert plan.local_graph == analyser.LocalGraph(level=2) and "local graph: level 2's set" in str(plan)
        assert "build_rows(" in numba_source(plan)
        for dialect in (emit_c.CUDA, emit_c.OPENCL):
            assert "POPC64(" in emit_c.kernel_source(plan, dialect), (k, dialect.name)
    assert all(g2miner.plan(name).local_graph is None for name in ("diamond", "house", "4-cycle"))


def _clique_with_noise(seed: int, clique: int, extra: int, density: float):
    """K_clique on the first vertices, plus `extra` vertices joined at random to everything."""
    rng = np.random.default_rng(seed)
    src, dst = np.triu_indices(clique + extra, 1)
    keep = (dst < clique) | (rng.random(len(src)) < density)
    return from_edges(src[keep].astype(np.int64), dst[keep].astype(np.int64), clique + extra, None,
                      name=f"K{clique}+{extra}-{seed}")


@pytest.mark.parametrize("backend", CI_BACKENDS)
def test_local_graph_counts_with_rows_of_several_words(backend):
    """A 70-clique's level-2 sets hold up to 68 vertices, so rows take two words: C(70, k) exactly;
    with random vertices beside it, the count equals the plan's without the rewrite."""
    assert g2miner.cliques(_clique_with_noise(0, 70, 0, 0.0), 5, backend=backend) == math.comb(70, 5)
    if backend == "cpu":
        assert g2miner.cliques(_clique_with_noise(0, 70, 0, 0.0), 6) == math.comb(70, 6)
    seed = fresh_seed()
    graph = _clique_with_noise(seed, 66, 30, 0.5)
    plan = g2miner.plan("5-clique")
    prepared = prepare(graph, plan)
    without = cpu.count(dataclasses.replace(plan, local_graph=None), prepared)
    assert g2miner.cliques(graph, 5, backend=backend) == without, f"seed {seed}"


def test_cuda_launcher_runs_a_kernel_chain_on_shared_arguments(monkeypatch):
    """Diamonds on a whole edge list: the edge-triangles kernel, then the pairs kernel on its counters."""
    graph, _ = random_graph(fresh_seed(), num_vertices=30, density=0.3)
    plan = g2miner.plan("diamond")
    prepared = prepare(graph, plan)
    launched = []
    monkeypatch.setattr(gpu, "_cupy", lambda: _FakeCupy(1 << 34))
    monkeypatch.setattr(gpu, "compile_kernel",
                        lambda plan_, kernel, device=0: lambda grid, block, args: launched.append((kernel, args)))
    monkeypatch.setattr(gpu, "resident_blocks", lambda kernel, block, device: 4)
    monkeypatch.setattr(gpu, "_GRAPHS", launch.DeviceGraphs(lambda array, device: array))
    gpu.launch(plan, prepared)
    assert [kernel for kernel, _ in launched] == list(launch.EDGE_TRIANGLES_KERNEL.chain())
    (first, first_args), (then, then_args) = launched
    counters = first_args[[p.name for p in first.params].index("edge_triangles")]
    assert then_args[0] is counters and len(counters) == len(prepared.indices) and not counters.any()
    assert then_args[1] == len(prepared.indices)
