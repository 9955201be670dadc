/* report.c — report generation over the results store (contract in report.h).
 * Every number in a report comes from a store row; nothing is computed here except selecting,
 * sorting and formatting (and the mean of nothing is printed as "—", never 0).
 * Must not: write to the store.
 */
#include "report.h"

#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    int64_t id;
    gq_runcfg cfg;
    char git[64];
    char label[32];
    double ppl[GQ_DS_COUNT];
    double acc[GQ_ZS_N_TASKS], acc_norm[GQ_ZS_N_TASKS];
    double avg_acc, avg_acc_norm;
    double sparsity, bpw, tps;
} rrow;

static const char *const ZS_TITLE[GQ_ZS_N_TASKS] = {"PIQA", "ARC-e", "ARC-c", "HellaSwag", "Winogrande"};

void gq_report_label(const gq_runcfg *c, char *buf, size_t cap) {
    int s = (int)lround(c->method.sparsity * 100);
    int q = c->method.bits != GQ_BITS_NONE;
    if (c->method.name == GQ_METHOD_FP) snprintf(buf, cap, "FP");
    else if (q && c->method.nm_m) snprintf(buf, cap, "W%d %d:%d", c->method.bits, c->method.nm_n, c->method.nm_m);
    else if (q && s) snprintf(buf, cap, "W%dS%d", c->method.bits, s);
    else if (q) snprintf(buf, cap, "W%d", c->method.bits);
    else if (c->method.nm_m) snprintf(buf, cap, "%d:%d", c->method.nm_n, c->method.nm_m);
    else snprintf(buf, cap, "S%d", s);
    /* Table 8 rows differ only in the training stages they ran: say which */
    size_t n = strlen(buf);
    if (gq_runcfg_has_stage(c, GQ_STAGE_BQPO) && n < cap) n += (size_t)snprintf(buf + n, cap - n, " +BQPO");
    if (gq_runcfg_has_stage(c, GQ_STAGE_E2E_OQP) && n < cap)
        snprintf(buf + n, cap - n, gq_runcfg_has_stage(c, GQ_STAGE_BQPO) ? "+E2E-OQP" : " +E2E-OQP");
}

/* ---------------------------------------------------------------- loading */

static gq_status load_rows(gq_store *s, const char *model, rrow **out, int *n_out) {
    sqlite3 *db = gq_store_db(s);
    sqlite3_stmt *q, *qm;
    *out = NULL;
    *n_out = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, config_text, coalesce(git_revision, '') FROM runs WHERE status = 'done' AND id IN"
                           " (SELECT max(id) FROM runs WHERE status = 'done' GROUP BY config_hash) ORDER BY id",
                           -1, &q, NULL) != SQLITE_OK)
        return gq_errf(GQ_ERR_DB, "%s: %s", gq_store_path(s), sqlite3_errmsg(db));
    if (sqlite3_prepare_v2(db, "SELECT stage, metric, coalesce(dataset, ''), value FROM metrics WHERE run_id = ?", -1, &qm,
                           NULL) != SQLITE_OK) {
        sqlite3_finalize(q);
        return gq_errf(GQ_ERR_DB, "%s: %s", gq_store_path(s), sqlite3_errmsg(db));
    }
    rrow *rows = NULL;
    int n = 0, cap = 0, rc;
    gq_status st = GQ_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(q, 1);
        if (!text) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 32;
            rows = gq_realloc(rows, (size_t)cap * sizeof *rows);
        }
        rrow *r = &rows[n];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(q, 0);
        char fname[64];
        snprintf(fname, sizeof fname, "store run %lld", (long long)r->id);
        if (gq_runcfg_parse(text, strlen(text), fname, &r->cfg) != GQ_OK) {
            /* a run written by another version of the config schema: say so, keep going */
            fprintf(stderr, "gqsa report: skipping run %lld: %s\n", (long long)r->id, gq_errmsg());
            gq_err_clear();
            continue;
        }
        if (model && strcmp(model, r->cfg.model)) continue;
        snprintf(r->git, sizeof r->git, "%s", (const char *)sqlite3_column_text(q, 2));
        gq_report_label(&r->cfg, r->label, sizeof r->label);
        for (int d = 0; d < GQ_DS_COUNT; d++) r->ppl[d] = NAN;
        for (int t = 0; t < GQ_ZS_N_TASKS; t++) r->acc[t] = r->acc_norm[t] = NAN;
        r->avg_acc = r->avg_acc_norm = r->sparsity = r->bpw = r->tps = NAN;
        sqlite3_reset(qm);
        sqlite3_bind_int64(qm, 1, r->id);
        while (sqlite3_step(qm) == SQLITE_ROW) {
            const char *metric = (const char *)sqlite3_column_text(qm, 1);
            const char *ds = (const char *)sqlite3_column_text(qm, 2);
            double v = sqlite3_column_double(qm, 3);
            if (!metric || !ds) continue;
            if (!strcmp(metric, "ppl")) {
                for (int d = 0; d < GQ_DS_COUNT; d++)
                    if (!strcmp(ds, gq_dataset_name(d))) r->ppl[d] = v;
            } else if (!strcmp(metric, "acc") || !strcmp(metric, "acc_norm")) {
                for (int t = 0; t < GQ_ZS_N_TASKS; t++)
                    if (!strcmp(ds, gq_zs_task_name(t))) (metric[3] ? r->acc_norm : r->acc)[t] = v;
            } else if (!strcmp(metric, "avg_acc")) r->avg_acc = v;
            else if (!strcmp(metric, "avg_acc_norm")) r->avg_acc_norm = v;
            else if (!strcmp(metric, "sparsity")) r->sparsity = v;
            else if (!strcmp(metric, "bits_per_weight")) r->bpw = v;
            else if (!strcmp(metric, "tokens_per_s")) r->tps = v;
        }
        n++;
    }
    if (rc != SQLITE_DONE) st = gq_errf(GQ_ERR_DB, "%s: reading runs: %s", gq_store_path(s), sqlite3_errmsg(db));
    sqlite3_finalize(q);
    sqlite3_finalize(qm);
    if (st != GQ_OK) {
        free(rows);
        return st;
    }
    *out = rows;
    *n_out = n;
    return GQ_OK;
}

/* ---------------------------------------------------------------- output helpers */

typedef struct {
    const char *dir;
    int n_files;
} outctx;

static FILE *open_out(outctx *oc, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", oc->dir, name);
    FILE *f = fopen(path, "w");
    if (f) oc->n_files++;
    return f;
}

/* A report's <base>.md and <base>.csv, and <base>.tex when tex is not NULL: all of them, or none and
 * GQ_ERR_IO naming the report. */
static gq_status open_report(outctx *oc, const char *base, FILE **md, FILE **csv, FILE **tex) {
    FILE **f[3] = {md, csv, tex};
    const char *ext[3] = {"md", "csv", "tex"};
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        if (!f[i]) continue;
        char name[256];
        snprintf(name, sizeof name, "%s.%s", base, ext[i]);
        *f[i] = open_out(oc, name);
        ok = ok && *f[i];
    }
    if (ok) return GQ_OK;
    for (int i = 0; i < 3; i++)
        if (f[i] && *f[i]) fclose(*f[i]), *f[i] = NULL, oc->n_files--; /* none of them is a report */
    return gq_errf(GQ_ERR_IO, "%s: cannot write the %s report", oc->dir, base);
}

static void fmt_num(char *buf, size_t cap, double v, int prec) {
    if (isnan(v)) snprintf(buf, cap, "—");
    else snprintf(buf, cap, "%.*f", prec, v);
}
static void csv_num(FILE *f, double v) {
    if (isnan(v)) fputs(",", f);
    else fprintf(f, ",%.10g", v);
}

/* Distinct values of a per-row string, joined with "; ". */
typedef void (*row_str_fn)(const rrow *r, char *buf, size_t cap);
static void distinct(const rrow *rows, const int *idx, int n, row_str_fn fn, char *out, size_t cap) {
    out[0] = 0;
    char seen[32][256];
    int ns = 0;
    for (int i = 0; i < n; i++) {
        char b[256];
        fn(&rows[idx[i]], b, sizeof b);
        if (!b[0]) continue;
        int dup = 0;
        for (int j = 0; j < ns; j++)
            if (!strcmp(seen[j], b)) dup = 1;
        if (dup || ns == 32) continue;
        snprintf(seen[ns++], sizeof seen[0], "%s", b);
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", len ? "; " : "", b);
    }
}
static void s_calib(const rrow *r, char *b, size_t cap) {
    /* runs without calibration (FP) say nothing here rather than "none" beside the others' budget */
    if (!gq_runcfg_has_stage(&r->cfg, GQ_STAGE_CALIBRATE)) b[0] = 0;
    else
        snprintf(b, cap, "%d x %d tokens of %s (seed %llu)", r->cfg.calib.nsamples, r->cfg.calib.seqlen,
                 gq_dataset_name(r->cfg.calib.dataset), (unsigned long long)r->cfg.calib.seed);
}
static void s_eval(const rrow *r, char *b, size_t cap) {
    if (r->cfg.eval.limit)
        snprintf(b, cap, "seqlen %d, first %d windows per dataset (not the full protocol)", r->cfg.eval.seqlen, r->cfg.eval.limit);
    else snprintf(b, cap, "seqlen %d, every window (GPTQ protocol)", r->cfg.eval.seqlen);
}
static void s_git(const rrow *r, char *b, size_t cap) { snprintf(b, cap, "%s", r->git); }

static void header_md(FILE *f, const char *title, const char *model, const rrow *rows, const int *idx, int n,
                      const char *store) {
    char cal[2048], ev[2048], git[2048], now[32];
    distinct(rows, idx, n, s_calib, cal, sizeof cal);
    if (!cal[0]) snprintf(cal, sizeof cal, "none");
    distinct(rows, idx, n, s_eval, ev, sizeof ev);
    distinct(rows, idx, n, s_git, git, sizeof git);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%d %H:%M UTC", &tm);
    fprintf(f, "## %s — %s\n\n", title, model);
    fprintf(f, "- model: `%s`\n- perplexity data: WikiText-2 test / C4 validation, %s\n- calibration: %s\n", model, ev, cal);
    fprintf(f, "- git revision: %s\n- source: `%s` (%d run(s)), generated %s by `gqsa report`\n\n", git, store, n, now);
}

static void header_tex(FILE *f, const char *title, const char *model, const rrow *rows, const int *idx, int n) {
    char cal[2048], ev[2048], git[2048];
    distinct(rows, idx, n, s_calib, cal, sizeof cal);
    if (!cal[0]) snprintf(cal, sizeof cal, "none");
    distinct(rows, idx, n, s_eval, ev, sizeof ev);
    distinct(rows, idx, n, s_git, git, sizeof git);
    fprintf(f, "%% %s -- model %s\n%% perplexity: %s\n%% calibration: %s\n%% git revision: %s\n", title, model, ev, cal, git);
}

static void tex_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (strchr("&%$#_{}", *s)) fputc('\\', f);
        fputc(*s, f);
    }
}

/* Distinct models among rows, in first-seen order. */
static int models_of(const rrow *rows, int n, const char **out, int cap) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < m; j++)
            if (!strcmp(out[j], rows[i].cfg.model)) seen = 1;
        if (!seen && m < cap) out[m++] = rows[i].cfg.model;
    }
    return m;
}

/* ---------------------------------------------------------------- ablation (Table 12 shape) */

static int ablation_class(const rrow *r) {
    const gq_runcfg *c = &r->cfg;
    if (c->method.name == GQ_METHOD_FP) return 0;
    if (c->method.name != GQ_METHOD_GQSA) return -1;
    int q = c->method.bits != GQ_BITS_NONE, s = c->method.sparsity > 0;
    return s && !q ? 1 : q && !s ? 2 : 3;
}

static const rrow *g_sort_rows;
static int cmp_ablation(const void *a, const void *b) {
    const rrow *x = &g_sort_rows[*(const int *)a], *y = &g_sort_rows[*(const int *)b];
    int cx = ablation_class(x), cy = ablation_class(y);
    if (cx != cy) return cx - cy;
    if (x->cfg.method.bits != y->cfg.method.bits) return y->cfg.method.bits - x->cfg.method.bits;
    if (x->cfg.method.sparsity != y->cfg.method.sparsity) return x->cfg.method.sparsity < y->cfg.method.sparsity ? -1 : 1;
    if (x->cfg.method.group != y->cfg.method.group) return x->cfg.method.group - y->cfg.method.group;
    return x->id < y->id ? -1 : 1;
}

static gq_status report_ablation(outctx *oc, const rrow *rows, int n, const char *store) {
    FILE *md, *csv, *tex;
    GQ_TRY(open_report(oc, "ablation", &md, &csv, &tex));
    fprintf(csv, "model,label,method,sparsity,bits,group,wikitext2_ppl,c4_ppl,achieved_sparsity,run_id,calibration,evaluation,git\n");
    const char *models[64];
    int nm = models_of(rows, n, models, 64);
    int *idx = gq_malloc((size_t)(n ? n : 1) * sizeof *idx);
    for (int mi = 0; mi < nm; mi++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(rows[i].cfg.model, models[mi]) && ablation_class(&rows[i]) >= 0) idx[k++] = i;
        if (!k) continue;
        g_sort_rows = rows;
        qsort(idx, (size_t)k, sizeof *idx, cmp_ablation);
        header_md(md, "Sparsity / bit-width ablation (Table 12 shape)", models[mi], rows, idx, k, store);
        fprintf(md, "| Setting | G | WikiText-2 ppl | C4 ppl | achieved sparsity | run |\n|---|---:|---:|---:|---:|---:|\n");
        header_tex(tex, "Sparsity / bit-width ablation (Table 12 shape)", models[mi], rows, idx, k);
        fprintf(tex, "\\begin{tabular}{lrrr}\n\\toprule\nSetting & G & WikiText-2 & C4 \\\\\n\\midrule\n");
        for (int j = 0; j < k; j++) {
            const rrow *r = &rows[idx[j]];
            char w[32], c4[32], sp[32], g[16];
            fmt_num(w, sizeof w, r->ppl[GQ_DS_WIKITEXT2], 2);
            fmt_num(c4, sizeof c4, r->ppl[GQ_DS_C4], 2);
            fmt_num(sp, sizeof sp, r->sparsity, 3);
            if (r->cfg.method.name == GQ_METHOD_FP) snprintf(g, sizeof g, "—");
            else snprintf(g, sizeof g, "%d", r->cfg.method.group);
            fprintf(md, "| %s | %s | %s | %s | %s | %lld |\n", r->label, g, w, c4, sp, (long long)r->id);
            fprintf(tex, "%s & %s & %s & %s \\\\\n", r->label, g, isnan(r->ppl[0]) ? "--" : w, isnan(r->ppl[1]) ? "--" : c4);
            char cal[256], ev[256];
            s_calib(r, cal, sizeof cal);
            if (!cal[0]) snprintf(cal, sizeof cal, "none");
            s_eval(r, ev, sizeof ev);
            fprintf(csv, "%s,%s,%s,%.10g,%d,%d", r->cfg.model, r->label, gq_method_name(r->cfg.method.name),
                    r->cfg.method.sparsity, r->cfg.method.bits, r->cfg.method.group);
            csv_num(csv, r->ppl[GQ_DS_WIKITEXT2]);
            csv_num(csv, r->ppl[GQ_DS_C4]);
            csv_num(csv, r->sparsity);
            fprintf(csv, ",%lld,\"%s\",\"%s\",%s\n", (long long)r->id, cal, ev, r->git);
        }
        fprintf(md, "\nS = fraction of groups removed (%%), W = bits per kept weight; FP = the uncompressed model.\n\n");
        fprintf(tex, "\\bottomrule\n\\end{tabular}\n\n");
    }
    free(idx);
    fclose(md);
    fclose(csv);
    fclose(tex);
    return GQ_OK;
}

/* ---------------------------------------------------------------- methods (Table 2 shape) */

static int cmp_methods(const void *a, const void *b) {
    const rrow *x = &g_sort_rows[*(const int *)a], *y = &g_sort_rows[*(const int *)b];
    if (x->cfg.method.name != y->cfg.method.name) return (int)x->cfg.method.name - (int)y->cfg.method.name;
    if (x->cfg.method.bits != y->cfg.method.bits) return y->cfg.method.bits - x->cfg.method.bits;
    if (x->cfg.method.sparsity != y->cfg.method.sparsity) return x->cfg.method.sparsity < y->cfg.method.sparsity ? -1 : 1;
    if (x->cfg.method.group != y->cfg.method.group) return x->cfg.method.group - y->cfg.method.group;
    return x->id < y->id ? -1 : 1;
}

static gq_status report_methods(outctx *oc, const rrow *rows, int n, const char *store) {
    FILE *md, *csv, *tex;
    GQ_TRY(open_report(oc, "methods", &md, &csv, &tex));
    fprintf(csv, "model,method,setting,sparsity,bits,group,pattern,wikitext2_ppl,c4_ppl");
    for (int t = 0; t < GQ_ZS_N_TASKS; t++) fprintf(csv, ",%s_acc,%s_acc_norm", gq_zs_task_name(t), gq_zs_task_name(t));
    fprintf(csv, ",avg,run_id,calibration,evaluation,git\n");
    const char *models[64];
    int nm = models_of(rows, n, models, 64);
    int *idx = gq_malloc((size_t)(n ? n : 1) * sizeof *idx);
    for (int mi = 0; mi < nm; mi++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(rows[i].cfg.model, models[mi])) idx[k++] = i;
        g_sort_rows = rows;
        qsort(idx, (size_t)k, sizeof *idx, cmp_methods);
        header_md(md, "Method comparison (Table 2 shape)", models[mi], rows, idx, k, store);
        fprintf(md, "Zero-shot: acc_norm where lm-eval reports it, else acc (Winogrande); Avg = their mean.");
        int zlim = 0;
        for (int j = 0; j < k; j++)
            if (rows[idx[j]].cfg.eval.zeroshot_limit > zlim) zlim = rows[idx[j]].cfg.eval.zeroshot_limit;
        /* a subset's accuracy has a standard error of ~5 points at 100 items: say so next to the numbers */
        if (zlim > 0)
            fprintf(md, " **Subset:** at most the first %d items of each task (evaluation.zeroshot_limit), not the "
                        "full sets.", zlim);
        fprintf(md, "\n\n");
        fprintf(md, "| Method | Setting | G | WikiText-2 | C4 |");
        for (int t = 0; t < GQ_ZS_N_TASKS; t++) fprintf(md, " %s |", ZS_TITLE[t]);
        fprintf(md, " Avg | run |\n|---|---|---:|---:|---:|");
        for (int t = 0; t < GQ_ZS_N_TASKS; t++) fprintf(md, "---:|");
        fprintf(md, "---:|---:|\n");
        header_tex(tex, "Method comparison (Table 2 shape)", models[mi], rows, idx, k);
        fprintf(tex, "\\begin{tabular}{llrr%s r}\n\\toprule\nMethod & Setting & WikiText-2 & C4", "rrrrr");
        for (int t = 0; t < GQ_ZS_N_TASKS; t++) fprintf(tex, " & %s", ZS_TITLE[t]);
        fprintf(tex, " & Avg \\\\\n\\midrule\n");
        for (int j = 0; j < k; j++) {
            const rrow *r = &rows[idx[j]];
            char b[32];
            char g[16];
            if (r->cfg.method.name == GQ_METHOD_FP) snprintf(g, sizeof g, "—");
            else snprintf(g, sizeof g, "%d", r->cfg.method.group);
            fprintf(md, "| %s | %s | %s |", gq_method_name(r->cfg.method.name), r->label, g);
            fprintf(tex, "%s & %s", gq_method_name(r->cfg.method.name), r->label);
            for (int d = 0; d < GQ_DS_COUNT; d++) {
                fmt_num(b, sizeof b, r->ppl[d], 2);
                fprintf(md, " %s |", b);
                fprintf(tex, " & %s", isnan(r->ppl[d]) ? "--" : b);
            }
            for (int t = 0; t < GQ_ZS_N_TASKS; t++) {
                double v = isnan(r->acc_norm[t]) ? r->acc[t] : r->acc_norm[t];
                fmt_num(b, sizeof b, 100 * v, 1);
                fprintf(md, " %s |", b);
                fprintf(tex, " & %s", isnan(v) ? "--" : b);
            }
            fmt_num(b, sizeof b, 100 * r->avg_acc_norm, 1);
            fprintf(md, " %s | %lld |\n", b, (long long)r->id);
            fprintf(tex, " & %s \\\\\n", isnan(r->avg_acc_norm) ? "--" : b);
            char cal[256], ev[256];
            s_calib(r, cal, sizeof cal);
            if (!cal[0]) snprintf(cal, sizeof cal, "none");
            s_eval(r, ev, sizeof ev);
            fprintf(csv, "%s,%s,%s,%.10g,%d,%d,%d:%d", r->cfg.model, gq_method_name(r->cfg.method.name), r->label,
                    r->cfg.method.sparsity, r->cfg.method.bits, r->cfg.method.group, r->cfg.method.nm_n, r->cfg.method.nm_m);
            for (int d = 0; d < GQ_DS_COUNT; d++) csv_num(csv, r->ppl[d]);
            for (int t = 0; t < GQ_ZS_N_TASKS; t++) {
                csv_num(csv, r->acc[t]);
                csv_num(csv, r->acc_norm[t]);
            }
            csv_num(csv, r->avg_acc_norm);
            fprintf(csv, ",%lld,\"%s\",\"%s\",%s\n", (long long)r->id, cal, ev, r->git);
        }
        fprintf(md, "\n");
        fprintf(tex, "\\bottomrule\n\\end{tabular}\n\n");
    }
    free(idx);
    fclose(md);
    fclose(csv);
    fclose(tex);
    (void)tex_escape;
    return GQ_OK;
}

/* ---------------------------------------------------------------- plots */

static gq_status run_gnuplot(outctx *oc, const char *script, int plots) {
    if (!plots) return GQ_OK;
    char cmd[2600];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot '%s' 2>gnuplot.log", oc->dir, script);
    int rc = system(cmd);
    if (rc != 0)
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s/%s: gnuplot failed (exit %d; see %s/gnuplot.log): tables are written, plots are not",
                       oc->dir, script, rc, oc->dir);
    return GQ_OK;
}

/* One figure, PNG and SVG, from `ncurves` data blocks of <base>.dat. */
static void write_gp(FILE *gp, const char *base, const char *title, const char *xlabel, const char *ylabel, int logx,
                     int ncurves, char titles[][64]) {
    for (int term = 0; term < 2; term++) {
        fprintf(gp, "%s\nset output '%s.%s'\n", term ? "set terminal svg size 720,480 dynamic" : "set terminal pngcairo size 720,480",
                base, term ? "svg" : "png");
        /* perplexity spans orders of magnitude across a sweep (FP ~20, broken settings ~1e6), and so do
         * losses of different kinds (block MSE ~1e-3, cross-entropy ~1): log axis */
        fprintf(gp, "set title \"%s\" noenhanced\nset xlabel '%s'\nset ylabel '%s (log scale)'\nset logscale y 10\n"
                    "set grid\nset key top left\n%s\n",
                title, xlabel, ylabel, logx ? "set logscale x 2" : "unset logscale x");
        fprintf(gp, "plot ");
        for (int c = 0; c < ncurves; c++)
            fprintf(gp, "%s'%s.dat' index %d using 1:2 with linespoints title \"%s\" noenhanced", c ? ", " : "", base, c,
                    titles[c]);
        fprintf(gp, "\n");
    }
}

static gq_status report_groups(outctx *oc, const rrow *rows, int n, const char *store, int plots) {
    FILE *md, *csv;
    GQ_TRY(open_report(oc, "groups", &md, &csv, NULL));
    fprintf(csv, "model,curve,bits,sparsity,group,dataset,ppl,run_id,git\n");
    const char *models[64];
    int nm = models_of(rows, n, models, 64);
    int *idx = gq_malloc((size_t)(n ? n : 1) * sizeof *idx);
    gq_status st = GQ_OK;
    /* the figures cover the first model that has data (one figure per model would need one name each) */
    int fig_done = 0;
    for (int mi = 0; mi < nm; mi++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (!strcmp(rows[i].cfg.model, models[mi]) && rows[i].cfg.method.name == GQ_METHOD_GQSA) idx[k++] = i;
        if (!k) continue;
        g_sort_rows = rows;
        qsort(idx, (size_t)k, sizeof *idx, cmp_ablation);
        header_md(md, "Group size and sparsity curves (Figure 8 shape)", models[mi], rows, idx, k, store);
        /* the paper plots WikiText-2; fall back to C4 when no run measured WikiText-2 */
        int ds = GQ_DS_C4;
        for (int a = 0; a < k; a++)
            if (!isnan(rows[idx[a]].ppl[GQ_DS_WIKITEXT2])) ds = GQ_DS_WIKITEXT2;
        const char *dsname = ds == GQ_DS_WIKITEXT2 ? "WikiText-2" : "C4";
        /* curve A: ppl vs group size, one curve per (bits, sparsity) with both > 0 */
        /* curve B: ppl vs sparsity, one curve per (bits, group), sparsity > 0 */
        for (int fig = 0; fig < 2; fig++) {
            const char *base = fig ? "fig_sparsity" : "fig_group";
            FILE *dat = NULL, *gp = NULL;
            if (!fig_done) {
                dat = open_out(oc, fig ? "fig_sparsity.dat" : "fig_group.dat");
                gp = open_out(oc, fig ? "fig_sparsity.gp" : "fig_group.gp");
            }
            char titles[32][64];
            int nc = 0;
            fprintf(md, "### perplexity (%s) vs %s\n\n| curve | %s | ppl | run |\n|---|---:|---:|---:|\n", dsname,
                    fig ? "sparsity" : "group size", fig ? "sparsity" : "G");
            int used[4096] = {0};
            for (int a = 0; a < k && a < 4096; a++) {
                const rrow *ra = &rows[idx[a]];
                if (used[a] || isnan(ra->ppl[ds])) continue;
                int ok = fig ? ra->cfg.method.sparsity > 0 : (ra->cfg.method.sparsity > 0 && ra->cfg.method.bits != GQ_BITS_NONE);
                if (!ok) continue;
                char ctitle[64];
                if (fig && ra->cfg.method.bits == GQ_BITS_NONE) snprintf(ctitle, sizeof ctitle, "sparsity only, G%d", ra->cfg.method.group);
                else if (fig) snprintf(ctitle, sizeof ctitle, "W%d G%d", ra->cfg.method.bits, ra->cfg.method.group);
                else snprintf(ctitle, sizeof ctitle, "W%dS%d", ra->cfg.method.bits, (int)lround(100 * ra->cfg.method.sparsity));
                /* collect the curve's points, ordered by x */
                int pts[4096], np = 0;
                for (int b = a; b < k && b < 4096; b++) {
                    const rrow *rb = &rows[idx[b]];
                    if (used[b] || isnan(rb->ppl[ds])) continue;
                    int same = fig ? (rb->cfg.method.sparsity > 0 && rb->cfg.method.bits == ra->cfg.method.bits &&
                                      rb->cfg.method.group == ra->cfg.method.group)
                                   : (rb->cfg.method.bits == ra->cfg.method.bits &&
                                      rb->cfg.method.sparsity == ra->cfg.method.sparsity);
                    if (!same) continue;
                    used[b] = 1;
                    pts[np++] = b;
                }
                for (int x = 1; x < np; x++)
                    for (int y = x; y > 0; y--) {
                        const rrow *p0 = &rows[idx[pts[y - 1]]], *p1 = &rows[idx[pts[y]]];
                        double v0 = fig ? p0->cfg.method.sparsity : p0->cfg.method.group;
                        double v1 = fig ? p1->cfg.method.sparsity : p1->cfg.method.group;
                        if (v1 < v0) {
                            int t = pts[y];
                            pts[y] = pts[y - 1];
                            pts[y - 1] = t;
                        }
                    }
                if (dat) fprintf(dat, "%s# %s\n", nc ? "\n\n" : "", ctitle);
                for (int q = 0; q < np; q++) {
                    const rrow *r = &rows[idx[pts[q]]];
                    double xv = fig ? r->cfg.method.sparsity : r->cfg.method.group;
                    if (dat) fprintf(dat, "%.10g %.10g\n", xv, r->ppl[ds]);
                    fprintf(md, "| %s | %g | %.2f | %lld |\n", ctitle, xv, r->ppl[ds], (long long)r->id);
                    fprintf(csv, "%s,%s,%d,%.10g,%d,%s,%.10g,%lld,%s\n", r->cfg.model, ctitle, r->cfg.method.bits,
                            r->cfg.method.sparsity, r->cfg.method.group, gq_dataset_name(ds), r->ppl[ds], (long long)r->id, r->git);
                }
                if (nc < 32) snprintf(titles[nc++], 64, "%s", ctitle);
            }
            fprintf(md, "\n");
            if (dat) fclose(dat);
            if (gp) {
                char title[256];
                snprintf(title, sizeof title, "%s: %s perplexity vs %s", models[mi], dsname, fig ? "sparsity" : "group size");
                if (nc)
                    write_gp(gp, base, title, fig ? "sparsity (fraction of groups removed)" : "group size G", "perplexity",
                             !fig, nc, titles);
                fclose(gp);
                if (nc && st == GQ_OK) {
                    st = run_gnuplot(oc, fig ? "fig_sparsity.gp" : "fig_group.gp", plots);
                    if (st == GQ_OK && plots) oc->n_files += 2;
                }
                if (nc) fprintf(md, "![%s](%s.png)\n\n", title, base);
                else fprintf(md, "(no runs for this curve: nothing plotted)\n\n");
            }
        }
        fig_done = 1;
    }
    free(idx);
    fclose(md);
    fclose(csv);
    return st;
}

static gq_status report_training(outctx *oc, gq_store *s, int plots) {
    FILE *md, *csv;
    GQ_TRY(open_report(oc, "training", &md, &csv, NULL));
    fprintf(csv, "run_id,stage,step,loss\n");
    fprintf(md, "## Training loss curves (BQPO, E2E-OQP)\n\n- source: `%s`, the latest finished run of each config\n"
                "- one value per optimizer step: bqpo = the batch's block-output MSE against the full-precision block\n"
                "  (steps numbered through the blocks in order, so the curve restarts at each block); e2e_oqp = mean\n"
                "  next-token cross-entropy of the whole model (nats/token)\n\n",
            gq_store_path(s));
    sqlite3_stmt *q;
    sqlite3 *db = gq_store_db(s);
    int rows = 0;
    FILE *dat = NULL;
    char titles[32][64];
    long npts[32] = {0};         /* per curve (the first 32): points, first and last loss */
    double first[32], lastv[32];
    int nc = 0, ncurves = 0;
    int64_t last_run = -1;
    char last_stage[32] = "";
    if (sqlite3_prepare_v2(db,
                           "SELECT run_id, stage, step, loss FROM loss_curves WHERE run_id IN (SELECT max(id) FROM runs"
                           " WHERE status = 'done' GROUP BY config_hash) ORDER BY run_id, stage, step",
                           -1, &q, NULL) ==
        SQLITE_OK) {
        while (sqlite3_step(q) == SQLITE_ROW) {
            int64_t run = sqlite3_column_int64(q, 0);
            const char *stage = (const char *)sqlite3_column_text(q, 1);
            if (!stage) stage = "";
            if (!dat) dat = open_out(oc, "fig_training.dat");
            if (run != last_run || strcmp(stage, last_stage)) {
                if (dat) fprintf(dat, "%s# run %lld %s\n", ncurves ? "\n\n" : "", (long long)run, stage);
                if (nc < 32) snprintf(titles[nc++], 64, "run %lld %s", (long long)run, stage);
                ncurves++;
                last_run = run;
                snprintf(last_stage, sizeof last_stage, "%s", stage);
            }
            int64_t step = sqlite3_column_int64(q, 2);
            double loss = sqlite3_column_double(q, 3);
            if (ncurves <= 32) {
                int c = ncurves - 1;
                if (!npts[c]++) first[c] = loss;
                lastv[c] = loss;
            }
            fprintf(csv, "%lld,%s,%lld,%.10g\n", (long long)run, stage, (long long)step, loss);
            if (dat) fprintf(dat, "%lld %.10g\n", (long long)step, loss);
            rows++;
        }
        sqlite3_finalize(q);
    }
    gq_status st = GQ_OK;
    if (dat) fclose(dat);
    if (!rows) {
        fprintf(md, "No loss curves in this store: no finished run listed the bqpo or e2e_oqp stage.\n");
    } else {
        fprintf(md, "%d loss value(s) in %d curve(s): training.csv, fig_training.png\n\n| curve | steps | first loss | last loss |\n"
                    "|---|---:|---:|---:|\n", rows, ncurves);
        for (int c = 0; c < nc; c++)
            fprintf(md, "| %s | %ld | %.6g | %.6g |\n", titles[c], npts[c], first[c], lastv[c]);
        if (ncurves > nc) fprintf(md, "\n(table and plot show the first %d curves; training.csv has all)\n", nc);
        FILE *gp = open_out(oc, "fig_training.gp");
        if (gp) {
            write_gp(gp, "fig_training", "training loss", "optimizer step", "loss", 0, nc, titles);
            fclose(gp);
            st = run_gnuplot(oc, "fig_training.gp", plots);
            if (st == GQ_OK && plots) oc->n_files += 2;
        }
    }
    fclose(md);
    fclose(csv);
    return st;
}

gq_status gq_report_write(gq_store *s, const gq_report_opts *o, int *n_files) {
    GQ_ASSERT(s && o && o->out_dir);
    if (n_files) *n_files = 0;
    GQ_TRY(gq_mkdirs(o->out_dir));
    rrow *rows;
    int n;
    GQ_TRY(load_rows(s, o->model, &rows, &n));
    outctx oc = {o->out_dir, 0};
    gq_status st = GQ_OK, plot_st = GQ_OK;
    if (o->kinds & GQ_REPORT_ABLATION) st = report_ablation(&oc, rows, n, gq_store_path(s));
    if (st == GQ_OK && (o->kinds & GQ_REPORT_METHODS)) st = report_methods(&oc, rows, n, gq_store_path(s));
    if (st == GQ_OK && (o->kinds & GQ_REPORT_GROUPS)) {
        gq_status g = report_groups(&oc, rows, n, gq_store_path(s), o->plots);
        if (g == GQ_ERR_UNSUPPORTED) plot_st = g;
        else st = g;
    }
    if (st == GQ_OK && (o->kinds & GQ_REPORT_TRAINING)) {
        gq_status g = report_training(&oc, s, o->plots);
        if (g == GQ_ERR_UNSUPPORTED) plot_st = g;
        else st = g;
    }
    free(rows);
    if (n_files) *n_files = oc.n_files;
    return st != GQ_OK ? st : plot_st;
}
