"""Comparing two runs, and the regression gate.

`compare` marks each change significant or noise with a Mann-Whitney U test on
the raw samples plus a minimum effect size (pyperf's approach: a change must be
both unlikely under noise and large enough to matter).

The gate checks ratios, not times: each gated figure divides an implementation's
time by a reference measured in the same run on the same data, so a slower or
busier machine moves both and the ratio stays put.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness import registry
from harness.lifecycle import open_trial
from harness.store import Row, Store

MIN_EFFECT = 0.05          # changes under 5% are noise whatever the p-value
ALPHA = 0.05


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (normal approximation with tie correction)."""
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return 1.0
    pooled = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(pooled)
    i, tie_term = 0, 0.0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for t in range(i, j + 1):
            ranks[t] = (i + j) / 2 + 1
        tie_term += (j - i + 1) ** 3 - (j - i + 1)
        i = j + 1
    r1 = sum(r for r, (_, g) in zip(ranks, pooled) if g == 0)
    u = r1 - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return 1.0
    z = (abs(u - mean) - 0.5) / math.sqrt(var)
    return math.erfc(max(z, 0) / math.sqrt(2))


@dataclass(frozen=True)
class Change:
    experiment_id: str
    before: float
    after: float
    p_value: float
    timed: bool = True   # False for modelled/simulated figures: deterministic, no samples to test

    @property
    def ratio(self) -> float:
        return self.after / self.before

    @property
    def significant(self) -> bool:
        if not self.timed:
            return abs(self.ratio - 1) >= MIN_EFFECT
        return self.p_value < ALPHA and abs(self.ratio - 1) >= MIN_EFFECT

    @property
    def label(self) -> str:
        if not self.significant:
            return "noise" if self.timed else "unchanged"
        return "slower" if self.ratio > 1 else "faster"


def run_rows(store: Store, run_ref: str) -> dict[str, Row]:
    """The rows of a run, by experiment id; `run_ref` is a run id, a unique prefix, or 'latest'/'previous'."""
    runs = [r["run_id"] for r in store.runs()]
    runs_with_rows = [r for r in runs if store.latest(r)]
    if run_ref in ("latest", "previous"):
        pick = runs_with_rows[-1 if run_ref == "latest" else -2:] if runs_with_rows else []
        if len(pick) == 0 or (run_ref == "previous" and len(runs_with_rows) < 2):
            raise ValueError(f"the store {store.path} has no {run_ref} run with results")
        run_id = pick[0]
    else:
        found = [r for r in runs if r.startswith(run_ref)]
        if len(found) != 1:
            raise ValueError(f"run {run_ref!r} {'is ambiguous' if found else 'is not in'} the store {store.path}; "
                             f"runs: {', '.join(runs_with_rows[-10:]) or 'none'}")
        run_id = found[0]
    return {r["experiment_id"]: r for r in store.latest(run_id)}


def compare(before: dict[str, Row], after: dict[str, Row]) -> list[Change]:
    changes = []
    for exp_id in sorted(set(before) & set(after)):
        a, b = before[exp_id], after[exp_id]
        if a["value"] is None or b["value"] is None:
            continue
        changes.append(Change(exp_id, a["value"], b["value"], mann_whitney_p(a["samples"], b["samples"]),
                              timed=a["kind"] == "measured"))
    return changes


# ---------------------------------------------------------------------------- gate

@dataclass(frozen=True)
class GateFigure:
    name: str
    numerator: str      # experiment id
    denominator: str    # experiment id
    reference: float | None


@dataclass(frozen=True)
class GateResult:
    figure: GateFigure
    ratio: float
    limit: float | None

    @property
    def regressed(self) -> bool:
        return self.limit is not None and self.ratio > self.limit


def load_reference(path: str | os.PathLike) -> tuple[list[GateFigure], float]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no such reference file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON reference ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("figures", []), list):
        raise ValueError(f"{path}: expected an object with a list of \"figures\"")
    figures = []
    for i, f in enumerate(doc.get("figures", [])):
        if not isinstance(f, dict):
            raise ValueError(f"{path}: figure #{i} is not an object")
        for key in ("name", "numerator", "denominator"):
            if not isinstance(f.get(key), str):
                raise ValueError(f"{path}: figure #{i} lacks the text field {key!r}")
        if f.get("ratio") is not None and not isinstance(f["ratio"], (int, float)):
            raise ValueError(f"{path}: figure {f['name']!r}: ratio must be a number")
        figures.append(GateFigure(f["name"], f["numerator"], f["denominator"], f.get("ratio")))
    if not figures:
        raise ValueError(f"{path}: lists no gated figures")
    threshold = doc.get("threshold", 1.25)
    if not isinstance(threshold, (int, float)):
        raise ValueError(f"{path}: threshold must be a number")
    return figures, float(threshold)


def measure_ratios(figures: list[GateFigure], pairs: int = 15, min_time_s: float = 1.0) -> dict[str, float]:
    """Each figure's ratio: the median over interleaved (numerator, denominator) timings.

    Timing the two sides back to back, pair after pair, and taking the median of the
    per-pair ratios cancels slow drifts in the machine's load that would bias two
    separate measurements.
    """
    out = {}
    for f in figures:
        with open_trial(registry.get(f.numerator)) as num, open_trial(registry.get(f.denominator)) as den:
            for side in (num, den):
                _, result = side.timed_call()  # warm-up: compilation and caches stay out of the ratio
                side.check(result)  # a fast wrong answer must not pass the gate
            ratios: list[float] = []
            began = time.perf_counter()
            while len(ratios) < pairs or time.perf_counter() - began < min_time_s:
                ratios.append(num.timed_call()[0] / den.timed_call()[0])
        out[f.name] = statistics.median(ratios)
    return out


def gate(figures: list[GateFigure], ratios: dict[str, float], threshold: float) -> list[GateResult]:
    return [GateResult(f, ratios[f.name], None if f.reference is None else f.reference * threshold)
            for f in figures]


def run_gate(figures: list[GateFigure], threshold: float,
             on_remeasure: Callable[[list[GateFigure]], None] | None = None) -> list[GateResult]:
    """Measure every figure; re-measure those over their limit and keep the lower ratio of the two.

    A real regression shows in both measurements, a burst of load from a neighbour on a shared
    machine rarely does, so a figure fails only when it is over the limit twice.
    """
    ratios = measure_ratios(figures)
    suspects = [r.figure for r in gate(figures, ratios, threshold) if r.regressed]
    if suspects:
        if on_remeasure is not None:
            on_remeasure(suspects)
        again = measure_ratios(suspects)
        ratios.update({name: min(ratios[name], ratio) for name, ratio in again.items()})
    return gate(figures, ratios, threshold)


def write_reference(path: str | os.PathLike, figures: list[GateFigure], ratios: dict[str, float],
                    threshold: float, provenance: dict[str, Any]) -> None:
    doc = {"threshold": threshold, "provenance": provenance,
           "figures": [{"name": f.name, "numerator": f.numerator, "denominator": f.denominator,
                        "ratio": round(ratios[f.name], 4)} for f in figures]}
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: the old reference survives a failed write
