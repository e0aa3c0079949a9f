"""The OpenCL backend: the warp-centric kernel from `emit_c` built and run with pyopencl.

On PoCL (a CPU device) this runs the GPU kernel's exact structure, so CI
exercises it.  pyopencl is imported on first use; without it, or without a
device, `count` raises RuntimeError with the reason.
"""

from __future__ import annotations

import functools

import numpy as np

from impls.g2miner.analyser import SearchPlan
from impls.g2miner.emit_c import KERNEL_NAME, OPENCL, WARP_SIZE, kernel_source
from impls.g2miner.prepare import PreparedGraph

# Work-groups (warps) per compute unit: enough to balance skewed edge lists.
_WARPS_PER_COMPUTE_UNIT = 8


def source(plan: SearchPlan) -> str:
    """The OpenCL C source generated for `plan`."""
    return kernel_source(plan, OPENCL)


@functools.lru_cache(maxsize=1)
def _context() -> tuple:
    try:
        import pyopencl as cl
    except ImportError as err:
        raise RuntimeError(f"the opencl backend needs pyopencl ({err})") from None
    try:
        devices = [d for p in cl.get_platforms() for d in p.get_devices()]
    except cl.Error as err:
        raise RuntimeError(f"the opencl backend found no OpenCL platform ({err})") from None
    if not devices:
        raise RuntimeError("the opencl backend found no OpenCL device")
    context = cl.Context([devices[0]])
    return cl, context, cl.CommandQueue(context)


def unavailable_reason() -> str | None:
    """None when the backend can run here, else why it cannot."""
    try:
        _context()
    except RuntimeError as err:
        return str(err)
    return None


def device_name() -> str:
    """The OpenCL device the backend runs on (RuntimeError when there is none)."""
    _, context, _ = _context()
    return context.devices[0].name


@functools.lru_cache(maxsize=128)
def _kernel(plan: SearchPlan):
    cl, context, _ = _context()
    program = cl.Program(context, source(plan)).build()
    return getattr(program, KERNEL_NAME)


def count(plan: SearchPlan, graph: PreparedGraph) -> int:
    """Run the plan's OpenCL kernel over `graph`'s edge list; the exact count."""
    cl, context, queue = _context()
    kernel = _kernel(plan)
    if graph.num_edges == 0:
        return 0
    device = context.devices[0]
    warps = int(min(graph.num_edges, device.max_compute_units * _WARPS_PER_COMPUTE_UNIT))
    flags = cl.mem_flags
    ro = flags.READ_ONLY | flags.COPY_HOST_PTR

    def upload(array: np.ndarray):
        return cl.Buffer(context, ro, hostbuf=np.ascontiguousarray(array))

    total = np.zeros(1, np.uint64)
    overflow = np.zeros(1, np.int32)
    total_buf = cl.Buffer(context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=total)
    overflow_buf = cl.Buffer(context, flags.READ_WRITE | flags.COPY_HOST_PTR, hostbuf=overflow)
    scratch = cl.Buffer(context, flags.READ_WRITE, size=4 * warps * max(plan.num_slots, 1) * graph.max_degree)
    kernel(queue, (warps * WARP_SIZE,), (WARP_SIZE,), upload(graph.indptr), upload(graph.indices),
           upload(graph.src), upload(graph.dst), np.int64(graph.num_edges), np.int64(graph.max_degree),
           scratch, total_buf, overflow_buf)
    cl.enqueue_copy(queue, total, total_buf)
    cl.enqueue_copy(queue, overflow, overflow_buf)
    queue.finish()
    if overflow[0] or int(total[0]) >= 2**63:
        raise OverflowError(f"{plan.pattern.name}: a 64-bit count overflowed")
    return int(total[0])
