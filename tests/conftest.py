"""Shared test setup: GPU tests skip (with the reason) where no usable CUDA device exists."""

import pytest


def pytest_collection_modifyitems(config, items):
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items:
        return
    from harness.backends import probe

    info = probe("gpu")
    if info.available:
        return
    skip = pytest.mark.skip(reason=f"gpu backend unavailable: {info.reason}")
    for item in gpu_items:
        item.add_marker(skip)
