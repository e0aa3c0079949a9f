"""Exact top-K inner-product retrieval on the CPU: the Faiss-like baseline beside the real faiss-cpu.

This is the "baseline strength" slice: `baselines.faiss_topk` must be as fast as the
library it stands for, measured side by side on the same data, and numpy brute
force is the fixed reference the regression gate divides by.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.registry import Experiment, Trial, experiment
from workloads.embeddings import EmbeddingSet, check_topk

QUICK_WORKLOADS = ("gaussian-25k-d128-fp32", "gaussian-100k-d128-fp32", "gaussian-400k-d128-fp32",
                   "clustered-100k-d128-fp32", "gaussian-100k-d128-fp16")
FULL_WORKLOADS = ("gaussian-1m-d128-fp32", "gaussian-4m-d128-fp32", "clustered-1m-d128-fp32",
                  "gaussian-1m-d128-fp16")
K = 100
QUICK_BATCHES = (1, 64)
FULL_BATCHES = (1, 16, 256)


def _checker(data: EmbeddingSet, queries: np.ndarray, k: int):
    # Brute force in float64 over a few rows keeps the check cheap at 10M items.
    rows = slice(0, min(4, queries.shape[0]))

    def check(result: tuple[np.ndarray, np.ndarray]) -> None:
        scores, ids = result
        check_topk(data.corpus, queries[rows], scores[rows], ids[rows], k)
    return check


def build_faiss_topk(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    from baselines.faiss_topk import FlatIndex

    index = FlatIndex(data.corpus, backend="cpu")
    queries = data.queries[:p["batch"]]
    return Trial(run=lambda: index.search(queries, p["k"]), check=_checker(data, queries, p["k"]))


def build_faiss_cpu(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    import faiss

    index = faiss.IndexFlatIP(data.d)
    index.add(np.ascontiguousarray(data.corpus, dtype=np.float32))
    queries = data.queries[:p["batch"]]
    return Trial(run=lambda: index.search(queries, p["k"]), check=_checker(data, queries, p["k"]))


def numpy_topk(corpus: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The plainest fast version: the full score matrix, argpartition, then sort the k."""
    scores = queries @ corpus.T
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(part, order, axis=1)


def build_numpy(data: EmbeddingSet, p: dict[str, Any]) -> Trial:
    corpus = np.ascontiguousarray(data.corpus, dtype=np.float32)
    queries = data.queries[:p["batch"]]
    return Trial(run=lambda: numpy_topk(corpus, queries, p["k"]), check=_checker(data, queries, p["k"]))


# The report divides the real library's time by each implementation's: above 1 is faster than faiss-cpu.
SPEEDUP_BASELINE = "faiss-cpu"
BASELINE_STRENGTH = [{"label": "faiss-cpu / baselines.faiss_topk (CPU), same data and batch",
                      "real": {"system": "topk", "impl": "faiss-cpu"}, "ours": {"system": "topk", "impl": "faiss_topk"},
                      "pair_on": ["workload", "k", "batch"]}]

IMPLS = {"faiss_topk": (build_faiss_topk, ()), "faiss-cpu": (build_faiss_cpu, ("faiss",)),
         "numpy": (build_numpy, ())}


def experiments() -> list[Experiment]:
    out = []
    for tier, workloads, batches in (("quick", QUICK_WORKLOADS, QUICK_BATCHES),
                                     ("full", FULL_WORKLOADS, FULL_BATCHES)):
        for workload in workloads:
            for batch in batches:
                for impl, (build, requires) in IMPLS.items():
                    out.append(experiment("topk", impl, "cpu", workload, build, params={"k": K, "batch": batch},
                                          tiers=tier, requires=requires,
                                          description=f"exact top-{K}, batch {batch}, {impl}"))
    return out


PLOTS = [
    {"title": "Exact top-100 on the CPU: latency vs corpus size (batch 1)",
     "select": {"system": "topk", "batch": 1, "workload": "gaussian-*-fp32"},
     "x": "size.n", "y": "time_s", "hue": "impl", "logx": True, "logy": True},
]


# ---------------------------------------------------------------------------- CLI: search a user's own files

import click  # noqa: E402  (the CLI is optional for library users of this module)


@click.group(help="Exact top-K retrieval on your own embedding files.")
def cli() -> None:
    pass


@cli.command("search")
@click.argument("corpus", type=click.Path(dir_okay=False))
@click.option("--queries", type=click.Path(dir_okay=False),
              help="query file (default: an ann-benchmarks file's 'test' set, or 16 rows of the corpus)")
@click.option("--k", type=int, default=10, show_default=True)
@click.option("--impl", type=click.Choice(["faiss_topk", "faiss-cpu", "numpy"]), default="faiss_topk",
              show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="write ids and scores to this .npz")
def search_command(corpus: str, queries: str | None, k: int, impl: str, out: str | None) -> None:
    """Top-K of each query in CORPUS (.npy, .fvecs, .bvecs, .hdf5), with the median time of 5 runs."""
    from pathlib import Path

    from harness.measure import Settings, measure
    from workloads.embeddings import check_k, load_embedding_set

    data = load_embedding_set(corpus, queries, queries=16)
    check_k(k, data.n, 2048 if impl == "faiss_topk" else None, impl)
    if out is not None and not Path(out).resolve().parent.is_dir():
        raise ValueError(f"--out {out}: its folder does not exist")
    trial = IMPLS[impl][0](data, {"k": k, "batch": data.queries.shape[0]})
    m = measure(trial.run, Settings(min_repeats=5, min_time_s=0.0))
    scores, ids = m.result
    click.echo(f"{impl}: {data.queries.shape[0]} queries against {data.n:,} x {data.d} {data.corpus.dtype} "
               f"in {m.median * 1e3:.2f} ms (median of {len(m.samples)}, IQR {m.iqr * 1e3:.2f} ms)")
    for row in range(min(3, ids.shape[0])):
        click.echo(f"  query {row}: ids {ids[row][:10].tolist()}{' ...' if k > 10 else ''}")
    if out is not None:
        np.savez(out, ids=ids, scores=scores)
        click.echo(f"wrote {out}")
