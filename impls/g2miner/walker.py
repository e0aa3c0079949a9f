"""The one walk over a search plan that every emitter shares; a dialect prints each piece.

`PlanWalker(plan, dialect)` visits the plan's levels, their set operations
(operands, bounds), the distinctness and membership tests and the rewrites
(`CountPairs`, `TwinAggregate`) once, in the order a DFS binds them, and asks
the dialect for the text of each piece.  The dialects (`emit_numba.NUMBA`,
`emit_c.C`) know only how to print: types, loops, set-operation calls,
atomics, barriers and thread indices.  A set is whatever the dialect makes of
it (a numba array expression, a C pointer and length); the walker only passes
sets from the dialect's hooks back into them.

Kernel shells (the function around a walk: its parameters, its loop over
edges or vertices, the final reduction) also belong to the dialects; the
walker gives them `edge_walk()` (levels 2.. below one edge) and `twin_walk()`
(levels 1..key below one v0, the key level counting wedges), and after a walk
`written_slots`, the buffer slots it writes (the ones a shell must provide).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from impls.g2miner.analyser import COUNT_BELOW, Level, Operand, SearchPlan, Step

# What a dialect makes of a set; the walker never looks inside.
SetExpr = Any


class Dialect(Protocol):
    """The printing hooks a plan walk needs.  `bound` is an expression, or None for no bound;
    `live` names a flag that is false when the current vertex is rejected (dialects that
    branch on rejection, `branches_on_rejection`, never receive one)."""

    indent: str
    branches_on_rejection: bool
    logical_and: str  # between the tests of a membership
    logical_not: str  # before a test

    def comment(self, text: str) -> list[str]: ...
    def bind_edge(self) -> list[str]: ...
    def neighbours(self, v: int) -> list[str]: ...
    def neighbour_set(self, v: int) -> SetExpr: ...
    def prefix(self, candidates: SetExpr, j: int) -> SetExpr: ...
    def min_of(self, names: list[str]) -> str: ...
    def setop(self, kind: str, left: SetExpr, right: SetExpr, bound: str | None, out: int | None,
              live: str | None) -> tuple[list[str], SetExpr | None]: ...
    def count_below(self, left: SetExpr, bound: str | None, live: str | None) -> list[str]: ...
    def contains(self, candidates: SetExpr, x: str) -> str: ...
    def decrement_count_if(self, test: str) -> list[str]: ...
    def zero_count_unless(self, live: str) -> list[str]: ...
    def add_count(self) -> list[str]: ...
    def add_pairs_of_count(self) -> list[str]: ...
    def open_loop(self, j: int, candidates: SetExpr, bound: str | None, live: str | None,
                  lanes_share: bool) -> tuple[list[str], list[str], list[str]]: ...
    def skip_equal(self, j: int, earlier: tuple[int, ...]) -> list[str]: ...
    def reject_equal(self, j: int, earlier: tuple[int, ...]) -> tuple[list[str], str]: ...
    def count_wedge(self, j: int) -> list[str]: ...
    # The local-graph rewrite: rows over a set, and sets of row indices as bits.
    def build_local_graph(self, candidates: SetExpr) -> list[str]: ...
    def open_local_loop(self, j: int, candidates: SetExpr) -> tuple[list[str], list[str], list[str]]: ...
    def local_set(self, j: int, parent: SetExpr | None) -> tuple[list[str], SetExpr]: ...
    def bits_loop(self, j: int, candidates: SetExpr, body: list[str], innermost: bool) -> list[str]: ...
    def count_local(self, j: int, parent: SetExpr | None) -> list[str]: ...


class PlanWalker:
    """Writes the body of a plan's kernels in one dialect."""

    def __init__(self, plan: SearchPlan, dialect: Dialect) -> None:
        self.plan = plan
        self.d = dialect
        # The buffer slots the walks so far write (a rewrite may leave some unused).
        self.written_slots: set[int] = set()

    def edge_walk(self) -> list[str]:
        """One edge's subtree: v0 and v1 from the edge list, then levels 2.. (or the count of level 2)."""
        lines = self.d.bind_edge()
        for v in (0, 1):
            if self.plan.needs_neighbours(v):
                lines += self.d.neighbours(v)
        return lines + self._level(2, {}, None, None)

    def twin_walk(self) -> list[str]:
        """One v0's wedges (v0 is bound by the shell): levels 1..key, the key level counting wedges."""
        assert self.plan.twin_aggregate is not None
        return self.d.neighbours(0) + self._level(1, {}, None, self.plan.twin_aggregate.key)

    def _bound(self, level: Level) -> str | None:
        return self.d.min_of([f"v{b}" for b in level.bounds]) if level.bounds else None

    def _operand(self, operand: Operand, slots: dict[int, SetExpr]) -> SetExpr:
        kind, index = operand
        if kind == "N":
            return self.d.neighbour_set(index)
        if kind == "S":
            return slots[index]
        return self.d.prefix(self._operand(self.plan.levels[index].result, slots), index)

    def _step(self, step: Step, level: Level, slots: dict[int, SetExpr], live: str | None) -> list[str]:
        bound = self._bound(level) if step.bounded else None
        left = self._operand(step.left, slots)
        if step.kind == COUNT_BELOW:
            return self.d.count_below(left, bound, live)
        lines, result = self.d.setop(step.kind, left, self.d.neighbour_set(step.right), bound, step.out, live)
        if step.out is not None:
            slots[step.out] = result
            self.written_slots.add(step.out)
        return lines

    def _membership(self, level: Level, vertex: str) -> str:
        """Whether `vertex` lies in the level's candidate set (before distinctness)."""
        d = self.d
        tests = [f"{vertex} < v{level.prefix}"] if level.prefix is not None else []
        if level.bounds:
            tests.append(f"{vertex} < {self._bound(level)}")
        tests += [d.contains(d.neighbour_set(i), vertex) for i in level.connected]
        tests += [d.logical_not + d.contains(d.neighbour_set(i), vertex) for i in level.disconnected]
        return d.logical_and.join(tests)

    def _level(self, j: int, slots: dict[int, SetExpr], live: str | None, wedge_key: int | None) -> list[str]:
        """Levels j.. of the DFS.  `live` is the parent's "this vertex is distinct" flag: a rejected
        vertex empties the first set below it instead of branching, in dialects where no barrier may
        sit under a data-dependent branch.  With `wedge_key` (the twin walk) that level ends the walk."""
        plan, d = self.plan, self.d
        level = plan.levels[j]
        slots = dict(slots)
        out = d.comment(f"level {j}: v{j} ∈ {level.candidate_expr(plan.oriented)}")
        steps = level.steps
        pairs = plan.count_pairs is not None and plan.count_pairs.level == j and j != wedge_key
        if pairs:  # the rewrite: count the set, do not write it
            steps = steps[:-1] + (dataclasses.replace(steps[-1], out=None),)
        for k, step in enumerate(steps):
            out += self._step(step, level, slots, live if k == 0 else None)
        if plan.local_graph is not None and plan.local_graph.level == j:
            assert live is None and wedge_key is None  # cliques: no distinctness, no twins
            return out + self._local_graph(j, self._operand(level.result, slots))
        if pairs:
            child = plan.levels[j + 1]
            return out + d.comment(f"level {j + 1}: v{j + 1} ∈ {child.candidate_expr(plan.oriented)}, "
                                   f"summed over v{j} as C(n, 2)") + d.add_pairs_of_count()
        if level.count_only:
            for m in level.distinct_from:
                out += d.decrement_count_if(self._membership(level, f"v{m}"))
            if live is not None:
                out += d.zero_count_unless(live)
            return out + d.add_count()
        bound = self._bound(level) if level.bounds and not level.bounded_build else None
        head, body, tail = d.open_loop(j, self._operand(level.result, slots), bound,
                                       live if not level.steps else None, lanes_share=j == wedge_key)
        if j == wedge_key:
            body += d.skip_equal(j, level.distinct_from) + d.count_wedge(j)
        else:
            child_live = None
            if level.distinct_from:
                if d.branches_on_rejection:
                    body += d.skip_equal(j, level.distinct_from)
                else:
                    lines, child_live = d.reject_equal(j, level.distinct_from)
                    body += lines
            if plan.needs_neighbours(j):
                body += d.neighbours(j)
            body += self._level(j + 1, slots, child_live, wedge_key)
        return out + head + [d.indent + line for line in body] + tail

    def _local_graph(self, j: int, candidates: SetExpr) -> list[str]:
        """The local-graph rewrite from level j: rows over level j's set, then one loop over its indices."""
        d = self.d
        head, body, tail = d.open_local_loop(j, candidates)
        body += self._local_level(j + 1, None)
        return (d.comment(f"local graph: bitset rows over level {j}'s set") + d.build_local_graph(candidates)
                + head + [d.indent + line for line in body] + tail)

    def _local_level(self, j: int, parent: SetExpr | None) -> list[str]:
        """Level j on the local graph: its set is `parent` AND the row of i_(j-1) (the row alone
        below the first local level), every bit below i_(j-1)."""
        plan, d = self.plan, self.d
        out = d.comment(f"level {j}: v{j} ∈ {plan.levels[j].candidate_expr(plan.oriented)}, as bits")
        if plan.levels[j].count_only:
            return out + d.count_local(j, parent) + d.add_count()
        lines, candidates = d.local_set(j, parent)
        innermost = plan.levels[j + 1].count_only
        return out + lines + d.bits_loop(j, candidates, self._local_level(j + 1, candidates), innermost)
