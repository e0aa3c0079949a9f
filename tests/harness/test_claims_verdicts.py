"""The verdict rules of the README, one by one: mixed sets, zero-sided ratios, units, reasons, weak baselines."""

import json
import re

import pytest
from click.testing import CliRunner

from harness import claims
from harness.cli import cli
from harness.store import Store


def add(store, run, impl, value, workload="w", metrics=None, system="s", backend="cpu", failed=None, **params):
    return store.add(run_id=run, experiment_id=f"{system}/{impl}/{backend}/{workload}/{sorted(params.items())}",
                     system=system, impl=impl, backend=backend, workload=workload, params=params, kind="measured",
                     tier="quick", status="failed" if failed else "ok", error=failed, value=value,
                     samples=[] if value is None else [value] * 3, stats={"n": 3}, metrics=metrics or {},
                     threads=1, device="cpu", git_commit="abc", machine_id="m1", machine={"cpu": "x"}, versions={})


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "r.sqlite") as s:
        s.run_id = s.begin_run("test", "quick", "abc", "m1", {}, {}, {})
        yield s


def claim(measure, tolerance, unit="×", paper_value="1.21×–12.27×", **kw):
    m = claims.MeasurementSpec(label="l", measure=measure, tolerance=tolerance, **kw)
    return claims.Claim("c", "p", "s", "cmp", paper_value, (m,), unit), m


SPEEDUP = {"kind": "ratio", "metric": "time_s", "numerator": {"impl": "base"}, "denominator": {"impl": "new"},
           "pair_on": ["workload"], "aggregate": "range"}
RANGE = {"rule": "range", "low": 1.21, "high": 12.27}


def speedups(store, ratios):
    for i, ratio in enumerate(ratios):
        add(store, store.run_id, "base", float(ratio), workload=f"w{i}")
        add(store, store.run_id, "new", 1.0, workload=f"w{i}")


def test_a_range_with_members_on_both_sides_is_mixed_and_says_which(store, fresh_rng):
    wins = fresh_rng.uniform(1.5, 40.0, size=int(fresh_rng.integers(1, 4)))
    losses = fresh_rng.uniform(0.2, 0.95, size=int(fresh_rng.integers(1, 4)))
    speedups(store, [*wins, *losses])
    v = claims.judge(*claim(SPEEDUP, RANGE), store.latest())
    assert v.verdict == claims.MIXED
    on_side, off_side = v.reason.split("on the claim's side (above 1×): ", 1)[1].split("; not: ")
    assert on_side.count("×") == len(wins) and off_side.count("×") == len(losses)


def test_a_range_wholly_on_the_claims_side_but_outside_the_tolerance_is_direction_holds(store, fresh_rng):
    speedups(store, fresh_rng.uniform(13.0, 50.0, size=3))
    v = claims.judge(*claim(SPEEDUP, RANGE), store.latest())
    assert v.verdict == claims.DIRECTION_HOLDS and "outside it, but on the claim's side" in v.reason


def test_a_range_is_reproduced_only_when_every_member_is_within(store, fresh_rng):
    speedups(store, fresh_rng.uniform(1.3, 12.0, size=4))
    assert claims.judge(*claim(SPEEDUP, RANGE), store.latest()).verdict == claims.REPRODUCED
    add(store, store.run_id, "base", 20.0, workload="extra")
    add(store, store.run_id, "new", 1.0, workload="extra")
    assert claims.judge(*claim(SPEEDUP, RANGE), store.latest()).verdict == claims.DIRECTION_HOLDS


def test_up_to_claims_judge_only_their_extreme(store):
    speedups(store, [0.5, 4.0])
    measure = {**SPEEDUP, "aggregate": "max"}
    v = claims.judge(*claim(measure, {"rule": "factor", "target": 4.29, "factor": 1.5}), store.latest())
    assert v.verdict == claims.REPRODUCED


@pytest.mark.parametrize("zero_side", ["numerator", "denominator", "both"])
def test_a_ratio_with_a_zero_side_is_not_measurable_with_its_reason_never_a_number(store, zero_side):
    new_qps = 0.0 if zero_side in ("numerator", "both") else 1200.0
    base_qps = 0.0 if zero_side in ("denominator", "both") else 300.0
    add(store, store.run_id, "new", 0.001, metrics={"qps": new_qps, "unloaded_p99_s": 0.015})
    add(store, store.run_id, "base", 0.001, metrics={"qps": base_qps, "unloaded_p99_s": 0.015})
    measure = {"kind": "ratio", "metric": "qps", "numerator": {"impl": "new"}, "denominator": {"impl": "base"},
               "pair_on": ["workload"], "aggregate": "max",
               "zero_means": "met no load under the 10 ms bound: its unloaded p99 is {unloaded_p99_s}"}
    v = claims.judge(*claim(measure, {"rule": "factor", "target": 4.29, "factor": 1.5}), store.latest())
    assert v.verdict == claims.NOT_MEASURABLE and v.value == "" and not v.values
    assert "met no load under the 10 ms bound: its unloaded p99 is 15 ms" in v.reason
    assert "inf" not in v.reason


def test_a_zero_sided_pair_is_left_out_and_the_rest_judged(store):
    speedups(store, [3.0, 4.0])
    add(store, store.run_id, "base", 0.0, workload="broken")
    add(store, store.run_id, "new", 1.0, workload="broken")
    v = claims.judge(*claim(SPEEDUP, RANGE), store.latest())
    assert v.verdict == claims.REPRODUCED and v.values == (3.0, 4.0)
    assert any("broken" in note and "left out" in note for note in v.notes)


def test_a_failed_side_is_not_measurable_with_its_error(store):
    add(store, store.run_id, "new", 1.0)
    add(store, store.run_id, "base", None, failed="MemoryError: 80 GB")
    v = claims.judge(*claim(SPEEDUP, RANGE), store.latest(), store.failures())
    assert v.verdict == claims.NOT_MEASURABLE and "base on cpu (w) failed: MemoryError: 80 GB" in v.reason


@pytest.mark.parametrize("unit,value,tolerance,shown,stated", [
    ("%", 0.133, {"rule": "abs", "target": 0.92, "tol": 0.05}, "13.3%", "87%–97% (92% ± 5 points)"),
    ("s", 1.45, {"rule": "at_most", "value": 2.4}, "1.45 s", "at most 2.4 s"),
    ("fraction", 0.5, {"rule": "at_least", "value": 0.8}, "0.5 (fraction)", "at least 0.8 (fraction)"),
])
def test_values_and_tolerances_are_shown_in_the_papers_unit(store, unit, value, tolerance, shown, stated):
    add(store, store.run_id, "sim", 1.0, metrics={"figure": value})
    c, m = claim({"kind": "metric", "metric": "figure", "select": {"impl": "sim"}}, tolerance, unit=unit,
                 paper_value="about 92%", direction={"op": ">", "value": 0.0})
    v = claims.judge(c, m, store.latest())
    assert v.value == shown and stated in v.tolerance and stated in v.reason


def test_every_verdict_but_reproduced_carries_a_reason_from_the_numbers(store, fresh_rng):
    ratios = fresh_rng.uniform(0.1, 0.9, size=3)
    speedups(store, ratios)
    v = claims.judge(*claim(SPEEDUP, RANGE), store.latest())
    assert v.verdict == claims.NOT_REPRODUCED
    assert claims.format_values(list(ratios), "×", "range") in v.reason      # what was measured
    assert "1.21×–12.27×" in v.reason                                        # the paper's value and tolerance
    assert "not on the claim's side" in v.reason
    assert claims.judge(*claim(SPEEDUP, RANGE), []).reason.startswith("nothing stored yet")


def test_every_claim_in_the_file_has_a_unit_and_every_judged_figure_one_of_the_units():
    for c in claims.load():
        assert c.unit in claims.UNITS, c.id
        for m in c.measurements:
            assert claims.unit_of(c, m) in claims.UNITS, (c.id, m.label)


def test_a_claims_file_without_a_unit_is_refused_naming_the_claim(tmp_path):
    bad = tmp_path / "c.toml"
    bad.write_text('[[claims]]\nid = "x"\npaper = "p"\nsource = "s"\ncompares = "c"\npaper_value = "1"\n'
                   '[[claims.measurements]]\nlabel = "l"\nmeasure = { kind = "metric", select = { impl = "a" } }\n'
                   'tolerance = { rule = "at_least", value = 1 }\n')
    with pytest.raises(ValueError, match="claim x: unit must be one of"):
        claims.load(bad)


def test_a_baseline_the_real_library_beats_by_over_2x_is_flagged(store):
    # FAERY's BASELINE_STRENGTH pairs faiss-cpu with faiss_topk on the CPU, one query at a time.
    params = {"scenario": "single-stream", "k": 100, "batch": 1}
    for workload, ours, real in (("weak", 0.096, 0.012), ("fine", 0.010, 0.012)):
        add(store, store.run_id, "faiss_topk", ours, workload=workload, system="faery", **params)
        add(store, store.run_id, "faiss-cpu", real, workload=workload, system="faery", **params)
        add(store, store.run_id, "faery", 0.003, workload=workload, system="faery", **params)
    measure = {"kind": "ratio", "metric": "time_s", "numerator": {"impl": "faiss_topk"},
               "denominator": {"impl": "faery"}, "pair_on": ["workload", "k"], "aggregate": "range"}
    (v,) = claims.evaluate([claim(measure, RANGE)[0]], store.latest())
    (note,) = v.notes
    assert "weak baseline on weak: faiss-cpu is 8.0× faster than faiss_topk" in note


def test_recmine_claims_prints_a_header_counts_and_a_reason_on_every_verdict_but_reproduced(store, tmp_path):
    result = CliRunner().invoke(cli, ["claims", "--store", str(tmp_path / "none.sqlite")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    n = sum(len(c.measurements) for c in claims.load())
    assert lines[0].startswith(f"recmine claims: {n} measurements of {len(claims.load())} claims")
    assert re.fullmatch(r"(\S[^:]*: \d+ {0,2})+", lines[1].strip())
    assert "CLAIM / MEASUREMENT" in lines[3] and "REASON" in lines[3]
    for c in claims.load():  # paper values in full, wrapped but never cut
        start, stop = lines[3].index("PAPER VALUE"), lines[3].index("VALUE HERE")
        assert " ".join(c.paper_value.split()) in _column_text(lines, c.id, start, stop), c.id
    records = json.loads(CliRunner().invoke(cli, ["claims", "--store", str(tmp_path / "none.sqlite"),
                                                  "--json"]).output)
    assert len(records) == n
    for r in records:
        assert r["verdict"] == claims.REPRODUCED or r["reason"], r
        assert {"unit", "tolerance", "notes", "reproduce", "paper_value", "reason"} <= set(r)


def _column_text(lines, claim_id, start, stop):
    """The text of one column of a claim's block in `recmine claims`."""
    block, inside = [], False
    for line in lines:
        if line.startswith(claim_id + " "):
            inside, block = True, []
        elif inside and not line.strip():
            break
        if inside:
            block.append(line[start:stop].strip())
    return " ".join(w for w in block if w)
