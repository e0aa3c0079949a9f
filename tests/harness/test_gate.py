"""The regression gate: its inputs are checked, and its rule.

That it fails on a real slowdown is timed, so it is no unit test: CI runs `ci/planted_gate.py`
(FAERY-CPU planted 2x slower) after the gate, and ci/README.md records the 1.5x case.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from harness import compare
from harness.cli import cli

REFERENCE = Path(__file__).resolve().parents[2] / "ci" / "reference.json"


@pytest.mark.parametrize("threshold", ["nan", "inf", "1", "0", "-2"])
def test_thresholds_that_could_never_fail_or_always_fail_are_refused(threshold):
    result = CliRunner().invoke(cli, ["gate", "--threshold", threshold])
    assert result.exit_code == 2
    assert "--threshold must be a finite number above 1" in result.output


@pytest.mark.parametrize("field, value, message", [
    ("threshold", "NaN", '"threshold" must be a finite number above 1'),
    ("threshold", "Infinity", '"threshold" must be a finite number above 1'),
    ("threshold", "1", '"threshold" must be a finite number above 1'),
    ("ratio", "NaN", '"ratios" for \'a CPU\' must be a finite number above 0'),
    ("ratio", "0", '"ratios" for \'a CPU\' must be a finite number above 0'),
    ("ratio", "-1.5", '"ratios" for \'a CPU\' must be a finite number above 0'),
])
def test_reference_values_that_would_let_anything_pass_are_refused(tmp_path, field, value, message):
    figure = {"name": "x", "numerator": "a", "denominator": "b", "ratios": {"a CPU": 1.0}}
    doc = {"threshold": 1.25, "figures": [figure]}
    if field == "ratio":
        figure["ratios"]["a CPU"] = "@"
    else:
        doc[field] = "@"
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(doc).replace('"@"', value))
    with pytest.raises(ValueError, match=message) as err:
        compare.load_reference(path)
    assert str(path) in str(err.value)


def test_a_figure_over_several_floors_divides_by_their_geometric_mean(tmp_path, monkeypatch):
    path = tmp_path / "reference.json"
    path.write_text(json.dumps({"figures": [{"name": "x", "numerator": "impl", "denominator": ["memory", "compute"],
                                             "ratios": {"a CPU": 1.5}}]}))
    [figure], _ = compare.load_reference(path, cpu="a CPU")
    assert figure.denominators == ("memory", "compute")
    seconds = {"impl": 6.0, "memory": 2.0, "compute": 8.0}

    class Side:
        def __init__(self, name):
            self.name = name

        def timed_call(self):
            return seconds[self.name], None

        def check(self, result):
            pass

    monkeypatch.setattr(compare.registry, "get", lambda name: SimpleNamespace(name=name, workload="w"))
    monkeypatch.setattr(compare, "fresh_workload", lambda name: None)
    monkeypatch.setattr(compare, "open_trial", lambda exp, data: nullcontext(Side(exp.name)))
    ratios = compare.measure_ratios([figure], setups=2, min_rounds=2, min_time_s=0)
    assert ratios == {"x": pytest.approx(1.5)}  # 6 / sqrt(2 x 8)
    single = compare.GateFigure("y", "impl", ("memory",), None)
    compare.write_reference(path, [figure, single], {"x": 1.5, "y": 0.5}, 1.25, "a CPU", {})
    # a list stays a list, and one denominator is written back as the plain id an older file holds
    assert [f["denominator"] for f in json.loads(path.read_text())["figures"]] == [["memory", "compute"], "memory"]
    with pytest.raises(ValueError, match="non-empty tuple of experiment ids"):
        compare.GateFigure("z", "impl", "memory", None)
    for bad in ([], [1], 7):
        path.write_text(json.dumps({"figures": [{"name": "x", "numerator": "impl", "denominator": bad}]}))
        with pytest.raises(ValueError, match=r'"denominator" must be an experiment id or a list of them'):
            compare.load_reference(path)


def test_the_shipped_reference_is_valid_and_gates_only_like_for_like():
    figures, threshold = compare.load_reference(REFERENCE)
    assert threshold > 1 and all(f.ratios for f in figures)   # each recorded on some CPU kind (this one may have none)
    # harness.floors' kernels
    plain_numba = {"read-floor", "score-scan", "resident-scan", "adjacency-floor", "plain-triangles"}
    for f in figures:  # a numba kernel over plain numba kernels: never a BLAS call against a numba kernel
        assert f.numerator.split("/")[2] == "cpu" and f.denominators
        for denominator in f.denominators:
            assert denominator.split("/")[1] in plain_numba and denominator.split("/")[2] == "cpu"


def test_a_figure_fails_only_when_it_is_over_its_limit_in_two_measurements_in_a_row(monkeypatch):
    figures = [compare.GateFigure("steady", "n1", ("d1",), 1.0), compare.GateFigure("burst", "n2", ("d2",), 1.0),
               compare.GateFigure("slower", "n3", ("d3",), 1.0)]
    readings = iter([{"steady": 1.1, "burst": 1.4, "slower": 1.5},   # the first measurement of every figure
                     {"burst": 1.1, "slower": 1.45}])                 # the re-measure of those over 1.25
    measured: list[list[str]] = []

    def measure(figs):
        measured.append([f.name for f in figs])
        return next(readings)

    monkeypatch.setattr(compare, "measure_ratios", measure)
    results = {r.figure.name: r for r in compare.run_gate(figures, 1.25)}
    assert measured == [["steady", "burst", "slower"], ["burst", "slower"]]
    assert [name for name, r in results.items() if r.regressed] == ["slower"]
    assert results["burst"].ratio == 1.1 and results["slower"].ratio == 1.45


def test_each_cpu_kind_keeps_its_own_reference_and_an_unknown_one_is_not_judged(tmp_path):
    reference = tmp_path / "reference.json"
    figure = compare.GateFigure("x", "num", ("den",), None)
    compare.write_reference(reference, [figure], {"x": 2.0}, 1.25, "CPU A", {"commit": "c1"})
    [figure], _ = compare.load_reference(reference, cpu="CPU A")
    compare.write_reference(reference, [figure], {"x": 3.0}, 1.25, "CPU B", {"commit": "c2"})
    doc = json.loads(reference.read_text())
    assert doc["figures"][0]["ratios"] == {"CPU A": 2.0, "CPU B": 3.0}
    assert set(doc["provenance"]) == {"CPU A", "CPU B"}
    [on_a], _ = compare.load_reference(reference, cpu="CPU A")
    [on_b], _ = compare.load_reference(reference, cpu="CPU B")
    [on_new], _ = compare.load_reference(reference, cpu="CPU C")
    assert (on_a.reference, on_b.reference, on_new.reference) == (2.0, 3.0, None)
    # a new kind's ratio may sit above every recorded one (FAERY-CPU's: 2.62, 2.65, then 3.68)
    [result] = compare.gate([on_new], {"x": 5.0}, 1.25)
    assert result.limit is None and not result.regressed
