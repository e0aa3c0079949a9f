"""G2Miner's edge chunks as Ray tasks on the 3-node cluster: counts equal the single-process counts."""

from __future__ import annotations

import numpy as np
import pytest

import impls.g2miner as g2miner
from impls.g2miner.partition import count_partitioned
from workloads.graphs import from_edges

pytestmark = pytest.mark.cluster


def _random_graph(rng: np.random.Generator):
    n = 60
    edges = np.argwhere(np.triu(rng.random((n, n)) < 0.2, 1))
    return from_edges(edges[:, 0], edges[:, 1], num_vertices=n, name="gnp-60")


@pytest.mark.parametrize("pattern", ["triangle", "diamond", "4-cycle"])
def test_g2miner_counts_on_ray_equal_local(ray_cluster, citeseer, fresh_rng, pattern):
    _, node_ids = ray_cluster
    for graph in (citeseer, _random_graph(fresh_rng)):
        local = g2miner.count(graph, pattern)
        on_ray = count_partitioned(graph, pattern, num_partitions=5, chunk=64, placement="ray")
        assert on_ray.total == local
        assert sum(on_ray.partition_counts) == local and len(on_ray.nodes) == 5
        assert set(on_ray.nodes) <= set(node_ids.values())


def test_g2miner_on_ray_defaults_to_one_partition_per_cpu(ray_cluster, citeseer):
    result = count_partitioned(citeseer, "triangle", placement="ray")
    assert len(result.partition_counts) == 3  # three nodes of one CPU each
    assert result.total == g2miner.count(citeseer, "triangle")
