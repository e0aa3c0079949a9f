"""FAERY as an FPGA-HLS-style OpenCL kernel (faery_topk.cl), run here on PoCL.

Each work-item is one single-work-item pipeline ("compute unit") over a shard of the
corpus for one query; the per-unit top-k lists are merged on the host, as the
paper's sharded accelerators are.  The corpus lives in a device buffer with spare
capacity: appends and row updates write only the new rows.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from devices import opencl as opencl_device
from impls.faery.backend import sort_topk

KERNEL_SOURCE = Path(__file__).with_name("faery_topk.cl")
EMBEDDINGS_PER_ITERATION = 4   # N_E score units per pipeline
FILTER_FIFO_DEPTH = 16         # entries in the buffer between the filter and the sorter
MIN_ROWS_PER_UNIT = 2048       # below this a pipeline's start-up outweighs its share of the scan


@functools.cache
def _program(half: bool):
    cl, context, _ = opencl_device.context()
    options = [f"-DNE={EMBEDDINGS_PER_ITERATION}", f"-DFIFO_DEPTH={FILTER_FIFO_DEPTH}"]
    if half:
        options.append("-DCORPUS_HALF")
    return cl.Program(context, KERNEL_SOURCE.read_text()).build(options=options)


class Searcher:
    """The OpenCL backend (see impls.faery.backend for the contract)."""

    k_limit: int | None = None

    def __init__(self, corpus: np.ndarray) -> None:
        cl, self._context, self._queue = opencl_device.context()
        self._cl = cl
        self._dtype = corpus.dtype
        self._dim = corpus.shape[1]
        self._n = 0
        self._capacity = 0
        self._buffer = None
        self._reserve(corpus.shape[0])
        self._write(0, corpus)
        self._n = corpus.shape[0]
        # One kernel object per searcher: argument setting is not thread-safe across a Cluster's threads.
        self._kernel = cl.Kernel(_program(corpus.dtype == np.float16), "faery_topk")
        self.last_pass_rate = float("nan")

    @property
    def n_rows(self) -> int:
        return self._n

    def set_rows(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        for row, vector in zip(ids, vectors):
            self._write(int(row), vector[None, :])

    def append(self, vectors: np.ndarray) -> None:
        self._reserve(self._n + vectors.shape[0])
        self._write(self._n, vectors)
        self._n += vectors.shape[0]

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        cl = self._cl
        b = queries.shape[0]
        units = max(1, min(self._context.devices[0].max_compute_units * 2, self._n // MIN_ROWS_PER_UNIT))
        rows_per_unit = -(-self._n // units)
        units = -(-self._n // rows_per_unit)
        flags = cl.mem_flags
        query_buf = cl.Buffer(self._context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=queries)
        live_host = np.ascontiguousarray(live, dtype=np.uint8) if live is not None else np.ones(1, np.uint8)
        live_buf = cl.Buffer(self._context, flags.READ_ONLY | flags.COPY_HOST_PTR, hostbuf=live_host)
        top_scores = np.empty((b, units, k), dtype=np.float32)
        top_ids = np.empty((b, units, k), dtype=np.int64)
        passed = np.empty((b, units), dtype=np.int64)
        score_buf = cl.Buffer(self._context, flags.WRITE_ONLY, top_scores.nbytes)
        id_buf = cl.Buffer(self._context, flags.WRITE_ONLY, top_ids.nbytes)
        passed_buf = cl.Buffer(self._context, flags.WRITE_ONLY, passed.nbytes)
        self._kernel(self._queue, (units, b), (1, 1), self._buffer, query_buf, live_buf, np.int32(live is not None),
               np.int64(self._n), np.int32(self._dim), np.int32(k), np.int64(rows_per_unit),
               score_buf, id_buf, passed_buf)
        cl.enqueue_copy(self._queue, top_scores, score_buf)
        cl.enqueue_copy(self._queue, top_ids, id_buf)
        cl.enqueue_copy(self._queue, passed, passed_buf)
        self._queue.finish()
        self.last_pass_rate = float(passed.sum()) / (self._n * b)
        return sort_topk(top_scores.reshape(b, units * k), top_ids.reshape(b, units * k), k)

    def _reserve(self, rows: int) -> None:
        """Device capacity for `rows` rows, doubling (and copying on the device) when it grows."""
        if rows <= self._capacity:
            return
        capacity = max(rows, 2 * self._capacity)
        row_bytes = self._dim * self._dtype.itemsize
        fresh = self._cl.Buffer(self._context, self._cl.mem_flags.READ_WRITE, capacity * row_bytes)
        if self._n:
            self._cl.enqueue_copy(self._queue, fresh, self._buffer, byte_count=self._n * row_bytes)
        self._buffer, self._capacity = fresh, capacity

    def _write(self, first_row: int, rows: np.ndarray) -> None:
        row_bytes = self._dim * self._dtype.itemsize
        self._cl.enqueue_copy(self._queue, self._buffer, np.ascontiguousarray(rows, dtype=self._dtype),
                              dst_offset=first_row * row_bytes)
