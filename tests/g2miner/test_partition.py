"""Multi-device scheduling: partitions cover the edge list once, and their counts sum to the whole."""

from __future__ import annotations

import numpy as np
import pytest

from impls import g2miner
from impls.g2miner.prepare import prepare
from impls.g2miner.partition import POLICIES, count_partitioned, partition_edges

from tests.g2miner.conftest import CI_BACKENDS


@pytest.mark.parametrize("policy", POLICIES)
def test_partitions_cover_every_edge_once(citeseer, policy):
    prepared = prepare(citeseer, g2miner.plan("diamond"))
    parts = partition_edges(prepared, 3, chunk=100, policy=policy)
    joined = np.sort(np.concatenate(parts))
    assert np.array_equal(joined, np.arange(prepared.num_edges))
    assert all(len(p) for p in parts)


def test_round_robin_deals_whole_chunks(citeseer):
    prepared = prepare(citeseer, g2miner.plan("triangle"))
    parts = partition_edges(prepared, 4, chunk=1024)
    assert parts[0][:1024].tolist() == list(range(1024))
    assert parts[1][0] == 1024


@pytest.mark.parametrize("backend", CI_BACKENDS)
@pytest.mark.parametrize("policy", POLICIES)
def test_partition_counts_sum_to_single_partition_count(citeseer, backend, policy):
    for name in ("triangle", "diamond"):
        whole = g2miner.count(citeseer, name, backend=backend)
        result = count_partitioned(citeseer, name, backend=backend, num_partitions=5, chunk=128, policy=policy)
        assert result.total == whole and len(result.partition_counts) == 5
        assert sum(result.partition_counts) == whole


def test_bad_schedules_are_refused(citeseer):
    prepared = prepare(citeseer, g2miner.plan("triangle"))
    with pytest.raises(ValueError, match="num_partitions"):
        partition_edges(prepared, 0)
    with pytest.raises(ValueError, match="chunk"):
        partition_edges(prepared, 2, chunk=0)
    with pytest.raises(ValueError, match="unknown policy 'random'"):
        partition_edges(prepared, 2, policy="random")
