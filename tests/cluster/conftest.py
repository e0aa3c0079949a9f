"""A real multi-node Ray cluster on this machine (ray.cluster_utils.Cluster), shared by the cluster tests.

Three nodes, each with one CPU, a small object store and its own custom resource (`node_head`,
`node_a`, `node_b`), so that a test can tell where work landed. The head's health check is
tightened so that a node whose raylet is killed is called dead within seconds, not half a minute.
Every module here sets `pytestmark = pytest.mark.cluster` (`pytest -m cluster` selects them);
without Ray they skip.
"""

from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="the cluster tests need the `cluster` extra (ray)")

from ray.cluster_utils import Cluster  # noqa: E402

OBJECT_STORE_BYTES = 150 * 2**20
NODE_RESOURCES = ("node_head", "node_a", "node_b")


def node_args(resource: str, cpus: int = 1) -> dict:
    return {"num_cpus": cpus, "object_store_memory": OBJECT_STORE_BYTES, "resources": {resource: 1}}


@pytest.fixture(scope="session")
def ray_cluster():
    """(cluster, {resource name: ray node id}), with this process connected as the driver."""
    cluster = Cluster(initialize_head=True, head_node_args={
        **node_args(NODE_RESOURCES[0]), "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                           "health_check_initial_delay_ms": 0}})
    for name in NODE_RESOURCES[1:]:
        cluster.add_node(**node_args(name))
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        yield cluster, node_ids()
    finally:
        ray.shutdown()
        cluster.shutdown()


def node_ids() -> dict[str, str]:
    """Each live node's custom resource name, to its Ray node id."""
    out = {}
    for node in ray.nodes():
        if node.get("Alive"):
            for name in node["Resources"]:
                if name.startswith("node_") and not name.startswith("node:"):
                    out[name] = node["NodeID"]
    return out


@pytest.fixture(scope="session")
def citeseer():
    from pathlib import Path

    from workloads.graphs import load

    return load(Path(__file__).resolve().parents[2] / "workloads" / "data" / "citeseer" / "graph")
