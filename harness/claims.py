"""Claims as data (claims.toml) and their verdicts against stored results.

A verdict is one of:
  reproduced          the value lies within the claim's tolerance
  direction holds     outside the tolerance, but on the claim's side (a speedup above 1 by default)
  not reproduced      neither
  not measured yet    nothing stored yet, though this machine could measure it
  not measurable here this machine (or this project) cannot measure it; the reason is given
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Iterable

from harness import backends
from harness.registry import matches
from harness.store import Row

CLAIMS_FILE = Path(__file__).with_name("claims.toml")

REPRODUCED = "reproduced"
DIRECTION_HOLDS = "direction holds"
NOT_REPRODUCED = "not reproduced"
NOT_MEASURED = "not measured yet"
NOT_MEASURABLE = "not measurable here"
VERDICTS = (REPRODUCED, DIRECTION_HOLDS, NOT_REPRODUCED, NOT_MEASURED, NOT_MEASURABLE)

_RULES = ("range", "factor", "at_least", "at_most", "abs", "hardware_bound")
_AGGREGATES = ("range", "median", "mean", "geomean", "min", "max")


@dataclass(frozen=True)
class Measurement:
    label: str
    measure: dict[str, Any]
    tolerance: dict[str, Any]
    direction: dict[str, Any] = field(default_factory=lambda: {"op": ">", "value": 1.0})
    requires: dict[str, Any] = field(default_factory=dict)
    not_measurable: str = ""
    hardware_note: str = ""


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    source: str
    compares: str
    paper_value: str
    measurements: tuple[Measurement, ...]


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    measurement: Measurement
    verdict: str
    value: str              # the value measured here, formatted ("" when none)
    kind: str               # measured / modelled / simulated / "" when none
    reason: str = ""        # for not measurable here
    row_ids: tuple[int, ...] = ()
    values: tuple[float, ...] = ()


def load(path: Path = CLAIMS_FILE) -> list[Claim]:
    """Read and validate the claims file; errors name the claim and the field."""
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    claims = []
    for i, raw in enumerate(doc.get("claims", [])):
        where = f"{path}: claim {raw.get('id', f'#{i}')}"
        for key in ("id", "paper", "source", "compares", "paper_value", "measurements"):
            if key not in raw:
                raise ValueError(f"{where}: missing field {key!r}")
        ms = []
        for j, m in enumerate(raw["measurements"]):
            _check_measurement(m, f"{where}, measurement #{j}")
            measure, tol = m["measure"], m["tolerance"]
            ms.append(Measurement(label=m["label"], measure=measure, tolerance=tol,
                                  direction=m.get("direction", {"op": ">", "value": 1.0}),
                                  requires=m.get("requires", {}), not_measurable=m.get("not_measurable", ""),
                                  hardware_note=m.get("hardware_note", "")))
        claims.append(Claim(raw["id"], raw["paper"], raw["source"], raw["compares"], raw["paper_value"], tuple(ms)))
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: a claim id is used twice")
    return claims


_RULE_FIELDS = {"range": ("low", "high"), "factor": ("target", "factor"), "at_least": ("value",),
                "at_most": ("value",), "abs": ("target", "tol"), "hardware_bound": ()}


def _check_measurement(m: dict[str, Any], where: str) -> None:
    """Every field a measurement's measure, tolerance and direction need, or ValueError naming it."""
    if "label" not in m:
        raise ValueError(f"{where}: missing field 'label'")
    measure, tol, direction = m.get("measure", {}), m.get("tolerance", {}), m.get("direction", {"op": ">", "value": 1})
    if measure.get("kind") not in ("ratio", "metric"):
        raise ValueError(f"{where}: measure.kind must be 'ratio' or 'metric'")
    needed = ("numerator", "denominator") if measure["kind"] == "ratio" else ("select",)
    for field in needed:
        if not isinstance(measure.get(field), dict):
            raise ValueError(f"{where}: measure.{field} must be a table of field = value selectors")
    if measure.get("aggregate", "median") not in _AGGREGATES:
        raise ValueError(f"{where}: measure.aggregate must be one of {_AGGREGATES}")
    if tol.get("rule") not in _RULES:
        raise ValueError(f"{where}: tolerance.rule must be one of {_RULES}")
    for field in _RULE_FIELDS[tol["rule"]]:
        if not isinstance(tol.get(field), (int, float)):
            raise ValueError(f"{where}: tolerance rule {tol['rule']!r} needs a number {field!r}")
    if direction.get("op") not in (">", "<") or not isinstance(direction.get("value"), (int, float)):
        raise ValueError(f"{where}: direction must be {{ op = \">\" or \"<\", value = a number }}")


# ---------------------------------------------------------------------------- evaluation

def evaluate(claims: Iterable[Claim], rows: list[Row]) -> list[Verdict]:
    return [judge(c, m, rows) for c in claims for m in c.measurements]


def judge(claim: Claim, m: Measurement, rows: list[Row]) -> Verdict:
    if m.not_measurable:
        return Verdict(claim, m, NOT_MEASURABLE, "", "", m.not_measurable)
    values, used = _values(m.measure, rows)
    if not values:
        missing = _unmet_requirement(m.requires)
        if missing:
            return Verdict(claim, m, NOT_MEASURABLE, "", "", missing)
        return Verdict(claim, m, NOT_MEASURED, "", "")
    kind = _kind(used)
    shown = _format(values, m.measure)
    ids = tuple(sorted(r["id"] for r in used))
    if m.tolerance["rule"] == "hardware_bound":
        return Verdict(claim, m, NOT_MEASURABLE, shown, kind,
                       "absolute figure from the paper's production hardware; the value here is shown, not judged",
                       ids, tuple(values))
    central = _central(values, m.measure.get("aggregate", "median"))
    if _within(values, central, m.tolerance):
        verdict = REPRODUCED
    elif _direction(central, m.direction):
        verdict = DIRECTION_HOLDS
    else:
        verdict = NOT_REPRODUCED
    return Verdict(claim, m, verdict, shown, kind, "", ids, tuple(values))


def _unmet_requirement(req: dict[str, Any]) -> str:
    if "backend" in req:
        info = backends.probe(req["backend"])
        if not info.available:
            return f"no {req['backend'].upper() if req['backend'] == 'gpu' else req['backend']}: {info.reason}"
    if "gpus" in req and backends.gpu_count() < int(req["gpus"]):
        return f"needs {req['gpus']} or more GPUs; this machine has {backends.gpu_count()}"
    return ""


def values(measure: dict[str, Any], rows: list[Row]) -> tuple[list[float], list[Row]]:
    """The values a measure spec yields from stored rows, and the rows they came from."""
    return _values(measure, rows)


def _values(measure: dict[str, Any], rows: list[Row]) -> tuple[list[float], list[Row]]:
    metric = measure.get("metric", "time_s")
    if measure["kind"] == "metric":
        picked = [r for r in rows if matches(r.fields(), measure["select"]) and r.metric(metric) is not None]
        return [r.metric(metric) for r in picked], picked
    pair_on = measure.get("pair_on", [])
    # Ratios pair rows measured on the same machine and commit: a speedup is a ratio of two
    # things measured on one machine, never across machines.
    num = [r for r in rows if matches(r.fields(), measure["numerator"]) and r.metric(metric) is not None]
    den = [r for r in rows if matches(r.fields(), measure["denominator"]) and r.metric(metric) is not None]
    key = lambda r: (r["machine_id"], r["git_commit"], tuple(str(r.fields().get(f)) for f in pair_on))
    by_key: dict[tuple, list[Row]] = {}
    for d in den:
        by_key.setdefault(key(d), []).append(d)
    values, used = [], []
    # Every numerator pairs with every denominator of its key (e.g. one GPU against 2, 4 and 8 GPUs).
    for r, d in ((r, d) for r in num for d in by_key.get(key(r), [])):
        if d["id"] != r["id"]:
            top, bottom = r.metric(metric), d.metric(metric)
            if bottom == 0 and top == 0:
                continue  # neither side reached the figure (e.g. no QPS meets the latency bound): no ratio
            # A zero denominator with a positive numerator (the baseline meets a bound at no rate) is an
            # unbounded ratio: on the claim's side, never within a finite tolerance.
            ratio = math.inf if bottom == 0 else top / bottom
            if "per" in measure:  # e.g. per = "gpus": a speedup per device, i.e. parallel efficiency
                ratio /= float(d.fields()[measure["per"]])
            values.append(ratio)
            used += [r, d]
    return values, used


def _kind(rows: list[Row]) -> str:
    kinds = {r["kind"] for r in rows}
    if kinds == {"measured"}:
        return "measured"
    return " + ".join(sorted(kinds))


def _central(values: list[float], aggregate: str) -> float:
    if aggregate == "geomean":
        return math.exp(sum(math.log(v) for v in values) / len(values)) if all(v > 0 for v in values) else median(values)
    if aggregate == "mean":
        return sum(values) / len(values)
    if aggregate == "min":
        return min(values)
    if aggregate == "max":
        return max(values)
    return median(values)


def _within(values: list[float], central: float, tol: dict[str, Any]) -> bool:
    rule = tol["rule"]
    if rule == "range":
        return all(tol["low"] <= v <= tol["high"] for v in values)
    if rule == "factor":
        return tol["target"] / tol["factor"] <= central <= tol["target"] * tol["factor"]
    if rule == "at_least":
        return central >= tol["value"]
    if rule == "at_most":
        return central <= tol["value"]
    if rule == "abs":
        return abs(central - tol["target"]) <= tol["tol"]
    raise AssertionError(rule)


def _direction(central: float, direction: dict[str, Any]) -> bool:
    return central > direction["value"] if direction["op"] == ">" else central < direction["value"]


def _format(values: list[float], measure: dict[str, Any]) -> str:
    ratio = measure["kind"] == "ratio"
    fmt = (lambda v: f"{v:.2f}×") if ratio else _fmt_number
    aggregate = measure.get("aggregate", "median")
    if len(values) == 1:
        return fmt(values[0])
    if aggregate == "range":
        return f"{fmt(min(values))}–{fmt(max(values))} (n={len(values)})"
    return f"{fmt(_central(values, aggregate))} ({aggregate} of {len(values)})"


def _fmt_number(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 0.01:
        return f"{v:.3g}"
    return f"{v:.2e}"
