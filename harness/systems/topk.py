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
