"""The machine floors read what they say they read, and the plain kernels compute what they say."""

from __future__ import annotations

import numpy as np

import pytest

from harness.floors import (adjacency_floor, corpus_words, plain_score_scan, plain_triangle_count, read_floor,
                            resident_rows, resident_score_scan)
from harness.systems.faery import build_resident_scan
from workloads.embeddings import EmbeddingSet
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
    # queries 3 and 4-5 scaled up, so that scoring one of them when it should not changes the best score
    queries = (fresh_rng.standard_normal((6, 64)) * np.array([1, 1, 1, 10, 100, 100])[:, None]).astype(np.float32)
    rows, passes = resident_rows(corpus)
    assert np.array_equal(rows, corpus[:len(rows)]) and len(rows) % 1024 == 0
    assert passes * len(rows) >= len(corpus) > (passes - 1) * len(rows)   # one scan's multiply-adds, rounded up

    def best(used):
        return (rows.astype(np.float64) @ queries[:used].astype(np.float64).T).max()
    # pass p scores query p mod min(passes, 4): three passes use queries 0-2, nine use 0-3, never 4-5
    assert passes == 3 and resident_score_scan(rows, queries, passes) == pytest.approx(best(3), rel=1e-5)
    assert resident_score_scan(rows, queries, 9) == pytest.approx(best(4), rel=1e-5)
    with pytest.raises(ValueError, match="at least"):
        resident_rows(corpus[:1000])
    for bad_rows, bad_passes in ((rows[:1000], passes), (rows[:0], passes), (rows, 0)):
        with pytest.raises(ValueError, match="whole blocks"):
            resident_score_scan(bad_rows, queries, bad_passes)


@pytest.mark.parametrize("n_queries", [2, 6])
def test_the_resident_scan_experiment_checks_its_best_score_against_the_queries_it_used(fresh_rng, n_queries):
    corpus = fresh_rng.standard_normal((20_000, 32)).astype(np.float32)   # two passes: queries 0 and 1
    queries = fresh_rng.standard_normal((n_queries, 32)).astype(np.float32)
    trial = build_resident_scan(EmbeddingSet(corpus, queries), {})
    best = trial.run()
    trial.check(best)
    with pytest.raises(AssertionError, match="best score"):
        trial.check(best + 1.0)


def test_plain_triangle_count_counts_each_triangle_once(fresh_rng):
    edges = fresh_rng.integers(0, 80, size=(900, 2))
    edges = edges[edges[:, 0] != edges[:, 1]]
    graph = from_edges(edges[:, 0], edges[:, 1])
    neighbours = [set(graph.indices[graph.indptr[u]:graph.indptr[u + 1]].tolist()) for u in range(len(graph.indptr) - 1)]
    expected = sum(1 for u in range(len(neighbours)) for v in neighbours[u] if v > u for w in neighbours[u] & neighbours[v] if w > v)
    assert expected > 0
    assert plain_triangle_count(graph.indptr, graph.indices) == expected
