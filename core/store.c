/* store.c — the SQLite results store (contracts in store.h): schema, migrations, transactional writes
 * with SQLITE_BUSY retries, and a fault-injection hook for tests.
 * Must not: hold a transaction open across calls, or write outside a transaction.
 */
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct gq_store {
    sqlite3 *db;
    char path[1024];
    int version;
};

/* How long one statement waits on another writer's lock before SQLITE_BUSY, and how often a whole
 * transaction is retried after that: sweeps write a few rows per stage, so contention is short. */
#define STORE_BUSY_TIMEOUT_MS 10000
#define STORE_TXN_RETRIES 50

static int g_fault_countdown = 0;

void gq_store_fault_inject(int nth_step) { g_fault_countdown = nth_step; }

/* Returns an SQLite result code; the injected fault behaves like an I/O error on that step. */
static int store_step(sqlite3_stmt *stmt) {
    if (g_fault_countdown > 0 && --g_fault_countdown == 0) return SQLITE_IOERR;
    return sqlite3_step(stmt);
}

static gq_status db_err(gq_store *s, const char *what) {
    return gq_errf(GQ_ERR_DB, "%s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

static int exec_rc(gq_store *s, const char *sql) {
    if (g_fault_countdown > 0 && --g_fault_countdown == 0) return SQLITE_IOERR;
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

static void iso_now(char buf[32]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---------------------------------------------------------------- transactions */

/* A write transaction body: returns an SQLite result code (SQLITE_OK / SQLITE_DONE on success). */
typedef int (*txn_fn)(gq_store *s, void *arg);

static int is_busy(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

/* Run fn inside BEGIN IMMEDIATE .. COMMIT; on SQLITE_BUSY anywhere roll back and retry the whole
 * transaction (the body must be idempotent up to its rollback, which it is: nothing outside the
 * database changes). Any other failure rolls back and is returned as GQ_ERR_DB naming `what`. */
static gq_status store_txn(gq_store *s, const char *what, txn_fn fn, void *arg) {
    for (int attempt = 0;; attempt++) {
        int rc = exec_rc(s, "BEGIN IMMEDIATE");
        if (rc == SQLITE_OK) {
            rc = fn(s, arg);
            if (rc == SQLITE_OK || rc == SQLITE_DONE) rc = exec_rc(s, "COMMIT");
            if (rc != SQLITE_OK) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", sqlite3_errmsg(s->db));
                sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
                if (!is_busy(rc) || attempt >= STORE_TXN_RETRIES)
                    return gq_errf(GQ_ERR_DB, "%s: %s: %s (rolled back)", s->path, what,
                                   rc == SQLITE_IOERR ? "disk I/O error" : msg);
            } else {
                return GQ_OK;
            }
        } else if (!is_busy(rc) || attempt >= STORE_TXN_RETRIES) {
            return gq_errf(GQ_ERR_DB, "%s: %s: cannot begin a transaction: %s", s->path, what,
                           rc == SQLITE_IOERR ? "disk I/O error" : sqlite3_errmsg(s->db));
        }
        usleep((useconds_t)(1000 * (1 + attempt % 20))); /* back off, then retry */
    }
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v) sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(st, i);
}

/* ---------------------------------------------------------------- schema */

/* Version 1 (first release): runs, stages without input_hash, metrics. Kept verbatim: migrations
 * start from it, and tests build a real v1 file from the same text. */
static const char SCHEMA_V1[] =
    "CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, config_text TEXT, config_hash TEXT, model TEXT,"
    " git_revision TEXT, host TEXT, started TEXT, finished TEXT, status TEXT, message TEXT);"
    "CREATE TABLE stages (run_id INTEGER REFERENCES runs(id), name TEXT, status TEXT, seconds REAL,"
    " checkpoint_path TEXT, checkpoint_sha256 TEXT, message TEXT);"
    "CREATE TABLE metrics (run_id INTEGER REFERENCES runs(id), stage TEXT, metric TEXT, dataset TEXT, value REAL);"
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1);";

/* v1 -> v2: stages learn their input hash (resumption is audited from the store); benchmarks. */
static const char MIGRATE_V2[] =
    "ALTER TABLE stages ADD COLUMN input_hash TEXT;"
    "CREATE TABLE benchmarks (id INTEGER PRIMARY KEY AUTOINCREMENT, kernel TEXT, shape TEXT, sparsity REAL,"
    " bits INTEGER, grp INTEGER, time_us REAL, bytes REAL, gbps REAL, device TEXT, extra TEXT, recorded TEXT);"
    "UPDATE schema_version SET version = 2;";

/* v2 -> v3: training loss curves; indexes for the report and sweep queries. */
static const char MIGRATE_V3[] =
    "CREATE TABLE loss_curves (run_id INTEGER REFERENCES runs(id), stage TEXT, step INTEGER, loss REAL);"
    "CREATE INDEX IF NOT EXISTS runs_by_hash ON runs(config_hash, status);"
    "CREATE INDEX IF NOT EXISTS metrics_by_run ON metrics(run_id);"
    "CREATE INDEX IF NOT EXISTS stages_by_run ON stages(run_id);"
    "UPDATE schema_version SET version = 3;";

static const char *const MIGRATIONS[GQ_STORE_SCHEMA_VERSION + 1] = {NULL, SCHEMA_V1, MIGRATE_V2, MIGRATE_V3};


static int read_version(gq_store *s, int *v) {
    *v = 0;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) return SQLITE_OK; /* empty file: version 0 */
    if (rc != SQLITE_ROW) return rc;
    rc = sqlite3_prepare_v2(s->db, "SELECT max(version) FROM schema_version", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Runs inside the transaction so two processes opening an old store migrate it exactly once. */
static int migrate_body(gq_store *s, void *arg) {
    int *version = arg;
    int rc = read_version(s, version);
    if (rc != SQLITE_OK) return rc;
    if (*version > GQ_STORE_SCHEMA_VERSION) return SQLITE_OK; /* caller reports */
    for (int v = *version + 1; v <= GQ_STORE_SCHEMA_VERSION; v++) {
        rc = exec_rc(s, MIGRATIONS[v]);
        if (rc != SQLITE_OK) return rc;
        *version = v;
    }
    return SQLITE_OK;
}

gq_status gq_store_open(const char *path, gq_store **out) {
    GQ_ASSERT(path && out);
    *out = NULL;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        GQ_TRY(gq_mkdirs(dir));
    }
    gq_store *s = gq_calloc(1, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    gq_status st = GQ_OK;
    if (rc != SQLITE_OK) {
        st = gq_errf(GQ_ERR_DB, "%s: cannot open the results store: %s", path,
                     s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    /* WAL lets readers (reports) run beside writers; journal_mode is persistent in the file. A busy
     * database can refuse the switch for a moment: retry like a write. */
    for (int attempt = 0;; attempt++) {
        char *err = NULL;
        rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, &err);
        sqlite3_free(err);
        if (rc == SQLITE_OK) break;
        if (!is_busy(rc) || attempt >= STORE_TXN_RETRIES) {
            st = db_err(s, "cannot enable WAL (is it an SQLite file?)");
            goto fail;
        }
        usleep(2000);
    }
    sqlite3_exec(s->db, "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", NULL, NULL, NULL);
    st = store_txn(s, "migrating the schema", migrate_body, &s->version);
    if (st != GQ_OK) goto fail;
    if (s->version > GQ_STORE_SCHEMA_VERSION) {
        st = gq_errf(GQ_ERR_DB, "%s: schema version %d is newer than this build's %d: update gqsa", path, s->version,
                     GQ_STORE_SCHEMA_VERSION);
        goto fail;
    }
    *out = s;
    return GQ_OK;
fail:
    sqlite3_close(s->db);
    free(s);
    return st;
}

void gq_store_close(gq_store *s) {
    if (!s) return;
    sqlite3_close(s->db);
    free(s);
}

int gq_store_schema_version(gq_store *s) { return s->version; }
sqlite3 *gq_store_db(gq_store *s) { return s->db; }
const char *gq_store_path(const gq_store *s) { return s->path; }

/* ---------------------------------------------------------------- writes */

typedef struct {
    const char *config_text, *config_hash, *model, *git_revision;
    int64_t *run_id;
} run_begin_arg;

static int run_begin_body(gq_store *s, void *arg) {
    run_begin_arg *a = arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO runs (config_text, config_hash, model, git_revision, host, started, status)"
                                " VALUES (?, ?, ?, ?, ?, ?, 'running')",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    char now[32];
    iso_now(now);
    bind_text(st, 1, a->config_text);
    bind_text(st, 2, a->config_hash);
    bind_text(st, 3, a->model);
    bind_text(st, 4, a->git_revision);
    bind_text(st, 5, host);
    bind_text(st, 6, now);
    rc = store_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE) *a->run_id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

gq_status gq_store_run_begin(gq_store *s, const char *config_text, const char *config_hash, const char *model,
                             const char *git_revision, int64_t *run_id) {
    run_begin_arg a = {config_text, config_hash, model, git_revision, run_id};
    return store_txn(s, "recording a new run", run_begin_body, &a);
}

typedef struct { int64_t run_id; const char *status, *message; } run_finish_arg;

static int run_finish_body(gq_store *s, void *arg) {
    run_finish_arg *a = arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "UPDATE runs SET finished = ?, status = ?, message = ? WHERE id = ?", -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    char now[32];
    iso_now(now);
    bind_text(st, 1, now);
    bind_text(st, 2, a->status);
    bind_text(st, 3, a->message);
    sqlite3_bind_int64(st, 4, a->run_id);
    rc = store_step(st);
    sqlite3_finalize(st);
    return rc;
}

gq_status gq_store_run_finish(gq_store *s, int64_t run_id, const char *status, const char *message) {
    run_finish_arg a = {run_id, status, message};
    return store_txn(s, "finishing a run", run_finish_body, &a);
}

typedef struct {
    int64_t run_id;
    const gq_store_stage *st;
    const gq_store_metric *m;
    int n;
    const int64_t *steps; /* optional loss curve [n_loss] */
    const double *loss;
    int n_loss;
} stage_arg;

typedef struct { int64_t run_id; const char *stage; const int64_t *steps; const double *loss; int n; } loss_arg;
static int loss_body(gq_store *s, void *arg);

static int stage_body(gq_store *s, void *arg) {
    stage_arg *a = arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO stages (run_id, name, status, seconds, checkpoint_path, checkpoint_sha256,"
                                " input_hash, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    sqlite3_bind_int64(st, 1, a->run_id);
    bind_text(st, 2, a->st->name);
    bind_text(st, 3, a->st->status);
    sqlite3_bind_double(st, 4, a->st->seconds);
    bind_text(st, 5, a->st->checkpoint_path);
    bind_text(st, 6, a->st->checkpoint_sha256);
    bind_text(st, 7, a->st->input_hash);
    bind_text(st, 8, a->st->message);
    rc = store_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return rc;
    if (a->n_loss) {
        loss_arg la = {a->run_id, a->st->name, a->steps, a->loss, a->n_loss};
        rc = loss_body(s, &la);
        if (rc != SQLITE_DONE) return rc;
    }
    if (!a->n) return SQLITE_DONE;
    rc = sqlite3_prepare_v2(s->db, "INSERT INTO metrics (run_id, stage, metric, dataset, value) VALUES (?, ?, ?, ?, ?)",
                            -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    for (int i = 0; i < a->n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, a->run_id);
        bind_text(st, 2, a->st->name);
        bind_text(st, 3, a->m[i].metric);
        bind_text(st, 4, a->m[i].dataset);
        sqlite3_bind_double(st, 5, a->m[i].value);
        rc = store_step(st);
        if (rc != SQLITE_DONE) break;
    }
    sqlite3_finalize(st);
    return rc;
}

gq_status gq_store_stage_record(gq_store *s, int64_t run_id, const gq_store_stage *stg, const gq_store_metric *m,
                                int n_metrics) {
    return gq_store_stage_record_curve(s, run_id, stg, m, n_metrics, NULL, NULL, 0);
}

gq_status gq_store_stage_record_curve(gq_store *s, int64_t run_id, const gq_store_stage *stg, const gq_store_metric *m,
                                      int n_metrics, const int64_t *steps, const double *loss, int n_loss) {
    GQ_ASSERT(stg && stg->name && stg->status && n_metrics >= 0 && (m || !n_metrics));
    GQ_ASSERT(n_loss >= 0 && ((steps && loss) || !n_loss));
    stage_arg a = {run_id, stg, m, n_metrics, steps, loss, n_loss};
    return store_txn(s, "recording a stage", stage_body, &a);
}

typedef struct { const gq_store_bench *rows; int n; } bench_arg;

static int bench_body(gq_store *s, void *arg) {
    bench_arg *a = arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO benchmarks (kernel, shape, sparsity, bits, grp, time_us, bytes, gbps, device,"
                                " extra, recorded) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return rc;
    char now[32];
    iso_now(now);
    rc = SQLITE_DONE;
    for (int i = 0; i < a->n; i++) {
        const gq_store_bench *b = &a->rows[i];
        sqlite3_reset(st);
        bind_text(st, 1, b->kernel);
        bind_text(st, 2, b->shape);
        sqlite3_bind_double(st, 3, b->sparsity);
        sqlite3_bind_int(st, 4, b->bits);
        sqlite3_bind_int(st, 5, b->grp);
        sqlite3_bind_double(st, 6, b->time_us);
        sqlite3_bind_double(st, 7, b->bytes);
        sqlite3_bind_double(st, 8, b->gbps);
        bind_text(st, 9, b->device);
        bind_text(st, 10, b->extra);
        bind_text(st, 11, now);
        rc = store_step(st);
        if (rc != SQLITE_DONE) break;
    }
    sqlite3_finalize(st);
    return rc;
}

gq_status gq_store_bench_add(gq_store *s, const gq_store_bench *rows, int n) {
    bench_arg a = {rows, n};
    return store_txn(s, "recording benchmarks", bench_body, &a);
}

static int loss_body(gq_store *s, void *arg) {
    loss_arg *a = arg;
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(s->db, "INSERT INTO loss_curves (run_id, stage, step, loss) VALUES (?, ?, ?, ?)", -1, &st,
                                NULL);
    if (rc != SQLITE_OK) return rc;
    rc = SQLITE_DONE;
    for (int i = 0; i < a->n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, a->run_id);
        bind_text(st, 2, a->stage);
        sqlite3_bind_int64(st, 3, a->steps[i]);
        sqlite3_bind_double(st, 4, a->loss[i]);
        rc = store_step(st);
        if (rc != SQLITE_DONE) break;
    }
    sqlite3_finalize(st);
    return rc;
}

gq_status gq_store_loss_add(gq_store *s, int64_t run_id, const char *stage, const int64_t *steps, const double *loss,
                            int n) {
    loss_arg a = {run_id, stage, steps, loss, n};
    return store_txn(s, "recording a loss curve", loss_body, &a);
}

gq_status gq_store_find_done(gq_store *s, const char *config_hash, int64_t *run_id) {
    *run_id = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "SELECT max(id) FROM runs WHERE config_hash = ? AND status = 'done'", -1, &st, NULL) !=
        SQLITE_OK)
        return db_err(s, "looking up finished runs");
    bind_text(st, 1, config_hash);
    int rc;
    for (int attempt = 0; (rc = sqlite3_step(st)) == SQLITE_BUSY && attempt < STORE_TXN_RETRIES; attempt++) {
        sqlite3_reset(st);
        usleep(2000);
    }
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) *run_id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return db_err(s, "looking up finished runs");
    return GQ_OK;
}
