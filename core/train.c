/* train.c — AdamW, fake quantization with a straight-through estimator, and the BQPO / E2E-OQP
 * drivers on the CPU (contracts and conventions in train.h).
 * Must not: read or write files, print to stdout, write a GQS values array in E2E-OQP.
 */
#include "train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"

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
        if (train && r) r->mse_after[l] = s / n;
        if (!isfinite(s)) st = gq_errf(GQ_ERR_NUMERIC, "bqpo: layers.%d: output is not finite after training", l);
        float *tswap = Xf; Xf = Y; Y = tswap;
        if (o->progress && train) gq_progress_update(&pr, (double)(l - lf + 1));
    }
    if (o->progress) gq_progress_done(&pr, (double)lc);
    if (r) {
        r->steps = steps;
        r->seconds = gq_now() - t0;
        r->tok_per_s = r->seconds > 0 ? tok / r->seconds : 0;
    }
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
