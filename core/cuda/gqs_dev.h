/* gqs_dev.h — device code shared by the GQS kernels (gqs_gemv.cu) and the dense W4 baseline (w4_gemv.cu):
 * the device-side matrix, the 16-byte unit decoder (int4 -> fp16 in registers) and the row-split kernel.
 * CUDA C++ only; C code uses gqs_gemv.h.
 *
 * One unit = 16 bytes of codes = 32 weights = 4 quads of 8 (layout: core/gqs_pack.h). Per quad:
 *   (word >> 4s) & 0x000F000F | 0x64006400  ->  half2(1024 + q_2s, 1024 + q_2s+1)      (LOP3)
 *   w = fma(h - 1024, scale, min)                                                         (HADD2, HFMA2)
 *   p = w0*x0 + w1*x1 + w2*x2 + w3*x3 in half2, then acc_fp32 += p.x + p.y               (HMUL2, 3 HFMA2)
 * Codes, column indices and scales stream with ld.global.nc.L1::no_allocate (read once; keep L1 for x);
 * x is read with 16-byte __ldg from L1/L2 (it is at most 16 x 32 KB and shared by all warps).
 * Must not: be included by C files, or hold state (everything a launch needs is in gq_gemv_args).
 */
#ifndef GQ_CUDA_GQS_DEV_H
#define GQ_CUDA_GQS_DEV_H

#ifndef __CUDACC__
#error "gqs_dev.h is CUDA C++; C code includes gqs_gemv.h"
#endif

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "cuda_check.h"
#include "gqs_gemv.h"
#include "pdl.cuh"
#include "prefetch.cuh"

#define GQ_PIPE_MAXB 2 /* largest batch with a v9 kernel (gqs_pipe.h) */

struct gq_gemv_args;
struct gq_gqs_gpu {
    int N, K, G;
    int64_t U, S;          /* units, slots */
    int dense;             /* every group kept, K % 32 == 0 */
    int32_t *row_unit;     /* [N+1] */
    int32_t *row_order;    /* [N] rows by decreasing kept units (v3 row split: longest first) */
    uint4 *codes;          /* [U] */
    uint16_t *col;         /* [S] */
    uint32_t *sm;          /* [S] */
    float *rec;            /* Stream-K records [2 * max_workers][GQ_GEMV_MAX_BATCH] */
    int *cnt;              /* Stream-K arrival counters [N], zero between launches */
    int64_t max_workers;
    int sm_count;
    int sk_ctas;           /* user cap, 0 = occupancy */
    int64_t last_workers;
    int64_t max_flat_workers; /* v2 cap on workers (tests: long shares); 0 = none */
    /* v4 task-centric split (gqs_pack.h "v4 task list"), built at upload */
    int4 *tasks;           /* [ntasks] gq_gemv_task {row, lo, n, ci} */
    int2 *row_fix;         /* [N] {first record, tasks} of each row */
    float *task_rec;       /* [nrec][GQ_GEMV_MAX_BATCH] partial sums of cut rows */
    int64_t ntasks, nrec, task_units;
    int pdl;               /* launch the v3 row / v4 task kernels with programmatic dependent launch */
    /* v10 round split (gqs_pack.h gq_gqs_round_split, gqs_pipe.h) for batch 1, built by the first v10
     * launch outside graph capture or by gq_gqs_gpu_prepare */
    int2 *pstart;          /* [pw + 1] {row, round} of each warp's first round */
    unsigned long long *ppart; /* [pw] a warp's partial sum: 1 << 32 | its fp32 bits once published, reset
                                  to 0 by the row's owner (value and flag in one word: one round trip) */
    int64_t pw;            /* warps; 0 = v10 not available (the launcher runs v9) */
    int pready;            /* the split was built (or refused: pw = 0): gq_gemv_v10_setup */
    int64_t pipe_slots[2][GQ_PIPE_MAXB]; /* v9 resident warps by [dense][B - 1]; 0 = not asked yet,
                                                -1 = the kernel does not fit */
    /* v11 row streams (gqs_pack.h "v11 row stream", gqs_stream.h) by [dense]: [0] with columns (GQ_GEMV_ROW_V11),
     * [1] without (GQ_GEMV_DENSE_W4_V11; the _V12 kinds read the same); built by gq_gqs_gpu_prepare or the kind's first launch */
    uint4 *stream[2];
    int2 *srow[2];         /* [N] {offset in 16-byte units, blocks of 32 quads} */
    int64_t stream_bytes[2];
    int only_kind;         /* >= 0: the device format was freed, only this v11/v12 kind runs (gq_gqs_gpu_keep_only) */
    /* v13 splits of the row streams (gqs_pack.h "v13 split", gqs_stream.h) by gq_v13_split_index: built by
     * gq_gqs_gpu_prepare for the ring size and CTAs per SM they record; [3..5] v14's */
    struct gq_v13_split {
        int4 *wstart;      /* [W + 1] */
        int2 *sfix;        /* [N] */
        float *rec;        /* [2 W] records of cut rows' parts */
        int *cnt;          /* [N] arrival counters, zero between launches */
        int64_t W;
        int ring, ctas;    /* bytes of each warp's ring, CTAs per SM */
        void (*kernel)(gq_gemv_args); /* the kernel the split was sized for, and its shared memory per CTA */
        size_t smem;
    } v13[6];
    int v13_ring, v13_ctas; /* requested (gq_gqs_gpu_set_v13): 0 = the defaults */
    int v15_depth;          /* v15: rounds prefetched ahead into L2 (gq_gqs_gpu_set_v15_depth; 0 = 1) */
    /* v16 (gqs_ws.h) by [dense]: the per-CTA split of the row stream (mode 2) and the kernel it was sized
     * for; built by gq_gqs_gpu_prepare with the configuration in v16_cfg (gq_gqs_gpu_set_v16; 0 = default) */
    struct gq_v16_split {
        int4 *wstart;      /* [W + 1], W = CTAs */
        int64_t W;
        gq_v16_config c;   /* v16_cfg with every default resolved (c.x: 1 or 2) */
        int slot_log;      /* log2 c.slot */
        void (*kernel)(gq_gemv_args);
        size_t smem;
    } v16[2];
    gq_v16_config v16_cfg; /* as set (gq_gqs_gpu_set_v16), validated there */
    /* v17 (gqs_stream.h R): warps per row as set (gq_gqs_gpu_set_v17_split; 0 = gq_gqs_rows_split's choice),
     * and the rule's choice for stream [dense], made when the stream is built (gq_gemv_v11_setup) */
    int v17_split;
    int v17_r[2];
    /* v18 (gqs_mma.h): the tile stream (gqs_pack.h "v18 tile stream") on the device and its warps per tile;
     * built by gq_gqs_gpu_prepare for the _V18 kinds (gq_gemv_v18_setup) */
    struct gq_v18_tiles {
        int32_t *tblk;
        uint32_t *meta, *boff;
        uint16_t *col;
        uint8_t *data;
        int ntiles, S;
        int64_t bytes;     /* meta + boff + data + tblk */
    } tiles;
};

struct gq_gemv_args {
    const int32_t *row_unit;
    const int32_t *row_order; /* v3 row split: warp i computes row row_order[i] (NULL: row i) */
    const uint4 *codes;
    const uint16_t *col;
    const uint32_t *sm;
    const __half *x;       /* [nb, K] */
    void *y;               /* [nb, N] fp16 or fp32 */
    float *rec;
    int *cnt;
    int64_t U, W;          /* units, workers (warps) of Stream-K and of the v2 kernels */
    int64_t rpw;           /* v2 row split: rows per worker */
    const int4 *tasks;     /* v4: the task list, its rows' fix-up info and records */
    const int2 *row_fix;
    float *trec;
    int64_t ntasks;
    int N, K, nb, y_fp32;
    int pf;                /* v5: each warp first prefetches its whole segment into L2 (gq_prefetch_seg) */
    const int2 *pstart;    /* v10: the round split and its fix-up words (gq_gqs_gpu) */
    unsigned long long *ppart;
    const uint4 *stream;   /* v11: the row stream and its row table (gq_gqs_gpu) */
    const int2 *srow;
    const int4 *wstart;    /* v13: each warp's first token {row, round, byte, 0} ([W + 1]) and the cut rows' {first warp, parts} */
    const int2 *sfix;
    int ws_ring, ws_slot_log; /* v16: the CTA's ring in bytes, log2 of its slot size (gqs_ws.h) */
    int ws_pieces;            /* v16: bulk copies per slot (1..32), one per producer lane */
    int ws_wait;              /* v16: how the mbarrier waits wait (tma.cuh gq_mbar_wait_ns) */
    int ws_lane0_wait;        /* v16: lane 0 alone waits on a slot, the warp follows through __syncwarp (else every lane) */
    const int32_t *tblk;      /* v18: the tile stream (gqs_mma.h) */
    const uint32_t *tmeta, *tboff;
    const uint16_t *tcol;
    const uint8_t *tdata;
};

/* The kernel arguments for y [B, N] = x [B, K] W^T on m (the fields every design reads; launchers add
 * their own: W, rpw, pf, the v10 split). */
static inline gq_gemv_args gq_gemv_args_of(const gq_gqs_gpu *m, const void *x_dev, int B, void *y_dev, int y_fp32) {
    gq_gemv_args a;
    memset(&a, 0, sizeof a);
    a.row_unit = m->row_unit, a.row_order = m->row_order, a.codes = m->codes, a.col = m->col, a.sm = m->sm;
    a.x = static_cast<const __half *>(x_dev), a.y = y_dev, a.rec = m->rec, a.cnt = m->cnt;
    a.U = m->U, a.N = m->N, a.K = m->K, a.nb = B, a.y_fp32 = y_fp32 ? 1 : 0;
    a.tasks = m->tasks, a.row_fix = m->row_fix, a.trec = m->task_rec, a.ntasks = m->ntasks;
    return a;
}

#define GQ_ROW_WARPS 4 /* warps (rows) per CTA of the v1 row-split kernels */
#define GQ_SK_WARPS 8  /* warps (shares) per CTA of the Stream-K kernel */

/* ---- loads ---------------------------------------------------------------------------------------- */

__device__ __forceinline__ uint4 gq_ld_stream_v4(const void *p) {
    uint4 r;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p));
    return r;
}
__device__ __forceinline__ uint2 gq_ld_stream_v2(const void *p) {
    uint2 r;
    asm("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
    return r;
}
__device__ __forceinline__ uint32_t gq_ld_stream_u32(const void *p) {
    uint32_t r;
    asm("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(r) : "l"(p));
    return r;
}
__device__ __forceinline__ uint32_t gq_ld_stream_u16(const void *p) {
    unsigned short r;
    asm("ld.global.nc.L1::no_allocate.u16 %0, [%1];" : "=h"(r) : "l"(p));
    return r;
}

/* Bytes [b0, b1) of an array, widened to 16-byte bounds (the upload pads every array by 16 bytes). */
__device__ __forceinline__ void gq_prefetch_l2_span(const void *base, int64_t b0, int64_t b1) {
    b0 &= ~(int64_t)15;
    b1 = (b1 + 15) & ~(int64_t)15;
    if (b1 > b0) gq_prefetch_l2(static_cast<const char *>(base) + b0, (uint32_t)(b1 - b0));
}

__device__ __forceinline__ __half2 gq_u32_as_h2(uint32_t v) {
    __half2 h;
    memcpy(&h, &v, 4);
    return h;
}

/* Slots per unit (G <= 32) — the metadata a unit needs. */
template <int G> struct gq_ns { static constexpr int value = G <= 32 ? 32 / G : 1; };

/* Metadata of unit u: NS scale|min words and NS column indices. */
template <int G, bool DENSE>
__device__ __forceinline__ void gq_load_meta(const gq_gemv_args &a, int64_t u, uint32_t (&sm)[gq_ns<G>::value],
                                             uint32_t (&col)[gq_ns<G>::value]) {
    if constexpr (G == 8) {
        const uint4 s = gq_ld_stream_v4(a.sm + u * 4);
        sm[0] = s.x, sm[1] = s.y, sm[2] = s.z, sm[3] = s.w;
        if constexpr (!DENSE) {
            const uint2 c = gq_ld_stream_v2(a.col + u * 4);
            col[0] = c.x & 0xFFFF, col[1] = c.x >> 16, col[2] = c.y & 0xFFFF, col[3] = c.y >> 16;
        }
    } else if constexpr (G == 16) {
        const uint2 s = gq_ld_stream_v2(a.sm + u * 2);
        sm[0] = s.x, sm[1] = s.y;
        if constexpr (!DENSE) {
            const uint32_t c = gq_ld_stream_u32(a.col + u * 2);
            col[0] = c & 0xFFFF, col[1] = c >> 16;
        }
    } else {
        const int64_t slot = u / (G / 32);
        sm[0] = gq_ld_stream_u32(a.sm + slot);
        if constexpr (!DENSE) col[0] = gq_ld_stream_u16(a.col + slot);
    }
    if constexpr (DENSE)
        for (int i = 0; i < gq_ns<G>::value; i++) col[i] = 0;
}

/* ---- one unit --------------------------------------------------------------------------------------- */

/* x staged in shared memory (v2, core/cuda/gqs_flat.h): batch row b at xs + b * kc (kc = 16-byte chunks per
 * row, K rounded up to 64), chunk c (8 halfs) stored at c ^ ((c >> 3) & 7). Without the swizzle every
 * lane of a G16 quad reads chunk 2*col + parity: one half of the 8 four-bank groups, at least 2-way
 * conflicts on every LDS.128; with it the group bits of the column spread the chunks over all eight. */
__device__ __forceinline__ int gq_xswz(int c) { return c ^ ((c >> 3) & 7); }

/* (a & b) | c in one LOP3 (the compiler emits an AND and an OR for the C expression). */
__device__ __forceinline__ uint32_t gq_andor(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}

/* acc[b] += sum over one quad's 8 weights (codes in word cw, fp16 scale|min in smw, first column k0)
 * of w * x[b][k]. XS: x from shared memory (xs, kc as above), else from global memory with __ldg. The
 * one dequantization + dot of every kernel here (v1 units, v2 flat streams, v3 quads).
 * LEAN (v7): the same values in fewer instructions. Nibbles (2s, 2s+1) of a quad are its half2 pair s at
 * bits 4s and 16+4s; v1-v6 take each pair with a shift, an AND and an OR (3 integer ops, 12 per quad).
 * LEAN takes pairs 0 and 1 straight from cw with one LOP3 each (masks 0x000F000F and 0x00F000F0, the
 * second giving 1024 + 16 q), pairs 2 and 3 the same from cw >> 8 (5 integer ops per quad); the 16 q
 * pairs are unbiased by h * (1/16) - 64 (exact: a power-of-two scaling and an exact subtraction) instead of
 * h - 1024, so every dequantized weight, and so every result, is bit-identical to v3's. */
/* A coherent 16-byte load (ld.global, L1-cached): ordered after griddepcontrol.wait, unlike __ldg. */
__device__ __forceinline__ uint4 gq_ld_coherent_v4(const void *p) {
    uint4 r;
    asm("ld.global.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p) : "memory");
    return r;
}

/* XC: x with coherent loads (gq_ld_coherent_v4) instead of __ldg: for kernels whose x loads ptxas would
 * otherwise schedule above gq_pdl_wait() (v11/v12, gqs_stream.h). */
template <int B, bool XS = false, bool LEAN = false, bool XC = false>
__device__ __forceinline__ void gq_quad(const gq_gemv_args &a, int k0, uint32_t cw, uint32_t smw, float (&acc)[B],
                                        const uint4 *xs = nullptr, int kc = 0) {
    const __half2 k1024 = gq_u32_as_h2(0x64006400u);
    const __half2 s2 = __low2half2(gq_u32_as_h2(smw));
    const __half2 m2 = __high2half2(gq_u32_as_h2(smw));
    __half2 w[4];
    if constexpr (LEAN) {
        const __half2 k16th = gq_u32_as_h2(0x2C002C00u), km64 = gq_u32_as_h2(0xD400D400u); /* 1/16, -64 */
        const uint32_t c8 = cw >> 8;
        w[0] = __hfma2(__hsub2(gq_u32_as_h2(gq_andor(cw, 0x000F000Fu, 0x64006400u)), k1024), s2, m2);
        w[1] = __hfma2(__hfma2(gq_u32_as_h2(gq_andor(cw, 0x00F000F0u, 0x64006400u)), k16th, km64), s2, m2);
        w[2] = __hfma2(__hsub2(gq_u32_as_h2(gq_andor(c8, 0x000F000Fu, 0x64006400u)), k1024), s2, m2);
        w[3] = __hfma2(__hfma2(gq_u32_as_h2(gq_andor(c8, 0x00F000F0u, 0x64006400u)), k16th, km64), s2, m2);
    } else {
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const uint32_t h = ((cw >> (4 * s)) & 0x000F000Fu) | 0x64006400u;
            w[s] = __hfma2(__hsub2(gq_u32_as_h2(h), k1024), s2, m2);
        }
    }
#pragma unroll
    for (int b = 0; b < B; b++) {
        if (B == 1 || b < a.nb) {
            uint4 xv;
            if constexpr (XS) xv = xs[b * kc + gq_xswz(k0 >> 3)];
            else if constexpr (XC) xv = gq_ld_coherent_v4(a.x + (size_t)b * a.K + k0);
            else xv = __ldg(reinterpret_cast<const uint4 *>(a.x + (size_t)b * a.K + k0));
            __half2 p = __hmul2(w[0], gq_u32_as_h2(xv.x));
            p = __hfma2(w[1], gq_u32_as_h2(xv.y), p);
            p = __hfma2(w[2], gq_u32_as_h2(xv.z), p);
            p = __hfma2(w[3], gq_u32_as_h2(xv.w), p);
            const float2 f = __half22float2(p);
            acc[b] += f.x + f.y;
        }
    }
}

/* acc[b] += sum over the unit's 32 weights of w * x[b][k]. kdense: the unit's first column for the dense
 * kernel ((u - row's first unit) * 32); ignored otherwise. */
template <int G, int B, bool DENSE, bool XS = false>
__device__ __forceinline__ void gq_unit(const gq_gemv_args &a, int64_t u, int kdense, uint4 c,
                                        const uint32_t (&sm)[gq_ns<G>::value], const uint32_t (&col)[gq_ns<G>::value],
                                        float (&acc)[B], const uint4 *xs = nullptr, int kc = 0) {
    const uint32_t cw[4] = {c.x, c.y, c.z, c.w};
#pragma unroll
    for (int q = 0; q < 4; q++) {
        constexpr int QPS = G <= 32 ? G / 8 : 1; /* quads per slot (within a unit) */
        const int si = G <= 32 ? q / QPS : 0;
        int k0;
        if constexpr (DENSE) k0 = kdense + 8 * q;
        else if constexpr (G <= 32) k0 = (int)col[si] * G + (q % QPS) * 8;
        else k0 = (int)col[0] * G + (int)(u % (G / 32)) * 32 + 8 * q;
        gq_quad<B, XS>(a, k0, cw[q], sm[si], acc, xs, kc);
    }
}

/* Units [lo, hi) of one row, lanes striding by 32, UNR units per lane in flight. ubase: the row's first
 * unit (dense column origin). */
template <int G, int B, bool DENSE, int UNR>
__device__ __forceinline__ void gq_seg(const gq_gemv_args &a, int64_t lo, int64_t hi, int64_t ubase, int lane,
                                       float (&acc)[B]) {
    constexpr int NS = gq_ns<G>::value;
    for (int64_t u0 = lo + lane; u0 < hi; u0 += 32 * UNR) {
        uint4 c[UNR];
        uint32_t sm[UNR][NS], col[UNR][NS];
#pragma unroll
        for (int i = 0; i < UNR; i++) {
            const int64_t u = u0 + 32 * i;
            if (u < hi) {
                c[i] = gq_ld_stream_v4(a.codes + u);
                gq_load_meta<G, DENSE>(a, u, sm[i], col[i]);
            } else {
                c[i] = make_uint4(0, 0, 0, 0);
#pragma unroll
                for (int j = 0; j < NS; j++) sm[i][j] = 0, col[i][j] = 0;
            }
        }
#pragma unroll
        for (int i = 0; i < UNR; i++) {
            const int64_t u = u0 + 32 * i;
            if (u < hi) gq_unit<G, B, DENSE>(a, u, (int)(u - ubase) * 32, c[i], sm[i], col[i], acc);
        }
    }
}

template <int B> __device__ __forceinline__ void gq_warp_sum(float (&acc)[B]) {
#pragma unroll
    for (int b = 0; b < B; b++)
#pragma unroll
        for (int off = 16; off > 0; off >>= 1) acc[b] += __shfl_xor_sync(0xFFFFFFFFu, acc[b], off);
}

__device__ __forceinline__ void gq_store_y(const gq_gemv_args &a, int b, int r, float v) {
    if (a.y_fp32) static_cast<float *>(a.y)[(size_t)b * a.N + r] = v;
    else static_cast<__half *>(a.y)[(size_t)b * a.N + r] = __float2half_rn(v);
}

/* After gq_warp_sum every lane holds every sum: lane b writes batch b (no run-time register index). */
template <int B> __device__ __forceinline__ void gq_store_row(const gq_gemv_args &a, int r, int lane, const float (&acc)[B]) {
#pragma unroll
    for (int b = 0; b < B; b++)
        if (b < a.nb && lane == b) gq_store_y(a, b, r, acc[b]);
}

/* The fix-up of a row cut between several warps (Stream-K shares, v4 tasks): publish this warp's partial
 * sums in its record rec[0..nb), then count arrivals on the row's counter. Returns 1 (in every lane) for
 * the warp that arrives as the `parts`-th: it has seen every record (acquire fence), must sum them in a
 * fixed order (deterministic) and must reset a.cnt[r] to 0 for the next, stream-ordered launch. */
template <int B>
__device__ __forceinline__ int gq_fixup_arrive(const gq_gemv_args &a, float *rec, int r, int parts, int lane,
                                               const float (&acc)[B]) {
#pragma unroll
    for (int b = 0; b < B; b++)
        if (b < a.nb && lane == b) rec[b] = acc[b];
    __threadfence(); /* each writing lane: its record is visible device-wide before the count */
    __syncwarp();
    int last = 0;
    if (lane == 0) last = atomicAdd(&a.cnt[r], 1) == parts - 1;
    last = __shfl_sync(0xFFFFFFFFu, last, 0);
    if (last) __threadfence(); /* acquire side: see every other part's record */
    return last;
}

template <int B> struct gq_unroll { static constexpr int value = B <= 2 ? 4 : 2; };

/* Units [lo, hi) of row r (dense: every row holds K/32 units, row_unit is not read). */
template <bool DENSE>
__device__ __forceinline__ void gq_row_units(const gq_gemv_args &a, int r, int64_t &lo, int64_t &hi) {
    if constexpr (DENSE) lo = (int64_t)r * (a.K / 32), hi = lo + a.K / 32;
    else lo = a.row_unit[r], hi = a.row_unit[r + 1];
}

/* Row split: warp (blockIdx.x * GQ_ROW_WARPS + warp) computes output row r. */
template <int G, int B, bool DENSE>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS) gq_gemv_row_kernel(const gq_gemv_args a) {
    const int lane = threadIdx.x & 31;
    const int r = blockIdx.x * GQ_ROW_WARPS + (threadIdx.x >> 5);
    if (r >= a.N) return;
    int64_t lo, hi;
    gq_row_units<DENSE>(a, r, lo, hi);
    float acc[B];
#pragma unroll
    for (int b = 0; b < B; b++) acc[b] = 0.f;
    gq_seg<G, B, DENSE, gq_unroll<B>::value>(a, lo, hi, lo, lane, acc);
    gq_warp_sum<B>(acc);
    gq_store_row<B>(a, r, lane, acc);
}

/* v3: units [lo, hi) of one row taken QUAD by quad: lane l handles quads 4*lo + l + 32 i, so in one load
 * instruction the warp reads 128 consecutive bytes of codes and its x reads cover 32 consecutive quads
 * of the row — at G16, 16 consecutive kept groups with both halves of each group's 32-byte x sector in
 * the same instruction (v1 gave each lane a whole unit: ~2 L1 wavefronts per kept group; this is ~0.5).
 * Quad qi (global) lives in unit qi / 4; its slot is qi / (G / 8) for every G, and its first column is
 * col[slot] * G + (qi % (G / 8)) * 8 (dense: (qi - 4 * ubase) * 8).
 * Indexing is 32-bit and relative to the segment (j = qi - 4*lo; a segment is < 2^31 quads), the
 * divisions are shifts, and lanes past the end load a valid quad with scale|min forced to 0 instead of
 * branching around the loads: the first v3 spent ~67 instructions per quad, half of them signed 64-bit
 * index arithmetic and load guards (PTX of gq_gemv_rowq_kernel<16,1,false>; PERF.md "v3"). */
template <int UNR> struct gq_qbuf { uint32_t cw[UNR], smw[UNR], colv[UNR]; };
struct gq_qseg {
    const uint32_t *codes; /* the segment's first quad */
    const uint32_t *sm;    /* slot of the segment's first quad */
    const uint16_t *col;
    uint32_t n;            /* quads in the segment */
    uint32_t r0;           /* (4*lo) % QPG: the first quad's position in its group */
    int kd;                /* dense: column of the segment's first quad ((lo - ubase) * 32) */
};
template <int G> __device__ __forceinline__ gq_qseg gq_qseg_make(const gq_gemv_args &a, int64_t lo, int64_t hi,
                                                                 int64_t ubase) {
    constexpr int QPG = G / 8;
    gq_qseg g;
    const int64_t q = 4 * lo;
    g.codes = reinterpret_cast<const uint32_t *>(a.codes) + q;
    g.sm = a.sm + q / QPG;
    g.col = a.col + q / QPG;
    g.n = (uint32_t)(4 * (hi - lo));
    g.r0 = (uint32_t)(q % QPG);
    g.kd = (int)(lo - ubase) * 32;
    return g;
}
template <int G, bool DENSE, int UNR>
__device__ __forceinline__ void gq_qbuf_load(const gq_qseg &g, gq_qbuf<UNR> &b, uint32_t j0) {
    constexpr uint32_t QPG = G / 8;
#pragma unroll
    for (int i = 0; i < UNR; i++) {
        const uint32_t j = j0 + 32u * i;
        const uint32_t jc = j < g.n ? j : g.n - 1; /* a valid address; its product is zeroed below */
        const uint32_t sl = (g.r0 + jc) / QPG;
        b.cw[i] = gq_ld_stream_u32(g.codes + jc);
        const uint32_t smv = gq_ld_stream_u32(g.sm + sl);
        b.smw[i] = j < g.n ? smv : 0u;
        if constexpr (!DENSE) b.colv[i] = gq_ld_stream_u16(g.col + sl);
        else b.colv[i] = 0;
    }
}
template <int G, int B, bool DENSE, int UNR>
__device__ __forceinline__ void gq_qbuf_use(const gq_gemv_args &a, const gq_qseg &g, const gq_qbuf<UNR> &b, uint32_t j0,
                                            float (&acc)[B]) {
    constexpr uint32_t QPG = G / 8;
#pragma unroll
    for (int i = 0; i < UNR; i++) {
        const uint32_t j = j0 + 32u * i;
        const uint32_t jc = j < g.n ? j : g.n - 1;
        const int k0 = DENSE ? g.kd + (int)jc * 8 : (int)b.colv[i] * G + (int)((g.r0 + jc) % QPG) * 8;
        gq_quad<B>(a, k0, b.cw[i], b.smw[i], acc);
    }
}
template <int G, int B, bool DENSE, int UNR>
__device__ __forceinline__ void gq_seg_quads(const gq_gemv_args &a, int64_t lo, int64_t hi, int64_t ubase, int lane,
                                             float (&acc)[B]) {
    if (hi <= lo) return;
    const gq_qseg g = gq_qseg_make<G>(a, lo, hi, ubase);
    for (uint32_t j0 = (uint32_t)lane; j0 < g.n; j0 += 32u * UNR) {
        gq_qbuf<UNR> b;
        gq_qbuf_load<G, DENSE, UNR>(g, b, j0);
        gq_qbuf_use<G, B, DENSE, UNR>(a, g, b, j0, acc);
    }
}
/* v5: units [lo, hi) of one segment into L2 — codes (lane 0), scale|min (lane 1), columns (lane 2) — so a
 * warp's later rounds of loads hit L2 instead of each waiting a DRAM latency. Weights only: may run
 * before gq_pdl_wait(). */
template <int G, bool DENSE>
__device__ __forceinline__ void gq_prefetch_seg(const gq_gemv_args &a, int64_t lo, int64_t hi, int lane) {
    constexpr int64_t QPG = G / 8;
    const int64_t s0 = 4 * lo / QPG, s1 = (4 * hi + QPG - 1) / QPG; /* slots of the segment's quads */
    if (lane == 0) gq_prefetch_l2_span(a.codes, 16 * lo, 16 * hi);
    else if (lane == 1) gq_prefetch_l2_span(a.sm, 4 * s0, 4 * s1);
    else if (lane == 2 && !DENSE) gq_prefetch_l2_span(a.col, 2 * s0, 2 * s1);
}

/* v7: the loads of gq_seg_quads_pdl with one base address per array per round instead of one per load. v3 clamps
 * each lane's quad index to the segment (j < n ? j : n - 1) so every load stays in bounds; the clamp
 * breaks the linear pattern and the compiler rebuilds a 64-bit address (IMAD.WIDE, LEA, LEA.HI.X, SEL,
 * ISETP) for each of the 12 loads of a round: ~20 of v3's ~55 SASS instructions per quad
 * (gq_gemv_rowq_kernel<16,1,false>, cuobjdump -sass). Here quad j0 + 32 i sits at codes + j0 + 32 i and
 * its slot at (r0 + j0) / QPG + 32 i / QPG (QPG divides 32), so the loads take immediate offsets; lanes
 * past the segment end read the next row's quads (or the zeroed padding after the arrays, which the
 * upload allocates: gq_gqs_gpu_upload, GQ_GEMV_PAD) with scale|min forced to 0, and their x address
 * stays inside x (a valid column; dense: column 0). Dequantization: gq_quad LEAN. Bit-identical to v3. */
/* One v7 round for the lane: cp is its first quad's code word, sp / lp its slot's scale|min and column,
 * j its quad's index in the row and n the row's quads (quad i of the round is j + 32 i). The v7 walk
 * (gq_qbuf_load7) and the v9/v10 pipeline (gqs_pipe.h) load and dequantize through these two. */
template <int G, bool DENSE, int UNR>
__device__ __forceinline__ void gq_round_load(const uint32_t *cp, const uint32_t *sp, const uint16_t *lp, uint32_t j,
                                              uint32_t n, gq_qbuf<UNR> &b) {
    constexpr uint32_t SPR = 32 / (G / 8); /* slots per 32 quads */
#pragma unroll
    for (int i = 0; i < UNR; i++) {
        b.cw[i] = gq_ld_stream_u32(cp + 32 * i);
        const uint32_t smv = gq_ld_stream_u32(sp + SPR * i);
        b.smw[i] = j + 32u * i < n ? smv : 0u;
        if constexpr (!DENSE) b.colv[i] = gq_ld_stream_u16(lp + SPR * i);
        else b.colv[i] = 0;
    }
}
/* kq: the quad's column within its group (the same for every i: 32 i is a multiple of G / 8); kd: dense
 * only, the column of the row's quad 0 relative to x. */
template <int G, int B, bool DENSE, int UNR, bool XS = false>
__device__ __forceinline__ void gq_round_use(const gq_gemv_args &a, int kd, int kq, uint32_t j, uint32_t n,
                                             const gq_qbuf<UNR> &b, float (&acc)[B], const uint4 *xs = nullptr, int kc = 0) {
#pragma unroll
    for (int i = 0; i < UNR; i++) {
        const uint32_t ji = j + 32u * i;
        const int k0 = DENSE ? kd + (int)(ji < n ? ji : 0u) * 8 : (int)b.colv[i] * G + kq;
        gq_quad<B, XS, true>(a, k0, b.cw[i], b.smw[i], acc, xs, kc);
    }
}
template <int G, bool DENSE, int UNR>
__device__ __forceinline__ void gq_qbuf_load7(const gq_qseg &g, gq_qbuf<UNR> &b, uint32_t j0) {
    constexpr uint32_t QPG = G / 8;
    const uint32_t sl = (g.r0 + j0) / QPG;
    gq_round_load<G, DENSE, UNR>(g.codes + j0, g.sm + sl, g.col + sl, j0, g.n, b);
}
template <int G, int B, bool DENSE, int UNR>
__device__ __forceinline__ void gq_qbuf_use7(const gq_gemv_args &a, const gq_qseg &g, const gq_qbuf<UNR> &b, uint32_t j0,
                                             float (&acc)[B]) {
    constexpr uint32_t QPG = G / 8;
    const int kq = (int)((g.r0 + j0) % QPG) * 8;
    gq_round_use<G, B, DENSE, UNR>(a, g.kd, kq, j0, g.n, b, acc);
}
template <int G, bool DENSE, int UNR, bool V7>
__device__ __forceinline__ void gq_qbuf_load_v(const gq_qseg &g, gq_qbuf<UNR> &b, uint32_t j0) {
    if constexpr (V7) gq_qbuf_load7<G, DENSE, UNR>(g, b, j0);
    else gq_qbuf_load<G, DENSE, UNR>(g, b, j0);
}
template <int G, int B, bool DENSE, int UNR, bool V7>
__device__ __forceinline__ void gq_qbuf_use_v(const gq_gemv_args &a, const gq_qseg &g, const gq_qbuf<UNR> &b, uint32_t j0,
                                              float (&acc)[B]) {
    if constexpr (V7) gq_qbuf_use7<G, B, DENSE, UNR>(a, g, b, j0, acc);
    else gq_qbuf_use<G, B, DENSE, UNR>(a, g, b, j0, acc);
}

/* gq_seg_quads for a kernel that may be launched with programmatic dependent launch (pdl.cuh): the first
 * round's weight loads are issued before gq_pdl_wait(), x is read only after it. Without the launch
 * attribute the wait is a no-op and this is gq_seg_quads with its first round peeled. V7: the v7 loads
 * and dequantization (gq_qbuf_load7 / gq_qbuf_use7 above). */
template <int G, int B, bool DENSE, int UNR, bool V7 = false>
__device__ __forceinline__ void gq_seg_quads_pdl(const gq_gemv_args &a, int64_t lo, int64_t hi, int64_t ubase, int lane,
                                                 float (&acc)[B]) {
    if (hi <= lo) {
        gq_pdl_wait();
        gq_pdl_trigger();
        return;
    }
    const gq_qseg g = gq_qseg_make<G>(a, lo, hi, ubase);
    if (!V7 && a.pf && g.n > 32u * UNR) gq_prefetch_seg<G, DENSE>(a, lo, hi, lane); /* more than one round */
    gq_qbuf<UNR> b;
    uint32_t j0 = (uint32_t)lane;
    gq_qbuf_load_v<G, DENSE, UNR, V7>(g, b, j0); /* valid addresses for every lane */
    gq_pdl_wait();
    gq_pdl_trigger();
    for (; j0 < g.n; j0 += 32u * UNR) {
        if (j0 != (uint32_t)lane) gq_qbuf_load_v<G, DENSE, UNR, V7>(g, b, j0);
        gq_qbuf_use_v<G, B, DENSE, UNR, V7>(a, g, b, j0, acc);
    }
}
/* Quads per lane per round. Batch 1: 4, with the kernel held to 32 registers (gq_minb_q) so 64 warps
 * fit per SM — measured best of UNR 4/8/16 x software-pipelined or not x 32..94 registers (PERF.md "v3";
 * the variant switch of that study is in commit 8b4d7eb, GQSA_V3). */
template <int B> struct gq_unroll_q { static constexpr int value = B == 1 ? 4 : B <= 2 ? 8 : B <= 4 ? 4 : 2; };
template <int B> struct gq_minb_q { static constexpr int value = B == 1 ? 16 : 1; };

/* Row of the row-split kernels' warp i (rows longest first, except for dense matrices, whose rows are all
 * equal) and its units [lo, hi). */
template <bool DENSE> __device__ __forceinline__ int gq_warp_row(const gq_gemv_args &a, int i, int64_t &lo, int64_t &hi) {
    const int r = (!DENSE && a.row_order) ? a.row_order[i] : i;
    gq_row_units<DENSE>(a, r, lo, hi);
    return r;
}

/* v3 row split: as gq_gemv_row_kernel, one warp per row, but the row is taken quad by quad
 * (gq_seg_quads) and rows are visited longest first. Its own name so profilers tell v1 and v3 apart.
 * V7: the same split with the v7 loads and dequantization (gq_seg_quads_pdl<..., true>). */
template <int G, int B, bool DENSE, bool V7 = false>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS, gq_minb_q<B>::value) gq_gemv_rowq_kernel(const gq_gemv_args a) {
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * GQ_ROW_WARPS + (threadIdx.x >> 5);
    if (i >= a.N) return;
    /* longest rows first: CTAs start in index order, so the heavy rows of a "layer"-scope matrix no
     * longer land in the last wave and set the tail (PERF.md "v3": 21.9 -> ? us at 8192^2 S50 layer) */
    int64_t lo, hi;
    const int r = gq_warp_row<DENSE>(a, i, lo, hi);
    float acc[B];
#pragma unroll
    for (int b = 0; b < B; b++) acc[b] = 0.f;
    gq_seg_quads_pdl<G, B, DENSE, gq_unroll_q<B>::value, V7>(a, lo, hi, lo, lane, acc);
    gq_warp_sum<B>(acc);
    gq_store_row<B>(a, r, lane, acc);
}

/* The batch template serving nb (next power of two). */
static inline int gq_batch_tmpl(int nb) { return nb <= 1 ? 1 : nb <= 2 ? 2 : nb <= 4 ? 4 : nb <= 8 ? 8 : 16; }

/* Template dispatch, written once for every launcher: CASE(V, ...) must return for the compile-time
 * value V; the other arguments are passed through (a runtime flag, or what a nested dispatch needs).
 * GQ_SWITCH_G: the group sizes that have kernels (any other g falls out of the switch: the caller
 * reports it); GQ_SWITCH_BATCH: the batch templates, for bt = gq_batch_tmpl(nb). */
#define GQ_SWITCH_G(g, CASE, ...)                                                                        \
    switch (g) {                                                                                         \
    case 8: CASE(8, __VA_ARGS__)                                                                         \
    case 16: CASE(16, __VA_ARGS__)                                                                       \
    case 32: CASE(32, __VA_ARGS__)                                                                       \
    case 64: CASE(64, __VA_ARGS__)                                                                       \
    case 128: CASE(128, __VA_ARGS__)                                                                     \
    default: break;                                                                                      \
    }
#define GQ_SWITCH_BATCH(bt, CASE, ...)                                                                   \
    switch (bt) {                                                                                        \
    case 1: CASE(1, __VA_ARGS__)                                                                         \
    case 2: CASE(2, __VA_ARGS__)                                                                         \
    case 4: CASE(4, __VA_ARGS__)                                                                         \
    case 8: CASE(8, __VA_ARGS__)                                                                         \
    default: CASE(16, __VA_ARGS__)                                                                       \
    }

/* Dense W4 launcher (w4_gemv.cu); version: 1, 2 (gqs_flat.h, row split over m's workers), 3 (the quad
 * walk; v5 when a.pf), 6 (gqs_tma.h, bulk copies), 7 (the v7 walk), 8 (gqs_ring.h, cp.async ring) or 9
 * (gqs_pipe.h, pipelined walk);
 * 3, 6, 7 and 8 launch with programmatic dependent launch when m->pdl. */
gq_status gq_w4_gemv_launch(gq_gqs_gpu *m, const gq_gemv_args &a, int G, int version, cudaStream_t stream);
/* The v6 (bulk copies, gqs_tma.h) and v8 (cp.async ring, gqs_ring.h) launchers, GQS or dense W4
 * (gqs_gemv_v6v8.cu). */
gq_status gq_gemv_launch_v6v8(int version, bool dense, gq_gqs_gpu *m, const gq_gemv_args &a, int G, cudaStream_t stream);
/* The v9 launcher (gqs_pipe.h, gqs_gemv_v9.cu): *launched = 0 when v9 does not apply (batch > 2, x over
 * 48 KB of shared memory) and nothing was launched; the caller then runs v7. */
gq_status gq_gemv_launch_v9(bool dense, gq_gqs_gpu *m, const gq_gemv_args &a, int G, cudaStream_t stream, int *launched);
/* v10 (gqs_pipe.h): the v9 pipeline over equal shares of rounds (the round split); batch 1, GQS only,
 * *launched = 0 otherwise (and when the split was not built: more than 32 rows per warp). */
gq_status gq_gemv_launch_v10(gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t stream, int *launched);
/* The v10 round split of m (gq_gqs_gpu_prepare, the first v10 launch, tests): for the warps v10 runs at
 * once, at most cap (> 0) of them; replaces an earlier split. Synchronous (a device-to-host copy): never
 * inside graph capture. None for dense matrices (equal rows) or > 32 rows per warp (pw = 0). */
gq_status gq_gemv_v10_setup(gq_gqs_gpu *m, int64_t cap);
/* v11 (gqs_stream.h, gqs_gemv_v11.cu): the row-stream walk, GQS (dense = false) or dense W4; needs
 * m->stream[dense], built by gq_gemv_v11_setup (synchronous copies: never inside graph capture). pf > 0
 * (v15, batch 1): each warp also prefetches its row's next pf rounds into L2. */
gq_status gq_gemv_launch_v11(bool dense, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t stream, int pf = 0);
/* v17 (gqs_gemv_v11.cu): v11 with gq_gqs_gpu_v17_split(m, dense) warps per row at batch 1, v11 otherwise */
gq_status gq_gemv_launch_v17(bool dense, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t stream);
/* v12 (gqs_stream.h): v11 through a per-warp cp.async ring, batch 1 (v11 above); the same stream. */
gq_status gq_gemv_launch_v12(bool dense, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t stream);
gq_status gq_gemv_v11_setup(gq_gqs_gpu *m, bool dense);
/* v13/v14 (gqs_stream.h): the split index of a kind (0 gqs_row_v13, 1 gqs_task_v13, 2 w4_dense_v13, 3..5 the
 * same for v14; -1 other kinds: idx % 3 == 2 dense, idx % 3 != 0 the task split, idx >= 3 bulk copies), its setup (the row stream if missing, then the split, synchronous) and its launcher (batch 1;
 * v11 above). */
int gq_v13_split_index(int kind);
/* The host side of a split (v13, v16): m's row table copied back (srow [2N]) and gq_gqs_stream_split's
 * wstart [4 (W + 1)] and rfix [2N] for W workers in `mode`; *Wg the workers it kept. The three arrays are
 * malloc'd, and the caller frees them whatever the status. */
gq_status gq_gemv_split_host(const gq_gqs_gpu *m, bool dense, int64_t W, int mode, int32_t **srow, int32_t **wstart,
                             int32_t **rfix, int64_t *Wg);
/* a's fields for split idx of m (the row stream, the split, its records and counters), as its kernel reads them. */
static inline gq_gemv_args gq_v13_args(const gq_gqs_gpu *m, int idx, gq_gemv_args a) {
    const gq_gqs_gpu::gq_v13_split &s = m->v13[idx];
    const int dense = idx % 3 == 2;
    a.stream = m->stream[dense], a.srow = m->srow[dense];
    a.wstart = s.wstart, a.sfix = s.sfix, a.rec = s.rec, a.cnt = s.cnt, a.W = s.W;
    return a;
}
/* v16 (gqs_ws.h, gqs_gemv_v16.cu): the kind's index into m->v16 (1 dense W4, 0 GQS; -1 other kinds), setup
 * (the row stream if missing, then the per-CTA split; synchronous), launcher (batch 1; v11 above) and free. */
static inline int gq_v16_index(int kind) {
    return kind == GQ_GEMV_ROW_V16 ? 0 : kind == GQ_GEMV_DENSE_W4_V16 ? 1 : -1;
}
gq_status gq_gemv_v16_setup(gq_gqs_gpu *m, bool dense);
gq_status gq_gemv_launch_v16(bool dense, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t stream, bool copy_only = false);
void gq_gemv_v16_free(gq_gqs_gpu *m);
static inline gq_gemv_args gq_v16_args(const gq_gqs_gpu *m, bool dense, gq_gemv_args a) {
    const gq_gqs_gpu::gq_v16_split &s = m->v16[dense];
    a.stream = m->stream[dense], a.srow = m->srow[dense], a.wstart = s.wstart, a.W = s.W;
    a.ws_ring = s.c.ring, a.ws_slot_log = s.slot_log, a.ws_pieces = s.c.pieces, a.ws_wait = s.c.wait_ns;
    a.ws_lane0_wait = s.c.lane0_wait;
    return a;
}
gq_status gq_gemv_v13_setup(gq_gqs_gpu *m, int idx);
void gq_gemv_v13_free(gq_gqs_gpu *m);
/* The device format of m back on the host (d's arrays malloc'd; free them with gq_gqs_dev_free), for the
 * re-layouts built at prepare (the v11 row stream, the v18 tile stream). */
gq_status gq_gemv_download_format(const gq_gqs_gpu *m, gq_gqs_dev *d);
/* v18 (gqs_mma.h, gqs_gemv_v18.cu): the tile stream's build (synchronous: never inside graph capture), its
 * launcher (batch 2..16, G >= 16: the caller runs v7 otherwise) and free. */
gq_status gq_gemv_v18_setup(gq_gqs_gpu *m);
gq_status gq_gemv_launch_v18(gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t stream);
void gq_gemv_v18_free(gq_gqs_gpu *m);
gq_status gq_gemv_launch_v13(int idx, gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t stream);

#endif
