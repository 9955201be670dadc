/* test_gqs_pack.c — the GQS GPU device format (core/gqs_pack.h) on the CPU: re-layout round trips
 * against core/gqs.h (codes bit-exact, values within the fp16 rounding of scale/min, exact for dyadic
 * data), the documented nibble order checked on a hand-made unit, padding, byte accounting, rejected
 * combinations, and the Stream-K split (core/cuda/gqs_sk.h) emulated over many shares and worker
 * orders: every row written exactly once and equal to a brute-force float64 product — for the v1 walk
 * and for the v2 flat stream (segmented per-round sums, carries, cut rows) in both its Stream-K and
 * row-split partitions, plus the warp's 32-ary row search against a linear count. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/gqs_sk.h"
#include "gqs_pack.h"

/* fp32 -> fp16 rounding of scale and of min = -zero*scale, each at most 2^-11 relative: the bound on
 * |dev value - gqs value| is 2^-11 (|q*scale| + |min|) plus fp32 rounding of the two products. */
#define PACK_FP16_REL 0x1p-11
#define PACK_FP32_SLACK 1e-6f

static void check_roundtrip(const gq_gqs *g, int exact) {
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_pack(g, "test", &d), GQ_OK);
    const int N = g->N, K = g->K, G = g->G, C = K / G;
    /* codes: every (r, k), kept or not, through the independent accessors */
    int *ref = malloc((size_t)N * K * sizeof(int));
    for (size_t i = 0; i < (size_t)N * K; i++) ref[i] = -1;
    for (int r = 0; r < N; r++)
        for (int32_t i = g->row_index[r]; i < g->row_index[r + 1]; i++)
            for (int j = 0; j < G; j++) ref[(size_t)r * K + g->group_col[i] * G + j] = gq_gqs_get_code(g, (size_t)i, j);
    for (int r = 0; r < N; r++)
        for (int k = 0; k < K; k++) {
            int got = gq_gqs_dev_get_code(&d, r, k);
            if (got != ref[(size_t)r * K + k]) fail_msg("code (%d,%d): dev %d, gqs %d (G=%d)", r, k, got, ref[(size_t)r * K + k], G);
        }
    /* values */
    float *w0 = malloc((size_t)N * K * sizeof(float)), *w1 = malloc((size_t)N * K * sizeof(float));
    gq_gqs_expand(g, w0);
    gq_gqs_dev_expand(&d, w1);
    for (int r = 0; r < N; r++)
        for (int32_t i = g->row_index[r]; i < g->row_index[r + 1]; i++)
            for (int j = 0; j < G; j++) {
                size_t at = (size_t)r * K + g->group_col[i] * G + j;
                float q = (float)ref[at], sc = g->scales[i], mn = -g->zeros[i] * sc;
                float tol = exact ? 0.0f : (float)(PACK_FP16_REL * (fabsf(q * sc) + fabsf(mn))) + PACK_FP32_SLACK * fabsf(sc);
                if (!(fabsf(w0[at] - w1[at]) <= tol))
                    fail_msg("value (%d,%zu): gqs %g dev %g tol %g", r, at % K, w0[at], w1[at], tol);
            }
    for (size_t i = 0; i < (size_t)N * K; i++)
        if (ref[i] < 0) assert_true(w1[i] == 0.0f);
    /* structure: units per row, slots, padding */
    int64_t U = 0;
    for (int r = 0; r < N; r++) {
        int n = g->row_index[r + 1] - g->row_index[r];
        int64_t units = G <= 32 ? (n * G + 31) / 32 : (int64_t)n * G / 32;
        assert_int_equal(d.row_unit[r], U);
        U += units;
        int64_t a = (int64_t)d.row_unit[r] * 32 / G, b = U * 32 / G;
        for (int64_t s = a + n; s < b; s++) assert_true(d.col[s] == 0 && d.sm[s] == 0); /* padding */
    }
    assert_int_equal(d.row_unit[N], U);
    assert_int_equal(d.n_units, U);
    assert_int_equal(d.n_slots, U * 32 / G);
    (void)C;
    free(ref), free(w0), free(w1);
    gq_gqs_dev_free(&d);
}

static void test_roundtrip_many(void **st) {
    (void)st;
    const int Gs[] = {8, 16, 32, 64, 128};
    const double sp[] = {0.0, 0.3, 0.5, 0.7, 0.95};
    int cases = 0;
    for (int gi = 0; gi < 5; gi++)
        for (int si = 0; si < 5; si++)
            for (int pat = 0; pat < 3; pat++) {
                const int G = Gs[gi];
                const int N = 1 + (gi * 7 + si * 3 + pat) % 13; /* odd sizes: 1..13 rows */
                const int K = G * (1 + (si + pat * 2 + gi) % 9);
                gq_gqs g;
                assert_int_equal(gq_gqs_random(&g, N, K, G, 4, sp[si], (gq_density)pat, (cases & 1), 1000 + cases), GQ_OK);
                check_roundtrip(&g, cases & 1);
                gq_gqs_free(&g);
                cases++;
            }
    assert_int_equal(cases, 75);
}

/* Codes 0..7 in the first quad: nibble(c) = (c>>1) + 4(c&1) puts c0,c2,c4,c6 in nibbles 0..3 and c1,c3,
 * c5,c7 in nibbles 4..7, so the word reads 0x75316420 (gqs_pack.h; the kernel's lop3 relies on it). */
static void test_nibble_order(void **st) {
    (void)st;
    uint8_t q[32], keep[1] = {1};
    float s[1] = {1.0f}, z[1] = {0.0f};
    for (int j = 0; j < 32; j++) q[j] = (uint8_t)(j % 16);
    gq_gqs g;
    assert_int_equal(gq_gqs_build_from_codes(&g, q, s, z, keep, 1, 32, 32, 4), GQ_OK);
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_pack(&g, "nibbles", &d), GQ_OK);
    uint32_t w0, w1, w2;
    memcpy(&w0, d.codes, 4), memcpy(&w1, d.codes + 4, 4), memcpy(&w2, d.codes + 8, 4);
    assert_true(w0 == 0x75316420u);
    assert_true(w1 == 0xFDB9ECA8u); /* codes 8..15 */
    assert_true(w2 == 0x75316420u); /* codes 16..23 = 0..7 again */
    /* (w >> 4s) & 0x000F000F holds codes 2s (low fp16 lane) and 2s+1 (high lane) */
    for (int sft = 0; sft < 4; sft++) {
        uint32_t h = (w0 >> (4 * sft)) & 0x000F000Fu;
        assert_int_equal(h & 0xF, 2 * sft);
        assert_int_equal(h >> 16, 2 * sft + 1);
    }
    assert_int_equal(d.sm[0] & 0xFFFF, 0x3C00); /* fp16 1.0 */
    assert_true(gq_fp16_to_fp32((uint16_t)(d.sm[0] >> 16)) == 0.0f); /* min = -0 * 1 (fp16 -0) */
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
}

/* Figure 2 of the paper (4 rows, G = 4): valid GQS, but G = 4 is not a device-format group size; and
 * 2-bit codes are not implemented by the kernels: both must be refused with a clear status. */
static void test_unsupported(void **st) {
    (void)st;
    uint8_t q[4 * 8] = {0}, keep[4 * 2] = {0, 1, 1, 1, 0, 0, 0, 1};
    float s[8], z[8];
    for (int i = 0; i < 8; i++) s[i] = 1, z[i] = 0;
    gq_gqs g;
    assert_int_equal(gq_gqs_build_from_codes(&g, q, s, z, keep, 4, 8, 4, 4), GQ_OK);
    assert_int_equal(g.row_index[1], 1);
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_pack(&g, "fig2", &d), GQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(gq_errmsg(), "fig2"));
    assert_non_null(strstr(gq_errmsg(), "group sizes"));
    gq_gqs_free(&g);
    assert_int_equal(gq_gqs_random(&g, 4, 64, 16, 2, 0.5, GQ_DENSITY_ROW, 0, 1), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "w2", &d), GQ_ERR_UNSUPPORTED);
    assert_non_null(strstr(gq_errmsg(), "4-bit"));
    gq_gqs_free(&g);
    const char *why;
    assert_true(gq_gqs_dev_supported(16, 4, &why) && why == NULL);
    assert_false(gq_gqs_dev_supported(16, 8, &why));
    /* a corrupt source (column out of range) is rejected by validation, not packed */
    assert_int_equal(gq_gqs_random(&g, 3, 64, 16, 4, 0.5, GQ_DENSITY_ROW, 0, 2), GQ_OK);
    g.group_col[0] = 99;
    assert_int_not_equal(gq_gqs_pack(&g, "bad", &d), GQ_OK);
    gq_gqs_free(&g);
}

/* W4S50 G16 at 4096 x 4096: 14 bytes per kept group + row_unit -> at least 4x fewer than fp16. */
static void test_bytes(void **st) {
    (void)st;
    gq_gqs g;
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_random(&g, 4096, 4096, 16, 4, 0.5, GQ_DENSITY_ROW, 0, 3), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "bytes", &d), GQ_OK);
    size_t b = gq_gqs_dev_bytes(&d, 0), fp16 = (size_t)4096 * 4096 * 2;
    assert_true(b == (size_t)d.n_units * 16 + (size_t)d.n_slots * 6 + 4097 * 4);
    assert_int_equal(d.n_slots, (int64_t)g.nnz); /* 128 groups per row: even, no padding */
    assert_true((double)fp16 / (double)b >= 4.0);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
}

/* ---- Stream-K --------------------------------------------------------------------------------- */

static void test_sk_helpers_bruteforce(void **st) {
    (void)st;
    for (int64_t U = 1; U < 60; U++)
        for (int64_t W = 1; W < 70; W++) {
            assert_int_equal(gq_sk_begin(U, W, 0), 0);
            assert_int_equal(gq_sk_begin(U, W, W), U);
            for (int64_t p = 0; p < U; p++) {
                int64_t want = -1;
                for (int64_t w = 0; w < W; w++)
                    if (gq_sk_begin(U, W, w) <= p && p < gq_sk_begin(U, W, w + 1)) want = w;
                assert_int_equal(gq_sk_worker_of(U, W, p), want);
            }
        }
    int32_t ru[] = {0, 0, 3, 3, 3, 7, 8, 8};
    const int N = 7;
    for (int64_t p = 0; p < 8; p++) {
        int want = -1;
        for (int r = 0; r < N && want < 0; r++)
            if (ru[r] <= p && p < ru[r + 1]) want = r;
        assert_int_equal(gq_sk_row_of(ru, N, p), want);
    }
    assert_int_equal(gq_sk_first_row(ru, N, 8, 0), 0); /* empty row 0 sits at 0 */
    assert_int_equal(gq_sk_first_row(ru, N, 8, 3), 2); /* empty rows 2,3 sit at unit 3, row 4 holds it */
    assert_int_equal(gq_sk_first_row(ru, N, 8, 4), 4);
    assert_int_equal(gq_sk_first_row(ru, N, 8, 8), 6); /* the last worker owns trailing empty row 6 */
}

static double brute_row(const float *w, const float *x, int K, int r, double *absdot) {
    double a = 0, ab = 0;
    for (int k = 0; k < K; k++) a += (double)w[(size_t)r * K + k] * x[k], ab += fabs((double)w[(size_t)r * K + k] * x[k]);
    *absdot = ab;
    return a;
}

/* An emulated product y [B, N] against brute force over the expanded W_hat, every row written once.
 * float64 sums in different orders, from float vs double products: 1e-6 of sum |w x|. */
static void assert_emulated(const float *w, const float *x, const double *y, const int *writes, int B, int N, int K,
                            const char *what) {
    for (int r = 0; r < N; r++) assert_int_equal(writes[r], 1);
    for (int b = 0; b < B; b++)
        for (int r = 0; r < N; r++) {
            double ab, ref = brute_row(w, x + (size_t)b * K, K, r, &ab);
            if (!(fabs(y[(size_t)b * N + r] - ref) <= 1e-6 * ab + 1e-12))
                fail_msg("%s b=%d row %d: %g vs %g", what, b, r, y[(size_t)b * N + r], ref);
        }
}

static void sk_case_mode(int mode, int N, int K, int G, double sp, gq_density pat, int64_t W, int B, uint64_t seed,
                         int shuffle) {
    gq_gqs g;
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_random(&g, N, K, G, 4, sp, pat, 0, seed), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "sk", &d), GQ_OK);
    gq_rng rng;
    gq_rng_seed(&rng, seed ^ 0x5eed);
    float *x = malloc((size_t)B * K * sizeof(float)), *w = malloc((size_t)N * K * sizeof(float));
    for (int i = 0; i < B * K; i++) x[i] = (float)gq_rng_normal(&rng);
    gq_gqs_dev_expand(&d, w);
    const int64_t W0 = W;
    if (mode == 0) W = (N + gq_flat_rows_per_worker(N, W) - 1) / gq_flat_rows_per_worker(N, W);
    int64_t *order = malloc((size_t)W * sizeof(int64_t));
    for (int64_t i = 0; i < W; i++) order[i] = shuffle ? W - 1 - i : i;
    if (shuffle == 2)
        for (int64_t i = W - 1; i > 0; i--) {
            int64_t j = (int64_t)gq_rng_below(&rng, (uint64_t)i + 1), t = order[i];
            order[i] = order[j], order[j] = t;
        }
    double *y = malloc((size_t)B * N * sizeof(double));
    for (int i = 0; i < B * N; i++) y[i] = NAN; /* poison */
    int *writes = malloc((size_t)N * sizeof(int));
    gq_sk_stats stats;
    gq_status s = mode < 0 ? gq_gqs_sk_emulate(&d, W, order, x, B, y, writes, &stats)
                           : gq_gqs_flat_emulate(&d, mode, W0, order, x, B, y, writes, &stats);
    if (s != GQ_OK) fail_msg("mode %d N=%d K=%d G=%d sp=%g W=%lld: %s", mode, N, K, G, sp, (long long)W, gq_errmsg());
    /* equal shares: sizes differ by at most one unit (Stream-K); the row split cuts no row */
    if (mode != 0) assert_true(stats.max_share - stats.min_share <= 1);
    else assert_int_equal(stats.records, 0);
    char what[96];
    snprintf(what, sizeof what, "sk mode %d N=%d K=%d G=%d W=%lld", mode, N, K, G, (long long)W);
    assert_emulated(w, x, y, writes, B, N, K, what);
    free(x), free(w), free(order), free(y), free(writes);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
}

static void sk_case(int N, int K, int G, double sp, gq_density pat, int64_t W, int B, uint64_t seed, int shuffle) {
    for (int mode = -1; mode <= 1; mode++) sk_case_mode(mode, N, K, G, sp, pat, W, B, seed, shuffle);
}

/* The warp's 32-ary search (gq_sk_count_le32, gqs_sk.h) against a linear count, and the v2 row range
 * helpers against the v1 walk, on random ascending arrays with long runs of equal values (empty rows). */
static void test_sk_search(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 99);
    for (int t = 0; t < 400; t++) {
        const int n = 1 + (int)gq_rng_below(&rng, t < 200 ? 70 : 20000);
        int32_t *a = malloc((size_t)(n + 1) * sizeof(int32_t));
        a[0] = 0;
        for (int i = 1; i <= n; i++) a[i] = a[i - 1] + (gq_rng_below(&rng, 3) == 0 ? 0 : (int32_t)gq_rng_below(&rng, 9));
        for (int q = 0; q < 40; q++) {
            const int64_t p = (int64_t)gq_rng_below(&rng, (uint64_t)a[n] + 3) - 1;
            int64_t want = 0;
            for (int i = 0; i <= n; i++) want += a[i] <= p;
            assert_int_equal(gq_sk_count_le32(a, n + 1, p), want);
            /* rows: N = n, row_unit = a; first row for a share starting at s = p (0 <= s <= U) */
            const int64_t sft = p < 0 ? 0 : p > a[n] ? a[n] : p;
            const int64_t L = gq_sk_count_le32(a, n + 1, sft - 1);
            assert_int_equal(gq_sk_first_row_from(a, L, sft), gq_sk_first_row(a, n, a[n], sft));
        }
        free(a);
    }
}

static void test_sk_emulation(void **st) {
    (void)st;
    const int Gs[] = {8, 16, 32, 64, 128};
    int cases = 0;
    for (int gi = 0; gi < 5; gi++)
        for (int pat = 0; pat < 3; pat++)
            for (int wi = 0; wi < 6; wi++) {
                const int64_t Ws[] = {1, 2, 7, 33, 128, 1000}; /* from one worker to far more than units */
                const int G = Gs[gi], N = 5 + (gi * 11 + pat * 5 + wi) % 40, K = G * (2 + (wi + gi) % 12);
                const double sp = (double)((pat + wi + gi) % 10) / 10.0;
                sk_case(N, K, G, sp, (gq_density)pat, Ws[wi], 1 + (cases % 3) * 2, 77 + cases, cases % 3);
                cases++;
            }
    /* many empty rows, all rows empty, a single row */
    sk_case(50, 64, 16, 0.97, GQ_DENSITY_UNEVEN, 9, 2, 5, 2);
    sk_case(50, 64, 16, 0.97, GQ_DENSITY_LAYER, 200, 1, 6, 1);
    sk_case(20, 64, 8, 1.0, GQ_DENSITY_ROW, 3, 1, 7, 0);
    sk_case(20, 64, 8, 1.0, GQ_DENSITY_ROW, 1, 1, 7, 0);
    sk_case(1, 4096, 16, 0.5, GQ_DENSITY_ROW, 64, 3, 8, 2);
    sk_case(300, 256, 16, 0.5, GQ_DENSITY_UNEVEN, 17, 4, 9, 2);
    /* v2 stream on long uneven rows that cross many rounds and shares; few workers (rows cut many times) */
    sk_case(64, 8192, 16, 0.5, GQ_DENSITY_UNEVEN, 5, 2, 10, 2);
    sk_case(200, 2048, 8, 0.3, GQ_DENSITY_LAYER, 37, 1, 11, 1);
    sk_case(33, 4096, 32, 0.9, GQ_DENSITY_UNEVEN, 300, 1, 12, 2);
    assert_true(cases == 90);
}

/* v10 round split (gq_gqs_round_split) against a brute-force walk of every round: each warp gets
 * floor(R/W) or ceil(R/W) rounds, warps tile the rounds in order with no gap or overlap, each row's
 * rounds are covered once, the row's owner (the warp holding its round 0) followed by the warps whose
 * start lies inside the row is exactly the chain the kernel's fix-up walks, and no warp holds more rows
 * than allowed; empty rows and more warps than rounds included. */
static void round_split_case(int N, int K, int G, double sp, gq_density pat, int qpr, int64_t workers, uint64_t seed) {
    gq_gqs g;
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_random(&g, N, K, G, 4, sp, pat, 0, seed), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "split", &d), GQ_OK);
    int32_t *st = malloc((size_t)2 * (workers + 1) * sizeof(int32_t));
    const int64_t W = gq_gqs_round_split(d.row_unit, N, qpr, workers, 32, st);
    int64_t R = 0;
    int64_t *rr = malloc((size_t)N * sizeof(int64_t)), *first = malloc((size_t)(N + 1) * sizeof(int64_t));
    for (int r = 0; r < N; r++) {
        const int64_t q = 4 * (int64_t)(d.row_unit[r + 1] - d.row_unit[r]);
        first[r] = R, rr[r] = q ? (q + qpr - 1) / qpr : 1, R += rr[r];
    }
    first[N] = R;
    if (W < 0) { /* only when some warp would hold more than 32 rows */
        assert_true(R / workers + 1 > 32 || workers < N);
        goto done;
    }
    assert_int_equal(W, workers < R ? workers : R);
    assert_int_equal(st[0], 0), assert_int_equal(st[1], 0);
    assert_int_equal(st[2 * W], N), assert_int_equal(st[2 * W + 1], 0);
    int64_t *cover = calloc((size_t)N, sizeof(int64_t));
    for (int64_t w = 0; w < W; w++) {
        const int64_t a = first[st[2 * w]] + st[2 * w + 1], b = first[st[2 * (w + 1)]] + st[2 * (w + 1) + 1];
        assert_true(st[2 * w + 1] >= 0 && st[2 * w + 1] < rr[st[2 * w]]);
        assert_true(b - a == R / W || b - a == (R + W - 1) / W); /* equal shares */
        for (int64_t t = a; t < b; t++) { /* the row of round t */
            int lo = 0, hi = N - 1;
            while (lo < hi) {
                const int mid = (lo + hi + 1) / 2;
                if (first[mid] <= t) lo = mid;
                else hi = mid - 1;
            }
            cover[lo]++;
        }
    }
    for (int r = 0; r < N; r++) assert_int_equal(cover[r], rr[r]);
    /* the fix-up chain: the owner of row r is the warp whose range holds round first[r]; the parts after it
     * are warps w' > owner with st[2 w'] == r, and they must cover the rest of the row */
    for (int r = 0; r < N; r++) {
        int64_t own = -1;
        for (int64_t w = 0; w < W && own < 0; w++)
            if (first[st[2 * w]] + st[2 * w + 1] <= first[r] && first[r] < first[st[2 * (w + 1)]] + st[2 * (w + 1) + 1]) own = w;
        assert_true(own >= 0);
        int64_t end = first[st[2 * (own + 1)]] + st[2 * (own + 1) + 1];
        for (int64_t w = own + 1; w < W && st[2 * w] == r; w++) {
            assert_true(st[2 * w + 1] > 0);
            end = first[st[2 * (w + 1)]] + st[2 * (w + 1) + 1];
        }
        assert_true(end >= first[r + 1]);
    }
    free(cover);
done:
    free(rr), free(first), free(st);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
}

static void test_round_split(void **state) {
    (void)state;
    round_split_case(300, 2048, 16, 0.5, GQ_DENSITY_UNEVEN, 128, 64, 1);   /* rows cut, long rows over several warps */
    round_split_case(300, 2048, 16, 0.5, GQ_DENSITY_UNEVEN, 128, 4096, 2); /* more warps than rounds */
    round_split_case(64, 8192, 16, 0.5, GQ_DENSITY_UNEVEN, 128, 100, 3);
    round_split_case(200, 1024, 8, 0.95, GQ_DENSITY_LAYER, 128, 7, 4);     /* near-empty rows: many rows per warp */
    round_split_case(500, 256, 16, 0.99, GQ_DENSITY_LAYER, 128, 3, 5);     /* > 32 rows per warp: refused */
    round_split_case(1, 4096, 16, 0.0, GQ_DENSITY_ROW, 128, 5, 6);         /* one row over every warp */
    round_split_case(8192, 8192, 16, 0.5, GQ_DENSITY_UNEVEN, 128, 4224, 7); /* the benchmark's shape */
}

/* v4 task list (gq_gqs_tasks) and its fix-up protocol (gq_gqs_task_emulate): every unit covered once,
 * tasks no longer than the chunk and longest first, rows in one task marked whole, the records of a cut
 * row distinct and in range, every row written once by forward, reverse and random task orders, and
 * the result equal to a brute-force float64 product; chunk sizes from 1 unit (every row cut into single
 * units) to more than the longest row (the v3 row split), empty rows and all-pruned matrices included. */
static void task_case(int N, int K, int G, double sp, gq_density pat, int64_t chunk, int B, uint64_t seed) {
    gq_gqs g;
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_random(&g, N, K, G, 4, sp, pat, 0, seed), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "task", &d), GQ_OK);
    gq_gemv_task *t = NULL;
    int64_t nt = 0, nr = 0;
    int32_t *fix = malloc((size_t)2 * N * sizeof(int32_t));
    assert_int_equal(gq_gqs_tasks(d.row_unit, N, chunk, &t, &nt, fix, &nr), GQ_OK);
    int64_t want_nt = 0, want_nr = 0;
    for (int r = 0; r < N; r++) {
        const int64_t n = d.row_unit[r + 1] - d.row_unit[r], k = n ? (n + chunk - 1) / chunk : 1;
        want_nt += k, want_nr += k > 1 ? k : 0;
        assert_int_equal(fix[2 * r + 1], k);
        if (k == 1) assert_int_equal(fix[2 * r], -1);
        else assert_true(fix[2 * r] >= 0 && fix[2 * r] + k <= nr);
    }
    assert_int_equal(nt, want_nt);
    assert_int_equal(nr, want_nr);
    for (int64_t i = 0; i < nt; i++) {
        assert_true(t[i].n >= 0 && t[i].n <= chunk);
        if (i) assert_true(t[i].n <= t[i - 1].n); /* longest first */
        if (i && t[i].n == t[i - 1].n) assert_true(t[i].row > t[i - 1].row || (t[i].row == t[i - 1].row && t[i].lo > t[i - 1].lo));
        assert_true((t[i].ci < 0) == (fix[2 * t[i].row + 1] == 1));
    }
    gq_rng rng;
    gq_rng_seed(&rng, seed ^ 0x7a5c);
    float *x = malloc((size_t)B * K * sizeof(float)), *w = malloc((size_t)N * K * sizeof(float));
    for (int i = 0; i < B * K; i++) x[i] = (float)gq_rng_normal(&rng);
    gq_gqs_dev_expand(&d, w);
    int64_t *order = malloc((size_t)(nt ? nt : 1) * sizeof(int64_t));
    double *y = malloc((size_t)B * N * sizeof(double));
    int *writes = malloc((size_t)N * sizeof(int));
    for (int shuffle = 0; shuffle < 3; shuffle++) {
        for (int64_t i = 0; i < nt; i++) order[i] = shuffle == 1 ? nt - 1 - i : i;
        if (shuffle == 2)
            for (int64_t i = nt - 1; i > 0; i--) {
                int64_t j = (int64_t)gq_rng_below(&rng, (uint64_t)i + 1), tmp = order[i];
                order[i] = order[j], order[j] = tmp;
            }
        for (int i = 0; i < B * N; i++) y[i] = NAN;
        gq_status s = gq_gqs_task_emulate(&d, t, nt, fix, nr, order, x, B, y, writes);
        if (s != GQ_OK) fail_msg("task N=%d K=%d G=%d chunk=%lld: %s", N, K, G, (long long)chunk, gq_errmsg());
        char what[96];
        snprintf(what, sizeof what, "task N=%d K=%d G=%d chunk=%lld", N, K, G, (long long)chunk);
        assert_emulated(w, x, y, writes, B, N, K, what);
    }
    /* a broken list is caught: a unit covered twice */
    if (nt >= 2 && t[0].n > 0) {
        gq_gemv_task keep = t[1];
        t[1] = t[0];
        assert_int_equal(gq_gqs_task_emulate(&d, t, nt, fix, nr, NULL, x, B, y, writes), GQ_ERR_INTERNAL);
        t[1] = keep;
    }
    free(t), free(fix), free(x), free(w), free(order), free(y), free(writes);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
}

static void test_task_list(void **st) {
    (void)st;
    const int Gs[] = {8, 16, 32, 64, 128};
    const int64_t chunks[] = {1, 2, 3, 8, 32, 1000};
    int cases = 0;
    for (int gi = 0; gi < 5; gi++)
        for (int pat = 0; pat < 3; pat++)
            for (int ci = 0; ci < 6; ci++) {
                const int G = Gs[gi], N = 5 + (gi * 7 + pat * 3 + ci) % 40, K = G * (2 + (ci + gi) % 12);
                const double sp = (double)((pat + ci + gi) % 10) / 10.0;
                task_case(N, K, G, sp, (gq_density)pat, chunks[ci], 1 + cases % 3, 300 + cases);
                cases++;
            }
    task_case(50, 64, 16, 0.97, GQ_DENSITY_UNEVEN, 2, 2, 5);  /* many empty rows */
    task_case(20, 64, 8, 1.0, GQ_DENSITY_ROW, 1, 1, 7);       /* all rows empty */
    task_case(1, 4096, 16, 0.5, GQ_DENSITY_ROW, 5, 3, 8);     /* one row cut many times */
    task_case(64, 8192, 16, 0.5, GQ_DENSITY_UNEVEN, 32, 2, 10);
    assert_int_equal(cases, 90);
    /* the default chunk: ceil(U / slots) in whole rounds, at least one round */
    assert_int_equal(gq_gqs_task_chunk(1048576, 8448, 32), 128);
    assert_int_equal(gq_gqs_task_chunk(262144, 8448, 32), 32);
    assert_int_equal(gq_gqs_task_chunk(10, 8448, 32), 32);
    assert_int_equal(gq_gqs_task_chunk(0, 8448, 32), 32);
}

/* v17's warps per row (gq_gqs_rows_split) against a brute-force schedule: N R equal parts of 1 / R of a row
 * each, dealt to `slots` warp slots as they free up (each slot takes the next part when its last ends);
 * the makespan's efficiency N / (slots * makespan) must be the rule's w / ceil(w), and the chosen R the one
 * the documented rule picks from those makespans. Then the decode shapes on an H200 (132 SMs x 64 warps). */
static double brute_eff(int64_t N, int R, int64_t slots) {
    double *free_at = calloc((size_t)slots, sizeof(double)), makespan = 0;
    for (int64_t p = 0; p < N * R; p++) {
        int64_t best = 0;
        for (int64_t s = 1; s < slots; s++)
            if (free_at[s] < free_at[best]) best = s;
        free_at[best] += 1.0 / R;
        if (free_at[best] > makespan) makespan = free_at[best];
    }
    free(free_at);
    return (double)N / ((double)slots * makespan);
}
static void test_rows_split(void **st) {
    (void)st;
    const int64_t Ns[] = {1, 7, 100, 383, 576, 1000, 1536, 2000, 3001};
    const int64_t slots[] = {64, 256, 1000};
    for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
        for (size_t b = 0; b < sizeof slots / sizeof slots[0]; b++)
            for (int64_t rpr = 1; rpr <= 5; rpr += 2) { /* mean rounds per row 1, 3, 5: R <= 1, 2, 4 */
                const int64_t N = Ns[a], S = slots[b], rounds = N * rpr;
                int want = 1;
                double best = brute_eff(N, 1, S);
                for (int R = 2; R <= 4 && R <= rpr; R *= 2) {
                    const double e = brute_eff(N, R, S);
                    if (e > 1.1 * best) want = R, best = e;
                }
                const int got = gq_gqs_rows_split(N, rounds, S);
                if (got != want) fail_msg("N %lld slots %lld rounds %lld: R %d, brute force %d", (long long)N, (long long)S,
                                          (long long)rounds, got, want);
            }
    /* the llama2-7b decode shapes at S50 G16 (>= 2 rounds per row) on 8448 warp slots */
    assert_int_equal(gq_gqs_rows_split(4096, 2 * 4096, 8448), 2);   /* o, down: 0.48 of a wave */
    assert_int_equal(gq_gqs_rows_split(8192, 4 * 8192, 8448), 1);   /* 0.97 of a wave */
    assert_int_equal(gq_gqs_rows_split(12288, 2 * 12288, 8448), 2); /* qkv: 1.45 waves */
    assert_int_equal(gq_gqs_rows_split(22016, 2 * 22016, 8448), 1); /* gate-up: 2.61 waves, 4 would gain 9% */
    assert_int_equal(gq_gqs_rows_split(4096, 4096, 8448), 1);       /* one round per row: nothing to split */
    assert_int_equal(gq_gqs_rows_split(0, 0, 8448), 1);
    /* the rule's rounds: full + short of every row ({offset, blocks}: blocks / 4 full, blocks % 4 short) */
    const int32_t srow[6] = {0, 2 * 4 + 1, 5, 3, 9, 0};
    assert_int_equal(gq_gqs_stream_rounds(srow, 3), 3 + 3 + 0);
}

/* The density patterns do what they say: totals match the sparsity; "uneven" concentrates groups. */
/* gq_rows_by_length against a brute-force stable selection: a permutation, lengths non-increasing,
 * equal lengths in row order; includes empty rows and N = 0/1. */
static void test_rows_by_length(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 77);
    for (int trial = 0; trial < 200; trial++) {
        const int N = trial < 2 ? trial : 1 + (int)gq_rng_below(&rng, 300);
        int32_t *ru = malloc((size_t)(N + 1) * 4), *ord = malloc((size_t)(N ? N : 1) * 4);
        int *used = calloc((size_t)(N ? N : 1), sizeof *used);
        ru[0] = 0;
        for (int r = 0; r < N; r++) ru[r + 1] = ru[r] + (int32_t)gq_rng_below(&rng, trial % 3 ? 9 : 100);
        gq_rows_by_length(ru, N, ord);
        int done = 0;
        for (int32_t L = 1000; L >= 0 && done < N; L--) /* expected: by decreasing length, then row order */
            for (int r = 0; r < N; r++)
                if (ru[r + 1] - ru[r] == L) {
                    assert_int_equal(ord[done], r);
                    used[r]++;
                    done++;
                }
        assert_int_equal(done, N);
        for (int r = 0; r < N; r++) assert_int_equal(used[r], 1);
        free(ru), free(ord), free(used);
    }
}

static void test_density_patterns(void **st) {
    (void)st;
    const int N = 256, K = 1024, G = 16, C = K / G;
    for (int pat = 0; pat < 3; pat++) {
        gq_gqs g;
        assert_int_equal(gq_gqs_random(&g, N, K, G, 4, 0.5, (gq_density)pat, 0, 11), GQ_OK);
        assert_int_equal(g.nnz, (size_t)N * C / 2);
        assert_int_equal(gq_gqs_validate(&g, "pattern"), GQ_OK);
        int mx = 0, mn = C;
        for (int r = 0; r < N; r++) {
            int n = g.row_index[r + 1] - g.row_index[r];
            mx = n > mx ? n : mx, mn = n < mn ? n : mn;
        }
        if (pat == GQ_DENSITY_ROW) assert_true(mx - mn <= 1);
        if (pat == GQ_DENSITY_UNEVEN) assert_true(mx >= 3 * mn && mx == C);
        if (pat == GQ_DENSITY_LAYER) assert_true(mx > mn + 2);
        gq_gqs_free(&g);
    }
    assert_int_equal(gq_density_parse("uneven"), GQ_DENSITY_UNEVEN);
    assert_int_equal(gq_density_parse("bogus"), -1);
}

/* v11 row stream (gq_gqs_stream_layout): read back exactly as the kernel reads it (core/cuda/gqs_stream.h:
 * lane l, full rounds then short rounds, its code word, slot entry l / QPG and column), dequantized as
 * gq_gqs_dev_expand does, the stream must give the same W_hat value for value; every row's stream starts
 * where the one before ended, 16-byte aligned, and is padded by less than one block; the padding is zero. */
static void stream_case(int N, int K, int G, double sp, gq_density pat, int dense, uint64_t seed) {
    gq_gqs g;
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_random(&g, N, K, G, 4, sp, pat, 0, seed), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "stream", &d), GQ_OK);
    if (dense) /* the layout's precondition, checked here rather than assumed */
        for (int r = 0; r <= N; r++) assert_int_equal(d.row_unit[r], (int64_t)r * (K / 32));
    int32_t *srow = malloc((size_t)2 * N * sizeof(int32_t));
    int64_t bytes = -1, bytes2 = -1;
    assert_int_equal(gq_gqs_stream_layout(&d, dense, srow, NULL, &bytes), GQ_OK);
    uint8_t *s = malloc((size_t)bytes + 16);
    memset(s, 0xA5, (size_t)bytes + 16); /* every byte of the stream must be written */
    assert_int_equal(gq_gqs_stream_layout(&d, dense, srow, s, &bytes2), GQ_OK);
    assert_int_equal(bytes, bytes2);
    const int QPG = G / 8, SPR = GQ_STREAM_SPR(G), FULL = GQ_STREAM_FULL(G, dense), SHORT = GQ_STREAM_SHORT(G, dense);
    float *want = malloc((size_t)N * K * sizeof(float)), *got = calloc((size_t)N * K, sizeof(float));
    gq_gqs_dev_expand(&d, want);
    int64_t off = 0, pad_quads = 0;
    for (int r = 0; r < N; r++) {
        const int64_t n = 4 * (int64_t)(d.row_unit[r + 1] - d.row_unit[r]), nblk = srow[2 * r + 1];
        assert_int_equal((int64_t)srow[2 * r] * 16, off);
        assert_int_equal(nblk, (n + 31) / 32);
        pad_quads += 32 * nblk - n;
        const uint8_t *p = s + off;
        for (int lane = 0; lane < 32; lane++) {
            const int e = lane / QPG, kq = (lane % QPG) * 8;
            int64_t j = lane; /* the lane's quad index in the row */
            const uint8_t *q = p;
            for (int64_t t = 0; t < nblk / 4 + nblk % 4; t++) { /* the rounds: nblk / 4 full, then short */
                const int full = t < nblk / 4;
                for (int i = 0; i < (full ? 4 : 1); i++, j += 32) {
                    uint32_t cw, smw;
                    uint16_t col = 0;
                    memcpy(&cw, q + (full ? 16 * lane + 4 * i : 4 * lane), 4);
                    memcpy(&smw, q + (full ? 512 + 16 * e + 4 * i : 128 + 4 * e), 4);
                    if (!dense) memcpy(&col, q + (full ? 512 + 16 * SPR + 8 * e + 2 * i : 128 + 4 * SPR + 2 * e), 2);
                    const int k0 = dense ? (int)(j < n ? 8 * j : 0) : col * G + kq;
                    const float sc = gq_fp16_to_fp32((uint16_t)(smw & 0xFFFF)), mn = gq_fp16_to_fp32((uint16_t)(smw >> 16));
                    if (j >= n) { /* padding: empty */
                        assert_true(cw == 0 && smw == 0 && col == 0);
                        continue;
                    }
                    assert_true(k0 >= 0 && k0 + 8 <= K);
                    for (int c = 0; c < 8; c++) {
                        const int qv = (int)(cw >> (4 * ((c >> 1) + 4 * (c & 1)))) & 15;
                        got[(size_t)r * K + k0 + c] += (float)qv * sc + mn;
                    }
                }
                q += full ? FULL : SHORT;
            }
            assert_true(q - p <= gq_gqs_stream_row_bytes(G, dense, n));
        }
        off += gq_gqs_stream_row_bytes(G, dense, n);
        assert_true(off % 16 == 0);
    }
    assert_int_equal(off, bytes);
    for (size_t i = 0; i < (size_t)N * K; i++)
        if (got[i] != want[i]) fail_msg("stream G=%d dense=%d: W[%zu][%zu] = %g, the device format gives %g", G, dense,
                                        i / K, i % K, got[i], want[i]);
    /* the cost is the padding: < 32 quads per row, each with its share of scale|min (+ column) */
    const double meta = (double)GQ_STREAM_META(dense) / QPG;
    assert_true((double)bytes <= 4.0 * (pad_quads + 4 * (double)d.n_units) + meta * (pad_quads + 4 * (double)d.n_units) + 16.0 * N);
    free(srow), free(s), free(want), free(got);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
}

static void test_stream_layout(void **state) {
    (void)state;
    const int Gs[] = {8, 16, 32, 64, 128};
    for (int gi = 0; gi < 5; gi++) {
        stream_case(37, 1024, Gs[gi], 0.5, GQ_DENSITY_UNEVEN, 0, 10 + gi);  /* rows of 0..4+ rounds */
        stream_case(20, 4096, Gs[gi], 0.3, GQ_DENSITY_LAYER, 0, 20 + gi);
        stream_case(9, 1536, Gs[gi], 0.0, GQ_DENSITY_ROW, 1, 30 + gi);      /* dense: 1536 / 256 = 6 blocks a row */
    }
    stream_case(50, 640, 16, 0.0, GQ_DENSITY_ROW, 1, 40);                  /* dense, K / 8 = 80 quads: padded */
    stream_case(64, 512, 16, 0.97, GQ_DENSITY_UNEVEN, 0, 41);              /* empty rows */
    stream_case(3, 16384, 16, 0.1, GQ_DENSITY_ROW, 0, 42);                 /* long rows */
}

/* The v18 tile stream (gq_gqs_tiles_build), read back the way the tensor-core kernel reads it (gq_gqs_tiles_emulate:
 * each lane's A fragment from its code chunks and scale|min words, mma.m16n8k16's register placement, the
 * lanes' x fragments and stores, the tile split between S warps) must give the dense product of the expanded
 * matrix (float64, summation order aside); and the stream must hold exactly the kept groups: as many (row,
 * group) pairs as the source keeps, entries ascending by column within a tile, tiles padded to whole blocks,
 * data bytes the sum of the entries' sizes. */
static void tiles_case(int N, int K, int G, double sp, gq_density pat, int S, int B, uint64_t seed) {
    gq_gqs g;
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_random(&g, N, K, G, 4, sp, pat, 0, seed), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "tiles", &d), GQ_OK);
    gq_gqs_tiles t;
    assert_int_equal(gq_gqs_tiles_build(&d, &t), GQ_OK);
    assert_int_equal(t.ntiles, (N + GQ_TILE_ROWS - 1) / GQ_TILE_ROWS);
    assert_int_equal(t.kept, (int64_t)g.nnz);
    int64_t words = 0, kept = 0;
    for (int tt = 0; tt < t.ntiles; tt++) {
        assert_true(t.tblk[tt + 1] >= t.tblk[tt]);
        int last = -1;
        for (int64_t e = (int64_t)t.tblk[tt] * GQ_TILE_BLK; e < (int64_t)t.tblk[tt + 1] * GQ_TILE_BLK; e++) {
            const uint32_t mask = t.meta[e];
            if (e % GQ_TILE_BLK == 0) assert_int_equal(t.boff[e / GQ_TILE_BLK], words);
            if (!mask) { /* padding: only at the end of the tile's last block */
                assert_int_equal(t.col[e], 0);
                assert_true(e >= (int64_t)(t.tblk[tt + 1] - 1) * GQ_TILE_BLK);
                continue;
            }
            assert_true((int)t.col[e] > last); /* ascending columns, none twice */
            last = (int)t.col[e];
            assert_true(last < K / G);
            if (N - GQ_TILE_ROWS * tt < GQ_TILE_ROWS) assert_true(mask >> (N - GQ_TILE_ROWS * tt) == 0); /* no row past N */
            words += gq_tile_entry_bytes(G, __builtin_popcount(mask)) / 4;
            kept += __builtin_popcount(mask);
        }
    }
    assert_int_equal(4 * words, t.data_bytes);
    assert_int_equal(kept, t.kept);
    float *w = malloc((size_t)N * K * sizeof(float)), *x = malloc((size_t)B * K * sizeof(float));
    double *y = malloc((size_t)B * N * sizeof(double));
    gq_gqs_dev_expand(&d, w);
    gq_rng rng;
    gq_rng_seed(&rng, seed * 3 + 1);
    for (int i = 0; i < B * K; i++) x[i] = (float)gq_rng_normal(&rng);
    for (int i = 0; i < B * N; i++) y[i] = NAN;
    assert_int_equal(gq_gqs_tiles_emulate(&t, S, x, B, y), GQ_OK);
    for (int b = 0; b < B; b++)
        for (int r = 0; r < N; r++) {
            double want = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                want += (double)w[(size_t)r * K + k] * x[(size_t)b * K + k];
                mag += fabs((double)w[(size_t)r * K + k] * x[(size_t)b * K + k]);
            }
            const double got = y[(size_t)b * N + r];
            if (!(fabs(got - want) <= 1e-12 * mag + 1e-300))
                fail_msg("tiles N=%d K=%d G=%d S=%d B=%d: y[%d][%d] = %.17g, want %.17g", N, K, G, S, B, b, r, got, want);
        }
    free(w), free(x), free(y);
    gq_gqs_tiles_free(&t);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
}

static void test_tiles_layout(void **state) {
    (void)state;
    const int Gs[] = {16, 32, 64, 128};
    for (int gi = 0; gi < 4; gi++) {
        const int G = Gs[gi];
            tiles_case(37, 1024, G, 0.5, GQ_DENSITY_UNEVEN, 1, 1, 10 + gi);  /* a partial last tile (5 rows) */
        tiles_case(96, 2048, G, 0.3, GQ_DENSITY_LAYER, 4, 9, 20 + gi);   /* two octets, the second partial */
        tiles_case(32, 1536, G, 0.0, GQ_DENSITY_ROW, 3, 16, 30 + gi);    /* dense: every mask full */
        tiles_case(20, 1536, G, 0.0, GQ_DENSITY_ROW, 2, 8, 35 + gi);     /* dense, one partial tile: half 1 empty */
        tiles_case(150, 512, G, 0.97, GQ_DENSITY_UNEVEN, 16, 5, 40 + gi); /* empty tiles, warps with no block */
    }
    tiles_case(5, 4096, 16, 1.0, GQ_DENSITY_ROW, 2, 3, 50); /* nothing kept: y = 0 */
    tiles_case(33, 11008, 16, 0.5, GQ_DENSITY_LAYER, 8, 8, 51);
    /* G8 is refused; the warps per tile */
    gq_gqs g;
    gq_gqs_dev d;
    gq_gqs_tiles t;
    assert_int_equal(gq_gqs_random(&g, 16, 256, 8, 4, 0.5, GQ_DENSITY_ROW, 0, 1), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "g8", &d), GQ_OK);
    assert_int_equal(gq_gqs_tiles_build(&d, &t), GQ_ERR_UNSUPPORTED);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
    memset(&t, 0, sizeof t);
    t.ntiles = 256, t.nblk = 256 * 64;
    assert_int_equal(gq_gqs_tiles_warps(&t, 4224), 16); /* 8192 rows at S50 G16: 256 tiles of 64 blocks */
    assert_int_equal(gq_gqs_tiles_warps(&t, 2048), 8);
    t.nblk = 256 * 3;
    assert_int_equal(gq_gqs_tiles_warps(&t, 4224), 2); /* no more warps than blocks */
    t.ntiles = 344, t.nblk = 344 * 32; /* 11008 rows: 16 would be 1.3 waves */
    assert_int_equal(gq_gqs_tiles_warps(&t, 4224), 8);
    t.ntiles = 688, t.nblk = 688 * 32;
    assert_int_equal(gq_gqs_tiles_warps(&t, 4224), 4);
    t.ntiles = 8192, t.nblk = 8192 * 64; /* more tiles than slots: one warp each */
    assert_int_equal(gq_gqs_tiles_warps(&t, 4224), 1);
    t.ntiles = 0;
    assert_int_equal(gq_gqs_tiles_warps(&t, 8448), 1);
}

/* The v13 split (gq_gqs_stream_split), checked the way the kernel uses it: the warps' ranges partition the
 * tokens in order; mode 0 cuts no row and mode 1 gives each warp its byte share to within one round; and
 * the fix-up protocol, run with the warps arriving in a random order and a random value per token (the
 * kernel's partial sums), writes every row once with the sum of its tokens, the last arriver finding
 * every part from rfix and wstart alone, as the kernel does. */
static void split_case(int N, int K, int G, double sp, gq_density pat, int dense, int64_t W, int mode, uint64_t seed) {
    gq_gqs g;
    gq_gqs_dev d;
    assert_int_equal(gq_gqs_random(&g, N, K, G, 4, sp, pat, 0, seed), GQ_OK);
    assert_int_equal(gq_gqs_pack(&g, "split", &d), GQ_OK);
    int32_t *srow = malloc((size_t)2 * N * sizeof(int32_t));
    int64_t bytes = 0, Wg = 0;
    assert_int_equal(gq_gqs_stream_layout(&d, dense, srow, NULL, &bytes), GQ_OK);
    int32_t *ws = malloc((size_t)4 * (W + 1) * sizeof(int32_t)), *rfix = malloc((size_t)2 * N * sizeof(int32_t));
    assert_int_equal(gq_gqs_stream_split(srow, N, G, dense, W, mode, ws, rfix, &Wg), GQ_OK);
    assert_true(Wg >= 1 && Wg <= W);
    const int64_t FULL = GQ_STREAM_FULL(G, dense), SHORT = GQ_STREAM_SHORT(G, dense);
    /* tokens in order, each with its first byte and a random value */
    int64_t nt = 0;
    for (int r = 0; r < N; r++) nt += srow[2 * r + 1] ? srow[2 * r + 1] / 4 + srow[2 * r + 1] % 4 : 1;
    int32_t *trow = malloc((size_t)nt * 4), *tround = malloc((size_t)nt * 4);
    int64_t *tbyte = malloc((size_t)nt * 8);
    double *tval = malloc((size_t)nt * 8), *want = calloc((size_t)N, 8), *got = calloc((size_t)N, 8);
    int *writes = calloc((size_t)N, sizeof(int)), *cnt = calloc((size_t)N, sizeof(int));
    double *rec = calloc((size_t)2 * Wg, 8);
    gq_rng rng;
    gq_rng_seed(&rng, seed * 7 + 1);
    int64_t k = 0;
    for (int r = 0; r < N; r++) {
        const int64_t nb = srow[2 * r + 1], nf = nb / 4, nr = nf + nb % 4;
        for (int64_t t = 0; t < (nr ? nr : 1); t++, k++) {
            trow[k] = r, tround[k] = (int32_t)t;
            tbyte[k] = 16 * (int64_t)srow[2 * r] + (t < nf ? t * FULL : nf * FULL + (t - nf) * SHORT);
            tval[k] = nr ? gq_rng_normal(&rng) : 0.0;
            want[r] += tval[k];
        }
    }
    assert_int_equal(ws[4 * Wg], N);
    assert_int_equal(ws[4 * Wg + 2], bytes);
    /* each warp's range [token index of start_w, of start_{w+1}) */
    int64_t *t0 = malloc((size_t)(Wg + 1) * 8);
    for (int64_t w = 0; w <= Wg; w++) {
        int64_t i = 0;
        while (i < nt && (trow[i] < ws[4 * w] || (trow[i] == ws[4 * w] && tround[i] < ws[4 * w + 1]))) i++;
        t0[w] = i;
        if (i < nt) assert_int_equal(tbyte[i], ws[4 * w + 2]); /* the first byte matches the token */
        if (w) assert_true(t0[w] >= t0[w - 1]);
    }
    assert_int_equal(t0[0], 0);
    assert_int_equal(t0[Wg], nt);
    for (int64_t w = 0; w < Wg; w++) {
        if (mode != 1) assert_int_equal(ws[4 * w + 1], 0); /* row splits: whole rows */
        if (mode == 2) { /* equal bytes to within one row */
            int64_t maxrow = 0;
            for (int r = 0; r < N; r++) {
                const int64_t end = r + 1 < N ? 16 * (int64_t)srow[2 * r + 2] : bytes, len = end - 16 * (int64_t)srow[2 * r];
                if (len > maxrow) maxrow = len;
            }
            const int64_t share = ws[4 * (w + 1) + 2] - ws[4 * w + 2];
            assert_true(share <= bytes / Wg + maxrow + 1);
            /* the first row at or past the share's first byte, so less than a row past it */
            assert_true(ws[4 * w + 2] >= w * bytes / Wg && ws[4 * w + 2] < w * bytes / Wg + maxrow + 1);
        } else if (mode == 1) {
            const int64_t share = ws[4 * (w + 1) + 2] - ws[4 * w + 2];
            assert_true(share <= bytes / Wg + FULL + 16); /* within one round (and a row's padding) of equal */
        }
    }
    /* the warps in a random order, each walking its range as the kernel does */
    int64_t *order = malloc((size_t)Wg * 8);
    for (int64_t w = 0; w < Wg; w++) order[w] = w;
    for (int64_t w = Wg - 1; w > 0; w--) {
        const int64_t j = (int64_t)gq_rng_below(&rng, (uint64_t)w + 1), tmp = order[w];
        order[w] = order[j], order[j] = tmp;
    }
    for (int64_t oi = 0; oi < Wg; oi++) {
        const int64_t w = order[oi];
        for (int64_t i = t0[w]; i < t0[w + 1];) {
            const int r = trow[i];
            const int64_t ts = tround[i];
            double acc = 0;
            while (i < t0[w + 1] && trow[i] == r) acc += tval[i++];
            const int64_t nb = srow[2 * r + 1], nr = nb / 4 + nb % 4;
            const int64_t te = i < nt && trow[i] == r ? tround[i] : (nr ? nr : 1);
            if (ts == 0 && te == (nr ? nr : 1)) { /* whole */
                assert_int_equal(rfix[2 * r], -1);
                got[r] = acc, writes[r]++;
                continue;
            }
            assert_true(mode == 1 && rfix[2 * r] >= 0 && rfix[2 * r + 1] >= 2);
            rec[ts == 0 ? 2 * w + 1 : 2 * w] = acc;
            if (++cnt[r] < rfix[2 * r + 1]) continue;
            assert_int_equal(cnt[r], rfix[2 * r + 1]);
            const int64_t f0 = rfix[2 * r];
            double sum = rec[2 * f0 + 1];
            int parts = 1;
            for (int64_t j = f0 + 1; j < Wg && ws[4 * j] == r && ws[4 * j + 1] > 0; j++)
                if (ws[4 * j] != ws[4 * (j + 1)] || ws[4 * j + 1] != ws[4 * (j + 1) + 1]) sum += rec[2 * j], parts++;
            assert_int_equal(parts, rfix[2 * r + 1]);
            got[r] = sum, writes[r]++;
        }
    }
    int ncut = 0;
    for (int r = 0; r < N; r++) {
        assert_int_equal(writes[r], 1);
        assert_true(fabs(got[r] - want[r]) <= 1e-9 * (1 + fabs(want[r])));
        ncut += rfix[2 * r] >= 0;
    }
    if (mode == 1 && Wg >= 4 * N) assert_true(ncut > 0); /* the case exercises the fix-up */
    free(order), free(t0), free(rec), free(cnt), free(writes), free(got), free(want), free(tval), free(tbyte);
    free(tround), free(trow), free(rfix), free(ws), free(srow);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
}

static void test_stream_split(void **state) {
    (void)state;
    { /* a stream past 2 GB (its byte offsets are int32): an error naming the size, nothing written */
        const int32_t srow[4] = {0, 4, 200000000, 4}; /* row 1 starts at 3.2 GB */
        int32_t ws[12], fix[4];
        int64_t Wg = -1;
        assert_int_equal(gq_gqs_stream_split(srow, 2, 16, 0, 2, 1, ws, fix, &Wg), GQ_ERR_ARG);
        assert_non_null(strstr(gq_errmsg(), "int32"));
        assert_int_equal(Wg, -1);
    }
    const int64_t Ws[] = {1, 2, 7, 33, 128, 1000, 100000};
    for (int wi = 0; wi < 7; wi++)
        for (int mode = 0; mode < 3; mode++) {
            split_case(37, 1024, 16, 0.5, GQ_DENSITY_UNEVEN, 0, Ws[wi], mode, 50 + wi);
            split_case(64, 512, 16, 0.97, GQ_DENSITY_UNEVEN, 0, Ws[wi], mode, 60 + wi); /* empty rows */
            split_case(20, 4096, 8, 0.3, GQ_DENSITY_LAYER, 0, Ws[wi], mode, 70 + wi);
            split_case(9, 1536, 128, 0.0, GQ_DENSITY_ROW, 1, Ws[wi], mode, 80 + wi);   /* dense */
            split_case(3, 16384, 64, 0.1, GQ_DENSITY_ROW, 0, Ws[wi], mode, 90 + wi);   /* long rows, many parts */
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nibble_order),
        cmocka_unit_test(test_roundtrip_many),
        cmocka_unit_test(test_unsupported),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_density_patterns),
        cmocka_unit_test(test_rows_by_length),
        cmocka_unit_test(test_sk_helpers_bruteforce),
        cmocka_unit_test(test_sk_search),
        cmocka_unit_test(test_sk_emulation),
        cmocka_unit_test(test_task_list),
        cmocka_unit_test(test_round_split),
        cmocka_unit_test(test_stream_layout),
        cmocka_unit_test(test_stream_split),
        cmocka_unit_test(test_tiles_layout),
        cmocka_unit_test(test_rows_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
