"""What placing work on Ray costs: FAERY sharded search and G2Miner partitioned counts, Ray against in-process.

A benchmark, not a test (the issue's "Performance" goals; run it on a quiet machine):

    python -m harness.ray_overhead faery   [--workload gaussian-1m-d128-fp32] [--shards 2] [--batches 1,16]
    python -m harness.ray_overhead g2miner [--workload kron16] [--pattern triangle] [--partitions 1,4]

- faery: the same corpus in a sharded `impls.faery.Cluster` twice, in-process and one actor per
  shard on Ray; per batch size B, the median time of one `search(B queries, k)` call on each,
  and the time Ray adds per call and per query (goal: at most 1 ms per query at B = 1).
- g2miner: `count_partitioned` in-process (partitions one after another) and on Ray (one task
  per partition over a graph put in the object store once); per partition count P, the median
  time of one count on each and Ray's time against in-process (goal: at most 10% for TC).  At
  P = 1 both do the same work in one place, so the difference is the dispatch alone; at larger P
  the Ray tasks also run side by side where the cluster has the CPUs.

Both variants are timed in the same process, in alternating rounds, after a warm-up call each
(numba compiles, Ray starts its workers); answers are checked equal before any timing.  Every
figure is printed with the load average beside it.  `--ray` joins a cluster as
`recmine reproduce --ray` does (default `local`: a one-machine cluster for the run).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from harness.cluster import joined
from harness.measure import interleaved_medians
from workloads import catalog


def faery(workload: str, shards: int, batches: list[int], k: int, rounds: int, backend: str) -> list[dict]:
    from impls.faery import Cluster

    data = catalog.load(workload)
    in_process = Cluster(data.corpus, shards, "sharded", backend)
    on_ray = Cluster(data.corpus, shards, "sharded", backend, placement="ray")
    rows = []
    try:
        for batch in batches:
            queries = np.ascontiguousarray(np.resize(data.queries, (batch, data.queries.shape[1])))
            want, got = in_process.search(queries, k), on_ray.search(queries, k)  # also the warm-up
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[0], want[0])
            median = interleaved_medians({"in-process": lambda: in_process.search(queries, k),
                                   "ray": lambda: on_ray.search(queries, k)}, rounds)
            added = median["ray"] - median["in-process"]
            rows.append({"benchmark": "faery-sharded", "workload": workload, "shards": shards, "backend": backend,
                         "batch": batch, "k": k, "in_process_ms": 1e3 * median["in-process"],
                         "ray_ms": 1e3 * median["ray"], "added_ms_per_call": 1e3 * added,
                         "added_ms_per_query": 1e3 * added / batch, "goal_ms_per_query_at_b1": 1.0,
                         "load_average": os.getloadavg()[0]})
    finally:
        in_process.close()
        on_ray.close()
    return rows


def g2miner(workload: str, pattern: str, partitions: list[int], rounds: int, backend: str) -> list[dict]:
    from impls.g2miner.partition import count_partitioned

    graph = catalog.load(workload)
    rows = []
    for parts in partitions:
        def local() -> int:
            return count_partitioned(graph, pattern, backend, num_partitions=parts).total

        def ray() -> int:
            return count_partitioned(graph, pattern, backend, num_partitions=parts, placement="ray").total

        want, got = local(), ray()  # also the warm-up
        if got != want:
            raise AssertionError(f"{pattern} on {workload}: {got} counted on Ray, {want} in-process")
        median = interleaved_medians({"in-process": local, "ray": ray}, rounds)
        rows.append({"benchmark": "g2miner-partitioned", "workload": workload, "pattern": pattern,
                     "backend": backend, "partitions": parts, "count": want,
                     "in_process_s": median["in-process"], "ray_s": median["ray"],
                     "ray_over_in_process": median["ray"] / median["in-process"] - 1.0,
                     "goal_overhead_for_tc": 0.10, "load_average": os.getloadavg()[0]})
    return rows


def _sizes(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.ray_overhead", description=__doc__.split("\n")[0])
    parser.add_argument("--ray", default="local", metavar="ADDRESS", help="auto, local or HOST:PORT")
    parser.add_argument("--rounds", type=int, default=30, help="alternating timed rounds per variant")
    parser.add_argument("--backend", default="cpu")
    sub = parser.add_subparsers(dest="which", required=True)
    f = sub.add_parser("faery")
    f.add_argument("--workload", default="gaussian-1m-d128-fp32")
    f.add_argument("--shards", type=int, default=2)
    f.add_argument("--batches", type=_sizes, default=[1, 16])
    f.add_argument("-k", type=int, default=100)
    g = sub.add_parser("g2miner")
    g.add_argument("--workload", default="kron16")
    g.add_argument("--pattern", default="triangle")
    g.add_argument("--partitions", type=_sizes, default=[1, os.cpu_count() or 1])
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    try:
        with joined(args.ray):
            rows = (faery(args.workload, args.shards, args.batches, args.k, args.rounds, args.backend)
                    if args.which == "faery" else
                    g2miner(args.workload, args.pattern, args.partitions, args.rounds, args.backend))
    except ValueError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    for row in rows:
        print(json.dumps({key: round(v, 4) if isinstance(v, float) else v for key, v in row.items()}))


if __name__ == "__main__":
    main()
