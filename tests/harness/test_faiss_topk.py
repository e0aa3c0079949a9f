"""baselines.faiss_topk against brute force and against the real faiss-cpu."""

import numpy as np
import pytest

from baselines import faiss_topk
from workloads.embeddings import check_topk

faiss = pytest.importorskip("faiss")


@pytest.mark.parametrize("n,d,k,b,dtype", [(1, 8, 1, 1, "float32"), (5000, 64, 100, 3, "float32"),
                                           (70000, 32, 7, 17, "float32"), (20000, 128, 2048, 2, "float32"),
                                           (30000, 48, 64, 5, "float16"), (300, 4, 300, 300, "float32")])
def test_agrees_with_faiss_cpu_on_fresh_random_data(n, d, k, b, dtype, fresh_rng):
    rng = fresh_rng
    corpus = rng.standard_normal((n, d)).astype(dtype)
    queries = rng.standard_normal((b, d)).astype(np.float32)
    scores, ids = faiss_topk.search(corpus, queries, k)
    assert scores.shape == ids.shape == (b, k) and scores.dtype == np.float32 and ids.dtype == np.int64
    check_topk(corpus, queries, scores, ids, k)
    index = faiss.IndexFlatIP(d)
    index.add(corpus.astype(np.float32))
    f_scores, f_ids = index.search(queries, k)
    np.testing.assert_allclose(scores, f_scores, rtol=1e-4, atol=1e-3)
    same = (ids == f_ids).mean()
    assert same > 0.99, f"only {same:.1%} of ids agree with faiss-cpu"


def test_ties_go_to_the_lower_id():
    corpus = np.zeros((100, 4), np.float32)
    corpus[[90, 10, 50, 30], 0] = 1.0
    _, ids = faiss_topk.search(corpus, np.array([[1, 0, 0, 0]], np.float32), 6)
    assert ids.tolist() == [[10, 30, 50, 90, 0, 1]]


def test_bad_inputs_raise_value_error():
    corpus = np.ones((10, 4), np.float32)
    q = np.ones((2, 4), np.float32)
    cases = [(corpus, q, 11, "larger than the corpus"), (corpus, q, 0, "positive"), (corpus, q, -3, "positive"),
             (corpus, np.ones((2, 5)), 1, "dimension"), (np.full((3, 4), np.nan), q, 1, "NaN"),
             (corpus, np.array([[1, np.inf, 0, 0]]), 1, "NaN or Inf"), (np.ones((0, 4)), q, 1, "empty"),
             (np.ones((3000, 4), np.float32), q, 2049, "2048")]
    for c, queries, k, msg in cases:
        with pytest.raises(ValueError, match=msg):
            faiss_topk.search(c, queries, k)
    with pytest.raises(ValueError, match="unknown backend"):
        faiss_topk.search(corpus, q, 1, backend="tpu")


def test_cpu_phase_times_split_the_whole_search():
    from baselines.faiss_topk.cpu import Searcher

    rng = np.random.default_rng()
    searcher = Searcher(rng.standard_normal((50_000, 32)).astype(np.float32))
    phases = searcher.phase_times(rng.standard_normal((8, 32)).astype(np.float32), 10)
    assert set(phases) == {"gemm_s", "select_s"} and all(v > 0 for v in phases.values())
