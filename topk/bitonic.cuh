// The k-best order and the bitonic sorting network, shared by FAERY's GPU kernel
// (impls/faery/faery_gpu.cu) and the Faiss-like BlockSelect (baselines/faiss_topk/block_select.cu).
//
// Order: a candidate is better when its score is higher, or equal with a lower id.
// Ids are 32-bit; EMPTY_ID marks an empty slot (with score -inf it sorts last).
#ifndef TOPK_BITONIC_CUH
#define TOPK_BITONIC_CUH

#define EMPTY_ID 0xffffffffu

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000); }

__device__ __forceinline__ bool better(float sa, unsigned ia, float sb, unsigned ib) {
    return sa > sb || (sa == sb && ia < ib);
}

// Sort s[0..len), id[0..len) best first (bitonic; len a power of two), in shared memory.
// Run by `lanes` threads, this one being `lane`: the whole block (WHOLE_BLOCK, a block
// barrier between steps) or one warp (a warp barrier).  Ends synchronised.
template <bool WHOLE_BLOCK>
__device__ void bitonic_sort(float* s, unsigned* id, int len, int lane, int lanes) {
    for (int size = 2; size <= len; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = lane; i < (len >> 1); i += lanes) {
                int lo = 2 * i - (i & (stride - 1));
                int hi = lo + stride;
                bool best_first = (lo & size) == 0;
                bool swap = best_first ? better(s[hi], id[hi], s[lo], id[lo])
                                       : better(s[lo], id[lo], s[hi], id[hi]);
                if (swap) {
                    float ts = s[lo]; s[lo] = s[hi]; s[hi] = ts;
                    unsigned ti = id[lo]; id[lo] = id[hi]; id[hi] = ti;
                }
            }
            if (WHOLE_BLOCK) __syncthreads(); else __syncwarp();
        }
    }
}

#endif  // TOPK_BITONIC_CUH
