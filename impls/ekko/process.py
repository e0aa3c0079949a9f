"""Ekko on real processes: one OS process per parameter server, TCP, msgpack.

Each server process runs the same sans-IO `EkkoServer` as the simulation, driven by
an asyncio loop: a TCP listener, one outbound connection per peer, a sync ticker.
Messages are msgpack maps (numpy arrays travel as raw bytes); msgpack frames itself,
so a connection is a plain stream of maps.

Writes from training arrive on a control connection, in numbered batches; a server
appends them to its write-ahead log before acknowledging and ignores a batch number
it already logged (a retry after a lost ack), so an acknowledged update survives a kill:
a restarted server replays its log (same versions) and pulls the rest from its
peers.  It starts with a new incarnation, so no peer trusts its old shard versions,
nor what its answers claimed it held (the rows it had pulled are not in its log).

Placement (`run_cluster(..., placement=)`):

- "local": the servers are child processes of the driver, listening on 127.0.0.1;
- "ray": each server is a child process of a Ray actor, the actors dealt round-robin to the
  live nodes of the cluster that the caller's `ray.init` joined; each actor reports its
  server's address (its node's IP and a free port), keeps the server's log and write-ahead
  log on its node, and kills and restarts the server when the driver asks.

Every connection, on loopback too (one code path), opens with a handshake on the run's
secret (32 random bytes the driver makes per run and hands each server on its standard
input, never on a command line): the server sends a random challenge, the connecting side
answers with an HMAC-SHA256 of it and a challenge of its own, which the server answers in
turn.  A peer that cannot prove the secret is refused and logged in the server's log, and
nothing it sent is applied.  Every frame is bounded in size (the largest frame the run's
stream can make, `ClusterConfig.max_frame_bytes`); a malformed, unknown or oversized frame
closes its own connection, logged, and nothing else.

`run_cluster` is the driver: it starts the servers, feeds the update stream to the
DC-0 servers, optionally kills and restarts one server, waits until every replica of
every shard has the same digest, stops everything and reports the throughput.  A
server that dies unexpectedly is reported by id with the tail of its log; every wait
is bounded.  Traffic runs on plain TCP (no network namespaces, no tc delay).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import msgpack
import numpy as np

from impls.ekko.core import (CACHE, FULL, UNCHANGED, EkkoServer, ProtocolConfig, PullRequest, PullResponse,
                             ShardDeltas, ShardPulls, Send)
from workloads.ekko_updates import UpdateStream

I64 = np.int64
PLACEMENTS = ("local", "ray")
LOOPBACK = "127.0.0.1"
NONCE_BYTES = 32
HANDSHAKE_TIMEOUT_S = 5.0       # a connection that has not proved the secret by then is refused
HANDSHAKE_FRAME_BYTES = 1024    # the bound on a frame before the secret is proved


# ------------------------------------------------------------------------------ configuration


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
    max_frame_bytes: int = 0    # the bound on one frame; 0: run_cluster sets the largest its stream can make

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


# ------------------------------------------------------------------------------ encoding


def encode(message: PullRequest | PullResponse) -> dict[str, Any]:
    if isinstance(message, PullRequest):
        p = message.pulls
        return {"k": "pull", "src": message.src, "id": message.pull_id, "cap": message.cap_us,
                "out": list(message.outstanding), "hold": message.may_hold, "own": message.own_writes_only,
                "s": p.shards.tobytes(), "vv": p.vv.tobytes(), "inc": p.seen_incarnation.tobytes(),
                "sv": p.seen_shard_version.tobytes(), "rinc": p.incarnation}
    d = message.deltas
    return {"k": "delta", "src": message.src, "id": message.pull_id, "s": d.shards.tobytes(),
            "path": d.paths.tobytes(), "row": d.row_shard.tobytes(), "key": d.keys.tobytes(),
            "ver": d.versions.tobytes(), "val": d.values.tobytes(), "base": d.base.tobytes(), "vv": d.vv.tobytes(),
            "inc": d.incarnation, "sv": d.shard_versions.tobytes(), "cmp": d.keys_compared.tobytes()}


def decode(msg: dict[str, Any], dim: int) -> PullRequest | PullResponse:
    shards = np.frombuffer(msg["s"], I64)

    def per_shard(name: str) -> np.ndarray:   # (shards, origins)
        return np.frombuffer(msg[name], I64).reshape(len(shards), -1)

    if msg["k"] == "pull":
        pulls = ShardPulls(shards, per_shard("vv"), np.frombuffer(msg["inc"], I64), np.frombuffer(msg["sv"], I64),
                           msg["rinc"])
        return PullRequest(msg["src"], pulls, msg["id"], msg["cap"], tuple(msg["out"]), msg["hold"], msg["own"])
    deltas = ShardDeltas(shards, np.frombuffer(msg["path"], np.int8), np.frombuffer(msg["row"], I64),
                         np.frombuffer(msg["key"], I64), np.frombuffer(msg["ver"], I64),
                         np.frombuffer(msg["val"], np.float32).reshape(-1, dim), per_shard("base"), per_shard("vv"),
                         msg["inc"], np.frombuffer(msg["sv"], I64), np.frombuffer(msg["cmp"], I64))
    return PullResponse(msg["src"], deltas, msg["id"])


class BadFrame(ConnectionError):
    """A frame that is no well-formed message of this run (or is over the size bound): its connection closes."""


class Refused(ConnectionError):
    """The other end of a connection did not prove the run's secret."""


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _is_int(*values: Any) -> bool:
    return all(type(v) is int for v in values)


def parse(frame: Any, config: ClusterConfig, held: set[int]) -> tuple[str, Any]:
    """A frame's kind and content, checked against the run's shape and the shards `held` here; else BadFrame.

    Only what passes reaches the protocol core, so a frame it could choke on closes its
    connection instead of taking the server down.
    """
    kind = frame.get("k") if isinstance(frame, dict) else None
    try:
        if kind in ("pull", "delta"):
            message = decode(frame, config.dim)
            _check_message(message, config, held)
            return kind, message
        if kind == "write":
            _check_write(frame, config, held)
            return kind, frame
    except (KeyError, TypeError, ValueError) as exc:
        raise BadFrame(f"malformed {kind!r} frame ({type(exc).__name__}: {str(exc)[:200]})") from None
    if kind in ("digest", "stop"):
        return kind, frame
    raise BadFrame("a frame that is not a message map" if kind is None else f"unknown frame kind {str(kind)[:40]!r}")


def _check_message(m: PullRequest | PullResponse, config: ClusterConfig, held: set[int]) -> None:
    n = config.n_servers
    _require(_is_int(m.src, m.pull_id) and 0 <= m.src < n, f"src {m.src!r} is not a server of this run")
    part = m.pulls if isinstance(m, PullRequest) else m.deltas
    s = len(part.shards)
    _require(len(set(part.shards.tolist())) == s and set(part.shards.tolist()) <= held,
             "a message names a shard twice, or one not held here")
    if isinstance(part, ShardPulls):
        _require(part.vv.shape == (s, n) and part.seen_incarnation.shape == part.seen_shard_version.shape == (s,)
                 and _is_int(part.incarnation), "a pull's version vectors or counters do not fit this run")
        _require(_is_int(m.cap_us, *m.outstanding) and isinstance(m.may_hold, bool)
                 and isinstance(m.own_writes_only, bool), "a pull's options are not of their types")
        return
    rows = part.keys.shape[0]
    _require(part.paths.shape == part.shard_versions.shape == part.keys_compared.shape == (s,)
             and part.base.shape == part.vv.shape == (s, n) and _is_int(part.incarnation)
             and part.versions.shape == part.row_shard.shape == (rows,) and part.values.shape[0] == rows
             and bool((part.versions > 0).all()), "an answer's arrays, versions or counters do not fit this run")
    _require(bool(np.isin(part.paths, (UNCHANGED, CACHE, FULL)).all())
             and bool(((part.row_shard >= 0) & (part.row_shard < s)).all())
             and bool((part.paths[part.row_shard] != UNCHANGED).all())
             and bool((part.keys >= 0).all() and (part.keys % config.n_shards == part.shards[part.row_shard]).all()),
             "an answer's paths or rows do not fit its shards")


def _check_write(frame: dict[str, Any], config: ClusterConfig, held: set[int]) -> None:
    rows = len(frame["key"])
    columns = [np.asarray(frame[name]) for name in ("shard", "key", "stamp")]
    _require(_is_int(frame["batch"]) and rows >= 1 and all(c.shape == (rows,) for c in columns),
             "a write batch's columns do not have one entry per row")
    _require(columns[0].dtype.kind in "iu" and columns[1].dtype.kind in "iu" and columns[2].dtype.kind in "iuf",
             "a write batch's columns are not numbers")
    _require(set(np.unique(columns[0]).tolist()) <= held, "a write batch names a shard not held here")
    _require(bool((columns[1] >= 0).all() and (columns[1] % config.n_shards == columns[0]).all()),
             "a write batch puts a key in a shard that is not its own")
    _require(isinstance(frame["values"], bytes) and len(frame["values"]) == rows * config.dim * 4,
             "a write batch's values are not one float32 row per key")


def frame_bound(n_updates: int, config: ClusterConfig) -> int:
    """The largest frame a run of `n_updates` can make: every update in one write batch or one delta.

    A write row is at most 23 bytes of msgpack integers and a float plus its float32 values; a
    delta row is a key, a version and the values; every shard adds two version vectors.
    """
    return (1 << 20) + n_updates * (32 + 4 * config.dim) + 16 * config.n_servers * config.n_shards


# ------------------------------------------------------------------------------ connections


def _mac(secret: bytes, side: bytes, nonce: bytes) -> bytes:
    return hmac.new(secret, side + nonce, hashlib.sha256).digest()


def _field(frame: Any, kind: str, name: str) -> bytes:
    """`frame[name]` of a `kind` handshake frame, or Refused."""
    value = frame.get(name) if isinstance(frame, dict) and frame.get("k") == kind else None
    if not isinstance(value, bytes) or len(value) != NONCE_BYTES:   # nonces and SHA-256 MACs: 32 bytes each
        raise Refused(f"expected a {kind!r} frame of the handshake")
    return value


async def _read_frame(reader: asyncio.StreamReader, unpacker: msgpack.Unpacker, timeout: float | None) -> Any:
    """The next frame on a connection; BadFrame for a malformed or oversized one, ConnectionError at its end."""
    while True:
        try:
            for frame in unpacker:
                return frame
        except (msgpack.UnpackException, ValueError) as exc:
            raise BadFrame(f"malformed frame ({type(exc).__name__}: {str(exc)[:200]})") from None
        data = await asyncio.wait_for(reader.read(1 << 20), timeout)
        if not data:
            raise ConnectionError("the connection was closed")
        try:
            unpacker.feed(data)
        except msgpack.BufferFull:
            raise BadFrame("a frame over the run's size bound") from None


async def _connect(address: tuple[str, int], secret: bytes, frame_bytes: int
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, msgpack.Unpacker]:
    """Open a connection to a server and prove the run's secret to each other; Refused if the server cannot."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        unpacker = msgpack.Unpacker(raw=False, max_buffer_size=frame_bytes)
        challenge = _field(await _read_frame(reader, unpacker, HANDSHAKE_TIMEOUT_S), "challenge", "nonce")
        nonce = secrets.token_bytes(NONCE_BYTES)
        writer.write(msgpack.packb({"k": "hello", "mac": _mac(secret, b"peer", challenge), "nonce": nonce}))
        await writer.drain()
        proof = _field(await _read_frame(reader, unpacker, HANDSHAKE_TIMEOUT_S), "welcome", "mac")
        if not hmac.compare_digest(proof, _mac(secret, b"server", nonce)):
            raise Refused(f"{address[0]}:{address[1]} did not prove the run's secret")
    except BaseException:  # a timeout or cancellation mid-handshake too: nothing stays open
        writer.close()
        raise
    return reader, writer, unpacker


async def _admit(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, secret: bytes) -> None:
    """Challenge a new connection; Refused unless it proves the run's secret (and sends nothing before that)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    writer.write(msgpack.packb({"k": "challenge", "nonce": nonce}))
    await writer.drain()
    small = msgpack.Unpacker(raw=False, max_buffer_size=HANDSHAKE_FRAME_BYTES)
    try:
        hello = await _read_frame(reader, small, HANDSHAKE_TIMEOUT_S)
    except asyncio.TimeoutError:
        raise Refused(f"no answer to the challenge within {HANDSHAKE_TIMEOUT_S:g} s") from None
    except ConnectionError as exc:  # BadFrame too
        raise Refused(f"no answer to the challenge: {exc}") from None
    if not hmac.compare_digest(_field(hello, "hello", "mac"), _mac(secret, b"peer", nonce)):
        raise Refused("a wrong answer to the challenge (not this run's secret)")
    if small.read_bytes(1):
        raise Refused("it sent data before it was admitted")
    writer.write(msgpack.packb({"k": "welcome", "mac": _mac(secret, b"server", _field(hello, "hello", "nonce"))}))
    await writer.drain()


def _peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


# ------------------------------------------------------------------------------ server process


class _Node:
    def __init__(self, spec: dict[str, Any]):
        self.sid, self.config = spec["sid"], ClusterConfig(**spec["config"])
        self.addresses = [tuple(a) for a in spec["addresses"]]
        self.secret, self.wal_path = bytes.fromhex(spec["secret"]), Path(spec["wal"])
        self.epoch = spec["epoch"]   # the cluster's time zero, the clock that write timestamps count from
        self.server = self.config.server(self.sid)
        self.held = set(self.server.group.shards.tolist())
        boot = time.time_ns() // 1000 % (1 << 40)   # a fresh incarnation per process start
        self.server.group.incarnation = boot
        self.server.next_pull_id = boot << 20        # pull ids of a restarted process never repeat
        # peer -> when its latest answer arrived (its start-up counts as the first)
        self.last_answer: dict[int, float] = {p: self.now() for p in self.server.others}
        self.longest_silence: dict[int, float] = {}   # peer -> the longest gap between its answers
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.locks: dict[int, asyncio.Lock] = {}
        self.stop = asyncio.Event()
        self.fault: str | None = None              # a fault of this server's own: it stops with it
        self.applied_batches: set[int] = set()   # write batches already in the log
        self._replay_wal()
        self.wal = open(self.wal_path, "ab")

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

    def log(self, line: str) -> None:
        print(f"server {self.sid}: {line}", file=sys.stderr, flush=True)

    async def _send(self, dst: int, payload: bytes) -> None:
        lock = self.locks.setdefault(dst, asyncio.Lock())
        async with lock:
            try:
                writer = self.writers.get(dst)
                if writer is None or writer.is_closing():
                    _, writer, _ = await asyncio.wait_for(
                        _connect(self.addresses[dst], self.secret, self.config.max_frame_bytes), 1.0)
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
        peer = _peer_name(writer)
        try:
            await _admit(reader, writer, self.secret)
            unpacker = msgpack.Unpacker(raw=False, max_buffer_size=self.config.max_frame_bytes)
            while True:
                reply = self._on(*parse(await _read_frame(reader, unpacker, None), self.config, self.held))
                if reply is not None:
                    writer.write(msgpack.packb(reply))
                    await writer.drain()
        except Refused as exc:
            self.log(f"refused a connection from {peer}: {exc}")
        except BadFrame as exc:
            self.log(f"closed the connection from {peer}: {exc}")
        except (ConnectionError, OSError):
            pass   # the peer went away
        except asyncio.CancelledError:
            pass   # the server is stopping: end quietly (a cancelled handler is logged as an error)
        except Exception:   # a fault of the server itself, on a frame that passed the checks: stop with it
            self.fault = traceback.format_exc()
            self.stop.set()
        finally:
            writer.close()

    def _on(self, kind: str, msg: Any) -> dict[str, Any] | None:
        if kind in ("pull", "delta"):
            now = self.now()
            if kind == "delta":
                gap = now - self.last_answer.get(msg.src, now)
                self.longest_silence[msg.src] = max(self.longest_silence.get(msg.src, 0.0), gap)
                self.last_answer[msg.src] = now
            self._dispatch(self.server.on_message(msg, now))
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
        self.stop.set()   # "stop"
        return {"k": "bye"}

    async def run(self) -> None:
        listener = await asyncio.start_server(self._handle, *self.addresses[self.sid], reuse_address=True)
        ticker = asyncio.create_task(self._ticker())
        await self.stop.wait()
        ticker.cancel()
        listener.close()
        for w in self.writers.values():
            w.close()
        self.wal.close()


def main() -> None:
    """Entry point of one server process: `python -m impls.ekko.process`, its spec as JSON on standard input."""
    node = _Node(json.load(sys.stdin))
    asyncio.run(node.run())
    if node.fault is not None:
        sys.exit(f"server {node.sid} stopped on a fault of its own:\n{node.fault}")


class ServerHost:
    """Starts, kills and watches one server process on the machine it runs on.

    The driver holds one per server for the local placement; on Ray each lives in an actor on
    its node (`host=None`: the node's IP as Ray knows it; `workdir=None`: a fresh folder there).
    """

    def __init__(self, sid: int, host: str | None = None, workdir: str | None = None):
        where = socket.gethostname()
        if host is None:
            import ray

            host, where = ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()
        self.sid, self.host, self.where = sid, host, where
        self.own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"ekko-server-{sid}-") if workdir is None else workdir)
        self.port = _free_ports(host, 1)[0]
        self.proc: subprocess.Popen | None = None
        self.log: Any = None

    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def node(self) -> str:
        """Where this server runs: its Ray node's id in an actor, else the host name."""
        return self.where

    @property
    def log_path(self) -> Path:
        return self.workdir / f"server-{self.sid}.log"

    def start(self, spec: dict[str, Any]) -> None:
        spec = {**spec, "sid": self.sid, "wal": str(self.workdir / f"wal-{self.sid}.bin")}
        if self.log is not None:
            self.log.close()
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "impls.ekko.process"], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        self.proc.stdin.write(json.dumps(spec).encode())   # the secret never shows on a command line
        self.proc.stdin.close()

    def kill(self) -> int:
        self.proc.kill()
        return self.proc.wait(5)

    def exit_reason(self) -> str | None:
        """None while the server runs, else the last line of its log (or its exit code)."""
        code = None if self.proc is None else self.proc.poll()
        if code is None:
            return None
        text = self.log_text().strip()
        return text.splitlines()[-1] if text else f"exit code {code}"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Wait a moment for the server to exit (the driver asked it to), else kill it; clean up."""
        if self.proc is not None:
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)
        if self.log is not None:
            self.log.close()
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class _ServerOnRay:
    """The driver's handle on a ServerHost in a Ray actor: the same calls, answered from its node."""

    CALL_TIMEOUT_S = 30.0

    def __init__(self, ray: Any, actor: Any):
        self.ray, self.actor = ray, actor
        self._address, self._node = self._call("address"), self._call("node")

    def _call(self, method: str, *args: Any) -> Any:
        return self.ray.get(getattr(self.actor, method).remote(*args), timeout=self.CALL_TIMEOUT_S)

    def address(self) -> tuple[str, int]:
        return self._address

    def node(self) -> str:
        return self._node

    def start(self, spec: dict[str, Any]) -> None:
        self._call("start", spec)

    def kill(self) -> int:
        return self._call("kill")

    def exit_reason(self) -> str | None:
        try:
            return self._call("exit_reason")
        except self.ray.exceptions.RayActorError as exc:
            return f"its Ray actor on node {self._node[:8]} was lost ({type(exc).__name__})"

    def log_text(self) -> str:
        return self._call("log_text")

    def stop(self) -> None:
        try:
            self._call("stop")
        except self.ray.exceptions.RayError:
            pass   # its node is gone: nothing left there to stop
        self.ray.kill(self.actor)


def _servers_on_ray(n: int) -> list[_ServerOnRay]:
    """n ServerHosts in Ray actors, server i on the i-th live node (mod their number) that offers a CPU."""
    try:
        import ray
    except ImportError:
        raise ValueError("placement='ray' needs Ray, which is not installed: pip install 'recmine[cluster]'") from None
    if not ray.is_initialized():
        raise ValueError("placement='ray' needs a Ray cluster: call ray.init() (or ray.init(address=...)) first")
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1)
    if not nodes:
        raise ValueError("the Ray cluster has no live node that offers a CPU")
    # No CPU reserved: the actor only waits on its server, whose process Ray does not account for.
    actor = ray.remote(num_cpus=0, max_restarts=0)(ServerHost)
    return [_ServerOnRay(ray, actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
        nodes[sid % len(nodes)], soft=False)).remote(sid)) for sid in range(n)]


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
    addresses: list[tuple[str, int]] | None = None   # per server: where it listened
    nodes: list[str] | None = None         # per server: its Ray node id (local placement: this host's name)


def _free_ports(host: str, n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind((host, 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class _Conn:
    """An authenticated control connection: send a map, read the one map that answers it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, unpacker: msgpack.Unpacker):
        self.reader, self.writer, self.unpacker = reader, writer, unpacker

    @classmethod
    async def open(cls, address: tuple[str, int], secret: bytes, frame_bytes: int, timeout: float) -> "_Conn":
        return cls(*await asyncio.wait_for(_connect(address, secret, frame_bytes), timeout))

    async def call(self, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.writer.write(msgpack.packb(msg))
        await self.writer.drain()
        return await _read_frame(self.reader, self.unpacker, timeout)

    def close(self) -> None:
        self.writer.close()


class _Cluster:
    CHECK_EVERY_S = 0.1   # how often check_alive asks the servers' hosts (over Ray, a round trip each)

    def __init__(self, config: ClusterConfig, workdir: Path, placement: str = "local", secret: bytes | None = None):
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}")
        self.config, self.workdir, self.placement = config, workdir, placement
        self.secret = secret or secrets.token_bytes(32)
        self.hosts: list[Any] = ([ServerHost(sid, LOOPBACK, str(workdir)) for sid in range(config.n_servers)]
                                 if placement == "local" else _servers_on_ray(config.n_servers))
        self.addresses = [tuple(h.address()) for h in self.hosts]
        self.epoch = time.time()
        self.started: set[int] = set()
        self.down: set[int] = set()   # killed on purpose, not yet restarted: not a death to report
        self._checked_at = -math.inf

    def start(self, sid: int) -> None:
        self.down.discard(sid)
        self.started.add(sid)
        self.hosts[sid].start({"config": asdict(self.config), "addresses": self.addresses, "epoch": self.epoch,
                               "secret": self.secret.hex()})

    def kill(self, sid: int) -> int:
        self.down.add(sid)
        return self.hosts[sid].kill()

    def check_alive(self) -> None:
        if time.monotonic() - self._checked_at < self.CHECK_EVERY_S:
            return
        self._checked_at = time.monotonic()
        for sid in sorted(self.started - self.down):
            reason = self.hosts[sid].exit_reason()
            if reason is not None:
                dc, idx = divmod(sid, self.config.servers_per_dc)
                raise ServerDied(f"server {sid} (DC {dc}, index {idx}) died: {reason}")

    async def connect(self, sid: int, timeout: float) -> _Conn:
        return await _Conn.open(self.addresses[sid], self.secret, self.config.max_frame_bytes, timeout)

    async def request(self, sid: int, msg: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One request on a fresh connection."""
        conn = await self.connect(sid, timeout)
        try:
            return await conn.call(msg, timeout)
        finally:
            conn.close()

    async def wait_ready(self, sids: list[int], deadline: float) -> None:
        for sid in sids:
            while True:
                self.check_alive()
                try:
                    (await self.connect(sid, 1.0)).close()
                    break
                except (OSError, asyncio.TimeoutError):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"server {sid} did not start listening in time") from None
                    await asyncio.sleep(0.05)

    def stop_all(self) -> None:
        async def bye() -> None:
            for sid in sorted(self.started - self.down):
                try:
                    await self.request(sid, {"k": "stop"}, 2.0)
                except (OSError, asyncio.TimeoutError):
                    pass
        asyncio.run(bye())
        for host in self.hosts:
            host.stop()


def run_cluster(stream: UpdateStream, config: ClusterConfig = ClusterConfig(), *, workdir: str | Path,
                batch: int = 5000, kill: tuple[int, float] | None = None, down_s: float = 0.0,
                timeout_s: float = 60.0, paced: bool = False, placement: str = "local",
                secret: bytes | None = None,
                on_ready: Callable[[list[tuple[str, int]]], None] | None = None) -> ClusterResult:
    """Run the stream through real server processes until every replica agrees, or raise.

    `kill=(server, fraction)` kills that server (SIGKILL) once `fraction` of the
    updates are acknowledged, while the origins' writes go on, and restarts it
    `down_s` seconds later (at once by default: the outage is then the process
    start-up, which varies from machine to machine).  `paced` sends each batch no earlier than its first update's
    stream time (the offered load); otherwise as fast as the servers acknowledge.
    `placement` "ray" starts the servers on the nodes of the Ray cluster the caller joined
    (see the module's docstring); the local servers' logs and write-ahead logs are in `workdir`.
    `secret` is the run's (random when None); `on_ready(addresses)` is called once every server
    listens, before the first write (a caller can probe the servers there, as the tests do).
    Raises ServerDied if a server exits on its own and TimeoutError if the run passes
    `timeout_s`.  Process start-up is not counted in the elapsed time.
    """
    if config.n_servers > 64:
        raise ValueError(f"at most 64 server processes, got {config.n_servers}")
    if kill is not None and not (0 <= kill[0] < config.n_servers and 0.0 <= kill[1] <= 1.0):
        raise ValueError(f"kill must be (server in 0..{config.n_servers - 1}, fraction in [0, 1]), got {kill}")
    if not (math.isfinite(down_s) and 0.0 <= down_s <= timeout_s):
        raise ValueError(f"down_s must be in [0, timeout_s = {timeout_s}], got {down_s}")
    if not config.max_frame_bytes:
        config = replace(config, max_frame_bytes=frame_bound(len(stream), config))
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for old in list(workdir.glob("wal-*.bin")) + list(workdir.glob("server-*.log")):
        old.unlink()
    cluster = _Cluster(config, workdir, placement, secret)
    m = config.servers_per_dc
    shards = stream.keys % config.n_shards
    owner = shards % m
    deadline = time.monotonic() + timeout_s

    async def drive() -> ClusterResult:
        await cluster.wait_ready(list(range(config.n_servers)), deadline)
        if on_ready is not None:
            on_ready(list(cluster.addresses))
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
                        conn = conn or await cluster.connect(sid, 5.0)
                        reply = await conn.call(msg, 5.0)
                        break
                    except (OSError, asyncio.TimeoutError):
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
            except (OSError, asyncio.TimeoutError):
                digests = None
            if digests is not None and all(digests[sid] == digests[sid % m] for sid in range(config.n_servers)):
                elapsed = time.monotonic() - start
                silence = None if kill is None else {
                    sid: r["silence"].get(str(kill[0]), 0.0) for sid, r in enumerate(replies) if sid != kill[0]}
                lost = 0 if kill is None else sum(r["lost"].get(str(kill[0]), 0) for r in replies)
                return ClusterResult(True, digests, elapsed, len(stream), len(stream) / elapsed, acked,
                                     int(len(np.unique(stream.keys))), killed.get("returncode"),
                                     killed.get("in_flight", 0), silence, lost,
                                     network="plain loopback (no netns/tc)" if placement == "local" else
                                     "plain TCP between Ray nodes (no netns/tc)",
                                     addresses=list(cluster.addresses), nodes=[h.node() for h in cluster.hosts])
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
