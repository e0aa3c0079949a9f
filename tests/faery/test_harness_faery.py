"""FAERY's experiments: registered once, claims' selectors find them, and builds run on tiny data."""

from __future__ import annotations

import numpy as np
import pytest

from harness import claims, registry
from harness.systems import faery
from workloads import catalog
from workloads.embeddings import gaussian

TINY = gaussian(3000, 16, queries=8, seed=1)


def test_experiments_are_unique_and_name_known_workloads() -> None:
    exps = faery.experiments()
    assert len({e.id for e in exps}) == len(exps)
    known = catalog.all_workloads()
    assert all(e.workload in known for e in exps)
    assert all(e.kind == "modelled" for e in exps if e.backend == "fpga-model")
    assert {e.tiers for e in exps} <= {frozenset({"quick"}), frozenset({"full"}), frozenset({"quick", "full"})}


def _selectors(measure: dict) -> list[dict]:
    return [measure[key] for key in ("numerator", "denominator", "select") if key in measure]


def test_every_measurable_faery_claim_selects_registered_experiments() -> None:
    fields = [e.fields() for e in faery.experiments()]
    for claim in claims.load():
        if claim.paper != "faery":
            continue
        for m in claim.measurements:
            if m.not_measurable:
                continue
            for selector in _selectors(m.measure):
                assert any(registry.matches(f, selector) for f in fields), (claim.id, m.label, selector)


@pytest.mark.parametrize("impl, backend", [("faery", "cpu"), ("faiss_topk", "cpu"), ("numpy", "cpu")])
def test_single_stream_and_offline_builds_run_and_check(impl: str, backend: str) -> None:
    trial = faery.build_single_stream(TINY, {"k": 10, "batch": 1, "scenario": "single-stream"}, impl, backend)
    result = trial.run()
    trial.check(result)
    figures = trial.metrics(result)
    assert figures["loadgen_queries"] >= faery.LOADGEN_QUERIES and figures["p99_s"] >= figures["p50_s"] > 0
    if impl == "faery":
        assert 0 < figures["pass_rate"] <= 1
    trial = faery.build_offline(TINY, {"k": 10, "batch": 16, "scenario": "offline"}, impl, backend)
    result = trial.run()
    trial.check(result)
    assert trial.metrics(result)["qps"] > 0


def test_fpga_model_builds_return_modelled_figures() -> None:
    trial = faery.build_fpga_single(TINY, {"k": 10, "hbm": "vu35p", "batch": 1, "scenario": "single-stream"})
    figures = trial.run()
    trial.check(figures)
    assert figures["time_s"] > 0 and 0 < figures["modelled_pass_rate"] <= 1
    assert figures["modelled_bandwidth_gb_s"] == pytest.approx(460, rel=0.01)
    sweep = faery.build_fpga_sweep(TINY, {"k": 256, "channels": 8, "score_units": 0, "sweep": "channels",
                                          "scenario": "sweep"}).run()
    assert sweep["channels"] == 8 and sweep["time_s"] > 0


def test_bandwidth_matched_design_has_the_asked_bandwidth() -> None:
    config = faery._bandwidth_config(3.0e12)
    assert config.bytes_per_cycle * config.clock == pytest.approx(3.0e12, rel=1e-6)
    assert faery._bandwidth_config(100e9).hbm_channels == 32  # never fewer channels than the VU35P


def test_plots_name_fields_the_experiments_have() -> None:
    params = set().union(*(e.params.keys() for e in faery.experiments())) | {"impl", "backend", "workload", "k"}
    for spec in faery.PLOTS:
        for axis in ("x", "hue"):
            assert spec[axis].startswith("size.") or spec[axis] in params, spec
        assert np.all([key in params | {"system"} for key in spec["select"]]), spec


def test_loadgen_command_prints_the_scenario_figures() -> None:
    from click.testing import CliRunner

    runner = CliRunner()
    result = runner.invoke(faery.cli, ["loadgen", "--workload", "gaussian-25k-d128-fp32", "--scenario", "offline",
                                       "--batch", "64", "-k", "10"])
    assert result.exit_code == 0, result.output
    assert "offline  batch 64" in result.output and "QPS" in result.output
    result = runner.invoke(faery.cli, ["loadgen", "--workload", "gaussian-25k-d128-fp32", "--impl", "numpy",
                                       "--backend", "opencl"])
    assert isinstance(result.exception, ValueError) and "numpy has no opencl backend" in str(result.exception)


def test_bench_command_times_the_systems_in_turns_beside_the_floors(tmp_path) -> None:
    import json

    from click.testing import CliRunner

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(faery.cli, ["bench", "--workload", "gaussian-25k-d128-fp32", "--batches", "1,3",
                                            "--repeats", "1", "--impl", "faery", "--impl", "faiss_topk",
                                            "--roofline", "-k", "10", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["batch"] for r in rows] == [1, 3]
    for r in rows:
        for name in ("faery", "faiss_topk", "faery-one-call", "floor", "floor 1 thread", "gemm ceiling"):
            assert r[f"{name}_s"] > 0, name
        assert r["faery_over_floor"] == pytest.approx(r["faery_s"] / r["floor_s"])
        assert r["faiss_topk_over_faery"] == pytest.approx(r["faiss_topk_s"] / r["faery_s"])
        assert r["roofline_s"] >= r["floor_s"] and 0 < r["faiss_topk_select_share"] < 1
    assert "load average after" in result.output


@pytest.mark.parametrize("args, message", [
    (["--batches", "1,0"], "--batches must be comma-separated positive integers"),
    (["--repeats", "0"], "--repeats must be at least 1"),
    (["--roofline", "--backend", "opencl"], "--roofline bounds the cpu backend"),
])
def test_bench_command_refuses_bad_options(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(faery.cli, ["bench", "--workload", "gaussian-25k-d128-fp32", *args])
    assert isinstance(result.exception, ValueError) and message in str(result.exception)


def _synthesis_row(k: int, lut: float) -> dict:
    return {"id": 7, "system": "faery", "backend": "fpga-rtl", "experiment_id": f"synth-{k}", "workload": "w",
            "params": {"scenario": "synthesis", "k": k},
            "metrics": {"synth_lut": lut, "synth_ff": 100.0, "synth_bram": 2.0, "synth_dsp": 512.0}}


def test_resources_table_shows_stored_synthesis_rows() -> None:
    table = faery.report_tables([_synthesis_row(512, 87168.0)])["faery-resources"]
    assert "recorded" not in table["title"]
    assert [(r["K"], r["LUT here"], r["LUT SNARY"], r["_rows"]) for r in table["rows"]] == \
        [(512, "10.0% (87,168)", "18.2%", (7,))]


def test_resources_table_falls_back_to_the_recorded_figures_as_performance_md_gives_them(monkeypatch) -> None:
    from pathlib import Path

    from impls.faery.rtl import synth

    table = faery.report_tables([])["faery-resources"]
    assert "recorded" in table["title"] and faery.SYNTH_COMMAND in table["note"]
    assert [r["K"] for r in table["rows"]] == sorted(e.params["k"] for e in faery.experiments()
                                                     if e.params.get("scenario") == "synthesis")
    performance = (Path(synth.__file__).parents[1] / "PERFORMANCE.md").read_text()
    for r in table["rows"]:  # the recorded file and the documented table are the same figures
        assert "| " + " | ".join(str(r[c]) for c in table["columns"]) + " |" in performance, r
    monkeypatch.setattr(synth, "design_fingerprint", lambda: "another design")
    assert "THE DESIGN HAS CHANGED SINCE" in faery.report_tables([])["faery-resources"]["note"]
