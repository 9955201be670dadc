/* baselines.h — the one-shot baselines of the comparison tables, as methods of core/compress.h.
 *
 * Registered names (gq_baselines_register) and what each does with gq_compress_opts:
 *   rtn              per-group round-to-nearest: bits (2/3/4/8), group (0 = one quantizer per row),
 *                    qmode (asym / asym-minmax / sym). Ignores sparsity.
 *   gptq             Frantar et al. 2022: column-wise OBS quantization with lazy batches (blocksize),
 *                    damping, per-group quantizers fitted when the column loop reaches a new group,
 *                    act_order with STATIC groups (reference static_groups=True). Ignores sparsity.
 *   sparsegpt        Frantar & Alistarh 2023: unstructured (mask per column block by w^2/[U]_jj^2) or
 *                    N:M (nm_n:nm_m) pruning with the OBS update; bits > 0 = joint sparsify+quantize.
 *   wanda            Sun et al. 2023: |W_ij| * ||X_j||_2 ranked per output row; unstructured or N:M.
 *   magnitude        |W_ij|: unstructured ranked over the whole layer, or N:M.
 *   group-magnitude  GQSA-structured control: groups of `group` consecutive inputs of a row scored by
 *                    mean |w|^2, pruned with core/prune.h (scope layer/row) — GQSA with a Hessian-free score.
 *   group-wanda      same, group score mean (|w| * ||x||)^2.
 *   sparsegpt24, wanda24, magnitude24   the same methods forced to 2:4 (the CLI has no N:M flag).
 *   joint-w4-24      sparsegpt 2:4 + 4-bit per-group (group = opts.group, 128 if opts.group is 0).
 *   gqsa-obs         diagnostic: GQSA's group mask, then SparseGPT's OBS update of the kept weights.
 * N:M follows the usual convention (and core/config.c's `pattern`): N of every M consecutive inputs
 * of a row are KEPT (2:4 keeps 2, sparsity 1 - N/M).
 * For the pruning methods, bits > 0 also quantizes: sparsegpt jointly (inside the OBS loop, as the
 * reference does with wbits), wanda/magnitude by per-group RTN of the pruned matrix, group-* by one
 * quantizer per kept group (exactly GQSA's quantize step, with GQS arrays). bits = 0: prune only.
 * Every method writes the dense dequantized weights back; res->gqs is filled only when the result is
 * GQS-shaped (rtn/gptq with a group size the format takes, group-* with bits > 0).
 * Must not: read or write files, evaluate, own calibration (the driver provides H and sumsq).
 */
#ifndef GQ_BASELINES_H
#define GQ_BASELINES_H

#include "../../core/compress.h"

/* Register every method above with core/compress.h. Idempotent; call once at start-up from anything
 * that runs a compression (cli/cmd_compress.c, the pipeline's stages). Aborts (GQ_ASSERT) only if the
 * registry is full or a name clashes — a programming error. */
void gq_baselines_register(void);

gq_status gq_bl_rtn(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);
gq_status gq_bl_gptq(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);
gq_status gq_bl_sparsegpt(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);
gq_status gq_bl_wanda(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);
gq_status gq_bl_magnitude(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);
gq_status gq_bl_group_magnitude(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);
/* Diagnostic "gqsa-obs": GQSA's saliency-ranked group mask (same groups, scope, counts), then the
 * SparseGPT OBS update of the kept weights (bits > 0: joint quantization, group = opts.group). */
gq_status gq_bl_gqsa_obs(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);
gq_status gq_bl_group_wanda(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);

/* Exact-count selection helpers (also used by the tests' invariants).
 * Mark in pruned[n] (1 = remove) the n_remove entries of score[n] with the lowest value; ties broken by
 * position (lower index removed first), so the count is exact and the choice deterministic. */
void gq_bl_select_lowest(const double *score, size_t n, size_t n_remove, uint8_t *pruned);
/* N:M: in every aligned block of m consecutive entries of each row of score [rows, cols] (m | cols),
 * mark the n lowest (ties: lower column first). */
void gq_bl_select_nm(const double *score, int rows, int cols, int n, int m, uint8_t *pruned);

#endif
