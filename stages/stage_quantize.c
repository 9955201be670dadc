/* stage_quantize.c — the quantize stage. GQSA: every kept group (the prune stage's mask, or all groups
 * for quantization-only runs) gets its own asymmetric b-bit quantizer; the result is the GQS form plus
 * the dense dequantized weights (core/gqs.h), saved as a compressed model (ckpt.h). Baselines with
 * bits (rtn, gptq, sparsegpt W4 2:4, ...): one driver call.
 * Must not: choose which groups to keep.
 */
#include "stage_compress.h"

#include <stdlib.h>
#include <string.h>

static gq_status quantize_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    if (ctx->cfg->method.name != GQ_METHOD_GQSA) return gq_stage_run_baseline(ctx, ck);
    gq_model *fp;
    GQ_TRY(gq_stage_need_model(ctx, &fp));
    const int pruned = gq_runcfg_has_stage(ctx->cfg, GQ_STAGE_PRUNE);
    if (pruned) GQ_TRY(gq_stage_need(ctx, GQ_STAGE_PRUNE));
    gq_compress_opts o;
    gq_stage_compress_opts(ctx->cfg, &o);
    const int L = fp->cfg.n_layers, G = o.group;
    ctx->cm = gq_calloc(1, sizeof *ctx->cm);
    gq_compressed_init(ctx->cm, gq_model_clone(fp), &o);
    for (int l = 0; l < L; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            size_t i = (size_t)l * GQ_LIN_COUNT + k;
            gq_linear *lin = &ctx->cm->m->blocks[l].lin[k];
            if (lin->in % G)
                return gq_errf(GQ_ERR_ARG, "%s: method.group %d does not divide K=%d of layers.%d.%s", ctx->cfg->source, G,
                               lin->in, l, gq_linear_name((gq_linear_kind)k));
            const size_t C = (size_t)(lin->in / G);
            uint8_t *all = NULL;
            const uint8_t *keep = pruned ? ctx->mask[i] : (all = memset(gq_malloc((size_t)lin->out * C), 1, (size_t)lin->out * C));
            gq_status st = gq_gqs_build(&ctx->cm->gqs[i], lin->w, keep, lin->out, lin->in, G, o.bits);
            free(all);
            GQ_TRY(st);
            gq_gqs_expand(&ctx->cm->gqs[i], lin->w);
            ctx->cm->sparsity[i] = pruned ? ctx->lin_sparsity[i] : 0;
            ctx->cm->done[i] = 1;
        }
    GQ_TRY(gq_ckpt_write_compressed(ck, ctx->cm));
    gq_stage_compressed_metrics(ctx);
    return GQ_OK;
}

static void quantize_hash(const gq_runcfg *c, gq_sha256 *h) { gq_stage_hash_method(c, h); }

const gq_stage gq_stage_quantize = {GQ_STAGE_QUANTIZE, quantize_run, gq_stage_load_compressed, quantize_hash};
