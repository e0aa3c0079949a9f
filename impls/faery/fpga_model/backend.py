"""The fpga-model backend: exact results through the cycle model, and the modelled figures of the last search."""

from __future__ import annotations

import numpy as np

from impls.faery.backend import RowStore, StoredRows
from impls.faery.fpga_model.config import FpgaConfig
from impls.faery.fpga_model.cycles import ScanStats
from impls.faery.fpga_model.queries import model_queries


class Searcher(StoredRows):
    """The fpga-model backend: exact results, and the modelled figures of the last search.

    `last_stats` holds one `ScanStats` per query of the last `search`; `last_pass_rate` is the
    modelled filter's share of passed scores over them.
    """

    def __init__(self, corpus: np.ndarray, config: FpgaConfig = FpgaConfig()) -> None:
        self.config = config
        self.k_limit: int | None = config.k_max
        self._store = RowStore(corpus)
        self.last_stats: list[ScanStats] = []
        self.last_pass_rate = float("nan")

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        scores, ids, self.last_stats = model_queries(self._store.rows, queries, k, self.config, live)
        self.last_pass_rate = sum(s.passed for s in self.last_stats) / sum(s.items for s in self.last_stats)
        return scores, ids
