/* calib.h — calibration windows and per-layer Hessian proxies H = 2 X^T X / n (DESIGN.md "calibrate").
 *
 * Windows are drawn as GPTQ's data loaders do: WikiText-2 (validation split here, rows joined with
 * "\n\n") is tokenized once and each window starts at a uniformly random token offset; C4 draws a
 * random document, retries until it is longer than seqlen tokens, then a random offset inside it.
 * Sampling uses gq_rng seeded with opts.seed, so the same opts give the same windows.
 *
 * Calibration streams the model BLOCK BY BLOCK: only the hidden states [n, seqlen, D] of the current
 * block live in memory; the block runs with the forward.h linear hook, which accumulates in float64
 *     H = (2 / n_tok) * sum_t x_t x_t^T        (n_tok = n * seqlen; GPTQ divides by windows: only
 *                                              a global scale, irrelevant to every method here)
 *     sumsq_j = sum_t x_tj^2                   (Wanda's ||X_j||_2^2)
 * for each input group (q/k/v share the input of q_proj, gate/up that of gate_proj). A callback
 * sees each block's statistics before the hidden states advance: it may compress the block in place,
 * and with `sequential` the next block's inputs then come from the compressed block (GPTQ's
 * sequential mode); without it they come from the full-precision block.
 * Must not: choose or apply compression itself (compress.c does), write files (ckpt.c does).
 */
#ifndef GQ_CALIB_H
#define GQ_CALIB_H

#include "model.h"
#include "tokenizer.h"

typedef struct {
    const char *dataset; /* "wikitext2" (wikitext-2-raw-v1/wiki.valid.raw), "c4"
                            (c4/c4-validation-sample2000.jsonl), or a path to a .txt / .jsonl file */
    int n_samples;       /* windows (default 128) */
    int seqlen;          /* tokens per window (default 2048; clipped by nobody: must be <= the model's
                            max_seq_len, checked by gq_calibrate) */
    uint64_t seed;       /* default 0 */
    int add_bos;         /* C4/jsonl: prepend BOS to each document before windowing (default 0, as GPTQ) */
} gq_calib_opts;

void gq_calib_opts_default(gq_calib_opts *o);

/* Draw opts->n_samples windows of opts->seqlen tokens. *tokens is malloc'd [n_samples * seqlen]
 * (caller frees). GQ_ERR_IO if the file is missing (message names the path under the data root),
 * GQ_ERR_ARG if the text has fewer than seqlen + 1 tokens or no document is long enough. */
gq_status gq_calib_windows(const gq_tokenizer *tok, const gq_calib_opts *opts, int32_t **tokens);

/* Statistics of one input group of one block. */
typedef struct {
    int K;          /* input features */
    int64_t n_tok;  /* tokens accumulated */
    double *H;      /* [K, K] full symmetric, row-major, already scaled by 2 / n_tok after finalize */
    double *sumsq;  /* [K] sum over tokens of x_j^2 */
} gq_hessian;

/* All blocks' statistics. Only input-group heads (Q, O, GATE, DOWN) own storage; use
 * gq_hessians_get to look one up for any linear. Blocks not yet calibrated have H == NULL. */
typedef struct {
    int n_layers;
    gq_hessian *h; /* [n_layers * GQ_LIN_COUNT], indexed layer * GQ_LIN_COUNT + input-group head */
} gq_hessians;

/* Allocate empty (zeroed, H == NULL) statistics for a model's shape. Never fails. */
void gq_hessians_init(gq_hessians *hs, const gq_model *m);
void gq_hessians_free(gq_hessians *hs);
/* Release one block's matrices (streaming callers keep only the current block). */
void gq_hessians_free_layer(gq_hessians *hs, int layer);
/* The statistics a linear sees (K/V -> Q's, UP -> GATE's). NULL if that block has none. */
const gq_hessian *gq_hessians_get(const gq_hessians *hs, int layer, gq_linear_kind kind);
gq_hessian *gq_hessians_get_mut(gq_hessians *hs, int layer, gq_linear_kind kind);

/* Per-block callback: called after block `layer`'s statistics are final, before hidden states
 * advance through the block. A non-OK status stops calibration and is returned. */
typedef gq_status (*gq_calib_block_fn)(void *ctx, gq_model *m, int layer, gq_hessians *hs);

typedef struct {
    int sequential;      /* next block's inputs come from the block after the callback changed it */
    int keep_all;        /* keep every block's H in *hs (for /hessian checkpoints); else each block's
                            matrices are freed after its callback returns */
    int progress;        /* print progress with ETA on stderr */
} gq_calib_run_opts;

/* Stream `n` windows [n, seqlen] through `m` block by block, filling hs (initialised by the caller
 * with gq_hessians_init) and calling fn (may be NULL) per block. `m` is modified only by fn.
 * GQ_ERR_ARG for seqlen > max_seq_len or a token id out of range; GQ_ERR_NUMERIC if an activation
 * is NaN/Inf (message names the block and linear). */
gq_status gq_calibrate(gq_model *m, const int32_t *windows, int n, int seqlen, const gq_calib_run_opts *ro,
                       gq_hessians *hs, gq_calib_block_fn fn, void *ctx);

#endif
