// The GPU kernels of the Pangolin-style BFS (compiled by cupy.RawModule).
//
// One warp per embedding, in a grid-stride loop over the level's embeddings.
// The lanes of a warp walk the source vertex's sorted neighbour list 32 at a
// time; each lane filters its candidate (bounds, distinctness, connectivity by
// binary search, or the canonicality check for motifs), and the warp compacts
// the survivors with ballot/popc.  Three entry points share that loop:
//   count_level: extensions per embedding (pass 1 of a level);
//   write_level: vertex ids and parent entries at prefix-summed offsets (pass 2);
//   count_last:  the last level, counted (and classified for motifs), never stored.
// The embedding list is a prefix tree: vids[e] is the newest vertex of entry e
// and parents[e] the entry it extends; a warp rebuilds an embedding by
// following parents to the root.

#define MAX_K 8
#define MAX_CODES 6
#define FULL_MASK 0xffffffffu
#define ACTION_COUNT 0
#define ACTION_WRITE 1
#define ACTION_CLASSIFY 2

typedef long long i64;
typedef unsigned long long u64;

// The extension plan, packed by gpu.py as int32 words:
// [oriented, canonical, source[MAX_K], connected[MAX_K], less[MAX_K], greater[MAX_K]].
struct Plan {
    int oriented;
    int canonical;
    int source[MAX_K];
    int connected[MAX_K];
    int less[MAX_K];
    int greater[MAX_K];
};

__device__ __forceinline__ Plan load_plan(const int* words) {
    Plan plan;
    plan.oriented = words[0];
    plan.canonical = words[1];
    for (int p = 0; p < MAX_K; ++p) {
        plan.source[p] = words[2 + p];
        plan.connected[p] = words[2 + MAX_K + p];
        plan.less[p] = words[2 + 2 * MAX_K + p];
        plan.greater[p] = words[2 + 3 * MAX_K + p];
    }
    return plan;
}

__device__ __forceinline__ bool row_contains(const i64* indptr, const int* indices, int row, int value) {
    i64 lo = indptr[row], hi = indptr[row + 1];
    const i64 end = hi;
    while (lo < hi) {
        i64 mid = (lo + hi) >> 1;
        if (indices[mid] < value) lo = mid + 1; else hi = mid;
    }
    return lo < end && indices[lo] == value;
}

// Whether a and b are adjacent; on the DAG, a must be the lower-ranked end.
__device__ __forceinline__ bool adjacent(const i64* indptr, const int* indices, int oriented, int a, int b) {
    if (oriented || indptr[a + 1] - indptr[a] <= indptr[b + 1] - indptr[b]) return row_contains(indptr, indices, a, b);
    return row_contains(indptr, indices, b, a);
}

__device__ __forceinline__ int motif_code(int k, int num_edges, int max_degree) {
    if (k == 3) return num_edges - 2;
    if (num_edges == 3) return max_degree == 2 ? 0 : 1;
    if (num_edges == 4) return max_degree == 2 ? 2 : 3;
    return num_edges - 1;
}

template <int ACTION>
__device__ i64 extend_warp(const i64* indptr, const int* indices, const Plan& plan, const int* emb, int n, int lane,
                           int* out_vids, int* out_parents, i64 out_start, int parent_entry, u64* codes) {
    const unsigned lower_lanes = (1u << lane) - 1u;
    i64 found = 0;
    if (plan.canonical) {
        // Pangolin's vertex-induced automorphism check (see cpu.py).
        int internal_edges = 0;
        int degree[MAX_K];
        for (int i = 0; i < n; ++i) degree[i] = 0;
        if (ACTION == ACTION_CLASSIFY) {
            for (int i = 0; i < n; ++i)
                for (int j = i + 1; j < n; ++j)
                    if (adjacent(indptr, indices, 0, emb[i], emb[j])) { ++internal_edges; ++degree[i]; ++degree[j]; }
        }
        for (int idx = 0; idx < n; ++idx) {
            const int src = emb[idx];
            const i64 begin = indptr[src], end = indptr[src + 1];
            for (i64 base = begin; base < end; base += 32) {
                const i64 e = base + lane;
                bool keep = false;
                int u = 0;
                if (e < end) {
                    u = indices[e];
                    keep = u > emb[0];
                    for (int j = idx + 1; keep && j < n; ++j) keep = u > emb[j];
                    for (int j = 1; keep && j <= idx; ++j) keep = u != emb[j];
                    for (int j = 0; keep && j < idx; ++j) keep = !adjacent(indptr, indices, 0, emb[j], u);
                }
                const unsigned ballot = __ballot_sync(FULL_MASK, keep);
                if (keep) {
                    if (ACTION == ACTION_WRITE) {
                        const i64 pos = out_start + found + __popc(ballot & lower_lanes);
                        out_vids[pos] = u;
                        out_parents[pos] = parent_entry;
                    } else if (ACTION == ACTION_CLASSIFY) {
                        int edges = internal_edges + 1, u_degree = 1, max_degree = 0;
                        for (int j = 0; j < n; ++j) {
                            int adj = j == idx;
                            if (j > idx && adjacent(indptr, indices, 0, emb[j], u)) { adj = 1; ++edges; ++u_degree; }
                            max_degree = max(max_degree, degree[j] + adj);
                        }
                        codes[motif_code(n + 1, edges, max(max_degree, u_degree))] += 1;
                    }
                }
                found += __popc(ballot);
            }
        }
        return found;
    }

    const int src = emb[plan.source[n]];
    const int check = plan.connected[n] & ~(1 << plan.source[n]);
    int upper = 0x7fffffff, lower = -1;
    for (int p = 0; p < n; ++p) {
        if ((plan.less[n] >> p) & 1) upper = min(upper, emb[p]);
        if ((plan.greater[n] >> p) & 1) lower = max(lower, emb[p]);
    }
    const i64 begin = indptr[src], end = indptr[src + 1];
    for (i64 base = begin; base < end; base += 32) {
        const i64 e = base + lane;
        bool keep = false, past = false;
        int u = 0;
        if (e < end) {
            u = indices[e];
            past = u >= upper;
            keep = !past && u > lower;
            for (int p = 0; keep && p < n; ++p)
                keep = u != emb[p] && (!((check >> p) & 1) || adjacent(indptr, indices, plan.oriented, emb[p], u));
        }
        const unsigned ballot = __ballot_sync(FULL_MASK, keep);
        if (keep && ACTION == ACTION_WRITE) {
            const i64 pos = out_start + found + __popc(ballot & lower_lanes);
            out_vids[pos] = u;
            out_parents[pos] = parent_entry;
        }
        if (keep && ACTION == ACTION_CLASSIFY) codes[0] += 1;
        found += __popc(ballot);
        if (__any_sync(FULL_MASK, past)) break;  // sorted lists: the rest is out of bounds too
    }
    return found;
}

__device__ __forceinline__ void rebuild(const int* vids, const int* parents, i64 entry, int n, int* emb) {
    for (int position = n - 1; position >= 0; --position) {
        emb[position] = vids[entry];
        entry = parents[entry];
    }
}

extern "C" __global__ void count_level(const i64* indptr, const int* indices, const int* plan_words, const int* vids,
                                       const int* parents, i64 lo, i64 hi, int n, i64* counts) {
    const Plan plan = load_plan(plan_words);
    const int lane = threadIdx.x & 31;
    const i64 warp = (blockIdx.x * (i64)blockDim.x + threadIdx.x) >> 5;
    const i64 num_warps = ((i64)gridDim.x * blockDim.x) >> 5;
    int emb[MAX_K];
    for (i64 i = warp; i < hi - lo; i += num_warps) {
        rebuild(vids, parents, lo + i, n, emb);
        const i64 found = extend_warp<ACTION_COUNT>(indptr, indices, plan, emb, n, lane, nullptr, nullptr, 0, 0, nullptr);
        if (lane == 0) counts[i] = found;
    }
}

extern "C" __global__ void write_level(const i64* indptr, const int* indices, const int* plan_words, int* vids,
                                       int* parents, i64 lo, i64 hi, int n, const i64* offsets, i64 out_start) {
    const Plan plan = load_plan(plan_words);
    const int lane = threadIdx.x & 31;
    const i64 warp = (blockIdx.x * (i64)blockDim.x + threadIdx.x) >> 5;
    const i64 num_warps = ((i64)gridDim.x * blockDim.x) >> 5;
    int emb[MAX_K];
    for (i64 i = warp; i < hi - lo; i += num_warps) {
        rebuild(vids, parents, lo + i, n, emb);
        extend_warp<ACTION_WRITE>(indptr, indices, plan, emb, n, lane, vids, parents, out_start + offsets[i],
                                  (int)(lo + i), nullptr);
    }
}

extern "C" __global__ void count_last(const i64* indptr, const int* indices, const int* plan_words, const int* vids,
                                      const int* parents, i64 lo, i64 hi, int n, int num_codes, u64* code_counts) {
    const Plan plan = load_plan(plan_words);
    const int lane = threadIdx.x & 31;
    const i64 warp = (blockIdx.x * (i64)blockDim.x + threadIdx.x) >> 5;
    const i64 num_warps = ((i64)gridDim.x * blockDim.x) >> 5;
    int emb[MAX_K];
    u64 codes[MAX_CODES];
    for (int c = 0; c < MAX_CODES; ++c) codes[c] = 0;
    for (i64 i = warp; i < hi - lo; i += num_warps) {
        rebuild(vids, parents, lo + i, n, emb);
        extend_warp<ACTION_CLASSIFY>(indptr, indices, plan, emb, n, lane, nullptr, nullptr, 0, 0, codes);
    }
    // Warp reduction, then block reduction in shared memory, then one atomic per block and code.
    __shared__ u64 block_codes[MAX_CODES];
    if (threadIdx.x < MAX_CODES) block_codes[threadIdx.x] = 0;
    __syncthreads();
    for (int c = 0; c < num_codes; ++c) {
        u64 value = codes[c];
        for (int offset = 16; offset > 0; offset >>= 1) value += __shfl_down_sync(FULL_MASK, value, offset);
        if (lane == 0 && value) atomicAdd(&block_codes[c], value);
    }
    __syncthreads();
    if (threadIdx.x < num_codes && block_codes[threadIdx.x]) atomicAdd(&code_counts[threadIdx.x], block_codes[threadIdx.x]);
}
