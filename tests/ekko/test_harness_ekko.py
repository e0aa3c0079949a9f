"""Ekko's experiments are registered, and a few quick ones run and pass their checks."""

from __future__ import annotations

import pytest

from harness import registry, runner


def test_quick_tier_covers_every_claimed_metric() -> None:
    exps = registry.experiments(system="ekko", tier="quick")
    impls = {e.impl for e in exps}
    assert {"ekko", "adam_push", "checkpoint_broadcast", "ekko-no-cache"} <= impls
    assert all(e.kind == "simulated" for e in exps)
    assert {e.p.get("dcs") for e in exps if e.impl == "adam_push"} >= {1, 10}


@pytest.mark.parametrize("selector", [
    {"impl": "ekko", "dcs": 4, "bandwidth_gbps": 5, "workload": "ekko-updates-quick"},
    {"impl": "adam_push", "dcs": 4, "bandwidth_gbps": 5, "workload": "ekko-updates-quick"},
    {"impl": "ekko", "harm": "overflow"},
])
def test_quick_experiment_runs_and_checks(selector: dict) -> None:
    (exp,) = registry.experiments(system="ekko", tier="quick", selector=selector)
    outcome = runner.run(exp)
    assert outcome.metrics["simulated_wall_s"] > 0
