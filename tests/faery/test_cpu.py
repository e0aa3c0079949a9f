"""The CPU kernel against brute force on fresh random data."""

from __future__ import annotations

import numpy as np
import pytest

from impls.faery import search
from impls.faery.cpu import Searcher
from workloads.embeddings import check_topk, reference_topk


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("n, d, k, b", [
    (1, 3, 1, 1),          # one row
    (257, 7, 5, 3),        # odd sizes, a partial row block
    (5000, 128, 100, 1),   # batch 1: the row-dot path
    (6000, 64, 64, 9),     # batch >= 4: the transposed-block path, with a tail of 1 query
    (9000, 32, 1000, 2),   # large k
    (300, 16, 300, 5),     # k = N
    (20_000, 32, 50, 70),  # several query tiles, with a tail of 2 queries
])
def test_matches_brute_force(dtype: str, n: int, d: int, k: int, b: int, fresh_rng) -> None:
    rng = fresh_rng
    corpus = rng.standard_normal((n, d)).astype(dtype)
    queries = rng.standard_normal((b, d)).astype(np.float32)
    scores, ids = search(corpus, queries, k, backend="cpu")
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    check_topk(corpus, queries, scores, ids, k)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("b", [1, 6, 64])
def test_planted_ties_go_to_the_lower_id(dtype: str, b: int, fresh_rng) -> None:
    # Small integers: every score is exact in fp32 and fp16, and many are equal.
    rng = fresh_rng
    corpus = rng.integers(-2, 3, size=(20_000, 8)).astype(dtype)
    corpus[15_000:] = corpus[:5_000]  # exact duplicates far apart, across chunks
    queries = rng.integers(-2, 3, size=(b, 8)).astype(np.float32)
    scores, ids = search(corpus, queries, 50, backend="cpu")
    ref_scores, ref_ids = reference_topk(corpus, queries, 50)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores.astype(np.float32))


def test_half_widening_is_exact_including_subnormals() -> None:
    halves = np.arange(0, 1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = halves[np.isfinite(halves)].reshape(-1, 2)[:, :1]  # one column, every finite half
    corpus = np.ascontiguousarray(finite[: (finite.shape[0] // 64) * 64])
    scores, ids = search(corpus, np.ones((1, 1), np.float32), corpus.shape[0], backend="cpu")
    np.testing.assert_array_equal(scores[0], corpus[ids[0], 0].astype(np.float32))


@pytest.mark.parametrize("b", [5, 64])
def test_live_mask_excludes_rows(b: int, fresh_rng) -> None:
    rng = fresh_rng
    corpus = rng.standard_normal((3000, 16)).astype(np.float32)
    queries = rng.standard_normal((b, 16)).astype(np.float32)
    live = rng.random(3000) < 0.5
    scores, ids = Searcher(corpus).search(queries, 40, live)
    assert live[ids].all()
    kept = np.flatnonzero(live)
    ref_scores, ref_ids = reference_topk(corpus[kept], queries, 40)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-4)


def test_filter_pass_rate_is_reported() -> None:
    rng = np.random.default_rng(4)
    corpus = rng.standard_normal((50_000, 16)).astype(np.float32)
    searcher = Searcher(corpus)
    searcher.search(rng.standard_normal((2, 16)).astype(np.float32), 10, None)
    assert 0 < searcher.last_pass_rate < 0.1  # i.i.d. scores: most are filtered out
