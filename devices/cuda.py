"""CUDA through cupy: the one import with its install hint, the device probe, and kernel helpers.

- `import_cupy`: cupy, or a RuntimeError that says which backend needed it;
- `survey`: the visible CUDA devices, proven by compiling and running a RawKernel;
- `device_empty`: a device array, or a MemoryError that says what it was for
  and how much was asked;
- `resident_blocks`: how many blocks of a kernel fit on the device at once.  A
  grid-stride kernel launched with that many blocks runs in one wave; more
  blocks leave a partial second wave, whose tail shows in every timing.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

INSTALL_HINT = "pip install 'recmine[gpu]'"

_PROBE_SOURCE = r"""
extern "C" __global__ void recmine_probe(int *out) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    out[i] = 3 * i + 1;
}
"""


def import_cupy(backend: str) -> Any:
    """cupy, or RuntimeError naming `backend` and how to install cupy."""
    try:
        import cupy
    except ImportError:
        raise RuntimeError(f"the {backend} needs cupy ({INSTALL_HINT}) and a CUDA GPU") from None
    return cupy


@dataclass
class Survey:
    """The CUDA devices that ran the probe kernel, or why none could."""

    devices: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""


@functools.cache
def survey() -> Survey:
    """Count the CUDA devices and prove device 0 compiles and runs a kernel (once per process)."""
    try:
        import cupy
    except ImportError:
        return Survey(reason=f"cupy is not installed ({INSTALL_HINT})")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, insufficient driver, no device
        return Survey(reason=f"no usable CUDA device ({type(exc).__name__}: {exc})")
    if count == 0:
        return Survey(reason="no CUDA device")
    try:
        out = cupy.zeros(64, dtype=cupy.int32)
        cupy.RawKernel(_PROBE_SOURCE, "recmine_probe")((1,), (64,), (out,))
        ok = bool((out.get() == 3 * np.arange(64, dtype=np.int32) + 1).all())
    except Exception as exc:  # NVRTC or driver errors
        return Survey(reason=f"CUDA device 0 cannot compile and run a kernel ({type(exc).__name__}: {exc})")
    if not ok:
        return Survey(reason="CUDA device 0 returned wrong results from a test kernel")
    devices = []
    for i in range(count):
        props = cupy.cuda.runtime.getDeviceProperties(i)
        devices.append({"name": props["name"].decode(), "memory_gb": round(props["totalGlobalMem"] / 2**30, 1),
                        "compute_capability": f"{props['major']}.{props['minor']}"})
    return Survey(devices)


def device_count() -> int:
    """Usable CUDA devices (0 without cupy, a driver or a working device)."""
    return len(survey().devices)


def require_cupy(backend: str) -> Any:
    """cupy with at least one working device, else RuntimeError naming `backend` and why."""
    cupy = import_cupy(backend)
    found = survey()
    if not found.devices:
        raise RuntimeError(f"the {backend} cannot run: {found.reason}")
    return cupy


# Registers are allocated per warp in units of 256, i.e. per thread in units of 8.
_REGISTER_UNIT = 8


def resident_blocks(kernel: Any, block_size: int, device: int) -> int:
    """Blocks of `kernel` (a cupy RawKernel) resident on all of `device`'s SMs at once.

    Bounded by threads and by registers per SM; the kernels here use little shared memory.
    """
    cupy = import_cupy("CUDA occupancy helper")
    props = cupy.cuda.runtime.getDeviceProperties(device)
    regs = -(-max(int(kernel.attributes["num_regs"]), 1) // _REGISTER_UNIT) * _REGISTER_UNIT
    by_threads = props["maxThreadsPerMultiProcessor"] // block_size
    by_registers = props["regsPerMultiprocessor"] // (regs * block_size)
    return props["multiProcessorCount"] * max(1, min(by_threads, by_registers))


def device_empty(shape: tuple[int, ...], dtype: np.dtype | type, what: str) -> Any:
    """An uninitialised cupy array, or MemoryError naming `what` it was for and the size asked."""
    cupy = import_cupy("CUDA allocation helper")
    try:
        return cupy.empty(shape, dtype=dtype)
    except cupy.cuda.memory.OutOfMemoryError:
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        free, total = cupy.cuda.runtime.memGetInfo()
        raise MemoryError(f"GPU out of memory: {what} needs {nbytes / 2**30:.2f} GiB "
                          f"({free / 2**30:.2f} GiB free of {total / 2**30:.2f} GiB)") from None
