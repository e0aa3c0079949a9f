"""The GPU kernels of the BFS engine: kernels.cu on cupy (imported only here).

The same two passes per level as on the CPU; cupy's cumsum is the prefix sum.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from baselines.pangolin_bfs.plans import ExtensionPlan
from devices.cuda import resident_blocks

KERNEL_SOURCE = Path(__file__).with_name("kernels.cu")
MAX_K = 8  # as in kernels.cu
MAX_CODES = 6
THREADS_PER_BLOCK = 256
WARP = 32


@functools.cache
def _module(device: int) -> Any:
    """kernels.cu loaded on `device` (a module's functions belong to the device it was loaded on)."""
    import cupy

    with cupy.cuda.Device(device):
        return cupy.RawModule(code=KERNEL_SOURCE.read_text(), options=("-std=c++17",))


def pack_plan(plan: ExtensionPlan) -> np.ndarray:
    """The plan as the int32 words kernels.cu's `load_plan` reads."""
    if plan.k > MAX_K or len(plan.outputs) > MAX_CODES:
        raise ValueError(f"plan {plan.name!r}: the GPU kernels take at most {MAX_K} vertices and {MAX_CODES} outputs")
    words = np.zeros(2 + 4 * MAX_K, dtype=np.int32)
    words[0], words[1] = int(plan.oriented), int(plan.canonical)
    for slot, array in enumerate((plan.source, plan.connected, plan.less, plan.greater)):
        words[2 + slot * MAX_K:2 + slot * MAX_K + plan.k] = array
    return words


class GpuKernels:
    """The engine's kernel interface on one CUDA device; arrays are cupy."""

    name = "gpu"

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, plan: ExtensionPlan) -> None:
        import cupy

        self.cupy = cupy
        device = cupy.cuda.Device().id
        module = _module(device)
        self.kernels = {name: module.get_function(name) for name in ("count_level", "write_level", "count_last")}
        self.indptr = cupy.asarray(indptr)
        self.indices = cupy.asarray(indices)
        self.plan = cupy.asarray(pack_plan(plan))
        self.num_codes = len(plan.outputs)
        # One resident wave of the heaviest kernel; the grid-stride loops cover the rest.
        self.max_blocks = min(resident_blocks(kernel, THREADS_PER_BLOCK, device) for kernel in self.kernels.values())

    def _grid(self, embeddings: int) -> tuple[int]:
        warps_per_block = THREADS_PER_BLOCK // WARP
        return (max(1, min(self.max_blocks, -(-embeddings // warps_per_block))),)

    def to_device(self, array: np.ndarray) -> Any:
        return self.cupy.asarray(array)

    def empty(self, size: int, dtype: type) -> Any:
        return self.cupy.empty(size, dtype=dtype)

    def count_level(self, vids: Any, parents: Any, lo: int, hi: int, n: int) -> Any:
        counts = self.cupy.empty(hi - lo, dtype=np.int64)
        self.kernels["count_level"](self._grid(hi - lo), (THREADS_PER_BLOCK,),
                                    (self.indptr, self.indices, self.plan, vids, parents, np.int64(lo), np.int64(hi),
                                     np.int32(n), counts))
        return counts

    def write_level(self, vids: Any, parents: Any, lo: int, hi: int, n: int, offsets: Any, out_start: int) -> None:
        self.kernels["write_level"](self._grid(hi - lo), (THREADS_PER_BLOCK,),
                                    (self.indptr, self.indices, self.plan, vids, parents, np.int64(lo), np.int64(hi),
                                     np.int32(n), offsets, np.int64(out_start)))

    def count_last(self, vids: Any, parents: Any, lo: int, hi: int, n: int) -> Any:
        codes = self.cupy.zeros(self.num_codes, dtype=np.uint64)
        self.kernels["count_last"](self._grid(hi - lo), (THREADS_PER_BLOCK,),
                                   (self.indptr, self.indices, self.plan, vids, parents, np.int64(lo), np.int64(hi),
                                    np.int32(n), np.int32(self.num_codes), codes))
        return codes

    def exclusive_scan(self, counts: Any) -> tuple[Any, int]:
        inclusive = self.cupy.cumsum(counts)
        total = int(inclusive[-1])
        return inclusive - counts, total

    def to_host(self, array: Any) -> np.ndarray:
        return self.cupy.asnumpy(array)

    def copy_into(self, dst: Any, src: Any, size: int) -> None:
        dst[:size] = src[:size]
