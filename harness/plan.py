"""What a `recmine reproduce` would run: the experiments behind each claim, what each needs, how long it takes.

An experiment's time and memory come from this machine's stored results where there are any:
its wall time is the `wall_s` stored with it (every setup of it, wherever in the run each was
timed) or, for rows stored without one, the gap between its row and the row stored before it in
the same run (the first row of a run counts from the run's start); its memory the peak resident
memory stored with it.  Otherwise they come from the cost model below, whose constants were fitted to a
quick-tier run on a 2-core x86 machine (README, "Tiers and how long they take"); a faster or
busier machine moves every figure, which is why stored results win wherever they exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import devices
from harness import claims as claims_mod
from harness.registry import Experiment
from harness.store import Row
from workloads import catalog

# ---------------------------------------------------------------------------- the cost model
STARTUP_S = 5.0                     # imports, backend probes and writing the report, once per run
EMBEDDING_S = (0.6, 20.0)           # measured top-K: seconds + seconds per GB of corpus (repeats, LoadGen queries)
SERVER_SCENARIO_S = 8.0             # LoadGen server: rising Poisson rates until p99 breaks the bound
MODELLED_S = (0.05, 2.0)            # the FPGA cycle model: seconds + seconds per GB it scans
GRAPH_S_PER_EDGE = {"g2miner": 2e-6, "pangolin_bfs": 1e-4}   # BFS enumerates every embedding
GRAPH_S = 0.1
SIMULATED_S_PER_UPDATE = 7e-5       # the WAN simulation, per stream update
SIMULATED_S_PER_STEP = 5e-3         # the online CTR model, per click-stream step
FULL_TIER_REPEATS = 5 / 3           # the full tier's minimum repeats over the quick tier's
PROCESS_BYTES = 350e6               # the interpreter with numpy, numba and the harness loaded
MEMORY_PER_CORPUS_BYTE = 2.0        # the corpus plus one score buffer of the same size
MEMORY_PER_EDGE = 100.0             # CSR, orientation and the BFS frontier


@dataclass(frozen=True)
class Estimate:
    experiment: Experiment
    seconds: float
    memory_bytes: float
    source: str          # "stored" (this machine's results) or "model"
    runs_here: bool
    why_not: str = ""


def model_seconds(exp: Experiment, tier: str) -> float:
    size = catalog.get(exp.workload).size
    gb = size.get("bytes", 0) / 1e9
    if exp.kind == "modelled":
        return MODELLED_S[0] + MODELLED_S[1] * gb
    if exp.kind == "simulated":
        return size.get("n_updates", 0) * SIMULATED_S_PER_UPDATE + size.get("steps", 0) * SIMULATED_S_PER_STEP
    repeats = 1.0 if tier == "quick" else FULL_TIER_REPEATS
    if "edges" in size:
        return repeats * (GRAPH_S + GRAPH_S_PER_EDGE.get(exp.impl, GRAPH_S_PER_EDGE["g2miner"]) * size["edges"])
    if exp.params.get("scenario") == "server":
        return SERVER_SCENARIO_S
    return repeats * (EMBEDDING_S[0] + EMBEDDING_S[1] * gb)


def model_memory(exp: Experiment) -> float:
    size = catalog.get(exp.workload).size
    return PROCESS_BYTES + MEMORY_PER_CORPUS_BYTE * size.get("bytes", 0) + MEMORY_PER_EDGE * size.get("edges", 0)


def stored_costs(rows: Iterable[Row], runs: list[dict[str, Any]], machine_id: str) -> dict[str, tuple[float, float | None]]:
    """experiment id -> (wall seconds, peak memory bytes) of its newest row on this machine."""
    started = {r["run_id"]: r["started"] for r in runs}
    previous: dict[str, float] = {}
    costs: dict[str, tuple[float, float | None]] = {}
    for row in sorted(rows, key=lambda r: r["id"]):
        begin = previous.get(row["run_id"], started.get(row["run_id"], row["created"]))
        previous[row["run_id"]] = row["created"]
        if row["machine_id"] == machine_id:
            wall = (row.get("stats") or {}).get("wall_s", row["created"] - begin)
            costs[row["experiment_id"]] = (wall, row["peak_memory_bytes"])
    return costs


def estimate(exps: Iterable[Experiment], tier: str, stored: dict[str, tuple[float, float | None]]) -> list[Estimate]:
    out = []
    for exp in exps:
        ok, why = devices.can_run(exp.backend, exp.requires)
        if exp.id in stored:
            seconds, peak = stored[exp.id]
            out.append(Estimate(exp, seconds, peak or model_memory(exp), "stored", ok, why))
        else:
            out.append(Estimate(exp, model_seconds(exp, tier), model_memory(exp), "model", ok, why))
    return out


def by_claim(exps: list[Experiment], tier: str, only: str | None = None) -> list[tuple[str, list[Experiment]]]:
    """(claim id, its experiments among `exps`) for every claim with any (or the one claim `only`),
    then the experiments no claim reads."""
    ids = {e.id for e in exps}
    groups, claimed = [], set()
    for claim in claims_mod.load():
        if only not in (None, claim.id):
            continue
        mine = [e for e in claims_mod.experiments_for(claim, tier) if e.id in ids]
        if mine:
            groups.append((claim.id, mine))
            claimed.update(e.id for e in mine)
    rest = [e for e in exps if e.id not in claimed]
    if rest:
        groups.append(("(plots and tables only)", rest))
    return groups


def describe(estimates: list[Estimate], tier: str, only: str | None = None) -> list[str]:
    """The dry run's lines: per claim, its experiments with needs and time, then the total."""
    by_id = {e.experiment.id: e for e in estimates}
    lines = []
    for claim_id, exps in by_claim([e.experiment for e in estimates], tier, only):
        mine = [by_id[e.id] for e in exps]
        runnable = [e for e in mine if e.runs_here]
        lines.append(f"{claim_id}: {len(mine)} experiments, {len(runnable)} run here, "
                     f"about {_duration(sum(e.seconds for e in runnable))}")
        for e in mine:
            needs = ", ".join([e.experiment.backend, *e.experiment.requires, f"{e.memory_bytes / 2**30:.1f} GiB"])
            when = f"{_duration(e.seconds)} ({e.source})" if e.runs_here else f"skipped: {e.why_not}"
            lines.append(f"  {e.experiment.id}  [{needs}]  {when}")
    runnable = [e for e in estimates if e.runs_here]
    stored = sum(1 for e in runnable if e.source == "stored")
    total = STARTUP_S + sum(e.seconds for e in runnable)
    lines.append(f"total: {len(estimates)} experiments, {len(runnable)} run here "
                 f"({len(estimates) - len(runnable)} skipped), estimated {_duration(total)} "
                 f"({stored} from this machine's stored results, {len(runnable) - stored} from the cost model, "
                 f"{STARTUP_S:.0f} s to start and report); peak memory about "
                 f"{max((e.memory_bytes for e in runnable), default=0) / 2**30:.1f} GiB")
    return lines


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
