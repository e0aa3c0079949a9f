"""The CPU backend's two scoring paths (fused numba, BLAS tiles), its fp16 widening and its in-scan checks."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from impls.faery import Index, index, search
from impls.faery import cpu, scoring
from impls.faery.backend import NonFiniteScore
from workloads.embeddings import check_topk, max_row_norm, reference_topk

GEMM = cpu.GEMM_MIN_BATCH


def _tile_rows(b: int) -> int:
    return max(cpu.ROW_BLOCK, cpu.GEMM_SCORE_TILE_BYTES // (4 * b) // cpu.ROW_BLOCK * cpu.ROW_BLOCK)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("b, d, extra_rows, k", [
    (GEMM, 128, 1, 100),       # one row past a whole number of tiles
    (GEMM + 37, 33, 700, 10),  # odd dimension, ragged last tile
    (300, 7, 63, 5),           # tiny dimension, a last tile shorter than a row block
    (GEMM, 16, 0, 1),          # k = 1, exact tiles
])
def test_gemm_path_matches_brute_force(dtype: str, b: int, d: int, extra_rows: int, k: int, fresh_rng) -> None:
    n = 2 * _tile_rows(b) + extra_rows
    corpus = fresh_rng.standard_normal((n, d)).astype(dtype)
    queries = fresh_rng.standard_normal((b, d)).astype(np.float32)
    searcher = cpu.Searcher(corpus)
    scores, ids = searcher.search(queries, k, None)
    assert searcher.last_path == "gemm"
    check_topk(corpus, queries, scores, ids, k)


@pytest.mark.parametrize("k_below_n", [0, 1, 17])
def test_gemm_path_with_k_near_n(k_below_n: int, fresh_rng) -> None:
    n = _tile_rows(GEMM) + 5
    corpus = fresh_rng.standard_normal((n, 12)).astype(np.float32)
    queries = fresh_rng.standard_normal((GEMM, 12)).astype(np.float32)
    scores, ids = search(corpus, queries, n - k_below_n)
    check_topk(corpus, queries, scores, ids, n - k_below_n)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_both_paths_give_the_reference_tie_for_tie(dtype: str, fresh_rng) -> None:
    # Small integers: every score is exact in fp32 and fp16, and many are equal.
    corpus = fresh_rng.integers(-2, 3, size=(3 * _tile_rows(GEMM) + 11, 8)).astype(dtype)
    corpus[-1000:] = corpus[:1000]  # exact duplicates in the first and the last tile
    queries = fresh_rng.integers(-2, 3, size=(GEMM, 8)).astype(np.float32)
    ref_scores, ref_ids = reference_topk(corpus, queries, 60)
    for b in (GEMM - 1, GEMM):  # the fused kernel, then the BLAS tiles
        searcher = cpu.Searcher(corpus)
        scores, ids = searcher.search(queries[:b], 60, None)
        assert searcher.last_path == ("gemm" if b >= GEMM else "fused")
        np.testing.assert_array_equal(ids, ref_ids[:b])
        np.testing.assert_array_equal(scores, ref_scores[:b].astype(np.float32))


def test_gemm_path_honours_the_live_mask(fresh_rng) -> None:
    corpus = fresh_rng.standard_normal((_tile_rows(GEMM) + 900, 16)).astype(np.float32)
    queries = fresh_rng.standard_normal((GEMM, 16)).astype(np.float32)
    live = fresh_rng.random(corpus.shape[0]) < 0.5
    scores, ids = cpu.Searcher(corpus).search(queries, 30, live)
    assert live[ids].all()
    ref_scores, _ = reference_topk(corpus[live], queries, 30)
    np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------- fp16 widening

def _every_half() -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).reshape(512, 128)


@pytest.mark.parametrize("widen", [scoring.widen_half_bits, scoring.widen_half_f16c], ids=["bits", "f16c"])
def test_widening_is_exact_for_every_half(widen) -> None:
    if widen is scoring.widen_half_f16c and not scoring.HAS_F16C:
        pytest.skip("this CPU has no F16C (vcvtph2ps)")
    bits = _every_half()
    out = np.empty(bits.shape, dtype=np.float32)
    widen(bits, 0, bits.shape[0], out)
    want = bits.view(np.float16).astype(np.float32)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(want))
    finite_or_inf = ~np.isnan(want)
    np.testing.assert_array_equal(out[finite_or_inf], want[finite_or_inf])  # Inf, subnormals and -0 too
    assert np.array_equal(np.signbit(out[finite_or_inf]), np.signbit(want[finite_or_inf]))


@pytest.mark.skipif(not scoring.HAS_F16C, reason="this CPU has no F16C: the bit-level widening is used")
def test_widening_compiles_to_vector_vcvtph2ps() -> None:
    fresh = numba.njit(nogil=True)(scoring.widen_half_f16c.py_func)  # uncached, so its assembly can be read
    bits = _every_half()
    fresh(bits, 0, 4, np.empty((4, 128), dtype=np.float32))
    asm = fresh.inspect_asm(fresh.signatures[0])
    vector = [line for line in asm.splitlines() if "vcvtph2ps" in line and ("%ymm" in line or "%zmm" in line)]
    assert vector, "no 8- or 16-wide vcvtph2ps in the widening loop"


# ----------------------------------------------------------------------------- validation in the scan

@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("b", [1, 5, GEMM])
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_the_scan_names_the_row_of_a_nan_or_inf(dtype: str, b: int, bad_value: float, fresh_rng) -> None:
    corpus = fresh_rng.standard_normal((20_000, 24)).astype(dtype)
    row = int(fresh_rng.integers(corpus.shape[0]))
    corpus[row, fresh_rng.integers(24)] = bad_value
    queries = fresh_rng.standard_normal((b, 24)).astype(np.float32)
    with pytest.raises(NonFiniteScore, match=f"corpus row {row} is NaN or Inf") as caught:
        cpu.Searcher(corpus).search_unchecked(queries, 10)
    assert caught.value.row == row


@pytest.mark.parametrize("b", [1, GEMM])
def test_one_call_search_names_the_first_nan_row_and_column(b: int, fresh_rng) -> None:
    corpus = fresh_rng.standard_normal((50_000, 16)).astype(np.float32)
    first, later = sorted(fresh_rng.choice(corpus.shape[0], 2, replace=False))
    corpus[later, 3] = np.nan
    corpus[first, 9] = np.inf
    with pytest.raises(ValueError, match=rf"corpus holds NaN or Inf \(first at row {first}, column 9\)"):
        search(corpus, fresh_rng.standard_normal((b, 16)).astype(np.float32), 5)


@pytest.mark.parametrize("b", [1, GEMM])
def test_a_score_overflowing_float32_is_caught_in_the_scan(b: int, fresh_rng) -> None:
    corpus = fresh_rng.standard_normal((5000, 8)).astype(np.float32)
    row = int(fresh_rng.integers(corpus.shape[0]))
    corpus[row] = 1e19  # finite, but its score with the all-1e19 query overflows
    queries = np.full((b, 8), 1e19, dtype=np.float32)
    with pytest.raises(NonFiniteScore) as caught:
        cpu.Searcher(corpus).search(queries, 3, None)
    assert caught.value.row == row


def test_one_call_search_makes_no_separate_pass_over_the_corpus(monkeypatch, fresh_rng) -> None:
    corpus = fresh_rng.standard_normal((30_000, 32)).astype(np.float32)
    queries = fresh_rng.standard_normal((3, 32)).astype(np.float32)
    want = Index(corpus).search(queries, 20)

    def no_pass(rows, *args):
        raise AssertionError(f"a separate pass over {rows.shape[0]} rows")
    monkeypatch.setattr(index, "as_corpus", no_pass)
    monkeypatch.setattr(index, "max_row_norm", lambda rows: no_pass(rows) if rows is corpus else max_row_norm(rows))
    got = search(corpus, queries, 20)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("b", [1, GEMM])
def test_the_scans_row_norm_is_the_largest_row_norm(b: int, fresh_rng) -> None:
    corpus = (fresh_rng.standard_normal((9000, 40)) * fresh_rng.random((9000, 1)) * 10).astype(np.float32)
    _, _, norm = cpu.Searcher(corpus).search_unchecked(fresh_rng.standard_normal((b, 40)).astype(np.float32), 4)
    assert norm == pytest.approx(max_row_norm(corpus), rel=1e-5)
