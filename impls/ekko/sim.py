"""Ekko on the discrete-event WAN: training writes, SLO scheduling, anti-entropy, faults.

`simulate_ekko` replays an update stream.  Training sits in DC 0; each update goes
through the scheduler (or straight through, FIFO) and is committed on the shard's
server in DC 0, which acknowledges it.  While that server is down, training holds
the update and commits it when the server is back.  Every `sync_interval_s` each
server sends its pulls (see `EkkoServer.on_tick`) straight to the peer servers that
hold the same shards; answers leave from the server that holds the shard.  After the
stream and the faults end, the run continues until every replica of every shard holds
the same version vector (hence the same writes), or `max_drain_s` passes.

All figures are simulated.  Beside the latencies: the physical floor (`wan.metrics`),
WAN payload against its minimum (every write crossing into every other DC once) and
the bytes per NIC.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from impls.ekko.core import Applied, EkkoServer, ProtocolConfig, Send
from impls.ekko.scheduler import SchedulerConfig, SloScheduler
from wan.metrics import latency_summary, nic_spread, physical_floor_s
from wan.network import FaultSchedule, Network, WanConfig
from workloads.ekko_updates import UpdateStream


@dataclass
class WriteLog:
    """Commits at the origin: one row per write, and which stream updates each write carried."""

    keys: list[int] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    shards: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    carried_by: np.ndarray | None = None   # per update: index of the write that carried it


def cover_times(write_keys: np.ndarray, write_versions: np.ndarray,
                event_keys: np.ndarray, event_versions: np.ndarray, event_times: np.ndarray) -> np.ndarray:
    """For each write, the first time a replica held that key at that version or newer (inf if never).

    Events are one replica's applied (key, version, time); a replica's version of a key
    only grows, so the event with the smallest version >= the write's is the earliest.
    """
    if len(event_keys) == 0:
        return np.full(len(write_keys), np.inf)
    all_versions = np.unique(write_versions)
    key_ids, key_rank = np.unique(np.concatenate([write_keys, event_keys]), return_inverse=True)
    wk, ek = key_rank[:len(write_keys)], key_rank[len(write_keys):]
    stride = len(all_versions) + 1
    e_comp = ek * stride + np.searchsorted(all_versions, event_versions)
    w_comp = wk * stride + np.searchsorted(all_versions, write_versions)
    order = np.argsort(e_comp, kind="stable")
    e_comp, e_key, e_time = e_comp[order], ek[order], event_times[order]
    idx = np.searchsorted(e_comp, w_comp)
    ok = idx < len(e_comp)
    idx_c = np.minimum(idx, len(e_comp) - 1)
    ok &= e_key[idx_c] == wk
    return np.where(ok, e_time[idx_c], np.inf)


@dataclass
class EkkoSimResult:
    latencies: np.ndarray                 # per stream update, seconds (inf: never reached every DC)
    digests: list[dict[int, str]]         # per DC: shard -> digest
    converged: bool
    converged_at_s: float
    figures: dict[str, float]


def simulate_ekko(stream: UpdateStream, wan: WanConfig, protocol: ProtocolConfig | None = None, *,
                  n_shards: int = 24, scheduler: SchedulerConfig | None = None,
                  faults: FaultSchedule | None = None, seed: int = 0, max_drain_s: float = 30.0,
                  write_batch_s: float = 0.001) -> EkkoSimResult:
    """Replay `stream` on Ekko over `wan`; `scheduler=None` means FIFO (every update written at once)."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    protocol = protocol or ProtocolConfig(n_origins=wan.n_servers)
    if protocol.n_origins < wan.n_servers:
        raise ValueError(f"protocol.n_origins ({protocol.n_origins}) < number of servers ({wan.n_servers})")
    m = wan.servers_per_dc
    servers: list[EkkoServer] = []
    for sid in range(wan.n_servers):
        dc, idx = divmod(sid, m)
        shards = [s for s in range(n_shards) if s % m == idx]
        peers = {d: d * m + idx for d in range(wan.n_dcs)}
        servers.append(EkkoServer(sid, dc, shards, peers, protocol, seed, servers_per_dc=m))
    # Per server: (keys, versions, time) for what pulls made visible there.
    events: list[list[tuple[np.ndarray, np.ndarray, float | np.ndarray]]] = [[] for _ in servers]
    stats_answers = {"unchanged": 0, "cache": 0, "full": 0}

    def dispatch(src: int, actions: list) -> None:
        for a in actions:
            if isinstance(a, Send):
                net.send(src, a.dst, a.message, a.payload_bytes, a.meta_bytes)
            elif isinstance(a, Applied):
                events[a.server].append((a.keys, a.versions, net.now))

    def deliver(dst: int, message: object) -> None:
        server = servers[dst]
        if server.up:
            dispatch(dst, server.on_message(message, net.now))

    net = Network(wan, deliver, seed=seed, faults=faults)
    sched = SloScheduler(scheduler, stream.model_shares) if scheduler is not None else None
    log = WriteLog(carried_by=np.full(len(stream), -1, dtype=np.int64))
    held: list[tuple[int, list[int]]] = []   # (key, update ids) waiting for a down origin

    written: set[int] = set()   # origins with writes since their held pulls were last released

    def commit(key: int, update_ids: list[int]) -> None:
        shard = key % n_shards
        owner = servers[shard % m]
        if not owner.up:
            held.append((key, update_ids))
            return
        written.add(owner.id)
        # The version's timestamp is the training time of the newest carried update, so a
        # commit delayed by a fault gets the same version as in a fault-free run.
        version = owner.write(shard, key, stream.values[update_ids[-1]], float(stream.times[update_ids[-1]]))
        log.carried_by[update_ids] = len(log.keys)
        log.keys.append(key), log.versions.append(version), log.shards.append(shard), log.times.append(net.now)

    def feed(lo: int, hi: int) -> None:
        keys, mags, models, new = stream.keys, stream.magnitudes, stream.models, stream.is_new
        for u in range(lo, hi):
            if sched is None:
                commit(int(keys[u]), [u])
            else:
                ids = sched.submit(u, int(keys[u]), float(mags[u]), int(models[u]), bool(new[u]))
                if ids is not None:
                    commit(int(keys[u]), ids)
        if sched is not None:
            for key, ids in sched.flush_due(net.now).items():
                commit(key, ids)
        release_written()

    def release_written() -> None:
        for sid in sorted(written):
            dispatch(sid, servers[sid].release(net.now))
        written.clear()

    # Training feed, in small time batches.
    bounds = np.searchsorted(stream.times, np.arange(0, stream.duration_s + write_batch_s, write_batch_s), "right")
    lo = 0
    for i, hi in enumerate(bounds.tolist()):
        if hi > lo:
            net.at(i * write_batch_s, feed, lo, hi)
            lo = hi
    end_feed = stream.duration_s + write_batch_s
    if sched is not None:
        def flush_all() -> None:
            for k, ids in sched.flush_all().items():
                commit(k, ids)
            release_written()
        net.at(end_feed, flush_all)

    def tick(sid: int) -> None:
        server = servers[sid]
        if server.up:
            dispatch(sid, server.on_tick(net.now))
        net.at(net.now + protocol.sync_interval_s, tick, sid)

    phase = np.random.default_rng(seed).uniform(0, protocol.sync_interval_s, wan.n_servers)
    for sid in range(wan.n_servers):
        net.at(float(phase[sid]), tick, sid)

    def on_crash(sid: int) -> None:
        servers[sid].crash()

    def on_restart(sid: int) -> None:
        servers[sid].restart()
        if sid < m:   # an origin is back: commit what training held for it
            waiting = [(k, ids) for k, ids in held if (k % n_shards) % m == sid]
            held[:] = [(k, ids) for k, ids in held if (k % n_shards) % m != sid]
            for k, ids in waiting:
                commit(k, ids)
            release_written()

    net.schedule_faults(on_crash, on_restart)
    quiet_from = max(end_feed, net.faults.end_s) + 1e-9

    def all_equal() -> bool:
        if net.now < quiet_from or held or not net.up.all():
            return False
        for s in range(n_shards):
            ref = servers[s % m].group.vv_of(s)
            for d in range(1, wan.n_dcs):
                if not np.array_equal(servers[d * m + s % m].group.vv_of(s), ref):
                    return False
        return True

    converged_at = [float("nan")]

    def check() -> None:
        if all_equal():
            converged_at[0] = net.now
        else:
            net.at(net.now + protocol.sync_interval_s, check)

    net.at(quiet_from, check)
    net.run(quiet_from + max_drain_s, stop=lambda: not np.isnan(converged_at[0]))
    converged = not np.isnan(converged_at[0])

    # Latency: per write, the first time every DC held it; per update, from its training time.
    wk = np.asarray(log.keys, dtype=np.int64)
    wv = np.asarray(log.versions, dtype=np.int64)
    ws = np.asarray(log.shards, dtype=np.int64)
    wt = np.asarray(log.times, dtype=float)
    all_dc = np.zeros(len(wk))
    for dc in range(wan.n_dcs):
        cover = np.full(len(wk), np.inf)
        for idx in range(m):
            mine = (ws % m) == idx
            evs = events[dc * m + idx]
            if dc == 0:   # the origin holds its own commits from the moment it makes them
                evs = evs + [(wk[mine], wv[mine], wt[mine])]
            if not evs:
                continue
            ek = np.concatenate([e[0] for e in evs])
            ev = np.concatenate([e[1] for e in evs])
            et = np.concatenate([np.broadcast_to(e[2], len(e[0])) for e in evs])
            cover[mine] = cover_times(wk[mine], wv[mine], ek, ev, et)
        all_dc = np.maximum(all_dc, cover)
    carried = log.carried_by
    lat = np.full(len(stream), np.inf)
    ok = carried >= 0
    lat[ok] = all_dc[carried[ok]] - stream.times[ok]

    for server in servers:
        for path, n in server.stats.paths.items():
            stats_answers[path] += n
    compared = sum(s.stats.keys_compared for s in servers)
    answers = sum(stats_answers.values())
    changed = stats_answers["cache"] + stats_answers["full"]
    keys_held = max(float(np.mean(np.concatenate([s.group.sizes for s in servers]))),
                    float(protocol.keys_per_shard))
    t = net.traffic
    min_payload = float(len(wk)) * protocol.row_bytes * (wan.n_dcs - 1)
    figures = {
        **latency_summary(lat, physical_floor_s(wan, protocol.row_bytes)),
        **nic_spread(net.tx_bytes, net.rx_bytes),
        "wan_payload_bytes": float(t.wan_payload_bytes), "wan_meta_bytes": float(t.wan_meta_bytes),
        "wan_payload_min_bytes": min_payload,
        "wan_payload_over_min": t.wan_payload_bytes / min_payload if min_payload else float("nan"),
        "wan_bytes": float(t.wan_payload_bytes + t.wan_meta_bytes), "lan_bytes": float(t.lan_bytes),
        "messages": float(t.messages), "dropped_messages": float(t.dropped),
        "pulls": float(sum(s.stats.pulls for s in servers)),
        "pulls_held": float(sum(s.stats.held for s in servers)),
        "pulls_lost": float(sum(s.stats.timeouts for s in servers)),
        "writes": float(len(wk)), "updates": float(len(stream)),
        "keys_compared_per_sync": compared / answers if answers else 0.0,
        "keys_compared_fraction": (compared / answers) / keys_held if answers and keys_held else 0.0,
        "cache_hit_ratio": stats_answers["cache"] / changed if changed else float("nan"),
        "cache_fraction": min(1.0, protocol.cache_capacity / keys_held) if protocol.use_cache and keys_held else 0.0,
        "unchanged_fast_path_ratio": stats_answers["unchanged"] / answers if answers else float("nan"),
        "converged": float(converged),
    }
    digests = [{s: d for idx in range(m) for s, d in servers[dc * m + idx].digests().items()}
               for dc in range(wan.n_dcs)]
    return EkkoSimResult(lat, digests, converged, converged_at[0], figures)
