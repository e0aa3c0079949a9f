"""The cycle-level FPGA model: exact results, SNARY's closed form and filter analysis, stalls, sweeps."""

from __future__ import annotations

import numpy as np
import pytest

import impls.faery as faery
from impls.faery import fpga_model as fm
from workloads.embeddings import check_topk, clustered


@pytest.mark.parametrize("n,d,k,b,dtype", [
    (1, 4, 1, 1, np.float32),
    (3000, 16, 7, 3, np.float32),
    (5000, 128, 100, 2, np.float32),
    (4000, 48, 64, 3, np.float16),
    (2500, 8, 1024, 1, np.float32),
])
def test_equals_brute_force(n: int, d: int, k: int, b: int, dtype: type) -> None:
    rng = np.random.default_rng(n + d + k)
    corpus = rng.standard_normal((n, d)).astype(dtype)
    queries = rng.standard_normal((b, d)).astype(np.float32)
    scores, ids = faery.search(corpus, queries, k, backend="fpga-model")
    check_topk(corpus, queries, scores, ids, k)


def test_ties_go_to_the_lower_id() -> None:
    rng = np.random.default_rng(5)
    corpus = rng.integers(-2, 3, size=(3000, 4)).astype(np.float32)  # many exactly equal scores
    queries = rng.integers(-2, 3, size=(3, 4)).astype(np.float32)
    scores, ids = faery.search(corpus, queries, 50, backend="fpga-model")
    for row in range(3):
        exact = corpus.astype(np.float64) @ queries[row].astype(np.float64)
        order = np.lexsort((np.arange(len(exact)), -exact))[:50]
        np.testing.assert_array_equal(ids[row], order)
        np.testing.assert_array_equal(scores[row], exact[order].astype(np.float32))


def test_corpus_manager_and_figures() -> None:
    rng = np.random.default_rng(9)
    corpus = rng.standard_normal((4000, 32)).astype(np.float32)
    index = faery.Index(corpus, backend="fpga-model")
    new = index.insert(rng.standard_normal((500, 32)))
    index.update(new[:10], rng.standard_normal((10, 32)))
    queries = rng.standard_normal((2, 32)).astype(np.float32)
    _, before = index.search(queries, 20)
    index.delete(before[:, :5].ravel())
    scores, ids = index.search(queries, 20)
    assert not np.isin(ids, before[:, :5]).any()
    stats = index.searcher.last_stats
    assert len(stats) == 2 and all(s.items == 4500 for s in stats)  # deleted rows are still read
    figures = stats[0].figures()
    assert all(name.startswith("modelled_") for name in figures)
    assert 0 < figures["modelled_pass_rate"] <= 1 and figures["modelled_latency_us"] > 0


def test_k_above_the_selector_size_is_refused() -> None:
    corpus = np.ones((3000, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="1024"):
        faery.search(corpus, corpus[:1], 2000, backend="fpga-model")


@pytest.mark.parametrize("bad", [dict(k_max=1000), dict(hbm_channels=0), dict(score_units=0),
                                 dict(k_max=8192), dict(clock_hz=-1.0), dict(filter_depth=0)])
def test_bad_config_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="FpgaConfig"):
        fm.FpgaConfig(**bad)


def test_default_design_point_is_hbm_bound() -> None:
    config = fm.FpgaConfig()
    assert config.bytes_per_cycle * config.clock == pytest.approx(460e9)  # 32 x 14.375 GB/s
    lay = fm.layout(config, 128 * 4)  # 128-d fp32: 8 accesses of 64 bytes per embedding
    assert lay.accesses_per_item == 8 and lay.score_units == 4
    small = fm.layout(config, 16)     # 4-d fp32: four packed in one access
    assert small.per_access == 4 and small.bytes_read(10) == 3 * 64


@pytest.mark.parametrize("embedding_bytes,k", [(512, 1024), (256, 256), (32, 16)])
def test_iid_scan_matches_the_closed_form(embedding_bytes: int, k: int) -> None:
    """On i.i.d. scores, the modelled latency is SNARY's L = M/B + C (filter stalls are rare)."""
    n = 4_000_000  # long enough that the start (all scores pass until K are kept) is a small part
    scores = np.random.default_rng(k).standard_normal(n).astype(np.float32)
    config = fm.FpgaConfig(k_max=max(k, 512))
    dim = embedding_bytes // 4
    _, _, stats, _ = fm.simulate_scan(scores, k, embedding_bytes, dim, config)
    closed = fm.closed_form_cycles(config, n, dim, 4, k)
    assert stats.cycles == pytest.approx(closed, rel=0.01)
    assert stats.stall_cycles < 0.01 * stats.cycles


def test_drop_probability_matches_snary() -> None:
    """One score per cycle on i.i.d. data: the score reaching the filter at cycle K+2+i is
    dropped with probability (i+1)/(i+K+1) (SNARY's analysis)."""
    k, length, trials = 64, 1000, 400
    config = fm.FpgaConfig(k_max=k, score_units=1)
    rng = np.random.default_rng(2)
    drops = np.zeros(length)
    for _ in range(trials):
        scores = rng.standard_normal(k + length).astype(np.float32)
        _, _, stats, trace = fm.simulate_scan(scores, k, 512, 128, config, trace=True)
        assert stats.stall_cycles == 0
        np.testing.assert_array_equal(trace.filter_cycle, np.arange(k + length) + 2)  # filtering starts at K+2
        assert trace.passed[:k].all()
        drops += ~trace.passed[k:]
    i = np.arange(length)
    expected = (i + 1) / (i + k + 1)
    # The relative ranks of i.i.d. scores are independent, so each bin's count is binomial.
    for lo, hi in [(0, 10), (10, 50), (50, 200), (200, 1000)]:
        observed = drops[lo:hi].sum() / (trials * (hi - lo))
        p = expected[lo:hi].mean()
        sigma = np.sqrt(p * (1 - p) / (trials * (hi - lo)))
        assert abs(observed - p) < 5 * sigma + 1e-3, (lo, hi, observed, p)


def test_a_shallow_filter_buffer_stalls_the_scan() -> None:
    scores = np.random.default_rng(3).standard_normal(200_000).astype(np.float32)
    shallow = fm.FpgaConfig(filter_depth=8)
    _, _, deep, _ = fm.simulate_scan(scores, 1024, 512, 128, fm.FpgaConfig())
    _, _, stalled, _ = fm.simulate_scan(scores, 1024, 512, 128, shallow)
    assert stalled.stall_cycles > deep.stall_cycles and stalled.max_buffer_fill <= 8
    assert stalled.cycles > fm.closed_form_cycles(shallow, 200_000, 128, 4, 1024) + stalled.stall_cycles // 2
    assert stalled.scan_cycles >= stalled.passed  # K-selection takes one score a cycle
    assert stalled.passed < deep.passed  # a waiting filter sees a fresher threshold


def test_sweep_is_labelled_and_bandwidth_bound() -> None:
    data = clustered(20_000, 64, seed=4)
    table = fm.sweep(data.corpus, data.queries[0], channels=(8, 32), score_units=(None, 2), ks=(512, 1024))
    assert len(table) == 8 and all(row["kind"] == "modelled" for row in table)
    by = {(r["channels"], r["k"], r["score_units"]): r["modelled_latency_us"] for r in table}
    assert by[(32, 1024, 7)] < by[(8, 1024, 2)]
    assert {r["clock_mhz"] for r in table} == {302.0, 285.0}
