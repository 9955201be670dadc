/* stage_prune.c — the prune stage. GQSA: remove the lowest-saliency groups (core/prune.h) and keep
 * the masks (/mask/<i>/<name> uint8 [N, K/G], attribute "sparsity" per linear); the weights are
 * untouched here (quantize or evaluate applies the mask). Baselines (wanda, sparsegpt, magnitude
 * without bits): one driver call, the pruned model is the checkpoint.
 * Must not: quantize.
 */
#include "stage_compress.h"

#include <stdlib.h>

static gq_status prune_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    if (ctx->cfg->method.name != GQ_METHOD_GQSA) return gq_stage_run_baseline(ctx, ck);
    GQ_TRY(gq_stage_need(ctx, GQ_STAGE_SALIENCY));
    gq_model *m = ctx->model;
    const int L = m->cfg.n_layers, G = ctx->cfg->method.group;
    ctx->mask = gq_calloc((size_t)L * GQ_LIN_COUNT, sizeof *ctx->mask);
    ctx->lin_sparsity = gq_calloc((size_t)L * GQ_LIN_COUNT, sizeof *ctx->lin_sparsity);
    double removed = 0, total = 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            size_t i = (size_t)l * GQ_LIN_COUNT + k;
            const gq_linear *lin = &m->blocks[l].lin[k];
            const int C = lin->in / G;
            ctx->mask[i] = gq_malloc((size_t)lin->out * C);
            double s = gq_prune_groups(ctx->saliency[i], lin->out, C, ctx->cfg->method.sparsity, ctx->cfg->method.scope,
                                       ctx->mask[i]);
            ctx->lin_sparsity[i] = s;
            removed += s * lin->out * lin->in;
            total += (double)lin->out * lin->in;
            char name[96];
            snprintf(name, sizeof name, "/mask/%d/%s", l, gq_linear_name((gq_linear_kind)k));
            int64_t dims[2] = {lin->out, C};
            GQ_TRY(gq_ckpt_write(ck, name, GQ_CKPT_U8, ctx->mask[i], 2, dims));
            GQ_TRY(gq_ckpt_attr_set_f64(ck, name, "sparsity", s));
        }
    gq_stage_metric(ctx, "sparsity", NULL, total > 0 ? removed / total : 0);
    return GQ_OK;
}

static gq_status prune_load(gq_stage_ctx *ctx, gq_ckpt *ck) {
    if (ctx->cfg->method.name != GQ_METHOD_GQSA) return gq_stage_load_compressed(ctx, ck);
    gq_model *m;
    GQ_TRY(gq_stage_need_model(ctx, &m));
    const int L = m->cfg.n_layers, G = ctx->cfg->method.group;
    ctx->mask = gq_calloc((size_t)L * GQ_LIN_COUNT, sizeof *ctx->mask);
    ctx->lin_sparsity = gq_calloc((size_t)L * GQ_LIN_COUNT, sizeof *ctx->lin_sparsity);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            size_t i = (size_t)l * GQ_LIN_COUNT + k;
            const gq_linear *lin = &m->blocks[l].lin[k];
            if (lin->in % G)
                return gq_errf(GQ_ERR_ARG, "method.group %d does not divide K=%d of layers.%d.%s", G, lin->in, l,
                               gq_linear_name((gq_linear_kind)k));
            size_t n = (size_t)lin->out * (lin->in / G);
            char name[96];
            snprintf(name, sizeof name, "/mask/%d/%s", l, gq_linear_name((gq_linear_kind)k));
            ctx->mask[i] = gq_malloc(n);
            GQ_TRY(gq_ckpt_read_into(ck, name, GQ_CKPT_U8, ctx->mask[i], n));
            for (size_t j = 0; j < n; j++)
                if (ctx->mask[i][j] > 1) return gq_errf(GQ_ERR_FORMAT, "%s: %s holds a value other than 0/1", gq_ckpt_path(ck), name);
            GQ_TRY(gq_ckpt_attr_get_f64(ck, name, "sparsity", &ctx->lin_sparsity[i]));
        }
    return GQ_OK;
}

static void prune_hash(const gq_runcfg *c, gq_sha256 *h) { gq_stage_hash_method(c, h); }

const gq_stage gq_stage_prune = {GQ_STAGE_PRUNE, prune_run, prune_load, prune_hash};
