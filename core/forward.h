/* forward.h — the CPU forward pass of a LLaMA-architecture model over a whole window.
 *
 * Every linear layer is one OpenBLAS sgemm over the T tokens of the window (fp32 accumulation);
 * attention is causal with grouped-query heads. The pass is split into embed / block / head so
 * that calibration and block-wise training (BQPO) can run the model one block at a time.
 * A hook sees the input of every linear layer (the X of H = 2 X^T X / n) without copying it.
 * Must not: allocate per call (buffers are sized once in gq_fwd_init), know about files.
 */
#ifndef GQ_FORWARD_H
#define GQ_FORWARD_H

#include "model.h"

/* Called with the input X [T, K] of linear `kind` of block `layer`, before the product. For q/k/v
 * (and gate/up) the same X is shown once, with kind = the group's first member (Q, GATE). */
typedef void (*gq_linear_hook)(void *ctx, int layer, gq_linear_kind kind, const float *x, int T, int K);

typedef struct {
    const gq_model *m;
    int max_T;
    gq_linear_hook hook;
    void *hook_ctx;
    /* work buffers, [max_T, ...]: owned, sized by gq_fwd_init */
    float *xb;    /* [T, D] normed input */
    float *q;     /* [T, NH*HD] */
    float *k;     /* [T, NKV*HD] */
    float *v;     /* [T, NKV*HD] */
    float *att;   /* [T, NH*HD] attention output */
    float *scores;/* [threads, T] attention row scratch */
    float *hb;    /* [T, H] gate */
    float *hb2;   /* [T, H] up */
    float *tmp;   /* [T, D] */
    float *rope_cos, *rope_sin; /* [max_T, HD/2] */
    /* KV cache for incremental decoding (gq_fwd_decode): [L, max_T, NKV*HD] each; NULL until used */
    float *kcache, *vcache;
} gq_fwd;

/* Size buffers for windows of up to max_T tokens (max_T <= cfg.max_seq_len, else GQ_ERR_ARG). */
gq_status gq_fwd_init(gq_fwd *f, const gq_model *m, int max_T);
void gq_fwd_free(gq_fwd *f);

/* x [T, D] = embeddings of tokens (ids checked against V: GQ_ERR_ARG). */
gq_status gq_fwd_embed(gq_fwd *f, const int32_t *tokens, int T, float *x);
/* One block, in place on x [T, D], positions 0..T-1, causal. */
void gq_fwd_block(gq_fwd *f, int layer, float *x, int T);
/* logits [T, V] = lm_head(final_norm(x)). x is not modified. */
void gq_fwd_head(gq_fwd *f, const float *x, int T, float *logits);
/* All of it: logits [T, V] for tokens [T]. */
gq_status gq_forward(gq_fwd *f, const int32_t *tokens, int T, float *logits);

/* Sum over t in [0, T-1) of -log softmax(logits[t])[tokens[t+1]], computed in float64 from the
 * logits of one forward pass. Returns the sum; *n_pred = T-1. */
double gq_nll_from_logits(const float *logits, const int32_t *tokens, int T, int V, int *n_pred);

/* Incremental decoding with a KV cache: logits [V] for `token` at position `pos` (0-based,
 * pos < max_T). Positions must be fed in order starting from 0. */
gq_status gq_fwd_decode(gq_fwd *f, int32_t token, int pos, float *logits);

#endif
