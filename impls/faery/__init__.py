"""FAERY: exact top-K inner-product retrieval as scan -> score -> filter -> pipelined K-selection.

- `search(corpus, queries, k, backend="cpu")`: one call.
- `Index(corpus, backend)`: the corpus manager (insert, update, delete between queries).
- `Cluster(corpus, replicas|shards, backend)`: several backend instances, replicated or sharded.

Backends: "cpu" (numba), "opencl" (HLS-style kernel, PoCL), "gpu" (cupy CUDA C),
"fpga-model" (cycle-level model; its figures are modelled), "fpga-rtl" (the Amaranth RTL
in rtl/, simulated cycle by cycle; int8 values only).  See backend.py for the
contract a backend follows.
"""

from impls.faery.backend import BACKENDS
from impls.faery.cluster import Cluster
from impls.faery.index import Index, search

__all__ = ["BACKENDS", "Cluster", "Index", "search"]
