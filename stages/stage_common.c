/* stage_common.c — what every stage shares: the run context's lifetime, lazy access to earlier
 * stages' outputs (from memory or their checkpoints), metrics in checkpoints, and input-hash helpers.
 * Must not: decide stage order or skipping (runner.c does), touch the store.
 */
#include "stage.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const gq_stage *const STAGES[GQ_STAGE_COUNT] = {
    &gq_stage_calibrate, &gq_stage_saliency, &gq_stage_prune,    &gq_stage_quantize,
    &gq_stage_bqpo,      &gq_stage_e2e_oqp,  &gq_stage_evaluate, &gq_stage_bench,
};

const gq_stage *gq_stage_get(gq_stage_id s) {
    GQ_ASSERT((int)s >= 0 && s < GQ_STAGE_COUNT && STAGES[s]->id == s);
    return STAGES[s];
}

void gq_stage_ctx_init(gq_stage_ctx *ctx, const gq_runcfg *cfg) {
    memset(ctx, 0, sizeof *ctx);
    ctx->cfg = cfg;
}

static size_t n_linears(const gq_stage_ctx *ctx) {
    return ctx->model ? (size_t)ctx->model->cfg.n_layers * GQ_LIN_COUNT : 0;
}

/* Models derived from the FP one borrow its tokenizer (see gq_stage_current_model): detach it before
 * freeing them so it is freed once, with its owner. */
static void detach_tok(gq_stage_ctx *ctx, gq_model *m) {
    if (m && ctx->model && m->tok == ctx->model->tok) m->tok = NULL;
}

void gq_stage_ctx_free(gq_stage_ctx *ctx) {
    size_t n = n_linears(ctx);
    if (ctx->saliency)
        for (size_t i = 0; i < n; i++) free(ctx->saliency[i]);
    if (ctx->mask)
        for (size_t i = 0; i < n; i++) free(ctx->mask[i]);
    free(ctx->saliency);
    free(ctx->mask);
    free(ctx->lin_sparsity);
    free(ctx->windows);
    if (ctx->have_hs) gq_hessians_free(&ctx->hs);
    gq_stage_drop_compressed(ctx);
    free(ctx->loss_step);
    free(ctx->loss_value);
    detach_tok(ctx, ctx->pruned);
    gq_model_free(ctx->pruned);
    gq_model_free(ctx->model);
    memset(ctx, 0, sizeof *ctx);
}

void gq_stage_metric(gq_stage_ctx *ctx, const char *metric, const char *dataset, double value) {
    GQ_ASSERT(ctx->n_metrics < GQ_STAGE_MAX_METRICS);
    int i = ctx->n_metrics++;
    snprintf(ctx->metric_name[i], sizeof ctx->metric_name[i], "%s", metric);
    snprintf(ctx->metric_dataset[i], sizeof ctx->metric_dataset[i], "%s", dataset ? dataset : "");
    ctx->metric_value[i] = value;
}

void gq_stage_loss(gq_stage_ctx *ctx, int64_t step, double loss) {
    if (ctx->n_loss == ctx->cap_loss) {
        ctx->cap_loss = ctx->cap_loss ? 2 * ctx->cap_loss : 256;
        ctx->loss_step = gq_realloc(ctx->loss_step, (size_t)ctx->cap_loss * sizeof *ctx->loss_step);
        ctx->loss_value = gq_realloc(ctx->loss_value, (size_t)ctx->cap_loss * sizeof *ctx->loss_value);
    }
    ctx->loss_step[ctx->n_loss] = step;
    ctx->loss_value[ctx->n_loss++] = loss;
}

unsigned gq_stage_cm_stages(const gq_runcfg *c) {
    unsigned s = (1u << GQ_STAGE_QUANTIZE) | (1u << GQ_STAGE_BQPO) | (1u << GQ_STAGE_E2E_OQP);
    /* a baseline's prune stage writes a compressed model; GQSA's writes masks (ctx->mask) */
    if (c->method.name != GQ_METHOD_GQSA) s |= 1u << GQ_STAGE_PRUNE;
    return s;
}

void gq_stage_drop_compressed(gq_stage_ctx *ctx) {
    if (ctx->cm) {
        detach_tok(ctx, ctx->cm->m);
        gq_compressed_free(ctx->cm);
        free(ctx->cm);
        ctx->cm = NULL;
    }
    if (ctx->cfg) ctx->loaded &= ~gq_stage_cm_stages(ctx->cfg);
}

void gq_stage_note(gq_stage_ctx *ctx, const char *fmt, ...) {
    size_t len = strlen(ctx->message);
    if (len + 3 >= sizeof ctx->message) return;
    if (len) {
        strcat(ctx->message, "; ");
        len += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->message + len, sizeof ctx->message - len, fmt, ap);
    va_end(ap);
}

gq_status gq_stage_need_model(gq_stage_ctx *ctx, gq_model **m) {
    if (!ctx->model) {
        const char *tok = ctx->cfg->tokenizer[0] ? ctx->cfg->tokenizer : NULL;
        GQ_TRY(gq_model_load(ctx->model_path[0] ? ctx->model_path : ctx->cfg->model, tok, &ctx->model));
        if (!ctx->model->tok)
            return gq_errf(GQ_ERR_ARG, "%s: no tokenizer found for the model (set tokenizer: in the config)", ctx->cfg->model);
    }
    *m = ctx->model;
    return GQ_OK;
}

gq_status gq_stage_need(gq_stage_ctx *ctx, gq_stage_id s) {
    if (ctx->loaded & (1u << s)) return GQ_OK;
    if (!gq_runcfg_has_stage(ctx->cfg, s))
        return gq_errf(GQ_ERR_ARG, "%s: this step needs the outputs of stage %s, which is not listed in stages",
                       ctx->cfg->source, gq_stage_name(s));
    if (!ctx->ckpt_path[s][0])
        return gq_errf(GQ_ERR_INTERNAL, "stage %s has no checkpoint yet (runner order)", gq_stage_name(s));
    gq_ckpt *ck;
    GQ_TRY(gq_ckpt_open(ctx->ckpt_path[s], &ck));
    /* loading must not add metrics or loss points to the stage that is running */
    int saved = ctx->n_metrics, saved_loss = ctx->n_loss;
    gq_status st = gq_stage_get(s)->load(ctx, ck);
    ctx->n_metrics = saved;
    ctx->n_loss = saved_loss;
    gq_ckpt_close(ck);
    if (st != GQ_OK) return gq_err_prefix(st, "loading the %s checkpoint %s: ", gq_stage_name(s), ctx->ckpt_path[s]);
    ctx->loaded |= 1u << s;
    return GQ_OK;
}

gq_status gq_stage_current_model(gq_stage_ctx *ctx, const gq_model **out) {
    gq_model *fp;
    GQ_TRY(gq_stage_need_model(ctx, &fp));
    gq_model *m = fp;
    const gq_stage_id trained[3] = {GQ_STAGE_E2E_OQP, GQ_STAGE_BQPO, GQ_STAGE_QUANTIZE};
    int last = -1;
    for (int i = 0; i < 3 && last < 0; i++)
        if (gq_runcfg_has_stage(ctx->cfg, trained[i])) last = trained[i];
    if (last >= 0) {
        GQ_TRY(gq_stage_need(ctx, (gq_stage_id)last));
        m = ctx->cm->m;
    } else if (gq_runcfg_has_stage(ctx->cfg, GQ_STAGE_PRUNE)) {
        GQ_TRY(gq_stage_need(ctx, GQ_STAGE_PRUNE));
        if (ctx->cm) {
            m = ctx->cm->m;
        } else {
            /* gqsa sparsity-only: the FP weights with the pruned groups zeroed */
            if (!ctx->pruned) {
                ctx->pruned = gq_model_clone(fp);
                int G = ctx->cfg->method.group;
                for (int l = 0; l < fp->cfg.n_layers; l++)
                    for (int k = 0; k < GQ_LIN_COUNT; k++) {
                        gq_linear *lin = &ctx->pruned->blocks[l].lin[k];
                        gq_prune_apply(lin->w, lin->out, lin->in, G, ctx->mask[(size_t)l * GQ_LIN_COUNT + k]);
                    }
            }
            m = ctx->pruned;
        }
    }
    if (!m->tok) m->tok = fp->tok; /* borrowed; detached before m is freed */
    *out = m;
    return GQ_OK;
}

/* ---------------------------------------------------------------- metrics in checkpoints */

gq_status gq_stage_write_metrics(gq_stage_ctx *ctx, gq_ckpt *ck) {
    size_t cap = (size_t)ctx->n_metrics * 70 + 1;
    char *names = gq_malloc(cap);
    names[0] = 0;
    for (int i = 0; i < ctx->n_metrics; i++) {
        strcat(names, ctx->metric_name[i]);
        strcat(names, "|");
        strcat(names, ctx->metric_dataset[i]);
        strcat(names, "\n");
    }
    gq_status st = gq_ckpt_attr_set_str(ck, "/metrics", "names", names);
    free(names);
    GQ_TRY(st);
    GQ_TRY(gq_ckpt_attr_set_i64(ck, "/metrics", "count", ctx->n_metrics));
    if (!ctx->n_metrics) return GQ_OK;
    int64_t dims[1] = {ctx->n_metrics};
    return gq_ckpt_write(ck, "/metrics/values", GQ_CKPT_F64, ctx->metric_value, 1, dims);
}

gq_status gq_stage_read_metrics(gq_stage_ctx *ctx, gq_ckpt *ck) {
    ctx->n_metrics = 0;
    if (!gq_ckpt_has(ck, "/metrics")) return GQ_OK;
    int64_t count;
    GQ_TRY(gq_ckpt_attr_get_i64(ck, "/metrics", "count", &count));
    if (count < 0 || count > GQ_STAGE_MAX_METRICS)
        return gq_errf(GQ_ERR_FORMAT, "%s: /metrics count %lld out of range", gq_ckpt_path(ck), (long long)count);
    if (!count) return GQ_OK;
    char names[GQ_STAGE_MAX_METRICS * 70];
    GQ_TRY(gq_ckpt_attr_get_str(ck, "/metrics", "names", names, sizeof names));
    double vals[GQ_STAGE_MAX_METRICS];
    GQ_TRY(gq_ckpt_read_into(ck, "/metrics/values", GQ_CKPT_F64, vals, (size_t)count));
    char *save = NULL, *line = strtok_r(names, "\n", &save);
    for (int i = 0; i < count; i++, line = strtok_r(NULL, "\n", &save)) {
        char *bar = line ? strchr(line, '|') : NULL;
        if (!bar) return gq_errf(GQ_ERR_FORMAT, "%s: /metrics names malformed at entry %d", gq_ckpt_path(ck), i);
        *bar = 0;
        gq_stage_metric(ctx, line, bar[1] ? bar + 1 : NULL, vals[i]);
    }
    return GQ_OK;
}

/* Longest curve a checkpoint may claim (hostile-file bound: 10^8 optimizer steps). */
#define LOSS_CURVE_MAX 100000000

gq_status gq_stage_write_loss(gq_stage_ctx *ctx, gq_ckpt *ck) {
    if (!ctx->n_loss) return GQ_OK;
    int64_t dims[1] = {ctx->n_loss};
    GQ_TRY(gq_ckpt_write(ck, "/loss_curve/step", GQ_CKPT_I64, ctx->loss_step, 1, dims));
    return gq_ckpt_write(ck, "/loss_curve/loss", GQ_CKPT_F64, ctx->loss_value, 1, dims);
}

gq_status gq_stage_read_loss(gq_stage_ctx *ctx, gq_ckpt *ck) {
    ctx->n_loss = 0;
    if (!gq_ckpt_has(ck, "/loss_curve")) return GQ_OK;
    int r1, r2;
    int64_t d1[4], d2[4];
    GQ_TRY(gq_ckpt_shape(ck, "/loss_curve/step", &r1, d1));
    GQ_TRY(gq_ckpt_shape(ck, "/loss_curve/loss", &r2, d2));
    if (r1 != 1 || r2 != 1 || d1[0] != d2[0] || d1[0] < 0 || d1[0] > LOSS_CURVE_MAX)
        return gq_errf(GQ_ERR_FORMAT, "%s: /loss_curve/step and /loss_curve/loss are not two vectors of one length (<= %d)",
                       gq_ckpt_path(ck), LOSS_CURVE_MAX);
    int n = (int)d1[0];
    if (n > ctx->cap_loss) {
        ctx->cap_loss = n;
        ctx->loss_step = gq_realloc(ctx->loss_step, (size_t)n * sizeof *ctx->loss_step);
        ctx->loss_value = gq_realloc(ctx->loss_value, (size_t)n * sizeof *ctx->loss_value);
    }
    if (!n) return GQ_OK;
    GQ_TRY(gq_ckpt_read_into(ck, "/loss_curve/step", GQ_CKPT_I64, ctx->loss_step, (size_t)n));
    GQ_TRY(gq_ckpt_read_into(ck, "/loss_curve/loss", GQ_CKPT_F64, ctx->loss_value, (size_t)n));
    ctx->n_loss = n;
    return GQ_OK;
}

/* ---------------------------------------------------------------- compression options, hashing */

void gq_stage_compress_opts(const gq_runcfg *c, gq_compress_opts *o) {
    gq_compress_opts_default(o);
    o->method = gq_method_name(c->method.name);
    o->sparsity = c->method.sparsity;
    o->bits = c->method.bits == GQ_BITS_NONE ? 0 : c->method.bits;
    o->group = c->method.group;
    o->scope = c->method.scope;
    o->damp = c->method.damp;
    o->nm_n = c->method.nm_n;
    o->nm_m = c->method.nm_m;
    o->blocksize = c->method.blocksize;
}

void gq_stage_hash_str(gq_sha256 *h, const char *key, const char *v) {
    char buf[64];
    int n = snprintf(buf, sizeof buf, "%s=%zu:", key, strlen(v));
    gq_sha256_update(h, buf, (size_t)n);
    gq_sha256_update(h, v, strlen(v));
    gq_sha256_update(h, "\n", 1);
}

void gq_stage_hash_num(gq_sha256 *h, const char *key, double v) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s=%.17g\n", key, v);
    gq_sha256_update(h, buf, (size_t)n);
}

void gq_stage_hash_u64(gq_sha256 *h, const char *key, uint64_t v) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, "%s=%llu\n", key, (unsigned long long)v);
    gq_sha256_update(h, buf, (size_t)n);
}

void gq_stage_hash_method(const gq_runcfg *c, gq_sha256 *h) {
    gq_stage_hash_str(h, "method.name", gq_method_name(c->method.name));
    gq_stage_hash_num(h, "method.sparsity", c->method.sparsity);
    gq_stage_hash_num(h, "method.bits", c->method.bits);
    gq_stage_hash_num(h, "method.group", c->method.group);
    gq_stage_hash_num(h, "method.scope", c->method.scope);
    gq_stage_hash_num(h, "method.damp", c->method.damp);
    gq_stage_hash_num(h, "method.nm_n", c->method.nm_n);
    gq_stage_hash_num(h, "method.nm_m", c->method.nm_m);
    gq_stage_hash_num(h, "method.blocksize", c->method.blocksize);
    /* how a baseline's Hessians are gathered changes its result (GQSA's staged path ignores it) */
    if (c->method.name != GQ_METHOD_GQSA && c->method.name != GQ_METHOD_FP)
        gq_stage_hash_num(h, "calibration.sequential", c->calib.sequential);
}

/* Does path exist as a regular file? (gq_file_exists may accept folders.) */
int gq_stage_file_is_regular(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}
