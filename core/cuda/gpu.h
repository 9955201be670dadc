/* gpu.h — the C interface to the CUDA engine (the .cu files in core/cuda). Plain C, so CPU code can call it.
 *
 * Built only when nvcc is found (GQSA_CUDA=1); otherwise core/gpu_stub.c provides the same functions
 * returning GQ_ERR_UNSUPPORTED, so callers never need #ifdefs. gq_gpu_available() is 0 when no device
 * is present at run time (the CPU CI machine), and every test that needs a GPU skips on it.
 * Must not: be included by .cu files for anything but these declarations (kernels have their own headers).
 */
#ifndef GQ_CUDA_GPU_H
#define GQ_CUDA_GPU_H

#ifdef __cplusplus
extern "C" { /* C headers without their own linkage blocks: C linkage for .cu callers too */
#endif
#include "../calib.h"
#include "../model.h"
#ifdef __cplusplus
}
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices (0 without a GPU or without a CUDA build). Never fails. */
int gq_gpu_available(void);
/* "NVIDIA H100 80GB HBM3, driver 580.x, CUDA 13.0, 132 SMs, 50 MB L2" into buf. */
gq_status gq_gpu_describe(char *buf, size_t cap);

/* A model resident on the GPU for evaluation (fp32 weights, cuBLAS, fp32 accumulation; precision
 * "fp32" (default, matches the CPU within 0.1% ppl), "tf32" or "bf16" for speed). */
typedef struct gq_gpu_model gq_gpu_model;
gq_status gq_gpu_model_upload(const gq_model *m, int max_T, const char *precision, gq_gpu_model **out);
void gq_gpu_model_free(gq_gpu_model *g);
/* Logits [T, V] (host memory) for tokens [T], positions 0..T-1, causal. */
gq_status gq_gpu_forward(gq_gpu_model *g, const int32_t *tokens, int T, float *logits);
/* Sum of -log p(tokens[t+1] | tokens[<=t]) over t in [0, T-1), float64 accumulation, computed on the
 * device (logits never leave it). */
gq_status gq_gpu_window_nll(gq_gpu_model *g, const int32_t *tokens, int T, double *nll_sum);

/* Grow the per-window buffers (activations, logits, RoPE tables) to windows of max_T rows; the
 * weights stay where they are. A no-op when they are that large already. On failure (GQ_ERR_NOMEM)
 * the model keeps its old size and stays usable. */
gq_status gq_gpu_model_reserve(gq_gpu_model *g, int max_T);

/* Per-token log-probabilities, computed on the device: the lm head runs only on the scored rows, and
 * one kernel per row does log-softmax (max in fp32, sum of exponentials in float64), the gather of the
 * target and the argmax, so nothing of size V leaves the GPU.
 *   The window is tokens[0..T) with T >= 2; its forward covers tokens[0..T-1) (the last token is only a
 *   target, as lm-eval's [:-1]), so T-1 <= max_T. For t in [from, T-1), 0 <= from < T-1:
 *     lp[t - from]        = log p(tokens[t+1] | tokens[<=t])                    (T-1-from values)
 *     is_greedy[t - from] = tokens[t+1] is the first argmax of the logits at t (NULL: not wanted)
 * Every token must lie in [0, V): GQ_ERR_ARG names the sequence and position otherwise. */
gq_status gq_gpu_token_logprobs(gq_gpu_model *g, const int32_t *tokens, int T, int from, double *lp, int *is_greedy);

typedef struct {
    const int32_t *tokens; /* [T] */
    int T;                 /* >= 2 */
    int from;              /* 0 <= from < T-1 */
    double *lp;            /* [T-1-from] out */
    int *is_greedy;        /* [T-1-from] out, or NULL */
} gq_gpu_lp_seq;

/* The same for n independent sequences in as few forward passes as fit: their rows are packed back to
 * back (no padding; RoPE positions and causal attention restart at each sequence, so each result equals
 * the single-sequence call's up to GEMM blocking), as many per pass as fit in max_T rows. A sequence
 * whose T-1 exceeds max_T is GQ_ERR_ARG (call gq_gpu_model_reserve first). */
gq_status gq_gpu_token_logprobs_batch(gq_gpu_model *g, int n, const gq_gpu_lp_seq *seqs);

/* The calibrate stage's statistics on the GPU: what gq_calibrate computes with sequential = 0 and
 * keep_all = 1 (core/calib.h) — H = 2 X^T X / n_tok and sumsq per input group of every block, from the
 * full-precision model m over windows [n, seqlen] — with fp32 activations from the GPU forward and
 * float64 accumulation (cublasDsyrk). hs comes from gq_hessians_init. GQ_ERR_NUMERIC names the layer,
 * linear and window of a non-finite activation; GQ_ERR_NOMEM when the accumulators (8 K^2 bytes per input
 * group and block, all resident) do not fit on the device. Progress with ETA on stderr when progress. */
gq_status gq_gpu_calibrate(const gq_model *m, const int32_t *windows, int n, int seqlen, int progress, gq_hessians *hs);

#ifdef __cplusplus
}
#endif

#endif
