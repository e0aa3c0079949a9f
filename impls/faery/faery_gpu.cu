// FAERY on a GPU: one fused kernel scans, scores, filters and K-selects; a second merges.
//
// faery_scan_*: block (slice, query group).  The block walks its slice of the corpus in
//   tiles: a tile is a contiguous run of rows, read with coalesced 16-byte loads into
//   shared memory (widened to float, rows padded to an odd stride so that one row per
//   thread reads without bank conflicts).  Each thread scores one row against QPT
//   queries, and offers each score to the block's candidate buffer for that query: only
//   scores that beat the buffer's current k-th best are appended (the filter).  When
//   the next tile might overflow the buffer, the block sorts it (bitonic, in shared
//   memory), keeps the best k and raises the threshold.  At the end of the slice the
//   sorted best k go to global memory.  No score matrix is ever written to memory.
// faery_merge: block (group of lists, query).  Reads up to MERGE_FAN sorted k-lists and
//   keeps the best k with the same filter + buffer + bitonic machinery; repeated until
//   one list per query remains.
//
// Order: a candidate is better when its score is higher, or equal with a lower id.  The
// filter compares (score, id) pairs, so it is exact whatever order candidates arrive in.
// Ids are 32-bit row numbers; 0xffffffff marks an empty slot (and sorts last).

// fp16 corpora: rows hold IEEE half bit patterns, widened by the cvt instruction.  No
// cuda_fp16.h, so NVRTC compiles this file without a CUDA toolkit's headers.
struct f16 {
    unsigned short bits;
};

__device__ __forceinline__ float widen(float x) { return x; }

__device__ __forceinline__ float widen(f16 x) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
    return f;
}

#include "bitonic.cuh"  // better(), neg_inf(), EMPTY_ID, bitonic_sort (topk/, shared with the Faiss-like baseline)

#define THREADS 256
#define MERGE_FAN 8

extern __shared__ float smem[];  // dynamic shared memory, laid out by each kernel

// The candidate buffers of a block: per query, `cap` slots of (score, id), a fill count
// and the current threshold (the k-th best kept, or empty while fewer than k are kept).
struct Buffers {
    float* s;
    unsigned* id;
    float* thr_s;
    unsigned* thr_id;
    int* fill;
    int cap;
};

__device__ void buffers_init(Buffers b, int queries) {
    for (int i = threadIdx.x; i < queries * b.cap; i += blockDim.x) {
        b.s[i] = neg_inf();
        b.id[i] = EMPTY_ID;
    }
    for (int q = threadIdx.x; q < queries; q += blockDim.x) {
        b.thr_s[q] = neg_inf();
        b.thr_id[q] = EMPTY_ID;
        b.fill[q] = 0;
    }
}

// The filter: append (s, id) to query q's buffer if it beats the k-th best kept.
// The caller guarantees room (see buffers_make_room).
__device__ __forceinline__ void offer(Buffers b, int q, float s, unsigned id) {
    if (better(s, id, b.thr_s[q], b.thr_id[q])) {
        int pos = atomicAdd(&b.fill[q], 1);
        b.s[q * b.cap + pos] = s;
        b.id[q * b.cap + pos] = id;
    }
}

// Sort one query's buffer, best first (bitonic; cap is a power of two), keep the best k,
// and set the threshold.  Called by the whole block; ends synchronised.
__device__ void compact(Buffers b, int q, int k) {
    float* s = b.s + q * b.cap;
    unsigned* id = b.id + q * b.cap;
    bitonic_sort<true>(s, id, b.cap, threadIdx.x, blockDim.x);
    for (int i = k + threadIdx.x; i < b.cap; i += blockDim.x) {
        s[i] = neg_inf();
        id[i] = EMPTY_ID;
    }
    if (threadIdx.x == 0) {
        int kept = min(b.fill[q], k);
        b.fill[q] = kept;
        if (kept == k) {
            b.thr_s[q] = s[k - 1];
            b.thr_id[q] = id[k - 1];
        }
    }
    __syncthreads();
}

// Before a step that may append up to `step` candidates per query: compact the buffers
// that could overflow.  Block-uniform: `fill` is read after a barrier.
__device__ void buffers_make_room(Buffers b, int queries, int k, int step) {
    __syncthreads();
    for (int q = 0; q < queries; ++q) {
        if (b.fill[q] + step > b.cap) compact(b, q, k);
    }
}

__device__ void write_sorted(Buffers b, int q, int k, float* out_s, unsigned* out_id) {
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        out_s[i] = b.s[q * b.cap + i];
        out_id[i] = b.id[q * b.cap + i];
    }
}

// Load rows [row0, row0 + rows) into the float tile (row stride `stride`).
template <typename T>
__device__ void load_tile(const T* __restrict__ corpus, long long row0, int rows, int d, int stride,
                          float* tile) {
    const size_t first = (size_t)row0 * d;
    const int elems = rows * d;
    const int per_vec = 16 / sizeof(T);
    if ((d % per_vec) == 0) {
        // 16-byte loads: a row holds whole vectors, so a vector never spans two rows.
        const uint4* src = reinterpret_cast<const uint4*>(corpus + first);
#pragma unroll 4
        for (int v = threadIdx.x; v < elems / per_vec; v += blockDim.x) {  // unrolled: 4 loads in flight
            uint4 raw = __ldg(src + v);
            int e = v * per_vec;
            float* dst = tile + (e / d) * stride + (e % d);
            if (sizeof(T) == 4) {
                dst[0] = __uint_as_float(raw.x);
                dst[1] = __uint_as_float(raw.y);
                dst[2] = __uint_as_float(raw.z);
                dst[3] = __uint_as_float(raw.w);
            } else {
                const unsigned words[4] = {raw.x, raw.y, raw.z, raw.w};
                for (int j = 0; j < 4; ++j) {  // little-endian: the lower half comes first
                    dst[2 * j] = widen(f16{(unsigned short)(words[j] & 0xffffu)});
                    dst[2 * j + 1] = widen(f16{(unsigned short)(words[j] >> 16)});
                }
            }
        }
    } else {
        for (int e = threadIdx.x; e < elems; e += blockDim.x) {
            tile[(e / d) * stride + (e % d)] = widen(corpus[first + e]);
        }
    }
}

// Shared memory: tile[tile_rows * stride] | queries[QG * d] | s[QG * cap] | id[QG * cap]
//                | thr_s[QG] | thr_id[QG] | fill[QG]            (all 4-byte words)
template <typename T, int QPT>
__device__ void scan(const T* __restrict__ corpus, int n, int d, const float* __restrict__ queries,
                     int nq, int qg, int k, int cap, int tile_rows, long long slice_rows,
                     const unsigned char* __restrict__ live, int use_live, float* out_s,
                     unsigned* out_id) {
    const int stride = d | 1;
    float* tile = smem;
    float* qs = tile + tile_rows * stride;
    Buffers b;
    b.s = qs + qg * d;
    b.id = reinterpret_cast<unsigned*>(b.s + qg * cap);
    b.thr_s = reinterpret_cast<float*>(b.id + qg * cap);
    b.thr_id = reinterpret_cast<unsigned*>(b.thr_s + qg);
    b.fill = reinterpret_cast<int*>(b.thr_id + qg);
    b.cap = cap;

    const int q0 = blockIdx.y * qg;
    const int queries_here = min(qg, nq - q0);
    for (int i = threadIdx.x; i < qg * d; i += blockDim.x) {
        int q = i / d;
        qs[i] = q < queries_here ? queries[(size_t)(q0 + q) * d + (i % d)] : 0.0f;
    }
    buffers_init(b, qg);

    const long long begin = (long long)blockIdx.x * slice_rows;
    const long long end = min(begin + slice_rows, (long long)n);
    const int quads = qg / QPT;
    for (long long row0 = begin; row0 < end; row0 += tile_rows) {
        const int rows = (int)min((long long)tile_rows, end - row0);
        buffers_make_room(b, queries_here, k, tile_rows);  // also the barrier before overwriting the tile
        load_tile<T>(corpus, row0, rows, d, stride, tile);
        __syncthreads();
        for (int w = threadIdx.x; w < rows * quads; w += blockDim.x) {
            const int r = w % rows;
            const int qa = (w / rows) * QPT;
            float acc[QPT];
            for (int i = 0; i < QPT; ++i) acc[i] = 0.0f;
            const float* x = tile + r * stride;
            for (int j = 0; j < d; ++j) {
                const float v = x[j];
                for (int i = 0; i < QPT; ++i) acc[i] = fmaf(v, qs[(qa + i) * d + j], acc[i]);
            }
            const long long row = row0 + r;
            if (!use_live || live[row]) {  // deleted rows are read but never offered
                for (int i = 0; i < QPT; ++i) {
                    if (qa + i < queries_here) offer(b, qa + i, acc[i], (unsigned)row);
                }
            }
        }
    }
    __syncthreads();
    for (int q = 0; q < queries_here; ++q) {
        compact(b, q, k);
        const size_t list = (size_t)(q0 + q) * gridDim.x + blockIdx.x;
        write_sorted(b, q, k, out_s + list * k, out_id + list * k);
    }
}

#define SCAN_ENTRY(NAME, T, QPT)                                                                     \
    extern "C" __global__ void __launch_bounds__(THREADS) NAME(                                      \
        const T* __restrict__ corpus, int n, int d, const float* __restrict__ queries, int nq,      \
        int qg, int k, int cap, int tile_rows, long long slice_rows,                                 \
        const unsigned char* __restrict__ live, int use_live, float* out_s, unsigned* out_id) {      \
        scan<T, QPT>(corpus, n, d, queries, nq, qg, k, cap, tile_rows, slice_rows, live, use_live,  \
                     out_s, out_id);                                                                 \
    }

SCAN_ENTRY(faery_scan_f32_q1, float, 1)
SCAN_ENTRY(faery_scan_f32_q4, float, 4)
SCAN_ENTRY(faery_scan_f16_q1, f16, 1)
SCAN_ENTRY(faery_scan_f16_q4, f16, 4)

// lists: per query, `lists` sorted k-lists laid out contiguously; block (group, query)
// merges lists [group * MERGE_FAN, ...) into one sorted k-list at out[(query * groups + group)].
// Shared memory: s[cap] | id[cap] | thr_s | thr_id | fill.
extern "C" __global__ void __launch_bounds__(THREADS) faery_merge(
        const float* __restrict__ in_s, const unsigned* __restrict__ in_id, int lists, int k, int cap,
        float* out_s, unsigned* out_id) {
    Buffers b;
    b.s = smem;
    b.id = reinterpret_cast<unsigned*>(b.s + cap);
    b.thr_s = reinterpret_cast<float*>(b.id + cap);
    b.thr_id = reinterpret_cast<unsigned*>(b.thr_s + 1);
    b.fill = reinterpret_cast<int*>(b.thr_id + 1);
    b.cap = cap;
    buffers_init(b, 1);

    const int query = blockIdx.y;
    const int first = blockIdx.x * MERGE_FAN;
    const int count = min(MERGE_FAN, lists - first) * k;
    const size_t base = ((size_t)query * lists + first) * k;
    for (int e0 = 0; e0 < count; e0 += blockDim.x) {
        buffers_make_room(b, 1, k, blockDim.x);
        const int e = e0 + threadIdx.x;
        if (e < count && in_id[base + e] != EMPTY_ID) offer(b, 0, in_s[base + e], in_id[base + e]);
    }
    __syncthreads();
    compact(b, 0, k);
    const size_t list = (size_t)query * gridDim.x + blockIdx.x;
    write_sorted(b, 0, k, out_s + list * k, out_id + list * k);
}
