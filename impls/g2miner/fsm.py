"""Frequent subgraph mining (k-FSM, up to 2 edges) with minimum-image (domain) support.

A labelled pattern's support is the smallest, over its vertices, number of
distinct graph vertices that some embedding maps that vertex to (automorphic
pattern vertices share one domain).  Support is anti-monotone, so:

- label-frequency pruning: a label carried by fewer than `support` vertices
  can be in no frequent pattern, and its vertices are dropped first;
- a 2-edge pattern (wedge a–b–c) is examined only when both its edges
  (a, b) and (b, c) are frequent.

Domains come straight from per-vertex neighbour-label counts, so each pattern
costs one pass over the arcs with the right labels; embeddings are never listed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workloads.graphs import CSRGraph

FSM_MAX_EDGES = (1, 2)


@dataclass(frozen=True)
class FrequentPattern:
    """A frequent labelled pattern: `labels[i]` is pattern vertex i's label."""

    labels: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]
    support: int

    def __str__(self) -> str:
        if len(self.edges) == 1:
            shape = f"{self.labels[0]}–{self.labels[1]}"
        else:
            shape = f"{self.labels[1]}–{self.labels[0]}–{self.labels[2]}"
        return f"{shape} (support {self.support})"


def fsm(graph: CSRGraph, support: int, max_edges: int = 2, backend: str = "cpu") -> list[FrequentPattern]:
    """Labelled patterns with up to `max_edges` edges whose domain support is >= `support`.

    Wedges are listed with the centre as vertex 0: labels (centre, leaf, leaf), leaves ascending.
    """
    if backend != "cpu":
        raise ValueError(f"fsm runs on backend 'cpu' only, not {backend!r}")
    if graph.vlabels is None:
        raise ValueError(f"fsm needs a labelled graph; graph {graph.name!r} has no vertex labels")
    if isinstance(support, bool) or not isinstance(support, (int, np.integer)) or support < 1:
        raise ValueError(f"support must be a positive integer, not {support!r}")
    if max_edges not in FSM_MAX_EDGES:
        raise ValueError(f"max_edges={max_edges} is not supported; choose one of {FSM_MAX_EDGES}")

    labels = graph.vlabels.astype(np.int64)
    frequent_labels = np.flatnonzero(np.bincount(labels, minlength=256) >= support)
    src, dst = graph.arcs()
    keep = np.isin(labels[src], frequent_labels) & np.isin(labels[dst], frequent_labels)
    src, dst = src[keep], dst[keep]
    # counts[v, col[l]]: how many neighbours of v carry the frequent label l.
    col = np.full(256, -1, dtype=np.int64)
    col[frequent_labels] = np.arange(len(frequent_labels))
    counts = np.zeros((graph.num_vertices, len(frequent_labels)), dtype=np.int32)
    np.add.at(counts, (src, col[labels[dst]]), 1)

    def has_neighbours(label: int, at_least: int = 1) -> np.ndarray:
        return counts[:, col[label]] >= at_least

    found: list[FrequentPattern] = []
    frequent_edges: set[tuple[int, int]] = set()
    for a in frequent_labels:
        for b in frequent_labels[frequent_labels >= a]:
            # Vertices of label a with a b-neighbour, and vice versa (one domain when a == b).
            dom_a = np.count_nonzero((labels == a) & has_neighbours(b))
            dom_b = np.count_nonzero((labels == b) & has_neighbours(a))
            edge_support = min(dom_a, dom_b)
            if edge_support >= support:
                frequent_edges |= {(int(a), int(b)), (int(b), int(a))}
                found.append(FrequentPattern((int(a), int(b)), ((0, 1),), int(edge_support)))
    if max_edges == 1:
        return found

    arc_src_label, arc_dst_label = labels[src], labels[dst]
    for b in frequent_labels:
        leaves = sorted({a for (x, a) in frequent_edges if x == b})
        for i, a in enumerate(leaves):
            for c in leaves[i:]:
                same = a == c
                centre = labels == b
                centre &= has_neighbours(a, 2) if same else has_neighbours(a) & has_neighbours(c)
                domains = [np.count_nonzero(centre)]
                # A leaf x of label a is in its domain when some b-neighbour v has another
                # neighbour of label c (other than x itself when a == c).
                for leaf, other in ((a, c), (c, a)) if not same else ((a, a),):
                    arcs = (arc_src_label == leaf) & (arc_dst_label == b)
                    ok = counts[dst[arcs], col[other]] - (1 if same else 0) >= 1
                    domains.append(len(np.unique(src[arcs][ok])))
                wedge_support = min(domains)
                if wedge_support >= support:
                    found.append(FrequentPattern((int(b), int(a), int(c)), ((0, 1), (0, 2)), int(wedge_support)))
    return found
