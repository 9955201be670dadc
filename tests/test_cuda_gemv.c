/* test_cuda_gemv.c — the GPU GQS GEMV kernels (v1, v2, v3 of row split, Stream-K, dense W4, and the v4
 * task-centric split; worker caps force long shares and several rows per worker, task caps cut rows into
 * many tasks) against the CPU float64
 * reference gq_gqs_gemv_ref (core/gqs.c) over many random shapes, sparsities, group sizes, row-density
 * patterns (incl. very uneven rows), batches 1..16, fp16 and fp32 outputs. Output poisoned (NaN) before
 * every launch; every element must be written; two launches must agree bit for bit (a race moves).
 * Prints SKIP and passes when gq_gpu_available() == 0 (the CPU machine).
 *
 * Two kinds of data:
 *   exact  — dyadic scales (2^-4..2^-7), integer zeros, x = m/8 with |m| <= 8: every fp16 dequant, every
 *            fp16 product and 4-term chain, every fp32 partial sum is exact (|sums| < 2^24 units of 2^-10
 *            for K <= 16384), so the GPU must equal the reference exactly (fp16 out: the reference
 *            rounded once to fp16). Any indexing, nibble-order or fix-up error shows.
 *   random — continuous scales/zeros, x ~ N(0,1) in fp16. Tolerance per output row r:
 *              ATOL + RTOL*|ref| + C * sqrt(sum_g E_g^2) + 2^-22 * sum|w x|
 *            with, per kept group g (scale s, min m = -zero*s, the kernel numerics in gqs_gemv.h):
 *              E_g = 2^-11 * ( |s * sum_j q_j x_j| + |m * sum_j x_j|     fp16 rounding of s and m
 *                              + sum_j |w_j x_j|                         fp16 rounding of each w
 *                              + 4 * sum_j |w_j x_j| )                   4-term fp16 chains (bound)
 *            Each E_g bounds group g's error; errors of different groups are independent roundings, so
 *            their sum is ~ sqrt(sum E_g^2) in scale: C = 4 leaves margin, while one dropped or
 *            misplaced 8-weight piece (error ~ sqrt(8) rms|w x|) still exceeds it at these K.
 *            RTOL = 2^-10 for fp16 output (one rounding of the result, 2^-11, plus slack), 1e-6 for fp32.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/gpu.h"
#include "cuda/gqs_gemv.h"
#ifdef GQSA_CUDA
#include <cuda_runtime.h>
#endif

#define TOL_ATOL 1e-6
#define TOL_C 4.0
#define TOL_RTOL_FP16 0x1p-10
#define TOL_RTOL_FP32 1e-6

static int have_gpu(void) {
    if (gq_gpu_available() > 0) return 1;
    printf("SKIP test_cuda_gemv: no CUDA device (gq_gpu_available() == 0)\n");
    return 0;
}

typedef struct {
    int N, K, G, B;
    double sp;
    gq_density pat;
    int exact, y_fp32, sk_ctas;
    int64_t max_workers; /* v2 worker cap (0 = none): long shares, rows cut many times, rpw > 1 */
    int64_t task_units;  /* v4 units per task (0 = default): 1 cuts every row into single units */
    int v13_ring, v13_ctas; /* v13 ring bytes per warp and CTAs per SM (0 = defaults) */
    gq_v16_config v16;      /* v16 ring, slot, consumers, CTAs per SM, x mode, pieces (0 = defaults) */
    int v17_split;          /* v17 warps per row (0 = the rule's choice) */
} gcase;

static int n_v17_split; /* cases in which gqs_row_v17 ran with R > 1 (the tests check there were some) */
static int n_v18_mma;   /* cases in which gqs_mma_v18 ran its own kernel (batch > 1, G >= 16) */

static int run_case(const gcase *c, uint64_t seed) {
    gq_gqs g;
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_random(&g, c->N, c->K, c->G, 4, c->sp, c->pat, c->exact, seed), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "case", &d), GQ_OK);
    gq_gqs_gpu *m = NULL;
    gq_status st = gq_gqs_gpu_upload(&d, &m);
    if (st != GQ_OK) fail_msg("upload: %s", gq_errmsg());
    gq_gqs_gpu_set_sk_ctas(m, c->sk_ctas);
    gq_gqs_gpu_set_max_workers(m, c->max_workers);
    if (c->task_units && gq_gqs_gpu_set_task_units(m, c->task_units) != GQ_OK) fail_msg("task units: %s", gq_errmsg());
    /* v10: the same caps as v2's workers (few warps: rows cut into long chains of parts) */
    if (c->max_workers && gq_gqs_gpu_set_v10_workers(m, c->max_workers) != GQ_OK) fail_msg("v10 workers: %s", gq_errmsg());
    if ((c->v13_ring || c->v13_ctas) && gq_gqs_gpu_set_v13(m, c->v13_ring, c->v13_ctas) != GQ_OK) fail_msg("v13: %s", gq_errmsg());
    if (gq_gqs_gpu_set_v16(m, &c->v16) != GQ_OK) fail_msg("v16: %s", gq_errmsg());
    if (gq_gqs_gpu_set_v17_split(m, c->v17_split) != GQ_OK) fail_msg("v17: %s", gq_errmsg());
    const int N = c->N, K = c->K, B = c->B, G = c->G;
    gq_rng rng;
    gq_rng_seed(&rng, seed * 31 + 7);
    uint16_t *xh = malloc((size_t)B * K * 2);
    float *xf = malloc((size_t)B * K * sizeof(float));
    for (int i = 0; i < B * K; i++) {
        float v = c->exact ? (float)((int)gq_rng_below(&rng, 17) - 8) / 8.0f : (float)gq_rng_normal(&rng);
        xh[i] = gq_fp32_to_fp16(v);
        xf[i] = gq_fp16_to_fp32(xh[i]);
    }
    /* reference and tolerance, from the source gq_gqs (not the packed form) */
    float *ref = malloc((size_t)B * N * sizeof(float));
    double *tol = malloc((size_t)B * N * sizeof(double));
    for (int b = 0; b < B; b++) {
        gq_gqs_gemv_ref(&g, xf + (size_t)b * K, ref + (size_t)b * N);
        for (int r = 0; r < N; r++) {
            double e2 = 0, abssum = 0;
            for (int32_t i = g.row_index[r]; i < g.row_index[r + 1]; i++) {
                const float *x = xf + (size_t)b * K + (size_t)g.group_col[i] * G;
                double s = g.scales[i], mn = -(double)g.zeros[i] * g.scales[i], qx = 0, sx = 0, awx = 0;
                for (int j = 0; j < G; j++) {
                    int q = gq_gqs_get_code(&g, (size_t)i, j);
                    qx += q * (double)x[j], sx += x[j], awx += fabs((q * s + mn) * x[j]);
                }
                double eg = 0x1p-11 * (fabs(s * qx) + fabs(mn * sx) + 5 * awx);
                e2 += eg * eg, abssum += awx;
            }
            double rt = c->y_fp32 ? TOL_RTOL_FP32 : TOL_RTOL_FP16;
            tol[(size_t)b * N + r] = c->exact ? 0 : TOL_ATOL + rt * fabs(ref[(size_t)b * N + r]) + TOL_C * sqrt(e2) + 0x1p-22 * abssum;
        }
    }
    void *xd = NULL, *yd = NULL;
    const size_t ybytes = (size_t)B * N * (c->y_fp32 ? 4 : 2);
    assert_int_equal(gq_gemv_dev_alloc((size_t)B * K * 2, &xd), GQ_OK);
    assert_int_equal(gq_gemv_dev_alloc(ybytes, &yd), GQ_OK);
    assert_int_equal(gq_gemv_dev_upload(xd, xh, (size_t)B * K * 2), GQ_OK);
    unsigned char *y1 = malloc(ybytes), *y2 = malloc(ybytes);
    /* v6 runs v1's unit decoder over the same units per lane in the same order, v7, v8, v9, v11, v12, v13 (row) v3's quad walk
     * with the lean dequantization: each must equal its counterpart (an earlier kind) bit for bit */
    int same_as[GQ_GEMV_NKINDS];
    for (int k = 0; k < GQ_GEMV_NKINDS; k++) same_as[k] = -1;
    same_as[GQ_GEMV_ROW_V6] = GQ_GEMV_ROW_V1, same_as[GQ_GEMV_DENSE_W4_V6] = GQ_GEMV_DENSE_W4_V1;
    same_as[GQ_GEMV_ROW_V7] = same_as[GQ_GEMV_ROW_V8] = same_as[GQ_GEMV_ROW_V9] = same_as[GQ_GEMV_ROW_V11] = GQ_GEMV_ROW_V3;
    same_as[GQ_GEMV_ROW_V12] = same_as[GQ_GEMV_ROW_V13] = same_as[GQ_GEMV_ROW_V14] = GQ_GEMV_ROW_V3; /* row splits cut no row */
    same_as[GQ_GEMV_DENSE_W4_V7] = same_as[GQ_GEMV_DENSE_W4_V8] = same_as[GQ_GEMV_DENSE_W4_V9] = GQ_GEMV_DENSE_W4_V3;
    same_as[GQ_GEMV_DENSE_W4_V11] = same_as[GQ_GEMV_DENSE_W4_V12] = GQ_GEMV_DENSE_W4_V3;
    same_as[GQ_GEMV_ROW_V15] = GQ_GEMV_ROW_V3, same_as[GQ_GEMV_DENSE_W4_V15] = GQ_GEMV_DENSE_W4_V3; /* a prefetch is a hint */
    same_as[GQ_GEMV_ROW_V16] = GQ_GEMV_ROW_V3, same_as[GQ_GEMV_DENSE_W4_V16] = GQ_GEMV_DENSE_W4_V3; /* whole rows, v11's lanes */
    unsigned char *yk[GQ_GEMV_NKINDS] = {0}; /* each reference kind's output */
    int bad_total = 0, nkinds = 0;
    for (int kind = 0; kind < GQ_GEMV_NKINDS; kind++) {
        if (gq_gemv_kind_is_dense((gq_gemv_kind)kind) && !gq_gqs_gpu_is_dense(m)) continue;
        nkinds++;
        for (int rep = 0; rep < 2; rep++) {
            assert_int_equal(gq_gemv_dev_fill(yd, 0xFF, ybytes), GQ_OK); /* NaN in fp16 and fp32 */
            st = gq_gqs_gpu_gemv(m, (gq_gemv_kind)kind, xd, B, yd, c->y_fp32, NULL);
            if (st == GQ_OK) st = gq_gemv_dev_sync();
            if (st != GQ_OK) fail_msg("%s: %s", gq_gemv_kind_name((gq_gemv_kind)kind), gq_errmsg());
            assert_int_equal(gq_gemv_dev_download(rep ? y2 : y1, yd, ybytes), GQ_OK);
        }
        if (memcmp(y1, y2, ybytes) != 0) {
            printf("FAIL %s: two launches differ (race?) N=%d K=%d G=%d B=%d\n", gq_gemv_kind_name((gq_gemv_kind)kind), N,
                   K, G, B);
            bad_total++;
        }
        for (int k = 0; k < GQ_GEMV_NKINDS; k++)
            if (same_as[k] == kind && !yk[kind]) {
                yk[kind] = malloc(ybytes);
                memcpy(yk[kind], y1, ybytes);
            }
        /* v17 with one warp per row, or at batch > 1, is v11 (the rule's choice is known once the kind has run) */
        if ((kind == GQ_GEMV_ROW_V17 || kind == GQ_GEMV_DENSE_W4_V17) &&
            (B > 1 || gq_gqs_gpu_v17_split(m, kind == GQ_GEMV_DENSE_W4_V17) == 1))
            same_as[kind] = kind == GQ_GEMV_ROW_V17 ? GQ_GEMV_ROW_V3 : GQ_GEMV_DENSE_W4_V3;
        if (kind == GQ_GEMV_ROW_V17 && B == 1) n_v17_split += gq_gqs_gpu_v17_split(m, 0) > 1;
        /* v18 at batch 1 and G8 is v7 */
        if ((kind == GQ_GEMV_MMA_V18 || kind == GQ_GEMV_DENSE_W4_MMA_V18) && (B == 1 || G == 8))
            same_as[kind] = kind == GQ_GEMV_MMA_V18 ? GQ_GEMV_ROW_V3 : GQ_GEMV_DENSE_W4_V3;
        if (kind == GQ_GEMV_MMA_V18 && B > 1 && G >= 16) n_v18_mma++;
        const int ref_kind = same_as[kind];
        if (ref_kind >= 0 && (!yk[ref_kind] || memcmp(y1, yk[ref_kind], ybytes))) {
            printf("FAIL %s: differs from %s N=%d K=%d G=%d B=%d\n", gq_gemv_kind_name((gq_gemv_kind)kind),
                   gq_gemv_kind_name((gq_gemv_kind)ref_kind), N, K, G, B);
            bad_total++;
        }
        int bad = 0;
        double maxerr = 0;
        for (int i = 0; i < B * N; i++) {
            double got;
            if (c->y_fp32) {
                float f;
                memcpy(&f, y1 + (size_t)i * 4, 4);
                got = f;
            } else {
                uint16_t h;
                memcpy(&h, y1 + (size_t)i * 2, 2);
                got = gq_fp16_to_fp32(h);
            }
            double want = c->exact && !c->y_fp32 ? gq_fp16_to_fp32(gq_fp32_to_fp16(ref[i])) : ref[i];
            double err = fabs(got - want);
            if (!(err <= tol[i])) { /* NaN (unwritten) fails here too */
                if (bad < 5)
                    printf("  %s b=%d row=%d: got %.9g want %.9g err %.3g tol %.3g\n",
                           gq_gemv_kind_name((gq_gemv_kind)kind), i / N, i % N, got, want, err, tol[i]);
                bad++;
            }
            if (err > maxerr || isnan(err)) maxerr = isnan(err) ? INFINITY : err;
        }
        if (bad) {
            printf("FAIL %s N=%d K=%d G=%d B=%d sp=%.2f %s %s %s: %d/%d wrong, max err %.3g\n",
                   gq_gemv_kind_name((gq_gemv_kind)kind), N, K, G, B, c->sp, gq_density_name(c->pat),
                   c->exact ? "exact" : "random", c->y_fp32 ? "fp32" : "fp16", bad, B * N, maxerr);
            bad_total++;
        }
    }
    for (int k = 0; k < GQ_GEMV_NKINDS; k++) free(yk[k]);
    free(y1), free(y2), free(xh), free(xf), free(ref), free(tol);
    gq_gemv_dev_free(xd), gq_gemv_dev_free(yd);
    gq_gqs_gpu_free(m);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
    assert_true(nkinds >= 4);
    return bad_total;
}

static void test_random_configs(void **st) {
    (void)st;
    if (!have_gpu()) return;
    const int Gs[] = {8, 16, 32, 64, 128};
    const double sps[] = {0.0, 0.3, 0.5, 0.7, 0.9};
    gq_rng rng;
    gq_rng_seed(&rng, 2024);
    int fails = 0, n = 0;
    for (int i = 0; i < 64; i++, n++) {
        gcase c;
        memset(&c, 0, sizeof c); /* fields not set below: defaults (an unset v13 ring failed on 2026-12-04) */
        c.G = Gs[i % 5];
        c.sp = sps[(i / 5) % 5];
        c.pat = (gq_density)(i % 3);
        c.B = 1 + (int)gq_rng_below(&rng, 16);
        c.N = 1 + (int)gq_rng_below(&rng, 400);
        const int kmult = c.G > 32 ? c.G : 32; /* K % 32 == 0 so the dense kernel runs at sp = 0 */
        c.K = kmult * (1 + (int)gq_rng_below(&rng, (uint64_t)(4096 / kmult)));
        if (i % 7 == 3) c.K = c.G * (1 + 2 * (int)gq_rng_below(&rng, 20)); /* K % 32 != 0 for small G */
        c.exact = i % 2;
        c.y_fp32 = (i / 2) % 2;
        c.sk_ctas = (int)(i % 4); /* 0 = occupancy, 1..3: few shares, long rows cut many times */
        {
            const int64_t caps[] = {0, 1, 3, 37, 200, 0, 5};
            c.max_workers = caps[i % 7]; /* v2: from one worker for everything to the full grid */
            const int64_t tus[] = {0, 1, 2, 5, 32, 0, 7};
            c.task_units = tus[(i / 3) % 7]; /* v4: from single-unit tasks to the default */
        }
        fails += run_case(&c, 100 + (uint64_t)i);
    }
    /* edge cases: one row; all groups pruned; very uneven large; batch 16 at 4096 x 4096 */
    const gcase edge[] = {
        {1, 4096, 16, 1, 0.5, GQ_DENSITY_ROW, 0, 0, 0, 0, 0, 0, 0, {0}, 0},   {64, 512, 16, 3, 1.0, GQ_DENSITY_ROW, 1, 0, 0, 0, 0, 0, 0, {0}, 0},
        {2048, 4096, 16, 1, 0.7, GQ_DENSITY_UNEVEN, 0, 0, 0, 0, 0, 0, 0, {0}, 0}, {2048, 4096, 8, 2, 0.5, GQ_DENSITY_UNEVEN, 1, 1, 1, 0, 0, 0, 0, {0}, 0},
        {4096, 4096, 16, 16, 0.5, GQ_DENSITY_LAYER, 1, 0, 0, 0, 0, 0, 0, {0}, 0}, {300, 11008, 64, 5, 0.0, GQ_DENSITY_ROW, 0, 1, 2, 0, 0, 0, 0, {0}, 0},
        /* v2: the benchmark's shapes at batch 1 (x in shared memory), and past the shared-memory limit
         * (B=4 at K=8192: x from global memory), and few workers over many rows */
        {8192, 8192, 16, 1, 0.5, GQ_DENSITY_UNEVEN, 1, 0, 0, 0, 0, 0, 0, {0}, 0}, {1024, 8192, 16, 4, 0.5, GQ_DENSITY_LAYER, 1, 1, 0, 0, 0, 0, 0, {0}, 0},
        {1024, 8192, 16, 4, 0.5, GQ_DENSITY_LAYER, 0, 0, 0, 7, 0, 0, 0, {0}, 0}, {3000, 1024, 8, 1, 0.95, GQ_DENSITY_UNEVEN, 1, 0, 0, 3, 0, 0, 0, {0}, 0},
        {500, 4096, 128, 1, 0.0, GQ_DENSITY_ROW, 1, 0, 0, 11, 0, 0, 0, {0}, 0}, {700, 13 * 16, 16, 2, 0.5, GQ_DENSITY_LAYER, 0, 0, 0, 0, 0, 0, 0, {0}, 0},
        /* v10 at batch 1: few warps over long uneven rows (chains of parts), one row over 7 warps */
        {2048, 4096, 16, 1, 0.5, GQ_DENSITY_UNEVEN, 0, 0, 0, 200, 0, 0, 0, {0}, 0}, {1, 16384, 16, 1, 0.3, GQ_DENSITY_ROW, 1, 1, 0, 7, 0, 0, 0, {0}, 0},
        {8192, 8192, 16, 1, 0.5, GQ_DENSITY_LAYER, 0, 0, 0, 0, 0, 0, 0, {0}, 0},
        /* v4: uneven rows cut into single-unit tasks (thousands of arrivals per row), and batch 16 */
        {2048, 4096, 16, 1, 0.5, GQ_DENSITY_UNEVEN, 1, 0, 0, 0, 1, 0, 0, {0}, 0}, {512, 8192, 16, 16, 0.5, GQ_DENSITY_UNEVEN, 0, 1, 0, 0, 3, 0, 0, {0}, 0},
        {4096, 11008, 16, 1, 0.5, GQ_DENSITY_LAYER, 0, 0, 0, 0, 0, 0, 0, {0}, 0},
    };
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++, n++) fails += run_case(&edge[i], 9000 + i);
    printf("%d configurations, %d failures\n", n, fails);
    assert_true(n >= 50);
    assert_int_equal(fails, 0);
}

/* A batch-1 case of the per-version tests below: case i's sparsity cycles 0.5, 0.5, 0.97 (empty rows) and 0
 * (dense: the W4 kinds run; rows uniform), its pattern uneven / layer / row, its output fp16 or fp32 by i / 2. */
static gcase b1_case(int G, int i, int N, int K, int exact) {
    const gq_density pats[] = {GQ_DENSITY_UNEVEN, GQ_DENSITY_LAYER, GQ_DENSITY_ROW};
    gcase c;
    memset(&c, 0, sizeof c);
    c.G = G, c.B = 1, c.pat = pats[i % 3];
    c.sp = i % 4 == 3 ? 0.0 : i % 4 == 2 ? 0.97 : 0.5;
    if (c.sp == 0.0) c.pat = GQ_DENSITY_ROW;
    c.N = N, c.K = K, c.exact = exact, c.y_fp32 = (i / 2) % 2;
    return c;
}

/* v13 and v14 at batch 1 (their only batch): every ring size, few and many warps (a cap of 1 warp walks the whole
 * stream through one ring, wrapping it thousands of times; the full grid cuts small rows into many parts),
 * every G, empty rows, dense W4. */
static void test_v13_configs(void **st) {
    (void)st;
    if (!have_gpu()) return;
    const int rings[] = {4096, 8192, 16384}, Gs[] = {8, 16, 32, 64, 128};
    const int64_t caps[] = {0, 1, 5, 37, 0};
    int fails = 0, n = 0;
    for (int ri = 0; ri < 3; ri++)
        for (int i = 0; i < 10; i++, n++) {
            gcase c = b1_case(Gs[i % 5], i, i < 5 ? 1 + 97 * i : 2048, i % 2 ? 4096 : 1024 + 128 * i, i % 2);
            c.max_workers = caps[i % 5];
            c.v13_ring = rings[ri], c.v13_ctas = i == 9 ? 1 : 0;
            fails += run_case(&c, 7000 + 31 * (uint64_t)ri + (uint64_t)i);
        }
    printf("v13-v15 (batch 1): %d configurations, %d failures\n", n, fails);
    assert_int_equal(fails, 0);
}

/* v16 at batch 1: the default ring (192 KB per SM, 31 consumers) over every G, pattern and empty rows; small
 * rings of few slots (the producer waits on every refill, the ring wraps hundreds of times, a row spans
 * up to three slots), a ring of 3 slots (not a power of two), one consumer per CTA (it releases every slot
 * alone), two CTAs per SM, and x in shared memory. */
static void test_v16_configs(void **st) {
    (void)st;
    if (!have_gpu()) return;
    /* ring, slot, consumers, CTAs per SM, x mode, copies per slot (3: pieces of a third, the last one short), */
    /* ... how the barriers are waited on (-1: a test_wait spin; > 0: try_wait with that suspend-time hint) and by
     * whom (0: every lane; 1: lane 0, the warp following through __syncwarp) */
    const gq_v16_config cfgs[] = {{0, 0, 0, 0, 0, 0, 0, 0},        {4096, 1024, 3, 0, 0, 1, -1, 0},  {3072, 1024, 31, 0, 0, 3, 20, 1},
                                  {8192, 2048, 1, 0, 0, 32, 0, 0},  {0, 0, 15, 2, 0, 1, 200, 1},       {0, 0, 0, 0, 2, 0, -1, 1},
                                  {4096, 1024, 7, 0, 2, 2, 0, 0},   {65536, 16384, 31, 1, 1, 32, 20, 1}};
    const int Gs[] = {8, 16, 32, 64, 128};
    int fails = 0, n = 0;
    for (int ci = 0; ci < 8; ci++)
        for (int i = 0; i < 6; i++, n++) {
            const int G = Gs[(i + ci) % 5];
            /* rows within the ring less a slot: at most 2 KB for the 3- and 4-slot rings of 1 KB (G8 stores 10
             * bytes per quad of 8 weights: K <= 1024 there) */
            const int small = cfgs[ci].ring && cfgs[ci].ring <= 8192;
            const int K = small ? (G == 8 ? 1024 : 2048) : i % 2 ? 4096 : 1024 + 128 * i;
            gcase c = b1_case(G, i, i < 3 ? 1 + 211 * i : 3000, K, i % 2);
            c.v16 = cfgs[ci];
            fails += run_case(&c, 7700 + 31 * (uint64_t)ci + (uint64_t)i);
        }
    printf("v16 (batch 1): %d configurations, %d failures\n", n, fails);
    assert_int_equal(fails, 0);
}

/* v17 at batch 1 with 1, 2 and 4 warps per row forced, and the rule's choice: every G, pattern, empty rows
 * (S97), rows with fewer rounds than parts (K 256-1024: 1-4 rounds), a last CTA with rows missing (N not a
 * multiple of its rows), dense W4; exact data (every partial sum exact: the split must give the reference's
 * bits) and random data (the tolerance of every kind). R = 1 is checked against v3 bit for bit. */
static void test_v17_splits(void **st) {
    (void)st;
    if (!have_gpu()) return;
    const int Gs[] = {8, 16, 32, 64, 128}, Rs[] = {1, 2, 4, 0};
    int fails = 0, n = 0;
    n_v17_split = 0;
    for (int ri = 0; ri < 4; ri++)
        for (int i = 0; i < 8; i++, n++) {
            const int G = Gs[(i + ri) % 5], Ns[] = {1, 2, 3, 97, 1001, 2048, 4095, 300};
            gcase c = b1_case(G, i, Ns[i], i < 4 ? 256 * (1 + i) : i % 2 ? 4096 : 11008 / G * G, (i + ri) % 2);
            c.v17_split = Rs[ri];
            fails += run_case(&c, 7900 + 31 * (uint64_t)ri + (uint64_t)i);
        }
    printf("v17 (batch 1): %d configurations, %d failures, %d of them split\n", n, fails, n_v17_split);
    assert_true(n_v17_split >= 16); /* R = 2 and 4 forced ran split (a case with no row has none to split) */
    assert_int_equal(fails, 0);
}

/* v18 (tensor cores, batch 2..16): both batch octets, full and partial (B 2, 8, 9, 16); tiles cut by N (1, 15,
 * 17 rows; the last tile partial); every G it has a kernel for; uneven rows (heavy runs of full rows beside
 * sparse ones: masks from full to single rows), S97 (tiles with no entry, warps with no block), nothing kept,
 * dense W4 (every mask full); exact data (the products are exact and every partial sum fits fp32, so the tensor
 * core's fp32 sums must give the reference's bits) and random data (the common tolerance). */
static void test_v18_configs(void **st) {
    (void)st;
    if (!have_gpu()) return;
    const int Gs[] = {16, 32, 64, 128, 16}, Bs[] = {2, 8, 9, 16, 5};
    const int Ns[] = {1, 15, 17, 300, 4096, 2048};
    const double sps[] = {0.5, 0.0, 0.97, 0.5, 1.0, 0.3};
    int fails = 0, n = 0;
    n_v18_mma = 0;
    for (int i = 0; i < 30; i++, n++) {
        gcase c;
        memset(&c, 0, sizeof c);
        c.G = Gs[i % 5], c.B = Bs[(i / 5) % 5], c.N = Ns[i % 6], c.sp = sps[(i / 2) % 6];
        c.pat = c.sp == 0.0 ? GQ_DENSITY_ROW : (gq_density)(i % 3);
        c.K = i % 4 == 3 ? 11008 / c.G * c.G : 256 * (1 + i % 8);
        c.exact = i % 2, c.y_fp32 = (i / 3) % 2;
        fails += run_case(&c, 8300 + (uint64_t)i);
    }
    printf("v18 (batch 2-16): %d configurations, %d failures, %d with the tensor-core kernel\n", n, fails, n_v18_mma);
    assert_true(n_v18_mma >= 20);
    assert_int_equal(fails, 0);
}

/* Argument errors come back as statuses (no launch). */
static void test_bad_args(void **st) {
    (void)st;
    if (!have_gpu()) return;
    gq_gqs g;
    gq_gqs_dev d;
    gq_gqs_gpu *m;
    assert_int_equal(gq_gqs_random(&g, 8, 64, 16, 4, 0.5, GQ_DENSITY_ROW, 0, 1), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "args", &d), GQ_OK);
    assert_int_equal(gq_gqs_gpu_upload(&d, &m), GQ_OK);
    void *xd, *yd;
    assert_int_equal(gq_gemv_dev_alloc(64 * 2 * 17, &xd), GQ_OK);
    assert_int_equal(gq_gemv_dev_alloc(8 * 4 * 17, &yd), GQ_OK);
    assert_int_equal(gq_gqs_gpu_gemv(m, GQ_GEMV_ROW, xd, 0, yd, 0, NULL), GQ_ERR_ARG);
    assert_int_equal(gq_gqs_gpu_gemv(m, GQ_GEMV_ROW, xd, 17, yd, 0, NULL), GQ_ERR_ARG);
    assert_int_equal(gq_gqs_gpu_gemv(m, GQ_GEMV_ROW, (char *)xd + 2, 1, yd, 0, NULL), GQ_ERR_ARG);
    assert_int_equal(gq_gqs_gpu_gemv(m, GQ_GEMV_DENSE_W4, xd, 1, yd, 0, NULL), GQ_ERR_ARG); /* not dense */
    assert_int_equal(gq_gqs_gpu_set_v13(m, 1000, 0), GQ_ERR_ARG); /* no kernel for that ring size */
    assert_int_equal(gq_gqs_gpu_set_v15_depth(m, 9), GQ_ERR_ARG);
    assert_int_equal(gq_gqs_gpu_set_v15_depth(m, -1), GQ_ERR_ARG);
    assert_int_equal(gq_gqs_gpu_set_v17_split(m, 3), GQ_ERR_ARG);
    assert_int_equal(gq_gqs_gpu_set_v17_split(m, -1), GQ_ERR_ARG);
    assert_int_equal(gq_gqs_gpu_v17_split(m, 0), 0); /* no row stream yet */
    const gq_v16_config bad[] = {{0, 1000, 0, 0, 0, 0, 0, 0}, /* not a power of two */
                                 {0, 0, 32, 0, 0, 0, 0, 0},   /* 33 warps */
                                 {0, 0, 0, 0, 3, 0, 0, 0},    {0, 0, 0, 0, 0, 33, 0, 0}, {0, 0, 0, 0, 0, 0, -2, 0}};
    for (int i = 0; i < 5; i++) assert_int_equal(gq_gqs_gpu_set_v16(m, &bad[i]), GQ_ERR_ARG);
    const gq_v16_config half = {1536, 1024, 0, 0, 0, 0, 0, 0}, three = {0, 0, 15, 3, 0, 0, 0, 0};
    assert_int_equal(gq_gqs_gpu_set_v16(m, &half), GQ_OK); /* accepted here, refused at prepare: */
    assert_int_equal(gq_gqs_gpu_prepare(m, GQ_GEMV_ROW_V16, NULL), GQ_ERR_ARG); /* 1.5 slots */
    assert_int_equal(gq_gqs_gpu_set_v16(m, &three), GQ_OK);
    assert_int_equal(gq_gqs_gpu_prepare(m, GQ_GEMV_ROW_V16, NULL), GQ_ERR_ARG); /* 3 CTAs of 16 warps at 64 registers do not fit an SM */
    assert_int_equal(gq_gqs_gpu_set_v16(m, NULL), GQ_OK);
    assert_int_equal(gq_gqs_gpu_gemv(m, GQ_GEMV_ROW_V16, xd, 1, yd, 0, NULL), GQ_OK); /* the defaults run */
    assert_int_equal(gq_gemv_dev_sync(), GQ_OK);
    gq_gemv_dev_free(xd), gq_gemv_dev_free(yd);
    gq_gqs_gpu_free(m);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
}

/* v10's round split and v11's row stream are built by synchronous copies: a first launch of the kind
 * inside graph capture must fail with a status (not break the capture's stream or launch without its
 * data); after gq_gqs_gpu_prepare the captured launch runs and its replay equals the eager result bit for
 * bit (both kinds are deterministic). */
static void capture_case(gq_gemv_kind kind, double sp, gq_density pat) {
#ifdef GQSA_CUDA
    gq_gqs g;
    gq_gqs_dev d;
    gq_gqs_gpu *m;
    const int N = 300, K = 1024;
    assert_int_equal(gq_gqs_random(&g, N, K, 16, 4, sp, pat, 0, 5), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "capture", &d), GQ_OK);
    assert_int_equal(gq_gqs_gpu_upload(&d, &m), GQ_OK);
    uint16_t *xh = malloc((size_t)K * 2), *y0 = malloc((size_t)N * 2), *y1 = malloc((size_t)N * 2);
    gq_rng rng;
    gq_rng_seed(&rng, 9);
    for (int i = 0; i < K; i++) xh[i] = gq_fp32_to_fp16((float)gq_rng_normal(&rng));
    void *xd, *yd;
    assert_int_equal(gq_gemv_dev_alloc((size_t)K * 2, &xd), GQ_OK);
    assert_int_equal(gq_gemv_dev_alloc((size_t)N * 2, &yd), GQ_OK);
    assert_int_equal(gq_gemv_dev_upload(xd, xh, (size_t)K * 2), GQ_OK);
    cudaStream_t s;
    assert_int_equal(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess);
    cudaGraph_t graph = NULL;
    assert_int_equal(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    const gq_status in_capture = gq_gqs_gpu_gemv(m, kind, xd, 1, yd, 0, s);
    assert_int_equal(cudaStreamEndCapture(s, &graph), cudaSuccess);
    if (graph) cudaGraphDestroy(graph);
    assert_int_equal(in_capture, GQ_ERR_ARG);
    assert_non_null(strstr(gq_errmsg(), "gq_gqs_gpu_prepare"));
    /* prepared: eager, then captured and replayed into a NaN-filled y */
    assert_int_equal(gq_gqs_gpu_prepare(m, kind, s), GQ_OK);
    assert_int_equal(gq_gqs_gpu_gemv(m, kind, xd, 1, yd, 0, s), GQ_OK);
    assert_int_equal(cudaStreamSynchronize(s), cudaSuccess);
    assert_int_equal(gq_gemv_dev_download(y0, yd, (size_t)N * 2), GQ_OK);
    assert_int_equal(gq_gemv_dev_fill(yd, 0xFF, (size_t)N * 2), GQ_OK);
    assert_int_equal(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), cudaSuccess);
    const gq_status captured = gq_gqs_gpu_gemv(m, kind, xd, 1, yd, 0, s);
    assert_int_equal(cudaStreamEndCapture(s, &graph), cudaSuccess);
    assert_int_equal(captured, GQ_OK);
    cudaGraphExec_t ge;
    assert_int_equal(cudaGraphInstantiate(&ge, graph, 0), cudaSuccess);
    assert_int_equal(cudaGraphLaunch(ge, s), cudaSuccess);
    assert_int_equal(cudaStreamSynchronize(s), cudaSuccess);
    assert_int_equal(gq_gemv_dev_download(y1, yd, (size_t)N * 2), GQ_OK);
    assert_memory_equal(y0, y1, (size_t)N * 2);
    /* and y0 is the product (the CPU reference, fp16 output) */
    float *xf = malloc((size_t)K * sizeof(float)), *ref = malloc((size_t)N * sizeof(float));
    for (int i = 0; i < K; i++) xf[i] = gq_fp16_to_fp32(xh[i]);
    gq_gqs_gemv_ref(&g, xf, ref);
    double num = 0, den = 0;
    for (int r = 0; r < N; r++) {
        const double e = gq_fp16_to_fp32(y0[r]) - ref[r];
        num += e * e, den += (double)ref[r] * ref[r];
    }
    assert_true(den > 0 && sqrt(num / den) < 5e-3);
    assert_int_equal(gq_gqs_gpu_prepare(m, GQ_GEMV_ROW_V9, s), GQ_OK); /* other kinds: nothing to do */
    if (kind == GQ_GEMV_TASK_V10) assert_int_equal(gq_gqs_gpu_keep_only(m, kind), GQ_ERR_ARG); /* no row stream */
    else { /* the row stream alone (device format freed) gives the same y; other kinds are refused */
        assert_int_equal(gq_gqs_gpu_keep_only(m, kind), GQ_OK);
        assert_int_equal(gq_gemv_dev_fill(yd, 0xFF, (size_t)N * 2), GQ_OK);
        assert_int_equal(gq_gqs_gpu_gemv(m, kind, xd, 1, yd, 0, s), GQ_OK);
        assert_int_equal(cudaStreamSynchronize(s), cudaSuccess);
        assert_int_equal(gq_gemv_dev_download(y1, yd, (size_t)N * 2), GQ_OK);
        assert_memory_equal(y0, y1, (size_t)N * 2);
        assert_int_equal(gq_gqs_gpu_gemv(m, GQ_GEMV_ROW_V7, xd, 1, yd, 0, s), GQ_ERR_ARG);
    }
    cudaGraphExecDestroy(ge), cudaGraphDestroy(graph), cudaStreamDestroy(s);
    free(xf), free(ref), free(xh), free(y0), free(y1);
    gq_gemv_dev_free(xd), gq_gemv_dev_free(yd);
    gq_gqs_gpu_free(m);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
#else
    (void)kind, (void)sp, (void)pat;
#endif
}
static void test_prepare_capture(void **st) {
    (void)st;
    if (!have_gpu()) return;
    capture_case(GQ_GEMV_TASK_V10, 0.5, GQ_DENSITY_UNEVEN);
    capture_case(GQ_GEMV_ROW_V11, 0.5, GQ_DENSITY_UNEVEN);
    capture_case(GQ_GEMV_DENSE_W4_V11, 0.0, GQ_DENSITY_ROW);
    capture_case(GQ_GEMV_ROW_V12, 0.5, GQ_DENSITY_LAYER);
    capture_case(GQ_GEMV_TASK_V13, 0.5, GQ_DENSITY_UNEVEN);
    capture_case(GQ_GEMV_DENSE_W4_V13, 0.0, GQ_DENSITY_ROW);
    capture_case(GQ_GEMV_TASK_V14, 0.5, GQ_DENSITY_UNEVEN);
    capture_case(GQ_GEMV_ROW_V15, 0.5, GQ_DENSITY_LAYER);
    capture_case(GQ_GEMV_ROW_V16, 0.5, GQ_DENSITY_UNEVEN);
    capture_case(GQ_GEMV_DENSE_W4_V16, 0.0, GQ_DENSITY_ROW);
    capture_case(GQ_GEMV_DENSE_W4_V14, 0.0, GQ_DENSITY_ROW);
    capture_case(GQ_GEMV_ROW_V17, 0.5, GQ_DENSITY_UNEVEN); /* 300 rows: split by the rule */
    capture_case(GQ_GEMV_DENSE_W4_V17, 0.0, GQ_DENSITY_ROW);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_configs),
        cmocka_unit_test(test_v13_configs),
        cmocka_unit_test(test_v16_configs),
        cmocka_unit_test(test_v17_splits),
        cmocka_unit_test(test_v18_configs),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_prepare_capture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
