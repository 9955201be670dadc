/* stage_saliency.c — GQSA's group saliency (core/saliency.h): per linear, s = w^2 / [H^-1]_jj averaged
 * over each group of G inputs. Checkpoint: /saliency/<i>/<name> float64 [N, K/G].
 * Must not: prune or modify weights.
 */
#include "stage.h"

#include <stdlib.h>

#include "../core/saliency.h"

static gq_status check_group(const gq_stage_ctx *ctx, const gq_linear *lin, int l, int k) {
    int G = ctx->cfg->method.group;
    if (lin->in % G)
        return gq_errf(GQ_ERR_ARG, "%s: method.group %d does not divide K=%d of layers.%d.%s", ctx->cfg->source, G, lin->in, l,
                       gq_linear_name((gq_linear_kind)k));
    return GQ_OK;
}

static gq_status saliency_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    GQ_TRY(gq_stage_need(ctx, GQ_STAGE_CALIBRATE));
    gq_model *m = ctx->model;
    const int L = m->cfg.n_layers, G = ctx->cfg->method.group;
    ctx->saliency = gq_calloc((size_t)L * GQ_LIN_COUNT, sizeof *ctx->saliency);
    int retries = 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_linear *lin = &m->blocks[l].lin[k];
            GQ_TRY(check_group(ctx, lin, l, k));
            const gq_hessian *h = gq_hessians_get(&ctx->hs, l, (gq_linear_kind)k);
            if (!h || !h->H) return gq_errf(GQ_ERR_INTERNAL, "no Hessian for layers.%d.%s", l, gq_linear_name((gq_linear_kind)k));
            char what[64];
            snprintf(what, sizeof what, "layers.%d.%s", l, gq_linear_name((gq_linear_kind)k));
            double *diag = gq_malloc((size_t)lin->in * sizeof *diag);
            int r = 0;
            gq_status st = gq_saliency_hinv_diag(h->H, lin->in, ctx->cfg->method.damp, what, diag, &r);
            if (st != GQ_OK) {
                free(diag);
                return st;
            }
            retries += r;
            double *s = gq_malloc((size_t)lin->out * lin->in * sizeof *s);
            gq_saliency_weights(lin->w, lin->out, lin->in, diag, s);
            double *score = gq_malloc((size_t)lin->out * (lin->in / G) * sizeof *score);
            gq_saliency_groups(s, lin->out, lin->in, G, score);
            free(s);
            free(diag);
            ctx->saliency[(size_t)l * GQ_LIN_COUNT + k] = score;
            char name[96];
            snprintf(name, sizeof name, "/saliency/%d/%s", l, gq_linear_name((gq_linear_kind)k));
            int64_t dims[2] = {lin->out, lin->in / G};
            GQ_TRY(gq_ckpt_write(ck, name, GQ_CKPT_F64, score, 2, dims));
        }
    if (retries) gq_stage_note(ctx, "%d damping increase(s) needed for non-PD Hessians", retries);
    gq_stage_metric(ctx, "damp_retries", NULL, retries);
    return GQ_OK;
}

static gq_status saliency_load(gq_stage_ctx *ctx, gq_ckpt *ck) {
    gq_model *m;
    GQ_TRY(gq_stage_need_model(ctx, &m));
    const int L = m->cfg.n_layers, G = ctx->cfg->method.group;
    ctx->saliency = gq_calloc((size_t)L * GQ_LIN_COUNT, sizeof *ctx->saliency);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_linear *lin = &m->blocks[l].lin[k];
            GQ_TRY(check_group(ctx, lin, l, k));
            char name[96];
            snprintf(name, sizeof name, "/saliency/%d/%s", l, gq_linear_name((gq_linear_kind)k));
            size_t n = (size_t)lin->out * (lin->in / G);
            double *score = gq_malloc(n * sizeof *score);
            ctx->saliency[(size_t)l * GQ_LIN_COUNT + k] = score;
            GQ_TRY(gq_ckpt_read_into(ck, name, GQ_CKPT_F64, score, n));
        }
    return GQ_OK;
}

static void saliency_hash(const gq_runcfg *c, gq_sha256 *h) {
    /* only what saliency reads: sweeps over sparsity or bits reuse it */
    gq_stage_hash_num(h, "method.group", c->method.group);
    gq_stage_hash_num(h, "method.damp", c->method.damp);
}

const gq_stage gq_stage_saliency = {GQ_STAGE_SALIENCY, saliency_run, saliency_load, saliency_hash};
