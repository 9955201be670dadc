/* gqs_gemv.h — GQS GEMV / small-batch GEMM on the GPU (C-callable): y [B, N] = W_hat [N, K] x [B, K]^T for
 * B = 1..16, fp16 activations in, fp32 accumulation across 8-weight pieces, fp16 (or fp32) out.
 *
 * W_hat is a GQS matrix in the device format of core/gqs_pack.h, uploaded once. Kernels (v2, once the
 * default, core/cuda/gqs_flat.h: x staged in shared memory, one grid wave of #SMs x k CTAs of 8 warps,
 * each warp streaming a contiguous share of units with 8 16-byte loads per lane in flight at batch 1
 * and a segmented per-row warp sum):
 *   GQ_GEMV_ROW      row split: warp w takes rows [w*rpw, (w+1)*rpw) whole (a warp with heavy rows
 *                    is a straggler)
 *   GQ_GEMV_STREAMK  task-centric: equal contiguous unit shares, one per warp, across row boundaries;
 *                    rows cut by a share boundary are summed by the last-arriving warp from per-warp
 *                    records (core/cuda/gqs_sk.h; deterministic, one launch, no output pre-zeroing)
 *   GQ_GEMV_DENSE_W4 the dense per-group W4 baseline (core/cuda/w4_gemv.cu): same engine, codes and
 *                    dequant, no column indices; only for a matrix with every group kept and K % 32 == 0
 *   ..._V1           the first versions (gqs_dev.h): one warp per row in CTAs of 4 (row, dense), and
 *                    Stream-K walking its share row by row
 * Numerics (why the tolerances in tests/test_cuda_gemv.c are what they are): each weight is dequantized
 * in fp16 as fma(q, scale, min) (one rounding, scale and min already fp16); each 8-weight quad's dot
 * product with x is an fp16 chain of 4 half2 FMAs (4 products per lane), then converted to fp32 and
 * summed in fp32; the row result is rounded once to fp16 (or kept fp32).
 * All pointers named *_dev are device pointers. x must be 16-byte aligned. Calls are asynchronous on
 * `stream` (a cudaStream_t, NULL = default stream) and capturable into CUDA graphs. Launches that use
 * one gq_gqs_gpu must be stream-ordered (the Stream-K records and counters live in it).
 * How to add a kernel: write it in its own .cu under core/cuda, reuse core/cuda/gqs_dev.h's unit
 * decoder, add a gq_gemv_kind, dispatch it in gq_gqs_gpu_gemv, and add it to the test's kind loop and
 * to the benchmark (core/cuda/bench_kernel.cu).
 * Must not: allocate or synchronise inside gq_gqs_gpu_gemv (it runs inside graph capture).
 */
#ifndef GQ_CUDA_GQS_GEMV_H
#define GQ_CUDA_GQS_GEMV_H

#ifdef __cplusplus
#ifndef _Noreturn
#define _Noreturn [[noreturn]] /* util.h is C11 */
#endif
extern "C" {
#endif

#include "../gqs_pack.h"

/* Every generation stays runnable so the benchmark shows them side by side in one run (docs/PERF.md):
 * the unsuffixed kinds are v2 (core/cuda/gqs_flat.h), _V1 the first version, _V3 rows taken quad by quad
 * longest first (gqs_dev.h), _V4/_V5 task split and L2 prefetch, _V6 bulk copies (gqs_tma.h), _V7 the v3
 * walk in fewer instructions (gqs_dev.h; the fastest GQS kernel measured and the decode default), _V8 v7
 * through a cp.async ring (gqs_ring.h; the dense W4 decode default), _V9 v7 software-pipelined with x in
 * shared memory (gqs_pipe.h; batch 1-2, v7 above), _V10 v9 over equal shares of rounds (task-centric;
 * batch 1, v9 above), _V11 v7 reading one contiguous stream per row (gqs_stream.h; the stream is built by
 * gq_gqs_gpu_prepare), _V12 v11 through a per-warp cp.async ring (batch 1, v11 above), _V13 a persistent
 * grid, each warp one contiguous range of the row stream through a byte ring (TASK: equal bytes, rows cut;
 * ROW: whole rows; batch 1, v11 above), _V14 the same with the ring filled by bulk copies, _V15 v11 with
 * each warp's next rounds prefetched into L2 (batch 1), _V16 warp-specialised: per CTA one producer warp
 * streaming a range of whole rows (equal bytes per CTA) through a CTA-wide bulk-copy ring, 31 consumer warps
 * taking its rows one by one (gqs_ws.h; batch 1), _V17 v11 with R warps per row (R = 2 or 4 where the matrix
 * has too few rows to fill the GPU, gq_gqs_rows_split; batch 1; R = 1 and other batches: v11), _V18 tensor cores
 * (mma.sync) over tiles of 16 rows, each kept column group a dense 16 x 16 tile with pruned rows as zeros
 * (gqs_mma.h; batch 2..16 and G >= 16; v7 at batch 1 and G8). v6 equals v1,
 * and v7, v8, v9, v11, v12, gqs_row_v13, gqs_row_v14, v15, v16 and v17 at R = 1 equal v3, bit for bit
 * (tests/test_cuda_gemv.c). */
typedef enum {
    GQ_GEMV_ROW = 0,
    GQ_GEMV_STREAMK = 1,
    GQ_GEMV_DENSE_W4 = 2,
    GQ_GEMV_ROW_V1 = 3,
    GQ_GEMV_STREAMK_V1 = 4,
    GQ_GEMV_DENSE_W4_V1 = 5,
    GQ_GEMV_ROW_V3 = 6,     /* v1's row split and Stream-K with each row taken quad by quad (gqs_dev.h) */
    GQ_GEMV_STREAMK_V3 = 7,
    GQ_GEMV_DENSE_W4_V3 = 8,
    GQ_GEMV_TASK_V4 = 9,    /* task-centric: rows cut into tasks of equal work, one warp each, fix-up of cut rows */
    GQ_GEMV_ROW_V5 = 10,    /* v3 / v4 with each warp's whole segment bulk-prefetched into L2 first */
    GQ_GEMV_DENSE_W4_V5 = 11,
    GQ_GEMV_TASK_V5 = 12,
    GQ_GEMV_ROW_V6 = 13,    /* weights streamed into a per-warp shared-memory ring by bulk copies (gqs_tma.h) */
    GQ_GEMV_DENSE_W4_V6 = 14,
    GQ_GEMV_ROW_V7 = 15,    /* v3's split and walk with one address per array per round, leaner dequant (gqs_dev.h) */
    GQ_GEMV_DENSE_W4_V7 = 16,
    GQ_GEMV_ROW_V8 = 17,    /* v7 with each warp's weights in a shared-memory ring filled by cp.async (gqs_ring.h) */
    GQ_GEMV_DENSE_W4_V8 = 18,
    GQ_GEMV_ROW_V9 = 19,    /* v7 with each warp's rounds software-pipelined over its rows, x in shared memory (gqs_pipe.h) */
    GQ_GEMV_DENSE_W4_V9 = 20,
    GQ_GEMV_TASK_V10 = 21,  /* task-centric v9: equal shares of rounds, rows cut between warps (gqs_pipe.h) */
    GQ_GEMV_ROW_V11 = 22,   /* v7 reading each row from one contiguous stream, re-laid at prepare (gqs_stream.h) */
    GQ_GEMV_DENSE_W4_V11 = 23,
    GQ_GEMV_ROW_V12 = 24,   /* v11 with each warp's row stream in flight through a shared-memory ring (gqs_stream.h) */
    GQ_GEMV_DENSE_W4_V12 = 25,
    GQ_GEMV_TASK_V13 = 26,  /* one contiguous range of the row stream per warp through a byte ring: equal bytes, rows cut (gqs_stream.h) */
    GQ_GEMV_ROW_V13 = 27,   /* the same kernel over whole rows in equal counts (the row split it is measured against) */
    GQ_GEMV_DENSE_W4_V13 = 28,
    GQ_GEMV_TASK_V14 = 29,  /* v13 with the ring filled by bulk copies (cp.async.bulk, mbarriers) instead of per-lane cp.async */
    GQ_GEMV_ROW_V14 = 30,
    GQ_GEMV_DENSE_W4_V14 = 31,
    GQ_GEMV_ROW_V15 = 32,   /* v11 with each warp's next rounds prefetched into L2 (batch 1; gqs_stream.h PF) */
    GQ_GEMV_DENSE_W4_V15 = 33,
    GQ_GEMV_ROW_V16 = 34,   /* warp-specialised: per CTA one producer warp streams whole rows through a bulk-copy ring (gqs_ws.h) */
    GQ_GEMV_DENSE_W4_V16 = 35,
    GQ_GEMV_ROW_V17 = 36,   /* v11 with R warps per row where the matrix has too few rows to fill the GPU (gqs_stream.h R) */
    GQ_GEMV_DENSE_W4_V17 = 37,
    GQ_GEMV_MMA_V18 = 38,   /* tensor cores over 16-row tiles, batch 2..16, G >= 16 (gqs_mma.h); v7 at batch 1 and G8 */
    GQ_GEMV_DENSE_W4_MMA_V18 = 39
} gq_gemv_kind;
#define GQ_GEMV_NKINDS 40
static inline int gq_gemv_kind_is_dense(gq_gemv_kind k) {
    return k == GQ_GEMV_DENSE_W4 || k == GQ_GEMV_DENSE_W4_V1 || k == GQ_GEMV_DENSE_W4_V3 || k == GQ_GEMV_DENSE_W4_V5 ||
           k == GQ_GEMV_DENSE_W4_V6 || k == GQ_GEMV_DENSE_W4_V7 || k == GQ_GEMV_DENSE_W4_V8 ||
           k == GQ_GEMV_DENSE_W4_V9 || k == GQ_GEMV_DENSE_W4_V11 ||
           k == GQ_GEMV_DENSE_W4_V12 || k == GQ_GEMV_DENSE_W4_V13 || k == GQ_GEMV_DENSE_W4_V14 || k == GQ_GEMV_DENSE_W4_V15 ||
           k == GQ_GEMV_DENSE_W4_V16 || k == GQ_GEMV_DENSE_W4_V17 || k == GQ_GEMV_DENSE_W4_MMA_V18;
}
/* The row stream a kind reads (gq_gqs_gpu's stream[]: 0 with columns, 1 dense), -1 for the kinds that read
 * the device format. */
static inline int gq_gemv_kind_stream(gq_gemv_kind k) {
    if (k == GQ_GEMV_ROW_V11 || k == GQ_GEMV_ROW_V12 || k == GQ_GEMV_TASK_V13 || k == GQ_GEMV_ROW_V13 ||
        k == GQ_GEMV_TASK_V14 || k == GQ_GEMV_ROW_V14 || k == GQ_GEMV_ROW_V15 || k == GQ_GEMV_ROW_V16 || k == GQ_GEMV_ROW_V17)
        return 0;
    if (k == GQ_GEMV_DENSE_W4_V11 || k == GQ_GEMV_DENSE_W4_V12 || k == GQ_GEMV_DENSE_W4_V13 || k == GQ_GEMV_DENSE_W4_V14 ||
        k == GQ_GEMV_DENSE_W4_V15 || k == GQ_GEMV_DENSE_W4_V16 || k == GQ_GEMV_DENSE_W4_V17)
        return 1;
    return -1;
}
/* The largest batch a kind has its own kernel for; above it the kind runs the next older design (v10:
 * v9, v9: v7), so the benchmark does not time it there. */
static inline int gq_gemv_kind_max_batch(gq_gemv_kind k) {
    return (k == GQ_GEMV_TASK_V10 || k == GQ_GEMV_ROW_V12 || k == GQ_GEMV_DENSE_W4_V12 || k >= GQ_GEMV_TASK_V13) ? 1
           : (k == GQ_GEMV_ROW_V9 || k == GQ_GEMV_DENSE_W4_V9)                          ? 2
                                                                                         : 16;
}
/* The smallest batch a kind has its own kernel for (v18: 2; below it runs v7), so the benchmark does not time
 * it there. */
static inline int gq_gemv_kind_min_batch(gq_gemv_kind k) {
    return k == GQ_GEMV_MMA_V18 || k == GQ_GEMV_DENSE_W4_MMA_V18 ? 2 : 1;
}
static inline const char *gq_gemv_kind_name(gq_gemv_kind k) {
    switch (k) {
    case GQ_GEMV_ROW: return "gqs_row";
    case GQ_GEMV_STREAMK: return "gqs_streamk";
    case GQ_GEMV_DENSE_W4: return "w4_dense";
    case GQ_GEMV_ROW_V1: return "gqs_row_v1";
    case GQ_GEMV_STREAMK_V1: return "gqs_streamk_v1";
    case GQ_GEMV_DENSE_W4_V1: return "w4_dense_v1";
    case GQ_GEMV_ROW_V3: return "gqs_row_v3";
    case GQ_GEMV_STREAMK_V3: return "gqs_streamk_v3";
    case GQ_GEMV_DENSE_W4_V3: return "w4_dense_v3";
    case GQ_GEMV_TASK_V4: return "gqs_task_v4";
    case GQ_GEMV_ROW_V5: return "gqs_row_v5";
    case GQ_GEMV_DENSE_W4_V5: return "w4_dense_v5";
    case GQ_GEMV_TASK_V5: return "gqs_task_v5";
    case GQ_GEMV_ROW_V6: return "gqs_row_v6";
    case GQ_GEMV_DENSE_W4_V6: return "w4_dense_v6";
    case GQ_GEMV_ROW_V7: return "gqs_row_v7";
    case GQ_GEMV_DENSE_W4_V7: return "w4_dense_v7";
    case GQ_GEMV_ROW_V8: return "gqs_row_v8";
    case GQ_GEMV_DENSE_W4_V8: return "w4_dense_v8";
    case GQ_GEMV_ROW_V9: return "gqs_row_v9";
    case GQ_GEMV_DENSE_W4_V9: return "w4_dense_v9";
    case GQ_GEMV_TASK_V10: return "gqs_task_v10";
    case GQ_GEMV_ROW_V11: return "gqs_row_v11";
    case GQ_GEMV_DENSE_W4_V11: return "w4_dense_v11";
    case GQ_GEMV_ROW_V12: return "gqs_row_v12";
    case GQ_GEMV_DENSE_W4_V12: return "w4_dense_v12";
    case GQ_GEMV_TASK_V13: return "gqs_task_v13";
    case GQ_GEMV_ROW_V13: return "gqs_row_v13";
    case GQ_GEMV_DENSE_W4_V13: return "w4_dense_v13";
    case GQ_GEMV_TASK_V14: return "gqs_task_v14";
    case GQ_GEMV_ROW_V14: return "gqs_row_v14";
    case GQ_GEMV_DENSE_W4_V14: return "w4_dense_v14";
    case GQ_GEMV_ROW_V15: return "gqs_row_v15";
    case GQ_GEMV_DENSE_W4_V15: return "w4_dense_v15";
    case GQ_GEMV_ROW_V16: return "gqs_row_v16";
    case GQ_GEMV_DENSE_W4_V16: return "w4_dense_v16";
    case GQ_GEMV_ROW_V17: return "gqs_row_v17";
    case GQ_GEMV_DENSE_W4_V17: return "w4_dense_v17";
    case GQ_GEMV_MMA_V18: return "gqs_mma_v18";
    case GQ_GEMV_DENSE_W4_MMA_V18: return "w4_dense_mma_v18";
    }
    return "?";
}

#define GQ_GEMV_MAX_BATCH 16

typedef struct gq_gqs_gpu gq_gqs_gpu;

/* Copy a packed matrix to the device. Caller frees with gq_gqs_gpu_free. GQ_ERR_UNSUPPORTED without a
 * device or CUDA build; the CUDA message otherwise. */
gq_status gq_gqs_gpu_upload(const gq_gqs_dev *d, gq_gqs_gpu **out);
void gq_gqs_gpu_free(gq_gqs_gpu *m);
/* 1 when every group is kept and K % 32 == 0 (GQ_GEMV_DENSE_W4 allowed). */
int gq_gqs_gpu_is_dense(const gq_gqs_gpu *m);
/* Stream-K CTAs per SM: 0 (default) = as many as fit (occupancy), else min(k, that, 8). */
void gq_gqs_gpu_set_sk_ctas(gq_gqs_gpu *m, int k);
/* Cap the number of workers (warps) of the v2 kernels (0 = none): tests use it to force long shares that
 * cut rows many times and rows-per-worker > 1. Defined in gqs_gemv.cu (CUDA) and gqs_gemv_v2_stub.c. */
void gq_gqs_gpu_set_max_workers(gq_gqs_gpu *m, int64_t w);
/* v4 task kernel: units per task (0 = the default, ceil(U / resident warps) rounded up to a round of
 * loads; 1 cuts every row into single-unit tasks, for tests). Rebuilds the task list: synchronous, not
 * inside graph capture. gq_gqs_gpu_task_units: the units per task of the current list. */
gq_status gq_gqs_gpu_set_task_units(gq_gqs_gpu *m, int64_t units);
/* Tests: rebuild the v10 round split for at most w warps (0 = the resident warps, the default), so
 * rows are cut between many warps. */
gq_status gq_gqs_gpu_set_v10_workers(gq_gqs_gpu *m, int64_t w);
/* Build what `kind` needs beyond the upload (GQ_GEMV_TASK_V10: its round split, a synchronous
 * device-to-host copy; the _V11 kinds: the row stream, a second copy of the weights built on the host
 * from the device arrays, seconds for a 7B model); a no-op for other kinds and when done. The first gq_gqs_gpu_gemv of the kind
 * does it too, but not inside graph capture (an error there): call this first. stream: the one the
 * capture will use (NULL: the legacy stream). */
gq_status gq_gqs_gpu_prepare(gq_gqs_gpu *m, gq_gemv_kind kind, void *stream);
/* Keep only what `kind` (a prepared _V11 or _V12 kind) reads: frees the device-format codes, columns and
 * scale|min words, so a v11 matrix does not hold its weights twice (the decode engine calls it); any other
 * kind on m is then GQ_ERR_ARG. GQ_ERR_ARG for another kind or an unprepared one. */
gq_status gq_gqs_gpu_keep_only(gq_gqs_gpu *m, gq_gemv_kind kind);
/* v13's and v14's ring per warp (4096, 8192 or 16384 bytes; 0 = the default) and CTAs per SM (0 = as many
 * as fit): drops the built v13/v14 splits, so the next gq_gqs_gpu_prepare rebuilds them. For the benchmark's study. */
gq_status gq_gqs_gpu_set_v13(gq_gqs_gpu *m, int ring_bytes, int ctas_per_sm);
/* v15's prefetch depth in rounds (1..8; 0 = the default, 1); GQ_ERR_ARG outside 0..8. For the benchmark's study. */
gq_status gq_gqs_gpu_set_v15_depth(gq_gqs_gpu *m, int rounds);
/* v16's configuration (0 = the default of each): ring bytes per CTA (a whole number of slots; default the
 * largest that fits beside x, up to 192 KB), slot bytes (a power of two >= 1024; 8192), consumer warps per
 * CTA (1..31; 31 at one CTA per SM), CTAs per SM (1), x (1: read from global memory, the default; 2: staged
 * in shared memory), bulk copies per slot (1..32, one per producer lane; 8), how a thread waits on a slot's
 * barrier (wait_ns > 0: try_wait re-checking at least every wait_ns ns; -1: spin on test_wait; 0: try_wait),
 * and who waits (lane0_wait 0: every lane of a warp, as measured; 1: lane 0, the others through __syncwarp). */
typedef struct {
    int ring, slot, consumers, ctas, x, pieces, wait_ns, lane0_wait;
} gq_v16_config;
/* Set it (NULL: all defaults). Drops the built v16 splits (the next gq_gqs_gpu_prepare rebuilds them with it;
 * an impossible combination is reported there). GQ_ERR_ARG for values out of range. For the benchmark's study. */
gq_status gq_gqs_gpu_set_v16(gq_gqs_gpu *m, const gq_v16_config *c);
/* v17's warps per row: 1, 2 or 4, or 0 (the default) for gq_gqs_rows_split's choice at this GPU's warp
 * slots; GQ_ERR_ARG otherwise. gq_gqs_gpu_v17_split: the R that v17 runs with on stream [dense] (the rule's
 * is chosen when the stream is built; 0 while it is not). For the benchmark's study and the tests. */
gq_status gq_gqs_gpu_set_v17_split(gq_gqs_gpu *m, int R);
int gq_gqs_gpu_v17_split(gq_gqs_gpu *m, int dense);
int64_t gq_gqs_gpu_task_units(const gq_gqs_gpu *m);
/* Launch the v3 row-split, v3 dense W4 and v4 task kernels of this matrix with programmatic dependent
 * launch (core/cuda/pdl.cuh): their first weight loads may then start before the previous kernel in the
 * stream has finished. Only for callers whose previous kernel writes nothing these read before x (the
 * decode step); off by default. */
void gq_gqs_gpu_set_pdl(gq_gqs_gpu *m, int on);
/* Warps of the last Stream-K launch (its number of shares), for reports. */
int64_t gq_gqs_gpu_sk_workers(const gq_gqs_gpu *m);

/* y_dev [B, N] (fp16, or fp32 when y_fp32) = W x_dev [B, K] (fp16). 1 <= B <= GQ_GEMV_MAX_BATCH. */
gq_status gq_gqs_gpu_gemv(gq_gqs_gpu *m, gq_gemv_kind kind, const void *x_dev, int B, void *y_dev, int y_fp32,
                          void *stream);

/* Plain device buffers for C callers (tests) that cannot include the CUDA headers. Synchronous. */
gq_status gq_gemv_dev_alloc(size_t bytes, void **ptr);
void gq_gemv_dev_free(void *ptr);
gq_status gq_gemv_dev_upload(void *dst_dev, const void *src, size_t bytes);
gq_status gq_gemv_dev_download(void *dst, const void *src_dev, size_t bytes);
gq_status gq_gemv_dev_fill(void *dst_dev, int byte, size_t bytes); /* poison / clear */
gq_status gq_gemv_dev_sync(void);                                  /* wait + report async faults */

/* The kernel benchmark (core/cuda/bench_kernel.cu), driven by `gqsa bench kernel`. */
typedef struct {
    int quick;             /* a short sweep (a minute) instead of the full one (~5 minutes) */
    const char *csv_path;  /* write every row there (NULL: none) */
    const char *store_path;/* results store (core/store.h) to add rows to (NULL: none) */
    int reps;              /* timed graph replays (median taken); 0 = default 30 */
    int check;             /* run the correctness pass first (default 1) */
    const char *only;      /* run only shapes whose label contains this (NULL: all) */
    int nbatches;          /* batches to time (0: 1, 2, 4, 8, 16; quick: 1, 16) */
    int batches[8];
} gq_bench_kernel_opts;
/* Returns GQ_OK when everything ran and every correctness check passed; the targets (PERF.md) are
 * printed as PASS/MISS lines but do not change the status (a slow kernel is a finding, not an error). */
gq_status gq_bench_kernel_run(const gq_bench_kernel_opts *o);

#ifdef __cplusplus
}
#endif

#endif
