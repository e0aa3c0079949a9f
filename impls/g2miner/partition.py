"""Multi-device scheduling: the edge list cut into partitions whose counts are summed.

The plan's edge list is cut into chunks (default 1024 edges), and the chunks
are dealt to partitions by one of three policies:

- "round-robin" (default): chunk c goes to partition c mod P;
- "even": P contiguous ranges of equal edge count;
- "least-work": chunks by decreasing estimated work, min(deg(src), deg(dst))
  summed over the chunk, each to the partition with the least work so far.

Placement (`placement=`):

- "in-process" (default): on the gpu backend partition p runs on device p mod
  (visible devices), all launched before any is awaited; on the others the
  partitions run in turn.  With one device (or none), P logical partitions still
  run and must sum to the single-partition count.
- "ray": each partition is a Ray task on the cluster that the caller's `ray.init`
  joined, one GPU each on the gpu backend (by default one partition per GPU of
  the cluster, else per CPU).  The prepared graph is put in the object store once
  and every task reads it from there; a task receives only its edge indices.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np

from devices import cuda
from impls.g2miner import pattern as patterns
from impls.g2miner.analyser import SearchPlan
from impls.g2miner.analyser import plan as make_plan
from impls.g2miner.prepare import PreparedGraph, prepare
from impls.g2miner.dispatch import check_backend, count_prepared
from workloads.graphs import CSRGraph

POLICIES = ("round-robin", "even", "least-work")
PLACEMENTS = ("in-process", "ray")
DEFAULT_CHUNK = 1024


@dataclass(frozen=True)
class ScheduledCount:
    """A partitioned count: the total, each partition's share and the device it ran on.

    On Ray, `nodes` holds the id of the node each partition ran on (`devices` is then each
    partition's GPU index there, or 0 off the gpu backend).
    """

    total: int
    partition_counts: tuple[int, ...]
    devices: tuple[int, ...]
    policy: str
    nodes: tuple[str, ...] = ()


def partition_edges(graph: PreparedGraph, num_partitions: int, chunk: int = DEFAULT_CHUNK,
                    policy: str = "round-robin") -> list[np.ndarray]:
    """Edge-list indices of each partition (sorted within a partition)."""
    if num_partitions < 1:
        raise ValueError(f"num_partitions must be >= 1, not {num_partitions}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 edge, not {chunk}")
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    edges = np.arange(graph.num_edges, dtype=np.int64)
    if policy == "even":
        return [np.ascontiguousarray(part) for part in np.array_split(edges, num_partitions)]
    chunk_of_edge = edges // chunk
    num_chunks = int(chunk_of_edge[-1]) + 1 if graph.num_edges else 0
    if policy == "round-robin":
        owner = np.arange(num_chunks) % num_partitions
    else:
        degrees = np.diff(graph.indptr)
        work = np.minimum(degrees[graph.src], degrees[graph.dst])
        chunk_work = np.bincount(chunk_of_edge, weights=work, minlength=num_chunks)
        owner = np.empty(num_chunks, dtype=np.int64)
        load = np.zeros(num_partitions)
        for c in np.argsort(-chunk_work, kind="stable"):
            p = int(np.argmin(load))
            owner[c] = p
            load[p] += chunk_work[c]
    edge_owner = owner[chunk_of_edge]
    return [np.flatnonzero(edge_owner == p) for p in range(num_partitions)]


def count_partitioned(graph: CSRGraph, pattern: "str | patterns.Pattern | Iterable[Sequence[int]]",
                      backend: str = "cpu", induced: bool = False, num_partitions: int | None = None,
                      chunk: int = DEFAULT_CHUNK, policy: str = "round-robin",
                      placement: str = "in-process") -> ScheduledCount:
    """Count `pattern` with the edge list split into partitions (one per visible GPU by default)."""
    check_backend(backend)
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}")
    search_plan = make_plan(patterns.get(pattern), bool(induced))
    prepared = prepare(graph, search_plan)
    if placement == "ray":
        return _count_on_ray(search_plan, prepared, backend, num_partitions, chunk, policy)
    num_devices = cuda.device_count() if backend == "gpu" else 1
    if num_partitions is None:
        num_partitions = max(num_devices, 1)
    parts = partition_edges(prepared, num_partitions, chunk, policy)
    devices = tuple(p % max(num_devices, 1) for p in range(num_partitions))
    if backend == "gpu":
        from impls.g2miner import gpu

        pending = [gpu.launch(search_plan, prepared.subset(ids), device)
                   for ids, device in zip(parts, devices)]
        counts = tuple(p.result() for p in pending)
    else:
        counts = tuple(count_prepared(search_plan, prepared.subset(ids), backend) for ids in parts)
    return ScheduledCount(sum(counts), counts, devices, policy)



def _count_on_ray(search_plan: SearchPlan, prepared: PreparedGraph, backend: str, num_partitions: int | None,
                  chunk: int, policy: str) -> ScheduledCount:
    try:
        import ray
    except ImportError:
        raise ValueError("placement='ray' needs Ray, which is not installed: pip install 'recmine[cluster]'") from None
    if not ray.is_initialized():
        raise ValueError("placement='ray' needs a Ray cluster: call ray.init() (or ray.init(address=...)) first")
    gpu = backend == "gpu"
    if num_partitions is None:
        workers = ray.cluster_resources().get("GPU" if gpu else "CPU", 0)
        num_partitions = max(int(workers), 1)
    parts = partition_edges(prepared, num_partitions, chunk, policy)
    graph_ref = ray.put(prepared)  # once: every task reads the same object
    task = ray.remote(_count_partition).options(num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0)
    results = ray.get([task.remote(search_plan, graph_ref, ids, backend) for ids in parts])
    counts = tuple(count for count, _, _ in results)
    return ScheduledCount(sum(counts), counts, tuple(device for _, device, _ in results), policy,
                          tuple(node for _, _, node in results))


def _count_partition(search_plan: SearchPlan, prepared: PreparedGraph, edge_ids: np.ndarray,
                     backend: str) -> tuple[int, int, str]:
    """One partition's count on the node Ray chose: (count, GPU index there or 0, node id)."""
    import ray

    context = ray.get_runtime_context()
    gpu_ids = ray.get_gpu_ids() if backend == "gpu" else []
    # Arrays read from the object store are read-only, and the numba kernels are typed for writable
    # ones: the adjacency is copied once per task, within the node (the edge subset is a copy anyway).
    adjacency = replace(prepared, indptr=np.array(prepared.indptr), indices=np.array(prepared.indices))
    return (count_prepared(search_plan, adjacency.subset(edge_ids), backend), int(gpu_ids[0]) if gpu_ids else 0,
            context.get_node_id())
