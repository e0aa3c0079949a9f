"""Time G2Miner's kernels on a generated graph: `python -m impls.g2miner.bench --scale 16 triangle 4-clique`.

Reports, per pattern, the count and the median of `--repeat` timed runs of the
kernel alone: graph preparation (relabelling, orientation) and kernel
compilation happen before the clock starts, after one warm-up run on a slice
of the edge list.  The full harness (`recmine`) measures the same calls.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numba

from impls.g2miner import pattern as patterns
from impls.g2miner.analyser import plan as make_plan
from impls.g2miner.prepare import prepare
from impls.g2miner.runner import BACKENDS, count_prepared
from workloads.graphs import kron


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="+", help="pattern names, e.g. triangle 4-clique diamond 4-cycle")
    parser.add_argument("--scale", type=int, default=16, help="Graph500 Kronecker scale (edge factor 16)")
    parser.add_argument("--backend", default="cpu", choices=BACKENDS)
    parser.add_argument("--induced", action="store_true", help="vertex-induced instead of edge-induced")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    graph = kron(args.scale)
    print(f"{graph}; backend {args.backend}; numba threads {numba.get_num_threads()}; {platform.processor() or platform.machine()}")
    for name in args.patterns:
        search_plan = make_plan(patterns.get(name), args.induced)
        prepared = prepare(graph, search_plan)
        count_prepared(search_plan, prepared.subset(slice(0, 1000)), args.backend)  # compile, warm up
        if search_plan.twin_aggregate is not None:
            count_prepared(search_plan, prepared, args.backend)  # that kernel runs on whole edge lists only
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            total = count_prepared(search_plan, prepared, args.backend)
            times.append(time.perf_counter() - start)
        spread = f"min {min(times):.3f} s, max {max(times):.3f} s" if len(times) > 1 else ""
        print(f"{name}: count {total}, median {statistics.median(times):.3f} s over {len(times)} runs {spread}",
              flush=True)


if __name__ == "__main__":
    main()
