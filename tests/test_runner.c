/* test_runner.c — the pipeline runner on the real stories260K model (tiny calibration and evaluation):
 * resumption and hash chaining (what reruns after each kind of change), --force, the training stages
 * (bqpo, e2e_oqp: losses fall, checkpoints reload, loss curves in the store), the atomic checkpoint
 * under a simulated crash between write and rename, SIGKILL at random points followed by a resume giving bit-identical metrics to an uninterrupted run,
 * two concurrent runs into one store, sweeps expansion and the dry-run plan of the paper's 7B config.
 * The reference for "identical" is an uninterrupted run of the same config in the same process tree.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../stages/runner.h"
#include "../stages/sweep.h"
#include "../reports/report.h"
#include "ckpt.h"
#include "cuda/gpu.h"
#include "store.h"

static char g_dir[256];
static int g_have_model;

static int setup(void **st) {
    (void)st;
    snprintf(g_dir, sizeof g_dir, "/tmp/gqsa_test_runner_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    char p[1024];
    g_have_model = gq_model_resolve("stories260K", p, sizeof p) == GQ_OK && gq_file_exists(p);
    if (!g_have_model) printf("SKIP stories260K not found under the data root (%s): model tests pass vacuously\n", gq_data_root());
    return 0;
}

/* A tiny GQSA run of stories260K into <g_dir>/<tag>/. extra: YAML appended (overrides nothing: keys
 * must not repeat) — used to vary the evaluation. */
static void make_cfg(gq_runcfg *c, const char *tag, double sparsity, int limit, const char *stages, const char *store) {
    char y[2048];
    snprintf(y, sizeof y,
             "model: stories260K\noutput: %s/%s\nstore: %s/%s\n"
             "calibration: {dataset: c4, nsamples: 8, seqlen: 64, seed: 1}\n"
             "method: {name: gqsa, sparsity: %g, bits: 4, group: 4}\n"
             "stages: [%s]\nevaluation: {ppl: [c4], seqlen: 64, limit: %d}\n",
             g_dir, tag, g_dir, store ? store : "store.sqlite", sparsity,
             stages ? stages : "calibrate, saliency, prune, quantize, evaluate", limit);
    gq_status s = gq_runcfg_parse(y, strlen(y), "test.yaml", c);
    if (s) fprintf(stderr, "%s\n", gq_errmsg());
    assert_int_equal(s, GQ_OK);
}

static gq_status run(const gq_runcfg *c, gq_runner_result *r, int force) {
    gq_runner_opts o;
    gq_runner_opts_default(&o);
    o.force = force;
    gq_status s = gq_runner_run(c, &o, r);
    if (s) fprintf(stderr, "run: %s\n", gq_errmsg());
    return s;
}

/* ppl/c4 of run `id` in store `path` (NaN if absent). */
static double ppl_of(const char *path, int64_t id) {
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "SELECT value FROM metrics WHERE run_id = ? AND metric = 'ppl' AND dataset = 'c4'", -1, &q, NULL);
    sqlite3_bind_int64(q, 1, id);
    double v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_double(q, 0) : NAN;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

static long count(const char *path, const char *sql) {
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &q, NULL), SQLITE_OK);
    long n = sqlite3_step(q) == SQLITE_ROW ? (long)sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return n;
}

static double g_ref_ppl;

static void test_resume_and_chaining(void **st) {
    (void)st;
    if (!g_have_model) return;
    gq_runcfg c;
    gq_runner_result r;
    char store[512];
    snprintf(store, sizeof store, "%s/store.sqlite", g_dir);
    make_cfg(&c, "chain", 0.5, 4, NULL, NULL);
    assert_int_equal(run(&c, &r, -1), GQ_OK);
    assert_int_equal(r.n_run, 5);
    g_ref_ppl = ppl_of(store, r.run_id);
    assert_true(g_ref_ppl > 1 && g_ref_ppl < 1e5);
    /* same config: everything reused, same numbers recorded for the new run */
    assert_int_equal(run(&c, &r, -1), GQ_OK);
    assert_int_equal(r.n_run, 0);
    assert_int_equal(r.n_skipped, 5);
    assert_true(ppl_of(store, r.run_id) == g_ref_ppl);
    /* only the evaluation changes: only evaluate reruns */
    make_cfg(&c, "chain", 0.5, 3, NULL, NULL);
    assert_int_equal(run(&c, &r, -1), GQ_OK);
    assert_int_equal(r.n_run, 1);
    assert_int_equal(r.n_skipped, 4);
    /* sparsity changes: calibrate and saliency (which do not read it) are reused */
    make_cfg(&c, "chain", 0.3, 4, NULL, NULL);
    assert_int_equal(run(&c, &r, -1), GQ_OK);
    assert_int_equal(r.n_skipped, 2);
    assert_int_equal(r.n_run, 3);
    double ppl30 = ppl_of(store, r.run_id);
    assert_true(ppl30 != g_ref_ppl);
    /* --force prune reruns prune and everything after it */
    assert_int_equal(run(&c, &r, GQ_STAGE_PRUNE), GQ_OK);
    assert_int_equal(r.n_skipped, 2);
    assert_int_equal(r.n_run, 3);
    assert_true(ppl_of(store, r.run_id) == ppl30); /* deterministic */
    assert_true(count(store, "SELECT count(*) FROM runs WHERE status = 'done'") >= 5);
}

/* A tiny training run of stories260K into <g_dir>/train/, store train.sqlite: the one-shot prefix of
 * make_cfg, then (when `train`) BQPO for 1 epoch and E2E-OQP for 2 over the 8 calibration windows.
 * The learning rates are larger than the paper's 1e-5: a few dozen AdamW steps must move the weights. */
#define TRAIN_E2E_EPOCHS 2
static void make_train_cfg(gq_runcfg *c, int train) {
    char y[2048];
    snprintf(y, sizeof y,
             "model: stories260K\noutput: %s/train\nstore: %s/train.sqlite\nseed: 5\n"
             "calibration: {dataset: c4, nsamples: 8, seqlen: 64, seed: 1}\n"
             "method: {name: gqsa, sparsity: 0.5, bits: 4, group: 4}\n"
             "stages: [calibrate, saliency, prune, quantize, %sevaluate]\n"
             "training: {bqpo: {lr: 1e-3, epochs: 1}, e2e_oqp: {lr: 1e-3, epochs: %d}}\n"
             "evaluation: {ppl: [c4], seqlen: 64, limit: 4}\n",
             g_dir, g_dir, train ? "bqpo, e2e_oqp, " : "", TRAIN_E2E_EPOCHS);
    gq_status s = gq_runcfg_parse(y, strlen(y), "train.yaml", c);
    if (s) fprintf(stderr, "%s\n", gq_errmsg());
    assert_int_equal(s, GQ_OK);
}

/* Metric `metric` of `stage` in run `id` (NaN if absent). */
static double metric_of(const char *path, int64_t id, const char *stage, const char *metric) {
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "SELECT value FROM metrics WHERE run_id = ? AND stage = ? AND metric = ?", -1, &q, NULL);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, stage, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, metric, -1, SQLITE_TRANSIENT);
    double v = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_double(q, 0) : NAN;
    sqlite3_finalize(q);
    sqlite3_close(db);
    return v;
}

/* The loss curve of `stage` in run `id`, ordered by step: *n points, malloc'd (caller frees). Asserts
 * the steps are 1..n. */
static double *curve_of(const char *path, int64_t id, const char *stage, int *n) {
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT step, loss FROM loss_curves WHERE run_id = ? AND stage = ? ORDER BY step",
                                        -1, &q, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, stage, -1, SQLITE_TRANSIENT);
    double *v = NULL;
    int k = 0;
    while (sqlite3_step(q) == SQLITE_ROW) {
        v = realloc(v, sizeof *v * (size_t)(k + 1));
        assert_int_equal(sqlite3_column_int64(q, 0), k + 1);
        v[k++] = sqlite3_column_double(q, 1);
    }
    sqlite3_finalize(q);
    sqlite3_close(db);
    *n = k;
    return v;
}

/* The checkpoint file the store names for `stage` in run `id`. */
static void ckpt_of(const char *path, int64_t id, const char *stage, char *out, size_t cap) {
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "SELECT checkpoint_path FROM stages WHERE run_id = ? AND name = ?", -1, &q, NULL);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_text(q, 2, stage, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    const char *t = (const char *)sqlite3_column_text(q, 0);
    assert_non_null(t);
    snprintf(out, cap, "%s", t);
    sqlite3_finalize(q);
    sqlite3_close(db);
}

static void read_ckpt_model(const char *path, gq_model **m, gq_gqs **gqs) {
    gq_ckpt *ck;
    assert_int_equal(gq_ckpt_open(path, &ck), GQ_OK);
    gq_status s = gq_ckpt_read_model(ck, m, gqs);
    if (s) fprintf(stderr, "%s\n", gq_errmsg());
    assert_int_equal(s, GQ_OK);
    gq_ckpt_close(ck);
}

static void free_ckpt_model(gq_model *m, gq_gqs *gqs) {
    for (int i = 0; i < m->cfg.n_layers * GQ_LIN_COUNT; i++) gq_gqs_free(&gqs[i]);
    free(gqs);
    gq_model_free(m);
}

/* --device reaches the stages through gq_runner_opts (not the environment): evaluate with device "cuda"
 * reruns on the GPU and records the CPU's perplexity (to rounding), or, without a GPU, fails with the
 * CUDA error recorded as the run's failure. */
static void test_device_option(void **st) {
    (void)st;
    if (!g_have_model) return;
    gq_runcfg c;
    gq_runner_result r;
    char store[512];
    snprintf(store, sizeof store, "%s/store.sqlite", g_dir);
    make_cfg(&c, "chain", 0.5, 4, NULL, NULL);
    gq_runner_opts o;
    gq_runner_opts_default(&o);
    o.force = GQ_STAGE_EVALUATE;
    o.device = "cuda";
    gq_status s = gq_runner_run(&c, &o, &r);
    if (gq_gpu_available() > 0) {
        assert_int_equal(s, GQ_OK);
        assert_true(fabs(ppl_of(store, r.run_id) / g_ref_ppl - 1) < 1e-3);
    } else {
        assert_int_not_equal(s, GQ_OK);
        assert_int_equal(r.failed_stage, GQ_STAGE_EVALUATE);
        assert_non_null(strstr(gq_errmsg(), "CUDA"));
    }
    o.device = NULL; /* and the CPU again: the same numbers as the first run */
    assert_int_equal(gq_runner_run(&c, &o, &r), GQ_OK);
    assert_true(ppl_of(store, r.run_id) == g_ref_ppl);
}

/* The training stages end to end: one-shot GQSA, then the same prefix + bqpo + e2e_oqp + evaluate. The
 * trained model must beat the one-shot one on held-out windows, both training losses must fall, the
 * loss curves must be in the store (and again for a fully resumed run), the checkpoints must keep the
 * masks (bqpo) and the codes (e2e_oqp), and the trained model restored from the checkpoints (by
 * e2e_oqp's load for a forced evaluate, by bqpo's load for a forced e2e_oqp) must give the same
 * perplexity bit for bit. */
static void test_training_stages(void **st) {
    (void)st;
    if (!g_have_model) return;
    double t_start = gq_now();
    char store[512];
    snprintf(store, sizeof store, "%s/train.sqlite", g_dir);
    gq_runcfg c;
    gq_runner_result r;
    make_train_cfg(&c, 0);
    assert_int_equal(run(&c, &r, -1), GQ_OK);
    double ppl_oneshot = ppl_of(store, r.run_id);

    double t0 = gq_now();
    make_train_cfg(&c, 1);
    assert_int_equal(run(&c, &r, -1), GQ_OK);
    printf("training run: %.2f s\n", gq_now() - t0);
    assert_int_equal(r.n_skipped, 4); /* calibrate .. quantize: the one-shot run's checkpoints */
    assert_int_equal(r.n_run, 3);
    int64_t id = r.run_id;
    double ppl = ppl_of(store, id);
    printf("c4 ppl: one-shot %.4f, +bqpo+e2e_oqp %.4f\n", ppl_oneshot, ppl);
    assert_true(isfinite(ppl) && ppl > 1);
    assert_true(ppl < ppl_oneshot);

    /* the losses the stages report fall */
    double mb = metric_of(store, id, "bqpo", "block_mse_before"), ma = metric_of(store, id, "bqpo", "block_mse_after");
    double lb = metric_of(store, id, "e2e_oqp", "train_loss_before"), la = metric_of(store, id, "e2e_oqp", "train_loss_after");
    printf("bqpo block MSE %.6g -> %.6g; e2e_oqp train CE %.6g -> %.6g\n", mb, ma, lb, la);
    assert_true(isfinite(mb) && isfinite(ma) && ma < mb);
    assert_true(isfinite(lb) && isfinite(la) && la < lb);

    /* loss curves: one point per optimizer step */
    int nb, ne;
    double *cb = curve_of(store, id, "bqpo", &nb), *ce = curve_of(store, id, "e2e_oqp", &ne);
    assert_true(nb > 0 && nb == (int)metric_of(store, id, "bqpo", "train_steps"));
    assert_int_equal(ne, TRAIN_E2E_EPOCHS * c.calib.nsamples); /* batch 1: one step per window per epoch */
    assert_true(ne == (int)metric_of(store, id, "e2e_oqp", "train_steps"));
    for (int i = 0; i < nb; i++) assert_true(isfinite(cb[i]) && cb[i] >= 0);
    /* the same windows in both epochs: the last epoch's mean loss is below the first's */
    double e0 = 0, e1 = 0;
    int per = ne / TRAIN_E2E_EPOCHS;
    for (int i = 0; i < per; i++) {
        assert_true(isfinite(ce[i]) && isfinite(ce[ne - per + i]));
        e0 += ce[i];
        e1 += ce[ne - per + i];
    }
    assert_true(e1 < e0);

    /* checkpoints: bqpo keeps quantize's masks and rewrites codes; e2e_oqp keeps bqpo's codes and masks
     * and rewrites scales */
    char pq[2048], pb[2048], pe[2048];
    ckpt_of(store, id, "quantize", pq, sizeof pq);
    ckpt_of(store, id, "bqpo", pb, sizeof pb);
    ckpt_of(store, id, "e2e_oqp", pe, sizeof pe);
    assert_true(gq_file_exists(pb) && gq_file_exists(pe));
    gq_model *mq, *mb_, *me;
    gq_gqs *gq_, *gb, *ge;
    read_ckpt_model(pq, &mq, &gq_);
    read_ckpt_model(pb, &mb_, &gb);
    read_ckpt_model(pe, &me, &ge);
    int codes_moved = 0, scales_moved = 0;
    for (int i = 0; i < mq->cfg.n_layers * GQ_LIN_COUNT; i++) {
        const gq_gqs *a = &gq_[i], *b = &gb[i], *e = &ge[i];
        assert_non_null(a->row_index);
        assert_non_null(b->row_index);
        assert_non_null(e->row_index);
        assert_true(a->nnz == b->nnz && b->nnz == e->nnz);
        assert_memory_equal(a->row_index, b->row_index, sizeof(int32_t) * (size_t)(a->N + 1));
        assert_memory_equal(a->group_col, b->group_col, sizeof(int32_t) * a->nnz);
        assert_memory_equal(b->row_index, e->row_index, sizeof(int32_t) * (size_t)(b->N + 1));
        assert_memory_equal(b->group_col, e->group_col, sizeof(int32_t) * b->nnz);
        size_t vb = b->nnz * gq_gqs_bytes_per_group(b->G, b->bits);
        assert_memory_equal(b->values, e->values, vb);
        codes_moved |= memcmp(a->values, b->values, vb) != 0;
        scales_moved |= memcmp(b->scales, e->scales, sizeof(float) * b->nnz) != 0;
    }
    assert_true(codes_moved && scales_moved);
    free_ckpt_model(mq, gq_);
    free_ckpt_model(mb_, gb);
    free_ckpt_model(me, ge);

    /* the same config again: every stage reused, the same numbers and curves recorded for the new run */
    assert_int_equal(run(&c, &r, -1), GQ_OK);
    assert_int_equal(r.n_run, 0);
    assert_int_equal(r.n_skipped, 7);
    assert_true(ppl_of(store, r.run_id) == ppl);
    int nb2, ne2;
    double *cb2 = curve_of(store, r.run_id, "bqpo", &nb2), *ce2 = curve_of(store, r.run_id, "e2e_oqp", &ne2);
    assert_int_equal(nb2, nb);
    assert_int_equal(ne2, ne);
    assert_memory_equal(cb2, cb, sizeof(double) * (size_t)nb);
    assert_memory_equal(ce2, ce, sizeof(double) * (size_t)ne);
    free(cb2);
    free(ce2);
    /* evaluate alone reruns: the trained model comes from e2e_oqp's checkpoint (its load) */
    assert_int_equal(run(&c, &r, GQ_STAGE_EVALUATE), GQ_OK);
    assert_int_equal(r.n_run, 1);
    assert_true(ppl_of(store, r.run_id) == ppl);
    /* e2e_oqp reruns from bqpo's checkpoint (its load): deterministic training, same model */
    assert_int_equal(run(&c, &r, GQ_STAGE_E2E_OQP), GQ_OK);
    assert_int_equal(r.n_run, 2);
    assert_true(ppl_of(store, r.run_id) == ppl);
    ce2 = curve_of(store, r.run_id, "e2e_oqp", &ne2);
    assert_int_equal(ne2, ne);
    assert_memory_equal(ce2, ce, sizeof(double) * (size_t)ne);
    free(ce2);
    free(cb);
    free(ce);

    /* the training report shows the curves */
    char out[600];
    snprintf(out, sizeof out, "%s/train_report", g_dir);
    gq_store *s;
    assert_int_equal(gq_store_open(store, &s), GQ_OK);
    gq_report_opts ro = {GQ_REPORT_TRAINING, out, NULL, 0};
    assert_int_equal(gq_report_write(s, &ro, NULL), GQ_OK);
    gq_store_close(s);
    char p[700], *md;
    size_t len;
    snprintf(p, sizeof p, "%s/training.md", out);
    assert_int_equal(gq_read_file(p, &md, &len), GQ_OK);
    char row[64];
    snprintf(row, sizeof row, "| run %lld e2e_oqp | %d |", (long long)r.run_id, ne);
    assert_non_null(strstr(md, row));
    snprintf(row, sizeof row, "| run %lld bqpo | %d |", (long long)r.run_id, nb);
    assert_non_null(strstr(md, row));
    free(md);
    printf("test_training_stages: %.2f s\n", gq_now() - t_start);
}

static void crash_hook(const char *point, gq_stage_id s) {
    if (!strcmp(point, "before_commit") && s == GQ_STAGE_SALIENCY) _exit(77);
}

static void test_atomic_checkpoint(void **st) {
    (void)st;
    if (!g_have_model) return;
    gq_runcfg c;
    make_cfg(&c, "crash", 0.5, 4, NULL, "crash.sqlite");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        gq_runner_set_hook(crash_hook);
        gq_runner_result r;
        gq_runner_opts o;
        gq_runner_opts_default(&o);
        gq_runner_run(&c, &o, &r);
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 77);
    /* the crash came after saliency's checkpoint was fully written to .tmp, before the rename: no
     * saliency-*.h5 exists, its .tmp does */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "ls %s/crash/saliency-*.h5 >/dev/null 2>&1", g_dir);
    assert_int_not_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "ls %s/crash/saliency-*.h5.tmp >/dev/null 2>&1", g_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "ls %s/crash/calibrate-*.h5 >/dev/null 2>&1", g_dir);
    assert_int_equal(system(cmd), 0);
    /* the resume reuses calibrate, redoes saliency over the stale .tmp, and matches the reference */
    gq_runner_result r;
    assert_int_equal(run(&c, &r, -1), GQ_OK);
    assert_int_equal(r.n_skipped, 1);
    assert_int_equal(r.n_run, 4);
    char store[512];
    snprintf(store, sizeof store, "%s/crash.sqlite", g_dir);
    if (g_ref_ppl > 0) assert_true(ppl_of(store, r.run_id) == g_ref_ppl);
    assert_int_equal(count(store, "SELECT count(*) FROM runs WHERE status = 'running'"), 1); /* the crashed one */
}

static void test_sigkill_resume(void **st) {
    (void)st;
    if (!g_have_model) return;
    uint64_t seed = (uint64_t)time(NULL);
    printf("sigkill seed %llu\n", (unsigned long long)seed);
    gq_rng rng;
    gq_rng_seed(&rng, seed);
    for (int trial = 0; trial < 3; trial++) {
        char tag[32], st_name[32];
        snprintf(tag, sizeof tag, "kill%d", trial);
        snprintf(st_name, sizeof st_name, "kill%d.sqlite", trial);
        gq_runcfg c;
        make_cfg(&c, tag, 0.5, 4, NULL, st_name);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            gq_runner_result r;
            gq_runner_opts o;
            gq_runner_opts_default(&o);
            _exit(gq_runner_run(&c, &o, &r) == GQ_OK ? 0 : 1);
        }
        useconds_t delay = (useconds_t)gq_rng_below(&rng, 2500000);
        usleep(delay);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        printf("trial %d: killed after %.3f s (%s)\n", trial, delay / 1e6, WIFSIGNALED(status) ? "mid-run" : "had finished");
        gq_runner_result r;
        assert_int_equal(run(&c, &r, -1), GQ_OK);
        char store[512];
        snprintf(store, sizeof store, "%s/%s", g_dir, st_name);
        double p = ppl_of(store, r.run_id);
        if (g_ref_ppl > 0 && p != g_ref_ppl) {
            fprintf(stderr, "trial %d: resumed ppl %.17g != uninterrupted %.17g\n", trial, p, g_ref_ppl);
            fail();
        }
    }
}

static void test_concurrent_runs_one_store(void **st) {
    (void)st;
    if (!g_have_model) return;
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            gq_runcfg c;
            char tag[16];
            snprintf(tag, sizeof tag, "conc%d", k);
            make_cfg(&c, tag, k ? 0.3 : 0.5, 4, NULL, "conc.sqlite");
            gq_runner_result r;
            gq_runner_opts o;
            gq_runner_opts_default(&o);
            _exit(gq_runner_run(&c, &o, &r) == GQ_OK ? 0 : 1);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status;
        waitpid(pids[k], &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    char store[512];
    snprintf(store, sizeof store, "%s/conc.sqlite", g_dir);
    assert_int_equal(count(store, "SELECT count(*) FROM runs WHERE status = 'done'"), 2);
    assert_int_equal(count(store, "SELECT count(*) FROM stages WHERE status = 'done'"), 10);
    assert_int_equal(count(store, "SELECT count(DISTINCT run_id) FROM metrics WHERE metric = 'ppl'"), 2);
}

static void test_sweeps_and_dry_run(void **st) {
    (void)st;
    const char *files[] = {"configs/demo_sweep.yaml", "configs/demo_table.yaml", "configs/smollm2_ablation.yaml",
                           "configs/smollm2_methods.yaml", "configs/smollm2_zeroshot.yaml",
                           "configs/smollm2_baselines_sweep.yaml", "configs/smollm2_zeroshot_cpu.yaml"};
    const int expect[] = {8, 12, 16, 13, 3, 20, 3};
    for (int i = 0; i < 7; i++) {
        gq_sweep_point *pts;
        int n;
        gq_status s = gq_sweep_load(files[i], &pts, &n);
        if (s) fprintf(stderr, "%s\n", gq_errmsg());
        assert_int_equal(s, GQ_OK);
        assert_int_equal(n, expect[i]);
        free(pts);
    }
    /* the paper's 7B config plans without its weights */
    gq_runcfg c;
    assert_int_equal(gq_runcfg_load("configs/llama2_7b_gqsa.yaml", &c), GQ_OK);
    assert_true(c.calib.nsamples == 4096 && c.calib.seqlen == 2048 && c.bqpo.lr == 1e-5 && c.bqpo.epochs == 5 &&
                c.e2e.epochs == 2 && c.method.group == 16 && c.method.bits == 4 && c.method.sparsity == 0.5);
    gq_runner_opts o;
    gq_runner_opts_default(&o);
    o.dry_run = 1;
    char plan[1 << 14];
    FILE *f = fmemopen(plan, sizeof plan, "w");
    o.plan = f;
    gq_runner_result r;
    assert_int_equal(gq_runner_run(&c, &o, &r), GQ_OK);
    fclose(f);
    assert_int_equal(r.todo, 7);
    assert_non_null(strstr(plan, "bqpo"));
    assert_int_equal(r.run_id, 0);
}

static int teardown(void **st) {
    (void)st;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_and_chaining),
        cmocka_unit_test(test_device_option),
        cmocka_unit_test(test_training_stages),
        cmocka_unit_test(test_atomic_checkpoint),
        cmocka_unit_test(test_sigkill_resume),
        cmocka_unit_test(test_concurrent_runs_one_store),
        cmocka_unit_test(test_sweeps_and_dry_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
