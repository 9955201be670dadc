/* eval_ppl.h — perplexity exactly as GPTQ / SparseGPT compute it (the numbers the GQSA paper reports).
 *
 * Protocol (GPTQ datautils.py + llama.py llama_eval):
 *   text     WikiText-2 test rows joined with "\n\n"; or C4 "c4-new": the first 1100 validation
 *            documents joined with ' ', truncated to the first 256*seqlen tokens (datasets/text.h)
 *   tokens   the whole text tokenized ONCE, with BOS at the very start iff the model's reference
 *            tokenizer adds it by default (LLaMA-1/2: yes; SmolLM2's GGUF: add_bos_token = false)
 *   windows  nsamples = n_tokens / seqlen non-overlapping windows [i*seqlen, (i+1)*seqlen); the tail
 *            is dropped; --limit caps nsamples
 *   loss     per window, mean cross-entropy of shift_logits (positions 0..seqlen-2 predicting
 *            1..seqlen-1): seqlen-1 predictions; no BOS is inserted per window
 *   ppl      GPTQ writes exp(sum_i loss_i * seqlen / (nsamples * seqlen)) = exp(mean_i loss_i); as
 *            every window has the same seqlen-1 predictions, this equals
 *            exp(sum of all NLLs / (nsamples * (seqlen-1))), which is what we compute (in double).
 * Must not: print to stdout (cli/cmd_eval_ppl.c prints), know how windows are run (a callback does).
 */
#ifndef GQ_EVAL_PPL_H
#define GQ_EVAL_PPL_H

#include "model.h"

typedef struct {
    const char *dataset;   /* "wikitext2" | "c4" */
    int seqlen;            /* window length; 0 = 2048 capped at the model's max_seq_len */
    int limit;             /* max windows, 0 = all */
    int add_bos;           /* -1 = tokenizer default, 0/1 to force */
    const char *device;    /* NULL or "cpu" | "cuda" */
    const char *precision; /* cuda only: NULL/"fp32" | "tf32" | "bf16" */
} gq_ppl_opts;

typedef struct {
    double nll_sum;   /* sum of -log p over every prediction */
    long n_pred;      /* n_windows * (seqlen - 1) */
    long n_tokens;    /* tokens of the whole tokenized text (before windowing) */
    int n_windows;
    double ppl;
    double seconds;   /* forward passes only (not tokenization) */
    double tok_per_s; /* n_windows * seqlen / seconds */
    char note[256];   /* protocol deviations to print with the result ("" if none) */
    char device[192]; /* what ran the windows: "cpu (N threads)" or the GPU's description */
} gq_ppl_result;

/* One window's summed NLL over its T-1 predictions; ctx is the runner's state. */
typedef gq_status (*gq_window_nll_fn)(void *ctx, const int32_t *tokens, int T, double *nll_sum);

/* The protocol's window loop, shared by every device: windows of ids[n], at most `limit` (0 = all),
 * progress through gq_progress labelled `label`. Fills every field of r except note (left as is).
 * GQ_ERR_ARG when there is not even one window (n < seqlen) or seqlen < 2. */
gq_status gq_eval_ppl_windows(gq_window_nll_fn fn, void *ctx, const int32_t *ids, size_t n, int seqlen, int limit,
                              const char *label, gq_ppl_result *r);

/* CPU: gq_eval_ppl_windows with gq_forward + gq_nll_from_logits. r->note is cleared. */
gq_status gq_eval_ppl_tokens(const gq_model *m, const int32_t *ids, size_t n, int seqlen, int limit,
                             gq_ppl_result *r);

/* Whole protocol: load the dataset from the data root, tokenize with m->tok, run on o->device.
 * Errors name the missing file, an over-long seqlen, a missing tokenizer. */
gq_status gq_eval_ppl(const gq_model *m, const gq_ppl_opts *o, gq_ppl_result *r);

/* Tokenize the protocol text of `dataset` with m->tok (add_bos -1 = tokenizer default). For c4 the
 * ids are cut to 256*seqlen tokens as c4-new does, and *note says if fewer documents exist. */
gq_status gq_ppl_dataset_ids(const gq_model *m, const char *dataset, int seqlen, int add_bos, int32_t **ids,
                             size_t *n, char *note, size_t note_cap);

#endif
