/* runner.h — `gqsa run`: execute a validated run config stage by stage, resumably (DESIGN.md "Data flow").
 *
 * For each listed stage, in pipeline order:
 *   input hash = sha256("gqsa-stage-v1", stage name, the config fields the stage reads, and the sha256
 *                of the previous listed stage's checkpoint file — or the model files' identity for
 *                the first stage), so hashes chain: changing anything upstream reruns everything after
 *   checkpoint = <output>/<stage>-<first 16 hex of the input hash>.h5, with "input_hash" in /meta;
 *                content-addressed, so sweep points that share a prefix (same model and calibration)
 *                share its checkpoints
 *   skip       if that file exists and its /meta input_hash matches (unless forced);
 *   else run   the stage, write its checkpoint to <path>.tmp, fsync, rename (ckpt.h), then record
 *              status, seconds, checkpoint path + sha256, metrics and (training stages) the loss
 *              curve in the store in one transaction. A skipped stage's metrics and loss curve are
 *              read back from its checkpoint and recorded for the new run, so every run's rows are
 *              complete on their own.
 * A failure is recorded with its message, stops the run and is returned. Killing the process at any
 * point loses at most the stage in progress: a checkpoint is visible only once complete, and a
 * stage's store row is written only after its checkpoint.
 * Must not: print to stdout except the plan (to opts.plan), exit.
 */
#ifndef GQ_RUNNER_H
#define GQ_RUNNER_H

#include <stdio.h>

#include "stage.h"

typedef struct {
    int force;     /* stage id to rerun from (it and every later stage), or -1 */
    int dry_run;   /* plan only: nothing runs, the store is not opened */
    int progress;  /* progress lines on stderr from long stages */
    FILE *plan;    /* where the plan table goes (NULL: nowhere) */
    FILE *log;     /* one line per stage as it finishes (NULL: nowhere) */
    const char *device; /* where calibrate, evaluate, bqpo and e2e_oqp run: "cpu" (NULL) or "cuda"; not part of what a
                           run computes, so not in the config or its hash */
} gq_runner_opts;

void gq_runner_opts_default(gq_runner_opts *o);

typedef struct {
    int64_t run_id;                /* 0 in a dry run */
    char config_hash[65];
    int n_run, n_skipped;
    int failed_stage;              /* gq_stage_id, or -1 */
    int todo;                      /* dry run: stages that would run */
} gq_runner_result;

gq_status gq_runner_run(const gq_runcfg *cfg, const gq_runner_opts *o, gq_runner_result *r);

/* The git revision of the working tree the binary runs in ($GQSA_GIT_REVISION overrides; read from
 * .git without running git; "unknown" outside a checkout). */
void gq_runner_git_revision(char *buf, size_t cap);

/* Fault injection for tests: called at "before_commit" (the stage's checkpoint is written to
 * <path>.tmp, not yet renamed) and "after_commit" (renamed, store not yet updated). A hook may
 * _exit() to simulate a crash there. NULL disables. */
typedef void (*gq_runner_hook)(const char *point, gq_stage_id stage);
void gq_runner_set_hook(gq_runner_hook h);

#endif
