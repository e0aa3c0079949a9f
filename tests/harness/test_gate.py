"""The regression gate: its inputs are checked, and it fails on a real 1.5x slowdown of FAERY-CPU."""

from __future__ import annotations

import json
import time
from pathlib import Path

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
    ("ratio", "NaN", '"ratio" must be a finite number above 0'),
    ("ratio", "0", '"ratio" must be a finite number above 0'),
    ("ratio", "-1.5", '"ratio" must be a finite number above 0'),
])
def test_reference_values_that_would_let_anything_pass_are_refused(tmp_path, field, value, message):
    figure = {"name": "x", "numerator": "a", "denominator": "b", "ratio": 1.0}
    doc = {"threshold": 1.25, "figures": [figure]}
    (figure if field == "ratio" else doc)[field] = "@"
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(doc).replace('"@"', value))
    with pytest.raises(ValueError, match=message) as err:
        compare.load_reference(path)
    assert str(path) in str(err.value)


def test_the_shipped_reference_is_valid_and_gates_only_like_for_like():
    figures, threshold = compare.load_reference(REFERENCE)
    assert threshold > 1 and all(f.reference is not None for f in figures)
    for f in figures:  # a numba kernel over a numba floor: never a BLAS call against a numba kernel
        assert "floor" in f.denominator and f.numerator.split("/")[2] == f.denominator.split("/")[2] == "cpu"


def test_the_gate_fails_on_a_planted_1_5x_slowdown_of_faery_cpu(tmp_path, monkeypatch):
    from impls.faery.index import Index

    figures, _ = compare.load_reference(REFERENCE)
    faery = [f for f in figures if f.numerator.startswith("faery/faery/cpu/gaussian-100k")]
    assert faery
    reference = tmp_path / "reference.json"
    compare.write_reference(reference, faery, compare.measure_ratios(faery), 1.25, {"machine": "this test's"})
    figures, threshold = compare.load_reference(reference)

    search = Index.search

    def one_and_a_half_times_slower(self, queries, k):
        began = time.perf_counter()
        out = search(self, queries, k)
        spent = time.perf_counter() - began
        while time.perf_counter() - began < 1.5 * spent:  # busy, as real work would be
            pass
        return out

    monkeypatch.setattr(Index, "search", one_and_a_half_times_slower)
    results = compare.run_gate(figures, threshold)
    assert all(r.regressed for r in results), [(r.figure.name, r.ratio, r.limit) for r in results]
