/* runner.c — the pipeline runner (contract in runner.h): input-hash chaining, skip/run decisions,
 * atomic checkpoints, store records, the dry-run plan.
 *
 * How to add a stage: see stages/stage.h; the runner needs no change beyond the table in
 * stage_common.c, because order comes from gq_stage_id and resumption from the stage's hash fn.
 * Must not: know what a stage computes, print to stdout except the plan, exit.
 */
#include "runner.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/store.h"

static gq_runner_hook g_hook = NULL;
void gq_runner_set_hook(gq_runner_hook h) { g_hook = h; }
static void hook(const char *point, gq_stage_id s) {
    if (g_hook) g_hook(point, s);
}

void gq_runner_opts_default(gq_runner_opts *o) {
    memset(o, 0, sizeof *o);
    o->force = -1;
}

/* ---------------------------------------------------------------- git revision, without running git */

static int read_line(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

void gq_runner_git_revision(char *buf, size_t cap) {
    const char *env = getenv("GQSA_GIT_REVISION");
    if (env && *env) {
        snprintf(buf, cap, "%s", env);
        return;
    }
    snprintf(buf, cap, "unknown");
    char head[512];
    if (read_line(".git/HEAD", head, sizeof head)) return;
    if (strncmp(head, "ref: ", 5)) {
        snprintf(buf, cap, "%.12s", head); /* detached HEAD: the hash itself */
        return;
    }
    char path[600], rev[128];
    snprintf(path, sizeof path, ".git/%s", head + 5);
    if (!read_line(path, rev, sizeof rev)) {
        snprintf(buf, cap, "%.12s", rev);
        return;
    }
    FILE *f = fopen(".git/packed-refs", "r"); /* refs may live only in packed-refs */
    if (!f) return;
    char line[700];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *sp = strchr(line, ' ');
        if (sp && !strcmp(sp + 1, head + 5)) {
            snprintf(buf, cap, "%.12s", line);
            break;
        }
    }
    fclose(f);
}

/* ---------------------------------------------------------------- model identity */

/* Files larger than this are identified by size and mtime instead of content: hashing 13 GB of
 * 7B weights at every `gqsa run` would cost more than the stages it lets us skip. */
#define MODEL_HASH_MAX_BYTES ((off_t)2 << 30)

static gq_status hash_file_identity(gq_sha256 *h, const char *path) {
    struct stat sb;
    if (stat(path, &sb)) return gq_errf(GQ_ERR_IO, "%s: cannot stat", path);
    char line[1400];
    if (S_ISREG(sb.st_mode) && sb.st_size <= MODEL_HASH_MAX_BYTES) {
        char hex[65];
        GQ_TRY(gq_sha256_file(path, hex));
        snprintf(line, sizeof line, "file sha256=%s\n", hex);
    } else {
        snprintf(line, sizeof line, "file %s size=%lld mtime=%lld\n", path, (long long)sb.st_size, (long long)sb.st_mtime);
    }
    gq_sha256_update(h, line, strlen(line));
    return GQ_OK;
}

/* Resolve cfg->model to a path (into ctx->model_path) and hash what identifies the model: its file(s)
 * and a tokenizer given in the config or lying beside a llama2.c .bin. */
static gq_status model_identity(const gq_runcfg *c, char *path, size_t cap, char out_hex[65]) {
    struct stat sb;
    if (stat(c->model, &sb) == 0) snprintf(path, cap, "%s", c->model);
    else GQ_TRY(gq_model_resolve(c->model, path, cap));
    if (stat(path, &sb)) return gq_errf(GQ_ERR_IO, "%s: model '%s' not found at %s", c->source, c->model, path);
    gq_sha256 h;
    gq_sha256_init(&h);
    gq_sha256_update(&h, "gqsa-model-v1\n", 14);
    if (S_ISDIR(sb.st_mode)) {
        const char *names[] = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer.model"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            char p[2200];
            snprintf(p, sizeof p, "%s/%s", path, names[i]);
            if (gq_stage_file_is_regular(p)) GQ_TRY(hash_file_identity(&h, p));
        }
    } else {
        GQ_TRY(hash_file_identity(&h, path));
        size_t n = strlen(path);
        if (n > 4 && !strcmp(path + n - 4, ".bin") && !c->tokenizer[0]) {
            /* llama2.c: the tokenizer beside the weights is part of the model */
            char dir[2048];
            snprintf(dir, sizeof dir, "%s", path);
            char *sl = strrchr(dir, '/');
            if (sl) *sl = 0;
            else snprintf(dir, sizeof dir, ".");
            const char *cands[] = {"tokenizer.bin", "tok512.bin", "tok4096.bin", "tok32000.bin"};
            for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
                char p[2200];
                snprintf(p, sizeof p, "%s/%s", dir, cands[i]);
                if (gq_stage_file_is_regular(p)) GQ_TRY(hash_file_identity(&h, p));
            }
        }
    }
    if (c->tokenizer[0]) GQ_TRY(hash_file_identity(&h, c->tokenizer));
    uint8_t d[32];
    gq_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) sprintf(out_hex + 2 * i, "%02x", d[i]);
    return GQ_OK;
}

/* ---------------------------------------------------------------- planning */

static void stage_input_hash(const gq_runcfg *c, gq_stage_id s, const char *prev, char out_hex[65]) {
    gq_sha256 h;
    gq_sha256_init(&h);
    gq_stage_hash_str(&h, "pipeline", "gqsa-stage-v1");
    gq_stage_hash_str(&h, "stage", gq_stage_name(s));
    gq_stage_hash_str(&h, "input", prev);
    gq_stage_get(s)->hash(c, &h);
    uint8_t d[32];
    gq_sha256_final(&h, d);
    for (int i = 0; i < 32; i++) sprintf(out_hex + 2 * i, "%02x", d[i]);
}

/* 1 if path is a readable checkpoint whose /meta says it was made from exactly these inputs. */
static int ckpt_matches(const char *path, const char *input_hash, char *why, size_t cap) {
    if (!gq_stage_file_is_regular(path)) {
        snprintf(why, cap, "no checkpoint");
        return 0;
    }
    gq_ckpt *ck;
    if (gq_ckpt_open(path, &ck) != GQ_OK) {
        snprintf(why, cap, "checkpoint unreadable: %s", gq_errmsg());
        gq_err_clear();
        return 0;
    }
    char h[80] = "";
    gq_status st = gq_ckpt_attr_get_str(ck, "/meta", "input_hash", h, sizeof h);
    gq_ckpt_close(ck);
    gq_err_clear();
    if (st != GQ_OK || strcmp(h, input_hash)) {
        snprintf(why, cap, "checkpoint made from other inputs");
        return 0;
    }
    snprintf(why, cap, "checkpoint matches");
    return 1;
}

/* ---------------------------------------------------------------- running */

static gq_status record(gq_store *store, int64_t run_id, gq_stage_ctx *ctx, gq_stage_id s, const char *status,
                        double seconds, const char *path, const char *sha, const char *input_hash) {
    if (!store) return GQ_OK;
    gq_store_metric m[GQ_STAGE_MAX_METRICS];
    for (int i = 0; i < ctx->n_metrics; i++) {
        m[i].metric = ctx->metric_name[i];
        m[i].dataset = ctx->metric_dataset[i][0] ? ctx->metric_dataset[i] : NULL;
        m[i].value = ctx->metric_value[i];
    }
    gq_store_stage row = {gq_stage_name(s), status, seconds, path, sha, input_hash, ctx->message[0] ? ctx->message : NULL};
    return gq_store_stage_record_curve(store, run_id, &row, m, ctx->n_metrics, ctx->loss_step, ctx->loss_value,
                                       ctx->n_loss);
}

/* Run stage s into `path`. On success *sha gets the checkpoint's sha256. */
static gq_status run_stage(gq_stage_ctx *ctx, gq_stage_id s, const char *path, const char *input_hash,
                           const char *config_hash, const char *git, char sha[65]) {
    gq_ckpt *ck;
    GQ_TRY(gq_ckpt_create(path, &ck));
    gq_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.format_version = GQ_CKPT_FORMAT_VERSION;
    snprintf(meta.stage, sizeof meta.stage, "%s", gq_stage_name(s));
    snprintf(meta.config_hash, sizeof meta.config_hash, "%s", config_hash);
    snprintf(meta.model_id, sizeof meta.model_id, "%.250s", ctx->cfg->model);
    snprintf(meta.git_revision, sizeof meta.git_revision, "%s", git);
    gq_status st = gq_ckpt_write_meta(ck, &meta);
    if (st == GQ_OK) st = gq_ckpt_attr_set_str(ck, "/meta", "input_hash", input_hash);
    if (st == GQ_OK) st = gq_stage_get(s)->run(ctx, ck);
    if (st == GQ_OK) st = gq_stage_write_metrics(ctx, ck);
    if (st == GQ_OK) st = gq_stage_write_loss(ctx, ck);
    if (st != GQ_OK) {
        gq_ckpt_abort(ck);
        return st;
    }
    hook("before_commit", s);
    GQ_TRY(gq_ckpt_commit(ck));
    hook("after_commit", s);
    return gq_sha256_file(path, sha);
}

static gq_status read_ckpt_metrics(gq_stage_ctx *ctx, const char *path) {
    gq_ckpt *ck;
    GQ_TRY(gq_ckpt_open(path, &ck));
    gq_status st = gq_stage_read_metrics(ctx, ck);
    if (st == GQ_OK) st = gq_stage_read_loss(ctx, ck);
    gq_ckpt_close(ck);
    return st;
}

gq_status gq_runner_run(const gq_runcfg *cfg, const gq_runner_opts *o, gq_runner_result *r) {
    GQ_ASSERT(cfg && o && r);
    memset(r, 0, sizeof *r);
    r->failed_stage = -1;
    gq_runcfg_hash(cfg, r->config_hash);
    char git[64];
    gq_runner_git_revision(git, sizeof git);

    gq_stage_ctx ctx;
    gq_stage_ctx_init(&ctx, cfg);
    ctx.progress = o->progress;
    ctx.device = o->device;
    char model_hash[65] = "";
    gq_status st = model_identity(cfg, ctx.model_path, sizeof ctx.model_path, model_hash);
    if (st != GQ_OK && !o->dry_run) {
        gq_stage_ctx_free(&ctx);
        return st;
    }
    char model_problem[512] = "";
    if (st != GQ_OK) {
        snprintf(model_problem, sizeof model_problem, "%s", gq_errmsg());
        gq_err_clear();
        st = GQ_OK; /* a dry run plans without the model */
    }
    if (o->plan) {
        fprintf(o->plan, "# plan for %s\n", cfg->source);
        fprintf(o->plan, "config hash  %s\n", r->config_hash);
        fprintf(o->plan, "model        %s -> %s\n", cfg->model, model_problem[0] ? model_problem : ctx.model_path);
        if (!model_problem[0]) fprintf(o->plan, "model id     %.16s\n", model_hash);
        fprintf(o->plan, "output       %s\nstore        %s\ngit          %s\n", cfg->output, cfg->store, git);
        fprintf(o->plan, "%-10s %-5s %-16s %s\n", "stage", "do", "input hash", "checkpoint / reason");
    }

    gq_store *store = NULL;
    if (!o->dry_run) {
        st = gq_mkdirs(cfg->output);
        if (st == GQ_OK) st = gq_store_open(cfg->store, &store);
        if (st == GQ_OK) {
            char *yaml = gq_runcfg_to_yaml(cfg);
            st = gq_store_run_begin(store, yaml, r->config_hash, cfg->model, git, &r->run_id);
            free(yaml);
        }
        if (st != GQ_OK) {
            gq_store_close(store);
            gq_stage_ctx_free(&ctx);
            return st;
        }
    }

    char prev[80];
    snprintf(prev, sizeof prev, "model:%s", model_hash);
    int forced = 0, upstream_runs = model_problem[0] != 0;
    for (int s = 0; s < GQ_STAGE_COUNT && st == GQ_OK; s++) {
        if (!gq_runcfg_has_stage(cfg, s)) continue;
        if (o->force == s) forced = 1;
        char ih[65], path[2048], why[512];
        stage_input_hash(cfg, (gq_stage_id)s, prev, ih);
        snprintf(path, sizeof path, "%s/%s-%.16s.h5", cfg->output, gq_stage_name(s), ih);
        int skip = 0;
        if (upstream_runs) snprintf(why, sizeof why, model_problem[0] ? "model missing" : "an earlier stage runs");
        else if (forced) snprintf(why, sizeof why, "forced");
        else skip = ckpt_matches(path, ih, why, sizeof why);
        if (o->dry_run) {
            /* once an upstream stage runs, later input hashes depend on checkpoints not yet written */
            if (o->plan && upstream_runs)
                fprintf(o->plan, "%-10s %-5s %-16s %s\n", gq_stage_name(s), "run", "(pending)", why);
            else if (o->plan)
                fprintf(o->plan, "%-10s %-5s %.16s %s%s%s\n", gq_stage_name(s), skip ? "skip" : "run", ih, skip ? path : why,
                        skip ? "" : " -> ", skip ? "" : path);
            if (!skip) {
                r->todo++;
                upstream_runs = 1;
            } else if (gq_sha256_file(path, prev) != GQ_OK) {
                upstream_runs = 1;
                gq_err_clear();
            }
            continue;
        }
        ctx.n_metrics = 0;
        ctx.n_loss = 0;
        ctx.message[0] = 0;
        char sha[65] = "";
        double t0 = gq_now();
        if (skip) {
            st = gq_sha256_file(path, sha);
            if (st == GQ_OK) st = read_ckpt_metrics(&ctx, path);
            if (st == GQ_OK) {
                snprintf(ctx.ckpt_path[s], sizeof ctx.ckpt_path[s], "%s", path);
                gq_stage_note(&ctx, "reused checkpoint");
                st = record(store, r->run_id, &ctx, (gq_stage_id)s, "skipped", 0, path, sha, ih);
                r->n_skipped++;
                if (o->log) fprintf(o->log, "gqsa run: %-10s skipped (checkpoint %s matches)\n", gq_stage_name(s), path);
            }
        } else {
            upstream_runs = 1;
            if (o->log) fprintf(o->log, "gqsa run: %-10s running (%s)\n", gq_stage_name(s), why);
            st = run_stage(&ctx, (gq_stage_id)s, path, ih, r->config_hash, git, sha);
            double dt = gq_now() - t0;
            if (st == GQ_OK) {
                snprintf(ctx.ckpt_path[s], sizeof ctx.ckpt_path[s], "%s", path);
                ctx.loaded |= 1u << s;
                st = record(store, r->run_id, &ctx, (gq_stage_id)s, "done", dt, path, sha, ih);
                r->n_run++;
                if (o->log) {
                    fprintf(o->log, "gqsa run: %-10s done in %.1f s", gq_stage_name(s), dt);
                    for (int i = 0; i < ctx.n_metrics && i < 6; i++)
                        fprintf(o->log, "  %s%s%s=%.6g", ctx.metric_name[i], ctx.metric_dataset[i][0] ? "/" : "",
                                ctx.metric_dataset[i], ctx.metric_value[i]);
                    fprintf(o->log, "\n");
                }
            } else {
                r->failed_stage = s;
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", gq_errmsg());
                ctx.n_metrics = 0;
                ctx.n_loss = 0;
                snprintf(ctx.message, sizeof ctx.message, "%.500s", msg);
                record(store, r->run_id, &ctx, (gq_stage_id)s, "failed", dt, NULL, NULL, ih);
                gq_errf(st, "stage %s failed: %s", gq_stage_name(s), msg);
            }
        }
        if (st == GQ_OK) snprintf(prev, sizeof prev, "%s", sha);
    }
    if (store) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", st == GQ_OK ? "" : gq_errmsg());
        gq_status st2 = gq_store_run_finish(store, r->run_id, st == GQ_OK ? "done" : "failed", st == GQ_OK ? NULL : msg);
        if (st == GQ_OK) st = st2;
        else gq_errf(st, "%s", msg); /* keep the stage's message, not the store's */
        gq_store_close(store);
    }
    gq_stage_ctx_free(&ctx);
    return st;
}
