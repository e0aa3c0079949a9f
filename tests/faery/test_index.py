"""The corpus manager and the Cluster, on every backend that can run here."""

from __future__ import annotations

import numpy as np
import pytest

from impls.faery import Cluster, Index
from workloads.embeddings import check_topk, reference_topk


def _data(n: int, d: int, b: int, seed: int, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.standard_normal((b, d)).astype(np.float32)


def _reference_over_live(corpus: np.ndarray, live: np.ndarray, queries: np.ndarray, k: int):
    kept = np.flatnonzero(live)
    scores, local = reference_topk(corpus[kept], queries, k)
    return scores, kept[local]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_updates_between_queries_match_brute_force(backend: str, dtype: str) -> None:
    corpus, queries = _data(3000, 24, 4, seed=11, dtype=dtype)
    rng = np.random.default_rng(12)
    index = Index(corpus, backend)
    mirror = corpus.copy()
    live = np.ones(corpus.shape[0], dtype=bool)
    for step in range(4):
        new = rng.standard_normal((500, 24)).astype(dtype) * 1.5  # inserts that win often
        ids = index.insert(new)
        np.testing.assert_array_equal(ids, np.arange(mirror.shape[0], mirror.shape[0] + 500))
        mirror = np.concatenate([mirror, new])
        live = np.concatenate([live, np.ones(500, dtype=bool)])
        changed = rng.choice(np.flatnonzero(live), 50, replace=False)
        vectors = rng.standard_normal((50, 24)).astype(dtype) * 2
        index.update(changed, vectors)
        mirror[changed] = vectors
        gone = rng.choice(np.flatnonzero(live), 300, replace=False)
        index.delete(gone)
        live[gone] = False
        scores, ids = index.search(queries, 60)
        assert live[ids].all(), "a deleted id was returned"
        ref_scores, _ = _reference_over_live(mirror, live, queries, 60)
        atol = 2e-2 if dtype == "float16" else 1e-4
        np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=atol)
        true = np.einsum("bkd,bd->bk", mirror[ids].astype(np.float64), queries)
        np.testing.assert_allclose(scores, true, rtol=0, atol=atol)
    assert index.n_live == live.sum()


def test_bad_updates_are_refused() -> None:
    corpus, _ = _data(100, 8, 1, seed=1)
    index = Index(corpus)
    index.delete([3])
    with pytest.raises(ValueError, match="id 3 was deleted"):
        index.update([3], np.ones((1, 8)))
    with pytest.raises(ValueError, match="unknown id 100"):
        index.update([100], np.ones((1, 8)))
    with pytest.raises(ValueError, match="unknown id -1"):
        index.delete([-1])
    with pytest.raises(ValueError, match="dimension 7"):
        index.insert(np.ones((2, 7)))
    with pytest.raises(ValueError, match="NaN"):
        index.insert(np.full((1, 8), np.nan))
    with pytest.raises(ValueError, match="2 ids but 1 vectors"):
        index.update([1, 2], np.ones((1, 8)))
    with pytest.raises(ValueError, match="larger than the corpus"):
        index.search(np.ones(8), 100)  # 99 live rows remain


@pytest.mark.parametrize("bad, message", [
    (lambda c, q: (c, q, 0), "k must be positive"),
    (lambda c, q: (c, q, 51), "larger than the corpus"),
    (lambda c, q: (c, q[:, :5], 3), "dimension"),
    (lambda c, q: (np.where(np.eye(50, 8) > 0, np.inf, c), q, 3), "NaN or Inf"),
    (lambda c, q: (c, np.full_like(q, np.nan), 3), "NaN or Inf"),
    (lambda c, q: (c[:0], q, 1), "empty"),
    (lambda c, q: (c.astype(complex), q, 1), "cannot be converted"),
])
def test_bad_input_raises_value_error(bad, message: str) -> None:
    from impls.faery import search

    corpus, queries = _data(50, 8, 2, seed=2)
    with pytest.raises(ValueError, match=message):
        search(*bad(corpus, queries))
    with pytest.raises(ValueError, match="unknown backend"):
        search(corpus, queries, 1, backend="tpu")


@pytest.mark.parametrize("mode, instances", [("replicated", 3), ("sharded", 1), ("sharded", 4)])
def test_cluster_equals_single_instance(backend: str, mode: str, instances: int) -> None:
    rng = np.random.default_rng(5)
    corpus = rng.integers(-3, 4, size=(4000, 8)).astype(np.float32)  # many exact ties across shards
    queries = rng.integers(-3, 4, size=(7, 8)).astype(np.float32)
    cluster = Cluster(corpus, instances, mode, backend)
    single = Index(corpus, backend)
    try:
        for _ in range(2):
            got = cluster.search(queries, 40)
            want = single.search(queries, 40)
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[0], want[0])
            new = rng.integers(-3, 4, size=(100, 8)).astype(np.float32)
            np.testing.assert_array_equal(cluster.insert(new), single.insert(new))
            victims = rng.choice(single.n_live, 30, replace=False)
            cluster.delete(victims)
            single.delete(victims)
            cluster.update([victims[0] + 1], np.full((1, 8), 3.0))
            single.update([victims[0] + 1], np.full((1, 8), 3.0))
    finally:
        cluster.close()


def test_cluster_checks_its_arguments() -> None:
    corpus, _ = _data(10, 4, 1, seed=3)
    with pytest.raises(ValueError, match="cluster mode"):
        Cluster(corpus, 2, "mirrored")
    with pytest.raises(ValueError, match="positive integer"):
        Cluster(corpus, 0)
    with pytest.raises(ValueError, match="cannot split 10 rows into 11 shards"):
        Cluster(corpus, 11)
    cluster = Cluster(corpus, 2)
    with pytest.raises(ValueError, match="unknown id 10"):
        cluster.delete([10])
    cluster.delete([7])
    with pytest.raises(ValueError, match="id 7 was deleted"):  # the global id, not the shard's
        cluster.update([7], np.ones((1, 4)))
    cluster.close()


def test_search_function_matches_reference_for_each_k() -> None:
    from impls.faery import search

    corpus, queries = _data(700, 12, 3, seed=9)
    for k in (1, 2, 64, 700):
        scores, ids = search(corpus, queries, k)
        check_topk(corpus, queries, scores, ids, k)
