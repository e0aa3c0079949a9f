"""A discrete-event WAN: data centres of servers, links with latency and bandwidth, faults.

The event loop is a plain binary heap of (time, sequence, callback): the models here
need timed callbacks only, and this keeps a paper-scale run to one heap operation
per message hop.  Time is in seconds.

Links.  Every server has a NIC of `nic_bandwidth_bps`; a message leaving a server is
serialised on that NIC (bytes * 8 / bandwidth, queued behind earlier messages), then
travels the LAN (`lan_latency_s`) or the WAN (the latency matrix, plus serialisation
on the directed DC-pair link at `wan_bandwidth_bps`).  Cross-DC messages may be
routed through each DC's leader (the lowest-numbered live server), which forwards
them: that is how Ekko confines cross-DC traffic to one gateway per DC.

Faults.  Servers crash and restart; DC pairs are partitioned and healed; while link
faults are on, each WAN hop is lost, duplicated or delayed by a random jitter (which
reorders messages) with the configured probabilities.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from workloads.ekko_updates import geo_latency_matrix, validate_latency_matrix

TOPOLOGIES = ("geo", "uniform")


@dataclass(frozen=True)
class WanConfig:
    """The testbed: `n_dcs` DCs of `servers_per_dc` servers.

    `topology="geo"` takes one-way latencies from `workloads.ekko_updates.geo_latency_matrix`;
    `topology="uniform"` uses `uniform_latency_s` between every pair of DCs.
    `latency_matrix`, when given, overrides both.
    """

    n_dcs: int = 10
    servers_per_dc: int = 3
    topology: str = "geo"
    uniform_latency_s: float = 0.05
    latency_matrix: tuple[tuple[float, ...], ...] | None = None
    nic_bandwidth_bps: float = 5e9
    wan_bandwidth_bps: float = 5e9
    lan_latency_s: float = 0.0002

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {TOPOLOGIES}, got {self.topology!r}")
        if self.n_dcs < 1 or self.servers_per_dc < 1:
            raise ValueError(f"n_dcs and servers_per_dc must be >= 1, got {self.n_dcs}, {self.servers_per_dc}")
        for name in ("nic_bandwidth_bps", "wan_bandwidth_bps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("uniform_latency_s", "lan_latency_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        lat = self.latency()
        if lat.shape != (self.n_dcs, self.n_dcs):
            raise ValueError(f"latency_matrix must be {self.n_dcs}x{self.n_dcs}, got {lat.shape}")

    @property
    def n_servers(self) -> int:
        return self.n_dcs * self.servers_per_dc

    def latency(self) -> np.ndarray:
        if self.latency_matrix is not None:
            return validate_latency_matrix(np.asarray(self.latency_matrix, dtype=float), "latency_matrix")
        if self.topology == "geo":
            return geo_latency_matrix(self.n_dcs)
        return np.full((self.n_dcs, self.n_dcs), self.uniform_latency_s) * (1 - np.eye(self.n_dcs))

    def dc_of(self, server: int) -> int:
        return server // self.servers_per_dc


@dataclass
class FaultEvent:
    time_s: float
    kind: str          # "crash" | "restart" | "partition" | "heal"
    a: int             # server (crash/restart) or DC (partition/heal)
    b: int = -1        # the other DC for partition/heal


@dataclass
class FaultSchedule:
    """Discrete fault events plus link faults (loss, duplication, reordering) until `link_faults_until_s`."""

    events: list[FaultEvent] = field(default_factory=list)
    loss: float = 0.0
    duplication: float = 0.0
    reorder_jitter_s: float = 0.0
    link_faults_until_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("loss", "duplication"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.reorder_jitter_s < 0:
            raise ValueError(f"reorder_jitter_s must be >= 0, got {self.reorder_jitter_s}")
        for e in self.events:
            if e.kind not in ("crash", "restart", "partition", "heal"):
                raise ValueError(f"fault kind must be crash/restart/partition/heal, got {e.kind!r}")

    @property
    def end_s(self) -> float:
        return max([self.link_faults_until_s] + [e.time_s for e in self.events])


def random_fault_schedule(wan: WanConfig, until_s: float, seed: int, n_events: int = 6,
                          loss: float = 0.05, duplication: float = 0.05,
                          reorder_jitter_s: float = 0.02) -> FaultSchedule:
    """Seeded random faults in [0, until_s): crash/restart pairs and partition/heal pairs, all undone by until_s."""
    rng = np.random.default_rng(seed)
    events = []
    for _ in range(n_events):
        start = float(rng.uniform(0, until_s * 0.8))
        end = float(rng.uniform(start, until_s))
        if rng.random() < 0.5 or wan.n_dcs < 2:
            server = int(rng.integers(wan.n_servers))
            events += [FaultEvent(start, "crash", server), FaultEvent(end, "restart", server)]
        else:
            a, b = (int(x) for x in rng.choice(wan.n_dcs, 2, replace=False))
            events += [FaultEvent(start, "partition", a, b), FaultEvent(end, "heal", a, b)]
    events.sort(key=lambda e: e.time_s)
    return FaultSchedule(events, loss, duplication, reorder_jitter_s, until_s)


@dataclass
class Traffic:
    wan_payload_bytes: int = 0
    wan_meta_bytes: int = 0
    lan_bytes: int = 0
    messages: int = 0
    dropped: int = 0


class Network:
    """The event loop and the links.  `deliver(dst, message)` is called on arrival."""

    def __init__(self, wan: WanConfig, deliver: Callable[[int, Any], None], seed: int = 0,
                 faults: FaultSchedule | None = None):
        self.wan = wan
        self.latency = wan.latency()
        self.deliver = deliver
        self.now = 0.0
        self._heap: list[tuple[float, int, Callable[..., None], tuple]] = []
        self._seq = 0
        self.nic_busy = np.zeros(wan.n_servers)
        self.wan_busy = np.zeros((wan.n_dcs, wan.n_dcs))
        self.up = np.ones(wan.n_servers, dtype=bool)
        self.partitioned: set[tuple[int, int]] = set()
        self.faults = faults or FaultSchedule()
        self.rng = np.random.default_rng(seed)
        self.traffic = Traffic()

    # -- event loop
    def at(self, time_s: float, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time_s, self._seq, fn, args))

    def run(self, until_s: float, stop: Callable[[], bool] | None = None) -> None:
        heap = self._heap
        while heap and heap[0][0] <= until_s:
            self.now, _, fn, args = heapq.heappop(heap)
            fn(*args)
            if stop is not None and stop():
                return

    # -- routing
    def leader(self, dc: int) -> int:
        m = self.wan.servers_per_dc
        alive = np.flatnonzero(self.up[dc * m:(dc + 1) * m])
        return dc * m + int(alive[0]) if len(alive) else -1

    def send(self, src: int, dst: int, message: Any, payload_bytes: int, meta_bytes: int,
             via_leaders: bool) -> None:
        """Send from `src` to `dst` now; cross-DC through the DCs' leaders when `via_leaders`."""
        self.traffic.messages += 1
        self._hop(src, dst, dst, message, payload_bytes, meta_bytes, via_leaders)

    def _hop(self, at: int, dst: int, final: int, message: Any, payload: int, meta: int, via: bool) -> None:
        if not self.up[at]:
            self.traffic.dropped += 1
            return
        if at == final:
            self.deliver(final, message)
            return
        wan = self.wan
        src_dc, dst_dc = wan.dc_of(at), wan.dc_of(final)
        nbytes = payload + meta
        if src_dc == dst_dc:
            nxt = final
        elif via and at != self.leader(src_dc):
            nxt = self.leader(src_dc)
        elif via:
            nxt = self.leader(dst_dc)
        else:
            nxt = final
        if nxt < 0:
            self.traffic.dropped += 1
            return
        start = max(self.now, self.nic_busy[at])
        done = start + nbytes * 8 / wan.nic_bandwidth_bps
        self.nic_busy[at] = done
        if wan.dc_of(nxt) == src_dc:
            self.traffic.lan_bytes += nbytes
            self.at(done + wan.lan_latency_s, self._hop, nxt, dst, final, message, payload, meta, via)
            return
        # WAN hop: DC-pair link serialisation, latency, faults.
        ndc = wan.dc_of(nxt)
        start = max(done, self.wan_busy[src_dc, ndc])
        done = start + nbytes * 8 / wan.wan_bandwidth_bps
        self.wan_busy[src_dc, ndc] = done
        self.traffic.wan_payload_bytes += payload
        self.traffic.wan_meta_bytes += meta
        if (min(src_dc, ndc), max(src_dc, ndc)) in self.partitioned:
            self.traffic.dropped += 1
            return
        arrive = done + self.latency[src_dc, ndc]
        faulty = self.now < self.faults.link_faults_until_s
        copies = 1
        if faulty:
            if self.rng.random() < self.faults.loss:
                self.traffic.dropped += 1
                return
            if self.rng.random() < self.faults.duplication:
                copies = 2
        for _ in range(copies):
            jitter = self.rng.uniform(0, self.faults.reorder_jitter_s) if faulty else 0.0
            self.at(arrive + jitter, self._hop, nxt, dst, final, message, payload, meta, via)

    # -- faults
    def schedule_faults(self, on_crash: Callable[[int], None], on_restart: Callable[[int], None]) -> None:
        for e in self.faults.events:
            self.at(e.time_s, self._apply_fault, e, on_crash, on_restart)

    def _apply_fault(self, e: FaultEvent, on_crash: Callable[[int], None], on_restart: Callable[[int], None]) -> None:
        pair = (min(e.a, e.b), max(e.a, e.b))
        if e.kind == "crash" and self.up[e.a]:
            self.up[e.a] = False
            on_crash(e.a)
        elif e.kind == "restart" and not self.up[e.a]:
            self.up[e.a] = True
            on_restart(e.a)
        elif e.kind == "partition":
            self.partitioned.add(pair)
        elif e.kind == "heal":
            self.partitioned.discard(pair)
