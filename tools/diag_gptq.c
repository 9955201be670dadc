/* diag_gptq.c — why GPTQ W3 G16 loses to RTN on v_proj of a real model (reports/smollm2/README.md,
 * "GPTQ vs RTN"). Collects the q/k/v input statistics itself (full-precision inputs, every block), on
 * the calibration windows (the same 16 x 512 WikiText-2 validation windows diag_prune draws) and on two
 * held-out sets (WikiText-2 test windows 0..15 — the first 4 are diag_prune's eval windows — and
 * 16 x 512 C4 windows), keeping apart the contribution of the first positions of each window.
 * Then, for v_proj of every block, with W3 G16 (asym, as the library's defaults):
 *   - checks the library's GPTQ against a slow float64 textbook OBS loop (explicit inverse, downdated
 *     after every column, no Cholesky, no lazy batches) on the real v_proj and real H;
 *   - builds W_hat for RTN and GPTQ variants (damping, static groups, act-order, Hessians without
 *     the first positions, held-out Hessians, position-0 up-weighted);
 *   - prints the layer objective tr(dW H dW^T) per variant on each Hessian (summed over layers, and
 *     per kv head for layer 0), the attention-output error sum ||A_hat - A||^2 at the input of o_proj
 *     on the eval windows (full-precision block input, only v_proj changed), and the perplexity with
 *     only v_proj compressed (WikiText-2 test, seqlen 512, first 4 windows: diag_prune's protocol).
 * --all [WINDOWS]: every linear compressed (RTN, GPTQ, GPTQ with position 0 of each calibration window
 * up-weighted x64 in every Hessian, act-order), perplexity on WINDOWS (default 16) eval windows; also
 * prints the leverage of position 0 in the q/k/v input (WINDOWS = 0: only that).
 * Build: make build/diag_gptq. Usage: diag_gptq MODEL [HESS.h5 to cross-check the calibration H]
 *                                     diag_gptq MODEL --all [WINDOWS]
 * Must not: be linked into the library or the tests.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/calib.h"
#include "../core/ckpt.h"
#include "../core/compress.h"
#include "../core/eval_ppl.h"
#include "../core/forward.h"
#include "../core/saliency.h"
#include "../stages/baselines/baselines.h"

#define SEQ 512
#define NWIN 16
#define NFIRST 4 /* positions 0..NFIRST-1 kept apart */
#define BITS 3
#define GROUP 16

/* ------------------------------------------------------------------------------------------ */
/* statistics of the q/k/v input, per layer: S = sum_t x_t x_t^T over all positions, position 0 only,
 * positions 0..NFIRST-1 */
typedef struct {
    int L, K;
    double **S_all, **S_p0, **S_pf;
    int64_t n_all, n_p0, n_pf;
    double *nrm0, *nrm_rest; /* sum ||x_0||^2, sum ||x_t||^2 over t > 0 */
    double *xd;
    float *att;   /* capture of the o_proj input [T, NH*HD] (attention output) */
    int capture_layer;
} stats;

static void stats_init(stats *s, const gq_model *m) {
    memset(s, 0, sizeof *s);
    s->L = m->cfg.n_layers;
    s->K = m->cfg.dim;
    s->S_all = gq_calloc(s->L, sizeof(double *));
    s->S_p0 = gq_calloc(s->L, sizeof(double *));
    s->S_pf = gq_calloc(s->L, sizeof(double *));
    for (int l = 0; l < s->L; l++) {
        s->S_all[l] = gq_calloc((size_t)s->K * s->K, sizeof(double));
        s->S_p0[l] = gq_calloc((size_t)s->K * s->K, sizeof(double));
        s->S_pf[l] = gq_calloc((size_t)s->K * s->K, sizeof(double));
    }
    s->nrm0 = gq_calloc(s->L, sizeof(double));
    s->nrm_rest = gq_calloc(s->L, sizeof(double));
    s->xd = gq_malloc((size_t)SEQ * s->K * sizeof(double));
    s->capture_layer = -1;
}

static void hook(void *ctx, int layer, gq_linear_kind kind, const float *x, int T, int K) {
    stats *s = ctx;
    if (kind == GQ_LIN_O && layer == s->capture_layer && s->att) memcpy(s->att, x, sizeof(float) * T * K);
    if (kind != GQ_LIN_Q || s->capture_layer >= 0) return;
    for (size_t i = 0; i < (size_t)T * K; i++) s->xd[i] = x[i];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, K, T, 1.0, s->xd, K, 1.0, s->S_all[layer], K);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, K, 1, 1.0, s->xd, K, 1.0, s->S_p0[layer], K);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, K, NFIRST, 1.0, s->xd, K, 1.0, s->S_pf[layer], K);
    for (int t = 0; t < T; t++) {
        double a = 0;
        for (int j = 0; j < K; j++) a += s->xd[(size_t)t * K + j] * s->xd[(size_t)t * K + j];
        if (t == 0) s->nrm0[layer] += a;
        else s->nrm_rest[layer] += a;
    }
    if (layer == 0) s->n_all += T, s->n_p0 += 1, s->n_pf += NFIRST;
}

static void collect(const gq_model *m, const int32_t *win, int n, stats *s) {
    gq_fwd f;
    GQ_ASSERT(gq_fwd_init(&f, m, SEQ) == GQ_OK);
    f.hook = hook;
    f.hook_ctx = s;
    float *x = gq_malloc(sizeof(float) * SEQ * m->cfg.dim);
    for (int w = 0; w < n; w++) {
        GQ_ASSERT(gq_fwd_embed(&f, win + (size_t)w * SEQ, SEQ, x) == GQ_OK);
        for (int l = 0; l < m->cfg.n_layers; l++) gq_fwd_block(&f, l, x, SEQ);
    }
    free(x);
    gq_fwd_free(&f);
    const int K = s->K;
    for (int l = 0; l < s->L; l++) /* mirror the upper triangles */
        for (int a = 0; a < K; a++)
            for (int b = 0; b < a; b++) {
                s->S_all[l][(size_t)a * K + b] = s->S_all[l][(size_t)b * K + a];
                s->S_p0[l][(size_t)a * K + b] = s->S_p0[l][(size_t)b * K + a];
                s->S_pf[l][(size_t)a * K + b] = s->S_pf[l][(size_t)b * K + a];
            }
}

/* H = 2 (S_all - S_drop + alpha S_p0) / (n_all - n_drop) — the library's scaling (2 / n_tok) */
typedef enum { H_ALL, H_EXCL0, H_EXCLF, H_P0, H_UP0 } hkind;
static void make_h(const stats *s, int l, hkind k, double alpha, double *H) {
    const size_t KK = (size_t)s->K * s->K;
    double n = (double)s->n_all;
    for (size_t i = 0; i < KK; i++) {
        double v = s->S_all[l][i];
        if (k == H_EXCL0) v -= s->S_p0[l][i];
        if (k == H_EXCLF) v -= s->S_pf[l][i];
        if (k == H_P0) v = s->S_p0[l][i];
        if (k == H_UP0) v += alpha * s->S_p0[l][i];
        H[i] = v;
    }
    if (k == H_EXCL0) n -= (double)s->n_p0;
    if (k == H_EXCLF) n -= (double)s->n_pf;
    if (k == H_P0) n = (double)s->n_p0;
    for (size_t i = 0; i < KK; i++) H[i] *= 2.0 / n;
}

/* ------------------------------------------------------------------------------------------ */
/* the textbook OBS loop, float64: explicit Gauss-Jordan inverse of the damped H, downdated after every
 * column (no Cholesky, no lazy batches). static_groups: quantizers fitted on the original W. */
static void gj_inverse(double *A, int K, double *inv) {
    double *a = gq_malloc(sizeof(double) * K * 2 * K);
    for (int i = 0; i < K; i++)
        for (int j = 0; j < 2 * K; j++) a[(size_t)i * 2 * K + j] = j < K ? A[(size_t)i * K + j] : (j - K == i);
    for (int c = 0; c < K; c++) {
        int p = c;
        for (int i = c + 1; i < K; i++)
            if (fabs(a[(size_t)i * 2 * K + c]) > fabs(a[(size_t)p * 2 * K + c])) p = i;
        for (int j = 0; j < 2 * K; j++) {
            double t = a[(size_t)c * 2 * K + j];
            a[(size_t)c * 2 * K + j] = a[(size_t)p * 2 * K + j];
            a[(size_t)p * 2 * K + j] = t;
        }
        double d = a[(size_t)c * 2 * K + c];
        for (int j = 0; j < 2 * K; j++) a[(size_t)c * 2 * K + j] /= d;
        for (int i = 0; i < K; i++)
            if (i != c) {
                double mm = a[(size_t)i * 2 * K + c];
                if (mm != 0)
                    for (int j = 0; j < 2 * K; j++) a[(size_t)i * 2 * K + j] -= mm * a[(size_t)c * 2 * K + j];
            }
    }
    for (int i = 0; i < K; i++)
        for (int j = 0; j < K; j++) inv[(size_t)i * K + j] = a[(size_t)i * 2 * K + K + j];
    free(a);
}

static void ref_gptq(const float *w0, int N, int K, const double *H, double damp, int static_groups, float *out) {
    double *A = gq_malloc(sizeof(double) * K * K), *Hi = gq_malloc(sizeof(double) * K * K);
    double *W = gq_malloc(sizeof(double) * N * K), *row = gq_malloc(sizeof(double) * K);
    memcpy(A, H, sizeof(double) * K * K);
    double mean = 0;
    int *dead = gq_calloc(K, sizeof(int));
    for (int j = 0; j < K; j++) {
        dead[j] = A[(size_t)j * K + j] == 0;
        if (dead[j]) A[(size_t)j * K + j] = 1;
        mean += A[(size_t)j * K + j];
    }
    mean /= K;
    for (int j = 0; j < K; j++) A[(size_t)j * K + j] += damp * mean;
    gj_inverse(A, K, Hi);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < K; c++) W[(size_t)r * K + c] = dead[c] ? 0 : w0[(size_t)r * K + c];
    const gq_qspec spec = {.bits = BITS, .mode = GQ_QMODE_ASYM, .fp16_scale = 0};
    float *s = gq_malloc(sizeof(float) * N), *z = gq_malloc(sizeof(float) * N), gv[GROUP];
    for (int i = 0; i < K; i++) {
        if (i % GROUP == 0)
            for (int r = 0; r < N; r++) {
                for (int c = 0; c < GROUP; c++)
                    gv[c] = static_groups ? (dead[i + c] ? 0.f : w0[(size_t)r * K + i + c]) : (float)W[(size_t)r * K + i + c];
                gq_quant_params(gv, GROUP, &spec, &s[r], &z[r]);
            }
        const double d = Hi[(size_t)i * K + i];
        for (int r = 0; r < N; r++) {
            double w = W[(size_t)r * K + i];
            double q = gq_quant_dequant(gq_quant_code((float)w, s[r], z[r], BITS), s[r], z[r]);
            double e = (w - q) / d;
            W[(size_t)r * K + i] = q;
            for (int j = i + 1; j < K; j++) W[(size_t)r * K + j] -= e * Hi[(size_t)i * K + j];
        }
        for (int j = 0; j < K; j++) row[j] = Hi[(size_t)i * K + j];
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) Hi[(size_t)a * K + b] -= row[a] * row[b] / d;
    }
    for (int i = 0; i < N * K; i++) out[i] = (float)W[i];
    free(A), free(Hi), free(W), free(row), free(dead), free(s), free(z);
}

/* ------------------------------------------------------------------------------------------ */

static void run_lib(gq_compress_fn fn, const gq_linear *src, const double *H, int K, double damp, int act_order,
                    float *out) {
    const int N = src->out;
    memcpy(out, src->w, sizeof(float) * N * K);
    gq_linear lin = {.out = N, .in = K, .w = out, .bias = NULL};
    gq_hessian h = {.K = K, .n_tok = 1, .H = (double *)H, .sumsq = NULL};
    gq_compress_job job;
    memset(&job, 0, sizeof job);
    snprintf(job.name, sizeof job.name, "v_proj");
    job.lin = &lin;
    job.h = &h;
    gq_compress_opts o;
    gq_compress_opts_default(&o);
    o.bits = BITS;
    o.group = GROUP;
    o.damp = damp;
    o.act_order = act_order;
    gq_compress_result res;
    memset(&res, 0, sizeof res);
    GQ_ASSERT(fn(&job, &o, &res) == GQ_OK);
    gq_gqs_free(&res.gqs);
}

/* per kv head (HD rows each): tr(dW_h H dW_h^T) */
static void objective(const float *w, const float *wh, int N, int K, const double *H, int HD, double *per_head) {
    double *D = gq_malloc(sizeof(double) * N * K), *DH = gq_malloc(sizeof(double) * N * K);
    for (size_t i = 0; i < (size_t)N * K; i++) D[i] = (double)w[i] - (double)wh[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, K, K, 1.0, D, K, H, K, 0.0, DH, K);
    for (int h = 0; h < N / HD; h++) per_head[h] = 0;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < K; c++) per_head[r / HD] += D[(size_t)r * K + c] * DH[(size_t)r * K + c];
    free(D), free(DH);
}

static double ppl_of(const gq_model *m, const int32_t *ids, size_t n, int windows) {
    gq_ppl_result r;
    memset(&r, 0, sizeof r);
    GQ_ASSERT(gq_eval_ppl_tokens(m, ids, n, SEQ, windows, &r) == GQ_OK);
    return r.ppl;
}

static double ppl_v(const gq_model *m, float **wv, const int32_t *ids, size_t n) {
    gq_model *mc = gq_model_clone(m);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        gq_linear *v = &mc->blocks[l].lin[GQ_LIN_V];
        memcpy(v->w, wv[l], sizeof(float) * v->out * v->in);
    }
    gq_ppl_result r;
    memset(&r, 0, sizeof r);
    GQ_ASSERT(gq_eval_ppl_tokens(mc, ids, n, SEQ, 4, &r) == GQ_OK);
    gq_model_free(mc);
    return r.ppl;
}

enum { NHS = 7 };
static const char *HNAMES[NHS] = {"calib", "calib+damp", "calib-p0", "calib.p0", "wt2test", "wt2test.p0", "c4"};

#define NV_MAX 16
typedef struct {
    const char *name;
    float **w; /* [L] W_hat of v_proj */
    double obj[NHS];     /* summed over layers */
    double obj0[NHS][8]; /* layer 0 per kv head */
    double att;          /* attention-output error, summed over layers */
    double att_l[64];
} variant;

/* ------------------------------------------------------------------------------------------ */
/* --all: every linear compressed (GPTQ on all 7 kinds), with position 0 of each calibration window
 * up-weighted by a factor (1 + alpha) in every Hessian; perplexity on `pw` eval windows. */
typedef struct {
    int L;
    double **S_all, **S_p0; /* [L * GQ_LIN_COUNT], input-group heads only */
    int64_t n_all, n_p0;
    double *xd;
} stats_all;

static void hook_all(void *ctx, int layer, gq_linear_kind kind, const float *x, int T, int K) {
    stats_all *s = ctx;
    double *Sa = s->S_all[layer * GQ_LIN_COUNT + kind], *S0 = s->S_p0[layer * GQ_LIN_COUNT + kind];
    for (size_t i = 0; i < (size_t)T * K; i++) s->xd[i] = x[i];
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, K, T, 1.0, s->xd, K, 1.0, Sa, K);
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, K, 1, 1.0, s->xd, K, 1.0, S0, K);
    if (layer == 0 && kind == GQ_LIN_Q) s->n_all += T, s->n_p0 += 1;
}

static gq_model *compress_all(const gq_model *m, const stats_all *s, double alpha, int act_order, const char *method) {
    gq_hessians hs;
    gq_hessians_init(&hs, m);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            if ((int)gq_linear_input_group(k) != k) continue;
            gq_hessian *h = &hs.h[l * GQ_LIN_COUNT + k];
            const int K = m->blocks[l].lin[k].in;
            const double *Sa = s->S_all[l * GQ_LIN_COUNT + k], *S0 = s->S_p0[l * GQ_LIN_COUNT + k];
            h->K = K;
            h->n_tok = s->n_all;
            h->H = gq_malloc(sizeof(double) * K * K);
            h->sumsq = gq_calloc(K, sizeof(double));
            for (int a = 0; a < K; a++)
                for (int b = 0; b < K; b++) {
                    size_t i = a <= b ? (size_t)a * K + b : (size_t)b * K + a; /* upper triangle */
                    h->H[(size_t)a * K + b] = 2.0 * (Sa[i] + alpha * S0[i]) / (double)s->n_all;
                }
            for (int j = 0; j < K; j++) h->sumsq[j] = h->H[(size_t)j * K + j] * s->n_all / 2;
        }
    gq_compress_opts o;
    gq_compress_opts_default(&o);
    o.method = method;
    o.bits = BITS;
    o.group = GROUP;
    o.act_order = act_order;
    gq_compressed c;
    gq_compressed_init(&c, gq_model_clone(m), &o);
    GQ_ASSERT(gq_compress_model(&c, &hs) == GQ_OK);
    gq_model *out = gq_compressed_take_model(&c);
    gq_compressed_free(&c);
    gq_hessians_free(&hs);
    return out;
}

static int all_mode(gq_model *m, int pw) {
    const int L = m->cfg.n_layers;
    gq_calib_opts co;
    gq_calib_opts_default(&co);
    co.n_samples = NWIN;
    co.seqlen = SEQ;
    int32_t *cal, *test;
    size_t ntest;
    char note[256];
    GQ_ASSERT(gq_calib_windows(m->tok, &co, &cal) == GQ_OK);
    GQ_ASSERT(gq_ppl_dataset_ids(m, "wikitext2", SEQ, -1, &test, &ntest, note, sizeof note) == GQ_OK);
    stats_all s;
    memset(&s, 0, sizeof s);
    s.L = L;
    s.S_all = gq_calloc((size_t)L * GQ_LIN_COUNT, sizeof(double *));
    s.S_p0 = gq_calloc((size_t)L * GQ_LIN_COUNT, sizeof(double *));
    int kmax = 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const int K = m->blocks[l].lin[k].in;
            kmax = K > kmax ? K : kmax;
            if ((int)gq_linear_input_group(k) != k) continue;
            s.S_all[l * GQ_LIN_COUNT + k] = gq_calloc((size_t)K * K, sizeof(double));
            s.S_p0[l * GQ_LIN_COUNT + k] = gq_calloc((size_t)K * K, sizeof(double));
        }
    s.xd = gq_malloc(sizeof(double) * SEQ * kmax);
    gq_fwd f;
    GQ_ASSERT(gq_fwd_init(&f, m, SEQ) == GQ_OK);
    f.hook = hook_all, f.hook_ctx = &s;
    float *x = gq_malloc(sizeof(float) * SEQ * m->cfg.dim);
    for (int w = 0; w < NWIN; w++) {
        GQ_ASSERT(gq_fwd_embed(&f, cal + (size_t)w * SEQ, SEQ, x) == GQ_OK);
        for (int l = 0; l < L; l++) gq_fwd_block(&f, l, x, SEQ);
    }
    gq_fwd_free(&f);
    free(x);
    /* statistical leverage of position 0 in the q/k/v input: mean over windows of x_0^T S^-1 x_0 (S = sum
     * of x x^T over all tokens, damped 1% like GPTQ) relative to the mean over all tokens (= tr(S^-1 S)/n):
     * >> 1 means x_0 lies along directions the other tokens hardly use, where GPTQ's error goes */
    printf("q/k/v input: leverage of position 0 relative to the average token (damped 1%%)\n");
    for (int l = 0; l < L; l++) {
        const int K = m->cfg.dim;
        const double *Sa = s.S_all[l * GQ_LIN_COUNT + GQ_LIN_Q], *S0 = s.S_p0[l * GQ_LIN_COUNT + GQ_LIN_Q];
        double *Hf = gq_malloc(sizeof(double) * K * K), *Hi = gq_malloc(sizeof(double) * K * K);
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) Hf[(size_t)a * K + b] = Sa[a <= b ? (size_t)a * K + b : (size_t)b * K + a];
        GQ_ASSERT(gq_saliency_hinv(Hf, K, 0.01, "leverage", Hi, NULL, NULL) == GQ_OK);
        double l0 = 0, la = 0;
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) {
                size_t i = a <= b ? (size_t)a * K + b : (size_t)b * K + a;
                l0 += Hi[(size_t)a * K + b] * S0[i];
                la += Hi[(size_t)a * K + b] * Sa[i];
            }
        printf("  layer %2d  %.1f\n", l, (l0 / (double)s.n_p0) / (la / (double)s.n_all));
        free(Hf), free(Hi);
    }
    if (pw <= 0) return 0;
    printf("\nall linears W%d G%d, ppl on %d x %d WikiText-2 test windows\n", BITS, GROUP, pw, SEQ);
    printf("%-44s %8.3f\n", "fp", ppl_of(m, test, ntest, pw));
    fflush(stdout);
    gq_model *r = compress_all(m, &s, 0, 0, "rtn");
    printf("%-44s %8.3f\n", "rtn", ppl_of(r, test, ntest, pw));
    fflush(stdout);
    gq_model *g0 = compress_all(m, &s, 0, 0, "gptq");
    printf("%-44s %8.3f\n", "gptq (all H plain)", ppl_of(g0, test, ntest, pw));
    fflush(stdout);
    gq_model *g64 = compress_all(m, &s, 63, 0, "gptq");
    printf("%-44s %8.3f\n", "gptq (all H: position 0 x64)", ppl_of(g64, test, ntest, pw));
    fflush(stdout);
    /* plain GPTQ everywhere except v_proj, which gets the position-0 x64 Hessian */
    for (int l = 0; l < L; l++) {
        gq_linear *v = &g0->blocks[l].lin[GQ_LIN_V];
        memcpy(v->w, g64->blocks[l].lin[GQ_LIN_V].w, sizeof(float) * v->out * v->in);
    }
    printf("%-44s %8.3f\n", "gptq (plain H; v_proj: position 0 x64)", ppl_of(g0, test, ntest, pw));
    fflush(stdout);
    gq_model_free(g64);
    gq_model *ga = compress_all(m, &s, 0, 1, "gptq");
    printf("%-44s %8.3f\n", "gptq act-order (all H plain)", ppl_of(ga, test, ntest, pw));
    fflush(stdout);
    gq_model_free(ga);
    ga = compress_all(m, &s, 63, 1, "gptq");
    printf("%-44s %8.3f\n", "gptq act-order (all H: position 0 x64)", ppl_of(ga, test, ntest, pw));
    gq_model_free(ga);
    gq_model_free(r);
    gq_model_free(g0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: diag_gptq MODEL [HESS.h5]  (see tools/diag_gptq.c)\n");
        return 2;
    }
    gq_baselines_register();
    gq_model *m = NULL;
    if (gq_model_load(argv[1], NULL, &m) != GQ_OK) {
        fprintf(stderr, "%s\n", gq_errmsg());
        return 1;
    }
    if (argc >= 3 && !strcmp(argv[2], "--all")) return all_mode(m, argc >= 4 ? atoi(argv[3]) : 16);
    const int L = m->cfg.n_layers, K = m->cfg.dim, HD = m->cfg.head_dim, NKV = m->cfg.n_kv_heads;
    const int NV = NKV * HD;
    /* windows */
    gq_calib_opts co;
    gq_calib_opts_default(&co);
    co.n_samples = NWIN;
    co.seqlen = SEQ;
    int32_t *cal, *c4w, *test;
    size_t ntest;
    char note[256];
    GQ_ASSERT(gq_calib_windows(m->tok, &co, &cal) == GQ_OK);
    co.dataset = "c4";
    GQ_ASSERT(gq_calib_windows(m->tok, &co, &c4w) == GQ_OK);
    GQ_ASSERT(gq_ppl_dataset_ids(m, "wikitext2", SEQ, -1, &test, &ntest, note, sizeof note) == GQ_OK);
    GQ_ASSERT(ntest >= (size_t)NWIN * SEQ);
    double t0 = gq_now();
    stats sc, st, s4;
    stats_init(&sc, m), stats_init(&st, m), stats_init(&s4, m);
    collect(m, cal, NWIN, &sc);
    collect(m, test, NWIN, &st);
    collect(m, c4w, NWIN, &s4);
    fprintf(stderr, "statistics collected in %.1f s\n", gq_now() - t0);

    /* cross-check against the cached calibration Hessian */
    if (argc >= 3) {
        gq_hessians hs;
        gq_hessians_init(&hs, m);
        gq_ckpt *ck;
        if (gq_ckpt_open(argv[2], &ck) == GQ_OK && gq_ckpt_read_hessians(ck, &hs, m) == GQ_OK) {
            double *H = gq_malloc(sizeof(double) * K * K), md = 0, mx = 0;
            for (int l = 0; l < L; l++) {
                make_h(&sc, l, H_ALL, 0, H);
                const double *Hc = gq_hessians_get(&hs, l, GQ_LIN_V)->H;
                for (size_t i = 0; i < (size_t)K * K; i++) {
                    md = fmax(md, fabs(H[i] - Hc[i]));
                    mx = fmax(mx, fabs(Hc[i]));
                }
            }
            printf("calibration H vs %s: max |diff| %.3g (max |H| %.3g)\n", argv[2], md, mx);
            free(H);
            gq_ckpt_close(ck);
        }
        gq_hessians_free(&hs);
    }

    /* activation statistics of the q/k/v input */
    printf("\nq/k/v input: position 0 vs the rest; diag(H_calib) max/mean; p0 share of tr(H)\n");
    printf("layer  ||x0||^2/mean||xt||^2   diag max/mean   tr(S_p0)/tr(S_all) calib  wt2test  c4\n");
    for (int l = 0; l < L; l++) {
        double tr = 0, mxd = 0, trp = 0, trt = 0, trtp = 0, tr4 = 0, tr4p = 0;
        for (int j = 0; j < K; j++) {
            double d = sc.S_all[l][(size_t)j * K + j];
            tr += d, mxd = fmax(mxd, d), trp += sc.S_p0[l][(size_t)j * K + j];
            trt += st.S_all[l][(size_t)j * K + j], trtp += st.S_p0[l][(size_t)j * K + j];
            tr4 += s4.S_all[l][(size_t)j * K + j], tr4p += s4.S_p0[l][(size_t)j * K + j];
        }
        double r0 = (sc.nrm0[l] / sc.n_p0) / (sc.nrm_rest[l] / (sc.n_all - sc.n_p0));
        printf("%5d  %10.2f              %8.1f        %.4f                   %.4f   %.4f\n", l, r0, mxd / (tr / K), trp / tr,
               trtp / trt, tr4p / tr4);
    }

    /* variants */
    variant V[NV_MAX];
    int nv = 0;
    const char *names[] = {"rtn", "gptq", "gptq-ref64", "gptq damp0.1", "gptq damp1", "gptq static-groups",
                           "gptq act-order", "gptq H w/o pos0", "gptq H w/o pos0-3", "gptq H=wt2test",
                           "gptq H=c4", "gptq H pos0 x64", "gptq H pos0 x512"};
    nv = (int)(sizeof names / sizeof names[0]);
    for (int v = 0; v < nv; v++) {
        memset(&V[v], 0, sizeof V[v]);
        V[v].name = names[v];
        V[v].w = gq_calloc(L, sizeof(float *));
        for (int l = 0; l < L; l++) V[v].w[l] = gq_malloc(sizeof(float) * NV * K);
    }
    double *H = gq_malloc(sizeof(double) * K * K), *Hs[NHS];
    for (int i = 0; i < NHS; i++) Hs[i] = gq_malloc(sizeof(double) * K * K);
    double maxdiff_ref = 0, maxdiff_ref_l0 = 0;
    t0 = gq_now();
    for (int l = 0; l < L; l++) {
        const gq_linear *src = &m->blocks[l].lin[GQ_LIN_V];
        GQ_ASSERT(src->in == K && src->out == NV);
        make_h(&sc, l, H_ALL, 0, H);
        memcpy(V[0].w[l], src->w, sizeof(float) * NV * K);
        const gq_qspec spec = {.bits = BITS, .mode = GQ_QMODE_ASYM, .fp16_scale = 0};
        GQ_ASSERT(gq_quant_rtn(V[0].w[l], NV, K, GROUP, &spec, NULL, NULL, NULL) == GQ_OK);
        run_lib(gq_bl_gptq, src, H, K, 0.01, 0, V[1].w[l]);
        ref_gptq(src->w, NV, K, H, 0.01, 0, V[2].w[l]);
        for (int i = 0; i < NV * K; i++) {
            double d = fabs(V[1].w[l][i] - V[2].w[l][i]);
            maxdiff_ref = fmax(maxdiff_ref, d);
            if (l == 0) maxdiff_ref_l0 = fmax(maxdiff_ref_l0, d);
        }
        run_lib(gq_bl_gptq, src, H, K, 0.1, 0, V[3].w[l]);
        run_lib(gq_bl_gptq, src, H, K, 1.0, 0, V[4].w[l]);
        ref_gptq(src->w, NV, K, H, 0.01, 1, V[5].w[l]);
        run_lib(gq_bl_gptq, src, H, K, 0.01, 1, V[6].w[l]);
        make_h(&sc, l, H_EXCL0, 0, H);
        run_lib(gq_bl_gptq, src, H, K, 0.01, 0, V[7].w[l]);
        make_h(&sc, l, H_EXCLF, 0, H);
        run_lib(gq_bl_gptq, src, H, K, 0.01, 0, V[8].w[l]);
        make_h(&st, l, H_ALL, 0, H);
        run_lib(gq_bl_gptq, src, H, K, 0.01, 0, V[9].w[l]);
        make_h(&s4, l, H_ALL, 0, H);
        run_lib(gq_bl_gptq, src, H, K, 0.01, 0, V[10].w[l]);
        make_h(&sc, l, H_UP0, 63, H);
        run_lib(gq_bl_gptq, src, H, K, 0.01, 0, V[11].w[l]);
        make_h(&sc, l, H_UP0, 511, H);
        run_lib(gq_bl_gptq, src, H, K, 0.01, 0, V[12].w[l]);
        /* objectives */
        make_h(&sc, l, H_ALL, 0, Hs[0]);
        memcpy(Hs[1], Hs[0], sizeof(double) * K * K);
        {
            double mean = 0;
            for (int j = 0; j < K; j++) mean += Hs[1][(size_t)j * K + j];
            for (int j = 0; j < K; j++) Hs[1][(size_t)j * K + j] += 0.01 * mean / K;
        }
        make_h(&sc, l, H_EXCL0, 0, Hs[2]);
        make_h(&sc, l, H_P0, 0, Hs[3]);
        make_h(&st, l, H_ALL, 0, Hs[4]);
        make_h(&st, l, H_P0, 0, Hs[5]);
        make_h(&s4, l, H_ALL, 0, Hs[6]);
        for (int v = 0; v < nv; v++)
            for (int i = 0; i < NHS; i++) {
                double ph[8];
                objective(src->w, V[v].w[l], NV, K, Hs[i], HD, ph);
                for (int h = 0; h < NKV; h++) {
                    V[v].obj[i] += ph[h];
                    if (l == 0) V[v].obj0[i][h] = ph[h];
                }
            }
    }
    fprintf(stderr, "variants built in %.1f s\n", gq_now() - t0);
    printf("\nlibrary GPTQ vs float64 textbook OBS loop on the real v_proj / real H: max |dW_hat| %.3g (layer 0: %.3g)\n",
           maxdiff_ref, maxdiff_ref_l0);
    {
        /* how many weights differ by more than fp32 rounding (a different rounding decision) */
        long nd = 0, tot = 0;
        for (int l = 0; l < L; l++)
            for (int i = 0; i < NV * K; i++, tot++) nd += fabs(V[1].w[l][i] - V[2].w[l][i]) > 1e-5 * (1 + fabs(V[2].w[l][i]));
        printf("  weights differing beyond fp32 rounding: %ld of %ld\n", nd, tot);
    }

    /* attention-output error on the eval windows (first 4 test windows): full-precision block inputs,
     * only v_proj of that block changed, error at the o_proj input */
    {
        gq_model *mv = gq_model_clone(m); /* v_proj of block l swapped per variant before block l runs */
        const int AD = m->cfg.n_heads * HD;
        float *x = gq_malloc(sizeof(float) * SEQ * K), *xc = gq_malloc(sizeof(float) * SEQ * K);
        float *a_fp = gq_malloc(sizeof(float) * SEQ * AD), *a_v = gq_malloc(sizeof(float) * SEQ * AD);
        stats cap;
        memset(&cap, 0, sizeof cap);
        gq_fwd f, fv;
        GQ_ASSERT(gq_fwd_init(&f, m, SEQ) == GQ_OK);
        GQ_ASSERT(gq_fwd_init(&fv, mv, SEQ) == GQ_OK);
        fv.hook = hook, fv.hook_ctx = &cap;
        f.hook = hook, f.hook_ctx = &cap;
        for (int w = 0; w < 4; w++) {
            GQ_ASSERT(gq_fwd_embed(&f, test + (size_t)w * SEQ, SEQ, x) == GQ_OK);
            for (int l = 0; l < L; l++) {
                cap.capture_layer = l;
                cap.att = a_fp;
                memcpy(xc, x, sizeof(float) * SEQ * K);
                gq_fwd_block(&f, l, xc, SEQ);
                cap.att = a_v;
                for (int v = 0; v < nv; v++) {
                    memcpy(mv->blocks[l].lin[GQ_LIN_V].w, V[v].w[l], sizeof(float) * NV * K);
                    memcpy(xc, x, sizeof(float) * SEQ * K);
                    gq_fwd_block(&fv, l, xc, SEQ);
                    double e = 0;
                    for (int i = 0; i < SEQ * AD; i++) e += ((double)a_v[i] - a_fp[i]) * ((double)a_v[i] - a_fp[i]);
                    V[v].att += e;
                    V[v].att_l[l] += e;
                }
                cap.att = NULL;
                cap.capture_layer = 1 << 30; /* advance without accumulating statistics */
                gq_fwd_block(&f, l, x, SEQ);
            }
        }
        gq_fwd_free(&f);
        gq_fwd_free(&fv);
        gq_model_free(mv);
        free(x), free(xc), free(a_fp), free(a_v);
    }

    printf("\nlayer objective tr(dW H dW^T) of v_proj, summed over %d layers (H = 2/n sum x x^T; calib+damp adds 0.01 mean diag;\n"
           "calib-p0 = without position 0; .p0 = position 0 only), attention-output error (eval windows), ppl (v only)\n",
           L);
    printf("%-20s", "variant");
    for (int i = 0; i < NHS; i++) printf(" %11s", HNAMES[i]);
    printf(" %11s %8s\n", "att-err", "ppl");
    for (int v = 0; v < nv; v++) {
        printf("%-20s", V[v].name);
        for (int i = 0; i < NHS; i++) printf(" %11.4g", V[v].obj[i]);
        double p = v == 2 ? NAN : ppl_v(m, V[v].w, test, ntest);
        printf(" %11.4g %8.3f\n", V[v].att, p);
        fflush(stdout);
    }
    printf("\nlayer 0 per kv head: tr(dW_h H dW_h^T)\n%-20s", "variant");
    for (int i = 0; i < NHS; i++) printf(" %-26s", HNAMES[i]);
    printf("\n");
    for (int v = 0; v < nv; v++) {
        printf("%-20s", V[v].name);
        for (int i = 0; i < NHS; i++) {
            char b[64];
            snprintf(b, sizeof b, "%.3g/%.3g/%.3g", V[v].obj0[i][0], V[v].obj0[i][1], V[v].obj0[i][2]);
            printf(" %-26s", b);
        }
        printf("\n");
    }
    printf("\nattention-output error per layer (rtn / gptq / gptq H w/o pos0):\n");
    for (int l = 0; l < L; l++) printf("  layer %2d  %.4g / %.4g / %.4g\n", l, V[0].att_l[l], V[1].att_l[l], V[7].att_l[l]);
    return 0;
}
