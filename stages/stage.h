/* stage.h — the one interface every pipeline stage implements, and the run context stages share.
 *
 * How to add a stage: add its id to gq_stage_id (core/config.h, in pipeline order; names on disk are
 * stable), write stages/stage_<name>.c with a `const gq_stage gq_stage_<name>` holding
 *   run   compute the stage's outputs into the context and write them into the checkpoint the runner
 *         created (the runner writes /meta, commits atomically, hashes the file, records the store)
 *   load  restore those outputs from the committed checkpoint when the stage is skipped (resumption)
 *   hash  feed the config fields the stage reads into the input hash (the runner adds the stage name
 *         and the predecessor checkpoint's sha256, so hashes chain)
 * and add it to the table in stages/runner.c. A stage never touches SQLite or file naming: it reports
 * metrics through gq_stage_metric() and reads earlier stages' outputs through gq_stage_need().
 * Must not: exit, print to stdout, open the store, choose paths.
 */
#ifndef GQ_STAGE_H
#define GQ_STAGE_H

#include "../core/calib.h"
#include "../core/ckpt.h"
#include "../core/compress.h"
#include "../core/config.h"
#include "../core/model.h"

#define GQ_STAGE_MAX_METRICS 64

typedef struct gq_stage_ctx gq_stage_ctx;

typedef struct {
    gq_stage_id id;
    gq_status (*run)(gq_stage_ctx *ctx, gq_ckpt *ck);
    gq_status (*load)(gq_stage_ctx *ctx, gq_ckpt *ck);
    void (*hash)(const gq_runcfg *c, gq_sha256 *h);
} gq_stage;

/* Everything stages produce and consume. Owned by the runner; freed by gq_stage_ctx_free. */
struct gq_stage_ctx {
    const gq_runcfg *cfg;
    char model_path[2048];      /* resolved model file */
    gq_model *model;            /* the full-precision model (loaded on first need) */
    /* calibrate */
    int32_t *windows;           /* [n_windows, seqlen] */
    int n_windows, seqlen;
    gq_hessians hs;
    int have_hs;
    /* saliency: group scores [N, K/G] per linear, index layer * GQ_LIN_COUNT + kind */
    double **saliency;
    /* prune (gqsa): keep masks [N, K/G] per linear; achieved sparsity per linear */
    uint8_t **mask;
    double *lin_sparsity;
    /* quantize (any method) or prune (baselines): the compressed model */
    gq_compressed *cm;
    gq_model *pruned;           /* gqsa sparsity-only: FP weights with the mask applied (owned) */
    /* which stages' outputs are in memory, and where each committed checkpoint lives */
    unsigned loaded;            /* bit per gq_stage_id */
    char ckpt_path[GQ_STAGE_COUNT][2048];
    /* outputs of the stage now running / loading, collected by the runner after it returns */
    int n_metrics;
    char metric_name[GQ_STAGE_MAX_METRICS][32];
    char metric_dataset[GQ_STAGE_MAX_METRICS][32];
    double metric_value[GQ_STAGE_MAX_METRICS];
    int n_loss, cap_loss;       /* training loss curve of the running stage (bqpo, e2e_oqp): */
    int64_t *loss_step;         /*   [n_loss] optimizer step, 1-based over the stage */
    double *loss_value;         /*   [n_loss] loss of that step's batch */
    char message[512];          /* notes for the store (protocol deviations, retries) */
    int progress;               /* progress lines on stderr */
    const char *device;         /* gq_runner_opts.device: "cpu"/NULL or "cuda" (evaluate, bqpo, e2e_oqp) */
};

void gq_stage_ctx_init(gq_stage_ctx *ctx, const gq_runcfg *cfg);
void gq_stage_ctx_free(gq_stage_ctx *ctx);

/* Record a metric of the current stage (dataset may be NULL). GQ_ASSERT on overflow. */
void gq_stage_metric(gq_stage_ctx *ctx, const char *metric, const char *dataset, double value);
/* Append one point to the current stage's loss curve (the runner stores it in the checkpoint and in
 * the store's loss_curves table, like metrics). */
void gq_stage_loss(gq_stage_ctx *ctx, int64_t step, double loss);
/* Append a note to ctx->message ("; "-separated). */
void gq_stage_note(gq_stage_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Make stage `s`'s outputs available in ctx: already in memory, or loaded from its checkpoint.
 * GQ_ERR_ARG if `s` is not listed in the config (a stage asked for something the config does not
 * produce), GQ_ERR_INTERNAL if it is listed but has no checkpoint yet (runner order bug). */
gq_status gq_stage_need(gq_stage_ctx *ctx, gq_stage_id s);
/* The full-precision model, loaded on first use. */
gq_status gq_stage_need_model(gq_stage_ctx *ctx, gq_model **m);
/* The calibrate stage's windows in ctx->windows [n_windows, seqlen]: already in memory, or read from
 * its checkpoint's /windows alone (not its Hessians). GQ_ERR_ARG if calibrate is not listed. */
gq_status gq_stage_need_windows(gq_stage_ctx *ctx);
/* The model later stages evaluate: the compressed model of the last compression stage listed
 * (e2e_oqp, else bqpo, else quantize, else prune), else FP. */
gq_status gq_stage_current_model(gq_stage_ctx *ctx, const gq_model **m);
/* Stages whose output is the compressed model ctx->cm. Only one of them is in memory at a time:
 * bqpo and e2e_oqp train the previous one in place, and loading one replaces the one there, so
 * their bits in ctx->loaded are cleared whenever ctx->cm changes hands. */
unsigned gq_stage_cm_stages(const gq_runcfg *c);
/* Free ctx->cm (detaching the borrowed tokenizer) and clear the loaded bits of gq_stage_cm_stages. */
void gq_stage_drop_compressed(gq_stage_ctx *ctx);

/* Metrics in a checkpoint: /metrics/values float64 [n] and attribute /metrics names
 * ("metric|dataset\n" per value). write stores ctx's current metrics; read restores them. */
gq_status gq_stage_write_metrics(gq_stage_ctx *ctx, gq_ckpt *ck);
gq_status gq_stage_read_metrics(gq_stage_ctx *ctx, gq_ckpt *ck);
/* The loss curve in a checkpoint: /loss_curve/step int64 [n], /loss_curve/loss float64 [n] (absent
 * when the stage has none). write stores ctx's curve; read restores it (n 0 when absent). */
gq_status gq_stage_write_loss(gq_stage_ctx *ctx, gq_ckpt *ck);
gq_status gq_stage_read_loss(gq_stage_ctx *ctx, gq_ckpt *ck);

/* The compression options the config describes (method registry name, bits 0 for no quantization). */
void gq_stage_compress_opts(const gq_runcfg *c, gq_compress_opts *o);

/* Helpers for hash functions: length-prefixed strings and exact numbers. */
void gq_stage_hash_str(gq_sha256 *h, const char *key, const char *v);
void gq_stage_hash_num(gq_sha256 *h, const char *key, double v);
void gq_stage_hash_u64(gq_sha256 *h, const char *key, uint64_t v);
/* Feed the whole method section. */
void gq_stage_hash_method(const gq_runcfg *c, gq_sha256 *h);

/* The stage table (pipeline order). */
const gq_stage *gq_stage_get(gq_stage_id s);
/* 1 if path is an existing regular file. */
int gq_stage_file_is_regular(const char *path);

extern const gq_stage gq_stage_calibrate, gq_stage_saliency, gq_stage_prune, gq_stage_quantize, gq_stage_bqpo,
    gq_stage_e2e_oqp, gq_stage_evaluate, gq_stage_bench;

#endif
