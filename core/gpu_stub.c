/* gpu_stub.c — the CUDA engine's C interface for builds without nvcc: every call says so. */
#include "cuda/gpu.h"

#ifndef GQSA_CUDA
int gq_gpu_available(void) { return 0; }
gq_status gq_gpu_describe(char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    return gq_errf(GQ_ERR_UNSUPPORTED, "this gqsa was built without CUDA (nvcc not found at build time)");
}
gq_status gq_gpu_model_upload(const gq_model *m, int max_T, const char *precision, gq_gpu_model **out) {
    (void)m; (void)max_T; (void)precision;
    *out = NULL;
    return gq_errf(GQ_ERR_UNSUPPORTED, "this gqsa was built without CUDA (nvcc not found at build time)");
}
void gq_gpu_model_free(gq_gpu_model *g) { (void)g; }
gq_status gq_gpu_forward(gq_gpu_model *g, const int32_t *tokens, int T, float *logits) {
    (void)g; (void)tokens; (void)T; (void)logits;
    return gq_errf(GQ_ERR_UNSUPPORTED, "this gqsa was built without CUDA");
}
gq_status gq_gpu_window_nll(gq_gpu_model *g, const int32_t *tokens, int T, double *nll_sum) {
    (void)g; (void)tokens; (void)T; (void)nll_sum;
    return gq_errf(GQ_ERR_UNSUPPORTED, "this gqsa was built without CUDA");
}
gq_status gq_gpu_model_reserve(gq_gpu_model *g, int max_T) {
    (void)g; (void)max_T;
    return gq_errf(GQ_ERR_UNSUPPORTED, "this gqsa was built without CUDA");
}
gq_status gq_gpu_token_logprobs(gq_gpu_model *g, const int32_t *tokens, int T, int from, double *lp, int *is_greedy) {
    (void)g; (void)tokens; (void)T; (void)from; (void)lp; (void)is_greedy;
    return gq_errf(GQ_ERR_UNSUPPORTED, "this gqsa was built without CUDA");
}
gq_status gq_gpu_token_logprobs_batch(gq_gpu_model *g, int n, const gq_gpu_lp_seq *seqs) {
    (void)g; (void)n; (void)seqs;
    return gq_errf(GQ_ERR_UNSUPPORTED, "this gqsa was built without CUDA");
}
gq_status gq_gpu_calibrate(const gq_model *m, const int32_t *windows, int n, int seqlen, int progress, gq_hessians *hs) {
    (void)m; (void)windows; (void)n; (void)seqlen; (void)progress; (void)hs;
    return gq_errf(GQ_ERR_UNSUPPORTED, "this gqsa was built without CUDA");
}
#else
/* keep the translation unit non-empty under -Wpedantic */
typedef int gq_gpu_stub_unused;
#endif
