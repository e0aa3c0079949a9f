"""GPU flat search the way Faiss's `bfKnn` does it: cuBLAS GEMM tiles, BlockSelect per tile, a merge.

- Queries are tiled by QUERY_TILE rows (1024 when d <= 32) and the corpus by as many
  columns as fit a SCORE_TILE_BYTES score buffer; there are two buffers, one per stream,
  and tiles alternate between the streams so one tile's GEMM overlaps another's
  selection (Faiss double-buffers the same way).
- Per tile: one cuBLAS GEMM (fp32, or fp16 inputs with fp32 output and accumulation, as
  Faiss does for fp16 storage), then BlockSelect (block_select.cu) over chunks of
  SELECT_CHUNK columns, each giving its sorted best k.
- Merge: BlockSelect over (score, id) pairs, MERGE_LISTS lists per block, until one
  list per query remains (Faiss's BlockSelectPair).
`phase_times()` runs the same pipeline on one stream with events between the steps and
reports the time in GEMM, in per-tile selection and in the merge (for the claim that
most of a GPU's top-K latency is selection).  cupy is imported only when a Searcher is made.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices.cuda import device_empty, require_cupy
from topk import cuda_source

QUERY_TILE = 512
QUERY_TILE_SMALL_D = 1024     # Faiss's tile for d <= 32
SCORE_TILE_BYTES = 256 << 20  # one score buffer; two of them: Faiss's 512 MB - 1 GB working set
SELECT_CHUNK = 16384          # columns of one row that one BlockSelect block reduces
MERGE_LISTS = 16              # k-lists one merge block reduces
MAX_GRID_Y = 65535            # queries per pass: the merge grid has one block row per query
FP16_MAX = float(np.finfo(np.float16).max)
SOURCE = Path(__file__).with_name("block_select.cu")

_cupy = functools.partial(require_cupy, "faiss_topk gpu backend")


@dataclass(frozen=True)
class SelectShape:
    """BlockSelect's launch for one k: per-thread queue length, threads, shared-memory region."""

    thread_queue: int
    threads: int
    region: int    # slots per warp: the warp queue (k) plus the thread queues (32 T), a power of two
    smem: int      # bytes per block


def select_shape(k: int) -> SelectShape:
    """Faiss's choices: thread queues of 2-8 entries by k; 64 threads at k = 2048, else 128."""
    if not 1 <= k <= 2048:
        raise ValueError(f"k={k} is outside BlockSelect's range 1..2048")
    queue = 2 if k <= 32 else 3 if k <= 128 else 4 if k <= 256 else 8
    threads = 64 if k > 1024 else 128
    region = 1 << (k + 32 * queue - 1).bit_length()
    return SelectShape(queue, threads, region, (threads // 32) * region * 8)


def tiles(n: int, b: int, d: int) -> tuple[int, int]:
    """(query rows, corpus columns) per tile."""
    query_tile = min(b, QUERY_TILE_SMALL_D if d <= 32 else QUERY_TILE)
    corpus_tile = min(n, max(SELECT_CHUNK, SCORE_TILE_BYTES // (4 * query_tile)))
    return query_tile, corpus_tile


@functools.cache
def _kernel(thread_queue: int):
    cp = _cupy()
    return cp.RawKernel(cuda_source(SOURCE), f"block_select_t{thread_queue}", options=("--std=c++17",))


class Searcher:
    """Corpus on the device; exact top-k (k <= 2048, checked by FlatIndex) per query."""

    def __init__(self, corpus: np.ndarray) -> None:
        cp = _cupy()
        if corpus.shape[0] >= 2**32 - 1:
            raise ValueError(f"the faiss_topk gpu backend holds fewer than 2**32 - 1 rows, got {corpus.shape[0]}")
        self.corpus = device_empty(corpus.shape, corpus.dtype, f"the corpus ({corpus.shape[0]} x {corpus.shape[1]} "
                                                         f"{corpus.dtype})")
        self.corpus.set(corpus)
        self._streams = (cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True))
        self._no_ids = cp.zeros(1, dtype=cp.uint32)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores float32 (B, k), ids int64 (B, k)), best first, ties to the lower id."""
        parts = [self._run(queries[q0:q0 + MAX_GRID_Y], k, timer=None) for q0 in range(0, queries.shape[0], MAX_GRID_Y)]
        return (np.concatenate([s.get() for s, _ in parts]),
                np.concatenate([i.get() for _, i in parts]).astype(np.int64))

    def phase_times(self, queries: np.ndarray, k: int) -> dict[str, float]:
        """Seconds in GEMM, per-tile selection and the merge (they sum to the total); one stream, device events."""
        timer = _PhaseTimer()
        self._run(queries, k, timer)
        return timer.seconds()

    def _run(self, queries: np.ndarray, k: int, timer: _PhaseTimer | None):
        cp = _cupy()
        n, d = self.corpus.shape
        b = queries.shape[0]
        peak = float(np.abs(queries).max()) if self.corpus.dtype == np.float16 and queries.size else 0.0
        if peak > FP16_MAX:
            raise ValueError(f"queries: largest |value| {peak:g} is beyond fp16's {FP16_MAX:g}; "
                             f"with an fp16 corpus the GEMM takes fp16 queries, as Faiss does")
        q_all = cp.asarray(queries, dtype=self.corpus.dtype)  # fp16 storage: fp16 queries, as Faiss
        query_tile, corpus_tile = tiles(n, b, d)
        starts = range(0, n, corpus_tile)
        chunks = [-(-min(corpus_tile, n - c0) // SELECT_CHUNK) for c0 in starts]  # lists each tile gives
        first_list = np.concatenate([[0], np.cumsum(chunks)]).astype(int)
        lists = int(first_list[-1])
        cand_s = device_empty((b, lists, k), np.float32, f"{b} x {lists} candidate lists of k={k}")
        cand_i = device_empty((b, lists, k), np.uint32, f"{b} x {lists} candidate lists of k={k}")
        buffers = [device_empty((query_tile, corpus_tile), np.float32, "a GEMM score tile") for _ in range(2)]
        current = cp.cuda.get_current_stream()
        streams = (current, current) if timer else self._streams
        ready = current.record()  # the side streams do not wait for the current one by themselves
        for stream in streams:
            stream.wait_event(ready)
        shape = select_shape(k)
        step = 0
        for q0 in range(0, b, query_tile):
            q = q_all[q0:q0 + query_tile]
            for t, c0 in enumerate(starts):
                cols = min(corpus_tile, n - c0)
                stream, out = streams[step % 2], buffers[step % 2][:q.shape[0], :cols]
                step += 1
                with stream:
                    if timer:
                        timer.mark("gemm")
                    _gemm_nt(q, self.corpus[c0:c0 + cols], out)
                    if timer:
                        timer.mark("select")
                    self._select(out, None, q.shape[0], cols, corpus_tile, SELECT_CHUNK, k, np.uint32(c0),
                                 lists * k, int(first_list[t]), cand_s[q0:], cand_i[q0:], shape)
        for stream in streams:
            current.wait_event(stream.record())
        if timer:
            timer.mark("merge")
        while lists > 1:  # the merge across tiles
            blocks = -(-lists // MERGE_LISTS)
            out_s = device_empty((b, blocks, k), np.float32, "merged candidate lists")
            out_i = device_empty((b, blocks, k), np.uint32, "merged candidate lists")
            self._select(cand_s, cand_i, b, lists * k, lists * k, MERGE_LISTS * k, k, np.uint32(0),
                         blocks * k, 0, out_s, out_i, shape)
            cand_s, cand_i, lists = out_s, out_i, blocks
        if timer:
            timer.mark("end")
        return cand_s.reshape(b, k), cand_i.reshape(b, k)

    def _select(self, values, ids, rows: int, row_len: int, row_stride: int, chunk: int, k: int,
                id_offset: np.uint32, out_row_stride: int, out_offset: int, out_s, out_i,
                shape: SelectShape) -> None:
        kernel = _kernel(shape.thread_queue)
        if shape.smem > 48 * 1024:  # above the default limit a kernel must opt in
            kernel.max_dynamic_shared_size_bytes = shape.smem
        grid = (-(-row_len // chunk), rows)
        kernel(grid, (shape.threads,),
               (values, self._no_ids if ids is None else ids, np.int32(ids is not None), np.int64(row_len),
                np.int64(row_stride), np.int32(chunk), np.int32(k), np.int32(shape.region), id_offset,
                np.int64(out_row_stride), np.int32(out_offset), out_s, out_i),
               shared_mem=shape.smem)


def _gemm_nt(q, rows, out) -> None:
    """out (m, c) float32 = q (m, d) @ rows (c, d).T, via cublasGemmEx on the current stream.

    Column-major view: out.T (c x m) = rows (d x c, col-major).T @ q (d x m, col-major).
    """
    cp = _cupy()
    from cupy_backends.cuda.libs import cublas

    runtime = cp.cuda.runtime
    in_type = runtime.CUDA_R_32F if rows.dtype == np.float32 else runtime.CUDA_R_16F
    m, d = q.shape
    c = rows.shape[0]
    one = np.ones(1, dtype=np.float32)
    zero = np.zeros(1, dtype=np.float32)
    handle = cp.cuda.device.get_cublas_handle()
    cublas.setStream(handle, cp.cuda.get_current_stream().ptr)
    mode = cublas.getPointerMode(handle)
    cublas.setPointerMode(handle, cublas.CUBLAS_POINTER_MODE_HOST)
    try:
        cublas.gemmEx(handle, cublas.CUBLAS_OP_T, cublas.CUBLAS_OP_N, c, m, d,
                      one.ctypes.data, rows.data.ptr, in_type, d, q.data.ptr, in_type, d,
                      zero.ctypes.data, out.data.ptr, runtime.CUDA_R_32F, out.strides[0] // 4,
                      cublas.CUBLAS_COMPUTE_32F, cublas.CUBLAS_GEMM_DEFAULT)
    finally:
        cublas.setPointerMode(handle, mode)


class _PhaseTimer:
    """Device events between pipeline steps on one stream; each interval is charged to the step its first mark names."""

    def __init__(self) -> None:
        self._marks: list[tuple[str, object]] = []

    def mark(self, step: str) -> None:
        cp = _cupy()
        event = cp.cuda.Event()
        event.record()
        self._marks.append((step, event))

    def seconds(self) -> dict[str, float]:
        cp = _cupy()
        self._marks[-1][1].synchronize()
        total = {"gemm_s": 0.0, "select_s": 0.0, "merge_s": 0.0}
        for (step, start), (_, stop) in zip(self._marks, self._marks[1:]):
            total[f"{step}_s"] += cp.cuda.get_elapsed_time(start, stop) / 1e3
        return total
