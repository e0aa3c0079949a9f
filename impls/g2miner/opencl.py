"""The OpenCL backend: the warp-centric kernel from `emit_c` built and run with pyopencl.

On PoCL (a CPU device) this runs the GPU kernel's exact structure, so CI
exercises it.  pyopencl is imported on first use; without it, or without a
device, `count` raises RuntimeError with the reason.
"""

from __future__ import annotations

import functools

import numpy as np

from devices.opencl import context as _context
from impls.g2miner.analyser import SearchPlan
from impls.g2miner.emit_c import KERNEL_NAME, OPENCL, WARP_SIZE, kernel_source, twin_kernel_name
from impls.g2miner.prepare import PreparedGraph

# Work-groups (warps) per compute unit: enough to balance skewed edge lists.
_WARPS_PER_COMPUTE_UNIT = 8
# The twin kernel's per-warp |V|-sized arrays take at most 1 / this of the device's memory.
_TWIN_MEMORY_SHARE = 8


def source(plan: SearchPlan) -> str:
    """The OpenCL C source generated for `plan`."""
    return kernel_source(plan, OPENCL)


@functools.lru_cache(maxsize=128)
def _program(plan: SearchPlan):
    cl, context, _ = _context()
    return cl.Program(context, source(plan)).build()


@functools.lru_cache(maxsize=256)
def _kernel(plan: SearchPlan, name: str):
    cl, _, _ = _context()
    return cl.Kernel(_program(plan), name)


def count(plan: SearchPlan, graph: PreparedGraph) -> int:
    """Run the plan's OpenCL kernel over `graph`; the exact count.

    The twin-aggregation kernel when the plan has one and the edge list is whole,
    else the DFS over the edge list.
    """
    cl, context, queue = _context()
    _program(plan)  # built (and its errors raised) before the empty-graph shortcut
    if graph.num_edges == 0:
        return 0
    device = context.devices[0]
    flags = cl.mem_flags
    ro = flags.READ_ONLY | flags.COPY_HOST_PTR

    def upload(array: np.ndarray):
        return cl.Buffer(context, ro, hostbuf=np.ascontiguousarray(array))

    def zeros(num_ints: int):  # a zeroed int32 device buffer
        buffer = cl.Buffer(context, flags.READ_WRITE, size=4 * max(num_ints, 1))
        cl.enqueue_fill_buffer(queue, buffer, np.int32(0), 0, 4 * max(num_ints, 1))
        return buffer

    total = np.zeros(1, np.uint64)
    overflow = np.zeros(1, np.int32)
    total_buf = cl.Buffer(context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=total)
    overflow_buf = cl.Buffer(context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=overflow)
    slots_per_warp = plan.num_slots * graph.max_degree
    num_vertices = len(graph.indptr) - 1
    if plan.twin_aggregate is not None and graph.complete:
        # Each warp also holds a wedge counter and a key list of |V| ints.
        by_memory = device.global_mem_size // _TWIN_MEMORY_SHARE // (4 * (slots_per_warp + 2 * num_vertices))
        warps = int(max(1, min(num_vertices, device.max_compute_units * _WARPS_PER_COMPUTE_UNIT, by_memory)))
        kernel = _kernel(plan, twin_kernel_name(KERNEL_NAME))
        inputs = (np.int64(num_vertices), np.int64(graph.max_degree), zeros(warps * slots_per_warp),
                  zeros(warps * num_vertices), zeros(warps * num_vertices), zeros(warps))
    else:
        warps = int(min(graph.num_edges, device.max_compute_units * _WARPS_PER_COMPUTE_UNIT))
        kernel = _kernel(plan, KERNEL_NAME)
        inputs = (upload(graph.src), upload(graph.dst), np.int64(graph.num_edges), np.int64(graph.max_degree),
                  zeros(warps * slots_per_warp))
    kernel(queue, (warps * WARP_SIZE,), (WARP_SIZE,), upload(graph.indptr), upload(graph.indices), *inputs,
           total_buf, overflow_buf)
    cl.enqueue_copy(queue, total, total_buf)
    cl.enqueue_copy(queue, overflow, overflow_buf)
    queue.finish()
    if overflow[0] or int(total[0]) >= 2**63:
        raise OverflowError(f"{plan.pattern.name}: a 64-bit count overflowed")
    return int(total[0])
