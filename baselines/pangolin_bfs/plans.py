"""Extension plans: how the BFS grows embeddings, level by level.

Pangolin lets an application say, per level, which embedding vertices to extend
from (`toExtend`) and which new vertices to keep (`toAdd`), and applies its
automorphism (canonicality) check otherwise.  An `ExtensionPlan` is that, as data
the CPU and GPU kernels both read:

- "rule" plans (cliques, edge-induced subgraph listing) extend from one source
  position per level and keep a new vertex u when it is distinct from the
  embedding, adjacent to the positions in `connected`, and within the
  symmetry-breaking bounds (`u < emb[p]` for p in `less`, `u > emb[p]` for p in
  `greater`);
- the "canonical" plan (motifs) extends from every position and keeps u when the
  extended embedding is canonical (Pangolin's vertex-induced automorphism check),
  so each connected vertex set is found once; the last level classifies each
  k-vertex set into its motif.

Embeddings start from the graph's edges: all arcs of the degree-ordered DAG for
cliques, and each undirected edge once (`first_edge` gives the id order of the
first two vertices) otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

MIN_CLIQUE, MAX_CLIQUE = 3, 8
MOTIF_NAMES = {
    3: ("wedge", "triangle"),
    4: ("4-path", "3-star", "4-cycle", "tailed-triangle", "diamond", "4-clique"),
}
FIRST_EDGE_DAG, FIRST_EDGE_ASCENDING, FIRST_EDGE_DESCENDING = 0, 1, 2


@dataclass(frozen=True)
class ExtensionPlan:
    """Per-level extension rules for embeddings of `k` vertices (see the module doc).

    The arrays are indexed by the position of the vertex being added (2..k-1;
    entries 0 and 1 are unused) and hold bitmasks over earlier positions.
    """

    name: str
    k: int
    canonical: bool
    oriented: bool
    first_edge: int
    source: np.ndarray
    connected: np.ndarray
    less: np.ndarray
    greater: np.ndarray
    outputs: tuple[str, ...]

    def __str__(self) -> str:
        lines = [f"{self.name}: {self.k} vertices, start from "
                 + ("DAG arcs" if self.oriented else
                    "edges v0 < v1" if self.first_edge == FIRST_EDGE_ASCENDING else "edges v0 > v1")]
        for position in range(2, self.k):
            if self.canonical:
                lines.append(f"  v{position}: any neighbour of v0..v{position - 1}, canonical (automorphism check)")
                continue
            rule = [f"v{position} in N(v{self.source[position]})"]
            rule += [f"adj v{p}" for p in _positions(self.connected[position]) if p != self.source[position]]
            rule += [f"< v{p}" for p in _positions(self.less[position])]
            rule += [f"> v{p}" for p in _positions(self.greater[position])]
            lines.append("  " + ", ".join(rule))
        return "\n".join(lines)


def _positions(mask: int) -> list[int]:
    return [p for p in range(32) if mask >> p & 1]


def _rule_plan(name: str, k: int, oriented: bool, first_edge: int,
               rules: dict[int, tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]]) -> ExtensionPlan:
    """Build a rule plan from {position: (source, connected, less, greater)}."""
    arrays = [np.zeros(k, dtype=np.int32) for _ in range(4)]
    for position, (source, connected, less, greater) in rules.items():
        arrays[0][position] = source
        arrays[1][position] = sum(1 << p for p in (source, *connected))
        arrays[2][position] = sum(1 << p for p in less)
        arrays[3][position] = sum(1 << p for p in greater)
    return ExtensionPlan(name, k, False, oriented, first_edge, *arrays, outputs=(name,))


def clique_plan(k: int) -> ExtensionPlan:
    """k-cliques on the degree-ordered DAG: extend from the last vertex, adjacent to all earlier ones."""
    if not MIN_CLIQUE <= k <= MAX_CLIQUE:
        raise ValueError(f"k must lie in {MIN_CLIQUE}..{MAX_CLIQUE} for cliques, not {k}")
    rules = {position: (position - 1, tuple(range(position - 1)), (), ()) for position in range(2, k)}
    return _rule_plan("triangle" if k == 3 else f"{k}-clique", k, True, FIRST_EDGE_DAG, rules)


# The engine relabels vertices by ascending degree for these plans, so a lower
# id is a lower degree: each level extends from the lowest-ranked vertex it can
# (the shortest neighbour list), the choice a Pangolin user makes in toExtend.

def four_cycle_plan() -> ExtensionPlan:
    """Edge-induced 4-cycles v0-v1-v3-v2-v0, one per automorphism class (v0 largest, v1 > v2)."""
    return _rule_plan("4-cycle", 4, False, FIRST_EDGE_DESCENDING, {
        2: (0, (), (1,), ()),       # v2 in N(v0), v2 < v1
        3: (2, (1,), (0,), ()),     # v3 in N(v2) & N(v1), v3 < v0
    })


def diamond_plan() -> ExtensionPlan:
    """Edge-induced diamonds: chord v0-v1 (v1 < v0), tips v2, v3 adjacent to both (v3 < v2)."""
    return _rule_plan("diamond", 4, False, FIRST_EDGE_DESCENDING, {
        2: (1, (0,), (), ()),       # v2 in N(v1) & N(v0)
        3: (1, (0,), (2,), ()),     # v3 in N(v1) & N(v0), v3 < v2
    })


def motif_plan(k: int) -> ExtensionPlan:
    """All connected vertex-induced k-vertex subgraphs, classified at the last level."""
    if k not in MOTIF_NAMES:
        raise ValueError(f"k must be one of {sorted(MOTIF_NAMES)} for motifs, not {k}")
    zeros = np.zeros(k, dtype=np.int32)
    return ExtensionPlan(f"{k}-motifs", k, True, False, FIRST_EDGE_ASCENDING,
                         zeros, zeros, zeros, zeros, outputs=MOTIF_NAMES[k])


_CLIQUE = re.compile(r"^(\d+)-clique$")
EDGE_INDUCED_PLANS = {"4-cycle": four_cycle_plan, "rectangle": four_cycle_plan, "diamond": diamond_plan}


def pattern_plan(pattern: str) -> ExtensionPlan:
    """The plan counting `pattern` (edge-induced): "triangle", "k-clique", "4-cycle"/"rectangle", "diamond"."""
    if pattern == "triangle":
        return clique_plan(3)
    match = _CLIQUE.match(pattern)
    if match:
        return clique_plan(int(match.group(1)))
    if pattern in EDGE_INDUCED_PLANS:
        return EDGE_INDUCED_PLANS[pattern]()
    raise ValueError(f"pattern {pattern!r} is not supported by pangolin_bfs; "
                     f"supported: triangle, k-clique (k={MIN_CLIQUE}..{MAX_CLIQUE}), 4-cycle, rectangle, diamond")
