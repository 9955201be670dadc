/* train_gpu.h — the GPU training engine (CUDA + cuBLAS): forward and backward of every op of a LLaMA
 * block and of the whole model, the fake quantizers of BQPO / E2E-OQP and AdamW, on device memory.
 * Plain C, so core/train.c and the tests call it; implemented in core/cuda/train_gpu.cu, built only
 * with CUDA (GQSA_CUDA). Without CUDA nothing here exists: core/train.c answers GQ_ERR_UNSUPPORTED for
 * gq_train_opts.device = GQ_TRAIN_CUDA, and tests/test_gpu_backward.c prints SKIP.
 *
 * Semantics: every op is the GPU twin of the CPU op of the same name in backward_decl.h (gq_bw_*_f32):
 * same shapes, same row-major layouts, same rules (a *_bwd ACCUMULATES parameter gradients and
 * OVERWRITES input gradients unless an argument says otherwise), same reductions in float64 where the
 * CPU uses float64 (RMS, softmax normaliser, cross-entropy, the OQP gradient sums, AdamW). Every
 * pointer argument of an op is DEVICE memory (float* of cudaMalloc), except where a comment says
 * "host". The block / model weight and gradient structs of backward_decl.h (gq_bw_blockw_f32,
 * gq_bw_blockg_f32) are reused as they are, holding device pointers.
 * Differences from the CPU, all deliberate:
 *   - attention backward takes dP as [NH, T, T] scratch (the CPU's is [T, T]): the heads run as
 *     batched GEMMs (strided-batched cuBLAS; query head h reads kv head h / (NH/NKV));
 *   - the model workspace computes dlogits in place over the logits (one [T, V] buffer, not two);
 *   - the E2E-OQP codes are kept unpacked, one byte per kept weight (gq_gt_gqs).
 * Streams: every call is asynchronous on the engine's one stream, except those that return a host
 * value (gq_gt_xent, gq_gt_model_loss, gq_gt_adamw_step, gq_gt_sq_diff, gq_gt_download), which
 * synchronise. Errors: GQ_ERR_UNSUPPORTED for a CUDA/cuBLAS failure (the message names the call and
 * the line), GQ_ERR_NOMEM for a failed cudaMalloc, GQ_ERR_NUMERIC / GQ_ERR_ARG as the CPU twin.
 *
 * Precision (gq_gt_create's `mixed`):
 *   0  fp32: every GEMM is cublasSgemm / cublasSgemmStridedBatched with the default math mode (no TF32):
 *      the GPU equals the CPU engine up to summation order (tests: per-tensor relative error < 1e-4);
 *   1  mixed (bf16 matmuls): each linear's GEMM takes bf16 copies of its two operands (activations or
 *      upstream gradients, and the fp32 master weights) made just before the call, with fp32
 *      accumulation and fp32 outputs (cublasGemmEx, CUDA_R_16BF x CUDA_R_16BF -> CUDA_R_32F,
 *      CUBLAS_COMPUTE_32F); the attention GEMMs run on fp32 buffers with CUBLAS_COMPUTE_32F_FAST_16BF.
 *      Weights, gradients, activations, optimizer states and every non-GEMM op stay fp32
 *      (tests: per-tensor relative error < 2e-2).
 *
 * Memory estimate, E2E-OQP of LLaMA-2-7B at seqlen 2048 on one 80 GB GPU, block-sequential
 * recomputation (docs/TRAINING.md has the derivation; P = 6.48e9 linear weights, 32 blocks, D 4096,
 * H 11008, V 32000, T 2048):
 *   frozen weights, bf16 (or fp16)                 2 B x 6.74e9              = 13.5 GB
 *     (W4S50 codes instead, 4-bit, half kept: 1.6 GB; this implementation keeps 1 B per kept weight: 3.2 GB)
 *   scales + zeros fp32, G16, 50% kept (2.0e8 groups) 8 B x 2.0e8           =  1.6 GB
 *     their gradients (fp32)                                                =  1.6 GB
 *     AdamW m, v (fp32, only for scales/zeros)                              =  3.2 GB
 *   block inputs kept for recomputation  33 x T x D x 4 B                   =  1.1 GB
 *   one block's activations (fp32): ~ 12 T D + 6 T H + 2 NH T^2 floats      =  2.0 GB
 *     (the two [NH, T, T] = [32, 2048, 2048] fp32 buffers, P and dP, are 1.07 GB of it)
 *   one block's expanded w_hat (fp32) + dense dW (fp32): 2 x 4 B x 2.02e8   =  1.6 GB
 *   embeddings/head fp32 master (4 B x 2 x 1.31e8, untied)                  =  1.0 GB
 *   logits / dlogits [T, 32000] fp32, in place                              =  0.26 GB
 *   bf16 operand copies (mixed) + cuBLAS workspace                          <  0.5 GB
 *   total                                                                   ~ 26 GB of 80 GB
 * (this implementation holds the frozen weights as fp32 dense for linears outside GQS form and as codes
 * + fp32 scales/zeros for GQS linears, so for a fully GQS-compressed 7B it needs ~ 16 GB).
 * Must not: print, read files, keep device pointers outside the structs it documents.
 */
#ifndef GQ_CUDA_TRAIN_GPU_H
#define GQ_CUDA_TRAIN_GPU_H

#include "../train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Engine and device memory                                                                     */

typedef struct gq_gt gq_gt; /* stream, cuBLAS handle, precision, scratch */

/* GQ_ERR_UNSUPPORTED when no CUDA device is present. */
gq_status gq_gt_create(int mixed, gq_gt **out);
void gq_gt_destroy(gq_gt *e);
int gq_gt_mixed(const gq_gt *e);
gq_status gq_gt_sync(gq_gt *e);
/* Elapsed milliseconds between two points of the engine's stream (CUDA events; the benchmark's timer). */
gq_status gq_gt_timer_start(gq_gt *e);
gq_status gq_gt_timer_stop(gq_gt *e, float *ms);

gq_status gq_gt_malloc(void **p, size_t bytes, const char *what);
void gq_gt_free(void *p);
gq_status gq_gt_upload(gq_gt *e, void *dst, const void *host_src, size_t bytes);
/* Synchronises: host_dst holds the data on return. */
gq_status gq_gt_download(gq_gt *e, void *host_dst, const void *src, size_t bytes);
gq_status gq_gt_zero(gq_gt *e, void *p, size_t bytes);
/* dst = src (device to device). */
gq_status gq_gt_copy(gq_gt *e, void *dst, const void *src, size_t bytes);
/* Upload a host float array into a new device buffer (*dst; n may be 0: then *dst = NULL). */
gq_status gq_gt_upload_new(gq_gt *e, float **dst, const float *host_src, size_t n, const char *what);

/* ------------------------------------------------------------------------------------------ */
/* Ops (the twins of backward_decl.h)                                                           */

gq_status gq_gt_rmsnorm_fwd(gq_gt *e, float *y, float *rinv, const float *x, const float *w, int T, int D, double eps);
gq_status gq_gt_rmsnorm_bwd(gq_gt *e, float *dx, float *dw, const float *dy, const float *x, const float *w,
                            const float *rinv, int T, int D);
gq_status gq_gt_linear_fwd(gq_gt *e, float *y, const float *x, const float *W, const float *bias, int T, int N, int K);
gq_status gq_gt_linear_bwd(gq_gt *e, float *dx, int dx_accumulate, float *dW, const float *dy, const float *x,
                           const float *W, int T, int N, int K);
/* cs/sn [>= T, HD/2] device tables (gq_bw_rope_table_f32's values, uploaded). */
gq_status gq_gt_rope_fwd(gq_gt *e, float *x, const float *cs, const float *sn, int T, int nh, int HD, gq_rope_style st);
gq_status gq_gt_rope_bwd(gq_gt *e, float *dx, const float *cs, const float *sn, int T, int nh, int HD, gq_rope_style st);
gq_status gq_gt_attn_fwd(gq_gt *e, float *out, float *P, const float *q, const float *k, const float *v, int T, int NH,
                         int NKV, int HD);
/* dP: [NH, T, T] scratch (see above). */
gq_status gq_gt_attn_bwd(gq_gt *e, float *dq, float *dk, float *dv, float *dP, const float *dout, const float *P,
                         const float *q, const float *k, const float *v, int T, int NH, int NKV, int HD);
gq_status gq_gt_swiglu_fwd(gq_gt *e, float *h, const float *g, const float *u, size_t n);
gq_status gq_gt_swiglu_bwd(gq_gt *e, float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);
/* tokens: device int32 [T], already range-checked. */
gq_status gq_gt_embed_fwd(gq_gt *e, float *x, const float *emb, const int32_t *tokens, int T, int D);
gq_status gq_gt_embed_bwd(gq_gt *e, float *demb, const float *dx, const int32_t *tokens, int T, int D);
/* Mean next-token cross-entropy (host double *loss); dlogits may be NULL or alias logits. Synchronises. */
gq_status gq_gt_xent(gq_gt *e, float *dlogits, const float *logits, const int32_t *tokens, int T, int V,
                     double *loss);

/* ------------------------------------------------------------------------------------------ */
/* Fake quantization                                                                            */

/* A GQS matrix's frozen structure on the device (E2E-OQP): per kept group its row and column
 * (in group units) and its G codes, unpacked to one byte each. */
typedef struct {
    int N, K, G, bits;
    size_t nnz;
    int32_t *group_row, *group_col; /* [nnz] */
    uint8_t *codes;                 /* [nnz * G] */
} gq_gt_gqs;

gq_status gq_gt_gqs_upload(gq_gt *e, const gq_gqs *g, gq_gt_gqs *out);
void gq_gt_gqs_free(gq_gt_gqs *g);
/* w_hat [N, K] = (q - z) s for kept groups, 0 elsewhere (gq_bw_oqp_expand_f32). s, z [nnz] device. */
gq_status gq_gt_oqp_expand(gq_gt *e, const gq_gt_gqs *g, const float *s, const float *z, float *w_hat);
/* ds_i += sum_j dW_ij (q_ij - z_i), dz_i += -s_i sum_j dW_ij (gq_bw_oqp_grad_f32). */
gq_status gq_gt_oqp_grad(gq_gt *e, const gq_gt_gqs *g, const float *s, const float *z, const float *dW, float *ds,
                         float *dz);
/* BQPO: gq_fq_forward on the device (keep [N, K/G] device bytes; ste may be NULL). */
gq_status gq_gt_fq_forward(gq_gt *e, const float *w, const uint8_t *keep, int N, int K, int G, const gq_qspec *spec,
                           float *w_hat, uint8_t *ste);
/* dw[i] = 0 where ste[i] == 0 (the straight-through estimator's mask). */
gq_status gq_gt_mask_grad(gq_gt *e, float *dw, const uint8_t *ste, size_t n);
/* BQPO's loss and its gradient for one window: dy = scale (out - y) (dy may alias out) and the sum of
 * (out - y)^2 in float64 into *sq (host). Synchronises. */
gq_status gq_gt_sq_diff(gq_gt *e, float *dy, const float *out, const float *y, size_t n, float scale, double *sq);

/* ------------------------------------------------------------------------------------------ */
/* AdamW (fp32 moments on the device, the update in float64 as gq_adamw_step)                   */

typedef struct {
    size_t n;
    float *m, *v; /* device [n] */
    long t;
} gq_gt_adamw_state;

gq_status gq_gt_adamw_init(gq_gt_adamw_state *s, size_t n);
void gq_gt_adamw_free(gq_gt_adamw_state *s);
/* One step on p [n] with gradient grad_scale * g (the product rounded to float, as the CPU averages a
 * batch's gradients before its step). Same checks and messages as gq_adamw_step: on a non-finite
 * gradient or result, GQ_ERR_NUMERIC and p, m, v, t unchanged. Synchronises. */
gq_status gq_gt_adamw_step(gq_gt *e, const gq_adamw_opts *o, gq_gt_adamw_state *s, float *p, const float *g,
                           float grad_scale, const char *name);
/* Host copies of the moments (tests). */
gq_status gq_gt_adamw_download(gq_gt *e, const gq_gt_adamw_state *s, float *m, float *v);

/* ------------------------------------------------------------------------------------------ */
/* One block (gq_bw_block_fwd_f32 / gq_bw_block_bwd_f32)                                        */

typedef struct {
    const gq_config *cfg;
    int max_T;
    float *rope_cos, *rope_sin;      /* [max_T, HD/2] */
    float *x_in, *xn1, *rinv1, *q, *k, *v, *P, *att, *x_mid, *xn2, *rinv2, *g, *u, *h;
    float *dxn, *dmid, *dq, *dk, *dv, *datt, *dP, *dg, *du, *dh, *tmp;  /* dP [NH, T, T] */
    void *slab;
    size_t bytes;
} gq_gt_acts;

gq_status gq_gt_acts_init(gq_gt *e, gq_gt_acts *a, const gq_config *c, int max_T);
void gq_gt_acts_free(gq_gt_acts *a);
/* w, g: device pointers (bias entries may be NULL; g may be NULL, and so may any member of it). */
gq_status gq_gt_block_fwd(gq_gt *e, gq_gt_acts *a, const gq_bw_blockw_f32 *w, const float *x_in, float *x_out, int T);
gq_status gq_gt_block_bwd(gq_gt *e, gq_gt_acts *a, const gq_bw_blockw_f32 *w, const float *dy, float *dx,
                          gq_bw_blockg_f32 *g, int T);

/* ------------------------------------------------------------------------------------------ */
/* Whole model (gq_bw_model_loss_f32)                                                           */

/* Fills *w with block `layer`'s device weights just before the engine uses them (E2E-OQP expands
 * (q - z) s there, so only one block's dense weights exist at a time). */
typedef gq_status (*gq_gt_block_prep_fn)(void *ctx, int layer, gq_bw_blockw_f32 *w);

typedef struct {
    const gq_config *cfg;
    const float *tok_emb, *final_norm, *lm_head; /* device; lm_head may equal tok_emb */
    const gq_bw_blockw_f32 *blocks;              /* [L] device pointers; ignored when prep is set */
    gq_gt_block_prep_fn prep;
    void *prep_ctx;
} gq_gt_modelw;

typedef struct {
    gq_gt_acts acts;
    int max_T;
    float *xs;             /* [L+1, max_T, D] */
    float *xf, *rinvf;     /* [T, D], [T] */
    float *logits;         /* [T, V]; dlogits in place */
    float *dx, *dy;        /* [T, D] */
    int32_t *tokens;       /* [max_T] */
    gq_bw_blockg_f32 g;    /* device gradients of one block */
    float *gslab;
    size_t gslab_n;
    void *slab;
} gq_gt_model_ws;

gq_status gq_gt_model_ws_init(gq_gt *e, gq_gt_model_ws *ws, const gq_config *c, int max_T, int want_dw,
                              int want_dnorm);
void gq_gt_model_ws_free(gq_gt_model_ws *ws);
/* tokens: HOST [T]. cb gets device gradients; dtok_emb / dlm_head / dfinal_norm device (each may be
 * NULL; accumulated; pass the same pointer for a tied model). Synchronises (the loss). */
gq_status gq_gt_model_loss(gq_gt *e, gq_gt_model_ws *ws, const gq_gt_modelw *mw, const int32_t *tokens, int T,
                           int backward, gq_bw_block_grad_fn_f32 cb, void *cb_ctx, float *dtok_emb, float *dlm_head,
                           float *dfinal_norm, double *loss);

#ifdef __cplusplus
}
#endif

#endif
