"""pytest-benchmark micro-benchmarks, generated from the experiment registry.

One benchmark per system, implementation and backend: its smallest quick-tier
experiment.  In the normal test run (`--benchmark-disable`) each runs once and
its result is checked, so these double as correctness tests.  Timing runs and
the compare-fail gate are in the README.
"""

import pytest

from harness import registry
from harness.lifecycle import BackendUnavailable, open_trial
from workloads import catalog


def _smallest_per_implementation() -> list[str]:
    picked: dict[tuple[str, str, str], tuple[registry.Experiment, float]] = {}
    for exp in registry.experiments(tier="quick"):
        if exp.kind != "measured":
            continue
        key = (exp.system, exp.impl, exp.backend)
        size = catalog.get(exp.workload).size
        weight = size.get("bytes") or size.get("edges") or size.get("n") or 0
        if key not in picked or weight < picked[key][1]:
            picked[key] = (exp, weight)
    return sorted(exp.id for exp, _ in picked.values())


def bench_experiment(benchmark, experiment_id: str) -> None:
    """Time one experiment with `benchmark`, opened through the harness's trial lifecycle, and check it."""
    try:
        with open_trial(registry.get(experiment_id)) as opened, opened.pinned():
            result = benchmark(opened.trial.run)
            opened.check(result)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("experiment_id", _smallest_per_implementation())
def test_kernel(benchmark, experiment_id):
    bench_experiment(benchmark, experiment_id)
