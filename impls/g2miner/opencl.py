"""The OpenCL backend: the warp-centric kernels from `emit_c`, built and launched with pyopencl.

On PoCL (a CPU device) this runs the GPU kernel's exact structure, so CI
exercises it.  Building (`compile_kernel`) and launching (`count`) are
separate, and the launch follows the contract in `launch` (arguments by name,
scratch sizing, the twin-or-levels choice, the overflow check), as the CUDA
backend does.  Each graph is uploaded once per device (`launch.DeviceGraphs`):
a timed count measures the kernel.  pyopencl is imported on first use;
without it, or without a device, `count` raises RuntimeError with the reason.
"""

from __future__ import annotations

import functools

import numpy as np

from devices.opencl import context as _context
from impls.g2miner import launch as contract
from impls.g2miner.analyser import SearchPlan
from impls.g2miner.emit_c import OPENCL, WARP_SIZE, kernel_source
from impls.g2miner.prepare import PreparedGraph

# Work-groups (warps) per compute unit: enough to balance skewed edge lists.
_WARPS_PER_COMPUTE_UNIT = 8
# The per-warp scratch arrays take at most 1 / this of the device's memory.
_SCRATCH_MEMORY_SHARE = 8


def source(plan: SearchPlan) -> str:
    """The OpenCL C source generated for `plan`."""
    return kernel_source(plan, OPENCL)


@functools.lru_cache(maxsize=128)
def _program(plan: SearchPlan):
    cl, context, _ = _context()
    return cl.Program(context, source(plan)).build()


@functools.lru_cache(maxsize=256)
def compile_kernel(plan: SearchPlan, kernel: contract.KernelContract):
    """The built kernel of `plan` (the program is built once per plan)."""
    cl, _, _ = _context()
    return cl.Kernel(_program(plan), kernel.name())


def _upload(array: np.ndarray, device: int):
    cl, context, _ = _context()
    return cl.Buffer(context, cl.mem_flags.READ_ONLY | cl.mem_flags.COPY_HOST_PTR, hostbuf=array)


# The process has one OpenCL context on one device (devices.opencl), device index 0.
_GRAPHS = contract.DeviceGraphs(_upload)


def count(plan: SearchPlan, graph: PreparedGraph) -> int:
    """Run the plan's OpenCL kernel over `graph` (`launch.choose_launch` picks it); the exact count."""
    cl, context, queue = _context()
    _program(plan)  # built (and its errors raised) before the empty-graph shortcut
    if graph.num_edges == 0:
        return 0
    device = context.devices[0]
    flags = cl.mem_flags
    total = np.zeros(1, np.uint64)
    overflow = np.zeros(1, np.int32)
    values = {"total": cl.Buffer(context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=total),
              "overflow": cl.Buffer(context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=overflow),
              **_GRAPHS.arrays(graph, 0)}

    def warps_that_fit(kernel: contract.KernelContract) -> int:
        by_memory = device.global_mem_size // _SCRATCH_MEMORY_SHARE // max(kernel.bytes_per_warp(plan, graph), 1)
        return int(min(kernel.work_items(graph), device.max_compute_units * _WARPS_PER_COMPUTE_UNIT, by_memory))

    def allocate(array: contract.ScratchArray, ints: int):
        buffer = cl.Buffer(context, flags.READ_WRITE, size=4 * ints)
        if array.zeroed:
            cl.enqueue_fill_buffer(queue, buffer, np.int32(0), 0, 4 * ints)
        return buffer

    def run(kernel: contract.KernelContract, warps: int, arguments: tuple) -> None:
        compile_kernel(plan, kernel)(queue, (warps * WARP_SIZE,), (WARP_SIZE,), *arguments)

    contract.launch_chain(plan, graph, warps_that_fit, values, allocate, run)
    cl.enqueue_copy(queue, total, values["total"])
    cl.enqueue_copy(queue, overflow, values["overflow"])
    queue.finish()
    return contract.checked_total(plan, int(total[0]), int(overflow[0]))
