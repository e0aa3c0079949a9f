"""The shipped real-text embedding corpus and its named workload."""

from __future__ import annotations

import numpy as np
import pytest

import impls.faery as faery
from impls.faery import fpga_model as fm
from workloads import catalog
from workloads.embeddings import check_topk
from workloads.text_embeddings import DATA, WORKLOAD, load_text_corpus


def test_the_workload_is_registered_and_loads() -> None:
    workload = catalog.get(WORKLOAD)
    assert workload.tier == "quick" and workload.kind == "embeddings"
    data = catalog.load(WORKLOAD)
    assert data.corpus.dtype == np.float16 and data.corpus.shape == (workload.size["n"], 384)
    assert data.queries.dtype == np.float32 and data.queries.shape == (256, 384)
    norms = np.linalg.norm(data.corpus.astype(np.float32), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)  # normalised embeddings: inner product = cosine


def test_queries_are_held_out_rows() -> None:
    raw = np.load(DATA)
    data = load_text_corpus(queries=16, seed=3)
    assert data.corpus.shape[0] + 16 == raw.shape[0]
    corpus_rows = {row.tobytes() for row in data.corpus}
    raw_rows = {row.tobytes() for row in raw}
    assert len(raw_rows) == raw.shape[0]  # no duplicate rows, so "held out" is checkable
    for q in data.queries.astype(np.float16):
        assert q.tobytes() in raw_rows and q.tobytes() not in corpus_rows
    assert load_text_corpus(queries=16, seed=3).queries.tobytes() == data.queries.tobytes()  # seeded


def test_bad_query_count_is_refused() -> None:
    with pytest.raises(ValueError, match="queries"):
        load_text_corpus(queries=0)


def test_real_text_is_searchable_on_the_fpga_model() -> None:
    data = catalog.load(WORKLOAD)
    queries = data.queries[:4]
    scores, ids = faery.search(data.corpus, queries, 100, backend="fpga-model")
    check_topk(data.corpus, queries, scores, ids, 100)
    _, _, stats, trace = fm.simulate_scan(data.corpus.astype(np.float32) @ queries[0], 100, 384 * 2, 384,
                                          fm.FpgaConfig(), trace=True)
    assert 0 < stats.pass_rate < 1 and trace.passed.sum() == stats.passed
