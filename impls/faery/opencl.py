"""FAERY as an FPGA-HLS-style OpenCL kernel (faery_topk.cl), run here on PoCL.

Each work-item is one single-work-item pipeline ("compute unit") over a shard of the
corpus for one query; the per-unit top-k lists are merged on the host, as the
paper's sharded accelerators are.  The corpus lives in device memory (a `RowStore` of
pyopencl arrays) with spare capacity: appends and row updates write only the new rows.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from devices import opencl as opencl_device
from impls.faery.backend import RowStore, StoredRows
from topk import sort_topk

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


class Searcher(StoredRows):
    """The OpenCL backend (see impls.faery.backend for the contract)."""

    k_limit: int | None = None

    def __init__(self, corpus: np.ndarray) -> None:
        cl, self._context, self._queue = opencl_device.context()
        import pyopencl.array as cl_array  # after context(): that names the reason when there is no OpenCL

        self._cl = cl
        self._dim = d = corpus.shape[1]
        held = np.uint16 if corpus.dtype == np.float16 else corpus.dtype  # pyopencl arrays have no float16: its bits
        self._store = RowStore(corpus, allocate=lambda capacity: cl_array.empty(self._queue, (capacity, d), held))
        # One kernel object per searcher: argument setting is not thread-safe across a Cluster's threads.
        self._kernel = cl.Kernel(_program(corpus.dtype == np.float16), "faery_topk")
        self.last_pass_rate = float("nan")

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        cl = self._cl
        b = queries.shape[0]
        n = self._store.n_rows
        units = max(1, min(self._context.devices[0].max_compute_units * 2, n // MIN_ROWS_PER_UNIT))
        rows_per_unit = -(-n // units)
        units = -(-n // rows_per_unit)
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
        self._kernel(self._queue, (units, b), (1, 1), self._store.rows.data, query_buf, live_buf,
                     np.int32(live is not None), np.int64(n), np.int32(self._dim), np.int32(k),
                     np.int64(rows_per_unit), score_buf, id_buf, passed_buf)
        cl.enqueue_copy(self._queue, top_scores, score_buf)
        cl.enqueue_copy(self._queue, top_ids, id_buf)
        cl.enqueue_copy(self._queue, passed, passed_buf)
        self._queue.finish()
        self.last_pass_rate = float(passed.sum()) / (n * b)
        return sort_topk(top_scores.reshape(b, units * k), top_ids.reshape(b, units * k), k)
