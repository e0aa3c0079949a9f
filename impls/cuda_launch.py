"""Launch geometry shared by the CUDA kernels: how many blocks of a kernel fit on the device at once.

A grid-stride kernel launched with exactly that many blocks runs in one wave;
more blocks leave a partial second wave, whose tail shows in every timing.
"""

from __future__ import annotations

from typing import Any

# Registers are allocated per warp in units of 256, i.e. per thread in units of 8.
_REGISTER_UNIT = 8


def resident_blocks(kernel: Any, block_size: int, device: int) -> int:
    """Blocks of `kernel` (a cupy RawKernel) resident on all of `device`'s SMs at once.

    Bounded by threads and by registers per SM; the kernels here use little shared memory.
    """
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(device)
    regs = -(-max(int(kernel.attributes["num_regs"]), 1) // _REGISTER_UNIT) * _REGISTER_UNIT
    by_threads = props["maxThreadsPerMultiProcessor"] // block_size
    by_registers = props["regsPerMultiprocessor"] // (regs * block_size)
    return props["multiProcessorCount"] * max(1, min(by_threads, by_registers))
