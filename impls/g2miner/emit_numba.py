"""The numba dialect: Python source for a search plan's kernels, written by the plan walker.

The kernel is a DFS, parallel over the plan's edge list with `prange`: worker w
takes edges w, w + W, w + 2W, ... (the CPU form of a GPU grid-stride loop, which
spreads the heavy edges of skewed graphs over all workers).  Each worker owns
`plan.num_slots` buffers of max-degree int32 and an int64 counter; a counter
that wraps negative sets the worker's overflow flag.  Sets are numpy array
expressions (slices of neighbour lists and buffers); the set operations are
`impls.g2miner.setops`.
"""

from __future__ import annotations

from impls.g2miner.analyser import DIFFERENCE, INTERSECT, SearchPlan
from impls.g2miner.walker import PlanWalker

_SETOP = {INTERSECT: "intersect", DIFFERENCE: "difference"}


class NumbaDialect:
    """Printing hooks for numba: sets are array expressions, a rejected vertex is a `continue`."""

    indent = "    "
    branches_on_rejection = True
    logical_and = " and "
    logical_not = "not "

    def comment(self, text: str) -> list[str]:
        return [f"# {text}"]

    def bind_edge(self) -> list[str]:
        return ["v0 = src[e]", "v1 = dst[e]"]

    def neighbours(self, v: int) -> list[str]:
        return [f"n{v} = indices[indptr[v{v}]:indptr[v{v} + 1]]"]

    def neighbour_set(self, v: int) -> str:
        return f"n{v}"

    def prefix(self, candidates: str, j: int) -> str:
        return f"{candidates}[:i{j}]"

    def min_of(self, names: list[str]) -> str:
        return names[0] if len(names) == 1 else f"min({', '.join(names)})"

    def setop(self, kind: str, left: str, right: str, bound: str | None, out: int | None,
              live: str | None) -> tuple[list[str], str | None]:
        func = _SETOP[kind]
        bound = bound or "NO_BOUND"
        if out is None:
            return [f"c = {func}_count({left}, {right}, {bound})"], None
        return [f"s{out} = buf{out}[:{func}({left}, {right}, {bound}, buf{out})]"], f"s{out}"

    def count_below(self, left: str, bound: str | None, live: str | None) -> list[str]:
        return [f"c = count_below({left}, {bound})" if bound else f"c = {left}.shape[0]"]

    def contains(self, candidates: str, x: str) -> str:
        return f"contains({candidates}, {x})"

    def decrement_count_if(self, test: str) -> list[str]:
        return [f"if {test}:", "    c -= 1"]

    def zero_count_unless(self, live: str) -> list[str]:
        raise AssertionError("numba kernels branch on rejection; no live flag reaches them")

    def _add(self, expr: str) -> list[str]:
        return [f"acc += {expr}", "if acc < 0:", "    overflow[worker] = True"]

    def add_count(self) -> list[str]:
        return self._add("c")

    def add_pairs_of_count(self) -> list[str]:
        return self._add("c * (c - 1) // 2")

    def open_loop(self, j: int, candidates: str, bound: str | None, live: str | None,
                  lanes_share: bool) -> tuple[list[str], list[str], list[str]]:
        body = [f"v{j} = {candidates}[i{j}]"]
        if bound is not None:
            body += [f"if v{j} >= {bound}:", "    break"]
        return [f"for i{j} in range({candidates}.shape[0]):"], body, []

    def skip_equal(self, j: int, earlier: tuple[int, ...]) -> list[str]:
        return [line for m in earlier for line in (f"if v{j} == v{m}:", "    continue")]

    def reject_equal(self, j: int, earlier: tuple[int, ...]) -> tuple[list[str], str]:
        raise AssertionError("numba kernels branch on rejection")

    def count_wedge(self, j: int) -> list[str]:
        return [f"if wedges[v{j}] == 0:", f"    keys[num_keys] = v{j}", "    num_keys += 1", f"wedges[v{j}] += 1"]


    def build_local_graph(self, candidates: str) -> list[str]:
        return [f"build_rows({candidates}, indptr, indices, rows)"]

    def open_local_loop(self, j: int, candidates: str) -> tuple[list[str], list[str], list[str]]:
        return [f"for i{j} in range({candidates}.shape[0]):"], [], []

    @staticmethod
    def _words_below(j: int) -> str:
        return f"(i{j} >> 6) + 1"

    def local_set(self, j: int, parent: str | None) -> tuple[list[str], str]:
        if parent is None:
            return [], f"rows[i{j - 1}]"
        return [f"and_into({parent}, rows[i{j - 1}], {self._words_below(j - 1)}, bits_of_level{j})"], \
            f"bits_of_level{j}"

    def bits_loop(self, j: int, candidates: str, body: list[str], innermost: bool) -> list[str]:
        return [f"for w{j} in range({self._words_below(j - 1)}):",
                f"    word{j} = {candidates}[w{j}]",
                f"    while word{j}:",
                f"        i{j} = (w{j} << 6) | lowest_bit(word{j})",
                f"        word{j} &= word{j} - np.uint64(1)"] + ["        " + line for line in body]

    def count_local(self, j: int, parent: str | None) -> list[str]:
        row = f"rows[i{j - 1}]"
        return [f"c = and_count({parent or row}, {row}, {self._words_below(j - 1)})"]


NUMBA = NumbaDialect()


def numba_source(plan: SearchPlan) -> str:
    """The generated module for `plan`.

    - `count_kernel` (parallel) and `count_kernel_serial` (the same body on the
      calling thread): the DFS over the plan's edge list;
    - with a twin aggregation, also `twin_kernel` and `twin_kernel_serial`:
      parallel over v0, counting wedges per key vertex.
    """
    plan_comment = "\n".join("# " + line for line in str(plan).splitlines())
    lines = [
        '"""Generated from a G2Miner search plan by impls.g2miner.emit_numba; do not edit."""',
        plan_comment,
        "import numpy as np",
        "from numba import njit, prange",
        "from impls.g2miner.setops import (NO_BOUND, contains, count_below, difference, difference_count,",
        "                                  intersect, intersect_count)",
        "from impls.g2miner.bitsets import and_count, and_into, build_rows, lowest_bit",
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


def _buffers(walker: PlanWalker) -> list[str]:
    """The worker's buffers for the slots its walk writes, and the local graph's rows and level sets."""
    lines = [f"buf{s} = np.empty(max_degree, np.int32)" for s in sorted(walker.written_slots)]
    local = walker.plan.local_graph
    if local is not None:
        lines += ["words = (max_degree + 63) >> 6", "rows = np.empty((max_degree, words), np.uint64)"]
        lines += [f"bits_of_level{j} = np.empty(words, np.uint64)" for j in local.stored_levels(walker.plan.depth)]
    return lines


def _edge_body(plan: SearchPlan) -> list[str]:
    """One worker of the DFS: edges worker, worker + W, ... of the edge list."""
    walker = PlanWalker(plan, NUMBA)
    walk = walker.edge_walk()
    body = _buffers(walker) + ["acc = np.int64(0)", "for e in range(worker, src.shape[0], num_workers):"]
    return body + ["    " + line for line in walk] + ["totals[worker] = acc"]


def _twin_body(plan: SearchPlan) -> list[str]:
    """One worker of the twin aggregation: vertices worker, worker + W, ... as v0.

    `wedges[v]` counts the twin vertices through which v0 reaches key vertex v;
    `keys` lists the v touched for this v0, so the reset costs what the count did.
    """
    walker = PlanWalker(plan, NUMBA)
    walk = walker.twin_walk()
    body = _buffers(walker) + ["num_vertices = indptr.shape[0] - 1",
                             "wedges = np.zeros(num_vertices, np.int32)",
                             "keys = np.empty(num_vertices, np.int32)",
                             "acc = np.int64(0)",
                             "for v0 in range(worker, num_vertices, num_workers):"]
    inner = ["num_keys = 0", *walk,
             "for k in range(num_keys):",
             "    w = np.int64(wedges[keys[k]])",
             "    wedges[keys[k]] = 0",
             "    acc += w * (w - 1) // 2",
             "if acc < 0:",
             "    overflow[worker] = True"]
    return body + ["    " + line for line in inner] + ["totals[worker] = acc"]
