/* compress.h — the model-level compression driver and the registry of one-shot methods.
 *
 * GQSA on one linear W [N, K] with Hessian proxy H (saliency.h, prune.h, quant.h, gqs.h):
 *   saliency s = w^2 / [H^-1]_jj -> group scores (mean over G) -> remove the lowest round(S * groups)
 *   -> quantize each kept group with its own b-bit asymmetric quantizer (the quantization group IS
 *   the sparsity group) -> W <- dense dequantized W_hat (pruned groups = 0), GQS arrays kept beside.
 * bits = 0 means prune only (W keeps fp32 values, no GQS arrays).
 *
 * Methods: a method is a function over one linear (gq_compress_fn). "gqsa" is built in; the
 * baselines (rtn, gptq, sparsegpt, wanda, magnitude, ...) register themselves with
 * gq_compress_register() — whoever runs a compression (CLI, pipeline) must call the baselines'
 * registration function once before gq_compress_find("gptq") can succeed. How to add a method:
 * write a gq_compress_fn, register {name, fn, needs_hessian, help}, done: calibration, the driver,
 * checkpoints and inspect work unchanged.
 * Must not: read or write files, evaluate.
 */
#ifndef GQ_COMPRESS_H
#define GQ_COMPRESS_H

#include "calib.h"
#include "gqs.h"
#include "model.h"
#include "prune.h"
#include "quant.h"

typedef struct {
    const char *method;   /* registry name; default "gqsa" */
    double sparsity;      /* fraction of groups (or weights, for unstructured methods) removed; default 0.5 */
    int bits;             /* 2, 3, 4, 8; 0 = no quantization; default 4 */
    int group;            /* G: 4..128, must divide every K (GQ_ERR_ARG naming the layer); default 16 */
    gq_prune_scope scope; /* default GQ_SCOPE_LAYER */
    double damp;          /* lambda, relative to mean(diag H); default 0.01 */
    gq_qmode qmode;       /* default GQ_QMODE_ASYM */
    int fp16_scales;      /* round scales up to fp16 (what a fp16-scale kernel computes); default 0 */
    /* knobs used by baselines (ignored by gqsa) */
    int nm_n, nm_m;       /* N:M semi-structured sparsity (2:4); 0 = unstructured */
    int blocksize;        /* GPTQ/SparseGPT column block; default 128 */
    int act_order;        /* GPTQ act-order; default 0 */
    int verbose;          /* per-layer lines on stderr */
} gq_compress_opts;

void gq_compress_opts_default(gq_compress_opts *o);
/* Check ranges (sparsity in [0,1), bits in {0,2,3,4,8}, 4 <= group <= 128 unless the method
 * ignores it, damp > 0); GQ_ERR_ARG naming the option. Does not look at the model. */
gq_status gq_compress_opts_validate(const gq_compress_opts *o);

/* One linear to compress. */
typedef struct {
    int layer;
    gq_linear_kind kind;
    char name[64];          /* "layers.3.q_proj", for messages */
    gq_linear *lin;         /* in/out: the method writes the dense compressed (dequantized) W back */
    const gq_hessian *h;    /* statistics of its input (NULL if the method does not need them) */
} gq_compress_job;

/* What a method reports for one linear. Zero-initialised by the driver. */
typedef struct {
    gq_gqs gqs;             /* filled when the result is group-quantized in GQS form (else nnz 0,
                               row_index NULL): the driver takes ownership */
    double sparsity;        /* achieved fraction of removed weights */
    int damp_retries;       /* 10x damping increases needed */
    double err;             /* optional: the method's own error measure (e.g. GPTQ's loss), or 0 */
} gq_compress_result;

typedef gq_status (*gq_compress_fn)(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);

typedef struct {
    const char *name;       /* static string */
    gq_compress_fn fn;
    int needs_hessian;      /* 1: calibration must run (H and sumsq available in job->h) */
    const char *help;       /* one line for --help */
} gq_compress_method;

/* Add a method (name must be unique; re-registering the same fn under the same name is a no-op).
 * GQ_ERR_ARG on a clash or a full table (32 methods). Not thread-safe: call at start-up. */
gq_status gq_compress_register(const gq_compress_method *m);
/* NULL if unknown (the message then lists the registered names). */
const gq_compress_method *gq_compress_find(const char *name);
/* Registered methods (built-in first); returns the count, fills up to cap. */
int gq_compress_methods(const gq_compress_method **out, int cap);

/* The built-in GQSA method for one linear (also usable directly). */
gq_status gq_compress_gqsa(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res);
/* The common tail of every group method: zero the removed groups (bits 0) or quantize each kept group
 * with its own asymmetric quantizer into res->gqs and write the dequantized weights back. */
gq_status gq_compress_apply_groups(const gq_compress_job *job, const gq_compress_opts *o, const uint8_t *keep,
                                   gq_compress_result *res);

/* A compressed model: dense dequantized weights for evaluation, GQS arrays beside them. */
typedef struct {
    gq_model *m;            /* owned */
    gq_gqs *gqs;            /* [L * GQ_LIN_COUNT]; entry nnz 0 / row_index NULL if not in GQS form */
    double *sparsity;       /* [L * GQ_LIN_COUNT] achieved, per linear */
    int *damp_retries;      /* [L * GQ_LIN_COUNT] */
    int *done;              /* [L * GQ_LIN_COUNT] 1 once the linear is compressed */
    int n_layers;           /* shape of the tables above (stays valid after take_model) */
    char method[32];
    gq_compress_opts opts;  /* opts.method points into `method` */
} gq_compressed;

/* Take ownership of m (freed by gq_compressed_free). */
void gq_compressed_init(gq_compressed *c, gq_model *m, const gq_compress_opts *o);
void gq_compressed_free(gq_compressed *c);
/* Detach and return the model (c->m becomes NULL); the GQS arrays and statistics stay in c. */
gq_model *gq_compressed_take_model(gq_compressed *c);

/* Compress the 7 linears of one block of c->m in place with c->opts. hs may be NULL for methods
 * that need no Hessian. Errors name the layer ("layers.3.down_proj: group 48 does not divide K=172"). */
gq_status gq_compress_block(gq_compressed *c, int layer, const gq_hessians *hs);
/* Every block (hs must hold all blocks' statistics when the method needs them). */
gq_status gq_compress_model(gq_compressed *c, const gq_hessians *hs);

/* The whole one-shot job: calibration windows (if the method needs them), streaming calibration
 * with per-block compression (sequential: block i sees blocks < i compressed), for a model that c
 * owns. `windows` [n, seqlen] may be NULL when the method needs no calibration. */
gq_status gq_compress_run(gq_compressed *c, const int32_t *windows, int n, int seqlen, int sequential,
                          int progress);

/* Totals over all linears: fraction of removed weights, weighted by matrix size. */
double gq_compressed_total_sparsity(const gq_compressed *c);

#endif
