"""The launcher contract of the generated C kernels, shared by the CUDA and OpenCL launchers.

One place holds what a launcher must agree on with the emitted kernel:

- **the argument list** of each kernel (`LEVELS_KERNEL`, `TWIN_KERNEL`): the C
  emitter prints the signature from it, and a launcher passes its arguments by
  name (`KernelContract.arguments`), never by position;
- **the scratch sizing**: the per-warp arrays each kernel needs (buffer slots,
  the local graph's bitset rows, and for the twin kernel a wedge counter, a key
  list and a key count);
- **the kernel choice** (`kernels_for`): on a whole edge list, the twin
  aggregation or the edge-triangles kernels (`EDGE_TRIANGLES_KERNEL`, then
  `.then`, the pairs kernel) when the plan has that rewrite; the levels
  otherwise and whenever the preferred kernel's per-warp arrays do not fit
  (`choose_launch`);
- **the overflow check** (`checked_total`).

`DeviceGraphs` uploads each prepared graph's arrays once per device: a timed
count measures the kernel, not the host-to-device copy (the harness's warm-up
run absorbs the first upload).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from impls.g2miner.analyser import SearchPlan
from impls.g2miner.prepare import PreparedGraph

KERNEL_NAME = "g2m_count"

# How a parameter is passed: a graph array on the device, a 64-bit scalar from the
# graph, a per-warp scratch array, or an output.
GRAPH, SCALAR, SCRATCH, OUTPUT = "graph", "scalar", "scratch", "output"


@dataclass(frozen=True)
class Param:
    name: str
    c_type: str
    role: str


@dataclass(frozen=True)
class ScratchArray:
    """An int32 scratch array: `ints` of them per warp (or in all, when not `per_warp`), zero-filled when `zeroed`."""

    name: str
    ints: int
    zeroed: bool
    per_warp: bool = True

    def total_ints(self, warps: int) -> int:
        return max(warps * self.ints if self.per_warp else self.ints, 1)


@dataclass(frozen=True)
class KernelContract:
    """One kernel's name suffix, parameters and what its work items are."""

    suffix: str
    params: tuple[Param, ...]
    # "edges": warp w takes edges w, w + W, ...; "vertices": vertices as v0; "arcs": positions in `indices`.
    work: str
    # A kernel launched right after this one, on the same arguments by name (it finishes the count).
    then: "KernelContract | None" = None

    def chain(self) -> tuple["KernelContract", ...]:
        """This kernel and the ones launched after it, in order."""
        return (self,) + (self.then.chain() if self.then is not None else ())

    def name(self, base: str = KERNEL_NAME) -> str:
        return base + self.suffix

    def c_params(self) -> str:
        return ", ".join(f"{p.c_type} {p.name}" for p in self.params)

    def work_items(self, graph: PreparedGraph) -> int:
        return {"edges": graph.num_edges, "vertices": graph.num_vertices, "arcs": len(graph.indices)}[self.work]

    def scalars(self, graph: PreparedGraph) -> dict[str, np.int64]:
        values = {"num_edges": graph.num_edges, "num_vertices": graph.num_vertices, "max_degree": graph.max_degree,
                  "num_arcs": len(graph.indices)}
        return {p.name: np.int64(values[p.name]) for p in self.params if p.role == SCALAR}

    def scratch(self, plan: SearchPlan, graph: PreparedGraph) -> tuple[ScratchArray, ...]:
        """The per-warp scratch arrays, in parameter order."""
        local = plan.local_graph
        # The local graph's rows (max degree of them) and stored level sets, of uint64 words.
        local_words = 0 if local is None else \
            ((graph.max_degree + 63) >> 6) * (graph.max_degree + len(local.stored_levels(plan.depth)))
        sizes = {"buffers": (plan.num_slots * graph.max_degree, False),
                 "local_rows": (2 * local_words, False),
                 "wedge_counts": (graph.num_vertices, True),  # zero between v0s
                 "key_lists": (graph.num_vertices, False),
                 "key_counts": (1, True),
                 "edge_triangles": (len(graph.indices), True, False)}  # one counter per arc, shared by all warps
        return tuple(ScratchArray(p.name, *sizes[p.name]) for p in self.params if p.role == SCRATCH)

    def bytes_per_warp(self, plan: SearchPlan, graph: PreparedGraph) -> int:
        return 4 * sum(array.ints for array in self.scratch(plan, graph) if array.per_warp)

    def arguments(self, values: Mapping[str, Any]) -> tuple:
        """The kernel's arguments in its parameter order, from values by parameter name."""
        missing = [p.name for p in self.params if p.name not in values]
        if missing:
            raise KeyError(f"kernel {self.name()}: no value for {', '.join(missing)}")
        return tuple(values[p.name] for p in self.params)


_ADJACENCY = (Param("indptr", "GLOBAL const i64*", GRAPH), Param("indices", "GLOBAL const i32*", GRAPH))
_OUTPUTS = (Param("total", "GLOBAL u64*", OUTPUT), Param("overflow", "GLOBAL int*", OUTPUT))

LEVELS_KERNEL = KernelContract("", _ADJACENCY + (
    Param("src", "GLOBAL const i32*", GRAPH), Param("dst", "GLOBAL const i32*", GRAPH),
    Param("num_edges", "const i64", SCALAR), Param("max_degree", "const i64", SCALAR),
    Param("buffers", "GLOBAL i32*", SCRATCH), Param("local_rows", "GLOBAL u64*", SCRATCH)) + _OUTPUTS, work="edges")

TWIN_KERNEL = KernelContract("_twin", _ADJACENCY + (
    Param("num_vertices", "const i64", SCALAR), Param("max_degree", "const i64", SCALAR),
    Param("buffers", "GLOBAL i32*", SCRATCH), Param("wedge_counts", "GLOBAL i32*", SCRATCH),
    Param("key_lists", "GLOBAL i32*", SCRATCH), Param("key_counts", "GLOBAL i32*", SCRATCH)) + _OUTPUTS,
    work="vertices")


# The edge-triangles rewrite: triangles counted per arc, then Σ C(t, 2) over the arcs.
EDGE_TRIANGLE_PAIRS_KERNEL = KernelContract("_edge_triangle_pairs", (
    Param("edge_triangles", "GLOBAL const i32*", SCRATCH), Param("num_arcs", "const i64", SCALAR)) + _OUTPUTS,
    work="arcs")
EDGE_TRIANGLES_KERNEL = KernelContract("_edge_triangles", _ADJACENCY + (
    Param("num_vertices", "const i64", SCALAR), Param("edge_triangles", "GLOBAL i32*", SCRATCH)),
    work="vertices", then=EDGE_TRIANGLE_PAIRS_KERNEL)


def uses_twin_kernel(plan: SearchPlan, graph: PreparedGraph) -> bool:
    """Whether the twin aggregation may run: the plan has one and the edge list is whole."""
    return plan.twin_aggregate is not None and graph.complete


def uses_edge_triangles(plan: SearchPlan, graph: PreparedGraph) -> bool:
    """Whether the edge-triangles rewrite may run: the plan has it and the edge list is whole."""
    return plan.edge_triangles is not None and graph.complete


def kernels_for(plan: SearchPlan, graph: PreparedGraph) -> tuple[KernelContract, ...]:
    """The kernels that can count `plan` over `graph`, preferred first."""
    if uses_edge_triangles(plan, graph):
        return (EDGE_TRIANGLES_KERNEL, LEVELS_KERNEL)
    return (TWIN_KERNEL, LEVELS_KERNEL) if uses_twin_kernel(plan, graph) else (LEVELS_KERNEL,)


def choose_launch(plan: SearchPlan, graph: PreparedGraph,
                  warps_that_fit: Callable[[KernelContract], int]) -> tuple[KernelContract, int]:
    """The first kernel of `kernels_for` for which the launcher fits at least one warp, and its warps.

    `warps_that_fit(kernel)` is the launcher's geometry (device limits, memory); the twin
    kernel's |V|-sized arrays may not fit where the levels' buffers do.
    """
    for kernel in kernels_for(plan, graph):
        warps = warps_that_fit(kernel)
        if warps >= 1:
            return kernel, warps
    raise MemoryError(f"{plan.pattern.name}: per-warp arrays of {LEVELS_KERNEL.bytes_per_warp(plan, graph)} bytes "
                      "do not fit in the device memory share")


def launch_chain(plan: SearchPlan, graph: PreparedGraph, warps_that_fit: Callable[[KernelContract], int],
                 values: dict[str, Any], allocate: Callable[[ScratchArray, int], Any],
                 run: Callable[[KernelContract, int, tuple], None]) -> None:
    """Launch the chosen kernel (`choose_launch`) and the kernels after it (`chain`).

    For each: its scratch arrays not yet in `values` from `allocate(array, ints)` (a later
    kernel reads the earlier one's), its scalars, then `run(kernel, warps, arguments)`.
    `values` starts with the graph's device arrays and the outputs, by parameter name.
    """
    first, warps = choose_launch(plan, graph, warps_that_fit)
    for kernel in first.chain():
        if kernel is not first:
            warps = warps_that_fit(kernel)
        for array in kernel.scratch(plan, graph):
            if array.name not in values:
                values[array.name] = allocate(array, array.total_ints(warps))
        values.update(kernel.scalars(graph))
        run(kernel, warps, kernel.arguments(values))


def checked_total(plan: SearchPlan, total: int, overflow: int) -> int:
    """The kernel's count, or OverflowError when a 64-bit counter wrapped."""
    if overflow or total >= 2**63:
        raise OverflowError(f"{plan.pattern.name}: a 64-bit count overflowed")
    return total


class DeviceGraphs:
    """Each prepared graph's arrays on each device, uploaded once by `upload(array, device)`.

    The adjacency is keyed by its arrays, so the parts of one edge list (the
    scheduler's partitions) share one upload of it; a copy goes when its host
    array goes.
    """

    def __init__(self, upload: Callable[[np.ndarray, Any], Any]) -> None:
        self._upload = upload
        self._on_device: dict[tuple[int, Any], Any] = {}

    def _get(self, array: np.ndarray, device: Any) -> Any:
        key = (id(array), device)
        if key not in self._on_device:
            self._on_device[key] = self._upload(np.ascontiguousarray(array), device)
            weakref.finalize(array, self._on_device.pop, key, None)
        return self._on_device[key]

    def arrays(self, graph: PreparedGraph, device: Any) -> dict[str, Any]:
        """indptr, indices, src and dst on `device`, by parameter name."""
        return {name: self._get(getattr(graph, name), device) for name in ("indptr", "indices", "src", "dst")}
