/* test_eval_ppl.c — the perplexity protocol: window accounting against brute force, stories260K
 * perplexity against the float64 numpy reference (tools/ref_forward.py -> fixtures/forward/ppl.txt)
 * on the same ids, --limit, errors (seqlen over the model's context, a missing dataset file), the
 * WikiText-2 / C4 text joins against Python's (tools/ref_text.py -> fixtures/forward/text_sha256.txt),
 * and greedy generation from BOS against llama2.c's published sample (byte for byte) and the
 * reference's greedy ids; SmolLM2-135M (GGUF, via gq_model_load) logits against a float64 numpy
 * forward over the `gguf` package's dequantization (tools/ref_smollm2.py); gq_model_from_gguf. Needs ../shared and
 * models/ (prints SKIP for what is missing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../datasets/text.h"
#include "eval_ppl.h"
#include "forward.h"
#include "gguf.h"
#include "model_formats.h"
#include "generate.h"
#include "model.h"

/* Our fp32 logits vs float64 on stories260K: the per-token NLL agrees to ~1e-7 relative, so the
 * sum and the ppl of a few hundred tokens agree well inside the brief's 1e-6. */
#define TOL_PPL_REL 1e-6

static gq_model *STORIES;

static int setup(void **st) {
    (void)st;
    char path[1024];
    gq_data_path(path, sizeof path, "models/stories260K/stories260K.bin");
    if (!gq_file_exists(path) || gq_model_load(path, NULL, &STORIES) != GQ_OK) {
        printf("SKIP: stories260K not loadable from %s: %s\n", path, gq_errmsg());
        STORIES = NULL;
    }
    return 0;
}
static int teardown(void **st) {
    (void)st;
    gq_model_free(STORIES);
    return 0;
}
#define NEED_STORIES() do { if (!STORIES) { printf("SKIP: no stories260K\n"); return; } } while (0)

/* ---- window accounting with a fake model ------------------------------------------------- */

typedef struct { int calls; int T; long first_sum; } fake_ctx;
/* "NLL" of a window = sum of its ids (an arbitrary but checkable function of exactly its tokens) */
static gq_status fake_nll(void *ctx, const int32_t *tok, int T, double *nll) {
    fake_ctx *c = ctx;
    c->calls++;
    c->T = T;
    double s = 0;
    for (int i = 0; i < T; i++) s += tok[i];
    *nll = s * 1e-3;
    return GQ_OK;
}

static void test_windows_accounting(void **st) {
    (void)st;
    int32_t ids[100];
    for (int i = 0; i < 100; i++) ids[i] = i;
    struct { int seqlen, limit, want_windows; } cases[] = {{10, 0, 10}, {7, 0, 14}, {7, 3, 3}, {30, 5, 3}, {100, 0, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fake_ctx c = {0, 0, 0};
        gq_ppl_result r;
        memset(&r, 0, sizeof r);
        assert_int_equal(gq_eval_ppl_windows(fake_nll, &c, ids, 100, cases[k].seqlen, cases[k].limit, "t", &r), GQ_OK);
        int W = cases[k].want_windows, L = cases[k].seqlen;
        /* brute force: windows [w*L, (w+1)*L) */
        double want = 0;
        for (int w = 0; w < W; w++)
            for (int i = 0; i < L; i++) want += (w * L + i) * 1e-3;
        assert_int_equal(r.n_windows, W);
        assert_int_equal(c.calls, W);
        assert_int_equal(c.T, L);
        assert_int_equal(r.n_pred, (long)W * (L - 1));
        assert_int_equal(r.n_tokens, 100);
        assert_true(fabs(r.nll_sum - want) < 1e-9);
        assert_true(fabs(r.ppl - exp(want / ((double)W * (L - 1)))) < 1e-9 * r.ppl);
    }
    gq_ppl_result r;
    fake_ctx c = {0, 0, 0};
    assert_int_equal(gq_eval_ppl_windows(fake_nll, &c, ids, 100, 101, 0, "t", &r), GQ_ERR_ARG);
    printf("error: %s\n", gq_errmsg());
    assert_int_equal(gq_eval_ppl_windows(fake_nll, &c, ids, 100, 1, 0, "t", &r), GQ_ERR_ARG);
}

/* ---- stories260K against the numpy reference --------------------------------------------- */

typedef struct { int seqlen, limit, windows; long n_pred; double nll, ppl; } ref_case;

static int32_t *read_ppl_fixture(size_t *n, ref_case *cases, int *ncases) {
    FILE *f = fopen("tests/fixtures/forward/ppl.txt", "r");
    assert_non_null(f);
    char line[65536];
    int32_t *ids = NULL;
    *ncases = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#') continue;
        if (!strncmp(line, "ids ", 4)) {
            *n = strtoul(line + 4, NULL, 10);
            ids = malloc(sizeof(int32_t) * *n);
            for (size_t i = 0; i < *n; i++) assert_int_equal(fscanf(f, "%d", &ids[i]), 1);
        } else if (!strncmp(line, "case ", 5)) {
            ref_case *c = &cases[(*ncases)++];
            assert_int_equal(sscanf(line, "case %d %d %d %ld %lf %lf", &c->seqlen, &c->limit, &c->windows, &c->n_pred,
                                    &c->nll, &c->ppl), 6);
        }
    }
    fclose(f);
    assert_non_null(ids);
    assert_true(*ncases > 0);
    return ids;
}

static void test_ppl_vs_numpy(void **st) {
    (void)st;
    NEED_STORIES();
    size_t n = 0;
    ref_case cases[16];
    int nc = 0;
    int32_t *ids = read_ppl_fixture(&n, cases, &nc);
    for (int k = 0; k < nc; k++) {
        gq_ppl_result r;
        assert_int_equal(gq_eval_ppl_tokens(STORIES, ids, n, cases[k].seqlen, cases[k].limit, &r), GQ_OK);
        double e_nll = fabs(r.nll_sum - cases[k].nll) / cases[k].nll, e_ppl = fabs(r.ppl - cases[k].ppl) / cases[k].ppl;
        printf("seqlen %d limit %d: %d windows, ppl %.9f (numpy %.9f), rel err nll %.2e ppl %.2e\n", cases[k].seqlen,
               cases[k].limit, r.n_windows, r.ppl, cases[k].ppl, e_nll, e_ppl);
        assert_int_equal(r.n_windows, cases[k].windows);
        assert_int_equal(r.n_pred, cases[k].n_pred);
        assert_true(e_nll < TOL_PPL_REL);
        assert_true(e_ppl < TOL_PPL_REL);
    }
    free(ids);
}

static void test_errors(void **st) {
    (void)st;
    NEED_STORIES();
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    gq_ppl_result r;
    int over = STORIES->cfg.max_seq_len * 2;
    assert_int_equal(gq_eval_ppl_tokens(STORIES, ids, 8, over, 0, &r), GQ_ERR_ARG);
    printf("error: %s\n", gq_errmsg());
    assert_non_null(strstr(gq_errmsg(), "is longer than the model allows"));
    gq_ppl_opts o = {"wikitext2", over, 0, -1, NULL, NULL};
    assert_int_equal(gq_eval_ppl(STORIES, &o, &r), GQ_ERR_ARG);
    assert_non_null(strstr(gq_errmsg(), "is longer than the model allows"));
    /* a missing dataset file: the message names the path that was tried */
    char old[1024];
    snprintf(old, sizeof old, "%s", gq_data_root());
    gq_set_data_root("/nonexistent-gqsa-root");
    o.seqlen = 64;
    assert_int_equal(gq_eval_ppl(STORIES, &o, &r), GQ_ERR_IO);
    printf("error: %s\n", gq_errmsg());
    assert_non_null(strstr(gq_errmsg(), "/nonexistent-gqsa-root/datasets/wikitext-2-raw-v1/wiki.test.raw"));
    o.dataset = "c4";
    assert_int_equal(gq_eval_ppl(STORIES, &o, &r), GQ_ERR_IO);
    assert_non_null(strstr(gq_errmsg(), "/nonexistent-gqsa-root/datasets/c4/"));
    gq_set_data_root(old);
    o.dataset = "ptb";
    assert_int_equal(gq_eval_ppl(STORIES, &o, &r), GQ_ERR_ARG);
}

/* ---- text joins ---------------------------------------------------------------------------- */

static void test_wikitext_join_rules(void **st) {
    (void)st;
    /* rows keep their "\n"; whitespace-only rows become ""; a last line without "\n" is a row */
    const char *raw = " \n = T = \n \nab c\n\t \nlast";
    char *o;
    size_t n, rows;
    gq_text_wikitext_join(raw, strlen(raw), &o, &n, &rows);
    const char *want = "\n\n = T = \n\n\n\n\nab c\n\n\n\n\nlast";
    assert_int_equal(rows, 6);
    assert_int_equal(n, strlen(want));
    assert_string_equal(o, want);
    free(o);
    gq_text_wikitext_join("", 0, &o, &n, &rows);
    assert_int_equal(n, 0);
    assert_int_equal(rows, 0);
    free(o);
}

static int fixture_sha(const char *name, size_t *bytes, char hex[65]) {
    FILE *f = fopen("tests/fixtures/forward/text_sha256.txt", "r");
    assert_non_null(f);
    char line[256], nm[64];
    int found = 0;
    while (fgets(line, sizeof line, f))
        if (line[0] != '#' && sscanf(line, "%63s %zu %64s", nm, bytes, hex) == 3 && !strcmp(nm, name)) { found = 1; break; }
    fclose(f);
    return found;
}

static void test_corpora_match_python(void **st) {
    (void)st;
    char path[1024];
    gq_data_path(path, sizeof path, GQ_TEXT_WIKITEXT2_TEST);
    if (!gq_file_exists(path)) { printf("SKIP: %s missing\n", path); return; }
    struct { const char *name, *split; } w[] = {{"wikitext2-test", "test"}, {"wikitext2-valid", "valid"}};
    for (int k = 0; k < 2; k++) {
        char *t, hex[65], want[65];
        size_t n, rows, wbytes;
        assert_true(fixture_sha(w[k].name, &wbytes, want));
        assert_int_equal(gq_text_wikitext2(w[k].split, &t, &n, &rows), GQ_OK);
        gq_sha256_hex(t, n, hex);
        printf("%s: %zu rows, %zu bytes, sha256 %s\n", w[k].name, rows, n, hex);
        assert_int_equal(n, wbytes);
        assert_string_equal(hex, want);
        free(t);
    }
    char *t, hex[65], want[65];
    size_t n, wbytes;
    int docs;
    assert_true(fixture_sha("c4-new", &wbytes, want));
    assert_int_equal(gq_text_c4(&t, &n, &docs), GQ_OK);
    gq_sha256_hex(t, n, hex);
    printf("c4: %d docs, %zu bytes\n", docs, n);
    assert_int_equal(docs, 1025);
    assert_int_equal(n, wbytes);
    assert_string_equal(hex, want);
    free(t);
}

static void test_jsonl_hostile(void **st) {
    (void)st;
    char path[] = "/tmp/gqsa_test_jsonl_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *body = "{\"text\": \"a\\u00e9\"}\n\n{\"text\": \"b\"}\n{\"text\": 3}\n";
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    char *t;
    size_t n;
    int docs;
    assert_int_equal(gq_text_jsonl_join(path, 2, &t, &n, &docs), GQ_OK);
    assert_int_equal(docs, 2);
    assert_string_equal(t, "a\xc3\xa9 b");
    free(t);
    assert_int_equal(gq_text_jsonl_join(path, 10, &t, &n, &docs), GQ_ERR_FORMAT);
    printf("error: %s\n", gq_errmsg());
    assert_non_null(strstr(gq_errmsg(), ":4:"));
    unlink(path);
}

/* ---- generation ---------------------------------------------------------------------------- */

typedef struct { char *buf; size_t n, cap; } sbuf;
static void emit_buf(void *ctx, const char *b, size_t n) {
    sbuf *s = ctx;
    if (s->n + n + 1 > s->cap) { s->cap = (s->n + n + 1) * 2; s->buf = realloc(s->buf, s->cap); }
    memcpy(s->buf + s->n, b, n);
    s->n += n;
    s->buf[s->n] = 0;
}

static void test_greedy_sample(void **st) {
    (void)st;
    NEED_STORIES();
    int32_t bos = 1, out[300];
    int n = 0;
    gq_gen_opts o = {256, 0.0f, 0.9f, 42};
    sbuf s = {NULL, 0, 0};
    gq_gen_stats gs;
    assert_int_equal(gq_generate(STORIES, &bos, 1, &o, emit_buf, &s, out, 300, &n, &gs), GQ_OK);
    emit_buf(&s, "\n", 1); /* run.c ends with a newline */
    char *want;
    size_t wn;
    assert_int_equal(gq_read_file("tests/fixtures/stories260K/greedy_sample.txt", &want, &wn), GQ_OK);
    printf("greedy: %d tokens, %zu bytes (want %zu), %.0f tok/s\n", n, s.n, wn, gs.tok_per_s);
    assert_int_equal(s.n, wn);
    assert_memory_equal(s.buf, want, wn);
    /* and the ids equal the float64 reference's greedy ids */
    FILE *f = fopen("tests/fixtures/forward/greedy.txt", "r");
    assert_non_null(f);
    char line[512];
    while (fgets(line, sizeof line, f) && line[0] == '#') {}
    int rn = atoi(line);
    assert_int_equal(rn, n);
    for (int i = 0; i < rn; i++) {
        int id;
        assert_int_equal(fscanf(f, "%d", &id), 1);
        assert_int_equal(id, out[i]);
    }
    fclose(f);
    free(want);
    free(s.buf);
}

/* The sampler: T=0 is the first argmax; with a seed the draws are reproducible, and with top_p
 * tiny only the most likely token can come out. Frequencies of the full distribution follow the
 * softmax (chi-square-like bound with a fixed seed). */
static void test_sampler(void **st) {
    (void)st;
    float lg[5] = {1, 3, 3, -2, 0}, w[5];
    uint64_t rng = 7;
    assert_int_equal(gq_gen_sample(lg, 5, 0.0f, 0.9f, &rng), 1);
    int counts[5] = {0};
    for (int i = 0; i < 20000; i++) {
        memcpy(w, lg, sizeof w);
        counts[gq_gen_sample(w, 5, 1.0f, 0.0f, &rng)]++;
    }
    double z = 0, p[5];
    for (int i = 0; i < 5; i++) z += exp(lg[i]);
    for (int i = 0; i < 5; i++) {
        p[i] = exp(lg[i]) / z;
        double sd = sqrt(20000 * p[i] * (1 - p[i]));
        assert_true(fabs(counts[i] - 20000 * p[i]) < 5 * sd + 1);
    }
    for (int i = 0; i < 100; i++) {
        memcpy(w, lg, sizeof w);
        int k = gq_gen_sample(w, 5, 1.0f, 0.01f, &rng);
        assert_true(k == 1 || k == 2); /* the nucleus of mass 0.01 is one of the two tied maxima */
    }
    uint64_t a = 99, b = 99;
    for (int i = 0; i < 50; i++) {
        float x[5], y[5];
        memcpy(x, lg, sizeof x);
        memcpy(y, lg, sizeof y);
        assert_int_equal(gq_gen_sample(x, 5, 0.8f, 0.9f, &a), gq_gen_sample(y, 5, 0.8f, 0.9f, &b));
    }
}

/* SmolLM2 through the GGUF loader and the forward pass, against float64 numpy (30 layers, D=576:
 * fp32 error grows with depth; measured 2.2e-6 of max|logit|, bound 2e-5 for BLAS kernel choice). */
#define TOL_SMOLLM2_REL 2e-5
static void test_smollm2_vs_numpy(void **st) {
    (void)st;
    const char *path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!gq_file_exists(path)) { printf("SKIP: %s missing (make models)\n", path); return; }
    /* weights only: this checks the GGUF weight path and the forward pass, not the tokenizer */
    gq_gguf *g = NULL;
    gq_model *m = NULL;
    if (gq_gguf_open(path, &g) != GQ_OK || gq_model_from_gguf(g, 0, &m) != GQ_OK) {
        fail_msg("loading %s: %s", path, gq_errmsg());
    }
    gq_gguf_close(g);
    FILE *f = fopen("tests/fixtures/forward/smollm2_logits.txt", "r");
    assert_non_null(f);
    char line[4096];
    while (fgets(line, sizeof line, f) && line[0] == '#') {}
    int T, V, nc;
    assert_int_equal(sscanf(line, "T %d V %d ncols %d", &T, &V, &nc), 3);
    assert_int_equal(V, m->cfg.vocab_size);
    int32_t *ids = malloc(sizeof(int32_t) * T);
    int *cols = malloc(sizeof(int) * nc);
    for (int t = 0; t < T; t++) assert_int_equal(fscanf(f, "%d", &ids[t]), 1);
    for (int c = 0; c < nc; c++) assert_int_equal(fscanf(f, "%d", &cols[c]), 1);
    gq_fwd fw;
    assert_int_equal(gq_fwd_init(&fw, m, T), GQ_OK);
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    assert_int_equal(gq_forward(&fw, ids, T, lg), GQ_OK);
    double worst = 0, mx = 0, worst_lse = 0;
    int argmax_ok = 0;
    for (int t = 0; t < T; t++) {
        double lse, ref;
        int am;
        assert_int_equal(fscanf(f, "%lf %d", &lse, &am), 2);
        const float *r = lg + (size_t)t * V;
        int ours = 0;
        double m2 = r[0];
        for (int v = 1; v < V; v++) if (r[v] > r[ours]) ours = v;
        for (int v = 1; v < V; v++) if (r[v] > m2) m2 = r[v];
        double s = 0;
        for (int v = 0; v < V; v++) s += exp(r[v] - m2);
        worst_lse = fmax(worst_lse, fabs(m2 + log(s) - lse));
        argmax_ok += ours == am;
        for (int c = 0; c < nc; c++) {
            assert_int_equal(fscanf(f, "%lf", &ref), 1);
            worst = fmax(worst, fabs(r[cols[c]] - ref));
            mx = fmax(mx, fabs(ref));
        }
    }
    fclose(f);
    printf("SmolLM2 vs numpy float64: max rel err %.3e (max|ref| %.3g), max |lse err| %.3e, argmax %d/%d\n",
           worst / mx, mx, worst_lse, argmax_ok, T);
    assert_true(worst / mx < TOL_SMOLLM2_REL);
    assert_true(worst_lse < TOL_SMOLLM2_REL * mx);
    assert_int_equal(argmax_ok, T);
    gq_fwd_free(&fw);
    free(lg); free(ids); free(cols);
    gq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows_accounting),
        cmocka_unit_test(test_wikitext_join_rules),
        cmocka_unit_test(test_jsonl_hostile),
        cmocka_unit_test(test_corpora_match_python),
        cmocka_unit_test(test_ppl_vs_numpy),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_greedy_sample),
        cmocka_unit_test(test_sampler),
        cmocka_unit_test(test_smollm2_vs_numpy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
