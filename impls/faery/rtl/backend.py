"""The fpga-rtl backend: FAERY's search run on the RTL, simulated cycle by cycle.

It takes corpora and queries whose values are integers in the int8 range (stored as
int8 or as floats) and refuses any other values.  Embeddings are stored zero-padded to
a power-of-two size of at least 32 bytes, so that SNARY's U50 beat (16 channels x 32 B)
holds a whole number of them; padding adds nothing to a dot product.  Each search
simulates one query at a time on SNARY's U50 configuration with a K-selector of
K = k's power of two; Amaranth's simulator runs small scans, Verilator larger ones
where it is installed.  `last_stats` holds each query's simulated counters.
"""

from __future__ import annotations

import math
import shutil

import numpy as np

from impls.faery.backend import RowStore
from impls.faery.fpga_model.config import FpgaConfig
from impls.faery.rtl.params import MAX_DIM
from impls.faery.rtl.sim import RtlStats, simulate

K_LIMIT = 4096                 # SNARY's largest K-selector
MIN_EMBEDDING_BYTES = 32
BEAT_BYTES = 16 * 32           # SNARY's U50: 16 channels x 32 B
AMARANTH_ITEMS = 4096          # above this many items (or k > 64) Verilator runs, where present


def int8_values(array: np.ndarray, name: str) -> np.ndarray:
    """`array` as int8, or ValueError when a value is not an integer in [-128, 127]."""
    if array.dtype == np.int8:
        return array
    values = np.asarray(array, dtype=np.float64)
    bad = (values != np.round(values)) | (values < -128) | (values > 127)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(f"the fpga-rtl backend takes int8 values only: {name}[{row}, {col}] = "
                         f"{values[row, col]:g} is not an integer in [-128, 127]")
    return values.astype(np.int8)


def padded_dim(dim: int) -> int:
    width = max(MIN_EMBEDDING_BYTES, 1 << math.ceil(math.log2(dim)))
    if width > min(MAX_DIM, BEAT_BYTES):
        raise ValueError(f"the fpga-rtl backend takes embeddings of at most {BEAT_BYTES} int8 dimensions "
                         f"(one U50 beat), got {dim}")
    return width


class Searcher:
    def __init__(self, corpus: np.ndarray) -> None:
        self._dim = padded_dim(corpus.shape[1])
        self._rows = RowStore(self._pad(int8_values(corpus, "corpus")))
        self.k_limit: int | None = K_LIMIT
        self.last_stats: list[RtlStats] = []
        self.last_pass_rate = float("nan")
        self.last_engine = ""

    def _pad(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((rows.shape[0], self._dim), dtype=np.int8)
        out[:, :rows.shape[1]] = rows
        return out

    @property
    def n_rows(self) -> int:
        return self._rows.n_rows

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows.rows
        config = FpgaConfig.snary_u50(k_max=max(16, 1 << math.ceil(math.log2(k))))
        large = rows.shape[0] > AMARANTH_ITEMS or k > 64
        engine = "verilator" if large and shutil.which("verilator") and shutil.which("yosys") else "amaranth"
        run = simulate(rows, self._pad(int8_values(queries, "queries")), k, config, live, engine)
        self.last_stats, self.last_engine = run.stats, engine
        self.last_pass_rate = float(np.mean([s.passed / s.items for s in run.stats]))
        return run.scores.astype(np.float32), run.ids

    def set_rows(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._rows.set_rows(ids, self._pad(int8_values(vectors, "updated vectors")))

    def append(self, vectors: np.ndarray) -> None:
        self._rows.append(self._pad(int8_values(vectors, "inserted vectors")))
