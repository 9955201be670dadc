/* stage_train.c — the bqpo and e2e_oqp stages are registered so configs that list them validate and
 * plan, but training lands later: running them is an honest GQ_ERR_UNSUPPORTED, recorded in the
 * store as the run's failure, never a silent skip.
 * Must not: pretend to train.
 */
#include "stage.h"

static gq_status train_unavailable(gq_stage_ctx *ctx, const char *what) {
    return gq_errf(GQ_ERR_UNSUPPORTED, "%s: stage %s is not available in this build (training lands later); remove it "
                                       "from stages to run the one-shot pipeline",
                   ctx->cfg->source, what);
}

static gq_status bqpo_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    (void)ck;
    return train_unavailable(ctx, "bqpo");
}
static gq_status e2e_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    (void)ck;
    return train_unavailable(ctx, "e2e_oqp");
}
static gq_status bqpo_load(gq_stage_ctx *ctx, gq_ckpt *ck) {
    (void)ck;
    return train_unavailable(ctx, "bqpo");
}
static gq_status e2e_load(gq_stage_ctx *ctx, gq_ckpt *ck) {
    (void)ck;
    return train_unavailable(ctx, "e2e_oqp");
}
static void bqpo_hash(const gq_runcfg *c, gq_sha256 *h) {
    gq_stage_hash_num(h, "training.bqpo.lr", c->bqpo.lr);
    gq_stage_hash_num(h, "training.bqpo.epochs", c->bqpo.epochs);
    gq_stage_hash_u64(h, "seed", c->seed);
}
static void e2e_hash(const gq_runcfg *c, gq_sha256 *h) {
    gq_stage_hash_num(h, "training.e2e_oqp.lr", c->e2e.lr);
    gq_stage_hash_num(h, "training.e2e_oqp.epochs", c->e2e.epochs);
    gq_stage_hash_u64(h, "seed", c->seed);
}

const gq_stage gq_stage_bqpo = {GQ_STAGE_BQPO, bqpo_run, bqpo_load, bqpo_hash};
const gq_stage gq_stage_e2e_oqp = {GQ_STAGE_E2E_OQP, e2e_run, e2e_load, e2e_hash};
