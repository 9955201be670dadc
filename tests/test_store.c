/* test_store.c — the SQLite results store: round trip, migration of a real v1 file written here with
 * the v1 DDL, several processes writing at once (fork) losing nothing, an injected I/O fault in the
 * middle of a multi-row record leaving nothing half-written, and a newer-schema file refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"

static char g_dir[256];

static void tmp_path(char *buf, size_t cap, const char *name) {
    if (!g_dir[0]) {
        snprintf(g_dir, sizeof g_dir, "/tmp/gqsa_test_store_XXXXXX");
        assert_non_null(mkdtemp(g_dir));
    }
    snprintf(buf, cap, "%s/%s", g_dir, name);
    unlink(buf);
}

static long count(const char *path, const char *sql) {
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_roundtrip(void **st) {
    (void)st;
    char p[512];
    tmp_path(p, sizeof p, "a.sqlite");
    gq_store *s;
    assert_int_equal(gq_store_open(p, &s), GQ_OK);
    assert_int_equal(gq_store_schema_version(s), GQ_STORE_SCHEMA_VERSION);
    int64_t id, found;
    assert_int_equal(gq_store_run_begin(s, "model: x\n", "h1", "x", "rev", &id), GQ_OK);
    assert_int_equal(gq_store_find_done(s, "h1", &found), GQ_OK);
    assert_int_equal(found, 0); /* still running */
    gq_store_stage row = {"evaluate", "done", 1.5, "c.h5", "abc", "ih", NULL};
    gq_store_metric m[2] = {{"ppl", "wikitext2", 12.25}, {"ppl", "c4", 15.5}};
    assert_int_equal(gq_store_stage_record(s, id, &row, m, 2), GQ_OK);
    assert_int_equal(gq_store_run_finish(s, id, "done", NULL), GQ_OK);
    assert_int_equal(gq_store_find_done(s, "h1", &found), GQ_OK);
    assert_int_equal(found, id);
    gq_store_bench b = {"gqs_gemv", "4096x4096", 0.5, 4, 16, 12.5, 1e6, 80.0, "cpu", NULL};
    assert_int_equal(gq_store_bench_add(s, &b, 1), GQ_OK);
    int64_t steps[3] = {0, 1, 2};
    double loss[3] = {3.0, 2.5, 2.25};
    assert_int_equal(gq_store_loss_add(s, id, "bqpo", steps, loss, 3), GQ_OK);
    gq_store_close(s);
    assert_int_equal(count(p, "SELECT count(*) FROM metrics WHERE run_id = 1 AND value = 12.25"), 1);
    assert_int_equal(count(p, "SELECT count(*) FROM loss_curves"), 3);
    assert_int_equal(count(p, "SELECT count(*) FROM benchmarks WHERE gbps = 80"), 1);
    /* WAL is on */
    sqlite3 *db;
    sqlite3_open(p, &db);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(db);
}

/* The v1 schema as the first release wrote it (copied here on purpose: the test must not depend on
 * store.c's own copy to build the "old" file). */
static const char *V1 =
    "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, config_text TEXT, config_hash TEXT, model TEXT,"
    " git_revision TEXT, host TEXT, started TEXT, finished TEXT, status TEXT, message TEXT);"
    "CREATE TABLE stages (run_id INTEGER REFERENCES runs(id), name TEXT, status TEXT, seconds REAL,"
    " checkpoint_path TEXT, checkpoint_sha256 TEXT, message TEXT);"
    "CREATE TABLE metrics (run_id INTEGER REFERENCES runs(id), stage TEXT, metric TEXT, dataset TEXT, value REAL);"
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1);"
    "INSERT INTO runs (config_text, config_hash, model, status) VALUES ('model: a', 'hA', 'a', 'done');"
    "INSERT INTO runs (config_text, config_hash, model, status) VALUES ('model: b', 'hB', 'b', 'failed');"
    "INSERT INTO stages VALUES (1, 'calibrate', 'done', 2.0, 'x.h5', 'deadbeef', NULL);"
    "INSERT INTO metrics VALUES (1, 'evaluate', 'ppl', 'wikitext2', 7.5);"
    "INSERT INTO metrics VALUES (1, 'evaluate', 'ppl', 'c4', 9.25);";

static void test_migration(void **st) {
    (void)st;
    char p[512];
    tmp_path(p, sizeof p, "v1.sqlite");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, V1, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    gq_store *s;
    assert_int_equal(gq_store_open(p, &s), GQ_OK);
    assert_int_equal(gq_store_schema_version(s), 3);
    int64_t found;
    assert_int_equal(gq_store_find_done(s, "hA", &found), GQ_OK);
    assert_int_equal(found, 1);
    /* new columns and tables are usable */
    gq_store_stage row = {"prune", "done", 1.0, NULL, NULL, "inputhash", NULL};
    assert_int_equal(gq_store_stage_record(s, 1, &row, NULL, 0), GQ_OK);
    gq_store_bench b = {"k", "s", 0, 4, 16, 1, 1, 1, "cpu", NULL};
    assert_int_equal(gq_store_bench_add(s, &b, 1), GQ_OK);
    gq_store_close(s);
    assert_int_equal(count(p, "SELECT count(*) FROM runs"), 2);
    assert_int_equal(count(p, "SELECT count(*) FROM metrics WHERE (dataset = 'wikitext2' AND value = 7.5) OR "
                              "(dataset = 'c4' AND value = 9.25)"),
                     2);
    assert_int_equal(count(p, "SELECT count(*) FROM stages WHERE checkpoint_sha256 = 'deadbeef' AND input_hash IS NULL"), 1);
    assert_int_equal(count(p, "SELECT count(*) FROM stages WHERE input_hash = 'inputhash'"), 1);
    assert_int_equal(count(p, "SELECT max(version) FROM schema_version"), 3);
    /* opening again is a no-op */
    assert_int_equal(gq_store_open(p, &s), GQ_OK);
    gq_store_close(s);
    assert_int_equal(count(p, "SELECT count(*) FROM schema_version"), 1);
}

static void test_newer_schema_refused(void **st) {
    (void)st;
    char p[512];
    tmp_path(p, sizeof p, "future.sqlite");
    gq_store *s;
    assert_int_equal(gq_store_open(p, &s), GQ_OK);
    gq_store_close(s);
    sqlite3 *db;
    sqlite3_open(p, &db);
    sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL, NULL);
    sqlite3_close(db);
    assert_int_equal(gq_store_open(p, &s), GQ_ERR_DB);
    assert_non_null(strstr(gq_errmsg(), "newer"));
}

#define N_PROC 4
#define N_REC 40

static void test_concurrent_writers(void **st) {
    (void)st;
    char p[512];
    tmp_path(p, sizeof p, "conc.sqlite");
    pid_t pids[N_PROC];
    for (int k = 0; k < N_PROC; k++) {
        pids[k] = fork();
        assert_true(pids[k] >= 0);
        if (pids[k] == 0) {
            /* every child opens the (maybe not yet created) store itself: creation races too */
            gq_store *s;
            if (gq_store_open(p, &s) != GQ_OK) {
                fprintf(stderr, "child %d: %s\n", k, gq_errmsg());
                _exit(1);
            }
            for (int i = 0; i < N_REC; i++) {
                int64_t id;
                char h[32];
                snprintf(h, sizeof h, "p%d-%d", k, i);
                gq_store_stage row = {"evaluate", "done", 0.1, NULL, NULL, h, NULL};
                gq_store_metric m[3] = {{"ppl", "wikitext2", k * 1000 + i}, {"ppl", "c4", 1}, {"acc", "piqa", 0.5}};
                if (gq_store_run_begin(s, "cfg", h, "m", "r", &id) || gq_store_stage_record(s, id, &row, m, 3) ||
                    gq_store_run_finish(s, id, "done", NULL)) {
                    fprintf(stderr, "child %d: %s\n", k, gq_errmsg());
                    _exit(1);
                }
            }
            gq_store_close(s);
            _exit(0);
        }
    }
    for (int k = 0; k < N_PROC; k++) {
        int status;
        assert_int_equal(waitpid(pids[k], &status, 0), pids[k]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(count(p, "SELECT count(*) FROM runs WHERE status = 'done'"), N_PROC * N_REC);
    assert_int_equal(count(p, "SELECT count(*) FROM stages"), N_PROC * N_REC);
    assert_int_equal(count(p, "SELECT count(*) FROM metrics"), 3 * N_PROC * N_REC);
    assert_int_equal(count(p, "SELECT count(DISTINCT value) FROM metrics WHERE dataset = 'wikitext2'"), N_PROC * N_REC);
    /* each metric row belongs to the run its process created */
    assert_int_equal(count(p, "SELECT count(*) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE m.dataset = 'wikitext2'"
                              " AND r.config_hash != ('p' || CAST(CAST(m.value AS INTEGER) / 1000 AS TEXT) || '-' ||"
                              " CAST(CAST(m.value AS INTEGER) % 1000 AS TEXT))"),
                     0);
}

static void test_fault_injection(void **st) {
    (void)st;
    char p[512];
    tmp_path(p, sizeof p, "fault.sqlite");
    gq_store *s;
    assert_int_equal(gq_store_open(p, &s), GQ_OK);
    int64_t id;
    assert_int_equal(gq_store_run_begin(s, "cfg", "h", "m", "r", &id), GQ_OK);
    gq_store_metric m[5] = {{"a", NULL, 1}, {"b", NULL, 2}, {"c", NULL, 3}, {"d", NULL, 4}, {"e", NULL, 5}};
    gq_store_stage row = {"evaluate", "done", 1, NULL, NULL, NULL, NULL};
    /* steps: BEGIN (1), stage insert (2), metric a (3), metric b (4) fails, ... */
    for (int nth = 1; nth <= 8; nth++) {
        gq_store_fault_inject(nth);
        gq_status rc = gq_store_stage_record(s, id, &row, m, 5);
        gq_store_fault_inject(0);
        long stages = count(p, "SELECT count(*) FROM stages"), metrics = count(p, "SELECT count(*) FROM metrics");
        if (rc == GQ_OK) {
            /* the fault fell after the last step (COMMIT is step 8): everything is there */
            assert_int_equal(stages, 1);
            assert_int_equal(metrics, 5);
            break;
        }
        assert_int_equal(rc, GQ_ERR_DB);
        assert_non_null(strstr(gq_errmsg(), "fault.sqlite"));
        assert_int_equal(stages, 0);  /* nothing half-written */
        assert_int_equal(metrics, 0);
    }
    gq_store_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),         cmocka_unit_test(test_migration),
        cmocka_unit_test(test_newer_schema_refused), cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
