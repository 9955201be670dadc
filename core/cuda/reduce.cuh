/* reduce.cuh — warp- and block-wide sum and max, shared by the GPU forward (kernels_common.cuh) and the
 * GPU training engine (train_gpu.cu). blockDim.x must be a multiple of 32 (<= 1024); every thread of
 * the warp / block gets the result. block_* hold a __shared__ scratch of 32 values and begin with a
 * barrier, so consecutive calls in one kernel are safe.
 */
#ifndef GQ_CUDA_REDUCE_CUH
#define GQ_CUDA_REDUCE_CUH

#include <float.h>

namespace gqk {

template <typename T> static __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
template <typename T> static __device__ T block_sum(T v) {
    __shared__ T sh[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : T(0);
    return warp_sum(v);
}
static __device__ float block_max(float v) {
    __shared__ float sh[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -FLT_MAX;
    return warp_max(v);
}

} // namespace gqk

#endif
