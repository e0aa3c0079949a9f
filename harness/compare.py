"""Comparing two runs, and the regression gate.

`compare` marks a timed change significant only when it is larger than the noise
between runs and the two runs' samples are told apart (asv's rule: a factor plus a
test).  The within-run test alone cannot see a machine-state shift between runs:
two runs of one commit minutes apart differ by more than their own spreads suggest.

- The noise factor F of an experiment is its run-to-run spread on this machine, the
  largest of three estimates, never below MIN_FACTOR:
  - within the two runs: each times its experiment in several trial setups (the data
    copied afresh, the trial rebuilt and warmed up again; `harness.measure.Settings`), as
    pyperf times in several processes.  sigma is the pooled spread of the setups' log
    medians about their run's mean; a run's median pools two setups or more, so two runs'
    medians differ by about sigma, and F = exp(3 sigma);
  - from history: exp(3 sigma) of the log medians of its earlier runs (sigma from the
    median absolute deviation, robust to an odd slow run), once it has three or more;
  - from its neighbours: exp(3 sigma) of the log ratios of the NEIGHBOURS other timed
    experiments nearest it in duration, in the same two runs (sigma from the median absolute
    deviation about their median, so a change to a minority of them does not widen it, and a
    shift of them all does not either).  Between two runs the machine's state moves
    experiments of a similar length by different amounts (on a 2-core VM, short ones by
    1.2-1.4x while their setups within each run agree); the others, most of them unchanged,
    show how far.  It needs MIN_NEIGHBOURS timed experiments in the comparison.
- Significant: the ratio of medians is above F or below 1/F, and the samples are told
  apart: a Mann-Whitney U test at p < ALPHA when both runs have at least 4 samples
  (fewer cannot reach it), otherwise every sample of one run beyond every sample of the other.
- Modelled and simulated figures are deterministic: any change of MIN_EFFECT or more counts.

The gate checks ratios, not times: each gated figure divides an implementation's
time by a floor (or the geometric mean of several) measured in the same run on the
same data, so a slower or busier machine moves both and the ratio stays put.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from harness import machine, registry
from harness.lifecycle import fresh_workload, open_trial
from harness.store import Row, Store

MIN_EFFECT = 0.05          # deterministic (modelled, simulated) figures: a 5% change is a change
# Timed figures without history: on a quiet 2-core Xeon, 90% of the timed experiments of two quick
# runs of one commit moved less than 1.16x and 95% less than 1.40x (short, memory-bound ones most).
MIN_FACTOR = 1.2
ALPHA = 0.05
HISTORY_RUNS = 10          # earlier runs read for an experiment's run-to-run noise
MIN_HISTORY = 3
NEIGHBOURS = 24            # timed experiments nearest in duration that gauge one experiment's run-to-run noise
MIN_NEIGHBOURS = 12


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


def noise_factor(earlier_medians: list[float]) -> float:
    """An experiment's run-to-run noise on one machine, as a factor, from its medians in earlier runs."""
    logs = [math.log(m) for m in earlier_medians if m and m > 0]
    if len(logs) < MIN_HISTORY:
        return MIN_FACTOR
    centre = statistics.median(logs)
    sigma = 1.4826 * statistics.median(abs(x - centre) for x in logs)
    return max(MIN_FACTOR, math.exp(3 * sigma))


def setup_noise_factor(rows: list[Row]) -> float:
    """exp(3 sigma), sigma the pooled spread of each run's trial setups' log medians about that run's mean
    (1.0 where no run has two setups)."""
    squares, freedom = 0.0, 0
    for row in rows:
        logs = [math.log(m) for m in (row.get("stats") or {}).get("setup_medians", []) if m and m > 0]
        if len(logs) >= 2:
            mean = sum(logs) / len(logs)
            squares += sum((x - mean) ** 2 for x in logs)
            freedom += len(logs) - 1
    return math.exp(3 * math.sqrt(squares / freedom)) if freedom else 1.0


def told_apart(a: list[float], b: list[float]) -> bool:
    """Whether two runs' samples differ: Mann-Whitney when both have 4 or more, else full separation."""
    if min(len(a), len(b)) >= 4:
        return mann_whitney_p(a, b) < ALPHA
    return bool(a and b) and (max(a) < min(b) or max(b) < min(a))


@dataclass(frozen=True)
class Change:
    experiment_id: str
    before: float
    after: float
    p_value: float
    timed: bool = True          # False for modelled/simulated figures: deterministic, no samples to test
    factor: float = MIN_FACTOR  # the experiment's run-to-run noise factor
    distinct: bool = False      # the two runs' samples are told apart

    @property
    def ratio(self) -> float:
        return self.after / self.before

    @property
    def significant(self) -> bool:
        if not self.timed:
            return abs(self.ratio - 1) >= MIN_EFFECT
        return self.distinct and max(self.ratio, 1 / self.ratio) > self.factor

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


def compare(before: dict[str, Row], after: dict[str, Row], store: Store | None = None) -> list[Change]:
    """Each experiment both runs measured, with its change judged against its run-to-run noise in `store`."""
    changes = []
    for exp_id in sorted(set(before) & set(after)):
        a, b = before[exp_id], after[exp_id]
        if not a["value"] or not b["value"]:
            continue
        earlier = [] if store is None else earlier_medians(store, a, exclude={a["run_id"], b["run_id"]})
        factor = max(noise_factor(earlier), setup_noise_factor([a, b]))
        changes.append(Change(exp_id, a["value"], b["value"], mann_whitney_p(a["samples"], b["samples"]),
                              timed=a["kind"] == "measured", factor=factor,
                              distinct=told_apart(a["samples"], b["samples"])))
    widened = neighbour_noise_factors(changes)
    return [replace(c, factor=max(c.factor, widened[c.experiment_id])) if c.experiment_id in widened
            else c for c in changes]


def neighbour_noise_factors(changes: list[Change]) -> dict[str, float]:
    """exp(3 sigma) for each timed change, sigma the robust spread of the log ratios of the NEIGHBOURS
    other timed changes nearest it in log duration; none where fewer than MIN_NEIGHBOURS others are timed."""
    timed = [c for c in changes if c.timed]
    if len(timed) <= MIN_NEIGHBOURS:
        return {}
    durations = [math.log(c.before) for c in timed]
    ratios = [math.log(c.ratio) for c in timed]
    factors = {}
    for i, change in enumerate(timed):
        nearest = sorted((j for j in range(len(timed)) if j != i),
                         key=lambda j: abs(durations[j] - durations[i]))[:NEIGHBOURS]
        logs = [ratios[j] for j in nearest]
        centre = statistics.median(logs)
        factors[change.experiment_id] = math.exp(3 * 1.4826 * statistics.median(abs(x - centre) for x in logs))
    return factors


def earlier_medians(store: Store, row: Row, exclude: set[str]) -> list[float]:
    """The experiment's medians on the same machine in up to HISTORY_RUNS other runs, newest first."""
    rows = store.rows("experiment_id=? AND machine_id=? AND status='ok' AND value IS NOT NULL",
                      (row["experiment_id"], row["machine_id"]))
    medians = [r["value"] for r in reversed(rows) if r["run_id"] not in exclude]
    return medians[:HISTORY_RUNS]


# ---------------------------------------------------------------------------- gate

@dataclass(frozen=True)
class GateFigure:
    """A gated ratio, with the reference it is judged against on this CPU.

    A ratio of two same-technology kernels still differs between CPU generations (a wider
    vector unit computes more per byte read), so the reference file keeps one ratio per CPU
    kind (`machine.cpu_kind`), and only this CPU kind's own ratio judges.  Other kinds' ratios
    do not bound this one's: FAERY-CPU's figure read 2.62 on an AMD EPYC Zen 4, 2.65 on an
    Intel Xeon and 3.68 on an AMD EPYC Zen 5, G2Miner's 0.50, 0.70 and 0.60.  On a CPU kind
    with no entry the figure is measured and shown, and not judged (`reference` None).

    With several denominators the figure divides by their geometric mean.  FAERY-CPU is gated
    over a memory-bound floor and a compute-bound one: on a shared VM the bandwidth a guest gets
    and the speed of its cores move independently, each moves FAERY-CPU part of the way, and
    over either floor alone the ratio moves the rest (ci/README.md).
    """

    name: str
    numerator: str                   # experiment id
    denominators: tuple[str, ...]    # experiment ids
    reference: float | None          # this CPU kind's, or None: not judged here
    ratios: Mapping[str, float] = field(default_factory=dict)   # every CPU kind's reference

    def __post_init__(self) -> None:
        if isinstance(self.denominators, str) or not self.denominators:
            raise ValueError(f"gated figure {self.name!r}: denominators must be a non-empty tuple of experiment ids, "
                             f"not {self.denominators!r}")


@dataclass(frozen=True)
class GateResult:
    figure: GateFigure
    ratio: float
    limit: float | None

    @property
    def regressed(self) -> bool:
        return self.limit is not None and self.ratio > self.limit


def load_reference(path: str | os.PathLike, cpu: str | None = None) -> tuple[list[GateFigure], float]:
    """The gated figures of a reference file, each with its reference for `cpu` (default: this CPU's kind)."""
    path = Path(path)
    cpu = machine.cpu_kind() if cpu is None else cpu
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
        for key in ("name", "numerator"):
            if not isinstance(f.get(key), str):
                raise ValueError(f"{path}: figure #{i} lacks the text field {key!r}")
        denominators = [f.get("denominator")] if isinstance(f.get("denominator"), str) else f.get("denominator")
        if not (isinstance(denominators, list) and denominators and all(isinstance(d, str) for d in denominators)):
            raise ValueError(f"{path}: figure #{i}: \"denominator\" must be an experiment id or a list of them")
        ratios = f.get("ratios", {})
        if not isinstance(ratios, dict):
            raise ValueError(f"{path}: figure {f['name']!r}: \"ratios\" must map CPU kinds to ratios")
        for kind, ratio in ratios.items():
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio) or ratio <= 0:
                raise ValueError(f"{path}: figure {f['name']!r}: \"ratios\" for {kind!r} must be a finite number "
                                 f"above 0, not {ratio!r}")
        figures.append(GateFigure(f["name"], f["numerator"], tuple(denominators), ratios.get(cpu), dict(ratios)))
    if not figures:
        raise ValueError(f"{path}: lists no gated figures")
    return figures, check_threshold(doc.get("threshold", DEFAULT_THRESHOLD), f"{path}: \"threshold\"")


DEFAULT_THRESHOLD = 1.25


def check_threshold(value: Any, where: str) -> float:
    """A gate threshold: a finite number above 1 (1 or less would fail on the reference itself)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 1:
        raise ValueError(f"{where} must be a finite number above 1, not {value!r}")
    return float(value)


def measure_ratios(figures: list[GateFigure], setups: int = 9, min_rounds: int = 9,
                   min_time_s: float = 0.25) -> dict[str, float]:
    """Each figure's ratio: the median over `setups` trial setups of the median of interleaved rounds.

    Within a setup the sides (numerator, then each denominator) are timed back to back, round
    after round, so a slow drift in the machine's load falls on all of them.  What stays fixed
    within one setup moves between setups: where the data lands in memory, and what a neighbour
    on a shared machine holds in the last-level cache.  On a 2-core cloud VM one setup's ratio
    sat up to 30% from another's of the same code, so each setup loads fresh copies of the data
    and builds every side anew, and the median of the setups is the figure.
    """
    out = {}
    for f in figures:
        numerator, denominators = registry.get(f.numerator), [registry.get(d) for d in f.denominators]
        per_setup = []
        for _ in range(setups):
            data = fresh_workload(numerator.workload)  # one copy for every side: they read the same bytes
            with ExitStack() as stack:
                num, *dens = [stack.enter_context(open_trial(exp, data if exp.workload == numerator.workload
                                                             else fresh_workload(exp.workload)))
                              for exp in (numerator, *denominators)]
                for side in (num, *dens):
                    _, result = side.timed_call()  # warm-up: compilation and caches stay out of the ratio
                    side.check(result)  # a fast wrong answer must not pass the gate
                ratios: list[float] = []
                began = time.perf_counter()
                while len(ratios) < min_rounds or time.perf_counter() - began < min_time_s:
                    time_num = num.timed_call()[0]
                    ratios.append(time_num / statistics.geometric_mean(den.timed_call()[0] for den in dens))
            per_setup.append(statistics.median(ratios))
        out[f.name] = statistics.median(per_setup)
    return out


def reference_ratios(figures: list[GateFigure], rounds: int = 3) -> dict[str, float]:
    """The ratios to record as a reference: each figure's median over `rounds` measurements, so a
    reference is not written at one end of the figure's spread."""
    measured = [measure_ratios(figures) for _ in range(rounds)]
    return {f.name: statistics.median(m[f.name] for m in measured) for f in figures}


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
                    threshold: float, cpu: str, provenance: dict[str, Any]) -> None:
    """Record `ratios` as CPU kind `cpu`'s references, keeping every other CPU's."""
    path = Path(path)
    try:
        old_provenance = json.loads(path.read_text()).get("provenance", {})
    except (OSError, ValueError, AttributeError):
        old_provenance = {}
    doc = {"threshold": threshold,
           "provenance": {**(old_provenance if isinstance(old_provenance, dict) else {}), cpu: provenance},
           "figures": [{"name": f.name, "numerator": f.numerator,
                        "denominator": f.denominators[0] if len(f.denominators) == 1 else list(f.denominators),
                        "ratios": {**f.ratios, cpu: round(ratios[f.name], 4)}} for f in figures]}
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)  # atomic: the old reference survives a failed write
