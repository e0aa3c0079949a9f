"""The same protocol core in real server processes over TCP on loopback; strangers and bad frames refused."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import msgpack
import numpy as np
import pytest

from impls.ekko.process import (BadFrame, ClusterConfig, ServerDied, _Cluster, _connect, encode, frame_bound, parse,
                                run_cluster)
from workloads.ekko_updates import generate_updates

STREAM = generate_updates(6000, 20_000, 5.0, simulated_hours=3.0, seed=4)
CONFIG = ClusterConfig(n_dcs=2, servers_per_dc=3, n_shards=12)


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    return run_cluster(STREAM, CONFIG, workdir=tmp_path_factory.mktemp("clean"), timeout_s=60)


def test_processes_converge(clean_run) -> None:
    assert clean_run.converged and clean_run.acked == len(STREAM)
    assert clean_run.network.startswith("plain loopback")
    assert clean_run.distinct_keys == len(set(STREAM.keys.tolist()))


def test_processes_with_transport_latency_converge(clean_run, tmp_path) -> None:
    from dataclasses import replace

    config = replace(CONFIG, latency_ms=((0.0, 30.0), (30.0, 0.0)))
    result = run_cluster(STREAM, config, workdir=tmp_path, timeout_s=60)
    assert result.digests == clean_run.digests


@pytest.mark.parametrize("victim", [0, 4])   # an origin in DC 0, and a replica in DC 1
def test_killed_and_restarted_server_converges_to_the_same_state(victim: int, clean_run, tmp_path) -> None:
    # Batches of 400: each origin gets about five, so the kill lands with writes still to come and on the wire.
    # Down for 1.5 s, past the 1 s pull timeout, so that its peers must give pulls up whatever the start-up time.
    result = run_cluster(STREAM, CONFIG, workdir=tmp_path, batch=400, kill=(victim, 0.5), down_s=1.5, timeout_s=60)
    assert result.kill_returncode == -9                  # SIGKILL really hit the process
    assert result.writes_in_flight_at_kill >= 1
    assert result.converged and result.acked == len(STREAM)
    assert result.digests == clean_run.digests      # no acknowledged update lost, same versions
    # Its peers in the other DC went without its answers for at least three sync intervals,
    # and gave up pulls that were waiting on it when it died.
    assert max(result.longest_silence_s.values()) >= 1.5
    assert result.pulls_lost_to_victim >= 1


def test_a_server_that_dies_is_named(tmp_path) -> None:
    cluster = _Cluster(CONFIG, tmp_path)
    blocker = socket.socket()
    blocker.bind(cluster.addresses[1])
    blocker.listen()
    try:
        cluster.start(1)
        deadline = time.monotonic() + 30
        with pytest.raises(ServerDied, match=r"server 1 \(DC 0, index 1\) died: .*(in use|Errno)"):
            while time.monotonic() < deadline:
                cluster.check_alive()
                time.sleep(0.05)
    finally:
        blocker.close()
        cluster.stop_all()


def test_bad_kill_spec_is_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match="kill"):
        run_cluster(STREAM, CONFIG, workdir=tmp_path, kill=(99, 0.5))
    with pytest.raises(ValueError, match="down_s"):
        run_cluster(STREAM, CONFIG, workdir=tmp_path, kill=(1, 0.5), down_s=float("nan"))


def test_processes_reach_the_state_the_simulation_reaches(clean_run) -> None:
    from impls.ekko.sim import simulate_ekko
    from wan.network import WanConfig

    wan = WanConfig(n_dcs=CONFIG.n_dcs, servers_per_dc=CONFIG.servers_per_dc)
    sim = simulate_ekko(STREAM, wan, CONFIG.protocol(), n_shards=CONFIG.n_shards)
    for sid, digests in enumerate(clean_run.digests):
        dc = sid // CONFIG.servers_per_dc
        assert {int(s): d for s, d in digests.items()} == {s: sim.digests[dc][s] for s in map(int, digests)}


SECRET = bytes(range(32))
# A write that would change shard 0's digest if any server applied it.
FORGED_WRITE = {"k": "write", "batch": 10**9, "shard": [0], "key": [987_654_324], "stamp": [0.0],
                "values": np.full(CONFIG.dim, 7.0, np.float32).tobytes()}


def _probing(probe):
    """An on_ready hook running the async `probe(addresses)` to its end in a thread (the driver's loop is busy)."""
    failures: list[BaseException] = []

    def hook(addresses) -> None:
        def target() -> None:
            try:
                asyncio.run(probe(addresses))
            except BaseException as exc:  # noqa: BLE001 - re-raised by the test after the run
                failures.append(exc)
        thread = threading.Thread(target=target)
        thread.start()
        thread.join(60)
        assert not thread.is_alive(), "the probe did not finish"
    return hook, failures


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes this connection (within 10 s) rather than leaving it open."""
    try:
        while await asyncio.wait_for(reader.read(1 << 16), 10.0):
            pass
    except ConnectionError:
        pass
    return True


def _log(tmp_path, sid: int) -> str:
    return (tmp_path / f"server-{sid}.log").read_text()


def test_a_stranger_is_refused_and_never_applies_an_update(clean_run, tmp_path) -> None:
    async def stranger(addresses) -> None:
        with pytest.raises(ConnectionError):  # a wrong secret: the server closes instead of welcoming it
            await asyncio.wait_for(_connect(addresses[0], b"not this run's secret" + bytes(11), 1 << 20), 10.0)
        reader, writer = await asyncio.open_connection(*addresses[0])  # no handshake: a write straight away
        writer.write(msgpack.packb(FORGED_WRITE))
        await writer.drain()
        assert await _closed_by_server(reader)
        writer.close()

    hook, failures = _probing(stranger)
    result = run_cluster(STREAM, CONFIG, workdir=tmp_path, secret=SECRET, on_ready=hook, timeout_s=60)
    assert not failures, failures
    assert result.converged and result.digests == clean_run.digests   # the forged write was never applied
    refusals = [line for line in _log(tmp_path, 0).splitlines() if "refused a connection" in line]
    assert len(refusals) == 2 and "wrong answer to the challenge" in refusals[0], refusals


def test_garbage_and_oversized_frames_close_only_their_connection(clean_run, tmp_path) -> None:
    bound = frame_bound(len(STREAM), CONFIG)
    bad_frames = {
        "garbage": b"\xc1" * 64,                                           # no msgpack type starts with 0xc1
        "not a map": msgpack.packb([1, 2, 3]),
        "unknown kind": msgpack.packb({"k": "shout"}),
        "short values": msgpack.packb({**FORGED_WRITE, "values": b"short"}),
        # A bin32 header of 4 GiB, then a little over a bound's worth of it: the server must not wait for the rest.
        "announced huge": b"\xc6" + (2**32 - 1).to_bytes(4, "big") + bytes(bound + 64),
        "oversized": msgpack.packb({**FORGED_WRITE, "values": bytes(bound + 1)}),
    }

    async def peer(addresses) -> None:
        for name, frame in bad_frames.items():
            reader, writer, _ = await _connect(addresses[0], SECRET, bound)   # a peer that knows the secret
            try:
                writer.write(frame)
                await writer.drain()
            except ConnectionError:
                pass   # the server may close while a large frame is still being written
            assert await _closed_by_server(reader), name
            writer.close()

    hook, failures = _probing(peer)
    result = run_cluster(STREAM, CONFIG, workdir=tmp_path, secret=SECRET, on_ready=hook, timeout_s=60)
    assert not failures, failures
    assert result.converged and result.digests == clean_run.digests
    closed = [line for line in _log(tmp_path, 0).splitlines() if "closed the connection" in line]
    assert len(closed) == len(bad_frames), closed
    assert sum("size bound" in line for line in closed) == 2, closed


def test_frames_parse_back_and_a_key_outside_its_shard_is_refused() -> None:
    a, b = CONFIG.server(0), CONFIG.server(3)   # DC 0 and DC 1, the same shards
    held = set(a.group.shards.tolist())
    a.write(3, 15, np.ones(CONFIG.dim, np.float32), 1.0)   # 15 % 12 == 3
    (pull,) = [s.message for s in b.on_tick(1.0)]
    kind, parsed = parse(msgpack.unpackb(msgpack.packb(encode(pull))), CONFIG, held)
    assert kind == "pull" and np.array_equal(parsed.pulls.vv, pull.pulls.vv)
    (answer,) = a.on_message(parsed, 1.0)
    frame = msgpack.unpackb(msgpack.packb(encode(answer.message)))
    kind, delta = parse(frame, CONFIG, held)
    assert kind == "delta" and delta.deltas.keys.tolist() == [15]
    with pytest.raises(BadFrame, match="rows do not fit"):
        parse({**frame, "key": np.array([16]).tobytes()}, CONFIG, held)   # 16 is of shard 4
    with pytest.raises(BadFrame, match="not its own"):
        parse({**FORGED_WRITE, "key": [987_654_321]}, CONFIG, held)   # of shard 9, named as shard 0
