"""Shared fixtures for the FAERY tests: which backends can run here."""

from __future__ import annotations

import importlib.util

import pytest


def opencl_device_reason() -> str | None:
    """None when pyopencl has a device, else why not."""
    if importlib.util.find_spec("pyopencl") is None:
        return "pyopencl is not installed"
    from impls.faery import opencl

    return opencl.unavailable_reason()


def gpu_reason() -> str | None:
    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed"
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver or no device
        return f"no usable GPU ({exc})"
    return None


def backend_param(backend: str):
    """A pytest param for `backend`, marked and skipped where it cannot run."""
    if backend == "opencl":
        reason = opencl_device_reason()
        return pytest.param(backend, marks=[pytest.mark.opencl, pytest.mark.skipif(reason is not None, reason=reason or "")])
    if backend == "gpu":
        reason = gpu_reason()
        return pytest.param(backend, marks=[pytest.mark.gpu, pytest.mark.skipif(reason is not None, reason=reason or "")])
    if backend == "fpga-model":
        missing = importlib.util.find_spec("impls.faery.fpga_model") is None
        return pytest.param(backend, marks=pytest.mark.skipif(missing, reason="impls.faery.fpga_model is not built"))
    return pytest.param(backend)


ALL_BACKENDS = [backend_param(b) for b in ("cpu", "opencl", "gpu", "fpga-model")]


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every FAERY backend; those that cannot run here are skipped with the reason."""
    return request.param
