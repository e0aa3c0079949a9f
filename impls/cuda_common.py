"""Helpers shared by the CUDA backends (cupy is imported on first use).

- `import_cupy`: cupy, or a RuntimeError that says which backend needed it;
- `device_empty`: a device array, or a MemoryError that says what it was for
  and how much was asked;
- `resident_blocks`: how many blocks of a kernel fit on the device at once.  A
  grid-stride kernel launched with that many blocks runs in one wave; more
  blocks leave a partial second wave, whose tail shows in every timing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def import_cupy(backend: str) -> Any:
    """cupy, or RuntimeError naming `backend` and how to install cupy."""
    try:
        import cupy
    except ImportError:
        raise RuntimeError(f"the {backend} needs cupy (pip install 'recmine[gpu]') and a CUDA GPU") from None
    return cupy


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


def device_empty(shape: tuple[int, ...], dtype: np.dtype | type, what: str) -> Any:
    """An uninitialised cupy array, or MemoryError naming `what` it was for and the size asked."""
    import cupy

    try:
        return cupy.empty(shape, dtype=dtype)
    except cupy.cuda.memory.OutOfMemoryError:
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        free, total = cupy.cuda.runtime.memGetInfo()
        raise MemoryError(f"GPU out of memory: {what} needs {nbytes / 2**30:.2f} GiB "
                          f"({free / 2**30:.2f} GiB free of {total / 2**30:.2f} GiB)") from None
