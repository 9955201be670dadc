/* test_forward.c — the CPU forward pass against an independent float64 numpy reference
 * (tools/ref_forward.py -> tests/fixtures/forward/logits.txt) on the real stories260K, plus
 * properties that need no reference: causality, KV-cache decode == whole window, the two RoPE
 * conventions agree when q/k rows are permuted as HF<->Meta conversion does, GQA head mapping,
 * linear biases, the hook, and the seqlen limit.
 * The model is read here with a few lines of test code (not gq_model_load) so this suite checks
 * forward.c alone. Needs ../shared/models/stories260K (prints SKIP without it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"

/* |ours - ref| / max|ref| over a logits block. fp32 sgemm over D=64 and 5 layers against float64
 * lands around 1e-7..1e-6 here; 1e-5 is the brief's bar and leaves room for BLAS kernel choice. */
#define TOL_REF_REL 1e-5
/* Two fp32 computations of the same quantity that differ only in summation order (sgemv vs sgemm,
 * rotate-half vs interleaved pairs, expanded kv heads): a few ulp of the largest logit per layer. */
#define TOL_SAME_REL 5e-6

/* ------------------------------------------------------------------------------------------ */
/* A test-local model: llama2.c v0 layout read straight into a hand-built gq_model.            */

typedef struct {
    gq_model m;
    float *slab;
} tmodel;

static void tmodel_free(tmodel *t) {
    if (!t) return;
    free(t->m.blocks);
    free(t->slab);
    free(t);
}

/* Allocate the weights of cfg as zeros (tied embeddings), every tensor carved from one slab. */
static tmodel *tmodel_alloc(const gq_config *c) {
    tmodel *t = calloc(1, sizeof *t);
    t->m.cfg = *c;
    size_t D = c->dim, H = c->hidden_dim, qd = (size_t)c->n_heads * c->head_dim,
           kd = (size_t)c->n_kv_heads * c->head_dim, L = c->n_layers;
    size_t per = 2 * D + qd * D + 2 * kd * D + D * qd + 3 * H * D + 2 * D /* biases, o-bias */ + qd + 2 * kd;
    size_t total = (size_t)c->vocab_size * D + D + L * per;
    t->slab = calloc(total, sizeof(float));
    float *p = t->slab;
    t->m.tok_emb = p; p += (size_t)c->vocab_size * D;
    t->m.lm_head = t->m.tok_emb;
    t->m.final_norm = p; p += D;
    t->m.blocks = calloc(L, sizeof(gq_block));
    for (size_t l = 0; l < L; l++) {
        gq_block *b = &t->m.blocks[l];
        b->attn_norm = p; p += D;
        b->ffn_norm = p; p += D;
        int outs[GQ_LIN_COUNT] = {(int)qd, (int)kd, (int)kd, (int)D, (int)H, (int)H, (int)D};
        int ins[GQ_LIN_COUNT] = {(int)D, (int)D, (int)D, (int)qd, (int)D, (int)D, (int)H};
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            b->lin[k].out = outs[k];
            b->lin[k].in = ins[k];
            b->lin[k].w = p;
            p += (size_t)outs[k] * ins[k];
        }
        p += 2 * D + qd + 2 * kd; /* room for biases a test may attach */
    }
    return t;
}

static float *bias_slot(tmodel *t, int layer, gq_linear_kind k) {
    /* the spare room after the block's down_proj */
    const gq_block *b = &t->m.blocks[layer];
    float *room = b->lin[GQ_LIN_DOWN].w + (size_t)b->lin[GQ_LIN_DOWN].out * b->lin[GQ_LIN_DOWN].in;
    return room + (k == GQ_LIN_O ? 0 : (size_t)t->m.cfg.dim);
}

static tmodel *load_stories(void) {
    char path[1024];
    gq_data_path(path, sizeof path, "models/stories260K/stories260K.bin");
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    int32_t h[7];
    if (fread(h, 4, 7, f) != 7) { fclose(f); return NULL; }
    gq_config c = {0};
    c.arch = GQ_ARCH_LLAMA;
    c.dim = h[0]; c.hidden_dim = h[1]; c.n_layers = h[2]; c.n_heads = h[3]; c.n_kv_heads = h[4];
    c.vocab_size = abs(h[5]); c.max_seq_len = h[6]; c.head_dim = c.dim / c.n_heads;
    c.norm_eps = 1e-5f; c.rope_theta = 10000.0f; c.rope_style = GQ_ROPE_INTERLEAVED; c.tied_embeddings = 1;
    c.bos_id = 1; c.eos_id = 2; c.add_bos = 1;
    tmodel *t = tmodel_alloc(&c);
    size_t D = c.dim, L = c.n_layers;
    int ok = 1;
#define RD(ptr, n) ok = ok && fread((ptr), sizeof(float), (n), f) == (size_t)(n)
    RD(t->m.tok_emb, (size_t)c.vocab_size * D);
    for (size_t l = 0; l < L; l++) RD(t->m.blocks[l].attn_norm, D);
    static const gq_linear_kind order[] = {GQ_LIN_Q, GQ_LIN_K, GQ_LIN_V, GQ_LIN_O};
    for (int k = 0; k < 4; k++)
        for (size_t l = 0; l < L; l++) {
            gq_linear *li = &t->m.blocks[l].lin[order[k]];
            RD(li->w, (size_t)li->out * li->in);
        }
    for (size_t l = 0; l < L; l++) RD(t->m.blocks[l].ffn_norm, D);
    static const gq_linear_kind order2[] = {GQ_LIN_GATE, GQ_LIN_DOWN, GQ_LIN_UP}; /* w1, w2, w3 */
    for (int k = 0; k < 3; k++)
        for (size_t l = 0; l < L; l++) {
            gq_linear *li = &t->m.blocks[l].lin[order2[k]];
            RD(li->w, (size_t)li->out * li->in);
        }
    RD(t->m.final_norm, D);
#undef RD
    fclose(f);
    if (!ok) { tmodel_free(t); return NULL; }
    return t;
}

static tmodel *STORIES;

static int setup(void **st) {
    (void)st;
    STORIES = load_stories();
    if (!STORIES) printf("SKIP: stories260K not found under %s/models/stories260K\n", gq_data_root());
    return 0;
}
static int teardown(void **st) {
    (void)st;
    tmodel_free(STORIES);
    return 0;
}
#define NEED_STORIES() do { if (!STORIES) { printf("SKIP: no stories260K\n"); return; } } while (0)

/* max |a-b| / max|ref| over n values; prints the worst index */
static double rel_err(const char *what, const float *a, const double *ref, size_t n) {
    double mx = 0, worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - ref[i]);
        if (e > worst) { worst = e; wi = i; }
    }
    double r = mx > 0 ? worst / mx : worst;
    printf("%s: max rel err %.3e at %zu (ours %.9g ref %.9g, max|ref| %.4g)\n", what, r, wi, (double)a[wi], ref[wi], mx);
    return r;
}
static double rel_err_f(const char *what, const float *a, const float *b, size_t n) {
    double *r = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) r[i] = b[i];
    double e = rel_err(what, a, r, n);
    free(r);
    return e;
}

static gq_status forward_logits(const gq_model *m, const int32_t *ids, int T, float *logits) {
    gq_fwd f;
    gq_status st = gq_fwd_init(&f, m, T);
    if (st) return st;
    st = gq_forward(&f, ids, T, logits);
    gq_fwd_free(&f);
    return st;
}

/* ------------------------------------------------------------------------------------------ */

static void test_logits_vs_numpy(void **st) {
    (void)st;
    NEED_STORIES();
    FILE *f = fopen("tests/fixtures/forward/logits.txt", "r");
    assert_non_null(f);
    char line[256];
    int nseq = 0;
    while (fgets(line, sizeof line, f) && line[0] == '#') {}
    assert_int_equal(sscanf(line, "nseq %d", &nseq), 1);
    assert_true(nseq >= 1);
    for (int s = 0; s < nseq; s++) {
        int T, V;
        assert_int_equal(fscanf(f, " seq %d %d", &T, &V), 2);
        assert_int_equal(V, STORIES->m.cfg.vocab_size);
        int32_t *ids = malloc(sizeof(int32_t) * T);
        for (int t = 0; t < T; t++) assert_int_equal(fscanf(f, "%d", &ids[t]), 1);
        double *ref = malloc(sizeof(double) * T * V);
        for (int i = 0; i < T * V; i++) assert_int_equal(fscanf(f, "%lf", &ref[i]), 1);
        float *lg = malloc(sizeof(float) * T * V);
        assert_int_equal(forward_logits(&STORIES->m, ids, T, lg), GQ_OK);
        char what[64];
        snprintf(what, sizeof what, "sequence %d (T=%d) vs numpy float64", s, T);
        assert_true(rel_err(what, lg, ref, (size_t)T * V) < TOL_REF_REL);
        free(ids); free(ref); free(lg);
    }
    fclose(f);
}

static void test_causality(void **st) {
    (void)st;
    NEED_STORIES();
    enum { T = 24, CUT = 11 };
    int V = STORIES->m.cfg.vocab_size;
    int32_t a[T], b[T];
    for (int t = 0; t < T; t++) a[t] = b[t] = (t * 37 + 5) % V;
    b[CUT] = (a[CUT] + 100) % V;
    float *la = malloc(sizeof(float) * T * V), *lb = malloc(sizeof(float) * T * V);
    assert_int_equal(forward_logits(&STORIES->m, a, T, la), GQ_OK);
    assert_int_equal(forward_logits(&STORIES->m, b, T, lb), GQ_OK);
    /* rows before CUT: the same arithmetic on the same inputs, so equal to the bit */
    for (int i = 0; i < CUT * V; i++) assert_true(la[i] == lb[i]);
    /* and the change is visible at and after CUT (else this test could not fail) */
    for (int t = CUT; t < T; t++) {
        double d = 0;
        for (int v = 0; v < V; v++) d = fmax(d, fabs(la[t * V + v] - lb[t * V + v]));
        assert_true(d > 1e-3);
    }
    free(la); free(lb);
}

static void test_decode_matches_window(void **st) {
    (void)st;
    NEED_STORIES();
    enum { T = 40 };
    int V = STORIES->m.cfg.vocab_size;
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (t * 101 + 1) % V;
    float *full = malloc(sizeof(float) * T * V), *one = malloc(sizeof(float) * V);
    assert_int_equal(forward_logits(&STORIES->m, ids, T, full), GQ_OK);
    gq_fwd f;
    assert_int_equal(gq_fwd_init(&f, &STORIES->m, T), GQ_OK);
    double worst = 0;
    for (int p = 0; p < T; p++) {
        assert_int_equal(gq_fwd_decode(&f, ids[p], p, one), GQ_OK);
        double mx = 0, e = 0;
        for (int v = 0; v < V; v++) {
            mx = fmax(mx, fabs(full[p * V + v]));
            e = fmax(e, fabs(one[v] - full[p * V + v]));
        }
        worst = fmax(worst, e / mx);
    }
    printf("decode vs whole window: max rel err %.3e over %d positions\n", worst, T);
    assert_true(worst < TOL_SAME_REL);
    /* out of range position is an input error, not a crash */
    assert_int_equal(gq_fwd_decode(&f, 1, T, one), GQ_ERR_ARG);
    gq_fwd_free(&f);
    free(full); free(one);
}

/* Copy a model's weights into a fresh tmodel of config c (same sizes). */
static tmodel *tmodel_copy(const tmodel *src, const gq_config *c) {
    tmodel *t = tmodel_alloc(c);
    size_t D = c->dim;
    memcpy(t->m.tok_emb, src->m.tok_emb, sizeof(float) * c->vocab_size * D);
    memcpy(t->m.final_norm, src->m.final_norm, sizeof(float) * D);
    for (int l = 0; l < c->n_layers; l++) {
        memcpy(t->m.blocks[l].attn_norm, src->m.blocks[l].attn_norm, sizeof(float) * D);
        memcpy(t->m.blocks[l].ffn_norm, src->m.blocks[l].ffn_norm, sizeof(float) * D);
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_linear *a = &src->m.blocks[l].lin[k];
            if (t->m.blocks[l].lin[k].out == a->out)
                memcpy(t->m.blocks[l].lin[k].w, a->w, sizeof(float) * a->out * a->in);
        }
    }
    return t;
}

/* Hugging Face's converter permutes each q/k head's rows: Meta row 2i+j -> HF row j*HD/2 + i. */
static void permute_to_hf(float *dst, const float *src, int nheads, int HD, int K) {
    for (int h = 0; h < nheads; h++)
        for (int i = 0; i < HD / 2; i++)
            for (int j = 0; j < 2; j++)
                memcpy(dst + ((size_t)h * HD + j * HD / 2 + i) * K, src + ((size_t)h * HD + 2 * i + j) * K,
                       sizeof(float) * K);
}

static void test_rope_styles_agree(void **st) {
    (void)st;
    NEED_STORIES();
    gq_config c = STORIES->m.cfg;
    c.rope_style = GQ_ROPE_HALF;
    tmodel *hf = tmodel_copy(STORIES, &c);
    for (int l = 0; l < c.n_layers; l++) {
        permute_to_hf(hf->m.blocks[l].lin[GQ_LIN_Q].w, STORIES->m.blocks[l].lin[GQ_LIN_Q].w, c.n_heads, c.head_dim, c.dim);
        permute_to_hf(hf->m.blocks[l].lin[GQ_LIN_K].w, STORIES->m.blocks[l].lin[GQ_LIN_K].w, c.n_kv_heads, c.head_dim,
                      c.dim);
    }
    enum { T = 30 };
    int V = c.vocab_size;
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (t * 13 + 7) % V;
    float *a = malloc(sizeof(float) * T * V), *b = malloc(sizeof(float) * T * V);
    assert_int_equal(forward_logits(&STORIES->m, ids, T, a), GQ_OK);
    assert_int_equal(forward_logits(&hf->m, ids, T, b), GQ_OK);
    assert_true(rel_err_f("HALF + HF-permuted q/k vs INTERLEAVED", b, a, (size_t)T * V) < TOL_SAME_REL);
    /* HALF without the permutation must differ: the test can tell the two conventions apart */
    tmodel *wrong = tmodel_copy(STORIES, &c);
    assert_int_equal(forward_logits(&wrong->m, ids, T, b), GQ_OK);
    assert_true(rel_err_f("HALF, unpermuted (must differ)", b, a, (size_t)T * V) > 1e-2);
    tmodel_free(hf);
    tmodel_free(wrong);
    free(a); free(b);
}

/* GQA: the same model with every kv head duplicated to NKV = NH must give the same logits. */
static void test_gqa_matches_expanded_heads(void **st) {
    (void)st;
    NEED_STORIES();
    gq_config c = STORIES->m.cfg;
    assert_true(c.n_kv_heads < c.n_heads);
    int grp = c.n_heads / c.n_kv_heads, HD = c.head_dim, D = c.dim;
    c.n_kv_heads = c.n_heads;
    tmodel *mh = tmodel_copy(STORIES, &c);
    for (int l = 0; l < c.n_layers; l++)
        for (int k = GQ_LIN_K; k <= GQ_LIN_V; k++)
            for (int h = 0; h < c.n_heads; h++)
                memcpy(mh->m.blocks[l].lin[k].w + (size_t)h * HD * D,
                       STORIES->m.blocks[l].lin[k].w + (size_t)(h / grp) * HD * D, sizeof(float) * HD * D);
    enum { T = 20 };
    int V = c.vocab_size;
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (t * 29 + 3) % V;
    float *a = malloc(sizeof(float) * T * V), *b = malloc(sizeof(float) * T * V);
    assert_int_equal(forward_logits(&STORIES->m, ids, T, a), GQ_OK);
    assert_int_equal(forward_logits(&mh->m, ids, T, b), GQ_OK);
    assert_true(rel_err_f("NKV=NH expanded vs GQA", b, a, (size_t)T * V) < TOL_SAME_REL);
    tmodel_free(mh);
    free(a); free(b);
}

/* A v_proj bias b adds b to every attention output row (probabilities sum to 1), which is the same
 * as an o_proj bias of Wo b: two different bias paths, one answer. */
static void test_bias(void **st) {
    (void)st;
    NEED_STORIES();
    gq_config c = STORIES->m.cfg;
    tmodel *mv = tmodel_copy(STORIES, &c), *mo = tmodel_copy(STORIES, &c);
    int grp = c.n_heads / c.n_kv_heads, HD = c.head_dim, qd = c.n_heads * HD;
    for (int l = 0; l < c.n_layers; l++) {
        float *bv = bias_slot(mv, l, GQ_LIN_V), *bo = bias_slot(mo, l, GQ_LIN_O);
        int kd = c.n_kv_heads * HD;
        for (int i = 0; i < kd; i++) bv[i] = 0.1f * (float)((i * 7 + l) % 11 - 5);
        mv->m.blocks[l].lin[GQ_LIN_V].bias = bv;
        /* the attention output of head h carries kv head h/grp's bias */
        const float *wo = STORIES->m.blocks[l].lin[GQ_LIN_O].w;
        for (int n = 0; n < c.dim; n++) {
            double s = 0;
            for (int j = 0; j < qd; j++) s += (double)wo[(size_t)n * qd + j] * bv[(j / HD / grp) * HD + j % HD];
            bo[n] = (float)s;
        }
        mo->m.blocks[l].lin[GQ_LIN_O].bias = bo;
    }
    enum { T = 12 };
    int V = c.vocab_size;
    int32_t ids[T];
    for (int t = 0; t < T; t++) ids[t] = (t * 31 + 1) % V;
    float *a = malloc(sizeof(float) * T * V), *b = malloc(sizeof(float) * T * V), *z = malloc(sizeof(float) * T * V);
    assert_int_equal(forward_logits(&mv->m, ids, T, a), GQ_OK);
    assert_int_equal(forward_logits(&mo->m, ids, T, b), GQ_OK);
    assert_int_equal(forward_logits(&STORIES->m, ids, T, z), GQ_OK);
    assert_true(rel_err_f("v_proj bias vs equivalent o_proj bias", a, b, (size_t)T * V) < 1e-5);
    assert_true(rel_err_f("with bias vs without (must differ)", a, z, (size_t)T * V) > 1e-3);
    tmodel_free(mv);
    tmodel_free(mo);
    free(a); free(b); free(z);
}

typedef struct { int calls[GQ_LIN_COUNT]; int bad; } hook_count;
static void count_hook(void *ctx, int layer, gq_linear_kind kind, const float *x, int T, int K) {
    hook_count *h = ctx;
    (void)layer; (void)x;
    h->calls[kind]++;
    if (T != 5 || K <= 0) h->bad++;
}

static void test_hook_and_limits(void **st) {
    (void)st;
    NEED_STORIES();
    const gq_model *m = &STORIES->m;
    gq_fwd f;
    /* over the model's context: an input error with the brief's message */
    assert_int_equal(gq_fwd_init(&f, m, m->cfg.max_seq_len + 1), GQ_ERR_ARG);
    printf("error: %s\n", gq_errmsg());
    char want[128];
    snprintf(want, sizeof want, "seqlen %d is longer than the model allows (%d)", m->cfg.max_seq_len + 1,
             m->cfg.max_seq_len);
    assert_non_null(strstr(gq_errmsg(), want));
    assert_int_equal(gq_fwd_init(&f, m, 8), GQ_OK);
    hook_count hc = {{0}, 0};
    f.hook = count_hook;
    f.hook_ctx = &hc;
    int32_t ids[5] = {1, 2, 3, 4, 5};
    float *lg = malloc(sizeof(float) * 8 * m->cfg.vocab_size);
    assert_int_equal(gq_forward(&f, ids, 5, lg), GQ_OK);
    int L = m->cfg.n_layers;
    assert_int_equal(hc.calls[GQ_LIN_Q], L);
    assert_int_equal(hc.calls[GQ_LIN_O], L);
    assert_int_equal(hc.calls[GQ_LIN_GATE], L);
    assert_int_equal(hc.calls[GQ_LIN_DOWN], L);
    assert_int_equal(hc.calls[GQ_LIN_K] + hc.calls[GQ_LIN_V] + hc.calls[GQ_LIN_UP], 0);
    assert_int_equal(hc.bad, 0);
    /* a window longer than the buffers, a bad token id: errors, not crashes */
    int32_t big[9] = {0};
    assert_int_equal(gq_forward(&f, big, 9, lg), GQ_ERR_ARG);
    ids[2] = m->cfg.vocab_size;
    assert_int_equal(gq_forward(&f, ids, 5, lg), GQ_ERR_ARG);
    printf("error: %s\n", gq_errmsg());
    gq_fwd_free(&f);
    free(lg);
}

/* gq_nll_from_logits against a brute-force double computation on random logits */
static void test_nll(void **st) {
    (void)st;
    enum { T = 6, V = 37 };
    float lg[T * V];
    int32_t ids[T];
    gq_rng r;
    gq_rng_seed(&r, 7);
    for (int i = 0; i < T * V; i++) lg[i] = (float)(gq_rng_normal(&r) * 5);
    for (int t = 0; t < T; t++) ids[t] = (int32_t)gq_rng_below(&r, V);
    double want = 0;
    for (int t = 0; t + 1 < T; t++) {
        double z = 0;
        for (int v = 0; v < V; v++) z += exp((double)lg[t * V + v]);
        want -= log(exp((double)lg[t * V + ids[t + 1]]) / z);
    }
    int np = 0;
    double got = gq_nll_from_logits(lg, ids, T, V, &np);
    assert_int_equal(np, T - 1);
    assert_true(fabs(got - want) < 1e-12 * fabs(want));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nll),
        cmocka_unit_test(test_logits_vs_numpy),
        cmocka_unit_test(test_causality),
        cmocka_unit_test(test_decode_matches_window),
        cmocka_unit_test(test_rope_styles_agree),
        cmocka_unit_test(test_gqa_matches_expanded_heads),
        cmocka_unit_test(test_bias),
        cmocka_unit_test(test_hook_and_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
