"""Shared fixtures for the FAERY tests: which backends can run here."""

from __future__ import annotations

import importlib.util

import pytest


def backend_param(backend: str):
    """A pytest param for `backend`, marked so that tests/conftest.py skips it where it cannot run."""
    if backend in ("opencl", "gpu"):
        return pytest.param(backend, marks=getattr(pytest.mark, backend))
    if backend == "fpga-model":
        missing = importlib.util.find_spec("impls.faery.fpga_model") is None
        return pytest.param(backend, marks=pytest.mark.skipif(missing, reason="impls.faery.fpga_model is not built"))
    return pytest.param(backend)


ALL_BACKENDS = [backend_param(b) for b in ("cpu", "opencl", "gpu", "fpga-model")]


@pytest.fixture(params=ALL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Every FAERY backend; those that cannot run here are skipped with the reason."""
    return request.param
