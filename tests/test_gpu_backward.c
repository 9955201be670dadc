/* test_gpu_backward.c — the GPU training engine (core/cuda/train_gpu.h) against the CPU engine
 * (core/backward.h, float32; itself checked by finite differences in float64 in test_backward.c):
 *   every op's forward and backward (RMSNorm, linear with bias, RoPE in both styles, causal GQA
 *   attention, SwiGLU, embedding, cross-entropy also in place), the BQPO fake quantizer + STE, the
 *   E2E-OQP expand and its ds/dz, three AdamW steps; one whole block's forward + backward (x_out, dx and
 *   every weight and norm gradient) for both RoPE styles and with q/k/v biases; the whole-model loss
 *   and gradients (d tok_emb, d lm_head, d final_norm, every block's gradients) of tiny tied and untied
 *   models; E2E-OQP ds/dz summed over a whole model's backward; the BQPO and E2E-OQP drivers with
 *   device = cuda against device = cpu; stories260K's block and model when the data root has it.
 * Each check prints its worst per-tensor relative error ||gpu - cpu|| / ||cpu||. Gates: fp32 mode
 * 1e-4 (the brief; summation order is the only difference), mixed bf16 mode 2e-2; element-wise kernels
 * that compute the same expression as the CPU (fake quantization, OQP expand, AdamW) 1e-6.
 * Without a GPU (or without a CUDA build) it prints "SKIP: test_gpu_backward ..." and exits 0.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/gpu.h"
#include "train.h"

#ifndef GQSA_CUDA
int main(void) {
    printf("SKIP: test_gpu_backward: this build has no CUDA (nvcc not found): GPU training engine not exercised\n");
    return 0;
}
#else
#include "cuda/train_gpu.h"

#define TOL_FP32 1e-4
#define TOL_BF16 2e-2
/* Model-level gradients in bf16 mode (d tok_emb / lm_head / final_norm, every block's gradients after the
 * backward has crossed all blocks and the vocabulary-sized head): both GEMM operands rounded to bf16
 * (2^-9 relative) at every linear of every block compound to a few 1e-2; measured worst 3.4e-2 on an
 * H100 (2026-11-22, reports/bench/test_gpu_backward_h100_2026-11-22.log) against 1.1e-2 for one block.
 * The fp32 run (gate 1e-4) is the correctness gate; this one bounds the precision loss of mixed mode. */
#define TOL_BF16_MODEL 5e-2
#define TOL_EXACT 1e-6

static int g_fail, g_checks;
static double g_tol;
static gq_gt *E;

static double relerr(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (!(num == num)) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}
static void check(const char *what, double err, double tol) {
    g_checks++;
    int ok = err < tol;
    printf("  %-58s rel err %-10.3g (tol %.0e) %s\n", what, err, tol, ok ? "ok" : "FAIL");
    if (!ok) g_fail++;
}
#define MUST(call)                                                                                 \
    do {                                                                                           \
        gq_status s__ = (call);                                                                    \
        if (s__ != GQ_OK) {                                                                        \
            printf("FAIL: %s: %s\n", #call, gq_errmsg());                                          \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static float *rnd(gq_rng *r, size_t n, double sd, double mean) {
    float *p = gq_malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) p[i] = (float)(mean + sd * gq_rng_normal(r));
    return p;
}
static float *dup_h(const float *p, size_t n) {
    float *q = gq_malloc(sizeof(float) * (n ? n : 1));
    memcpy(q, p, sizeof(float) * n);
    return q;
}
static float *up(const float *h, size_t n) {
    float *d = NULL;
    MUST(gq_gt_upload_new(E, &d, h, n, "test"));
    return d;
}
static float *down(const float *d, size_t n) {
    float *h = gq_malloc(sizeof(float) * (n ? n : 1));
    MUST(gq_gt_download(E, h, d, sizeof(float) * n));
    return h;
}
/* compare a device tensor with a host reference */
static void cmp(const char *what, const float *dev, const float *ref, size_t n, double tol) {
    float *h = down(dev, n);
    check(what, relerr(h, ref, n), tol);
    free(h);
}

static gq_config tiny_cfg(int D, int H, int L, int NH, int NKV, int V, gq_rope_style rs, int tied) {
    gq_config c;
    memset(&c, 0, sizeof c);
    c.arch = GQ_ARCH_LLAMA;
    c.dim = D; c.hidden_dim = H; c.n_layers = L; c.n_heads = NH; c.n_kv_heads = NKV; c.head_dim = D / NH;
    c.vocab_size = V; c.max_seq_len = 256; c.norm_eps = 1e-5f; c.rope_theta = 10000.f; c.rope_style = rs;
    c.tied_embeddings = tied; c.bos_id = 1; c.eos_id = 2;
    snprintf(c.name, sizeof c.name, "gpu-bw-test");
    return c;
}

static gq_model *random_model(const gq_config *c, int qkv_bias, uint64_t seed) {
    gq_config cc = *c;
    cc.qkv_bias = qkv_bias;
    gq_model *m = gq_model_alloc(&cc);
    gq_rng r;
    gq_rng_seed(&r, seed);
    int D = c->dim, V = c->vocab_size;
    for (size_t i = 0; i < (size_t)V * D; i++) m->tok_emb[i] = (float)gq_rng_normal(&r);
    if (m->lm_head != m->tok_emb)
        for (size_t i = 0; i < (size_t)V * D; i++) m->lm_head[i] = (float)(gq_rng_normal(&r) / sqrt(D));
    for (int i = 0; i < D; i++) m->final_norm[i] = (float)(1 + 0.1 * gq_rng_normal(&r));
    for (int l = 0; l < c->n_layers; l++) {
        gq_block *b = &m->blocks[l];
        for (int i = 0; i < D; i++) {
            b->attn_norm[i] = (float)(1 + 0.1 * gq_rng_normal(&r));
            b->ffn_norm[i] = (float)(1 + 0.1 * gq_rng_normal(&r));
        }
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            gq_linear *li = &b->lin[k];
            double sd = (k == GQ_LIN_Q || k == GQ_LIN_K ? 2.0 : 1.0) / sqrt((double)li->in);
            for (size_t i = 0; i < (size_t)li->out * li->in; i++) li->w[i] = (float)(sd * gq_rng_normal(&r));
            if (li->bias)
                for (int i = 0; i < li->out; i++) li->bias[i] = (float)(0.1 * gq_rng_normal(&r));
        }
    }
    return m;
}

/* ------------------------------------------------------------------------------------------ */
/* Ops                                                                                          */

static void test_ops(gq_rope_style rs) {
    printf("ops (%s RoPE, %s):\n", rs == GQ_ROPE_HALF ? "rotate-half" : "interleaved", gq_gt_mixed(E) ? "bf16" : "fp32");
    gq_rng r;
    gq_rng_seed(&r, 11 + rs);
    int T = 37, D = 64, NH = 4, NKV = 2, HD = 16, N = 48, V = 101;
    int qd = NH * HD, kd = NKV * HD;
    size_t TD = (size_t)T * D;
    char name[96];
    /* RMSNorm */
    {
        float *x = rnd(&r, TD, 1, 0), *w = rnd(&r, D, 0.1, 1), *dy = rnd(&r, TD, 1, 0);
        float *dx0 = rnd(&r, TD, 1, 0), *dw0 = rnd(&r, D, 1, 0);
        float *y = gq_malloc(sizeof(float) * TD), *ri = gq_malloc(sizeof(float) * T);
        gq_bw_rmsnorm_fwd_f32(y, ri, x, w, T, D, 1e-5);
        float *dx = dup_h(dx0, TD), *dw = dup_h(dw0, D);
        gq_bw_rmsnorm_bwd_f32(dx, dw, dy, x, w, ri, T, D);
        float *gx = up(x, TD), *gw = up(w, D), *gy = up(NULL, TD), *gri = up(NULL, T), *gdy = up(dy, TD);
        float *gdx = up(dx0, TD), *gdw = up(dw0, D);
        MUST(gq_gt_rmsnorm_fwd(E, gy, gri, gx, gw, T, D, 1e-5));
        MUST(gq_gt_rmsnorm_bwd(E, gdx, gdw, gdy, gx, gw, gri, T, D));
        cmp("rmsnorm fwd y", gy, y, TD, TOL_FP32);
        cmp("rmsnorm fwd rinv", gri, ri, T, TOL_FP32);
        cmp("rmsnorm bwd dx (+=)", gdx, dx, TD, TOL_FP32);
        cmp("rmsnorm bwd dw (+=)", gdw, dw, D, TOL_FP32);
        free(x); free(w); free(dy); free(dx0); free(dw0); free(y); free(ri); free(dx); free(dw);
        gq_gt_free(gx); gq_gt_free(gw); gq_gt_free(gy); gq_gt_free(gri); gq_gt_free(gdy); gq_gt_free(gdx); gq_gt_free(gdw);
    }
    /* linear with bias; dx accumulated and overwritten */
    for (int acc = 0; acc < 2; acc++) {
        int K = D;
        float *x = rnd(&r, (size_t)T * K, 1, 0), *W = rnd(&r, (size_t)N * K, 1 / sqrt(K), 0), *b = rnd(&r, N, 0.1, 0);
        float *dy = rnd(&r, (size_t)T * N, 1, 0), *dx0 = rnd(&r, (size_t)T * K, 1, 0), *dW0 = rnd(&r, (size_t)N * K, 1, 0);
        float *y = gq_malloc(sizeof(float) * T * N), *dx = dup_h(dx0, (size_t)T * K), *dW = dup_h(dW0, (size_t)N * K);
        gq_bw_linear_fwd_f32(y, x, W, b, T, N, K);
        gq_bw_linear_bwd_f32(dx, acc, dW, dy, x, W, T, N, K);
        float *gx = up(x, (size_t)T * K), *gW = up(W, (size_t)N * K), *gb = up(b, N), *gy = up(NULL, (size_t)T * N);
        float *gdy = up(dy, (size_t)T * N), *gdx = up(dx0, (size_t)T * K), *gdW = up(dW0, (size_t)N * K);
        MUST(gq_gt_linear_fwd(E, gy, gx, gW, gb, T, N, K));
        MUST(gq_gt_linear_bwd(E, gdx, acc, gdW, gdy, gx, gW, T, N, K));
        if (!acc) cmp("linear fwd y (bias)", gy, y, (size_t)T * N, g_tol);
        snprintf(name, sizeof name, "linear bwd dx (%s)", acc ? "accumulate" : "overwrite");
        cmp(name, gdx, dx, (size_t)T * K, g_tol);
        cmp("linear bwd dW (+=)", gdW, dW, (size_t)N * K, g_tol);
        free(x); free(W); free(b); free(dy); free(dx0); free(dW0); free(y); free(dx); free(dW);
        gq_gt_free(gx); gq_gt_free(gW); gq_gt_free(gb); gq_gt_free(gy); gq_gt_free(gdy); gq_gt_free(gdx); gq_gt_free(gdW);
    }
    /* RoPE */
    {
        float *cs = gq_malloc(sizeof(float) * T * HD / 2), *sn = gq_malloc(sizeof(float) * T * HD / 2);
        gq_bw_rope_table_f32(cs, sn, T, HD, 10000.0);
        float *x = rnd(&r, (size_t)T * qd, 1, 0), *gx = up(x, (size_t)T * qd);
        float *gcs = up(cs, (size_t)T * HD / 2), *gsn = up(sn, (size_t)T * HD / 2);
        gq_bw_rope_fwd_f32(x, cs, sn, T, NH, HD, rs);
        MUST(gq_gt_rope_fwd(E, gx, gcs, gsn, T, NH, HD, rs));
        cmp("rope fwd", gx, x, (size_t)T * qd, TOL_FP32);
        gq_bw_rope_bwd_f32(x, cs, sn, T, NH, HD, rs);
        MUST(gq_gt_rope_bwd(E, gx, gcs, gsn, T, NH, HD, rs));
        cmp("rope bwd", gx, x, (size_t)T * qd, TOL_FP32);
        free(cs); free(sn); free(x);
        gq_gt_free(gx); gq_gt_free(gcs); gq_gt_free(gsn);
    }
    /* attention */
    {
        float *q = rnd(&r, (size_t)T * qd, 2, 0), *k = rnd(&r, (size_t)T * kd, 2, 0), *v = rnd(&r, (size_t)T * kd, 1, 0);
        float *dout = rnd(&r, (size_t)T * qd, 1, 0);
        size_t PP = (size_t)NH * T * T;
        float *out = gq_malloc(sizeof(float) * T * qd), *P = gq_malloc(sizeof(float) * PP), *dP = gq_malloc(sizeof(float) * T * T);
        float *dq = gq_malloc(sizeof(float) * T * qd), *dk = gq_malloc(sizeof(float) * T * kd), *dv = gq_malloc(sizeof(float) * T * kd);
        gq_bw_attn_fwd_f32(out, P, q, k, v, T, NH, NKV, HD);
        gq_bw_attn_bwd_f32(dq, dk, dv, dP, dout, P, q, k, v, T, NH, NKV, HD);
        float *gq = up(q, (size_t)T * qd), *gk = up(k, (size_t)T * kd), *gv = up(v, (size_t)T * kd), *gdo = up(dout, (size_t)T * qd);
        float *gout = up(NULL, (size_t)T * qd), *gP = up(NULL, PP), *gdP = up(NULL, PP);
        float *gdq = up(NULL, (size_t)T * qd), *gdk = up(NULL, (size_t)T * kd), *gdv = up(NULL, (size_t)T * kd);
        MUST(gq_gt_attn_fwd(E, gout, gP, gq, gk, gv, T, NH, NKV, HD));
        MUST(gq_gt_attn_bwd(E, gdq, gdk, gdv, gdP, gdo, gP, gq, gk, gv, T, NH, NKV, HD));
        cmp("attention fwd out", gout, out, (size_t)T * qd, g_tol);
        cmp("attention fwd P (causal softmax)", gP, P, PP, g_tol);
        cmp("attention bwd dq", gdq, dq, (size_t)T * qd, g_tol);
        cmp("attention bwd dk", gdk, dk, (size_t)T * kd, g_tol);
        cmp("attention bwd dv", gdv, dv, (size_t)T * kd, g_tol);
        free(q); free(k); free(v); free(dout); free(out); free(P); free(dP); free(dq); free(dk); free(dv);
        gq_gt_free(gq); gq_gt_free(gk); gq_gt_free(gv); gq_gt_free(gdo); gq_gt_free(gout); gq_gt_free(gP); gq_gt_free(gdP);
        gq_gt_free(gdq); gq_gt_free(gdk); gq_gt_free(gdv);
    }
    /* SwiGLU */
    {
        size_t n = (size_t)T * N;
        float *g = rnd(&r, n, 2, 0), *u = rnd(&r, n, 1, 0), *dh = rnd(&r, n, 1, 0);
        float *h = gq_malloc(sizeof(float) * n), *dg = gq_malloc(sizeof(float) * n), *du = gq_malloc(sizeof(float) * n);
        gq_bw_swiglu_fwd_f32(h, g, u, n);
        gq_bw_swiglu_bwd_f32(dg, du, dh, g, u, n);
        float *gg = up(g, n), *gu = up(u, n), *gdh = up(dh, n), *gh = up(NULL, n), *gdg = up(NULL, n), *gdu = up(NULL, n);
        MUST(gq_gt_swiglu_fwd(E, gh, gg, gu, n));
        MUST(gq_gt_swiglu_bwd(E, gdg, gdu, gdh, gg, gu, n));
        cmp("swiglu fwd", gh, h, n, TOL_FP32);
        cmp("swiglu bwd dg", gdg, dg, n, TOL_FP32);
        cmp("swiglu bwd du", gdu, du, n, TOL_FP32);
        free(g); free(u); free(dh); free(h); free(dg); free(du);
        gq_gt_free(gg); gq_gt_free(gu); gq_gt_free(gdh); gq_gt_free(gh); gq_gt_free(gdg); gq_gt_free(gdu);
    }
    /* embedding (repeated ids) and cross-entropy */
    {
        int32_t tok[37];
        for (int t = 0; t < T; t++) tok[t] = (int32_t)gq_rng_below(&r, t < 10 ? 5 : (uint64_t)V);
        float *emb = rnd(&r, (size_t)V * D, 1, 0), *dx = rnd(&r, TD, 1, 0), *demb0 = rnd(&r, (size_t)V * D, 1, 0);
        float *x = gq_malloc(sizeof(float) * TD), *demb = dup_h(demb0, (size_t)V * D);
        gq_bw_embed_fwd_f32(x, emb, tok, T, D);
        gq_bw_embed_bwd_f32(demb, dx, tok, T, D);
        int32_t *gtok = NULL;
        MUST(gq_gt_malloc((void **)&gtok, sizeof tok, "tokens"));
        MUST(gq_gt_upload(E, gtok, tok, sizeof tok));
        float *gemb = up(emb, (size_t)V * D), *gx = up(NULL, TD), *gdx = up(dx, TD), *gdemb = up(demb0, (size_t)V * D);
        MUST(gq_gt_embed_fwd(E, gx, gemb, gtok, T, D));
        MUST(gq_gt_embed_bwd(E, gdemb, gdx, gtok, T, D));
        cmp("embedding fwd", gx, x, TD, TOL_FP32);
        cmp("embedding bwd (+=, repeated ids)", gdemb, demb, (size_t)V * D, TOL_FP32);
        float *lg = rnd(&r, (size_t)T * V, 3, 0), *dl = gq_malloc(sizeof(float) * T * V);
        double lc = gq_bw_xent_f32(dl, lg, tok, T, V), lgpu = 0, lgpu2 = 0;
        float *glg = up(lg, (size_t)T * V), *gdl = up(NULL, (size_t)T * V);
        MUST(gq_gt_xent(E, gdl, glg, gtok, T, V, &lgpu));
        check("cross-entropy loss", fabs(lgpu - lc) / fabs(lc), TOL_FP32);
        cmp("cross-entropy dlogits", gdl, dl, (size_t)T * V, TOL_FP32);
        MUST(gq_gt_xent(E, glg, glg, gtok, T, V, &lgpu2)); /* in place, as the model workspace runs it */
        check("cross-entropy loss (in place)", fabs(lgpu2 - lc) / fabs(lc), TOL_FP32);
        cmp("cross-entropy dlogits (in place)", glg, dl, (size_t)T * V, TOL_FP32);
        free(emb); free(dx); free(demb0); free(x); free(demb); free(lg); free(dl);
        gq_gt_free(gtok); gq_gt_free(gemb); gq_gt_free(gx); gq_gt_free(gdx); gq_gt_free(gdemb); gq_gt_free(glg); gq_gt_free(gdl);
    }
}

/* Fake quantizers, OQP expand/grad, AdamW (independent of the matmul precision). */
static void test_quant_adam(void) {
    printf("fake quantization, E2E-OQP expand / ds dz, AdamW:\n");
    gq_rng r;
    gq_rng_seed(&r, 5);
    int N = 24, K = 64, G = 16, C = K / G;
    float *w = rnd(&r, (size_t)N * K, 0.05, 0.01);
    uint8_t *keep = gq_malloc((size_t)N * C);
    for (int i = 0; i < N * C; i++) keep[i] = gq_rng_below(&r, 2) == 0;
    keep[0] = 1;
    const gq_qspec specs[3] = {{4, GQ_QMODE_ASYM, 0}, {2, GQ_QMODE_SYM, 0}, {3, GQ_QMODE_ASYM_MINMAX, 1}};
    const char *sn[3] = {"W4 asym", "W2 sym", "W3 minmax fp16-scale"};
    float *gw = up(w, (size_t)N * K), *gwh = up(NULL, (size_t)N * K);
    uint8_t *gkeep = NULL, *gste = NULL, *ste = gq_malloc((size_t)N * K), *ste2 = gq_malloc((size_t)N * K);
    MUST(gq_gt_malloc((void **)&gkeep, (size_t)N * C, "keep"));
    MUST(gq_gt_malloc((void **)&gste, (size_t)N * K, "ste"));
    MUST(gq_gt_upload(E, gkeep, keep, (size_t)N * C));
    float *wh = gq_malloc(sizeof(float) * N * K);
    char name[96];
    for (int s = 0; s < 3; s++) {
        gq_fq_forward(w, keep, N, K, G, &specs[s], wh, ste);
        MUST(gq_gt_fq_forward(E, gw, gkeep, N, K, G, &specs[s], gwh, gste));
        snprintf(name, sizeof name, "BQPO fake-quant w_hat (%s)", sn[s]);
        cmp(name, gwh, wh, (size_t)N * K, TOL_EXACT);
        MUST(gq_gt_download(E, ste2, gste, (size_t)N * K));
        int diff = 0;
        for (int i = 0; i < N * K; i++) diff += ste[i] != ste2[i];
        snprintf(name, sizeof name, "BQPO STE mask (%s): differing elements", sn[s]);
        check(name, diff, 0.5);
    }
    /* STE-masked gradient */
    {
        float *dw = rnd(&r, (size_t)N * K, 1, 0), *gdw = up(dw, (size_t)N * K);
        MUST(gq_gt_mask_grad(E, gdw, gste, (size_t)N * K));
        for (int i = 0; i < N * K; i++) if (!ste[i]) dw[i] = 0;
        cmp("STE gradient mask", gdw, dw, (size_t)N * K, TOL_EXACT);
        free(dw); gq_gt_free(gdw);
    }
    /* OQP */
    {
        gq_gqs q;
        MUST(gq_gqs_build(&q, w, keep, N, K, G, 4));
        float *s = dup_h(q.scales, q.nnz), *z = dup_h(q.zeros, q.nnz);
        for (size_t i = 0; i < q.nnz; i++) { s[i] *= (float)(1 + 0.01 * gq_rng_normal(&r)); z[i] += (float)(0.3 * gq_rng_normal(&r)); }
        gq_gt_gqs gq;
        MUST(gq_gt_gqs_upload(E, &q, &gq));
        float *gs = up(s, q.nnz), *gz = up(z, q.nnz);
        gq_bw_oqp_expand_f32(&q, s, z, wh);
        MUST(gq_gt_oqp_expand(E, &gq, gs, gz, gwh));
        cmp("E2E-OQP expand (q - z) s", gwh, wh, (size_t)N * K, TOL_EXACT);
        float *dW = rnd(&r, (size_t)N * K, 1, 0), *ds = rnd(&r, q.nnz, 1, 0), *dz = rnd(&r, q.nnz, 1, 0);
        float *gdW = up(dW, (size_t)N * K), *gds = up(ds, q.nnz), *gdz = up(dz, q.nnz);
        gq_bw_oqp_grad_f32(&q, s, z, dW, ds, dz);
        MUST(gq_gt_oqp_grad(E, &gq, gs, gz, gdW, gds, gdz));
        cmp("E2E-OQP ds (+=)", gds, ds, q.nnz, TOL_FP32);
        cmp("E2E-OQP dz (+=)", gdz, dz, q.nnz, TOL_FP32);
        free(s); free(z); free(dW); free(ds); free(dz);
        gq_gt_free(gs); gq_gt_free(gz); gq_gt_free(gdW); gq_gt_free(gds); gq_gt_free(gdz);
        gq_gt_gqs_free(&gq);
        gq_gqs_free(&q);
    }
    /* AdamW: three steps with weight decay and a batch-average gradient scale */
    {
        size_t n = 1000;
        gq_adamw_opts o;
        gq_adamw_opts_default(&o);
        o.lr = 1e-2, o.weight_decay = 0.01;
        float *p = rnd(&r, n, 1, 0), *gp = up(p, n), *g = gq_malloc(sizeof(float) * n), *gg = up(NULL, n);
        gq_adamw_state cs;
        gq_gt_adamw_state ds;
        gq_adamw_state_init(&cs, n);
        MUST(gq_gt_adamw_init(&ds, n));
        for (int step = 0; step < 3; step++) {
            float *graw = rnd(&r, n, 1, 0);
            for (size_t i = 0; i < n; i++) g[i] = graw[i] * 0.5f;
            MUST(gq_gt_upload(E, gg, graw, sizeof(float) * n));
            MUST(gq_adamw_step(&o, &cs, p, g, "cpu"));
            MUST(gq_gt_adamw_step(E, &o, &ds, gp, gg, 0.5f, "gpu"));
            free(graw);
        }
        cmp("AdamW 3 steps: parameters", gp, p, n, TOL_EXACT);
        float *m = gq_malloc(sizeof(float) * n), *v = gq_malloc(sizeof(float) * n);
        MUST(gq_gt_adamw_download(E, &ds, m, v));
        check("AdamW 3 steps: first moments", relerr(m, cs.m, n), TOL_EXACT);
        check("AdamW 3 steps: second moments", relerr(v, cs.v, n), TOL_EXACT);
        check("AdamW step counter", fabs((double)ds.t - cs.t), 0.5);
        /* a NaN gradient: GQ_ERR_NUMERIC naming the tensor, parameters untouched */
        float *before = down(gp, n);
        g[7] = NAN;
        MUST(gq_gt_upload(E, gg, g, sizeof(float) * n));
        gq_status st = gq_gt_adamw_step(E, &o, &ds, gp, gg, 1.0f, "layers.3.q_proj scales");
        int ok = st == GQ_ERR_NUMERIC && strstr(gq_errmsg(), "layers.3.q_proj scales") && strstr(gq_errmsg(), "element 7");
        printf("  NaN gradient -> %s\n", gq_errmsg());
        check("AdamW NaN gradient reported (0 = yes)", ok ? 0 : 1, 0.5);
        cmp("AdamW NaN gradient leaves parameters", gp, before, n, TOL_EXACT);
        free(before); free(m); free(v); free(p); free(g);
        gq_gt_free(gp); gq_gt_free(gg);
        gq_adamw_state_free(&cs);
        gq_gt_adamw_free(&ds);
    }
    free(w); free(keep); free(wh); free(ste); free(ste2);
    gq_gt_free(gw); gq_gt_free(gwh); gq_gt_free(gkeep); gq_gt_free(gste);
}

/* ------------------------------------------------------------------------------------------ */
/* Block and model                                                                              */

typedef struct {
    float *norm[2], *w[GQ_LIN_COUNT], *bias[GQ_LIN_COUNT];
} dev_block;

static void block_up(const gq_model *m, int l, dev_block *d, gq_bw_blockw_f32 *gw, gq_bw_blockw_f32 *cw) {
    const gq_block *b = &m->blocks[l];
    int D = m->cfg.dim;
    memset(d, 0, sizeof *d);
    memset(gw, 0, sizeof *gw);
    memset(cw, 0, sizeof *cw);
    d->norm[0] = up(b->attn_norm, D);
    d->norm[1] = up(b->ffn_norm, D);
    gw->attn_norm = d->norm[0]; gw->ffn_norm = d->norm[1];
    cw->attn_norm = b->attn_norm; cw->ffn_norm = b->ffn_norm;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        const gq_linear *li = &b->lin[k];
        d->w[k] = up(li->w, (size_t)li->out * li->in);
        d->bias[k] = li->bias ? up(li->bias, li->out) : NULL;
        gw->w[k] = d->w[k]; gw->bias[k] = d->bias[k];
        cw->w[k] = li->w; cw->bias[k] = li->bias;
    }
}
static void block_free(dev_block *d) {
    gq_gt_free(d->norm[0]); gq_gt_free(d->norm[1]);
    for (int k = 0; k < GQ_LIN_COUNT; k++) { gq_gt_free(d->w[k]); gq_gt_free(d->bias[k]); }
}

static void test_block(const gq_model *m, int l, int T, const char *label) {
    printf("block %d fwd+bwd, %s, T=%d (%s):\n", l, label, T, gq_gt_mixed(E) ? "bf16" : "fp32");
    const gq_config *c = &m->cfg;
    int D = c->dim;
    size_t n = (size_t)T * D;
    gq_rng r;
    gq_rng_seed(&r, 99);
    float *x = rnd(&r, n, 1, 0), *dy = rnd(&r, n, 1, 0), *out = gq_malloc(sizeof(float) * n), *dx = dup_h(dy, n);
    dev_block db;
    gq_bw_blockw_f32 gw, cw;
    block_up(m, l, &db, &gw, &cw);
    gq_bw_blockg_f32 cg, gg;
    memset(&cg, 0, sizeof cg);
    memset(&gg, 0, sizeof gg);
    size_t sz[GQ_LIN_COUNT];
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        sz[k] = (size_t)m->blocks[l].lin[k].out * m->blocks[l].lin[k].in;
        cg.dw[k] = gq_calloc(sz[k], sizeof(float));
        gg.dw[k] = up(NULL, sz[k]);
    }
    cg.dattn_norm = gq_calloc(D, sizeof(float)); cg.dffn_norm = gq_calloc(D, sizeof(float));
    gg.dattn_norm = up(NULL, D); gg.dffn_norm = up(NULL, D);
    gq_bw_acts_f32 ca;
    MUST(gq_bw_acts_init_f32(&ca, c, T));
    gq_bw_block_fwd_f32(&ca, &cw, x, out, T);
    gq_bw_block_bwd_f32(&ca, &cw, dx, dx, &cg, T);
    gq_gt_acts ga;
    MUST(gq_gt_acts_init(E, &ga, c, T));
    float *gx = up(x, n), *gout = up(NULL, n), *gdy = up(dy, n);
    MUST(gq_gt_block_fwd(E, &ga, &gw, gx, gout, T));
    MUST(gq_gt_block_bwd(E, &ga, &gw, gdy, gdy, &gg, T)); /* dx aliases dy, as the model driver runs it */
    char name[96];
    cmp("block x_out", gout, out, n, g_tol);
    cmp("block dx", gdy, dx, n, g_tol);
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        snprintf(name, sizeof name, "block d %s", gq_linear_name((gq_linear_kind)k));
        cmp(name, gg.dw[k], cg.dw[k], sz[k], g_tol);
    }
    cmp("block d attn_norm", gg.dattn_norm, cg.dattn_norm, D, g_tol);
    cmp("block d ffn_norm", gg.dffn_norm, cg.dffn_norm, D, g_tol);
    for (int k = 0; k < GQ_LIN_COUNT; k++) { free(cg.dw[k]); gq_gt_free(gg.dw[k]); }
    free(cg.dattn_norm); free(cg.dffn_norm); gq_gt_free(gg.dattn_norm); gq_gt_free(gg.dffn_norm);
    gq_bw_acts_free_f32(&ca);
    gq_gt_acts_free(&ga);
    block_free(&db);
    free(x); free(dy); free(out); free(dx);
    gq_gt_free(gx); gq_gt_free(gout); gq_gt_free(gdy);
}

/* Per-layer block gradients collected by the model callbacks (host copies). */
typedef struct {
    int L, D;
    size_t sz[GQ_LIN_COUNT];
    float **dw;      /* [L * 7] */
    float **dnorm;   /* [L * 2] */
    int gpu;
} grads;

static void grads_init(grads *g, const gq_model *m, int gpu) {
    g->L = m->cfg.n_layers, g->D = m->cfg.dim, g->gpu = gpu;
    for (int k = 0; k < GQ_LIN_COUNT; k++) g->sz[k] = (size_t)m->blocks[0].lin[k].out * m->blocks[0].lin[k].in;
    g->dw = gq_calloc((size_t)g->L * GQ_LIN_COUNT, sizeof(float *));
    g->dnorm = gq_calloc((size_t)g->L * 2, sizeof(float *));
}
static void grads_free(grads *g) {
    for (int i = 0; i < g->L * GQ_LIN_COUNT; i++) free(g->dw[i]);
    for (int i = 0; i < g->L * 2; i++) free(g->dnorm[i]);
    free(g->dw); free(g->dnorm);
}
static gq_status grads_cb(void *ctx, int l, const gq_bw_blockg_f32 *bg) {
    grads *g = ctx;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        float **dst = &g->dw[l * GQ_LIN_COUNT + k];
        free(*dst);
        *dst = g->gpu ? down(bg->dw[k], g->sz[k]) : dup_h(bg->dw[k], g->sz[k]);
    }
    for (int j = 0; j < 2; j++) {
        const float *src = j ? bg->dffn_norm : bg->dattn_norm;
        free(g->dnorm[l * 2 + j]);
        g->dnorm[l * 2 + j] = g->gpu ? down(src, g->D) : dup_h(src, g->D);
    }
    return GQ_OK;
}

static void test_model(const gq_model *m, int T, const char *label) {
    const gq_config *c = &m->cfg;
    int D = c->dim, V = c->vocab_size, L = c->n_layers, tied = m->lm_head == m->tok_emb;
    printf("model loss + gradients, %s (%s head), T=%d (%s):\n", label, tied ? "tied" : "untied", T,
           gq_gt_mixed(E) ? "bf16" : "fp32");
    gq_rng r;
    gq_rng_seed(&r, 1234);
    int32_t *tok = gq_malloc(sizeof(int32_t) * T);
    for (int t = 0; t < T; t++) tok[t] = (int32_t)gq_rng_below(&r, (uint64_t)V);
    /* CPU */
    gq_bw_blockw_f32 *cw = gq_calloc((size_t)L, sizeof *cw), *gw = gq_calloc((size_t)L, sizeof *gw);
    dev_block *db = gq_calloc((size_t)L, sizeof *db);
    for (int l = 0; l < L; l++) block_up(m, l, &db[l], &gw[l], &cw[l]);
    gq_bw_model_ws_f32 cws;
    MUST(gq_bw_model_ws_init_f32(&cws, c, T, 1, 1));
    gq_bw_modelw_f32 cmw = {c, m->tok_emb, m->final_norm, m->lm_head, cw};
    float *demb = gq_calloc((size_t)V * D, sizeof(float)), *dhead = tied ? demb : gq_calloc((size_t)V * D, sizeof(float));
    float *dfn = gq_calloc(D, sizeof(float));
    grads cg, gg;
    grads_init(&cg, m, 0);
    grads_init(&gg, m, 1);
    double lc = 0, lg = 0, lg0 = 0;
    MUST(gq_bw_model_loss_f32(&cws, &cmw, tok, T, 1, grads_cb, &cg, demb, dhead, dfn, &lc));
    /* GPU */
    float *gemb = up(m->tok_emb, (size_t)V * D), *ghead = tied ? gemb : up(m->lm_head, (size_t)V * D);
    float *gfn = up(m->final_norm, D);
    float *gdemb = up(NULL, (size_t)V * D), *gdhead = tied ? gdemb : up(NULL, (size_t)V * D), *gdfn = up(NULL, D);
    gq_gt_model_ws gws;
    MUST(gq_gt_model_ws_init(E, &gws, c, T, 1, 1));
    gq_gt_modelw gmw = {c, gemb, gfn, ghead, gw, NULL, NULL};
    MUST(gq_gt_model_loss(E, &gws, &gmw, tok, T, 0, NULL, NULL, NULL, NULL, NULL, &lg0));
    MUST(gq_gt_model_loss(E, &gws, &gmw, tok, T, 1, grads_cb, &gg, gdemb, gdhead, gdfn, &lg));
    check("model loss (forward only)", fabs(lg0 - lc) / fabs(lc), g_tol);
    check("model loss (with backward)", fabs(lg - lc) / fabs(lc), g_tol);
    const double mtol = g_tol == TOL_BF16 ? TOL_BF16_MODEL : g_tol;
    cmp(tied ? "d tok_emb (= d lm_head, tied)" : "d tok_emb", gdemb, demb, (size_t)V * D, mtol);
    if (!tied) cmp("d lm_head", gdhead, dhead, (size_t)V * D, mtol);
    cmp("d final_norm", gdfn, dfn, D, mtol);
    double worst = 0;
    char wname[96] = "";
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            double e = relerr(gg.dw[l * GQ_LIN_COUNT + k], cg.dw[l * GQ_LIN_COUNT + k], cg.sz[k]);
            if (!(e <= worst)) { worst = e; snprintf(wname, sizeof wname, "layers.%d.%s", l, gq_linear_name((gq_linear_kind)k)); }
        }
        for (int j = 0; j < 2; j++) {
            double e = relerr(gg.dnorm[l * 2 + j], cg.dnorm[l * 2 + j], D);
            if (!(e <= worst)) { worst = e; snprintf(wname, sizeof wname, "layers.%d.%s", l, j ? "ffn_norm" : "attn_norm"); }
        }
    }
    char name[128];
    snprintf(name, sizeof name, "block grads, worst of %d tensors (%s)", L * 9, wname);
    check(name, worst, mtol);
    grads_free(&cg); grads_free(&gg);
    gq_bw_model_ws_free_f32(&cws);
    gq_gt_model_ws_free(&gws);
    for (int l = 0; l < L; l++) block_free(&db[l]);
    free(db); free(cw); free(gw); free(tok); free(dfn);
    if (!tied) free(dhead);
    free(demb);
    if (!tied) { gq_gt_free(ghead); gq_gt_free(gdhead); }
    gq_gt_free(gemb); gq_gt_free(gfn); gq_gt_free(gdemb); gq_gt_free(gdfn);
}

/* ------------------------------------------------------------------------------------------ */
/* E2E-OQP ds/dz over a whole model, and the two drivers                                        */

static void compress_random(gq_compressed *cm, const gq_model *m, int G, uint64_t seed) {
    gq_compress_opts o;
    gq_compress_opts_default(&o);
    o.sparsity = 0.5, o.bits = 4, o.group = G;
    gq_compressed_init(cm, gq_model_clone(m), &o);
    gq_rng r;
    gq_rng_seed(&r, seed);
    for (int i = 0; i < m->cfg.n_layers * GQ_LIN_COUNT; i++) {
        gq_linear *li = &cm->m->blocks[i / GQ_LIN_COUNT].lin[i % GQ_LIN_COUNT];
        int C = li->in / G;
        uint8_t *keep = gq_malloc((size_t)li->out * C);
        for (int j = 0; j < li->out * C; j++) keep[j] = gq_rng_below(&r, 2) == 0;
        MUST(gq_gqs_build(&cm->gqs[i], li->w, keep, li->out, li->in, G, 4));
        gq_gqs_expand(&cm->gqs[i], li->w);
        free(keep);
    }
}

typedef struct {
    gq_compressed *cm;
    float **ds, **dz;           /* host (cpu) or device (gpu) */
    gq_gt_gqs *gg;
    float **s, **z;             /* device */
} oqp_ctx;

static gq_status oqp_cpu_cb(void *ctx, int l, const gq_bw_blockg_f32 *g) {
    oqp_ctx *o = ctx;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        int i = l * GQ_LIN_COUNT + k;
        const gq_gqs *q = &o->cm->gqs[i];
        gq_bw_oqp_grad_f32(q, q->scales, q->zeros, g->dw[k], o->ds[i], o->dz[i]);
    }
    return GQ_OK;
}
static gq_status oqp_gpu_cb(void *ctx, int l, const gq_bw_blockg_f32 *g) {
    oqp_ctx *o = ctx;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        int i = l * GQ_LIN_COUNT + k;
        GQ_TRY(gq_gt_oqp_grad(E, &o->gg[i], o->s[i], o->z[i], g->dw[k], o->ds[i], o->dz[i]));
    }
    return GQ_OK;
}

static void test_oqp_model(const gq_model *m, int T) {
    printf("E2E-OQP ds/dz through the whole model, T=%d (%s):\n", T, gq_gt_mixed(E) ? "bf16" : "fp32");
    gq_compressed cm;
    compress_random(&cm, m, 16, 77);
    const gq_config *c = &m->cfg;
    int L = c->n_layers, NL = L * GQ_LIN_COUNT, V = c->vocab_size;
    gq_rng r;
    gq_rng_seed(&r, 8);
    int32_t *tok = gq_malloc(sizeof(int32_t) * T);
    for (int t = 0; t < T; t++) tok[t] = (int32_t)gq_rng_below(&r, (uint64_t)V);
    oqp_ctx co = {&cm, gq_calloc(NL, sizeof(float *)), gq_calloc(NL, sizeof(float *)), NULL, NULL, NULL};
    oqp_ctx go = {&cm, gq_calloc(NL, sizeof(float *)), gq_calloc(NL, sizeof(float *)), gq_calloc(NL, sizeof(gq_gt_gqs)),
                  gq_calloc(NL, sizeof(float *)), gq_calloc(NL, sizeof(float *))};
    for (int i = 0; i < NL; i++) {
        size_t nz = cm.gqs[i].nnz;
        co.ds[i] = gq_calloc(nz + 1, sizeof(float)); co.dz[i] = gq_calloc(nz + 1, sizeof(float));
        go.ds[i] = up(NULL, nz + 1); go.dz[i] = up(NULL, nz + 1);
        go.s[i] = up(cm.gqs[i].scales, nz); go.z[i] = up(cm.gqs[i].zeros, nz);
        MUST(gq_gt_gqs_upload(E, &cm.gqs[i], &go.gg[i]));
    }
    gq_bw_blockw_f32 *cw = gq_calloc((size_t)L, sizeof *cw), *gw = gq_calloc((size_t)L, sizeof *gw);
    dev_block *db = gq_calloc((size_t)L, sizeof *db);
    for (int l = 0; l < L; l++) block_up(cm.m, l, &db[l], &gw[l], &cw[l]);
    /* the GPU blocks' dense weights are the device expansion of (q - z) s, as e2e_oqp runs them */
    for (int i = 0; i < NL; i++) MUST(gq_gt_oqp_expand(E, &go.gg[i], go.s[i], go.z[i], db[i / GQ_LIN_COUNT].w[i % GQ_LIN_COUNT]));
    gq_bw_model_ws_f32 cws;
    MUST(gq_bw_model_ws_init_f32(&cws, c, T, 1, 0));
    gq_bw_modelw_f32 cmw = {c, cm.m->tok_emb, cm.m->final_norm, cm.m->lm_head, cw};
    double lc = 0, lg = 0;
    MUST(gq_bw_model_loss_f32(&cws, &cmw, tok, T, 1, oqp_cpu_cb, &co, NULL, NULL, NULL, &lc));
    float *gemb = up(cm.m->tok_emb, (size_t)V * c->dim), *gfn = up(cm.m->final_norm, c->dim);
    float *ghead = cm.m->lm_head == cm.m->tok_emb ? gemb : up(cm.m->lm_head, (size_t)V * c->dim);
    gq_gt_model_ws gws;
    MUST(gq_gt_model_ws_init(E, &gws, c, T, 1, 0));
    gq_gt_modelw gmw = {c, gemb, gfn, ghead, gw, NULL, NULL};
    MUST(gq_gt_model_loss(E, &gws, &gmw, tok, T, 1, oqp_gpu_cb, &go, NULL, NULL, NULL, &lg));
    check("E2E-OQP model loss", fabs(lg - lc) / fabs(lc), g_tol);
    double ws = 0, wz = 0;
    for (int i = 0; i < NL; i++) {
        size_t nz = cm.gqs[i].nnz;
        float *hs = down(go.ds[i], nz), *hz = down(go.dz[i], nz);
        double es = relerr(hs, co.ds[i], nz), ez = relerr(hz, co.dz[i], nz);
        if (!(es <= ws)) ws = es;
        if (!(ez <= wz)) wz = ez;
        free(hs); free(hz);
    }
    char name[96];
    snprintf(name, sizeof name, "E2E-OQP ds, worst of %d linears", NL);
    check(name, ws, g_tol);
    snprintf(name, sizeof name, "E2E-OQP dz, worst of %d linears", NL);
    check(name, wz, g_tol);
    for (int i = 0; i < NL; i++) {
        free(co.ds[i]); free(co.dz[i]);
        gq_gt_free(go.ds[i]); gq_gt_free(go.dz[i]); gq_gt_free(go.s[i]); gq_gt_free(go.z[i]);
        gq_gt_gqs_free(&go.gg[i]);
    }
    free(co.ds); free(co.dz); free(go.ds); free(go.dz); free(go.s); free(go.z); free(go.gg);
    for (int l = 0; l < L; l++) block_free(&db[l]);
    free(db); free(cw); free(gw); free(tok);
    if (ghead != gemb) gq_gt_free(ghead);
    gq_gt_free(gemb); gq_gt_free(gfn);
    gq_bw_model_ws_free_f32(&cws);
    gq_gt_model_ws_free(&gws);
    gq_compressed_free(&cm);
}

/* The drivers with device = cuda against device = cpu on the same compressed model and windows. */
static void test_drivers(const gq_model *m, int mixed) {
    printf("drivers: bqpo / e2e_oqp on the GPU (%s) vs the CPU:\n", mixed ? "bf16" : "fp32");
    int n = 4, T = 32, V = m->cfg.vocab_size;
    gq_rng r;
    gq_rng_seed(&r, 3);
    int32_t *win = gq_malloc(sizeof(int32_t) * n * T);
    for (int i = 0; i < n * T; i++) win[i] = (int32_t)gq_rng_below(&r, (uint64_t)V);
    gq_compressed a, b;
    compress_random(&a, m, 16, 5);
    compress_random(&b, m, 16, 5);
    gq_train_opts o;
    gq_train_opts_default(&o, 1e-3, 2);
    o.batch = 2;
    gq_train_result ra, rb;
    MUST(gq_bqpo_run(&a, m, win, n, T, &o, &ra));
    o.device = GQ_TRAIN_CUDA, o.mixed = mixed;
    MUST(gq_bqpo_run(&b, m, win, n, T, &o, &rb));
    for (int l = 0; l < m->cfg.n_layers; l++) {
        printf("  bqpo block %d: mse before cpu %.6g gpu %.6g, after cpu %.6g gpu %.6g\n", l, ra.mse_before[l],
               rb.mse_before[l], ra.mse_after[l], rb.mse_after[l]);
        /* block 0 sees identical inputs; later blocks see inputs from re-quantized blocks, where a code
           may flip on a rounding tie, and trained trajectories differ by rounding: loose agreement gates */
        double loose = mixed ? 0.25 : 5e-2;
        check("bqpo block mse before (gpu vs cpu)", fabs(rb.mse_before[l] - ra.mse_before[l]) / ra.mse_before[l],
              l == 0 ? g_tol : loose);
        check("bqpo block mse after (gpu vs cpu, re-quantized)", fabs(rb.mse_after[l] - ra.mse_after[l]) / ra.mse_after[l], loose);
    }
    check("bqpo steps equal", fabs((double)ra.steps - rb.steps), 0.5);
    gq_train_result_free(&ra);
    gq_train_result_free(&rb);
    /* e2e_oqp from the bqpo results: codes frozen, same trajectory up to rounding */
    o.device = GQ_TRAIN_CPU, o.mixed = 0;
    gq_compressed c2;
    compress_random(&c2, m, 16, 9);
    gq_compressed d2;
    compress_random(&d2, m, 16, 9);
    float *s0 = dup_h(c2.gqs[0].scales, c2.gqs[0].nnz);
    MUST(gq_e2e_oqp_run(&c2, win, n, T, &o, &ra));
    o.device = GQ_TRAIN_CUDA, o.mixed = mixed;
    uint8_t *codes0 = gq_malloc(d2.gqs[0].nnz * gq_gqs_bytes_per_group(16, 4));
    memcpy(codes0, d2.gqs[0].values, d2.gqs[0].nnz * gq_gqs_bytes_per_group(16, 4));
    MUST(gq_e2e_oqp_run(&d2, win, n, T, &o, &rb));
    printf("  e2e_oqp loss cpu %.6f -> %.6f, gpu %.6f -> %.6f\n", ra.loss_before, ra.loss_after, rb.loss_before, rb.loss_after);
    check("e2e_oqp loss before (gpu vs cpu)", fabs(rb.loss_before - ra.loss_before) / ra.loss_before, g_tol);
    check("e2e_oqp loss after (gpu vs cpu)", fabs(rb.loss_after - ra.loss_after) / ra.loss_after, g_tol * 10);
    check("e2e_oqp lowers the loss on the GPU (0 = yes)", rb.loss_after < rb.loss_before ? 0 : 1, 0.5);
    check("e2e_oqp codes byte-identical (0 = yes)",
          memcmp(codes0, d2.gqs[0].values, d2.gqs[0].nnz * gq_gqs_bytes_per_group(16, 4)) ? 1 : 0, 0.5);
    double worst = 0;
    /* trained scales: GPU vs CPU, relative to the CPU's change from the start (linear 0) */
    {
        size_t nz = c2.gqs[0].nnz;
        float *dc = gq_malloc(sizeof(float) * nz), *dg = gq_malloc(sizeof(float) * nz);
        for (size_t j = 0; j < nz; j++) { dc[j] = c2.gqs[0].scales[j] - s0[j]; dg[j] = d2.gqs[0].scales[j] - s0[j]; }
        worst = relerr(dg, dc, nz);
        check("e2e_oqp scale updates of layers.0.q_proj (gpu vs cpu; Adam sign-sensitive)", worst, mixed ? 1.0 : 0.25);
        free(dc); free(dg);
    }
    free(s0); free(codes0);
    gq_train_result_free(&ra);
    gq_train_result_free(&rb);
    gq_compressed_free(&a); gq_compressed_free(&b); gq_compressed_free(&c2); gq_compressed_free(&d2);
    free(win);
}

static void run_all(int mixed) {
    printf("=== %s mode (gate %.0e) ===\n", mixed ? "mixed bf16" : "fp32", mixed ? TOL_BF16 : TOL_FP32);
    MUST(gq_gt_create(mixed, &E));
    g_tol = mixed ? TOL_BF16 : TOL_FP32;
    test_ops(GQ_ROPE_HALF);
    test_ops(GQ_ROPE_INTERLEAVED);
    if (!mixed) test_quant_adam();
    gq_config c1 = tiny_cfg(64, 96, 2, 4, 2, 101, GQ_ROPE_HALF, 0);
    gq_config c2 = tiny_cfg(64, 96, 2, 4, 1, 101, GQ_ROPE_INTERLEAVED, 1);
    gq_config c3 = tiny_cfg(128, 160, 2, 2, 2, 97, GQ_ROPE_HALF, 1); /* head_dim 64, MHA */
    gq_model *m1 = random_model(&c1, 0, 1), *m2 = random_model(&c2, 0, 2), *m3 = random_model(&c3, 1, 3);
    test_block(m1, 1, 45, "rotate-half GQA 4/2");
    test_block(m2, 0, 33, "interleaved GQA 4/1");
    test_block(m3, 1, 70, "rotate-half MHA head_dim 64, q/k/v biases");
    test_model(m1, 40, "random rotate-half GQA");
    test_model(m2, 40, "random interleaved");
    test_oqp_model(m1, 40);
    test_drivers(m1, mixed);
    gq_model *s = NULL;
    if (gq_model_load("stories260K", NULL, &s) == GQ_OK) {
        test_block(s, 2, 64, "stories260K");
        test_model(s, 64, "stories260K");
        gq_model_free(s);
    } else {
        printf("  (stories260K not found under %s: real-model checks skipped)\n", gq_data_root());
    }
    gq_model_free(m1); gq_model_free(m2); gq_model_free(m3);
    gq_gt_destroy(E);
    E = NULL;
}

int main(void) {
    if (gq_gpu_available() <= 0) {
        printf("SKIP: test_gpu_backward: no CUDA device: GPU training engine not exercised\n");
        return 0;
    }
    char dev[256];
    if (gq_gpu_describe(dev, sizeof dev) == GQ_OK) printf("device: %s\n", dev);
    run_all(0);
    run_all(1);
    printf("%s: %d checks, %d failed\n", g_fail ? "FAILED" : "PASSED", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
#endif
