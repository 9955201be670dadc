/* sweep.h — `gqsa sweep FILE`: a base run config plus axes, expanded into ordinary runs.
 *
 * File layout:
 *   name: ablation               # optional; labels are <name>/<point label>
 *   base: demo.yaml              # a run file (path relative to the sweep file) or an inline mapping
 *   axes:                        # grid: the cartesian product, first axis slowest
 *     sparsity: [0.2, 0.3]       # short names: sparsity, group, bits, method, scope (method.*), model, seed
 *     method.damp: [0.01, 0.1]   # or any dotted key of the run file
 *   points:                      # list: each item a mapping of overrides (applied after the grid's)
 *     - {label: FP, method: {name: fp}, stages: [evaluate]}   # label: optional name of the point
 * With both, the sweep is the grid points followed by the listed points. Each point is validated as
 * a complete run file (errors name the sweep file's line for overridden keys) and has its own config
 * hash; points whose hash already has a finished run in the store are skipped.
 * Must not: run anything (cli/cmd_sweep.c drives the runner).
 */
#ifndef GQ_SWEEP_H
#define GQ_SWEEP_H

#include "../core/config.h"

typedef struct {
    gq_runcfg cfg;
    char label[256]; /* "sparsity=0.5,group=4" or "point 3" */
    char hash[65];
} gq_sweep_point;

/* Expand a sweep file. *pts malloc'd [n] (caller frees). More than 10000 points is GQ_ERR_ARG. */
gq_status gq_sweep_load(const char *path, gq_sweep_point **pts, int *n);

#endif
