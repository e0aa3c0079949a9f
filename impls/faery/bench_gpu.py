"""Check and time every GPU top-K variant: FAERY-GPU, the Faiss-like GPU baseline, torch.

    python -m impls.faery.bench_gpu                  # 10M x 128, fp32 and fp16, K=100, B=1 and 256
    python -m impls.faery.bench_gpu --n 1000000 --json out.json

1. Check: each variant against float64 brute force on fresh random data (several N, d,
   k, B, both dtypes); any mismatch stops the run.
2. Time: the median of device-event timings of one whole search (queries in, sorted
   top-k back on the host), after a warm-up, beside the HBM floor (corpus bytes / 3.0
   TB/s, the H100's measured device copy rate) and the Faiss-like pipeline's split
   between GEMM and k-selection.
Needs cupy and a CUDA GPU; torch is timed when it is installed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from typing import Callable

import numpy as np

HBM_BYTES_PER_S = 3.0e12  # H100 device-to-device copy, measured (read + write)


def _check_all() -> None:
    from baselines import faiss_topk
    import impls.faery as faery
    from workloads.embeddings import check_topk

    cases = [(1, 8, 1, 1), (70_000, 128, 100, 1), (70_000, 128, 100, 37), (200_000, 64, 1000, 5),
             (50_000, 100, 2048, 3), (200_000, 128, 4096, 2), (10_001, 3, 10, 300)]
    rng = np.random.default_rng()
    for n, d, k, b in cases:
        for dtype in (np.float32, np.float16):
            corpus = rng.standard_normal((n, d)).astype(dtype)
            queries = rng.standard_normal((b, d)).astype(np.float32)
            variants = {"faery-gpu": lambda: faery.search(corpus, queries, k, backend="gpu")}
            if k <= faiss_topk.MAX_K:
                variants["faiss-like-gpu"] = lambda: faiss_topk.search(corpus, queries, k, backend="gpu")
            for name, run in variants.items():
                scores, ids = run()
                check_topk(corpus, queries, scores, ids, k)
                print(f"check ok  {name:15s} n={n} d={d} k={k} b={b} {np.dtype(dtype).name}", flush=True)


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    import cupy as cp

    run()  # warm-up: kernel compilation, cuBLAS heuristics, memory pool
    times = []
    for _ in range(repeats):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        run()          # each variant returns host arrays, so the call has finished here
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop))
    return statistics.median(times)


def _torch_topk(corpus: np.ndarray, k: int):
    try:
        import torch
    except ImportError:
        return None
    c = torch.from_numpy(corpus).cuda()

    def search(queries: np.ndarray):
        q = torch.from_numpy(queries).cuda().to(c.dtype)
        scores, ids = torch.topk(q @ c.T, k, dim=1)
        return scores.float().cpu().numpy(), ids.cpu().numpy()
    return search


def _time_dtype(corpus: np.ndarray, queries_by_batch: dict[int, np.ndarray], k: int,
                repeats: int) -> list[dict[str, object]]:
    from baselines.faiss_topk import gpu as faiss_gpu
    from impls.faery import gpu as faery_gpu

    n, d = corpus.shape
    floor_ms = 1e3 * corpus.nbytes / HBM_BYTES_PER_S
    faery_searcher, faiss_searcher = faery_gpu.Searcher(corpus), faiss_gpu.Searcher(corpus)
    torch_search = _torch_topk(corpus, k)
    rows = []
    for b, queries in queries_by_batch.items():
        times = {"faery-gpu": _median_ms(lambda: faery_searcher.search(queries, k, None), repeats),
                 "faiss-like-gpu": _median_ms(lambda: faiss_searcher.search(queries, k), repeats)}
        if torch_search is not None:
            times["torch"] = _median_ms(lambda: torch_search(queries), repeats)
        phases = faiss_searcher.phase_times(queries, k)
        select_share = (phases["select_s"] + phases["merge_s"]) / sum(phases.values())
        for name, ms in times.items():
            rows.append({"variant": name, "dtype": corpus.dtype.name, "n": n, "d": d, "k": k, "b": b,
                         "median_ms": ms, "floor_ms": floor_ms, "of_floor": floor_ms / ms,
                         "vs_torch": times["torch"] / ms if "torch" in times else None,
                         "faiss_select_share": select_share if name == "faiss-like-gpu" else None})
    return rows


def _time_all(n: int, d: int, k: int, batches: list[int], repeats: int) -> list[dict[str, object]]:
    import cupy as cp

    rng = np.random.default_rng(0)
    corpus32 = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 1 << 20):  # chunked: no float64 temporary at 10M rows
        corpus32[start:start + (1 << 20)] = rng.standard_normal((min(1 << 20, n - start), d), dtype=np.float32)
    queries_by_batch = {b: rng.standard_normal((b, d), dtype=np.float32) for b in batches}
    rows = _time_dtype(corpus32, queries_by_batch, k, repeats)
    cp.get_default_memory_pool().free_all_blocks()  # the fp32 searchers are gone: give their memory back
    rows += _time_dtype(corpus32.astype(np.float16), queries_by_batch, k, repeats)
    return rows


def _print_table(rows: list[dict[str, object]]) -> None:
    print(f"\n{'variant':15s} {'dtype':8s} {'B':>4s} {'median ms':>10s} {'floor ms':>9s} {'floor/t':>8s} "
          f"{'torch/t':>8s} {'select share':>12s}")
    for r in rows:
        vs = f"{r['vs_torch']:.2f}" if r["vs_torch"] is not None else "-"
        share = f"{r['faiss_select_share']:.0%}" if r["faiss_select_share"] is not None else "-"
        print(f"{r['variant']:15s} {r['dtype']:8s} {r['b']:>4d} {r['median_ms']:>10.3f} {r['floor_ms']:>9.3f} "
              f"{r['of_floor']:>8.0%} {vs:>8s} {share:>12s}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-check", action="store_true")
    parser.add_argument("--json", help="also write the timing rows to this file")
    args = parser.parse_args(argv)
    import cupy as cp

    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    print(f"device: {props['name'].decode()}, cupy {cp.__version__}", flush=True)
    if not args.skip_check:
        _check_all()
    rows = _time_all(args.n, args.d, args.k, args.batches, args.repeats)
    _print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
