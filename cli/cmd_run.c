/* cmd_run.c — `gqsa run CONFIG`: validate a YAML run file and execute its stages resumably
 * (stages/runner.h), or print the resolved config and the plan with --dry-run.
 * Must not: implement stage logic or store access (the runner does).
 */
#include <stdlib.h>
#include <string.h>

#include "../stages/runner.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa run CONFIG.yaml [--dry-run] [--force STAGE] [--store PATH] [--output DIR]\n"
            "                            [--data-root DIR] [--device cpu|cuda] [--quiet]\n\n"
            "Run the pipeline a YAML file describes: calibrate -> saliency -> prune -> quantize -> bqpo ->\n"
            "e2e_oqp -> evaluate -> bench (the stages it lists, in that order). Each stage writes one HDF5\n"
            "checkpoint atomically under the config's output folder, named by its input hash; a re-run skips\n"
            "every stage whose checkpoint matches (same config fields, same upstream checkpoint), so an\n"
            "interrupted run resumes where it stopped. Runs, stages and metrics go to the SQLite store.\n\n"
            "  --dry-run        print the resolved config (defaults filled in) and the plan: which stages\n"
            "                   would run and which are skipped because their checkpoint matches\n"
            "  --force STAGE    rerun STAGE and every stage after it even if checkpoints match\n"
            "  --store PATH     results store (overrides the config's store:)\n"
            "  --device D       where calibrate, evaluate and the training stages (bqpo, e2e_oqp) run: cpu (default) or cuda;\n"
            "                   not part of the config hash (training.mixed: true = bf16 matmuls on cuda)\n"
            "                   (GPU perplexity equals the CPU value within 0.1%%)\n"
            "  --output DIR     checkpoint folder (overrides the config's output:)\n"
            "  --data-root DIR  where datasets/ and models/ are (default: config data_root:, $GQSA_DATA_ROOT, ../shared)\n"
            "  --quiet          no per-stage lines and no progress on stderr\n\n"
            "Exit status: 0 done, 1 a stage failed (recorded in the store with its message), 2 bad usage or\n"
            "an invalid config (the message names FILE:LINE and the key).\n"
            "Config reference: configs/demo.yaml (commented); docs in stages/runner.h.\n");
}

int cmd_run(int argc, char **argv) {
    const char *path = NULL, *force = NULL, *store = NULL, *output = NULL, *root = NULL, *device = NULL, *v;
    int dry = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--dry-run")) { dry = 1; continue; }
        if (!strcmp(argv[i], "--quiet")) { quiet = 1; continue; }
        if ((r = cli_flag(argc, argv, &i, "--force", &v))) { if (r < 0) return 2; force = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--store", &v))) { if (r < 0) return 2; store = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--output", &v))) { if (r < 0) return 2; output = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--data-root", &v))) { if (r < 0) return 2; root = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--device", &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "cpu") && strcmp(v, "cuda")) return cli_usage_error(argv[0], "--device: expected cpu or cuda, got '%s'", v);
            device = v;
            continue;
        }
        if (argv[i][0] == '-') return cli_usage_error("run", "unknown option %s", argv[i]);
        if (path) return cli_usage_error("run", "one config file only (got %s and %s)", path, argv[i]);
        path = argv[i];
    }
    if (!path) return cli_usage_error("run", "missing CONFIG.yaml");
    gq_runcfg cfg;
    gq_status st = gq_runcfg_load(path, &cfg);
    if (st != GQ_OK) {
        fprintf(stderr, "gqsa run: %s\n", gq_errmsg());
        return 2;
    }
    if (store) snprintf(cfg.store, sizeof cfg.store, "%s", store);
    if (output) snprintf(cfg.output, sizeof cfg.output, "%s", output);
    if (root) snprintf(cfg.data_root, sizeof cfg.data_root, "%s", root);
    if (cfg.data_root[0]) gq_set_data_root(cfg.data_root);
    gq_runner_opts o;
    gq_runner_opts_default(&o);
    o.device = device;
    if (force) {
        o.force = gq_stage_from_name(force);
        if (o.force < 0 || !gq_runcfg_has_stage(&cfg, o.force))
            return cli_usage_error("run", "--force %s: not a stage listed in %s", force, path);
    }
    o.dry_run = dry;
    o.progress = !quiet;
    o.log = quiet ? NULL : stderr;
    if (dry) {
        char *y = gq_runcfg_to_yaml(&cfg);
        printf("# resolved config (%s)\n%s\n", path, y);
        free(y);
        o.plan = stdout;
    }
    gq_runner_result r;
    st = gq_runner_run(&cfg, &o, &r);
    if (st != GQ_OK) {
        fprintf(stderr, "gqsa run: %s: %s\n", path, gq_errmsg());
        if (r.run_id) fprintf(stderr, "gqsa run: recorded as failed run %lld in %s\n", (long long)r.run_id, cfg.store);
        return 1;
    }
    if (dry) printf("%d stage(s) to run\n", r.todo);
    else if (!quiet)
        fprintf(stderr, "gqsa run: run %lld done (%d stage(s) ran, %d reused), config %.12s, store %s\n", (long long)r.run_id,
                r.n_run, r.n_skipped, r.config_hash, cfg.store);
    return 0;
}
