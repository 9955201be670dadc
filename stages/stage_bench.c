/* stage_bench.c — the bench stage: CPU batch-1 decode throughput of the current model (greedy, KV
 * cache, bench.tokens tokens from BOS). Metrics: tokens_per_s/cpu_decode, ms_per_token/cpu_decode.
 * GPU kernel and decode benchmarks are `gqsa bench` (they write the benchmarks table directly).
 * The timing is wall-clock on a shared machine: a measurement to compare runs on one host, never
 * an input of another stage (its checkpoint hash chains nothing).
 * Must not: change the model.
 */
#include "stage.h"

#include <stdlib.h>

#include "../core/forward.h"

static gq_status bench_run(gq_stage_ctx *ctx, gq_ckpt *ck) {
    (void)ck;
    const gq_model *m;
    GQ_TRY(gq_stage_current_model(ctx, &m));
    int n = ctx->cfg->bench.tokens;
    if (n >= m->cfg.max_seq_len) {
        gq_stage_note(ctx, "bench.tokens %d capped at the context %d", n, m->cfg.max_seq_len - 1);
        n = m->cfg.max_seq_len - 1;
    }
    gq_fwd f;
    GQ_TRY(gq_fwd_init(&f, m, n + 1));
    float *logits = gq_malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    int32_t tok = m->cfg.bos_id >= 0 ? m->cfg.bos_id : 0;
    gq_status st = GQ_OK;
    double t0 = gq_now();
    for (int pos = 0; pos < n && st == GQ_OK; pos++) {
        st = gq_fwd_decode(&f, tok, pos, logits);
        int best = 0;
        for (int v = 1; v < m->cfg.vocab_size; v++)
            if (logits[v] > logits[best]) best = v;
        tok = best;
    }
    double dt = gq_now() - t0;
    free(logits);
    gq_fwd_free(&f);
    GQ_TRY(st);
    gq_stage_metric(ctx, "tokens_per_s", "cpu_decode", dt > 0 ? n / dt : 0);
    gq_stage_metric(ctx, "ms_per_token", "cpu_decode", 1e3 * dt / n);
    gq_stage_note(ctx, "CPU decode of %d tokens, %d thread(s), dense fp32 weights", n, gq_num_threads());
    return GQ_OK;
}

static gq_status bench_load(gq_stage_ctx *ctx, gq_ckpt *ck) {
    (void)ctx;
    (void)ck;
    return GQ_OK;
}

static void bench_hash(const gq_runcfg *c, gq_sha256 *h) { gq_stage_hash_num(h, "bench.tokens", c->bench.tokens); }

const gq_stage gq_stage_bench = {GQ_STAGE_BENCH, bench_run, bench_load, bench_hash};
