"""Ekko's experiments are registered, a few quick ones run and pass their checks, and the CLI refuses bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness import registry, runner


def test_quick_tier_covers_every_claimed_metric() -> None:
    exps = registry.experiments(system="ekko", tier="quick")
    impls = {e.impl for e in exps}
    assert {"ekko", "adam_push", "checkpoint_broadcast", "ekko-no-cache", "ekko-dissemination"} <= impls
    assert all(e.kind == "simulated" for e in exps)
    assert {e.params.get("dcs") for e in exps if e.impl == "adam_push"} >= {1, 10}
    loads = {(e.impl, e.params.get("offered_load")) for e in exps if e.params.get("dcs") == 10 and e.impl in ("ekko", "adam_push")}
    assert {(i, f) for i in ("ekko", "adam_push") for f in (0.1, 0.5, 0.9, 1.5)} <= loads
    assert {e.params.get("latency") for e in exps if e.impl == "ekko"} >= {"uniform:50", "geo"}


@pytest.mark.parametrize("selector", [
    {"impl": "ekko", "dcs": 4, "latency": "uniform:50", "scenario": "fault-free", "workload": "ekko-updates-quick"},
    {"impl": "adam_push", "dcs": 4, "latency": "uniform:50", "workload": "ekko-updates-quick"},
    {"impl": "ekko", "scenario": "lagging-replica"},
    {"impl": "ekko", "harm": "overflow"},
])
def test_quick_experiment_runs_and_checks(selector: dict) -> None:
    (exp,) = registry.experiments(system="ekko", tier="quick", selector=selector)
    outcome = runner.run(exp)
    assert outcome.metrics["simulated_wall_s"] > 0
    if "dcs" in selector:
        m = outcome.metrics
        assert m["floor_s"] > 0 and m["p50_over_floor"] == pytest.approx(m["latency_p50_s"] / m["floor_s"])
    if selector.get("scenario") == "lagging-replica":
        assert 0 < outcome.metrics["cache_hit_ratio"] < 1   # the cut-off DC and the restart force full scans


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from harness.cli import main; main()", "ekko", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args,message", [
    (["simulate", "--workload", "citeseer"], "--workload citeseer is a graph workload"),
    (["simulate", "--bandwidth-gbps", "inf"], "--bandwidth-gbps must be positive and finite, got inf"),
    (["simulate", "--bandwidth-gbps", "-5"], "--bandwidth-gbps must be positive and finite"),
    (["simulate", "--offered-load", "0"], "--offered-load must be positive and finite, got 0.0"),
    (["simulate", "--latency", "uniform:x"], "--latency uniform:x: latency uniform:MS needs a number"),
    (["simulate", "--bandwidth-gbps", "1e-9", "--dcs", "2"], "the run did not finish: .* within the 120 s"),
    (["processes", "--offered-load", "-1"], "--offered-load must be positive"),
])
def test_bad_input_is_one_line_with_exit_2(args: list[str], message: str) -> None:
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert lines[0].startswith("recmine: error: ")
    import re
    assert re.search(message, lines[0]), lines[0]


def test_asymmetric_latency_file_names_the_cell(tmp_path) -> None:
    path = tmp_path / "lat.csv"
    path.write_text("0,10\n12,0\n")
    r = _cli("simulate", "--latency", str(path))
    assert r.returncode == 2 and "row 1, column 2 is 0.01 but row 2, column 1 is 0.012" in r.stderr


def test_simulate_on_a_users_12_dc_matrix_prints_floor_and_ratios(tmp_path, fresh_rng) -> None:
    n = 12
    upper = fresh_rng.uniform(5, 150, (n, n))
    lat = (upper + upper.T) / 2
    lat[range(n), range(n)] = 0
    path = tmp_path / "twelve.csv"
    path.write_text("\n".join(",".join(f"{x:.3f}" for x in row) for row in lat))
    r = _cli("simulate", "--latency", str(path), "--offered-load", "0.1")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["dcs"] == 12 and out["converged"] == 1.0
    assert out["floor_s"] > 0 and out["p50_over_floor"] >= 1.0 and out["p99_over_floor"] >= out["p50_over_floor"]
    assert out["offered_load"] == pytest.approx(0.1)
