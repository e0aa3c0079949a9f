"""The process's one OpenCL context, on a device proven to build and run a kernel.

Listing a device proves nothing: the pip PoCL (LLVM 14) lists the CPU of an AMD
Zen 5 but fails every `clBuildProgram` with "unknown target CPU 'generic'".  So
each device of each platform is tried in turn: a context, a tiny kernel built and
run, its output checked.  The first that works is chosen; the others are kept with
the compiler's or runtime's message, for `recmine env`.

`RECMINE_OPENCL_DEVICE` picks a device explicitly: `P:D` (platform and device
index, as `recmine env` lists them) or a case-insensitive part of "platform: device".
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ENV_DEVICE = "RECMINE_OPENCL_DEVICE"
INSTALL_HINT = "pip install 'recmine[opencl]'"

_PROBE_ITEMS = 64
_PROBE_SOURCE = """
__kernel void recmine_probe(__global int *out) {
    int i = get_global_id(0);
    out[i] = 3 * i + 1;
}
"""


@dataclass(frozen=True)
class Candidate:
    index: str       # "P:D"
    label: str       # "platform: device"
    reason: str = ""  # why it was rejected ("" for the chosen one)


@dataclass
class Selection:
    """The chosen device (with its context and queue), and every rejected one with why."""

    chosen: Candidate | None
    rejected: list[Candidate] = field(default_factory=list)
    reason: str = ""          # why no device was chosen
    context: Any = None
    queue: Any = None

    def summary(self) -> str:
        return "; ".join(f"{c.index} {c.label}: {c.reason}" for c in self.rejected)


def compiler_message(exc: BaseException) -> str:
    """The compiler's first error line from a pyopencl build failure, else the exception's first line."""
    text = str(exc)
    log = text.split("Build on", 1)[1] if "Build on" in text else text
    for line in log.splitlines():
        if "error" in line.lower() and "BUILD_PROGRAM_FAILURE" not in line:
            return line.strip()[:300]
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return first[:300]


def _try(cl: Any, device: Any) -> tuple[Any, Any] | str:
    """(context, queue) when `device` builds and runs the probe kernel correctly, else why not."""
    try:
        context = cl.Context(devices=[device])
        queue = cl.CommandQueue(context)
    except Exception as exc:  # pyopencl.Error and friends
        return f"cannot create a context: {compiler_message(exc)}"
    try:
        program = cl.Program(context, _PROBE_SOURCE).build()
    except Exception as exc:
        return f"cannot build a kernel: {compiler_message(exc)}"
    try:
        out = np.zeros(_PROBE_ITEMS, np.int32)
        buffer = cl.Buffer(context, cl.mem_flags.WRITE_ONLY, out.nbytes)
        program.recmine_probe(queue, (_PROBE_ITEMS,), None, buffer)
        cl.enqueue_copy(queue, out, buffer)
        queue.finish()
    except Exception as exc:
        return f"cannot run a kernel: {compiler_message(exc)}"
    if not np.array_equal(out, 3 * np.arange(_PROBE_ITEMS, dtype=np.int32) + 1):
        return "a test kernel returned wrong results"
    return context, queue


def _wanted(spec: str, index: str, label: str) -> bool:
    return spec == index or spec.lower() in label.lower()


def survey(cl: Any = None) -> Selection:
    """Try every OpenCL device in platform order (or the one RECMINE_OPENCL_DEVICE names)."""
    if cl is None:
        try:
            import pyopencl as cl
        except ImportError:
            return Selection(None, reason=f"pyopencl is not installed ({INSTALL_HINT})")
    try:
        platforms = cl.get_platforms()
    except Exception as exc:  # no ICD loader, or no platform
        return Selection(None, reason=f"no OpenCL platform ({compiler_message(exc)})")
    spec = os.environ.get(ENV_DEVICE, "").strip()
    rejected: list[Candidate] = []
    seen = 0
    for p, platform in enumerate(platforms):
        try:  # a platform with no device raises DEVICE_NOT_FOUND rather than returning []
            devices = platform.get_devices()
        except Exception:
            devices = []
        for d, device in enumerate(devices):
            seen += 1
            index, label = f"{p}:{d}", f"{platform.name.strip()}: {device.name.strip()}"
            if spec and not _wanted(spec, index, label):
                rejected.append(Candidate(index, label, f"not the device {ENV_DEVICE}={spec!r} names"))
                continue
            outcome = _try(cl, device)
            if isinstance(outcome, str):
                rejected.append(Candidate(index, label, outcome))
                continue
            return Selection(Candidate(index, label), rejected, context=outcome[0], queue=outcome[1])
    if not seen:
        reason = "no OpenCL device"
    elif spec and all(c.reason.startswith("not the device") for c in rejected):
        reason = f"{ENV_DEVICE}={spec!r} names no device; devices: " + ", ".join(
            f"{c.index} {c.label}" for c in rejected)
    else:
        reason = "no OpenCL device can build and run a kernel: " + "; ".join(
            f"{c.label}: {c.reason}" for c in rejected if not c.reason.startswith("not the device"))
    return Selection(None, rejected, reason=reason)


@functools.cache
def selection() -> Selection:
    """The survey of this process, made once."""
    return survey()


def context() -> tuple[Any, Any, Any]:
    """(pyopencl, context, queue) on the chosen device; RuntimeError with the reason when there is none."""
    chosen = selection()
    if chosen.chosen is None:
        raise RuntimeError(f"the opencl backend is unavailable: {chosen.reason}")
    import pyopencl as cl

    return cl, chosen.context, chosen.queue


def unavailable_reason() -> str | None:
    """None when an OpenCL device works here, else why not."""
    chosen = selection()
    return None if chosen.chosen is not None else chosen.reason


# ---------------------------------------------------------------------------- `make setup`

DEBIAN_POCL = "pocl-opencl-icd"


def ensure(run: Any = None) -> str:
    """What `make setup` does for OpenCL, as one line (also printed).

    Where pyopencl is installed but no device builds a kernel (the pip PoCL on a CPU
    its LLVM does not know), install Debian's PoCL if this machine has apt and root;
    otherwise say the one command to run.  `run` stands in for subprocess.run in tests.
    """
    import shutil
    import subprocess

    run = run or subprocess.run
    found = survey()
    if found.chosen is not None or found.reason.startswith("pyopencl is not installed"):
        return ""
    if os.environ.get(ENV_DEVICE):
        return f"recmine: opencl: {found.reason}"
    if shutil.which("apt-get") and os.geteuid() == 0:
        print(f"recmine: no OpenCL device here builds a kernel ({found.reason}); "
              f"installing Debian's {DEBIAN_POCL}", flush=True)
        quiet = {"stdout": subprocess.DEVNULL, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
        run(["apt-get", "update", "-qq"], check=False, **quiet)
        done = run(["apt-get", "install", "-y", "-qq", DEBIAN_POCL], check=False, **quiet)
        if done.returncode != 0:
            return f"recmine: installing {DEBIAN_POCL} failed (exit {done.returncode}); run: apt-get install {DEBIAN_POCL}"
        return f"recmine: installed {DEBIAN_POCL}; `recmine env` shows the OpenCL device it provides"
    return (f"recmine: no OpenCL device here builds a kernel ({found.reason}); "
            f"run: sudo apt-get install {DEBIAN_POCL}   (Debian/Ubuntu's PoCL knows newer CPUs)")


if __name__ == "__main__":
    line = ensure()
    if line:
        print(line)
