"""Patterns: small connected graphs that the miner searches for.

A `Pattern` is a simple undirected graph on vertices 0..n-1.  Named patterns
come from `LIBRARY` (plus "k-clique" for any supported k); anything else is
written as an edge list.  Every constructor refuses empty, disconnected or
oversized patterns, so the analyser only ever sees connected ones.

A pattern is small: at most MAX_PATTERN_VERTICES (8) vertices, the largest the
analyser's plans and the generated kernels (k-cliques up to k = 8) are built and
tested for.  Ids beyond it are refused before anything is built, so a typo such
as `2-99999999999` costs one short message, and messages quote user text cut to
a readable length.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from workloads.limits import quote

MIN_PATTERN_VERTICES = 3
MAX_PATTERN_VERTICES = 8


@dataclass(frozen=True)
class Pattern:
    """A connected pattern: `edges` holds each edge once as (u, v) with u < v, sorted."""

    name: str
    num_vertices: int
    edges: tuple[tuple[int, int], ...]

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    def adjacency(self) -> tuple[frozenset[int], ...]:
        """Neighbour set of every pattern vertex."""
        adj: list[set[int]] = [set() for _ in range(self.num_vertices)]
        for u, v in self.edges:
            adj[u].add(v)
            adj[v].add(u)
        return tuple(frozenset(a) for a in adj)

    @property
    def is_clique(self) -> bool:
        n = self.num_vertices
        return self.num_edges == n * (n - 1) // 2

    def __str__(self) -> str:
        return f"{self.name} ({self.num_vertices} vertices, edges {list(self.edges)})"


def _connected(pattern: Pattern) -> bool:
    adj = pattern.adjacency()
    seen = {0}
    frontier = [0]
    while frontier:
        v = frontier.pop()
        for w in adj[v] - seen:
            seen.add(w)
            frontier.append(w)
    return len(seen) == pattern.num_vertices


def from_edges(edges: Iterable[Sequence[int]], name: str | None = None) -> Pattern:
    """A pattern from an edge list such as [(0, 1), (1, 2), (2, 0)].

    Vertex ids must be 0..n-1 with every vertex on some edge; duplicate edges
    (in either direction) are merged; self loops, empty and disconnected
    patterns are refused with ValueError.
    """
    label = quote(name or "pattern")
    if isinstance(edges, (str, bytes)) or not isinstance(edges, Iterable):
        raise ValueError(f"pattern {label}: edges must be a list of (u, v) pairs, not {quote(edges)}")
    normalised: set[tuple[int, int]] = set()
    for position, edge in enumerate(edges):
        u, v = _edge(edge, position, label)
        normalised.add((min(u, v), max(u, v)))
    if not normalised:
        raise ValueError(f"pattern {label}: empty pattern (no edges)")
    vertices = {x for edge in normalised for x in edge}
    n = max(vertices) + 1
    if len(vertices) != n:
        missing = sorted(set(range(n)) - vertices)
        raise ValueError(f"pattern {label}: vertices must be numbered 0..{n - 1} with no gap; "
                         f"{missing} lie on no edge")
    if n < MIN_PATTERN_VERTICES:
        raise ValueError(f"pattern {label}: {n} vertices; patterns need at least {MIN_PATTERN_VERTICES}")
    pattern = Pattern(name or f"pattern{sorted(normalised)}", n, tuple(sorted(normalised)))
    if not _connected(pattern):
        raise ValueError(f"pattern {label}: disconnected pattern; every vertex must be reachable from vertex 0")
    return pattern


def _edge(edge: object, position: int, label: str) -> tuple[int, int]:
    """One edge as two distinct vertex ids in 0..MAX_PATTERN_VERTICES-1, or ValueError saying why not."""
    pair = tuple(edge) if isinstance(edge, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(_is_int(x) for x in pair):
        raise ValueError(f"pattern {label}: edge {position} ({quote(edge)}) is not a pair of integers")
    u, v = int(pair[0]), int(pair[1])
    if u < 0 or v < 0:
        raise ValueError(f"pattern {label}: edge {position} has a negative vertex id")
    if max(u, v) >= MAX_PATTERN_VERTICES:
        raise ValueError(f"pattern {label}: edge {position} names vertex {quote(max(u, v), 20)}; a pattern has "
                         f"at most {MAX_PATTERN_VERTICES} vertices (MAX_PATTERN_VERTICES), numbered "
                         f"0..{MAX_PATTERN_VERTICES - 1}")
    if u == v:
        raise ValueError(f"pattern {label}: edge {position} ({u}, {v}) is a self loop")
    return u, v


def _is_int(value: object) -> bool:
    """An integer, but not a bool or a float that merely equals one (2.0 is not a vertex id)."""
    return not isinstance(value, bool) and isinstance(value, (int, numbers.Integral))


def clique(k: int) -> Pattern:
    """The complete graph on k vertices (k = 3..MAX_PATTERN_VERTICES)."""
    if not _is_int(k) or not MIN_PATTERN_VERTICES <= k <= MAX_PATTERN_VERTICES:
        raise ValueError(f"clique size k={quote(k, 20)} is outside {MIN_PATTERN_VERTICES}..{MAX_PATTERN_VERTICES}")
    name = "triangle" if k == 3 else f"{k}-clique"
    return from_edges([(i, j) for i in range(k) for j in range(i + 1, k)], name)


LIBRARY: dict[str, Pattern] = {
    "wedge": from_edges([(0, 1), (0, 2)], "wedge"),
    "triangle": clique(3),
    "4-path": from_edges([(0, 1), (1, 2), (2, 3)], "4-path"),
    "3-star": from_edges([(0, 1), (0, 2), (0, 3)], "3-star"),
    "4-cycle": from_edges([(0, 1), (1, 2), (2, 3), (3, 0)], "4-cycle"),
    "tailed-triangle": from_edges([(0, 1), (1, 2), (2, 0), (0, 3)], "tailed-triangle"),
    "diamond": from_edges([(0, 1), (1, 2), (2, 0), (0, 3), (1, 3)], "diamond"),
    "4-clique": clique(4),
    "house": from_edges([(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 4)], "house"),
    "pentagon": from_edges([(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)], "pentagon"),
}
ALIASES = {"rectangle": "4-cycle", "tailed_triangle": "tailed-triangle", "3-clique": "triangle"}

_CLIQUE_NAME = re.compile(r"^([0-9]+)-clique$")


def get(spec: "str | Pattern | Iterable[Sequence[int]]") -> Pattern:
    """Resolve a pattern name ("diamond", "rectangle", "6-clique"), a Pattern, or an edge list."""
    if isinstance(spec, Pattern):
        return spec
    if isinstance(spec, str):
        name = ALIASES.get(spec.strip().lower(), spec.strip().lower())
        if name in LIBRARY:
            return LIBRARY[name]
        match = _CLIQUE_NAME.match(name)
        if match:
            size = match.group(1)
            if len(size) > 3:
                raise ValueError(f"clique size k={quote(size, 20)} is outside {MIN_PATTERN_VERTICES}.."
                                 f"{MAX_PATTERN_VERTICES}")
            return clique(int(size))
        known = sorted(LIBRARY) + sorted(ALIASES) + [f"k-clique (k = {MIN_PATTERN_VERTICES}..{MAX_PATTERN_VERTICES})"]
        raise ValueError(f"unknown pattern {quote(spec)}; known patterns: {', '.join(known)}, or an edge list")
    return from_edges(spec)

