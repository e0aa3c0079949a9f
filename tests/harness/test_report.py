"""The report's tables, plots and report.md; the reproduction plan behind `reproduce --dry-run`."""

import pandas as pd
import pytest
from click.testing import CliRunner

from harness import claims, plan, registry, report
from harness.cli import cli
from harness.store import Store

SINGLE = {"scenario": "single-stream", "k": 100, "batch": 1}


def add(store, run, impl, backend, value, workload="gaussian-25k-d128-fp32", kind="measured", failed=None, **params):
    return store.add(run_id=run, experiment_id=f"faery/{impl}/{backend}/{workload}/{sorted(params.items())}",
                     system="faery", impl=impl, backend=backend, workload=workload, params=params, kind=kind,
                     tier="quick", status="failed" if failed else "ok", error=failed, value=value,
                     samples=[] if value is None else [value] * 3, stats={"n": 3, "iqr": 0.0},
                     metrics={"pass_rate": 0.01}, threads=2, device="cpu", git_commit="abc", machine_id="m1",
                     machine={"cpu": "test cpu"}, versions={})


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "r.sqlite") as s:
        s.run_id = s.begin_run("recmine reproduce --quick", "quick", "abc", "m1", {"cpu": "test cpu"},
                               {"cpu": "available"}, {})
        yield s


def test_speedups_pair_each_implementation_with_its_baseline_on_shared_parameters(store, fresh_rng):
    base, faery, model = fresh_rng.uniform(0.001, 0.1, size=3)
    add(store, store.run_id, "faiss_topk", "cpu", base, **SINGLE)
    add(store, store.run_id, "faery", "cpu", faery, **SINGLE)
    add(store, store.run_id, "faery", "fpga-model", model, kind="modelled", hbm="vu35p", **SINGLE)
    add(store, store.run_id, "faery", "cpu", 0.5, scenario="sweep", k=64)   # no baseline: no row
    table = report.speedup_tables(store.latest())["faery"]
    rows = {r["implementation"]: r for r in table["rows"]}
    assert set(rows) == {"faery on cpu", "faery on fpga-model, hbm=vu35p (modelled)"}
    for impl, t in (("faery on cpu", faery), ("faery on fpga-model, hbm=vu35p (modelled)", model)):
        row = rows[impl]
        assert row["baseline"] == "faiss_topk on cpu" and row["configuration"] == "batch=1, k=100, scenario=single-stream"
        assert row["speedup"][1] == pytest.approx(base / t)
    assert "speedup over faiss_topk" in table["title"]


def test_series_are_named_by_the_specs_format_with_integers_as_integers():
    frame = pd.DataFrame({"param.k": [1024.0, 256.0], "kind": ["modelled", "modelled"]})
    assert list(report._series_names(frame, "param.k", "K = {}")) == ["K = 1024", "K = 256"]
    mixed = pd.DataFrame({"backend": ["cpu", "fpga-model"], "kind": ["measured", "modelled"]})
    assert list(report._series_names(mixed, "backend", "{}")) == ["cpu", "fpga-model (modelled)"]


def test_a_plot_of_one_point_per_series_becomes_a_table_and_others_get_labelled_axes(store, tmp_path):
    for impl, t in (("faery", 0.002), ("faiss_topk", 0.01)):
        add(store, store.run_id, impl, "cpu", t, **SINGLE)
    made = report.plots(report.results_frame(store.latest()), tmp_path)
    single = [p for p in made if "table" in p]
    assert single and all("file" not in p for p in single)
    add(store, store.run_id, "faery", "cpu", 0.008, workload="gaussian-100k-d128-fp32", **SINGLE)
    add(store, store.run_id, "faiss_topk", "cpu", 0.03, workload="gaussian-100k-d128-fp32", **SINGLE)
    drawn = [p for p in report.plots(report.results_frame(store.latest()), tmp_path) if "file" in p]
    assert drawn and all((tmp_path / p["file"]).stat().st_size > 1000 for p in drawn)
    for spec in (s for system in registry.declared_systems().values() for s in system.plots):
        assert spec.get("style", "line") in ("line", "points"), spec["title"]
        for axis in ("x", "y"):
            label = spec.get(f"{axis}label") or report.FIELD_LABELS.get(spec[axis])
            assert label and label != spec[axis], (spec["title"], axis)


def test_report_md_holds_machine_claims_speedups_failures_skips_and_provenance(store, tmp_path):
    add(store, store.run_id, "faiss_topk", "cpu", 0.01, **SINGLE)
    row = add(store, store.run_id, "faery", "cpu", 0.002, **SINGLE)
    add(store, store.run_id, "numpy", "cpu", None, failed="ValueError: planted", **SINGLE)
    index = report.write(store, tmp_path / "reports")
    md = (index.parent / "report.md").read_text()
    for heading in ("## Machine and backends", "## Claims", "## Baseline strength", "## faery: median time",
                    "## Failed experiments", "## Skipped here", "## Provenance of each claim's numbers", "## Runs"):
        assert heading in md, heading
    assert "test cpu" in md and "ValueError: planted" in md
    assert "`recmine reproduce --quick --claim faery.latency-vs-faiss-gpu`" in md
    assert f"| {row} | faery/faery/cpu/" in md
    page = index.read_text()
    assert "recmine reproduce --quick --claim faery.latency-vs-faiss-gpu" in page and f'id="row-{row}"' in page


def test_stored_costs_are_the_gaps_between_a_runs_rows(store):
    first = add(store, store.run_id, "faery", "cpu", 0.1, **SINGLE)
    second = add(store, store.run_id, "faiss_topk", "cpu", 0.1, **SINGLE)
    rows = {r["id"]: r for r in store.rows()}
    costs = plan.stored_costs(store.rows(), store.runs(), "m1")
    assert costs[rows[second]["experiment_id"]][0] == pytest.approx(rows[second]["created"] - rows[first]["created"])
    assert plan.stored_costs(store.rows(), store.runs(), "another machine") == {}


def test_a_stored_wall_time_wins_over_the_gap(store):
    """reproduce times an experiment's setups in different rounds: the gap before its row is not its cost."""
    row = add(store, store.run_id, "faery", "cpu", 0.1, **SINGLE)
    store.conn.execute("UPDATE results SET stats = ? WHERE id = ?", ('{"n": 3, "wall_s": 7.5}', row))
    [(wall, _)] = plan.stored_costs(store.rows(), store.runs(), "m1").values()
    assert wall == 7.5


def test_the_dry_run_lists_each_claims_experiments_with_needs_and_a_total(tmp_path):
    result = CliRunner().invoke(cli, ["reproduce", "--quick", "--dry-run", "--store", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    quick = registry.experiments(tier="quick")
    assert lines[-1].startswith(f"total: {len(quick)} experiments") and "from the cost model" in lines[-1]
    for c in claims.load():
        if claims.experiments_for(c, "quick"):
            assert any(line.startswith(c.id + ":") for line in lines), c.id
    assert not (tmp_path / "none.sqlite").exists()  # a dry run writes nothing
    one = CliRunner().invoke(cli, ["reproduce", "--dry-run", "--claim", "g2miner.vs-pangolin",
                                   "--store", str(tmp_path / "none.sqlite")]).output.splitlines()
    assert [line for line in one if not line.startswith((" ", "total"))] == [one[0]]
    assert one[0].startswith("g2miner.vs-pangolin:") and "[cpu, " in one[1]


def test_an_unknown_claim_is_one_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["reproduce", "--claim", "no.such", "--dry-run"])
    assert isinstance(result.exception, ValueError) and "unknown claim 'no.such'" in str(result.exception)
