"""The machine floors read what they say they read."""

from __future__ import annotations

import numpy as np

from harness.floors import adjacency_floor, corpus_words, read_floor
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
