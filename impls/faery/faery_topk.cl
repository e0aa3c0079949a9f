// FAERY's dataflow as an FPGA-HLS-style OpenCL kernel: scan -> score -> filter -> K-selection.
//
// Written in the single-work-item style of Intel/Xilinx HLS: each work-item is one
// accelerator pipeline (a "compute unit") that streams its shard of the corpus for one
// query, one loop iteration per NE embeddings.  The three stages are fused in that one
// pipelined loop, because PoCL has no pipes (see README.md):
//   score stage      NE dot-product units, one embedding each;
//   filter stage     a score not above the running K-th best is dropped; survivors
//                    enter a small FIFO (the paper's buffer behind the filter);
//   K-selection      an insertion sorter taking ONE score per iteration from the FIFO,
//                    like the hardware top-K sorter; when the FIFO cannot take NE more
//                    scores the pipeline stalls and the sorter drains it.
// Rows are scanned in increasing id and only a strictly better score is inserted, after
// any equal ones, so ties go to the lower id.
//
// Build options: -D NE=<embeddings per iteration> -D FIFO_DEPTH=<filter buffer entries>
//                -D CORPUS_HALF (corpus stored as fp16, read with vload_half).

#ifndef NE
#define NE 4
#endif
#ifndef FIFO_DEPTH
#define FIFO_DEPTH 16
#endif

#ifdef CORPUS_HALF
#define CORPUS_T half
#define LOAD(ptr, i) vload_half((i), (ptr))
#else
#define CORPUS_T float
#define LOAD(ptr, i) ((ptr)[i])
#endif

// Insert (s, id) into the sorted top list (descending), keeping at most k entries.
// Returns the new fill; the caller guarantees s beats the K-th best when full.
inline int sorter_insert(__global float *top_s, __global long *top_i, int filled, int k,
                         float s, long id)
{
    int pos = filled < k ? filled : k - 1;
    // Shift worse entries down one slot; an equal score stays ahead (it has a lower id).
    while (pos > 0 && top_s[pos - 1] < s) {
        top_s[pos] = top_s[pos - 1];
        top_i[pos] = top_i[pos - 1];
        pos--;
    }
    top_s[pos] = s;
    top_i[pos] = id;
    return filled < k ? filled + 1 : filled;
}

// K-selection stage, one step: take the FIFO's head into the sorter and update the K-th best
// that the filter compares against.
inline void select_one(const float *fifo_s, const long *fifo_i, int *head, int *count,
                       __global float *top_s, __global long *top_i, int *filled, int k, float *kth)
{
    const float v = fifo_s[*head];
    if (*filled < k || v > *kth)
        *filled = sorter_insert(top_s, top_i, *filled, k, v, fifo_i[*head]);
    *kth = *filled == k ? top_s[k - 1] : -INFINITY;
    *head = (*head + 1) % FIFO_DEPTH;
    (*count)--;
}

__kernel void faery_topk(__global const CORPUS_T *corpus,    // (n, d) row-major
                         __global const float *queries,      // (b, d)
                         __global const uchar *live,         // (n,) or unused
                         const int use_live,
                         const long n, const int d, const int k,
                         const long rows_per_unit,
                         __global float *top_scores,         // (b, units, k)
                         __global long *top_ids,             // (b, units, k)
                         __global long *passed)              // (b, units): filter survivors
{
    const int unit = get_global_id(0);
    const int units = get_global_size(0);
    const int q = get_global_id(1);
    const long lo = unit * rows_per_unit;
    const long hi = min(n, lo + rows_per_unit);
    const size_t out = ((size_t)q * units + unit) * (size_t)k;
    __global float *top_s = top_scores + out;
    __global long *top_i = top_ids + out;
    __global const float *query = queries + (size_t)q * d;

    float fifo_s[FIFO_DEPTH];
    long fifo_i[FIFO_DEPTH];
    int head = 0, count = 0;
    int filled = 0;
    float kth = -INFINITY;   // the running K-th best, broadcast back to the filter
    long survivors = 0;

    for (long r0 = lo; r0 < hi; r0 += NE) {
        // Score stage: NE embeddings per iteration.
        float s[NE];
        #pragma unroll
        for (int e = 0; e < NE; e++) {
            const long row = r0 + e;
            float acc = 0.0f;
            if (row < hi) {
                __global const CORPUS_T *emb = corpus + (size_t)row * d;
                for (int j = 0; j < d; j++)
                    acc = fma(LOAD(emb, j), query[j], acc);
            }
            s[e] = acc;
        }
        // Filter stage: only scores beating the K-th best go on.
        #pragma unroll
        for (int e = 0; e < NE; e++) {
            const long row = r0 + e;
            if (row < hi && s[e] > kth && (!use_live || live[row])) {
                const int tail = (head + count) % FIFO_DEPTH;
                fifo_s[tail] = s[e];
                fifo_i[tail] = row;
                count++;
                survivors++;
            }
        }
        // K-selection stage: one score per iteration; stall (drain) when the FIFO
        // could not absorb another NE survivors.
        do {
            if (count > 0)
                select_one(fifo_s, fifo_i, &head, &count, top_s, top_i, &filled, k, &kth);
        } while (count > FIFO_DEPTH - NE);
    }
    while (count > 0)  // flush the FIFO at the end of the scan
        select_one(fifo_s, fifo_i, &head, &count, top_s, top_i, &filled, k, &kth);
    for (int i = filled; i < k; i++) {  // a shard with fewer than k live rows
        top_s[i] = -INFINITY;
        top_i[i] = -1;
    }
    passed[(size_t)q * units + unit] = survivors;
}
