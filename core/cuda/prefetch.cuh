/* prefetch.cuh — bulk prefetch into L2 (Hopper TMA, cp.async.bulk.prefetch.L2), used by the v5 GEMVs
 * (gqs_dev.h) and the decode engine's fp16 GEMV (decode.cu).
 *
 * Why: a batch-1 GEMV is bound by bytes in flight, not by bandwidth. The row-split kernels hold 4 quads
 * per lane in flight; at 64 warps per SM that is ~32 KB per SM, about half of what the H200's bandwidth
 * x loaded latency needs (docs/PERF.md "v5"). One prefetch instruction per array per warp puts the rest
 * of the warp's row in flight at once, without registers, shared memory or completion tracking; the
 * warp's own loads then hit (or merge with) L2 lines already on their way.
 * Measured (H200, PERF.md "v5 and v6 measured"): slower in every format (fp16 decode -12%, GQS S50 -8%;
 * 8192^2 S50 G16 layer 18.99 vs 15.59 us): the prefetch competes with the warp's own loads for the same
 * lines. Off by default (`gqsa bench decode --prefetch on`, the v5 kinds).
 * A hint: it never changes a result. Must not: be given an address that is not 16-byte aligned or a size
 * that is not a multiple of 16 (the PTX rule); nothing else.
 */
#ifndef GQ_CUDA_PREFETCH_CUH
#define GQ_CUDA_PREFETCH_CUH

#include <stdint.h>

/* [p, p + bytes) into L2 (sm_90; a no-op when compiled for older GPUs). */
__device__ __forceinline__ void gq_prefetch_l2(const void *p, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if (bytes) asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p), "r"(bytes) : "memory");
#else
    (void)p, (void)bytes;
#endif
}
#endif
