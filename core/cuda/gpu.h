/* gpu.h — the C interface to the CUDA engine (the .cu files in core/cuda). Plain C, so CPU code can call it.
 *
 * Built only when nvcc is found (GQSA_CUDA=1); otherwise core/gpu_stub.c provides the same functions
 * returning GQ_ERR_UNSUPPORTED, so callers never need #ifdefs. gq_gpu_available() is 0 when no device
 * is present at run time (the CPU CI machine), and every test that needs a GPU skips on it.
 * Must not: be included by .cu files for anything but these declarations (kernels have their own headers).
 */
#ifndef GQ_CUDA_GPU_H
#define GQ_CUDA_GPU_H

#include "../model.h"

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

#ifdef __cplusplus
}
#endif

#endif
