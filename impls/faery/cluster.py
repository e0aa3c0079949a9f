"""Several FAERY instances serving one corpus, as in the paper's multi-accelerator modes.

- replicated: every instance holds the whole corpus; a batch's queries are dealt
  round-robin to the instances (throughput).
- sharded: the corpus is split into contiguous shards, every instance answers every
  query over its shard, and the per-shard top-k lists are merged (corpus size).
  The merged result equals a single instance's: ties still go to the lower global id.

Placement (`placement=`):

- "in-process" (default): instances run in threads of this process: the backends release
  the GIL (numba nogil, OpenCL and CUDA calls), so instances overlap on a multi-core host or
  several devices.  On the gpu backend each instance has its own device buffers, and
  instance i lives on GPU i mod (number of GPUs), so several GPUs are used when present.
- "ray": each instance is a Ray actor, dealt round-robin to the nodes of the cluster that
  the caller's `ray.init` joined, holding its index on its node's backend (one GPU each on the
  gpu backend).  A query batch is sent to every shard actor (sharded) or dealt round-robin
  to the actors (replicated), and the per-shard top-k lists are merged here.  The corpus is
  put in the object store once (replicated) or once per shard (sharded).

Either way this object is the corpus manager: it keeps each global id's owner, and routes
inserts, updates and deletes to the owning shard (or to every replica).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from devices import cuda
from impls.faery.backend import merge_topk
from impls.faery.index import Index, live_ids
from workloads.embeddings import as_corpus, as_queries, check_k

MODES = ("replicated", "sharded")
PLACEMENTS = ("in-process", "ray")


class Cluster:
    """`instances` FAERY indexes on `backend`, in `mode` "replicated" or "sharded", placed by `placement`."""

    def __init__(self, corpus: np.ndarray, instances: int, mode: str = "sharded", backend: str = "cpu",
                 placement: str = "in-process") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown cluster mode {mode!r}; choose one of {', '.join(MODES)}")
        if placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {placement!r}; choose one of {', '.join(PLACEMENTS)}")
        if isinstance(instances, bool) or not isinstance(instances, (int, np.integer)) or instances < 1:
            raise ValueError(f"instances must be a positive integer, not {instances!r}")
        corpus = as_corpus(corpus)
        if mode == "sharded" and instances > corpus.shape[0]:
            raise ValueError(f"cannot split {corpus.shape[0]} rows into {instances} shards")
        self.mode, self.backend, self.placement, self.dim = mode, backend, placement, corpus.shape[1]
        self._devices = cuda.device_count() if backend == "gpu" and placement == "in-process" else 0
        new_member = self._ray_member(backend) if placement == "ray" else (
            lambda i, rows: self._on(i, Index, rows, backend))
        if mode == "replicated":
            whole = _put(corpus) if placement == "ray" else corpus  # in the object store once, for every actor
            self.members = [new_member(i, whole) for i in range(instances)]
            self._global_ids: list[np.ndarray] = []
        else:
            bounds = np.linspace(0, corpus.shape[0], instances + 1).astype(np.int64)
            self.members = [new_member(i, corpus[lo:hi]) for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]
            # Global id of each member's local row; ids are handed out in insertion order.
            self._global_ids = [np.arange(lo, hi, dtype=np.int64) for lo, hi in zip(bounds[:-1], bounds[1:])]
            self._owner = np.repeat(np.arange(instances), np.diff(bounds))
            self._local = np.concatenate([np.arange(hi - lo) for lo, hi in zip(bounds[:-1], bounds[1:])])
            self._live = np.ones(corpus.shape[0], dtype=bool)  # by global id, so errors name global ids
        self._pool = ThreadPoolExecutor(max_workers=instances)

    @staticmethod
    def _ray_member(backend: str) -> Callable[[int, Any], "_RayMember"]:
        """Instance i's actor goes to the i-th node (mod their number) that offers a CPU (a GPU on gpu)."""
        ray = _ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        offer = "GPU" if backend == "gpu" else "CPU"
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get(offer, 0) >= 1)
        if not nodes:
            raise ValueError(f"the Ray cluster has no live node that offers a {offer}")
        actor = ray.remote(_Shard)

        def place(instance: int, rows: Any) -> _RayMember:
            # Hard affinity: a soft one lets Ray's scheduler pile actors onto the driver's node.
            where = NodeAffinitySchedulingStrategy(nodes[instance % len(nodes)], soft=False)
            return _RayMember(actor.options(num_cpus=0, num_gpus=1 if backend == "gpu" else 0,
                                            scheduling_strategy=where).remote(rows, backend))
        return place

    @property
    def n_live(self) -> int:
        return self.members[0].n_live if self.mode == "replicated" else sum(m.n_live for m in self.members)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = as_queries(queries, self.dim)
        k = check_k(k, self.n_live)
        if self.mode == "replicated":
            return self._search_replicated(queries, k)
        return self._search_sharded(queries, k)

    def _search_replicated(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.members)
        jobs = [self._submit_search(i, m, queries[i::n], k)
                for i, m in enumerate(self.members) if queries[i::n].shape[0]]
        scores = np.empty((queries.shape[0], k), dtype=np.float32)
        ids = np.empty((queries.shape[0], k), dtype=np.int64)
        for i, job in enumerate(jobs):
            scores[i::n], ids[i::n] = job.result()
        return scores, ids

    def _search_sharded(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        jobs = [(self._submit_search(i, m, queries, min(k, m.n_live)), g)
                for i, (m, g) in enumerate(zip(self.members, self._global_ids)) if m.n_live]
        parts = []
        for job, global_ids in jobs:
            scores, local = job.result()
            parts.append((scores, global_ids[local]))
        return merge_topk(parts, k)

    def insert(self, vectors: np.ndarray) -> np.ndarray:
        """Add embeddings (sharded: to the smallest shard); returns their new global ids."""
        if self.mode == "replicated":
            new = [self._on(i, m.insert, vectors) for i, m in enumerate(self.members)]
            return new[0]
        target = int(np.argmin([m.n_rows for m in self.members]))
        local = self._on(target, self.members[target].insert, vectors)
        first = self._owner.shape[0]
        new_ids = np.arange(first, first + local.shape[0], dtype=np.int64)
        self._global_ids[target] = np.concatenate([self._global_ids[target], new_ids])
        self._owner = np.concatenate([self._owner, np.full(local.shape[0], target)])
        self._local = np.concatenate([self._local, local])
        self._live = np.concatenate([self._live, np.ones(local.shape[0], dtype=bool)])
        return new_ids

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self.mode == "replicated":
            for i, m in enumerate(self.members):
                self._on(i, m.update, ids, vectors)
            return
        ids = live_ids(ids, self._live, "update")
        vectors = np.atleast_2d(np.asarray(vectors))
        if vectors.shape[0] != ids.shape[0]:
            raise ValueError(f"update got {ids.shape[0]} ids but {vectors.shape[0]} vectors")
        for shard, rows in self._by_shard(ids):
            self._on(shard, self.members[shard].update, self._local[ids[rows]], vectors[rows])

    def delete(self, ids: np.ndarray) -> None:
        if self.mode == "replicated":
            for i, m in enumerate(self.members):
                self._on(i, m.delete, ids)
            return
        ids = np.unique(live_ids(ids, self._live, "delete"))
        for shard, rows in self._by_shard(ids):
            self._on(shard, self.members[shard].delete, self._local[ids[rows]])
        self._live[ids] = False

    def close(self) -> None:
        self._pool.shutdown()
        for member in self.members:
            if isinstance(member, _RayMember):
                member.close()

    def _submit_search(self, instance: int, member: Any, queries: np.ndarray, k: int) -> Any:
        """Start one member's search; the returned handle's result() waits for (scores, ids)."""
        if isinstance(member, _RayMember):
            return member.submit_search(queries, k)
        return self._pool.submit(self._on, instance, member.search, queries, k)

    def _on(self, instance: int, fn: Callable[..., Any], *args: Any) -> Any:
        """Call fn on instance's device (a no-op scope off the gpu backend)."""
        with self._device_scope(instance):
            return fn(*args)

    def _device_scope(self, instance: int) -> contextlib.AbstractContextManager:
        if not self._devices:
            return contextlib.nullcontext()
        import cupy

        return cupy.cuda.Device(instance % self._devices)

    def _by_shard(self, ids: np.ndarray) -> list[tuple[int, np.ndarray]]:
        owners = self._owner[ids]
        return [(int(s), np.flatnonzero(owners == s)) for s in np.unique(owners)]



# ---------------------------------------------------------------------------- on Ray

def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError("placement='ray' needs Ray, which is not installed: pip install 'recmine[cluster]'") from None
    if not ray.is_initialized():
        raise ValueError("placement='ray' needs a Ray cluster: call ray.init() (or ray.init(address=...)) first")
    return ray


def _put(array: np.ndarray) -> Any:
    return _ray().put(array)


class _Shard:
    """A Ray actor holding one instance's index on its node's backend.

    Mutations answer with the index's counts, so that the driver never asks for them separately.
    """

    def __init__(self, rows: np.ndarray, backend: str) -> None:
        self.index = Index(rows, backend)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)

    def insert(self, vectors: np.ndarray) -> tuple[np.ndarray, int, int]:
        return self.index.insert(vectors), self.index.n_live, self.index.n_rows

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> tuple[None, int, int]:
        return self.index.update(ids, vectors), self.index.n_live, self.index.n_rows

    def delete(self, ids: np.ndarray) -> tuple[None, int, int]:
        return self.index.delete(ids), self.index.n_live, self.index.n_rows

    def counts(self) -> tuple[int, int]:
        return self.index.n_live, self.index.n_rows


class _RayFuture:
    def __init__(self, ref: Any) -> None:
        self.ref = ref

    def result(self) -> Any:
        return _unwrap(lambda: _ray().get(self.ref))


class _RayMember:
    """The driver's handle on one `_Shard` actor, with the Index methods the Cluster calls."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.n_live, self.n_rows = _unwrap(lambda: _ray().get(actor.counts.remote()))

    def submit_search(self, queries: np.ndarray, k: int) -> _RayFuture:
        return _RayFuture(self.actor.search.remote(queries, k))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.submit_search(queries, k).result()

    def insert(self, vectors: np.ndarray) -> np.ndarray:
        return self._mutate(self.actor.insert, vectors)

    def update(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._mutate(self.actor.update, ids, vectors)

    def delete(self, ids: np.ndarray) -> None:
        self._mutate(self.actor.delete, ids)

    def close(self) -> None:
        _ray().kill(self.actor)

    def _mutate(self, method: Any, *args: Any) -> Any:
        result, self.n_live, self.n_rows = _unwrap(lambda: _ray().get(method.remote(*args)))
        return result


def _unwrap(call: Callable[[], Any]) -> Any:
    """call(), with an actor's ValueError raised here as the plain ValueError its caller would get in-process."""
    ray = _ray()
    try:
        return call()
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), ValueError) else None
        if cause is not None:
            raise ValueError(str(cause)) from None
        raise
