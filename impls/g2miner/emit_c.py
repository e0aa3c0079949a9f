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

from impls.g2miner.analyser import COUNT_BELOW, DIFFERENCE, Level, Operand, SearchPlan, Step

WARP_SIZE = 32
CUDA_BLOCK_SIZE = 256
KERNEL_NAME = "g2m_count"

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
#define ATOMIC_XCHG(p, x) atomicExch((p), (x))
#define ATOMIC_READ(p) atomicOr((p), 0)
#define WARP_SUM(x, wrapped) warp_sum((x), &(wrapped))

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
#define ATOMIC_XCHG(p, x) atomic_xchg((p), (x))
#define ATOMIC_READ(p) atomic_or((p), 0)
#define WARP_SUM(x, wrapped) warp_sum((x), &(wrapped), sum_scratch)

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
"""


@dataclass(frozen=True)
class Dialect:
    name: str
    prelude: str
    finish: str


CUDA = Dialect("cuda", _CUDA_PRELUDE, _CUDA_FINISH)
OPENCL = Dialect("opencl", _OPENCL_PRELUDE, _OPENCL_FINISH)


def twin_kernel_name(name: str) -> str:
    """The name of the twin-aggregation kernel emitted beside kernel `name`."""
    return name + "_twin"


def kernel_source(plan: SearchPlan, dialect: Dialect) -> str:
    """The complete source (prelude, set-operation library, kernel `KERNEL_NAME`, and
    `twin_kernel_name(KERNEL_NAME)` when the plan has a twin aggregation) for `plan`."""
    return module_source([(KERNEL_NAME, plan)], dialect)


def module_source(kernels: list[tuple[str, SearchPlan]], dialect: Dialect) -> str:
    """One source holding the kernels of each (name, plan), sharing one prelude and set-operation library."""
    parts = [f"/* Generated from G2Miner search plans by impls.g2miner.emit_c ({dialect.name}); do not edit. */",
             dialect.prelude, _DEVICE_LIBRARY]
    finish = dialect.finish.strip("\n")
    for name, plan in kernels:
        plan_comment = "\n".join(" * " + line for line in str(plan).splitlines())
        writer = _KernelWriter(plan, name)
        body = writer.write()
        if plan.twin_aggregate is not None:
            body += "\n" + writer.write_twin()
        parts.append("/*\n" + plan_comment + "\n */\n" + body.replace("  FINISH;", finish))
    return "\n".join(parts)


class _KernelWriter:
    """Walks the plan's levels and writes the kernel body; every name is level- or step-numbered."""

    def __init__(self, plan: SearchPlan, name: str) -> None:
        self.plan = plan
        self.name = name
        self.step_id = 0

    def _head(self, name: str, params: str) -> list[str]:
        """A kernel's signature (the graph, `params`, the outputs) and its warp's buffer slots."""
        lines = [f"KERNEL {name}(GLOBAL const i64* indptr, GLOBAL const i32* indices, {params},",
                 "                   GLOBAL u64* total, GLOBAL int* overflow) {",
                 "  DECLARE_SCRATCH"]
        return lines + [f"  GLOBAL i32* buf{s} = buffers + (WARP_ID * {self.plan.num_slots} + {s}) * max_degree;"
                        for s in range(self.plan.num_slots)]

    def write(self) -> str:
        plan = self.plan
        lines = self._head(self.name, "GLOBAL const i32* src, GLOBAL const i32* dst, const i64 num_edges, "
                                      "const i64 max_degree, GLOBAL i32* buffers")
        lines += ["  u64 acc = 0;", "  int wrapped = 0;",
                  "  for (i64 e = WARP_ID; e < num_edges; e += NUM_WARPS) {"]
        inner = ["const i32 v0 = src[e];", "const i32 v1 = dst[e];"]
        for v in (0, 1):
            if plan.needs_neighbours(v):
                inner += self._neighbours(v)
        inner += self._level(2, {})
        lines += ["    " + line for line in inner]
        lines += ["  }", "  FINISH;", "}", ""]
        return "\n".join(lines)

    def write_twin(self) -> str:
        """The twin-aggregation kernel: parallel over v0, wedges counted per key vertex."""
        plan = self.plan
        lines = self._head(twin_kernel_name(self.name),
                           "const i64 num_vertices, const i64 max_degree, GLOBAL i32* buffers, "
                           "GLOBAL i32* wedge_counts, GLOBAL i32* key_lists, GLOBAL i32* key_counts")
        lines += ["  /* This warp's wedge counter per vertex (all zero between v0s), the keys it",
                  "     touched for the current v0, and how many. */",
                  "  GLOBAL i32* wedges = wedge_counts + WARP_ID * num_vertices;",
                  "  GLOBAL i32* keys = key_lists + WARP_ID * num_vertices;",
                  "  GLOBAL i32* num_keys = key_counts + WARP_ID;",
                  "  u64 partial = 0;", "  int wrapped = 0;",
                  "  for (i64 v = WARP_ID; v < num_vertices; v += NUM_WARPS) {"]
        inner = ["const i32 v0 = (i32)v;", *self._neighbours(0)]
        inner += self._level(1, {}, wedge_key=plan.twin_aggregate.key)
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

    @staticmethod
    def _neighbours(v: int) -> list[str]:
        return [f"GLOBAL const i32* n{v} = indices + indptr[v{v}];",
                f"const i32 d{v} = (i32)(indptr[v{v} + 1] - indptr[v{v}]);"]

    def _operand(self, operand: Operand, lengths: dict[int, str]) -> tuple[str, str]:
        kind, index = operand
        if kind == "N":
            return f"n{index}", f"d{index}"
        if kind == "S":
            return f"buf{index}", lengths[index]
        pointer, _ = self._operand(self.plan.levels[index].result, lengths)
        return pointer, f"i{index}"

    def _bound(self, level: Level) -> str:
        names = [f"v{b}" for b in level.bounds]
        if not names:
            return "NO_BOUND"
        expr = names[0]
        for name in names[1:]:
            expr = f"min({expr}, {name})"
        return expr

    def _step(self, step: Step, level: Level, lengths: dict[int, str], live: str | None) -> list[str]:
        bound = self._bound(level) if step.bounded else "NO_BOUND"
        left, left_len = self._operand(step.left, lengths)
        if live is not None:
            left_len = f"({live} ? {left_len} : 0)"
        if step.kind == COUNT_BELOW:
            expr = f"lower_bound({left}, 0, {left_len}, {bound})" if step.bounded else left_len
            return [f"i64 c = {expr};"]
        difference = int(step.kind == DIFFERENCE)
        call = (f"warp_setop({left}, {left_len}, n{step.right}, d{step.right}, {bound}, {difference}, "
                f"{'0' if step.out is None else f'buf{step.out}'} SCRATCH_ARG)")
        if step.out is None:
            return [f"i64 c = {call};"]
        self.step_id += 1
        name = f"len{self.step_id}"
        lengths[step.out] = name
        return [f"const i32 {name} = {call};"]

    def _membership(self, level: Level, vertex: str) -> str:
        tests = [f"contains(n{i}, d{i}, {vertex})" for i in level.connected]
        tests += [f"!contains(n{d}, d{d}, {vertex})" for d in level.disconnected]
        if level.bounds:
            tests.insert(0, f"{vertex} < {self._bound(level)}")
        if level.prefix is not None:
            tests.insert(0, f"{vertex} < v{level.prefix}")
        return " && ".join(tests)

    def _level(self, j: int, lengths: dict[int, str], live: str | None = None,
               wedge_key: int | None = None) -> list[str]:
        """Levels j.. of the DFS.  `live` names the parent's flag for "this vertex is distinct":
        a rejected vertex empties the first set below it instead of branching, so no
        barrier ever sits under a data-dependent branch (PoCL builds those very slowly).

        With `wedge_key` (the twin kernel), that level ends the walk: its lanes share out
        the candidates and count one wedge per candidate."""
        plan = self.plan
        level = plan.levels[j]
        lengths = dict(lengths)
        out = [f"/* level {j}: v{j} in {level.candidate_expr(plan.oriented)} */"]
        for k, step in enumerate(level.steps):
            out += self._step(step, level, lengths, live if k == 0 else None)
        if level.count_only:
            for m in level.distinct_from:
                out.append(f"if ({self._membership(level, f'v{m}')}) c -= 1;")
            if live is not None:
                out.append(f"if (!{live}) c = 0;")
            out += ["{ const u64 before = acc; acc += (u64)c; wrapped |= acc < before; }"]
            return out
        pointer, length = self._operand(level.result, lengths)
        if live is not None and not level.steps:
            length = f"({live} ? {length} : 0)"
        if level.bounds and not level.bounded_build:
            length = f"lower_bound({pointer}, 0, {length}, {self._bound(level)})"
        out.append(f"const i32 end{j} = {length};")
        if j == wedge_key:
            out.append(f"for (i32 i{j} = (i32)LANE; i{j} < end{j}; i{j} += WARP_SIZE) {{")
            loop = [f"const i32 v{j} = {pointer}[i{j}];"]
            loop += [f"if (v{j} == v{m}) continue;" for m in level.distinct_from]
            loop.append(f"if (ATOMIC_INC(&wedges[v{j}]) == 0) keys[ATOMIC_INC(num_keys)] = v{j};")
            return out + ["  " + line for line in loop] + ["}"]
        out.append(f"for (i32 i{j} = 0; i{j} < end{j}; i{j}++) {{")
        loop = [f"const i32 v{j} = {pointer}[i{j}];", f"(void)v{j};  /* some plans only count below it */"]
        child_live = None
        if level.distinct_from:
            child_live = f"live{j}"
            loop.append(f"const int {child_live} = " + " && ".join(f"v{j} != v{m}" for m in level.distinct_from) + ";")
        if plan.needs_neighbours(j):
            loop += self._neighbours(j)
        loop += self._level(j + 1, lengths, child_live, wedge_key)
        out += ["  " + line for line in loop]
        out.append("}")
        return out
