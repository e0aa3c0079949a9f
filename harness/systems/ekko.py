"""Ekko: model-update dissemination on a simulated WAN, against central push and checkpoints.

Every experiment here is "simulated": the discrete-event WAN of `impls.ekko.wan`
(latency, bandwidth, serialisation), or the online CTR model of
`impls.ekko.quality`, run once per trial.

Families:
* dcs sweep: update latency (p50/p99/max), WAN bytes, keys compared and cache
  figures vs the number of DCs, for Ekko, Adam-style central push, checkpoint
  broadcast, and Ekko without cache/DVV (the ablation);
* bandwidth sweep at 10 DCs, Ekko vs Adam;
* scheduler: WAN rows shipped and quality, priority scheduling vs FIFO (CTR model);
* freshness: quality and staleness with Ekko's simulated latency vs checkpoints vs the oracle;
* rollback: harmful updates detected, redirected and rolled back.
"""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any

import click
import numpy as np

from harness.registry import Experiment, Trial, experiment

SYSTEM = "ekko"
SERVERS_PER_DC = 3          # 10 DCs x 3 = the paper's 30-server testbed
N_SHARDS = 24
ROW_BYTES = 65536           # one stream update = a 64 KB block of embedding rows
CACHE_FRACTION = 0.0015     # cache capacity as a share of a shard's keys (paper: 0.13-0.2%)
SYNC_INTERVAL_S = 0.02
CHECKPOINT_PERIOD_S = 1800.0
CHECKPOINT_VALIDATE_S = 60.0
MAX_DRAIN_S = 120.0         # an overloaded link (1 Gbps at 10 DCs) needs time to drain its backlog

QUICK_UPDATES, FULL_UPDATES = "ekko-updates-quick", "ekko-updates-full"
QUICK_CTR, FULL_CTR = "ekko-ctr-quick", "ekko-ctr-full"
QUICK_DCS = (1, 2, 4, 6, 8, 10)
FULL_DCS = (1, 2, 4, 6, 8, 10, 12, 16)


def _wan(p: dict[str, Any]):
    from wan.network import WanConfig

    bw = p["bandwidth_gbps"] * 1e9
    return WanConfig(n_dcs=p["dcs"], servers_per_dc=SERVERS_PER_DC, topology="geo", nic_bandwidth_bps=bw)


def _protocol(stream, wan, use_cache: bool = True, row_bytes: int = ROW_BYTES):
    from impls.ekko.core import ProtocolConfig

    keys_per_shard = int(np.ceil(stream.n_keys / N_SHARDS))
    return ProtocolConfig(n_origins=wan.n_servers, cache_capacity=max(1, round(CACHE_FRACTION * keys_per_shard)),
                          use_cache=use_cache, sync_interval_s=SYNC_INTERVAL_S, row_bytes=row_bytes,
                          keys_per_shard=keys_per_shard)


def _check_converged(figures: dict[str, float]) -> None:
    assert figures["converged"] == 1.0, "replicas did not converge"
    assert figures["unreplicated_updates"] == 0, f"{figures['unreplicated_updates']:.0f} updates never reached every DC"


def build_ekko(stream, p: dict[str, Any]) -> Trial:
    from impls.ekko.sim import simulate_ekko

    def run() -> dict[str, float]:
        wan = _wan(p)
        protocol = _protocol(stream, wan, use_cache=p["impl_cache"], row_bytes=p.get("row_bytes", ROW_BYTES))
        result = simulate_ekko(stream, wan, protocol, n_shards=N_SHARDS, seed=0, max_drain_s=MAX_DRAIN_S)
        digests_agree = all(d == result.digests[0] for d in result.digests)
        return {**result.figures, "digests_agree": float(digests_agree)}

    def check(figures: dict[str, float]) -> None:
        _check_converged(figures)
        assert figures["digests_agree"] == 1.0, "replica digests differ between DCs"
    return Trial(run=run, check=check)


def build_adam(stream, p: dict[str, Any]) -> Trial:
    from baselines.adam_push import simulate_adam

    def run() -> dict[str, float]:
        return simulate_adam(stream, _wan(p), row_bytes=p.get("row_bytes", ROW_BYTES), n_shards=N_SHARDS,
                             max_drain_s=MAX_DRAIN_S).figures

    def check(figures: dict[str, float]) -> None:
        assert figures["unreplicated_updates"] == 0, "central push left updates uncommitted"
    return Trial(run=run, check=check)


def build_checkpoint(stream, p: dict[str, Any]) -> Trial:
    from baselines.checkpoint_broadcast import simulate_checkpoint_broadcast

    return Trial(run=lambda: simulate_checkpoint_broadcast(stream, _wan(p), period_s=CHECKPOINT_PERIOD_S,
                                                           validate_s=CHECKPOINT_VALIDATE_S,
                                                           row_bytes=ROW_BYTES).figures)


def build_scheduler(ctr, p: dict[str, Any]) -> Trial:
    from impls.ekko.quality import scheduler_savings
    from impls.ekko.scheduler import SchedulerConfig

    config = SchedulerConfig(percentile=p["percentile"], low_flush_s=p["low_flush_s"])

    def run() -> dict[str, float]:
        figures = scheduler_savings(ctr.steps, scheduler=config, seed=ctr.seed)
        return {**figures, "time_s": figures["staleness_priority_s"]}
    return Trial(run=run)


def build_wan_scheduler(stream, p: dict[str, Any]) -> Trial:
    """WAN bytes with the priority scheduler vs FIFO on the simulated WAN, both in this trial."""
    from impls.ekko.scheduler import SchedulerConfig
    from impls.ekko.sim import simulate_ekko

    def run() -> dict[str, float]:
        wan = _wan(p)
        protocol = _protocol(stream, wan)
        config = SchedulerConfig(percentile=p["percentile"], low_flush_s=p["low_flush_s"])
        prio = simulate_ekko(stream, wan, protocol, n_shards=N_SHARDS, scheduler=config).figures
        fifo = simulate_ekko(stream, wan, protocol, n_shards=N_SHARDS).figures
        return {"wan_sim_bytes_saved_fraction": 1.0 - prio["wan_bytes"] / fifo["wan_bytes"],
                "wan_bytes_priority": prio["wan_bytes"], "wan_bytes_fifo": fifo["wan_bytes"],
                "latency_p50_priority_s": prio["latency_p50_s"], "latency_p50_fifo_s": fifo["latency_p50_s"],
                "converged": min(prio["converged"], fifo["converged"]), "time_s": prio["latency_p50_s"]}

    def check(figures: dict[str, float]) -> None:
        assert figures["converged"] == 1.0, "replicas did not converge"
    return Trial(run=run, check=check)


def build_freshness(ctr, p: dict[str, Any]) -> Trial:
    """Quality with the update latency Ekko reaches on the simulated 10-DC WAN, measured in this trial."""
    from baselines.checkpoint_broadcast import broadcast_time_s
    from impls.ekko.quality import freshness_quality
    from impls.ekko.sim import simulate_ekko
    from workloads import catalog

    def run() -> dict[str, float]:
        stream = catalog.load(p["latency_workload"])
        wan = _wan({"dcs": p["dcs"], "bandwidth_gbps": p["bandwidth_gbps"]})
        sim = simulate_ekko(stream, wan, _protocol(stream, wan), n_shards=N_SHARDS)
        ekko_latency = sim.figures["latency_p99_s"]
        transfer = CHECKPOINT_VALIDATE_S + broadcast_time_s(wan, stream.n_keys * ROW_BYTES)
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


def _sim(impl: str, build, workload: str, tier: str, dcs: int, bandwidth: float, description: str,
         **extra: Any) -> Experiment:
    return experiment(SYSTEM, impl, "cpu", workload, build, params={"dcs": dcs, "bandwidth_gbps": bandwidth, **extra},
                      kind="simulated", tiers=tier, description=description)


def experiments() -> list[Experiment]:
    out: list[Experiment] = []
    for tier, updates, ctr, dcs_list in (("quick", QUICK_UPDATES, QUICK_CTR, QUICK_DCS),
                                         ("full", FULL_UPDATES, FULL_CTR, FULL_DCS)):
        for dcs in dcs_list:
            out.append(_sim("ekko", build_ekko, updates, tier, dcs, 5,
                            f"Ekko P2P anti-entropy, {dcs} DCs, 5 Gbps", impl_cache=True))
            out.append(_sim("adam_push", build_adam, updates, tier, dcs, 5,
                            f"central push with two-phase commit, {dcs} DCs, 5 Gbps"))
            out.append(_sim("checkpoint_broadcast", build_checkpoint, updates, tier, dcs, 5,
                            f"checkpoint every {CHECKPOINT_PERIOD_S:.0f} s and broadcast, {dcs} DCs"))
        for dcs in (4, 10):
            out.append(_sim("ekko-no-cache", build_ekko, updates, tier, dcs, 5,
                            f"ablation: Ekko P2P without cache/DVV, {dcs} DCs", impl_cache=False))
        for bw in (1, 10):
            out.append(_sim("ekko", build_ekko, updates, tier, 10, bw, f"Ekko, 10 DCs, {bw} Gbps", impl_cache=True))
            out.append(_sim("adam_push", build_adam, updates, tier, 10, bw, f"central push, 10 DCs, {bw} Gbps"))
        out.append(experiment(SYSTEM, "ekko-scheduler", "cpu", updates, build_wan_scheduler,
                              params={"dcs": 4, "bandwidth_gbps": 5, "percentile": 90.0, "low_flush_s": 0.5},
                              kind="simulated", tiers=tier,
                              description="SLO-aware scheduler vs FIFO on the simulated WAN: bytes and latency"))
        out.append(experiment(SYSTEM, "ekko", "cpu", ctr, build_scheduler,
                              params={"percentile": 90.0, "low_flush_s": 600.0}, kind="simulated", tiers=tier,
                              description="SLO-aware scheduler vs FIFO: rows shipped and quality (online CTR model)"))
        out.append(experiment(SYSTEM, "ekko", "cpu", ctr, build_freshness,
                              params={"dcs": 10, "bandwidth_gbps": 5, "latency_workload": updates},
                              kind="simulated", tiers=tier,
                              description="quality and staleness: Ekko latency vs checkpoints vs always-fresh oracle"))
        for harm in ("overflow", "biased"):
            out.append(experiment(SYSTEM, "ekko", "cpu", ctr, build_rollback, params={"harm": harm},
                                  kind="simulated", tiers=tier,
                                  description=f"model-state manager: detect, redirect, roll back ({harm})"))
    return out


PLOTS = [
    {"title": "Update latency p50 vs number of DCs: Ekko vs Adam push, 5 Gbps",
     "select": {"system": SYSTEM, "impl": ["ekko", "adam_push"], "bandwidth_gbps": 5, "workload": "ekko-updates-*"},
     "x": "dcs", "y": "latency_p50_s", "hue": "impl", "logx": False, "logy": True},
    {"title": "Update latency p99 vs number of DCs: Ekko vs Adam push, 5 Gbps",
     "select": {"system": SYSTEM, "impl": ["ekko", "adam_push"], "bandwidth_gbps": 5, "workload": "ekko-updates-*"},
     "x": "dcs", "y": "latency_p99_s", "hue": "impl", "logx": False, "logy": True},
]


@click.group(help="Ekko: run the WAN simulation or the real-process cluster directly.")
def cli() -> None:
    pass


@cli.command("simulate")
@click.option("--workload", default=QUICK_UPDATES, show_default=True, help="an ekko-updates-* workload")
@click.option("--dcs", default=10, show_default=True, type=click.IntRange(1, 16))
@click.option("--bandwidth-gbps", default=5.0, show_default=True, type=float)
@click.option("--row-bytes", default=ROW_BYTES, show_default=True, type=click.IntRange(0, 1 << 24),
              help="wire size of one stream update")
@click.option("--impl", type=click.Choice(["ekko", "adam_push"]), default="ekko", show_default=True)
def simulate_cmd(workload: str, dcs: int, bandwidth_gbps: float, row_bytes: int, impl: str) -> None:
    """One simulated run; prints its figures (simulated) and the wall time as JSON."""
    from workloads import catalog

    t0 = time.perf_counter()
    stream = catalog.load(workload)
    loaded = time.perf_counter() - t0
    p = {"dcs": dcs, "bandwidth_gbps": bandwidth_gbps, "impl_cache": True, "row_bytes": row_bytes}
    trial = build_ekko(stream, p) if impl == "ekko" else build_adam(stream, p)
    t1 = time.perf_counter()
    figures = trial.run()
    if trial.check is not None:
        trial.check(figures)
    click.echo(json.dumps({"impl": impl, "workload": workload, "dcs": dcs, "bandwidth_gbps": bandwidth_gbps,
                           "row_bytes": row_bytes,
                           "kind": "simulated", "load_s": round(loaded, 2),
                           "simulation_wall_s": round(time.perf_counter() - t1, 2), **figures}, indent=1))


@cli.command("processes")
@click.option("--updates", default=200_000, show_default=True, type=click.IntRange(1, 10_000_000))
@click.option("--dcs", default=2, show_default=True, type=click.IntRange(1, 8))
@click.option("--servers-per-dc", default=3, show_default=True, type=click.IntRange(1, 8))
@click.option("--kill", "kill_server", type=int, default=None, help="kill and restart this server half-way")
@click.option("--timeout", "timeout_s", default=120.0, show_default=True, type=float)
def processes_cmd(updates: int, dcs: int, servers_per_dc: int, kill_server: int | None, timeout_s: float) -> None:
    """Real server processes on loopback: key updates/s from first write to every replica agreeing (measured)."""
    from impls.ekko.process import ClusterConfig, run_cluster
    from workloads.ekko_updates import generate_updates

    stream = generate_updates(updates, max(10 * updates, 100_000), 10.0, simulated_hours=3.0, seed=4)
    config = ClusterConfig(n_dcs=dcs, servers_per_dc=servers_per_dc, n_shards=4 * servers_per_dc)
    with tempfile.TemporaryDirectory(prefix="ekko-cluster-") as workdir:
        r = run_cluster(stream, config, workdir=workdir, kill=None if kill_server is None else (kill_server, 0.5),
                        timeout_s=timeout_s)
    click.echo(json.dumps({"kind": "measured", "processes": config.n_servers, "updates": r.updates,
                           "elapsed_s": round(r.elapsed_s, 3), "updates_per_s": round(r.updates_per_s),
                           "converged": r.converged, "network": r.network}, indent=1))
