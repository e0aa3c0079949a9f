"""A discrete-event WAN: data centres of servers, NICs, latency, pass-through transfers, faults.

The event loop is a plain binary heap of (time, sequence, callback): the models here
need timed callbacks only, and this keeps a paper-scale run to one heap operation per
message.  Time is in seconds.

Links.  Every DC has `servers_per_dc` servers, each with a full-duplex NIC of
`nic_bandwidth_bps` (a send queue and a receive queue).  Every system sends from the
server that holds the data to the server that needs it; nothing is relayed.  A message
is passed through, not stored and re-sent: its bytes are serialised once, at the
slowest rate on its path, while the sender's NIC (and, where `dc_link_bandwidth_bps`
is finite, the directed DC-pair link) is held for that time; the receiver's NIC takes
the same bytes when they arrive.  Propagation is `lan_latency_s` inside a DC and, across
DCs, the latency matrix plus a LAN hop at each end.

Faults.  Servers crash and restart; DC pairs are partitioned and healed; while link
faults are on, each WAN message is lost, duplicated or delayed by a random jitter
(which reorders messages) with the configured probabilities.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

TOPOLOGIES = ("geo", "uniform")


@dataclass(frozen=True)
class WanConfig:
    """The testbed: `n_dcs` DCs of `servers_per_dc` servers.

    `topology="geo"` takes one-way latencies from `workloads.ekko_updates.geo_latency_matrix`;
    `topology="uniform"` uses `uniform_latency_s` between every pair of DCs.
    `latency_matrix` (seconds), when given, overrides both.  `dc_link_bandwidth_bps`
    is the capacity of each directed DC pair shared by its servers; infinite (the
    default) means the servers' NICs are the only limit.
    """

    n_dcs: int = 10
    servers_per_dc: int = 3
    topology: str = "geo"
    uniform_latency_s: float = 0.05
    latency_matrix: tuple[tuple[float, ...], ...] | None = None
    nic_bandwidth_bps: float = 5e9
    dc_link_bandwidth_bps: float = math.inf
    lan_latency_s: float = 0.0002

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGIES:
            raise ValueError(f"topology must be one of {TOPOLOGIES}, got {self.topology!r}")
        if self.n_dcs < 1 or self.servers_per_dc < 1:
            raise ValueError(f"n_dcs and servers_per_dc must be >= 1, got {self.n_dcs}, {self.servers_per_dc}")
        if not (math.isfinite(self.nic_bandwidth_bps) and self.nic_bandwidth_bps > 0):
            raise ValueError(f"nic_bandwidth_bps must be positive and finite, got {self.nic_bandwidth_bps}")
        if not self.dc_link_bandwidth_bps > 0:
            raise ValueError(f"dc_link_bandwidth_bps must be positive, got {self.dc_link_bandwidth_bps}")
        for name in ("uniform_latency_s", "lan_latency_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {value}")
        lat = self.latency()
        if lat.shape != (self.n_dcs, self.n_dcs):
            raise ValueError(f"latency_matrix must be {self.n_dcs}x{self.n_dcs}, got {lat.shape}")

    @property
    def n_servers(self) -> int:
        return self.n_dcs * self.servers_per_dc

    def latency(self) -> np.ndarray:
        from wan.latency import uniform_latency_matrix, validate_latency_matrix
        from workloads.ekko_updates import geo_latency_matrix

        if self.latency_matrix is not None:
            return validate_latency_matrix(np.asarray(self.latency_matrix, dtype=float), "latency_matrix")
        if self.topology == "geo":
            return geo_latency_matrix(self.n_dcs)
        if self.n_dcs == 1:
            return np.zeros((1, 1))
        return uniform_latency_matrix(self.n_dcs, self.uniform_latency_s)

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
        self.tx_busy = np.zeros(wan.n_servers)
        self.rx_busy = np.zeros(wan.n_servers)
        self.link_busy = np.zeros((wan.n_dcs, wan.n_dcs))
        self.tx_bytes = np.zeros(wan.n_servers)
        self.rx_bytes = np.zeros(wan.n_servers)
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

    def leader(self, dc: int) -> int:
        """The DC's coordinator (the lowest-numbered live server), -1 if none is up.  It carries no data."""
        m = self.wan.servers_per_dc
        alive = np.flatnonzero(self.up[dc * m:(dc + 1) * m])
        return dc * m + int(alive[0]) if len(alive) else -1

    # -- transfers
    def send(self, src: int, dst: int, message: Any, payload_bytes: int, meta_bytes: int) -> None:
        """Send `message` from server `src` straight to server `dst`, now."""
        self.traffic.messages += 1
        if not self.up[src]:
            self.traffic.dropped += 1
            return
        wan = self.wan
        src_dc, dst_dc = wan.dc_of(src), wan.dc_of(dst)
        nbytes = payload_bytes + meta_bytes
        cross = src_dc != dst_dc
        rate = wan.nic_bandwidth_bps
        start = max(self.now, self.tx_busy[src])
        if cross and math.isfinite(wan.dc_link_bandwidth_bps):
            start = max(start, self.link_busy[src_dc, dst_dc])
            rate = min(rate, wan.dc_link_bandwidth_bps)
        duration = nbytes * 8 / rate
        self.tx_busy[src] = start + duration
        if cross:
            self.link_busy[src_dc, dst_dc] = start + duration
        self.tx_bytes[src] += nbytes
        if not cross:
            self.traffic.lan_bytes += nbytes
            self._arrive(dst, start + wan.lan_latency_s, duration, message, nbytes)
            return
        self.traffic.wan_payload_bytes += payload_bytes
        self.traffic.wan_meta_bytes += meta_bytes
        if (min(src_dc, dst_dc), max(src_dc, dst_dc)) in self.partitioned:
            self.traffic.dropped += 1
            return
        first_byte = start + self.latency[src_dc, dst_dc] + 2 * wan.lan_latency_s
        copies = 1
        faulty = self.now < self.faults.link_faults_until_s
        if faulty:
            if self.rng.random() < self.faults.loss:
                self.traffic.dropped += 1
                return
            if self.rng.random() < self.faults.duplication:
                copies = 2
        for _ in range(copies):
            jitter = self.rng.uniform(0, self.faults.reorder_jitter_s) if faulty else 0.0
            self._arrive(dst, first_byte + jitter, duration, message, nbytes)

    def _arrive(self, dst: int, first_byte: float, duration: float, message: Any, nbytes: int) -> None:
        """The receiver's NIC takes the bytes from when the first arrives, behind what it is still taking."""
        start = max(first_byte, self.rx_busy[dst])
        self.rx_busy[dst] = start + duration
        self.rx_bytes[dst] += nbytes
        self.at(start + duration, self._deliver, dst, message)

    def _deliver(self, dst: int, message: Any) -> None:
        if not self.up[dst]:
            self.traffic.dropped += 1
            return
        self.deliver(dst, message)

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
