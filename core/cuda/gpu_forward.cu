/* gpu_forward.cu — the GPU evaluation forward (implements core/cuda/gpu.h). Minimal version: device
 * query only; the forward lands next. Must not: be used by CPU-only builds (core/gpu_stub.c is). */
#include <cuda_runtime.h>
#include <stdio.h>

/* util.h/model.h are C headers without extern "C" and use C11 _Noreturn. */
#ifndef _Noreturn
#define _Noreturn [[noreturn]]
#endif
extern "C" {
#include "util.h"
#include "model.h"
}
#include "gpu.h"

extern "C" int gq_gpu_available(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) { cudaGetLastError(); return 0; }
    return n;
}

extern "C" gq_status gq_gpu_describe(char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    if (!gq_gpu_available()) return gq_errf(GQ_ERR_UNSUPPORTED, "no CUDA device found");
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) return gq_errf(GQ_ERR_UNSUPPORTED, "cudaGetDeviceProperties failed");
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    snprintf(buf, cap, "%s, driver CUDA %d.%d, runtime %d.%d, %d SMs, %d MB L2", p.name, drv / 1000, (drv % 100) / 10,
             rt / 1000, (rt % 100) / 10, p.multiProcessorCount, p.l2CacheSize >> 20);
    return GQ_OK;
}

struct gq_gpu_model { int dummy; };

extern "C" gq_status gq_gpu_model_upload(const gq_model *m, int max_T, const char *precision, gq_gpu_model **out) {
    (void)m; (void)max_T; (void)precision;
    *out = NULL;
    return gq_errf(GQ_ERR_UNSUPPORTED, "GPU forward not implemented yet");
}
extern "C" void gq_gpu_model_free(gq_gpu_model *g) { (void)g; }
extern "C" gq_status gq_gpu_forward(gq_gpu_model *g, const int32_t *tokens, int T, float *logits) {
    (void)g; (void)tokens; (void)T; (void)logits;
    return gq_errf(GQ_ERR_UNSUPPORTED, "GPU forward not implemented yet");
}
extern "C" gq_status gq_gpu_window_nll(gq_gpu_model *g, const int32_t *tokens, int T, double *nll_sum) {
    (void)g; (void)tokens; (void)T; (void)nll_sum;
    return gq_errf(GQ_ERR_UNSUPPORTED, "GPU forward not implemented yet");
}
