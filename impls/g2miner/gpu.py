"""The CUDA backend: the warp-centric kernels from `emit_c`, compiled by cupy.RawModule.

cupy is imported on first use.  Launch geometry comes from the device and the
compiled kernel: 256-thread blocks (8 warps), as many blocks as can be resident
at once (threads and registers per SM), fewer when the work is short or when
the per-warp arrays (num_slots × max degree ints each, plus two of |V| ints for
the twin kernel) would take more than half of the free memory; a twin kernel
that does not fit gives way to the levels.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from devices.cuda import require_cupy, resident_blocks
from impls.g2miner.analyser import SearchPlan
from impls.g2miner.emit_c import CUDA, CUDA_BLOCK_SIZE, KERNEL_NAME, WARP_SIZE, kernel_source, twin_kernel_name
from impls.g2miner.prepare import PreparedGraph

# Share of free device memory the per-warp buffers may take.
_BUFFER_MEMORY_SHARE = 0.5


def source(plan: SearchPlan) -> str:
    """The CUDA C source generated for `plan`."""
    return kernel_source(plan, CUDA)


def _cupy() -> Any:
    return require_cupy("G2Miner gpu backend")


@functools.lru_cache(maxsize=256)
def _kernel(plan: SearchPlan, device: int, name: str = KERNEL_NAME) -> Any:
    cupy = _cupy()
    with cupy.cuda.Device(device):
        return _module(plan, device).get_function(name)


@functools.lru_cache(maxsize=128)
def _module(plan: SearchPlan, device: int) -> Any:
    cupy = _cupy()
    with cupy.cuda.Device(device):
        return cupy.RawModule(code=source(plan), options=("--std=c++17",))


def grid_blocks(kernel: Any, work_items: int, bytes_per_warp: int, device: int) -> int:
    """Blocks to launch: one resident wave, no more than the work items (a warp each at least)
    and what the memory share holds, whichever is smallest."""
    cupy = _cupy()
    warps_per_block = CUDA_BLOCK_SIZE // WARP_SIZE
    with cupy.cuda.Device(device):
        free, _ = cupy.cuda.runtime.memGetInfo()
    by_memory = int(free * _BUFFER_MEMORY_SHARE // (warps_per_block * max(bytes_per_warp, 1)))
    if by_memory < 1:
        raise MemoryError(f"per-warp arrays of {bytes_per_warp} bytes ({warps_per_block} warps a block) do not fit "
                          f"in {free} free bytes on device {device}")
    return max(1, min(resident_blocks(kernel, CUDA_BLOCK_SIZE, device), -(-work_items // warps_per_block), by_memory))


@dataclass
class PendingCount:
    """A launched kernel; `result()` waits for it and returns the count."""

    plan: SearchPlan
    device: int
    total: Any
    overflow: Any
    keep_alive: tuple

    def result(self) -> int:
        cupy = _cupy()
        with cupy.cuda.Device(self.device):
            total = int(self.total.get()[0])
            overflow = int(self.overflow.get()[0])
        if overflow or total >= 2**63:
            raise OverflowError(f"{self.plan.pattern.name}: a 64-bit count overflowed")
        return total


_ON_DEVICE: dict[tuple[int, int], tuple] = {}


def _device_arrays(graph: PreparedGraph, device: int) -> tuple:
    """The graph's arrays on `device` (the current device), uploaded once per graph.

    A timed count then measures the kernel, not the host-to-device copy, as the
    baseline's timings do; the copies are dropped with the prepared graph.
    """
    key = (id(graph), device)
    if key not in _ON_DEVICE:
        cupy = _cupy()
        _ON_DEVICE[key] = tuple(cupy.asarray(a) for a in (graph.indptr, graph.indices, graph.src, graph.dst))
        weakref.finalize(graph, _ON_DEVICE.pop, key, None)
    return _ON_DEVICE[key]


def launch(plan: SearchPlan, graph: PreparedGraph, device: int = 0) -> PendingCount:
    """Start the plan's kernel over `graph` on `device`, without waiting.

    The twin-aggregation kernel when the plan has one and the edge list is whole,
    else the DFS over the edge list.
    """
    cupy = _cupy()
    with cupy.cuda.Device(device):
        arrays = _device_arrays(graph, device)
        total = cupy.zeros(1, dtype=cupy.uint64)
        overflow = cupy.zeros(1, dtype=cupy.int32)
        if graph.num_edges == 0:
            return PendingCount(plan, device, total, overflow, arrays)
        indptr, indices, src, dst = arrays
        slots_per_warp = plan.num_slots * graph.max_degree
        num_vertices = len(graph.indptr) - 1
        twin = None
        if plan.twin_aggregate is not None and graph.complete:
            twin = _kernel(plan, device, twin_kernel_name(KERNEL_NAME))
            try:
                blocks = grid_blocks(twin, num_vertices, 4 * (slots_per_warp + 2 * num_vertices), device)
            except MemoryError:
                twin = None  # too many vertices for a wedge counter per warp: the levels need less
        if twin is not None:
            warps = blocks * (CUDA_BLOCK_SIZE // WARP_SIZE)
            scratch = (cupy.empty(max(warps * slots_per_warp, 1), dtype=cupy.int32),
                       cupy.zeros(warps * num_vertices, dtype=cupy.int32),  # wedge counters, zero between v0s
                       cupy.empty(warps * num_vertices, dtype=cupy.int32),  # key lists
                       cupy.zeros(warps, dtype=cupy.int32))                 # key counts
            args = (indptr, indices, np.int64(num_vertices), np.int64(graph.max_degree), *scratch)
            kernel = twin
        else:
            kernel = _kernel(plan, device)
            blocks = grid_blocks(kernel, graph.num_edges, 4 * slots_per_warp, device)
            warps = blocks * (CUDA_BLOCK_SIZE // WARP_SIZE)
            scratch = (cupy.empty(max(warps * slots_per_warp, 1), dtype=cupy.int32),)
            args = (indptr, indices, src, dst, np.int64(graph.num_edges), np.int64(graph.max_degree), *scratch)
        kernel((blocks,), (CUDA_BLOCK_SIZE,), (*args, total, overflow))
    return PendingCount(plan, device, total, overflow, arrays + scratch)


def count(plan: SearchPlan, graph: PreparedGraph) -> int:
    """Run the plan's CUDA kernel over `graph`'s edge list on device 0; the exact count."""
    return launch(plan, graph).result()
