"""G2Miner against the Pangolin-style BFS baseline: experiments, plots and CLI.

Problems (the `problem` parameter): TC, 4-CL, 5-CL, edge-induced 4-cycle and
diamond listing (SL, counted), vertex-induced 3- and 4-motif counting, and
3-FSM (frequent subgraphs of up to 2 edges, domain support) on the labelled
citeseer, which only G2Miner runs (the baseline has no FSM).

- impl "g2miner": generated kernels from `impls.g2miner` on cpu (numba),
  opencl (PoCL in CI) and gpu (cupy).  Its numba CPU backend is compiled
  pattern-aware DFS, which also stands in for GraphZero/Peregrine in the CPU
  claims.
- impl "pangolin_bfs": `baselines.pangolin_bfs` on cpu (numba) and gpu (cupy).

Tiers: quick runs every problem on citeseer (exact ground truth, checked) and,
on the CPU, G2Miner against pangolin_bfs on kron12 (a small skewed graph, where
the work outweighs thread start-up; ground truth checked) for TC, 4-CL, diamond
and 4-cycle; full runs kron16-18 and, on the GPU, kron21, as `g2miner.toml` lists, plus the
multi-GPU runs (the scheduler over 2, 4, 8 GPUs) that this machine has GPUs for.  Preprocessing
(orientation, relabelling) happens before the timed region for both systems:
pangolin_bfs prepares in `build`, G2Miner caches its prepared graph on first
use, and its gpu and opencl backends upload it once per device
(`impls.g2miner.launch.DeviceGraphs`): the harness's warm-up run absorbs both,
so every backend's timing is the kernel's.  `recmine g2miner bench` times
the kernels alone for any pattern, the same way.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import click

import devices
from harness import grids
from harness.registry import Experiment, Trial
from harness.systems import SpeedupTable, System
from workloads import catalog
from workloads.graphs import CSRGraph
from workloads.limits import quote

NAME = "g2miner"


@dataclass(frozen=True)
class Problem:
    """One mining problem: its ground-truth key, G2Miner's call, and the baseline's plan."""

    truth_key: str
    run_g2miner: Callable[[CSRGraph, str], Any]
    pangolin_plan: Callable[[], Any]


def _g2miner() -> Any:
    import impls.g2miner

    return impls.g2miner


def _pangolin() -> Any:
    import baselines.pangolin_bfs

    return baselines.pangolin_bfs


PROBLEMS: dict[str, Problem] = {
    "TC": Problem("triangle", lambda g, b: _g2miner().triangles(g, backend=b),
                  lambda: _pangolin().clique_plan(3)),
    "4-CL": Problem("4-clique", lambda g, b: _g2miner().cliques(g, 4, backend=b),
                    lambda: _pangolin().clique_plan(4)),
    "5-CL": Problem("5-clique", lambda g, b: _g2miner().cliques(g, 5, backend=b),
                    lambda: _pangolin().clique_plan(5)),
    "4-cycle": Problem("4-cycle", lambda g, b: _g2miner().count(g, "4-cycle", backend=b),
                       lambda: _pangolin().pattern_plan("4-cycle")),
    "diamond": Problem("diamond", lambda g, b: _g2miner().count(g, "diamond", backend=b),
                       lambda: _pangolin().pattern_plan("diamond")),
    "3-MC": Problem("3-motifs", lambda g, b: _g2miner().motifs(g, 3, backend=b),
                    lambda: _pangolin().motif_plan(3)),
    "4-MC": Problem("4-motifs", lambda g, b: _g2miner().motifs(g, 4, backend=b),
                    lambda: _pangolin().motif_plan(4)),
}

G2MINER_BACKENDS = ("cpu", "opencl", "gpu")

def _metrics(value: int | dict[str, int]) -> dict[str, float]:
    if isinstance(value, dict):
        return {"count": float(sum(value.values())), **{name: float(c) for name, c in value.items()}}
    return {"count": float(value)}


def _checker(workload: str, problem: str) -> Callable[[Any], None] | None:
    """Exact comparison with the workload's ground truth, when it has one for this problem."""
    truth = catalog.get(workload).ground_truth.get(PROBLEMS[problem].truth_key)
    if truth is None:
        return None

    def check(value: int | dict[str, int]) -> None:
        assert value == truth, f"{problem} on {workload}: counted {value}, ground truth {truth}"
    return check


def build_g2miner(graph: CSRGraph, p: dict[str, Any], workload: str, backend: str) -> Trial:
    problem = PROBLEMS[p["problem"]]
    return Trial(run=lambda: problem.run_g2miner(graph, backend), metrics=_metrics,
                 check=_checker(workload, p["problem"]))


def build_pangolin(graph: CSRGraph, p: dict[str, Any], workload: str, backend: str) -> Trial:
    miner = _pangolin().miner(graph, PROBLEMS[p["problem"]].pangolin_plan(), backend)
    last: dict[str, Any] = {}

    def run() -> int | dict[str, int]:
        result = miner.run()
        last["result"] = result
        return result.count if len(result.counts) == 1 else result.counts

    def metrics(value: int | dict[str, int]) -> dict[str, float]:
        result = last["result"]
        levels = {f"level{i}_embeddings": float(n) for i, n in enumerate(result.level_embeddings)}
        return {**_metrics(value), "peak_embedding_bytes": float(result.peak_bytes), **levels}

    return Trial(run=run, metrics=metrics, check=_checker(workload, p["problem"]))


def build_multi_gpu(graph: CSRGraph, p: dict[str, Any], workload: str) -> Trial:
    from impls.g2miner.partition import count_partitioned

    pattern = PROBLEMS[p["problem"]].truth_key
    return Trial(run=lambda: count_partitioned(graph, pattern, backend="gpu", num_partitions=p["gpus"]).total,
                 metrics=_metrics, check=_checker(workload, p["problem"]))


def build_adjacency_floor(graph: CSRGraph, p: dict[str, Any]) -> Trial:
    """The data a merge-based triangle count must read, read once by a plain numba loop."""
    from harness.floors import adjacency_floor

    return Trial(run=lambda: adjacency_floor(graph.indptr, graph.indices))


def build_plain_triangles(graph: CSRGraph, p: dict[str, Any], workload: str) -> Trial:
    """A merge-based triangle count in the simplest numba loop: the gate divides G2Miner's TC by
    it, a ratio that moves less with the CPU than one over the adjacency floor."""
    from harness.floors import plain_triangle_count

    return Trial(run=lambda: plain_triangle_count(graph.indptr, graph.indices), metrics=_metrics,
                 check=_checker(workload, "TC"))


def build_fsm(graph: CSRGraph, p: dict[str, Any]) -> Trial:
    return Trial(run=lambda: _g2miner().fsm(graph, p["support"], max_edges=2, backend="cpu"),
                 metrics=lambda found: {"count": float(len(found))})


BUILDERS = {"g2miner": build_g2miner, "pangolin": build_pangolin, "fsm": build_fsm,
            "adjacency_floor": build_adjacency_floor, "plain_triangles": build_plain_triangles,
            "multi_gpu": build_multi_gpu}
ALL_PROBLEMS = tuple(PROBLEMS)
GRIDS = grids.load(Path(__file__).with_suffix(".toml"), given={"all_problems": list(ALL_PROBLEMS)})


def experiments() -> list[Experiment]:
    return GRIDS.experiments(NAME, BUILDERS)


_TIME = "median time (s)"
PLOTS = [
    {"title": f"G2Miner vs pangolin_bfs per problem on citeseer, {where}",
     "select": {"system": NAME, "workload": "citeseer", "backend": backend, "problem": list(ALL_PROBLEMS)},
     "x": "problem", "y": "time_s", "hue": "impl", "series": "{}", "xlabel": "mining problem", "ylabel": _TIME,
     "style": "points", "logx": False, "logy": True}
    for backend, where in (("cpu", "on the CPU"), ("gpu", "on the GPU"))
] + [
    {"title": f"{problem}: G2Miner vs pangolin_bfs on Kronecker graphs, {where}",
     "select": {"system": NAME, "problem": problem, "backend": backend, "workload": "kron*"},
     "x": "size.edges", "y": "time_s", "hue": "impl", "series": "{}", "xlabel": "edges in the graph",
     "ylabel": _TIME, "style": "line", "logx": True, "logy": True}
    for problem in ("TC", "4-CL", "diamond", "4-cycle") for backend, where in (("cpu", "on the CPU"), ("gpu", "on the GPU"))
] + [
    {"title": "G2Miner per problem on citeseer, by backend",
     "select": {"system": NAME, "workload": "citeseer", "impl": "g2miner", "problem": list(ALL_PROBLEMS)},
     "x": "problem", "y": "time_s", "hue": "backend", "series": "G2Miner on {}", "xlabel": "mining problem",
     "ylabel": _TIME, "style": "points", "logx": False, "logy": True},
]


def _graph(spec: str) -> CSRGraph:
    """A named workload (citeseer, kron16, ...) or a graph file/prefix path."""
    if spec in catalog.all_workloads():
        graph = catalog.load(spec)
        if not isinstance(graph, CSRGraph):
            raise ValueError(f"workload {spec!r} is not a graph")
        return graph
    from workloads.graphs import load

    return load(spec)


@click.group(NAME, help="G2Miner: search plans and counts.")
def cli() -> None:
    pass


@cli.command("plan")
@click.argument("pattern")
@click.option("--induced", is_flag=True, help="vertex-induced matching (default: edge-induced)")
def plan_command(pattern: str, induced: bool) -> None:
    """Print the search plan G2Miner builds for PATTERN (a name such as diamond, or edges like 0-1,1-2,2-0)."""
    click.echo(str(_g2miner().plan(_pattern_spec(pattern), induced=induced)))


@cli.command("count")
@click.argument("graph")
@click.argument("pattern")
@click.option("--backend", type=click.Choice(G2MINER_BACKENDS), default="cpu", show_default=True)
@click.option("--induced", is_flag=True, help="vertex-induced matching (default: edge-induced)")
def count_command(graph: str, pattern: str, backend: str, induced: bool) -> None:
    """Count PATTERN in GRAPH (a workload name or a graph file/GraphMiner prefix)."""
    ok, why = devices.can_run(backend)
    if not ok:
        raise ValueError(why)
    spec = _pattern_spec(pattern)
    _g2miner().plan(spec, induced=induced)  # a bad pattern is refused before the graph is loaded
    data = _graph(graph)
    start = time.perf_counter()
    found = _g2miner().count(data, spec, backend=backend, induced=induced)
    elapsed = time.perf_counter() - start
    click.echo(f"{found}")
    click.echo(f"{pattern} ({'vertex' if induced else 'edge'}-induced) in {data.name}: "
               f"{found} matches, {elapsed:.3f} s on {backend} (including kernel generation and preprocessing)",
               err=True)


@cli.command("bench")
@click.argument("patterns", nargs=-1, required=True)
@click.option("--workload", default="kron16", show_default=True, help="a workload name or a graph file/prefix")
@click.option("--backend", type=click.Choice(G2MINER_BACKENDS), default="cpu", show_default=True)
@click.option("--induced", is_flag=True, help="vertex-induced matching (default: edge-induced)")
@click.option("--repeat", type=click.IntRange(1, 1000), default=3, show_default=True, help="timed runs per pattern")
def bench_command(patterns: tuple[str, ...], workload: str, backend: str, induced: bool, repeat: int) -> None:
    """Time G2Miner's kernel alone for each of PATTERNS (names or edge lists) on a workload.

    Graph preparation (relabelling, orientation), kernel compilation and the
    graph's upload to the device (once per device) happen in untimed warm-up
    runs: on a slice of the edge list, then on the whole one where the plan's
    twin kernel runs only there.  The load average is printed before and after,
    since a shared machine's figures drift with it.
    """
    import os

    import numpy as np

    from devices.timers import timer_for
    from harness.measure import Settings, measure
    from impls.g2miner.prepare import prepare
    from impls.g2miner.dispatch import count_prepared

    ok, why = devices.can_run(backend)
    if not ok:
        raise ValueError(why)
    plans = [_g2miner().plan(_pattern_spec(name), induced=induced) for name in patterns]  # refused before loading
    data = _graph(workload)
    timed = Settings(warmup=0, min_repeats=repeat, min_time_s=0.0, max_repeats=repeat, max_time_s=float("inf"))
    click.echo(f"{data.name}: {data.num_vertices} vertices, {data.num_edges} edges; backend {backend}; "
               f"load average {os.getloadavg()[0]:.2f}")
    for name, search_plan in zip(patterns, plans):
        prepared = prepare(data, search_plan)
        count_prepared(search_plan, prepared.subset(np.arange(min(1000, prepared.num_edges))), backend)
        if search_plan.twin_aggregate is not None:
            count_prepared(search_plan, prepared, backend)  # that kernel runs on whole edge lists only
        result = measure(lambda: count_prepared(search_plan, prepared, backend), timed, timer_for(backend))
        click.echo(f"{name}: count {result.result}, median {result.median:.3f} s over {len(result.samples)} runs "
                   f"(min {min(result.samples):.3f} s, max {max(result.samples):.3f} s); "
                   f"load average {os.getloadavg()[0]:.2f}")


_EDGE = re.compile(r"\s*([0-9]+)\s*-\s*([0-9]+)\s*")


def _pattern_spec(text: str) -> str | list[tuple[int, int]]:
    """A pattern name, or an edge list written as "0-1,1-2,2-0" (digits, dashes and commas only)."""
    if "-" not in text or not re.fullmatch(r"[0-9\s,-]+", text):
        return text
    from impls.g2miner.pattern import MAX_PATTERN_VERTICES

    edges = []
    for edge in text.split(","):
        match = _EDGE.fullmatch(edge)
        if match is None:
            raise ValueError(f"pattern {quote(text)}: edge {quote(edge)} is not written as u-v; "
                             f"an edge list is written as 0-1,1-2,2-0")
        if max(len(match.group(1)), len(match.group(2))) > 3:  # far beyond any pattern: no giant ints
            raise ValueError(f"pattern {quote(text)}: edge {quote(edge)} names a vertex beyond "
                             f"0..{MAX_PATTERN_VERTICES - 1}; a pattern has at most {MAX_PATTERN_VERTICES} vertices")
        edges.append((int(match.group(1)), int(match.group(2))))
    return edges


SYSTEM = System(
    NAME, experiments, cli=cli, plots=PLOTS,
    # The Pangolin-style baseline's time over each implementation's, per problem; PoCL runs on the CPU cores.
    speedup=SpeedupTable("pangolin_bfs", pair_on=("problem",), baseline_backends={"opencl": ("cpu",)}))
