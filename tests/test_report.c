/* test_report.c — every report kind rendered from a store built here by real tiny stories260K runs
 * (FP, sparsity-only, quantization-only and joint GQSA points, plus a loss curve): the files exist and
 * hold the rows and the exact numbers the store holds (read back from the store, not hard-coded).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../reports/report.h"
#include "../stages/runner.h"

static char g_dir[256];

static char *slurp(const char *dir, const char *name) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    char *t;
    size_t n;
    if (gq_read_file(p, &t, &n) != GQ_OK) {
        fprintf(stderr, "missing %s\n", p);
        fail();
    }
    return t;
}

static void run_point(const char *method_yaml, const char *stages) {
    char y[2048];
    snprintf(y, sizeof y,
             "model: stories260K\noutput: %s/ck\nstore: %s/store.sqlite\n"
             "calibration: {dataset: c4, nsamples: 8, seqlen: 64}\nmethod: %s\nstages: [%s]\n"
             "evaluation: {ppl: [c4], seqlen: 64, limit: 3}\n",
             g_dir, g_dir, method_yaml, stages);
    gq_runcfg c;
    gq_status s = gq_runcfg_parse(y, strlen(y), "report_test.yaml", &c);
    if (s) fprintf(stderr, "%s\n", gq_errmsg());
    assert_int_equal(s, GQ_OK);
    gq_runner_opts o;
    gq_runner_opts_default(&o);
    gq_runner_result r;
    s = gq_runner_run(&c, &o, &r);
    if (s) fprintf(stderr, "%s\n", gq_errmsg());
    assert_int_equal(s, GQ_OK);
}

static void test_reports(void **st) {
    (void)st;
    char p[1024];
    if (gq_model_resolve("stories260K", p, sizeof p) != GQ_OK || !gq_file_exists(p)) {
        printf("SKIP stories260K not found under the data root %s\n", gq_data_root());
        return;
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/gqsa_test_report_XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    run_point("{name: fp}", "evaluate");
    run_point("{name: gqsa, sparsity: 0.5, group: 4}", "calibrate, saliency, prune, evaluate");
    run_point("{name: gqsa, sparsity: 0.3, group: 4}", "calibrate, saliency, prune, evaluate");
    run_point("{name: gqsa, bits: 4, group: 4}", "quantize, evaluate");
    run_point("{name: gqsa, sparsity: 0.5, bits: 4, group: 4}", "calibrate, saliency, prune, quantize, evaluate");
    run_point("{name: gqsa, sparsity: 0.5, bits: 4, group: 2}", "calibrate, saliency, prune, quantize, evaluate");

    char sp[512];
    snprintf(sp, sizeof sp, "%s/store.sqlite", g_dir);
    gq_store *s;
    assert_int_equal(gq_store_open(sp, &s), GQ_OK);
    int64_t steps[3] = {0, 10, 20};
    double loss[3] = {2.75, 2.5, 2.125};
    assert_int_equal(gq_store_loss_add(s, 1, "bqpo", steps, loss, 3), GQ_OK);

    /* the numbers the reports must show, read from the store */
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_prepare_v2(gq_store_db(s),
                                        "SELECT r.id, m.value FROM runs r JOIN metrics m ON m.run_id = r.id WHERE"
                                        " m.metric = 'ppl' AND m.dataset = 'c4' ORDER BY r.id",
                                        -1, &q, NULL),
                     SQLITE_OK);
    double ppl[8];
    int n = 0;
    while (sqlite3_step(q) == SQLITE_ROW && n < 8) ppl[n++] = sqlite3_column_double(q, 1);
    sqlite3_finalize(q);
    assert_int_equal(n, 6);

    char out[512];
    snprintf(out, sizeof out, "%s/report", g_dir);
    gq_report_opts o = {GQ_REPORT_ALL, out, NULL, 1};
    int nf = 0;
    gq_status rs = gq_report_write(s, &o, &nf);
    gq_store_close(s);
    int plots = rs == GQ_OK;
    if (rs == GQ_ERR_UNSUPPORTED) printf("SKIP plots: %s\n", gq_errmsg());
    else assert_int_equal(rs, GQ_OK);

    const char *labels[6] = {"| FP |", "| S50 |", "| S30 |", "| W4 |", "| W4S50 | 4 |", "| W4S50 | 2 |"};
    char *md = slurp(out, "ablation.md"), *csv = slurp(out, "ablation.csv"), *tex = slurp(out, "ablation.tex");
    for (int i = 0; i < 6; i++) {
        char num[64], line[256];
        snprintf(num, sizeof num, "%.2f", ppl[i]);
        /* the row with this label carries this run's number */
        const char *at = strstr(md, labels[i]);
        assert_non_null(at);
        snprintf(line, sizeof line, "%.*s", (int)(strchr(at, '\n') - at), at);
        if (!strstr(line, num)) {
            fprintf(stderr, "row '%s' lacks %s\n", line, num);
            fail();
        }
        snprintf(num, sizeof num, "%.10g", ppl[i]);
        assert_non_null(strstr(csv, num));
    }
    /* Table 12 order: FP, sparsity-only (ascending), quant-only, joint */
    assert_true(strstr(md, "| FP |") < strstr(md, "| S30 |") && strstr(md, "| S30 |") < strstr(md, "| S50 |") &&
                strstr(md, "| S50 |") < strstr(md, "| W4 |") && strstr(md, "| W4 |") < strstr(md, "| W4S50 |"));
    assert_non_null(strstr(md, "calibration: "));
    assert_non_null(strstr(md, "git revision: "));
    assert_non_null(strstr(md, "model: `stories260K`"));
    assert_non_null(strstr(tex, "\\begin{tabular}"));
    assert_non_null(strstr(tex, "W4S50"));
    free(md);
    free(csv);
    free(tex);

    md = slurp(out, "methods.md");
    assert_non_null(strstr(md, "| gqsa | W4S50 |"));
    assert_non_null(strstr(md, "| fp | FP |"));
    free(md);
    free(slurp(out, "methods.csv"));
    free(slurp(out, "methods.tex"));

    md = slurp(out, "groups.md");
    char num[64];
    snprintf(num, sizeof num, "| W4S50 | 2 | %.2f |", ppl[5]);
    if (!strstr(md, num)) fprintf(stderr, "groups.md lacks '%s':\n%s\n", num, md);
    assert_non_null(strstr(md, num));
    snprintf(num, sizeof num, "| W4S50 | 4 | %.2f |", ppl[4]);
    assert_non_null(strstr(md, num));
    free(md);
    char *dat = slurp(out, "fig_group.dat");
    snprintf(num, sizeof num, "2 %.10g\n4 %.10g\n", ppl[5], ppl[4]); /* ordered by G */
    assert_non_null(strstr(dat, num));
    free(dat);
    if (plots) {
        const char *figs[] = {"fig_group.png", "fig_sparsity.png", "fig_training.png"};
        for (int i = 0; i < 3; i++) {
            char *png = slurp(out, figs[i]);
            assert_true(!memcmp(png, "\x89PNG", 4));
            free(png);
        }
        char *svg = slurp(out, "fig_sparsity.svg");
        assert_non_null(strstr(svg, "<svg"));
        free(svg);
    }
    csv = slurp(out, "training.csv");
    assert_non_null(strstr(csv, "1,bqpo,20,2.125"));
    free(csv);
    assert_true(nf >= 14);
    /* a report file that cannot be opened (here a directory in its place): an error naming the report, no
     * other file of that report left open or counted as written */
    char out2[600], blocker[700];
    snprintf(out2, sizeof out2, "%s/report2", g_dir);
    snprintf(blocker, sizeof blocker, "%s/methods.csv", out2);
    assert_int_equal(gq_mkdirs(blocker), GQ_OK);
    assert_int_equal(gq_store_open(sp, &s), GQ_OK);
    gq_report_opts o2 = {GQ_REPORT_METHODS, out2, NULL, 0};
    nf = -1;
    assert_int_equal(gq_report_write(s, &o2, &nf), GQ_ERR_IO);
    assert_non_null(strstr(gq_errmsg(), "cannot write the methods report"));
    assert_int_equal(nf, 0);
    gq_store_close(s);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
}

static void test_labels(void **st) {
    (void)st;
    const char *cases[][2] = {
        {"method: {name: fp}\nstages: [evaluate]\n", "FP"},
        {"method: {name: gqsa, sparsity: 0.2}\nstages: [calibrate, saliency, prune]\n", "S20"},
        {"method: {name: gqsa, bits: 8}\nstages: [quantize]\n", "W8"},
        {"method: {name: gqsa, bits: 2, sparsity: 0.6}\nstages: [calibrate, saliency, prune, quantize]\n", "W2S60"},
        {"method: {name: wanda, pattern: \"2:4\"}\nstages: [calibrate, prune]\n", "2:4"},
        /* SparseGPT 2:4 + INT4 (Table 10): the pattern, not the 0.5 it implies */
        {"method: {name: sparsegpt, pattern: \"2:4\", bits: 4, group: 128}\nstages: [calibrate, quantize]\n", "W4 2:4"},
        /* Table 8: the training stages a run went through */
        {"method: {name: gqsa, bits: 4, sparsity: 0.5}\nstages: [calibrate, saliency, prune, quantize, bqpo]\n", "W4S50 +BQPO"},
        {"method: {name: gqsa, bits: 2}\nstages: [calibrate, quantize, bqpo, e2e_oqp]\n", "W2 +BQPO+E2E-OQP"},
        {"method: {name: gqsa, bits: 4, sparsity: 0.5}\nstages: [calibrate, saliency, prune, quantize, e2e_oqp]\n", "W4S50 +E2E-OQP"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char y[512];
        snprintf(y, sizeof y, "model: m\n%s", cases[i][0]);
        gq_runcfg c;
        assert_int_equal(gq_runcfg_parse(y, strlen(y), "l.yaml", &c), GQ_OK);
        char b[32];
        gq_report_label(&c, b, sizeof b);
        assert_string_equal(b, cases[i][1]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_labels), cmocka_unit_test(test_reports)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
