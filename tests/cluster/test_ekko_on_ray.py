"""Ekko's server processes started by Ray actors on the 3-node cluster: a killed server restarts, all converge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from impls.ekko.process import ClusterConfig, run_cluster
from workloads.ekko_updates import generate_updates

pytestmark = pytest.mark.cluster

STREAM = generate_updates(6000, 20_000, 5.0, simulated_hours=3.0, seed=4)
CONFIG = ClusterConfig(n_dcs=2, servers_per_dc=3, n_shards=12)
ROOT = Path(__file__).resolve().parents[2]


def test_ekko_on_ray_converges_with_a_server_killed_and_restarted(ray_cluster, tmp_path):
    _, node_ids = ray_cluster
    local = run_cluster(STREAM, CONFIG, workdir=tmp_path / "local", timeout_s=60)
    # Server 4 (a DC-1 replica) killed half-way and held down past the pull timeout, as on one machine.
    result = run_cluster(STREAM, CONFIG, workdir=tmp_path / "ray", batch=400, kill=(4, 0.5), down_s=1.5,
                         timeout_s=90, placement="ray")
    assert result.kill_returncode == -9 and result.writes_in_flight_at_kill >= 1
    assert result.converged and result.acked == len(STREAM)
    assert result.digests == local.digests          # no acknowledged update lost, same versions
    assert result.pulls_lost_to_victim >= 1
    assert set(result.nodes) == set(node_ids.values())   # six servers dealt over the three nodes
    assert all(host != "127.0.0.1" for host, _ in result.addresses)   # they listened off loopback
    assert result.network.startswith("plain TCP between Ray nodes")


def test_ekko_processes_command_places_its_servers_on_the_cluster(ray_cluster):
    cluster, _ = ray_cluster
    done = subprocess.run([sys.executable, "-m", "harness.cli", "ekko", "processes", "--updates", "3000",
                           "--kill", "1", "--ray", cluster.address, "--timeout", "90"],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["converged"] and out["nodes"] == 3 and out["processes"] == 6
