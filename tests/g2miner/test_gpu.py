"""The CUDA backend on a real GPU: counts equal the numba counts (skipped without cupy and a device)."""

from __future__ import annotations

import pytest

from impls import g2miner
from impls.g2miner.partition import count_partitioned
from workloads.graphs import kron

from tests.g2miner.test_counts import EDGE_INDUCED_TRUTH, MOTIF_TRUTH

pytestmark = pytest.mark.gpu


def test_citeseer_counts_on_gpu(citeseer):
    for name, expected in EDGE_INDUCED_TRUTH.items():
        assert g2miner.count(citeseer, name, backend="gpu") == expected, name
    assert g2miner.motifs(citeseer, 4, backend="gpu") == MOTIF_TRUTH[4]


@pytest.mark.parametrize("scale", [16, 17, 18])
def test_kron_counts_equal_cpu(scale):
    graph = kron(scale)
    for name in ("triangle", "4-clique", "diamond", "4-cycle"):  # 4-cycle: the twin kernel
        assert g2miner.count(graph, name, backend="gpu") == g2miner.count(graph, name), (scale, name)


@pytest.mark.parametrize("name", ["diamond", "4-cycle"])  # parts of an edge list: 4-cycle runs its levels
def test_partitions_on_gpu_sum_to_the_whole(citeseer, name):
    result = count_partitioned(citeseer, name, backend="gpu", num_partitions=4, chunk=256)
    assert result.total == EDGE_INDUCED_TRUTH[name]
