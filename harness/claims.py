"""Claims as data (claims.toml) and their verdicts against stored results.

A verdict is one of:
  reproduced          the value lies within the claim's tolerance (every value, for a range)
  mixed               a set of values, some on the claim's side and some not; the reason lists which
  direction holds     outside the tolerance, but every value (or the claimed average) on the claim's side
  not reproduced      neither
  not measured yet    nothing stored yet, though this machine could measure it
  not measurable here this machine (or this project) cannot measure it, or a ratio has a zero,
                      failed or infeasible side; the reason is given
Every verdict carries a one-line reason built from the numbers: what was measured, the paper's
value and the tolerance, in the claim's unit (×, %, s or fraction).
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any, Iterable

import devices
from harness import registry
from harness.registry import matches
from harness.store import Row
from harness.systems import BaselineStrength

CLAIMS_FILE = Path(__file__).with_name("claims.toml")

REPRODUCED = "reproduced"
MIXED = "mixed"
DIRECTION_HOLDS = "direction holds"
NOT_REPRODUCED = "not reproduced"
NOT_MEASURED = "not measured yet"
NOT_MEASURABLE = "not measurable here"
VERDICTS = (REPRODUCED, MIXED, DIRECTION_HOLDS, NOT_REPRODUCED, NOT_MEASURED, NOT_MEASURABLE)

# A unit says how a stored figure is shown: "%" figures are stored as fractions (0.92) and shown as
# percentages (92%); the others are shown as stored.
UNITS = ("×", "%", "s", "fraction")
_RULES = ("range", "factor", "at_least", "at_most", "abs", "hardware_bound")
_AGGREGATES = ("range", "median", "mean", "geomean", "min", "max")
# "max" and "min" claim an extreme ("up to 4.29×"), so only that member is judged; every other
# aggregate is judged on all of its members, and a split between the claim's side and the other is `mixed`.
_EXTREMES = ("max", "min")
_AGGREGATE_WORDS = {"range": "every value", "median": "the median", "mean": "the mean",
                    "geomean": "the geometric mean", "min": "the minimum", "max": "the maximum"}
# A baseline whose real counterpart is more than this many times faster is flagged as weak.
WEAK_BASELINE_FACTOR = 2.0


@dataclass(frozen=True)
class MeasurementSpec:
    """One way a claim is measured here: which stored figures, the tolerance, the claim's side."""

    label: str
    measure: dict[str, Any]
    tolerance: dict[str, Any]
    direction: dict[str, Any] = field(default_factory=lambda: {"op": ">", "value": 1.0})
    requires: dict[str, Any] = field(default_factory=dict)
    not_measurable: str = ""
    hardware_note: str = ""
    unit: str = ""          # "" : a ratio's "×", else its claim's unit


@dataclass(frozen=True)
class Claim:
    id: str
    paper: str
    source: str
    compares: str
    paper_value: str
    measurements: tuple[MeasurementSpec, ...]
    unit: str = ""          # the unit of the paper's value


@dataclass(frozen=True)
class Member:
    """One value of a measurement: a ratio of one numerator/denominator pair, or one row's figure."""

    label: str
    value: float
    rows: tuple[Row, ...]


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    measurement: MeasurementSpec
    verdict: str
    value: str              # the value measured here, in the claim's unit ("" when none)
    kind: str               # measured / modelled / simulated / "" when none
    reason: str = ""        # one line from the numbers (or why nothing can be measured)
    row_ids: tuple[int, ...] = ()
    values: tuple[float, ...] = ()
    unit: str = ""
    tolerance: str = ""     # the tolerance rule, stated in the unit
    notes: tuple[str, ...] = ()   # weak-baseline flags, pairs left out


def unit_of(claim: Claim, m: MeasurementSpec) -> str:
    return m.unit or ("×" if m.measure.get("kind") == "ratio" else claim.unit)


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
            ms.append(MeasurementSpec(label=m["label"], measure=m["measure"], tolerance=m["tolerance"],
                                  direction=m.get("direction", {"op": ">", "value": 1.0}),
                                  requires=m.get("requires", {}), not_measurable=m.get("not_measurable", ""),
                                  hardware_note=m.get("hardware_note", ""), unit=m.get("unit", "")))
        if raw.get("unit") not in UNITS:
            raise ValueError(f"{where}: unit must be one of {', '.join(UNITS)} (the unit of the paper's value)")
        claims.append(Claim(raw["id"], raw["paper"], raw["source"], raw["compares"], raw["paper_value"],
                            tuple(ms), raw["unit"]))
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
    for field_name in needed:
        if not isinstance(measure.get(field_name), dict):
            raise ValueError(f"{where}: measure.{field_name} must be a table of field = value selectors")
    if measure.get("aggregate", "median") not in _AGGREGATES:
        raise ValueError(f"{where}: measure.aggregate must be one of {_AGGREGATES}")
    if tol.get("rule") not in _RULES:
        raise ValueError(f"{where}: tolerance.rule must be one of {_RULES}")
    for field_name in _RULE_FIELDS[tol["rule"]]:
        if not isinstance(tol.get(field_name), (int, float)):
            raise ValueError(f"{where}: tolerance rule {tol['rule']!r} needs a number {field_name!r}")
    if direction.get("op") not in (">", "<") or not isinstance(direction.get("value"), (int, float)):
        raise ValueError(f"{where}: direction must be {{ op = \">\" or \"<\", value = a number }}")
    if m.get("unit", "×") not in UNITS:
        raise ValueError(f"{where}: unit must be one of {', '.join(UNITS)}")


# ---------------------------------------------------------------------------- evaluation

def evaluate(claims: Iterable[Claim], rows: list[Row], failures: Iterable[Row] = ()) -> list[Verdict]:
    """Every measurement's verdict; `failures` (failed rows) explain a side that never produced a figure."""
    weak = weak_baselines(rows)
    failures = list(failures)
    return [judge(c, m, rows, failures, weak) for c in claims for m in c.measurements]


def judge(claim: Claim, m: MeasurementSpec, rows: list[Row], failures: Iterable[Row] = (),
          weak: dict[int, str] | None = None) -> Verdict:
    unit = unit_of(claim, m)
    tolerance = tolerance_text(m, unit)
    blank = dict(unit=unit, tolerance=tolerance)
    if m.not_measurable:
        return Verdict(claim, m, NOT_MEASURABLE, "", "", m.not_measurable, **blank)
    members, left_out = _members(m.measure, rows)
    notes = tuple(f"left out, not measurable here: {why}" for why in left_out)
    if not members:
        reason = (_unmet_requirement(m.requires) or _failed_side(m.measure, failures)
                  or _summarise(left_out) or _infeasible_side(m.measure))
        if reason:
            return Verdict(claim, m, NOT_MEASURABLE, "", "", reason, **blank)
        return Verdict(claim, m, NOT_MEASURED, "", "",
                       f"nothing stored yet: `{reproduce_command(claim)}` measures it", **blank)
    used = [r for member in members for r in member.rows]
    values = [member.value for member in members]
    kind = _kind(used)
    aggregate = m.measure.get("aggregate", "median")
    shown = format_values(values, unit, aggregate)
    ids = tuple(sorted({r["id"] for r in used}))
    notes += _weak_notes(members, weak if weak is not None else weak_baselines(rows))
    judged = dict(row_ids=ids, values=tuple(values), unit=unit, tolerance=tolerance, notes=notes)
    measured = f"here {shown} ({kind}) against the paper's “{claim.paper_value}”"
    if m.tolerance["rule"] == "hardware_bound":
        return Verdict(claim, m, NOT_MEASURABLE, shown, kind,
                       f"{measured}; {tolerance}", **judged)
    central = _central(values, aggregate)
    side = direction_text(m.direction, unit)
    on_side = [member for member in members if _direction(member.value, m.direction)]
    off_side = [member for member in members if member not in on_side]
    if aggregate == "range":
        within = all(_within(v, m.tolerance) for v in values)
    else:
        within = _within(central, m.tolerance)
    if within:
        verdict, why = REPRODUCED, "within it"
    elif aggregate not in _EXTREMES and on_side and off_side:
        verdict = MIXED
        why = (f"on the claim's side ({side}): {_list(on_side, unit)}; not: {_list(off_side, unit)}")
    elif (not off_side) if aggregate == "range" else _direction(central, m.direction):
        verdict, why = DIRECTION_HOLDS, f"outside it, but on the claim's side ({side})"
    else:
        verdict, why = NOT_REPRODUCED, f"outside it, and not on the claim's side ({side}) either"
    return Verdict(claim, m, verdict, shown, kind, f"{measured}; {tolerance}: {why}", **judged)


# ---------------------------------------------------------------------------- values

def values(measure: dict[str, Any], rows: list[Row]) -> tuple[list[float], list[Row]]:
    """The values a measure spec yields from stored rows, and the rows they came from."""
    members, _ = _members(measure, rows)
    return [m.value for m in members], [r for m in members for r in m.rows]


def _members(measure: dict[str, Any], rows: list[Row]) -> tuple[list[Member], list[str]]:
    """The measure's members, and why each pair that has no finite, non-zero ratio was left out."""
    metric = measure.get("metric", "time_s")
    if measure["kind"] == "metric":
        picked = [r for r in rows if matches(r.fields(), measure["select"]) and r.metric(metric) is not None]
        varying = _varying_params(picked)
        members = [Member(_row_label(r, varying), r.metric(metric), (r,)) for r in picked]
        # An undefined figure (a cache hit ratio with no WAN traffic) is left out, never judged.
        left_out = [f"{m.label}: {metric} is undefined (NaN)" for m in members if math.isnan(m.value)]
        return [m for m in members if not math.isnan(m.value)], left_out
    pair_on = measure.get("pair_on", [])
    # Ratios pair rows measured on the same machine and commit: a speedup is a ratio of two
    # things measured on one machine, never across machines.
    num = [r for r in rows if matches(r.fields(), measure["numerator"]) and r.metric(metric) is not None]
    den = [r for r in rows if matches(r.fields(), measure["denominator"]) and r.metric(metric) is not None]
    key = lambda r: (r["machine_id"], r["git_commit"], tuple(str(r.fields().get(f)) for f in pair_on))  # noqa: E731
    by_key: dict[tuple, list[Row]] = {}
    for d in den:
        by_key.setdefault(key(d), []).append(d)
    pairs = [(r, d) for r in num for d in by_key.get(key(r), []) if d["id"] != r["id"]]
    # Every numerator pairs with every denominator of its key (e.g. one GPU against 2, 4 and 8 GPUs):
    # the denominator's own parameters then tell the pairs apart.
    keyed = [f for f in pair_on if f in _varying_params([r for r, _ in pairs])]
    varying = sorted(_varying_params([d for _, d in pairs]) - set(pair_on))
    members, left_out = [], []
    for r, d in pairs:
        label = ", ".join([_field_label(r, f) for f in keyed] + [_field_label(d, f) for f in varying]) or r["workload"]
        top, bottom = r.metric(metric), d.metric(metric)
        zero = [row for row, v in ((r, top), (d, bottom)) if v == 0 or not math.isfinite(v)]
        if zero:
            # A ratio with a zero side (no QPS meets the latency bound) is no finding: it is left out, with why.
            left_out.append(f"{label}: " + "; ".join(_zero_reason(row, metric, measure) for row in zero))
            continue
        ratio = top / bottom
        if "per" in measure:  # e.g. per = "gpus": a speedup per device, i.e. parallel efficiency
            ratio /= float(d.fields()[measure["per"]])
        members.append(Member(label, ratio, (r, d)))
    return members, left_out


def _zero_reason(row: Row, metric: str, measure: dict[str, Any]) -> str:
    """`measure.zero_means` (e.g. "met no load under the 10 ms bound: its unloaded p99 is {unloaded_p99_s}"),
    with the row's figures filled in; else the figure itself."""
    who = f"{row['impl']} on {row['backend']}"
    text = measure.get("zero_means")
    if not text:
        return f"{who} has {metric} = {row.metric(metric)}"

    def figure(match: re.Match) -> str:
        v = row.metric(match.group(1))
        return "unknown" if v is None else (format_seconds(v) if match.group(1).endswith("_s") else _number(v))
    return f"{who} " + re.sub(r"{(\w+)}", figure, text)


def _varying_params(rows: list[Row]) -> set[str]:
    names = {k for r in rows for k in ("workload", *r["params"])}
    return {k for k in names if len({str(r.fields().get(k)) for r in rows}) > 1}


def _row_label(row: Row, varying: set[str]) -> str:
    return ", ".join(_field_label(row, f) for f in sorted(varying, key=lambda f: (f != "workload", f))) or row["workload"]


def _field_label(row: Row, name: str) -> str:
    value = row.fields().get(name)
    return str(value) if name == "workload" else f"{name}={value}"


def _summarise(reasons: list[str]) -> str:
    if not reasons:
        return ""
    more = f" (and {len(reasons) - 2} more)" if len(reasons) > 2 else ""
    return "; ".join(reasons[:2]) + more


def _sides(measure: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    if measure["kind"] == "metric":
        return [("selected", measure["select"])]
    return [("numerator", measure["numerator"]), ("denominator", measure["denominator"])]


def _failed_side(measure: dict[str, Any], failures: Iterable[Row]) -> str:
    for _, selector in _sides(measure):
        for f in failures:
            if matches(f.fields(), selector):
                return f"{f['impl']} on {f['backend']} ({f['workload']}) failed: {f['error']}"
    return ""


def _infeasible_side(measure: dict[str, Any]) -> str:
    """Why a side's experiments cannot run on this machine, if none of them can."""
    for _, selector in _sides(measure):
        exps = [e for e in registry.experiments() if matches(e.fields(), selector)]
        runnable = [devices.can_run(e.backend, e.requires) for e in exps]
        if exps and not any(ok for ok, _ in runnable):
            return f"{exps[0].impl} on {exps[0].backend} cannot run here: {runnable[0][1]}"
    return ""


def _unmet_requirement(req: dict[str, Any]) -> str:
    if "backend" in req:
        info = devices.probe(req["backend"])
        if not info.available:
            return f"no {req['backend'].upper() if req['backend'] == 'gpu' else req['backend']}: {info.reason}"
    if "gpus" in req and devices.gpu_count() < int(req["gpus"]):
        return f"needs {req['gpus']} or more GPUs; this machine has {devices.gpu_count()}"
    return ""


def _kind(rows: list[Row]) -> str:
    kinds = {r["kind"] for r in rows}
    if kinds == {"measured"}:
        return "measured"
    return " + ".join(sorted(kinds))


# ---------------------------------------------------------------------------- weak baselines

def baseline_strength_pairs(rows: list[Row]) -> list[tuple[str, BaselineStrength, list[Member]]]:
    """Each system's baseline_strength specs with their pairs: the real library's time / our baseline's.

    Above 1, our baseline is faster than the real thing; a speedup over a baseline
    is only as honest as this ratio is close to or above 1.
    """
    out = []
    for name, system in registry.declared_systems().items():
        for spec in system.baseline_strength:
            measure = {"kind": "ratio", "metric": "time_s", "numerator": dict(spec.real),
                       "denominator": dict(spec.ours), "pair_on": list(spec.pair_on)}
            out.append((name, spec, _members(measure, rows)[0]))
    return out


def weak_baselines(rows: list[Row]) -> dict[int, str]:
    """Row id of our baseline -> why it is weak, where the real library is over WEAK_BASELINE_FACTOR× faster."""
    weak = {}
    for _, spec, members in baseline_strength_pairs(rows):
        for member in members:
            if member.value < 1 / WEAK_BASELINE_FACTOR:
                real, ours = member.rows
                weak[ours["id"]] = (f"weak baseline on {member.label}: {real['impl']} is {1 / member.value:.1f}× "
                                    f"faster than {ours['impl']} on {ours['backend']} on the same data "
                                    f"(rows {real['id']}, {ours['id']})")
    return weak


def _weak_notes(members: list[Member], weak: dict[int, str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(weak[r["id"]] for member in members for r in member.rows if r["id"] in weak))


# ---------------------------------------------------------------------------- rules

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


def _within(value: float, tol: dict[str, Any]) -> bool:
    low, high = tolerance_bounds(tol)
    return low <= value <= high


def tolerance_bounds(tol: dict[str, Any]) -> tuple[float, float]:
    """The closed interval a value must lie in to be reproduced."""
    rule = tol["rule"]
    if rule == "range":
        return tol["low"], tol["high"]
    if rule == "factor":
        return tol["target"] / tol["factor"], tol["target"] * tol["factor"]
    if rule == "at_least":
        return tol["value"], math.inf
    if rule == "at_most":
        return -math.inf, tol["value"]
    if rule == "abs":
        return tol["target"] - tol["tol"], tol["target"] + tol["tol"]
    raise AssertionError(rule)


def _direction(value: float, direction: dict[str, Any]) -> bool:
    return value > direction["value"] if direction["op"] == ">" else value < direction["value"]


# ---------------------------------------------------------------------------- wording, in the claim's unit

def tolerance_text(m: MeasurementSpec, unit: str) -> str:
    """The tolerance rule in the claim's unit, e.g. "reproduced when every value lies within 1.21×–12.27×"."""
    tol = m.tolerance
    if tol["rule"] == "hardware_bound":
        return "an absolute figure from the paper's hardware: shown beside it, not judged"
    subject = _AGGREGATE_WORDS[m.measure.get("aggregate", "median")]
    fmt = lambda v: format_value(v, unit, digits=4)  # noqa: E731  the paper's figures keep their digits
    low, high = tolerance_bounds(tol)
    if tol["rule"] == "at_least":
        return f"reproduced when {subject} is at least {fmt(low)}"
    if tol["rule"] == "at_most":
        return f"reproduced when {subject} is at most {fmt(high)}"
    if tol["rule"] == "factor":
        how = f" ({fmt(tol['target'])} within a factor of {tol['factor']:g})"
    elif tol["rule"] == "abs":
        spread = f"{100 * tol['tol']:.3g} points" if unit == "%" else fmt(tol["tol"])
        how = f" ({fmt(tol['target'])} ± {spread})"
    else:
        how = ""
    return f"reproduced when {subject} lies within {fmt(low)}–{fmt(high)}{how}"


def direction_text(direction: dict[str, Any], unit: str) -> str:
    return f"{'above' if direction['op'] == '>' else 'below'} {format_value(direction['value'], unit)}"


def format_values(values: list[float], unit: str, aggregate: str) -> str:
    fmt = lambda v: format_value(v, unit)  # noqa: E731
    if len(values) == 1:
        return fmt(values[0])
    if aggregate == "range":
        return f"{fmt(min(values))}–{fmt(max(values))} (n={len(values)})"
    return f"{fmt(_central(values, aggregate))} ({aggregate} of {len(values)})"


def format_value(v: float, unit: str, digits: int = 3) -> str:
    """A figure in a claim's unit: 3.2×, 13.3% (stored as 0.133), 2.4 s, 0.8 (fraction)."""
    if unit == "%":  # one more digit: 99.97% is not 100%
        return f"{_number(100 * v, digits + 1)}%"
    if unit == "×":
        return f"{_number(v, digits)}×"
    if unit == "s":
        return f"{_number(v, digits)} s"
    if unit == "fraction":
        return f"{_number(v, digits)} (fraction)"
    return _number(v, digits)


def format_seconds(v: float) -> str:
    """A time in the unit a reader expects: 15 ms rather than 0.015 s."""
    if v == 0 or abs(v) >= 1:
        return f"{_number(v)} s"
    if abs(v) >= 1e-3:
        return f"{_number(v * 1e3)} ms"
    return f"{_number(v * 1e6)} µs"


def _list(members: list[Member], unit: str) -> str:
    return ", ".join(f"{m.label} {format_value(m.value, unit)}" for m in members)


def _number(v: float, digits: int = 3) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 0.01:
        return f"{v:.{digits}g}"
    return f"{v:.{digits - 1}e}"


# ---------------------------------------------------------------------------- the experiments behind a claim

def selectors(claim: Claim) -> list[dict[str, Any]]:
    """Every selector of the claim's measurable measurements."""
    return [s for m in claim.measurements if not m.not_measurable for _, s in _sides(m.measure)]


def experiments_for(claim: Claim, tier: str | None = None) -> list[registry.Experiment]:
    """The registered experiments (of a tier) that any of the claim's measurements reads."""
    wanted = selectors(claim)
    return [e for e in registry.experiments(tier=tier) if any(matches(e.fields(), s) for s in wanted)]


def reproduce_command(claim: Claim) -> str:
    """The command that measures the claim's experiments: the quick tier where it has any."""
    if not selectors(claim):
        return ""
    tier = "quick" if experiments_for(claim, "quick") else "full"
    return f"recmine reproduce --{tier} --claim {claim.id}"


def get(claim_id: str, path: Path = CLAIMS_FILE) -> Claim:
    for c in load(path):
        if c.id == claim_id:
            return c
    raise ValueError(f"unknown claim {claim_id!r}; `recmine claims` lists them all")


# ---------------------------------------------------------------------------- one record per verdict

def record(v: Verdict) -> dict[str, Any]:
    """A verdict's fields, as `recmine claims --json` prints them and the reports show them."""
    return {"claim": v.claim.id, "paper": v.claim.paper, "source": v.claim.source, "compares": v.claim.compares,
            "paper_value": v.claim.paper_value, "unit": v.unit, "measurement": v.measurement.label,
            "value": v.value, "kind": v.kind, "verdict": v.verdict, "reason": v.reason, "tolerance": v.tolerance,
            "notes": list(v.notes), "hardware_note": v.measurement.hardware_note, "rows": list(v.row_ids),
            "reproduce": reproduce_command(v.claim)}


def counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    verdicts = list(verdicts)
    return {name: sum(1 for v in verdicts if v.verdict == name) for name in VERDICTS}
