"""Timers that synchronise their device before reading a clock.

OpenCL implementations return host arrays after `queue.finish()`, so the host
clock is exact for them; the GPU timer uses CUDA events on the current stream.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Protocol


class Timer(Protocol):
    def time(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        """Seconds `fn()` took, and what it returned."""


class HostTimer:
    """perf_counter around a synchronous call."""

    def time(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        t0 = time.perf_counter()
        out = fn()
        return time.perf_counter() - t0, out


class CupyTimer:
    """CUDA events on the current stream; the stop event is synchronised before reading."""

    def __init__(self) -> None:
        from devices.cuda import import_cupy

        self._cupy = import_cupy("gpu timer")

    def time(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        cp = self._cupy
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        out = fn()
        stop.record()
        stop.synchronize()
        return cp.cuda.get_elapsed_time(start, stop) / 1e3, out


def timer_for(backend: str) -> Timer:
    return CupyTimer() if backend == "gpu" else HostTimer()
