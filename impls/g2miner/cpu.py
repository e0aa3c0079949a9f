"""The numba CPU emitter: Python source generated from a search plan, compiled by numba.

The kernel is a DFS, parallel over the plan's edge list with `prange`: worker w
takes edges w, w + W, w + 2W, ... (the CPU form of a GPU grid-stride loop, which
spreads the heavy edges of skewed graphs over all workers).  Each worker owns
`plan.num_slots` buffers of max-degree int32 and an int64 counter; a counter
that wraps negative raises OverflowError instead of returning a wrong count.

Input-aware choices at run time: edge lists shorter than `SERIAL_BELOW` run
the serial copy of the kernel (no thread start-up); plans with a twin
aggregation run `twin_kernel` (wedge counting per v0) on whole edge lists.

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
from types import ModuleType

import numba

from impls.g2miner.analyser import COUNT_BELOW, DIFFERENCE, INTERSECT, Level, Operand, SearchPlan, Step
from impls.g2miner.prepare import PreparedGraph

# Workers per thread: enough that the strided edge assignment balances skewed graphs.
_WORKERS_PER_THREAD = 64
# The twin aggregation gives each worker two arrays of |V| int32, so it takes fewer
# workers (strided over degree-ordered vertices, a few per thread balance well),
# and no more than this many bytes of them.
_TWIN_WORKERS_PER_THREAD = 4
_TWIN_MEMORY = 1 << 30
# Edge lists shorter than this run on the calling thread: the same rule, and the
# same threshold, as the BFS baseline's serial path for small levels.
SERIAL_BELOW = 1 << 15


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
    """The generated module for `plan`.

    - `count_kernel` (parallel) and `count_kernel_serial` (the same body on the
      calling thread): the DFS over the plan's edge list;
    - with a twin aggregation, also `twin_kernel` and `twin_kernel_serial`:
      parallel over v0, counting wedges per key vertex.
    """
    plan_comment = "\n".join("# " + line for line in str(plan).splitlines())
    lines = [
        '"""Generated from a G2Miner search plan by impls.g2miner.cpu; do not edit."""',
        plan_comment,
        "import numpy as np",
        "from numba import njit, prange",
        "from impls.g2miner.setops import (NO_BOUND, contains, count_below, difference, difference_count,",
        "                                  intersect, intersect_count)",
    ]
    for parallel in (True, False):
        lines += _function("count_kernel", _edge_body(plan), parallel)
    if plan.twin_aggregate is not None:
        for parallel in (True, False):
            lines += _function("twin_kernel", _twin_body(plan), parallel)
    return "\n".join(lines) + "\n"


def _function(name: str, body: list[str], parallel: bool) -> list[str]:
    """A kernel over workers; `body` is one worker's work, at the indentation of the worker loop."""
    decorator = "@njit(parallel=True, cache=True)" if parallel else "@njit(cache=True)"
    return ["", "", decorator,
            f"def {name if parallel else name + '_serial'}(indptr, indices, src, dst, max_degree, num_workers):",
            "    totals = np.zeros(num_workers, np.int64)",
            "    overflow = np.zeros(num_workers, np.bool_)",
            f"    for worker in {'prange' if parallel else 'range'}(num_workers):"]\
        + ["        " + line for line in body] + ["    return totals, overflow"]


def _edge_body(plan: SearchPlan) -> list[str]:
    """One worker of the DFS: edges worker, worker + W, ... of the edge list."""
    body = [f"buf{s} = np.empty(max_degree, np.int32)" for s in range(plan.num_slots)]
    body += ["acc = np.int64(0)", "for e in range(worker, src.shape[0], num_workers):"]
    inner = ["v0 = src[e]", "v1 = dst[e]"]
    inner += [f"n{v} = indices[indptr[v{v}]:indptr[v{v} + 1]]" for v in (0, 1) if plan.needs_neighbours(v)]
    inner += _levels(plan, 2)
    body += ["    " + line for line in inner]
    return body + ["totals[worker] = acc"]


def _twin_body(plan: SearchPlan) -> list[str]:
    """One worker of the twin aggregation: vertices worker, worker + W, ... as v0.

    `wedges[v]` counts the twin vertices through which v0 reaches key vertex v;
    `keys` lists the v touched for this v0, so the reset costs what the count did.
    """
    body = [f"buf{s} = np.empty(max_degree, np.int32)" for s in range(plan.num_slots)]
    body += ["num_vertices = indptr.shape[0] - 1",
             "wedges = np.zeros(num_vertices, np.int32)",
             "keys = np.empty(num_vertices, np.int32)",
             "acc = np.int64(0)",
             "for v0 in range(worker, num_vertices, num_workers):"]
    inner = ["n0 = indices[indptr[v0]:indptr[v0 + 1]]", "num_keys = 0"]
    inner += _levels(plan, 1, plan.twin_aggregate.key)
    inner += ["for k in range(num_keys):",
              "    w = np.int64(wedges[keys[k]])",
              "    wedges[keys[k]] = 0",
              "    acc += w * (w - 1) // 2",
              "if acc < 0:",
              "    overflow[worker] = True"]
    body += ["    " + line for line in inner]
    return body + ["totals[worker] = acc"]


def _levels(plan: SearchPlan, j: int, wedge_key: int | None = None) -> list[str]:
    """Source for levels j.. of the DFS, at the indentation of level j.

    With `wedge_key` (the twin aggregation), binding that level ends the walk: it counts a wedge.
    """
    level = plan.levels[j]
    out = [f"# level {j}: v{j} ∈ {level.candidate_expr(plan.oriented)}"]
    if _counts_pairs_below(plan, j):
        # The last level counts the set's elements before each v_j: 0 + 1 + ... + (n - 1) in all.
        *writes, last = level.steps
        for step in writes:
            out += _step_lines(step, level, plan)
        out += _step_lines(Step(last.kind, last.left, last.right, None, last.bounded), level, plan)
        out += [f"# level {j + 1}: v{j + 1} ∈ {plan.levels[j + 1].candidate_expr(plan.oriented)}, "
                f"summed over v{j} as C(n, 2)",
                "acc += c * (c - 1) // 2", "if acc < 0:", "    overflow[worker] = True"]
        return out
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
    if j == wedge_key:
        loop += [f"if wedges[v{j}] == 0:", f"    keys[num_keys] = v{j}", "    num_keys += 1",
                 f"wedges[v{j}] += 1"]
    else:
        if plan.needs_neighbours(j):
            loop.append(f"n{j} = indices[indptr[v{j}]:indptr[v{j} + 1]]")
        loop += _levels(plan, j + 1, wedge_key)
    out += ["    " + line for line in loop]
    return out


def _counts_pairs_below(plan: SearchPlan, j: int) -> bool:
    """Whether level j's loop only feeds a last level that counts the prefix before each v_j.

    Then the loop sums 0 + 1 + ... + (n - 1) over the n elements of level j's set,
    which is C(n, 2), and the set itself needs counting, not writing.
    """
    if j + 1 != plan.depth - 1 or not plan.levels[j].steps:
        return False
    level, child = plan.levels[j], plan.levels[j + 1]
    return (child.steps == (Step(COUNT_BELOW, ("P", j), None, None, False),) and not child.distinct_from
            and not level.distinct_from and not (level.bounds and not level.bounded_build))


@functools.lru_cache(maxsize=128)
def compile_plan(plan: SearchPlan) -> ModuleType:
    """The generated module for `plan`, its kernels compiled on first call (cached on disk by numba)."""
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
    return module


def count(plan: SearchPlan, graph: PreparedGraph) -> int:
    """Run the plan's numba kernel over `graph`'s edge list; the exact count.

    Input-aware choices: the twin aggregation when the plan has one and the edge
    list is whole; the serial kernel when the edge list is short (a parallel
    region costs more than the work there).
    """
    module = compile_plan(plan)
    if graph.num_edges == 0:
        return 0
    serial = graph.num_edges < SERIAL_BELOW
    threads = numba.get_num_threads()
    if plan.twin_aggregate is not None and graph.complete:
        kernel = module.twin_kernel_serial if serial else module.twin_kernel
        num_vertices = len(graph.indptr) - 1
        by_memory = _TWIN_MEMORY // (8 * max(num_vertices, 1))
        workers = 1 if serial else max(threads, min(threads * _TWIN_WORKERS_PER_THREAD, by_memory))
    else:
        kernel = module.count_kernel_serial if serial else module.count_kernel
        workers = 1 if serial else min(graph.num_edges, threads * _WORKERS_PER_THREAD)
    totals, overflow = kernel(graph.indptr, graph.indices, graph.src, graph.dst, graph.max_degree, workers)
    if overflow.any():
        raise OverflowError(f"{plan.pattern.name}: a 64-bit count overflowed")
    total = sum(int(t) for t in totals)
    if total >= 2**63:
        raise OverflowError(f"{plan.pattern.name}: the count {total} does not fit 64 bits")
    return total
