"""Running experiments: build the trial, time or evaluate it, check it, store it."""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

import devices
from harness import machine
from harness.lifecycle import ctrl_c_stops_at_once, fresh_workload, interrupted, open_trial
from harness.measure import Measurement, Settings, measure
from harness.registry import Experiment
from harness.store import ALREADY_STORED, Store

T = TypeVar("T")


@dataclass
class Outcome:
    """What one experiment produced: its primary value (time_s), samples and figures."""

    experiment: Experiment
    value: float | None
    samples: list[float]
    stats: dict[str, float]
    metrics: dict[str, float]
    peak_memory_bytes: int | None = None
    result: Any = field(default=None, repr=False)


def earlier_setup(exp: Experiment, settings: Settings = Settings()) -> Measurement:
    """One of a measured experiment's earlier setups: the trial built on a fresh copy of its data, warmed
    and timed for its share of the repeats (`Settings.per_setup`); no result is kept or checked."""
    with open_trial(exp, fresh_workload(exp.workload)) as opened, opened.pinned():
        m = measure(opened.trial.run, settings.with_repeats(exp.repeats).per_setup(), opened.timer)
    m.result = None  # only the last setup's result is checked and kept
    return m


def run(exp: Experiment, settings: Settings = Settings(), check: bool = True,
        earlier: list[Measurement] | None = None) -> Outcome:
    """Run one experiment through the trial lifecycle; raises on a failed check or an unavailable backend.

    A measured experiment is timed in `settings.setups` trial setups, each on a fresh copy
    of the data but the last (see `Settings`); the last setup's result is checked and gives the metrics.
    `earlier` are setups already measured (`earlier_setup`, as `run_all` does in a round of its own);
    by default they are measured here, just before the last.
    """
    settings = settings.with_repeats(exp.repeats)
    fresh: list[Measurement] = []
    if exp.kind == "measured":
        fresh = list(earlier) if earlier is not None else \
            [earlier_setup(exp, settings) for _ in range(settings.setups - 1)]
    with open_trial(exp) as opened:
        trial = opened.trial
        with opened.pinned():
            if exp.kind == "measured":
                m = Measurement.of_setups([*fresh, measure(trial.run, settings.per_setup(), opened.timer)])
                result, value, samples, stats, peak = m.result, m.median, m.samples, m.stats(), m.peak_memory_bytes
                metrics = {"time_s": value}
            else:
                t0 = time.perf_counter()
                result = trial.run()
                wall = time.perf_counter() - t0
                if not isinstance(result, dict):
                    raise TypeError(f"{exp.id}: a {exp.kind} trial must return a dict of figures")
                value = result.get("time_s")
                samples = [] if value is None else [float(value)]
                stats = {"n": len(samples)}
                peak = None
                metrics = {k: float(v) for k, v in result.items() if _is_number(v)}
                metrics[f"{exp.kind}_wall_s"] = wall  # how long the model/simulation itself took
            if trial.metrics is not None:
                metrics.update({k: float(v) for k, v in trial.metrics(result).items()})
        if check:
            opened.check(result)
        # The load beside every figure: a busy machine explains a slow or unstable one.
        stats = {**stats, **opened.threads.provenance(), "threads_settled": opened.settled,
                 "load_average_1min": os.getloadavg()[0]}
    return Outcome(exp, value, samples, stats, metrics, peak, result)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def device_name(exp: Experiment) -> str:
    if exp.backend in ("gpu", "opencl"):
        info = devices.probe(exp.backend)
        return str(info.details.get("device") or info.details.get("devices") or exp.backend)
    if exp.backend == "fpga-model":
        if "backend:gpu" in exp.requires:
            return f"modelled: FAERY's design at the measured bandwidth of {device_name_of_gpu()}"
        return "modelled: Xilinx VU35P (cycle-level model)"
    return machine.cpu_model()


def device_name_of_gpu() -> str:
    return str(devices.probe("gpu").details.get("device", "the GPU"))


class Session:
    """One `reproduce`/`gate` run: provenance recorded once, rows written one by one."""

    def __init__(self, store: Store, command: str, tier: str | None) -> None:
        self.store = store
        self.tier = tier
        self.commit = machine.git_commit()
        self.machine_id = machine.machine_id()
        self.machine = machine.machine()
        self.versions = machine.library_versions()
        probes = {name: info.summary() for name, info in devices.probe_all().items()}
        self.run_id = store.begin_run(command, tier, self.commit, self.machine_id, self.machine,
                                      probes, self.versions)

    def claim(self, exp: Experiment, force: bool) -> str | None:
        """None when this run may measure `exp` now, else why not (already stored, or another run has it)."""
        return self.store.claim(exp.id, self.commit, self.machine_id, self.run_id, even_if_stored=force)

    def release(self, exp: Experiment) -> None:
        self.store.release(exp.id, self.commit, self.machine_id, self.run_id)

    def record(self, exp: Experiment, outcome: Outcome | None = None, error: str | None = None,
               node: dict[str, Any] | None = None) -> int:
        """Store one row; `node` is the provenance (machine_id, machine, versions, device) of the cluster
        node that measured it (harness.cluster), where that is not this machine."""
        threads = outcome.stats.get("numba_threads") if outcome is not None else None
        node = node or {"machine_id": self.machine_id, "machine": self.machine, "versions": self.versions,
                        "device": device_name(exp)}
        return self.store.add(
            run_id=self.run_id, experiment_id=exp.id, system=exp.system, impl=exp.impl, backend=exp.backend,
            workload=exp.workload, params=exp.params, kind=exp.kind, tier=self.tier,
            status="ok" if error is None else "failed", error=error,
            value=None if outcome is None else outcome.value,
            samples=[] if outcome is None else outcome.samples,
            stats={} if outcome is None else outcome.stats,
            metrics={} if outcome is None else outcome.metrics,
            peak_memory_bytes=None if outcome is None else outcome.peak_memory_bytes,
            threads=threads, device=node["device"], git_commit=self.commit,
            machine_id=node["machine_id"], machine=node["machine"], versions=node["versions"])


@dataclass
class Summary:
    measured: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    unstable: list[str] = field(default_factory=list)   # measured, but with a spread above 10% of the median


def progress_bar(total: int, progress: bool = True, unit: str = "experiment") -> Any:
    """A progress bar on stderr (done, left, ETA) of `total` units, updated by hand."""
    from tqdm import tqdm

    return tqdm(None, total=total, desc=unit + "s", unit=unit,
                disable=not progress, file=sys.stderr, mininterval=0.1 if sys.stderr.isatty() else 10.0,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}")


def run_all(session: Session, exps: Iterable[Experiment], settings: Settings, force: bool = False,
            progress: bool = True, debug: bool = False) -> Summary:
    """Run experiments, storing each result as it completes; resumable.

    The setups of a measured experiment are spread over the run, as asv spreads its rounds:
    first a round of every experiment's earlier setups, then a round that measures each last
    setup, checks it and stores the row.  A spell of a slow machine (a busy neighbour on a
    shared host) then falls on one setup of an experiment, not on all of them, and widens its
    setups' spread (what `compare` reads as noise) instead of moving the whole figure.
    """
    summary = Summary()
    interactive = sys.stderr.isatty()
    runnable = []
    for exp in exps:
        ok, why = devices.can_run(exp.backend, exp.requires)
        if ok:
            runnable.append(exp)
        else:
            summary.skipped[exp.id] = why
    rounds = {exp.id: settings.with_repeats(exp.repeats).setups - 1 if exp.kind == "measured" else 0
              for exp in runnable}
    # the bar counts trial setups, not experiments: a measured one takes several, spread over the run
    bar = progress_bar(sum(rounds.values()) + len(runnable), progress, unit="setup")
    earlier: dict[str, list[Measurement] | str] = {}  # per claimed experiment: its setups so far, or its error
    spent: dict[str, float] = {}  # per claimed experiment: wall seconds of its earlier setups
    held: list[Experiment] = []  # claimed, not yet released

    def claim(exp: Experiment) -> bool:
        """Claim `exp` just before it is first measured; False (and why, in the summary) if not ours to measure."""
        busy = session.claim(exp, force)
        if busy is None:
            earlier[exp.id] = []
            held.append(exp)
        elif busy == ALREADY_STORED:
            summary.resumed.append(exp.id)
        else:
            summary.skipped[exp.id] = busy
        bar.update(0 if busy is None else rounds[exp.id] + 1)
        return busy is None

    def show(what: str) -> None:
        if interactive:
            bar.set_postfix_str(what[-60:], refresh=False)

    try:
        for round_number in range(max(rounds.values(), default=0)):
            for exp in runnable:
                if rounds[exp.id] <= round_number or (round_number == 0 and not claim(exp)) or exp.id not in earlier:
                    continue  # no setup left, or not ours: already stored, or another run's
                if isinstance(earlier[exp.id], list):
                    show(f"setup {round_number + 1}: {exp.id}")
                    began = time.perf_counter()
                    m = or_error(lambda: earlier_setup(exp, settings), debug)
                    spent[exp.id] = spent.get(exp.id, 0.0) + time.perf_counter() - began
                    earlier[exp.id] = m if isinstance(m, str) else [*earlier[exp.id], m]
                bar.update(1)
        for exp in runnable:
            if (rounds[exp.id] == 0 and not claim(exp)) or exp.id not in earlier:
                continue  # not ours: already stored, or another run's
            show(exp.id)
            before = earlier[exp.id]
            began = time.perf_counter()
            outcome = before if isinstance(before, str) else or_error(lambda: run(exp, settings, earlier=before), debug)
            if isinstance(outcome, str):
                session.record(exp, error=outcome)
                summary.failed[exp.id] = outcome
            else:
                # its whole cost, the setups of the first rounds included (what harness.plan estimates from)
                outcome.stats["wall_s"] = spent.get(exp.id, 0.0) + time.perf_counter() - began
                session.record(exp, outcome)
                summary.measured.append(exp.id)
                if outcome.stats.get("unstable"):
                    summary.unstable.append(exp.id)
            session.release(exp)
            held.remove(exp)
            bar.update(1)
    finally:  # on Ctrl-C too: nothing is stored for an interrupted experiment, and its claim goes
        for exp in held:
            session.release(exp)
        bar.close()
    return summary


def or_error(work: Callable[[], T], debug: bool) -> T | str:
    """What `work` returns, or its error as one line; a Ctrl-C (even one numba wrapped) propagates."""
    try:
        with ctrl_c_stops_at_once():
            return work()
    except Exception as exc:
        if interrupted(exc):
            raise KeyboardInterrupt from exc
        if debug:
            traceback.print_exc()
        return f"{type(exc).__name__}: {exc}"
