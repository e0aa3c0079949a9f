"""What this machine is: CPU, memory, read bandwidth, library versions, git commit."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

LIBRARIES = ("recmine", "numpy", "numba", "llvmlite", "pandas", "seaborn", "click", "jinja2", "h5py",
             "msgpack", "pyopencl", "pocl-binary-distribution", "cupy-cuda13x", "cupy-cuda12x",
             "faiss-cpu", "torch", "asv", "pytest-benchmark")

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def _first_cpu() -> dict[str, str]:
    """The fields /proc/cpuinfo gives for the first processor (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    return fields


def _model_name(fields: dict[str, str]) -> str:
    return fields.get("model name") or platform.processor() or platform.machine()


def cpu_model() -> str:
    return _model_name(_first_cpu())


def cpu_kind() -> str:
    """The CPU's model name with its family and model numbers: a VM's model name alone
    ("AMD EPYC") does not tell one generation from another, and the numbers do."""
    fields = _first_cpu()
    if "cpu family" not in fields and "model" not in fields:
        return _model_name(fields)
    return f"{_model_name(fields)} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


def last_level_cache() -> str:
    """The size of the CPU's largest cache level as the kernel gives it ("32768K"), or "" where unknown.
    VMs of one CPU kind run on hosts with different caches (an Intel Xeon of family 6, model 167
    has been seen with a 105 MB and a 480 MB L3), and whether a data set fits moves its figures."""
    levels = {}
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            levels[int((index / "level").read_text())] = (index / "size").read_text().strip()
        except (OSError, ValueError):
            continue
    return levels[max(levels)] if levels else ""


def memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.cache
def machine() -> dict[str, object]:
    """The stable description of this machine (what identifies it in the results store)."""
    info = {"hostname": platform.node(), "cpu": cpu_model(), "cores": cores(),
            "memory_gb": round(memory_bytes() / 2**30, 1), "os": platform.platform(),
            "python": platform.python_version()}
    return info


def machine_id() -> str:
    m = machine()
    key = f"{m['hostname']}|{m['cpu']}|{m['cores']}|{m['memory_gb']}"
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def read_bandwidth(seconds: float = 1.0, megabytes: int = 256) -> float:
    """Sustained read bandwidth in GB/s: repeated sums over a buffer larger than the caches."""
    buf = np.ones(megabytes * 2**20 // 8)
    buf.sum()
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        buf.sum()
        best = max(best, buf.nbytes / (time.perf_counter() - t0))
    return best / 1e9


@functools.cache
def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@functools.cache
def git_commit() -> str:
    """The code state results are keyed on (resume, ratio pairing).

    A clean checkout is its commit; uncommitted changes add a hash of the diff
    ("abc123+dirty.9f2e…"), so results measured before an edit are never taken for
    the edited code's; outside git, a hash of the source files stands in.
    """
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=SOURCE_ROOT, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return f"not a git checkout (source {_source_hash()})"
        diff = subprocess.run(["git", "diff", "HEAD"], cwd=SOURCE_ROOT, capture_output=True, timeout=30).stdout
        commit = head.stdout.strip()[:12]
        return f"{commit}+dirty.{hashlib.sha1(diff).hexdigest()[:8]}" if diff else commit
    except (OSError, subprocess.SubprocessError):
        return f"not a git checkout (source {_source_hash()})"


def _source_hash() -> str:
    digest = hashlib.sha1()
    for package in ("impls", "baselines", "workloads", "harness"):
        for path in sorted((SOURCE_ROOT / package).rglob("*")):
            if path.suffix in (".py", ".cu", ".cl", ".toml", ".j2") and path.is_file():
                digest.update(str(path.relative_to(SOURCE_ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
