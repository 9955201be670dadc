/* test_gpu_forward.c — the GPU evaluation forward (core/cuda/gpu.h) against the CPU forward
 * (core/forward.h, the reference): logits of stories260K (interleaved RoPE, GQA, head_dim 8) and of
 * random models with rotate-half RoPE and GQA (head_dim 16 and 64, T across attention tile
 * boundaries), and the on-device window NLL against the CPU's float64 NLL of the CPU logits.
 * The decode engine (core/cuda/decode.h, fp16 weights and KV cache, CUDA graph per step): greedy
 * tokens of stories260K equal the CPU greedy decode, and the last step's logits of a random
 * rotate-half GQA model equal the CPU decode of the same tokens with fp16-rounded weights.
 * Per-token log-probabilities on the device (gq_gpu_token_logprobs*: head on the scored rows only,
 * packed batches, chunking, buffer growth) against float64 log-softmax of the CPU logits, and the
 * zero-shot GPU backend against the CPU backend on stories260K (same predictions, ll within 1e-3).
 * Without a GPU (the CPU CI machine, or a build without nvcc) every test prints SKIP and passes.
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

#include "calib.h"
#include "cuda/gpu.h"
#include "eval_zeroshot.h"
#include "forward.h"
#include "model.h"
#ifdef GQSA_CUDA
#include "cuda/decode.h"
#include "cuda/gqs_gemv.h"
#endif

/* fp32 GEMMs on both sides, differing only in summation order (OpenBLAS vs cuBLAS blocking, tiled
 * online softmax vs in-order softmax): errors seen are ~1e-6 of the row's max |logit|; 1e-4 is the
 * project-wide gate for fp32 logits (the brief), two orders above that. */
#define TOL_LOGIT_FP32 1e-4
/* TF32 keeps 10 mantissa bits (~5e-4 relative per product): a loose sanity bound only. */
#define TOL_LOGIT_TF32 3e-2
/* Per-window NLL sums: same logits up to TOL_LOGIT_FP32 perturbations, float64 reductions. */
#define TOL_NLL_REL 1e-5

static int have_gpu(void) {
    if (gq_gpu_available() > 0) return 1;
    printf("SKIP: no CUDA device (or built without nvcc); GPU forward not exercised\n");
    return 0;
}

static void fill(gq_rng *r, float *p, size_t n, double sd, double mean) {
    for (size_t i = 0; i < n; i++) p[i] = (float)(mean + sd * gq_rng_normal(r));
}

static gq_model *random_model(int D, int H, int L, int NH, int NKV, int V, gq_rope_style rs, int tied, uint64_t seed) {
    gq_config c;
    memset(&c, 0, sizeof c);
    c.arch = GQ_ARCH_LLAMA;
    c.dim = D; c.hidden_dim = H; c.n_layers = L; c.n_heads = NH; c.n_kv_heads = NKV; c.head_dim = D / NH;
    c.vocab_size = V; c.max_seq_len = 512; c.norm_eps = 1e-5f; c.rope_theta = 10000.f; c.rope_style = rs;
    c.tied_embeddings = tied; c.bos_id = 1; c.eos_id = 2;
    snprintf(c.name, sizeof c.name, "random-test");
    gq_model *m = gq_model_alloc(&c);
    gq_rng r;
    gq_rng_seed(&r, seed);
    fill(&r, m->tok_emb, (size_t)V * D, 1.0, 0.0);
    if (!tied) fill(&r, m->lm_head, (size_t)V * D, 1.0 / sqrt(D), 0.0);
    fill(&r, m->final_norm, D, 0.1, 1.0);
    for (int l = 0; l < L; l++) {
        gq_block *b = &m->blocks[l];
        fill(&r, b->attn_norm, D, 0.1, 1.0);
        fill(&r, b->ffn_norm, D, 0.1, 1.0);
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            gq_linear *li = &b->lin[k];
            /* q/k scaled up so that attention is far from uniform and softmax errors would show */
            double sd = (k == GQ_LIN_Q || k == GQ_LIN_K ? 2.0 : 1.0) / sqrt((double)li->in);
            fill(&r, li->w, (size_t)li->out * li->in, sd, 0.0);
        }
    }
    return m;
}

/* Compare GPU and CPU logits for T tokens; returns max error relative to each row's max |logit|. */
static double compare_logits(const gq_model *m, const char *precision, const int32_t *tok, int T) {
    int V = m->cfg.vocab_size;
    float *ref = malloc(sizeof(float) * (size_t)T * V), *got = malloc(sizeof(float) * (size_t)T * V);
    assert_non_null(ref);
    assert_non_null(got);
    gq_fwd f;
    assert_int_equal(gq_fwd_init(&f, m, T), GQ_OK);
    assert_int_equal(gq_forward(&f, tok, T, ref), GQ_OK);
    gq_fwd_free(&f);
    gq_gpu_model *g = NULL;
    gq_status st = gq_gpu_model_upload(m, T, precision, &g);
    if (st != GQ_OK) fprintf(stderr, "upload: %s\n", gq_errmsg());
    assert_int_equal(st, GQ_OK);
    for (size_t i = 0; i < (size_t)T * V; i++) got[i] = NAN; /* poison: every logit must be written */
    st = gq_gpu_forward(g, tok, T, got);
    if (st != GQ_OK) fprintf(stderr, "forward: %s\n", gq_errmsg());
    assert_int_equal(st, GQ_OK);
    double worst = 0.0;
    int wt = -1, wv = -1;
    for (int t = 0; t < T; t++) {
        double mx = 0.0;
        for (int v = 0; v < V; v++) mx = fmax(mx, fabs(ref[(size_t)t * V + v]));
        if (mx < 1e-30) mx = 1e-30;
        for (int v = 0; v < V; v++) {
            double e = fabs((double)got[(size_t)t * V + v] - ref[(size_t)t * V + v]) / mx;
            if (!(e <= worst)) { /* NaN lands here too */
                worst = isnan(e) ? INFINITY : e;
                wt = t; wv = v;
            }
        }
    }
    if (wt >= 0)
        printf("  %s T=%d: max rel err %.3g at t=%d v=%d (gpu %.7g cpu %.7g)\n", precision, T, worst, wt, wv,
               got[(size_t)wt * V + wv], ref[(size_t)wt * V + wv]);
    /* window NLL on the device vs float64 NLL of the CPU logits */
    if (T >= 2) {
        int npred = 0;
        double nref = gq_nll_from_logits(ref, tok, T, V, &npred), ngot = 0.0;
        assert_int_equal(gq_gpu_window_nll(g, tok, T, &ngot), GQ_OK);
        double rel = fabs(ngot - nref) / fmax(fabs(nref), 1e-30);
        printf("  %s T=%d: window nll gpu %.9g cpu %.9g rel %.3g\n", precision, T, ngot, nref, rel);
        if (!strcmp(precision, "fp32")) assert_true(rel < TOL_NLL_REL);
    }
    gq_gpu_model_free(g);
    free(ref);
    free(got);
    return worst;
}

static int32_t *random_tokens(int T, int V, uint64_t seed) {
    int32_t *t = malloc(sizeof(int32_t) * (size_t)T);
    gq_rng r;
    gq_rng_seed(&r, seed);
    for (int i = 0; i < T; i++) t[i] = (int32_t)gq_rng_below(&r, (uint64_t)V);
    return t;
}

static void test_stories260k(void **st) {
    (void)st;
    if (!have_gpu()) return;
    gq_model *m = NULL;
    if (gq_model_load("stories260K", NULL, &m) != GQ_OK) {
        printf("SKIP: stories260K not found (%s)\n", gq_errmsg());
        return;
    }
    int T = 200; /* several 32-key tiles and a partial 8-query block */
    int32_t *tok = random_tokens(T, m->cfg.vocab_size, 7);
    tok[0] = 1;
    double e = compare_logits(m, "fp32", tok, T);
    assert_true(e < TOL_LOGIT_FP32);
    free(tok);
    gq_model_free(m);
}

static void test_random_half_gqa_hd16(void **st) {
    (void)st;
    if (!have_gpu()) return;
    gq_model *m = random_model(96, 160, 2, 6, 2, 301, GQ_ROPE_HALF, 0, 11);
    int Ts[] = {1, 2, 31, 33, 77};
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
        int32_t *tok = random_tokens(Ts[i], 301, 100 + i);
        double e = compare_logits(m, "fp32", tok, Ts[i]);
        assert_true(e < TOL_LOGIT_FP32);
        free(tok);
    }
    gq_model_free(m);
}

static void test_random_half_gqa_hd64(void **st) {
    (void)st;
    if (!have_gpu()) return;
    /* SmolLM2's attention shape (head_dim 64, 3 query heads per kv head), tied embeddings */
    gq_model *m = random_model(192, 256, 2, 3, 1, 500, GQ_ROPE_HALF, 1, 12);
    int32_t *tok = random_tokens(300, 500, 5);
    double e = compare_logits(m, "fp32", tok, 300);
    assert_true(e < TOL_LOGIT_FP32);
    e = compare_logits(m, "tf32", tok, 300);
    assert_true(e < TOL_LOGIT_TF32);
    free(tok);
    gq_model_free(m);
}

static void test_interleaved_hd128(void **st) {
    (void)st;
    if (!have_gpu()) return;
    gq_model *m = random_model(256, 384, 1, 2, 2, 200, GQ_ROPE_INTERLEAVED, 0, 13);
    int32_t *tok = random_tokens(65, 200, 9);
    double e = compare_logits(m, "fp32", tok, 65);
    assert_true(e < TOL_LOGIT_FP32);
    free(tok);
    gq_model_free(m);
}

/* The calibrate stage on the GPU (gq_gpu_calibrate) against the CPU's gq_calibrate on the same windows:
 * both take fp32 activations (two fp32 forwards differing in GEMM summation order, ~1e-6 relative) and
 * sum in float64, so every H and sumsq element must agree to 1e-5 of the largest |element| of its
 * matrix; n_tok exactly. A NaN weight must come back as GQ_ERR_NUMERIC naming its layer. */
#define TOL_CALIB_REL 1e-5
static void calib_compare(gq_model *m, int n, int T, uint64_t seed) {
    int32_t *win = random_tokens(n * T, m->cfg.vocab_size, seed);
    gq_hessians a, b;
    gq_hessians_init(&a, m);
    gq_hessians_init(&b, m);
    gq_calib_run_opts ro = {.sequential = 0, .keep_all = 1, .progress = 0};
    assert_int_equal(gq_calibrate(m, win, n, T, &ro, &a, NULL, NULL), GQ_OK);
    gq_status st = gq_gpu_calibrate(m, win, n, T, 0, &b);
    if (st != GQ_OK) fail_msg("gq_gpu_calibrate: %s", gq_errmsg());
    const gq_linear_kind heads[4] = {GQ_LIN_Q, GQ_LIN_O, GQ_LIN_GATE, GQ_LIN_DOWN};
    double worst = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int h = 0; h < 4; h++) {
            const gq_hessian *ha = gq_hessians_get(&a, l, heads[h]), *hb = gq_hessians_get(&b, l, heads[h]);
            assert_non_null(ha);
            assert_non_null(hb);
            assert_int_equal(ha->K, hb->K);
            assert_int_equal(ha->n_tok, hb->n_tok);
            const size_t K = (size_t)ha->K;
            double mh = 0, dh = 0, ms = 0, ds = 0;
            for (size_t i = 0; i < K * K; i++) {
                mh = fmax(mh, fabs(ha->H[i]));
                double e = fabs(ha->H[i] - hb->H[i]);
                dh = e > dh || isnan(e) ? e : dh;
            }
            for (size_t j = 0; j < K; j++) {
                ms = fmax(ms, fabs(ha->sumsq[j]));
                double e = fabs(ha->sumsq[j] - hb->sumsq[j]);
                ds = e > ds || isnan(e) ? e : ds;
            }
            assert_true(mh > 0);
            if (!(dh <= TOL_CALIB_REL * mh) || !(ds <= TOL_CALIB_REL * ms))
                fail_msg("layers.%d.%s: H err %.3g of %.3g, sumsq err %.3g of %.3g", l, gq_linear_name(heads[h]), dh, mh, ds, ms);
            worst = fmax(worst, fmax(dh / mh, ds / ms));
        }
    printf("  calibrate GPU vs CPU (%s, %d x %d): worst relative error %.3g\n", m->cfg.name, n, T, worst);
    gq_hessians_free(&a);
    gq_hessians_free(&b);
    free(win);
}

static void test_calibrate_gpu(void **st) {
    (void)st;
    if (!have_gpu()) return;
    gq_model *m = NULL;
    if (gq_model_load("stories260K", NULL, &m) == GQ_OK) {
        calib_compare(m, 3, 64, 5);
        gq_model_free(m);
    } else {
        printf("SKIP: stories260K not found (%s); random models only\n", gq_errmsg());
    }
    m = random_model(192, 256, 2, 3, 1, 500, GQ_ROPE_HALF, 0, 41); /* head_dim 64, GQA 3:1 */
    calib_compare(m, 2, 100, 6);
    /* a NaN weight in gate_proj of block 1 reaches the down_proj input of block 1 */
    m->blocks[1].lin[GQ_LIN_GATE].w[5] = NAN;
    int32_t *win = random_tokens(2 * 32, 500, 7);
    gq_hessians h;
    gq_hessians_init(&h, m);
    assert_int_equal(gq_gpu_calibrate(m, win, 2, 32, 0, &h), GQ_ERR_NUMERIC);
    assert_non_null(strstr(gq_errmsg(), "layers.1.down_proj"));
    gq_hessians_free(&h);
    free(win);
    gq_model_free(m);
}

static void test_bad_input(void **st) {
    (void)st;
    if (!have_gpu()) return;
    gq_model *m = random_model(64, 96, 1, 4, 2, 50, GQ_ROPE_HALF, 1, 14);
    gq_gpu_model *g = NULL;
    assert_int_equal(gq_gpu_model_upload(m, 16, "fp64", &g), GQ_ERR_ARG);
    assert_null(g);
    assert_int_equal(gq_gpu_model_upload(m, 16, "fp32", &g), GQ_OK);
    int32_t tok[4] = {1, 2, 50, 3};
    float logits[4 * 50];
    assert_int_equal(gq_gpu_forward(g, tok, 4, logits), GQ_ERR_ARG); /* id 50 == V */
    assert_non_null(strstr(gq_errmsg(), "position 2"));
    int32_t many[17] = {0};
    double nll;
    assert_int_equal(gq_gpu_window_nll(g, many, 17, &nll), GQ_ERR_ARG); /* T > max_T */
    gq_gpu_model_free(g);
    gq_model_free(m);
}


/* ------------------------------------------------------------------------------------------ */
/* per-token log-probabilities */

/* Log-probs come from the same fp32 logits up to TOL_LOGIT_FP32-level rounding (~1e-6 of max|logit|
 * seen); a log-softmax moves by at most twice the largest logit error, so 1e-4 absolute (the brief's
 * gate) holds for logits of magnitude up to ~50. */
#define TOL_LP_ABS 1e-4
/* An argmax may legitimately flip between CPU and GPU only when the target's logit is this close to
 * the best other logit (relative to the row's max |logit|): rounding-level ties. */
#define TOL_ARGMAX_TIE 1e-5

/* CPU reference for window tokens[0..T): float64 log-softmax of gq_forward's logits at rows [from, T-1). */
static void cpu_logprobs(const gq_model *m, const int32_t *tok, int T, int from, double *lp, int *greedy,
                         double *tie_gap) {
    int V = m->cfg.vocab_size;
    float *lg = malloc(sizeof(float) * (size_t)T * V);
    assert_non_null(lg);
    gq_fwd f;
    assert_int_equal(gq_fwd_init(&f, m, T), GQ_OK);
    assert_int_equal(gq_forward(&f, tok, T, lg), GQ_OK);
    gq_fwd_free(&f);
    for (int t = from; t < T - 1; t++) {
        const float *row = lg + (size_t)t * V;
        int y = tok[t + 1], amax = 0;
        double mx = row[0], amx = fabs(row[0]), best_other = -INFINITY;
        for (int v = 1; v < V; v++) {
            if (row[v] > mx) { mx = row[v]; amax = v; }
            amx = fmax(amx, fabs(row[v]));
        }
        for (int v = 0; v < V; v++)
            if (v != y) best_other = fmax(best_other, row[v]);
        double se = 0.0;
        for (int v = 0; v < V; v++) se += exp((double)row[v] - mx);
        lp[t - from] = (double)row[y] - mx - log(se);
        greedy[t - from] = amax == y;
        tie_gap[t - from] = fabs((double)row[y] - best_other) / fmax(amx, 1e-30);
    }
    free(lg);
}

/* Check GPU results of one sequence against the CPU; returns the max |lp diff|. */
static double check_lp(const gq_model *m, const int32_t *tok, int T, int from, const double *lp, const int *greedy) {
    int n = T - 1 - from;
    double *ref = malloc(sizeof(double) * (size_t)n), *gap = malloc(sizeof(double) * (size_t)n);
    int *rg = malloc(sizeof(int) * (size_t)n);
    cpu_logprobs(m, tok, T, from, ref, rg, gap);
    double worst = 0.0;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(lp[i] - ref[i]);
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        if (!(e < TOL_LP_ABS) && bad++ < 5)
            printf("  lp mismatch T=%d t=%d: gpu %.9g cpu %.9g\n", T, from + i, lp[i], ref[i]);
        if (greedy && greedy[i] != rg[i]) {
            printf("  greedy differs T=%d t=%d (gpu %d cpu %d, tie gap %.3g)\n", T, from + i, greedy[i], rg[i], gap[i]);
            assert_true(gap[i] < TOL_ARGMAX_TIE);
        }
    }
    printf("  T=%d from=%d: %d log-probs, max |gpu - cpu| = %.3g\n", T, from, n, worst);
    assert_true(worst < TOL_LP_ABS);
    free(ref); free(gap); free(rg);
    return worst;
}

static void test_logprobs_stories260k(void **st) {
    (void)st;
    if (!have_gpu()) return;
    gq_model *m = NULL;
    if (gq_model_load("stories260K", NULL, &m) != GQ_OK) {
        printf("SKIP: stories260K not found (%s)\n", gq_errmsg());
        return;
    }
    int T = 200, V = m->cfg.vocab_size;
    int32_t *tok = random_tokens(T, V, 17);
    tok[0] = 1;
    gq_gpu_model *g = NULL;
    assert_int_equal(gq_gpu_model_upload(m, T - 1, "fp32", &g), GQ_OK); /* T-1 rows: the last token is a target */
    double *lp = malloc(sizeof(double) * (size_t)T);
    int *gr = malloc(sizeof(int) * (size_t)T);
    int froms[] = {0, 1, 137, T - 2};
    for (size_t k = 0; k < sizeof froms / sizeof froms[0]; k++) {
        int n = T - 1 - froms[k];
        for (int i = 0; i < T; i++) { lp[i] = NAN; gr[i] = -1; }
        gq_status s = gq_gpu_token_logprobs(g, tok, T, froms[k], lp, gr);
        if (s != GQ_OK) fprintf(stderr, "%s\n", gq_errmsg());
        assert_int_equal(s, GQ_OK);
        for (int i = n; i < T; i++) { /* nothing written past T-1-from */
            assert_true(isnan(lp[i]));
            assert_int_equal(gr[i], -1);
        }
        check_lp(m, tok, T, froms[k], lp, gr);
    }
    gq_gpu_model_free(g);
    free(lp); free(gr); free(tok);
    gq_model_free(m);
}

/* Packed batches: prefix and duplicate sequences, a 2-token sequence, passes split by max_T, growth. */
static void test_logprobs_batch_random(void **st) {
    (void)st;
    if (!have_gpu()) return;
    const int V = 301;
    gq_model *m = random_model(96, 160, 2, 6, 2, V, GQ_ROPE_HALF, 0, 41);
    enum { NS = 6 };
    int Ts[NS] = {40, 25, 2, 77, 40, 33};
    int froms[NS] = {30, 0, 0, 60, 5, 31};
    int32_t *tok[NS];
    for (int b = 0; b < NS; b++) tok[b] = random_tokens(Ts[b], V, 200 + b);
    memcpy(tok[1], tok[0], sizeof(int32_t) * 25); /* 1 is a prefix of 0 */
    memcpy(tok[4], tok[0], sizeof(int32_t) * 40); /* 4 equals 0 */
    gq_gpu_lp_seq q[NS];
    int *greedy_buf[NS];
    for (int b = 0; b < NS; b++) {
        int n = Ts[b] - 1 - froms[b];
        greedy_buf[b] = malloc(sizeof(int) * (size_t)n);
        q[b] = (gq_gpu_lp_seq){tok[b], Ts[b], froms[b], malloc(sizeof(double) * (size_t)n), greedy_buf[b]};
    }
    gq_gpu_model *g = NULL;
    /* 76 rows per pass: 39+24+1 | 76 | 39+32 — three passes, one exactly full */
    assert_int_equal(gq_gpu_model_upload(m, 76, "fp32", &g), GQ_OK);
    for (int pass = 0; pass < 2; pass++) {
        gq_status s = gq_gpu_token_logprobs_batch(g, NS, q);
        if (s != GQ_OK) fprintf(stderr, "%s\n", gq_errmsg());
        assert_int_equal(s, GQ_OK);
        for (int b = 0; b < NS; b++) check_lp(m, tok[b], Ts[b], froms[b], q[b].lp, q[b].is_greedy);
        /* the duplicate's rows are the same rows of a window with the same tokens */
        for (int t = 30; t < 39; t++) assert_true(fabs(q[4].lp[t - 5] - q[0].lp[t - 30]) < TOL_LP_ABS);
        /* second round: everything in one pass after growing the buffers */
        assert_int_equal(gq_gpu_model_reserve(g, 300), GQ_OK);
    }
    /* is_greedy may be NULL */
    q[3].is_greedy = NULL;
    assert_int_equal(gq_gpu_token_logprobs_batch(g, 1, &q[3]), GQ_OK);
    check_lp(m, tok[3], Ts[3], froms[3], q[3].lp, NULL);
    /* bad requests name the sequence and change nothing else */
    gq_gpu_lp_seq bad = q[0];
    gq_gpu_lp_seq two[2] = {q[0], q[0]};
    bad.T = 1;
    two[1] = bad;
    assert_int_equal(gq_gpu_token_logprobs_batch(g, 2, two), GQ_ERR_ARG);
    assert_non_null(strstr(gq_errmsg(), "sequence 1"));
    bad = q[0];
    bad.from = bad.T - 1;
    assert_int_equal(gq_gpu_token_logprobs_batch(g, 1, &bad), GQ_ERR_ARG);
    bad.from = -1;
    assert_int_equal(gq_gpu_token_logprobs_batch(g, 1, &bad), GQ_ERR_ARG);
    int32_t oov[5] = {1, 2, 3, V, 4};
    double lp5[4];
    assert_int_equal(gq_gpu_token_logprobs(g, oov, 5, 0, lp5, NULL), GQ_ERR_ARG); /* the target is checked too */
    assert_non_null(strstr(gq_errmsg(), "position 3"));
    int32_t *lng = random_tokens(302, V, 9); /* 301 rows > 300 */
    double *lpl = malloc(sizeof(double) * 301);
    assert_int_equal(gq_gpu_token_logprobs(g, lng, 302, 0, lpl, NULL), GQ_ERR_ARG);
    assert_non_null(strstr(gq_errmsg(), "gq_gpu_model_reserve"));
    /* and the model still works after the errors */
    assert_int_equal(gq_gpu_token_logprobs(g, lng, 301, 250, lpl, NULL), GQ_OK);
    check_lp(m, lng, 301, 250, lpl, NULL);
    free(lng); free(lpl);
    gq_gpu_model_free(g);
    for (int b = 0; b < NS; b++) { free(tok[b]); free(q[b].lp); free(greedy_buf[b]); }
    gq_model_free(m);
}

static void test_logprobs_smollm_shape(void **st) {
    (void)st;
    if (!have_gpu()) return;
    /* head_dim 64, 3 query heads per kv head, tied embeddings (SmolLM2's attention shape) */
    gq_model *m = random_model(192, 256, 2, 3, 1, 500, GQ_ROPE_HALF, 1, 42);
    /* tied: the head is the embedding (sd 1 gives logits ~40); 0.1 keeps them O(5) like a trained
     * model's, so the absolute log-prob gate means the same as for the other models */
    for (size_t i = 0; i < (size_t)500 * 192; i++) m->tok_emb[i] *= 0.1f;
    int32_t *a = random_tokens(300, 500, 51), *b = random_tokens(129, 500, 52);
    double lpa[299], lpb[128];
    int ga[299], gb[128];
    gq_gpu_lp_seq q[2] = {{a, 300, 0, lpa, ga}, {b, 129, 64, lpb, gb}};
    gq_gpu_model *g = NULL;
    assert_int_equal(gq_gpu_model_upload(m, 512, "fp32", &g), GQ_OK);
    assert_int_equal(gq_gpu_token_logprobs_batch(g, 2, q), GQ_OK);
    check_lp(m, a, 300, 0, lpa, ga);
    check_lp(m, b, 129, 64, lpb, gb);
    gq_gpu_model_free(g);
    free(a); free(b);
    gq_model_free(m);
}

/* ------------------------------------------------------------------------------------------ */
/* the zero-shot GPU backend against the CPU backend */

/* Per-item ll: the same per-token log-probs summed in the same order over <= ~100 continuation
 * tokens, each within ~1e-5: 1e-3 is the brief's gate. Predictions must agree except where the two
 * best choices are closer than that on the CPU (a tie at the gate's resolution). */
#define TOL_ZS_LL 1e-3

typedef struct {
    int n;
    int task[32], idx[32], nc[32], pred[32], pred_norm[32];
    double ll[32][GQ_ZS_MAX_CHOICES];
    size_t chars[32][GQ_ZS_MAX_CHOICES];
} zs_items;

static void zs_collect(void *ctx, const gq_zs_item_score *s) {
    zs_items *z = ctx;
    assert_true(z->n < 32);
    int k = z->n++;
    z->task[k] = s->task;
    z->idx[k] = s->idx;
    z->nc[k] = s->n_choices;
    z->pred[k] = s->pred;
    z->pred_norm[k] = s->pred_norm;
    for (int c = 0; c < s->n_choices; c++) {
        z->ll[k][c] = s->ll[c];
        z->chars[k][c] = s->chars[c];
    }
}

static int have_data_file(const char *rel) {
    char buf[1024];
    return gq_file_exists(gq_data_path(buf, sizeof buf, rel));
}

static void test_zeroshot_gpu_vs_cpu(void **st) {
    (void)st;
    if (!have_gpu()) return;
    for (int k = 0; k < GQ_ZS_N_TASKS; k++)
        if (!have_data_file(gq_zs_task_relpath((gq_zs_task_id)k))) {
            printf("SKIP: %s not under %s\n", gq_zs_task_relpath((gq_zs_task_id)k), gq_data_root());
            return;
        }
    gq_model *m = NULL;
    if (gq_model_load("stories260K", NULL, &m) != GQ_OK) {
        printf("SKIP: stories260K not found (%s)\n", gq_errmsg());
        return;
    }
    static zs_items zc, zg;
    memset(&zc, 0, sizeof zc);
    memset(&zg, 0, sizeof zg);
    gq_zs_opts o = {.limit = 5, .quiet = 1, .on_item = zs_collect, .cb_ctx = &zc, .device = "cpu"};
    gq_zs_result rc, rg;
    assert_int_equal(gq_eval_zeroshot(m, &o, &rc), GQ_OK);
    o.cb_ctx = &zg;
    o.device = "cuda";
    gq_status s = gq_eval_zeroshot(m, &o, &rg);
    if (s != GQ_OK) fprintf(stderr, "%s\n", gq_errmsg());
    assert_int_equal(s, GQ_OK);
    printf("  cpu: %s\n  gpu: %s\n", rc.device, rg.device);
    assert_non_null(strstr(rg.device, "cuda fp32"));
    assert_int_equal(zc.n, 25);
    assert_int_equal(zg.n, 25);
    double worst = 0.0;
    for (int i = 0; i < zc.n; i++) {
        assert_int_equal(zg.task[i], zc.task[i]);
        assert_int_equal(zg.idx[i], zc.idx[i]);
        assert_int_equal(zg.nc[i], zc.nc[i]);
        for (int c = 0; c < zc.nc[i]; c++) {
            double e = fabs(zg.ll[i][c] - zc.ll[i][c]);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
        if (zg.pred[i] != zc.pred[i]) {
            printf("  item %d: pred gpu %d cpu %d\n", i, zg.pred[i], zc.pred[i]);
            assert_true(fabs(zc.ll[i][zg.pred[i]] - zc.ll[i][zc.pred[i]]) < TOL_ZS_LL);
        }
        if (zg.pred_norm[i] != zc.pred_norm[i]) {
            int a = zg.pred_norm[i], b = zc.pred_norm[i];
            printf("  item %d: pred_norm gpu %d cpu %d\n", i, a, b);
            assert_true(fabs(zc.ll[i][a] / (double)zc.chars[i][a] - zc.ll[i][b] / (double)zc.chars[i][b]) < TOL_ZS_LL);
        }
    }
    printf("  zero-shot: 25 items, max |ll gpu - ll cpu| = %.3g\n", worst);
    assert_true(worst < TOL_ZS_LL);
    for (int k = 0; k < rc.n_tasks; k++) {
        assert_int_equal(rg.task[k].n, rc.task[k].n);
        assert_int_equal(rg.task[k].n_tokens, rc.task[k].n_tokens);
    }
    /* an unknown device is an argument error, not a silent CPU run */
    o.device = "tpu";
    assert_int_equal(gq_eval_zeroshot(m, &o, &rg), GQ_ERR_ARG);
    gq_model_free(m);
}

#ifdef GQSA_CUDA
/* fp16 KV cache and fp16 activations nowhere else (weights compared after the same fp16 rounding):
 * K/V rounding gives ~1e-3 relative logit errors; 1e-2 of max |logit| still catches any indexing
 * or position bug (those give O(1) errors). */
#define TOL_DECODE_LOGIT 1e-2

static void round_weights_fp16(gq_model *m) {
    const gq_config *c = &m->cfg;
    for (size_t i = 0; i < (size_t)c->vocab_size * c->dim; i++) m->tok_emb[i] = gq_fp16_to_fp32(gq_fp32_to_fp16(m->tok_emb[i]));
    if (m->lm_head != m->tok_emb)
        for (size_t i = 0; i < (size_t)c->vocab_size * c->dim; i++) m->lm_head[i] = gq_fp16_to_fp32(gq_fp32_to_fp16(m->lm_head[i]));
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            gq_linear *li = &m->blocks[l].lin[k];
            for (size_t i = 0; i < (size_t)li->out * li->in; i++) li->w[i] = gq_fp16_to_fp32(gq_fp32_to_fp16(li->w[i]));
        }
}

/* CPU greedy continuation and the logits of its last step. */
static void cpu_decode(const gq_model *m, const int32_t *prompt, int np, int n, int32_t *out, float *last) {
    gq_fwd f;
    assert_int_equal(gq_fwd_init(&f, m, np + n), GQ_OK);
    int32_t tok = prompt[0];
    for (int p = 0; p < np + n - 1; p++) {
        assert_int_equal(gq_fwd_decode(&f, tok, p, last), GQ_OK);
        int best = 0;
        for (int v = 1; v < m->cfg.vocab_size; v++)
            if (last[v] > last[best]) best = v;
        if (p + 1 < np) tok = prompt[p + 1];
        else out[p + 1 - np] = tok = best;
    }
    gq_fwd_free(&f);
}

/* Replace every block linear of m by the W_hat the decode engine builds for format o. */
static void apply_dec_quant(gq_model *m, const gq_dec_opts *o) {
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            gq_linear *li = &m->blocks[l].lin[k];
            gq_gqs_dev dev;
            assert_int_equal(gq_dec_quantize(li->w, li->out, li->in, o, gq_linear_name(k), &dev), GQ_OK);
            gq_gqs_dev_expand(&dev, li->w);
            gq_gqs_dev_free(&dev);
        }
}

static void check_decode_fmt(gq_model *m, const gq_dec_opts *fo, const int32_t *prompt, int np, int n,
                             int tokens_must_match) {
    int V = m->cfg.vocab_size;
    gq_dec_opts o = *fo;
    o.max_T = np + n;
    gq_decoder *d = NULL;
    gq_status st = gq_dec_create(m, &o, &d);
    if (st) fprintf(stderr, "decoder: %s\n", gq_errmsg());
    assert_int_equal(st, GQ_OK);
    int32_t *got = malloc(sizeof(int32_t) * (size_t)n), *ref = malloc(sizeof(int32_t) * (size_t)n);
    float *lg = malloc(sizeof(float) * (size_t)V), *lr = malloc(sizeof(float) * (size_t)V);
    gq_dec_stats ds;
    for (int rep = 0; rep < 2; rep++) { /* twice: the second run must reset the cache and position */
        for (int i = 0; i < n; i++) got[i] = -1;
        assert_int_equal(gq_dec_generate(d, prompt, np, n, got, &ds), GQ_OK);
    }
    assert_int_equal(gq_dec_last_logits(d, lg), GQ_OK);
    if (o.format != GQ_DEC_FP16) apply_dec_quant(m, &o);
    round_weights_fp16(m);
    if (tokens_must_match) {
        cpu_decode(m, prompt, np, n, ref, lr);
        int same = 0;
        while (same < n && got[same] == ref[same]) same++;
        printf("  decode: %d of %d greedy tokens equal the CPU's\n", same, n);
        assert_int_equal(same, n);
    } else {
        /* replay the GPU's own tokens on the CPU: the last logits must agree whatever was chosen */
        int32_t *all = malloc(sizeof(int32_t) * (size_t)(np + n));
        memcpy(all, prompt, sizeof(int32_t) * (size_t)np);
        memcpy(all + np, got, sizeof(int32_t) * (size_t)n);
        cpu_decode(m, all, np + n - 1, 1, ref, lr);
        free(all);
    }
    double mx = 0, e = 0;
    for (int v = 0; v < V; v++) mx = fmax(mx, fabs(lr[v]));
    for (int v = 0; v < V; v++) {
        double ev = fabs((double)lg[v] - lr[v]) / fmax(mx, 1e-30);
        if (!(ev <= e)) e = isnan(ev) ? INFINITY : ev;
    }
    printf("  decode: last-step logits max err / max|logit| = %.3g (%.3f ms/token)\n", e, ds.ms_per_tok);
    assert_true(e < TOL_DECODE_LOGIT);
    gq_dec_free(d);
    free(got); free(ref); free(lg); free(lr);
}

static void check_decode(gq_model *m, const int32_t *prompt, int np, int n, int tokens_must_match) {
    gq_dec_opts o = {.format = GQ_DEC_FP16, .group = 16, .bits = 4, .gemv_kind = -1};
    check_decode_fmt(m, &o, prompt, np, n, tokens_must_match);
}

static void test_decode_stories260k(void **st) {
    (void)st;
    if (!have_gpu()) return;
    gq_model *m = NULL;
    if (gq_model_load("stories260K", NULL, &m) != GQ_OK) {
        printf("SKIP: stories260K not found (%s)\n", gq_errmsg());
        return;
    }
    int32_t prompt[1] = {1};
    check_decode(m, prompt, 1, 150, 1); /* > one 128-key attention chunk */
    gq_dec_opts o = {.format = GQ_DEC_FP16, .group = 16, .bits = 4, .gemv_kind = -1, .no_pdl = 1};
    check_decode_fmt(m, &o, prompt, 1, 150, 1); /* the same without programmatic dependent launch */
    gq_model_free(m);
}

/* The decode attention at every head_dim the engine instantiates besides 8 and 64 (its V pass splits the
 * keys over 4 * 32 / min(HD, 32) streams), across three 128-key chunks. */
static void test_decode_head_dims(void **st) {
    (void)st;
    if (!have_gpu()) return;
    const int dims[3][3] = {{128, 8, 2}, {128, 4, 2}, {256, 2, 1}}; /* D, NH, NKV: head_dim 16, 32, 128 */
    for (int i = 0; i < 3; i++) {
        printf("  head_dim %d:\n", dims[i][0] / dims[i][1]);
        gq_model *m = random_model(dims[i][0], 256, 2, dims[i][1], dims[i][2], 300, GQ_ROPE_HALF, 0, 51 + i);
        int32_t *prompt = random_tokens(3, 300, 9 + i);
        check_decode(m, prompt, 3, 262, 0);
        free(prompt);
        gq_model_free(m);
    }
}

static void test_decode_random_half_gqa(void **st) {
    (void)st;
    if (!have_gpu()) return;
    gq_model *m = random_model(192, 256, 2, 3, 1, 500, GQ_ROPE_HALF, 0, 21);
    int32_t *prompt = random_tokens(5, 500, 3);
    check_decode(m, prompt, 5, 300, 0);
    free(prompt);
    gq_model_free(m);
}

/* fp16, W4 (dense kernel) and GQS S50/S30 against the CPU decode of the same W_hat: the default kernels (v7),
 * the v2 row split, the v4, v5 and v10 task kernels, the v6, v8 and v9 row splits (bulk copies, cp.async ring,
 * pipelined walk; with
 * and without PDL), v3, the v3, v6 and v8 dense W4 kernels, the default without programmatic dependent
 * launch, and with the L2 prefetch (the v5 kernels). The wide-hidden model (down_proj K = 3072) has rows of more than one round of loads,
 * so the prefetch (and the fp16 GEMV's) is issued; at hidden 512 it is not. */
static void test_decode_quantized(void **st) {
    (void)st;
    if (!have_gpu()) return;
    const char *fmts[] = {"fp16", "w4", "gqs-s50", "gqs-s30"};
    const struct { int kind, no_pdl, prefetch; } runs[] = {
        {-1, 0, 0}, {GQ_GEMV_ROW, 0, 0}, {GQ_GEMV_TASK_V4, 0, 0}, {GQ_GEMV_TASK_V5, 0, 0}, {GQ_GEMV_ROW_V6, 0, 0},
        {GQ_GEMV_ROW_V6, 1, 0}, {GQ_GEMV_ROW_V3, 0, 0}, {GQ_GEMV_DENSE_W4_V6, 0, 0}, {GQ_GEMV_DENSE_W4_V3, 0, 0},
        {GQ_GEMV_ROW_V8, 0, 0}, {GQ_GEMV_ROW_V8, 1, 0}, {GQ_GEMV_DENSE_W4_V8, 0, 0},
        {GQ_GEMV_ROW_V9, 0, 0}, {GQ_GEMV_ROW_V9, 1, 0}, {GQ_GEMV_DENSE_W4_V9, 0, 0}, {GQ_GEMV_TASK_V10, 0, 0},
        {GQ_GEMV_TASK_V10, 1, 0},
        {-1, 1, 0}, {-1, 0, 1},
    };
    const int hiddens[] = {512, 3072};
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++)
            for (size_t ki = 0; ki < sizeof runs / sizeof runs[0]; ki++) {
                gq_dec_opts o = {.group = 16, .bits = 4, .gemv_kind = runs[ki].kind, .no_pdl = runs[ki].no_pdl,
                                 .prefetch = runs[ki].prefetch};
                assert_int_equal(gq_dec_parse_format(fmts[i], &o), GQ_OK);
                /* a GQS kernel only for GQS, a dense W4 kernel only for W4; fp16 has one */
                if (o.gemv_kind >= 0 && (o.format == GQ_DEC_FP16 ||
                                         (o.format == GQ_DEC_GQS) == gq_gemv_kind_is_dense((gq_gemv_kind)o.gemv_kind)))
                    continue;
                if (h == 1 && o.gemv_kind == GQ_GEMV_ROW) continue; /* v2: covered at hidden 512 */
                printf("  %s hidden %d kernel %d%s%s:\n", fmts[i], hiddens[h], o.gemv_kind, o.no_pdl ? " (no PDL)" : "",
                       o.prefetch ? " (L2 prefetch)" : "");
                gq_model *m = random_model(256, hiddens[h], 2, 4, 2, 400, GQ_ROPE_HALF, 0, 31 + i);
                int32_t *prompt = random_tokens(4, 400, 8);
                check_decode_fmt(m, &o, prompt, 4, 40, 0);
                free(prompt);
                gq_model_free(m);
            }
}
#endif

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_random_half_gqa_hd16),
        cmocka_unit_test(test_random_half_gqa_hd64),
        cmocka_unit_test(test_interleaved_hd128),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_calibrate_gpu),
        cmocka_unit_test(test_logprobs_stories260k),
        cmocka_unit_test(test_logprobs_batch_random),
        cmocka_unit_test(test_logprobs_smollm_shape),
        cmocka_unit_test(test_zeroshot_gpu_vs_cpu),
#ifdef GQSA_CUDA
        cmocka_unit_test(test_decode_stories260k),
        cmocka_unit_test(test_decode_random_half_gqa),
        cmocka_unit_test(test_decode_head_dims),
        cmocka_unit_test(test_decode_quantized),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
