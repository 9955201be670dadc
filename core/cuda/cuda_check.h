/* cuda_check.h — CUDA_CHECK / CUBLAS_CHECK: turn a failed CUDA runtime or cuBLAS call into a gq_status
 * with a message naming the call, the file and the line (shared by every .cu file in core/cuda).
 *
 * Both macros `return` a gq_status from the enclosing function, so they can only be used in functions
 * that return gq_status; clean-up paths use CUDA_CHECK_GOTO(call, label) with a local `gq_status st`.
 * CUDA_CHECK_LAUNCH() checks the last error right after a kernel launch (a bad launch configuration is
 * reported there, an asynchronous fault at the next synchronising call).
 * Must not: abort (a GPU error is an input/machine condition, not a programmer error) or print.
 */
#ifndef GQ_CUDA_CHECK_H
#define GQ_CUDA_CHECK_H

#include <cuda_runtime.h>

/* util.h is a C11 header: no extern "C" of its own, and _Noreturn is not C++. */
#ifdef __cplusplus
#ifndef _Noreturn
#define _Noreturn [[noreturn]]
#endif
extern "C" {
#endif
#include "../util.h"
#ifdef __cplusplus
}
#endif

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t gq__e = (call);                                                                \
        if (gq__e != cudaSuccess)                                                                  \
            return gq_errf(GQ_ERR_UNSUPPORTED, "%s failed at %s:%d: %s (%s)", #call, __FILE__,     \
                           __LINE__, cudaGetErrorString(gq__e), cudaGetErrorName(gq__e));         \
    } while (0)

#define CUDA_CHECK_GOTO(call, label)                                                               \
    do {                                                                                           \
        cudaError_t gq__e = (call);                                                                \
        if (gq__e != cudaSuccess) {                                                                \
            st = gq_errf(GQ_ERR_UNSUPPORTED, "%s failed at %s:%d: %s (%s)", #call, __FILE__,       \
                         __LINE__, cudaGetErrorString(gq__e), cudaGetErrorName(gq__e));            \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)

#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#ifdef CUBLAS_API_H_ /* only when the includer uses cuBLAS (cublas_v2.h defines this guard) */
static inline const char *gq_cublas_status_name(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_(unknown)";
    }
}
#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t gq__s = (call);                                                             \
        if (gq__s != CUBLAS_STATUS_SUCCESS)                                                        \
            return gq_errf(GQ_ERR_UNSUPPORTED, "%s failed at %s:%d: %s", #call, __FILE__, __LINE__,\
                           gq_cublas_status_name(gq__s));                                          \
    } while (0)
#endif

#endif
