"""Shared test setup.

- Tests marked `gpu` or `opencl` skip, with the backend layer's reason, where that
  backend cannot run here; in CI (`CI=true`) an unavailable OpenCL backend fails the
  run instead, so the OpenCL tests cannot go quietly missing.
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


BACKEND_MARKERS = ("gpu", "opencl")


def pytest_sessionstart(session):
    import devices

    info = devices.probe("opencl")
    if os.environ.get("CI") == "true" and not info.available:
        pytest.exit(f"CI needs the opencl backend, which is unavailable: {info.reason}", returncode=1)


def pytest_collection_modifyitems(config, items):
    import devices

    for backend in BACKEND_MARKERS:
        info = devices.probe(backend)
        if info.available:
            continue
        skip = pytest.mark.skip(reason=f"{backend} backend unavailable: {info.reason}")
        for item in items:
            if backend in item.keywords:
                item.add_marker(skip)
