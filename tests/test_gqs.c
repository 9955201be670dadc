/* test_gqs.c — the GQS format: the paper's Figure 2 example exactly, code packing (low nibble first),
 * reference GEMV == dense GEMV of the expanded matrix over random shapes / sparsities / groups / bits
 * (including empty and full rows), validation of corrupt arrays, memory accounting by hand. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gqs.h"
#include "quant.h"

/* GEMV: both sides accumulate in float64 from the same float32 products, only the final rounding
 * to float32 and summation order differ */
#define GEMV_RTOL 1e-5
#define GEMV_ATOL 1e-6

static void test_figure2(void **st) {
    (void)st;
    /* 4 x 8, G = 4: row0 keeps group 1, row1 groups 0 and 1, row2 none, row3 group 1 */
    const uint8_t keep[8] = {0, 1, 1, 1, 0, 0, 0, 1};
    float w[32];
    for (int i = 0; i < 32; i++) w[i] = (float)(i % 7) - 3.0f;
    gq_gqs g;
    assert_int_equal(gq_gqs_build(&g, w, keep, 4, 8, 4, 4), GQ_OK);
    const int32_t ri[5] = {0, 1, 3, 3, 4}, gc[4] = {1, 0, 1, 1};
    assert_int_equal(g.nnz, 4);
    assert_memory_equal(g.row_index, ri, sizeof ri);
    assert_memory_equal(g.group_col, gc, sizeof gc);
    assert_int_equal(gq_gqs_validate(&g, "fig2"), GQ_OK);
    /* kept groups equal the scalar quantizer's output (tested against float64 in test_quant), the
     * rest are zero */
    float dense[32];
    gq_gqs_expand(&g, dense);
    const gq_qspec spec = {4, GQ_QMODE_ASYM, 0};
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 2; c++) {
            float ref[4];
            if (keep[r * 2 + c]) gq_quant_group(w + r * 8 + c * 4, 4, &spec, NULL, NULL, NULL, ref);
            else memset(ref, 0, sizeof ref);
            assert_memory_equal(dense + r * 8 + c * 4, ref, sizeof ref);
        }
    /* build from codes: exact codes round-trip */
    uint8_t q[32];
    float sc[8], zr[8];
    for (int i = 0; i < 32; i++) q[i] = (uint8_t)((i * 5) % 16);
    for (int i = 0; i < 8; i++) sc[i] = 0.5f + i, zr[i] = (float)(i % 16);
    gq_gqs h;
    assert_int_equal(gq_gqs_build_from_codes(&h, q, sc, zr, keep, 4, 8, 4, 4), GQ_OK);
    assert_memory_equal(h.row_index, ri, sizeof ri);
    assert_memory_equal(h.group_col, gc, sizeof gc);
    size_t i = 0;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 2; c++) {
            if (!keep[r * 2 + c]) continue;
            for (int j = 0; j < 4; j++) assert_int_equal(gq_gqs_get_code(&h, i, j), q[r * 8 + c * 4 + j]);
            assert_true(h.scales[i] == sc[r * 2 + c] && h.zeros[i] == zr[r * 2 + c]);
            /* two 4-bit codes per byte, low nibble first */
            assert_int_equal(h.values[i * 2], q[r * 8 + c * 4] | q[r * 8 + c * 4 + 1] << 4);
            i++;
        }
    /* memory: 4 groups * 2 bytes of codes, 5 row offsets, 4 columns, fp16 scales, 4-bit zeros */
    gq_gqs_mem mem;
    gq_gqs_memory(&h, 0, &mem);
    assert_int_equal(mem.bytes_values, 8);
    assert_int_equal(mem.bytes_row_index, 20);
    assert_int_equal(mem.bytes_group_col, 16);
    assert_int_equal(mem.bytes_scales, 8);
    assert_int_equal(mem.bytes_zeros, 2);
    assert_int_equal(mem.bytes_total, 54);
    assert_true(fabs(mem.bits_per_weight - 54 * 8 / 32.0) < 1e-12);
    assert_true(fabs(mem.bits_per_weight_nometa - 2.0) < 1e-12);
    assert_true(fabs(mem.sparsity - 0.5) < 1e-12);
    gq_gqs_free(&g);
    gq_gqs_free(&h);
}

static void test_gemv_random(void **st) {
    (void)st;
    gq_rng rng;
    gq_rng_seed(&rng, 7);
    const int Gs[] = {4, 8, 16, 32, 128}, bitsv[] = {2, 3, 4, 8}, Ns[] = {1, 3, 17, 64};
    for (int gi = 0; gi < 5; gi++)
        for (int bi = 0; bi < 4; bi++)
            for (int ni = 0; ni < 4; ni++) {
                const int G = Gs[gi], bits = bitsv[bi], N = Ns[ni], C = 1 + (int)gq_rng_below(&rng, 6), K = G * C;
                float *w = malloc(sizeof(float) * N * K), *d = malloc(sizeof(float) * N * K), x[768], y[64];
                uint8_t *keep = malloc((size_t)N * C);
                for (int i = 0; i < N * K; i++) w[i] = (float)gq_rng_normal(&rng);
                for (int i = 0; i < K; i++) x[i] = (float)gq_rng_normal(&rng);
                /* very uneven rows: each row has its own density, some empty, some full */
                for (int r = 0; r < N; r++) {
                    double dens = r % 4 == 0 ? 0.0 : r % 4 == 1 ? 1.0 : gq_rng_uniform(&rng);
                    for (int c = 0; c < C; c++) keep[r * C + c] = gq_rng_uniform(&rng) < dens;
                }
                gq_gqs g;
                assert_int_equal(gq_gqs_build(&g, w, keep, N, K, G, bits), GQ_OK);
                assert_int_equal(gq_gqs_validate(&g, "random"), GQ_OK);
                gq_gqs_expand(&g, d);
                gq_gqs_gemv_ref(&g, x, y);
                for (int r = 0; r < N; r++) {
                    double ref = 0;
                    for (int k = 0; k < K; k++) ref += (double)d[r * K + k] * x[k];
                    if (fabs(y[r] - ref) > GEMV_ATOL + GEMV_RTOL * fabs(ref))
                        print_error("G %d bits %d N %d K %d row %d: %g vs %g\n", G, bits, N, K, r, y[r], ref);
                    assert_true(fabs(y[r] - ref) <= GEMV_ATOL + GEMV_RTOL * fabs(ref));
                    /* expanded values: pruned groups zero, kept groups within s/2 of w */
                    for (int c = 0; c < C; c++)
                        for (int j = 0; j < G; j++) {
                            float v = d[r * K + c * G + j];
                            if (!keep[r * C + c]) assert_true(v == 0.0f);
                        }
                }
                for (size_t i = 0; i < g.nnz; i++) {
                    int r = 0;
                    while (g.row_index[r + 1] <= (int32_t)i) r++;
                    for (int j = 0; j < G; j++) {
                        size_t off = (size_t)r * K + (size_t)g.group_col[i] * G + j;
                        assert_true(fabsf(w[off] - d[off]) <= 0.5f * g.scales[i] * (1 + 1e-5f));
                        assert_true(gq_gqs_get_code(&g, i, j) < (1 << bits));
                    }
                }
                gq_gqs_free(&g);
                free(w), free(d), free(keep);
            }
}

static void test_errors_and_validation(void **st) {
    (void)st;
    float w[24] = {0};
    uint8_t keep[6] = {1, 1, 1, 1, 1, 1};
    gq_gqs g;
    assert_int_equal(gq_gqs_build(&g, w, keep, 2, 12, 5, 4), GQ_ERR_ARG); /* 5 does not divide 12 */
    assert_int_equal(gq_gqs_build(&g, w, keep, 2, 12, 4, 5), GQ_ERR_ARG); /* 5 bits */
    uint8_t q[24] = {0};
    q[3] = 16;
    float s[6] = {1, 1, 1, 1, 1, 1}, z[6] = {0};
    assert_int_equal(gq_gqs_build_from_codes(&g, q, s, z, keep, 2, 12, 4, 4), GQ_ERR_ARG); /* code > 15 */
    q[3] = 0;
    assert_int_equal(gq_gqs_build_from_codes(&g, q, s, z, keep, 2, 12, 4, 4), GQ_OK);
    assert_int_equal(gq_gqs_validate(&g, "ok"), GQ_OK);
    g.group_col[1] = 0; /* not ascending */
    assert_int_equal(gq_gqs_validate(&g, "bad"), GQ_ERR_FORMAT);
    g.group_col[1] = 3; /* out of range */
    assert_int_equal(gq_gqs_validate(&g, "bad"), GQ_ERR_FORMAT);
    g.group_col[1] = 1;
    g.row_index[1] = 4; /* row 0 with 4 > 3 groups */
    assert_int_equal(gq_gqs_validate(&g, "bad"), GQ_ERR_FORMAT);
    g.row_index[1] = 3;
    g.row_index[2] = 5; /* != nnz */
    assert_int_equal(gq_gqs_validate(&g, "bad"), GQ_ERR_FORMAT);
    g.row_index[2] = 6;
    g.scales[0] = NAN;
    assert_int_equal(gq_gqs_validate(&g, "bad"), GQ_ERR_FORMAT);
    gq_gqs_free(&g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_figure2),
        cmocka_unit_test(test_gemv_random),
        cmocka_unit_test(test_errors_and_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
