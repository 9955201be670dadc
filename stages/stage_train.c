/* stage_train.c — the bqpo and e2e_oqp stages: the CPU training engine (core/train.h) on the compressed
 * model of the stage before, trained on the calibrate stage's windows.
 *   bqpo     block-wise: teacher = the full-precision model, student = quantize's GQS model; trains the
 *            latent weights of the kept groups (masks fixed, fake-quantized with an STE), then
 *            re-quantizes. AdamW with training.bqpo.lr for training.bqpo.epochs, window order from seed.
 *   e2e_oqp  end-to-end: freezes every code and mask, trains the per-group scales and zeros by the
 *            next-token cross-entropy; starts from bqpo's model when bqpo is listed, else quantize's.
 * Both train ctx->cm in place and write it as a compressed model checkpoint in the quantize stage's
 * format (ckpt.h: dense dequantized weights + GQS arrays with float32 scales/zeros), which is what
 * load restores and what evaluate and bench read. Loss curve: one point per optimizer step (bqpo: the
 * batch's block-output MSE, steps numbered through the blocks in order; e2e_oqp: nats/token), kept in
 * the checkpoint and recorded by the runner in the store's loss_curves. Metrics: loss before/after,
 * steps, seconds, tokens/s.
 * Device: both stages train on the GPU (core/cuda/train_gpu.h) when the run was started with
 * `--device cuda` (gq_runner_opts.device, ctx->device; evaluate uses the same), with bf16 matmuls when
 * training.mixed is true. Where training ran is not hashed (fp32 GPU training computes the CPU's function up to rounding);
 * training.mixed is, when set. Metrics add train_gpu (0/1) and train_mixed (0/1); train_seconds is the
 * GPU wall time of the phase when it ran there.
 * The stage hashes name only the training settings: calibration, method and the model reach them
 * through the chained predecessor checkpoints (calibrate is required by the config, so its windows
 * are upstream of every training stage).
 * Must not: change a mask, write a GQS values array in e2e_oqp, choose the windows.
 */
#include "stage_compress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/train.h"

/* on_step hook: the stage's loss curve, steps numbered 1.. over the whole stage. */
typedef struct {
    gq_stage_ctx *ctx;
    int64_t step;
} curve_hook;

static void curve_on_step(void *p, const gq_train_step_info *s) {
    curve_hook *h = p;
    gq_stage_loss(h->ctx, ++h->step, s->loss);
}


/* Train settings common to both stages. */
static void train_opts(gq_stage_ctx *ctx, double lr, int epochs, curve_hook *hook, gq_train_opts *o) {
    gq_train_opts_default(o, lr, epochs);
    o->device = ctx->device && !strcmp(ctx->device, "cuda") ? GQ_TRAIN_CUDA : GQ_TRAIN_CPU;
    o->mixed = o->device == GQ_TRAIN_CUDA && ctx->cfg->train_mixed;
    o->seed = ctx->cfg->seed;
    o->progress = ctx->progress;
    hook->ctx = ctx;
    hook->step = 0;
    o->on_step = curve_on_step;
    o->on_step_ctx = hook;
}

/* How many linears of ctx->cm are in GQS form (what training can touch). */
static int n_gqs(const gq_compressed *cm) {
    int n = 0;
    for (int i = 0; i < cm->n_layers * GQ_LIN_COUNT; i++) n += cm->gqs[i].row_index != NULL;
    return n;
}

/* The model to train: `from`'s compressed model in ctx->cm, the calibration windows, checks. */
static gq_status train_inputs(gq_stage_ctx *ctx, gq_stage_id from, const char *what) {
    GQ_TRY(gq_stage_need(ctx, from));
    GQ_TRY(gq_stage_need_windows(ctx));
    if (!ctx->cm)
        return gq_errf(GQ_ERR_INTERNAL, "%s: stage %s left no compressed model", what, gq_stage_name(from));
    if (!n_gqs(ctx->cm))
        return gq_errf(GQ_ERR_ARG, "%s: %s: method %s left no linear in GQS form (group-quantized): nothing to train",
                       ctx->cfg->source, what, gq_method_name(ctx->cfg->method.name));
    /* from here ctx->cm is changed in place: it no longer holds `from`'s output */
    ctx->loaded &= ~gq_stage_cm_stages(ctx->cfg);
    return GQ_OK;
}

static void train_metrics(gq_stage_ctx *ctx, const gq_train_result *r, const gq_train_opts *o) {
    gq_stage_metric(ctx, "train_gpu", NULL, o->device == GQ_TRAIN_CUDA);
    gq_stage_metric(ctx, "train_mixed", NULL, o->mixed);
    if (o->device == GQ_TRAIN_CUDA)
        gq_stage_note(ctx, "trained on the GPU (%s matmuls) in %.1f s", o->mixed ? "bf16" : "fp32", r->seconds);
    gq_stage_metric(ctx, "train_steps", NULL, (double)r->steps);
    gq_stage_metric(ctx, "train_seconds", NULL, r->seconds);
    gq_stage_metric(ctx, "train_tokens_per_s", NULL, r->tok_per_s);
    gq_stage_metric(ctx, "train_windows", NULL, ctx->n_windows);
}

/* ---------------------------------------------------------------- bqpo */

static gq_status bqpo_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    gq_model *fp;
    GQ_TRY(gq_stage_need_model(ctx, &fp));
    GQ_TRY(train_inputs(ctx, GQ_STAGE_QUANTIZE, "bqpo"));
    curve_hook hook;
    gq_train_opts o;
    train_opts(ctx, ctx->cfg->bqpo.lr, ctx->cfg->bqpo.epochs, &hook, &o);
    gq_train_result r;
    memset(&r, 0, sizeof r);
    gq_status st = gq_bqpo_run(ctx->cm, fp, ctx->windows, ctx->n_windows, ctx->seqlen, &o, &r);
    if (st != GQ_OK) {
        gq_train_result_free(&r);
        return gq_err_prefix(st, "%s: ", ctx->cfg->source);
    }
    /* block-output MSE on the training windows, mean over the trained blocks: with the one-shot
     * weights / after training and re-quantization (each block on the same inputs) */
    double before = 0, after = 0;
    int nb = 0;
    for (int l = 0; l < r.n_layers; l++)
        if (!isnan(r.mse_before[l])) {
            before += r.mse_before[l];
            after += r.mse_after[l];
            nb++;
        }
    if (nb) {
        gq_stage_metric(ctx, "block_mse_before", NULL, before / nb);
        gq_stage_metric(ctx, "block_mse_after", NULL, after / nb);
    }
    train_metrics(ctx, &r, &o);
    gq_stage_note(ctx, "bqpo: %d blocks, %ld AdamW steps (lr %g, %d epochs) on %d calibration windows x %d tokens",
                  nb, r.steps, ctx->cfg->bqpo.lr, ctx->cfg->bqpo.epochs, ctx->n_windows, ctx->seqlen);
    gq_train_result_free(&r);
    return gq_ckpt_write_compressed(ck, ctx->cm);
}

/* ---------------------------------------------------------------- e2e_oqp */

static gq_status e2e_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    gq_stage_id from = gq_runcfg_has_stage(ctx->cfg, GQ_STAGE_BQPO) ? GQ_STAGE_BQPO : GQ_STAGE_QUANTIZE;
    GQ_TRY(train_inputs(ctx, from, "e2e_oqp"));
    curve_hook hook;
    gq_train_opts o;
    train_opts(ctx, ctx->cfg->e2e.lr, ctx->cfg->e2e.epochs, &hook, &o);
    gq_train_result r;
    memset(&r, 0, sizeof r);
    gq_status st = gq_e2e_oqp_run(ctx->cm, ctx->windows, ctx->n_windows, ctx->seqlen, &o, &r);
    if (st != GQ_OK) {
        gq_train_result_free(&r);
        return gq_err_prefix(st, "%s: ", ctx->cfg->source);
    }
    gq_stage_metric(ctx, "train_loss_before", NULL, r.loss_before);
    gq_stage_metric(ctx, "train_loss_after", NULL, r.loss_after);
    train_metrics(ctx, &r, &o);
    /* the zeros are continuous now: a deployed model stores them as fp16, not at `bits` bits */
    double bits = 0, weights = 0;
    for (int i = 0; i < ctx->cm->n_layers * GQ_LIN_COUNT; i++) {
        const gq_linear *lin = &ctx->cm->m->blocks[i / GQ_LIN_COUNT].lin[i % GQ_LIN_COUNT];
        weights += (double)lin->out * lin->in;
        if (!ctx->cm->gqs[i].row_index) continue;
        gq_gqs_mem mem;
        gq_gqs_memory(&ctx->cm->gqs[i], 1, &mem);
        bits += (double)mem.bytes_total * 8;
    }
    if (weights > 0) gq_stage_metric(ctx, "bits_per_weight_fp16_zeros", NULL, bits / weights);
    gq_stage_note(ctx, "e2e_oqp: from %s, %ld AdamW steps (lr %g, %d epochs) on %d calibration windows x %d tokens",
                  gq_stage_name(from), r.steps, ctx->cfg->e2e.lr, ctx->cfg->e2e.epochs, ctx->n_windows, ctx->seqlen);
    gq_train_result_free(&r);
    return gq_ckpt_write_compressed(ck, ctx->cm);
}

/* ---------------------------------------------------------------- load, hash */

/* Both stages' checkpoints are compressed models: load one into ctx->cm (replacing whatever
 * compressed model was there). */
static gq_status train_load(gq_stage_ctx *ctx, gq_ckpt *ck) { return gq_stage_load_compressed(ctx, ck); }

static void bqpo_hash(const gq_runcfg *c, gq_sha256 *h) {
    gq_stage_hash_num(h, "training.bqpo.lr", c->bqpo.lr);
    gq_stage_hash_num(h, "training.bqpo.epochs", c->bqpo.epochs);
    if (c->train_mixed) gq_stage_hash_num(h, "training.mixed", 1); /* only when set: older hashes stay valid */
    gq_stage_hash_u64(h, "seed", c->seed);
}
static void e2e_hash(const gq_runcfg *c, gq_sha256 *h) {
    gq_stage_hash_num(h, "training.e2e_oqp.lr", c->e2e.lr);
    gq_stage_hash_num(h, "training.e2e_oqp.epochs", c->e2e.epochs);
    if (c->train_mixed) gq_stage_hash_num(h, "training.mixed", 1);
    gq_stage_hash_u64(h, "seed", c->seed);
}

const gq_stage gq_stage_bqpo = {GQ_STAGE_BQPO, bqpo_run, train_load, bqpo_hash};
const gq_stage gq_stage_e2e_oqp = {GQ_STAGE_E2E_OQP, e2e_run, train_load, e2e_hash};
