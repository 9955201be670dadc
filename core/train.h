/* train.h — the CPU training engine of GQSA: AdamW, BQPO and E2E-OQP (DESIGN.md "The method").
 *
 * BQPO (block-wise quantization-pruning optimization), for each block l in order:
 *   inputs  X_c = hidden states of the COMPRESSED model (blocks < l already BQPO-trained and
 *           re-quantized), targets Y = the FULL-PRECISION block l applied to the FULL-PRECISION
 *           model's hidden states (the GPTQ/OmniQuant convention: the targets are what the original
 *           model computes, so errors of earlier blocks are corrected, not copied);
 *   loss    mean over T*D of (block_l^{fq}(X_c) - Y)^2, per window, averaged over a batch;
 *   params  the latent fp32 weights of the KEPT groups (initialised from the FP weights, so step 0
 *           reproduces the one-shot model exactly); masks fixed; forward uses the fake-quantized
 *           w_hat = per-group quantizer of the current latent group (s, z recomputed from its range,
 *           as quant.h does at re-quantization, so training and the final model agree);
 *           straight-through estimator: d w_hat / d w = 1 where round(w/s)+z lies inside
 *           [0, 2^b-1], 0 outside and for pruned groups (the dependence of s, z on w is ignored);
 *   after   re-quantize each kept group (new s, z, q) and rebuild the GQS arrays of the block.
 * E2E-OQP (end-to-end optimized quantization parameters): every integer code q is frozen; only the
 *   per-group scales and zeros are trained (zeros continuous), w_hat = (q - z) s, by the mean
 *   next-token cross-entropy of the whole model, with block-wise recomputation (backward.h). The
 *   GQS values arrays are never written; scales and zeros are updated in place.
 * Both use AdamW (decoupled weight decay, bias correction). The paper's lr is 1e-5 (BQPO 5 epochs,
 * E2E-OQP 2 epochs); tiny CPU budgets need larger rates: every knob is a parameter.
 * Must not: read or write files, touch the store, print to stdout.
 */
#ifndef GQ_TRAIN_H
#define GQ_TRAIN_H

#include "backward.h"
#include "compress.h"

/* ------------------------------------------------------------------------------------------ */
/* AdamW                                                                                        */

typedef struct {
    double lr;            /* default 1e-5 (paper) */
    double beta1, beta2;  /* 0.9, 0.999 */
    double eps;           /* 1e-8 */
    double weight_decay;  /* decoupled (p -= lr*wd*p); default 0 */
} gq_adamw_opts;

void gq_adamw_opts_default(gq_adamw_opts *o);

/* Moments of one parameter tensor; t counts the steps taken (bias correction uses t after ++). */
typedef struct {
    size_t n;
    float *m, *v;
    long t;
} gq_adamw_state;

void gq_adamw_state_init(gq_adamw_state *s, size_t n);
void gq_adamw_state_free(gq_adamw_state *s);

/* One step on p [n] with gradient g [n] (PyTorch AdamW order: p *= 1 - lr*wd, then the Adam update
 * with bias-corrected moments, in double). GQ_ERR_NUMERIC naming `name` and the step when a gradient
 * or an updated parameter is NaN/Inf; p is then left unchanged. */
gq_status gq_adamw_step(const gq_adamw_opts *o, gq_adamw_state *s, float *p, const float *g, const char *name);

/* ------------------------------------------------------------------------------------------ */
/* Fake quantization with a straight-through estimator (BQPO)                                   */

/* w_hat [N, K]: each kept group (keep [N, K/G]) quantized with its own quantizer from its current
 * range (gq_quant_group with spec), pruned groups 0. ste [N, K] (may be NULL): 1 where the gradient
 * passes (kept and round(w/s)+z inside [0, 2^b-1]), else 0. */
void gq_fq_forward(const float *w, const uint8_t *keep, int N, int K, int G, const gq_qspec *spec, float *w_hat,
                   uint8_t *ste);

/* ------------------------------------------------------------------------------------------ */
/* Drivers                                                                                      */

typedef struct {
    const char *phase;    /* "bqpo" | "e2e_oqp" */
    int layer;            /* block being trained (bqpo), -1 for e2e_oqp */
    int epoch;            /* 0-based */
    long step;            /* optimizer step, 1-based, counted over the phase (bqpo: per block) */
    double loss;          /* mean loss of the step's batch (bqpo: block MSE; e2e: nats/token) */
} gq_train_step_info;

typedef void (*gq_train_step_fn)(void *ctx, const gq_train_step_info *s);

/* Where the heavy work runs (gq_train_opts.device). */
enum { GQ_TRAIN_CPU = 0, GQ_TRAIN_CUDA = 1 };

typedef struct {
    gq_adamw_opts adam;
    int epochs;           /* passes over the windows; default 5 (bqpo) / 2 (e2e) by the caller */
    int batch;            /* windows per optimizer step (gradients averaged); default 1 */
    uint64_t seed;        /* window order per epoch; default 0 */
    int layer_first;      /* bqpo: first block to train (default 0) */
    int layer_count;      /* bqpo: blocks to train (-1 = to the end); blocks outside are propagated */
    int progress;         /* progress with ETA on stderr */
    gq_train_step_fn on_step; /* may be NULL: loss per optimizer step (the pipeline's loss curve) */
    void *on_step_ctx;
    int device;           /* GQ_TRAIN_CPU (default) or GQ_TRAIN_CUDA: the block / model forward and
                             backward, the fake quantizers and AdamW run on the GPU
                             (core/cuda/train_gpu.h); the window bookkeeping, re-quantization and the
                             GQS rebuild stay on the CPU. BQPO copies one block's weights host<->device
                             per block and streams the hidden states of each window from host memory;
                             E2E-OQP keeps the whole model resident (codes + scales/zeros, each block's
                             w_hat expanded on the fly). GQ_ERR_UNSUPPORTED without a CUDA build or a
                             CUDA device. */
    int mixed;            /* GQ_TRAIN_CUDA only: 1 = bf16 matmuls (bf16 operand copies, fp32 master
                             weights, fp32 accumulation and optimizer states); 0 = fp32 (default) */
} gq_train_opts;

/* lr, epochs as given; the rest default. */
void gq_train_opts_default(gq_train_opts *o, double lr, int epochs);

typedef struct {
    int n_layers;
    double *mse_before;   /* bqpo [L]: block output MSE on the training windows with the one-shot
                             weights / after re-quantization (NaN where a block was not trained); owned */
    double *mse_after;
    double loss_before;   /* e2e: mean next-token CE (nats) over the training windows, before/after */
    double loss_after;
    long steps;           /* optimizer steps taken */
    double seconds;       /* training time */
    double tok_per_s;     /* tokens processed by training forward+backward per second */
} gq_train_result;

void gq_train_result_free(gq_train_result *r);

/* BQPO on c (its GQS arrays give the masks; c->opts the bits, qmode, fp16 scales) against the
 * full-precision model fp (same config). windows [n, seqlen]. Rewrites c->gqs of trained linears and
 * c->m's dense weights. Linears that are not in GQS form (nnz 0 and no row_index) stay frozen.
 * GQ_ERR_ARG for mismatched models, bits 0, seqlen out of range; GQ_ERR_NUMERIC on divergence
 * (names the layer, linear and step). r may be NULL. */
gq_status gq_bqpo_run(gq_compressed *c, const gq_model *fp, const int32_t *windows, int n, int seqlen,
                      const gq_train_opts *o, gq_train_result *r);

/* E2E-OQP on c: trains c->gqs[*].scales / zeros in place, keeps every code and mask, and rewrites
 * c->m's dense weights as (q - z) s. After it, zeros are continuous (store them as fp16/fp32:
 * gq_gqs_memory(zeros_fp16 = 1)). Errors as gq_bqpo_run. r may be NULL. */
gq_status gq_e2e_oqp_run(gq_compressed *c, const int32_t *windows, int n, int seqlen, const gq_train_opts *o,
                         gq_train_result *r);

/* Mean next-token CE (nats/token) of model m over windows [n, seqlen] (fp32 training forward). */
gq_status gq_train_eval_loss(const gq_model *m, const int32_t *windows, int n, int seqlen, double *loss);

#endif
