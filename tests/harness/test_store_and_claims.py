"""Results store, claims file and verdict rules."""

import re
import sqlite3
from pathlib import Path

import pytest

from harness import claims
from harness.store import SCHEMA_VERSION, Row, Store

PAPERS = Path(__file__).resolve().parents[2].parent / "shared" / "papers"


def add_row(store, run_id, impl, backend, value, workload="w", metrics=None, **params):
    return store.add(run_id=run_id, experiment_id=f"s/{impl}/{backend}/{workload}/{params}", system="s", impl=impl,
                     backend=backend, workload=workload, params=params, kind="measured", tier="quick", status="ok",
                     value=value, samples=[value] * 3, stats={"n": 3}, metrics=metrics or {}, threads=1,
                     device="cpu", git_commit="abc", machine_id="m1", machine={"cpu": "x"}, versions={})


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "r.sqlite") as s:
        yield s


def begin(store):
    return store.begin_run("test", "quick", "abc", "m1", {}, {}, {})


def test_rows_round_trip_with_provenance(store):
    run = begin(store)
    row_id = add_row(store, run, "a", "cpu", 0.5, k=10)
    (row,) = store.latest()
    assert row["id"] == row_id and row["params"] == {"k": 10} and row["samples"] == [0.5] * 3
    assert row.fields()["k"] == 10 and row.metric("time_s") == 0.5
    assert store.done(row["experiment_id"], "abc", "m1") and not store.done(row["experiment_id"], "def", "m1")


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite"
    Store(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(ValueError, match="newer recmine"):
        Store(path)


def test_unwritable_store_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot use results store"):
        Store(blocker / "r.sqlite")


def test_claims_file_covers_every_paper_claim():
    loaded = claims.load()
    assert {c.paper for c in loaded} == {"ekko", "faery", "g2miner"}
    text = " ".join(f"{c.paper_value} {c.compares}" for c in loaded)
    # Every number in the papers' claims tables appears in a claim's paper value.
    for paper in ("ekko", "faery", "g2miner"):
        notes = (PAPERS / f"{paper}.md")
        if not notes.exists():
            pytest.skip("paper notes not beside the checkout")
        table = notes.read_text().split("## Claims", 1)[1].split("\n## ", 1)[0]
        for line in table.splitlines()[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) < 2 or not cells[1]:
                continue
            for number in re.findall(r"\d+(?:[.,]\d+)?", cells[1].split("(")[0]):
                assert number in text, f"{paper}: claim '{cells[0]}' ({number}) is missing from claims.toml"


def test_bad_claims_file_names_the_claim(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('[[claims]]\nid = "x"\npaper = "p"\nsource = "s"\ncompares = "c"\npaper_value = "1"\n'
                   '[[claims.measurements]]\nlabel = "l"\nmeasure = { kind = "nope" }\ntolerance = { rule = "range" }\n')
    with pytest.raises(ValueError, match="claim x, measurement #0: measure.kind"):
        claims.load(bad)


def claim(measure, tolerance, **kw):
    m = claims.MeasurementSpec(label="l", measure=measure, tolerance=tolerance, **kw)
    return claims.Claim("c", "p", "s", "cmp", "v", (m,)), m


RATIO = {"kind": "ratio", "metric": "time_s", "numerator": {"impl": "base"}, "denominator": {"impl": "new"},
         "pair_on": ["workload"], "aggregate": "range"}


@pytest.mark.parametrize("base_time,verdict", [(3.0, claims.REPRODUCED), (20.0, claims.DIRECTION_HOLDS),
                                               (0.5, claims.NOT_REPRODUCED)])
def test_ratio_verdicts(store, base_time, verdict):
    run = begin(store)
    add_row(store, run, "base", "cpu", base_time)
    add_row(store, run, "new", "cpu", 1.0)
    add_row(store, run, "base", "cpu", 99.0, workload="unpaired")
    c, m = claim(RATIO, {"rule": "range", "low": 1.21, "high": 12.27})
    v = claims.judge(c, m, store.latest())
    assert v.verdict == verdict and v.values == (base_time,) and len(v.row_ids) == 2


def test_ratios_never_pair_rows_from_different_machines(store):
    run = begin(store)
    add_row(store, run, "base", "cpu", 3.0)
    rows = [Row({**r.data, "machine_id": "other"}) if r["impl"] == "new" else r
            for r in (store.latest() + [store.rows("id=?", (add_row(store, run, "new", "cpu", 1.0),))[0]])]
    c, m = claim(RATIO, {"rule": "range", "low": 1, "high": 5})
    assert claims.judge(c, m, rows).verdict == claims.NOT_MEASURED


def test_unmeasured_and_unmeasurable(store):
    c, m = claim(RATIO, {"rule": "factor", "target": 2, "factor": 1.5})
    assert claims.judge(c, m, []).verdict == claims.NOT_MEASURED
    c, m = claim(RATIO, {"rule": "factor", "target": 2, "factor": 1.5}, requires={"gpus": 99})
    v = claims.judge(c, m, [])
    assert v.verdict == claims.NOT_MEASURABLE and "99" in v.reason
    c, m = claim(RATIO, {"rule": "factor", "target": 2, "factor": 1.5}, not_measurable="needs 8 GPUs")
    assert claims.judge(c, m, []).reason == "needs 8 GPUs"


def test_hardware_bound_figures_are_shown_not_judged(store):
    run = begin(store)
    add_row(store, run, "sim", "cpu", 1.0, metrics={"latency_p99_s": 2.0})
    c, m = claim({"kind": "metric", "metric": "latency_p99_s", "select": {"impl": "sim"}}, {"rule": "hardware_bound"})
    v = claims.judge(c, m, store.latest())
    assert v.verdict == claims.NOT_MEASURABLE and v.value == "2" and "not judged" in v.reason


def test_per_divides_each_ratio_by_the_denominators_parameter(store):
    run = begin(store)
    add_row(store, run, "one", "gpu", 8.0, gpus=1)
    add_row(store, run, "many", "gpu", 2.5, gpus=4)
    measure = {"kind": "ratio", "metric": "time_s", "numerator": {"impl": "one"}, "denominator": {"impl": "many"},
               "pair_on": ["workload"], "per": "gpus", "aggregate": "min"}
    c, m = claim(measure, {"rule": "at_least", "value": 0.8})
    v = claims.judge(c, m, store.latest())
    assert v.values == (0.8,) and v.verdict == claims.REPRODUCED


def test_a_baseline_at_zero_rate_is_not_measurable_never_an_unbounded_ratio(store):
    run = begin(store)
    add_row(store, run, "new", "cpu", 1.0, metrics={"qps": 1200.0})
    add_row(store, run, "base", "cpu", 1.0, metrics={"qps": 0.0})
    measure = {"kind": "ratio", "metric": "qps", "numerator": {"impl": "new"}, "denominator": {"impl": "base"},
               "pair_on": ["workload"], "aggregate": "max"}
    c, m = claim(measure, {"rule": "factor", "target": 4.29, "factor": 1.5})
    v = claims.judge(c, m, store.latest())
    assert v.verdict == claims.NOT_MEASURABLE and v.value == "" and "base on cpu has qps = 0" in v.reason


def test_every_denominator_of_a_key_is_paired(store):
    run = begin(store)
    add_row(store, run, "one", "gpu", 8.0, gpus=1)
    for gpus, t in ((2, 4.0), (4, 10.0), (8, 1.0)):
        add_row(store, run, "many", "gpu", t, gpus=gpus)
    measure = {"kind": "ratio", "metric": "time_s", "numerator": {"impl": "one"}, "denominator": {"impl": "many"},
               "pair_on": ["workload"], "per": "gpus", "aggregate": "min"}
    c, m = claim(measure, {"rule": "at_least", "value": 0.8})
    v = claims.judge(c, m, store.latest())
    assert sorted(v.values) == [0.2, 1.0, 1.0] and v.verdict == claims.NOT_REPRODUCED


@pytest.mark.parametrize("tolerance,message", [('{ rule = "range", low = 1 }', "needs a number 'high'"),
                                               ('{ rule = "nope" }', "tolerance.rule")])
def test_claims_file_errors_name_the_claim_and_field(tmp_path, tolerance, message):
    bad = tmp_path / "c.toml"
    bad.write_text('[[claims]]\nid = "x"\npaper = "p"\nsource = "s"\ncompares = "c"\npaper_value = "1"\n'
                   '[[claims.measurements]]\nlabel = "l"\n'
                   'measure = { kind = "metric", select = { impl = "a" } }\n'
                   f'tolerance = {tolerance}\n')
    with pytest.raises(ValueError, match=f"claim x, measurement #0: .*{message}"):
        claims.load(bad)
