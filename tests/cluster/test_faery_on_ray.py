"""FAERY shards and replicas as Ray actors on the 3-node cluster: results equal a single instance's."""

from __future__ import annotations

import numpy as np
import pytest

from impls.faery import Cluster, Index

pytestmark = pytest.mark.cluster


@pytest.mark.parametrize("mode, instances", [("sharded", 3), ("replicated", 2)])
def test_faery_on_ray_equals_a_single_instance(ray_cluster, fresh_rng, mode, instances):
    # Small integer entries: many exact ties across shards, which must still go to the lower global id.
    corpus = fresh_rng.integers(-3, 4, size=(3000, 8)).astype(np.float32)
    queries = fresh_rng.integers(-3, 4, size=(5, 8)).astype(np.float32)
    cluster = Cluster(corpus, instances, mode, "cpu", placement="ray")
    single = Index(corpus, "cpu")
    try:
        if mode == "sharded":  # the shards were dealt to different nodes
            nodes = {_node_of(m.actor) for m in cluster.members}
            assert len(nodes) == instances
        live = np.arange(corpus.shape[0])
        for _ in range(2):
            got, want = cluster.search(queries, 30), single.search(queries, 30)
            np.testing.assert_array_equal(got[1], want[1])
            np.testing.assert_array_equal(got[0], want[0])
            new = fresh_rng.integers(-3, 4, size=(50, 8)).astype(np.float32)
            new_ids = single.insert(new)
            np.testing.assert_array_equal(cluster.insert(new), new_ids)
            victims = fresh_rng.choice(np.concatenate([live, new_ids]), 20, replace=False)  # live ids only
            cluster.delete(victims)
            single.delete(victims)
            live = np.setdiff1d(np.concatenate([live, new_ids]), victims)
            target = int(live[0])
            cluster.update([target], np.full((1, 8), 3.0))
            single.update([target], np.full((1, 8), 3.0))
        assert cluster.n_live == single.n_live
    finally:
        cluster.close()


def test_faery_on_ray_refuses_what_in_process_refuses(ray_cluster):
    corpus = np.ones((10, 4), dtype=np.float32)
    cluster = Cluster(corpus, 2, "sharded", placement="ray")
    try:
        with pytest.raises(ValueError, match="unknown id 10"):
            cluster.delete([10])
        with pytest.raises(ValueError, match="k"):
            cluster.search(np.ones((1, 4), dtype=np.float32), 11)
    finally:
        cluster.close()
    with pytest.raises(ValueError, match="unknown placement"):
        Cluster(corpus, 2, placement="mpi")


def _node_of(actor) -> str:
    import ray

    return ray.get(actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))

