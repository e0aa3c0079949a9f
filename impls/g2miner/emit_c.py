"""The C emitter: one warp-centric kernel source per search plan, for CUDA and for OpenCL.

Both dialects get the same kernel, written once against a few macros
(`KERNEL`, `DEVICE`, `GLOBAL`, `BALLOT`, `POPC`, `WARP_SYNC`, ...):

- **Shape.** Warp-centric, edge-parallel DFS: warp w takes edges w, w + W, ...
  of the plan's edge list (grid-stride loop) and explores the subtree below
  each one; all lanes walk the DFS together, so every loop bound and branch
  is warp-uniform.
- **Set operations** (`warp_setop`): each lane takes one key of the key list
  (the shorter list for an intersection, the left list for a difference) and
  binary-searches it in the other; `BALLOT` + `POPC` give each match its slot,
  so results stay sorted.  Bounded calls drop keys at or above the level's
  symmetry bound first; count-only calls write nothing.
- **Memory.** Each warp owns `num_slots` global buffers of max-degree ints,
  carved from one allocation: nothing is allocated on the device while running.
- **Reduction.** 64-bit per-warp counters, then per block (CUDA) and one
  64-bit atomic add per block or warp; a wrapped counter sets `overflow`.
- **Twin aggregation.** A plan with one also gets a second kernel,
  `<name>_twin`: warp w takes vertices w, w + W, ... as v0, walks the levels
  down to the key level as above, and there its lanes count wedges per key
  vertex in the warp's own |V|-sized counter array (atomic increments; the
  first one lists the key), then sum C(w, 2) over the listed keys and reset
  them.  It needs the whole edge list; a part of one runs the levels.

CUDA maps the macros onto `__ballot_sync`/`__popc`/`__syncwarp` with 256-thread
blocks.  OpenCL on PoCL has no sub-groups, so a work-group *is* one warp and
the ballot is emulated in local memory between two barriers.
"""

from __future__ import annotations

from dataclasses import dataclass

from impls.g2miner.analyser import DIFFERENCE, SearchPlan
from impls.g2miner.launch import (EDGE_TRIANGLE_PAIRS_KERNEL, EDGE_TRIANGLES_KERNEL, KERNEL_NAME, LEVELS_KERNEL,
                                  TWIN_KERNEL, KernelContract)
from impls.g2miner.walker import PlanWalker

WARP_SIZE = 32
CUDA_BLOCK_SIZE = 256

_CUDA_PRELUDE = f"""
#define WARP_SIZE {WARP_SIZE}
#define BLOCK_SIZE {CUDA_BLOCK_SIZE}
#define KERNEL extern "C" __global__ void __launch_bounds__(BLOCK_SIZE)
#define DEVICE __device__ __forceinline__
#define GLOBAL
typedef long long i64;
typedef unsigned long long u64;
typedef int i32;
typedef unsigned int u32;
#define SCRATCH_PARAM
#define SCRATCH_ARG
#define DECLARE_SCRATCH
#define LANE ((u32)(threadIdx.x & (WARP_SIZE - 1)))
#define WARP_ID (((i64)blockIdx.x * blockDim.x + threadIdx.x) / WARP_SIZE)
#define NUM_WARPS (((i64)gridDim.x * blockDim.x) / WARP_SIZE)
#define BALLOT(pred) __ballot_sync(0xffffffffu, (pred))
#define POPC(x) __popc(x)
#define WARP_SYNC() __syncwarp()
#define ATOMIC_INC(p) atomicAdd((p), 1)
#define ATOMIC_ADD(p, x) atomicAdd((p), (x))
#define ATOMIC_XCHG(p, x) atomicExch((p), (x))
#define ATOMIC_READ(p) atomicOr((p), 0)
#define WARP_SUM(x, wrapped) warp_sum((x), &(wrapped))
#define POPC64(x) __popcll(x)
#define CTZ64(x) (__ffsll((long long)(x)) - 1)

/* Every lane gets the sum of x over the warp (a butterfly: each partial sum is a
   sum of distinct lanes' values); a wrap on the way sets that lane's *wrapped. */
DEVICE u64 warp_sum(u64 x, int* wrapped) {{
  for (int offset = WARP_SIZE / 2; offset > 0; offset >>= 1) {{
    const u64 y = __shfl_xor_sync(0xffffffffu, x, offset);
    *wrapped |= x + y < x;
    x += y;
  }}
  return x;
}}
"""

# Warp sums -> one sum per block in shared memory -> one atomic add per block.
_CUDA_FINISH = """
  __shared__ u64 warp_sums[BLOCK_SIZE / WARP_SIZE];
  __shared__ int warp_wrapped[BLOCK_SIZE / WARP_SIZE];
  if (LANE == 0) { warp_sums[threadIdx.x / WARP_SIZE] = acc; warp_wrapped[threadIdx.x / WARP_SIZE] = wrapped; }
  __syncthreads();
  if (threadIdx.x == 0) {
    u64 block_sum = 0;
    for (int w = 0; w < BLOCK_SIZE / WARP_SIZE; w++) {
      const u64 next = block_sum + warp_sums[w];
      wrapped |= warp_wrapped[w] | (next < block_sum);
      block_sum = next;
    }
    const u64 old = atomicAdd((unsigned long long*)total, (unsigned long long)block_sum);
    if (wrapped || old + block_sum < old) *overflow = 1;
  }
"""

_OPENCL_PRELUDE = f"""
#pragma OPENCL EXTENSION cl_khr_int64_base_atomics : enable
#define WARP_SIZE {WARP_SIZE}
#define KERNEL __kernel __attribute__((reqd_work_group_size(WARP_SIZE, 1, 1))) void
#define DEVICE inline
#define GLOBAL __global
typedef long i64;
typedef ulong u64;
typedef int i32;
typedef uint u32;
#define SCRATCH_PARAM , __local u32* scratch
#define SCRATCH_ARG , scratch
#define DECLARE_SCRATCH __local u32 scratch[WARP_SIZE]; __local u64 sum_scratch[WARP_SIZE];
#define LANE ((u32)get_local_id(0))
#define WARP_ID ((i64)get_group_id(0))
#define NUM_WARPS ((i64)get_num_groups(0))
#define BALLOT(pred) warp_ballot((pred) SCRATCH_ARG)
#define POPC(x) popcount(x)
#define WARP_SYNC() barrier(CLK_LOCAL_MEM_FENCE | CLK_GLOBAL_MEM_FENCE)
#define ATOMIC_INC(p) atomic_inc(p)
#define ATOMIC_ADD(p, x) atomic_add((p), (x))
#define ATOMIC_XCHG(p, x) atomic_xchg((p), (x))
#define ATOMIC_READ(p) atomic_or((p), 0)
#define WARP_SUM(x, wrapped) warp_sum((x), &(wrapped), sum_scratch)
#define POPC64(x) ((i32)popcount(x))
#define CTZ64(x) (63 - (i32)clz((x) & (0 - (x))))

/* No sub-groups on PoCL: a work-group is one warp, and the ballot goes
   through local memory between two barriers. */
DEVICE u32 warp_ballot(int pred SCRATCH_PARAM) {{
  scratch[LANE] = pred ? (1u << LANE) : 0u;
  barrier(CLK_LOCAL_MEM_FENCE);
  u32 mask = 0;
  for (int i = 0; i < WARP_SIZE; i++) mask |= scratch[i];
  barrier(CLK_LOCAL_MEM_FENCE);
  return mask;
}}

/* The sum of x over the work-group, for every lane; a wrap on its way sets *wrapped. */
DEVICE u64 warp_sum(u64 x, int* wrapped, __local u64* sums) {{
  sums[LANE] = x;
  barrier(CLK_LOCAL_MEM_FENCE);
  u64 total = 0;
  for (int i = 0; i < WARP_SIZE; i++) {{
    const u64 next = total + sums[i];
    *wrapped |= next < total;
    total = next;
  }}
  barrier(CLK_LOCAL_MEM_FENCE);
  return total;
}}
"""

# The work-group is the warp: its lane 0 adds the warp's sum.
_OPENCL_FINISH = """
  if (LANE == 0) {
    const u64 old = atom_add((volatile __global ulong*)total, acc);
    if (wrapped || old + acc < old) *overflow = 1;
  }
"""

_DEVICE_LIBRARY = """
#define NO_BOUND 0x7fffffff

/* First index in a[lo:hi] whose element is >= x. */
DEVICE i32 lower_bound(GLOBAL const i32* a, i32 lo, i32 hi, i32 x) {
  while (lo < hi) {
    const i32 mid = (lo + hi) >> 1;
    if (a[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

DEVICE int contains(GLOBAL const i32* a, i32 n, i32 x) {
  const i32 i = lower_bound(a, 0, n, x);
  return i < n && a[i] == x;
}

/* Warp-wide a ∩ b (difference = 0) or a − b (difference = 1), keeping elements
   below bound.  Each lane binary-searches one key in the other list; ballot and
   popc compact the kept keys in order into out, or only count them when out
   is null.  Called by all lanes of a warp with the same arguments. */
DEVICE i32 warp_setop(GLOBAL const i32* a, i32 na, GLOBAL const i32* b, i32 nb, i32 bound, int difference,
                      GLOBAL i32* out SCRATCH_PARAM) {
  if (!difference && na > nb) {
    GLOBAL const i32* t = a; a = b; b = t;
    const i32 tn = na; na = nb; nb = tn;
  }
  if (bound != NO_BOUND) na = lower_bound(a, 0, na, bound);
  i32 n = 0;
  for (i32 base = 0; base < na; base += WARP_SIZE) {
    const i32 i = base + (i32)LANE;
    int keep = 0;
    i32 x = 0;
    if (i < na) {
      x = a[i];
      const i32 p = lower_bound(b, 0, nb, x);
      const int found = p < nb && b[p] == x;
      keep = difference ? !found : found;
    }
    const u32 mask = BALLOT(keep);
    if (keep && out) out[n + (i32)POPC(mask & ((1u << LANE) - 1u))] = x;
    n += (i32)POPC(mask);
  }
  WARP_SYNC();
  return n;
}

/* Warp-wide a ∩ b for the edge-triangles rewrite: every common element w adds one
   to the triangle counters of its two arcs, a_base + (w's index in a) and
   b_base + (its index in b); the number of common elements is returned. */
DEVICE i32 warp_edge_triangles(GLOBAL const i32* a, i32 na, i64 a_base, GLOBAL const i32* b, i32 nb, i64 b_base,
                               GLOBAL i32* triangles SCRATCH_PARAM) {
  if (na > nb) {
    GLOBAL const i32* t = a; a = b; b = t;
    const i32 tn = na; na = nb; nb = tn;
    const i64 tb = a_base; a_base = b_base; b_base = tb;
  }
  i32 n = 0;
  for (i32 base = 0; base < na; base += WARP_SIZE) {
    const i32 i = base + (i32)LANE;
    int found = 0;
    if (i < na) {
      const i32 p = lower_bound(b, 0, nb, a[i]);
      found = p < nb && b[p] == a[i];
      if (found) { ATOMIC_INC(&triangles[a_base + i]); ATOMIC_INC(&triangles[b_base + p]); }
    }
    n += (i32)POPC(BALLOT(found));
  }
  WARP_SYNC();
  return n;
}
"""


@dataclass(frozen=True)
class Dialect:
    """A C flavour: the macros every kernel is written against, and its end-of-kernel reduction."""

    name: str
    prelude: str
    finish: str


CUDA = Dialect("cuda", _CUDA_PRELUDE, _CUDA_FINISH)
OPENCL = Dialect("opencl", _OPENCL_PRELUDE, _OPENCL_FINISH)


def kernel_source(plan: SearchPlan, dialect: Dialect) -> str:
    """The complete source (prelude, set-operation library, kernel `KERNEL_NAME`, and
    `TWIN_KERNEL.name(KERNEL_NAME)` when the plan has a twin aggregation) for `plan`."""
    return module_source([(KERNEL_NAME, plan)], dialect)


def module_source(kernels: list[tuple[str, SearchPlan]], dialect: Dialect) -> str:
    """One source holding the kernels of each (name, plan), sharing one prelude and set-operation library."""
    parts = [f"/* Generated from G2Miner search plans by impls.g2miner.emit_c ({dialect.name}); do not edit. */",
             dialect.prelude, _DEVICE_LIBRARY]
    finish = dialect.finish.strip("\n")
    for name, plan in kernels:
        plan_comment = "\n".join(" * " + line for line in str(plan).splitlines())
        body = _levels_kernel(plan, name)
        if plan.twin_aggregate is not None:
            body += "\n" + _twin_kernel(plan, name)
        if plan.edge_triangles is not None:
            body += "\n" + _edge_triangles_kernels(name)
        parts.append("/*\n" + plan_comment + "\n */\n" + body.replace("  FINISH;", finish))
    return "\n".join(parts)


class CDialect:
    """Printing hooks for the C kernels: a set is (pointer, length); all lanes of a warp walk the
    DFS together, so a rejected vertex empties the next set (`live`) instead of branching."""

    indent = "  "
    branches_on_rejection = False
    logical_and = " && "
    logical_not = "!"

    def __init__(self) -> None:
        self.step_id = 0  # numbers the lengths of written sets, unique within a kernel

    def comment(self, text: str) -> list[str]:
        return [f"/* {text.replace('∈', 'in')} */"]

    def bind_edge(self) -> list[str]:
        return ["const i32 v0 = src[e];", "const i32 v1 = dst[e];"]

    def neighbours(self, v: int) -> list[str]:
        return [f"GLOBAL const i32* n{v} = indices + indptr[v{v}];",
                f"const i32 d{v} = (i32)(indptr[v{v} + 1] - indptr[v{v}]);"]

    def neighbour_set(self, v: int) -> tuple[str, str]:
        return f"n{v}", f"d{v}"

    def prefix(self, candidates: tuple[str, str], j: int) -> tuple[str, str]:
        return candidates[0], f"i{j}"

    def min_of(self, names: list[str]) -> str:
        expr = names[0]
        for name in names[1:]:
            expr = f"min({expr}, {name})"
        return expr

    @staticmethod
    def _length(candidates: tuple[str, str], live: str | None) -> str:
        return candidates[1] if live is None else f"({live} ? {candidates[1]} : 0)"

    def setop(self, kind: str, left: tuple[str, str], right: tuple[str, str], bound: str | None, out: int | None,
              live: str | None) -> tuple[list[str], tuple[str, str] | None]:
        call = (f"warp_setop({left[0]}, {self._length(left, live)}, {right[0]}, {right[1]}, {bound or 'NO_BOUND'}, "
                f"{int(kind == DIFFERENCE)}, {'0' if out is None else f'buf{out}'} SCRATCH_ARG)")
        if out is None:
            return [f"i64 c = {call};"], None
        self.step_id += 1
        length = f"len{self.step_id}"
        return [f"const i32 {length} = {call};"], (f"buf{out}", length)

    def count_below(self, left: tuple[str, str], bound: str | None, live: str | None) -> list[str]:
        length = self._length(left, live)
        return [f"i64 c = {f'lower_bound({left[0]}, 0, {length}, {bound})' if bound else length};"]

    def contains(self, candidates: tuple[str, str], x: str) -> str:
        return f"contains({candidates[0]}, {candidates[1]}, {x})"

    def decrement_count_if(self, test: str) -> list[str]:
        return [f"if ({test}) c -= 1;"]

    def zero_count_unless(self, live: str) -> list[str]:
        return [f"if (!{live}) c = 0;"]

    def _add(self, expr: str) -> list[str]:
        return [f"{{ const u64 before = acc; acc += (u64){expr}; wrapped |= acc < before; }}"]

    def add_count(self) -> list[str]:
        return self._add("c")

    def add_pairs_of_count(self) -> list[str]:
        return self._add("(c * (c - 1) / 2)")

    def open_loop(self, j: int, candidates: tuple[str, str], bound: str | None, live: str | None,
                  lanes_share: bool) -> tuple[list[str], list[str], list[str]]:
        pointer, length = candidates[0], self._length(candidates, live)
        if bound is not None:
            length = f"lower_bound({pointer}, 0, {length}, {bound})"
        head = [f"const i32 end{j} = {length};"]
        body = [f"const i32 v{j} = {pointer}[i{j}];"]
        if lanes_share:  # the lanes share out the candidates: no barrier below
            head.append(f"for (i32 i{j} = (i32)LANE; i{j} < end{j}; i{j} += WARP_SIZE) {{")
        else:
            head.append(f"for (i32 i{j} = 0; i{j} < end{j}; i{j}++) {{")
            body.append(f"(void)v{j};  /* some plans only count below it */")
        return head, body, ["}"]

    def skip_equal(self, j: int, earlier: tuple[int, ...]) -> list[str]:
        return [f"if (v{j} == v{m}) continue;" for m in earlier]

    def reject_equal(self, j: int, earlier: tuple[int, ...]) -> tuple[list[str], str]:
        live = f"live{j}"
        return [f"const int {live} = " + " && ".join(f"v{j} != v{m}" for m in earlier) + ";"], live

    def count_wedge(self, j: int) -> list[str]:
        return [f"if (ATOMIC_INC(&wedges[v{j}]) == 0) keys[ATOMIC_INC(num_keys)] = v{j};"]

    def build_local_graph(self, candidates: tuple[str, str]) -> list[str]:
        """Row a, word w: two ballots over S[w * 64 ..] (each lane one key, searched in N+(S[a]))."""
        s, length = candidates
        return [f"for (i32 a = 0; a < {length}; a++) {{",
                f"  GLOBAL const i32* out_list = indices + indptr[{s}[a]];",
                f"  const i32 out_degree = (i32)(indptr[{s}[a] + 1] - indptr[{s}[a]]);",
                "  for (i32 w = 0; w <= (a >> 6); w++) {",
                "    const i32 low = w * 64 + (i32)LANE, high = low + 32;",
                f"    const u32 low_bits = BALLOT(low < a && contains(out_list, out_degree, {s}[low]));",
                f"    const u32 high_bits = BALLOT(high < a && contains(out_list, out_degree, {s}[high]));",
                "    if (LANE == 0) rows[(i64)a * words + w] = ((u64)high_bits << 32) | low_bits;",
                "  }",
                "}",
                "WARP_SYNC();"]

    def open_local_loop(self, j: int, candidates: tuple[str, str]) -> tuple[list[str], list[str], list[str]]:
        return [f"for (i32 i{j} = 0; i{j} < {candidates[1]}; i{j}++) {{"], [], ["}"]

    def local_set(self, j: int, parent: str | None) -> tuple[list[str], str]:
        row = f"(rows + (i64)i{j - 1} * words)"
        if parent is None:
            return [], row
        return ["WARP_SYNC();",
                f"for (i32 w = (i32)LANE; w <= (i{j - 1} >> 6); w += WARP_SIZE) "
                f"bits_of_level{j}[w] = {parent}[w] & {row}[w];",
                "WARP_SYNC();"], f"bits_of_level{j}"

    def bits_loop(self, j: int, candidates: str, body: list[str], innermost: bool) -> list[str]:
        if innermost:  # the lanes share the bits out: the count below needs no barrier
            return [f"for (i32 i{j} = (i32)LANE; i{j} < i{j - 1}; i{j} += WARP_SIZE) {{",
                    f"  if (!(({candidates}[i{j} >> 6] >> (i{j} & 63)) & 1u)) continue;",
                    *["  " + line for line in body], "}"]
        return [f"for (i32 w{j} = 0; w{j} <= (i{j - 1} >> 6); w{j}++) {{",
                f"  u64 word{j} = {candidates}[w{j}];",
                f"  while (word{j}) {{",
                f"    const i32 i{j} = (w{j} << 6) | CTZ64(word{j});",
                f"    word{j} &= word{j} - 1;",
                *["    " + line for line in body], "  }", "}"]

    def count_local(self, j: int, parent: str | None) -> list[str]:
        row = f"(rows + (i64)i{j - 1} * words)"
        return ["i64 c = 0;",
                f"for (i32 w = 0; w <= (i{j - 1} >> 6); w++) c += POPC64({parent or row}[w] & {row}[w]);"]


def _head(plan: SearchPlan, kernel: KernelContract, name: str, walker: PlanWalker) -> list[str]:
    """A kernel's signature, from the launcher contract, and the buffer slots its warp's walk writes."""
    lines = [f"KERNEL {kernel.name(name)}({kernel.c_params()}) {{", "  DECLARE_SCRATCH"]
    lines += [f"  GLOBAL i32* buf{s} = buffers + (WARP_ID * {plan.num_slots} + {s}) * max_degree;"
              for s in sorted(walker.written_slots)]
    local = plan.local_graph
    if local is not None and kernel is LEVELS_KERNEL:
        stored = local.stored_levels(plan.depth)
        lines += ["  /* The local graph: max-degree bitset rows of `words` words, then the stored level sets. */",
                  "  const i64 words = (max_degree + 63) >> 6;",
                  f"  GLOBAL u64* rows = local_rows + WARP_ID * (max_degree + {len(stored)}) * words;"]
        lines += [f"  GLOBAL u64* bits_of_level{j} = rows + (max_degree + {k}) * words;" for k, j in enumerate(stored)]
    return lines


def _levels_kernel(plan: SearchPlan, name: str) -> str:
    """The DFS over the edge list: warp w takes edges w, w + W, ..."""
    walker = PlanWalker(plan, CDialect())
    walk = walker.edge_walk()
    lines = _head(plan, LEVELS_KERNEL, name, walker)
    lines += ["  u64 acc = 0;", "  int wrapped = 0;",
              "  for (i64 e = WARP_ID; e < num_edges; e += NUM_WARPS) {"]
    lines += ["    " + line for line in walk]
    lines.append("  }")
    if plan.local_graph is not None:  # the lanes shared the last loop out: each holds a part of the count
        lines += ["  acc = WARP_SUM(acc, wrapped);", "  wrapped = BALLOT(wrapped) != 0u;"]
    lines += ["  FINISH;", "}", ""]
    return "\n".join(lines)


def _twin_kernel(plan: SearchPlan, name: str) -> str:
    """The twin-aggregation kernel: parallel over v0, wedges counted per key vertex."""
    walker = PlanWalker(plan, CDialect())
    walk = walker.twin_walk()
    lines = _head(plan, TWIN_KERNEL, name, walker)
    lines += ["  /* This warp's wedge counter per vertex (all zero between v0s), the keys it",
              "     touched for the current v0, and how many. */",
              "  GLOBAL i32* wedges = wedge_counts + WARP_ID * num_vertices;",
              "  GLOBAL i32* keys = key_lists + WARP_ID * num_vertices;",
              "  GLOBAL i32* num_keys = key_counts + WARP_ID;",
              "  u64 partial = 0;", "  int wrapped = 0;",
              "  for (i64 v = WARP_ID; v < num_vertices; v += NUM_WARPS) {"]
    inner = ["const i32 v0 = (i32)v;", *walk]
    inner += ["WARP_SYNC();",
              "/* Each key's w wedges hold C(w, 2) matches; reading a count also resets it. */",
              "const i32 touched = ATOMIC_READ(num_keys);",
              "for (i32 k = (i32)LANE; k < touched; k += WARP_SIZE) {",
              "  const u64 w = (u64)ATOMIC_XCHG(&wedges[keys[k]], 0);",
              "  const u64 before = partial;",
              "  partial += w * (w - 1) / 2;",
              "  wrapped |= partial < before;",
              "}",
              "WARP_SYNC();",
              "if (LANE == 0) ATOMIC_XCHG(num_keys, 0);",
              "WARP_SYNC();"]
    lines += ["    " + line for line in inner]
    lines += ["  }", "  const u64 acc = WARP_SUM(partial, wrapped);", "  wrapped = BALLOT(wrapped) != 0u;",
              "  FINISH;", "}", ""]
    return "\n".join(lines)


def _edge_triangles_kernels(name: str) -> str:
    """The edge-triangles rewrite: per v0, its triangles on the upper parts of the lists counted into each arc;
    then every lane sums C(t, 2) over its share of the arcs."""
    return "\n".join([
        f"KERNEL {EDGE_TRIANGLES_KERNEL.name(name)}({EDGE_TRIANGLES_KERNEL.c_params()}) {{",
        "  DECLARE_SCRATCH",
        "  for (i64 v = WARP_ID; v < num_vertices; v += NUM_WARPS) {",
        "    const i32 v0 = (i32)v;",
        "    /* The ids are ascending degrees: the part of a list above its vertex is its degree orientation. */",
        "    const i64 lo0 = indptr[v0];",
        "    const i32 d0 = (i32)(indptr[v0 + 1] - lo0);",
        "    for (i32 k1 = lower_bound(indices + lo0, 0, d0, v0 + 1); k1 < d0; k1++) {",
        "      const i32 v1 = indices[lo0 + k1];",
        "      const i64 lo1 = indptr[v1];",
        "      const i32 d1 = (i32)(indptr[v1 + 1] - lo1);",
        "      const i32 above1 = lower_bound(indices + lo1, 0, d1, v1 + 1);",
        "      /* N(v0) above v1 starts after k1. */",
        "      const i32 n = warp_edge_triangles(indices + lo0 + k1 + 1, d0 - k1 - 1, lo0 + k1 + 1, indices + lo1 + above1, "
        "d1 - above1, lo1 + above1, edge_triangles SCRATCH_ARG);",
        "      if (LANE == 0 && n) ATOMIC_ADD(&edge_triangles[lo0 + k1], n);",
        "    }",
        "  }",
        "}",
        "",
        f"KERNEL {EDGE_TRIANGLE_PAIRS_KERNEL.name(name)}({EDGE_TRIANGLE_PAIRS_KERNEL.c_params()}) {{",
        "  DECLARE_SCRATCH",
        "  u64 acc = 0;",
        "  int wrapped = 0;",
        "  for (i64 arc = WARP_ID * WARP_SIZE + LANE; arc < num_arcs; arc += NUM_WARPS * WARP_SIZE) {",
        "    const u64 t = (u64)edge_triangles[arc];",
        "    const u64 before = acc;",
        "    acc += t * (t - 1) / 2;",
        "    wrapped |= acc < before;",
        "  }",
        "  acc = WARP_SUM(acc, wrapped);",
        "  wrapped = BALLOT(wrapped) != 0u;",
        "  FINISH;",
        "}",
        ""])
