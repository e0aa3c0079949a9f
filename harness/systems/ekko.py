"""Ekko: model-update dissemination on a simulated WAN, against central push and checkpoints.

Every experiment here is "simulated": the discrete-event WAN of `wan.network`
(latency, NICs, pass-through serialisation), or the online CTR model of
`impls.ekko.quality`, run once per trial.

The testbed of the claims is `CLAIM_LATENCY` (a uniform one-way latency between every
pair of DCs) at `CLAIM_LOAD` of one NIC; the geo matrix of real cities is a second,
labelled scenario.  Every latency is stored with its physical floor (`floor_s`) and the
ratios p50/floor and p99/floor.

Families:
* dcs sweep (uniform and geo): update latency, floor, WAN bytes against their minimum,
  bytes per NIC, keys compared and cache figures vs the number of DCs, for Ekko,
  Adam-style central push, checkpoint broadcast, and Ekko without cache/DVV (ablation);
* load sweep at 10 DCs: 10/50/90/150% of one NIC, Ekko vs Adam;
* cache under faults: a DC cut off and a server restarted, where the cache can miss;
* dissemination savings: the scheduler, compression and both, against FIFO, on the
  online CTR model (bytes and quality) and on the simulated WAN (bytes and latency);
* freshness: quality and staleness with Ekko's simulated latency vs checkpoints vs the oracle;
* rollback: harmful updates detected, redirected and rolled back.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from harness import grids
from harness.registry import Experiment, Trial
from harness.systems import System

NAME = "ekko"
SERVERS_PER_DC = 3          # 10 DCs x 3 = the paper's 30-server testbed
N_SHARDS = 24
ROW_BYTES = 65536           # one stream update = a 64 KB block of embedding rows
CACHE_FRACTION = 0.0015     # cache capacity as a share of a shard's keys (paper: 0.13-0.2%)
PRODUCTION_CACHE_SHARE_OF_HOUR = 0.0015 / 0.0308   # that cache against the 3.08% of keys updated per hour
SYNC_INTERVAL_S = 0.02
CHECKPOINT_PERIOD_S = 1800.0
CHECKPOINT_VALIDATE_S = 60.0
MAX_DRAIN_S = 120.0         # simulated seconds allowed after the stream (an overloaded NIC drains its backlog)
GRIDS = grids.load(Path(__file__).with_suffix(".toml"))
BANDWIDTH_GBPS = GRIDS.vars["bandwidth_gbps"]
CLAIM_LATENCY = GRIDS.vars["claim_latency"]   # the claims' testbed (see ekko.toml on why 50 ms)
CLAIM_LOAD = GRIDS.vars["claim_load"]


def _wan(p: dict[str, Any]):
    from wan.latency import latency_matrix
    from wan.network import WanConfig

    lat = latency_matrix(p.get("latency", CLAIM_LATENCY), p["dcs"])
    return WanConfig(n_dcs=p["dcs"], servers_per_dc=SERVERS_PER_DC, latency_matrix=tuple(map(tuple, lat)),
                     nic_bandwidth_bps=p["bandwidth_gbps"] * 1e9)


def offered_rate(offered_load: float, bandwidth_gbps: float, row_bytes: int) -> float:
    """Updates per second that fill `offered_load` of one NIC with `row_bytes` rows."""
    return offered_load * bandwidth_gbps * 1e9 / (max(row_bytes, 1) * 8)


def _paced(stream, p: dict[str, Any]):
    """The stream at the experiment's offered load (its own rate when the experiment names none)."""
    from workloads.ekko_updates import at_rate

    if p.get("offered_load") is None:
        return stream
    return at_rate(stream, offered_rate(p["offered_load"], p["bandwidth_gbps"], p.get("row_bytes", ROW_BYTES)))


def _protocol(stream, wan, use_cache: bool = True, row_bytes: int = ROW_BYTES):
    from impls.ekko.core import ProtocolConfig

    keys_per_shard = int(np.ceil(stream.n_keys / N_SHARDS))
    return ProtocolConfig(n_origins=wan.n_servers, cache_capacity=max(1, round(CACHE_FRACTION * keys_per_shard)),
                          use_cache=use_cache, sync_interval_s=SYNC_INTERVAL_S, row_bytes=row_bytes,
                          keys_per_shard=keys_per_shard)


def _lagging_replica_faults(wan, stream):
    """DC 1 cut off from every other DC for the middle third of the stream, and a DC-2 server restarted."""
    from wan.network import FaultEvent, FaultSchedule

    third = stream.duration_s / 3
    events = [FaultEvent(third, "partition", 1, d) for d in range(wan.n_dcs) if d != 1]
    events += [FaultEvent(2 * third, "heal", 1, d) for d in range(wan.n_dcs) if d != 1]
    server = 2 * wan.servers_per_dc
    events += [FaultEvent(third, "crash", server), FaultEvent(1.5 * third, "restart", server)]
    return FaultSchedule(sorted(events, key=lambda e: e.time_s))


def _unfinished(figures: dict[str, float]) -> str | None:
    """Why a simulated run did not finish, or None."""
    if figures.get("converged", 1.0) != 1.0:
        return f"replicas did not converge within the {MAX_DRAIN_S:.0f} s (simulated) allowed after the stream"
    if figures["unreplicated_updates"]:
        return (f"{figures['unreplicated_updates']:.0f} updates had not reached every DC within the "
                f"{MAX_DRAIN_S:.0f} s (simulated) allowed after the stream")
    return None


def run_ekko(stream, p: dict[str, Any]) -> dict[str, float]:
    from dataclasses import replace

    from impls.ekko.sim import simulate_ekko

    paced = _paced(stream, p)
    wan = _wan(p)
    row_bytes = p.get("row_bytes", ROW_BYTES)
    protocol = _protocol(paced, wan, use_cache=p.get("impl_cache", True), row_bytes=row_bytes)
    faults = None
    if p.get("scenario") == "lagging-replica":
        faults = _lagging_replica_faults(wan, paced)
        # The stream stands for one hour.  In production the cache (0.15% of keys) holds about
        # 0.15 / 3.08 of the keys updated in an hour; sized so here, the cache can overflow
        # while a replica is cut off, as it would in production.
        distinct_per_shard = len(np.unique(paced.keys)) / N_SHARDS
        protocol = replace(protocol, cache_capacity=max(1, round(PRODUCTION_CACHE_SHARE_OF_HOUR * distinct_per_shard)))
    result = simulate_ekko(paced, wan, protocol, n_shards=N_SHARDS, faults=faults, seed=0, max_drain_s=MAX_DRAIN_S)
    digests_agree = all(d == result.digests[0] for d in result.digests)
    return {**result.figures, "digests_agree": float(digests_agree), "updates_per_s": len(paced) / paced.duration_s}


def run_adam(stream, p: dict[str, Any]) -> dict[str, float]:
    from baselines.adam_push import simulate_adam

    paced = _paced(stream, p)
    return {**simulate_adam(paced, _wan(p), row_bytes=p.get("row_bytes", ROW_BYTES), n_shards=N_SHARDS,
                            max_drain_s=MAX_DRAIN_S).figures, "updates_per_s": len(paced) / paced.duration_s}


def build_ekko(stream, p: dict[str, Any]) -> Trial:
    def check(figures: dict[str, float]) -> None:
        assert _unfinished(figures) is None, _unfinished(figures)
        assert figures["digests_agree"] == 1.0, "replica digests differ between DCs"
    return Trial(run=lambda: run_ekko(stream, p), check=check)


def build_adam(stream, p: dict[str, Any]) -> Trial:
    def check(figures: dict[str, float]) -> None:
        assert _unfinished(figures) is None, _unfinished(figures)
    return Trial(run=lambda: run_adam(stream, p), check=check)


def build_checkpoint(stream, p: dict[str, Any]) -> Trial:
    from baselines.checkpoint_broadcast import simulate_checkpoint_broadcast

    return Trial(run=lambda: simulate_checkpoint_broadcast(_paced(stream, p), _wan(p), period_s=CHECKPOINT_PERIOD_S,
                                                           validate_s=CHECKPOINT_VALIDATE_S,
                                                           row_bytes=ROW_BYTES).figures)


def build_savings(ctr, p: dict[str, Any]) -> Trial:
    """Bytes and quality of one dissemination variant against FIFO, on the online CTR model."""
    from impls.ekko.compression import Compression
    from impls.ekko.quality import dissemination_savings
    from impls.ekko.scheduler import SchedulerConfig

    def run() -> dict[str, float]:
        figures = dissemination_savings(ctr.steps, p["variant"], seed=ctr.seed, compression=Compression(p["codec"]),
                                        scheduler=SchedulerConfig(percentile=p["percentile"],
                                                                  low_flush_s=p["low_flush_s"]))
        return {**figures, "time_s": figures["staleness_variant_s"]}
    return Trial(run=run)


def build_wan_savings(stream, p: dict[str, Any]) -> Trial:
    """WAN bytes of one dissemination variant against FIFO on the simulated WAN, both in this trial.

    Compression here is the wire size of a row (the codec's fraction of an fp32 row of
    the model's width); its quality cost is measured on the CTR model (`build_savings`).
    """
    from dataclasses import replace

    from impls.ekko.compression import Compression
    from impls.ekko.scheduler import SchedulerConfig
    from impls.ekko.sim import simulate_ekko

    def run() -> dict[str, float]:
        paced = _paced(stream, p)
        wan = _wan(p)
        fifo_protocol = _protocol(paced, wan)
        protocol = fifo_protocol
        if p["variant"] != "scheduler":
            fraction = Compression(p["codec"]).wire_fraction(p["row_dim"])
            protocol = replace(protocol, row_bytes=round(protocol.row_bytes * fraction))
        sched = SchedulerConfig(percentile=p["percentile"], low_flush_s=p["low_flush_s"]) \
            if p["variant"] != "compression" else None
        run_ = simulate_ekko(paced, wan, protocol, n_shards=N_SHARDS, scheduler=sched, max_drain_s=MAX_DRAIN_S).figures
        fifo = simulate_ekko(paced, wan, fifo_protocol, n_shards=N_SHARDS, max_drain_s=MAX_DRAIN_S).figures
        return {"wan_sim_bytes_saved_fraction": 1.0 - run_["wan_bytes"] / fifo["wan_bytes"],
                "wan_bytes_variant": run_["wan_bytes"], "wan_bytes_fifo": fifo["wan_bytes"],
                "latency_p50_variant_s": run_["latency_p50_s"], "latency_p50_fifo_s": fifo["latency_p50_s"],
                "converged": min(run_["converged"], fifo["converged"]), "time_s": run_["latency_p50_s"]}

    def check(figures: dict[str, float]) -> None:
        assert figures["converged"] == 1.0, "replicas did not converge"
    return Trial(run=run, check=check)


def build_freshness(ctr, p: dict[str, Any]) -> Trial:
    """Quality with the update latency Ekko reaches on the simulated 10-DC WAN, measured in this trial."""
    from baselines.checkpoint_broadcast import broadcast_time_s
    from impls.ekko.quality import freshness_quality
    from workloads import catalog

    def run() -> dict[str, float]:
        stream = catalog.load(p["latency_workload"])
        sim = run_ekko(stream, p)
        ekko_latency = sim["latency_p99_s"]
        transfer = CHECKPOINT_VALIDATE_S + broadcast_time_s(_wan(p), stream.n_keys * ROW_BYTES)
        figures = freshness_quality(ekko_latency, CHECKPOINT_PERIOD_S, transfer, steps=ctr.steps, seed=ctr.seed)
        return {**figures, "ekko_latency_p99_s": ekko_latency, "time_s": figures["staleness_ekko_s"]}
    return Trial(run=run)


def build_rollback(ctr, p: dict[str, Any]) -> Trial:
    from impls.ekko.quality import rollback_experiment

    def run() -> dict[str, float]:
        return rollback_experiment(p["harm"], steps=max(120, ctr.steps // 2), inject_step=60, seed=ctr.seed)

    def check(figures: dict[str, float]) -> None:
        assert figures["detected"] == 1.0, f"the {p['harm']} harmful update was not detected"
    return Trial(run=run, check=check)


BUILDERS = {"ekko": build_ekko, "adam": build_adam, "checkpoint": build_checkpoint, "savings": build_savings,
            "wan_savings": build_wan_savings, "freshness": build_freshness, "rollback": build_rollback}


def experiments() -> list[Experiment]:
    return GRIDS.experiments(NAME, BUILDERS)


def _dcs_plot(metric: str, label: str, latency: str, scenario: str) -> dict[str, Any]:
    return {"title": f"Update latency {label} vs number of DCs: Ekko vs Adam push, {scenario}",
            "select": {"system": NAME, "impl": ["ekko", "adam_push"], "latency": latency,
                       "offered_load": CLAIM_LOAD, "bandwidth_gbps": BANDWIDTH_GBPS, "workload": "ekko-updates-*",
                       "scenario": "fault-free"},
            "x": "dcs", "y": metric, "hue": "impl", "xlabel": "number of data centres",
            "ylabel": f"update latency {label} (s, simulated)", "series": "{}", "style": "line",
            "floor": "floor_s", "logx": False, "logy": True}


PLOTS = [
    _dcs_plot("latency_p50_s", "p50", CLAIM_LATENCY, "uniform 50 ms, 10% load"),
    _dcs_plot("latency_p99_s", "p99", CLAIM_LATENCY, "uniform 50 ms, 10% load"),
    _dcs_plot("latency_p50_s", "p50", "geo", "geo matrix of real cities, 10% load"),
    {"title": "Update latency p50 vs offered load: Ekko vs Adam push, 10 DCs, uniform 50 ms",
     "select": {"system": NAME, "impl": ["ekko", "adam_push"], "dcs": 10, "latency": CLAIM_LATENCY,
                "bandwidth_gbps": BANDWIDTH_GBPS, "workload": "ekko-updates-*", "scenario": "fault-free"},
     "x": "offered_load", "y": "latency_p50_s", "hue": "impl", "xlabel": "offered load (fraction of one NIC)",
     "ylabel": "update latency p50 (s, simulated)", "series": "{}", "style": "line", "floor": "floor_s",
     "logx": True, "logy": True},
    {"title": "Bytes saved against FIFO: scheduler, compression, both (online CTR model)",
     "select": {"system": NAME, "impl": "ekko-dissemination"},
     "x": "variant", "y": "bytes_saved_fraction", "hue": "impl", "xlabel": "dissemination stage",
     "ylabel": "share of update bytes saved (simulated)", "series": "{}", "style": "points",
     "logx": False, "logy": False},
    {"title": "Quality cost against FIFO: scheduler, compression, both (online CTR model)",
     "select": {"system": NAME, "impl": "ekko-dissemination"},
     "x": "variant", "y": "quality_loss", "hue": "impl", "xlabel": "dissemination stage",
     "ylabel": "relative logloss increase (simulated)", "series": "{}", "style": "points",
     "logx": False, "logy": False},
]


def _finite_json(figures: dict[str, Any]) -> dict[str, Any]:
    """Figures as strict JSON: a value that is not finite (a ratio over a zero floor) becomes null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in figures.items()}


def _check_positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be positive and finite, got {value}")


def _testbed_options(latency: str, dcs: int | None) -> int:
    """The DC count: a latency FILE fixes it (and --dcs must agree); otherwise --dcs, 10 by default."""
    from wan.latency import dcs_in, latency_matrix

    try:
        in_file = dcs_in(latency)
        if in_file is not None and dcs is not None and dcs != in_file:
            raise ValueError(f"the latency file has {in_file} DCs, but --dcs is {dcs}")
        n = in_file or dcs or 10
        latency_matrix(latency, n)
    except ValueError as exc:
        raise ValueError(f"--latency {latency}: {exc}") from None
    return n


LATENCY_HELP = ("one-way latencies between DCs: geo (real cities), uniform:MS, or a CSV FILE of N x N "
                "milliseconds (symmetric, zero diagonal, positive)")


@click.group(help="Ekko: run the WAN simulation or the real-process cluster directly.")
def cli() -> None:
    pass


@cli.command("simulate")
@click.option("--workload", default="ekko-updates-quick", show_default=True, help="an ekko-updates-* workload")
@click.option("--dcs", default=None, type=click.IntRange(1, 64), help="number of DCs  [default: 10, or the FILE's]")
@click.option("--latency", default=CLAIM_LATENCY, show_default=True, help=LATENCY_HELP)
@click.option("--offered-load", default=None, type=float,
              help="update rate as a fraction of one NIC's capacity  [default: the stream's own rate]")
@click.option("--bandwidth-gbps", default=BANDWIDTH_GBPS, show_default=True, type=float, help="NIC rate per server")
@click.option("--row-bytes", default=ROW_BYTES, show_default=True, type=click.IntRange(1, 1 << 24),
              help="wire size of one stream update")
@click.option("--impl", type=click.Choice(["ekko", "adam_push"]), default="ekko", show_default=True)
def simulate_cmd(workload: str, dcs: int | None, latency: str, offered_load: float | None, bandwidth_gbps: float,
                 row_bytes: int, impl: str) -> None:
    """One simulated run; prints its figures (simulated), the floor and the wall time as JSON."""
    from workloads import catalog

    _check_positive("--bandwidth-gbps", bandwidth_gbps)
    if offered_load is not None:
        _check_positive("--offered-load", offered_load)
    n_dcs = _testbed_options(latency, dcs)
    try:
        kind = catalog.get(workload).kind
    except ValueError as exc:
        raise ValueError(f"--workload: {exc}") from None
    if kind != "updates":
        raise ValueError(f"--workload {workload} is a {kind} workload; ekko simulate replays an update stream "
                         f"(e.g. ekko-updates-quick)")
    t0 = time.perf_counter()
    stream = catalog.load(workload)
    loaded = time.perf_counter() - t0
    p = {"dcs": n_dcs, "bandwidth_gbps": bandwidth_gbps, "latency": latency, "offered_load": offered_load,
         "impl_cache": True, "row_bytes": row_bytes}
    t1 = time.perf_counter()
    figures = run_ekko(stream, p) if impl == "ekko" else run_adam(stream, p)
    why = _unfinished(figures)
    if why is not None:
        raise ValueError(f"the run did not finish: {why}; at --bandwidth-gbps {bandwidth_gbps:g} with "
                         f"--row-bytes {row_bytes} the NICs cannot carry this stream in time")
    load = figures["updates_per_s"] * row_bytes * 8 / (bandwidth_gbps * 1e9)
    click.echo(json.dumps(_finite_json({
        "impl": impl, "workload": workload, "dcs": n_dcs, "latency": latency, "offered_load": load,
        "bandwidth_gbps": bandwidth_gbps, "row_bytes": row_bytes, "kind": "simulated", "load_s": round(loaded, 2),
        "simulation_wall_s": round(time.perf_counter() - t1, 2), **figures}), indent=1, allow_nan=False))


@cli.command("processes")
@click.option("--updates", default=200_000, show_default=True, type=click.IntRange(1, 10_000_000))
@click.option("--dcs", default=None, type=click.IntRange(1, 8), help="number of DCs  [default: 2, or the FILE's]")
@click.option("--servers-per-dc", default=3, show_default=True, type=click.IntRange(1, 8))
@click.option("--latency", default=None, help=LATENCY_HELP + "; delays added by the transport  [default: none]")
@click.option("--offered-load", default=None, type=float,
              help="paces the writes at this fraction of a --bandwidth-gbps NIC with --row-bytes rows "
                   "[default: as fast as the servers take them]")
@click.option("--bandwidth-gbps", default=BANDWIDTH_GBPS, show_default=True, type=float,
              help="the nominal NIC that --offered-load refers to")
@click.option("--row-bytes", default=ROW_BYTES, show_default=True, type=click.IntRange(1, 1 << 24),
              help="the nominal row size that --offered-load refers to")
@click.option("--kill", "kill_server", type=int, default=None, help="kill and restart this server half-way")
@click.option("--timeout", "timeout_s", default=120.0, show_default=True, type=float)
@click.option("--ray", "ray_address", metavar="ADDRESS",
              help="start the servers on the nodes of a Ray cluster: auto (join the running one), "
                   "local (start one for this run) or HOST:PORT  [default: child processes on loopback]")
def processes_cmd(updates: int, dcs: int | None, servers_per_dc: int, latency: str | None,
                  offered_load: float | None, bandwidth_gbps: float, row_bytes: int, kill_server: int | None,
                  timeout_s: float, ray_address: str | None) -> None:
    """Real server processes (on loopback, or on Ray nodes): distinct keys/s and updates/s, first write to every
    replica agreeing."""
    import contextlib

    from impls.ekko.process import ClusterConfig, run_cluster
    from wan.latency import latency_matrix
    from workloads.ekko_updates import at_rate, generate_updates

    _check_positive("--timeout", timeout_s)
    _check_positive("--bandwidth-gbps", bandwidth_gbps)
    if offered_load is not None:
        _check_positive("--offered-load", offered_load)
    n_dcs = _testbed_options(latency, dcs) if latency is not None else (dcs or 2)
    config = ClusterConfig(n_dcs=n_dcs, servers_per_dc=servers_per_dc, n_shards=4 * servers_per_dc,
                           latency_ms=() if latency is None else
                           tuple(map(tuple, (latency_matrix(latency, n_dcs) * 1e3).tolist())))
    if kill_server is not None and not 0 <= kill_server < config.n_servers:
        raise ValueError(f"--kill {kill_server}: no such server; servers are 0..{config.n_servers - 1}")
    stream = generate_updates(updates, max(10 * updates, 100_000), 10.0, simulated_hours=3.0, seed=4)
    if offered_load is not None:
        stream = at_rate(stream, offered_rate(offered_load, bandwidth_gbps, row_bytes))
    with contextlib.ExitStack() as stack:
        if ray_address is not None:
            from harness import cluster

            stack.enter_context(cluster.joined(ray_address))
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="ekko-cluster-"))
        r = run_cluster(stream, config, workdir=workdir, kill=None if kill_server is None else (kill_server, 0.5),
                        timeout_s=timeout_s, paced=offered_load is not None,
                        placement="local" if ray_address is None else "ray")
    click.echo(json.dumps({"kind": "measured", "processes": config.n_servers, "nodes": len(set(r.nodes)),
                           "updates": r.updates,
                           "distinct_keys": r.distinct_keys, "elapsed_s": round(r.elapsed_s, 3),
                           "distinct_keys_per_s": round(r.distinct_keys / r.elapsed_s),
                           "updates_per_s": round(r.updates_per_s), "converged": r.converged,
                           "latency": latency or "none", "offered_load": offered_load, "network": r.network},
                          indent=1))


SYSTEM = System(NAME, experiments, cli=cli, plots=PLOTS)
