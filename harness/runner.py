"""Running experiments: build the trial, time or evaluate it, check it, store it."""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Iterable

import devices
from harness import machine
from harness.lifecycle import ctrl_c_stops_at_once, fresh_workload, interrupted, open_trial
from harness.measure import Measurement, Settings, measure
from harness.registry import Experiment
from harness.store import ALREADY_STORED, Store


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


def run(exp: Experiment, settings: Settings = Settings(), check: bool = True) -> Outcome:
    """Run one experiment through the trial lifecycle; raises on a failed check or an unavailable backend.

    A measured experiment is timed in `settings.setups` trial setups, each on a fresh copy
    of the data but the last (see `Settings`); the last setup's result is checked and gives the metrics.
    """
    settings = settings.with_repeats(exp.repeats)
    fresh: list[Measurement] = []
    if exp.kind == "measured":
        for _ in range(settings.setups - 1):
            with open_trial(exp, fresh_workload(exp.workload)) as opened, opened.pinned():
                fresh.append(measure(opened.trial.run, settings.per_setup(), opened.timer))
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
        stats = {**stats, **opened.threads.provenance(), "load_average_1min": os.getloadavg()[0]}
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


def progress_bar(exps: "Iterable[Experiment] | int", progress: bool = True) -> Any:
    """The experiments' progress bar on stderr (done, left, ETA); pass a count to update it by hand."""
    from tqdm import tqdm

    total = exps if isinstance(exps, int) else None
    return tqdm(None if total is not None else exps, total=total, desc="experiments", unit="exp",
                disable=not progress, file=sys.stderr, mininterval=0.1 if sys.stderr.isatty() else 10.0,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}")


def run_all(session: Session, exps: Iterable[Experiment], settings: Settings, force: bool = False,
            progress: bool = True, debug: bool = False) -> Summary:
    """Run experiments in order, storing each result as it completes; resumable."""
    exps = list(exps)
    summary = Summary()
    interactive = sys.stderr.isatty()
    bar = progress_bar(exps, progress)
    for exp in bar:
        if interactive:
            bar.set_postfix_str(exp.id[-60:], refresh=False)
        ok, why = devices.can_run(exp.backend, exp.requires)
        if not ok:
            summary.skipped[exp.id] = why
            continue
        busy = session.claim(exp, force)
        if busy == ALREADY_STORED:
            summary.resumed.append(exp.id)
            continue
        if busy is not None:
            summary.skipped[exp.id] = busy
            continue
        try:
            outcome = _run_or_error(exp, settings, debug)
            if isinstance(outcome, str):
                session.record(exp, error=outcome)
                summary.failed[exp.id] = outcome
            else:
                session.record(exp, outcome)
                summary.measured.append(exp.id)
                if outcome.stats.get("unstable"):
                    summary.unstable.append(exp.id)
        finally:  # on Ctrl-C too: nothing is stored for the interrupted experiment, and its claim goes
            session.release(exp)
    return summary


def _run_or_error(exp: Experiment, settings: Settings, debug: bool) -> Outcome | str:
    """The experiment's outcome, or its error as one line; a Ctrl-C (even one numba wrapped) propagates."""
    try:
        with ctrl_c_stops_at_once():
            return run(exp, settings)
    except Exception as exc:
        if interrupted(exc):
            raise KeyboardInterrupt from exc
        if debug:
            traceback.print_exc()
        return f"{type(exc).__name__}: {exc}"
