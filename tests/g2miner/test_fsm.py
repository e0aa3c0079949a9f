"""Frequent subgraph mining: domain support against brute-force enumeration of embeddings."""

from __future__ import annotations

import itertools

import pytest

from impls import g2miner

from tests.g2miner.conftest import fresh_seed, random_graph


def brute_force_supports(reference, max_edges: int) -> dict[tuple, int]:
    """Domain support of every labelled edge and wedge, from every embedding."""
    label = reference.nodes
    domains: dict[tuple, list[set]] = {}
    for u, v in itertools.permutations(reference.nodes, 2):
        if reference.has_edge(u, v):
            a, b = label[u]["label"], label[v]["label"]
            if a <= b:
                doms = domains.setdefault((a, b), [set(), set()])
                doms[0].add(u)
                doms[1].add(v)
    supports = {}
    for (a, b), (d0, d1) in domains.items():
        supports[(a, b)] = len(d0 | d1) if a == b else min(len(d0), len(d1))
    if max_edges == 1:
        return supports
    wedges: dict[tuple, list[set]] = {}
    for v in reference.nodes:
        for x, y in itertools.permutations(reference.neighbors(v), 2):
            b, a, c = label[v]["label"], label[x]["label"], label[y]["label"]
            if a <= c:
                doms = wedges.setdefault((b, a, c), [set(), set(), set()])
                doms[0].add(v)
                doms[1].add(x)
                doms[2].add(y)
    for (b, a, c), (dc, dx, dy) in wedges.items():
        leaves = [len(dx | dy)] if a == c else [len(dx), len(dy)]
        supports[(b, a, c)] = min([len(dc)] + leaves)
    return supports


@pytest.mark.parametrize("max_edges", [1, 2])
def test_fsm_matches_brute_force(max_edges):
    for _ in range(3):
        seed = fresh_seed()
        graph, reference = random_graph(seed, num_vertices=30, density=0.15, labels=3)
        expected_all = brute_force_supports(reference, max_edges)
        for support in (1, 3, 6):
            expected = {k: s for k, s in expected_all.items() if s >= support}
            found = {p.labels: p.support for p in g2miner.fsm(graph, support, max_edges=max_edges)}
            assert found == expected, f"seed {seed}, support {support}"


def test_fsm_on_citeseer(citeseer):
    frequent = g2miner.fsm(citeseer, 300)
    assert all(p.support >= 300 for p in frequent)
    assert {len(p.edges) for p in frequent} == {1, 2}
    assert str(frequent[0]).endswith(f"(support {frequent[0].support})")


def test_fsm_bad_input(citeseer):
    unlabelled, _ = random_graph(fresh_seed())
    with pytest.raises(ValueError, match="no vertex labels"):
        g2miner.fsm(unlabelled, 5)
    with pytest.raises(ValueError, match="support must be a positive integer"):
        g2miner.fsm(citeseer, 0)
    with pytest.raises(ValueError, match="max_edges=3"):
        g2miner.fsm(citeseer, 10, max_edges=3)
    with pytest.raises(ValueError, match="backend 'cpu' only"):
        g2miner.fsm(citeseer, 10, backend="gpu")
