"""Ekko on real processes: one OS process per parameter server, TCP on 127.0.0.1, msgpack.

Each server process runs the same sans-IO `EkkoServer` as the simulation, driven by
an asyncio loop: a TCP listener, one outbound connection per peer, a sync ticker.
Messages are msgpack maps (numpy arrays travel as raw bytes); msgpack frames itself,
so a connection is a plain stream of maps.

Writes from training arrive on a control connection, in numbered batches; a server
appends them to its write-ahead log before acknowledging and ignores a batch number
it already logged (a retry after a lost ack), so an acknowledged update survives a kill:
a restarted server replays its log (same versions) and pulls the rest from its
peers.  It starts with a new incarnation, so no peer trusts its old shard versions.

`run_cluster` is the driver: it starts the servers, feeds the update stream to the
DC-0 servers, optionally kills and restarts one server, waits until every replica of
every shard has the same digest, stops everything and reports the throughput.  A
server that dies unexpectedly is reported by id with the tail of its log; every wait
is bounded.  Traffic runs on plain loopback (no network namespaces, no tc delay).
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from impls.ekko.core import EkkoServer, ProtocolConfig, PullRequest, PullResponse, ShardDelta, ShardPull, Send
from workloads.ekko_updates import UpdateStream

I64 = np.int64


# ------------------------------------------------------------------------------ encoding


def encode(message: PullRequest | PullResponse) -> dict[str, Any]:
    if isinstance(message, PullRequest):
        return {"k": "pull", "src": message.src, "id": message.pull_id, "cap": message.cap_us,
                "out": list(message.outstanding), "hold": message.may_hold, "own": message.own_writes_only,
                "s": [[p.shard, p.vv.tobytes(), p.seen_incarnation, p.seen_shard_version] for p in message.shards]}
    return {"k": "delta", "src": message.src, "id": message.pull_id,
            "s": [[d.shard, d.path, d.keys.tobytes(), d.versions.tobytes(), d.values.tobytes(), d.base.tobytes(),
                   d.vv.tobytes(), d.incarnation, d.shard_version, d.keys_compared] for d in message.shards]}


def decode(msg: dict[str, Any], dim: int) -> PullRequest | PullResponse:
    if msg["k"] == "pull":
        return PullRequest(msg["src"], [ShardPull(s, np.frombuffer(vv, I64).copy(), inc, sv)
                                        for s, vv, inc, sv in msg["s"]],
                           msg["id"], msg["cap"], tuple(msg["out"]), msg["hold"], msg["own"])
    return PullResponse(msg["src"], [
        ShardDelta(s, path, np.frombuffer(k, I64), np.frombuffer(v, I64),
                   np.frombuffer(x, np.float32).reshape(-1, dim), np.frombuffer(b, I64).copy(),
                   np.frombuffer(vv, I64).copy(), inc, sv, cmp)
        for s, path, k, v, x, b, vv, inc, sv, cmp in msg["s"]], msg["id"])


# ------------------------------------------------------------------------------ server process


@dataclass(frozen=True)
class ClusterConfig:
    n_dcs: int = 2
    servers_per_dc: int = 3
    n_shards: int = 12
    dim: int = 4
    sync_interval_s: float = 0.01
    cache_capacity: int = 4096
    fanout: int = 2
    latency_ms: tuple[tuple[float, ...], ...] = ()   # one-way delays the transport adds between DCs (none if empty)

    @property
    def n_servers(self) -> int:
        return self.n_dcs * self.servers_per_dc

    def protocol(self) -> ProtocolConfig:
        return ProtocolConfig(n_origins=self.n_servers, dim=self.dim, cache_capacity=self.cache_capacity,
                              fanout=self.fanout, sync_interval_s=self.sync_interval_s, pull_timeout_s=1.0)

    def server(self, sid: int, seed: int = 0) -> EkkoServer:
        m = self.servers_per_dc
        dc, idx = divmod(sid, m)
        shards = [s for s in range(self.n_shards) if s % m == idx]
        return EkkoServer(sid, dc, shards, {d: d * m + idx for d in range(self.n_dcs)}, self.protocol(), seed,
                          servers_per_dc=m)


class _Node:
    def __init__(self, sid: int, config: ClusterConfig, ports: list[int], wal: Path, epoch: float):
        self.sid, self.config, self.ports, self.wal_path = sid, config, ports, wal
        self.epoch = epoch   # the cluster's time zero, the clock that write timestamps count from
        self.server = config.server(sid)
        boot = time.time_ns() // 1000 % (1 << 40)   # a fresh incarnation per process start
        for replica in self.server.replicas.values():
            replica.incarnation = boot
        self.server.next_pull_id = boot << 20        # pull ids of a restarted process never repeat
        # peer -> when its latest answer arrived (its start-up counts as the first)
        self.last_answer: dict[int, float] = {p: self.now() for p in self.server.others}
        self.longest_silence: dict[int, float] = {}   # peer -> the longest gap between its answers
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.locks: dict[int, asyncio.Lock] = {}
        self.stop = asyncio.Event()
        self.applied_batches: set[int] = set()   # write batches already in the log
        self._replay_wal()
        self.wal = open(wal, "ab")

    def _replay_wal(self) -> None:
        if not self.wal_path.exists():
            return
        with open(self.wal_path, "rb") as fh:
            for batch in msgpack.Unpacker(fh, raw=False):
                self._apply_writes(batch)

    def _apply_writes(self, batch: dict[str, Any]) -> None:
        self.applied_batches.add(batch["batch"])
        values = np.frombuffer(batch["values"], np.float32).reshape(-1, self.config.dim)
        shards, keys, stamps = np.asarray(batch["shard"]), np.asarray(batch["key"]), np.asarray(batch["stamp"])
        for shard in np.unique(shards).tolist():
            mine = shards == shard
            self.server.write_batch(shard, keys[mine], values[mine], stamps[mine])

    async def _send(self, dst: int, payload: bytes) -> None:
        lock = self.locks.setdefault(dst, asyncio.Lock())
        async with lock:
            try:
                writer = self.writers.get(dst)
                if writer is None or writer.is_closing():
                    _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.ports[dst]), 1.0)
                    self.writers[dst] = writer
                writer.write(payload)
                await writer.drain()
            except (OSError, asyncio.TimeoutError):
                self.writers.pop(dst, None)   # the peer is down: the pull is lost, a later round retries

    def _dispatch(self, actions: list) -> None:
        loop = asyncio.get_running_loop()
        m = self.config.servers_per_dc
        for a in actions:
            if isinstance(a, Send):
                payload = msgpack.packb(encode(a.message))
                delay = self.config.latency_ms[self.sid // m][a.dst // m] / 1e3 if self.config.latency_ms else 0.0
                if delay > 0:   # the testbed's one-way latency, added here since loopback has none
                    loop.call_later(delay, lambda d=a.dst, b=payload: loop.create_task(self._send(d, b)))
                else:
                    loop.create_task(self._send(a.dst, payload))

    def now(self) -> float:
        return time.time() - self.epoch

    async def _ticker(self) -> None:
        while not self.stop.is_set():
            self._dispatch(self.server.on_tick(self.now()))
            await asyncio.sleep(self.config.sync_interval_s)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)
        try:
            while data := await reader.read(1 << 20):
                unpacker.feed(data)
                for msg in unpacker:
                    reply = self._on(msg)
                    if reply is not None:
                        writer.write(msgpack.packb(reply))
                        await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def _on(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        kind = msg["k"]
        if kind in ("pull", "delta"):
            now = self.now()
            if kind == "delta":
                src = msg["src"]
                gap = now - self.last_answer.get(src, now)
                self.longest_silence[src] = max(self.longest_silence.get(src, 0.0), gap)
                self.last_answer[src] = now
            self._dispatch(self.server.on_message(decode(msg, self.config.dim), now))
            return None
        if kind == "write":
            if msg["batch"] in self.applied_batches:
                # A retry of a batch logged before a crash cut off its ack: applying it
                # again would give its writes new versions.
                return {"k": "ack", "n": len(msg["key"])}
            # Flushed to the OS before the ack: that survives a killed process (not a lost
            # machine, which would need an fsync per batch).
            self.wal.write(msgpack.packb(msg))
            self.wal.flush()
            self._apply_writes(msg)
            self._dispatch(self.server.release(self.now()))   # long polls waiting for these writes
            return {"k": "ack", "n": len(msg["key"])}
        if kind == "digest":
            return {"k": "digest", "d": {str(s): d for s, d in self.server.digests().items()},
                    "silence": {str(p): max(self.longest_silence.get(p, 0.0), self.now() - t)
                                for p, t in self.last_answer.items()},
                    "lost": {str(p): n for p, n in self.server.stats.timeouts_by_peer.items()}}
        if kind == "stop":
            self.stop.set()
            return {"k": "bye"}
        raise ValueError(f"server {self.sid}: unknown message kind {kind!r}")

    async def run(self) -> None:
        listener = await asyncio.start_server(self._handle, "127.0.0.1", self.ports[self.sid], reuse_address=True)
        ticker = asyncio.create_task(self._ticker())
        await self.stop.wait()
        ticker.cancel()
        listener.close()
        for w in self.writers.values():
            w.close()
        self.wal.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point of one server process: `python -m impls.ekko.process SPEC_JSON`."""
    spec = json.loads((argv or sys.argv[1:])[0])
    asyncio.run(_Node(spec["sid"], ClusterConfig(**spec["config"]), spec["ports"], Path(spec["wal"]),
                      spec["epoch"]).run())


# ------------------------------------------------------------------------------ driver


class ServerDied(RuntimeError):
    """A server process exited unexpectedly; the message names it and why."""


@dataclass
class ClusterResult:
    converged: bool
    digests: list[dict[str, str]]      # per server: shard -> digest
    elapsed_s: float
    updates: int
    updates_per_s: float
    acked: int
    distinct_keys: int = 0
    kill_returncode: int | None = None     # the killed server's exit status (-9: SIGKILL)
    writes_in_flight_at_kill: int = 0      # write batches sent and not yet acknowledged when it was killed
    longest_silence_s: dict[int, float] | None = None   # per server: the longest gap between answers from the victim
    pulls_lost_to_victim: int = 0          # pulls to the victim that its peers gave up (the outage they saw)
    network: str = "plain loopback (no netns/tc)"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class _Conn:
    """A control connection: send a map, read the one map that answers it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)

    @classmethod
    async def open(cls, port: int, timeout: float) -> "_Conn":
        return cls(*await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout))

    async def call(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.writer.write(msgpack.packb(msg))
        await self.writer.drain()
        while True:
            for reply in self.unpacker:
                return reply
            data = await asyncio.wait_for(self.reader.read(1 << 20), timeout)
            if not data:
                raise ConnectionError("the server closed the connection")
            self.unpacker.feed(data)

    def close(self) -> None:
        self.writer.close()


class _Cluster:
    def __init__(self, config: ClusterConfig, workdir: Path):
        self.config, self.workdir = config, workdir
        self.ports = _free_ports(config.n_servers)
        self.epoch = time.time()
        self.procs: dict[int, subprocess.Popen] = {}
        self.logs: dict[int, Any] = {}
        self.down: set[int] = set()   # killed on purpose, not yet restarted: not a death to report

    def start(self, sid: int) -> None:
        spec = {"sid": sid, "config": asdict(self.config), "ports": self.ports, "epoch": self.epoch,
                "wal": str(self.workdir / f"wal-{sid}.bin")}
        self.down.discard(sid)
        if sid in self.logs:
            self.logs[sid].close()
        self.logs[sid] = open(self.workdir / f"server-{sid}.log", "ab")
        self.procs[sid] = subprocess.Popen([sys.executable, "-m", "impls.ekko.process", json.dumps(spec)],
                                           stdout=subprocess.DEVNULL, stderr=self.logs[sid])

    def kill(self, sid: int) -> int:
        self.down.add(sid)
        self.procs[sid].kill()
        return self.procs[sid].wait(5)

    def check_alive(self) -> None:
        for sid, p in self.procs.items():
            if sid in self.down:
                continue
            code = p.poll()
            if code is not None:
                text = (self.workdir / f"server-{sid}.log").read_text(errors="replace").strip()
                reason = text.splitlines()[-1] if text else f"exit code {code}"
                dc, idx = divmod(sid, self.config.servers_per_dc)
                raise ServerDied(f"server {sid} (DC {dc}, index {idx}) died: {reason}")

    async def request(self, sid: int, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One request on a fresh connection."""
        conn = await _Conn.open(self.ports[sid], timeout)
        try:
            return await conn.call(msg, timeout)
        finally:
            conn.close()

    async def wait_ready(self, sids: list[int], deadline: float) -> None:
        for sid in sids:
            while True:
                self.check_alive()
                try:
                    _, w = await asyncio.open_connection("127.0.0.1", self.ports[sid])
                    w.close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"server {sid} did not start listening in time") from None
                    await asyncio.sleep(0.05)

    def stop_all(self) -> None:
        async def bye() -> None:
            for sid, p in self.procs.items():
                if p.poll() is None:
                    try:
                        await self.request(sid, {"k": "stop"}, 2.0)
                    except (OSError, asyncio.TimeoutError, ConnectionError):
                        pass
        asyncio.run(bye())
        for p in self.procs.values():
            try:
                p.wait(3)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(3)
        for log in self.logs.values():
            log.close()


def run_cluster(stream: UpdateStream, config: ClusterConfig = ClusterConfig(), *, workdir: str | Path,
                batch: int = 5000, kill: tuple[int, float] | None = None, down_s: float = 0.0,
                timeout_s: float = 60.0, paced: bool = False) -> ClusterResult:
    """Run the stream through real server processes until every replica agrees, or raise.

    `kill=(server, fraction)` kills that server (SIGKILL) once `fraction` of the
    updates are acknowledged, while the origins' writes go on, and restarts it
    `down_s` seconds later (at once by default: the outage is then the process
    start-up, which varies from machine to machine).  `paced` sends each batch no earlier than its first update's
    stream time (the offered load); otherwise as fast as the servers acknowledge.
    Raises ServerDied if a server exits on its own and TimeoutError if the run passes
    `timeout_s`.  Process start-up is not counted in the elapsed time.
    """
    if config.n_servers > 64:
        raise ValueError(f"at most 64 server processes, got {config.n_servers}")
    if kill is not None and not (0 <= kill[0] < config.n_servers and 0.0 <= kill[1] <= 1.0):
        raise ValueError(f"kill must be (server in 0..{config.n_servers - 1}, fraction in [0, 1]), got {kill}")
    if not (math.isfinite(down_s) and 0.0 <= down_s <= timeout_s):
        raise ValueError(f"down_s must be in [0, timeout_s = {timeout_s}], got {down_s}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for old in list(workdir.glob("wal-*.bin")) + list(workdir.glob("server-*.log")):
        old.unlink()
    cluster = _Cluster(config, workdir)
    m = config.servers_per_dc
    shards = stream.keys % config.n_shards
    owner = shards % m
    deadline = time.monotonic() + timeout_s

    async def drive() -> ClusterResult:
        await cluster.wait_ready(list(range(config.n_servers)), deadline)
        start = time.monotonic()
        acked = 0
        in_flight = 0
        kill_at = None if kill is None else int(kill[1] * len(stream))
        killed: dict[str, int] = {}

        async def feed(sid: int) -> None:
            """Feed one origin its updates in batches on one connection, retrying while it restarts."""
            nonlocal acked, kill_at, in_flight
            ids = np.flatnonzero(owner == sid)
            conn: _Conn | None = None
            for lo in range(0, len(ids), batch):
                part = ids[lo:lo + batch]
                if paced:
                    await asyncio.sleep(max(0.0, start + float(stream.times[part[0]]) - time.monotonic()))
                msg = {"k": "write", "batch": lo, "shard": shards[part].tolist(), "key": stream.keys[part].tolist(),
                       "stamp": stream.times[part].tolist(), "values": stream.values[part].tobytes()}
                while True:
                    cluster.check_alive()
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"writes to server {sid} not acknowledged within {timeout_s} s")
                    in_flight += 1
                    try:
                        conn = conn or await _Conn.open(cluster.ports[sid], 5.0)
                        reply = await conn.call(msg, 5.0)
                        break
                    except (OSError, asyncio.TimeoutError, ConnectionError):
                        conn = None
                        await asyncio.sleep(0.05)
                    finally:
                        in_flight -= 1
                acked += reply["n"]
                if kill_at is not None and acked >= kill_at:
                    kill_at = None
                    # The other origins' batches are on the wire now: the kill lands among them.
                    killed["in_flight"] = in_flight
                    killed["returncode"] = cluster.kill(kill[0])
                    asyncio.get_running_loop().call_later(down_s, cluster.start, kill[0])
            if conn is not None:
                conn.close()

        await asyncio.gather(*(feed(sid) for sid in range(m)))
        while True:
            cluster.check_alive()
            try:
                replies = [await cluster.request(sid, {"k": "digest"}, 5.0) for sid in range(config.n_servers)]
                digests = [r["d"] for r in replies]
            except (OSError, asyncio.TimeoutError, ConnectionError):
                digests = None
            if digests is not None and all(digests[sid] == digests[sid % m] for sid in range(config.n_servers)):
                elapsed = time.monotonic() - start
                silence = None if kill is None else {
                    sid: r["silence"].get(str(kill[0]), 0.0) for sid, r in enumerate(replies) if sid != kill[0]}
                lost = 0 if kill is None else sum(r["lost"].get(str(kill[0]), 0) for r in replies)
                return ClusterResult(True, digests, elapsed, len(stream), len(stream) / elapsed, acked,
                                     int(len(np.unique(stream.keys))), killed.get("returncode"),
                                     killed.get("in_flight", 0), silence, lost)
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas did not converge within {timeout_s} s")
            await asyncio.sleep(0.05)

    try:
        for sid in range(config.n_servers):
            cluster.start(sid)
        return asyncio.run(drive())
    finally:
        cluster.stop_all()


if __name__ == "__main__":
    main()
