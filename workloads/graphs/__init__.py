"""Graphs for pattern mining: the CSR type, loaders, preprocessing and generators.

- `CSRGraph`: int64 row pointers, int32 sorted columns, optional uint8 vertex labels.
- `load(path)`: GraphMiner binary prefix, SNAP edge list, Matrix Market, `.npz`.
- `from_edges`: symmetrise, drop self loops and duplicates, sort adjacency.
- `relabel_by_degree`, `orient_by_degree` (a `CSRGraph` with `directed=True`).
- `kron`, `urand`: seeded generators.

The named workloads (citeseer, kron16..kron22, urand16..urand20) are registered
in `workloads.graphs.named`.
"""

from workloads.graphs.csr import CSRGraph, from_edges, orient_by_degree, relabel_by_degree
from workloads.graphs.generators import kron, urand
from workloads.graphs.io import (load, load_edge_list, load_graphminer, load_matrix_market, load_npz,
                                 save_graphminer, save_npz)

__all__ = [
    "CSRGraph", "from_edges", "orient_by_degree", "relabel_by_degree", "kron", "urand",
    "load", "load_edge_list", "load_graphminer", "load_matrix_market", "load_npz", "save_graphminer", "save_npz",
]
