"""The machine floors read what they say they read, and the plain kernels compute what they say."""

from __future__ import annotations

import numpy as np

import pytest

from harness.floors import (adjacency_floor, corpus_words, plain_score_scan, plain_triangle_count, read_floor,
                            resident_rows, resident_score_scan)
from workloads.graphs import from_edges


def test_read_floor_folds_every_word(fresh_rng):
    corpus = fresh_rng.standard_normal((1000 + int(fresh_rng.integers(100)), 128)).astype(np.float16)
    words = corpus_words(corpus)
    assert words.nbytes == corpus.nbytes // 8 * 8
    assert read_floor(words) == int(np.bitwise_xor.reduce(words))


def test_adjacency_floor_reads_both_lists_of_every_edge(fresh_rng):
    edges = fresh_rng.integers(0, 60, size=(300, 2))
    edges = edges[edges[:, 0] != edges[:, 1]]
    graph = from_edges(edges[:, 0], edges[:, 1])
    indptr, indices = graph.indptr, graph.indices
    expected = 0
    for u in range(len(indptr) - 1):
        for v in indices[indptr[u]:indptr[u + 1]]:
            if v > u:
                expected += int(indices[indptr[u]:indptr[u + 1]].sum() + indices[indptr[v]:indptr[v + 1]].sum()) & 1
    assert adjacency_floor(indptr, indices) == expected


def test_plain_score_scan_finds_the_best_inner_product(fresh_rng):
    corpus = fresh_rng.standard_normal((3000 + int(fresh_rng.integers(500)), 96)).astype(np.float32)
    query = fresh_rng.standard_normal(96).astype(np.float32)
    exact = (corpus.astype(np.float64) @ query.astype(np.float64)).max()
    assert plain_score_scan(corpus, query) == pytest.approx(exact, rel=1e-5)
    with pytest.raises(ValueError, match="fp32"):
        plain_score_scan(corpus.astype(np.float16), query)


def test_resident_score_scan_does_one_plain_scans_arithmetic_over_cached_rows(fresh_rng):
    corpus = fresh_rng.standard_normal((40_000 + int(fresh_rng.integers(5000)), 64)).astype(np.float32)
    queries = fresh_rng.standard_normal((6, 64)).astype(np.float32)
    rows, passes = resident_rows(corpus)
    assert np.array_equal(rows, corpus[:len(rows)]) and len(rows) % 1024 == 0
    assert passes * len(rows) >= len(corpus) > (passes - 1) * len(rows)   # one scan's multiply-adds, rounded up
    # pass p scores against query p mod RESIDENT_QUERIES (4): with three passes, the fourth and beyond are unused
    exact = (rows.astype(np.float64) @ queries[:min(passes, 4)].astype(np.float64).T).max()
    assert passes == 3 and resident_score_scan(rows, queries, passes) == pytest.approx(exact, rel=1e-5)
    several = (rows.astype(np.float64) @ queries[:4].astype(np.float64).T).max()
    assert resident_score_scan(rows, queries, 9) == pytest.approx(several, rel=1e-5)
    with pytest.raises(ValueError, match="at least"):
        resident_rows(corpus[:1000])
    with pytest.raises(ValueError, match="whole blocks"):
        resident_score_scan(rows[:1000], queries, passes)


def test_plain_triangle_count_counts_each_triangle_once(fresh_rng):
    edges = fresh_rng.integers(0, 80, size=(900, 2))
    edges = edges[edges[:, 0] != edges[:, 1]]
    graph = from_edges(edges[:, 0], edges[:, 1])
    neighbours = [set(graph.indices[graph.indptr[u]:graph.indptr[u + 1]].tolist()) for u in range(len(graph.indptr) - 1)]
    expected = sum(1 for u in range(len(neighbours)) for v in neighbours[u] if v > u for w in neighbours[u] & neighbours[v] if w > v)
    assert expected > 0
    assert plain_triangle_count(graph.indptr, graph.indices) == expected
