/* backward_decl.h — the typed declarations of backward.h, included twice by it (R = float, SFX = _f32;
 * R = double, SFX = _f64). Not a public header on its own: include backward.h.
 * Must not: have an include guard (it is meant to be expanded once per element type).
 *
 * Shape letters: model.h (T tokens, D, H, NH, NKV, HD, V; N out x K in for a linear).
 * Conventions of every op pair: `*_fwd` writes its output; `*_bwd` takes the upstream gradient dy and
 * the forward's saved inputs, and ACCUMULATES (+=) parameter gradients (so windows of a batch add up)
 * while it OVERWRITES input gradients unless the argument says otherwise.
 */
#ifndef R
#error "backward_decl.h needs R and SFX: include backward.h instead"
#endif

/* Weights of one block as the forward sees them (fake-quantized when training). */
typedef struct {
    const R *attn_norm, *ffn_norm;   /* [D] */
    const R *w[GQ_LIN_COUNT];        /* dense [N, K] row-major */
    const R *bias[GQ_LIN_COUNT];     /* [N] or NULL (Qwen2 q/k/v); used, never trained */
} GQ_BW(gq_bw_blockw);

/* Gradients of one block; every pointer may be NULL (that gradient is then not computed). */
typedef struct {
    R *dw[GQ_LIN_COUNT];             /* [N, K], accumulated */
    R *dattn_norm, *dffn_norm;       /* [D], accumulated */
} GQ_BW(gq_bw_blockg);

/* Activations one block saves in its forward for its backward, plus backward scratch; one slab sized
 * for max_T tokens. The backward of block l must follow the forward of block l on the same struct
 * (block-sequential recomputation: the model driver re-runs each block's forward just before its
 * backward, so only one block's activations exist at a time). */
typedef struct {
    const gq_config *cfg;
    int max_T;
    R *rope_cos, *rope_sin;          /* [max_T, HD/2], from float64 angles */
    /* saved by gq_bw_block_fwd */
    R *x_in;                         /* [T, D] */
    R *xn1, *rinv1;                  /* [T, D] attn-normed input, [T] 1/rms */
    R *q, *k, *v;                    /* [T, NH*HD], [T, NKV*HD] x2 (q, k after RoPE) */
    R *P;                            /* [NH, T, T] causal softmax (zero above the diagonal) */
    R *att;                          /* [T, NH*HD] attention output (o_proj input) */
    R *x_mid;                        /* [T, D] after the attention residual */
    R *xn2, *rinv2;                  /* [T, D], [T] */
    R *g, *u, *h;                    /* [T, H] gate, up, silu(gate)*up (down_proj input) */
    /* backward scratch */
    R *dxn, *dmid;                   /* [T, D] */
    R *dq, *dk, *dv, *datt;          /* like q, k, v, att */
    R *dP;                           /* [T, T] one head at a time */
    R *dg, *du, *dh;                 /* [T, H] */
    R *tmp;                          /* [T, max(D, NH*HD)] */
} GQ_BW(gq_bw_acts);

gq_status GQ_BW(gq_bw_acts_init)(GQ_BW(gq_bw_acts) *a, const gq_config *c, int max_T);
void GQ_BW(gq_bw_acts_free)(GQ_BW(gq_bw_acts) *a);

/* --- ops ------------------------------------------------------------------------------------ */
/* y = x / sqrt(mean(x^2) + eps) * w over rows of D; rinv [T] = the 1/rms factors (saved). */
void GQ_BW(gq_bw_rmsnorm_fwd)(R *y, R *rinv, const R *x, const R *w, int T, int D, double eps);
/* dx += d/dx, dw += d/dw (dw may be NULL). */
void GQ_BW(gq_bw_rmsnorm_bwd)(R *dx, R *dw, const R *dy, const R *x, const R *w, const R *rinv, int T, int D);
/* y [T, N] = x [T, K] W^T + bias (bias may be NULL). */
void GQ_BW(gq_bw_linear_fwd)(R *y, const R *x, const R *W, const R *bias, int T, int N, int K);
/* dx [T, K] = (dx_accumulate ? dx : 0) + dy W (dx may be NULL); dW [N, K] += dy^T x (dW may be NULL). */
void GQ_BW(gq_bw_linear_bwd)(R *dx, int dx_accumulate, R *dW, const R *dy, const R *x, const R *W, int T, int N,
                             int K);
/* In place on x [T, nh*HD] for positions 0..T-1; cs/sn [T, HD/2] from gq_bw_rope_table. */
void GQ_BW(gq_bw_rope_fwd)(R *x, const R *cs, const R *sn, int T, int nh, int HD, gq_rope_style st);
/* In place on dx: the transpose rotation (RoPE is orthogonal, so its backward is the inverse). */
void GQ_BW(gq_bw_rope_bwd)(R *dx, const R *cs, const R *sn, int T, int nh, int HD, gq_rope_style st);
void GQ_BW(gq_bw_rope_table)(R *cs, R *sn, int T, int HD, double theta);
/* Causal GQA: out [T, NH*HD], P [NH, T, T] saved; query head h reads kv head h / (NH/NKV). */
void GQ_BW(gq_bw_attn_fwd)(R *out, R *P, const R *q, const R *k, const R *v, int T, int NH, int NKV, int HD);
/* dq, dk, dv overwritten; dP is [T, T] scratch. */
void GQ_BW(gq_bw_attn_bwd)(R *dq, R *dk, R *dv, R *dP, const R *dout, const R *P, const R *q, const R *k,
                           const R *v, int T, int NH, int NKV, int HD);
/* h = silu(g) * u over n elements. */
void GQ_BW(gq_bw_swiglu_fwd)(R *h, const R *g, const R *u, size_t n);
/* dg, du overwritten. */
void GQ_BW(gq_bw_swiglu_bwd)(R *dg, R *du, const R *dh, const R *g, const R *u, size_t n);
/* x [T, D] = emb rows of tokens (ids must be valid: the model driver checks them). */
void GQ_BW(gq_bw_embed_fwd)(R *x, const R *emb, const int32_t *tokens, int T, int D);
/* demb [V, D] += scatter of dx rows to their token ids (repeated ids add up). */
void GQ_BW(gq_bw_embed_bwd)(R *demb, const R *dx, const int32_t *tokens, int T, int D);
/* Mean next-token cross-entropy over the T-1 predictions (row t predicts tokens[t+1]), in float64.
 * dlogits [T, V] (may be NULL) = d mean / d logits; its last row is zero. T >= 2. */
double GQ_BW(gq_bw_xent)(R *dlogits, const R *logits, const int32_t *tokens, int T, int V);

/* --- fake quantization --------------------------------------------------------------------- */
/* E2E-OQP's parametrisation with frozen codes (the GQS values of g): w_hat [N, K] = (q - z) s for kept
 * groups, 0 for pruned ones; s, z [g->nnz] are the trainable per-group scales and (continuous) zeros. */
void GQ_BW(gq_bw_oqp_expand)(const gq_gqs *g, const R *s, const R *z, R *w_hat);
/* LSQ-style gradients with q frozen: ds_i += sum_j dW_ij (q_ij - z_i), dz_i += -s_i sum_j dW_ij. */
void GQ_BW(gq_bw_oqp_grad)(const gq_gqs *g, const R *s, const R *z, const R *dW, R *ds, R *dz);

/* --- one block ----------------------------------------------------------------------------- */
/* x_out [T, D] = block(x_in) with activations saved in a (x_out may not alias x_in). */
void GQ_BW(gq_bw_block_fwd)(GQ_BW(gq_bw_acts) *a, const GQ_BW(gq_bw_blockw) *w, const R *x_in, R *x_out, int T);
/* Given dy = dL/dx_out, dx [T, D] = dL/dx_in (overwritten; may alias dy) and the block's parameter
 * gradients accumulated into g (may be NULL). Uses the activations of the last gq_bw_block_fwd on a. */
void GQ_BW(gq_bw_block_bwd)(GQ_BW(gq_bw_acts) *a, const GQ_BW(gq_bw_blockw) *w, const R *dy, R *dx,
                            GQ_BW(gq_bw_blockg) *g, int T);

/* --- whole model (mean next-token cross-entropy) -------------------------------------------- */
typedef struct {
    const gq_config *cfg;
    const R *tok_emb;                /* [V, D] */
    const R *final_norm;             /* [D] */
    const R *lm_head;                /* [V, D]; may equal tok_emb (tied) */
    const GQ_BW(gq_bw_blockw) *blocks; /* [L] */
} GQ_BW(gq_bw_modelw);

/* Called after block `layer`'s backward with its gradients of this window (the workspace zeroes
 * them before each block, so the callee accumulates them where it wants). Non-OK stops the pass. */
typedef gq_status (*GQ_BW(gq_bw_block_grad_fn))(void *ctx, int layer, const GQ_BW(gq_bw_blockg) *g);

typedef struct {
    GQ_BW(gq_bw_acts) acts;
    int max_T;
    R *xs;                           /* [L+1, max_T, D] block inputs: the only per-block checkpoints */
    R *xf, *rinvf;                   /* [T, D], [T] final norm */
    R *logits, *dlogits;             /* [T, V] */
    R *dx, *dy;                      /* [T, D] */
    GQ_BW(gq_bw_blockg) g;           /* dense gradients of one block (NULL members when not wanted) */
    R *gslab;
    size_t gslab_n;
} GQ_BW(gq_bw_model_ws);

/* want_dw: allocate the per-block dense weight-gradient buffers (7 matrices of the largest block);
 * want_dnorm: also the norm-weight gradients. */
gq_status GQ_BW(gq_bw_model_ws_init)(GQ_BW(gq_bw_model_ws) *ws, const gq_config *c, int max_T, int want_dw,
                                     int want_dnorm);
void GQ_BW(gq_bw_model_ws_free)(GQ_BW(gq_bw_model_ws) *ws);

/* Loss = mean next-token cross-entropy of tokens [T] (2 <= T <= max_T). With backward != 0 the
 * gradients flow back block by block (recomputing each block's forward from its saved input),
 * block gradients go to cb (may be NULL), and dtok_emb / dlm_head / dfinal_norm (each may be NULL;
 * accumulated; for a tied model pass the same pointer for dtok_emb and dlm_head). GQ_ERR_ARG for a
 * token id out of range, GQ_ERR_NUMERIC for a non-finite loss. */
gq_status GQ_BW(gq_bw_model_loss)(GQ_BW(gq_bw_model_ws) *ws, const GQ_BW(gq_bw_modelw) *mw, const int32_t *tokens,
                                  int T, int backward, GQ_BW(gq_bw_block_grad_fn) cb, void *cb_ctx, R *dtok_emb,
                                  R *dlm_head, R *dfinal_norm, double *loss);
