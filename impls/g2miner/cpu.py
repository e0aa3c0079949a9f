"""The numba CPU backend: the plan's kernels (`emit_numba`) compiled by numba and run.

Input-aware choices at run time: edge lists shorter than `SERIAL_BELOW` run
the serial copy of the kernel (no thread start-up); plans with a twin
aggregation run `twin_kernel` (wedge counting per v0) on whole edge lists,
and plans with the edge-triangles rewrite `setops.edge_triangle_pairs`
(`launch.uses_twin_kernel`, the same choice as the GPU launchers; the same
overflow check, `launch.checked_total`).  The graph
stays in host memory: there is nothing to upload.

Generated modules are written to a cache folder under a hash of their source,
so numba's on-disk cache (`cache=True`) keeps their machine code between runs.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import numba

from impls.g2miner.analyser import SearchPlan
from impls.g2miner.emit_numba import numba_source
from impls.g2miner.launch import checked_total, uses_edge_triangles, uses_twin_kernel
from impls.g2miner.setops import edge_triangle_pairs, edge_triangle_pairs_serial
from impls.g2miner.prepare import PreparedGraph

# Workers per thread: enough that the strided edge assignment balances skewed graphs.
_WORKERS_PER_THREAD = 64
# The twin aggregation gives each worker two arrays of |V| int32, so it takes fewer
# workers (strided over degree-ordered vertices, a few per thread balance well),
# and no more than this many bytes of them.
_TWIN_WORKERS_PER_THREAD = 4
_TWIN_MEMORY = 1 << 30
# Edge lists shorter than this run on the calling thread: the same rule, and the
# same threshold, as the BFS baseline's serial path for small levels.
SERIAL_BELOW = 1 << 15


def kernel_cache_dir() -> Path:
    """Where generated kernel modules live (RECMINE_KERNEL_CACHE overrides the default)."""
    default = Path.home() / ".cache" / "recmine" / "g2miner"
    return Path(os.environ.get("RECMINE_KERNEL_CACHE", default))


@functools.lru_cache(maxsize=128)
def compile_plan(plan: SearchPlan) -> ModuleType:
    """The generated module for `plan`, its kernels compiled on first call (cached on disk by numba)."""
    source = numba_source(plan)
    digest = hashlib.sha1(source.encode()).hexdigest()[:20]
    folder = kernel_cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"g2m_{digest}.py"
    if not path.exists() or path.read_text() != source:
        staging = path.with_suffix(f".{os.getpid()}.tmp")
        staging.write_text(source)
        os.replace(staging, path)  # atomic: concurrent processes never see half a file
    spec = importlib.util.spec_from_file_location(f"g2m_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    # numba's cache re-imports the defining module by name when it loads machine code.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def count(plan: SearchPlan, graph: PreparedGraph) -> int:
    """Run the plan's numba kernel over `graph`'s edge list; the exact count.

    Input-aware choices: the twin aggregation when the plan has one and the edge
    list is whole; the serial kernel when the edge list is short (a parallel
    region costs more than the work there).
    """
    module = compile_plan(plan)
    if graph.num_edges == 0:
        return 0
    serial = graph.num_edges < SERIAL_BELOW
    threads = numba.get_num_threads()
    if uses_edge_triangles(plan, graph):
        if serial:
            totals, overflow = edge_triangle_pairs_serial(graph.indptr, graph.indices)
        else:
            by_memory = _TWIN_MEMORY // (4 * max(len(graph.indices), 1))  # a triangle counter per arc and worker
            totals, overflow = edge_triangle_pairs(graph.indptr, graph.indices, max(1, min(threads, by_memory)))
        return checked_total(plan, sum(int(t) for t in totals), int(overflow.any()))
    if uses_twin_kernel(plan, graph):
        kernel = module.twin_kernel_serial if serial else module.twin_kernel
        by_memory = _TWIN_MEMORY // (8 * max(graph.num_vertices, 1))
        workers = 1 if serial else max(threads, min(threads * _TWIN_WORKERS_PER_THREAD, by_memory))
    else:
        kernel = module.count_kernel_serial if serial else module.count_kernel
        workers = 1 if serial else min(graph.num_edges, threads * _WORKERS_PER_THREAD)
    totals, overflow = kernel(graph.indptr, graph.indices, graph.src, graph.dst, graph.max_degree, workers)
    return checked_total(plan, sum(int(t) for t in totals), int(overflow.any()))
