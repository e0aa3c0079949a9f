"""FAERY's gpu backend: a fused scan-score-filter-select kernel and a merge kernel (faery_gpu.cu).

The corpus lives on the device.  A search launches one scan kernel over a grid of
(corpus slice, query group) blocks; each block keeps the sorted best k of its slice
for each of its queries, so what reaches device memory is slices x k candidates per
query, never a score matrix.  Merge kernels then fold MERGE_FAN lists into one until a
single sorted list per query remains.  fp32 and fp16 corpora; k up to 4096.

`plan()` holds every launch decision (tile rows, query group, buffer sizes, grid) and is
plain Python, so it is tested without a GPU; the kernels are compile-checked with nvcc.
cupy is imported only when a Searcher is made.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from devices.cuda import device_empty, require_cupy
from impls.faery.backend import RowStore, StoredRows
from topk import cuda_source

K_LIMIT = 4096
THREADS = 256                # threads per block (THREADS in faery_gpu.cu)
MERGE_FAN = 8                # lists one merge block folds (MERGE_FAN in faery_gpu.cu)
TILE_BYTES = 32 * 1024       # shared memory for one corpus tile: small, so several blocks share an SM
SMEM_LIMIT = 200 * 1024      # dynamic shared memory per block we allow at most (H100 opts in to 227 KB)
BLOCKS_PER_SM = 4            # scan blocks per SM to aim for, to overlap one block's loads with another's math
MAX_QUERY_GROUP = 16         # queries scored per corpus read
MAX_GRID_Y = 65535          # queries per launch: the merge grid has one block row per query
MAX_ROWS = 2**31 - 1         # rows are int on the device; ids are 32-bit with 0xffffffff as "empty"
SOURCE = Path(__file__).with_name("faery_gpu.cu")

_cupy = functools.partial(require_cupy, "faery gpu backend")


@dataclass(frozen=True)
class Plan:
    """The launch of one search (B queries, top-k) over n rows of dimension d."""

    tile_rows: int       # rows per shared-memory tile
    queries_per_thread: int
    query_group: int     # queries per block
    groups: int          # blocks along the query axis
    slices: int          # blocks along the corpus axis (= candidate lists per query)
    slice_rows: int
    scan_cap: int        # candidate buffer slots per query in a scan block (power of two)
    scan_smem: int       # bytes
    merge_cap: int
    merge_smem: int



def _pow2_at_least(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def _scan_smem(tile_rows: int, stride: int, d: int, group: int, cap: int) -> int:
    # The layout in faery_gpu.cu: tile | queries | scores | ids | thresholds (score, id) | fills.
    return 4 * (tile_rows * stride + group * d + 2 * group * cap + 3 * group)


def plan(n: int, d: int, b: int, k: int, sm_count: int, smem_limit: int = SMEM_LIMIT) -> Plan:
    """Choose tiles, query groups, buffers and grid; ValueError when d is too large to tile.

    `smem_limit`: shared memory one block may have on the device (its opt-in maximum).
    """
    stride = d | 1  # an odd row stride: one row per thread reads shared memory without bank conflicts
    tile_rows = max(1, min(THREADS, TILE_BYTES // (4 * stride)))
    cap = _pow2_at_least(k + tile_rows)  # room for the best k plus one tile's candidates
    if b == 1:
        qpt, group = 1, 1
    else:
        qpt, group = 4, min(MAX_QUERY_GROUP, 4 * -(-b // 4))
        while group > 4 and _scan_smem(tile_rows, stride, d, group, cap) > smem_limit:
            group -= 4
        if _scan_smem(tile_rows, stride, d, group, cap) > smem_limit:
            qpt, group = 1, 1
    smem = _scan_smem(tile_rows, stride, d, group, cap)
    merge_cap = _pow2_at_least(k + THREADS)
    merge_smem = 4 * (2 * merge_cap + 3)
    if max(smem, merge_smem) > smem_limit:
        raise ValueError(f"dimension d={d} with k={k} needs {max(smem, merge_smem)} bytes of shared memory per "
                         f"block, over the {smem_limit} this device allows")
    groups = -(-b // group)
    wanted = max(1, -(-BLOCKS_PER_SM * sm_count // groups))
    slices = max(1, min(-(-n // tile_rows), wanted))
    slice_rows = tile_rows * -(-n // (slices * tile_rows))  # whole tiles per slice
    slices = -(-n // slice_rows)
    return Plan(tile_rows, qpt, group, groups, slices, slice_rows, cap, smem, merge_cap, merge_smem)


# --------------------------------------------------------------------------- device helpers

@functools.cache
def _kernel(name: str):
    cp = _cupy()
    return cp.RawKernel(cuda_source(SOURCE), name, options=("--std=c++17",))


def _launch(name: str, grid: tuple[int, int], smem: int, args: tuple) -> None:
    kernel = _kernel(name)
    if smem > 48 * 1024:  # above the default limit a kernel must opt in
        kernel.max_dynamic_shared_size_bytes = smem
    kernel(grid, (THREADS,), args, shared_mem=smem)


# --------------------------------------------------------------------------- the backend

class Searcher(StoredRows):
    """Corpus on the device (a `RowStore` in device memory); exact top-k per query."""

    k_limit: int | None = K_LIMIT

    def __init__(self, corpus: np.ndarray) -> None:
        cp = _cupy()
        _check_rows(corpus.shape[0])
        d, dtype = corpus.shape[1], corpus.dtype
        self._store = RowStore(corpus, allocate=lambda capacity: device_empty(
            (capacity, d), dtype, f"the corpus ({capacity} x {d} {dtype})"))
        self._sm_count = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["multiProcessorCount"]
        optin = cp.cuda.Device().attributes.get("MaxSharedMemoryPerBlockOptin", SMEM_LIMIT)
        self._smem_limit = min(SMEM_LIMIT, optin)
        self._no_live = cp.zeros(1, dtype=cp.uint8)
        self.last_pass_rate = float("nan")  # the kernel does not count the filter's survivors

    def search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        parts = [self._search(queries[q0:q0 + MAX_GRID_Y], k, live) for q0 in range(0, queries.shape[0], MAX_GRID_Y)]
        return np.concatenate([s for s, _ in parts]), np.concatenate([i for _, i in parts])

    def _search(self, queries: np.ndarray, k: int, live: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        cp = _cupy()
        b, d = queries.shape
        rows = self._store.rows
        n = rows.shape[0]
        p = plan(n, d, b, k, self._sm_count, self._smem_limit)
        q = cp.asarray(queries, dtype=cp.float32)
        mask = self._no_live if live is None else cp.asarray(live.view(np.uint8))
        lists_s = device_empty((b, p.slices, k), np.float32, f"{b} x {p.slices} candidate lists of k={k}")
        lists_i = device_empty((b, p.slices, k), np.uint32, f"{b} x {p.slices} candidate lists of k={k}")
        kind = "f32" if rows.dtype == np.float32 else "f16"
        _launch(f"faery_scan_{kind}_q{p.queries_per_thread}", (p.slices, p.groups), p.scan_smem,
                (rows, np.int32(n), np.int32(d), q, np.int32(b), np.int32(p.query_group),
                 np.int32(k), np.int32(p.scan_cap), np.int32(p.tile_rows), np.int64(p.slice_rows),
                 mask, np.int32(live is not None), lists_s, lists_i))
        lists = p.slices
        while lists > 1:
            groups = -(-lists // MERGE_FAN)
            out_s = device_empty((b, groups, k), np.float32, "merged candidate lists")
            out_i = device_empty((b, groups, k), np.uint32, "merged candidate lists")
            _launch("faery_merge", (groups, b), p.merge_smem,
                    (lists_s, lists_i, np.int32(lists), np.int32(k), np.int32(p.merge_cap), out_s, out_i))
            lists_s, lists_i, lists = out_s, out_i, groups
        return lists_s.reshape(b, k).get(), lists_i.reshape(b, k).get().astype(np.int64)

    def append(self, vectors: np.ndarray) -> None:
        _check_rows(self._store.n_rows + vectors.shape[0])
        self._store.append(vectors)


def _check_rows(n: int) -> None:
    if n > MAX_ROWS:
        raise ValueError(f"the faery gpu backend holds at most {MAX_ROWS} rows, got {n}")
