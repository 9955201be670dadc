/* test_quant.c — the per-group quantizers against a float64 reference written here from the paper's
 * equations (quant.h), the |w - w_hat| <= s/2 round-trip bound, zero-safety (all-zero, constant,
 * single-outlier groups), odd group sizes, RTN of whole matrices and fp16 scale rounding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

/* Ties: float32 w/s may land on the other side of a .5 boundary than the float64 value; codes may
 * then differ by one. We only accept a difference when the float64 fraction is within this of .5. */
#define TIE_EPS 1e-4
/* The s/2 bound is exact in real arithmetic; float32 rounding of (q - z) * s adds a few ulps. */
#define BOUND_REL 1e-5

typedef struct { double s, z; int q[256]; double w_hat[256]; int tie[256]; } ref_out;

/* float64 reference of quant.h's equations */
static void ref_quant(const float *w, int n, int bits, gq_qmode mode, ref_out *r) {
    double mn = w[0], mx = w[0];
    for (int i = 1; i < n; i++) mn = fmin(mn, w[i]), mx = fmax(mx, w[i]);
    double maxq = (1 << bits) - 1;
    if (mode == GQ_QMODE_SYM) {
        double a = fmax(fabs(mn), fabs(mx));
        r->s = a > 0 ? 2 * a / maxq : 1;
        r->z = 1 << (bits - 1);
    } else {
        if (mode == GQ_QMODE_ASYM) mn = fmin(mn, 0), mx = fmax(mx, 0);
        r->s = mx > mn ? (mx - mn) / maxq : (fabs(mn) > 0 ? fabs(mn) : 1);
        r->z = -round(mn / r->s);
    }
    for (int i = 0; i < n; i++) {
        double t = w[i] / r->s;
        r->tie[i] = fabs(fabs(t - floor(t)) - 0.5) < TIE_EPS;
        double q = round(t) + r->z;
        q = q < 0 ? 0 : q > maxq ? maxq : q;
        r->q[i] = (int)q;
        r->w_hat[i] = (q - r->z) * r->s;
    }
}

static void fill(float *w, int n, gq_rng *rng, double scale) {
    for (int i = 0; i < n; i++) w[i] = (float)(gq_rng_normal(rng) * scale);
}

static void check_group(const float *w, int n, int bits, gq_qmode mode) {
    gq_qspec spec = {.bits = bits, .mode = mode, .fp16_scale = 0};
    uint8_t q[256];
    float wh[256], s, z;
    gq_quant_group(w, n, &spec, q, &s, &z, wh);
    ref_out r;
    ref_quant(w, n, bits, mode, &r);
    assert_true(fabs(s - r.s) <= 1e-6 * r.s);
    /* z is an integer from round(): it can only differ at a tie of min/s */
    assert_true(fabs(z - r.z) <= 1);
    if (z != r.z) return;
    double mn = w[0], mx = w[0];
    for (int i = 0; i < n; i++) mn = fmin(mn, w[i]), mx = fmax(mx, w[i]);
    for (int i = 0; i < n; i++) {
        if (q[i] != r.q[i]) {
            if (!r.tie[i]) print_error("bits %d mode %d n %d i %d: q %d ref %d (w %g s %g)\n", bits, mode, n, i, q[i], r.q[i], w[i], s);
            assert_true(r.tie[i] && abs(q[i] - r.q[i]) == 1);
            continue;
        }
        assert_true(fabs(wh[i] - r.w_hat[i]) <= BOUND_REL * (fabs(r.w_hat[i]) + s));
        /* round-trip bound for in-range values (every value is in range for ASYM/MINMAX; SYM's grid
         * stops at (2^b-1-z)*s, one step short of max|w| on the positive side) */
        if (mode != GQ_QMODE_SYM || w[i] <= (((1 << bits) - 1) - r.z) * r.s)
            assert_true(fabs(w[i] - wh[i]) <= 0.5 * s * (1 + BOUND_REL) + 1e-12);
        assert_true(q[i] <= (1 << bits) - 1);
    }
    if (mode == GQ_QMODE_ASYM) assert_true(z >= 0 && z <= (1 << bits) - 1);
}

static void test_random_groups_vs_float64(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 1);
    const int sizes[] = {1, 2, 3, 5, 7, 15, 16, 17, 31, 64, 128, 255};
    const int bits[] = {2, 3, 4, 8};
    float w[256];
    for (size_t a = 0; a < sizeof sizes / sizeof *sizes; a++)
        for (size_t b = 0; b < 4; b++)
            for (int mode = 0; mode < 3; mode++)
                for (int rep = 0; rep < 20; rep++) {
                    fill(w, sizes[a], &rng, rep % 3 == 0 ? 1e-3 : 1.0);
                    if (rep % 5 == 1) /* one-signed group */
                        for (int i = 0; i < sizes[a]; i++) w[i] = fabsf(w[i]) + 0.1f;
                    check_group(w, sizes[a], bits[b], (gq_qmode)mode);
                }
}

static void test_all_zero_group(void **st) {
    (void)st;
    float w[16] = {0}, wh[16], s, z;
    uint8_t q[16];
    for (int mode = 0; mode < 3; mode++)
        for (int bits = 2; bits <= 8; bits++) {
            gq_qspec spec = {bits, (gq_qmode)mode, mode == 1};
            gq_quant_group(w, 16, &spec, q, &s, &z, wh);
            assert_true(s > 0 && isfinite(s) && isfinite(z));
            for (int i = 0; i < 16; i++) {
                assert_true(wh[i] == 0.0f);
                assert_int_equal(q[i], (int)z);
            }
        }
}

static void test_constant_group(void **st) {
    (void)st;
    const float cs[] = {0.25f, -3.5f, 1e-20f};
    for (size_t c = 0; c < 3; c++) {
        float w[5], wh[5], s, z;
        for (int i = 0; i < 5; i++) w[i] = cs[c];
        gq_qspec spec = {4, GQ_QMODE_ASYM_MINMAX, 0};
        gq_quant_group(w, 5, &spec, NULL, &s, &z, wh);
        assert_true(s > 0);
        for (int i = 0; i < 5; i++) assert_true(wh[i] == cs[c]);
        check_group(w, 5, 4, GQ_QMODE_ASYM);
        check_group(w, 5, 3, GQ_QMODE_SYM);
    }
}

static void test_single_outlier(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 2);
    float w[16];
    for (int bits = 2; bits <= 8; bits *= 2) {
        fill(w, 16, &rng, 0.01);
        w[7] = 10.0f;
        for (int mode = 0; mode < 3; mode++) check_group(w, 16, bits, (gq_qmode)mode);
        w[7] = -10.0f;
        for (int mode = 0; mode < 3; mode++) check_group(w, 16, bits, (gq_qmode)mode);
    }
}

static void test_rtn_matrix(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 3);
    const int N = 5, K = 37, G = 8; /* 37 = 4*8 + 5: a partial last group */
    float w[N * K], orig[N * K], sc[N * 5], zr[N * 5];
    uint8_t q[N * K];
    fill(w, N * K, &rng, 1);
    memcpy(orig, w, sizeof w);
    gq_qspec spec = {3, GQ_QMODE_ASYM, 0};
    assert_int_equal(gq_quant_rtn(w, N, K, G, &spec, q, sc, zr), GQ_OK);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < 5; c++) {
            int n = c == 4 ? 5 : 8;
            ref_out ro;
            ref_quant(orig + r * K + c * G, n, 3, GQ_QMODE_ASYM, &ro);
            assert_true(fabs(sc[r * 5 + c] - ro.s) <= 1e-6 * ro.s);
            for (int j = 0; j < n; j++) {
                float wh = w[r * K + c * G + j];
                assert_true(wh == gq_quant_dequant(q[r * K + c * G + j], sc[r * 5 + c], zr[r * 5 + c]));
                assert_true(fabs(orig[r * K + c * G + j] - wh) <= 0.5 * ro.s * (1 + BOUND_REL));
            }
        }
    /* group 0 = one quantizer per row */
    memcpy(w, orig, sizeof w);
    assert_int_equal(gq_quant_rtn(w, N, K, 0, &spec, NULL, sc, zr), GQ_OK);
    ref_out ro;
    ref_quant(orig, K, 3, GQ_QMODE_ASYM, &ro);
    assert_true(fabs(sc[0] - ro.s) <= 1e-6 * ro.s);
    spec.bits = 9;
    assert_int_equal(gq_quant_rtn(w, N, K, G, &spec, NULL, NULL, NULL), GQ_ERR_ARG);
}

static void test_fp16_scale(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 4);
    float w[16], wh[16], s, z, s32, z32;
    for (int rep = 0; rep < 200; rep++) {
        fill(w, 16, &rng, rep % 2 ? 1e-3 : 1);
        gq_qspec a = {4, GQ_QMODE_ASYM, 0}, b = {4, GQ_QMODE_ASYM, 1};
        gq_quant_group(w, 16, &a, NULL, &s32, &z32, NULL);
        gq_quant_group(w, 16, &b, NULL, &s, &z, wh);
        assert_true(s >= s32);
        assert_true(gq_fp16_to_fp32(gq_fp32_to_fp16(s)) == s);
        /* the range is still covered, so the bound holds with the rounded scale */
        for (int i = 0; i < 16; i++) assert_true(fabsf(w[i] - wh[i]) <= 0.5f * s * (1 + BOUND_REL));
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_groups_vs_float64), cmocka_unit_test(test_all_zero_group),
        cmocka_unit_test(test_constant_group),           cmocka_unit_test(test_single_outlier),
        cmocka_unit_test(test_rtn_matrix),               cmocka_unit_test(test_fp16_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
