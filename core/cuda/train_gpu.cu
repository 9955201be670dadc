/* train_gpu.cu — the GPU training engine (contracts in train_gpu.h): kernels for the element-wise and
 * row-wise ops, cuBLAS for every matmul (fp32 cublasSgemm*, or bf16 operand copies + cublasGemmEx in
 * mixed mode), the block forward/backward and the whole-model loss with block-sequential recomputation,
 * mirroring core/backward_tmpl.h line by line.
 * Must not: print, allocate per op call (scratch grows once, then is reused), leave an error sticky.
 */
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"

#ifndef _Noreturn
#define _Noreturn [[noreturn]]
#endif
extern "C" {
#include "../quant.h"
#include "../train.h"
}
#include "train_gpu.h"
#include "reduce.cuh"

extern "C" int gq_gpu_available(void); /* gpu_forward.cu */

struct gq_gt {
    int mixed;
    cudaStream_t stream;
    cublasHandle_t blas;
    cudaEvent_t ev0, ev1;
    __nv_bfloat16 *bf;     /* mixed: bf16 operand copies */
    size_t bf_cap;         /* elements */
    double *dsc;           /* [dsc_cap] per-row / per-block float64 partials */
    size_t dsc_cap;
    double *hsc;           /* pinned host mirror of dsc */
    unsigned long long *flags; /* [2] AdamW: first bad gradient / parameter index */
};

#define GT_BLOCK 256
static inline unsigned gt_grid(size_t n, unsigned block = GT_BLOCK) {
    size_t g = (n + block - 1) / block;
    if (g > 65535u * 16u) g = 65535u * 16u;
    return (unsigned)(g ? g : 1);
}

/* ===========================================================================================
 * Engine, memory
 * =========================================================================================== */
extern "C" int gq_gt_mixed(const gq_gt *e) { return e->mixed; }

extern "C" gq_status gq_gt_malloc(void **p, size_t bytes, const char *what) {
    *p = NULL;
    if (!bytes) bytes = 1;
    cudaError_t r = cudaMalloc(p, bytes);
    if (r != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();
        return gq_errf(GQ_ERR_NOMEM, "GPU training: cannot allocate %zu MB for %s: %s", bytes >> 20, what,
                       cudaGetErrorString(r));
    }
    return GQ_OK;
}
extern "C" void gq_gt_free(void *p) {
    if (p) cudaFree(p);
}

extern "C" void gq_gt_destroy(gq_gt *e) {
    if (!e) return;
    if (e->stream) cudaStreamSynchronize(e->stream);
    cudaFree(e->bf);
    cudaFree(e->dsc);
    cudaFree(e->flags);
    if (e->hsc) cudaFreeHost(e->hsc);
    if (e->ev0) cudaEventDestroy(e->ev0);
    if (e->ev1) cudaEventDestroy(e->ev1);
    if (e->blas) cublasDestroy(e->blas);
    if (e->stream) cudaStreamDestroy(e->stream);
    free(e);
}

static gq_status create_inner(gq_gt *e) {
    CUDA_CHECK(cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&e->blas));
    CUBLAS_CHECK(cublasSetStream(e->blas, e->stream));
    /* fp32 stays fp32: no TF32 down-conversion in cublasSgemm */
    CUBLAS_CHECK(cublasSetMathMode(e->blas, CUBLAS_DEFAULT_MATH));
    CUDA_CHECK(cudaEventCreate(&e->ev0));
    CUDA_CHECK(cudaEventCreate(&e->ev1));
    GQ_TRY(gq_gt_malloc((void **)&e->flags, 2 * sizeof(unsigned long long), "AdamW flags"));
    return GQ_OK;
}

extern "C" gq_status gq_gt_create(int mixed, gq_gt **out) {
    *out = NULL;
    if (!gq_gpu_available())
        return gq_errf(GQ_ERR_UNSUPPORTED, "GPU training: no CUDA device found (HINT: train with --device cpu)");
    gq_gt *e = (gq_gt *)calloc(1, sizeof *e);
    if (!e) return gq_errf(GQ_ERR_NOMEM, "GPU training: host allocation failed");
    e->mixed = mixed ? 1 : 0;
    gq_status st = create_inner(e);
    if (st != GQ_OK) {
        gq_gt_destroy(e);
        cudaGetLastError();
        return st;
    }
    *out = e;
    return GQ_OK;
}

extern "C" gq_status gq_gt_sync(gq_gt *e) {
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    return GQ_OK;
}
extern "C" gq_status gq_gt_timer_start(gq_gt *e) {
    CUDA_CHECK(cudaEventRecord(e->ev0, e->stream));
    return GQ_OK;
}
extern "C" gq_status gq_gt_timer_stop(gq_gt *e, float *ms) {
    CUDA_CHECK(cudaEventRecord(e->ev1, e->stream));
    CUDA_CHECK(cudaEventSynchronize(e->ev1));
    CUDA_CHECK(cudaEventElapsedTime(ms, e->ev0, e->ev1));
    return GQ_OK;
}

extern "C" gq_status gq_gt_upload(gq_gt *e, void *dst, const void *src, size_t bytes) {
    if (!bytes) return GQ_OK;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, e->stream));
    /* the source is pageable host memory the caller may reuse at once */
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    return GQ_OK;
}
extern "C" gq_status gq_gt_download(gq_gt *e, void *dst, const void *src, size_t bytes) {
    if (!bytes) return GQ_OK;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    return GQ_OK;
}
extern "C" gq_status gq_gt_zero(gq_gt *e, void *p, size_t bytes) {
    if (!bytes) return GQ_OK;
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, e->stream));
    return GQ_OK;
}
extern "C" gq_status gq_gt_copy(gq_gt *e, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return GQ_OK;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, e->stream));
    return GQ_OK;
}
extern "C" gq_status gq_gt_upload_new(gq_gt *e, float **dst, const float *src, size_t n, const char *what) {
    *dst = NULL;
    if (!n) return GQ_OK;
    GQ_TRY(gq_gt_malloc((void **)dst, n * sizeof(float), what));
    gq_status st = src ? gq_gt_upload(e, *dst, src, n * sizeof(float)) : gq_gt_zero(e, *dst, n * sizeof(float));
    if (st != GQ_OK) {
        cudaFree(*dst);
        *dst = NULL;
    }
    return st;
}

/* Scratch that only grows: the stream is drained before the old buffer goes. */
static gq_status need_bf(gq_gt *e, size_t n) {
    if (n <= e->bf_cap) return GQ_OK;
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    cudaFree(e->bf);
    e->bf = NULL;
    e->bf_cap = 0;
    GQ_TRY(gq_gt_malloc((void **)&e->bf, n * sizeof(__nv_bfloat16), "bf16 operand copies"));
    e->bf_cap = n;
    return GQ_OK;
}
static gq_status need_dsc(gq_gt *e, size_t n) {
    if (n <= e->dsc_cap) return GQ_OK;
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    cudaFree(e->dsc);
    if (e->hsc) cudaFreeHost(e->hsc);
    e->dsc = NULL;
    e->hsc = NULL;
    e->dsc_cap = 0;
    GQ_TRY(gq_gt_malloc((void **)&e->dsc, n * sizeof(double), "float64 partial sums"));
    cudaError_t r = cudaMallocHost((void **)&e->hsc, n * sizeof(double));
    if (r != cudaSuccess) {
        cudaGetLastError();
        cudaFree(e->dsc);
        e->dsc = NULL;
        return gq_errf(GQ_ERR_NOMEM, "GPU training: cannot allocate pinned host memory: %s", cudaGetErrorString(r));
    }
    e->dsc_cap = n;
    return GQ_OK;
}

/* ===========================================================================================
 * GEMM
 * =========================================================================================== */
/* Row-major C[M, N] (ldc) = alpha op(A) op(B) + beta C, op(A) [M, K], op(B) [K, N], `batch` of them
 * with element strides sA, sB, sC. In cuBLAS's column-major view C^T = op(B)^T op(A)^T, so the call
 * takes B first: cublas(opB, opA, N, M, K, B, ldb, A, lda, C, ldc). fast16 = 1: fp32 buffers with
 * CUBLAS_COMPUTE_32F_FAST_16BF (mixed mode's attention). */
static gq_status gemm_f32(gq_gt *e, int fast16, int tA, int tB, int M, int N, int K, float alpha, const float *A,
                          int lda, long long sA, const float *B, int ldb, long long sB, float beta, float *C, int ldc,
                          long long sC, int batch) {
    cublasOperation_t oB = tB ? CUBLAS_OP_T : CUBLAS_OP_N, oA = tA ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (M == 0 || N == 0 || batch == 0) return GQ_OK;
    if (!fast16) {
        if (batch == 1)
            CUBLAS_CHECK(cublasSgemm(e->blas, oB, oA, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
        else
            CUBLAS_CHECK(cublasSgemmStridedBatched(e->blas, oB, oA, N, M, K, &alpha, B, ldb, sB, A, lda, sA, &beta, C,
                                                   ldc, sC, batch));
    } else {
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(e->blas, oB, oA, N, M, K, &alpha, B, CUDA_R_32F, ldb, sB, A, CUDA_R_32F,
                                                lda, sA, &beta, C, CUDA_R_32F, ldc, sC, batch,
                                                CUBLAS_COMPUTE_32F_FAST_16BF, CUBLAS_GEMM_DEFAULT));
    }
    return GQ_OK;
}

static __global__ void k_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[i]);
}

/* The linears' GEMM: fp32 (cublasSgemm) or, in mixed mode, bf16 copies of A (nA elements, dense with
 * its lda) and B (nB elements) and cublasGemmEx with fp32 accumulation and output. */
static gq_status gemm_lin(gq_gt *e, int tA, int tB, int M, int N, int K, const float *A, int lda, size_t nA,
                          const float *B, int ldb, size_t nB, float beta, float *C, int ldc) {
    if (!e->mixed) return gemm_f32(e, 0, tA, tB, M, N, K, 1.f, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
    if (M == 0 || N == 0) return GQ_OK;
    GQ_TRY(need_bf(e, nA + nB));
    __nv_bfloat16 *a = e->bf, *b = e->bf + nA;
    k_to_bf16<<<gt_grid(nA), GT_BLOCK, 0, e->stream>>>(a, A, nA);
    CUDA_CHECK_LAUNCH();
    k_to_bf16<<<gt_grid(nB), GT_BLOCK, 0, e->stream>>>(b, B, nB);
    CUDA_CHECK_LAUNCH();
    const float one = 1.f;
    cublasOperation_t oB = tB ? CUBLAS_OP_T : CUBLAS_OP_N, oA = tA ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasGemmEx(e->blas, oB, oA, N, M, K, &one, b, CUDA_R_16BF, ldb, a, CUDA_R_16BF, lda, &beta, C,
                              CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return GQ_OK;
}

/* ===========================================================================================
 * Reductions
 * =========================================================================================== */
/* warp_sum / block_sum (any type) and block_max: reduce.cuh, shared with the evaluation forward. */
using gqk::block_max;
using gqk::block_sum;
using gqk::warp_sum;

/* ===========================================================================================
 * RMSNorm
 * =========================================================================================== */
static __global__ void k_rmsnorm_fwd(float *y, float *rinv, const float *x, const float *w, int D, double eps) {
    const float *xr = x + (size_t)blockIdx.x * D;
    float *yr = y + (size_t)blockIdx.x * D;
    double ss = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) ss += (double)xr[i] * xr[i];
    ss = block_sum(ss);
    float r = (float)(1.0 / sqrt(ss / D + eps));
    if (threadIdx.x == 0) rinv[blockIdx.x] = r;
    for (int i = threadIdx.x; i < D; i += blockDim.x) yr[i] = xr[i] * r * w[i];
}

/* dx_j += r w_j dy_j - x_j r^3 / D * sum_i dy_i w_i x_i */
static __global__ void k_rmsnorm_bwd_dx(float *dx, const float *dy, const float *x, const float *w, const float *rinv,
                                        int D) {
    size_t off = (size_t)blockIdx.x * D;
    const float *xr = x + off, *dyr = dy + off;
    float *dxr = dx + off;
    double r = rinv[blockIdx.x], dot = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) dot += (double)dyr[i] * w[i] * xr[i];
    dot = block_sum(dot);
    double c = r * r * r * dot / D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) dxr[i] += (float)(r * w[i] * dyr[i] - xr[i] * c);
}

/* dw_i += sum_t dy_ti x_ti r_t: columns across threads, rows in chunks of GT_RMS_ROWS (atomics). */
#define GT_RMS_ROWS 64
static __global__ void k_rmsnorm_bwd_dw(float *dw, const float *dy, const float *x, const float *rinv, int T, int D) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= D) return;
    int t0 = blockIdx.y * GT_RMS_ROWS, t1 = min(T, t0 + GT_RMS_ROWS);
    double s = 0;
    for (int t = t0; t < t1; t++) s += (double)dy[(size_t)t * D + i] * x[(size_t)t * D + i] * rinv[t];
    atomicAdd(&dw[i], (float)s);
}

extern "C" gq_status gq_gt_rmsnorm_fwd(gq_gt *e, float *y, float *rinv, const float *x, const float *w, int T, int D,
                                       double eps) {
    if (T <= 0) return GQ_OK;
    k_rmsnorm_fwd<<<T, 256, 0, e->stream>>>(y, rinv, x, w, D, eps);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}
extern "C" gq_status gq_gt_rmsnorm_bwd(gq_gt *e, float *dx, float *dw, const float *dy, const float *x, const float *w,
                                       const float *rinv, int T, int D) {
    if (T <= 0) return GQ_OK;
    k_rmsnorm_bwd_dx<<<T, 256, 0, e->stream>>>(dx, dy, x, w, rinv, D);
    CUDA_CHECK_LAUNCH();
    if (dw) {
        dim3 grid((D + 127) / 128, (T + GT_RMS_ROWS - 1) / GT_RMS_ROWS);
        k_rmsnorm_bwd_dw<<<grid, 128, 0, e->stream>>>(dw, dy, x, rinv, T, D);
        CUDA_CHECK_LAUNCH();
    }
    return GQ_OK;
}

/* ===========================================================================================
 * Linear
 * =========================================================================================== */
static __global__ void k_add_bias(float *y, const float *b, size_t rows, int N) {
    size_t n = rows * (size_t)N;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] += b[i % N];
}

extern "C" gq_status gq_gt_linear_fwd(gq_gt *e, float *y, const float *x, const float *W, const float *bias, int T,
                                      int N, int K) {
    /* y [T, N] = x [T, K] W^T */
    GQ_TRY(gemm_lin(e, 0, 1, T, N, K, x, K, (size_t)T * K, W, K, (size_t)N * K, 0.f, y, N));
    if (bias) {
        k_add_bias<<<gt_grid((size_t)T * N), GT_BLOCK, 0, e->stream>>>(y, bias, (size_t)T, N);
        CUDA_CHECK_LAUNCH();
    }
    return GQ_OK;
}

extern "C" gq_status gq_gt_linear_bwd(gq_gt *e, float *dx, int dx_accumulate, float *dW, const float *dy,
                                      const float *x, const float *W, int T, int N, int K) {
    /* dx [T, K] = dy [T, N] W [N, K] */
    if (dx) GQ_TRY(gemm_lin(e, 0, 0, T, K, N, dy, N, (size_t)T * N, W, K, (size_t)N * K, dx_accumulate ? 1.f : 0.f, dx, K));
    /* dW [N, K] += dy^T [N, T] x [T, K] */
    if (dW) GQ_TRY(gemm_lin(e, 1, 0, N, K, T, dy, N, (size_t)T * N, x, K, (size_t)T * K, 1.f, dW, K));
    return GQ_OK;
}

/* ===========================================================================================
 * RoPE (x [T, nh*HD]; grid (T, nh), HD/2 threads; dir +1 forward, -1 its transpose)
 * =========================================================================================== */
static __global__ void k_rope(float *x, const float *cs, const float *sn, int nh, int HD, int half_style, int dir) {
    int t = blockIdx.x, h = blockIdx.y, hd2 = HD / 2;
    float *v = x + (size_t)t * nh * HD + (size_t)h * HD;
    const float *c = cs + (size_t)t * hd2, *s = sn + (size_t)t * hd2;
    for (int i = threadIdx.x; i < hd2; i += blockDim.x) {
        int a = half_style ? i : 2 * i, b = half_style ? i + hd2 : 2 * i + 1;
        float x0 = v[a], x1 = v[b], si = dir > 0 ? s[i] : -s[i];
        v[a] = x0 * c[i] - x1 * si;
        v[b] = x0 * si + x1 * c[i];
    }
}
static gq_status rope(gq_gt *e, float *x, const float *cs, const float *sn, int T, int nh, int HD, gq_rope_style st,
                      int dir) {
    if (T <= 0 || nh <= 0) return GQ_OK;
    int thr = HD / 2 < 32 ? 32 : (HD / 2 > 256 ? 256 : HD / 2);
    k_rope<<<dim3(T, nh), thr, 0, e->stream>>>(x, cs, sn, nh, HD, st == GQ_ROPE_HALF, dir);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}
extern "C" gq_status gq_gt_rope_fwd(gq_gt *e, float *x, const float *cs, const float *sn, int T, int nh, int HD,
                                    gq_rope_style st) {
    return rope(e, x, cs, sn, T, nh, HD, st, +1);
}
extern "C" gq_status gq_gt_rope_bwd(gq_gt *e, float *dx, const float *cs, const float *sn, int T, int nh, int HD,
                                    gq_rope_style st) {
    return rope(e, dx, cs, sn, T, nh, HD, st, -1);
}

/* ===========================================================================================
 * Attention: batched GEMMs per group position j (heads h = g*grp + j, g over the kv heads) + a causal
 * softmax kernel. Row (h, t) of P is row h*T + t of a [NH*T, T] matrix.
 * =========================================================================================== */
static __global__ void k_causal_softmax(float *P, int T) {
    size_t row = blockIdx.x;
    int t = (int)(row % T);
    float *r = P + row * T;
    float mx = -INFINITY;
    for (int s = threadIdx.x; s <= t; s += blockDim.x) mx = fmaxf(mx, r[s]);
    mx = block_max(mx);
    double sum = 0;
    for (int s = threadIdx.x; s <= t; s += blockDim.x) {
        float ev = (float)exp((double)r[s] - (double)mx);
        r[s] = ev;
        sum += ev;
    }
    sum = block_sum(sum);
    for (int s = threadIdx.x; s < T; s += blockDim.x) r[s] = s <= t ? (float)((double)r[s] / sum) : 0.f;
}

/* dS = P (dP - rowsum(P dP)) on the causal part, 0 above the diagonal; in place on dP. */
static __global__ void k_causal_softmax_bwd(float *dP, const float *P, int T) {
    size_t row = blockIdx.x;
    int t = (int)(row % T);
    const float *pr = P + row * T;
    float *dr = dP + row * T;
    double dot = 0;
    for (int s = threadIdx.x; s <= t; s += blockDim.x) dot += (double)pr[s] * dr[s];
    dot = block_sum(dot);
    for (int s = threadIdx.x; s < T; s += blockDim.x) dr[s] = s <= t ? (float)(pr[s] * (dr[s] - dot)) : 0.f;
}

extern "C" gq_status gq_gt_attn_fwd(gq_gt *e, float *out, float *P, const float *q, const float *k, const float *v,
                                    int T, int NH, int NKV, int HD) {
    if (T <= 0) return GQ_OK;
    int grp = NH / NKV, qd = NH * HD, kd = NKV * HD, f16 = e->mixed;
    long long TT = (long long)T * T;
    float scale = (float)(1.0 / sqrt((double)HD));
    for (int j = 0; j < grp; j++) /* S_h = scale Q_h K_g^T */
        GQ_TRY(gemm_f32(e, f16, 0, 1, T, T, HD, scale, q + (size_t)j * HD, qd, (long long)grp * HD, k, kd, HD, 0.f,
                        P + (size_t)j * TT, T, grp * TT, NKV));
    k_causal_softmax<<<(unsigned)(NH * T), 128, 0, e->stream>>>(P, T);
    CUDA_CHECK_LAUNCH();
    for (int j = 0; j < grp; j++) /* out_h = P_h V_g */
        GQ_TRY(gemm_f32(e, f16, 0, 0, T, HD, T, 1.f, P + (size_t)j * TT, T, grp * TT, v, kd, HD, 0.f,
                        out + (size_t)j * HD, qd, (long long)grp * HD, NKV));
    return GQ_OK;
}

extern "C" gq_status gq_gt_attn_bwd(gq_gt *e, float *dq, float *dk, float *dv, float *dP, const float *dout,
                                    const float *P, const float *q, const float *k, const float *v, int T, int NH,
                                    int NKV, int HD) {
    if (T <= 0) return GQ_OK;
    int grp = NH / NKV, qd = NH * HD, kd = NKV * HD, f16 = e->mixed;
    long long TT = (long long)T * T;
    float scale = (float)(1.0 / sqrt((double)HD));
    for (int j = 0; j < grp; j++) {
        /* dP_h = dout_h V_g^T */
        GQ_TRY(gemm_f32(e, f16, 0, 1, T, T, HD, 1.f, dout + (size_t)j * HD, qd, (long long)grp * HD, v, kd, HD, 0.f,
                        dP + (size_t)j * TT, T, grp * TT, NKV));
        /* dV_g (+)= P_h^T dout_h: the first head of each group overwrites, the others add */
        GQ_TRY(gemm_f32(e, f16, 1, 0, T, HD, T, 1.f, P + (size_t)j * TT, T, grp * TT, dout + (size_t)j * HD, qd,
                        (long long)grp * HD, j ? 1.f : 0.f, dv, kd, HD, NKV));
    }
    k_causal_softmax_bwd<<<(unsigned)(NH * T), 128, 0, e->stream>>>(dP, P, T);
    CUDA_CHECK_LAUNCH();
    for (int j = 0; j < grp; j++) {
        /* dQ_h = scale dS_h K_g */
        GQ_TRY(gemm_f32(e, f16, 0, 0, T, HD, T, scale, dP + (size_t)j * TT, T, grp * TT, k, kd, HD, 0.f,
                        dq + (size_t)j * HD, qd, (long long)grp * HD, NKV));
        /* dK_g (+)= scale dS_h^T Q_h */
        GQ_TRY(gemm_f32(e, f16, 1, 0, T, HD, T, scale, dP + (size_t)j * TT, T, grp * TT, q + (size_t)j * HD, qd,
                        (long long)grp * HD, j ? 1.f : 0.f, dk, kd, HD, NKV));
    }
    return GQ_OK;
}

/* ===========================================================================================
 * SwiGLU, embedding, cross-entropy
 * =========================================================================================== */
static __global__ void k_swiglu_fwd(float *h, const float *g, const float *u, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double x = g[i];
        h[i] = (float)(x / (1.0 + exp(-x)) * u[i]);
    }
}
static __global__ void k_swiglu_bwd(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double x = g[i], sg = 1.0 / (1.0 + exp(-x)), d = dh[i], uu = u[i];
        du[i] = (float)(d * x * sg);
        dg[i] = (float)(d * uu * sg * (1.0 + x * (1.0 - sg)));
    }
}
extern "C" gq_status gq_gt_swiglu_fwd(gq_gt *e, float *h, const float *g, const float *u, size_t n) {
    if (!n) return GQ_OK;
    k_swiglu_fwd<<<gt_grid(n), GT_BLOCK, 0, e->stream>>>(h, g, u, n);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}
extern "C" gq_status gq_gt_swiglu_bwd(gq_gt *e, float *dg, float *du, const float *dh, const float *g, const float *u,
                                      size_t n) {
    if (!n) return GQ_OK;
    k_swiglu_bwd<<<gt_grid(n), GT_BLOCK, 0, e->stream>>>(dg, du, dh, g, u, n);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

static __global__ void k_embed_fwd(float *x, const float *emb, const int32_t *tok, int D) {
    const float *src = emb + (size_t)tok[blockIdx.x] * D;
    float *dst = x + (size_t)blockIdx.x * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) dst[i] = src[i];
}
static __global__ void k_embed_bwd(float *demb, const float *dx, const int32_t *tok, int D) {
    float *dst = demb + (size_t)tok[blockIdx.x] * D;
    const float *src = dx + (size_t)blockIdx.x * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) atomicAdd(&dst[i], src[i]);
}
extern "C" gq_status gq_gt_embed_fwd(gq_gt *e, float *x, const float *emb, const int32_t *tokens, int T, int D) {
    if (T <= 0) return GQ_OK;
    k_embed_fwd<<<T, 256, 0, e->stream>>>(x, emb, tokens, D);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}
extern "C" gq_status gq_gt_embed_bwd(gq_gt *e, float *demb, const float *dx, const int32_t *tokens, int T, int D) {
    if (T <= 0) return GQ_OK;
    k_embed_bwd<<<T, 256, 0, e->stream>>>(demb, dx, tokens, D);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

/* One block per predicting row t < T-1: loss[t] = lse - logit[y]; dlogits (may alias logits) =
 * softmax * inv_n, minus inv_n at y. Every read of the row happens before the first write. */
static __global__ void k_xent(double *rowloss, float *dlogits, const float *logits, const int32_t *tok, int V,
                              double inv_n) {
    int t = blockIdx.x, y = tok[t + 1];
    const float *r = logits + (size_t)t * V;
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, r[i]);
    mx = block_max(mx);
    double s = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += exp((double)r[i] - (double)mx);
    s = block_sum(s);
    double lse = (double)mx + log(s);
    double ry = (double)r[y];
    __syncthreads(); /* everyone has read what it needs of the row (ry above, r[i] below is its own) */
    if (threadIdx.x == 0) rowloss[t] = lse - ry;
    if (dlogits) {
        float *d = dlogits + (size_t)t * V;
        for (int i = threadIdx.x; i < V; i += blockDim.x) d[i] = (float)(exp((double)r[i] - lse) * inv_n);
        __syncthreads();
        if (threadIdx.x == 0) d[y] -= (float)inv_n;
    }
}

extern "C" gq_status gq_gt_xent(gq_gt *e, float *dlogits, const float *logits, const int32_t *tokens, int T, int V,
                                double *loss) {
    if (T < 2) return gq_errf(GQ_ERR_ARG, "GPU cross-entropy: T = %d (need >= 2)", T);
    GQ_TRY(need_dsc(e, (size_t)T));
    double inv_n = 1.0 / (double)(T - 1);
    k_xent<<<T - 1, 512, 0, e->stream>>>(e->dsc, dlogits, logits, tokens, V, inv_n);
    CUDA_CHECK_LAUNCH();
    if (dlogits) CUDA_CHECK(cudaMemsetAsync(dlogits + (size_t)(T - 1) * V, 0, sizeof(float) * (size_t)V, e->stream));
    CUDA_CHECK(cudaMemcpyAsync(e->hsc, e->dsc, sizeof(double) * (size_t)(T - 1), cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    double total = 0; /* in position order, as the CPU */
    for (int t = 0; t + 1 < T; t++) total += e->hsc[t];
    *loss = total * inv_n;
    return GQ_OK;
}

/* ===========================================================================================
 * Fake quantization
 * =========================================================================================== */
extern "C" void gq_gt_gqs_free(gq_gt_gqs *g) {
    if (!g) return;
    cudaFree(g->group_row);
    cudaFree(g->group_col);
    cudaFree(g->codes);
    memset(g, 0, sizeof *g);
}

extern "C" gq_status gq_gt_gqs_upload(gq_gt *e, const gq_gqs *g, gq_gt_gqs *out) {
    memset(out, 0, sizeof *out);
    out->N = g->N, out->K = g->K, out->G = g->G, out->bits = g->bits, out->nnz = g->nnz;
    size_t nz = g->nnz;
    int32_t *row = (int32_t *)malloc(sizeof(int32_t) * (nz ? nz : 1));
    uint8_t *codes = (uint8_t *)malloc(nz * g->G + 1);
    if (!row || !codes) {
        free(row); free(codes);
        return gq_errf(GQ_ERR_NOMEM, "GPU training: host allocation failed");
    }
    for (int r = 0; r < g->N; r++)
        for (int32_t i = g->row_index[r]; i < g->row_index[r + 1]; i++) row[i] = r;
    for (size_t i = 0; i < nz; i++)
        for (int j = 0; j < g->G; j++) codes[i * g->G + j] = (uint8_t)gq_gqs_get_code(g, i, j);
    gq_status st = gq_gt_malloc((void **)&out->group_row, sizeof(int32_t) * nz, "GQS rows");
    if (st == GQ_OK) st = gq_gt_malloc((void **)&out->group_col, sizeof(int32_t) * nz, "GQS columns");
    if (st == GQ_OK) st = gq_gt_malloc((void **)&out->codes, nz * g->G, "GQS codes");
    if (st == GQ_OK) st = gq_gt_upload(e, out->group_row, row, sizeof(int32_t) * nz);
    if (st == GQ_OK) st = gq_gt_upload(e, out->group_col, g->group_col, sizeof(int32_t) * nz);
    if (st == GQ_OK) st = gq_gt_upload(e, out->codes, codes, nz * g->G);
    free(row);
    free(codes);
    if (st != GQ_OK) gq_gt_gqs_free(out);
    return st;
}

static __global__ void k_oqp_expand(float *w_hat, const int32_t *grow, const int32_t *gcol, const uint8_t *codes,
                                    const float *s, const float *z, size_t nnz, int K, int G) {
    size_t n = nnz * G;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (size_t)gridDim.x * blockDim.x) {
        size_t i = idx / G;
        int j = (int)(idx % G);
        w_hat[(size_t)grow[i] * K + (size_t)gcol[i] * G + j] = ((float)codes[idx] - z[i]) * s[i];
    }
}
extern "C" gq_status gq_gt_oqp_expand(gq_gt *e, const gq_gt_gqs *g, const float *s, const float *z, float *w_hat) {
    CUDA_CHECK(cudaMemsetAsync(w_hat, 0, sizeof(float) * (size_t)g->N * g->K, e->stream));
    if (!g->nnz) return GQ_OK;
    k_oqp_expand<<<gt_grid(g->nnz * g->G), GT_BLOCK, 0, e->stream>>>(w_hat, g->group_row, g->group_col, g->codes, s, z,
                                                                     g->nnz, g->K, g->G);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

static __global__ void k_oqp_grad(float *ds, float *dz, const float *dW, const int32_t *grow, const int32_t *gcol,
                                  const uint8_t *codes, const float *s, const float *z, size_t nnz, int K, int G) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < nnz; i += (size_t)gridDim.x * blockDim.x) {
        const float *src = dW + (size_t)grow[i] * K + (size_t)gcol[i] * G;
        const uint8_t *q = codes + i * G;
        double a = 0, b = 0, zi = z[i];
        for (int j = 0; j < G; j++) {
            a += (double)src[j] * ((double)q[j] - zi);
            b += src[j];
        }
        ds[i] += (float)a;
        dz[i] += (float)(-(double)s[i] * b);
    }
}
extern "C" gq_status gq_gt_oqp_grad(gq_gt *e, const gq_gt_gqs *g, const float *s, const float *z, const float *dW,
                                    float *ds, float *dz) {
    if (!g->nnz) return GQ_OK;
    k_oqp_grad<<<gt_grid(g->nnz), GT_BLOCK, 0, e->stream>>>(ds, dz, dW, g->group_row, g->group_col, g->codes, s, z,
                                                            g->nnz, g->K, g->G);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

/* gq_quant_fp16_ceil: the next fp16 value >= s. */
static __device__ float fp16_ceil_dev(float s) {
    if (!(s > 0) || !isfinite(s) || s > 65504.0f) return s;
    __half h = __float2half_rn(s);
    float f = __half2float(h);
    if (f < s) f = __half2float(__ushort_as_half((unsigned short)(__half_as_ushort(h) + 1)));
    if (f == 0) f = __half2float(__ushort_as_half((unsigned short)1));
    return f;
}

/* One thread per group (gq_quant_params + gq_quant_code + gq_quant_dequant, operation for operation). */
static __global__ void k_fq(float *w_hat, uint8_t *ste, const float *w, const uint8_t *keep, int N, int K, int G,
                            int bits, int mode, int fp16_scale) {
    int C = K / G;
    size_t ng = (size_t)N * C;
    for (size_t gi = (size_t)blockIdx.x * blockDim.x + threadIdx.x; gi < ng; gi += (size_t)gridDim.x * blockDim.x) {
        size_t off = (gi / C) * K + (gi % C) * G;
        const float *x = w + off;
        if (!keep[gi]) {
            for (int j = 0; j < G; j++) {
                w_hat[off + j] = 0.f;
                if (ste) ste[off + j] = 0;
            }
            continue;
        }
        float mn = x[0], mx = x[0];
        for (int j = 0; j < G; j++) {
            if (x[j] < mn) mn = x[j];
            if (x[j] > mx) mx = x[j];
        }
        const float maxq = (float)((1 << bits) - 1);
        float s, z;
        if (mode == GQ_QMODE_SYM) {
            float amax = fmaxf(fabsf(mn), fabsf(mx));
            s = amax > 0 ? __fmul_rn(2.0f, amax) / maxq : 1.0f;
            if (fp16_scale) s = fp16_ceil_dev(s);
            z = (float)(1 << (bits - 1));
        } else {
            if (mode == GQ_QMODE_ASYM) {
                mn = fminf(mn, 0.0f);
                mx = fmaxf(mx, 0.0f);
            }
            if (mx > mn) {
                s = __fsub_rn(mx, mn) / maxq;
                if (!(s > 0)) s = fabsf(mn) > 0 ? fabsf(mn) : 1.0f;
            } else {
                s = fabsf(mn) > 0 ? fabsf(mn) : 1.0f;
            }
            if (fp16_scale) s = fp16_ceil_dev(s);
            z = __fadd_rn(-roundf(mn / s), 0.0f);
        }
        for (int j = 0; j < G; j++) {
            float u = __fadd_rn(roundf(x[j] / s), z);
            float q = u < 0 ? 0.f : (u > maxq ? maxq : u);
            w_hat[off + j] = __fmul_rn(__fsub_rn((float)(int)q, z), s);
            if (ste) ste[off + j] = (uint8_t)(u >= 0 && u <= maxq);
        }
    }
}

extern "C" gq_status gq_gt_fq_forward(gq_gt *e, const float *w, const uint8_t *keep, int N, int K, int G,
                                      const gq_qspec *spec, float *w_hat, uint8_t *ste) {
    if (G < 1 || K % G) return gq_errf(GQ_ERR_ARG, "GPU fake quantization: G = %d does not divide K = %d", G, K);
    size_t ng = (size_t)N * (K / G);
    if (!ng) return GQ_OK;
    k_fq<<<gt_grid(ng, 128), 128, 0, e->stream>>>(w_hat, ste, w, keep, N, K, G, spec->bits, (int)spec->mode,
                                                  spec->fp16_scale);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

static __global__ void k_mask(float *dw, const uint8_t *ste, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        if (!ste[i]) dw[i] = 0.f;
}
extern "C" gq_status gq_gt_mask_grad(gq_gt *e, float *dw, const uint8_t *ste, size_t n) {
    if (!n) return GQ_OK;
    k_mask<<<gt_grid(n), GT_BLOCK, 0, e->stream>>>(dw, ste, n);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

/* Per-block partial sums of (out - y)^2 into part[blockIdx.x]; dy = scale (out - y). */
static __global__ void k_sq_diff(double *part, float *dy, const float *out, const float *y, size_t n, float scale) {
    double s = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float o = out[i], t = y[i];
        double d = (double)o - t;
        s += d * d;
        if (dy) dy[i] = scale * (o - t);
    }
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}
extern "C" gq_status gq_gt_sq_diff(gq_gt *e, float *dy, const float *out, const float *y, size_t n, float scale,
                                   double *sq) {
    unsigned nb = gt_grid(n);
    if (nb > 1024) nb = 1024;
    GQ_TRY(need_dsc(e, nb));
    k_sq_diff<<<nb, GT_BLOCK, 0, e->stream>>>(e->dsc, dy, out, y, n, scale);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(e->hsc, e->dsc, sizeof(double) * nb, cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    double s = 0;
    for (unsigned i = 0; i < nb; i++) s += e->hsc[i];
    *sq = s;
    return GQ_OK;
}

/* ===========================================================================================
 * AdamW
 * =========================================================================================== */
extern "C" gq_status gq_gt_adamw_init(gq_gt_adamw_state *s, size_t n) {
    memset(s, 0, sizeof *s);
    s->n = n;
    GQ_TRY(gq_gt_malloc((void **)&s->m, (n ? n : 1) * sizeof(float), "AdamW moments"));
    gq_status st = gq_gt_malloc((void **)&s->v, (n ? n : 1) * sizeof(float), "AdamW moments");
    if (st == GQ_OK && cudaMemset(s->m, 0, (n ? n : 1) * sizeof(float)) != cudaSuccess) st = GQ_ERR_UNSUPPORTED;
    if (st == GQ_OK && cudaMemset(s->v, 0, (n ? n : 1) * sizeof(float)) != cudaSuccess) st = GQ_ERR_UNSUPPORTED;
    if (st != GQ_OK) {
        cudaGetLastError();
        gq_gt_adamw_free(s);
        if (st == GQ_ERR_UNSUPPORTED) return gq_errf(st, "GPU training: cudaMemset of the AdamW moments failed");
    }
    return st;
}
extern "C" void gq_gt_adamw_free(gq_gt_adamw_state *s) {
    if (!s) return;
    cudaFree(s->m);
    cudaFree(s->v);
    memset(s, 0, sizeof *s);
}

typedef struct {
    double lr, b1, b2, eps, bc1, bc2, decay;
} gt_adam_k;

static __device__ __forceinline__ double adam_new_p(const gt_adam_k &a, float p, float g, float m0, float v0,
                                                    double *m, double *v) {
    *m = a.b1 * m0 + (1 - a.b1) * g;
    *v = a.b2 * v0 + (1 - a.b2) * (double)g * g;
    return p * a.decay - a.lr * (*m / a.bc1) / (sqrt(*v / a.bc2) + a.eps);
}

/* flags[0] = first index with a non-finite gradient, flags[1] = first with a non-finite result. */
static __global__ void k_adam_check(unsigned long long *flags, gt_adam_k a, const float *p, const float *g,
                                    const float *m, const float *v, size_t n, float gs) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float gi = g[i] * gs;
        if (!isfinite(gi)) {
            atomicMin(&flags[0], (unsigned long long)i);
            continue;
        }
        double mm, vv;
        double np = adam_new_p(a, p[i], gi, m[i], v[i], &mm, &vv);
        if (!isfinite((float)np)) atomicMin(&flags[1], (unsigned long long)i);
    }
}
static __global__ void k_adam_apply(gt_adam_k a, float *p, const float *g, float *m, float *v, size_t n, float gs) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        double mm, vv;
        double np = adam_new_p(a, p[i], g[i] * gs, m[i], v[i], &mm, &vv);
        m[i] = (float)mm;
        v[i] = (float)vv;
        p[i] = (float)np;
    }
}

extern "C" gq_status gq_gt_adamw_step(gq_gt *e, const gq_adamw_opts *o, gq_gt_adamw_state *s, float *p,
                                      const float *g, float grad_scale, const char *name) {
    long t = s->t + 1;
    gt_adam_k a;
    a.lr = o->lr, a.b1 = o->beta1, a.b2 = o->beta2, a.eps = o->eps;
    a.bc1 = 1.0 - pow(o->beta1, (double)t), a.bc2 = 1.0 - pow(o->beta2, (double)t);
    a.decay = 1.0 - o->lr * o->weight_decay;
    if (!s->n) {
        s->t = t;
        return GQ_OK;
    }
    unsigned long long none[2] = {~0ull, ~0ull}, got[2];
    CUDA_CHECK(cudaMemcpyAsync(e->flags, none, sizeof none, cudaMemcpyHostToDevice, e->stream));
    k_adam_check<<<gt_grid(s->n), GT_BLOCK, 0, e->stream>>>(e->flags, a, p, g, s->m, s->v, s->n, grad_scale);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(got, e->flags, sizeof got, cudaMemcpyDeviceToHost, e->stream));
    CUDA_CHECK(cudaStreamSynchronize(e->stream));
    if (got[0] != ~0ull) {
        float gv = 0;
        CUDA_CHECK(cudaMemcpy(&gv, g + got[0], sizeof gv, cudaMemcpyDeviceToHost));
        return gq_errf(GQ_ERR_NUMERIC, "%s: gradient element %llu is %g at optimizer step %ld (training diverged; "
                                       "HINT: lower the learning rate)", name, got[0], (double)(gv * grad_scale), t);
    }
    if (got[1] != ~0ull)
        return gq_errf(GQ_ERR_NUMERIC, "%s: parameter element %llu becomes non-finite at optimizer step %ld", name,
                       got[1], t);
    k_adam_apply<<<gt_grid(s->n), GT_BLOCK, 0, e->stream>>>(a, p, g, s->m, s->v, s->n, grad_scale);
    CUDA_CHECK_LAUNCH();
    s->t = t;
    return GQ_OK;
}

extern "C" gq_status gq_gt_adamw_download(gq_gt *e, const gq_gt_adamw_state *s, float *m, float *v) {
    GQ_TRY(gq_gt_download(e, m, s->m, s->n * sizeof(float)));
    return gq_gt_download(e, v, s->v, s->n * sizeof(float));
}

/* ===========================================================================================
 * One block
 * =========================================================================================== */
extern "C" gq_status gq_gt_acts_init(gq_gt *e, gq_gt_acts *a, const gq_config *c, int max_T) {
    memset(a, 0, sizeof *a);
    if (max_T < 1) return gq_errf(GQ_ERR_ARG, "GPU training: max_T %d", max_T);
    if (c->head_dim % 2 || c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads)
        return gq_errf(GQ_ERR_UNSUPPORTED, "GPU training: head_dim %d / %d heads / %d kv heads not supported",
                       c->head_dim, c->n_heads, c->n_kv_heads);
    size_t T = (size_t)max_T, D = (size_t)c->dim, H = (size_t)c->hidden_dim;
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim;
    size_t hd2 = (size_t)c->head_dim / 2, tw = D > qd ? D : qd, PP = (size_t)c->n_heads * T * T;
    size_t sizes[] = {T * hd2, T * hd2, T * D, T * D, T, T * qd, T * kd, T * kd, PP, T * qd, T * D, T * D, T,
                      T * H,   T * H,   T * H, T * D, T * D, T * qd, T * kd, T * kd, T * qd, PP, T * H, T * H, T * H,
                      T * tw};
    float **dst[] = {&a->rope_cos, &a->rope_sin, &a->x_in, &a->xn1, &a->rinv1, &a->q,  &a->k,    &a->v,  &a->P,
                     &a->att,      &a->x_mid,    &a->xn2,  &a->rinv2, &a->g,     &a->u,  &a->h,    &a->dxn, &a->dmid,
                     &a->dq,       &a->dk,       &a->dv,   &a->datt, &a->dP,    &a->dg, &a->du,   &a->dh, &a->tmp};
    const size_t NB = sizeof sizes / sizeof sizes[0];
    static_assert(sizeof sizes / sizeof sizes[0] == sizeof dst / sizeof dst[0], "one size per buffer");
    size_t total = 0;
    for (size_t i = 0; i < NB; i++) total += (sizes[i] + 63) / 64 * 64; /* 256-byte aligned pieces */
    GQ_TRY(gq_gt_malloc(&a->slab, total * sizeof(float), "block activations"));
    a->bytes = total * sizeof(float);
    float *p = (float *)a->slab;
    for (size_t i = 0; i < NB; i++) {
        *dst[i] = p;
        p += (sizes[i] + 63) / 64 * 64;
    }
    a->cfg = c;
    a->max_T = max_T;
    float *cs = (float *)malloc(sizeof(float) * T * hd2 * 2 + 1);
    if (!cs) {
        gq_gt_acts_free(a);
        return gq_errf(GQ_ERR_NOMEM, "GPU training: host allocation failed");
    }
    gq_bw_rope_table_f32(cs, cs + T * hd2, max_T, c->head_dim, c->rope_theta); /* the CPU's very tables */
    gq_status st = gq_gt_upload(e, a->rope_cos, cs, sizeof(float) * T * hd2);
    if (st == GQ_OK) st = gq_gt_upload(e, a->rope_sin, cs + T * hd2, sizeof(float) * T * hd2);
    free(cs);
    if (st != GQ_OK) gq_gt_acts_free(a);
    return st;
}

extern "C" void gq_gt_acts_free(gq_gt_acts *a) {
    if (!a) return;
    cudaFree(a->slab);
    memset(a, 0, sizeof *a);
}

static __global__ void k_add(float *out, const float *a, const float *b, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

extern "C" gq_status gq_gt_block_fwd(gq_gt *e, gq_gt_acts *a, const gq_bw_blockw_f32 *w, const float *x_in,
                                     float *x_out, int T) {
    const gq_config *c = a->cfg;
    if (T < 1 || T > a->max_T || x_out == x_in)
        return gq_errf(GQ_ERR_ARG, "GPU block forward: T = %d outside 1..%d or output aliases input", T, a->max_T);
    int D = c->dim, H = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    int qd = NH * HD, kd = NKV * HD;
    size_t n = (size_t)T * D;
    GQ_TRY(gq_gt_copy(e, a->x_in, x_in, sizeof(float) * n));
    GQ_TRY(gq_gt_rmsnorm_fwd(e, a->xn1, a->rinv1, x_in, w->attn_norm, T, D, c->norm_eps));
    GQ_TRY(gq_gt_linear_fwd(e, a->q, a->xn1, w->w[GQ_LIN_Q], w->bias[GQ_LIN_Q], T, qd, D));
    GQ_TRY(gq_gt_linear_fwd(e, a->k, a->xn1, w->w[GQ_LIN_K], w->bias[GQ_LIN_K], T, kd, D));
    GQ_TRY(gq_gt_linear_fwd(e, a->v, a->xn1, w->w[GQ_LIN_V], w->bias[GQ_LIN_V], T, kd, D));
    GQ_TRY(gq_gt_rope_fwd(e, a->q, a->rope_cos, a->rope_sin, T, NH, HD, c->rope_style));
    GQ_TRY(gq_gt_rope_fwd(e, a->k, a->rope_cos, a->rope_sin, T, NKV, HD, c->rope_style));
    GQ_TRY(gq_gt_attn_fwd(e, a->att, a->P, a->q, a->k, a->v, T, NH, NKV, HD));
    GQ_TRY(gq_gt_linear_fwd(e, a->tmp, a->att, w->w[GQ_LIN_O], w->bias[GQ_LIN_O], T, D, qd));
    k_add<<<gt_grid(n), GT_BLOCK, 0, e->stream>>>(a->x_mid, x_in, a->tmp, n);
    CUDA_CHECK_LAUNCH();
    GQ_TRY(gq_gt_rmsnorm_fwd(e, a->xn2, a->rinv2, a->x_mid, w->ffn_norm, T, D, c->norm_eps));
    GQ_TRY(gq_gt_linear_fwd(e, a->g, a->xn2, w->w[GQ_LIN_GATE], w->bias[GQ_LIN_GATE], T, H, D));
    GQ_TRY(gq_gt_linear_fwd(e, a->u, a->xn2, w->w[GQ_LIN_UP], w->bias[GQ_LIN_UP], T, H, D));
    GQ_TRY(gq_gt_swiglu_fwd(e, a->h, a->g, a->u, (size_t)T * H));
    GQ_TRY(gq_gt_linear_fwd(e, a->tmp, a->h, w->w[GQ_LIN_DOWN], w->bias[GQ_LIN_DOWN], T, D, H));
    k_add<<<gt_grid(n), GT_BLOCK, 0, e->stream>>>(x_out, a->x_mid, a->tmp, n);
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

extern "C" gq_status gq_gt_block_bwd(gq_gt *e, gq_gt_acts *a, const gq_bw_blockw_f32 *w, const float *dy, float *dx,
                                     gq_bw_blockg_f32 *g, int T) {
    const gq_config *c = a->cfg;
    if (T < 1 || T > a->max_T) return gq_errf(GQ_ERR_ARG, "GPU block backward: T = %d outside 1..%d", T, a->max_T);
    int D = c->dim, H = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    int qd = NH * HD, kd = NKV * HD;
    size_t n = (size_t)T * D;
#define GT_DW(kind) (g ? g->dw[kind] : NULL)
    GQ_TRY(gq_gt_copy(e, a->dmid, dy, sizeof(float) * n));
    GQ_TRY(gq_gt_linear_bwd(e, a->dh, 0, GT_DW(GQ_LIN_DOWN), dy, a->h, w->w[GQ_LIN_DOWN], T, D, H));
    GQ_TRY(gq_gt_swiglu_bwd(e, a->dg, a->du, a->dh, a->g, a->u, (size_t)T * H));
    GQ_TRY(gq_gt_linear_bwd(e, a->dxn, 0, GT_DW(GQ_LIN_GATE), a->dg, a->xn2, w->w[GQ_LIN_GATE], T, H, D));
    GQ_TRY(gq_gt_linear_bwd(e, a->dxn, 1, GT_DW(GQ_LIN_UP), a->du, a->xn2, w->w[GQ_LIN_UP], T, H, D));
    GQ_TRY(gq_gt_rmsnorm_bwd(e, a->dmid, g ? g->dffn_norm : NULL, a->dxn, a->x_mid, w->ffn_norm, a->rinv2, T, D));
    GQ_TRY(gq_gt_linear_bwd(e, a->datt, 0, GT_DW(GQ_LIN_O), a->dmid, a->att, w->w[GQ_LIN_O], T, D, qd));
    GQ_TRY(gq_gt_attn_bwd(e, a->dq, a->dk, a->dv, a->dP, a->datt, a->P, a->q, a->k, a->v, T, NH, NKV, HD));
    GQ_TRY(gq_gt_rope_bwd(e, a->dq, a->rope_cos, a->rope_sin, T, NH, HD, c->rope_style));
    GQ_TRY(gq_gt_rope_bwd(e, a->dk, a->rope_cos, a->rope_sin, T, NKV, HD, c->rope_style));
    GQ_TRY(gq_gt_linear_bwd(e, a->dxn, 0, GT_DW(GQ_LIN_Q), a->dq, a->xn1, w->w[GQ_LIN_Q], T, qd, D));
    GQ_TRY(gq_gt_linear_bwd(e, a->dxn, 1, GT_DW(GQ_LIN_K), a->dk, a->xn1, w->w[GQ_LIN_K], T, kd, D));
    GQ_TRY(gq_gt_linear_bwd(e, a->dxn, 1, GT_DW(GQ_LIN_V), a->dv, a->xn1, w->w[GQ_LIN_V], T, kd, D));
    GQ_TRY(gq_gt_copy(e, dx, a->dmid, sizeof(float) * n));
    GQ_TRY(gq_gt_rmsnorm_bwd(e, dx, g ? g->dattn_norm : NULL, a->dxn, a->x_in, w->attn_norm, a->rinv1, T, D));
#undef GT_DW
    return GQ_OK;
}

/* ===========================================================================================
 * Whole model
 * =========================================================================================== */
extern "C" gq_status gq_gt_model_ws_init(gq_gt *e, gq_gt_model_ws *ws, const gq_config *c, int max_T, int want_dw,
                                         int want_dnorm) {
    memset(ws, 0, sizeof *ws);
    if (max_T < 2) return gq_errf(GQ_ERR_ARG, "GPU training: max_T %d (need >= 2)", max_T);
    GQ_TRY(gq_gt_acts_init(e, &ws->acts, c, max_T));
    size_t T = (size_t)max_T, D = (size_t)c->dim, V = (size_t)c->vocab_size, L = (size_t)c->n_layers;
    size_t n = (L + 1) * T * D + T * D + T + T * V + 2 * T * D + T /* tokens */;
    gq_status st = gq_gt_malloc(&ws->slab, n * sizeof(float), "model workspace (block inputs, logits)");
    if (st != GQ_OK) {
        gq_gt_acts_free(&ws->acts);
        return st;
    }
    float *p = (float *)ws->slab;
    ws->max_T = max_T;
    ws->xs = p; p += (L + 1) * T * D;
    ws->xf = p; p += T * D;
    ws->logits = p; p += T * V;
    ws->dx = p; p += T * D;
    ws->dy = p; p += T * D;
    ws->rinvf = p; p += T;
    ws->tokens = (int32_t *)p;
    size_t gn = 0, sz[GQ_LIN_COUNT];
    size_t qd = (size_t)c->n_heads * c->head_dim, kd = (size_t)c->n_kv_heads * c->head_dim, H = (size_t)c->hidden_dim;
    sz[GQ_LIN_Q] = qd * D; sz[GQ_LIN_K] = kd * D; sz[GQ_LIN_V] = kd * D; sz[GQ_LIN_O] = D * qd;
    sz[GQ_LIN_GATE] = H * D; sz[GQ_LIN_UP] = H * D; sz[GQ_LIN_DOWN] = D * H;
    if (want_dw) for (int i = 0; i < GQ_LIN_COUNT; i++) gn += sz[i];
    if (want_dnorm) gn += 2 * D;
    if (gn) {
        if ((st = gq_gt_malloc((void **)&ws->gslab, gn * sizeof(float), "block gradients")) != GQ_OK) {
            gq_gt_model_ws_free(ws);
            return st;
        }
        ws->gslab_n = gn;
        float *q = ws->gslab;
        if (want_dw) for (int i = 0; i < GQ_LIN_COUNT; i++) { ws->g.dw[i] = q; q += sz[i]; }
        if (want_dnorm) { ws->g.dattn_norm = q; ws->g.dffn_norm = q + D; }
    }
    return GQ_OK;
}

extern "C" void gq_gt_model_ws_free(gq_gt_model_ws *ws) {
    if (!ws) return;
    gq_gt_acts_free(&ws->acts);
    cudaFree(ws->slab);
    cudaFree(ws->gslab);
    memset(ws, 0, sizeof *ws);
}

static gq_status block_weights(const gq_gt_modelw *mw, int l, gq_bw_blockw_f32 *w) {
    if (mw->prep) {
        memset(w, 0, sizeof *w);
        return mw->prep(mw->prep_ctx, l, w);
    }
    *w = mw->blocks[l];
    return GQ_OK;
}

extern "C" gq_status gq_gt_model_loss(gq_gt *e, gq_gt_model_ws *ws, const gq_gt_modelw *mw, const int32_t *tokens,
                                      int T, int backward, gq_bw_block_grad_fn_f32 cb, void *cb_ctx, float *dtok_emb,
                                      float *dlm_head, float *dfinal_norm, double *loss) {
    const gq_config *c = mw->cfg;
    GQ_TRY(gq_bw_check_window(c, tokens, T, ws->max_T));
    int D = c->dim, V = c->vocab_size, L = c->n_layers;
    size_t n = (size_t)T * D;
    GQ_TRY(gq_gt_upload(e, ws->tokens, tokens, sizeof(int32_t) * (size_t)T));
    GQ_TRY(gq_gt_embed_fwd(e, ws->xs, mw->tok_emb, ws->tokens, T, D));
    gq_bw_blockw_f32 w;
    for (int l = 0; l < L; l++) {
        GQ_TRY(block_weights(mw, l, &w));
        GQ_TRY(gq_gt_block_fwd(e, &ws->acts, &w, ws->xs + (size_t)l * n, ws->xs + (size_t)(l + 1) * n, T));
    }
    const float *xL = ws->xs + (size_t)L * n;
    GQ_TRY(gq_gt_rmsnorm_fwd(e, ws->xf, ws->rinvf, xL, mw->final_norm, T, D, c->norm_eps));
    GQ_TRY(gq_gt_linear_fwd(e, ws->logits, ws->xf, mw->lm_head, NULL, T, V, D));
    double lv = 0;
    GQ_TRY(gq_gt_xent(e, backward ? ws->logits : NULL, ws->logits, ws->tokens, T, V, &lv));
    if (!isfinite(lv)) return gq_errf(GQ_ERR_NUMERIC, "training: the loss is %g (non-finite) in the forward pass", lv);
    *loss = lv;
    if (!backward) return GQ_OK;
    const float *dlogits = ws->logits;
    GQ_TRY(gq_gt_linear_bwd(e, ws->dy, 0, dlm_head, dlogits, ws->xf, mw->lm_head, T, V, D));
    GQ_TRY(gq_gt_zero(e, ws->dx, sizeof(float) * n));
    GQ_TRY(gq_gt_rmsnorm_bwd(e, ws->dx, dfinal_norm, ws->dy, xL, mw->final_norm, ws->rinvf, T, D));
    for (int l = L - 1; l >= 0; l--) {
        float *xin = ws->xs + (size_t)l * n;
        GQ_TRY(block_weights(mw, l, &w));
        GQ_TRY(gq_gt_block_fwd(e, &ws->acts, &w, xin, ws->dy, T)); /* recompute */
        if (ws->gslab) GQ_TRY(gq_gt_zero(e, ws->gslab, sizeof(float) * ws->gslab_n));
        GQ_TRY(gq_gt_block_bwd(e, &ws->acts, &w, ws->dx, ws->dx, ws->gslab ? &ws->g : NULL, T));
        if (cb) GQ_TRY(cb(cb_ctx, l, &ws->g));
    }
    if (dtok_emb) GQ_TRY(gq_gt_embed_bwd(e, dtok_emb, ws->dx, ws->tokens, T, D));
    return GQ_OK;
}
