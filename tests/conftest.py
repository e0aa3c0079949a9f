"""Shared test setup.

- GPU tests skip (with the reason) where no usable CUDA device exists.
- `fresh_rng`: a random generator on a new seed every run, so kernels meet inputs
  they have not met before; a failing test's report names its seed, and
  `RECMINE_TEST_SEED=<seed>` replays it.
"""

import os
import random

import numpy as np
import pytest


@pytest.fixture
def fresh_rng(request) -> np.random.Generator:
    seed = int(os.environ.get("RECMINE_TEST_SEED") or random.SystemRandom().randrange(2**32))
    request.node.random_seed = seed
    return np.random.default_rng(seed)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    seed = getattr(item, "random_seed", None)
    if seed is not None and report.failed:
        report.sections.append(("random seed", f"replay with RECMINE_TEST_SEED={seed}"))


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
