/* test_gguf.c — the GGUF reader: block dequantizers against hand-built blocks (float64 recomputation) and
 * against the gguf Python package (tests/fixtures/model_load/dequant_ref.txt, made by
 * tools/make_model_fixtures.py), metadata/tensor parsing of a GGUF written by the gguf package, and SmolLM2's
 * dequantized values against the same package (smollm2_ref.txt; SKIP when models/ lacks SmolLM2).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model.h"

#define FIX "tests/fixtures/model_load"
#define SMOL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"

/* Dequantization is d * q (+ m) with fp16 d, m: our float32 result and the reference's must agree to float32
 * rounding of one multiply-add, so 1e-6 relative plus a tiny absolute term (for values near 0) is ample. */
#define DEQ_ATOL 1e-7
#define DEQ_RTOL 1e-6

static int close_enough(double got, double ref) { return fabs(got - ref) <= DEQ_ATOL + DEQ_RTOL * fabs(ref); }

/* ---- hand-built blocks, recomputed in double straight from the ggml spec ---- */

static void put_f16(uint8_t *p, float f) {
    uint16_t h = gq_fp32_to_fp16(f);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static void test_dequant_hand_blocks(void **st) {
    (void)st;
    static const int counts[] = {1, 2, 3, 5, 7, 15, 17};
    for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
        int nb = counts[ci];
        uint8_t q40[17 * 18], q41[17 * 20], q80[17 * 34];
        float out[17 * 32];
        for (int b = 0; b < nb; b++) {
            float d = 0.25f * (float)(b + 1), m = -1.5f + 0.5f * (float)b;
            put_f16(q40 + 18 * b, d);
            put_f16(q41 + 20 * b, d);
            put_f16(q41 + 20 * b + 2, m);
            put_f16(q80 + 34 * b, d);
            for (int j = 0; j < 16; j++) {
                q40[18 * b + 2 + j] = (uint8_t)((j + b) % 16 | (((15 - j + 3 * b) % 16) << 4));
                q41[20 * b + 4 + j] = (uint8_t)((j * 3 + b) % 16 | (((j * 5 + 1) % 16) << 4));
            }
            for (int j = 0; j < 32; j++) q80[34 * b + 2 + j] = (uint8_t)(int8_t)(j * 9 - 128 + b);
        }
        gq_dequant_q4_0(q40, out, (uint64_t)nb * 32);
        for (int b = 0; b < nb; b++)
            for (int e = 0; e < 32; e++) {
                int nib = e < 16 ? ((e + b) % 16) : ((15 - (e - 16) + 3 * b) % 16);
                double ref = (double)(nib - 8) * 0.25 * (b + 1);
                assert_true(close_enough(out[32 * b + e], ref));
            }
        gq_dequant_q4_1(q41, out, (uint64_t)nb * 32);
        for (int b = 0; b < nb; b++)
            for (int e = 0; e < 32; e++) {
                int nib = e < 16 ? ((e * 3 + b) % 16) : (((e - 16) * 5 + 1) % 16);
                double ref = (double)nib * 0.25 * (b + 1) + (-1.5 + 0.5 * b);
                assert_true(close_enough(out[32 * b + e], ref));
            }
        gq_dequant_q8_0(q80, out, (uint64_t)nb * 32);
        for (int b = 0; b < nb; b++)
            for (int e = 0; e < 32; e++) {
                double ref = (double)(int8_t)(uint8_t)(e * 9 - 128 + b) * 0.25 * (b + 1);
                assert_true(close_enough(out[32 * b + e], ref));
            }
    }
}

/* ---- the gguf package's dequantization ---- */

static int hexval(char c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

static void test_dequant_vs_gguf_package(void **st) {
    (void)st;
    FILE *f = fopen(FIX "/dequant_ref.txt", "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int n_cases = 0;
    while (getline(&line, &cap, f) > 0) {
        if (line[0] == '#') continue;
        char type[16];
        unsigned long n;
        int pos;
        assert_int_equal(sscanf(line, "%15s %lu %n", type, &n, &pos), 2);
        char *hex = line + pos, *bar = strchr(hex, '|');
        assert_non_null(bar);
        size_t nbytes = (size_t)(bar - hex - 1) / 2;
        uint8_t *raw = malloc(nbytes);
        for (size_t i = 0; i < nbytes; i++) raw[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
        float *out = calloc(n, sizeof *out);
        /* go through the public tensor path too: a fake tensor pointing at the bytes */
        gq_gguf g = {0};
        snprintf(g.path, sizeof g.path, "dequant_ref");
        gq_gguf_tensor t = {0};
        t.name.s = "t";
        t.name.n = 1;
        t.n_elems = n;
        t.data = raw;
        if (!strcmp(type, "Q4_0")) t.type = GQ_GGML_Q4_0;
        else if (!strcmp(type, "Q4_1")) t.type = GQ_GGML_Q4_1;
        else if (!strcmp(type, "Q8_0")) t.type = GQ_GGML_Q8_0;
        else if (!strcmp(type, "F16")) t.type = GQ_GGML_F16;
        else if (!strcmp(type, "BF16")) t.type = GQ_GGML_BF16;
        else fail_msg("unknown type %s", type);
        assert_int_equal(gq_gguf_tensor_to_f32(&g, &t, out, n), GQ_OK);
        char *p = bar + 1;
        int bad = 0;
        for (unsigned long i = 0; i < n; i++) {
            double ref = strtod(p, &p);
            if (!close_enough(out[i], ref) && bad++ < 5)
                print_error("%s n=%lu element %lu: got %.9g ref %.9g\n", type, n, i, (double)out[i], ref);
        }
        assert_int_equal(bad, 0);
        free(raw);
        free(out);
        n_cases++;
    }
    free(line);
    fclose(f);
    assert_int_equal(n_cases, 17); /* 3 types x 5 block counts + F16 + BF16 */
}

/* ---- a GGUF written by the gguf package ---- */

static void test_parse_tiny(void **st) {
    (void)st;
    gq_gguf *g;
    assert_int_equal(gq_gguf_open(FIX "/tiny_llama/model.gguf", &g), GQ_OK);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->n_tensors, 3 + 2 * 9);
    assert_int_equal(g->alignment, 32);
    uint64_t u;
    double f;
    gq_gguf_str s;
    assert_int_equal(gq_gguf_get_u64(g, "llama.embedding_length", &u), GQ_OK);
    assert_int_equal(u, 32);
    assert_int_equal(gq_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &f), GQ_OK);
    assert_true(fabs(f - 1e-5) < 1e-11);
    assert_int_equal(gq_gguf_get_str(g, "general.architecture", &s), GQ_OK);
    assert_true(s.n == 5 && !memcmp(s.s, "llama", 5));
    assert_int_equal(gq_gguf_get_u64(g, "general.architecture", &u), GQ_ERR_FORMAT); /* wrong type */
    assert_non_null(strstr(gq_errmsg(), "general.architecture"));
    assert_int_equal(gq_gguf_get_u64(g, "no.such.key", &u), GQ_ERR_FORMAT);
    assert_non_null(strstr(gq_errmsg(), "no.such.key"));
    const gq_gguf_tensor *t = gq_gguf_find_tensor(g, "blk.1.attn_k.weight");
    assert_non_null(t);
    assert_int_equal(t->type, GQ_GGML_Q4_1);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->dims[0], 32);
    assert_int_equal(t->dims[1], 16);
    assert_int_equal(t->n_bytes, 16 * 20);
    assert_null(gq_gguf_find_tensor(g, "blk.9.attn_k.weight"));
    /* in-memory parse of the same bytes gives the same tensor table */
    gq_gguf *g2;
    assert_int_equal(gq_gguf_parse(g->buf, g->len, "mem", &g2), GQ_OK);
    assert_int_equal(g2->n_tensors, g->n_tensors);
    const gq_gguf_tensor *t2 = gq_gguf_find_tensor(g2, "blk.1.attn_k.weight");
    assert_int_equal(t2->offset, t->offset);
    assert_memory_equal(t2->data, t->data, t->n_bytes);
    gq_gguf_close(g2);
    gq_gguf_close(g);
}

/* Every prefix of a valid file must fail cleanly (never crash); the full file must parse. */
static void test_every_truncation(void **st) {
    (void)st;
    gq_gguf *g;
    assert_int_equal(gq_gguf_open(FIX "/tiny_llama/model.gguf", &g), GQ_OK);
    size_t len = g->len;
    int fails = 0;
    for (size_t n = 0; n < len; n += (n < 2048 ? 1 : 61)) {
        gq_gguf *h = NULL;
        gq_status s = gq_gguf_parse(g->buf, n, "trunc.gguf", &h);
        if (s == GQ_OK) gq_gguf_close(h);
        else {
            fails++;
            assert_non_null(strstr(gq_errmsg(), "trunc.gguf"));
        }
        assert_true(s != GQ_OK); /* the last tensor ends at EOF, so every proper prefix is short */
    }
    assert_true(fails > 0);
    gq_gguf_close(g);
}

/* ---- SmolLM2 ---- */

static void test_smollm2_values(void **st) {
    (void)st;
    FILE *probe = fopen(SMOL_PATH, "rb");
    if (!probe) {
        print_message("SKIP: %s not found (run `make models`)\n", SMOL_PATH);
        skip();
    }
    fclose(probe);
    gq_gguf *g;
    assert_int_equal(gq_gguf_open(SMOL_PATH, &g), GQ_OK);
    FILE *f = fopen(FIX "/smollm2_ref.txt", "r");
    assert_non_null(f);
    char line[512], name[128];
    float *buf = NULL;
    const gq_gguf_tensor *cur = NULL;
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        unsigned long r, c;
        double v;
        int is_sum = !strncmp(line, "sum ", 4);
        if (is_sum) assert_int_equal(sscanf(line + 4, "%127s %lf", name, &v), 2);
        else assert_int_equal(sscanf(line, "%127s %lu %lu %lf", name, &r, &c, &v), 4);
        const gq_gguf_tensor *t = gq_gguf_find_tensor(g, name);
        assert_non_null(t);
        if (t != cur) {
            free(buf);
            buf = malloc(t->n_elems * sizeof *buf);
            assert_int_equal(gq_gguf_tensor_to_f32(g, t, buf, t->n_elems), GQ_OK);
            cur = t;
        }
        if (is_sum) {
            double s = 0;
            for (uint64_t i = 0; i < t->n_elems; i++) s += buf[i];
            /* float64 sums of identical float32 values in a different order: 1e-9 relative */
            assert_true(fabs(s - v) <= 1e-6 + 1e-9 * fabs(v));
        } else {
            assert_true(r * t->dims[0] + c < t->n_elems);
            if (!close_enough(buf[r * t->dims[0] + c], v))
                fail_msg("%s[%lu][%lu] = %.9g, reference %.9g", name, r, c, (double)buf[r * t->dims[0] + c], v);
        }
        checked++;
    }
    fclose(f);
    free(buf);
    assert_true(checked >= 20);
    gq_gguf_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dequant_hand_blocks),
        cmocka_unit_test(test_dequant_vs_gguf_package),
        cmocka_unit_test(test_parse_tiny),
        cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_smollm2_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
