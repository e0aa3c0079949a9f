"""Backend names and probes, each run once per process.

A probe proves its backend works by building and running a tiny kernel; an
unavailable backend is a skip with the reason, never a failure and never a silent
CPU fallback reported under another name.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any, Callable

BACKENDS = ("cpu", "gpu", "opencl", "fpga-model", "fpga-rtl")


@dataclass(frozen=True)
class BackendInfo:
    name: str
    available: bool
    reason: str = ""                      # why it is unavailable
    details: dict[str, Any] = field(default_factory=dict)
    modelled: bool = False                # figures are modelled, not measured
    rejected: tuple[str, ...] = ()        # devices that were tried and failed, each with why

    def summary(self) -> str:
        if not self.available:
            return f"unavailable: {self.reason}"
        text = ", ".join(f"{k}={v}" for k, v in self.details.items())
        return ("available (modelled)" if self.modelled else "available") + (f": {text}" if text else "")


def _probe_cpu() -> BackendInfo:
    import numba
    import numpy as np

    @numba.njit(cache=False)
    def twice(x):  # a compiled kernel proves numba's LLVM can target this CPU
        return 2 * x

    if twice(np.int64(21)) != 42:
        return BackendInfo("cpu", False, "a numba test kernel returned a wrong result")
    return BackendInfo("cpu", True, details={
        "numba": numba.__version__, "threads": numba.get_num_threads(),
        "threading_layer": os.environ.get("NUMBA_THREADING_LAYER", "default")})


def _probe_gpu() -> BackendInfo:
    from devices import cuda

    found = cuda.survey()
    if not found.devices:
        return BackendInfo("gpu", False, found.reason)
    import cupy

    first = found.devices[0]
    return BackendInfo("gpu", True, details={"devices": len(found.devices), "device": first["name"],
                                              "memory_gb": first["memory_gb"],
                                              "compute_capability": first["compute_capability"],
                                              "cupy": cupy.__version__})


def _probe_opencl() -> BackendInfo:
    from devices import opencl

    chosen = opencl.selection()
    rejected = tuple(f"{c.index} {c.label}: {c.reason}" for c in chosen.rejected)
    if chosen.chosen is None:
        return BackendInfo("opencl", False, chosen.reason, rejected=rejected)
    import pyopencl as cl

    return BackendInfo("opencl", True, rejected=rejected, details={
        "device": chosen.chosen.label, "index": chosen.chosen.index, "pyopencl": cl.VERSION_TEXT})


def _probe_fpga_model() -> BackendInfo:
    return BackendInfo("fpga-model", True, modelled=True,
                       details={"model": "cycle-level model of a Xilinx VU35P (HBM2) accelerator"})


def _probe_fpga_rtl() -> BackendInfo:
    """Amaranth must elaborate and simulate a tiny counter; Verilator and yosys are reported
    (the backend runs large scans on Verilator where both are installed)."""
    import shutil
    import subprocess

    if importlib.util.find_spec("amaranth") is None:
        return BackendInfo("fpga-rtl", False, "needs amaranth (pip install -e '.[rtl]')")
    import amaranth
    from amaranth.hdl import Module, Signal
    from amaranth.sim import Simulator

    m = Module()
    count = Signal(4)
    m.d.sync += count.eq(count + 1)
    seen: list[int] = []

    async def bench(ctx) -> None:
        for _ in range(3):
            await ctx.tick()
        seen.append(ctx.get(count))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    if seen != [3]:
        return BackendInfo("fpga-rtl", False, f"Amaranth's simulator counted {seen} instead of [3]")

    def version(tool: str) -> str:
        if shutil.which(tool) is None:
            return "absent"
        out = subprocess.run([tool, "--version" if tool == "verilator" else "-V"], capture_output=True, text=True)
        return (out.stdout.split() or ["?", "?"])[1]

    return BackendInfo("fpga-rtl", True, details={"kind": "simulated", "amaranth": amaranth.__version__,
                                                  "verilator": version("verilator"), "yosys": version("yosys")})


_PROBES: dict[str, Callable[[], BackendInfo]] = {
    "cpu": _probe_cpu, "gpu": _probe_gpu, "opencl": _probe_opencl, "fpga-model": _probe_fpga_model,
    "fpga-rtl": _probe_fpga_rtl}


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
    for mod in modules:
        if importlib.util.find_spec(mod) is None:
            return mod
    return None


def can_run(backend: str, requires: tuple[str, ...] = ()) -> tuple[bool, str]:
    """Whether an experiment on `backend` needing `requires` can run here, and why not.

    `requires` names importable modules, other backends as "backend:<name>" (e.g. a
    modelled figure that reads this GPU's measured bandwidth needs "backend:gpu"), or a
    number of GPUs as "gpus:<n>".  The answer is asked at run time, never at registration,
    so that every machine lists the same experiments.
    """
    for name in [backend] + [r.split(":", 1)[1] for r in requires if r.startswith("backend:")]:
        info = probe(name)
        if not info.available:
            return False, f"{name} backend unavailable: {info.reason}"
    for wanted in (int(r.split(":", 1)[1]) for r in requires if r.startswith("gpus:")):
        have = gpu_count()
        if have < wanted:
            return False, f"needs {wanted} GPUs, this machine has {have}"
    missing = module_missing(tuple(r for r in requires if not r.startswith(("backend:", "gpus:"))))
    if missing:
        return False, f"needs the Python module {missing!r}, which is not installed"
    return True, ""
