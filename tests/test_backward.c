/* test_backward.c — every backward op, a whole block and whole models checked against central
 * finite differences in float64 (the acceptance tests of core/backward.c), plus the float32 path
 * against forward.c on the real stories260K.
 *
 * Method: each op's output y is reduced to a scalar L = sum(C * y) with a fixed random C (so dy = C);
 * every analytic gradient entry is compared with the fourth-order central difference
 * (-L(p+2h) + 8 L(p+h) - 8 L(p-h) + L(p-2h)) / 12h, h = 1e-3.
 * Tolerance: max over entries of |g - fd| / max(|g|, |fd|, FLOOR) < 1e-6 (BW_TOL_REL). Why this
 * stencil: the plain two-point difference has round-off ~ eps |L| / h, which for a whole-model loss of
 * ~20 nats and h = 1e-5 is ~2e-10 absolute (observed), too close to 1e-6 of the small gradients of
 * rare embedding rows; the four-point one allows h = 1e-3 (round-off ~ eps |L| / h ~ 1e-11) with a
 * truncation error h^4 |L^(5)| / 30 ~ 1e-13. Entries below FLOOR = 1e-5 (absolute) are compared
 * absolutely against 1e-11 (an exactly-zero gradient has fd ~ 1e-13, where a relative test means
 * nothing). A wrong backward (a missing term, a transposed index) shows up as O(1) relative errors,
 * so 1e-6 separates the two by several orders of magnitude.
 * Needs ../shared/models/stories260K for the real-model checks (prints SKIP without it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backward.h"
#include "forward.h"

#define BW_TOL_REL 1e-6
#define BW_FD_H 1e-3
#define BW_FLOOR 1e-5

typedef double (*loss_fn)(void *ctx);

static gq_rng RNG;

static void fill(double *p, size_t n, double scale) {
    for (size_t i = 0; i < n; i++) p[i] = scale * gq_rng_normal(&RNG);
}
static double *rnd(size_t n, double scale) {
    double *p = gq_malloc(n * sizeof(double));
    fill(p, n, scale);
    return p;
}
static double *zeros(size_t n) { return gq_calloc(n, sizeof(double)); }

/* Compare analytic g [n] with central differences of f w.r.t. p [n]; check `nchk` random entries
 * (all of them when nchk >= n). Returns the max relative error and prints the worst entry. */
static double fd_check(const char *what, loss_fn f, void *ctx, double *p, const double *g, size_t n, size_t nchk) {
    double worst = 0;
    size_t wi = 0;
    double wa = 0, wn = 0;
    int all = nchk >= n;
    size_t cnt = all ? n : nchk;
    for (size_t c = 0; c < cnt; c++) {
        size_t i = all ? c : (size_t)gq_rng_below(&RNG, n);
        double p0 = p[i];
        double fv[4], off[4] = {2, 1, -1, -2};
        for (int s = 0; s < 4; s++) { p[i] = p0 + off[s] * BW_FD_H; fv[s] = f(ctx); }
        p[i] = p0;
        double num = (-fv[0] + 8 * fv[1] - 8 * fv[2] + fv[3]) / (12 * BW_FD_H);
        double den = fmax(fmax(fabs(g[i]), fabs(num)), BW_FLOOR);
        double e = fabs(g[i] - num) / den;
        if (e > worst) { worst = e; wi = i; wa = g[i]; wn = num; }
    }
    printf("  %-28s %6zu checked  max rel err %.2e  (entry %zu: analytic %.9g fd %.9g)\n", what, cnt, worst, wi, wa,
           wn);
    return worst;
}
#define CHECK_FD(what, f, ctx, p, g, n, nchk) assert_true(fd_check(what, f, ctx, p, g, n, nchk) < BW_TOL_REL)

static double dotc(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Ops                                                                                          */

typedef struct { int T, D; double *x, *w, *C, *y, *r; } rms_ctx;
static double rms_loss(void *vc) {
    rms_ctx *c = vc;
    gq_bw_rmsnorm_fwd_f64(c->y, c->r, c->x, c->w, c->T, c->D, 1e-5);
    return dotc(c->y, c->C, (size_t)c->T * c->D);
}
static void test_rmsnorm(void **st) {
    (void)st;
    int T = 3, D = 7;
    rms_ctx c = {T, D, rnd(T * D, 1), rnd(D, 1), rnd(T * D, 1), zeros(T * D), zeros(T)};
    rms_loss(&c);
    double *dx = zeros(T * D), *dw = zeros(D);
    gq_bw_rmsnorm_bwd_f64(dx, dw, c.C, c.x, c.w, c.r, T, D);
    CHECK_FD("rmsnorm dx", rms_loss, &c, c.x, dx, T * D, 1000);
    CHECK_FD("rmsnorm dw", rms_loss, &c, c.w, dw, D, 1000);
    /* accumulation contract: a second call adds the same amount */
    double dw0 = dw[2];
    gq_bw_rmsnorm_bwd_f64(dx, dw, c.C, c.x, c.w, c.r, T, D);
    assert_true(fabs(dw[2] - 2 * dw0) < 1e-12 * (1 + fabs(dw0)));
    free(c.x); free(c.w); free(c.C); free(c.y); free(c.r); free(dx); free(dw);
}

typedef struct { int T, N, K; double *x, *W, *b, *C, *y; } lin_ctx;
static double lin_loss(void *vc) {
    lin_ctx *c = vc;
    gq_bw_linear_fwd_f64(c->y, c->x, c->W, c->b, c->T, c->N, c->K);
    return dotc(c->y, c->C, (size_t)c->T * c->N);
}
static void test_linear(void **st) {
    (void)st;
    int T = 5, N = 6, K = 9;
    lin_ctx c = {T, N, K, rnd(T * K, 1), rnd(N * K, 1), rnd(N, 1), rnd(T * N, 1), zeros(T * N)};
    double *dx = rnd(T * K, 1), *dW = zeros(N * K);
    /* brute-force reference of the forward: y = x W^T + b */
    lin_loss(&c);
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double s = c.b[n];
            for (int k = 0; k < K; k++) s += c.x[t * K + k] * c.W[n * K + k];
            assert_true(fabs(s - c.y[t * N + n]) < 1e-12);
        }
    gq_bw_linear_bwd_f64(dx, 0, dW, c.C, c.x, c.W, T, N, K);
    CHECK_FD("linear dx", lin_loss, &c, c.x, dx, T * K, 1000);
    CHECK_FD("linear dW", lin_loss, &c, c.W, dW, N * K, 1000);
    /* negative control: the check must catch a 1% error in one entry */
    dW[7] *= 1.01;
    assert_true(fd_check("linear dW (corrupted on purpose)", lin_loss, &c, c.W, dW, N * K, 1000) > 1e-3);
    free(c.x); free(c.W); free(c.b); free(c.C); free(c.y); free(dx); free(dW);
}

typedef struct { int T, nh, HD; gq_rope_style st; double *x, *cs, *sn, *C, *y; } rope_ctx;
static double rope_loss(void *vc) {
    rope_ctx *c = vc;
    size_t n = (size_t)c->T * c->nh * c->HD;
    memcpy(c->y, c->x, n * sizeof(double));
    gq_bw_rope_fwd_f64(c->y, c->cs, c->sn, c->T, c->nh, c->HD, c->st);
    return dotc(c->y, c->C, n);
}
static void test_rope(void **st) {
    (void)st;
    int T = 6, nh = 3, HD = 8;
    size_t n = (size_t)T * nh * HD;
    for (int s = 0; s < 2; s++) {
        rope_ctx c = {T, nh, HD, s ? GQ_ROPE_HALF : GQ_ROPE_INTERLEAVED, rnd(n, 1), zeros(T * HD / 2),
                      zeros(T * HD / 2), rnd(n, 1), zeros(n)};
        gq_bw_rope_table_f64(c.cs, c.sn, T, HD, 100.0);
        /* independent reference for the pairing: position 3, head 1, frequency index 1 */
        rope_loss(&c);
        int t = 3, h = 1, i = 1, a = s ? i : 2 * i, b = s ? i + HD / 2 : 2 * i + 1;
        double ang = t * pow(100.0, -2.0 * i / HD);
        const double *xv = c.x + (size_t)t * nh * HD + h * HD;
        const double *yv = c.y + (size_t)t * nh * HD + h * HD;
        assert_true(fabs(yv[a] - (xv[a] * cos(ang) - xv[b] * sin(ang))) < 1e-12);
        assert_true(fabs(yv[b] - (xv[a] * sin(ang) + xv[b] * cos(ang))) < 1e-12);
        double *dx = gq_malloc(n * sizeof(double));
        memcpy(dx, c.C, n * sizeof(double));
        gq_bw_rope_bwd_f64(dx, c.cs, c.sn, T, nh, HD, c.st);
        CHECK_FD(s ? "rope(half) dx" : "rope(interleaved) dx", rope_loss, &c, c.x, dx, n, 1000);
        free(c.x); free(c.cs); free(c.sn); free(c.C); free(c.y); free(dx);
    }
}

typedef struct { int T, NH, NKV, HD; double *q, *k, *v, *C, *out, *P; } attn_ctx;
static double attn_loss(void *vc) {
    attn_ctx *c = vc;
    gq_bw_attn_fwd_f64(c->out, c->P, c->q, c->k, c->v, c->T, c->NH, c->NKV, c->HD);
    return dotc(c->out, c->C, (size_t)c->T * c->NH * c->HD);
}
static void test_attention(void **st) {
    (void)st;
    int T = 7, NH = 4, NKV = 2, HD = 4, qd = NH * HD, kd = NKV * HD;
    attn_ctx c = {T, NH, NKV, HD, rnd(T * qd, 1), rnd(T * kd, 1), rnd(T * kd, 1), rnd(T * qd, 1), zeros(T * qd),
                  zeros(NH * T * T)};
    attn_loss(&c);
    /* brute-force reference of one output: head 3 (kv head 1), row 4 */
    {
        int h = 3, g = 1, t = 4;
        double sc[7], mx = -1e300, sum = 0;
        for (int s = 0; s <= t; s++) {
            sc[s] = 0;
            for (int d = 0; d < HD; d++) sc[s] += c.q[t * qd + h * HD + d] * c.k[s * kd + g * HD + d];
            sc[s] /= sqrt(HD);
            mx = fmax(mx, sc[s]);
        }
        for (int s = 0; s <= t; s++) sum += exp(sc[s] - mx);
        for (int d = 0; d < HD; d++) {
            double o = 0;
            for (int s = 0; s <= t; s++) o += exp(sc[s] - mx) / sum * c.v[s * kd + g * HD + d];
            assert_true(fabs(o - c.out[t * qd + h * HD + d]) < 1e-12);
        }
    }
    double *dq = zeros(T * qd), *dk = zeros(T * kd), *dv = zeros(T * kd), *dP = zeros(T * T);
    gq_bw_attn_bwd_f64(dq, dk, dv, dP, c.C, c.P, c.q, c.k, c.v, T, NH, NKV, HD);
    CHECK_FD("attention dq", attn_loss, &c, c.q, dq, T * qd, 1000);
    CHECK_FD("attention dk (GQA)", attn_loss, &c, c.k, dk, T * kd, 1000);
    CHECK_FD("attention dv (GQA)", attn_loss, &c, c.v, dv, T * kd, 1000);
    free(c.q); free(c.k); free(c.v); free(c.C); free(c.out); free(c.P); free(dq); free(dk); free(dv); free(dP);
}

typedef struct { size_t n; double *g, *u, *C, *h; } swi_ctx;
static double swi_loss(void *vc) {
    swi_ctx *c = vc;
    gq_bw_swiglu_fwd_f64(c->h, c->g, c->u, c->n);
    return dotc(c->h, c->C, c->n);
}
static void test_swiglu(void **st) {
    (void)st;
    size_t n = 40;
    swi_ctx c = {n, rnd(n, 3), rnd(n, 1), rnd(n, 1), zeros(n)};
    double *dg = zeros(n), *du = zeros(n);
    gq_bw_swiglu_bwd_f64(dg, du, c.C, c.g, c.u, n);
    CHECK_FD("swiglu dgate", swi_loss, &c, c.g, dg, n, 1000);
    CHECK_FD("swiglu dup", swi_loss, &c, c.u, du, n, 1000);
    free(c.g); free(c.u); free(c.C); free(c.h); free(dg); free(du);
}

typedef struct { int T, V, D; const int32_t *tok; double *emb, *C, *x; } emb_ctx;
static double emb_loss(void *vc) {
    emb_ctx *c = vc;
    gq_bw_embed_fwd_f64(c->x, c->emb, c->tok, c->T, c->D);
    return dotc(c->x, c->C, (size_t)c->T * c->D);
}
typedef struct { int T, V; const int32_t *tok; double *logits; } xent_ctx;
static double xent_loss(void *vc) {
    xent_ctx *c = vc;
    return gq_bw_xent_f64(NULL, c->logits, c->tok, c->T, c->V);
}
static void test_embed_xent(void **st) {
    (void)st;
    int32_t tok[6] = {3, 1, 3, 4, 0, 3}; /* repeated ids: the scatter must add */
    int T = 6, V = 5, D = 4;
    emb_ctx c = {T, V, D, tok, rnd(V * D, 1), rnd(T * D, 1), zeros(T * D)};
    double *demb = zeros(V * D);
    gq_bw_embed_bwd_f64(demb, c.C, tok, T, D);
    CHECK_FD("embedding demb", emb_loss, &c, c.emb, demb, V * D, 1000);
    xent_ctx xc = {T, V, tok, rnd(T * V, 2)};
    double *dl = zeros(T * V);
    double l = gq_bw_xent_f64(dl, xc.logits, tok, T, V);
    /* brute-force mean NLL */
    double ref = 0;
    for (int t = 0; t + 1 < T; t++) {
        double s = 0;
        for (int i = 0; i < V; i++) s += exp(xc.logits[t * V + i]);
        ref += log(s) - xc.logits[t * V + tok[t + 1]];
    }
    assert_true(fabs(l - ref / (T - 1)) < 1e-12);
    CHECK_FD("cross-entropy dlogits", xent_loss, &xc, xc.logits, dl, T * V, 1000);
    free(c.emb); free(c.C); free(c.x); free(demb); free(xc.logits); free(dl);
}

/* OQP: w_hat = (q - z) s with frozen codes; gradients w.r.t. s and z through a linear layer. */
typedef struct { gq_gqs *g; double *s, *z, *w, *C; } oqp_ctx;
static double oqp_loss(void *vc) {
    oqp_ctx *c = vc;
    gq_bw_oqp_expand_f64(c->g, c->s, c->z, c->w);
    return dotc(c->w, c->C, (size_t)c->g->N * c->g->K);
}
static void test_oqp(void **st) {
    (void)st;
    int N = 5, K = 12, G = 4, C = K / G;
    float *w = gq_malloc(sizeof(float) * N * K);
    uint8_t keep[15];
    for (int i = 0; i < N * K; i++) w[i] = (float)gq_rng_normal(&RNG);
    for (int i = 0; i < N * C; i++) keep[i] = (uint8_t)(gq_rng_below(&RNG, 3) != 0);
    gq_gqs g;
    assert_int_equal(gq_gqs_build(&g, w, keep, N, K, G, 3), GQ_OK);
    oqp_ctx c = {&g, zeros(g.nnz), zeros(g.nnz), zeros(N * K), rnd(N * K, 1)};
    for (size_t i = 0; i < g.nnz; i++) { c.s[i] = g.scales[i]; c.z[i] = g.zeros[i] + 0.3; }
    /* at the stored s, z the expansion equals gq_gqs_expand */
    float *ref = gq_malloc(sizeof(float) * N * K);
    gq_gqs_expand(&g, ref);
    for (size_t i = 0; i < g.nnz; i++) c.z[i] -= 0.3;
    oqp_loss(&c);
    for (int i = 0; i < N * K; i++) assert_true(fabs(c.w[i] - ref[i]) < 1e-6 * (1 + fabs(ref[i])));
    for (size_t i = 0; i < g.nnz; i++) c.z[i] += 0.3; /* continuous zeros, as during training */
    double *ds = zeros(g.nnz), *dz = zeros(g.nnz);
    gq_bw_oqp_grad_f64(&g, c.s, c.z, c.C, ds, dz);
    CHECK_FD("oqp dscale", oqp_loss, &c, c.s, ds, g.nnz, 1000);
    CHECK_FD("oqp dzero", oqp_loss, &c, c.z, dz, g.nnz, 1000);
    gq_gqs_free(&g);
    free(w); free(ref); free(c.s); free(c.z); free(c.w); free(c.C); free(ds); free(dz);
}

/* ------------------------------------------------------------------------------------------ */
/* A whole block (random small shapes, both RoPE styles, with and without q/k/v biases)          */

static gq_config tiny_cfg(gq_rope_style rs, int layers, int V) {
    gq_config c;
    memset(&c, 0, sizeof c);
    c.arch = GQ_ARCH_LLAMA;
    c.dim = 16; c.hidden_dim = 24; c.n_layers = layers; c.n_heads = 4; c.n_kv_heads = 2; c.head_dim = 4;
    c.vocab_size = V; c.max_seq_len = 32; c.norm_eps = 1e-5f; c.rope_theta = 10000.0f; c.rope_style = rs;
    c.tied_embeddings = 1; c.bos_id = -1; c.eos_id = -1;
    return c;
}

static size_t lin_n(const gq_config *c, int kind, int *N, int *K) {
    int qd = c->n_heads * c->head_dim, kd = c->n_kv_heads * c->head_dim, D = c->dim, H = c->hidden_dim;
    int n[7] = {qd, kd, kd, D, H, H, D}, k[7] = {D, D, D, qd, D, D, H};
    if (N) *N = n[kind];
    if (K) *K = k[kind];
    return (size_t)n[kind] * k[kind];
}

typedef struct {
    gq_bw_acts_f64 a;
    gq_bw_blockw_f64 w;
    double *x, *y, *C, *wts[7], *bias[3], *an, *fn;
    int T;
} blk_ctx;
static double blk_loss(void *vc) {
    blk_ctx *c = vc;
    gq_bw_block_fwd_f64(&c->a, &c->w, c->x, c->y, c->T);
    return dotc(c->y, c->C, (size_t)c->T * c->a.cfg->dim);
}
static void test_block(void **st) {
    (void)st;
    for (int variant = 0; variant < 2; variant++) {
        gq_config cfg = tiny_cfg(variant ? GQ_ROPE_HALF : GQ_ROPE_INTERLEAVED, 1, 7);
        blk_ctx c;
        memset(&c, 0, sizeof c);
        c.T = 6;
        int D = cfg.dim;
        assert_int_equal(gq_bw_acts_init_f64(&c.a, &cfg, 8), GQ_OK);
        for (int k = 0; k < 7; k++) {
            int K;
            size_t n = lin_n(&cfg, k, NULL, &K);
            c.wts[k] = rnd(n, 1.0 / sqrt(K));
            c.w.w[k] = c.wts[k];
        }
        if (variant) /* Qwen2-style q/k/v biases */
            for (int k = 0; k < 3; k++) { int N; lin_n(&cfg, k, &N, NULL); c.bias[k] = rnd(N, 0.5); c.w.bias[k] = c.bias[k]; }
        c.an = rnd(D, 0.3); c.fn = rnd(D, 0.3);
        for (int i = 0; i < D; i++) { c.an[i] += 1; c.fn[i] += 1; }
        c.w.attn_norm = c.an; c.w.ffn_norm = c.fn;
        c.x = rnd(c.T * D, 1); c.y = zeros(c.T * D); c.C = rnd(c.T * D, 1);
        gq_bw_blockg_f64 g;
        memset(&g, 0, sizeof g);
        for (int k = 0; k < 7; k++) g.dw[k] = zeros(lin_n(&cfg, k, NULL, NULL));
        g.dattn_norm = zeros(D); g.dffn_norm = zeros(D);
        double *dx = zeros(c.T * D);
        blk_loss(&c);
        gq_bw_block_bwd_f64(&c.a, &c.w, c.C, dx, &g, c.T);
        printf(" block, %s RoPE%s:\n", variant ? "half" : "interleaved", variant ? ", q/k/v bias" : "");
        CHECK_FD("block dx_in", blk_loss, &c, c.x, dx, c.T * D, 1000);
        CHECK_FD("block d attn_norm", blk_loss, &c, c.an, g.dattn_norm, D, 1000);
        CHECK_FD("block d ffn_norm", blk_loss, &c, c.fn, g.dffn_norm, D, 1000);
        for (int k = 0; k < 7; k++) {
            char name[64];
            snprintf(name, sizeof name, "block d %s", gq_linear_name((gq_linear_kind)k));
            CHECK_FD(name, blk_loss, &c, c.wts[k], g.dw[k], lin_n(&cfg, k, NULL, NULL), 1000);
        }
        /* dx may alias dy (what the model driver does) */
        double *dd = gq_malloc(sizeof(double) * c.T * D);
        memcpy(dd, c.C, sizeof(double) * c.T * D);
        blk_loss(&c);
        gq_bw_block_bwd_f64(&c.a, &c.w, dd, dd, NULL, c.T);
        for (int i = 0; i < c.T * D; i++) assert_true(fabs(dd[i] - dx[i]) < 1e-12 * (1 + fabs(dx[i])));
        free(dd);
        gq_bw_acts_free_f64(&c.a);
        for (int k = 0; k < 7; k++) { free(c.wts[k]); free(g.dw[k]); }
        for (int k = 0; k < 3; k++) free(c.bias[k]);
        free(c.an); free(c.fn); free(c.x); free(c.y); free(c.C); free(g.dattn_norm); free(g.dffn_norm); free(dx);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Whole models                                                                                 */

/* A double-precision copy of a model's tensors and the gradients of all of them. */
typedef struct {
    gq_config cfg;
    double *emb, *fnorm, *head; /* head == emb when tied */
    double **w;                 /* [L*7] */
    double **norms;             /* [L*2] */
    gq_bw_blockw_f64 *bw;
    gq_bw_modelw_f64 mw;
    /* gradients */
    double *demb, *dfnorm, *dhead, **dw, **dnorms;
    gq_bw_model_ws_f64 ws;
    const int32_t *tok;
    int T;
} dmodel;

static void dmodel_init(dmodel *d, const gq_model *m, const gq_config *cfg, int T) {
    memset(d, 0, sizeof *d);
    d->cfg = m ? m->cfg : *cfg;
    const gq_config *c = &d->cfg;
    int L = c->n_layers, D = c->dim;
    size_t VD = (size_t)c->vocab_size * D;
    d->emb = zeros(VD); d->fnorm = zeros(D);
    d->head = c->tied_embeddings ? d->emb : zeros(VD);
    d->w = gq_calloc((size_t)L * 7, sizeof(double *));
    d->dw = gq_calloc((size_t)L * 7, sizeof(double *));
    d->norms = gq_calloc((size_t)L * 2, sizeof(double *));
    d->dnorms = gq_calloc((size_t)L * 2, sizeof(double *));
    d->bw = gq_calloc((size_t)L, sizeof *d->bw);
    for (int l = 0; l < L; l++) {
        for (int k = 0; k < 7; k++) {
            int K;
            size_t n = lin_n(c, k, NULL, &K);
            d->w[l * 7 + k] = m ? zeros(n) : rnd(n, 1.0 / sqrt(K));
            d->dw[l * 7 + k] = zeros(n);
            if (m) for (size_t i = 0; i < n; i++) d->w[l * 7 + k][i] = m->blocks[l].lin[k].w[i];
            d->bw[l].w[k] = d->w[l * 7 + k];
        }
        for (int j = 0; j < 2; j++) {
            d->norms[l * 2 + j] = zeros(D);
            d->dnorms[l * 2 + j] = zeros(D);
            const float *src = m ? (j ? m->blocks[l].ffn_norm : m->blocks[l].attn_norm) : NULL;
            for (int i = 0; i < D; i++) d->norms[l * 2 + j][i] = src ? src[i] : 1 + 0.3 * gq_rng_normal(&RNG);
        }
        d->bw[l].attn_norm = d->norms[l * 2];
        d->bw[l].ffn_norm = d->norms[l * 2 + 1];
    }
    for (size_t i = 0; i < VD; i++) d->emb[i] = m ? m->tok_emb[i] : gq_rng_normal(&RNG);
    if (!c->tied_embeddings) for (size_t i = 0; i < VD; i++) d->head[i] = m ? m->lm_head[i] : 0.3 * gq_rng_normal(&RNG);
    for (int i = 0; i < D; i++) d->fnorm[i] = m ? m->final_norm[i] : 1 + 0.3 * gq_rng_normal(&RNG);
    d->demb = zeros(VD);
    d->dhead = c->tied_embeddings ? d->demb : zeros(VD);
    d->dfnorm = zeros(D);
    d->mw = (gq_bw_modelw_f64){&d->cfg, d->emb, d->fnorm, d->head, d->bw};
    assert_int_equal(gq_bw_model_ws_init_f64(&d->ws, &d->cfg, T, 1, 1), GQ_OK);
    d->T = T;
}
static void dmodel_free(dmodel *d) {
    int L = d->cfg.n_layers;
    for (int i = 0; i < L * 7; i++) { free(d->w[i]); free(d->dw[i]); }
    for (int i = 0; i < L * 2; i++) { free(d->norms[i]); free(d->dnorms[i]); }
    if (d->head != d->emb) { free(d->head); free(d->dhead); }
    free(d->emb); free(d->demb); free(d->fnorm); free(d->dfnorm);
    free(d->w); free(d->dw); free(d->norms); free(d->dnorms); free(d->bw);
    gq_bw_model_ws_free_f64(&d->ws);
}
static gq_status dmodel_collect(void *ctx, int layer, const gq_bw_blockg_f64 *g) {
    dmodel *d = ctx;
    for (int k = 0; k < 7; k++) {
        size_t n = lin_n(&d->cfg, k, NULL, NULL);
        for (size_t i = 0; i < n; i++) d->dw[layer * 7 + k][i] += g->dw[k][i];
    }
    for (int i = 0; i < d->cfg.dim; i++) {
        d->dnorms[layer * 2][i] += g->dattn_norm[i];
        d->dnorms[layer * 2 + 1][i] += g->dffn_norm[i];
    }
    return GQ_OK;
}
static double dmodel_loss(void *vc) {
    dmodel *d = vc;
    double l;
    assert_int_equal(gq_bw_model_loss_f64(&d->ws, &d->mw, d->tok, d->T, 0, NULL, NULL, NULL, NULL, NULL, &l), GQ_OK);
    return l;
}
static void dmodel_check(dmodel *d, size_t nchk) {
    double loss;
    assert_int_equal(gq_bw_model_loss_f64(&d->ws, &d->mw, d->tok, d->T, 1, dmodel_collect, d, d->demb, d->dhead,
                                          d->dfnorm, &loss),
                     GQ_OK);
    size_t VD = (size_t)d->cfg.vocab_size * d->cfg.dim;
    CHECK_FD("model d tok_emb (tied head)", dmodel_loss, d, d->emb, d->demb, VD, nchk);
    CHECK_FD("model d final_norm", dmodel_loss, d, d->fnorm, d->dfnorm, d->cfg.dim, nchk);
    for (int l = 0; l < d->cfg.n_layers; l++) {
        char name[64];
        for (int k = 0; k < 7; k++) {
            snprintf(name, sizeof name, "model layers.%d.%s", l, gq_linear_name((gq_linear_kind)k));
            CHECK_FD(name, dmodel_loss, d, d->w[l * 7 + k], d->dw[l * 7 + k], lin_n(&d->cfg, k, NULL, NULL), nchk);
        }
        snprintf(name, sizeof name, "model layers.%d.attn_norm", l);
        CHECK_FD(name, dmodel_loss, d, d->norms[l * 2], d->dnorms[l * 2], d->cfg.dim, nchk);
        snprintf(name, sizeof name, "model layers.%d.ffn_norm", l);
        CHECK_FD(name, dmodel_loss, d, d->norms[l * 2 + 1], d->dnorms[l * 2 + 1], d->cfg.dim, nchk);
    }
}

static void test_tiny_model(void **st) {
    (void)st;
    gq_config cfg = tiny_cfg(GQ_ROPE_HALF, 2, 11);
    dmodel d;
    int32_t tok[7] = {1, 5, 9, 5, 2, 10, 0};
    dmodel_init(&d, NULL, &cfg, 7);
    d.tok = tok;
    dmodel_check(&d, 100000); /* every parameter */
    dmodel_free(&d);
}

static gq_model *STORIES;

static void test_stories_model(void **st) {
    (void)st;
    if (!STORIES) { printf("SKIP: stories260K not found under %s/models\n", gq_data_root()); return; }
    dmodel d;
    int32_t tok[6] = {1, 403, 407, 261, 378, 288}; /* BOS + a few TinyStories tokens */
    dmodel_init(&d, STORIES, NULL, 6);
    d.tok = tok;
    dmodel_check(&d, 40); /* a random subset of every tensor */
    dmodel_free(&d);
}

/* The float32 path of the training forward agrees with forward.c (the production forward) on the
 * real model, and with the double path. Tolerance: fp32 logits of a 5-layer model; forward.c and
 * this file sum in different orders, observed |diff| ~1e-5 on logits of magnitude ~10. */
#define BW_F32_LOGIT_TOL 1e-3
static void test_f32_matches_forward(void **st) {
    (void)st;
    if (!STORIES) { printf("SKIP: stories260K not found\n"); return; }
    const gq_model *m = STORIES;
    int T = 32, L = m->cfg.n_layers, V = m->cfg.vocab_size;
    int32_t tok[32];
    for (int t = 0; t < T; t++) tok[t] = t ? (int32_t)gq_rng_below(&RNG, (uint64_t)V) : 1;
    gq_fwd f;
    assert_int_equal(gq_fwd_init(&f, m, T), GQ_OK);
    float *ref = gq_malloc(sizeof(float) * T * V);
    assert_int_equal(gq_forward(&f, tok, T, ref), GQ_OK);
    gq_bw_blockw_f32 *bw = gq_calloc((size_t)L, sizeof *bw);
    for (int l = 0; l < L; l++) {
        bw[l].attn_norm = m->blocks[l].attn_norm;
        bw[l].ffn_norm = m->blocks[l].ffn_norm;
        for (int k = 0; k < 7; k++) { bw[l].w[k] = m->blocks[l].lin[k].w; bw[l].bias[k] = m->blocks[l].lin[k].bias; }
    }
    gq_bw_modelw_f32 mw = {&m->cfg, m->tok_emb, m->final_norm, m->lm_head, bw};
    gq_bw_model_ws_f32 ws;
    assert_int_equal(gq_bw_model_ws_init_f32(&ws, &m->cfg, T, 0, 0), GQ_OK);
    double loss;
    assert_int_equal(gq_bw_model_loss_f32(&ws, &mw, tok, T, 0, NULL, NULL, NULL, NULL, NULL, &loss), GQ_OK);
    double md = 0;
    for (int i = 0; i < T * V; i++) md = fmax(md, fabs(ws.logits[i] - ref[i]));
    int np;
    double nll = gq_nll_from_logits(ref, tok, T, V, &np);
    printf("  f32 training forward vs forward.c: max |logit diff| %.2e, loss %.6f vs %.6f\n", md, loss, nll / np);
    assert_true(md < BW_F32_LOGIT_TOL);
    assert_true(fabs(loss - nll / np) < 1e-4);
    /* token out of range is an input error */
    int32_t bad[2] = {1, V};
    assert_int_equal(gq_bw_model_loss_f32(&ws, &mw, bad, 2, 0, NULL, NULL, NULL, NULL, NULL, &loss), GQ_ERR_ARG);
    gq_bw_model_ws_free_f32(&ws);
    free(bw); free(ref);
    gq_fwd_free(&f);
}

static int setup(void **st) {
    (void)st;
    gq_rng_seed(&RNG, 1234);
    if (gq_model_load("stories260K", NULL, &STORIES) != GQ_OK) STORIES = NULL;
    return 0;
}
static int teardown(void **st) {
    (void)st;
    gq_model_free(STORIES);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rmsnorm),     cmocka_unit_test(test_linear),     cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),   cmocka_unit_test(test_swiglu),     cmocka_unit_test(test_embed_xent),
        cmocka_unit_test(test_oqp),         cmocka_unit_test(test_block),      cmocka_unit_test(test_tiny_model),
        cmocka_unit_test(test_stories_model), cmocka_unit_test(test_f32_matches_forward),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
