"""Patterns, the analyser and the plan IR (no kernel runs here)."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import pytest

from impls import g2miner
from impls.g2miner import analyser, pattern as patterns


def _aut_reference(p: patterns.Pattern) -> int:
    graph = nx.Graph(p.edges)
    return sum(1 for _ in nx.isomorphism.GraphMatcher(graph, graph).isomorphisms_iter())


@pytest.mark.parametrize("name", sorted(patterns.LIBRARY) + ["5-clique", "6-clique", "8-clique"])
def test_automorphisms_match_networkx(name):
    p = patterns.get(name)
    assert len(analyser.automorphisms(p)) == _aut_reference(p)


def test_names_and_aliases():
    assert patterns.get("rectangle") == patterns.get("4-cycle")
    assert patterns.get("Diamond").num_edges == 5
    assert patterns.get("7-clique").num_edges == 21
    assert patterns.get([(0, 1), (1, 2), (2, 0)]).is_clique
    for name in ["triangle", "diamond", "4-cycle", "tailed-triangle", "4-path", "3-star", "house", "pentagon"]:
        assert patterns.get(name).name == name


@pytest.mark.parametrize("edges, message", [
    ([], "empty pattern"),
    ([(0, 1), (2, 3), (3, 4)], "disconnected"),
    ([(0, 0), (0, 1)], "self loop"),
    ([(0, 2), (2, 3)], "no gap"),
    ([(0, 1)], "at least 3"),
    ([(i, i + 1) for i in range(9)], "at most 8"),
    ([(0, "x")], "not a pair of integers"),
    ([(0, -1), (0, 1)], "negative"),
])
def test_bad_patterns_are_refused(edges, message):
    with pytest.raises(ValueError, match=message):
        patterns.get(edges)


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="unknown pattern 'hexagon'"):
        patterns.get("hexagon")


@pytest.mark.parametrize("name", sorted(patterns.LIBRARY) + ["5-clique"])
def test_symmetry_order_keeps_exactly_one_of_each_automorphic_match(name):
    """For any distinct vertex ids, exactly one automorphic image satisfies every v_j < v_i."""
    p = patterns.get(name)
    order = analyser.matching_order(p)
    constraints = analyser.symmetry_order(p, order)
    for _ in range(20):
        ids = random.sample(range(1000), p.num_vertices)
        kept = 0
        for aut in analyser.automorphisms(p):
            level_ids = [ids[aut[u]] for u in order]  # id bound at each level under this image
            kept += all(level_ids[j] < level_ids[i] for j, i in constraints)
        assert kept == 1, (name, ids)
    assert all(j > i for j, i in constraints)


@pytest.mark.parametrize("name", sorted(patterns.LIBRARY))
def test_matching_order_is_connected(name):
    p = patterns.get(name)
    order = analyser.matching_order(p)
    adj = p.adjacency()
    assert sorted(order) == list(range(p.num_vertices))
    # Every level after the first has an earlier neighbour: its candidates come from intersections.
    assert all(any(order[i] in adj[order[j]] for i in range(j)) for j in range(1, len(order)))


def test_plan_reads_well():
    text = str(g2miner.plan("diamond"))
    assert "symmetry order: v1 < v0, v3 < v2" in text
    assert "level 2: v2 ∈ N(v0) ∩ N(v1)" in text
    assert "[count only]" in text
    induced = str(g2miner.plan("4-cycle", induced=True))
    assert "vertex-induced" in induced and "− N(v0)" in induced
    clique = g2miner.plan("5-clique")
    assert clique.oriented and clique.edge_list == "oriented" and "DAG" in str(clique)


def test_plan_levels_use_only_earlier_levels():
    for name, induced in itertools.product(sorted(patterns.LIBRARY) + ["6-clique"], (False, True)):
        plan = g2miner.plan(name, induced)
        for level in plan.levels[2:]:
            for step in level.steps:
                assert step.right is None or step.right < level.index
                assert step.left[0] != "N" or step.left[1] < level.index
            assert set(level.disconnected) <= set(range(level.index)) - set(level.connected)
            assert bool(level.disconnected) <= induced


def test_clique_size_is_checked(citeseer):
    for k in (3, 9, 2):
        with pytest.raises(ValueError, match=f"k={k}"):
            g2miner.cliques(citeseer, k)


def test_twin_aggregation_is_derived_from_the_plan_structure():
    # The 4-cycle written with other vertex numbers: found from its structure, not its name.
    relabelled = g2miner.plan([(0, 2), (2, 1), (1, 3), (3, 0)])
    assert relabelled.twin_aggregate == analyser.TwinAggregate(twin=1, key=2, last=3)
    assert "twin aggregation: v1 and v3 are twins" in str(relabelled)
    # Vertex-induced twins must not be adjacent, which C(w, 2) cannot see; cliques are oriented;
    # other library patterns have no twin pair in the required shape.
    assert g2miner.plan("4-cycle", induced=True).twin_aggregate is None
    for name in sorted(set(patterns.LIBRARY) - {"4-cycle"}) + ["5-clique"]:
        assert g2miner.plan(name).twin_aggregate is None, name
