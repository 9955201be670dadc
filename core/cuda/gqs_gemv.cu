/* gqs_gemv.cu — GQS GEMV / small-batch GEMM: dispatch of the v2 kernels (gqs_flat.h) and the v1 row
 * split and Stream-K kernels (API: gqs_gemv.h; shared device code: gqs_dev.h; the Stream-K partition:
 * gqs_sk.h, emulated and unit-tested on the CPU in core/gqs_pack.c).
 *
 * Stream-K fix-up choice: per-warp records + an arrival counter per cut row, summed by the last
 * arriving warp in worker order. Against atomicAdd into an fp32 accumulator this keeps one launch with
 * no memset of y and no fp32->fp16 pass, writes fp16 rows directly, and is bitwise deterministic
 * (atomics add in arrival order). A cut row costs one record write, a fence and one atomic per share
 * touching it: at most 2 per warp, a few thousand per launch.
 * Must not: allocate or synchronise in the launch path (graph capture).
 */
#include <stdint.h>
#include <string.h>

#include "gqs_flat.h"

/* Zeroed bytes after codes, sm and col: the v7 walk reads up to 32 x 8 quads (B = 2) past a segment
 * (<= 1 KB of codes or scale|min words at G8) */
#define GQ_GEMV_PAD 2048

/* ---- v1 / v3 Stream-K kernel ------------------------------------------------------------------------------ */

/* QUAD: take each row segment quad by quad (v3, gq_seg_quads) instead of unit by unit (v1); the share
 * partition and the fix-up are the same (shares stay in whole units). */
template <int G, int B, bool QUAD>
__global__ void __launch_bounds__(32 * GQ_SK_WARPS) gq_gemv_sk_kernel(const gq_gemv_args a) {
    const int lane = threadIdx.x & 31;
    const int64_t w = (int64_t)blockIdx.x * GQ_SK_WARPS + (threadIdx.x >> 5);
    const int64_t U = a.U, W = a.W;
    const int64_t s = gq_sk_begin(U, W, w), e = gq_sk_begin(U, W, w + 1);
    const int32_t *ru = a.row_unit;
    const int is_last = w == W - 1;
    for (int r = gq_sk_first_row(ru, a.N, U, s); gq_sk_visits(ru, a.N, U, e, is_last, r); r++) {
        const int64_t r0 = ru[r], r1 = ru[r + 1];
        const int64_t lo = r0 > s ? r0 : s, hi = r1 < e ? r1 : e;
        float acc[B];
#pragma unroll
        for (int b = 0; b < B; b++) acc[b] = 0.f;
        if constexpr (QUAD) gq_seg_quads<G, B, false, gq_unroll_q<B>::value>(a, lo, hi, 0, lane, acc);
        else gq_seg<G, B, false, gq_unroll<B>::value>(a, lo, hi, 0, lane, acc);
        gq_warp_sum<B>(acc);
        if (gq_sk_complete(ru, r, s, e)) {
            gq_store_row<B>(a, r, lane, acc);
            continue;
        }
        /* cut row: publish this share's partial, then count arrivals; the last one sums in worker order */
        float *rec = a.rec + (2 * w + gq_sk_slot(ru, r, s)) * GQ_GEMV_MAX_BATCH;
        const int64_t wa = gq_sk_worker_of(U, W, r0), wb = gq_sk_worker_of(U, W, r1 - 1);
        if (gq_fixup_arrive<B>(a, rec, r, (int)(wb - wa) + 1, lane, acc)) {
            if (lane < a.nb) {
                float sum = 0.f;
                for (int64_t v = wa; v <= wb; v++)
                    sum += __ldcg(a.rec + (2 * v + gq_sk_slot(ru, r, gq_sk_begin(U, W, v))) * GQ_GEMV_MAX_BATCH + lane);
                gq_store_y(a, lane, r, sum);
            }
            if (lane == 0) a.cnt[r] = 0; /* ready for the next launch (stream-ordered) */
        }
    }
}

/* ---- v4 task-centric kernel ------------------------------------------------------------------------------- */

/* One warp per task of the task list (gqs_pack.h "v4 task list"): tasks hold at most m->task_units
 * units, so a heavy row is shared by several warps instead of making one warp the straggler, while a
 * row that fits one task is written directly as in the v3 row split (same quad walk, same registers).
 * A cut row: each task publishes its partial in its own record, the last to arrive (arrival counter
 * per row, reset by that warp for the next launch) sums the records in chunk order: deterministic, one
 * launch, no pre-zeroed output. Against the v1/v3 Stream-K (one contiguous share per warp, walked row
 * segment by row segment, a memory latency per segment), every warp here walks exactly one segment. */
template <int G, int B>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS, gq_minb_q<B>::value) gq_gemv_task_kernel(const gq_gemv_args a) {
    const int lane = threadIdx.x & 31;
    const int64_t t = (int64_t)blockIdx.x * GQ_ROW_WARPS + (threadIdx.x >> 5);
    if (t >= a.ntasks) return;
    const int4 tk = __ldg(a.tasks + t); /* {row, lo, n, ci} */
    float acc[B];
#pragma unroll
    for (int b = 0; b < B; b++) acc[b] = 0.f;
    gq_seg_quads_pdl<G, B, false, gq_unroll_q<B>::value>(a, tk.y, (int64_t)tk.y + tk.z, 0, lane, acc);
    gq_warp_sum<B>(acc);
    if (tk.w < 0) {
        gq_store_row<B>(a, tk.x, lane, acc);
        return;
    }
    const int2 fx = __ldg(a.row_fix + tk.x); /* {first record, tasks of the row} */
    if (!gq_fixup_arrive<B>(a, a.trec + (size_t)(fx.x + tk.w) * GQ_GEMV_MAX_BATCH, tk.x, fx.y, lane, acc)) return;
    if (lane < a.nb) {
        float sum = 0.f;
        for (int c = 0; c < fx.y; c++) sum += __ldcg(a.trec + (size_t)(fx.x + c) * GQ_GEMV_MAX_BATCH + lane);
        gq_store_y(a, lane, tk.x, sum);
    }
    if (lane == 0) a.cnt[tk.x] = 0; /* ready for the next launch (stream-ordered) */
}

/* ---- launchers ---------------------------------------------------------------------------------------- */

/* The gq_w4_gemv_launch version of a dense W4 kind. */
static int dense_version(gq_gemv_kind k) {
    switch (k) {
    case GQ_GEMV_DENSE_W4_V1: return 1;
    case GQ_GEMV_DENSE_W4: return 2;
    case GQ_GEMV_DENSE_W4_V6: return 6;
    case GQ_GEMV_DENSE_W4_V7: return 7;
    case GQ_GEMV_DENSE_W4_V8: return 8;
    case GQ_GEMV_DENSE_W4_V9: return 9;
    default: return 3; /* v3, and v5 = v3 with a.pf */
    }
}

/* QUAD: the v3 quad walk (V7: the v7 walk), else v1. */
template <int G, int B, bool QUAD, bool V7 = false>
static gq_status launch_row(const gq_gemv_args &a, cudaStream_t st, bool pdl) {
    const unsigned grid = (unsigned)((a.N + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
    if constexpr (QUAD) CUDA_CHECK(gq_launch(pdl, gq_gemv_rowq_kernel<G, B, false, V7>, grid, 32 * GQ_ROW_WARPS, 0, st, a));
    else gq_gemv_row_kernel<G, B, false><<<grid, 32 * GQ_ROW_WARPS, 0, st>>>(a);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

template <int G, int B> static gq_status launch_task(const gq_gemv_args &a, cudaStream_t st, bool pdl) {
    if (a.ntasks == 0) return GQ_OK;
    const unsigned grid = (unsigned)((a.ntasks + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
    CUDA_CHECK(gq_launch(pdl, gq_gemv_task_kernel<G, B>, grid, 32 * GQ_ROW_WARPS, 0, st, a));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

template <int G, int B, bool QUAD> static gq_status launch_sk(gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st) {
    int occ = 0;
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, gq_gemv_sk_kernel<G, B, QUAD>, 32 * GQ_SK_WARPS, 0));
    int k = occ < 1 ? 1 : occ;
    if (k > 8) k = 8;
    if (m->sk_ctas > 0 && m->sk_ctas < k) k = m->sk_ctas;
    const int64_t ctas = (int64_t)m->sm_count * k;
    a.W = ctas * GQ_SK_WARPS;
    GQ_ASSERT(a.W <= m->max_workers);
    m->last_workers = a.W;
    gq_gemv_sk_kernel<G, B, QUAD><<<(unsigned)ctas, 32 * GQ_SK_WARPS, 0, st>>>(a);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

static gq_status not_dense(const gq_gqs_gpu *m) {
    return gq_errf(GQ_ERR_ARG, "gqs_gemv: the dense W4 kernel needs every group kept and K %% 32 == 0 (N=%d K=%d G=%d)",
                   m->N, m->K, m->G);
}

/* CALL_G(G_, B_) for m->G and the batch template bt (gqs_dev.h GQ_SWITCH_G / GQ_SWITCH_BATCH) */
#define GQ_CALL_GB(B_, G_, CALL_G) return CALL_G(G_, B_);
#define GQ_FOR_B(G_, CALL_G) GQ_SWITCH_BATCH(bt, GQ_CALL_GB, G_, CALL_G)
#define GQ_FOR_G(CALL_G) GQ_SWITCH_G(m->G, GQ_FOR_B, CALL_G)
extern "C" gq_status gq_gqs_gpu_gemv(gq_gqs_gpu *m, gq_gemv_kind kind, const void *x_dev, int B, void *y_dev,
                                     int y_fp32, void *stream) {
    if (B < 1 || B > GQ_GEMV_MAX_BATCH) return gq_errf(GQ_ERR_ARG, "gqs_gemv: batch %d not in 1..%d", B, GQ_GEMV_MAX_BATCH);
    if (((uintptr_t)x_dev & 15) != 0) return gq_errf(GQ_ERR_ARG, "gqs_gemv: x must be 16-byte aligned");
    if (!y_dev) return gq_errf(GQ_ERR_ARG, "gqs_gemv: y is NULL");
    if (m->only_kind >= 0 && (int)kind != m->only_kind)
        return gq_errf(GQ_ERR_ARG, "gqs_gemv: this matrix keeps only %s's row stream (gq_gqs_gpu_keep_only), not %s",
                       gq_gemv_kind_name((gq_gemv_kind)m->only_kind), gq_gemv_kind_name(kind));
    gq_gemv_args a = gq_gemv_args_of(m, x_dev, B, y_dev, y_fp32);
    cudaStream_t st = static_cast<cudaStream_t>(stream);
    const int bt = gq_batch_tmpl(B);
    if (kind == GQ_GEMV_MMA_V18 || kind == GQ_GEMV_DENSE_W4_MMA_V18) {
        const bool dense = kind == GQ_GEMV_DENSE_W4_MMA_V18;
        if (dense && !m->dense) return not_dense(m);
        if (B > 1 && m->G >= 16) {
            if (!m->tiles.meta) GQ_TRY(gq_gqs_gpu_prepare(m, kind, stream));
            return gq_gemv_launch_v18(m, a, st);
        }
        kind = dense ? GQ_GEMV_DENSE_W4_V7 : GQ_GEMV_ROW_V7; /* v18 has no kernel for batch 1 or G8 */
    }
    switch (kind) {
    case GQ_GEMV_ROW:
#define CALL_FROW(G_, B_) gq_flat_launch<G_, B_, false, 0>(m, a, st)
        GQ_FOR_G(CALL_FROW)
#undef CALL_FROW
        break;
    case GQ_GEMV_STREAMK:
#define CALL_FSK(G_, B_) gq_flat_launch<G_, B_, false, 1>(m, a, st)
        GQ_FOR_G(CALL_FSK)
#undef CALL_FSK
        break;
    case GQ_GEMV_ROW_V1:
#define CALL_ROW(G_, B_) launch_row<G_, B_, false>(a, st, false)
        GQ_FOR_G(CALL_ROW)
#undef CALL_ROW
        break;
    case GQ_GEMV_STREAMK_V1:
#define CALL_SK(G_, B_) launch_sk<G_, B_, false>(m, a, st)
        GQ_FOR_G(CALL_SK)
#undef CALL_SK
        break;
    case GQ_GEMV_ROW_V3:
#define CALL_ROW3(G_, B_) launch_row<G_, B_, true>(a, st, m->pdl != 0)
        GQ_FOR_G(CALL_ROW3)
        break;
    case GQ_GEMV_STREAMK_V3:
#define CALL_SK3(G_, B_) launch_sk<G_, B_, true>(m, a, st)
        GQ_FOR_G(CALL_SK3)
#undef CALL_SK3
        break;
    case GQ_GEMV_TASK_V4:
    case GQ_GEMV_TASK_V5:
        a.pf = kind == GQ_GEMV_TASK_V5;
#define CALL_TASK(G_, B_) launch_task<G_, B_>(a, st, m->pdl != 0)
        GQ_FOR_G(CALL_TASK)
#undef CALL_TASK
        break;
    case GQ_GEMV_ROW_V5: /* the v3 kernel with the L2 prefetch switched on */
        a.pf = 1;
        GQ_FOR_G(CALL_ROW3)
#undef CALL_ROW3
        break;
    case GQ_GEMV_TASK_V10: { /* v9 where v10 does not apply (batch > 1, no round split) */
        int launched = 0;
        if (!m->pready) GQ_TRY(gq_gqs_gpu_prepare(m, kind, stream));
        const gq_status s10 = gq_gemv_launch_v10(m, a, st, &launched);
        if (s10 != GQ_OK || launched) return s10;
    }
        [[fallthrough]];
    case GQ_GEMV_ROW_V9: { /* v7 where v9 does not apply (batch > 2, x over 48 KB) */
        int launched = 0;
        const gq_status s9 = gq_gemv_launch_v9(false, m, a, m->G, st, &launched);
        if (s9 != GQ_OK || launched) return s9;
    }
        [[fallthrough]];
    case GQ_GEMV_ROW_V7:
#define CALL_ROW7(G_, B_) launch_row<G_, B_, true, true>(a, st, m->pdl != 0)
        GQ_FOR_G(CALL_ROW7)
#undef CALL_ROW7
        break;
    case GQ_GEMV_ROW_V11: /* the row-stream kinds, GQS and dense W4 */
    case GQ_GEMV_ROW_V12:
    case GQ_GEMV_ROW_V15:
    case GQ_GEMV_ROW_V17:
    case GQ_GEMV_DENSE_W4_V11:
    case GQ_GEMV_DENSE_W4_V12:
    case GQ_GEMV_DENSE_W4_V15:
    case GQ_GEMV_DENSE_W4_V17: {
        const bool dense = gq_gemv_kind_stream(kind) == 1;
        if (!m->stream[dense]) GQ_TRY(gq_gqs_gpu_prepare(m, kind, stream)); /* checks dense */
        if (kind == GQ_GEMV_ROW_V12 || kind == GQ_GEMV_DENSE_W4_V12) return gq_gemv_launch_v12(dense, m, a, st);
        if (kind == GQ_GEMV_ROW_V17 || kind == GQ_GEMV_DENSE_W4_V17) return gq_gemv_launch_v17(dense, m, a, st);
        const bool v15 = kind == GQ_GEMV_ROW_V15 || kind == GQ_GEMV_DENSE_W4_V15; /* v11 + L2 prefetch */
        return gq_gemv_launch_v11(dense, m, a, st, v15 ? (m->v15_depth > 0 ? m->v15_depth : 1) : 0);
    }
    case GQ_GEMV_TASK_V13:
    case GQ_GEMV_ROW_V13:
    case GQ_GEMV_DENSE_W4_V13:
    case GQ_GEMV_TASK_V14:
    case GQ_GEMV_ROW_V14:
    case GQ_GEMV_DENSE_W4_V14: {
        const int idx = gq_v13_split_index(kind);
        if (!m->v13[idx].wstart) GQ_TRY(gq_gqs_gpu_prepare(m, kind, stream)); /* checks dense */
        return gq_gemv_launch_v13(idx, m, a, st);
    }
    case GQ_GEMV_ROW_V16:
    case GQ_GEMV_DENSE_W4_V16: {
        const bool dense = gq_v16_index(kind) == 1;
        if (!m->v16[dense].wstart) GQ_TRY(gq_gqs_gpu_prepare(m, kind, stream)); /* checks dense */
        return gq_gemv_launch_v16(dense, m, a, st);
    }
    case GQ_GEMV_ROW_V6:
    case GQ_GEMV_ROW_V8:
        return gq_gemv_launch_v6v8(kind == GQ_GEMV_ROW_V6 ? 6 : 8, false, m, a, m->G, st);
    case GQ_GEMV_DENSE_W4:
    case GQ_GEMV_DENSE_W4_V1:
    case GQ_GEMV_DENSE_W4_V3:
    case GQ_GEMV_DENSE_W4_V5:
    case GQ_GEMV_DENSE_W4_V6:
    case GQ_GEMV_DENSE_W4_V7:
    case GQ_GEMV_DENSE_W4_V8:
    case GQ_GEMV_DENSE_W4_V9:
        if (!m->dense) return not_dense(m);
        a.pf = kind == GQ_GEMV_DENSE_W4_V5;
        return gq_w4_gemv_launch(m, a, m->G, dense_version(kind), st);
    case GQ_GEMV_MMA_V18: /* launched or mapped to v7 above */
    case GQ_GEMV_DENSE_W4_MMA_V18:
        break;
    }
    return gq_errf(GQ_ERR_ARG, "gqs_gemv: unsupported kind %d / G %d", (int)kind, m->G);
}

/* ---- upload ------------------------------------------------------------------------------------------- */

extern "C" void gq_gqs_gpu_free(gq_gqs_gpu *m) {
    if (!m) return;
    cudaFree(m->row_unit);
    cudaFree(m->row_order);
    cudaFree(m->codes);
    cudaFree(m->col);
    cudaFree(m->sm);
    cudaFree(m->rec);
    cudaFree(m->cnt);
    cudaFree(m->tasks);
    cudaFree(m->row_fix);
    cudaFree(m->task_rec);
    cudaFree(m->pstart);
    cudaFree(m->ppart);
    for (int i = 0; i < 2; i++) cudaFree(m->stream[i]), cudaFree(m->srow[i]);
    gq_gemv_v13_free(m);
    gq_gemv_v16_free(m);
    gq_gemv_v18_free(m);
    free(m);
}

extern "C" gq_status gq_gqs_gpu_upload(const gq_gqs_dev *d, gq_gqs_gpu **out) {
    *out = NULL;
    const char *why = NULL;
    if (!gq_gqs_dev_supported(d->G, d->bits, &why)) return gq_errf(GQ_ERR_UNSUPPORTED, "gqs_gpu_upload: %s", why);
    int dev = 0, nsm = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev));
    gq_gqs_gpu *m = static_cast<gq_gqs_gpu *>(calloc(1, sizeof *m));
    if (!m) return gq_errf(GQ_ERR_NOMEM, "gqs_gpu_upload: out of host memory");
    gq_status st = GQ_OK;
    m->N = d->N, m->K = d->K, m->G = d->G, m->U = d->n_units, m->S = d->n_slots, m->sm_count = nsm, m->only_kind = -1;
    m->max_workers = (int64_t)nsm * 8 * GQ_SK_WARPS;
    /* dense: every row holds all K/G groups in column order (so col can be ignored) */
    m->dense = d->K % 32 == 0 && d->n_units == (int64_t)d->N * (d->K / 32);
    for (int r = 0; m->dense && r <= d->N; r++) m->dense = d->row_unit[r] == (int64_t)r * (d->K / 32);
    for (int64_t s = 0; m->dense && s < d->n_slots; s++) m->dense = d->col[s] == s % (d->K / d->G);
    const size_t nu = (size_t)d->n_units, ns = (size_t)d->n_slots;
    CUDA_CHECK_GOTO(cudaMalloc(&m->row_unit, (size_t)(d->N + 1) * 4), fail);
    /* + GQ_GEMV_PAD zeroed bytes after each array: the v7 walk's lanes past the last row read there (its
     * columns must be valid: 0), the v5 prefetch and the v6 bulk copies widen spans to 16-byte bounds */
    CUDA_CHECK_GOTO(cudaMalloc(&m->codes, nu * 16 + GQ_GEMV_PAD), fail);
    CUDA_CHECK_GOTO(cudaMalloc(&m->col, ns * 2 + GQ_GEMV_PAD), fail);
    CUDA_CHECK_GOTO(cudaMalloc(&m->sm, ns * 4 + GQ_GEMV_PAD), fail);
    CUDA_CHECK_GOTO(cudaMemset((char *)m->codes + nu * 16, 0, GQ_GEMV_PAD), fail);
    CUDA_CHECK_GOTO(cudaMemset((char *)m->col + ns * 2, 0, GQ_GEMV_PAD), fail);
    CUDA_CHECK_GOTO(cudaMemset((char *)m->sm + ns * 4, 0, GQ_GEMV_PAD), fail);
    CUDA_CHECK_GOTO(cudaMalloc(&m->rec, (size_t)(2 * m->max_workers) * GQ_GEMV_MAX_BATCH * 4), fail);
    CUDA_CHECK_GOTO(cudaMalloc(&m->cnt, (size_t)d->N * 4), fail);
    CUDA_CHECK_GOTO(cudaMemcpy(m->row_unit, d->row_unit, (size_t)(d->N + 1) * 4, cudaMemcpyHostToDevice), fail);
    CUDA_CHECK_GOTO(cudaMemcpy(m->codes, d->codes, nu * 16, cudaMemcpyHostToDevice), fail);
    CUDA_CHECK_GOTO(cudaMemcpy(m->col, d->col, ns * 2, cudaMemcpyHostToDevice), fail);
    CUDA_CHECK_GOTO(cudaMemcpy(m->sm, d->sm, ns * 4, cudaMemcpyHostToDevice), fail);
    CUDA_CHECK_GOTO(cudaMemset(m->cnt, 0, (size_t)d->N * 4), fail);
    {
        /* rows by decreasing length (stable): the v3 row split starts the longest rows first */
        int32_t *ord = (int32_t *)malloc((size_t)(d->N ? d->N : 1) * 4);
        if (!ord) {
            st = gq_errf(GQ_ERR_NOMEM, "gqs_gpu_upload: out of host memory");
            goto fail;
        }
        gq_rows_by_length(d->row_unit, d->N, ord);
        cudaError_t ce = cudaMalloc(&m->row_order, (size_t)(d->N ? d->N : 1) * 4);
        if (ce == cudaSuccess) ce = cudaMemcpy(m->row_order, ord, (size_t)d->N * 4, cudaMemcpyHostToDevice);
        free(ord);
        CUDA_CHECK_GOTO(ce, fail);
    }
    st = gq_gqs_gpu_set_task_units(m, 0);
    if (st != GQ_OK) goto fail;
    /* cudaMemset runs on the legacy stream and may still be in flight when it returns; callers launch on
     * their own (possibly non-blocking) streams, which are not ordered after it. */
    CUDA_CHECK_GOTO(cudaDeviceSynchronize(), fail);
    *out = m;
    return GQ_OK;
fail:
    gq_gqs_gpu_free(m);
    return st;
}

extern "C" gq_status gq_gqs_gpu_set_task_units(gq_gqs_gpu *m, int64_t units) {
    int64_t chunk = units;
    if (chunk <= 0) {
        /* about one task per warp slot of the batch-1 kernel (its register cap is the same for every G),
         * in whole rounds of loads (32 lanes x 4 quads = 32 units), so uniform rows of a large matrix stay
         * one task each and the rows of a small or uneven one are cut to fill the machine */
        int occ = 0;
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, gq_gemv_task_kernel<16, 1>, 32 * GQ_ROW_WARPS, 0));
        const int64_t slots = (int64_t)m->sm_count * (occ < 1 ? 1 : occ) * GQ_ROW_WARPS;
        chunk = gq_gqs_task_chunk(m->U, slots, 32 * gq_unroll_q<1>::value / 4);
    }
    gq_gemv_task *t = NULL;
    int64_t nt = 0, nr = 0;
    /* the task list is built on the host from the device's row offsets (upload, and tests changing the chunk) */
    int32_t *fix = (int32_t *)malloc((size_t)(m->N ? m->N : 1) * 8), *ru = (int32_t *)malloc((size_t)(m->N + 1) * 4);
    if (!fix || !ru) {
        free(fix), free(ru);
        return gq_errf(GQ_ERR_NOMEM, "gqs tasks: out of host memory");
    }
    gq_status st = GQ_OK;
    cudaError_t re = cudaMemcpy(ru, m->row_unit, (size_t)(m->N + 1) * 4, cudaMemcpyDeviceToHost);
    if (re != cudaSuccess) st = gq_errf(GQ_ERR_INTERNAL, "gqs tasks: reading row offsets: %s", cudaGetErrorString(re));
    if (st == GQ_OK) st = gq_gqs_tasks(ru, m->N, chunk, &t, &nt, fix, &nr);
    free(ru);
    int4 *dt = NULL;
    int2 *dfix = NULL;
    float *drec = NULL;
    cudaError_t ce = cudaSuccess;
    if (st == GQ_OK) {
        static_assert(sizeof(gq_gemv_task) == sizeof(int4), "task layout");
        ce = cudaMalloc(&dt, (size_t)(nt ? nt : 1) * sizeof(int4));
        if (ce == cudaSuccess) ce = cudaMalloc(&dfix, (size_t)(m->N ? m->N : 1) * sizeof(int2));
        if (ce == cudaSuccess) ce = cudaMalloc(&drec, (size_t)(nr ? nr : 1) * GQ_GEMV_MAX_BATCH * sizeof(float));
        if (ce == cudaSuccess && nt) ce = cudaMemcpy(dt, t, (size_t)nt * sizeof(int4), cudaMemcpyHostToDevice);
        if (ce == cudaSuccess && m->N) ce = cudaMemcpy(dfix, fix, (size_t)m->N * sizeof(int2), cudaMemcpyHostToDevice);
        if (ce != cudaSuccess) {
            cudaGetLastError();
            st = gq_errf(GQ_ERR_NOMEM, "gqs tasks: %s", cudaGetErrorString(ce));
        }
    }
    free(t);
    free(fix);
    if (st != GQ_OK) {
        cudaFree(dt), cudaFree(dfix), cudaFree(drec);
        return st;
    }
    CUDA_CHECK(cudaDeviceSynchronize()); /* no launch may still read the old list */
    cudaFree(m->tasks), cudaFree(m->row_fix), cudaFree(m->task_rec);
    m->tasks = dt, m->row_fix = dfix, m->task_rec = drec;
    m->ntasks = nt, m->nrec = nr, m->task_units = chunk;
    return GQ_OK;
}
extern "C" int64_t gq_gqs_gpu_task_units(const gq_gqs_gpu *m) { return m->task_units; }
extern "C" void gq_gqs_gpu_set_pdl(gq_gqs_gpu *m, int on) { m->pdl = on ? 1 : 0; }
extern "C" int gq_gqs_gpu_is_dense(const gq_gqs_gpu *m) { return m->dense; }
extern "C" void gq_gqs_gpu_set_sk_ctas(gq_gqs_gpu *m, int k) { m->sk_ctas = k < 0 ? 0 : k; }
extern "C" void gq_gqs_gpu_set_max_workers(gq_gqs_gpu *m, int64_t w) { m->max_flat_workers = w < 0 ? 0 : w; }
extern "C" gq_status gq_gqs_gpu_set_v10_workers(gq_gqs_gpu *m, int64_t w) { return gq_gemv_v10_setup(m, w < 0 ? 0 : w); }
extern "C" gq_status gq_gqs_gpu_prepare(gq_gqs_gpu *m, gq_gemv_kind kind, void *stream) {
    const int v11 = gq_gemv_kind_stream(kind); /* m->stream[v11] */
    const int v13 = gq_v13_split_index(kind);   /* m->v13[v13] */
    const int v16 = gq_v16_index(kind);         /* m->v16[v16] */
    const bool v18 = (kind == GQ_GEMV_MMA_V18 || kind == GQ_GEMV_DENSE_W4_MMA_V18) && m->G >= 16; /* m->tiles */
    const bool needed = (kind == GQ_GEMV_TASK_V10 && !m->pready) || (v11 >= 0 && !m->stream[v11]) ||
                        (v13 >= 0 && !m->v13[v13].wstart) || (v16 >= 0 && !m->v16[v16].wstart) || (v18 && !m->tiles.meta);
    if (!needed) return GQ_OK;
    if ((v11 == 1 || kind == GQ_GEMV_DENSE_W4_MMA_V18) && !m->dense) return not_dense(m);
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(static_cast<cudaStream_t>(stream), &cs));
    if (cs != cudaStreamCaptureStatusNone)
        return gq_errf(GQ_ERR_ARG, "gqs_gemv %s: the %s is built by synchronous copies, not inside graph capture "
                                   "(HINT: call gq_gqs_gpu_prepare before capturing)", gq_gemv_kind_name(kind),
                       v13 >= 0 || v16 >= 0 ? "stream split" : v11 >= 0 ? "row stream" : v18 ? "tile stream" : "round split");
    if (v18) return gq_gemv_v18_setup(m);
    if (v13 >= 0) return gq_gemv_v13_setup(m, v13);
    if (v16 >= 0) return gq_gemv_v16_setup(m, v16 == 1);
    return v11 >= 0 ? gq_gemv_v11_setup(m, v11 == 1) : gq_gemv_v10_setup(m, 0);
}
extern "C" gq_status gq_gqs_gpu_set_v15_depth(gq_gqs_gpu *m, int rounds) {
    if (rounds < 0 || rounds > 8) return gq_errf(GQ_ERR_ARG, "gqs_gemv v15: prefetch depth %d rounds (expected 0..8)", rounds);
    m->v15_depth = rounds;
    return GQ_OK;
}
extern "C" gq_status gq_gqs_gpu_set_v13(gq_gqs_gpu *m, int ring_bytes, int ctas_per_sm) {
    if (ring_bytes != 0 && ring_bytes != 4096 && ring_bytes != 8192 && ring_bytes != 16384)
        return gq_errf(GQ_ERR_ARG, "gqs_gemv v13: ring of %d bytes (expected 4096, 8192 or 16384)", ring_bytes);
    CUDA_CHECK(cudaDeviceSynchronize()); /* no launch may still read the splits */
    gq_gemv_v13_free(m);
    m->v13_ring = ring_bytes, m->v13_ctas = ctas_per_sm < 0 ? 0 : ctas_per_sm;
    return GQ_OK;
}
extern "C" gq_status gq_gqs_gpu_set_v16(gq_gqs_gpu *m, const gq_v16_config *c) {
    const gq_v16_config z = {0, 0, 0, 0, 0, 0, 0, 0}, &v = c ? *c : z;
    if (v.ring < 0 || v.slot < 0 || (v.slot && (v.slot < 1024 || (v.slot & (v.slot - 1)))) || v.consumers < 0 ||
        v.consumers > 31 || v.ctas < 0 || v.ctas > 8 || v.x < 0 || v.x > 2 || v.pieces < 0 || v.pieces > 32 || v.wait_ns < -1 ||
        v.wait_ns > 1000000 || v.lane0_wait < 0 || v.lane0_wait > 1)
        return gq_errf(GQ_ERR_ARG, "gqs_gemv v16: configuration ring %d, slot %d, consumers %d, CTAs %d, x %d, pieces %d, wait %d, lane0_wait %d "
                                   "(expected ring >= 0, slot 0 or a power of two >= 1024, consumers 0..31, CTAs 0..8, x 0..2, "
                                   "pieces 0..32, wait -1..1000000 ns, lane0_wait 0..1)",
                       v.ring, v.slot, v.consumers, v.ctas, v.x, v.pieces, v.wait_ns, v.lane0_wait);
    CUDA_CHECK(cudaDeviceSynchronize()); /* no launch may still read the splits */
    gq_gemv_v16_free(m);
    m->v16_cfg = v;
    return GQ_OK;
}
extern "C" int64_t gq_gqs_gpu_sk_workers(const gq_gqs_gpu *m) { return m->last_workers; }
extern "C" gq_status gq_gqs_gpu_keep_only(gq_gqs_gpu *m, gq_gemv_kind kind) {
    const int v = gq_gemv_kind_stream(kind), v13 = gq_v13_split_index(kind);
    const int v16 = gq_v16_index(kind);
    if (v < 0 || !m->stream[v] || (v13 >= 0 && !m->v13[v13].wstart) || (v16 >= 0 && !m->v16[v16].wstart))
        return gq_errf(GQ_ERR_ARG, "gqs_gemv keep_only: %s is not a prepared row-stream kind", gq_gemv_kind_name(kind));
    CUDA_CHECK(cudaDeviceSynchronize()); /* no launch may still read the arrays */
    cudaFree(m->codes), cudaFree(m->col), cudaFree(m->sm);
    m->codes = NULL, m->col = NULL, m->sm = NULL, m->only_kind = (int)kind;
    return GQ_OK;
}

/* ---- plain buffers ---------------------------------------------------------------------------------- */

extern "C" gq_status gq_gemv_dev_alloc(size_t bytes, void **ptr) {
    *ptr = NULL;
    CUDA_CHECK(cudaMalloc(ptr, bytes ? bytes : 16));
    return GQ_OK;
}
extern "C" void gq_gemv_dev_free(void *ptr) { cudaFree(ptr); }
extern "C" gq_status gq_gemv_dev_upload(void *dst_dev, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst_dev, src, bytes, cudaMemcpyHostToDevice));
    return GQ_OK;
}
extern "C" gq_status gq_gemv_dev_download(void *dst, const void *src_dev, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src_dev, bytes, cudaMemcpyDeviceToHost));
    return GQ_OK;
}
extern "C" gq_status gq_gemv_dev_fill(void *dst_dev, int byte, size_t bytes) {
    CUDA_CHECK(cudaMemset(dst_dev, byte, bytes));
    /* not ordered with non-blocking streams: without this the bench's NaN fill could land after the
     * kernel under test had written y (the "rel err inf" CHECK FAILED rows of the 2026-11-22 run) */
    CUDA_CHECK(cudaDeviceSynchronize());
    return GQ_OK;
}
extern "C" gq_status gq_gemv_dev_sync(void) {
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaGetLastError());
    return GQ_OK;
}
