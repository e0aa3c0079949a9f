"""`recmine compare`: a change counts only beyond the run-to-run noise, and a real 1.5x slowdown shows."""

from __future__ import annotations

import numpy as np
import pytest

from harness import compare
from harness.store import Row, Store


def _row(exp_id: str, run_id: str, samples, kind: str = "measured", setup_medians=()) -> Row:
    samples = [float(s) for s in samples]
    return Row({"experiment_id": exp_id, "run_id": run_id, "machine_id": "m", "kind": kind,
                "samples": samples, "value": float(np.median(samples)) if samples else None,
                "stats": {"setup_medians": [float(m) for m in setup_medians]}})


def _runs(rng: np.random.Generator, experiments: int, repeats: int, slowdown: float = 1.0, shift: float = 0.08):
    """Two runs of `experiments` experiments; run 2 is `slowdown` times slower, and the machine state
    shifts every experiment's level by up to `shift` between runs (what the within-run test misses)."""
    before, after = {}, {}
    for i in range(experiments):
        base = 10 ** rng.uniform(-4, 0)
        level = 1 + rng.uniform(-shift, shift)
        before[f"e{i}"] = _row(f"e{i}", "r1", base * rng.lognormal(0, 0.02, repeats))
        after[f"e{i}"] = _row(f"e{i}", "r2", base * level * slowdown * rng.lognormal(0, 0.02, repeats))
    return before, after


@pytest.mark.parametrize("repeats", [3, 5, 30])
def test_two_runs_of_one_commit_are_noise_and_a_planted_1_5x_slowdown_is_not(repeats):
    rng = np.random.default_rng(20261202 + repeats)  # a fixed seed: these are the rule's inputs, not a kernel's
    same = compare.compare(*_runs(rng, 40, repeats))
    assert sum(c.significant for c in same) == 0
    # The within-run test alone calls the machine-state shift significant.
    assert repeats < 5 or sum(compare.mann_whitney_p(*(r["samples"] for r in pair)) < 0.05
                              for pair in zip(*(d.values() for d in _runs(rng, 40, repeats)))) > 10
    slower = compare.compare(*_runs(rng, 40, repeats, slowdown=1.5))
    assert all(c.label == "slower" for c in slower)


def test_an_experiment_that_is_noisy_run_to_run_needs_a_larger_change(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    for run, median in enumerate([1.0, 1.6, 0.7, 1.3, 0.8]):  # its history: +-60% between runs
        store.add(run_id=f"old{run}", experiment_id="noisy", system="s", impl="i", backend="cpu", workload="w",
                  params={}, kind="measured", tier="quick", status="ok", value=median, samples=[median],
                  stats={}, metrics={}, device="d", git_commit="c", machine_id="m", machine={}, versions={},
                  created=float(run))
    before = {"noisy": _row("noisy", "r1", [1.0, 1.01, 0.99, 1.0, 1.02])}
    after = {"noisy": _row("noisy", "r2", [1.5, 1.51, 1.49, 1.5, 1.52])}
    (change,) = compare.compare(before, after, store)
    assert change.factor > 1.5 and not change.significant
    (change,) = compare.compare(before, after)  # without history: the default factor
    assert change.factor == compare.MIN_FACTOR and change.significant


def test_deterministic_figures_change_by_any_five_percent():
    (changed,) = compare.compare({"m": _row("m", "r1", [1.0], "modelled")}, {"m": _row("m", "r2", [1.06], "modelled")})
    (same,) = compare.compare({"m": _row("m", "r1", [1.0], "modelled")}, {"m": _row("m", "r2", [1.04], "modelled")})
    assert changed.significant and not same.significant


def _setup_runs(rng: np.random.Generator, experiments: int, slowdown: float = 1.0):
    """Two runs, each timing every experiment in two trial setups of 2 repeats.  Each setup lands on its own
    level (fresh memory, a rebuilt trial): 2% for most experiments, 20% for one in five (short, memory-bound
    ones), the process-level noise a within-run test cannot see.  Run 2 is `slowdown` times slower."""
    before, after = {}, {}
    for i in range(experiments):
        base, spread = 10 ** rng.uniform(-4, 0), 0.2 if i % 5 == 0 else 0.02
        for run, rows, factor in (("r1", before, 1.0), ("r2", after, slowdown)):
            setups = [base * factor * rng.lognormal(0, spread) * rng.lognormal(0, 0.01, 2) for _ in range(2)]
            rows[f"e{i}"] = _row(f"e{i}", run, np.concatenate(setups), setup_medians=[np.median(s) for s in setups])
    return before, after


def test_the_spread_of_trial_setups_sets_the_factor_when_there_is_no_history():
    rng = np.random.default_rng(2026120202)  # a fixed seed: these are the rule's inputs, not a kernel's
    before, after = _setup_runs(rng, 200)
    same = compare.compare(before, after)
    assert sum(c.significant for c in same) <= len(same) / 20
    noisy = [c for c in same if int(c.experiment_id[1:]) % 5 == 0]
    assert np.median([c.factor for c in noisy]) > 1.3   # a noisy experiment's setups say so
    pooled_only = [{e: _row(e, r["run_id"], r["samples"]) for e, r in rows.items()} for rows in (before, after)]
    # The default factor alone calls more of the setups' shifts significant.
    assert sum(c.significant for c in compare.compare(*pooled_only)) > sum(c.significant for c in same)
    slower = compare.compare(*_setup_runs(rng, 200, slowdown=1.5))
    quiet = [c for c in slower if int(c.experiment_id[1:]) % 5]
    assert all(c.label == "slower" for c in quiet)


def _shifted_runs(rng: np.random.Generator, experiments: int, planted: set[int] = frozenset()):
    """Two runs of one commit on a VM whose state moves between them: each experiment under 3 ms lands on
    its own level in run 2 (sigma 0.15 in log, 1.2-1.4x for many), in both of its trial setups alike, so
    the setups within each run agree; longer ones move 2%.  Experiments in `planted` are 1.5x slower."""
    before, after = {}, {}
    for i in range(experiments):
        base = 10 ** rng.uniform(-4.5, -0.5)
        level = rng.lognormal(0, 0.15 if base < 3e-3 else 0.02) * (1.5 if i in planted else 1.0)
        for run, rows, factor in (("r1", before, 1.0), ("r2", after, level)):
            setups = [base * factor * rng.lognormal(0, 0.01) * rng.lognormal(0, 0.01, 3) for _ in range(2)]
            rows[f"e{i}"] = _row(f"e{i}", run, np.concatenate(setups), setup_medians=[np.median(s) for s in setups])
    return before, after


def test_experiments_of_a_similar_length_gauge_a_shift_between_runs_that_setups_cannot_see(monkeypatch):
    rng = np.random.default_rng(2026120303)  # a fixed seed: these are the rule's inputs, not a kernel's
    runs = _shifted_runs(rng, 150)
    same = compare.compare(*runs)
    assert sum(c.significant for c in same) <= len(same) / 20
    short = [c for c in same if c.before < 1e-3]
    assert np.median([c.factor for c in short]) > 1.4     # the short experiments' neighbours moved
    with monkeypatch.context() as without_neighbours:
        without_neighbours.setattr(compare, "MIN_NEIGHBOURS", len(same))
        assert sum(c.significant for c in compare.compare(*runs)) > len(same) / 10
    longer = sorted(int(c.experiment_id[1:]) for c in compare.compare(*_shifted_runs(np.random.default_rng(7), 150))
                    if c.before > 3e-3)
    planted = set(longer[:8])
    rng = np.random.default_rng(7)   # the same experiments again, eight of the longer ones planted 1.5x slower
    changes = {c.experiment_id: c for c in compare.compare(*_shifted_runs(rng, 150, planted))}
    assert all(changes[f"e{i}"].label == "slower" for i in planted)
    assert sum(c.significant for e, c in changes.items() if int(e[1:]) not in planted) <= 150 / 20
