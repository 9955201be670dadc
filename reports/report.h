/* report.h — `gqsa report`: tables (Markdown, CSV, LaTeX) and plots (gnuplot PNG + SVG) as queries
 * over the results store.
 *
 * Each report uses the latest finished run of every config hash, re-reads that run's resolved config
 * (runs.config_text) to know its method, sparsity, bits and group, and its evaluate-stage metrics.
 * Kinds (one set of files each, per model; every file states model, data, calibration budget, git
 * revision(s) and the store it came from):
 *   ablation  Table 12 shape: FP, S20..S60 (sparsity only), W8..W2 (quantization only), WxSy (both),
 *             x WikiText-2 / C4 perplexity                       -> ablation.{md,csv,tex}
 *   groups    Figure 8 shape: perplexity vs group size (joint runs) and vs sparsity (one line per bit
 *             width)                                              -> groups.{md,csv}, fig_group.{png,svg},
 *                                                                    fig_sparsity.{png,svg}, *.gp, *.dat
 *   methods   Table 2 shape: one row per method setting, perplexities, zero-shot acc and the average
 *                                                                 -> methods.{md,csv,tex}
 *   training  loss curves of bqpo / e2e_oqp                       -> training.{md,csv}, fig_training.{png,svg}
 * Must not: write to the store, run anything but gnuplot.
 */
#ifndef GQ_REPORT_H
#define GQ_REPORT_H

#include "../core/config.h"
#include "../core/store.h"

typedef enum {
    GQ_REPORT_ABLATION = 1,
    GQ_REPORT_GROUPS = 2,
    GQ_REPORT_METHODS = 4,
    GQ_REPORT_TRAINING = 8,
    GQ_REPORT_ALL = 15
} gq_report_kind;

typedef struct {
    unsigned kinds;       /* bit set of gq_report_kind */
    const char *out_dir;  /* created if missing */
    const char *model;    /* only runs of this model (config's model string); NULL = every model */
    int plots;            /* run gnuplot (1) or only write the .gp/.dat files (0) */
} gq_report_opts;

/* Write the requested reports. *n_files (may be NULL) gets the number of files written. GQ_ERR_IO for
 * an unwritable folder; a failing gnuplot is reported (GQ_ERR_UNSUPPORTED) after the tables are out. */
gq_status gq_report_write(gq_store *s, const gq_report_opts *o, int *n_files);

/* "FP", "S50", "W4", "W4S50" for a run config (the paper's row labels). */
void gq_report_label(const gq_runcfg *c, char *buf, size_t cap);

#endif
