/* pdl.cuh — programmatic dependent launch (Hopper, CUDA >= 12.3), used by the decode step.
 *
 * A kernel launched with cudaLaunchAttributeProgrammaticStreamSerialization may start while the
 * kernel before it in the stream is still running. Its blocks run freely up to gq_pdl_wait(), which
 * returns once that kernel has completed and its writes are visible; before it a kernel may only read
 * memory nothing in the step writes (weights, the task list) — the GEMVs issue their first weight
 * loads there, so the DRAM latency of the next layer's start overlaps the tail of the current kernel
 * instead of following it. gq_pdl_trigger() lets the next kernel's blocks be scheduled as soon as every
 * block of this one has called it (else: when they exit). Both are no-ops in a kernel launched
 * without the attribute, so every kernel can call them unconditionally.
 * gq_launch(pdl, kernel, grid, block, smem, stream, args...) launches with or without the attribute
 * (cudaLaunchKernelEx; capturable into graphs, where it becomes a programmatic edge).
 * Must not: be used for a kernel whose pre-wait part touches data another kernel writes.
 */
#ifndef GQ_CUDA_PDL_CUH
#define GQ_CUDA_PDL_CUH

#include <cuda_runtime.h>

__device__ __forceinline__ void gq_pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void gq_pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;" :::); }

template <typename... KArgs, typename... Args>
static inline cudaError_t gq_launch(bool pdl, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                    cudaStream_t stream, Args... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

#endif
