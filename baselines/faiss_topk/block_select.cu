// Faiss-style BlockSelect: the k best of each chunk of a row of scores, sorted.
//
// Block (chunk, row).  Each warp keeps a sorted warp queue of the k best it has seen
// in shared memory; each thread keeps a small register queue of T candidates.  A
// thread inserts a score only if it beats the warp queue's k-th best (the filter).
// When any lane's queue is full, the warp writes all thread queues beside its warp
// queue, sorts the lot (bitonic, in shared memory) and keeps the best k: the warp
// sort-merge.  At the end the block sorts its warps' queues together and writes the
// best k of the chunk.  With `ids` given, it selects over (score, id) pairs (Faiss's
// BlockSelectPair), which merges candidate lists from earlier passes.
//
// Order: higher score first, then lower id; 0xffffffff marks an empty slot.

#include "bitonic.cuh"  // better(), neg_inf(), EMPTY_ID, bitonic_sort (topk/, shared with FAERY's kernel)

#define FULL_MASK 0xffffffffu

extern __shared__ float smem[];  // per warp: region of `region` (score, id) slots

template <int T>
__device__ void block_select(const float* __restrict__ values, const unsigned* __restrict__ ids, int has_ids,
                             long long row_len, long long row_stride, int chunk_len, int k, int region,
                             unsigned id_offset, long long out_row_stride, int out_offset,
                             float* out_s, unsigned* out_id) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int warps = blockDim.x >> 5;
    float* all_s = smem;
    unsigned* all_id = reinterpret_cast<unsigned*>(smem + warps * region);
    float* ws = all_s + warp * region;          // this warp's region: queue [0, k), staging [k, k + 32T)
    unsigned* wid = all_id + warp * region;
    for (int i = lane; i < region; i += 32) {
        ws[i] = neg_inf();
        wid[i] = EMPTY_ID;
    }
    __syncwarp();

    float thr_s = neg_inf();
    unsigned thr_id = EMPTY_ID;
    float qs[T];
    unsigned qi[T];
    int count = 0;

    const long long row = blockIdx.y;
    const long long begin = (long long)blockIdx.x * chunk_len;
    const long long end = min(begin + chunk_len, row_len);
    const float* vrow = values + row * row_stride;
    const unsigned* irow = ids + row * row_stride;
    // Every thread runs the same number of rounds, so warp votes see all lanes.
    for (long long base = begin; base < end; base += blockDim.x) {
        const long long c = base + threadIdx.x;
        if (c < end) {
            const float s = vrow[c];
            const unsigned id = has_ids ? irow[c] : id_offset + (unsigned)c;
            if (better(s, id, thr_s, thr_id)) {
#pragma unroll
                for (int j = 0; j < T; ++j) {  // unrolled, so the queue stays in registers
                    if (j == count) { qs[j] = s; qi[j] = id; }
                }
                ++count;
            }
        }
        const bool flush = __any_sync(FULL_MASK, count == T) || base + blockDim.x >= end;
        if (flush) {
#pragma unroll
            for (int j = 0; j < T; ++j) {
                ws[k + lane * T + j] = j < count ? qs[j] : neg_inf();
                wid[k + lane * T + j] = j < count ? qi[j] : EMPTY_ID;
            }
            count = 0;
            __syncwarp();
            bitonic_sort<false>(ws, wid, region, lane, 32);
            for (int i = k + lane; i < region; i += 32) {
                ws[i] = neg_inf();
                wid[i] = EMPTY_ID;
            }
            thr_s = ws[k - 1];
            thr_id = wid[k - 1];
            __syncwarp();
        }
    }
    __syncthreads();
    bitonic_sort<true>(all_s, all_id, warps * region, threadIdx.x, blockDim.x);
    float* os = out_s + row * out_row_stride + (long long)(out_offset + blockIdx.x) * k;
    unsigned* oi = out_id + row * out_row_stride + (long long)(out_offset + blockIdx.x) * k;
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        os[i] = all_s[i];
        oi[i] = all_id[i];
    }
}

#define SELECT_ENTRY(T)                                                                             \
    extern "C" __global__ void block_select_t##T(                                                   \
        const float* __restrict__ values, const unsigned* __restrict__ ids, int has_ids,            \
        long long row_len, long long row_stride, int chunk_len, int k, int region,                  \
        unsigned id_offset, long long out_row_stride, int out_offset, float* out_s,                 \
        unsigned* out_id) {                                                                         \
        block_select<T>(values, ids, has_ids, row_len, row_stride, chunk_len, k, region, id_offset, \
                        out_row_stride, out_offset, out_s, out_id);                                 \
    }

SELECT_ENTRY(2)
SELECT_ENTRY(3)
SELECT_ENTRY(4)
SELECT_ENTRY(8)
