/* eval_zeroshot.h — zero-shot multiple-choice accuracy scored as lm-evaluation-harness does it.
 *
 * For each request (context c, continuation x) of a task item (datasets/zeroshot.h), lm-eval's
 * loglikelihood path (lm_eval/api/model.py TemplateLM.loglikelihood/_encode_pair and
 * lm_eval/models/huggingface.py HFLM._loglikelihood_tokens) does:
 *   1. n = number of trailing whitespace characters of c; move them: x = c[-n:] + x, c = c[:-n]
 *   2. whole = enc(c + x), ctx = enc(c), cont = whole[len(ctx):]        (enc: no special tokens)
 *      (c == "" instead gives ctx = [prefix token: BOS, else EOS], cont = enc(x))
 *   3. input = (ctx + cont)[-(max_length+1):][:-1]; ll = sum over the last len(cont) positions of
 *      log softmax(logits)[cont token]; greedy = every cont token is the argmax
 * Special tokens: HFLM defaults to add_bos_token=False and encodes with add_special_tokens=False for
 * causal LMs, so no BOS is prepended (SmolLM2's HF tokenizer would not add one anyway); set
 * gq_zs_opts.add_bos to reproduce lm-eval's add_bos_token=True.
 * Metrics per item: pred = argmax ll (first max, as np.argmax), pred_norm = argmax ll / len(choice)
 * (code points); acc, acc_norm are the means over items, stderr = sqrt(p(1-p)/(n-1)) (lm-eval's
 * sample stderr of a mean of 0/1 values).
 *
 * The evaluator talks to the model through gq_zs_backend (tokenize + batch loglikelihood), so the
 * GPU engine or a test stub can stand in for the CPU forward pass.
 * Must not: print to stdout, parse datasets (datasets/zeroshot.c), or touch the results store.
 */
#ifndef GQ_EVAL_ZEROSHOT_H
#define GQ_EVAL_ZEROSHOT_H

#include "model.h"
#include "../datasets/zeroshot.h"

/* ---- backend ---- */

typedef struct {
    void *ctx;
    /* Encode len bytes of text with no special tokens. *ids malloc'd (caller frees); n may be 0. */
    gq_status (*encode)(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n);
    /* For each of the n sequences tokens[i][0..len[i]): ll[i] = sum over t in [len-n_cont, len) of
     * log p(tokens[t] | tokens[<t]) and greedy[i] = all those tokens were argmax. Sequences arrive
     * already truncated to at most max_len + 1 tokens; 1 <= n_cont[i] < len[i]. The n sequences of
     * one call are the choices of one item, so a backend may share work between them. */
    gq_status (*loglik)(void *ctx, int n, const int32_t *const *tokens, const int *len, const int *n_cont, double *ll,
                        int *greedy);
    int max_len; /* lm-eval's max_length: the model's context window */
    int bos_id;  /* prepended with add_bos and used as prefix for an empty context; -1 if none */
    int eos_id;  /* prefix for an empty context when there is no BOS; -1 if none */
} gq_zs_backend;

/* ---- options and results ---- */

typedef struct {
    gq_zs_task_id task;
    int idx;            /* document index in the task file */
    int n_choices;
    int gold;
    const double *ll;   /* [n_choices] summed continuation log-likelihoods */
    const int *greedy;  /* [n_choices] */
    const int *n_cont;  /* [n_choices] continuation tokens */
    const size_t *chars;/* [n_choices] len(choice) used by acc_norm */
    int pred, pred_norm;
} gq_zs_item_score;

typedef void (*gq_zs_item_cb)(void *cb_ctx, const gq_zs_item_score *s);

typedef struct {
    const char *tasks;    /* comma list of task names; NULL or "" = all five */
    int limit;            /* first N documents per task (lm-eval --limit); <= 0: all */
    int add_bos;          /* lm-eval's add_bos_token (default 0, as HFLM) */
    const char *out_path; /* optional per-item JSONL (written atomically at the end) */
    gq_zs_item_cb on_item;/* optional, called after each item is scored */
    void *cb_ctx;
    int quiet;            /* no progress on stderr */
    const char *device;   /* gq_eval_zeroshot: NULL or "cpu" (forward.h) | "cuda" (core/cuda/gpu.h) */
    const char *precision;/* cuda only: NULL or "fp32" (default) | "tf32" | "bf16" */
} gq_zs_opts;

typedef struct {
    gq_zs_task_id id;
    char name[32];
    int n;                 /* documents scored */
    int n_total;           /* documents in the file */
    double acc, acc_stderr;
    double acc_norm, acc_norm_stderr; /* computed for every task; lm-eval reports it iff has_acc_norm */
    int has_acc_norm;
    double seconds;
    long n_tokens;         /* tokens run through the model (after sharing) */
} gq_zs_task_result;

typedef struct {
    int n_tasks;
    gq_zs_task_result task[GQ_ZS_N_TASKS];
    double avg_acc;      /* mean of acc over the tasks */
    double avg_acc_norm; /* mean over the tasks of acc_norm, or acc where lm-eval reports no acc_norm
                            (winogrande), the usual "Avg" column of the papers' tables */
    double seconds;
    char device[192];    /* what ran the model: "cpu" or "cuda fp32: <GPU description>" */
} gq_zs_result;

/* Parse "piqa,arc_easy,..." into ids (duplicates rejected). NULL/"" selects all five. GQ_ERR_ARG
 * naming the unknown task. */
gq_status gq_zs_parse_tasks(const char *list, gq_zs_task_id *ids, int *n);

/* Evaluate a model with its own tokenizer on o->device: the CPU forward pass (core/forward.h) or the
 * GPU (gq_eval_zeroshot_gpu). GQ_ERR_ARG for an unknown device, GQ_ERR_UNSUPPORTED without a GPU. */
gq_status gq_eval_zeroshot(const gq_model *m, const gq_zs_opts *o, gq_zs_result *r);
/* The GPU backend (core/eval_zeroshot_gpu.c): the model uploaded once (fp32 unless o->precision says
 * otherwise), each item's choices scored in one packed forward pass by gq_gpu_token_logprobs_batch,
 * tokenization on the host exactly as the CPU backend does. */
gq_status gq_eval_zeroshot_gpu(const gq_model *m, const gq_zs_opts *o, gq_zs_result *r);
/* The same over any backend. */
gq_status gq_eval_zeroshot_backend(const gq_zs_backend *b, const gq_zs_opts *o, gq_zs_result *r);

/* Score one already-loaded task (used by gq_eval_zeroshot_backend; exposed for tests). `out`, if not
 * NULL, gets the per-item JSONL lines appended (*out malloc'd/realloc'd, *out_len updated). */
gq_status gq_zs_eval_task(const gq_zs_backend *b, const gq_zs_task *t, const gq_zs_opts *o, gq_zs_task_result *res,
                          char **out, size_t *out_len);

/* ---- the pieces, exposed for tests ---- */

/* lm-eval's _encode_pair (steps 1-2 above; add_bos prepends bos_id to both encodings). Both arrays
 * malloc'd; caller frees. */
gq_status gq_zs_encode_pair(const gq_zs_backend *b, int add_bos, const char *ctx, const char *cont, int32_t **ctx_ids,
                            size_t *n_ctx, int32_t **cont_ids, size_t *n_cont);

/* pred and pred_norm of one item as np.argmax does (first maximum; a NaN wins, as in numpy). */
void gq_zs_predict(int n, const double *ll, const size_t *chars, int *pred, int *pred_norm);

/* Mean of 0/1 values and lm-eval's stderr sqrt(var_sample / n) (NaN when n < 2). */
void gq_zs_mean_stderr(const int *x, int n, double *mean, double *stderr_);

/* Sum of log softmax(logits[t])[tokens[t+1]] for t in [T-1-n_cont, T-1), in float64, and whether each
 * of those tokens is the argmax. logits [T-1, V] are those of tokens[0..T-1). */
double gq_zs_cont_logprob(const float *logits, int V, const int32_t *tokens, int T, int n_cont, int *greedy);

#endif
