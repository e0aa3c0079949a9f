"""A real-text embedding corpus: Python standard-library docstrings embedded with all-MiniLM-L6-v2.

The rows ship in `workloads/data/text/` (float16, 384 dimensions, L2-normalised) and
were made offline by `workloads/make_text_corpus.py`, whose docstring says exactly how;
`stdlib-docstrings-minilm.json` records the versions, and the `.tsv` names the module
and object each row comes from.  Rows are in the order the source files sort, so
neighbouring rows are related text: the filter sees the correlated score stream of a
real catalogue rather than an i.i.d. one.

The named workload holds out QUERY_ROWS rows, chosen with a fixed seed, as queries; the
remaining rows, in their original order, are the corpus.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workloads.catalog import Workload, register
from workloads.embeddings import EmbeddingSet, as_corpus, as_queries

DATA = Path(__file__).resolve().parent / "data" / "text" / "stdlib-docstrings-minilm.npy"
QUERY_ROWS = 256
WORKLOAD = "text-stdlib-minilm-d384-fp16"


def load_text_corpus(queries: int = QUERY_ROWS, seed: int = 0) -> EmbeddingSet:
    """The shipped rows split into a corpus and `queries` held-out query rows."""
    if not DATA.is_file():
        raise ValueError(f"{DATA}: the shipped text embeddings are missing; make them with "
                         "workloads/make_text_corpus.py")
    rows = as_corpus(np.load(DATA, allow_pickle=False), name=str(DATA))
    if not 1 <= queries < rows.shape[0]:
        raise ValueError(f"queries must be between 1 and {rows.shape[0] - 1}, got {queries}")
    held_out = np.zeros(rows.shape[0], dtype=bool)
    held_out[np.random.default_rng(seed).choice(rows.shape[0], queries, replace=False)] = True
    return EmbeddingSet(np.ascontiguousarray(rows[~held_out]), as_queries(rows[held_out], rows.shape[1]), WORKLOAD)


if DATA.is_file():
    _n = np.load(DATA, mmap_mode="r").shape[0] - QUERY_ROWS  # the header only, no rows read
    register(Workload(
        name=WORKLOAD, kind="embeddings", tier="quick",
        description=(f"{_n:,} x 384 float16 real-text corpus: Python 3.11 standard-library docstring "
                     f"paragraphs embedded with all-MiniLM-L6-v2 (normalised), in source order; "
                     f"{QUERY_ROWS} held-out rows as float32 queries"),
        load=load_text_corpus,
        size={"n": _n, "d": 384, "bytes": _n * 384 * 2},
        source="workloads/data/text/stdlib-docstrings-minilm.npy, made by workloads/make_text_corpus.py",
    ))
