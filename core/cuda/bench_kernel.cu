/* bench_kernel.cu — `gqsa bench kernel`: the GQS GEMV kernels against cuBLAS FP16 and the dense W4 kernel,
 * timed as /work/.library/device/METHOD.md says. One command: correctness first, then timing, a compact
 * table on stdout, every row to --csv (and to the results store with --store), and the target checks.
 *
 * Timing: a CUDA graph of GQ_BENCH_GRAPH launches cycling through R weight copies (R copies >= 4x the L2
 * size and >= 240 MB, so no launch finds its weights in L2), warm-up replays, then the median over
 * `reps` replays of CUDA-event time / GQ_BENCH_GRAPH. Random data, never zeros. Bytes moved per launch =
 * weights as stored (codes + column indices + scales/mins + row offsets) + activations + output; the
 * copy bandwidth is measured in the same run (cudaMemcpyAsync D2D of 1 GB, read + write bytes).
 * 2:4 sparsity runs from tools/bench_24.py (torch + cuSPARSELt), writing the same CSV columns.
 * Kernels: every version on the same matrices (v2 under the plain names gqs_row, gqs_streamk, w4_dense;
 * *_v1, *_v3, and gqs_task_v4, the task-centric split), so one run shows before/after; each target
 * takes the fastest kernel of its family.
 * Must not: build or install anything, or report a time whose correctness check failed.
 */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"
#include "gqs_ws.h"
extern "C" {
#include "../store.h"
#include "gpu.h"
}

#define GQ_BENCH_GRAPH 20      /* launches per captured graph */
#define GQ_BENCH_MIN_ROT (240.0 * 1e6)
#define GQ_NELEM(a) ((int)(sizeof(a) / sizeof((a)[0])))

namespace {

struct Dev {
    char name[256];
    int nsm;
    size_t l2;
    double copy_gbs; /* measured D2D, read+write */
};

struct Row {
    char kernel[32], pattern[12];
    int N, K, B, G, bits;
    double sparsity, time_us, bytes, gbs, frac, vs_fp16, vs_w4;
    int copies;
};

struct Bench {
    Dev dev;
    cudaStream_t st;
    cublasHandle_t blas;
    void *blas_ws;
    int reps;
    FILE *csv;
    gq_store *store;
    Row *rows;
    int nrows, caprows;
    int check_failures;
};

int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median per-launch time (us) of a graph built by `enqueue(i)` for launch i (0..GQ_BENCH_GRAPH-1). */
template <class F> gq_status time_graph(Bench &bn, F enqueue, double *us) {
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    gq_status st = GQ_OK;
    float *ms = (float *)calloc((size_t)bn.reps, sizeof(float));
    CUDA_CHECK_GOTO(cudaStreamBeginCapture(bn.st, cudaStreamCaptureModeThreadLocal), done);
    for (int i = 0; i < GQ_BENCH_GRAPH && st == GQ_OK; i++) st = enqueue(i);
    {
        cudaError_t ce = cudaStreamEndCapture(bn.st, &g);
        if (st != GQ_OK) goto done;
        CUDA_CHECK_GOTO(ce, done);
    }
    CUDA_CHECK_GOTO(cudaGraphInstantiate(&ge, g, 0), done);
    CUDA_CHECK_GOTO(cudaEventCreate(&e0), done);
    CUDA_CHECK_GOTO(cudaEventCreate(&e1), done);
    for (int w = 0; w < 3; w++) CUDA_CHECK_GOTO(cudaGraphLaunch(ge, bn.st), done); /* warm-up */
    for (int r = 0; r < bn.reps; r++) {
        CUDA_CHECK_GOTO(cudaEventRecord(e0, bn.st), done);
        CUDA_CHECK_GOTO(cudaGraphLaunch(ge, bn.st), done);
        CUDA_CHECK_GOTO(cudaEventRecord(e1, bn.st), done);
        CUDA_CHECK_GOTO(cudaEventSynchronize(e1), done);
        CUDA_CHECK_GOTO(cudaEventElapsedTime(&ms[r], e0, e1), done);
    }
    CUDA_CHECK_GOTO(cudaGetLastError(), done);
    qsort(ms, (size_t)bn.reps, sizeof(float), cmp_float);
    *us = 1000.0 * ms[bn.reps / 2] / GQ_BENCH_GRAPH;
done:
    if (ge) cudaGraphExecDestroy(ge);
    if (g) cudaGraphDestroy(g);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    free(ms);
    return st;
}

int copies_for(const Bench &bn, double bytes) {
    double need = 4.0 * (double)bn.dev.l2;
    if (need < GQ_BENCH_MIN_ROT) need = GQ_BENCH_MIN_ROT;
    int c = (int)ceil(need / bytes);
    return c < 2 ? 2 : c;
}

/* Plain events around single 1 GB copies (median of 20 after warm-up): a graph of memcpy nodes measured
 * ~17% lower on the H100 (2439 vs 2951 GB/s through torch in the same session), below what cuBLAS reached. */
gq_status measure_copy(Bench &bn) {
    const size_t n = (size_t)1 << 30;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float ms[20];
    gq_status st = GQ_OK;
    CUDA_CHECK_GOTO(cudaMalloc(&a, n), done);
    CUDA_CHECK_GOTO(cudaMalloc(&b, n), done);
    CUDA_CHECK_GOTO(cudaMemset(a, 0x5A, n), done);
    CUDA_CHECK_GOTO(cudaEventCreate(&e0), done);
    CUDA_CHECK_GOTO(cudaEventCreate(&e1), done);
    for (int i = 0; i < 3; i++) CUDA_CHECK_GOTO(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, bn.st), done);
    for (int i = 0; i < 20; i++) {
        CUDA_CHECK_GOTO(cudaEventRecord(e0, bn.st), done);
        CUDA_CHECK_GOTO(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, bn.st), done);
        CUDA_CHECK_GOTO(cudaEventRecord(e1, bn.st), done);
        CUDA_CHECK_GOTO(cudaEventSynchronize(e1), done);
        CUDA_CHECK_GOTO(cudaEventElapsedTime(&ms[i], e0, e1), done);
    }
    qsort(ms, 20, sizeof(float), cmp_float);
    bn.dev.copy_gbs = 2.0 * (double)n / (ms[10] * 1e-3) / 1e9;
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return st;
}

void add_row(Bench &bn, const Row &r);
/* Bytes moved, achieved GB/s and fraction of the copy bandwidth of a row timed at us, then add it. */
void add_timed_row(Bench &bn, Row &r, double bytes, double us) {
    r.time_us = us, r.bytes = bytes;
    r.gbs = r.bytes / (us * 1e-6) / 1e9;
    r.frac = r.gbs / bn.dev.copy_gbs;
    add_row(bn, r);
}

void add_row(Bench &bn, const Row &r) {
    if (bn.nrows == bn.caprows) {
        bn.caprows = bn.caprows ? 2 * bn.caprows : 64;
        bn.rows = (Row *)realloc(bn.rows, (size_t)bn.caprows * sizeof(Row));
        if (!bn.rows) abort();
    }
    bn.rows[bn.nrows++] = r;
}

const Row *find_row(const Bench &bn, const char *kernel, int N, int K, int B, int G, double sp, const char *pat) {
    for (int i = 0; i < bn.nrows; i++) {
        const Row &r = bn.rows[i];
        if (!strcmp(r.kernel, kernel) && r.N == N && r.K == K && r.B == B && (G < 0 || r.G == G) &&
            (sp < 0 || fabs(r.sparsity - sp) < 1e-9) && (!pat || !strcmp(r.pattern, pat)))
            return &r;
    }
    return NULL;
}

/* ---- data ------------------------------------------------------------------------------------------- */

gq_status upload_x(int B, int K, uint64_t seed, void **xd, uint16_t **xh_out) {
    uint16_t *xh = (uint16_t *)malloc((size_t)B * K * 2);
    gq_rng rng;
    gq_rng_seed(&rng, seed);
    for (size_t i = 0; i < (size_t)B * K; i++) xh[i] = gq_fp32_to_fp16((float)gq_rng_normal(&rng));
    gq_status st = gq_gemv_dev_alloc((size_t)B * K * 2, xd);
    if (st == GQ_OK) st = gq_gemv_dev_upload(*xd, xh, (size_t)B * K * 2);
    if (xh_out) *xh_out = xh;
    else free(xh);
    return st;
}

/* ---- GQS / W4 ------------------------------------------------------------------------------------- */

struct Mat {
    gq_gqs g;
    gq_gqs_dev d;
    gq_gqs_gpu **cp;
    int ncp;
    double wbytes_gqs, wbytes_dense;
};

void mat_free(Mat &m) {
    for (int i = 0; i < m.ncp; i++) gq_gqs_gpu_free(m.cp[i]);
    free(m.cp);
    gq_gqs_dev_free(&m.d);
    gq_gqs_free(&m.g);
    memset(&m, 0, sizeof m);
}

gq_status mat_make(Bench &bn, Mat &m, int N, int K, int G, double sp, gq_density pat, uint64_t seed) {
    memset(&m, 0, sizeof m);
    GQ_TRY(gq_gqs_random(&m.g, N, K, G, 4, sp, pat, 0, seed));
    GQ_TRY(gq_gqs_pack(&m.g, "bench", &m.d));
    m.wbytes_gqs = (double)gq_gqs_dev_bytes(&m.d, 0);
    m.wbytes_dense = (double)gq_gqs_dev_bytes(&m.d, 1);
    m.ncp = copies_for(bn, m.wbytes_gqs);
    m.cp = (gq_gqs_gpu **)calloc((size_t)m.ncp, sizeof *m.cp);
    for (int i = 0; i < m.ncp; i++) GQ_TRY(gq_gqs_gpu_upload(&m.d, &m.cp[i]));
    return GQ_OK;
}

/* Relative L2 error against gq_gqs_gemv_ref for batches 0 and B-1; NaN fails. */
gq_status check_kernel(Bench &bn, Mat &m, gq_gemv_kind kind, int B, void *xd, const uint16_t *xh, void *yd,
                       double *relerr) {
    const int N = m.g.N, K = m.g.K;
    GQ_TRY(gq_gemv_dev_fill(yd, 0xFF, (size_t)B * N * 2));
    GQ_TRY(gq_gqs_gpu_gemv(m.cp[0], kind, xd, B, yd, 0, bn.st));
    CUDA_CHECK(cudaStreamSynchronize(bn.st));
    uint16_t *y = (uint16_t *)malloc((size_t)B * N * 2);
    float *xf = (float *)malloc((size_t)K * 4), *ref = (float *)malloc((size_t)N * 4);
    gq_status st = gq_gemv_dev_download(y, yd, (size_t)B * N * 2);
    double num = 0, den = 0;
    const int bs[2] = {0, B - 1};
    for (int t = 0; t < (B > 1 ? 2 : 1) && st == GQ_OK; t++) {
        const int b = bs[t];
        for (int k = 0; k < K; k++) xf[k] = gq_fp16_to_fp32(xh[(size_t)b * K + k]);
        gq_gqs_gemv_ref(&m.g, xf, ref);
        for (int r = 0; r < N; r++) {
            double got = gq_fp16_to_fp32(y[(size_t)b * N + r]);
            num += (got - ref[r]) * (got - ref[r]), den += (double)ref[r] * ref[r];
            if (isnan(got)) num = INFINITY;
        }
    }
    *relerr = den > 0 ? sqrt(num / den) : sqrt(num);
    free(y), free(xf), free(ref);
    return st;
}

/* Relative L2 error of a correct kernel: fp16 weights and output, ~1e-3 at most (PERF.md). */
#define GQ_BENCH_CHECK_REL 5e-3

gq_status run_gqs(Bench &bn, Mat &m, gq_gemv_kind kind, int B, const char *pat, double sp) {
    const int N = m.g.N, K = m.g.K;
    void *xd = NULL, *yd = NULL;
    uint16_t *xh = NULL;
    gq_status st = upload_x(B, K, 17 + (uint64_t)B, &xd, &xh);
    if (st == GQ_OK) st = gq_gemv_dev_alloc((size_t)B * N * 2, &yd);
    double rel = 0, us = 0;
    if (st == GQ_OK) st = check_kernel(bn, m, kind, B, xd, xh, yd, &rel);
    Row r;
    memset(&r, 0, sizeof r);
    snprintf(r.kernel, sizeof r.kernel, "%s", gq_gemv_kind_name(kind));
    snprintf(r.pattern, sizeof r.pattern, "%s", gq_gemv_kind_is_dense(kind) ? "dense" : pat);
    r.N = N, r.K = K, r.B = B, r.G = m.g.G, r.bits = 4, r.sparsity = gq_gemv_kind_is_dense(kind) ? 0 : sp;
    r.copies = m.ncp;
    if (st == GQ_OK && !(rel <= GQ_BENCH_CHECK_REL)) {
        fprintf(stderr, "gqsa bench: CHECK FAILED %s N=%d K=%d B=%d G=%d sp=%.2f: rel err %.3g > %.3g; not timed\n",
                r.kernel, N, K, B, r.G, sp, rel, GQ_BENCH_CHECK_REL);
        bn.check_failures++;
    } else if (st == GQ_OK) {
        for (int c = 0; c < m.ncp && st == GQ_OK; c++) st = gq_gqs_gpu_prepare(m.cp[c], kind, bn.st); /* not in capture */
        if (st == GQ_OK)
            st = time_graph(bn, [&](int i) { return gq_gqs_gpu_gemv(m.cp[i % m.ncp], kind, xd, B, yd, 0, bn.st); }, &us);
        if (st == GQ_OK)
            add_timed_row(bn, r, (gq_gemv_kind_is_dense(kind) ? m.wbytes_dense : m.wbytes_gqs) + 2.0 * B * K + 2.0 * B * N, us);
    }
    free(xh);
    gq_gemv_dev_free(xd), gq_gemv_dev_free(yd);
    return st;
}

/* ---- ceilings: what the bytes alone cost ----------------------------------------------------------------
 * Rows that are not GEMVs, timed like them (graph replays, weights rotated past L2), to split the GQS
 * kernel's time into its parts at the same bytes (PERF.md "ceilings"):
 *   read_stream   the matrix's bytes as one contiguous streaming read (16-byte loads, the best of a few
 *                 grid sizes): what any kernel that must touch these bytes can reach at this size;
 *   walk_loads    v7's loads (gq_qbuf_load7: its lanes, rows, rounds and addresses) with the arithmetic
 *                 replaced by an XOR, one round in flight per warp as in v7: the cost of v7's access
 *                 pattern; walk_loads_x adds v7's x gather (one 16-byte x load per quad);
 *   walk_stream   the same for v11's loads over its row stream (gqs_stream.h).
 * The XOR feeds a store that never happens (acc equal to an unlikely constant), so no load is dead. */
#define GQ_NEVER 0x9E3779B9u

__global__ void read_stream_kernel(const uint4 *p, size_t n16, unsigned *out) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    uint32_t acc = 0;
    for (; i + 3 * stride < n16; i += 4 * stride) {
        uint4 v[4];
#pragma unroll
        for (int u = 0; u < 4; u++) v[u] = gq_ld_stream_v4(p + i + u * stride);
#pragma unroll
        for (int u = 0; u < 4; u++) acc ^= v[u].x ^ v[u].y ^ v[u].z ^ v[u].w;
    }
    for (; i < n16; i += stride) {
        const uint4 v = gq_ld_stream_v4(p + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == GQ_NEVER) out[0] = acc;
}

template <int G, bool X>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS, gq_minb_q<1>::value) walk_kernel(const gq_gemv_args a, unsigned *out) {
    constexpr int UNR = gq_unroll_q<1>::value;
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * GQ_ROW_WARPS + (threadIdx.x >> 5);
    if (i >= a.N) return;
    int64_t lo, hi;
    gq_warp_row<false>(a, i, lo, hi);
    if (hi <= lo) return;
    const gq_qseg g = gq_qseg_make<G>(a, lo, hi, lo);
    const int kq = (int)((g.r0 + (uint32_t)lane) % (G / 8)) * 8;
    uint32_t acc = 0;
#pragma unroll 1
    for (uint32_t j0 = (uint32_t)lane; j0 < g.n; j0 += 32u * UNR) {
        gq_qbuf<UNR> b;
        gq_qbuf_load7<G, false, UNR>(g, b, j0);
#pragma unroll
        for (int u = 0; u < UNR; u++) {
            acc ^= b.cw[u] ^ b.smw[u] ^ b.colv[u];
            if constexpr (X) {
                const uint4 xv = __ldg(reinterpret_cast<const uint4 *>(a.x + (int)b.colv[u] * G + kq));
                acc ^= xv.x ^ xv.y ^ xv.z ^ xv.w;
            }
        }
    }
    if (acc == GQ_NEVER) out[i] = acc;
}

/* walk_stream: v11's loads (gq_stream_full_load / gq_stream_short_load over the row stream, rows in v11's
 * order) with the arithmetic replaced by an XOR: the cost of v11's access pattern. */
template <int G>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS, gq_minb_q<1>::value) walk_stream_kernel(const gq_gemv_args a, unsigned *out) {
    const int lane = threadIdx.x & 31;
    const int i = blockIdx.x * GQ_ROW_WARPS + (threadIdx.x >> 5);
    if (i >= a.N) return;
    const int2 sr = a.srow[a.row_order ? a.row_order[i] : i];
    const char *p = reinterpret_cast<const char *>(a.stream) + (size_t)sr.x * 16;
    uint32_t acc = 0;
#pragma unroll 1
    for (int t = 0; t < (sr.y >> 2); t++, p += GQ_STREAM_FULL(G, false)) {
        uint32_t cw[4], sw[4], cl[4];
        gq_stream_full_load<G, false>(p, lane, cw, sw, cl);
#pragma unroll
        for (int q = 0; q < 4; q++) acc ^= cw[q] ^ sw[q] ^ cl[q];
    }
#pragma unroll 1
    for (int t = 0; t < (sr.y & 3); t++, p += GQ_STREAM_SHORT(G, false)) {
        uint32_t cw, sw, cl;
        gq_stream_short_load<G, false>(p, lane, cw, sw, cl);
        acc ^= cw ^ sw ^ cl;
    }
    if (acc == GQ_NEVER) out[i] = acc;
}

/* walk_bulk_v13: v13's split and ring bytes per warp, filled by bulk copies (cp.async.bulk, the TMA path; one
 * instruction per slot of SLOT bytes, completed on the slot's mbarrier) instead of per-lane cp.async, and
 * read without the arithmetic: whether the ring's bytes in flight reach the contiguous read when the copy
 * path is not LDGSTS (walk_ring_v13). Shared memory per CTA: GQ_ROW_WARPS x (RB + 8 NSL). */
template <int RB, int NSL>
__global__ void __launch_bounds__(32 * GQ_ROW_WARPS) walk_bulk_kernel(const gq_gemv_args a, unsigned *out) {
    constexpr int SLOT = RB / NSL;
    extern __shared__ uint4 wb_smem[];
    const int lane = threadIdx.x & 31, wi = threadIdx.x >> 5;
    const int w = blockIdx.x * GQ_ROW_WARPS + wi;
    if (w >= a.W) return;
    char *ring = reinterpret_cast<char *>(wb_smem) + wi * RB;
    uint64_t *bar = reinterpret_cast<uint64_t *>(reinterpret_cast<char *>(wb_smem) + GQ_ROW_WARPS * RB) + wi * NSL;
    const int lo = a.wstart[w].z & ~15, hi = (a.wstart[w + 1].z + 15) & ~15;
    const int nch = (hi - lo + SLOT - 1) / SLOT;
    const char *gs = reinterpret_cast<const char *>(a.stream);
    if (lane == 0) {
        for (int c = 0; c < NSL; c++) gq_mbar_init(&bar[c], 1);
        gq_mbar_init_fence();
        for (int c = 0; c < NSL && c < nch; c++) {
            const int b = hi - lo - c * SLOT < SLOT ? hi - lo - c * SLOT : SLOT;
            gq_mbar_expect_tx(&bar[c], (uint32_t)b);
            gq_bulk_g2s(ring + c * SLOT, gs + lo + c * SLOT, (uint32_t)b, &bar[c]);
        }
    }
    __syncwarp();
    uint32_t acc = 0;
    for (int c = 0; c < nch; c++) {
        gq_mbar_wait(&bar[c % NSL], (uint32_t)(c / NSL) & 1u);
        acc ^= *reinterpret_cast<const uint32_t *>(ring + (c % NSL) * SLOT + 16 * lane % SLOT);
        __syncwarp();
        gq_fence_proxy_async();
        const int cn = c + NSL;
        if (lane == 0 && cn < nch) {
            const int b = hi - lo - cn * SLOT < SLOT ? hi - lo - cn * SLOT : SLOT;
            gq_mbar_expect_tx(&bar[c % NSL], (uint32_t)b);
            gq_bulk_g2s(ring + (c % NSL) * SLOT, gs + lo + cn * SLOT, (uint32_t)b, &bar[c % NSL]);
        }
    }
    if (acc == GQ_NEVER) out[w] = acc;
}

/* bulk_read: the copy engine alone, no consumers (v16 study). Each warp of each CTA streams one equal,
 * contiguous share of `bytes` through D slots of S bytes of its own (lane 0 issues one bulk copy per slot
 * and waits for it before reusing the slot), so the only variables are the copy size, the copies in flight
 * per issuing thread, the issuing threads per CTA and the CTAs per SM. */
__global__ void bulk_read_kernel(const char *src, int64_t bytes, int S, int D) {
    extern __shared__ uint4 br_smem[];
    const int lane = threadIdx.x & 31, wi = threadIdx.x >> 5, nw = (int)(blockDim.x >> 5);
    const int64_t W = (int64_t)gridDim.x * nw, w = (int64_t)blockIdx.x * nw + wi;
    const int64_t lo = (w * bytes / W) & ~(int64_t)15, hi = w + 1 == W ? bytes : ((w + 1) * bytes / W) & ~(int64_t)15;
    char *ring = reinterpret_cast<char *>(br_smem) + (size_t)wi * D * S;
    uint64_t *bar = reinterpret_cast<uint64_t *>(reinterpret_cast<char *>(br_smem) + (size_t)nw * D * S) + wi * D;
    if (lane != 0) return;
    for (int c = 0; c < D; c++) gq_mbar_init(&bar[c], 1);
    gq_mbar_init_fence();
    const int64_t nch = (hi - lo + S - 1) / S;
    gq_ws_cursor cur; /* chunk c's slot and fill parity */
    for (int64_t c = 0; c < nch + D; c++, cur.next(D)) {
        if (c >= D) gq_mbar_wait(&bar[cur.i], cur.ph ^ 1u); /* chunk c - D has landed */
        if (c < nch) {
            const int b = (int)(hi - lo - c * S < S ? hi - lo - c * S : S);
            gq_mbar_expect_tx(&bar[cur.i], (uint32_t)b);
            gq_bulk_g2s(ring + (size_t)cur.i * S, src + lo + c * S, (uint32_t)b, &bar[cur.i]);
        }
    }
}

/* Bytes a batch-1 GQS GEMV on m must move: weights as stored, x and y. */
double gqs_bytes_b1(const Mat &m) { return m.wbytes_gqs + 2.0 * m.g.K + 2.0 * m.g.N; }

void add_ceiling_row(Bench &bn, const char *kernel, const Mat &m, const char *pat, double sp, int copies, double us) {
    Row r;
    memset(&r, 0, sizeof r);
    snprintf(r.kernel, sizeof r.kernel, "%s", kernel);
    snprintf(r.pattern, sizeof r.pattern, "%s", pat);
    r.N = m.g.N, r.K = m.g.K, r.B = 1, r.G = m.g.G, r.bits = 4, r.sparsity = sp, r.copies = copies;
    add_timed_row(bn, r, gqs_bytes_b1(m), us); /* the GQS row's bytes, so the %copy columns compare */
}

/* The ceiling rows for GQS matrix m (batch 1). read_stream reads m's bytes from buffers of its own. */
gq_status run_ceilings(Bench &bn, Mat &m, const char *pat, double sp, bool stream) {
    const int N = m.g.N, K = m.g.K, G = m.g.G;
    void *xd = NULL;
    unsigned *out = NULL;
    gq_status st = upload_x(1, K, 23, &xd, NULL);
    if (st == GQ_OK) st = gq_gemv_dev_alloc((size_t)N * 4, (void **)&out);
    double us = 0, best = 0;
    for (int x = 0; x < 2 && st == GQ_OK; x++) {
        st = time_graph(bn, [&](int i) -> gq_status {
            const gq_gemv_args a = gq_gemv_args_of(m.cp[i % m.ncp], xd, 1, NULL, 0);
            const unsigned grid = (unsigned)((N + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
#define WALK_CASE(G_, X_)                                                                                \
    {                                                                                                    \
        if (X_) walk_kernel<G_, true><<<grid, 32 * GQ_ROW_WARPS, 0, bn.st>>>(a, out);                    \
        else walk_kernel<G_, false><<<grid, 32 * GQ_ROW_WARPS, 0, bn.st>>>(a, out);                      \
        break;                                                                                           \
    }
            GQ_SWITCH_G(G, WALK_CASE, x)
#undef WALK_CASE
            CUDA_CHECK_LAUNCH();
            return GQ_OK;
        }, &us);
        if (st == GQ_OK) add_ceiling_row(bn, x ? "walk_loads_x" : "walk_loads", m, pat, sp, m.ncp, us);
    }
    for (int c = 0; c < m.ncp && st == GQ_OK; c++) st = gq_gqs_gpu_prepare(m.cp[c], GQ_GEMV_ROW_V11, bn.st);
    if (st == GQ_OK) {
        fprintf(stderr, "gqsa bench: v11 row stream %.2f MB, %+.2f%% over the device format's %.2f MB (padding)\n",
                m.cp[0]->stream_bytes[0] / 1e6, 100.0 * (m.cp[0]->stream_bytes[0] / m.wbytes_gqs - 1), m.wbytes_gqs / 1e6);
        st = time_graph(bn, [&](int i) -> gq_status {
            gq_gemv_args a = gq_gemv_args_of(m.cp[i % m.ncp], xd, 1, NULL, 0);
            a.stream = m.cp[i % m.ncp]->stream[0], a.srow = m.cp[i % m.ncp]->srow[0];
            const unsigned grid = (unsigned)((N + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
#define WS_CASE(G_, X_)                                                                                  \
    {                                                                                                    \
        walk_stream_kernel<G_><<<grid, 32 * GQ_ROW_WARPS, 0, bn.st>>>(a, out);                           \
        break;                                                                                           \
    }
            GQ_SWITCH_G(G, WS_CASE, 0)
#undef WS_CASE
            CUDA_CHECK_LAUNCH();
            return GQ_OK;
        }, &us);
        if (st == GQ_OK) add_ceiling_row(bn, "walk_stream", m, pat, sp, m.ncp, us);
    }
    if (stream && st == GQ_OK) {
        const double bytes = gqs_bytes_b1(m);
        const size_t n16 = (size_t)(bytes / 16);
        const int ncp = copies_for(bn, bytes);
        uint4 **buf = (uint4 **)calloc((size_t)ncp, sizeof *buf);
        for (int i = 0; i < ncp && st == GQ_OK; i++) {
            st = gq_gemv_dev_alloc(n16 * 16, (void **)&buf[i]);
            if (st == GQ_OK) st = gq_gemv_dev_fill(buf[i], 0x5A, n16 * 16);
        }
        const int ctas_per_sm[] = {2, 4, 8, 16};
        for (int c = 0; c < GQ_NELEM(ctas_per_sm) && st == GQ_OK; c++) {
            const unsigned grid = (unsigned)(bn.dev.nsm * ctas_per_sm[c]);
            st = time_graph(bn, [&](int i) -> gq_status {
                read_stream_kernel<<<grid, 256, 0, bn.st>>>(buf[i % ncp], n16, out);
                CUDA_CHECK_LAUNCH();
                return GQ_OK;
            }, &us);
            if (st == GQ_OK && (best == 0 || us < best)) best = us;
        }
        if (st == GQ_OK) add_ceiling_row(bn, "read_stream", m, pat, sp, ncp, best);
        for (int i = 0; i < ncp; i++) gq_gemv_dev_free(buf[i]);
        free(buf);
    }
    gq_gemv_dev_free(xd), gq_gemv_dev_free(out);
    return st;
}

/* ---- the stream kernels' study (v13-v15) on one matrix ----------------------------------------------- */

/* One study row: kind at batch 1 on m as configured now, checked against the CPU reference, then timed
 * under the name given. */
gq_status study_row(Bench &bn, Mat &m, gq_gemv_kind kind, const char *name, const char *pat, double sp, void *xd,
                    const uint16_t *xh, void *yd) {
    double rel = 0, us = 0;
    GQ_TRY(check_kernel(bn, m, kind, 1, xd, xh, yd, &rel));
    Row r;
    memset(&r, 0, sizeof r);
    snprintf(r.kernel, sizeof r.kernel, "%s", name);
    snprintf(r.pattern, sizeof r.pattern, "%s", pat);
    r.N = m.g.N, r.K = m.g.K, r.B = 1, r.G = m.g.G, r.bits = 4, r.sparsity = sp, r.copies = m.ncp;
    if (!(rel <= GQ_BENCH_CHECK_REL)) {
        fprintf(stderr, "gqsa bench: CHECK FAILED %s: rel err %.3g; not timed\n", r.kernel, rel);
        bn.check_failures++;
        return GQ_OK;
    }
    GQ_TRY(time_graph(bn, [&](int i) { return gq_gqs_gpu_gemv(m.cp[i % m.ncp], kind, xd, 1, yd, 0, bn.st); }, &us));
    add_timed_row(bn, r, m.wbytes_gqs + 2.0 * m.g.K + 2.0 * m.g.N, us);
    return GQ_OK;
}

/* The ceilings walk_ring_v13 / walk_bulk_* (v13's ranges copied without the arithmetic), v15 at prefetch
 * depths 2-4 (row_v15_d<D>), then gqs_task_v14 (batch 1) at each (ring bytes per warp, CTAs per SM), named
 * task_v14_r<KB>k_c<CTAs> (task_v13_* in the run of 2026-12-04 that measured v13 this way); the kinds' own
 * rows (the defaults) are timed in the family sweep. */
gq_status run_stream_study(Bench &bn, Mat &m, const char *pat, double sp) {
    const int cfg[][2] = {{4096, 0}, {4096, 6}, {8192, 0}, {8192, 4}, {16384, 0}, {16384, 2}};
    void *xd = NULL, *yd = NULL;
    uint16_t *xh = NULL;
    gq_status st = upload_x(1, m.g.K, 18, &xd, &xh);
    if (st == GQ_OK) st = gq_gemv_dev_alloc((size_t)m.g.N * 2, &yd);
    /* walk_ring: the default configuration's copies and waits without the arithmetic (G16 only) */
    for (int i = 0; i < m.ncp && st == GQ_OK; i++) st = gq_gqs_gpu_prepare(m.cp[i], GQ_GEMV_TASK_V13, bn.st);
    if (st == GQ_OK && m.g.G == 16) {
        const gq_gqs_gpu *m0 = m.cp[0];
        const int ring = m0->v13[1].ring;
        const size_t smem = (size_t)GQ_ROW_WARPS * ring;
        const void *fn = ring == 8192 ? (const void *)gq_gemv_skring_kernel<16, false, gq_v13_ring<16, false, 8192>, true> : NULL;
        double us = 0;
        if (fn) {
            CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
            CUDA_CHECK(cudaFuncSetAttribute(fn, cudaFuncAttributePreferredSharedMemoryCarveout, 100));
            st = time_graph(bn, [&](int i) -> gq_status {
                const gq_gqs_gpu *mc = m.cp[i % m.ncp];
                const gq_gemv_args a = gq_v13_args(mc, 1, gq_gemv_args_of(mc, xd, 1, yd, 0));
                gq_gemv_skring_kernel<16, false, gq_v13_ring<16, false, 8192>, true><<<(unsigned)((a.W + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS),
                                                               32 * GQ_ROW_WARPS, smem, bn.st>>>(a);
                CUDA_CHECK_LAUNCH();
                return GQ_OK;
            }, &us);
            if (st == GQ_OK) add_ceiling_row(bn, "walk_ring_v13", m, pat, sp, m.ncp, us);
        }
        /* the same ranges through bulk copies: 8 KB rings of 4 and 8 slots, 16 KB of 8 (CTAs per SM: as v13's
         * default, the grid of its split) */
        unsigned *out = NULL;
        if (st == GQ_OK) st = gq_gemv_dev_alloc((size_t)m0->v13[1].W * 4 + 16, (void **)&out);
        const int nbk = 3;
        for (int k = 0; k < nbk && st == GQ_OK; k++) {
            const void *fk = k == 0 ? (const void *)walk_bulk_kernel<8192, 4> : k == 1 ? (const void *)walk_bulk_kernel<8192, 8>
                                                                                        : (const void *)walk_bulk_kernel<16384, 8>;
            const int rb = k == 2 ? 16384 : 8192, nsl = k == 0 ? 4 : 8;
            const size_t sm2 = (size_t)GQ_ROW_WARPS * (rb + 8 * nsl);
            CUDA_CHECK(cudaFuncSetAttribute(fk, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm2));
            CUDA_CHECK(cudaFuncSetAttribute(fk, cudaFuncAttributePreferredSharedMemoryCarveout, 100));
            double us2 = 0;
            st = time_graph(bn, [&](int i) -> gq_status {
                const gq_gqs_gpu *mc = m.cp[i % m.ncp];
                const gq_gemv_args a = gq_v13_args(mc, 1, gq_gemv_args_of(mc, xd, 1, yd, 0));
                const unsigned grid = (unsigned)((a.W + GQ_ROW_WARPS - 1) / GQ_ROW_WARPS);
                if (k == 0) walk_bulk_kernel<8192, 4><<<grid, 32 * GQ_ROW_WARPS, sm2, bn.st>>>(a, out);
                else if (k == 1) walk_bulk_kernel<8192, 8><<<grid, 32 * GQ_ROW_WARPS, sm2, bn.st>>>(a, out);
                else walk_bulk_kernel<16384, 8><<<grid, 32 * GQ_ROW_WARPS, sm2, bn.st>>>(a, out);
                CUDA_CHECK_LAUNCH();
                return GQ_OK;
            }, &us2);
            char name[32];
            snprintf(name, sizeof name, "walk_bulk_r%dk_s%d", rb / 1024, nsl);
            if (st == GQ_OK) add_ceiling_row(bn, name, m, pat, sp, m.ncp, us2);
        }
        gq_gemv_dev_free(out);
    }
    /* v15: prefetch depths (rounds ahead); the kind's own row (depth 1) is timed in the family sweep */
    for (int d = 2; d <= 4 && st == GQ_OK; d++) {
        for (int i = 0; i < m.ncp && st == GQ_OK; i++) st = gq_gqs_gpu_set_v15_depth(m.cp[i], d);
        char name[32];
        snprintf(name, sizeof name, "row_v15_d%d", d);
        if (st == GQ_OK) st = study_row(bn, m, GQ_GEMV_ROW_V15, name, pat, sp, xd, xh, yd);
    }
    for (int i = 0; i < m.ncp && st == GQ_OK; i++) st = gq_gqs_gpu_set_v15_depth(m.cp[i], 0);
    for (int c = 0; c < GQ_NELEM(cfg) && st == GQ_OK; c++) {
        for (int i = 0; i < m.ncp && st == GQ_OK; i++) {
            st = gq_gqs_gpu_set_v13(m.cp[i], cfg[c][0], cfg[c][1]);
            if (st == GQ_OK) st = gq_gqs_gpu_prepare(m.cp[i], GQ_GEMV_TASK_V14, bn.st);
        }
        char name[32];
        snprintf(name, sizeof name, "task_v14_r%dk_c%d", cfg[c][0] / 1024, m.cp[0]->v13[4].ctas);
        if (st == GQ_OK) st = study_row(bn, m, GQ_GEMV_TASK_V14, name, pat, sp, xd, xh, yd);
    }
    for (int i = 0; i < m.ncp && st == GQ_OK; i++) st = gq_gqs_gpu_set_v13(m.cp[i], 0, 0);
    free(xh);
    gq_gemv_dev_free(xd), gq_gemv_dev_free(yd);
    return st;
}

/* ---- the v16 study on one matrix ----------------------------------------------------------------------
 * walk_ws: v16's ring, protocol and row walk at its default configuration with the arithmetic replaced by
 * one shared-memory word per round (the copy engine's ceiling, G16 GQS); the bulk_* rows (the engine with no
 * consumers); then gqs_row_v16 at other configurations, named v16_s<slot KB>_p<copies per slot>_w<consumer
 * warps>_c<CTAs per SM>_t<wait ns>[_l0: lane 0 waits][_xs: x in shared memory], each followed by its own copy
 * engine alone (walk_v16_...); the default's own row is timed in the family sweep. */
gq_status run_v16_study(Bench &bn, Mat &m, const char *pat, double sp) {
    /* ring, slot, consumers, CTAs per SM, x mode, copies per slot, wait ns, lane-0 waits (0: default) */
    /* (runs 10-12 of 2026-12-04, PERF.md "v16 measured", covered pieces 1/2/32, slots 4/16 KB, 64/128 KB rings,
     * 2x15 and 4x7 warps, x in shared memory, and the barrier waits: spin, 20-2000 ns hints, every lane waiting;
     * next: lane 0 waiting alone, with and without the spin, at 8 and 16 KB slots) */
    const gq_v16_config cfg[] = {{0, 0, 0, 0, 0, 0, 0, 1},     {0, 0, 0, 0, 0, 0, -1, 1},   {0, 16384, 0, 0, 0, 0, 0, 1},
                                 {0, 0, 7, 4, 0, 0, 0, 1},     {0, 16384, 0, 0, 0, 0, 0, 0}, {0, 0, 7, 4, 0, 0, 0, 0}};
    void *xd = NULL, *yd = NULL;
    uint16_t *xh = NULL;
    gq_status st = upload_x(1, m.g.K, 19, &xd, &xh);
    if (st == GQ_OK) st = gq_gemv_dev_alloc((size_t)m.g.N * 2, &yd);
    /* the current configuration's copy engine alone (G16 GQS, x from global memory: the copy-only kernel) */
    const auto engine_row = [&](const char *name) -> gq_status {
        if (m.g.G != 16 || m.cp[0]->v16[0].c.x == 2) return GQ_OK;
        double us = 0;
        GQ_TRY(time_graph(bn, [&](int i) -> gq_status {
            gq_gqs_gpu *mc = m.cp[i % m.ncp];
            return gq_gemv_launch_v16(false, mc, gq_gemv_args_of(mc, xd, 1, yd, 0), bn.st, true);
        }, &us));
        add_ceiling_row(bn, name, m, pat, sp, m.ncp, us);
        return GQ_OK;
    };
    for (int i = 0; i < m.ncp && st == GQ_OK; i++) st = gq_gqs_gpu_prepare(m.cp[i], GQ_GEMV_ROW_V16, bn.st);
    if (st == GQ_OK) st = engine_row("walk_ws");
    /* the copy engine with no consumers: bulk_s<slot KB>_d<slots per issuer>_i<issuing warps per CTA>_c<CTAs per SM>;
     * the first is v16's default engine, the last walk_bulk_r8k_s4's (v14's per-warp rings; at most 228 KB per SM) */
    const int bcfg[][4] = {{8192, 23, 1, 1}, {16384, 11, 1, 1}, {2048, 92, 1, 1}, {8192, 6, 4, 1}, {4096, 3, 16, 1},
                           {2048, 4, 4, 6}};
    for (int c = 0; c < GQ_NELEM(bcfg) && st == GQ_OK && m.g.G == 16; c++) {
        const int S = bcfg[c][0], D = bcfg[c][1], I = bcfg[c][2], ctas = bcfg[c][3];
        const size_t smem = (size_t)I * D * (S + 8);
        CUDA_CHECK(cudaFuncSetAttribute(bulk_read_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        CUDA_CHECK(cudaFuncSetAttribute(bulk_read_kernel, cudaFuncAttributePreferredSharedMemoryCarveout, 100));
        double us = 0;
        st = time_graph(bn, [&](int i) -> gq_status {
            const gq_gqs_gpu *mc = m.cp[i % m.ncp];
            bulk_read_kernel<<<(unsigned)(bn.dev.nsm * ctas), 32 * I, smem, bn.st>>>(
                reinterpret_cast<const char *>(mc->stream[0]), mc->stream_bytes[0], S, D);
            CUDA_CHECK_LAUNCH();
            return GQ_OK;
        }, &us);
        char name[48];
        snprintf(name, sizeof name, "bulk_s%d_d%d_i%d_c%d", S / 1024 % 100, D % 1000, I % 100, ctas % 10);
        if (st == GQ_OK) add_ceiling_row(bn, name, m, pat, sp, m.ncp, us);
    }
    for (int c = 0; c < GQ_NELEM(cfg) && st == GQ_OK; c++) {
        for (int i = 0; i < m.ncp && st == GQ_OK; i++) {
            st = gq_gqs_gpu_set_v16(m.cp[i], &cfg[c]);
            if (st == GQ_OK) st = gq_gqs_gpu_prepare(m.cp[i], GQ_GEMV_ROW_V16, bn.st);
        }
        if (st != GQ_OK) break;
        const gq_v16_config &v = m.cp[0]->v16[0].c;
        char name[64], wname[72];
        snprintf(name, sizeof name, "v16_s%d_p%d_w%d_c%d_t%d%s%s", v.slot / 1024 % 100, v.pieces % 100, v.consumers % 100,
                 v.ctas % 10, v.wait_ns % 10000, v.lane0_wait ? "_l0" : "", v.x == 2 ? "_xs" : "");
        snprintf(wname, sizeof wname, "walk_%s", name);
        st = study_row(bn, m, GQ_GEMV_ROW_V16, name, pat, sp, xd, xh, yd);
        if (st == GQ_OK) st = engine_row(wname);
    }
    for (int i = 0; i < m.ncp && st == GQ_OK; i++) st = gq_gqs_gpu_set_v16(m.cp[i], NULL);
    free(xh);
    gq_gemv_dev_free(xd), gq_gemv_dev_free(yd);
    return st;
}

/* ---- the v17 study on one matrix ----------------------------------------------------------------------
 * gqs_row_v17 with 1, 2 and 4 warps per row forced (v17_r<R>; R = 1 is v11), against which the rule's choice
 * (gq_gqs_rows_split, timed as gqs_row_v17 in the family sweep) is judged: it should pick the fastest. */
gq_status run_v17_study(Bench &bn, Mat &m, const char *pat, double sp) {
    void *xd = NULL, *yd = NULL;
    uint16_t *xh = NULL;
    gq_status st = upload_x(1, m.g.K, 23, &xd, &xh);
    if (st == GQ_OK) st = gq_gemv_dev_alloc((size_t)m.g.N * 2, &yd);
    const int Rs[] = {1, 2, 4};
    for (int c = 0; c < 3 && st == GQ_OK; c++) {
        for (int i = 0; i < m.ncp && st == GQ_OK; i++) st = gq_gqs_gpu_set_v17_split(m.cp[i], Rs[c]);
        char name[16];
        snprintf(name, sizeof name, "v17_r%d", Rs[c]);
        if (st == GQ_OK) st = study_row(bn, m, GQ_GEMV_ROW_V17, name, pat, sp, xd, xh, yd);
    }
    for (int i = 0; i < m.ncp && st == GQ_OK; i++) st = gq_gqs_gpu_set_v17_split(m.cp[i], 0);
    if (st == GQ_OK && m.ncp > 0)
        fprintf(stderr, "gqsa bench: v17 rule at %d x %d %s: %d warps per row\n", m.g.N, m.g.K, pat,
                gq_gqs_gpu_v17_split(m.cp[0], 0));
    free(xh);
    gq_gemv_dev_free(xd), gq_gemv_dev_free(yd);
    return st;
}

/* ---- cuBLAS FP16 -------------------------------------------------------------------------------------- */

__global__ void fill_half_kernel(__half *p, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
        p[i] = __float2half(((float)(h & 0xFFFF) / 65536.0f - 0.5f) * 0.05f);
    }
}

gq_status run_fp16(Bench &bn, int N, int K, int B) {
    const double wb = 2.0 * N * K;
    const int ncp = copies_for(bn, wb);
    __half **w = (__half **)calloc((size_t)ncp, sizeof *w);
    void *xd = NULL, *yd = NULL;
    gq_status st = upload_x(B, K, 5, &xd, NULL);
    double us = 0;
    const float one = 1.f, zero = 0.f;
    if (st == GQ_OK) st = gq_gemv_dev_alloc((size_t)B * N * 2, &yd);
    for (int i = 0; i < ncp && st == GQ_OK; i++) {
        CUDA_CHECK_GOTO(cudaMalloc(&w[i], (size_t)wb), done);
        fill_half_kernel<<<1024, 256, 0, bn.st>>>(w[i], (size_t)N * K, 1234u + i);
        CUDA_CHECK_GOTO(cudaGetLastError(), done);
    }
    if (st != GQ_OK) goto done;
    CUDA_CHECK_GOTO(cudaStreamSynchronize(bn.st), done);
    /* y [B, N] row-major = column-major N x B; W [N, K] row-major = column-major K x N, so y = W^T(col) x */
    st = time_graph(bn, [&](int i) -> gq_status {
        CUBLAS_CHECK(cublasGemmEx(bn.blas, CUBLAS_OP_T, CUBLAS_OP_N, N, B, K, &one, w[i % ncp], CUDA_R_16F, K, xd,
                                  CUDA_R_16F, K, &zero, yd, CUDA_R_16F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        return GQ_OK;
    }, &us);
    if (st == GQ_OK) {
        Row r;
        memset(&r, 0, sizeof r);
        snprintf(r.kernel, sizeof r.kernel, "cublas_fp16");
        snprintf(r.pattern, sizeof r.pattern, "dense");
        r.N = N, r.K = K, r.B = B, r.G = 0, r.bits = 16, r.copies = ncp;
        add_timed_row(bn, r, wb + 2.0 * B * K + 2.0 * B * N, us);
    }
done:
    for (int i = 0; i < ncp; i++) cudaFree(w[i]);
    free(w);
    gq_gemv_dev_free(xd), gq_gemv_dev_free(yd);
    return st;
}

/* ---- sweep ---------------------------------------------------------------------------------------- */

struct Shape { int N, K; const char *label; };

/* Every kernel of one family (dense W4 or GQS) on matrix m, in kind order (each version beside the
 * others, same data); skip: a kind left out (-1: none). */
gq_status run_family(Bench &bn, Mat &m, bool dense, int B, const char *pat, double sp, int skip = -1) {
    for (int k = 0; k < GQ_GEMV_NKINDS; k++)
        if ((gq_gemv_kind_is_dense((gq_gemv_kind)k) != 0) == dense && k != skip &&
            B <= gq_gemv_kind_max_batch((gq_gemv_kind)k) && B >= gq_gemv_kind_min_batch((gq_gemv_kind)k))
            GQ_TRY(run_gqs(bn, m, (gq_gemv_kind)k, B, pat, sp));
    return GQ_OK;
}

gq_status sweep_shape(Bench &bn, const Shape &s, int quick, const int *Bs_user, int nB_user) {
    const int Bs_full[] = {1, 2, 4, 8, 16}, Bs_quick[] = {1, 16};
    const int *Bs = nB_user ? Bs_user : quick ? Bs_quick : Bs_full;
    const int nB = nB_user ? nB_user : quick ? 2 : 5;
    fprintf(stderr, "gqsa bench: %s (%d x %d)\n", s.label, s.N, s.K);
    for (int i = 0; i < nB; i++) GQ_TRY(run_fp16(bn, s.N, s.K, Bs[i]));
    /* dense W4 at G = 128 (the usual baseline) and at G = 16 (the GQS run's G); sparsity-0 GQS beside */
    const int Gd[] = {128, 16};
    for (int gi = 0; gi < 2; gi++) {
        Mat m;
        GQ_TRY(mat_make(bn, m, s.N, s.K, Gd[gi], 0.0, GQ_DENSITY_ROW, 11 + gi));
        for (int i = 0; i < nB; i++) {
            GQ_TRY(run_family(bn, m, true, Bs[i], "dense", 0.0));
            if (Gd[gi] == 16 && (Bs[i] == 1 || !quick)) {
                GQ_TRY(run_gqs(bn, m, GQ_GEMV_ROW, Bs[i], "row", 0.0));
                GQ_TRY(run_gqs(bn, m, GQ_GEMV_STREAMK, Bs[i], "row", 0.0));
            }
        }
        mat_free(m);
    }
    /* GQS G16: sparsity sweep (layer scope), then the three density patterns at S50 with all batches */
    const double sps_full[] = {0.3, 0.5, 0.7}, sps_quick[] = {0.5};
    const double *sps = quick ? sps_quick : sps_full;
    const int nsp = quick ? 1 : 3;
    for (int p = 0; p < 3; p++) {
        for (int si = 0; si < nsp; si++) {
            const double sp = sps[si];
            if (p != GQ_DENSITY_LAYER && fabs(sp - 0.5) > 1e-9) continue;
            Mat m;
            GQ_TRY(mat_make(bn, m, s.N, s.K, 16, sp, (gq_density)p, 100 + p * 10 + si));
            for (int i = 0; i < nB; i++) {
                if (Bs[i] > 1 && fabs(sp - 0.5) > 1e-9) continue;
                GQ_TRY(run_family(bn, m, false, Bs[i], gq_density_name((gq_density)p), sp));
            }
            if (fabs(sp - 0.5) < 1e-9) GQ_TRY(run_ceilings(bn, m, gq_density_name((gq_density)p), sp, p == GQ_DENSITY_LAYER));
            if (fabs(sp - 0.5) < 1e-9) GQ_TRY(run_v17_study(bn, m, gq_density_name((gq_density)p), sp));
            if (fabs(sp - 0.5) < 1e-9 && p != GQ_DENSITY_ROW && s.N == 8192) {
                /* the v13-v15 study was measured on 2026-12-04 (PERF.md); GQ_BENCH_STREAM_STUDY=1 runs it again */
                const char *ss = getenv("GQ_BENCH_STREAM_STUDY");
                if (ss && ss[0] == '1') GQ_TRY(run_stream_study(bn, m, gq_density_name((gq_density)p), sp));
                GQ_TRY(run_v16_study(bn, m, gq_density_name((gq_density)p), sp));
            }
            mat_free(m);
        }
    }
    /* other group sizes at S50 layer, batch 1 */
    if (!quick || s.N == 8192) {
        const int Gs[] = {8, 32, 64};
        for (int gi = 0; gi < 3; gi++) {
            Mat m;
            GQ_TRY(mat_make(bn, m, s.N, s.K, Gs[gi], 0.5, GQ_DENSITY_LAYER, 300 + gi));
            GQ_TRY(run_family(bn, m, false, 1, "layer", 0.5, GQ_GEMV_STREAMK_V1)); /* v1 Stream-K: G16 only */
            mat_free(m);
        }
    }
    return GQ_OK;
}

/* The fastest of several kernels (each version of one family) at one point; NULL if none ran. */
const Row *best_of(const Bench &bn, const char *const *kernels, int n, int N, int K, int B, int G, double sp,
                   const char *pat) {
    const Row *best = NULL;
    for (int i = 0; i < n; i++) {
        const Row *r = find_row(bn, kernels[i], N, K, B, G, sp, pat);
        if (r && (!best || r->time_us < best->time_us)) best = r;
    }
    return best;
}
/* The fastest kernel of a whole family (every dense W4 kind, or every GQS kind) at one point. */
const Row *best_family(const Bench &bn, bool dense, int N, int K, int B, int G, double sp, const char *pat) {
    const char *names[GQ_GEMV_NKINDS];
    int n = 0;
    for (int k = 0; k < GQ_GEMV_NKINDS; k++)
        if ((gq_gemv_kind_is_dense((gq_gemv_kind)k) != 0) == dense) names[n++] = gq_gemv_kind_name((gq_gemv_kind)k);
    return best_of(bn, names, n, N, K, B, G, sp, pat);
}
const char *const GQS_ROWS[] = {"gqs_row", "gqs_row_v1", "gqs_row_v3", "gqs_row_v5", "gqs_row_v6", "gqs_row_v7", "gqs_row_v8",
                                "gqs_row_v9", "gqs_row_v11", "gqs_row_v12", "gqs_row_v13", "gqs_row_v14", "gqs_row_v15",
                                "gqs_row_v16", "gqs_row_v17"};
/* the task-centric family: equal shares of the kept groups (Stream-K) or rows cut into equal tasks (v4) */
const char *const GQS_SK[] = {"gqs_streamk", "gqs_streamk_v1", "gqs_streamk_v3", "gqs_task_v4", "gqs_task_v5",
                              "gqs_task_v10", "gqs_task_v13", "gqs_task_v14"};

void fill_speedups(Bench &bn) {
    for (int i = 0; i < bn.nrows; i++) {
        Row &r = bn.rows[i];
        const Row *f = find_row(bn, "cublas_fp16", r.N, r.K, r.B, -1, -1, NULL);
        const Row *w = best_family(bn, true, r.N, r.K, r.B, 128, -1, NULL); /* the fair baseline: fastest W4 */
        r.vs_fp16 = f ? f->time_us / r.time_us : NAN;
        r.vs_w4 = w ? w->time_us / r.time_us : NAN;
    }
}

void print_and_write(Bench &bn) {
    printf("%-12s %6s %6s %3s %5s %4s %-7s %10s %9s %8s %6s %7s %6s\n", "kernel", "N", "K", "B", "spars", "G", "pattern",
           "time_us", "MB", "GB/s", "%copy", "xFP16", "xW4");
    if (bn.csv)
        fprintf(bn.csv, "kernel,N,K,batch,sparsity,group,bits,pattern,time_us,bytes,gbps,frac_copy_bw,speedup_vs_fp16,"
                        "speedup_vs_w4_g128,copies,device,copy_gbps\n");
    for (int i = 0; i < bn.nrows; i++) {
        const Row &r = bn.rows[i];
        printf("%-12s %6d %6d %3d %5.2f %4d %-7s %10.2f %9.2f %8.0f %5.1f%% %7.2f %6.2f\n", r.kernel, r.N, r.K, r.B,
               r.sparsity, r.G, r.pattern, r.time_us, r.bytes / 1e6, r.gbs, 100 * r.frac, r.vs_fp16, r.vs_w4);
        if (bn.csv)
            fprintf(bn.csv, "%s,%d,%d,%d,%.4f,%d,%d,%s,%.4f,%.0f,%.2f,%.4f,%.4f,%.4f,%d,\"%s\",%.1f\n", r.kernel, r.N,
                    r.K, r.B, r.sparsity, r.G, r.bits, r.pattern, r.time_us, r.bytes, r.gbs, r.frac, r.vs_fp16, r.vs_w4,
                    r.copies, bn.dev.name, bn.dev.copy_gbs);
    }
}

gq_status store_rows(Bench &bn) {
    if (!bn.store) return GQ_OK;
    gq_store_bench *sb = (gq_store_bench *)calloc((size_t)bn.nrows + 1, sizeof *sb);
    char(*shape)[48] = (char(*)[48])calloc((size_t)bn.nrows + 1, 48);
    char(*extra)[160] = (char(*)[160])calloc((size_t)bn.nrows + 1, 160);
    for (int i = 0; i < bn.nrows; i++) {
        const Row &r = bn.rows[i];
        snprintf(shape[i], 48, "%dx%dxB%d", r.N, r.K, r.B);
        snprintf(extra[i], 160, "{\"pattern\":\"%s\",\"frac_copy_bw\":%.4f,\"copy_gbps\":%.1f,\"copies\":%d}", r.pattern,
                 r.frac, bn.dev.copy_gbs, r.copies);
        sb[i].kernel = r.kernel, sb[i].shape = shape[i], sb[i].sparsity = r.sparsity, sb[i].bits = r.bits;
        sb[i].grp = r.G, sb[i].time_us = r.time_us, sb[i].bytes = r.bytes, sb[i].gbps = r.gbs;
        sb[i].device = bn.dev.name, sb[i].extra = extra[i];
    }
    gq_status st = gq_store_bench_add(bn.store, sb, bn.nrows);
    free(sb), free(shape), free(extra);
    return st;
}

/* The targets of issue 6 (PERF.md): printed, never silently skipped. Each compares the best kernel of
 * its family against the best baseline measured in this run (the dense W4 baseline is as fast as we can
 * make it, not a strawman). */
void print_targets(const Bench &bn) {
    printf("\ntargets (device copy bandwidth %.0f GB/s):\n", bn.dev.copy_gbs);
    for (int B = 2; B <= 16; B *= 2) { /* small batches (no target; v18, PERF.md): the best of each family */
        const Row *g = best_family(bn, false, 8192, 8192, B, 16, 0.5, "layer"), *f = find_row(bn, "cublas_fp16", 8192, 8192, B, -1, -1, NULL);
        const Row *w = best_family(bn, true, 8192, 8192, B, 128, -1, NULL);
        if (g && f)
            printf("  info  batch %d, W4S50 G16 8192x8192: best GQS %s %.2f us, %.2fx cuBLAS FP16, %.2fx the fastest dense W4 G128 (%s)\n",
                   B, g->kernel, g->time_us, f->time_us / g->time_us, w ? w->time_us / g->time_us : NAN, w ? w->kernel : "-");
    }
    const Row *best = best_family(bn, false, 8192, 8192, 1, 16, 0.5, "layer");
    const Row *fp = find_row(bn, "cublas_fp16", 8192, 8192, 1, -1, -1, NULL);
    const Row *w128 = best_family(bn, true, 8192, 8192, 1, 128, -1, NULL);
    const Row *w16 = best_family(bn, true, 8192, 8192, 1, 16, -1, NULL);
    if (!best) printf("  MISS  W4S50 G16 8192x8192: not measured\n");
    else {
        printf("  %s  W4S50 G16 8192x8192 (%s): %.1f%% of copy bandwidth on its bytes (target >= 75%%)\n",
               best->frac >= 0.75 ? "PASS" : "MISS", best->kernel, 100 * best->frac);
        if (fp) printf("  %s  ... %.2fx faster than cuBLAS FP16 (target >= 4x)\n", fp->time_us / best->time_us >= 4 ? "PASS" : "MISS",
                       fp->time_us / best->time_us);
        if (w128) printf("  %s  ... %.2fx vs dense W4 G128 (%s) (target > 1)\n", w128->time_us > best->time_us ? "PASS" : "MISS",
                         w128->time_us / best->time_us, w128->kernel);
        if (w16) printf("  %s  ... %.2fx vs dense W4 G16 (%s) (target > 1)\n", w16->time_us > best->time_us ? "PASS" : "MISS",
                        w16->time_us / best->time_us, w16->kernel);
        const Row *rs = find_row(bn, "read_stream", 8192, 8192, 1, 16, 0.5, "layer");
        const Row *wl = find_row(bn, "walk_loads", 8192, 8192, 1, 16, 0.5, "layer");
        const Row *wx = find_row(bn, "walk_loads_x", 8192, 8192, 1, 16, 0.5, "layer");
        const Row *ws = find_row(bn, "walk_stream", 8192, 8192, 1, 16, 0.5, "layer");
        const Row *ww = find_row(bn, "walk_ws", 8192, 8192, 1, 16, 0.5, "layer");
        if (rs) printf("  info  ceilings at its bytes: a contiguous read %.2f us (%.1f%% of copy), v7's loads alone %.2f us, "
                       "with the x gather %.2f us, v11's loads alone %.2f us, v16's ring alone %.2f us; the best GQS kernel "
                       "takes %.2fx the contiguous read\n",
                       rs->time_us, 100 * rs->frac, wl ? wl->time_us : NAN, wx ? wx->time_us : NAN, ws ? ws->time_us : NAN,
                       ww ? ww->time_us : NAN, best->time_us / rs->time_us);
    }
    for (int i = 0; i < bn.nrows; i++) {
        const Row &r = bn.rows[i];
        if (strcmp(r.pattern, "uneven")) continue;
        const Row *sk = best_of(bn, GQS_SK, GQ_NELEM(GQS_SK), r.N, r.K, r.B, r.G, r.sparsity, "uneven");
        if (sk != &r) continue; /* one line per point, from its best Stream-K row */
        const Row *rr = best_of(bn, GQS_ROWS, GQ_NELEM(GQS_ROWS), r.N, r.K, r.B, r.G, r.sparsity, "uneven");
        if (!rr) continue;
        const Row *plain = find_row(bn, "gqs_row_v1", r.N, r.K, r.B, r.G, r.sparsity, "uneven");
        printf("  %s  uneven rows %dx%d B%d S%.0f G%d: best task-centric (%s) %.2fx vs best row split (%s) (target >= 1.2x);"
               " %.2fx vs the plain row split (gqs_row_v1, rows in order)\n",
               rr->time_us / r.time_us >= 1.2 ? "PASS" : "MISS", r.N, r.K, r.B, 100 * r.sparsity, r.G, r.kernel,
               rr->time_us / r.time_us, rr->kernel, plain ? plain->time_us / r.time_us : NAN);
        const Row *t13 = find_row(bn, "gqs_task_v13", r.N, r.K, r.B, r.G, r.sparsity, "uneven");
        const Row *r13 = find_row(bn, "gqs_row_v13", r.N, r.K, r.B, r.G, r.sparsity, "uneven");
        if (t13 && r13)
            printf("  info  ... the split alone (one kernel, v13): equal bytes %.2f us vs whole rows in equal counts %.2f us: %.2fx\n",
                   t13->time_us, r13->time_us, r13->time_us / t13->time_us);
    }
}

/* Every version of each kernel measured in this run on the same matrices (same data, same copies):
 * times, then speed-ups (old time / new time, > 1: the later version is faster). */
void print_versions(const Bench &bn) {
    const char *const vs[] = {"", "_v3", "_v5", "_v6", "_v7", "_v8", "_v9", "_v11", "_v12", "_v13", "_v14", "_v15", "_v16", "_v17"}; /* v2 is the unsuffixed name; v1 anchors the row */
    const int nv = (int)GQ_NELEM(vs);
    printf("\nversions (same matrices, this run; time in us; speed-ups over v3):\n");
    printf("%-12s %6s %6s %3s %5s %4s %-7s %8s", "kernel", "N", "K", "B", "spars", "G", "pattern", "v1");
    for (int v = 0; v < nv; v++) printf(" %8s", v ? vs[v] + 1 : "v2");
    printf(" %7s", "v3/v1");
    for (int v = 2; v < nv; v++) printf(" %7s", vs[v] + 1);
    printf("\n");
    for (int i = 0; i < bn.nrows; i++) {
        const Row &r = bn.rows[i];
        const size_t L = strlen(r.kernel);
        if (L < 4 || strcmp(r.kernel + L - 3, "_v1")) continue;
        double t[GQ_NELEM(vs)];
        for (int v = 0; v < nv; v++) {
            char name[48];
            snprintf(name, sizeof name, "%.*s%s", (int)(L - 3), r.kernel, vs[v]);
            const Row *o = find_row(bn, name, r.N, r.K, r.B, r.G, r.sparsity, r.pattern);
            t[v] = o ? o->time_us : NAN;
        }
        printf("%-12.*s %6d %6d %3d %5.2f %4d %-7s %8.2f", (int)(L - 3), r.kernel, r.N, r.K, r.B, r.sparsity, r.G, r.pattern,
               r.time_us);
        for (int v = 0; v < nv; v++) printf(" %8.2f", t[v]);
        printf(" %6.2fx", r.time_us / t[1]);
        for (int v = 2; v < nv; v++) printf(" %6.2fx", t[1] / t[v]);
        printf("\n");
    }
}

} // namespace

extern "C" gq_status gq_bench_kernel_run(const gq_bench_kernel_opts *o) {
    if (gq_gpu_available() <= 0) return gq_errf(GQ_ERR_UNSUPPORTED, "bench kernel: no CUDA device (HINT: run on the GPU machine)");
    Bench bn;
    memset(&bn, 0, sizeof bn);
    bn.reps = o->reps > 0 ? o->reps : 30;
    if (bn.reps < 20) bn.reps = 20; /* METHOD.md: median of >= 20 */
    gq_status st = GQ_OK;
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    snprintf(bn.dev.name, sizeof bn.dev.name, "%s", p.name);
    bn.dev.nsm = p.multiProcessorCount, bn.dev.l2 = (size_t)p.l2CacheSize;
    CUDA_CHECK(cudaStreamCreateWithFlags(&bn.st, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&bn.blas));
    CUBLAS_CHECK(cublasSetStream(bn.blas, bn.st));
    CUDA_CHECK(cudaMalloc(&bn.blas_ws, 32u << 20)); /* fixed workspace: no allocation inside graph capture */
    CUBLAS_CHECK(cublasSetWorkspace(bn.blas, bn.blas_ws, 32u << 20));
    if (o->csv_path) {
        bn.csv = fopen(o->csv_path, "w");
        if (!bn.csv) return gq_errf(GQ_ERR_IO, "bench kernel: cannot write %s", o->csv_path);
    }
    if (o->store_path) GQ_TRY(gq_store_open(o->store_path, &bn.store));
    GQ_TRY(measure_copy(bn));
    fprintf(stderr, "gqsa bench: %s, %d SMs, L2 %.0f MB, D2D copy %.0f GB/s (read+write)\n", bn.dev.name, bn.dev.nsm,
            bn.dev.l2 / 1e6, bn.dev.copy_gbs);
    const Shape full[] = {{8192, 8192, "8192x8192"}, {4096, 4096, "7B q/k/v/o 4096x4096"},
                          {11008, 4096, "7B gate/up 11008x4096"}, {4096, 11008, "7B down 4096x11008"}};
    const Shape quick[] = {{8192, 8192, "8192x8192"}, {4096, 4096, "7B q/k/v/o 4096x4096"}};
    const Shape *sh = o->quick ? quick : full;
    const int nsh = o->quick ? 2 : 4;
    const double t0 = gq_now();
    for (int i = 0; i < nsh && st == GQ_OK; i++)
        if (!o->only || strstr(sh[i].label, o->only)) st = sweep_shape(bn, sh[i], o->quick, o->batches, o->nbatches);
    fill_speedups(bn);
    print_and_write(bn);
    print_versions(bn);
    print_targets(bn);
    printf("%d rows in %.0f s; %d correctness failures%s\n", bn.nrows, gq_now() - t0, bn.check_failures,
           bn.store ? "; rows added to the store" : "");
    if (st == GQ_OK) st = store_rows(bn);
    if (bn.csv) fclose(bn.csv);
    if (bn.store) gq_store_close(bn.store);
    cublasDestroy(bn.blas);
    cudaFree(bn.blas_ws);
    cudaStreamDestroy(bn.st);
    free(bn.rows);
    if (st == GQ_OK && bn.check_failures)
        st = gq_errf(GQ_ERR_NUMERIC, "bench kernel: %d kernel(s) failed the correctness check (see stderr)", bn.check_failures);
    return st;
}
