/* stage_calibrate.c — the calibrate stage: draw calibration windows and accumulate every block's
 * Hessian proxy H = 2 X^T X / n on the full-precision model (core/calib.h).
 * Checkpoint: /windows int32 [n, seqlen], /hessian/<i>/<name> (ckpt.h).
 * With --device cuda the statistics come from the GPU forward (gq_gpu_calibrate), else from the CPU.
 * Statistics are taken on the uncompressed model (non-sequential): the staged pipeline computes
 * saliency for all blocks from one set of Hessians. Baselines that want GPTQ's sequential protocol
 * recompute their statistics from these windows (stage_quantize.c).
 * Must not: compress anything.
 */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

#include "../core/cuda/gpu.h"

static gq_status calibrate_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    gq_model *m;
    GQ_TRY(gq_stage_need_model(ctx, &m));
    const gq_runcfg *c = ctx->cfg;
    if (c->calib.seqlen > m->cfg.max_seq_len)
        return gq_errf(GQ_ERR_ARG, "%s: calibration.seqlen %d exceeds the model's context %d", c->source, c->calib.seqlen,
                       m->cfg.max_seq_len);
    gq_calib_opts o;
    gq_calib_opts_default(&o);
    o.dataset = gq_dataset_name(c->calib.dataset);
    o.n_samples = c->calib.nsamples;
    o.seqlen = c->calib.seqlen;
    o.seed = c->calib.seed;
    GQ_TRY(gq_calib_windows(m->tok, &o, &ctx->windows));
    ctx->n_windows = o.n_samples;
    ctx->seqlen = o.seqlen;
    gq_hessians_init(&ctx->hs, m);
    ctx->have_hs = 1;
    /* --device cuda: the same statistics from the GPU forward (core/cuda/gpu.h gq_gpu_calibrate; fp32
     * activations up to GEMM summation order, float64 sums, tests/test_gpu_forward.c). Not hashed: the
     * device does not change what the stage computes. */
    const int gpu = ctx->device && !strcmp(ctx->device, "cuda");
    const double t0 = gq_now();
    if (gpu) {
        GQ_TRY(gq_gpu_calibrate(m, ctx->windows, ctx->n_windows, ctx->seqlen, ctx->progress, &ctx->hs));
        gq_stage_note(ctx, "calibrate ran on the GPU");
    } else {
        gq_calib_run_opts ro = {.sequential = 0, .keep_all = 1, .progress = ctx->progress};
        GQ_TRY(gq_calibrate(m, ctx->windows, ctx->n_windows, ctx->seqlen, &ro, &ctx->hs, NULL, NULL));
    }
    gq_stage_metric(ctx, "calib_gpu", NULL, gpu);
    gq_stage_metric(ctx, "calib_seconds", NULL, gq_now() - t0);
    int64_t dims[2] = {ctx->n_windows, ctx->seqlen};
    GQ_TRY(gq_ckpt_write(ck, "/windows", GQ_CKPT_I32, ctx->windows, 2, dims));
    GQ_TRY(gq_ckpt_attr_set_str(ck, "/windows", "dataset", o.dataset));
    GQ_TRY(gq_ckpt_write_hessians(ck, &ctx->hs));
    gq_stage_metric(ctx, "calib_tokens", o.dataset, (double)ctx->n_windows * ctx->seqlen);
    return GQ_OK;
}

/* /windows of a calibrate checkpoint into ctx (checked against the config and the vocabulary; ctx is
 * left untouched on failure). */
static gq_status read_windows(gq_stage_ctx *ctx, gq_ckpt *ck, const gq_model *m) {
    int rank;
    int64_t dims[4];
    GQ_TRY(gq_ckpt_shape(ck, "/windows", &rank, dims));
    const gq_runcfg *c = ctx->cfg;
    if (rank != 2 || dims[0] != c->calib.nsamples || dims[1] != c->calib.seqlen)
        return gq_errf(GQ_ERR_FORMAT, "%s: /windows is not [%d, %d]", gq_ckpt_path(ck), c->calib.nsamples, c->calib.seqlen);
    size_t n = (size_t)dims[0] * (size_t)dims[1];
    int32_t *w = gq_malloc(n * sizeof *w);
    gq_status st = gq_ckpt_read_into(ck, "/windows", GQ_CKPT_I32, w, n);
    for (size_t i = 0; st == GQ_OK && i < n; i++)
        if (w[i] < 0 || w[i] >= m->cfg.vocab_size)
            st = gq_errf(GQ_ERR_FORMAT, "%s: /windows holds token id %d outside the vocabulary", gq_ckpt_path(ck), w[i]);
    if (st != GQ_OK) {
        free(w);
        return st;
    }
    free(ctx->windows);
    ctx->windows = w;
    ctx->n_windows = (int)dims[0];
    ctx->seqlen = (int)dims[1];
    return GQ_OK;
}

static gq_status calibrate_load(gq_stage_ctx *ctx, gq_ckpt *ck) {
    gq_model *m;
    GQ_TRY(gq_stage_need_model(ctx, &m));
    GQ_TRY(read_windows(ctx, ck, m));
    gq_hessians_init(&ctx->hs, m);
    ctx->have_hs = 1;
    return gq_ckpt_read_hessians(ck, &ctx->hs, m);
}

gq_status gq_stage_need_windows(gq_stage_ctx *ctx) {
    if (ctx->windows) return GQ_OK;
    if (!gq_runcfg_has_stage(ctx->cfg, GQ_STAGE_CALIBRATE))
        return gq_errf(GQ_ERR_ARG, "%s: this step needs the calibration windows: list calibrate in stages",
                       ctx->cfg->source);
    const char *path = ctx->ckpt_path[GQ_STAGE_CALIBRATE];
    if (!path[0]) return gq_errf(GQ_ERR_INTERNAL, "stage calibrate has no checkpoint yet (runner order)");
    gq_model *m;
    GQ_TRY(gq_stage_need_model(ctx, &m));
    gq_ckpt *ck;
    GQ_TRY(gq_ckpt_open(path, &ck));
    gq_status st = read_windows(ctx, ck, m);
    gq_ckpt_close(ck);
    if (st != GQ_OK) return gq_err_prefix(st, "loading the calibration windows from %s: ", path);
    return GQ_OK;
}

static void calibrate_hash(const gq_runcfg *c, gq_sha256 *h) {
    gq_stage_hash_str(h, "calibration.dataset", gq_dataset_name(c->calib.dataset));
    gq_stage_hash_num(h, "calibration.nsamples", c->calib.nsamples);
    gq_stage_hash_num(h, "calibration.seqlen", c->calib.seqlen);
    gq_stage_hash_u64(h, "calibration.seed", c->calib.seed);
}

const gq_stage gq_stage_calibrate = {GQ_STAGE_CALIBRATE, calibrate_run, calibrate_load, calibrate_hash};
