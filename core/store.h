/* store.h — the results store: one SQLite file that every run, sweep point and benchmark writes, and
 * that reports query (DESIGN.md "Files").
 *
 * Tables (schema version GQ_STORE_SCHEMA_VERSION; older files are migrated in place on open):
 *   runs        (id, config_text, config_hash, model, git_revision, host, started, finished, status, message)
 *   stages      (run_id, name, status, seconds, checkpoint_path, checkpoint_sha256, input_hash, message)
 *   metrics     (run_id, stage, metric, dataset, value)
 *   benchmarks  (kernel, shape, sparsity, bits, grp, time_us, bytes, gbps, device, extra)
 *   loss_curves (run_id, stage, step, loss)
 *   schema_version (version)
 * Concurrency: WAL mode, a busy timeout, and every write is one BEGIN IMMEDIATE transaction retried on
 * SQLITE_BUSY, so several processes (sweep workers, a benchmark) can write one store at once without
 * losing rows. A failed write rolls back: the store never holds half of a multi-row record.
 * Times are ISO-8601 UTC strings. Run status: "running", "done", "failed"; stage status: "done",
 * "skipped" (checkpoint reused), "failed".
 * Must not: know about configs' contents, stages' semantics or report layouts.
 */
#ifndef GQ_STORE_H
#define GQ_STORE_H

#include "util.h"

#define GQ_STORE_SCHEMA_VERSION 3

typedef struct gq_store gq_store;
typedef struct sqlite3 sqlite3;

/* Open (creating it and its folder if needed) and migrate to the current schema. A store written by
 * a newer build (higher schema version) is GQ_ERR_DB. Caller closes. */
gq_status gq_store_open(const char *path, gq_store **out);
void gq_store_close(gq_store *s);
int gq_store_schema_version(gq_store *s);
/* The raw handle, for read-only queries (reports). Owned by the store. */
sqlite3 *gq_store_db(gq_store *s);
const char *gq_store_path(const gq_store *s);

/* Insert a run with status "running"; *run_id gets its id. Strings may be NULL (stored as NULL). */
gq_status gq_store_run_begin(gq_store *s, const char *config_text, const char *config_hash, const char *model,
                             const char *git_revision, int64_t *run_id);
/* Set finished time, status and message (may be NULL). */
gq_status gq_store_run_finish(gq_store *s, int64_t run_id, const char *status, const char *message);

typedef struct {
    const char *name, *status;
    double seconds;
    const char *checkpoint_path, *checkpoint_sha256, *input_hash, *message; /* may be NULL */
} gq_store_stage;

typedef struct {
    const char *metric;  /* "ppl", "acc", "acc_norm", "tokens_per_s", "sparsity", ... */
    const char *dataset; /* "wikitext2", "piqa", ... or NULL */
    double value;
} gq_store_metric;

/* One stage row and its metrics in one transaction (all or nothing). */
gq_status gq_store_stage_record(gq_store *s, int64_t run_id, const gq_store_stage *st, const gq_store_metric *m,
                                int n_metrics);
/* The same, plus the stage's training loss curve (n_loss rows of loss_curves named after the stage;
 * steps/loss may be NULL when n_loss is 0), still one transaction: a stage row never lands without
 * its curve, nor a curve without its stage. */
gq_status gq_store_stage_record_curve(gq_store *s, int64_t run_id, const gq_store_stage *st, const gq_store_metric *m,
                                      int n_metrics, const int64_t *steps, const double *loss, int n_loss);

typedef struct {
    const char *kernel, *shape;
    double sparsity;
    int bits, grp;
    double time_us, bytes, gbps;
    const char *device, *extra; /* extra: free text / JSON, may be NULL */
} gq_store_bench;
gq_status gq_store_bench_add(gq_store *s, const gq_store_bench *rows, int n);

gq_status gq_store_loss_add(gq_store *s, int64_t run_id, const char *stage, const int64_t *steps, const double *loss,
                            int n);

/* Latest run with this config hash and status "done": *run_id = its id, or 0 if none. */
gq_status gq_store_find_done(gq_store *s, const char *config_hash, int64_t *run_id);

/* Fault injection for tests: the n-th SQL step from now (1 = the next one) fails with SQLITE_IOERR as
 * if the disk had failed; 0 disables. Process-wide; not for production use. */
void gq_store_fault_inject(int nth_step);

#endif
