"""The same protocol core in real server processes over TCP on loopback."""

from __future__ import annotations

import socket
import time

import pytest

from impls.ekko.process import ClusterConfig, ServerDied, _Cluster, run_cluster
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
    blocker.bind(("127.0.0.1", cluster.ports[1]))
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
