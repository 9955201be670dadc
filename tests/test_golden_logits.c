/* test_golden_logits.c — the CPU forward (gq_forward) of SmolLM2-135M against Hugging Face
 * transformers' logits (tests/fixtures/golden/smollm2_logits.bin, made by tools/ref_hf.py on the GPU
 * machine; its header documents the format). Checks per position the top-k logits and the log-sum-exp,
 * and every logit of each prompt's last position. Equal logits also confirm the RoPE convention
 * (gqsa rotates interleaved pairs on the GGUF rows, transformers rotate-half on un-permuted rows).
 * SKIPs (and passes) when the model (make models) or the fixture is missing.
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

#include "forward.h"
#include "model.h"

#define FIXTURE "tests/fixtures/golden/smollm2_logits.bin"
/* Both sides are fp32 forwards of the same dequantized weights, differing in summation order only
 * (~1e-6 of the row's max |logit| expected); 1e-4 relative to max |logit| is the project gate. */
#define TOL_REL 1e-4

typedef struct {
    const uint8_t *p, *end;
} rd;
static int rd_u32(rd *r, uint32_t *v) {
    if (r->end - r->p < 4) return -1;
    memcpy(v, r->p, 4);
    r->p += 4;
    return 0;
}
static int rd_bytes(rd *r, void *dst, size_t n) {
    if ((size_t)(r->end - r->p) < n) return -1;
    memcpy(dst, r->p, n);
    r->p += n;
    return 0;
}

static void test_golden(void **st) {
    (void)st;
    if (!gq_file_exists(FIXTURE)) {
        printf("SKIP: fixture missing (%s; the lead makes it with tools/ref_hf.py on the GPU machine)\n", FIXTURE);
        return;
    }
    gq_model *m = NULL;
    if (gq_model_load("smollm2-135m", NULL, &m) != GQ_OK) {
        printf("SKIP: SmolLM2-135M not found (%s); HINT: make models\n", gq_errmsg());
        return;
    }
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(gq_read_file(FIXTURE, &data, &len), GQ_OK);
    rd r = {(const uint8_t *)data, (const uint8_t *)data + len};
    char magic[8];
    uint32_t np = 0, V = 0, K = 0;
    assert_int_equal(rd_bytes(&r, magic, 8), 0);
    assert_memory_equal(magic, "GQGOLD01", 8);
    assert_int_equal(rd_u32(&r, &np), 0);
    assert_int_equal(rd_u32(&r, &V), 0);
    assert_int_equal(rd_u32(&r, &K), 0);
    assert_int_equal((int)V, m->cfg.vocab_size);
    assert_true(np >= 1 && np <= 64 && K >= 1 && K <= V);
    double worst = 0.0;
    for (uint32_t pi = 0; pi < np; pi++) {
        uint32_t T = 0;
        assert_int_equal(rd_u32(&r, &T), 0);
        assert_true(T >= 1 && T <= 512);
        int32_t *ids = malloc(4 * (size_t)T), *tid = malloc(4 * (size_t)T * K);
        float *lse = malloc(4 * (size_t)T), *mabs = malloc(4 * (size_t)T), *tv = malloc(4 * (size_t)T * K);
        float *last = malloc(4 * (size_t)V), *lg = malloc(4 * (size_t)T * V);
        assert_int_equal(rd_bytes(&r, ids, 4 * (size_t)T), 0);
        assert_int_equal(rd_bytes(&r, lse, 4 * (size_t)T), 0);
        assert_int_equal(rd_bytes(&r, mabs, 4 * (size_t)T), 0);
        assert_int_equal(rd_bytes(&r, tid, 4 * (size_t)T * K), 0);
        assert_int_equal(rd_bytes(&r, tv, 4 * (size_t)T * K), 0);
        assert_int_equal(rd_bytes(&r, last, 4 * (size_t)V), 0);
        for (uint32_t t = 0; t < T; t++) assert_true(ids[t] >= 0 && (uint32_t)ids[t] < V);
        gq_fwd f;
        assert_int_equal(gq_fwd_init(&f, m, (int)T), GQ_OK);
        assert_int_equal(gq_forward(&f, ids, (int)T, lg), GQ_OK);
        gq_fwd_free(&f);
        double pw = 0.0;
        for (uint32_t t = 0; t < T; t++) {
            const float *row = lg + (size_t)t * V;
            double mx = -INFINITY, s = 0.0;
            for (uint32_t v = 0; v < V; v++) mx = fmax(mx, row[v]);
            for (uint32_t v = 0; v < V; v++) s += exp((double)row[v] - mx);
            double scale = fmax(mabs[t], 1e-6);
            double e = fabs(mx + log(s) - lse[t]) / scale;
            pw = fmax(pw, e);
            if (!(e < TOL_REL)) printf("  prompt %u t=%u: logsumexp %.7g vs HF %.7g\n", pi, t, mx + log(s), lse[t]);
            for (uint32_t k = 0; k < K; k++) {
                int32_t id = tid[(size_t)t * K + k];
                assert_true(id >= 0 && (uint32_t)id < V);
                double ek = fabs((double)row[id] - tv[(size_t)t * K + k]) / scale;
                if (!(ek < TOL_REL) && ek > pw)
                    printf("  prompt %u t=%u: logit[%d] %.7g vs HF %.7g\n", pi, t, id, row[id], tv[(size_t)t * K + k]);
                pw = fmax(pw, ek);
            }
        }
        const float *row = lg + (size_t)(T - 1) * V;
        double scale = fmax(mabs[T - 1], 1e-6);
        for (uint32_t v = 0; v < V; v++) pw = fmax(pw, fabs((double)row[v] - last[v]) / scale);
        printf("  prompt %u (T=%u): max error / max|logit| = %.3g\n", pi, T, pw);
        worst = fmax(worst, pw);
        free(ids); free(tid); free(lse); free(mabs); free(tv); free(last); free(lg);
    }
    assert_true(r.p == r.end); /* no trailing bytes: the writer and this reader agree on the format */
    printf("golden logits: worst %.3g (tolerance %.0e)\n", worst, TOL_REL);
    assert_true(worst < TOL_REL);
    free(data);
    gq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
