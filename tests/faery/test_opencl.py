"""The HLS-style OpenCL kernel (PoCL in CI) against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from impls.faery import opencl, search
from workloads.embeddings import check_topk, reference_topk

pytestmark = pytest.mark.opencl


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("n, d, k, b", [
    (1, 4, 1, 1),
    (1000, 13, 10, 3),        # odd dimension, one pipeline
    (9000, 64, 100, 2),       # several pipelines (compute units) merged on the host
    (5000, 32, 1024, 1),      # large k: many sorter insertions, FIFO stalls
    (2100, 8, 2100, 2),       # k = N, pipelines with fewer rows than k
])
def test_matches_brute_force(dtype: str, n: int, d: int, k: int, b: int, fresh_rng) -> None:
    rng = fresh_rng
    corpus = rng.standard_normal((n, d)).astype(dtype)
    queries = rng.standard_normal((b, d)).astype(np.float32)
    scores, ids = search(corpus, queries, k, backend="opencl")
    check_topk(corpus, queries, scores, ids, k)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_same_ids_as_reference_with_ties(dtype: str, fresh_rng) -> None:
    rng = fresh_rng
    corpus = rng.integers(-2, 3, size=(12_000, 8)).astype(dtype)
    corpus[8_000:] = corpus[:4_000]  # duplicates in other pipelines' shards
    queries = rng.integers(-2, 3, size=(3, 8)).astype(np.float32)
    scores, ids = search(corpus, queries, 64, backend="opencl")
    ref_scores, ref_ids = reference_topk(corpus, queries, 64)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


def test_device_buffer_grows_and_updates_in_place(fresh_rng) -> None:
    rng = fresh_rng
    corpus = rng.standard_normal((100, 8)).astype(np.float32)
    searcher = opencl.Searcher(corpus)
    mirror = corpus.copy()
    for _ in range(5):  # several doublings
        extra = rng.standard_normal((150, 8)).astype(np.float32)
        searcher.append(extra)
        mirror = np.concatenate([mirror, extra])
    searcher.set_rows(np.array([0, 500]), np.full((2, 8), 5.0, dtype=np.float32))
    mirror[[0, 500]] = 5.0
    assert searcher.n_rows == mirror.shape[0]
    queries = rng.standard_normal((2, 8)).astype(np.float32)
    scores, ids = searcher.search(queries, 20, None)
    check_topk(mirror, queries, scores, ids, 20)
    assert 0 < searcher.last_pass_rate <= 1
