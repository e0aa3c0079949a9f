"""The GPU kernels: FAERY's fused scan and the Faiss-like baseline.

Here (no GPU) the CUDA sources are compile-checked with nvcc and the launch plans are
checked in plain Python; the tests marked `gpu` run the kernels against brute force
where cupy and a GPU exist.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import impls.faery as faery
import topk
from baselines import faiss_topk
from baselines.faiss_topk import gpu as faiss_gpu
from impls.faery import gpu as faery_gpu
from workloads.embeddings import check_topk

CUDA_SOURCES = [faery_gpu.SOURCE, faiss_gpu.SOURCE]
on_gpu = pytest.mark.gpu  # tests/conftest.py skips these, with the reason, where the gpu backend cannot run


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("source", CUDA_SOURCES, ids=lambda p: p.name)
def test_cuda_source_compiles(source: Path, tmp_path: Path) -> None:
    result = subprocess.run(["nvcc", "-arch=sm_90", "-std=c++17", "-Werror", "all-warnings", "-I", str(topk.CUDA_INCLUDE_DIR),
                             "-c", str(source), "-o", str(tmp_path / "out.o")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("source", CUDA_SOURCES, ids=lambda p: p.name)
def test_cuda_source_as_cupy_compiles_it(source: Path, tmp_path: Path) -> None:
    pasted = tmp_path / source.name  # the shared header pasted in, as the backends hand it to NVRTC: no include path
    pasted.write_text(topk.cuda_source(source))
    assert "#include" not in pasted.read_text()
    result = subprocess.run(["nvcc", "-arch=sm_90", "-std=c++17", "-Werror", "all-warnings", "--ptx", str(pasted),
                             "-o", str(tmp_path / "out.ptx")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- launch plans, no GPU needed

@pytest.mark.parametrize("n,d,b,k", [
    (1, 1, 1, 1), (10_000_000, 128, 1, 100), (10_000_000, 128, 256, 100), (4_000_000, 64, 3, 4096),
    (1000, 384, 17, 1000), (50_000, 7, 64, 64), (100, 2048, 5, 100), (10_000_000, 128, 1, 4096),
])
def test_faery_plan_is_consistent(n: int, d: int, b: int, k: int) -> None:
    p = faery_gpu.plan(n, d, b, k, sm_count=132)
    assert p.scan_cap & (p.scan_cap - 1) == 0 and p.scan_cap >= k + p.tile_rows  # room for one tile
    assert p.merge_cap & (p.merge_cap - 1) == 0 and p.merge_cap >= k + faery_gpu.THREADS
    assert p.scan_smem <= faery_gpu.SMEM_LIMIT and p.merge_smem <= faery_gpu.SMEM_LIMIT
    assert p.tile_rows * (d | 1) * 4 <= max(faery_gpu.TILE_BYTES, (d | 1) * 4)
    assert p.query_group % p.queries_per_thread == 0 and p.groups * p.query_group >= b
    assert (p.groups - 1) * p.query_group < b
    assert p.slices * p.slice_rows >= n > (p.slices - 1) * p.slice_rows  # every row in exactly one slice
    assert p.slice_rows % p.tile_rows == 0
    assert p.slices * p.groups <= 4 * faery_gpu.BLOCKS_PER_SM * 132 or p.slices == 1


def test_faery_plan_fits_a_device_with_less_shared_memory() -> None:
    smem_limit = 99 * 1024  # an L4's opt-in maximum
    assert faery_gpu.plan(100_000, 32, 2, 2048, sm_count=58).scan_smem > smem_limit  # the H100 plan would not fit
    p = faery_gpu.plan(100_000, 32, 2, 2048, sm_count=58, smem_limit=smem_limit)
    assert p.scan_smem <= smem_limit and p.merge_smem <= smem_limit
    with pytest.raises(ValueError, match="over the 65536 this device allows"):
        faery_gpu.plan(100_000, 32, 2, 2048, sm_count=58, smem_limit=64 * 1024)


def test_faery_plan_refuses_a_dimension_too_large_to_tile() -> None:
    with pytest.raises(ValueError, match="shared memory"):
        faery_gpu.plan(1000, 60_000, 1, 100, sm_count=132)


def test_faery_gpu_limit_is_4096() -> None:
    assert faery_gpu.K_LIMIT == 4096


@pytest.mark.parametrize("k", [1, 32, 33, 100, 128, 256, 257, 1024, 1025, 2048])
def test_block_select_shape(k: int) -> None:
    shape = faiss_gpu.select_shape(k)
    assert shape.region & (shape.region - 1) == 0 and shape.region >= k + 32 * shape.thread_queue
    assert shape.thread_queue in (2, 3, 4, 8) and shape.threads in (64, 128)
    assert shape.smem == (shape.threads // 32) * shape.region * 8 <= 200 * 1024


def test_block_select_refuses_k_above_2048() -> None:
    with pytest.raises(ValueError, match="2048"):
        faiss_gpu.select_shape(2049)


@pytest.mark.parametrize("n,b,d", [(10_000_000, 1, 128), (10_000_000, 256, 128), (1000, 2000, 16)])
def test_baseline_tiles_fit_the_working_set(n: int, b: int, d: int) -> None:
    query_tile, corpus_tile = faiss_gpu.tiles(n, b, d)
    assert 1 <= query_tile <= (1024 if d <= 32 else 512) and 1 <= corpus_tile <= n
    assert query_tile * corpus_tile * 4 <= max(faiss_gpu.SCORE_TILE_BYTES, query_tile * faiss_gpu.SELECT_CHUNK * 4)


# --------------------------------------------------------------------------- on a GPU

CASES = [  # n, d, k, b, dtype
    (1, 4, 1, 1, np.float32),
    (5000, 128, 100, 1, np.float32),
    (20_000, 128, 100, 7, np.float32),
    (20_000, 64, 100, 33, np.float16),
    (3001, 5, 17, 4, np.float32),      # odd d: the scalar load path
    (50_000, 96, 1000, 2, np.float16),
    (100_000, 32, 2048, 2, np.float32),
]


@pytest.mark.parametrize("n,d,k,b,dtype", CASES)
@pytest.mark.parametrize("system", ["faery", "faiss_topk"])
@on_gpu
def test_gpu_equals_brute_force(system: str, n: int, d: int, k: int, b: int, dtype: type, fresh_rng) -> None:
    rng = fresh_rng
    corpus = rng.standard_normal((n, d)).astype(dtype)
    queries = rng.standard_normal((b, d)).astype(np.float32)
    search = faery.search if system == "faery" else faiss_topk.search
    scores, ids = search(corpus, queries, k, backend="gpu")
    check_topk(corpus, queries, scores, ids, k)


@pytest.mark.parametrize("system", ["faery", "faiss_topk"])
@on_gpu
def test_gpu_ties_go_to_the_lower_id(system: str, fresh_rng) -> None:
    rng = fresh_rng
    corpus = rng.integers(-2, 3, size=(30_000, 8)).astype(np.float32)
    queries = rng.integers(-2, 3, size=(5, 8)).astype(np.float32)
    search = faery.search if system == "faery" else faiss_topk.search
    scores, ids = search(corpus, queries, 300, backend="gpu")
    for row in range(5):
        exact = corpus.astype(np.float64) @ queries[row].astype(np.float64)
        np.testing.assert_array_equal(ids[row], np.lexsort((np.arange(len(exact)), -exact))[:300])


@pytest.mark.parametrize("k", [4096])
@on_gpu
def test_faery_gpu_goes_beyond_faiss_limit(k: int, fresh_rng) -> None:
    rng = fresh_rng
    corpus = rng.standard_normal((200_000, 128)).astype(np.float32)
    queries = rng.standard_normal((3, 128)).astype(np.float32)
    scores, ids = faery.search(corpus, queries, k, backend="gpu")
    check_topk(corpus, queries, scores, ids, k)
    with pytest.raises(ValueError, match="2048"):
        faiss_topk.search(corpus, queries, k, backend="gpu")


@on_gpu
def test_faery_gpu_corpus_manager(fresh_rng) -> None:
    rng = fresh_rng
    corpus = rng.standard_normal((30_000, 64)).astype(np.float16)
    inserted = rng.standard_normal((40_000, 64)).astype(np.float16)  # more than doubles: the buffer grows
    replaced = rng.standard_normal((100, 64)).astype(np.float16)
    queries = rng.standard_normal((4, 64)).astype(np.float32)
    results = []
    for backend in ("gpu", "cpu"):
        index = faery.Index(corpus, backend=backend)
        new = index.insert(inserted)
        index.update(new[:100], replaced)
        _, before = index.search(queries, 50)
        index.delete(before[:, :10].ravel())
        results.append(index.search(queries, 50) + (before,))
    (scores, ids, before), (ref_scores, ref_ids, _) = results
    assert not np.isin(ids, before[:, :10]).any()
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-5, atol=1e-4)


@on_gpu
def test_faiss_like_gpu_refuses_queries_beyond_fp16_over_an_fp16_corpus(fresh_rng) -> None:
    corpus = fresh_rng.standard_normal((1000, 16)).astype(np.float16)
    queries = np.full((1, 16), 1e5, np.float32)
    with pytest.raises(ValueError, match="beyond fp16"):
        faiss_topk.search(corpus, queries, 10, backend="gpu")
    scores, ids = faery.search(corpus, queries, 10, backend="gpu")  # FAERY scores fp32 queries
    check_topk(corpus, queries, scores, ids, 10)


@on_gpu
def test_baseline_phases_split_the_time() -> None:
    rng = np.random.default_rng(6)
    corpus = rng.standard_normal((200_000, 128)).astype(np.float32)
    queries = rng.standard_normal((64, 128)).astype(np.float32)
    phases = faiss_gpu.Searcher(corpus).phase_times(queries, 100)
    assert set(phases) == {"gemm_s", "select_s", "merge_s"}
    assert all(seconds > 0 for seconds in phases.values())
