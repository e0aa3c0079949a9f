"""Timing with warm-up, repeats until both a minimum count and a minimum time, and robust statistics.

Device work is synchronised before a clock is read (the timers of
`devices.timers`).  Peak memory is the process's resident high-water
mark over the timed region (reset through /proc/self/clear_refs where Linux allows).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from devices.timers import HostTimer, Timer


@dataclass(frozen=True)
class Settings:
    """How an experiment is timed.

    The repeats are shared out over `setups` trial setups (the trial built again, on a fresh
    copy of its data, and warmed up again), as pyperf spreads its runs over several
    processes: data placed afresh and a rebuilt index move a figure between processes more
    than between repeats, and the spread of the setups' medians lets `compare` tell such a
    shift from a change.
    """

    warmup: int = 1
    min_repeats: int = 5
    min_time_s: float = 0.2
    max_repeats: int = 1000
    max_time_s: float = 30.0   # stop after this much timed work even below min_repeats (slow experiments)
    setups: int = 2

    def __post_init__(self) -> None:
        if self.setups < 1:
            raise ValueError(f"setups must be at least 1, not {self.setups}")

    @classmethod
    def for_tier(cls, tier: str) -> "Settings":
        return cls(min_repeats=4, min_time_s=0.1, max_time_s=5.0) if tier == "quick" else cls()

    def with_repeats(self, repeats: int | None) -> "Settings":
        """These settings, or exactly `repeats` timed runs after one warm-up, in one setup (for experiments
        of minutes, where a second setup would double the cost)."""
        if repeats is None:
            return self
        return Settings(warmup=1, min_repeats=repeats, min_time_s=0.0, max_repeats=repeats, max_time_s=float("inf"),
                        setups=1)

    def per_setup(self) -> "Settings":
        """The share of one setup: the minima and maxima divided over the setups, each with its own warm-up."""
        share = lambda n: -(-n // self.setups)  # noqa: E731  (ceiling division)
        return Settings(warmup=self.warmup, min_repeats=share(self.min_repeats), min_time_s=self.min_time_s / self.setups,
                        max_repeats=share(self.max_repeats), max_time_s=self.max_time_s / self.setups, setups=1)


@dataclass
class Measurement:
    samples: list[float]
    result: Any = field(repr=False, default=None)
    peak_memory_bytes: int | None = None
    setup_medians: list[float] = field(default_factory=list)   # one per trial setup, where there were several

    @classmethod
    def of_setups(cls, setups: list["Measurement"]) -> "Measurement":
        """The setups' samples pooled; the last setup's result, the highest peak, and each setup's median."""
        peaks = [m.peak_memory_bytes for m in setups if m.peak_memory_bytes is not None]
        return cls([t for m in setups for t in m.samples], setups[-1].result, max(peaks) if peaks else None,
                   [m.median for m in setups] if len(setups) > 1 else [])

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def q1(self) -> float:
        return float(np.percentile(self.samples, 25))

    @property
    def q3(self) -> float:
        return float(np.percentile(self.samples, 75))

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def unstable(self) -> bool:
        """pyperf's rule of thumb: a spread above 10% of the median makes the figure doubtful."""
        return self.median > 0 and self.iqr / self.median > 0.10

    def stats(self) -> dict[str, Any]:
        stats = {"median": self.median, "q1": self.q1, "q3": self.q3, "iqr": self.iqr,
                 "min": float(min(self.samples)), "max": float(max(self.samples)), "n": len(self.samples),
                 "unstable": self.unstable}
        if self.setup_medians:
            stats["setup_medians"] = self.setup_medians
        return stats


def measure(fn: Callable[[], Any], settings: Settings = Settings(),
            timer: Timer | None = None) -> Measurement:
    """Warm up, then time `fn` until min_repeats and min_time_s are both reached (bounded by the maxima)."""
    timer = timer or HostTimer()
    out = None
    for _ in range(settings.warmup):
        _, out = timer.time(fn)
    memory = PeakMemory()
    samples: list[float] = []
    began = time.perf_counter()
    with memory:
        while True:
            dt, out = timer.time(fn)
            samples.append(dt)
            elapsed = time.perf_counter() - began
            enough = len(samples) >= settings.min_repeats and elapsed >= settings.min_time_s
            too_long = elapsed >= settings.max_time_s  # a few samples of a slow run beat an endless run
            if enough or too_long or len(samples) >= settings.max_repeats:
                break
    return Measurement(samples, out, memory.peak)


def interleaved_medians(runs: dict[str, Callable[[], Any]], rounds: int,
                        timers: dict[str, Timer] | None = None) -> dict[str, float]:
    """Median seconds of one call of each run over `rounds` rounds, one call of each per round,
    so a change in the machine's load falls on all of them alike (host clock unless `timers`
    names a device timer for a run)."""
    host, timers = HostTimer(), timers or {}
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            samples[name].append(timers.get(name, host).time(run)[0])
    return {name: float(np.median(s)) for name, s in samples.items()}


class PeakMemory:
    """Peak host resident set size of this process inside the `with` block, in bytes (None where unknown).

    Host memory only: device memory is not included."""

    _CLEAR = Path("/proc/self/clear_refs")
    _STATUS = Path("/proc/self/status")

    def __init__(self) -> None:
        self.peak: int | None = None
        self._reset = False

    def __enter__(self) -> "PeakMemory":
        try:
            self._CLEAR.write_text("5")  # reset VmHWM to the current RSS
            self._reset = True
        except OSError:
            self._reset = False  # the high-water mark would be the whole process's: report none
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._reset:
            return
        try:
            for line in self._STATUS.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak = int(line.split()[1]) * 1024
        except OSError:
            self.peak = None
