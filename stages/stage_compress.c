/* stage_compress.c — helpers shared by the prune and quantize stages: running a registered baseline
 * through the compression driver, writing/reading a compressed model checkpoint, memory metrics.
 * Baselines run as their reference implementations do: GPTQ-style sequential calibration over the
 * calibrate stage's windows (block i sees blocks < i already compressed), one driver call that
 * prunes and/or quantizes.
 * Must not: implement a compression method (core/ and stages/baselines/ do).
 */
#include "stage_compress.h"

#include "baselines/baselines.h"

#include <stdlib.h>
#include <string.h>

void gq_stage_compressed_metrics(gq_stage_ctx *ctx) {
    const gq_compressed *cm = ctx->cm;
    gq_stage_metric(ctx, "sparsity", NULL, gq_compressed_total_sparsity(cm));
    double bits = 0, bits_nometa = 0, weights = 0;
    int have = 0;
    for (int i = 0; i < cm->m->cfg.n_layers * GQ_LIN_COUNT; i++) {
        const gq_linear *lin = &cm->m->blocks[i / GQ_LIN_COUNT].lin[i % GQ_LIN_COUNT];
        weights += (double)lin->out * lin->in;
        if (!cm->gqs[i].row_index) continue;
        gq_gqs_mem mem;
        gq_gqs_memory(&cm->gqs[i], 0, &mem);
        bits += (double)mem.bytes_total * 8;
        bits_nometa += (double)mem.bytes_values * 8;
        have = 1;
    }
    if (have && weights > 0) {
        gq_stage_metric(ctx, "bits_per_weight", NULL, bits / weights);
        gq_stage_metric(ctx, "bits_per_weight_nometa", NULL, bits_nometa / weights);
    }
}

gq_status gq_stage_run_baseline(gq_stage_ctx *ctx, gq_ckpt *ck) {
    gq_model *fp;
    GQ_TRY(gq_stage_need_model(ctx, &fp));
    gq_compress_opts o;
    gq_stage_compress_opts(ctx->cfg, &o);
    gq_baselines_register(); /* idempotent; links stages/baselines into the binary */
    const gq_compress_method *meth = gq_compress_find(o.method);
    if (!meth)
        return gq_err_prefix(GQ_ERR_UNSUPPORTED, "%s: method.name %s is not a registered compression method: ",
                             ctx->cfg->source, o.method);
    GQ_TRY(gq_compress_opts_validate(&o));
    const int32_t *windows = NULL;
    if (meth->needs_hessian) GQ_TRY(gq_stage_need(ctx, GQ_STAGE_CALIBRATE));
    windows = meth->needs_hessian ? ctx->windows : NULL;
    ctx->cm = gq_calloc(1, sizeof *ctx->cm);
    gq_compressed_init(ctx->cm, gq_model_clone(fp), &o);
    if (meth->needs_hessian && !ctx->cfg->calib.sequential) {
        /* the calibrate stage's full-precision Hessians, shared by every run of a sweep */
        if (!ctx->have_hs) return gq_errf(GQ_ERR_INTERNAL, "%s: calibrate stage left no Hessians", ctx->cfg->source);
        GQ_TRY(gq_compress_model(ctx->cm, &ctx->hs));
        gq_stage_note(ctx, "full-precision Hessians from the calibrate stage (calibration.sequential: false)");
    } else {
        GQ_TRY(gq_compress_run(ctx->cm, windows, ctx->n_windows, ctx->seqlen, 1, ctx->progress));
        if (meth->needs_hessian) gq_stage_note(ctx, "sequential calibration over the calibrate stage's windows");
    }
    GQ_TRY(gq_ckpt_write_compressed(ck, ctx->cm));
    gq_stage_compressed_metrics(ctx);
    return GQ_OK;
}

gq_status gq_stage_load_compressed(gq_stage_ctx *ctx, gq_ckpt *ck) {
    gq_model *fp;
    GQ_TRY(gq_stage_need_model(ctx, &fp));
    gq_model *m;
    gq_gqs *gqs;
    GQ_TRY(gq_ckpt_read_model(ck, &m, &gqs));
    if (m->cfg.n_layers != fp->cfg.n_layers || m->cfg.dim != fp->cfg.dim || m->cfg.vocab_size != fp->cfg.vocab_size) {
        size_t n = (size_t)m->cfg.n_layers * GQ_LIN_COUNT;
        for (size_t i = 0; i < n; i++) gq_gqs_free(&gqs[i]);
        free(gqs);
        gq_model_free(m);
        return gq_errf(GQ_ERR_FORMAT, "%s: the compressed model's shape differs from %s", gq_ckpt_path(ck), ctx->cfg->model);
    }
    gq_compress_opts o;
    gq_stage_compress_opts(ctx->cfg, &o);
    gq_stage_drop_compressed(ctx); /* whichever stage's compressed model was in memory, this one replaces it */
    ctx->cm = gq_calloc(1, sizeof *ctx->cm);
    gq_compressed_init(ctx->cm, m, &o);
    free(ctx->cm->gqs);
    ctx->cm->gqs = gqs;
    for (int i = 0; i < m->cfg.n_layers * GQ_LIN_COUNT; i++) {
        ctx->cm->done[i] = 1;
        /* achieved sparsity per linear (gq_ckpt_write_compressed), so a model written again after
         * training (bqpo, e2e_oqp) keeps it */
        char grp[96];
        snprintf(grp, sizeof grp, "/layers/%d/%s", i / GQ_LIN_COUNT, gq_linear_name((gq_linear_kind)(i % GQ_LIN_COUNT)));
        double sp = 0;
        if (gq_ckpt_has(ck, grp) && gq_ckpt_attr_get_f64(ck, grp, "sparsity", &sp) == GQ_OK && sp >= 0 && sp <= 1)
            ctx->cm->sparsity[i] = sp;
        gq_err_clear();
    }
    return GQ_OK;
}
