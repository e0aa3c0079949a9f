"""Backend availability, probed once per process.

An unavailable backend is a skip with a reason, never a failure and never a
silent CPU fallback reported under another name.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any, Callable

BACKENDS = ("cpu", "gpu", "opencl", "fpga-model")


@dataclass(frozen=True)
class BackendInfo:
    name: str
    available: bool
    reason: str = ""                      # why it is unavailable
    details: dict[str, Any] = field(default_factory=dict)
    modelled: bool = False                # figures are modelled, not measured

    def summary(self) -> str:
        if not self.available:
            return f"unavailable: {self.reason}"
        text = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return ("available (modelled)" if self.modelled else "available") + (f": {text}" if text else "")


def _probe_cpu() -> BackendInfo:
    import numba

    return BackendInfo("cpu", True, details={
        "numba": numba.__version__, "threads": numba.get_num_threads(),
        "threading_layer": os.environ.get("NUMBA_THREADING_LAYER", "default")})


def _probe_gpu() -> BackendInfo:
    try:
        import cupy
    except ImportError:
        return BackendInfo("gpu", False, "cupy is not installed (pip install 'recmine[gpu]')")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, insufficient driver, no device
        return BackendInfo("gpu", False, f"no usable CUDA device ({type(exc).__name__}: {exc})")
    if count == 0:
        return BackendInfo("gpu", False, "no CUDA device")
    devices = []
    for i in range(count):
        props = cupy.cuda.runtime.getDeviceProperties(i)
        devices.append({"name": props["name"].decode(), "memory_gb": round(props["totalGlobalMem"] / 2**30, 1),
                        "compute_capability": f"{props['major']}.{props['minor']}"})
    return BackendInfo("gpu", True, details={"devices": count, "device": devices[0]["name"],
                                              "memory_gb": devices[0]["memory_gb"],
                                              "compute_capability": devices[0]["compute_capability"],
                                              "cupy": cupy.__version__})


def _probe_opencl() -> BackendInfo:
    try:
        import pyopencl as cl
    except ImportError:
        return BackendInfo("opencl", False, "pyopencl is not installed (pip install 'recmine[opencl]')")
    try:
        platforms = cl.get_platforms()
    except Exception as exc:  # no ICD loader or no platform
        return BackendInfo("opencl", False, f"no OpenCL platform ({exc})")
    devices = []
    for platform in platforms:
        try:  # a platform with no device raises DEVICE_NOT_FOUND rather than returning []
            devices += [f"{platform.name.strip()}: {d.name.strip()}" for d in platform.get_devices()]
        except cl.Error:
            continue
    if not devices:
        return BackendInfo("opencl", False, "no OpenCL device")
    return BackendInfo("opencl", True, details={"devices": "; ".join(devices), "pyopencl": cl.VERSION_TEXT})


def _probe_fpga_model() -> BackendInfo:
    return BackendInfo("fpga-model", True, modelled=True,
                       details={"model": "cycle-level model of a Xilinx VU35P (HBM2) accelerator"})


_PROBES: dict[str, Callable[[], BackendInfo]] = {
    "cpu": _probe_cpu, "gpu": _probe_gpu, "opencl": _probe_opencl, "fpga-model": _probe_fpga_model}


@functools.cache
def probe(name: str) -> BackendInfo:
    """Availability of backend `name` (cached: each backend is probed once)."""
    if name not in _PROBES:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
    return _PROBES[name]()


def probe_all() -> dict[str, BackendInfo]:
    return {name: probe(name) for name in BACKENDS}


def gpu_count() -> int:
    info = probe("gpu")
    return int(info.details.get("devices", 0)) if info.available else 0


def module_missing(modules: tuple[str, ...]) -> str | None:
    """The first of `modules` that cannot be imported, or None."""
    import importlib.util

    for mod in modules:
        if importlib.util.find_spec(mod) is None:
            return mod
    return None


def can_run(backend: str, requires: tuple[str, ...] = ()) -> tuple[bool, str]:
    """Whether an experiment on `backend` needing `requires` can run here, and why not.

    `requires` names importable modules, or other backends as "backend:<name>" (e.g. a
    modelled figure that reads this GPU's measured bandwidth needs "backend:gpu").
    """
    for name in [backend] + [r.split(":", 1)[1] for r in requires if r.startswith("backend:")]:
        info = probe(name)
        if not info.available:
            return False, f"{name} backend unavailable: {info.reason}"
    missing = module_missing(tuple(r for r in requires if not r.startswith("backend:")))
    if missing:
        return False, f"needs the Python module {missing!r}, which is not installed"
    return True, ""
