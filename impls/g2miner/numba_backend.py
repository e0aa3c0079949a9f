"""The numba CPU emitter: Python source generated from a search plan, compiled by numba.

The kernel is a DFS, parallel over the plan's edge list with `prange`: worker w
takes edges w, w + W, w + 2W, ... (the CPU form of a GPU grid-stride loop, which
spreads the heavy edges of skewed graphs over all workers).  Each worker owns
`plan.num_slots` buffers of max-degree int32 and an int64 counter; a counter
that wraps negative raises OverflowError instead of returning a wrong count.

Generated modules are written to a cache folder under a hash of their source,
so numba's on-disk cache (`cache=True`) keeps their machine code between runs.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from typing import Callable

import numba
import numpy as np

from impls.g2miner.analyser import COUNT_BELOW, DIFFERENCE, INTERSECT, Level, Operand, SearchPlan, Step
from impls.g2miner.prepare import PreparedGraph

# Workers per thread: enough that the strided edge assignment balances skewed graphs.
_WORKERS_PER_THREAD = 64


def kernel_cache_dir() -> Path:
    """Where generated kernel modules live (RECMINE_KERNEL_CACHE overrides the default)."""
    default = Path.home() / ".cache" / "recmine" / "g2miner"
    return Path(os.environ.get("RECMINE_KERNEL_CACHE", default))


def bound_expr(level: Level) -> str:
    """The level's symmetry bound as an expression over earlier vertices."""
    names = [f"v{b}" for b in level.bounds]
    if not names:
        return "NO_BOUND"
    return names[0] if len(names) == 1 else f"min({', '.join(names)})"


def _operand(operand: Operand, plan: SearchPlan) -> str:
    kind, index = operand
    if kind == "P":
        return f"{_operand(plan.levels[index].result, plan)}[:i{index}]"
    return f"n{index}" if kind == "N" else f"s{index}"


def _step_lines(step: Step, level: Level, plan: SearchPlan) -> list[str]:
    bound = bound_expr(level) if step.bounded else "NO_BOUND"
    left = _operand(step.left, plan)
    if step.kind == COUNT_BELOW:
        return [f"c = count_below({left}, {bound})" if step.bounded else f"c = {left}.shape[0]"]
    func = {INTERSECT: "intersect", DIFFERENCE: "difference"}[step.kind]
    right = f"n{step.right}"
    if step.out is None:
        return [f"c = {func}_count({left}, {right}, {bound})"]
    return [f"s{step.out} = buf{step.out}[:{func}({left}, {right}, {bound}, buf{step.out})]"]


def _membership(level: Level, vertex: str) -> str:
    """Whether `vertex` lies in the level's candidate set (before distinctness)."""
    tests = [f"contains(n{i}, {vertex})" for i in level.connected]
    tests += [f"not contains(n{d}, {vertex})" for d in level.disconnected]
    if level.bounds:
        tests.insert(0, f"{vertex} < {bound_expr(level)}")
    if level.prefix is not None:
        tests.insert(0, f"{vertex} < v{level.prefix}")
    return " and ".join(tests)


def numba_source(plan: SearchPlan) -> str:
    """The generated module for `plan`: one `count_kernel` function."""
    plan_comment = "\n".join("# " + line for line in str(plan).splitlines())
    lines = [
        '"""Generated from a G2Miner search plan by impls.g2miner.numba_backend; do not edit."""',
        plan_comment,
        "import numpy as np",
        "from numba import njit, prange",
        "from impls.g2miner.setops import (NO_BOUND, contains, count_below, difference, difference_count,",
        "                                  intersect, intersect_count)",
        "",
        "",
        "@njit(parallel=True, cache=True)",
        "def count_kernel(indptr, indices, src, dst, max_degree, num_workers):",
        "    totals = np.zeros(num_workers, np.int64)",
        "    overflow = np.zeros(num_workers, np.bool_)",
        "    num_edges = src.shape[0]",
        "    for worker in prange(num_workers):",
    ]
    body = [f"buf{s} = np.empty(max_degree, np.int32)" for s in range(plan.num_slots)]
    body += ["acc = np.int64(0)", "for e in range(worker, num_edges, num_workers):"]
    inner = ["v0 = src[e]", "v1 = dst[e]"]
    inner += [f"n{v} = indices[indptr[v{v}]:indptr[v{v} + 1]]" for v in (0, 1) if plan.needs_neighbours(v)]
    inner += _levels(plan, 2)
    body += ["    " + line for line in inner]
    body += ["totals[worker] = acc"]
    lines += ["        " + line for line in body]
    lines += ["    return totals, overflow", ""]
    return "\n".join(lines)


def _levels(plan: SearchPlan, j: int) -> list[str]:
    """Source for levels j.. of the DFS, at the indentation of level j."""
    level = plan.levels[j]
    out = [f"# level {j}: v{j} ∈ {level.candidate_expr(plan.oriented)}"]
    for step in level.steps:
        out += _step_lines(step, level, plan)
    if level.count_only:
        for m in level.distinct_from:
            out += [f"if {_membership(level, f'v{m}')}:", "    c -= 1"]
        out += ["acc += c", "if acc < 0:", "    overflow[worker] = True"]
        return out
    cand = _operand(level.result, plan)
    out.append(f"for i{j} in range({cand}.shape[0]):")
    loop = [f"v{j} = {cand}[i{j}]"]
    if level.bounds and not level.bounded_build:
        loop += [f"if v{j} >= {bound_expr(level)}:", "    break"]
    for m in level.distinct_from:
        loop += [f"if v{j} == v{m}:", "    continue"]
    if plan.needs_neighbours(j):
        loop.append(f"n{j} = indices[indptr[v{j}]:indptr[v{j} + 1]]")
    loop += _levels(plan, j + 1)
    out += ["    " + line for line in loop]
    return out


@functools.lru_cache(maxsize=128)
def compile_plan(plan: SearchPlan) -> Callable:
    """The compiled `count_kernel` for `plan` (built once per process, cached on disk by numba)."""
    source = numba_source(plan)
    digest = hashlib.sha1(source.encode()).hexdigest()[:20]
    folder = kernel_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"g2m_{digest}.py"
    if not path.exists() or path.read_text() != source:
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(source)
        os.replace(staging, path)  # atomic: concurrent processes never see half a file
    spec = importlib.util.spec_from_file_location(f"g2m_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    # numba's cache re-imports the defining module by name when it loads machine code.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.count_kernel


def count(plan: SearchPlan, graph: PreparedGraph) -> int:
    """Run the plan's numba kernel over `graph`'s edge list; the exact count."""
    kernel = compile_plan(plan)
    if graph.num_edges == 0:
        return 0
    workers = max(1, min(graph.num_edges, numba.get_num_threads() * _WORKERS_PER_THREAD))
    totals, overflow = kernel(graph.indptr, graph.indices, graph.src, graph.dst, graph.max_degree, workers)
    if overflow.any():
        raise OverflowError(f"{plan.pattern.name}: a 64-bit count overflowed")
    total = sum(int(t) for t in totals)
    if total >= 2**63:
        raise OverflowError(f"{plan.pattern.name}: the count {total} does not fit 64 bits")
    return total
