"""The CUDA backend: the warp-centric kernels from `emit_c`, compiled by cupy.RawModule and launched.

Compiling (`compile_kernel`) and launching (`launch`) are separate; what the
kernel and its launch agree on (arguments by name, scratch sizing, the
twin-or-levels choice, the overflow check) is the contract in `launch`.  cupy
is imported on first use.  Launch geometry comes from the device and the
compiled kernel: 256-thread blocks (8 warps), as many blocks as can be
resident at once (threads and registers per SM), fewer when the work is short
or when the per-warp arrays would take more than half of the free memory; a
twin kernel that does not fit gives way to the levels.  Each graph is uploaded
once per device (`launch.DeviceGraphs`): a timed count measures the kernel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from devices.cuda import require_cupy, resident_blocks
from impls.g2miner import launch as contract
from impls.g2miner.analyser import SearchPlan
from impls.g2miner.emit_c import CUDA, CUDA_BLOCK_SIZE, WARP_SIZE, kernel_source
from impls.g2miner.prepare import PreparedGraph

# Share of free device memory the per-warp buffers may take.
_BUFFER_MEMORY_SHARE = 0.5
_WARPS_PER_BLOCK = CUDA_BLOCK_SIZE // WARP_SIZE


def source(plan: SearchPlan) -> str:
    """The CUDA C source generated for `plan`."""
    return kernel_source(plan, CUDA)


def _cupy() -> Any:
    return require_cupy("G2Miner gpu backend")


@functools.lru_cache(maxsize=128)
def _module(plan: SearchPlan, device: int) -> Any:
    cupy = _cupy()
    with cupy.cuda.Device(device):
        return cupy.RawModule(code=source(plan), options=("--std=c++17",))


@functools.lru_cache(maxsize=256)
def compile_kernel(plan: SearchPlan, kernel: contract.KernelContract, device: int = 0) -> Any:
    """The compiled kernel of `plan` on `device` (the module is built once per plan and device)."""
    cupy = _cupy()
    with cupy.cuda.Device(device):
        return _module(plan, device).get_function(kernel.name())


def _upload(array: Any, device: int) -> Any:
    cupy = _cupy()
    with cupy.cuda.Device(device):
        return cupy.asarray(array)


_GRAPHS = contract.DeviceGraphs(_upload)


def grid_blocks(kernel: Any, work_items: int, bytes_per_warp: int, device: int) -> int:
    """Blocks to launch: one resident wave, no more than the work items (a warp each at least)
    and what the memory share holds, whichever is smallest; 0 when not one block's arrays fit."""
    cupy = _cupy()
    with cupy.cuda.Device(device):
        free, _ = cupy.cuda.runtime.memGetInfo()
    by_memory = int(free * _BUFFER_MEMORY_SHARE // (_WARPS_PER_BLOCK * max(bytes_per_warp, 1)))
    return max(0, min(resident_blocks(kernel, CUDA_BLOCK_SIZE, device), -(-work_items // _WARPS_PER_BLOCK),
                      by_memory))


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
        return contract.checked_total(self.plan, total, overflow)


def launch(plan: SearchPlan, graph: PreparedGraph, device: int = 0) -> PendingCount:
    """Start the plan's kernel over `graph` on `device`, without waiting (`launch.choose_launch` picks it)."""
    cupy = _cupy()
    with cupy.cuda.Device(device):
        values: dict[str, Any] = {"total": cupy.zeros(1, dtype=cupy.uint64),
                                  "overflow": cupy.zeros(1, dtype=cupy.int32)}
        if graph.num_edges == 0:
            return PendingCount(plan, device, values["total"], values["overflow"], ())
        values.update(_GRAPHS.arrays(graph, device))

        def warps_that_fit(kernel: contract.KernelContract) -> int:
            blocks = grid_blocks(compile_kernel(plan, kernel, device), kernel.work_items(graph),
                                 kernel.bytes_per_warp(plan, graph), device)
            return blocks * _WARPS_PER_BLOCK

        def allocate(array: contract.ScratchArray, ints: int) -> Any:
            return (cupy.zeros if array.zeroed else cupy.empty)(ints, dtype=cupy.int32)

        def run(kernel: contract.KernelContract, warps: int, arguments: tuple) -> None:
            compile_kernel(plan, kernel, device)((warps // _WARPS_PER_BLOCK,), (CUDA_BLOCK_SIZE,), arguments)

        contract.launch_chain(plan, graph, warps_that_fit, values, allocate, run)
    return PendingCount(plan, device, values["total"], values["overflow"], tuple(values.values()))


def count(plan: SearchPlan, graph: PreparedGraph) -> int:
    """Run the plan's CUDA kernel over `graph`'s edge list on device 0; the exact count."""
    return launch(plan, graph).result()
