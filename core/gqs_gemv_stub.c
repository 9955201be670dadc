/* gqs_gemv_stub.c — the GQS GEMV API (cuda/gqs_gemv.h) for builds without nvcc: every call reports
 * GQ_ERR_UNSUPPORTED, so callers (tests, `gqsa bench kernel`) need no #ifdefs.
 * Must not: pretend to compute anything.
 */
#include "cuda/gqs_gemv.h"

#ifndef GQSA_CUDA
#define NO_CUDA gq_errf(GQ_ERR_UNSUPPORTED, "this gqsa was built without CUDA (nvcc not found at build time)")
gq_status gq_gqs_gpu_upload(const gq_gqs_dev *d, gq_gqs_gpu **out) { (void)d; *out = NULL; return NO_CUDA; }
void gq_gqs_gpu_free(gq_gqs_gpu *m) { (void)m; }
int gq_gqs_gpu_is_dense(const gq_gqs_gpu *m) { (void)m; return 0; }
void gq_gqs_gpu_set_sk_ctas(gq_gqs_gpu *m, int k) { (void)m, (void)k; }
int64_t gq_gqs_gpu_sk_workers(const gq_gqs_gpu *m) { (void)m; return 0; }
gq_status gq_gqs_gpu_set_task_units(gq_gqs_gpu *m, int64_t units) { (void)m, (void)units; return NO_CUDA; }
gq_status gq_gqs_gpu_set_v10_workers(gq_gqs_gpu *m, int64_t w) { (void)m, (void)w; return NO_CUDA; }
gq_status gq_gqs_gpu_prepare(gq_gqs_gpu *m, gq_gemv_kind kind, void *stream) { (void)m, (void)kind, (void)stream; return NO_CUDA; }
int64_t gq_gqs_gpu_task_units(const gq_gqs_gpu *m) { (void)m; return 0; }
gq_status gq_gqs_gpu_keep_only(gq_gqs_gpu *m, gq_gemv_kind kind) { (void)m, (void)kind; return NO_CUDA; }
gq_status gq_gqs_gpu_set_v13(gq_gqs_gpu *m, int ring_bytes, int ctas_per_sm) { (void)m, (void)ring_bytes, (void)ctas_per_sm; return NO_CUDA; }
gq_status gq_gqs_gpu_set_v15_depth(gq_gqs_gpu *m, int rounds) { (void)m, (void)rounds; return NO_CUDA; }
gq_status gq_gqs_gpu_set_v16(gq_gqs_gpu *m, const gq_v16_config *c) { (void)m, (void)c; return NO_CUDA; }
gq_status gq_gqs_gpu_set_v17_split(gq_gqs_gpu *m, int R) { (void)m, (void)R; return NO_CUDA; }
int gq_gqs_gpu_v17_split(gq_gqs_gpu *m, int dense) { (void)m, (void)dense; return 0; }
void gq_gqs_gpu_set_pdl(gq_gqs_gpu *m, int on) { (void)m, (void)on; }
gq_status gq_gqs_gpu_gemv(gq_gqs_gpu *m, gq_gemv_kind kind, const void *x_dev, int B, void *y_dev, int y_fp32,
                          void *stream) {
    (void)m, (void)kind, (void)x_dev, (void)B, (void)y_dev, (void)y_fp32, (void)stream;
    return NO_CUDA;
}
gq_status gq_gemv_dev_alloc(size_t bytes, void **ptr) { (void)bytes; *ptr = NULL; return NO_CUDA; }
void gq_gemv_dev_free(void *ptr) { (void)ptr; }
gq_status gq_gemv_dev_upload(void *dst_dev, const void *src, size_t bytes) { (void)dst_dev, (void)src, (void)bytes; return NO_CUDA; }
gq_status gq_gemv_dev_download(void *dst, const void *src_dev, size_t bytes) { (void)dst, (void)src_dev, (void)bytes; return NO_CUDA; }
gq_status gq_gemv_dev_fill(void *dst_dev, int byte, size_t bytes) { (void)dst_dev, (void)byte, (void)bytes; return NO_CUDA; }
gq_status gq_gemv_dev_sync(void) { return NO_CUDA; }
gq_status gq_bench_kernel_run(const gq_bench_kernel_opts *o) { (void)o; return NO_CUDA; }
#else
typedef int gq_gqs_gemv_stub_unused; /* keep the translation unit non-empty */
#endif
