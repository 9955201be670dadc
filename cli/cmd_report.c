/* cmd_report.c — `gqsa report`: tables and plots from the results store (reports/report.h).
 * Must not: write to the store.
 */
#include <string.h>

#include "../core/store.h"
#include "../reports/report.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa report [--store PATH] [--out DIR] [--kind ablation|groups|methods|training|all]\n"
            "                   [--model NAME] [--no-plots]\n\n"
            "Write the paper-shaped tables as Markdown, CSV and LaTeX, and plots as PNG + SVG (gnuplot),\n"
            "from the latest finished run of every config in the store:\n"
            "  ablation  Table 12 shape: FP, S20..S60, W8..W2, W4S50 x WikiText-2 / C4 perplexity\n"
            "  groups    Figure 8 shape: perplexity vs group size and vs sparsity (fig_group, fig_sparsity)\n"
            "  methods   Table 2 shape: methods x perplexity and zero-shot accuracy\n"
            "  training  BQPO / E2E-OQP loss curves\n"
            "Each file states the model, evaluation data, calibration budget and git revision(s).\n\n"
            "  --store PATH   default results/gqsa.sqlite\n"
            "  --out DIR      default results/report\n"
            "  --kind K       default all; may be repeated\n"
            "  --model NAME   only runs whose config names this model\n"
            "  --no-plots     write the .gp/.dat files but do not run gnuplot\n");
}

int cmd_report(int argc, char **argv) {
    const char *store_path = "results/gqsa.sqlite", *out = "results/report", *model = NULL, *v;
    unsigned kinds = 0;
    int plots = 1;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--no-plots")) { plots = 0; continue; }
        if ((r = cli_flag(argc, argv, &i, "--store", &v))) { if (r < 0) return 2; store_path = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--out", &v))) { if (r < 0) return 2; out = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--model", &v))) { if (r < 0) return 2; model = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--kind", &v))) {
            if (r < 0) return 2;
            if (!strcmp(v, "ablation")) kinds |= GQ_REPORT_ABLATION;
            else if (!strcmp(v, "groups")) kinds |= GQ_REPORT_GROUPS;
            else if (!strcmp(v, "methods")) kinds |= GQ_REPORT_METHODS;
            else if (!strcmp(v, "training")) kinds |= GQ_REPORT_TRAINING;
            else if (!strcmp(v, "all")) kinds |= GQ_REPORT_ALL;
            else return cli_usage_error("report", "--kind: expected ablation, groups, methods, training or all, got '%s'", v);
            continue;
        }
        return cli_usage_error("report", "unknown argument %s", argv[i]);
    }
    if (!kinds) kinds = GQ_REPORT_ALL;
    if (!gq_file_exists(store_path)) {
        fprintf(stderr, "gqsa report: %s: no such store\nHINT: run `gqsa run CONFIG` first, or pass --store\n", store_path);
        return 1;
    }
    gq_store *s;
    gq_status st = gq_store_open(store_path, &s);
    if (st != GQ_OK) return cli_fail(st, "is --store a gqsa results store?");
    gq_report_opts o = {kinds, out, model, plots};
    int n = 0;
    st = gq_report_write(s, &o, &n);
    gq_store_close(s);
    if (st != GQ_OK) {
        fprintf(stderr, "gqsa report: %s\n", gq_errmsg());
        return 1;
    }
    printf("wrote %d file(s) to %s\n", n, out);
    return 0;
}
