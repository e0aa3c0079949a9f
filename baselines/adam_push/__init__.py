"""Project Adam-style central push (Chilimbi et al., OSDI 2014) on Ekko's simulated WAN.

Each shard group has a central leader: its server in DC 0, where training runs.
Every `batch_s` the leader turns the updates it received into one transaction and
runs a two-phase commit with every replica of the group in the other DCs:

1. PREPARE, carrying the rows, to each replica; each replica stages them and votes;
2. when every vote is in (and the previous transaction has committed, so replicas
   apply transactions in order), COMMIT to each replica, which then applies the rows.

The leader sends one copy of every row to every other DC through its own NIC, and a
transaction waits for the slowest replica: that is why latency grows with the
number of DCs.  Messages go directly from server to server, on the same WAN model and
under the same rules as Ekko (`wan.network`).  All figures are simulated, with the
physical floor beside the latencies (`wan.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wan.metrics import latency_summary, nic_spread, physical_floor_s
from wan.network import Network, WanConfig
from wan.wire import HEADER_BYTES, KEY_BYTES, VERSION_BYTES
from workloads.ekko_updates import UpdateStream


@dataclass
class _Txn:
    update_ids: np.ndarray
    votes: int = 0
    committed: bool = False


@dataclass
class _Leader:
    txns: list[_Txn] = field(default_factory=list)
    next_commit: int = 0


@dataclass
class AdamSimResult:
    latencies: np.ndarray
    figures: dict[str, float]


def simulate_adam(stream: UpdateStream, wan: WanConfig, *, row_bytes: int = 256, n_shards: int = 24,
                  batch_s: float = 0.001,
                  seed: int = 0, max_drain_s: float = 60.0) -> AdamSimResult:
    """Replay `stream` with central push and two-phase commit; per-update latency to every DC."""
    if row_bytes < 0:
        raise ValueError(f"row_bytes must be >= 0, got {row_bytes}")
    if not batch_s > 0:
        raise ValueError(f"batch_s must be positive, got {batch_s}")
    m = wan.servers_per_dc
    leaders = [_Leader() for _ in range(m)]
    applied = np.full((len(stream), wan.n_dcs), np.inf)
    replicas_of = [[d * m + idx for d in range(1, wan.n_dcs)] for idx in range(m)]

    def deliver(dst: int, message: tuple) -> None:
        kind, idx, t = message
        if kind == "prepare":
            net.send(dst, idx, ("vote", idx, t), 0, HEADER_BYTES)
        elif kind == "vote":
            leaders[idx].txns[t].votes += 1
            try_commit(idx)
        elif kind == "commit":
            applied[leaders[idx].txns[t].update_ids, wan.dc_of(dst)] = net.now

    def try_commit(idx: int) -> None:
        leader = leaders[idx]
        while leader.next_commit < len(leader.txns):
            txn = leader.txns[leader.next_commit]
            if txn.votes < len(replicas_of[idx]):
                return
            txn.committed = True
            applied[txn.update_ids, 0] = net.now
            for r in replicas_of[idx]:
                net.send(idx, r, ("commit", idx, leader.next_commit), 0, HEADER_BYTES)
            leader.next_commit += 1

    net = Network(wan, deliver, seed=seed)
    # The same placement as Ekko: shard = key % n_shards on server shard % m of each DC.
    owner = (stream.keys % n_shards) % m
    bounds = np.searchsorted(stream.times, np.arange(batch_s, stream.duration_s + 2 * batch_s, batch_s), "right")

    def batch(lo: int, hi: int) -> None:
        ids = np.arange(lo, hi)
        for idx in range(m):
            mine = ids[owner[lo:hi] == idx]
            if not len(mine):
                continue
            t = len(leaders[idx].txns)
            leaders[idx].txns.append(_Txn(mine))
            payload = len(mine) * row_bytes
            meta = HEADER_BYTES + len(mine) * (KEY_BYTES + VERSION_BYTES)
            for r in replicas_of[idx]:
                net.send(idx, r, ("prepare", idx, t), payload, meta)
            try_commit(idx)

    lo = 0
    for i, hi in enumerate(bounds.tolist()):
        if hi > lo:
            net.at((i + 1) * batch_s, batch, lo, hi)
            lo = hi
    net.run(stream.duration_s + max_drain_s)
    lat = applied.max(axis=1) - stream.times
    t = net.traffic
    min_payload = float(len(stream)) * row_bytes * (wan.n_dcs - 1)
    figures = {**latency_summary(lat, physical_floor_s(wan, row_bytes)), **nic_spread(net.tx_bytes, net.rx_bytes),
               "wan_payload_bytes": float(t.wan_payload_bytes), "wan_meta_bytes": float(t.wan_meta_bytes),
               "wan_bytes": float(t.wan_payload_bytes + t.wan_meta_bytes),
               "wan_payload_min_bytes": min_payload,
               "wan_payload_over_min": t.wan_payload_bytes / min_payload if min_payload else float("nan"),
               "messages": float(t.messages), "updates": float(len(stream))}
    return AdamSimResult(lat, figures)
