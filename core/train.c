/* train.c — AdamW, fake quantization with a straight-through estimator, and the BQPO / E2E-OQP
 * drivers on the CPU (contracts and conventions in train.h).
 * With gq_train_opts.device = GQ_TRAIN_CUDA (CUDA builds) the same drivers run their forward/backward,
 * fake quantization and AdamW on the GPU engine (core/cuda/train_gpu.h; section "GPU drivers" at the
 * end): same window order, same steps, same loss curve, same re-quantization on the host.
 * Must not: read or write files, print to stdout, write a GQS values array in E2E-OQP.
 */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#ifdef GQSA_CUDA
#include "cuda/train_gpu.h"
#endif

/* ------------------------------------------------------------------------------------------ */
/* AdamW                                                                                        */

void gq_adamw_opts_default(gq_adamw_opts *o) {
    o->lr = 1e-5;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->weight_decay = 0;
}

void gq_adamw_state_init(gq_adamw_state *s, size_t n) {
    s->n = n;
    s->m = gq_calloc(n ? n : 1, sizeof(float));
    s->v = gq_calloc(n ? n : 1, sizeof(float));
    s->t = 0;
}

void gq_adamw_state_free(gq_adamw_state *s) {
    if (!s) return;
    free(s->m);
    free(s->v);
    memset(s, 0, sizeof *s);
}

gq_status gq_adamw_step(const gq_adamw_opts *o, gq_adamw_state *s, float *p, const float *g, const char *name) {
    long t = s->t + 1;
    for (size_t i = 0; i < s->n; i++)
        if (!isfinite(g[i]))
            return gq_errf(GQ_ERR_NUMERIC, "%s: gradient element %zu is %g at optimizer step %ld (training diverged; "
                                           "HINT: lower the learning rate)", name, i, (double)g[i], t);
    double bc1 = 1.0 - pow(o->beta1, (double)t), bc2 = 1.0 - pow(o->beta2, (double)t);
    double decay = 1.0 - o->lr * o->weight_decay;
    /* first pass checks the result so a failing step leaves p and the moments untouched */
    for (size_t i = 0; i < s->n; i++) {
        double m = o->beta1 * s->m[i] + (1 - o->beta1) * g[i];
        double v = o->beta2 * s->v[i] + (1 - o->beta2) * (double)g[i] * g[i];
        double np = p[i] * decay - o->lr * (m / bc1) / (sqrt(v / bc2) + o->eps);
        if (!isfinite((float)np))
            return gq_errf(GQ_ERR_NUMERIC, "%s: parameter element %zu becomes %g at optimizer step %ld", name, i, np, t);
    }
    for (size_t i = 0; i < s->n; i++) {
        double m = o->beta1 * s->m[i] + (1 - o->beta1) * g[i];
        double v = o->beta2 * s->v[i] + (1 - o->beta2) * (double)g[i] * g[i];
        s->m[i] = (float)m;
        s->v[i] = (float)v;
        p[i] = (float)(p[i] * decay - o->lr * (m / bc1) / (sqrt(v / bc2) + o->eps));
    }
    s->t = t;
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Fake quantization                                                                            */

void gq_fq_forward(const float *w, const uint8_t *keep, int N, int K, int G, const gq_qspec *spec, float *w_hat,
                   uint8_t *ste) {
    GQ_ASSERT(G >= 1 && K % G == 0);
    int C = K / G, maxq = (1 << spec->bits) - 1;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < C; c++) {
            size_t off = (size_t)r * K + (size_t)c * G;
            if (!keep[(size_t)r * C + c]) {
                memset(w_hat + off, 0, sizeof(float) * (size_t)G);
                if (ste) memset(ste + off, 0, (size_t)G);
                continue;
            }
            float s, z;
            gq_quant_group(w + off, G, spec, NULL, &s, &z, w_hat + off);
            if (ste)
                for (int j = 0; j < G; j++) {
                    float u = roundf(w[off + j] / s) + z;
                    ste[off + j] = (uint8_t)(u >= 0 && u <= (float)maxq);
                }
        }
}

/* ------------------------------------------------------------------------------------------ */
/* Shared helpers                                                                               */

void gq_train_opts_default(gq_train_opts *o, double lr, int epochs) {
    memset(o, 0, sizeof *o);
    gq_adamw_opts_default(&o->adam);
    o->adam.lr = lr;
    o->epochs = epochs;
    o->batch = 1;
    o->layer_count = -1;
}

void gq_train_result_free(gq_train_result *r) {
    if (!r) return;
    free(r->mse_before);
    free(r->mse_after);
    memset(r, 0, sizeof *r);
}

static gq_status check_opts(const gq_train_opts *o, const gq_model *m, int n, int seqlen, const char *phase) {
    if (!(o->adam.lr > 0) || !isfinite(o->adam.lr))
        return gq_errf(GQ_ERR_ARG, "%s: learning rate %g must be positive", phase, o->adam.lr);
    if (!(o->adam.beta1 >= 0 && o->adam.beta1 < 1 && o->adam.beta2 >= 0 && o->adam.beta2 < 1 && o->adam.eps > 0))
        return gq_errf(GQ_ERR_ARG, "%s: AdamW betas must lie in [0, 1) and eps be positive", phase);
    if (o->epochs < 0) return gq_errf(GQ_ERR_ARG, "%s: epochs %d is negative", phase, o->epochs);
    if (o->batch < 1) return gq_errf(GQ_ERR_ARG, "%s: batch %d must be at least 1", phase, o->batch);
    if (n < 1) return gq_errf(GQ_ERR_ARG, "%s: no training windows", phase);
    if (o->device != GQ_TRAIN_CPU && o->device != GQ_TRAIN_CUDA)
        return gq_errf(GQ_ERR_ARG, "%s: unknown training device %d (0 cpu, 1 cuda)", phase, o->device);
#ifndef GQSA_CUDA
    if (o->device == GQ_TRAIN_CUDA)
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: training on the GPU needs a CUDA build (nvcc was not found when this "
                                           "gqsa was built; HINT: train with --device cpu)", phase);
#endif
    if (seqlen < 2 || seqlen > m->cfg.max_seq_len)
        return gq_errf(GQ_ERR_ARG, "%s: seqlen %d outside 2..%d (the model's context)", phase, seqlen,
                       m->cfg.max_seq_len);
    return GQ_OK;
}

/* Window order for one epoch: a Fisher-Yates shuffle seeded by (seed, epoch). */
static void epoch_order(int *idx, int n, uint64_t seed, int epoch) {
    gq_rng rng;
    gq_rng_seed(&rng, seed * 1000003u + (uint64_t)epoch);
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)gq_rng_below(&rng, (uint64_t)i + 1);
        int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
}

static int has_gqs(const gq_gqs *g) { return g->row_index != NULL; }

/* keep [N, K/G] from a GQS structure. */
static uint8_t *gqs_keep(const gq_gqs *g) {
    int C = g->K / g->G;
    uint8_t *keep = gq_calloc((size_t)g->N * C, 1);
    for (int r = 0; r < g->N; r++)
        for (int32_t i = g->row_index[r]; i < g->row_index[r + 1]; i++) keep[(size_t)r * C + g->group_col[i]] = 1;
    return keep;
}

static void blockw_from_model(gq_bw_blockw_f32 *w, const gq_model *m, int l) {
    memset(w, 0, sizeof *w);
    w->attn_norm = m->blocks[l].attn_norm;
    w->ffn_norm = m->blocks[l].ffn_norm;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        w->w[k] = m->blocks[l].lin[k].w;
        w->bias[k] = m->blocks[l].lin[k].bias;
    }
}

static double mse(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) { double d = (double)a[i] - b[i]; s += d * d; }
    return s / (double)n;
}

static gq_status check_same_shape(const gq_model *a, const gq_model *b) {
    const gq_config *x = &a->cfg, *y = &b->cfg;
    if (x->dim != y->dim || x->hidden_dim != y->hidden_dim || x->n_layers != y->n_layers || x->n_heads != y->n_heads ||
        x->n_kv_heads != y->n_kv_heads || x->head_dim != y->head_dim || x->vocab_size != y->vocab_size)
        return gq_errf(GQ_ERR_ARG, "bqpo: the compressed model (%s) and the full-precision model (%s) differ in shape",
                       a->cfg.name, b->cfg.name);
    return GQ_OK;
}

#ifdef GQSA_CUDA
static gq_status bqpo_gpu(gq_compressed *c, const gq_model *fp, const int32_t *windows, int n, int T,
                          const gq_train_opts *o, gq_train_result *r, int lf, int lc);
static gq_status e2e_gpu(gq_compressed *c, const int32_t *windows, int n, int T, const gq_train_opts *o,
                         gq_train_result *r);
#endif

/* ------------------------------------------------------------------------------------------ */
/* BQPO                                                                                         */

/* State of one block's training. */
typedef struct {
    int trained[GQ_LIN_COUNT];    /* linear is in GQS form */
    float *latent[GQ_LIN_COUNT];  /* [N, K] fp32 master weights (pruned groups stay 0) */
    float *what[GQ_LIN_COUNT];    /* [N, K] fake-quantized weights seen by the forward */
    uint8_t *keep[GQ_LIN_COUNT];  /* [N, K/G] */
    uint8_t *ste[GQ_LIN_COUNT];   /* [N, K] */
    float *dw[GQ_LIN_COUNT];      /* [N, K] gradient w.r.t. w_hat, then w.r.t. the latent */
    gq_adamw_state opt[GQ_LIN_COUNT];
} bqpo_block;

static void bqpo_block_free(bqpo_block *b) {
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        free(b->latent[k]); free(b->what[k]); free(b->keep[k]); free(b->ste[k]); free(b->dw[k]);
        gq_adamw_state_free(&b->opt[k]);
    }
    memset(b, 0, sizeof *b);
}

/* Re-quantize the latent weights of the trained linears into new GQS arrays (same masks) and the
 * compressed model's dense weights. */
static gq_status bqpo_requantize(gq_compressed *c, int l, bqpo_block *b, const gq_qspec *spec) {
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        if (!b->trained[k]) continue;
        gq_gqs *g = &c->gqs[(size_t)l * GQ_LIN_COUNT + k];
        int N = g->N, K = g->K, G = g->G, C = K / G;
        uint8_t *q = gq_calloc((size_t)N * K, 1);
        float *sc = gq_calloc((size_t)N * C, sizeof(float)), *zr = gq_calloc((size_t)N * C, sizeof(float));
        for (int r = 0; r < N; r++)
            for (int cc = 0; cc < C; cc++) {
                size_t gi = (size_t)r * C + cc, off = (size_t)r * K + (size_t)cc * G;
                if (b->keep[k][gi]) gq_quant_group(b->latent[k] + off, G, spec, q + off, &sc[gi], &zr[gi], NULL);
            }
        gq_gqs ng;
        gq_status st = gq_gqs_build_from_codes(&ng, q, sc, zr, b->keep[k], N, K, G, g->bits);
        free(q); free(sc); free(zr);
        if (st != GQ_OK) return gq_err_prefix(st, "bqpo: layers.%d.%s: ", l, gq_linear_name((gq_linear_kind)k));
        gq_gqs_free(g);
        *g = ng;
        gq_gqs_expand(g, c->m->blocks[l].lin[k].w);
    }
    return GQ_OK;
}

static gq_status bqpo_train_block(gq_compressed *c, const gq_model *fp, int l, const float *Xc, const float *Y,
                                  int n, int T, const gq_train_opts *o, gq_bw_acts_f32 *acts, float *out,
                                  float *dy, long *steps_total, double *tok_total) {
    const gq_config *cfg = &c->m->cfg;
    const gq_qspec spec = {.bits = c->opts.bits, .mode = c->opts.qmode, .fp16_scale = c->opts.fp16_scales};
    bqpo_block b;
    memset(&b, 0, sizeof b);
    gq_bw_blockw_f32 w;
    blockw_from_model(&w, c->m, l);
    gq_bw_blockg_f32 g;
    memset(&g, 0, sizeof g);
    int any = 0;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        const gq_gqs *q = &c->gqs[(size_t)l * GQ_LIN_COUNT + k];
        if (!has_gqs(q)) continue;
        const gq_linear *lf = &fp->blocks[l].lin[k];
        if (lf->out != q->N || lf->in != q->K) {
            bqpo_block_free(&b);
            return gq_errf(GQ_ERR_ARG, "bqpo: layers.%d.%s: GQS shape [%d, %d] does not match the model's [%d, %d]", l,
                           gq_linear_name((gq_linear_kind)k), q->N, q->K, lf->out, lf->in);
        }
        size_t nk = (size_t)q->N * q->K;
        b.trained[k] = 1;
        any = 1;
        b.keep[k] = gqs_keep(q);
        b.latent[k] = gq_malloc(nk * sizeof(float));
        b.what[k] = gq_malloc(nk * sizeof(float));
        b.ste[k] = gq_malloc(nk);
        b.dw[k] = gq_malloc(nk * sizeof(float));
        memcpy(b.latent[k], lf->w, nk * sizeof(float));
        /* pruned groups are zero in the latent too: they never receive a gradient */
        int C = q->K / q->G;
        for (size_t gi = 0; gi < (size_t)q->N * C; gi++)
            if (!b.keep[k][gi]) memset(b.latent[k] + (gi / C) * q->K + (gi % C) * q->G, 0, sizeof(float) * q->G);
        gq_adamw_state_init(&b.opt[k], nk);
        w.w[k] = b.what[k];
        g.dw[k] = b.dw[k];
    }
    if (!any) { bqpo_block_free(&b); return GQ_OK; }
    size_t nd = (size_t)T * cfg->dim;
    int *order = gq_malloc(sizeof(int) * (size_t)n);
    gq_status st = GQ_OK;
    long step = 0;
    for (int ep = 0; ep < o->epochs && st == GQ_OK; ep++) {
        epoch_order(order, n, o->seed, ep);
        for (int i0 = 0; i0 < n && st == GQ_OK; i0 += o->batch) {
            int nb = n - i0 < o->batch ? n - i0 : o->batch;
            for (int k = 0; k < GQ_LIN_COUNT; k++)
                if (b.trained[k]) {
                    const gq_gqs *q = &c->gqs[(size_t)l * GQ_LIN_COUNT + k];
                    gq_fq_forward(b.latent[k], b.keep[k], q->N, q->K, q->G, &spec, b.what[k], b.ste[k]);
                    memset(b.dw[k], 0, sizeof(float) * (size_t)q->N * q->K);
                }
            double lsum = 0;
            for (int bi = 0; bi < nb; bi++) {
                int wi = order[i0 + bi];
                const float *x = Xc + (size_t)wi * nd, *y = Y + (size_t)wi * nd;
                gq_bw_block_fwd_f32(acts, &w, x, out, T);
                lsum += mse(out, y, nd);
                /* d mean_batch(mean_TD (out - y)^2) / d out */
                float sc = (float)(2.0 / ((double)nd * nb));
                for (size_t j = 0; j < nd; j++) dy[j] = sc * (out[j] - y[j]);
                gq_bw_block_bwd_f32(acts, &w, dy, dy, &g, T);
            }
            step++;
            if (!isfinite(lsum)) {
                st = gq_errf(GQ_ERR_NUMERIC, "bqpo: layers.%d: block MSE is %g at step %ld", l, lsum, step);
                break;
            }
            for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++) {
                if (!b.trained[k]) continue;
                size_t nk = b.opt[k].n;
                for (size_t j = 0; j < nk; j++) if (!b.ste[k][j]) b.dw[k][j] = 0;
                char name[96];
                snprintf(name, sizeof name, "bqpo: layers.%d.%s weights", l, gq_linear_name((gq_linear_kind)k));
                st = gq_adamw_step(&o->adam, &b.opt[k], b.latent[k], b.dw[k], name);
            }
            *tok_total += (double)nb * T;
            if (o->on_step) {
                gq_train_step_info si = {"bqpo", l, ep, step, lsum / nb};
                o->on_step(o->on_step_ctx, &si);
            }
        }
    }
    free(order);
    *steps_total += step;
    if (st == GQ_OK) st = bqpo_requantize(c, l, &b, &spec);
    bqpo_block_free(&b);
    return st;
}

/* End of block l in both BQPO drivers: record the block's MSE after training (s = summed over the n
 * windows), check it, and make this block's FP outputs the next block's FP inputs (Xf <-> Y). */
static gq_status bqpo_block_end(gq_status st, int l, int train, double s, int n, gq_train_result *r, float **Xf,
                                float **Y, const gq_train_opts *o, gq_progress *pr, int lf) {
    if (train && r) r->mse_after[l] = s / n;
    if (!isfinite(s)) st = gq_errf(GQ_ERR_NUMERIC, "bqpo: layers.%d: output is not finite after training", l);
    float *tswap = *Xf;
    *Xf = *Y;
    *Y = tswap;
    if (o->progress && train) gq_progress_update(pr, (double)(l - lf + 1));
    return st;
}
static void bqpo_finish(const gq_train_opts *o, gq_progress *pr, int lc, gq_train_result *r, long steps, double t0,
                        double tok) {
    if (o->progress) gq_progress_done(pr, (double)lc);
    if (r) {
        r->steps = steps;
        r->seconds = gq_now() - t0;
        r->tok_per_s = r->seconds > 0 ? tok / r->seconds : 0;
    }
}

gq_status gq_bqpo_run(gq_compressed *c, const gq_model *fp, const int32_t *windows, int n, int seqlen,
                      const gq_train_opts *o, gq_train_result *r) {
    GQ_ASSERT(c && c->m && fp && windows && o);
    GQ_TRY(check_same_shape(c->m, fp));
    GQ_TRY(check_opts(o, c->m, n, seqlen, "bqpo"));
    if (c->opts.bits == 0)
        return gq_errf(GQ_ERR_ARG, "bqpo: the compressed model is not quantized (bits 0): nothing to fake-quantize");
    const gq_config *cfg = &c->m->cfg;
    int L = cfg->n_layers, T = seqlen;
    int lf = o->layer_first, lc = o->layer_count < 0 ? L - o->layer_first : o->layer_count;
    if (lf < 0 || lf > L || lc < 0 || lf + lc > L)
        return gq_errf(GQ_ERR_ARG, "bqpo: blocks %d..%d outside the model's 0..%d", lf, lf + lc - 1, L - 1);
#ifdef GQSA_CUDA
    if (o->device == GQ_TRAIN_CUDA) return bqpo_gpu(c, fp, windows, n, seqlen, o, r, lf, lc);
#endif
    size_t nd = (size_t)T * cfg->dim, all;
    if (gq_mul_overflow(nd * 3, (size_t)n, &all)) return gq_errf(GQ_ERR_ARG, "bqpo: hidden states overflow");
    float *Xc = gq_try_malloc(all * sizeof(float));
    if (!Xc) return gq_errf(GQ_ERR_NOMEM, "bqpo: cannot hold 3 x %d windows of hidden states (%zu MB)", n,
                            (all * sizeof(float)) >> 20);
    float *Xf = Xc + nd * n, *Y = Xf + nd * n;
    gq_fwd ffp, fc;
    gq_bw_acts_f32 acts;
    float *out = gq_malloc(2 * nd * sizeof(float)), *dy = out + nd;
    gq_status st = gq_fwd_init(&ffp, fp, T);
    if (st == GQ_OK && (st = gq_fwd_init(&fc, c->m, T)) != GQ_OK) gq_fwd_free(&ffp);
    if (st != GQ_OK) { free(Xc); free(out); return st; }
    if ((st = gq_bw_acts_init_f32(&acts, cfg, T)) != GQ_OK) {
        gq_fwd_free(&ffp); gq_fwd_free(&fc); free(Xc); free(out);
        return st;
    }
    if (r) {
        memset(r, 0, sizeof *r);
        r->n_layers = L;
        r->mse_before = gq_malloc(sizeof(double) * L);
        r->mse_after = gq_malloc(sizeof(double) * L);
        for (int l = 0; l < L; l++) r->mse_before[l] = r->mse_after[l] = NAN;
    }
    for (int i = 0; i < n && st == GQ_OK; i++) {
        st = gq_fwd_embed(&ffp, windows + (size_t)i * T, T, Xf + (size_t)i * nd);
        if (st == GQ_OK) st = gq_fwd_embed(&fc, windows + (size_t)i * T, T, Xc + (size_t)i * nd);
    }
    double t0 = gq_now(), tok = 0;
    long steps = 0;
    gq_progress pr;
    if (o->progress) gq_progress_init(&pr, "bqpo", (double)lc, "blocks");
    for (int l = 0; l < L && st == GQ_OK; l++) {
        /* targets: the FP block on the FP hidden states */
        memcpy(Y, Xf, nd * n * sizeof(float));
        for (int i = 0; i < n; i++) gq_fwd_block(&ffp, l, Y + (size_t)i * nd, T);
        int train = l >= lf && l < lf + lc;
        if (train) {
            if (r) {
                double s = 0;
                for (int i = 0; i < n; i++) {
                    memcpy(out, Xc + (size_t)i * nd, nd * sizeof(float));
                    gq_fwd_block(&fc, l, out, T);
                    s += mse(out, Y + (size_t)i * nd, nd);
                }
                r->mse_before[l] = s / n;
            }
            st = bqpo_train_block(c, fp, l, Xc, Y, n, T, o, &acts, out, dy, &steps, &tok);
            if (st != GQ_OK) break;
        }
        /* inputs of the next block: the (now re-quantized) compressed block on the compressed states */
        double s = 0;
        for (int i = 0; i < n; i++) {
            gq_fwd_block(&fc, l, Xc + (size_t)i * nd, T);
            if (train && r) s += mse(Xc + (size_t)i * nd, Y + (size_t)i * nd, nd);
        }
        st = bqpo_block_end(st, l, train, s, n, r, &Xf, &Y, o, &pr, lf);
    }
    bqpo_finish(o, &pr, lc, r, steps, t0, tok);
    gq_bw_acts_free_f32(&acts);
    gq_fwd_free(&ffp);
    gq_fwd_free(&fc);
    free(Xc); /* the slab's start (Xf and Y swap, Xc never moves) */
    free(out);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* E2E-OQP                                                                                      */

typedef struct {
    gq_compressed *c;
    float **ds, **dz;  /* [L*7] per-group gradients (NULL where not in GQS form) */
} e2e_ctx;

static gq_status e2e_collect(void *vctx, int layer, const gq_bw_blockg_f32 *g) {
    e2e_ctx *e = vctx;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        size_t idx = (size_t)layer * GQ_LIN_COUNT + k;
        const gq_gqs *q = &e->c->gqs[idx];
        if (!has_gqs(q)) continue;
        gq_bw_oqp_grad_f32(q, q->scales, q->zeros, g->dw[k], e->ds[idx], e->dz[idx]);
    }
    return GQ_OK;
}

static gq_status model_loss_f32(gq_bw_model_ws_f32 *ws, const gq_model *m, gq_bw_blockw_f32 *bw, const int32_t *tok,
                                int T, int backward, gq_bw_block_grad_fn_f32 cb, void *ctx, double *loss) {
    gq_bw_modelw_f32 mw = {&m->cfg, m->tok_emb, m->final_norm, m->lm_head, bw};
    return gq_bw_model_loss_f32(ws, &mw, tok, T, backward, cb, ctx, NULL, NULL, NULL, loss);
}

gq_status gq_train_eval_loss(const gq_model *m, const int32_t *windows, int n, int seqlen, double *loss) {
    if (n < 1 || seqlen < 2 || seqlen > m->cfg.max_seq_len)
        return gq_errf(GQ_ERR_ARG, "eval loss: %d windows of %d tokens (need >= 1 of 2..%d)", n, seqlen,
                       m->cfg.max_seq_len);
    int L = m->cfg.n_layers;
    gq_bw_blockw_f32 *bw = gq_calloc((size_t)L, sizeof *bw);
    for (int l = 0; l < L; l++) blockw_from_model(&bw[l], m, l);
    gq_bw_model_ws_f32 ws;
    gq_status st = gq_bw_model_ws_init_f32(&ws, &m->cfg, seqlen, 0, 0);
    double s = 0;
    for (int i = 0; i < n && st == GQ_OK; i++) {
        double l = 0;
        st = model_loss_f32(&ws, m, bw, windows + (size_t)i * seqlen, seqlen, 0, NULL, NULL, &l);
        s += l;
    }
    if (st == GQ_OK) *loss = s / n;
    gq_bw_model_ws_free_f32(&ws);
    free(bw);
    return st;
}

gq_status gq_e2e_oqp_run(gq_compressed *c, const int32_t *windows, int n, int seqlen, const gq_train_opts *o,
                         gq_train_result *r) {
    GQ_ASSERT(c && c->m && windows && o);
    GQ_TRY(check_opts(o, c->m, n, seqlen, "e2e_oqp"));
    gq_model *m = c->m;
    int L = m->cfg.n_layers, T = seqlen;
    size_t NL = (size_t)L * GQ_LIN_COUNT;
    int any = 0;
    for (size_t i = 0; i < NL; i++) any |= has_gqs(&c->gqs[i]);
    if (!any) return gq_errf(GQ_ERR_ARG, "e2e_oqp: no linear of the model is in GQS form (quantize it first)");
    for (size_t i = 0; i < NL; i++) {
        const gq_gqs *q = &c->gqs[i];
        const gq_linear *lin = &m->blocks[i / GQ_LIN_COUNT].lin[i % GQ_LIN_COUNT];
        if (has_gqs(q) && (q->N != lin->out || q->K != lin->in))
            return gq_errf(GQ_ERR_ARG, "e2e_oqp: layers.%zu.%s: GQS shape [%d, %d] does not match the model's [%d, %d]",
                           i / GQ_LIN_COUNT, gq_linear_name((gq_linear_kind)(i % GQ_LIN_COUNT)), q->N, q->K, lin->out,
                           lin->in);
    }
#ifdef GQSA_CUDA
    if (o->device == GQ_TRAIN_CUDA) return e2e_gpu(c, windows, n, T, o, r);
#endif
    gq_bw_model_ws_f32 ws;
    GQ_TRY(gq_bw_model_ws_init_f32(&ws, &m->cfg, T, 1, 0));
    gq_bw_blockw_f32 *bw = gq_calloc((size_t)L, sizeof *bw);
    for (int l = 0; l < L; l++) blockw_from_model(&bw[l], m, l);
    e2e_ctx e = {c, gq_calloc(NL, sizeof(float *)), gq_calloc(NL, sizeof(float *))};
    gq_adamw_state *os = gq_calloc(NL, sizeof *os), *oz = gq_calloc(NL, sizeof *oz);
    for (size_t i = 0; i < NL; i++) {
        if (!has_gqs(&c->gqs[i])) continue;
        size_t nz = c->gqs[i].nnz;
        e.ds[i] = gq_calloc(nz ? nz : 1, sizeof(float));
        e.dz[i] = gq_calloc(nz ? nz : 1, sizeof(float));
        gq_adamw_state_init(&os[i], nz);
        gq_adamw_state_init(&oz[i], nz);
        /* the dense weights must be exactly (q - z) s from the start */
        gq_bw_oqp_expand_f32(&c->gqs[i], c->gqs[i].scales, c->gqs[i].zeros, m->blocks[i / GQ_LIN_COUNT].lin[i % GQ_LIN_COUNT].w);
    }
    gq_status st = GQ_OK;
    if (r) {
        memset(r, 0, sizeof *r);
        r->n_layers = L;
        st = gq_train_eval_loss(m, windows, n, T, &r->loss_before);
    }
    int *order = gq_malloc(sizeof(int) * (size_t)n);
    double t0 = gq_now(), tok = 0;
    long step = 0;
    gq_progress pr;
    long total_steps = (long)o->epochs * ((n + o->batch - 1) / o->batch);
    if (o->progress) gq_progress_init(&pr, "e2e_oqp", (double)total_steps, "steps");
    for (int ep = 0; ep < o->epochs && st == GQ_OK; ep++) {
        epoch_order(order, n, o->seed, ep);
        for (int i0 = 0; i0 < n && st == GQ_OK; i0 += o->batch) {
            int nb = n - i0 < o->batch ? n - i0 : o->batch;
            for (size_t i = 0; i < NL; i++)
                if (e.ds[i]) {
                    memset(e.ds[i], 0, sizeof(float) * c->gqs[i].nnz);
                    memset(e.dz[i], 0, sizeof(float) * c->gqs[i].nnz);
                }
            double lsum = 0;
            for (int bi = 0; bi < nb && st == GQ_OK; bi++) {
                double l = 0;
                st = model_loss_f32(&ws, m, bw, windows + (size_t)order[i0 + bi] * T, T, 1, e2e_collect, &e, &l);
                if (st != GQ_OK)
                    gq_err_prefix(st, "e2e_oqp: epoch %d, optimizer step %ld, window %d: ", ep, step + 1,
                                  order[i0 + bi]);
                lsum += l;
            }
            if (st != GQ_OK) break;
            step++;
            for (size_t i = 0; i < NL && st == GQ_OK; i++) {
                if (!e.ds[i]) continue;
                gq_gqs *q = &c->gqs[i];
                float inv = 1.0f / (float)nb;
                for (size_t j = 0; j < q->nnz; j++) { e.ds[i][j] *= inv; e.dz[i][j] *= inv; }
                char name[96];
                snprintf(name, sizeof name, "e2e_oqp: layers.%zu.%s scales", i / GQ_LIN_COUNT,
                         gq_linear_name((gq_linear_kind)(i % GQ_LIN_COUNT)));
                st = gq_adamw_step(&o->adam, &os[i], q->scales, e.ds[i], name);
                if (st != GQ_OK) break;
                memcpy(name + strlen(name) - 6, "zeros", 6);
                st = gq_adamw_step(&o->adam, &oz[i], q->zeros, e.dz[i], name);
                if (st != GQ_OK) break;
                gq_bw_oqp_expand_f32(q, q->scales, q->zeros, m->blocks[i / GQ_LIN_COUNT].lin[i % GQ_LIN_COUNT].w);
            }
            tok += (double)nb * T;
            if (o->on_step) {
                gq_train_step_info si = {"e2e_oqp", -1, ep, step, lsum / nb};
                o->on_step(o->on_step_ctx, &si);
            }
            if (o->progress) gq_progress_update(&pr, (double)step);
        }
    }
    if (o->progress) gq_progress_done(&pr, (double)step);
    double secs = gq_now() - t0;
    if (r && st == GQ_OK) {
        st = gq_train_eval_loss(m, windows, n, T, &r->loss_after);
        r->steps = step;
        r->seconds = secs;
        r->tok_per_s = secs > 0 ? tok / secs : 0;
    }
    for (size_t i = 0; i < NL; i++) {
        free(e.ds[i]); free(e.dz[i]);
        gq_adamw_state_free(&os[i]);
        gq_adamw_state_free(&oz[i]);
    }
    free(e.ds); free(e.dz); free(os); free(oz); free(order); free(bw);
    gq_bw_model_ws_free_f32(&ws);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* GPU drivers (gq_train_opts.device = GQ_TRAIN_CUDA)                                          */

#ifdef GQSA_CUDA

/* Device copies of one block's dense fp32 weights. */
typedef struct {
    float *norm[2];
    float *w[GQ_LIN_COUNT], *bias[GQ_LIN_COUNT];
} gpu_block;

static void gpu_block_free(gpu_block *b) {
    gq_gt_free(b->norm[0]);
    gq_gt_free(b->norm[1]);
    for (int k = 0; k < GQ_LIN_COUNT; k++) { gq_gt_free(b->w[k]); gq_gt_free(b->bias[k]); }
    memset(b, 0, sizeof *b);
}

/* Upload block l of m into b (freed first) and point w at it. */
static gq_status gpu_block_upload(gq_gt *e, const gq_model *m, int l, gpu_block *b, gq_bw_blockw_f32 *w) {
    gpu_block_free(b);
    memset(w, 0, sizeof *w);
    const gq_block *bl = &m->blocks[l];
    int D = m->cfg.dim;
    GQ_TRY(gq_gt_upload_new(e, &b->norm[0], bl->attn_norm, (size_t)D, "attn_norm"));
    GQ_TRY(gq_gt_upload_new(e, &b->norm[1], bl->ffn_norm, (size_t)D, "ffn_norm"));
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        const gq_linear *li = &bl->lin[k];
        GQ_TRY(gq_gt_upload_new(e, &b->w[k], li->w, (size_t)li->out * li->in, gq_linear_name((gq_linear_kind)k)));
        if (li->bias) GQ_TRY(gq_gt_upload_new(e, &b->bias[k], li->bias, (size_t)li->out, "bias"));
    }
    w->attn_norm = b->norm[0];
    w->ffn_norm = b->norm[1];
    for (int k = 0; k < GQ_LIN_COUNT; k++) { w->w[k] = b->w[k]; w->bias[k] = b->bias[k]; }
    return GQ_OK;
}

/* Device buffers of one window: block input, output / upstream gradient, target. */
typedef struct { float *x, *out, *y; } gpu_win;

/* out_host [nd] = block(w)(x_host [nd]) on the device. */
static gq_status gpu_block_apply(gq_gt *e, gq_gt_acts *a, const gq_bw_blockw_f32 *w, gpu_win *b, const float *x_host,
                                 float *out_host, int T, size_t nd) {
    GQ_TRY(gq_gt_upload(e, b->x, x_host, nd * sizeof(float)));
    GQ_TRY(gq_gt_block_fwd(e, a, w, b->x, b->out, T));
    return gq_gt_download(e, out_host, b->out, nd * sizeof(float));
}

static gq_status bqpo_train_block_gpu(gq_gt *e, gq_compressed *c, const gq_model *fp, int l, const float *Xc,
                                      const float *Y, int n, int T, const gq_train_opts *o, gq_gt_acts *acts,
                                      const gq_bw_blockw_f32 *wc, gpu_win *bw, long *steps_total, double *tok_total) {
    const gq_config *cfg = &c->m->cfg;
    const gq_qspec spec = {.bits = c->opts.bits, .mode = c->opts.qmode, .fp16_scale = c->opts.fp16_scales};
    bqpo_block b; /* host side: trained, keep, latent (for bqpo_requantize) */
    memset(&b, 0, sizeof b);
    uint8_t *dkeep[GQ_LIN_COUNT] = {0}, *dste[GQ_LIN_COUNT] = {0};
    float *dlat[GQ_LIN_COUNT] = {0}, *dwhat[GQ_LIN_COUNT] = {0}, *ddw[GQ_LIN_COUNT] = {0};
    gq_gt_adamw_state opt[GQ_LIN_COUNT];
    memset(opt, 0, sizeof opt);
    gq_bw_blockw_f32 w = *wc;
    gq_bw_blockg_f32 g;
    memset(&g, 0, sizeof g);
    int *order = NULL, any = 0;
    long step = 0;
    gq_status st = GQ_OK;
    for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++) {
        const gq_gqs *q = &c->gqs[(size_t)l * GQ_LIN_COUNT + k];
        if (!has_gqs(q)) continue;
        const gq_linear *lf = &fp->blocks[l].lin[k];
        if (lf->out != q->N || lf->in != q->K) {
            st = gq_errf(GQ_ERR_ARG, "bqpo: layers.%d.%s: GQS shape [%d, %d] does not match the model's [%d, %d]", l,
                         gq_linear_name((gq_linear_kind)k), q->N, q->K, lf->out, lf->in);
            break;
        }
        size_t nk = (size_t)q->N * q->K, C = (size_t)(q->K / q->G);
        b.trained[k] = 1;
        any = 1;
        b.keep[k] = gqs_keep(q);
        b.latent[k] = gq_malloc(nk * sizeof(float));
        memcpy(b.latent[k], lf->w, nk * sizeof(float));
        for (size_t gi = 0; gi < (size_t)q->N * C; gi++)
            if (!b.keep[k][gi]) memset(b.latent[k] + (gi / C) * q->K + (gi % C) * q->G, 0, sizeof(float) * q->G);
        if (st == GQ_OK) st = gq_gt_malloc((void **)&dkeep[k], (size_t)q->N * C, "BQPO masks");
        if (st == GQ_OK) st = gq_gt_upload(e, dkeep[k], b.keep[k], (size_t)q->N * C);
        if (st == GQ_OK) st = gq_gt_upload_new(e, &dlat[k], b.latent[k], nk, "BQPO latent weights");
        if (st == GQ_OK) st = gq_gt_upload_new(e, &dwhat[k], NULL, nk, "BQPO fake-quantized weights");
        if (st == GQ_OK) st = gq_gt_upload_new(e, &ddw[k], NULL, nk, "BQPO weight gradients");
        if (st == GQ_OK) st = gq_gt_malloc((void **)&dste[k], nk, "BQPO STE masks");
        if (st == GQ_OK) st = gq_gt_adamw_init(&opt[k], nk);
        w.w[k] = dwhat[k];
        g.dw[k] = ddw[k];
    }
    if (st != GQ_OK || !any) goto done;
    size_t nd = (size_t)T * cfg->dim;
    order = gq_malloc(sizeof(int) * (size_t)n);
    for (int ep = 0; ep < o->epochs && st == GQ_OK; ep++) {
        epoch_order(order, n, o->seed, ep);
        for (int i0 = 0; i0 < n && st == GQ_OK; i0 += o->batch) {
            int nb = n - i0 < o->batch ? n - i0 : o->batch;
            for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++)
                if (b.trained[k]) {
                    const gq_gqs *q = &c->gqs[(size_t)l * GQ_LIN_COUNT + k];
                    st = gq_gt_fq_forward(e, dlat[k], dkeep[k], q->N, q->K, q->G, &spec, dwhat[k], dste[k]);
                    if (st == GQ_OK) st = gq_gt_zero(e, ddw[k], sizeof(float) * (size_t)q->N * q->K);
                }
            double lsum = 0;
            float sc = (float)(2.0 / ((double)nd * nb));
            for (int bi = 0; bi < nb && st == GQ_OK; bi++) {
                int wi = order[i0 + bi];
                double sq = 0;
                st = gq_gt_upload(e, bw->x, Xc + (size_t)wi * nd, nd * sizeof(float));
                if (st == GQ_OK) st = gq_gt_upload(e, bw->y, Y + (size_t)wi * nd, nd * sizeof(float));
                if (st == GQ_OK) st = gq_gt_block_fwd(e, acts, &w, bw->x, bw->out, T);
                /* d mean_batch(mean_TD (out - y)^2) / d out, in place over out */
                if (st == GQ_OK) st = gq_gt_sq_diff(e, bw->out, bw->out, bw->y, nd, sc, &sq);
                if (st == GQ_OK) st = gq_gt_block_bwd(e, acts, &w, bw->out, bw->out, &g, T);
                lsum += sq / (double)nd;
            }
            if (st != GQ_OK) break;
            step++;
            if (!isfinite(lsum)) {
                st = gq_errf(GQ_ERR_NUMERIC, "bqpo: layers.%d: block MSE is %g at step %ld", l, lsum, step);
                break;
            }
            for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++) {
                if (!b.trained[k]) continue;
                st = gq_gt_mask_grad(e, ddw[k], dste[k], opt[k].n);
                char name[96];
                snprintf(name, sizeof name, "bqpo: layers.%d.%s weights", l, gq_linear_name((gq_linear_kind)k));
                if (st == GQ_OK) st = gq_gt_adamw_step(e, &o->adam, &opt[k], dlat[k], ddw[k], 1.0f, name);
            }
            *tok_total += (double)nb * T;
            if (o->on_step) {
                gq_train_step_info si = {"bqpo", l, ep, step, lsum / nb};
                o->on_step(o->on_step_ctx, &si);
            }
        }
    }
    for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++)
        if (b.trained[k]) st = gq_gt_download(e, b.latent[k], dlat[k], opt[k].n * sizeof(float));
    *steps_total += step;
    if (st == GQ_OK) st = bqpo_requantize(c, l, &b, &spec);
done:
    free(order);
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        gq_gt_free(dkeep[k]); gq_gt_free(dste[k]); gq_gt_free(dlat[k]); gq_gt_free(dwhat[k]); gq_gt_free(ddw[k]);
        gq_gt_adamw_free(&opt[k]);
    }
    bqpo_block_free(&b);
    return st;
}

static gq_status bqpo_gpu(gq_compressed *c, const gq_model *fp, const int32_t *windows, int n, int T,
                          const gq_train_opts *o, gq_train_result *r, int lf, int lc) {
    const gq_config *cfg = &c->m->cfg;
    int L = cfg->n_layers;
    size_t nd = (size_t)T * cfg->dim, all;
    if (gq_mul_overflow(nd * 3, (size_t)n, &all)) return gq_errf(GQ_ERR_ARG, "bqpo: hidden states overflow");
    float *Xc = gq_try_malloc(all * sizeof(float));
    if (!Xc) return gq_errf(GQ_ERR_NOMEM, "bqpo: cannot hold 3 x %d windows of hidden states (%zu MB)", n,
                            (all * sizeof(float)) >> 20);
    float *Xf = Xc + nd * n, *Y = Xf + nd * n, *out = gq_malloc(nd * sizeof(float));
    gq_gt *e = NULL;
    gq_gt_acts acts;
    memset(&acts, 0, sizeof acts);
    gpu_block gb;
    memset(&gb, 0, sizeof gb);
    gpu_win bw = {NULL, NULL, NULL};
    gq_bw_blockw_f32 w;
    gq_progress pr;
    double t0 = gq_now(), tok = 0;
    long steps = 0;
    gq_status st = GQ_OK;
    if (r) {
        memset(r, 0, sizeof *r);
        r->n_layers = L;
        r->mse_before = gq_malloc(sizeof(double) * L);
        r->mse_after = gq_malloc(sizeof(double) * L);
        for (int l = 0; l < L; l++) r->mse_before[l] = r->mse_after[l] = NAN;
    }
    /* embeddings: the same rows for both models' token tables */
    for (int i = 0; i < n && st == GQ_OK; i++)
        for (int t = 0; t < T && st == GQ_OK; t++) {
            int32_t id = windows[(size_t)i * T + t];
            if (id < 0 || id >= cfg->vocab_size)
                st = gq_errf(GQ_ERR_ARG, "token id %d at position %d is outside the vocabulary (0..%d)", id, t,
                             cfg->vocab_size - 1);
            else {
                memcpy(Xf + (size_t)i * nd + (size_t)t * cfg->dim, fp->tok_emb + (size_t)id * cfg->dim,
                       sizeof(float) * cfg->dim);
                memcpy(Xc + (size_t)i * nd + (size_t)t * cfg->dim, c->m->tok_emb + (size_t)id * cfg->dim,
                       sizeof(float) * cfg->dim);
            }
        }
    if (st == GQ_OK) st = gq_gt_create(o->mixed, &e);
    if (st == GQ_OK) st = gq_gt_acts_init(e, &acts, cfg, T);
    if (st == GQ_OK) st = gq_gt_upload_new(e, &bw.x, NULL, nd, "window input");
    if (st == GQ_OK) st = gq_gt_upload_new(e, &bw.out, NULL, nd, "window output");
    if (st == GQ_OK) st = gq_gt_upload_new(e, &bw.y, NULL, nd, "window target");
    t0 = gq_now();
    if (o->progress) gq_progress_init(&pr, "bqpo (gpu)", (double)lc, "blocks");
    for (int l = 0; l < L && st == GQ_OK; l++) {
        /* targets: the FP block on the FP hidden states */
        st = gpu_block_upload(e, fp, l, &gb, &w);
        for (int i = 0; i < n && st == GQ_OK; i++)
            st = gpu_block_apply(e, &acts, &w, &bw, Xf + (size_t)i * nd, Y + (size_t)i * nd, T, nd);
        if (st == GQ_OK) st = gpu_block_upload(e, c->m, l, &gb, &w);
        if (st != GQ_OK) break;
        int train = l >= lf && l < lf + lc;
        if (train) {
            if (r) {
                double s = 0;
                for (int i = 0; i < n && st == GQ_OK; i++) {
                    st = gpu_block_apply(e, &acts, &w, &bw, Xc + (size_t)i * nd, out, T, nd);
                    s += mse(out, Y + (size_t)i * nd, nd);
                }
                r->mse_before[l] = s / n;
            }
            if (st == GQ_OK) st = bqpo_train_block_gpu(e, c, fp, l, Xc, Y, n, T, o, &acts, &w, &bw, &steps, &tok);
            /* the re-quantized weights of block l */
            if (st == GQ_OK) st = gpu_block_upload(e, c->m, l, &gb, &w);
            if (st != GQ_OK) break;
        }
        /* inputs of the next block: the (now re-quantized) compressed block on the compressed states */
        double s = 0;
        for (int i = 0; i < n && st == GQ_OK; i++) {
            st = gpu_block_apply(e, &acts, &w, &bw, Xc + (size_t)i * nd, out, T, nd);
            memcpy(Xc + (size_t)i * nd, out, nd * sizeof(float));
            if (train && r) s += mse(Xc + (size_t)i * nd, Y + (size_t)i * nd, nd);
        }
        if (st != GQ_OK) break;
        st = bqpo_block_end(st, l, train, s, n, r, &Xf, &Y, o, &pr, lf);
    }
    bqpo_finish(o, &pr, lc, r, steps, t0, tok);
    gpu_block_free(&gb);
    gq_gt_free(bw.x); gq_gt_free(bw.out); gq_gt_free(bw.y);
    gq_gt_acts_free(&acts);
    gq_gt_destroy(e);
    free(Xc);
    free(out);
    return st;
}

/* E2E-OQP: the whole model resident; GQS linears as codes + trainable scales/zeros, expanded into
 * one block's w_hat scratch just before the engine uses the block. */
typedef struct {
    gq_gt *e;
    gq_compressed *c;
    gq_gt_gqs *gg;                 /* [NL] (nnz 0 where not in GQS form) */
    float **s, **z, **ds, **dz;    /* [NL] device, NULL where not in GQS form */
    float **dense, **bias;         /* [NL] device dense weights (non-GQS linears), biases */
    float **norm;                  /* [2L] */
    float *scratch[GQ_LIN_COUNT];  /* w_hat of the current block */
} e2e_dev;

static gq_status e2e_prep(void *ctx, int l, gq_bw_blockw_f32 *w) {
    e2e_dev *d = ctx;
    w->attn_norm = d->norm[2 * l];
    w->ffn_norm = d->norm[2 * l + 1];
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        size_t i = (size_t)l * GQ_LIN_COUNT + k;
        w->bias[k] = d->bias[i];
        if (d->s[i]) {
            GQ_TRY(gq_gt_oqp_expand(d->e, &d->gg[i], d->s[i], d->z[i], d->scratch[k]));
            w->w[k] = d->scratch[k];
        } else {
            w->w[k] = d->dense[i];
        }
    }
    return GQ_OK;
}

static gq_status e2e_collect_gpu(void *ctx, int l, const gq_bw_blockg_f32 *g) {
    e2e_dev *d = ctx;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        size_t i = (size_t)l * GQ_LIN_COUNT + k;
        if (d->s[i]) GQ_TRY(gq_gt_oqp_grad(d->e, &d->gg[i], d->s[i], d->z[i], g->dw[k], d->ds[i], d->dz[i]));
    }
    return GQ_OK;
}

static gq_status e2e_eval_gpu(gq_gt *e, gq_gt_model_ws *ws, const gq_gt_modelw *mw, const int32_t *windows, int n,
                              int T, double *loss) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        double l = 0;
        GQ_TRY(gq_gt_model_loss(e, ws, mw, windows + (size_t)i * T, T, 0, NULL, NULL, NULL, NULL, NULL, &l));
        s += l;
    }
    *loss = s / n;
    return GQ_OK;
}

static gq_status e2e_gpu(gq_compressed *c, const int32_t *windows, int n, int T, const gq_train_opts *o,
                         gq_train_result *r) {
    gq_model *m = c->m;
    const gq_config *cfg = &m->cfg;
    int L = cfg->n_layers, D = cfg->dim, V = cfg->vocab_size;
    size_t NL = (size_t)L * GQ_LIN_COUNT;
    e2e_dev d;
    memset(&d, 0, sizeof d);
    d.c = c;
    d.gg = gq_calloc(NL, sizeof *d.gg);
    d.s = gq_calloc(NL, sizeof(float *)); d.z = gq_calloc(NL, sizeof(float *));
    d.ds = gq_calloc(NL, sizeof(float *)); d.dz = gq_calloc(NL, sizeof(float *));
    d.dense = gq_calloc(NL, sizeof(float *)); d.bias = gq_calloc(NL, sizeof(float *));
    d.norm = gq_calloc((size_t)2 * L, sizeof(float *));
    gq_gt_adamw_state *os = gq_calloc(NL, sizeof *os), *oz = gq_calloc(NL, sizeof *oz);
    float *tok_emb = NULL, *lm_head = NULL, *final_norm = NULL;
    gq_gt_model_ws ws;
    memset(&ws, 0, sizeof ws);
    int *order = gq_malloc(sizeof(int) * (size_t)n);
    gq_progress pr;
    int prog = 0;
    long step = 0;
    double t0 = 0, tok = 0;
    gq_status st = gq_gt_create(o->mixed, &d.e);
    gq_gt *e = d.e;
    /* upload: embeddings / head / norms, and per linear either codes + s, z or the dense weights */
    if (st == GQ_OK) st = gq_gt_upload_new(e, &tok_emb, m->tok_emb, (size_t)V * D, "tok_emb");
    if (st == GQ_OK) {
        if (m->lm_head == m->tok_emb || cfg->tied_embeddings) lm_head = tok_emb;
        else st = gq_gt_upload_new(e, &lm_head, m->lm_head, (size_t)V * D, "lm_head");
    }
    if (st == GQ_OK) st = gq_gt_upload_new(e, &final_norm, m->final_norm, (size_t)D, "final_norm");
    for (int l = 0; l < L && st == GQ_OK; l++) {
        st = gq_gt_upload_new(e, &d.norm[2 * l], m->blocks[l].attn_norm, (size_t)D, "attn_norm");
        if (st == GQ_OK) st = gq_gt_upload_new(e, &d.norm[2 * l + 1], m->blocks[l].ffn_norm, (size_t)D, "ffn_norm");
    }
    for (size_t i = 0; i < NL && st == GQ_OK; i++) {
        const gq_linear *lin = &m->blocks[i / GQ_LIN_COUNT].lin[i % GQ_LIN_COUNT];
        const gq_gqs *q = &c->gqs[i];
        int k = (int)(i % GQ_LIN_COUNT);
        if (lin->bias) st = gq_gt_upload_new(e, &d.bias[i], lin->bias, (size_t)lin->out, "bias");
        if (st == GQ_OK && !d.scratch[k])
            st = gq_gt_upload_new(e, &d.scratch[k], NULL, (size_t)lin->out * lin->in, "w_hat scratch");
        if (st != GQ_OK) break;
        if (!has_gqs(q)) {
            st = gq_gt_upload_new(e, &d.dense[i], lin->w, (size_t)lin->out * lin->in, "frozen dense weights");
            continue;
        }
        size_t nz = q->nnz ? q->nnz : 1;
        st = gq_gt_gqs_upload(e, q, &d.gg[i]);
        if (st == GQ_OK) st = gq_gt_upload_new(e, &d.s[i], q->scales, q->nnz, "scales");
        if (st == GQ_OK && !d.s[i]) st = gq_gt_upload_new(e, &d.s[i], NULL, nz, "scales");
        if (st == GQ_OK) st = gq_gt_upload_new(e, &d.z[i], q->zeros, q->nnz, "zeros");
        if (st == GQ_OK && !d.z[i]) st = gq_gt_upload_new(e, &d.z[i], NULL, nz, "zeros");
        if (st == GQ_OK) st = gq_gt_upload_new(e, &d.ds[i], NULL, nz, "scale gradients");
        if (st == GQ_OK) st = gq_gt_upload_new(e, &d.dz[i], NULL, nz, "zero gradients");
        if (st == GQ_OK) st = gq_gt_adamw_init(&os[i], q->nnz);
        if (st == GQ_OK) st = gq_gt_adamw_init(&oz[i], q->nnz);
    }
    if (st == GQ_OK) st = gq_gt_model_ws_init(e, &ws, cfg, T, 1, 0);
    gq_gt_modelw mw = {cfg, tok_emb, final_norm, lm_head, NULL, e2e_prep, &d};
    if (st == GQ_OK && r) {
        memset(r, 0, sizeof *r);
        r->n_layers = L;
        st = e2e_eval_gpu(e, &ws, &mw, windows, n, T, &r->loss_before);
    }
    t0 = gq_now();
    long total_steps = (long)o->epochs * ((n + o->batch - 1) / o->batch);
    if (st == GQ_OK && o->progress) { gq_progress_init(&pr, "e2e_oqp (gpu)", (double)total_steps, "steps"); prog = 1; }
    for (int ep = 0; ep < o->epochs && st == GQ_OK; ep++) {
        epoch_order(order, n, o->seed, ep);
        for (int i0 = 0; i0 < n && st == GQ_OK; i0 += o->batch) {
            int nb = n - i0 < o->batch ? n - i0 : o->batch;
            for (size_t i = 0; i < NL && st == GQ_OK; i++)
                if (d.s[i]) {
                    st = gq_gt_zero(e, d.ds[i], sizeof(float) * c->gqs[i].nnz);
                    if (st == GQ_OK) st = gq_gt_zero(e, d.dz[i], sizeof(float) * c->gqs[i].nnz);
                }
            double lsum = 0;
            for (int bi = 0; bi < nb && st == GQ_OK; bi++) {
                double l = 0;
                st = gq_gt_model_loss(e, &ws, &mw, windows + (size_t)order[i0 + bi] * T, T, 1, e2e_collect_gpu, &d,
                                      NULL, NULL, NULL, &l);
                if (st != GQ_OK)
                    gq_err_prefix(st, "e2e_oqp: epoch %d, optimizer step %ld, window %d: ", ep, step + 1,
                                  order[i0 + bi]);
                lsum += l;
            }
            if (st != GQ_OK) break;
            step++;
            float inv = 1.0f / (float)nb;
            for (size_t i = 0; i < NL && st == GQ_OK; i++) {
                if (!d.s[i]) continue;
                char name[96];
                snprintf(name, sizeof name, "e2e_oqp: layers.%zu.%s scales", i / GQ_LIN_COUNT,
                         gq_linear_name((gq_linear_kind)(i % GQ_LIN_COUNT)));
                st = gq_gt_adamw_step(e, &o->adam, &os[i], d.s[i], d.ds[i], inv, name);
                if (st != GQ_OK) break;
                memcpy(name + strlen(name) - 6, "zeros", 6);
                st = gq_gt_adamw_step(e, &o->adam, &oz[i], d.z[i], d.dz[i], inv, name);
            }
            tok += (double)nb * T;
            if (o->on_step) {
                gq_train_step_info si = {"e2e_oqp", -1, ep, step, lsum / nb};
                o->on_step(o->on_step_ctx, &si);
            }
            if (prog) gq_progress_update(&pr, (double)step);
        }
    }
    if (prog) gq_progress_done(&pr, (double)step);
    double secs = gq_now() - t0;
    /* the trained parameters back into the GQS arrays and the dense weights */
    for (size_t i = 0; i < NL && st == GQ_OK; i++) {
        if (!d.s[i]) continue;
        gq_gqs *q = &c->gqs[i];
        st = gq_gt_download(e, q->scales, d.s[i], sizeof(float) * q->nnz);
        if (st == GQ_OK) st = gq_gt_download(e, q->zeros, d.z[i], sizeof(float) * q->nnz);
        if (st == GQ_OK) gq_bw_oqp_expand_f32(q, q->scales, q->zeros, m->blocks[i / GQ_LIN_COUNT].lin[i % GQ_LIN_COUNT].w);
    }
    if (r && st == GQ_OK) {
        st = e2e_eval_gpu(e, &ws, &mw, windows, n, T, &r->loss_after);
        r->steps = step;
        r->seconds = secs;
        r->tok_per_s = secs > 0 ? tok / secs : 0;
    }
    gq_gt_model_ws_free(&ws);
    for (size_t i = 0; i < NL; i++) {
        gq_gt_gqs_free(&d.gg[i]);
        gq_gt_free(d.s[i]); gq_gt_free(d.z[i]); gq_gt_free(d.ds[i]); gq_gt_free(d.dz[i]);
        gq_gt_free(d.dense[i]); gq_gt_free(d.bias[i]);
        gq_gt_adamw_free(&os[i]);
        gq_gt_adamw_free(&oz[i]);
    }
    for (int l = 0; l < 2 * L; l++) gq_gt_free(d.norm[l]);
    for (int k = 0; k < GQ_LIN_COUNT; k++) gq_gt_free(d.scratch[k]);
    if (lm_head != tok_emb) gq_gt_free(lm_head);
    gq_gt_free(tok_emb);
    gq_gt_free(final_norm);
    gq_gt_destroy(e);
    free(d.gg); free(d.s); free(d.z); free(d.ds); free(d.dz); free(d.dense); free(d.bias); free(d.norm);
    free(os); free(oz); free(order);
    return st;
}

#endif /* GQSA_CUDA */
