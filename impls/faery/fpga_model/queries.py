"""Queries over a corpus through the cycle model: every score computed first (they are data),
then each query's score stream through the cycle loop.  Every figure is modelled.

Scores are float32, from the CPU backend's score kernel (`impls.faery.scoring`), fp16 rows
widened exactly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

import numpy as np

from impls.faery.fpga_model.config import FpgaConfig, closed_form_cycles, layout
from impls.faery.fpga_model.cycles import ScanStats, simulate_scan
from impls.faery.scoring import score_matrix

# Scores for a group of queries are held as (group, N) float32; this bounds that matrix.
SCORE_BUFFER_BYTES = 1 << 28


def _score_group(rows: np.ndarray, queries: np.ndarray, live: np.ndarray | None) -> np.ndarray:
    """(B, N) float32 scores in scan order, -inf on deleted rows."""
    out = score_matrix(rows, queries)
    if live is not None:
        out[:, ~live] = -np.inf
    return out


def model_queries(rows: np.ndarray, queries: np.ndarray, k: int, config: FpgaConfig = FpgaConfig(),
                  live: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list[ScanStats]]:
    """Each query scanned through the modelled accelerator: (scores (B,k), ids (B,k), stats per query)."""
    b = queries.shape[0]
    scores = np.empty((b, k), dtype=np.float32)
    ids = np.empty((b, k), dtype=np.int64)
    stats: list[ScanStats] = []
    group = max(1, min(b, SCORE_BUFFER_BYTES // (4 * rows.shape[0])))
    emb_bytes = rows.shape[1] * rows.dtype.itemsize
    for q0 in range(0, b, group):
        group_scores = _score_group(rows, queries[q0:q0 + group], live)
        for r, row_scores in enumerate(group_scores):
            scores[q0 + r], ids[q0 + r], st, _ = simulate_scan(row_scores, k, emb_bytes, rows.shape[1], config)
            stats.append(st)
    return scores, ids, stats


def sweep(rows: np.ndarray, query: np.ndarray, channels: Iterable[int] = (8, 16, 32),
          score_units: Iterable[int | None] = (None,), ks: Iterable[int] = (1024,),
          base: FpgaConfig = FpgaConfig()) -> list[dict[str, float]]:
    """The modelled figures of one query over a grid of HBM channels, N_E and K (= k_max = k).

    N_E None means bandwidth-matched.  The query's scores are computed once; only the
    accelerator changes.  Every row carries kind="modelled".
    """
    row_scores = _score_group(rows, np.atleast_2d(np.asarray(query, dtype=np.float32)), None)[0]
    emb_bytes = rows.shape[1] * rows.dtype.itemsize
    table = []
    for ch in channels:
        for units in score_units:
            for k in ks:
                config = replace(base, hbm_channels=ch, score_units=units, k_max=k)
                _, _, st, _ = simulate_scan(row_scores, k, emb_bytes, rows.shape[1], config)
                lay = layout(config, emb_bytes)
                table.append({"kind": "modelled", "channels": ch, "score_units": lay.score_units, "k": k,
                              "clock_mhz": config.clock / 1e6,
                              "modelled_bandwidth_gb_s": config.bytes_per_cycle * config.clock / 1e9,
                              "modelled_closed_form_cycles": closed_form_cycles(
                                  config, rows.shape[0], rows.shape[1], rows.dtype.itemsize, k),
                              **st.figures()})
    return table
