/* tma.cuh — Hopper bulk copies global -> shared memory (cp.async.bulk, the non-tensor TMA path) completed
 * on an mbarrier, for the v6 GEMVs (core/cuda/gqs_tma.h).
 *
 * Why: a batch-1 GEMV is bound by bytes in flight. A register load holds its bytes in registers until
 * they arrive, so bytes in flight per SM = warps x loads per lane x bytes per load, capped by the
 * register file (v3: 64 warps x 4 quads, ~57 KB issued per SM, one round per warp at a time). A bulk copy
 * is one instruction for up to a few KB, lands in shared memory and is tracked by a barrier's
 * transaction count: a warp can put its whole row in flight with three instructions and no registers.
 * Protocol per buffer (one producer thread, the warp waits):
 *   gq_mbar_init(bar, 1) once; then per fill: gq_mbar_expect_tx(bar, bytes) + gq_bulk_g2s(...) x n
 *   (bytes = the sum of their sizes); every consumer thread gq_mbar_wait(bar, phase) (phase flips
 *   each fill); after the last read of the buffer, __syncwarp() + gq_fence_proxy_async() before the
 *   producer refills it (the reads are generic-proxy, the copy async-proxy).
 * Must not: be given a global address or a size that is not a multiple of 16 bytes, or a shared address
 * that is not 16-byte aligned (the PTX rule); be compiled for anything older than sm_90 (the host
 * launcher checks the device; on older architectures these compile to traps).
 */
#ifndef GQ_CUDA_TMA_CUH
#define GQ_CUDA_TMA_CUH

#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define GQ_HAVE_TMA 1
#else
#define GQ_HAVE_TMA 0
#endif

__device__ __forceinline__ uint32_t gq_smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void gq_mbar_init(uint64_t *bar, uint32_t count) {
#if GQ_HAVE_TMA
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(gq_smem_addr(bar)), "r"(count) : "memory");
#else
    (void)bar, (void)count, __trap();
#endif
}
/* After gq_mbar_init, before the barrier's first use by the async proxy. */
__device__ __forceinline__ void gq_mbar_init_fence() {
#if GQ_HAVE_TMA
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}
/* The producer's arrival: this phase completes when `bytes` have landed. */
__device__ __forceinline__ void gq_mbar_expect_tx(uint64_t *bar, uint32_t bytes) {
#if GQ_HAVE_TMA
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(gq_smem_addr(bar)), "r"(bytes) : "memory");
#else
    (void)bar, (void)bytes, __trap();
#endif
}
/* A plain arrival (a consumer's release of a buffer, v16); release semantics: this thread's reads of the
 * buffer happen before the phase completes. */
__device__ __forceinline__ void gq_mbar_arrive(uint64_t *bar) {
#if GQ_HAVE_TMA
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(gq_smem_addr(bar)) : "memory");
#else
    (void)bar, __trap();
#endif
}
/* One look at the barrier: 1 once its phase with parity `phase` has completed. ns > 0: try_wait with a
 * suspend-time hint of ns nanoseconds (the thread re-checks at least that often); ns < 0: test_wait (never
 * suspends); 0: try_wait (the system's own time limit). */
__device__ __forceinline__ uint32_t gq_mbar_poll(uint64_t *bar, uint32_t phase, int ns) {
    uint32_t done = 0;
#if GQ_HAVE_TMA
    if (ns > 0)
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2, %3;\n selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(gq_smem_addr(bar)), "r"(phase), "r"((uint32_t)ns)
                     : "memory");
    else if (ns < 0)
        asm volatile("{\n .reg .pred p;\n mbarrier.test_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(gq_smem_addr(bar)), "r"(phase)
                     : "memory");
    else
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}"
                     : "=r"(done)
                     : "r"(gq_smem_addr(bar)), "r"(phase)
                     : "memory");
#else
    (void)bar, (void)phase, (void)ns, __trap();
#endif
    return done;
}
/* Wait until the barrier's phase with parity `phase` has completed (try_wait); gq_mbar_wait_ns: waiting as
 * gq_mbar_poll's ns says (v16's study). */
__device__ __forceinline__ void gq_mbar_wait(uint64_t *bar, uint32_t phase) {
    while (!gq_mbar_poll(bar, phase, 0)) {
    }
}
__device__ __forceinline__ void gq_mbar_wait_ns(uint64_t *bar, uint32_t phase, int ns) {
    while (!gq_mbar_poll(bar, phase, ns)) {
    }
}
/* bytes from global src to shared dst, counted on bar's transaction count. */
__device__ __forceinline__ void gq_bulk_g2s(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
#if GQ_HAVE_TMA
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
                     gq_smem_addr(dst)),
                 "l"(src), "r"(bytes), "r"(gq_smem_addr(bar))
                 : "memory");
#else
    (void)dst, (void)src, (void)bytes, (void)bar, __trap();
#endif
}
/* Order this thread's (and, after __syncwarp, its warp's) generic shared-memory reads before a later
 * async-proxy write to the same bytes. */
__device__ __forceinline__ void gq_fence_proxy_async() {
#if GQ_HAVE_TMA
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
#endif
}

#endif
