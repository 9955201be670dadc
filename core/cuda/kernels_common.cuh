/* kernels_common.cuh — the transformer-block kernels shared by the GPU evaluation forward
 * (gpu_forward.cu, fp32, whole windows) and the decode engine (decode.cu, batch 1, fp16 KV cache):
 * embedding, RMSNorm, RoPE (both pairings), causal GQA attention, SwiGLU, log-softmax NLL, argmax.
 * Each kernel mirrors the CPU reference in core/forward.c; the CPU code is the definition, these are
 * only faster ways to compute the same function (tests/test_gpu_forward.c checks them against it).
 * Must not: allocate, synchronise, or hold state: every kernel is a pure function of its arguments
 * (and of device memory they point to), so the decode step can be captured in a CUDA graph.
 * Everything here is `static` so that each .cu file including it gets its own private copy.
 */
#ifndef GQ_CUDA_KERNELS_COMMON_CUH
#define GQ_CUDA_KERNELS_COMMON_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <float.h>
#include <math.h>
#include <stdint.h>

/* util.h / model.h are C11 headers: no extern "C", and _Noreturn is not C++. */
#ifndef _Noreturn
#define _Noreturn [[noreturn]]
#endif
extern "C" {
#include "util.h"
#include "model.h"
}

#include "reduce.cuh"

namespace gqk {

/* Reductions: warp_sum, warp_max, block_sum, block_max (reduce.cuh). */

/* ---------------------------------------------------------------------------------------------
 * Embedding: x[t, :] = emb[tokens[t], :]. Token ids were range-checked on the host (or produced
 * by argmax on the device); the clamp is a defensive guard against reading outside the table.
 * ------------------------------------------------------------------------------------------- */
static __global__ void k_embed(float *x, const float *emb, const int32_t *tokens, int T, int D, int V) {
    int t = blockIdx.x;
    int id = tokens[t];
    id = id < 0 ? 0 : (id >= V ? V - 1 : id);
    const float *src = emb + (size_t)id * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) x[(size_t)t * D + i] = src[i];
}
/* fp16 table variant for the decode engine. */
static __global__ void k_embed_h(float *x, const __half *emb, const int32_t *tokens, int T, int D, int V) {
    int t = blockIdx.x;
    int id = tokens[t];
    id = id < 0 ? 0 : (id >= V ? V - 1 : id);
    const __half *src = emb + (size_t)id * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) x[(size_t)t * D + i] = __half2float(src[i]);
}

/* ---------------------------------------------------------------------------------------------
 * RMSNorm (LLaMA): out = x / sqrt(mean(x^2) + eps) * w, one block per row.
 * ------------------------------------------------------------------------------------------- */
static __global__ void k_rmsnorm(float *out, const float *x, const float *w, int D, float eps) {
    const float *xr = x + (size_t)blockIdx.x * D;
    float *orow = out + (size_t)blockIdx.x * D;
    float ss = 0.f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss);
    float r = rsqrtf(ss / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) orow[i] = xr[i] * r * w[i];
}

/* ---------------------------------------------------------------------------------------------
 * RoPE, in place on the q and k parts of rows of a fused qkv buffer.
 *   qkv [T, ld]: q at columns [0, NH*HD), k at [NH*HD, NH*HD + NKV*HD)
 *   cos/sin [max_T, HD/2]: angle = pos * theta^(-2i/HD), pair i
 * INTERLEAVED rotates (x[2i], x[2i+1]); HALF rotates (x[i], x[i+HD/2]) (model.h).
 * pos_ptr: NULL -> positions 0..T-1 (row t at position t); else row 0 at position *pos_ptr
 * (decode: the position lives on the device so that the captured graph can be replayed).
 * Grid: (T, NH + NKV), block: HD/2 threads (or more; extra threads idle).
 * ------------------------------------------------------------------------------------------- */
static __global__ void k_rope(float *qkv, int ld, int NH, int NKV, int HD, const float *cosb, const float *sinb,
                              int style, const int32_t *pos_ptr) {
    int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x, half = HD / 2;
    if (i >= half) return;
    int pos = pos_ptr ? *pos_ptr + t : t;
    float *v = qkv + (size_t)t * ld + (size_t)h * HD; /* heads NH.. are the k heads, right after q */
    float c = cosb[(size_t)pos * half + i], s = sinb[(size_t)pos * half + i];
    int a = style == GQ_ROPE_HALF ? i : 2 * i;
    int b = style == GQ_ROPE_HALF ? i + half : 2 * i + 1;
    float x0 = v[a], x1 = v[b];
    v[a] = x0 * c - x1 * s;
    v[b] = x0 * s + x1 * c;
}

/* ---------------------------------------------------------------------------------------------
 * SwiGLU: out[t, j] = silu(gu[t, j]) * gu[t, H + j] for a fused gate/up buffer gu [T, 2H].
 * ------------------------------------------------------------------------------------------- */
static __global__ void k_swiglu(float *out, const float *gu, int T, int H) {
    size_t n = (size_t)T * H;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (size_t)gridDim.x * blockDim.x) {
        size_t t = idx / H, j = idx % H;
        float g = gu[t * 2 * H + j], u = gu[t * 2 * H + H + j];
        out[idx] = g / (1.f + expf(-g)) * u;
    }
}

/* y[t, j] += b[j] for y [T, N]. */
static __global__ void k_add_bias(float *y, const float *b, int T, int N) {
    size_t n = (size_t)T * N;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n; idx += (size_t)gridDim.x * blockDim.x)
        y[idx] += b[idx % N];
}

/* ---------------------------------------------------------------------------------------------
 * Causal GQA attention over a whole window (evaluation), fp32, flash-style online softmax.
 *   qkv [T, ld] (q heads, then k heads, then v heads, each HD wide), out [T, NH*HD]
 * One warp per (query t, head h); a block holds ATT_WARPS consecutive queries of one head and
 * stages tiles of 32 keys/values in shared memory. In a tile, lane j scores key j against q
 * (q read from shared memory as a broadcast), the warp updates the running max / sum, and for
 * the output lane l owns dimensions l, l+32, ... Accumulation order differs from the CPU's
 * (which sums keys in order), hence fp32 rounding-level differences only.
 * Template HD (compile-time) keeps q and the accumulators in registers.
 * ------------------------------------------------------------------------------------------- */
#define GQK_ATT_WARPS 8
template <int HD>
static __global__ void __launch_bounds__(GQK_ATT_WARPS * 32)
k_attention(float *out, const float *qkv, int T, int ld, int NH, int NKV, float scale) {
    constexpr int DPL = HD >= 32 ? HD / 32 : 1;   /* output dims per lane */
    __shared__ float ks[32][HD + 1];              /* +1: lane j reads row j without bank conflicts */
    __shared__ float vs[32][HD + 1];
    __shared__ float qs[GQK_ATT_WARPS][HD];
    __shared__ float ps[GQK_ATT_WARPS][32];
    int h = blockIdx.y, kvh = h / (NH / NKV);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int t0 = blockIdx.x * GQK_ATT_WARPS, t = t0 + w;
    int t_last = min(t0 + GQK_ATT_WARPS, T) - 1; /* last query of the block: keys 0..t_last needed */
    const float *kbase = qkv + (size_t)NH * HD + (size_t)kvh * HD;
    const float *vbase = qkv + (size_t)(NH + NKV) * HD + (size_t)kvh * HD;
    if (t < T)
        for (int d = lane; d < HD; d += 32) qs[w][d] = qkv[(size_t)t * ld + (size_t)h * HD + d] * scale;
    float m = -FLT_MAX, l = 0.f, acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) acc[i] = 0.f;
    for (int j0 = 0; j0 <= t_last; j0 += 32) {
        __syncthreads(); /* previous tile fully consumed (and qs written on the first pass) */
        for (int e = threadIdx.x; e < 32 * HD; e += blockDim.x) {
            int r = e / HD, d = e % HD, j = j0 + r;
            float kv = 0.f, vv = 0.f;
            if (j <= t_last) {
                kv = kbase[(size_t)j * ld + d];
                vv = vbase[(size_t)j * ld + d];
            }
            ks[r][d] = kv;
            vs[r][d] = vv;
        }
        __syncthreads();
        if (t >= T || j0 > t) continue; /* nothing of this tile is visible to this query */
        int j = j0 + lane;
        float s = -FLT_MAX;
        if (j <= t) {
            s = 0.f;
#pragma unroll
            for (int d = 0; d < HD; d++) s += qs[w][d] * ks[lane][d];
        }
        float mt = warp_max(s);
        float mn = fmaxf(m, mt);
        float corr = __expf(m - mn); /* m = -FLT_MAX the first time: corr underflows to 0, acc is 0 anyway */
        float p = j <= t ? __expf(s - mn) : 0.f;
        l = l * corr + p; /* lane-local partial sum; lanes share m, so they can be summed at the end */
        m = mn;
        ps[w][lane] = p;
        __syncwarp();
        int nj = min(32, t - j0 + 1);
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            float a = acc[i] * corr;
            if (d < HD)
                for (int r = 0; r < nj; r++) a += ps[w][r] * vs[r][d];
            acc[i] = a;
        }
        __syncwarp();
    }
    if (t >= T) return;
    float ltot = warp_sum(l);
    float inv = 1.f / ltot;
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        int d = lane + 32 * i;
        if (d < HD) out[(size_t)t * NH * HD + (size_t)h * HD + d] = acc[i] * inv;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Negative log-likelihood per row of logits [T, V]: nll[t] = logsumexp(logits[t]) - logits[t][y]
 * with y = tokens[t+1], for t < T-1. Max in fp32, sum of exponentials in float64 (as the CPU's
 * gq_nll_from_logits), one block per row.
 * ------------------------------------------------------------------------------------------- */
static __global__ void k_row_nll(double *nll, const float *logits, const int32_t *tokens, int V) {
    __shared__ double shd[32];
    int t = blockIdx.x;
    const float *row = logits + (size_t)t * V;
    float mx = -FLT_MAX;
    for (int i = threadIdx.x; i < V; i += blockDim.x) mx = fmaxf(mx, row[i]);
    mx = block_max(mx);
    double s = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += exp((double)row[i] - (double)mx);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) shd[w] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double tot = 0.0;
        for (int i = 0; i < nw; i++) tot += shd[i];
        int y = tokens[t + 1];
        y = y < 0 ? 0 : (y >= V ? V - 1 : y);
        nll[t] = (double)mx + log(tot) - (double)row[y];
    }
}

} /* namespace gqk */

#endif
