"""The pattern analyser and the search-plan IR every kernel emitter reads.

`plan(pattern, induced)` turns a pattern into a `SearchPlan`:

1. **Matching order** (`matching_order`): vertices in the order the DFS binds
   them, each connected to an earlier one, maximising back-connectivity
   level by level (more earlier neighbours = more intersections = smaller
   candidate sets early), ties broken towards high pattern degree.
2. **Symmetry breaking** (`symmetry_order`): from the automorphism group, the
   classic orbit/stabiliser construction gives constraints `v_j < v_i`
   (j later than i) under which each subgraph is matched exactly once.
3. **Orientation**: a clique needs no constraint at all; it is searched on
   the degree-ordered DAG, where each clique appears once.
4. **Levels**: level j's candidates are the intersection of the neighbour
   lists of its earlier pattern neighbours (`connected`), minus the lists of
   its earlier non-neighbours when vertex-induced (`disconnected`), below the
   symmetry bound (`bounds`), and distinct from earlier levels that no
   constraint already separates (`distinct_from`).
5. **Lowering** (`Step`s): each level reuses the stored set of an earlier
   level whose operations are a subset of its own (`base`), then applies the
   remaining set operations, writing into per-level buffer slots; the last
   level only counts.  Emitters translate steps one to one and never look at
   the pattern itself.
Steps 1-5 give the complete lowering (`lower`); the rewrites below are passes
over it (`REWRITES`, applied in order by `plan`), each recording an optional
shortcut on the plan that every emitter honours and the plan printer shows:

6. **C(n, 2) for an unfiltered last level** (`CountPairs`, optional): when the
   last level counts the prefix of the level before it (`count(cand_j[:i_j])`)
   and nothing filters level j's loop, that loop sums 0 + 1 + ... + (n - 1) over
   the n candidates of level j: the kernel counts level j's set and adds C(n, 2).
7. **Edge triangles** (`EdgeTriangles`, optional): when that C(n, 2) is taken
   over each edge's common neighbours, n is the edge's triangle count, which an
   oriented triangle listing gives for all edges at once.
8. **Local graph** (`LocalGraph`, cliques of 5 or more vertices): level 2's set
   S becomes bitset rows (row a = the elements of S that S[a] points to), so the
   deeper levels are ANDs of rows and the last one a popcount.
9. **Twin aggregation** (`TwinAggregate`, optional): when the last level and an
   earlier level bind *twins* (same pattern neighbours, not adjacent, the same
   symmetry bounds against every other level, one below the other), the count
   for fixed values of the remaining levels is C(|S|, 2), where S is the twins'
   common candidate set.  For four levels with twins at levels 1 and 3, the
   remaining key level 2 is reached through level 1 (a wedge v0 - v1 - v2), so
   |S(v0, v2)| is the number of wedges from v0 to v2: a backend may count
   wedges per key vertex and sum C(w, 2) instead of intersecting per wedge.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass

from impls.g2miner.pattern import Pattern

# Where a set lives: ("N", i) is the neighbour list of the vertex bound at
# level i; ("S", s) is buffer slot s; ("P", m) is the prefix of level m's
# candidate set before its current element (every element below v_m).
Operand = tuple[str, int]

INTERSECT = "intersect"
DIFFERENCE = "difference"
COUNT_BELOW = "count_below"


@dataclass(frozen=True)
class Step:
    """One set operation: `left` op N(v_right) into slot `out`, or counted when `out` is None.

    `bounded` steps keep only elements below the level's symmetry bound.
    COUNT_BELOW has no right operand: it counts the elements of `left` below the bound.
    """

    kind: str
    left: Operand
    right: int | None
    out: int | None
    bounded: bool

    def __str__(self) -> str:
        symbol = {INTERSECT: "∩", DIFFERENCE: "−"}.get(self.kind)
        expr = _operand_str(self.left) if symbol is None else f"{_operand_str(self.left)} {symbol} N(v{self.right})"
        if self.bounded:
            expr += " [bounded]"
        return f"count({expr})" if self.out is None else f"buf{self.out} = {expr}"


@dataclass(frozen=True)
class Level:
    """How the DFS binds the pattern vertex of one level."""

    index: int
    pattern_vertex: int
    connected: tuple[int, ...]
    disconnected: tuple[int, ...]
    bounds: tuple[int, ...]
    distinct_from: tuple[int, ...]
    base: int | None
    steps: tuple[Step, ...]
    result: Operand | None
    count_only: bool
    bounded_build: bool
    # The level whose candidates before the current one this level starts from, if any
    # (so v_j < v_prefix holds without a check).
    prefix: int | None = None

    def candidate_expr(self, oriented: bool) -> str:
        nbr = "N+" if oriented else "N"
        terms = " ∩ ".join(f"{nbr}(v{i})" for i in self.connected)
        for d in self.disconnected:
            terms += f" − {nbr}(v{d})"
        below = self.bounds + ((self.prefix,) if self.prefix is not None else ())
        conditions = [f"< v{b}" for b in below] + [f"≠ v{m}" for m in self.distinct_from]
        return terms + (f", {', '.join(conditions)}" if conditions else "")


@dataclass(frozen=True)
class TwinAggregate:
    """A count-only shortcut: levels `twin` and `last` bind interchangeable vertices.

    Parallel over v0; the DFS runs levels 1..`key` as planned (level `twin` is among
    them), and instead of binding `last` it adds one to a per-worker counter of v_key.
    Each key's count w is the size of the twins' common candidate set, and the
    matches are the C(w, 2) pairs of it, the lower one at level `last`.
    """

    twin: int
    key: int
    last: int

    def __str__(self) -> str:
        return (f"twin aggregation: v{self.twin} and v{self.last} are twins; per v0, count the v{self.twin} "
                f"that reach each v{self.key} (w), and add C(w, 2)")


@dataclass(frozen=True)
class CountPairs:
    """A count-only shortcut: level `level`'s loop only feeds a last level counting the prefix before v_level.

    Over level `level`'s n candidates that sums 0 + 1 + ... + (n - 1) = C(n, 2), so the
    kernel counts the set (its last step writes nothing), adds C(n, 2) and binds no v_level.
    """

    level: int

    def __str__(self) -> str:
        j = self.level
        return (f"C(n, 2) rewrite: level {j + 1} counts cand{j}[:i{j}] for each v{j}, which sums to C(n, 2) "
                f"over level {j}'s n candidates; level {j} counts its set instead of writing it and looping")


@dataclass(frozen=True)
class EdgeTriangles:
    """A count-only shortcut for a `CountPairs` over each edge's common neighbours.

    When the count is Σ over edges (v0, v1), each once, of C(t, 2) with t = |N(v0) ∩ N(v1)|,
    t is the edge's number of triangles.  A backend lists each triangle once on the
    degree orientation (on a graph labelled by ascending degree, the part of each sorted
    neighbour list above the vertex), adds one to each of its three edges, and sums
    C(t, 2): one oriented merge per edge instead of one merge of whole lists.  It
    needs the whole edge list (every triangle of an edge), as the twin aggregation does.
    """

    def __str__(self) -> str:
        return ("edge triangles: the count is Σ over edges of C(t, 2), t = |N(v0) ∩ N(v1)| the edge's triangles; "
                "list each triangle once on the degree orientation, add one to its three edges, sum C(t, 2)")


@dataclass(frozen=True)
class LocalGraph:
    """Cliques below level `level` on a per-edge local graph of bitsets.

    Level `level`'s set S (the common out-neighbours of v0 and v1, ascending)
    becomes bitset rows over S's indices: row a holds the b with S[b] in N+(S[a]),
    all below a by the orientation, which is level `level` + 1's set for v_level = S[a].
    Each deeper level's set is the AND of its parent's set and the parent's row,
    and the last level counts the bits of that AND (popcount) instead of intersecting.
    """

    level: int

    def stored_levels(self, depth: int) -> range:
        """The levels whose bit sets are stored (the row alone serves level + 1; the last one is only counted)."""
        return range(self.level + 2, depth - 1)

    def __str__(self) -> str:
        j = self.level
        return (f"local graph: level {j}'s set S becomes bitset rows, row a = S[:a] ∩ N+(S[a]); "
                f"level {j + 1} takes row(i{j}), each deeper level ANDs its parent's set with the parent's row, "
                "and the last level counts the bits of that AND")


@dataclass(frozen=True)
class SearchPlan:
    """A pattern's search plan: matching order, symmetry bounds and per-level set operations."""

    pattern: Pattern
    induced: bool
    oriented: bool
    order: tuple[int, ...]
    automorphisms: int
    constraints: tuple[tuple[int, int], ...]
    levels: tuple[Level, ...]
    edge_list: str
    num_slots: int
    # Optional count-only rewrites of the last levels (the passes in REWRITES); `levels`
    # stays the complete lowering.  The twin aggregation needs a whole edge list.
    count_pairs: CountPairs | None = None
    twin_aggregate: TwinAggregate | None = None
    local_graph: LocalGraph | None = None
    edge_triangles: EdgeTriangles | None = None

    @property
    def depth(self) -> int:
        return len(self.levels)

    def needs_neighbours(self, level: int) -> bool:
        """Whether some step or distinctness test reads N(v_level)."""
        for lv in self.levels[2:]:
            if lv.result == ("N", level):
                return True
            for step in lv.steps:
                if step.right == level or step.left == ("N", level):
                    return True
            if lv.count_only and lv.distinct_from and (level in lv.connected or level in lv.disconnected):
                return True
        return False

    def __str__(self) -> str:
        p = self.pattern
        mode = "vertex-induced" if self.induced else "edge-induced"
        lines = [f"search plan for {p.name} ({mode}): {p.num_vertices} vertices, {p.num_edges} edges, "
                 f"|Aut| = {self.automorphisms}"]
        lines.append("matching order: " + ", ".join(f"v{i} = pattern vertex {u}" for i, u in enumerate(self.order)))
        if self.oriented:
            lines.append("orientation: degree-ordered DAG, arcs from higher to lower degree rank "
                         "(N+ = out-neighbours); each clique is found once, with v0 > v1 > ... by construction")
        else:
            rules = ", ".join(f"v{j} < v{i}" for j, i in self.constraints) or "none (no automorphism)"
            lines.append(f"symmetry order: {rules}")
        edges = {"oriented": "every arc of the DAG", "halved": "each edge once, v1 < v0",
                 "full": "each edge in both directions"}[self.edge_list]
        lines.append(f"level 0: v0 ∈ V;  level 1: v1 ∈ {'N+' if self.oriented else 'N'}(v0)"
                     f"  (parallel over edges: {edges})")
        for lv in self.levels[2:]:
            tail = "  [count only]" if lv.count_only else ""
            base = f"  (reuses level {lv.base}'s set)" if lv.base is not None else ""
            lines.append(f"level {lv.index}: v{lv.index} ∈ {lv.candidate_expr(self.oriented)}{base}{tail}")
            for step in lv.steps:
                lines.append(f"    {step}")
        lines.append(f"buffers per worker: {self.num_slots} × max degree")
        lines += [str(rewrite) for rewrite in (self.count_pairs, self.edge_triangles, self.twin_aggregate,
                                               self.local_graph) if rewrite is not None]
        return "\n".join(lines)


def _operand_str(operand: Operand) -> str:
    kind, index = operand
    return {"N": f"N(v{index})", "S": f"buf{index}", "P": f"cand{index}[:i{index}]"}[kind]


def automorphisms(pattern: Pattern) -> list[tuple[int, ...]]:
    """Every automorphism as a permutation p (p[v] is the image of v), found by backtracking."""
    adj = pattern.adjacency()
    n = pattern.num_vertices
    found: list[tuple[int, ...]] = []
    image = [-1] * n
    used = [False] * n

    def extend(v: int) -> None:
        if v == n:
            found.append(tuple(image))
            return
        for w in range(n):
            if used[w] or len(adj[w]) != len(adj[v]):
                continue
            # Adjacency to every vertex mapped so far must be preserved both ways.
            if all((u in adj[v]) == (image[u] in adj[w]) for u in range(v)):
                image[v], used[w] = w, True
                extend(v + 1)
                image[v], used[w] = -1, False

    extend(0)
    return found


def matching_order(pattern: Pattern) -> tuple[int, ...]:
    """The connected vertex order with the most back-edges, earliest levels first."""
    adj = pattern.adjacency()
    n = pattern.num_vertices
    best: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    best_order: tuple[int, ...] = ()

    def search(prefix: list[int], back: list[int]) -> None:
        nonlocal best, best_order
        if len(prefix) == n:
            score = (tuple(back), tuple(len(adj[u]) for u in prefix))
            if best is None or score > best:
                best, best_order = score, tuple(prefix)
            return
        for u in range(n):
            if u in prefix:
                continue
            links = sum(1 for w in prefix if w in adj[u])
            if prefix and links == 0:
                continue
            prefix.append(u)
            back.append(links)
            search(prefix, back)
            prefix.pop()
            back.pop()

    if pattern.is_clique:
        return tuple(range(n))  # every order is equivalent
    search([], [])
    return best_order


def symmetry_order(pattern: Pattern, order: tuple[int, ...]) -> list[tuple[int, int]]:
    """Constraints (j, i), meaning v_j < v_i with j > i, that match each subgraph once.

    Walk the levels in order; at the first level whose orbit under the remaining
    group is non-trivial, every other orbit member must map below it, and the
    group shrinks to that level's stabiliser.
    """
    position = {u: i for i, u in enumerate(order)}
    group = [tuple(position[a[u]] for u in order) for a in automorphisms(pattern)]
    constraints: list[tuple[int, int]] = []
    for i in range(len(order)):
        orbit = {g[i] for g in group}
        constraints.extend((j, i) for j in sorted(orbit - {i}))
        group = [g for g in group if g[i] == i]
    return constraints


@functools.lru_cache(maxsize=256)
def plan(pattern: Pattern, induced: bool = False) -> SearchPlan:
    """The search plan for `pattern`, vertex-induced when `induced`, edge-induced otherwise: the
    complete lowering, then every rewrite pass of REWRITES in turn."""
    result = lower(pattern, induced)
    for rewrite in REWRITES:
        result = rewrite(result)
    return result


def lower(pattern: Pattern, induced: bool = False) -> SearchPlan:
    """The complete lowering of `pattern` to levels and steps, without any rewrite."""
    oriented = pattern.is_clique
    order = matching_order(pattern)
    n = len(order)
    adj = pattern.adjacency()
    if oriented:
        # Cliques run on the DAG whose arcs all point to lower ids, so v_j < v_(j-1)
        # holds by construction: no check is emitted, but prefixes may rely on it.
        constraints = [(j, j - 1) for j in range(1, n)]
    else:
        constraints = symmetry_order(pattern, order)
    below = _transitive_closure(n, constraints)

    connected = [tuple(i for i in range(j) if order[i] in adj[order[j]]) for j in range(n)]
    disconnected = [tuple(i for i in range(j) if order[i] not in adj[order[j]]) if induced else ()
                    for j in range(n)]
    # The tightest bounds: drop v_i when some other bound v_h < v_i is already implied.
    bounds = [tuple(i for i in range(j) if (j, i) in below and not any((h, i) in below for h in range(j)
                                                                      if (j, h) in below))
              for j in range(n)]
    distinct = [tuple(m for m in range(j) if m not in connected[j] and (j, m) not in below) for j in range(n)]
    bases = [_base_level(j, connected, disconnected) for j in range(n)]
    # When v_j < v_base, level j needs only the base set's elements before the current
    # v_base: a prefix of the sorted set, which enforces that bound for free.
    prefix = [bases[j] is not None and bases[j] in bounds[j] for j in range(n)]
    enforced = [() if oriented else tuple(b for b in bounds[j] if not (prefix[j] and b == bases[j]))
                for j in range(n)]
    reused = {bases[j] for j in range(n) if bases[j] is not None and not prefix[j]}

    levels: list[Level] = []
    slots = _SlotAllocator()
    for j in range(n):
        if j < 2:
            levels.append(Level(j, order[j], connected[j], (), bounds[j] if j == 1 else (), distinct[j], None, (),
                                ("N", 0) if j == 1 else None, j == n - 1, False))
            continue
        last = j == n - 1
        bounded = bool(enforced[j]) and j not in reused
        base = bases[j]
        ops = [(INTERSECT, i) for i in connected[j]] + [(DIFFERENCE, d) for d in disconnected[j]]
        if base is None:
            left: Operand = ("N", connected[j][0])
            ops = ops[1:]
        else:
            left = ("P", base) if prefix[j] else levels[base].result
            ops = [op for op in ops if op[1] not in connected[base] and op[1] not in disconnected[base]]
        steps, result = slots.lower(left, ops, bounded, count=last)
        levels.append(Level(j, order[j], connected[j], disconnected[j], enforced[j], distinct[j], base,
                            tuple(steps), result, last, bounded and bool(steps), base if prefix[j] else None))

    if oriented:
        edge_list = "oriented"
    elif 0 in bounds[1]:
        edge_list = "halved"
    else:
        edge_list = "full"
    return SearchPlan(pattern, induced, oriented, order, len(automorphisms(pattern)), tuple(constraints),
                      tuple(levels), edge_list, slots.count)


def count_pairs_pass(search_plan: SearchPlan) -> SearchPlan:
    """Record `CountPairs(j)` when the last level only counts the prefix of level j = depth - 2 and
    nothing filters level j's loop (no distinctness test, no bound checked in the loop)."""
    j = search_plan.depth - 2
    if j < 2:
        return search_plan
    level, child = search_plan.levels[j], search_plan.levels[j + 1]
    if not level.steps or level.distinct_from or child.distinct_from or (level.bounds and not level.bounded_build):
        return search_plan
    if child.steps != (Step(COUNT_BELOW, ("P", j), None, None, False),):
        return search_plan
    return _with_written_slots(dataclasses.replace(search_plan, count_pairs=CountPairs(j)))


def twin_aggregate_pass(search_plan: SearchPlan) -> SearchPlan:
    """Record the twin aggregation when the plan's structure allows it (see `_twin_aggregate`)."""
    if search_plan.oriented:
        return search_plan
    below = _transitive_closure(search_plan.depth, list(search_plan.constraints))
    twins = _twin_aggregate(search_plan.order, search_plan.pattern.adjacency(), below, search_plan.levels)
    return search_plan if twins is None else dataclasses.replace(search_plan, twin_aggregate=twins)


def local_graph_pass(search_plan: SearchPlan) -> SearchPlan:
    """Record `LocalGraph(2)` for cliques of 5 or more vertices.

    Then the levels below 2 intersect prefixes of level 2's set with out-lists, which
    bitset rows over that set replace: the intersections are done once per row, and
    the deepest levels (where the work is) become AND + popcount.  A 4-clique's last
    level is the row itself, so building rows would only repeat its work.
    """
    if not search_plan.oriented or search_plan.depth < 5:
        return search_plan
    return _with_written_slots(dataclasses.replace(search_plan, local_graph=LocalGraph(2)))


def _with_written_slots(search_plan: SearchPlan) -> SearchPlan:
    """The plan with `num_slots` counting only the slots its rewrites leave written.

    C(n, 2) counts its level's last set instead of writing it; below a local graph
    no level writes a buffer.
    """
    written = set()
    for level in search_plan.levels:
        if search_plan.local_graph is not None and level.index > search_plan.local_graph.level:
            break
        steps = level.steps
        if search_plan.count_pairs is not None and level.index == search_plan.count_pairs.level:
            steps = steps[:-1]
        written.update(step.out for step in steps if step.out is not None)
    return dataclasses.replace(search_plan, num_slots=max(written) + 1 if written else 0)


def edge_triangles_pass(search_plan: SearchPlan) -> SearchPlan:
    """Record `EdgeTriangles` when the plan sums C(|N(v0) ∩ N(v1)|, 2) over every edge once.

    That is: `CountPairs` at level 2 of four levels, the edge list halved (each edge
    once), and level 2's set exactly N(v0) ∩ N(v1): no bound, no difference.
    """
    pairs = search_plan.count_pairs
    if pairs is None or pairs.level != 2 or search_plan.depth != 4 or search_plan.edge_list != "halved":
        return search_plan
    level = search_plan.levels[2]
    if level.connected != (0, 1) or level.disconnected or level.bounds or len(level.steps) != 1:
        return search_plan
    step = level.steps[0]
    if (step.kind, step.left, step.right, step.bounded) != (INTERSECT, ("N", 0), 1, False):
        return search_plan
    return dataclasses.replace(search_plan, edge_triangles=EdgeTriangles())


# The rewrite passes `plan` applies to the lowering, in order.
REWRITES = (count_pairs_pass, edge_triangles_pass, twin_aggregate_pass, local_graph_pass)


def _twin_aggregate(order: tuple[int, ...], adj: tuple[frozenset[int], ...], below: set[tuple[int, int]],
                    levels: tuple[Level, ...]) -> TwinAggregate | None:
    """The twin aggregation for four levels whose levels 1 and 3 bind twins, when the plan allows it.

    Conditions, all read from the plan: levels 1 and 3 have the same pattern
    neighbours and are not adjacent; v3 < v1; every other level k relates to both
    the same way (v_k < v_1 iff v_k < v_3, and the reverse); no set differences
    (pairs of S must be free to be adjacent) and no distinctness test at level 3
    or on level 1; level 2 is reached from v1 and is adjacent to v1, not to v0
    (a wedge), so v3's candidates depend on v0 and v2 only.
    """
    if len(levels) != 4:
        return None
    twin, key, last = 1, 2, 3
    u_twin, u_last = order[twin], order[last]
    if adj[u_twin] != adj[u_last] or u_last in adj[u_twin] or (last, twin) not in below:
        return None
    for k in (0, key):
        if ((twin, k) in below) != ((last, k) in below) or ((k, twin) in below) != ((k, last) in below):
            return None
    if any(lv.disconnected for lv in levels) or levels[last].distinct_from or levels[twin].distinct_from:
        return None
    if levels[key].connected != (twin,) or levels[last].connected != (0, key):
        return None
    return TwinAggregate(twin, key, last)


def _transitive_closure(n: int, pairs: list[tuple[int, int]]) -> set[tuple[int, int]]:
    closure = set(pairs)
    for k, i, j in itertools.product(range(n), repeat=3):
        if (i, k) in closure and (k, j) in closure:
            closure.add((i, j))
    return closure


def _base_level(j: int, connected: list[tuple[int, ...]], disconnected: list[tuple[int, ...]]) -> int | None:
    """The earlier level (>= 2) with the most operations, all of which level j also needs."""
    best, best_size = None, 0
    for m in range(2, j):
        if set(connected[m]) <= set(connected[j]) and set(disconnected[m]) <= set(disconnected[j]):
            size = len(connected[m]) + len(disconnected[m])
            if size >= best_size:
                best, best_size = m, size
    return best


class _SlotAllocator:
    """Hands out buffer slots: one per level that writes a set, plus one shared scratch slot.

    A level with W writes alternates between its own slot and the scratch slot so
    that the last write lands in its own slot (an operation never reads and
    writes the same buffer).
    """

    def __init__(self) -> None:
        self.count = 0
        self.scratch: int | None = None

    def _new(self) -> int:
        self.count += 1
        return self.count - 1

    def lower(self, left: Operand, ops: list[tuple[str, int]], bounded: bool,
              count: bool) -> tuple[list[Step], Operand | None]:
        if count and not ops:
            return [Step(COUNT_BELOW, left, None, None, bounded)], None
        writes = len(ops) - 1 if count else len(ops)
        own = self._new() if writes else None
        if writes >= 2 and self.scratch is None:
            self.scratch = self._new()
        steps = []
        for k, (kind, right) in enumerate(ops, start=1):
            if count and k == len(ops):
                steps.append(Step(kind, left, right, None, bounded))
                break
            out = own if (writes - k) % 2 == 0 else self.scratch
            steps.append(Step(kind, left, right, out, bounded))
            left = ("S", out)
        return steps, (None if count else left)
