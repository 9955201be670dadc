/* stage_evaluate.c — perplexity (GPTQ protocol, core/eval_ppl.h) and zero-shot accuracy
 * (lm-evaluation-harness scoring, core/eval_zeroshot.h) of the model the earlier stages produced
 * (the FP model when none did). Checkpoint: only /metrics (a few numbers), no weights.
 * Metrics: ppl/<dataset>, ppl_windows/<dataset>, acc/<task>, acc_norm/<task>, acc_stderr/<task>,
 * avg_acc, avg_acc_norm.
 * Must not: change the model.
 */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

#include "../core/eval_ppl.h"
#include "../core/eval_zeroshot.h"

static gq_status evaluate_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    const gq_model *m;
    GQ_TRY(gq_stage_current_model(ctx, &m));
    const gq_runcfg *c = ctx->cfg;
    for (int d = 0; d < GQ_DS_COUNT; d++) {
        if (!(c->eval.ppl & (1u << d))) continue;
        gq_ppl_opts o = {.dataset = gq_dataset_name(d), .seqlen = c->eval.seqlen, .limit = c->eval.limit, .add_bos = -1,
                         .device = ctx->device /* gqsa run/sweep --device */};
        gq_ppl_result r;
        memset(&r, 0, sizeof r);
        GQ_TRY(gq_eval_ppl(m, &o, &r));
        gq_stage_metric(ctx, "ppl", o.dataset, r.ppl);
        gq_stage_metric(ctx, "ppl_windows", o.dataset, r.n_windows);
        gq_stage_metric(ctx, "eval_tokens_per_s", o.dataset, r.tok_per_s);
        if (r.note[0]) gq_stage_note(ctx, "%s: %s", o.dataset, r.note);
        if (c->eval.limit) gq_stage_note(ctx, "%s: limited to %d windows of %d", o.dataset, r.n_windows, c->eval.seqlen);
    }
    if (c->eval.zeroshot) {
        char tasks[256] = "";
        for (int t = 0; t < GQ_ZS_N_TASKS; t++)
            if (c->eval.zeroshot & (1u << t)) {
                if (tasks[0]) strcat(tasks, ",");
                strcat(tasks, gq_zs_task_name((gq_zs_task_id)t));
            }
        gq_zs_opts o = {.tasks = tasks, .limit = c->eval.zeroshot_limit, .quiet = !ctx->progress,
                        .device = ctx->device /* as for perplexity: not part of the result */};
        gq_zs_result r;
        memset(&r, 0, sizeof r);
        GQ_TRY(gq_eval_zeroshot(m, &o, &r));
        for (int i = 0; i < r.n_tasks; i++) {
            const gq_zs_task_result *t = &r.task[i];
            gq_stage_metric(ctx, "acc", t->name, t->acc);
            gq_stage_metric(ctx, "acc_stderr", t->name, t->acc_stderr);
            if (t->has_acc_norm) gq_stage_metric(ctx, "acc_norm", t->name, t->acc_norm);
            gq_stage_metric(ctx, "zs_items", t->name, t->n);
        }
        gq_stage_metric(ctx, "avg_acc", NULL, r.avg_acc);
        gq_stage_metric(ctx, "avg_acc_norm", NULL, r.avg_acc_norm);
        gq_stage_note(ctx, "zero-shot ran on %s", r.device);
    }
    (void)ck; /* the runner writes the metrics into it */
    return GQ_OK;
}

static gq_status evaluate_load(gq_stage_ctx *ctx, gq_ckpt *ck) {
    (void)ctx;
    (void)ck;
    return GQ_OK; /* metrics only: the runner reads them back itself */
}

static void evaluate_hash(const gq_runcfg *c, gq_sha256 *h) {
    gq_stage_hash_num(h, "evaluation.ppl", c->eval.ppl);
    gq_stage_hash_num(h, "evaluation.seqlen", c->eval.seqlen);
    gq_stage_hash_num(h, "evaluation.limit", c->eval.limit);
    gq_stage_hash_num(h, "evaluation.zeroshot", c->eval.zeroshot);
    gq_stage_hash_num(h, "evaluation.zeroshot_limit", c->eval.zeroshot_limit);
}

const gq_stage gq_stage_evaluate = {GQ_STAGE_EVALUATE, evaluate_run, evaluate_load, evaluate_hash};
