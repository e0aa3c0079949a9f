"""The SLO-aware scheduler, the percentile estimator and the model-state manager."""

from __future__ import annotations

import numpy as np
import pytest

from impls.ekko.compression import Compression, DeltaEncoder
from impls.ekko.quality import dissemination_savings, rollback_experiment, run_policy
from impls.ekko.scheduler import PercentileEstimator, SchedulerConfig, SloScheduler
from impls.ekko.state import CORRUPTED, HEALTHY, UNCERTAIN, ModelStateManager, StateManagerConfig


def test_percentile_estimator_matches_numpy_over_its_window() -> None:
    rng = np.random.default_rng(0)
    est = PercentileEstimator(90.0, window=256)
    xs = rng.exponential(size=1024)
    for x in xs:
        est.add(float(x))
    assert est.value == pytest.approx(np.percentile(xs[-256:], 90))


@pytest.mark.parametrize("bad", [0.0, 100.0, -5.0, 150.0])
def test_percentile_outside_open_interval_is_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        PercentileEstimator(bad)
    with pytest.raises(ValueError, match="percentile"):
        SchedulerConfig(percentile=bad)


def test_scheduler_splits_paths_and_coalesces_low_path() -> None:
    sched = SloScheduler(SchedulerConfig(percentile=50.0, window=16, low_flush_s=1.0), (0.9, 0.1))
    rng = np.random.default_rng(1)
    high = 0
    for u in range(400):
        if sched.submit(u, int(rng.integers(5)), float(rng.exponential()), int(rng.integers(2)), False) is not None:
            high += 1
    assert 100 < high < 300                        # about half above the median
    assert len(sched.low) <= 5                     # the low path holds one entry per key
    carried = [u for ids in sched.flush_due(1.0).values() for u in ids]
    assert len(carried) == len(set(carried)) and not sched.low
    assert sched.flush_due(1.5) == {}              # next flush only after the period


def test_fresh_keys_outrank_stale_ones() -> None:
    sched = SloScheduler(SchedulerConfig(), (1.0,))
    assert sched.priority(1.0, 0, True) > sched.priority(1.0, 0, False)


def test_state_manager_moves_healthy_uncertain_corrupted() -> None:
    m = ModelStateManager(StateManagerConfig(window_steps=2, margin=0.1, confirm_steps=2))
    for step in range(5):
        assert m.observe(step, 0.5, 0.5) == []
    assert m.state == HEALTHY
    assert m.observe(5, 5.0, 0.5) == [] and m.state == UNCERTAIN
    assert m.observe(6, 5.0, 0.5) == [] and m.state == UNCERTAIN
    actions = m.observe(7, 5.0, 0.5)
    assert m.state == CORRUPTED and [a.kind for a in actions] == ["redirect", "rollback"]
    assert actions[1].to_step <= 4
    m.restored(8)
    assert m.state == HEALTHY


def test_state_manager_config_keeps_baseline_under_one_percent() -> None:
    with pytest.raises(ValueError, match="baseline_share"):
        StateManagerConfig(baseline_share=0.05)


@pytest.mark.parametrize("harm", ["overflow", "biased"])
def test_harmful_update_is_detected_and_rolled_back(harm: str) -> None:
    r = rollback_experiment(harm, steps=100, inject_step=60)
    assert r["detected"] == 1.0 and 0 < r["time_to_detect_s"] < 30
    assert r["requests_served_by_corrupted"] > 0 and r["rollback_restore_s"] > 0


def test_healthy_run_raises_no_alarm() -> None:
    assert rollback_experiment("none", steps=120)["detected"] == 0.0


def test_fresh_replica_beats_stale_replica() -> None:
    fresh = run_policy(60, delay_steps=0, warmup_steps=10)
    stale = run_policy(60, checkpoint_period_steps=30, delay_steps=2, warmup_steps=10)
    assert fresh.logloss == pytest.approx(fresh.oracle_logloss)
    assert stale.logloss > fresh.logloss and stale.staleness_mean_s > fresh.staleness_mean_s


def test_scheduler_compression_and_both_save_bytes() -> None:
    sched, comp, both = (dissemination_savings(60, v) for v in ("scheduler", "compression", "both"))
    assert 0 < sched["bytes_saved_fraction"] < 1 and sched["rows_saved_fraction"] == sched["bytes_saved_fraction"]
    assert comp["rows_saved_fraction"] == 0 and comp["bytes_saved_fraction"] == pytest.approx(1 - (9 + 4) / 36)
    assert both["bytes_saved_fraction"] > max(sched["bytes_saved_fraction"], comp["bytes_saved_fraction"])
    assert abs(comp["quality_loss"]) < 0.01       # int8 deltas with error feedback barely move the logloss


@pytest.mark.parametrize("codec", ["fp16", "int8"])
def test_error_feedback_keeps_the_replica_within_one_step(codec: str, fresh_rng) -> None:
    rows, dim = 50, 9
    initial = fresh_rng.standard_normal((rows, dim))
    fed, plain = DeltaEncoder(Compression(codec, True), initial), DeltaEncoder(Compression(codec, False), initial)
    target, held_fed, held_plain = initial.copy(), initial.copy(), initial.copy()
    ids = np.arange(rows)
    for _ in range(200):   # the trainer moves each row a little, and each change is shipped
        target += 0.01 * fresh_rng.standard_normal((rows, dim))
        held_fed = fed.ship(ids, target, held_fed)
        held_plain = plain.ship(ids, target, held_plain)
        np.testing.assert_allclose(target - held_fed, fed.residual, atol=1e-12)
    # With feedback the replica is off by one residual (deltas are ~0.01, an int8 step ~1e-4);
    # without it, the errors of successive deltas add up.
    assert np.abs(fed.residual).max() < 1e-3
    assert np.abs(target - held_plain).mean() > np.abs(target - held_fed).mean()
    with pytest.raises(ValueError, match="codec"):
        Compression("zip")
