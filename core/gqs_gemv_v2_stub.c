/* gqs_gemv_v2_stub.c — the v2 additions to the GQS GEMV API (cuda/gqs_gemv.h) for builds without nvcc
 * (core/gqs_gemv_stub.c has the rest); a separate file so the kernel module owns it.
 * Must not: pretend to compute anything.
 */
#include "cuda/gqs_gemv.h"

#ifndef GQSA_CUDA
void gq_gqs_gpu_set_max_workers(gq_gqs_gpu *m, int64_t w) { (void)m, (void)w; }
#else
typedef int gq_gqs_gemv_v2_stub_unused; /* keep the translation unit non-empty */
#endif
