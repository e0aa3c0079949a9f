"""FAERY-CPU against its roofline and baselines, every system interleaved in one process.

    python -m impls.faery.bench_cpu_roofline --n 1000000 --dtype float32 --batches 1,16,256

Per batch size: FAERY (`Index.search`, index built once), one-call `search()`,
`faiss_topk` and faiss-cpu (where installed), with the read floor (harness.floors:
one numba pass over the corpus) on 1 and on every thread, and the compute ceiling
(a 4096^3 fp32 GEMM through BLAS) measured in the same rounds.  The roofline time of
a search is max(bytes / read rate, 2 N d B / GEMM rate).  Prints the CPU model and
the load average before and after.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform

import numba
import numpy as np
from threadpoolctl import threadpool_limits

from harness.floors import corpus_words, read_floor
from impls.faery.bench_cpu import interleaved_medians
from workloads.embeddings import gaussian

CEILING_SIZE = 4096


def _cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def _on_threads(threads: int, fn):
    def run():
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        try:
            with threadpool_limits(threads, user_api="blas"):
                return fn()
        finally:
            numba.set_num_threads(before)
    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--batches", default="1,16,256")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    threads = numba.get_num_threads()

    from baselines.faiss_topk import FlatIndex
    from impls.faery import Index, search

    print(f"cpu {_cpu_model()}, {threads} threads; load average {os.getloadavg()}")
    data = gaussian(args.n, args.d, args.dtype, queries=max(batches), seed=args.n + args.d)
    words = corpus_words(data.corpus)
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((CEILING_SIZE, CEILING_SIZE), dtype=np.float32) for _ in range(2))
    product = np.empty_like(a)
    index = Index(data.corpus, "cpu")
    baseline = FlatIndex(data.corpus, "cpu")
    systems = {"faery": lambda q: index.search(q, args.k),
               "faery one-call": lambda q: search(data.corpus, q, args.k),
               "faiss_topk": lambda q: baseline.search(q, args.k)}
    if importlib.util.find_spec("faiss") is not None:
        import faiss

        flat = faiss.IndexFlatIP(args.d)
        flat.add(np.ascontiguousarray(data.corpus, dtype=np.float32))
        systems["faiss-cpu"] = lambda q: flat.search(q, args.k)
    bounds = {"floor 1 thread": _on_threads(1, lambda: read_floor(words)),
              f"floor {threads} threads": lambda: read_floor(words),
              "gemm ceiling": lambda: np.matmul(a, b, out=product)}
    print(f"corpus {args.n:,} x {args.d} {args.dtype} = {words.nbytes / 1e9:.2f} GB, k = {args.k}")
    for batch in batches:
        queries = data.queries[:batch]
        times = interleaved_medians({**{name: (lambda fn=fn: fn(queries)) for name, fn in systems.items()},
                                     **bounds}, args.repeats)
        read_rate = words.nbytes / times[f"floor {threads} threads"]
        flop_rate = 2.0 * CEILING_SIZE ** 3 / times["gemm ceiling"]
        flops = 2.0 * args.n * args.d * batch
        roofline = max(words.nbytes / read_rate, flops / flop_rate)
        print(f"B={batch:<4d} " + "  ".join(f"{name} {t * 1e3:.1f} ms" for name, t in times.items()))
        print(f"       read {read_rate / 1e9:.1f} GB/s ({words.nbytes / times['floor 1 thread'] / 1e9:.1f} on 1 thread), "
              f"GEMM {flop_rate / 1e9:.1f} GFLOP/s; roofline {roofline * 1e3:.1f} ms; "
              f"faery/roofline {times['faery'] / roofline:.2f}, faery/floor {times['faery'] / (words.nbytes / read_rate):.2f}, "
              f"faery GFLOP/s {flops / times['faery'] / 1e9:.1f}, faiss_topk/faery {times['faiss_topk'] / times['faery']:.2f}, "
              f"one-call/faery {times['faery one-call'] / times['faery']:.2f}"
              + (f", faiss-cpu/faery {times['faiss-cpu'] / times['faery']:.2f}" if "faiss-cpu" in times else ""))
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
