/* decode.h — the batch-1 decode engine: autoregressive greedy decoding on the GPU with an fp16 KV
 * cache, the whole per-token step (embed, every block, head, argmax) captured once in a CUDA graph and
 * replayed per token. The position and the token buffer live in device memory, so the same graph
 * serves every step and the host does nothing between tokens.
 *
 * Weight formats of the block linear layers (embedding and lm head stay fp16, norms fp32, in every format):
 *   GQ_DEC_FP16  fp16 weights, the engine's own fp16 GEMV (16-byte loads, fp32 accumulation)
 *   GQ_DEC_W4    dense 4-bit, per-group (G) scale/zero            } through the kernel engineer's GEMV
 *   GQ_DEC_GQS   GQS: group-sparse (BSR by rows) + 4-bit groups   } API (core/cuda/gqs_gemv.h)
 * A decoder is built either from a real model (weights converted/quantized on the host) or with
 * random weights generated on the device for a model shape (speed and memory figures only: every
 * figure from such a decoder must say "random weights").
 * Plain C interface, defined only in CUDA builds: callers wrap their calls in #ifdef GQSA_CUDA (the
 * Makefile defines it when nvcc is found) and check gq_gpu_available() at run time.
 * Must not: allocate or synchronise inside the captured step; print to stdout.
 */
#ifndef GQ_CUDA_DECODE_H
#define GQ_CUDA_DECODE_H

#ifdef __cplusplus
extern "C" {
#endif

#include "../model.h"
#include "../gqs_pack.h" /* C headers without their own extern "C" */

typedef enum { GQ_DEC_FP16 = 0, GQ_DEC_W4 = 1, GQ_DEC_GQS = 2 } gq_dec_format;

typedef struct {
    gq_dec_format format;
    int group;        /* G for W4 / GQS (default 16); must divide every input dimension */
    int bits;         /* 4 */
    double sparsity;  /* GQS: fraction of groups pruned (0.3, 0.4, 0.5) */
    int max_T;        /* KV cache length (prompt + generated tokens) */
    int gemv_kind;    /* W4/GQS GEMV kernel: -1 default (decode.cu default_kind: the fastest measured), else a
                         gq_gemv_kind of core/cuda/gqs_gemv.h (a dense kind for w4, a sparse one for gqs) */
    int no_pdl;       /* 1: launch the step's kernels one after another; 0 (default): each kernel after the
                         first with programmatic dependent launch (core/cuda/pdl.cuh), so its start and its
                         first weight loads overlap the kernel before it */
    int prefetch;     /* 1: every GEMV first bulk-prefetches each warp's rows into L2 (the v5 kernels, and the fp16
                         GEMV with it); 0 (default): the v7 GQS and v8 dense W4 kernels, no prefetch. v5 measured slower than v3 in
                         every format on the H200 (docs/PERF.md "v6") */
} gq_dec_opts;

/* Parse "fp16", "w4", "gqs-s50" (sparsity 50%) into o->format / o->sparsity. GQ_ERR_ARG otherwise. */
gq_status gq_dec_parse_format(const char *s, gq_dec_opts *o);
/* The GEMV kernel (gq_gemv_kind, core/cuda/gqs_gemv.h) the engine runs for o's quantized format: o->gemv_kind
 * if set, else the default (which depends on o->prefetch). Meaningless for fp16. */
int gq_dec_gemv_kind(const gq_dec_opts *o);
/* "fp16", "w4 g16", "gqs s50 g16" for printing. */
const char *gq_dec_format_name(const gq_dec_opts *o, char *buf, size_t cap);

typedef struct gq_decoder gq_decoder;

/* From a real model. W4/GQS layers are quantized here with round-to-nearest per group (asymmetric,
 * GQSA's quantizer); GQS prunes the groups of smallest L2 norm per row to the target sparsity: a
 * stand-in for the calibrated pipeline that serves speed checks, not accuracy claims. */
gq_status gq_dec_create(const gq_model *m, const gq_dec_opts *o, gq_decoder **out);
/* Random weights of shape c, generated on the device (deterministic in seed). */
gq_status gq_dec_create_random(const gq_config *c, const gq_dec_opts *o, uint64_t seed, gq_decoder **out);
void gq_dec_free(gq_decoder *d);

/* The quantization gq_dec_create applies to one linear layer w [N, K] for W4/GQS (exposed so tests can
 * build the CPU reference from the same W_hat with gq_gqs_dev_expand). Caller frees with
 * gq_gqs_dev_free. */
gq_status gq_dec_quantize(const float *w, int N, int K, const gq_dec_opts *o, const char *what, gq_gqs_dev *out);

typedef struct {
    double prefill_ms;   /* steps over the prompt (same step graph, one token at a time) */
    double gen_ms;       /* n_gen generation steps, CUDA events around the graph replays */
    double tok_per_s;    /* n_gen / gen time */
    double ms_per_tok;   /* mean per-token latency */
    double bytes_per_tok;/* weights + KV bytes read per generated token (mean over the run) */
} gq_dec_stats;

/* Greedy-decode n_gen tokens after prompt [n_prompt] (n_prompt >= 1, n_prompt + n_gen <= max_T).
 * out [n_gen] gets the generated ids. stats may be NULL. Resets the KV cache first. */
gq_status gq_dec_generate(gq_decoder *d, const int32_t *prompt, int n_prompt, int n_gen, int32_t *out,
                          gq_dec_stats *stats);

/* Logits [V] of the last step run by gq_dec_generate (the step that produced out[n_gen-1]); for tests. */
gq_status gq_dec_last_logits(gq_decoder *d, float *logits);

typedef struct {
    size_t weight_bytes;   /* every linear layer in its format (values + metadata) + embedding + norms */
    size_t linear_bytes;   /* linear layers (incl. lm head) only: what one token streams */
    size_t kv_bytes;       /* the whole fp16 KV cache, [2, L, max_T, NKV*HD] */
    size_t kv_bytes_per_pos; /* KV bytes one cached position adds (read once per later token) */
    size_t dev_free, dev_total; /* cudaMemGetInfo after building */
} gq_dec_mem;
void gq_dec_memory(const gq_decoder *d, gq_dec_mem *m);

/* Device-to-device copy bandwidth in bytes/s (bytes read + bytes written), median of several
 * copies of a buffer far larger than L2. */
gq_status gq_dec_copy_bandwidth(double *bytes_per_s);

#ifdef __cplusplus
}
#endif

#endif
