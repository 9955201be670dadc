/* test_saliency.c — saliency against a brute-force float64 Gauss-Jordan inverse of the damped Hessian
 * (including a dead input and a non-positive-definite H that needs damping retries), group scores
 * against direct means, and pruning's exact counts and ordering per scope. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prune.h"
#include "saliency.h"

/* Cholesky vs Gauss-Jordan with partial pivoting on a well-conditioned (damped) K=24 matrix: both
 * are backward stable; 1e-9 relative leaves room for a condition number up to ~1e6 */
#define INV_RTOL 1e-9

/* Gauss-Jordan with partial pivoting: inv [K, K] of a [K, K]. */
static void gauss_jordan(const double *a, int K, double *inv) {
    double *m = malloc(sizeof(double) * K * 2 * K);
    for (int i = 0; i < K; i++)
        for (int j = 0; j < 2 * K; j++) m[i * 2 * K + j] = j < K ? a[i * K + j] : (j - K == i);
    for (int c = 0; c < K; c++) {
        int p = c;
        for (int r = c + 1; r < K; r++)
            if (fabs(m[r * 2 * K + c]) > fabs(m[p * 2 * K + c])) p = r;
        for (int j = 0; j < 2 * K; j++) {
            double t = m[c * 2 * K + j];
            m[c * 2 * K + j] = m[p * 2 * K + j];
            m[p * 2 * K + j] = t;
        }
        double d = m[c * 2 * K + c];
        for (int j = 0; j < 2 * K; j++) m[c * 2 * K + j] /= d;
        for (int r = 0; r < K; r++) {
            if (r == c) continue;
            double f = m[r * 2 * K + c];
            for (int j = 0; j < 2 * K; j++) m[r * 2 * K + j] -= f * m[c * 2 * K + j];
        }
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) inv[i * K + j] = m[i * 2 * K + K + j];
    free(m);
}

enum { K = 24, T = 64, N = 6, G = 4 };

static void make_h(double *H, gq_rng *rng, int dead_col) {
    double X[T * K];
    for (int i = 0; i < T * K; i++) X[i] = gq_rng_normal(rng) * (1 + (i % K) * 0.1);
    for (int t = 0; t < T; t++) X[t * K + dead_col] = 0;
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) {
            double s = 0;
            for (int t = 0; t < T; t++) s += X[t * K + a] * X[t * K + b];
            H[a * K + b] = 2 * s / T;
        }
}

static void check_against_gj(const double *H, double damp_final, int dead_col, const double *diag) {
    double Hd[K * K], inv[K * K], mean = 0;
    memcpy(Hd, H, sizeof Hd);
    if (dead_col >= 0) Hd[dead_col * K + dead_col] = 1;
    for (int j = 0; j < K; j++) mean += Hd[j * K + j];
    mean /= K;
    for (int j = 0; j < K; j++) Hd[j * K + j] += damp_final * mean;
    gauss_jordan(Hd, K, inv);
    for (int j = 0; j < K; j++) {
        if (j == dead_col) {
            assert_true(isinf(diag[j]));
            continue;
        }
        assert_true(fabs(diag[j] - inv[j * K + j]) <= INV_RTOL * fabs(inv[j * K + j]));
    }
}

static void test_hinv_vs_gauss_jordan(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 11);
    double H[K * K], diag[K];
    make_h(H, &rng, 5);
    int retries = -1;
    assert_int_equal(gq_saliency_hinv_diag(H, K, 0.01, "test", diag, &retries), GQ_OK);
    assert_int_equal(retries, 0);
    check_against_gj(H, 0.01, 5, diag);
    /* full inverse agrees too */
    double Hinv[K * K];
    uint8_t dead[K];
    assert_int_equal(gq_saliency_hinv(H, K, 0.01, "test", Hinv, dead, NULL), GQ_OK);
    assert_int_equal(dead[5], 1);
    assert_int_equal(dead[4], 0);
    for (int a = 0; a < K; a++) assert_true(Hinv[a * K + 3] == Hinv[3 * K + a]);

    /* saliency: s = w^2 / diag; dead column -> 0 */
    float w[N * K];
    double s[N * K], score[N * K / G];
    for (int i = 0; i < N * K; i++) w[i] = (float)gq_rng_normal(&rng);
    gq_saliency_weights(w, N, K, diag, s);
    for (int r = 0; r < N; r++)
        for (int j = 0; j < K; j++) {
            double ref = j == 5 ? 0 : (double)w[r * K + j] * w[r * K + j] / diag[j];
            assert_true(fabs(s[r * K + j] - ref) <= 1e-15 * fabs(ref));
        }
    gq_saliency_groups(s, N, K, G, score);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < K / G; c++) {
            double m = (s[r * K + c * G] + s[r * K + c * G + 1] + s[r * K + c * G + 2] + s[r * K + c * G + 3]) / 4;
            assert_true(fabs(score[r * (K / G) + c] - m) <= 1e-15 * m);
        }
}

static void test_not_pd_retries(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 12);
    double H[K * K], diag[K];
    make_h(H, &rng, 0);
    H[0] = 1; /* no dead column here: make it live */
    /* push H's Rayleigh quotient along a random v to -0.05 * mean(diag): 1% damping cannot fix that */
    double mean = 0;
    for (int j = 0; j < K; j++) mean += H[j * K + j];
    mean /= K;
    double v[K], nv = 0;
    for (int j = 0; j < K; j++) v[j] = gq_rng_normal(&rng), nv += v[j] * v[j];
    double c = 0;
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) c += v[a] * H[a * K + b] * v[b];
    c = c / nv + 0.05 * mean; /* Rayleigh quotient along v becomes -0.05 mean */
    for (int a = 0; a < K; a++)
        for (int b = 0; b < K; b++) H[a * K + b] -= c * v[a] * v[b] / nv;
    int retries = 0;
    assert_int_equal(gq_saliency_hinv_diag(H, K, 0.01, "test_notpd", diag, &retries), GQ_OK);
    assert_true(retries >= 1);
    /* recompute the mean as the routine sees it (diag changed) and compare at the final damping */
    check_against_gj(H, 0.01 * pow(10, retries), -1, diag);
    /* NaN is an error, not a retry loop */
    H[3] = NAN;
    H[3 * K + 3] = NAN;
    assert_int_equal(gq_saliency_hinv_diag(H, K, 0.01, "test_nan", diag, NULL), GQ_ERR_NUMERIC);
}

static void test_prune_counts(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 13);
    enum { R = 7, C = 9 };
    double score[R * C];
    uint8_t keep[R * C];
    const double sp[] = {0, 0.1, 0.25, 0.5, 0.73, 0.9, 1.0};
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < R * C; i++) score[i] = rep % 2 ? gq_rng_uniform(&rng) : (double)gq_rng_below(&rng, 4); /* ties */
        for (size_t si = 0; si < sizeof sp / sizeof *sp; si++) {
            /* layer scope: exact count, every removed score <= every kept score */
            double a = gq_prune_groups(score, R, C, sp[si], GQ_SCOPE_LAYER, keep);
            int removed = 0;
            double max_removed = -1, min_kept = 1e300;
            for (int i = 0; i < R * C; i++) {
                if (!keep[i]) removed++, max_removed = fmax(max_removed, score[i]);
                else min_kept = fmin(min_kept, score[i]);
            }
            assert_int_equal(removed, (int)llround(sp[si] * R * C));
            assert_true(fabs(a - (double)removed / (R * C)) < 1e-15);
            if (removed && removed < R * C) assert_true(max_removed <= min_kept);
            /* row scope: the same count in each row */
            a = gq_prune_groups(score, R, C, sp[si], GQ_SCOPE_ROW, keep);
            int per = (int)llround(sp[si] * C);
            for (int r = 0; r < R; r++) {
                int rr = 0;
                double mr = -1, mk = 1e300;
                for (int c = 0; c < C; c++) {
                    if (!keep[r * C + c]) rr++, mr = fmax(mr, score[r * C + c]);
                    else mk = fmin(mk, score[r * C + c]);
                }
                assert_int_equal(rr, per);
                if (rr && rr < C) assert_true(mr <= mk);
            }
            assert_true(fabs(a - (double)per / C) < 1e-15);
        }
    }
    /* ties: lower position first */
    double flat[4] = {1, 1, 1, 1};
    uint8_t k4[4];
    gq_prune_groups(flat, 1, 4, 0.5, GQ_SCOPE_LAYER, k4);
    assert_true(k4[0] == 0 && k4[1] == 0 && k4[2] == 1 && k4[3] == 1);
    /* apply zeroes exactly the pruned groups */
    float w[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint8_t kk[4] = {1, 0, 0, 1};
    gq_prune_apply(w, 2, 4, 2, kk);
    const float ref[8] = {1, 2, 0, 0, 0, 0, 7, 8};
    assert_memory_equal(w, ref, sizeof ref);
    gq_prune_scope s;
    assert_int_equal(gq_prune_scope_parse("row", &s), GQ_OK);
    assert_int_equal(s, GQ_SCOPE_ROW);
    assert_int_equal(gq_prune_scope_parse("rows", &s), GQ_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hinv_vs_gauss_jordan),
        cmocka_unit_test(test_not_pd_retries),
        cmocka_unit_test(test_prune_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
