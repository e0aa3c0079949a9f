"""Benchmark FAERY's CPU backend against its read floor, faiss-cpu and the Faiss-like baseline, in one run.

    python -m impls.faery.bench_cpu --n 4000000 --d 128 --k 100 --batches 1,16,256

The floor is the corpus's bytes over the measured read rate (best of several numpy
sums over the corpus itself, as the platform notes measure it).  Every time is the
median of `--repeats` runs after a warm-up; all figures come from this one process.
The systems take turns, one run each per round, so a change in the machine's load
during the benchmark falls on all of them alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from typing import Callable

import numpy as np

from workloads.embeddings import gaussian


def interleaved_medians(systems: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median time of each system over `repeats` rounds, one run of each per round, after a warm-up."""
    for fn in systems.values():
        fn()  # warm-up: compilation, page faults, caches
    samples: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(repeats):
        for name, fn in systems.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return {name: float(np.median(times)) for name, times in samples.items()}


def read_floor_s(corpus: np.ndarray, repeats: int = 5) -> float:
    """Best time to read the whole corpus once (numpy sum)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        corpus.sum(dtype=np.float32)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4_000_000)
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--batches", default="1,16,256")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]

    from baselines.faiss_topk import FlatIndex
    from impls.faery import Index

    data = gaussian(args.n, args.d, args.dtype, queries=max(batches), seed=args.n + args.d)
    floor = read_floor_s(data.corpus)
    print(f"corpus {args.n:,} x {args.d} {args.dtype} = {data.corpus.nbytes / 1e9:.2f} GB; "
          f"read floor {floor * 1e3:.1f} ms ({data.corpus.nbytes / floor / 1e9:.1f} GB/s)")
    systems: dict[str, Callable[[np.ndarray], object]] = {}
    faery = Index(data.corpus, "cpu")
    systems["faery-cpu"] = lambda q: faery.search(q, args.k)
    baseline = FlatIndex(data.corpus, "cpu")
    systems["faiss_topk-cpu"] = lambda q: baseline.search(q, args.k)
    if importlib.util.find_spec("faiss") is not None:
        import faiss

        flat = faiss.IndexFlatIP(args.d)
        flat.add(np.ascontiguousarray(data.corpus, dtype=np.float32))
        systems["faiss-cpu"] = lambda q: flat.search(q, args.k)

    rows = []
    for b in batches:
        queries = data.queries[:b]
        times = interleaved_medians({name: (lambda fn=fn: fn(queries)) for name, fn in systems.items()},
                                    args.repeats)
        row = {"batch": b, "floor_s": floor, **{f"{name}_s": t for name, t in times.items()},
               "faery_over_floor": times["faery-cpu"] / floor}
        if "faiss-cpu" in times:
            row["speedup_vs_faiss_cpu"] = times["faiss-cpu"] / times["faery-cpu"]
        row["speedup_vs_faiss_topk"] = times["faiss_topk-cpu"] / times["faery-cpu"]
        rows.append(row)
        print("  B=%-5d " % b + "  ".join(f"{name} {t * 1e3:9.1f} ms" for name, t in times.items())
              + f"  | faery/floor {row['faery_over_floor']:.2f}"
              + (f"  faiss-cpu/faery {row['speedup_vs_faiss_cpu']:.2f}x" if "speedup_vs_faiss_cpu" in row else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
