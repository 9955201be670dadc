/* cmd_sweep.c — `gqsa sweep FILE`: expand a sweep (stages/sweep.h) and run every point that has no
 * finished run in the store yet, one ordinary `gqsa run` each.
 * Must not: implement stage logic (the runner does).
 */
#include <stdlib.h>
#include <string.h>

#include "../core/store.h"
#include "../stages/runner.h"
#include "../stages/sweep.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa sweep SWEEP.yaml [--dry-run] [--store PATH] [--data-root DIR] [--device cpu|cuda] [--keep-going] [--quiet]\n\n"
            "Expand a sweep file (a base run config plus axes as a grid and/or a list of points) into runs.\n"
            "Each point is an ordinary run with its own config hash; points that already have a finished\n"
            "run in the store are skipped, and points sharing a prefix (same model and calibration) reuse\n"
            "each other's checkpoints. Format: see stages/sweep.h and configs/demo_sweep.yaml.\n\n"
            "  --dry-run      list the points, their config hashes and which are done\n"
            "  --store PATH   results store for every point (overrides their store:)\n"
            "  --device D     where calibrate, evaluate and the training stages run: cpu (default) or cuda\n"
            "  --data-root DIR where datasets/ and models/ are\n"
            "  --keep-going   run the remaining points after a failure (exit status still 1)\n"
            "  --quiet        no per-stage lines\n");
}

int cmd_sweep(int argc, char **argv) {
    const char *path = NULL, *store_path = NULL, *root = NULL, *device = NULL, *v;
    int dry = 0, keep = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--dry-run")) { dry = 1; continue; }
        if (!strcmp(argv[i], "--keep-going")) { keep = 1; continue; }
        if (!strcmp(argv[i], "--quiet")) { quiet = 1; continue; }
        if ((r = cli_flag(argc, argv, &i, "--store", &v))) { if (r < 0) return 2; store_path = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--device", &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "cpu") && strcmp(v, "cuda")) return cli_usage_error(argv[0], "--device: expected cpu or cuda, got '%s'", v);
            device = v;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--data-root", &v))) { if (r < 0) return 2; root = v; continue; }
        if (argv[i][0] == '-') return cli_usage_error("sweep", "unknown option %s", argv[i]);
        if (path) return cli_usage_error("sweep", "one sweep file only");
        path = argv[i];
    }
    if (!path) return cli_usage_error("sweep", "missing SWEEP.yaml");
    if (root) gq_set_data_root(root);
    gq_sweep_point *pts;
    int n;
    gq_status st = gq_sweep_load(path, &pts, &n);
    if (st != GQ_OK) {
        fprintf(stderr, "gqsa sweep: %s\n", gq_errmsg());
        return 2;
    }
    int failed = 0, ran = 0, done_before = 0;
    for (int i = 0; i < n; i++) {
        gq_runcfg *c = &pts[i].cfg;
        if (store_path) snprintf(c->store, sizeof c->store, "%s", store_path);
        if (c->data_root[0] && !root) gq_set_data_root(c->data_root);
        int64_t done_id = 0;
        if (gq_file_exists(c->store)) {
            gq_store *s;
            st = gq_store_open(c->store, &s);
            if (st == GQ_OK) st = gq_store_find_done(s, pts[i].hash, &done_id);
            gq_store_close(s);
            if (st != GQ_OK) {
                fprintf(stderr, "gqsa sweep: %s\n", gq_errmsg());
                free(pts);
                return 1;
            }
        }
        if (dry) {
            printf("%3d  %-40s %.12s  %s\n", i + 1, pts[i].label, pts[i].hash, done_id ? "done" : "todo");
            continue;
        }
        if (done_id) {
            done_before++;
            if (!quiet) fprintf(stderr, "gqsa sweep: [%d/%d] %s: done (run %lld)\n", i + 1, n, pts[i].label, (long long)done_id);
            continue;
        }
        if (!quiet) fprintf(stderr, "gqsa sweep: [%d/%d] %s\n", i + 1, n, pts[i].label);
        gq_runner_opts o;
        gq_runner_opts_default(&o);
        o.log = quiet ? NULL : stderr;
        o.progress = !quiet;
        o.device = device;
        gq_runner_result r;
        st = gq_runner_run(c, &o, &r);
        if (st != GQ_OK) {
            fprintf(stderr, "gqsa sweep: point %s failed: %s\n", pts[i].label, gq_errmsg());
            failed++;
            if (!keep) break;
        } else {
            ran++;
        }
    }
    if (dry) printf("%d point(s)\n", n);
    else fprintf(stderr, "gqsa sweep: %d point(s): %d ran, %d already done, %d failed\n", n, ran, done_before, failed);
    free(pts);
    return failed ? 1 : 0;
}
