/* decode.cu — the batch-1 decode engine (implements core/cuda/decode.h).
 *
 * One decode step at position p (all on the device, captured once as a CUDA graph):
 *   x = emb[tokens[p]]; per block: xb = rmsnorm(x); qkv = Wqkv xb; RoPE(q, k at p); K/V[p] = fp16(k, v);
 *   att = softmax(q K[0..p]^T / sqrt(HD)) V[0..p] (split over key chunks, then combined);
 *   x += Wo att; xb = rmsnorm(x); gu = Wgu xb; hb = silu(g) * u; x += Wdown hb;
 *   logits = Whead rmsnorm(x); next = argmax(logits); if p+1 >= n_prompt: tokens[p+1] = next; p += 1.
 * The prompt goes through the same step (its argmax is discarded), so prompt + generation is one
 * run of graph replays with no host work between tokens.
 * Sections: random fill | fp16 GEMV | decode attention | step kernels | building | the step graph |
 * generate | memory and bandwidth.
 * Must not: allocate, copy to the host or synchronise inside the captured step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_common.cuh"
#include "cuda_check.h"
#include "pdl.cuh"
#include "prefetch.cuh"
extern "C" {
#include "gqs.h"
#include "gqs_pack.h"
}
#include "decode.h"
#include "gpu.h"
#include "gqs_gemv.h"


/* setup only: synchronise so that work later queued on the non-blocking stream sees the zeros */
#define GQ_CU_MEMSET0(p, n) do { CUDA_CHECK(cudaMemset((p), 0, (n))); CUDA_CHECK(cudaDeviceSynchronize()); } while (0)
#define GQD_CHUNK 128 /* keys per attention block: enough blocks at long contexts, one key per thread */

namespace {

/* ===========================================================================================
 * Random fill (speed/memory runs): a counter-based hash, so any grid gives the same numbers.
 * =========================================================================================== */
__device__ __forceinline__ uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
__device__ __forceinline__ float unif_pm1(uint64_t seed, size_t i) { /* uniform in [-1, 1) */
    return (float)(mix64(seed ^ mix64(i)) >> 40) * (2.0f / 16777216.0f) - 1.0f;
}
__global__ void k_rand_half(__half *p, size_t n, uint64_t seed, float scale) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2half(unif_pm1(seed, i) * scale);
}
__global__ void k_rand_float(float *p, size_t n, uint64_t seed, float mean, float scale) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = mean + unif_pm1(seed, i) * scale;
}

/* ===========================================================================================
 * fp16 GEMV: y [N] (+)= W [N, K] x [K], W fp16 row-major, x and y fp32, fp32 accumulation.
 * One warp per row; 16-byte weight loads (8 halves), four in flight per lane; weights are read
 * exactly once per token, so they bypass L1 (ld.global.nc.L1::no_allocate via __ldcs-like
 * streaming load); x is re-read by every warp and stays in L1/L2.
 * =========================================================================================== */
#define GQD_GEMV_WARPS 8
__device__ __forceinline__ float dot8(uint4 u, float4 a, float4 b) {
    const __half2 *h = (const __half2 *)&u;
    float2 f0 = __half22float2(h[0]), f1 = __half22float2(h[1]), f2 = __half22float2(h[2]), f3 = __half22float2(h[3]);
    return f0.x * a.x + f0.y * a.y + f1.x * a.z + f1.y * a.w + f2.x * b.x + f2.y * b.y + f3.x * b.z + f3.y * b.w;
}
__device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}
template <bool ACC>
__global__ void __launch_bounds__(GQD_GEMV_WARPS * 32) k_gemv_h(float *y, const __half *W, const float *x, int N, int K,
                                                                int pf) {
    int row = blockIdx.x * GQD_GEMV_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= N) return;
    const __half *w = W + (size_t)row * K;
    float s = 0.f;
    if ((K & 7) == 0) {
        const uint4 *w4 = (const uint4 *)w;
        const float4 *x4 = (const float4 *)x;
        int n8 = K >> 3, i = lane;
        /* the whole row into L2 first, as the quantized v5 kernels do (gqs_dev.h gq_prefetch_l2) */
        if (pf && lane == 0 && n8 > 128) gq_prefetch_l2(w4, (uint32_t)K * 2);
        /* first round of weight loads before the dependency wait (pdl.cuh), x only after it */
        uint4 u0 = make_uint4(0, 0, 0, 0), u1 = u0, u2 = u0, u3 = u0;
        if (i + 96 < n8) u0 = ld_stream(w4 + i), u1 = ld_stream(w4 + i + 32), u2 = ld_stream(w4 + i + 64), u3 = ld_stream(w4 + i + 96);
        gq_pdl_wait();
        gq_pdl_trigger();
        for (; i + 96 < n8; i += 128) {
            if (i != lane) u0 = ld_stream(w4 + i), u1 = ld_stream(w4 + i + 32), u2 = ld_stream(w4 + i + 64), u3 = ld_stream(w4 + i + 96);
            s += dot8(u0, __ldg(x4 + 2 * i), __ldg(x4 + 2 * i + 1));
            s += dot8(u1, __ldg(x4 + 2 * (i + 32)), __ldg(x4 + 2 * (i + 32) + 1));
            s += dot8(u2, __ldg(x4 + 2 * (i + 64)), __ldg(x4 + 2 * (i + 64) + 1));
            s += dot8(u3, __ldg(x4 + 2 * (i + 96)), __ldg(x4 + 2 * (i + 96) + 1));
        }
        for (; i < n8; i += 32) s += dot8(ld_stream(w4 + i), __ldg(x4 + 2 * i), __ldg(x4 + 2 * i + 1));
    } else { /* rows not 16-byte aligned (e.g. stories260K's hidden 172): scalar path */
        gq_pdl_wait();
        gq_pdl_trigger();
        for (int k = lane; k < K; k += 32) s += __half2float(w[k]) * x[k];
    }
    s = gqk::warp_sum(s);
    if (lane == 0) y[row] = ACC ? y[row] + s : s;
}

/* ===========================================================================================
 * Decode attention, split over key chunks (flash-decoding): block (h, c) scores keys
 * [c*CHUNK, min((c+1)*CHUNK, p+1)) for query head h, one key per thread (the K row read as
 * 16-byte vectors), then accumulates p_j V_j with one output dim per thread. The last block of a
 * head to finish (arrival counter per head, reset by that block) merges the chunks with their
 * (max, sum) pairs: one launch per layer instead of two (launch gaps dominate small decode steps).
 * Blocks past the current position exit at once, so the grid can be sized for max_T and the graph
 * stays valid at every position.
 * =========================================================================================== */
template <int HD>
__global__ void __launch_bounds__(GQD_CHUNK) k_attn_dec(float *pacc, float *pm, float *pl, const float *q,
                                                        const __half *kc, const __half *vc, const int32_t *pos,
                                                        int NH, int NKV, int maxc, float scale, int *arrived,
                                                        float *out, __half *out16) {
    __shared__ float qs[HD];
    __shared__ int last;
    __shared__ float ps[GQD_CHUNK];
    gq_pdl_wait(); /* every input may come from the kernel before (pdl.cuh) */
    gq_pdl_trigger();
    int h = blockIdx.x, c = blockIdx.y, tid = threadIdx.x;
    int n = *pos + 1, j0 = c * GQD_CHUNK;
    if (j0 >= n) return; /* whole block: uniform */
    int nk = min(GQD_CHUNK, n - j0), kvh = h / (NH / NKV), NKVD = NKV * HD;
    for (int d = tid; d < HD; d += blockDim.x) qs[d] = q[h * HD + d] * scale;
    __syncthreads();
    float s = -FLT_MAX;
    if (tid < nk) {
        const uint4 *kr = (const uint4 *)(kc + (size_t)(j0 + tid) * NKVD + (size_t)kvh * HD);
        s = 0.f;
#pragma unroll
        for (int i = 0; i < HD / 8; i++) {
            uint4 u = kr[i];
            const __half2 *hh = (const __half2 *)&u;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float2 f = __half22float2(hh[e]);
                s += f.x * qs[8 * i + 2 * e] + f.y * qs[8 * i + 2 * e + 1];
            }
        }
    }
    float m = gqk::block_max(s);
    float p = tid < nk ? __expf(s - m) : 0.f;
    ps[tid] = p;
    float l = gqk::block_sum(p); /* its barriers also publish ps */
    /* V pass: the chunk's keys are split over ST = 4 * (32 / LPK) streams, LPK = min(HD, 32) lanes per key and
     * DPL = HD / LPK dims per lane, so every thread walks nk / ST keys instead of one thread per dim
     * walking all nk (the old loop: a dependent-load chain of nk steps, the step's cost growing with the
     * context far faster than its KV bytes; docs/PERF.md "v4"); the streams' sums meet in shared memory. */
    constexpr int LPK = HD < 32 ? HD : 32, DPL = HD / LPK, KS = 32 / LPK, ST = (GQD_CHUNK / 32) * KS;
    __shared__ float vs[ST][HD];
    {
        const int lane = tid & 31, st = (tid >> 5) * KS + lane / LPK, d0 = (lane % LPK) * DPL;
        const __half *vb = vc + (size_t)j0 * NKVD + (size_t)kvh * HD + d0;
        float a[DPL];
#pragma unroll
        for (int e = 0; e < DPL; e++) a[e] = 0.f;
#pragma unroll 4
        for (int j = st; j < nk; j += ST) {
            const float pj = ps[j];
            const __half *v = vb + (size_t)j * NKVD;
            if constexpr (DPL == 4) { /* 8-byte aligned: rows and head offsets are multiples of 4 halves */
                const uint2 u = *reinterpret_cast<const uint2 *>(v);
                const float2 f0 = __half22float2(*reinterpret_cast<const __half2 *>(&u.x));
                const float2 f1 = __half22float2(*reinterpret_cast<const __half2 *>(&u.y));
                a[0] += pj * f0.x, a[1] += pj * f0.y, a[2 % DPL] += pj * f1.x, a[3 % DPL] += pj * f1.y;
            } else {
#pragma unroll
                for (int e = 0; e < DPL; e++) a[e] += pj * __half2float(v[e]);
            }
        }
#pragma unroll
        for (int e = 0; e < DPL; e++) vs[st][d0 + e] = a[e];
    }
    __syncthreads();
    for (int d = tid; d < HD; d += blockDim.x) {
        float a = 0.f;
#pragma unroll
        for (int t = 0; t < ST; t++) a += vs[t][d];
        pacc[((size_t)h * maxc + c) * HD + d] = a;
    }
    if (tid == 0) {
        pm[h * maxc + c] = m;
        pl[h * maxc + c] = l;
    }
    /* publish the partials, then count arrivals; the last of the nc active blocks combines */
    __threadfence();
    __syncthreads();
    int nc = (n + GQD_CHUNK - 1) / GQD_CHUNK;
    if (tid == 0) last = atomicAdd(&arrived[h], 1) == nc - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    float M = -FLT_MAX;
    for (int cc = 0; cc < nc; cc++) M = fmaxf(M, __ldcg(&pm[h * maxc + cc]));
    float L = 0.f;
    for (int cc = 0; cc < nc; cc++) L += __expf(__ldcg(&pm[h * maxc + cc]) - M) * __ldcg(&pl[h * maxc + cc]);
    for (int d = tid; d < HD; d += blockDim.x) {
        float a = 0.f;
        for (int cc = 0; cc < nc; cc++)
            a += __expf(__ldcg(&pm[h * maxc + cc]) - M) * __ldcg(&pacc[((size_t)h * maxc + cc) * HD + d]);
        out[h * HD + d] = a / L;
        if (out16) out16[h * HD + d] = __float2half(a / L);
    }
    if (tid == 0) arrived[h] = 0; /* ready for the next layer / step (launches are stream-ordered) */
}
/* ===========================================================================================
 * Step kernels
 * =========================================================================================== */
__global__ void k_embed_dec(float *x, const __half *emb, const int32_t *tokens, const int32_t *pos, int D, int V) {
    gq_pdl_wait(); /* every input may come from the kernel before (pdl.cuh) */
    gq_pdl_trigger();
    int id = tokens[*pos];
    id = id < 0 ? 0 : (id >= V ? V - 1 : id); /* defensive: ids come from the host check or argmax */
    for (int i = threadIdx.x; i < D; i += blockDim.x) x[i] = __half2float(emb[(size_t)id * D + i]);
}
/* RoPE at the current position on q (in place, fp32) and k (written rotated, fp16, straight into
 * the cache of one layer, [max_T, NKVD]); v copied to its cache. One launch instead of two. Pairing
 * as gqk::k_rope / core/forward.c: INTERLEAVED (2i, 2i+1), HALF (i, i + HD/2). */
__global__ void k_rope_store(float *qkv, __half *kc, __half *vc, const float *cosb, const float *sinb, int style,
                             const int32_t *pos, int NH, int NKV, int HD) {
    gq_pdl_wait(); /* every input may come from the kernel before (pdl.cuh) */
    gq_pdl_trigger();
    size_t p = (size_t)*pos;
    int half = HD / 2, NKVD = NKV * HD, npairs = (NH + NKV) * half;
    int t0 = blockIdx.x * blockDim.x + threadIdx.x, step = gridDim.x * blockDim.x;
    for (int e = t0; e < npairs; e += step) {
        int h = e / half, i = e % half;
        int a = style == GQ_ROPE_HALF ? i : 2 * i, b = style == GQ_ROPE_HALF ? i + half : 2 * i + 1;
        float *v = qkv + (size_t)h * HD; /* k heads follow the q heads */
        float c = cosb[p * half + i], s = sinb[p * half + i];
        float x0 = v[a], x1 = v[b], y0 = x0 * c - x1 * s, y1 = x0 * s + x1 * c;
        if (h < NH) {
            v[a] = y0;
            v[b] = y1;
        } else {
            size_t base = p * NKVD + (size_t)(h - NH) * HD;
            kc[base + a] = __float2half(y0);
            kc[base + b] = __float2half(y1);
        }
    }
    const float *vsrc = qkv + (size_t)(NH + NKV) * HD;
    for (int e = t0; e < NKVD; e += step) vc[p * NKVD + e] = __float2half(vsrc[e]);
}
/* Greedy pick (lowest id among equal maxima, as the CPU's loop) and advance the position. */
__global__ void k_argmax_advance(int32_t *tokens, int32_t *pos, const int32_t *n_prompt, const float *logits, int V) {
    __shared__ float bv[32];
    __shared__ int bi[32];
    gq_pdl_wait(); /* every input may come from the kernel before (pdl.cuh) */
    gq_pdl_trigger();
    float v = -FLT_MAX;
    int idx = 0x7fffffff;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        float x = logits[i];
        if (x > v) { v = x; idx = i; } /* i ascends per thread: first max kept */
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, idx, o);
        if (ov > v || (ov == v && oi < idx)) { v = ov; idx = oi; }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) { bv[w] = v; bi[w] = idx; }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < (int)(blockDim.x >> 5); k++)
            if (bv[k] > v || (bv[k] == v && bi[k] < idx)) { v = bv[k]; idx = bi[k]; }
        if (idx == 0x7fffffff) idx = 0; /* all NaN: keep going, the host reports non-finite logits */
        int p = *pos;
        if (p + 1 >= *n_prompt) tokens[p + 1] = idx;
        *pos = p + 1;
    }
}
__global__ void k_swiglu1(float *hb, __half *hb16, const float *gu, int H) {
    gq_pdl_wait(); /* every input may come from the kernel before (pdl.cuh) */
    gq_pdl_trigger();
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < H; j += gridDim.x * blockDim.x) {
        float g = gu[j];
        float v = g / (1.f + expf(-g)) * gu[H + j];
        hb[j] = v;
        if (hb16) hb16[j] = __float2half(v);
    }
}
/* One row: x += res (when res: the residual of a quantized o/down GEMV, whose API cannot accumulate),
 * then out = rmsnorm(x) * w in fp32 and (when out16) fp16 for the quantized GEMVs' input.
 * One block of 1024 threads; with D % 4 == 0 and D <= 16384 each thread keeps its <= 4 float4s of x in
 * registers, so the kernel is one round of loads (w before the dependency wait: it is a weight), one
 * block reduction and one round of stores. The grid-stride loop it replaces re-read x after the
 * reduction and could not overlap its loads (x, res, out may alias for the compiler): ~6 us per norm,
 * 65 per llama2-7b token (docs/PERF.md "Decode: RMSNorm"). */
#define GQD_NORM_V4 4
__global__ void __launch_bounds__(1024) k_rmsnorm_dec(float *__restrict__ x, const float *__restrict__ res,
                                                      const float *__restrict__ w, float *__restrict__ out,
                                                      __half *__restrict__ out16, int D, float eps) {
    const int n4 = D >> 2, nt = (int)blockDim.x;
    if ((D & 3) == 0 && n4 <= GQD_NORM_V4 * nt) {
        float4 v[GQD_NORM_V4], g[GQD_NORM_V4];
#pragma unroll
        for (int j = 0; j < GQD_NORM_V4; j++) {
            const int i = threadIdx.x + j * nt;
            g[j] = i < n4 ? reinterpret_cast<const float4 *>(w)[i] : make_float4(0.f, 0.f, 0.f, 0.f);
        }
        gq_pdl_wait(); /* x and res may come from the kernel before (pdl.cuh) */
        gq_pdl_trigger();
        float ss = 0.f;
#pragma unroll
        for (int j = 0; j < GQD_NORM_V4; j++) {
            const int i = threadIdx.x + j * nt;
            float4 a = make_float4(0.f, 0.f, 0.f, 0.f);
            if (i < n4) {
                a = reinterpret_cast<const float4 *>(x)[i];
                if (res) {
                    const float4 b = reinterpret_cast<const float4 *>(res)[i];
                    a.x += b.x, a.y += b.y, a.z += b.z, a.w += b.w;
                }
            }
            v[j] = a;
            ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
        }
        ss = gqk::block_sum(ss);
        const float r = rsqrtf(ss / (float)D + eps);
#pragma unroll
        for (int j = 0; j < GQD_NORM_V4; j++) {
            const int i = threadIdx.x + j * nt;
            if (i >= n4) continue;
            if (res) reinterpret_cast<float4 *>(x)[i] = v[j];
            const float4 o = make_float4(v[j].x * r * g[j].x, v[j].y * r * g[j].y, v[j].z * r * g[j].z, v[j].w * r * g[j].w);
            reinterpret_cast<float4 *>(out)[i] = o;
            if (out16) {
                reinterpret_cast<__half2 *>(out16)[2 * i] = __floats2half2_rn(o.x, o.y);
                reinterpret_cast<__half2 *>(out16)[2 * i + 1] = __floats2half2_rn(o.z, o.w);
            }
        }
        return;
    }
    gq_pdl_wait(); /* every input may come from the kernel before (pdl.cuh) */
    gq_pdl_trigger();
    float ss = 0.f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = x[i];
        if (res) {
            v += res[i];
            x[i] = v;
        }
        ss += v * v;
    }
    ss = gqk::block_sum(ss);
    float r = rsqrtf(ss / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = x[i] * r * w[i];
        out[i] = v;
        if (out16) out16[i] = __float2half(v);
    }
}
__global__ void k_bias1(float *y, const float *b, int N) {
    gq_pdl_wait(); /* every input may come from the kernel before (pdl.cuh) */
    gq_pdl_trigger();
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < N; j += gridDim.x * blockDim.x) y[j] += b[j];
}

} /* namespace */

/* ===========================================================================================
 * The decoder
 * =========================================================================================== */
typedef struct {
    int N, K;
    __half *w16;        /* GQ_DEC_FP16 (and the lm head of every format): [N, K] */
    gq_gqs_gpu *q;      /* GQ_DEC_W4 / GQ_DEC_GQS: the kernel engineer's device matrix */
    gq_gemv_kind kind;
    size_t bytes;       /* bytes one GEMV streams (values + metadata) */
} gqd_lin;

typedef struct {
    float *attn_norm, *ffn_norm, *bqkv;
    gqd_lin qkv, o, gu, down;
} gqd_layer;

struct gq_decoder {
    gq_config c;
    gq_dec_opts o;
    int random;
    cudaStream_t s;
    __half *tok_emb;   /* [V, D] */
    float *final_norm; /* [D] */
    gqd_lin head;      /* [V, D] (shares tok_emb's storage when tied and fp16) */
    gqd_layer *L;
    __half *kc, *vc;   /* [L, max_T, NKVD] */
    float *rope_cos, *rope_sin;
    float *x, *xb, *qkv, *att, *gu, *hb, *logits, *pacc, *pm, *pl;
    float *res;                 /* [max(D, ...)] residual of quantized o/down GEMVs, added by the next norm */
    __half *xb16, *att16, *hb16;/* fp16 inputs of the quantized GEMVs (NULL for fp16 weights) */
    int32_t *tokens, *pos, *n_prompt;
    int *arrived;      /* [NH] attention chunk arrival counters, zero between launches */
    int maxc;
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    size_t weight_bytes, linear_bytes;
};

static gq_status dmalloc(void **p, size_t n, const char *what) {
    cudaError_t e = cudaMalloc(p, n ? n : 1);
    if (e != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();
        return gq_errf(GQ_ERR_NOMEM, "decode engine: cannot allocate %.2f GiB on the GPU for %s: %s", n / 1073741824.0,
                       what, cudaGetErrorString(e));
    }
    return GQ_OK;
}

static int blocks_for(size_t n, int threads) {
    size_t b = (n + threads - 1) / threads;
    return (int)(b > 4096 ? 4096 : (b ? b : 1));
}

extern "C" gq_status gq_dec_parse_format(const char *s, gq_dec_opts *o) {
    if (!strcmp(s, "fp16")) { o->format = GQ_DEC_FP16; o->sparsity = 0; return GQ_OK; }
    if (!strcmp(s, "w4")) { o->format = GQ_DEC_W4; o->sparsity = 0; o->bits = 4; return GQ_OK; }
    int pct = 0;
    char tail = 0;
    if (sscanf(s, "gqs-s%d%c", &pct, &tail) == 1 && pct >= 0 && pct < 100) {
        o->format = GQ_DEC_GQS;
        o->sparsity = pct / 100.0;
        o->bits = 4;
        return GQ_OK;
    }
    return gq_errf(GQ_ERR_ARG, "unknown decode format '%s' (fp16, w4, gqs-s<percent> such as gqs-s50)", s);
}

extern "C" const char *gq_dec_format_name(const gq_dec_opts *o, char *buf, size_t cap) {
    if (o->format == GQ_DEC_FP16) snprintf(buf, cap, "fp16");
    else if (o->format == GQ_DEC_W4) snprintf(buf, cap, "w%d g%d", o->bits, o->group);
    else snprintf(buf, cap, "gqs w%d s%02d g%d", o->bits, (int)(o->sparsity * 100 + 0.5), o->group);
    return buf;
}

static void lin_free(gqd_lin *l) {
    cudaFree(l->w16);
    if (l->q) gq_gqs_gpu_free(l->q);
    memset(l, 0, sizeof *l);
}

extern "C" void gq_dec_free(gq_decoder *d) {
    if (!d) return;
    if (d->exec) cudaGraphExecDestroy(d->exec);
    if (d->graph) cudaGraphDestroy(d->graph);
    if (d->L) {
        for (int l = 0; l < d->c.n_layers; l++) {
            gqd_layer *y = &d->L[l];
            cudaFree(y->attn_norm); cudaFree(y->ffn_norm); cudaFree(y->bqkv);
            lin_free(&y->qkv); lin_free(&y->o); lin_free(&y->gu); lin_free(&y->down);
        }
        free(d->L);
    }
    if (d->head.w16 == d->tok_emb) d->head.w16 = NULL;
    lin_free(&d->head);
    cudaFree(d->tok_emb); cudaFree(d->final_norm); cudaFree(d->kc); cudaFree(d->vc);
    cudaFree(d->rope_cos); cudaFree(d->rope_sin);
    cudaFree(d->x); cudaFree(d->xb); cudaFree(d->qkv); cudaFree(d->att); cudaFree(d->gu); cudaFree(d->hb);
    cudaFree(d->logits); cudaFree(d->pacc); cudaFree(d->pm); cudaFree(d->pl);
    cudaFree(d->res); cudaFree(d->xb16); cudaFree(d->att16); cudaFree(d->hb16);
    cudaFree(d->tokens); cudaFree(d->pos); cudaFree(d->n_prompt); cudaFree(d->arrived);
    if (d->s) cudaStreamDestroy(d->s);
    free(d);
}

/* Everything but the weights: cache, activations, RoPE tables, position state. */
static gq_status alloc_state(gq_decoder *d) {
    const gq_config *c = &d->c;
    int D = c->dim, H = c->hidden_dim, HD = c->head_dim, V = c->vocab_size, T = d->o.max_T;
    size_t NQ = (size_t)c->n_heads * HD, NKVD = (size_t)c->n_kv_heads * HD;
    CUDA_CHECK(cudaStreamCreateWithFlags(&d->s, cudaStreamNonBlocking));
    size_t kv = (size_t)c->n_layers * T * NKVD * sizeof(__half);
    GQ_TRY(dmalloc((void **)&d->kc, kv, "the K cache"));
    GQ_TRY(dmalloc((void **)&d->vc, kv, "the V cache"));
    d->maxc = (T + GQD_CHUNK - 1) / GQD_CHUNK;
    GQ_TRY(dmalloc((void **)&d->x, D * 4, "activations"));
    GQ_TRY(dmalloc((void **)&d->xb, D * 4, "activations"));
    GQ_TRY(dmalloc((void **)&d->qkv, (NQ + 2 * NKVD) * 4, "activations"));
    GQ_TRY(dmalloc((void **)&d->att, NQ * 4, "activations"));
    GQ_TRY(dmalloc((void **)&d->gu, (size_t)2 * H * 4, "activations"));
    GQ_TRY(dmalloc((void **)&d->hb, (size_t)H * 4, "activations"));
    GQ_TRY(dmalloc((void **)&d->logits, (size_t)V * 4, "logits"));
    GQ_TRY(dmalloc((void **)&d->pacc, (size_t)c->n_heads * d->maxc * HD * 4, "attention partials"));
    GQ_TRY(dmalloc((void **)&d->pm, (size_t)c->n_heads * d->maxc * 4, "attention partials"));
    GQ_TRY(dmalloc((void **)&d->pl, (size_t)c->n_heads * d->maxc * 4, "attention partials"));
    GQ_TRY(dmalloc((void **)&d->tokens, (size_t)T * 4, "tokens"));
    GQ_TRY(dmalloc((void **)&d->arrived, (size_t)c->n_heads * 4, "attention counters"));
    GQ_CU_MEMSET0(d->arrived, (size_t)c->n_heads * 4);
    if (d->o.format != GQ_DEC_FP16) {
        GQ_TRY(dmalloc((void **)&d->res, (size_t)D * 4, "activations"));
        GQ_TRY(dmalloc((void **)&d->xb16, (size_t)D * 2, "activations"));
        GQ_TRY(dmalloc((void **)&d->att16, NQ * 2, "activations"));
        GQ_TRY(dmalloc((void **)&d->hb16, (size_t)H * 2, "activations"));
        GQ_CU_MEMSET0(d->res, (size_t)D * 4);
    }
    GQ_TRY(dmalloc((void **)&d->pos, 4, "position"));
    GQ_TRY(dmalloc((void **)&d->n_prompt, 4, "position"));
    int half = HD / 2;
    float *hc = (float *)malloc((size_t)T * half * 4), *hs = (float *)malloc((size_t)T * half * 4);
    if (!hc || !hs) { free(hc); free(hs); return gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed"); }
    for (int p = 0; p < T; p++) /* same tables as core/forward.c: float64 angles rounded once */
        for (int i = 0; i < half; i++) {
            double a = p * pow((double)c->rope_theta, -2.0 * i / (double)HD);
            hc[(size_t)p * half + i] = (float)cos(a);
            hs[(size_t)p * half + i] = (float)sin(a);
        }
    gq_status st = dmalloc((void **)&d->rope_cos, (size_t)T * half * 4, "rope");
    if (!st) st = dmalloc((void **)&d->rope_sin, (size_t)T * half * 4, "rope");
    if (!st && cudaMemcpy(d->rope_cos, hc, (size_t)T * half * 4, cudaMemcpyHostToDevice) != cudaSuccess) st = GQ_ERR_INTERNAL;
    if (!st && cudaMemcpy(d->rope_sin, hs, (size_t)T * half * 4, cudaMemcpyHostToDevice) != cudaSuccess) st = GQ_ERR_INTERNAL;
    free(hc); free(hs);
    if (st == GQ_ERR_INTERNAL) return gq_errf(st, "decode engine: uploading RoPE tables failed");
    return st;
}

static gq_status check_shape(const gq_config *c, const gq_dec_opts *o) {
    GQ_TRY(gq_config_validate(c, c->name[0] ? c->name : "decode model"));
    if (c->arch == GQ_ARCH_OPT) return gq_errf(GQ_ERR_UNSUPPORTED, "decode engine: OPT is not supported");
    int HD = c->head_dim;
    if (HD != 8 && HD != 16 && HD != 32 && HD != 64 && HD != 128)
        return gq_errf(GQ_ERR_UNSUPPORTED, "decode engine: head_dim %d (supported: 8, 16, 32, 64, 128)", HD);
    if (o->max_T < 2 || o->max_T > (1 << 20)) return gq_errf(GQ_ERR_ARG, "decode engine: max_T %d out of range", o->max_T);
    if (o->format != GQ_DEC_FP16) {
        const char *why = NULL;
        if (o->bits != 4 || !gq_gqs_dev_supported(o->group, o->bits, &why))
            return gq_errf(GQ_ERR_UNSUPPORTED, "decode engine: w%d g%d: %s", o->bits, o->group,
                           why ? why : "only 4-bit codes are supported");
        const int Ks[3] = {c->dim, c->n_heads * HD, c->hidden_dim};
        for (int i = 0; i < 3; i++)
            if (Ks[i] % 32 || Ks[i] % o->group)
                return gq_errf(GQ_ERR_UNSUPPORTED,
                               "decode engine: input dimension %d must be a multiple of 32 and of the group size %d",
                               Ks[i], o->group);
        if (o->sparsity < 0 || o->sparsity >= 1)
            return gq_errf(GQ_ERR_ARG, "decode engine: sparsity %g outside [0, 1)", o->sparsity);
    }
    return GQ_OK;
}

/* fp16 rows of several host matrices stacked into one device matrix. */
static gq_status lin_from_host(gqd_lin *l, const gq_linear *const *parts, int nparts, const char *what) {
    size_t N = 0;
    int K = parts[0]->in;
    for (int i = 0; i < nparts; i++) { GQ_ASSERT(parts[i]->in == K); N += (size_t)parts[i]->out; }
    l->N = (int)N;
    l->K = K;
    uint16_t *h = (uint16_t *)malloc(N * K * 2);
    if (!h) return gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed for %s", what);
    size_t off = 0;
    for (int i = 0; i < nparts; i++)
        for (size_t e = 0; e < (size_t)parts[i]->out * K; e++) h[off++] = gq_fp32_to_fp16(parts[i]->w[e]);
    gq_status st = dmalloc((void **)&l->w16, N * K * 2, what);
    if (!st && cudaMemcpy(l->w16, h, N * K * 2, cudaMemcpyHostToDevice) != cudaSuccess)
        st = gq_errf(GQ_ERR_INTERNAL, "decode engine: upload of %s failed", what);
    free(h);
    l->bytes = N * K * 2;
    return st;
}
static gq_status lin_random(gqd_lin *l, int N, int K, uint64_t seed, const char *what) {
    l->N = N;
    l->K = K;
    GQ_TRY(dmalloc((void **)&l->w16, (size_t)N * K * 2, what));
    /* uniform with variance 1/K: activations keep their scale through the layer */
    k_rand_half<<<4096, 256>>>(l->w16, (size_t)N * K, seed, sqrtf(3.f / K));
    CUDA_CHECK_LAUNCH();
    l->bytes = (size_t)N * K * 2;
    return GQ_OK;
}
/* Groups a row keeps at sparsity s (at least one). */
static int kept_groups(int ng, double s) {
    int k = ng - (int)(s * ng + 0.5);
    return k < 1 ? 1 : k;
}
extern "C" int gq_dec_gemv_kind(const gq_dec_opts *o) {
    if (o->gemv_kind >= 0) return o->gemv_kind;
    /* v3 (quad walk, longest rows first): llama2-7b shape, H100, same run 2026-11-22, 128 tokens: GQS S50
     * G16 324.0 tok/s v3 vs 286.7 v1, S30/S40 equal within 1%, W4 G16 272.6 vs 249.9 (docs/PERF.md "v3");
     * H200 2026-12-02: v3 338.8 vs the v4 task split 318.6 tok/s (docs/PERF.md "v4") */
    /* v5 = v3 + the L2 prefetch of each warp's row: slower than v3 everywhere (H200 2026-12-03, 128 tokens:
     * GQS S50 456.6 vs 495.4 tok/s, fp16 210.9 vs 240.0; docs/PERF.md "v6"), kept behind --prefetch on */
    if (o->prefetch) return o->format == GQ_DEC_W4 ? GQ_GEMV_DENSE_W4_V5 : GQ_GEMV_ROW_V5;
    /* GQS: v7 = v3 with one address per array per round and the lean dequantization (bit-identical to v3):
     * S50 516.5 tok/s vs 452.8 with v8. Dense W4: v8 (v7 through a cp.async ring; its rows are long, 4-11
     * rounds): 420.7 vs 388.1 with v7 (H200 2026-12-03, 128 tokens; docs/PERF.md "v8"). GQS since v9 (v7's
     * walk pipelined over each warp's rows, bit-identical): 528.2 / 504.5 vs v7 516.7 / 493.5 tok/s at 128 /
     * 1024 tokens in one call (H200 2026-12-03; docs/PERF.md "v9 and v10 measured") */
    /* GQS since v11 (the v7 walk over one contiguous stream per row, bit-identical), x read with coherent
     * loads (PDL): S50 545.1 / 519.4 tok/s at 128 / 1024 tokens against v9's 529.9 / 504.3 in an earlier call
     * the same day (fp16 240.8 and 240.1 in the two calls). Dense W4 stays v8: w4_dense_v11 with coherent x
     * gave 425.8 / 410.9 against v8's 430.9 / 415.4 (H200 2026-12-03; docs/PERF.md "v12 measured") */
    return o->format == GQ_DEC_W4 ? GQ_GEMV_DENSE_W4_V8 : GQ_GEMV_ROW_V11;
}
static gq_status lin_from_dev(gqd_lin *l, gq_gqs_dev *dev, const gq_dec_opts *o, const char *what) {
    l->N = dev->N;
    l->K = dev->K;
    l->kind = (gq_gemv_kind)gq_dec_gemv_kind(o);
    gq_status st = gq_gqs_gpu_upload(dev, &l->q);
    if (st) return gq_err_prefix(st, "%s: ", what);
    gq_gqs_gpu_set_pdl(l->q, !o->no_pdl);
    st = gq_gqs_gpu_prepare(l->q, l->kind, NULL); /* before the step graph is captured */
    if (st) return gq_err_prefix(st, "%s: ", what);
    if (gq_gemv_kind_stream(l->kind) >= 0) { /* the row stream replaces the device format: weights held once */
        st = gq_gqs_gpu_keep_only(l->q, l->kind);
        if (st) return gq_err_prefix(st, "%s: ", what);
    }
    if (gq_gemv_kind_is_dense(l->kind) && !gq_gqs_gpu_is_dense(l->q))
        return gq_errf(GQ_ERR_ARG, "%s: the dense W4 kernel needs every group kept", what);
    l->bytes = gq_gqs_dev_bytes(dev, gq_gemv_kind_is_dense(l->kind));
    return GQ_OK;
}
/* Quantize stacked host rows: keep the groups of largest L2 norm per row (GQS) or all (W4), then each
 * kept group gets its own asymmetric 4-bit quantizer (gq_gqs_build), packed to the device format.
 * A speed stand-in for the calibrated pipeline: no Hessian, no BQPO/E2E-OQP. */
extern "C" gq_status gq_dec_quantize(const float *w, int N, int K, const gq_dec_opts *o, const char *what,
                                     gq_gqs_dev *out) {
    memset(out, 0, sizeof *out);
    int G = o->group;
    if (G < 1 || K % G) return gq_errf(GQ_ERR_ARG, "%s: group size %d does not divide K=%d", what, G, K);
    int ng = K / G;
    uint8_t *keep = (uint8_t *)malloc((size_t)N * ng);
    double *nrm = (double *)malloc((size_t)ng * sizeof(double));
    if (!keep || !nrm) {
        free(keep); free(nrm);
        return gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed for %s", what);
    }
    int kept = o->format == GQ_DEC_W4 ? ng : kept_groups(ng, o->sparsity);
    for (size_t r = 0; r < (size_t)N; r++) {
        for (int g = 0; g < ng; g++) {
            double s = 0;
            for (int j = 0; j < G; j++) s += (double)w[r * K + g * G + j] * w[r * K + g * G + j];
            nrm[g] = s;
        }
        /* rank by norm, ties to the lower column (ng = K/G is at most a few hundred here) */
        for (int g = 0; g < ng; g++) {
            int above = 0;
            for (int h = 0; h < ng; h++) above += nrm[h] > nrm[g] || (nrm[h] == nrm[g] && h < g);
            keep[r * ng + g] = above < kept;
        }
    }
    free(nrm);
    gq_gqs gq;
    memset(&gq, 0, sizeof gq);
    gq_status st = gq_gqs_build(&gq, w, keep, N, K, G, o->bits);
    free(keep);
    if (!st) st = gq_gqs_pack(&gq, what, out);
    gq_gqs_free(&gq);
    return st;
}
static gq_status lin_quant_from_host(gqd_lin *l, const gq_linear *const *parts, int nparts, const gq_dec_opts *o,
                                     const char *what) {
    size_t N = 0;
    int K = parts[0]->in;
    for (int i = 0; i < nparts; i++) N += (size_t)parts[i]->out;
    float *w = (float *)malloc(N * K * 4);
    if (!w) return gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed for %s", what);
    size_t off = 0;
    for (int i = 0; i < nparts; i++) {
        memcpy(w + off * K, parts[i]->w, (size_t)parts[i]->out * K * 4);
        off += (size_t)parts[i]->out;
    }
    gq_gqs_dev dev;
    gq_status st = gq_dec_quantize(w, (int)N, K, o, what, &dev);
    free(w);
    if (!st) st = lin_from_dev(l, &dev, o, what);
    gq_gqs_dev_free(&dev);
    return st;
}
static uint64_t hrand(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* A random matrix straight in the device format (gqs_pack.h): every row keeps the same number of
 * groups (prune scope "row"), spread over the row (one column drawn in each of `kept` equal strata:
 * ascending and distinct), random codes, fp16 scales ~ 1/(4.6 sqrt(K)) with zero 8 (so weights have
 * variance ~1/K). Built on the host because the format's upload API takes host arrays; no GQS
 * dequantize/quantize round trip is needed for a speed run. */
static gq_status lin_quant_random(gqd_lin *l, int N, int K, const gq_dec_opts *o, uint64_t seed, const char *what) {
    int G = o->group, ng = K / G;
    int kept = o->format == GQ_DEC_W4 ? ng : kept_groups(ng, o->sparsity);
    int gpu = gq_gqs_dev_groups_per_unit(G), upg = gq_gqs_dev_units_per_group(G);
    int64_t upr = G <= 32 ? (kept + gpu - 1) / gpu : (int64_t)kept * upg; /* units per row */
    int64_t spr = G <= 32 ? upr * gpu : kept;                              /* slots per row */
    gq_gqs_dev dev;
    memset(&dev, 0, sizeof dev);
    dev.N = N; dev.K = K; dev.G = G; dev.bits = 4;
    dev.nnz = (size_t)N * kept;
    dev.n_units = (int64_t)N * upr;
    dev.n_slots = (int64_t)N * spr;
    if (dev.n_units > INT32_MAX) return gq_errf(GQ_ERR_ARG, "%s: too many units for int32 row offsets", what);
    dev.row_unit = (int32_t *)malloc((size_t)(N + 1) * 4);
    dev.codes = (uint8_t *)malloc((size_t)dev.n_units * 16);
    dev.col = (uint16_t *)malloc((size_t)dev.n_slots * 2);
    dev.sm = (uint32_t *)malloc((size_t)dev.n_slots * 4);
    if (!dev.row_unit || !dev.codes || !dev.col || !dev.sm) {
        gq_gqs_dev_free(&dev);
        return gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed for %s", what);
    }
    uint64_t rs = seed;
    for (int r = 0; r <= N; r++) dev.row_unit[r] = (int32_t)(r * upr);
    uint64_t *cw = (uint64_t *)dev.codes;
    for (int64_t i = 0; i < dev.n_units * 2; i++) cw[i] = hrand(&rs);
    float sc = 1.f / (4.6f * sqrtf((float)K));
    for (int r = 0; r < N; r++)
        for (int64_t i = 0; i < spr; i++) {
            size_t sl = (size_t)r * spr + i;
            if (i < kept) {
                int lo = (int)((int64_t)i * ng / kept), hi = (int)((int64_t)(i + 1) * ng / kept);
                uint64_t h = hrand(&rs);
                dev.col[sl] = (uint16_t)(o->format == GQ_DEC_W4 ? i : lo + (int)(h % (uint64_t)(hi - lo)));
                float s = sc * (0.5f + (float)((h >> 32) & 0xffff) / 65536.f);
                uint16_t hs = gq_fp32_to_fp16(s), hm = gq_fp32_to_fp16(-8.f * gq_fp16_to_fp32(hs));
                dev.sm[sl] = (uint32_t)hs | ((uint32_t)hm << 16);
            } else { /* padding slot: an empty group */
                dev.col[sl] = 0;
                dev.sm[sl] = 0;
            }
        }
    gq_status st = lin_from_dev(l, &dev, o, what);
    gq_gqs_dev_free(&dev);
    return st;
}

static gq_status f32_up(float **p, const float *h, size_t n, const char *what) {
    GQ_TRY(dmalloc((void **)p, n * 4, what));
    CUDA_CHECK(cudaMemcpy(*p, h, n * 4, cudaMemcpyHostToDevice));
    return GQ_OK;
}

static void account(gq_decoder *d) {
    const gq_config *c = &d->c;
    d->linear_bytes = d->head.bytes;
    for (int l = 0; l < c->n_layers; l++)
        d->linear_bytes += d->L[l].qkv.bytes + d->L[l].o.bytes + d->L[l].gu.bytes + d->L[l].down.bytes;
    d->weight_bytes = d->linear_bytes + (size_t)c->dim * 4 * (2 * c->n_layers + 1);
    if (d->head.w16 != d->tok_emb) d->weight_bytes += (size_t)c->vocab_size * c->dim * 2;
}

static gq_status capture(gq_decoder *d);

extern "C" gq_status gq_dec_create(const gq_model *m, const gq_dec_opts *o, gq_decoder **out) {
    *out = NULL;
    if (!gq_gpu_available()) return gq_errf(GQ_ERR_UNSUPPORTED, "decode engine: no CUDA device");
    GQ_TRY(check_shape(&m->cfg, o));
    gq_decoder *d = (gq_decoder *)calloc(1, sizeof *d);
    if (!d) return gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed");
    d->c = m->cfg;
    d->o = *o;
    const gq_config *c = &d->c;
    int D = c->dim, V = c->vocab_size;
    gq_status st = alloc_state(d);
    if (!st) {
        gq_linear emb = {V, D, m->tok_emb, NULL};
        const gq_linear *pe[1] = {&emb};
        gqd_lin tmp;
        memset(&tmp, 0, sizeof tmp);
        st = lin_from_host(&tmp, pe, 1, "tok_emb");
        d->tok_emb = tmp.w16;
        if (!st && (c->tied_embeddings || m->lm_head == m->tok_emb)) d->head = tmp;
        else if (!st) {
            gq_linear hd = {V, D, m->lm_head, NULL};
            const gq_linear *ph[1] = {&hd};
            st = lin_from_host(&d->head, ph, 1, "lm_head");
        }
    }
    if (!st) st = f32_up(&d->final_norm, m->final_norm, D, "final_norm");
    if (!st) {
        d->L = (gqd_layer *)calloc((size_t)c->n_layers, sizeof(gqd_layer));
        if (!d->L) st = gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed");
    }
    for (int l = 0; !st && l < c->n_layers; l++) {
        const gq_block *b = &m->blocks[l];
        gqd_layer *y = &d->L[l];
        const gq_linear *qkv[3] = {&b->lin[GQ_LIN_Q], &b->lin[GQ_LIN_K], &b->lin[GQ_LIN_V]};
        const gq_linear *po[1] = {&b->lin[GQ_LIN_O]};
        const gq_linear *gu[2] = {&b->lin[GQ_LIN_GATE], &b->lin[GQ_LIN_UP]};
        const gq_linear *pd[1] = {&b->lin[GQ_LIN_DOWN]};
        st = f32_up(&y->attn_norm, b->attn_norm, D, "attn_norm");
        if (!st) st = f32_up(&y->ffn_norm, b->ffn_norm, D, "ffn_norm");
        if (d->o.format == GQ_DEC_FP16) {
            if (!st) st = lin_from_host(&y->qkv, qkv, 3, "q/k/v");
            if (!st) st = lin_from_host(&y->o, po, 1, "o_proj");
            if (!st) st = lin_from_host(&y->gu, gu, 2, "gate/up");
            if (!st) st = lin_from_host(&y->down, pd, 1, "down_proj");
        } else {
            if (!st) st = lin_quant_from_host(&y->qkv, qkv, 3, &d->o, "q/k/v");
            if (!st) st = lin_quant_from_host(&y->o, po, 1, &d->o, "o_proj");
            if (!st) st = lin_quant_from_host(&y->gu, gu, 2, &d->o, "gate/up");
            if (!st) st = lin_quant_from_host(&y->down, pd, 1, &d->o, "down_proj");
        }
        if (!st && c->qkv_bias) {
            int NQ = c->n_heads * c->head_dim, NKVD = c->n_kv_heads * c->head_dim;
            float *hb = (float *)calloc((size_t)NQ + 2 * NKVD, 4);
            if (!hb) st = gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed");
            else {
                if (b->lin[GQ_LIN_Q].bias) memcpy(hb, b->lin[GQ_LIN_Q].bias, (size_t)NQ * 4);
                if (b->lin[GQ_LIN_K].bias) memcpy(hb + NQ, b->lin[GQ_LIN_K].bias, (size_t)NKVD * 4);
                if (b->lin[GQ_LIN_V].bias) memcpy(hb + NQ + NKVD, b->lin[GQ_LIN_V].bias, (size_t)NKVD * 4);
                st = f32_up(&y->bqkv, hb, (size_t)NQ + 2 * NKVD, "qkv bias");
                free(hb);
            }
        }
    }
    if (!st) {
        account(d);
        st = capture(d);
    }
    if (st) {
        gq_dec_free(d);
        return gq_err_prefix(st, "building the decoder for %s: ", m->source[0] ? m->source : "model");
    }
    *out = d;
    return GQ_OK;
}

extern "C" gq_status gq_dec_create_random(const gq_config *cfg, const gq_dec_opts *o, uint64_t seed, gq_decoder **out) {
    *out = NULL;
    if (!gq_gpu_available()) return gq_errf(GQ_ERR_UNSUPPORTED, "decode engine: no CUDA device");
    GQ_TRY(check_shape(cfg, o));
    gq_decoder *d = (gq_decoder *)calloc(1, sizeof *d);
    if (!d) return gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed");
    d->c = *cfg;
    d->c.qkv_bias = 0;
    d->o = *o;
    d->random = 1;
    const gq_config *c = &d->c;
    int D = c->dim, H = c->hidden_dim, V = c->vocab_size;
    int NQ = c->n_heads * c->head_dim, NKVD = c->n_kv_heads * c->head_dim;
    uint64_t sd = seed * 1000003u;
    gq_status st = alloc_state(d);
    if (!st) st = dmalloc((void **)&d->tok_emb, (size_t)V * D * 2, "tok_emb");
    if (!st) {
        k_rand_half<<<4096, 256>>>(d->tok_emb, (size_t)V * D, sd++, 1.f);
        if (cudaGetLastError() != cudaSuccess) st = gq_errf(GQ_ERR_INTERNAL, "decode engine: random fill failed");
    }
    if (!st) st = lin_random(&d->head, V, D, sd++, "lm_head");
    if (!st) st = dmalloc((void **)&d->final_norm, (size_t)D * 4, "final_norm");
    if (!st) k_rand_float<<<64, 256>>>(d->final_norm, D, sd++, 1.f, 0.1f);
    if (!st) {
        d->L = (gqd_layer *)calloc((size_t)c->n_layers, sizeof(gqd_layer));
        if (!d->L) st = gq_errf(GQ_ERR_NOMEM, "decode engine: host allocation failed");
    }
    for (int l = 0; !st && l < c->n_layers; l++) {
        gqd_layer *y = &d->L[l];
        st = dmalloc((void **)&y->attn_norm, (size_t)D * 4, "norms");
        if (!st) st = dmalloc((void **)&y->ffn_norm, (size_t)D * 4, "norms");
        if (!st) {
            k_rand_float<<<64, 256>>>(y->attn_norm, D, sd++, 1.f, 0.1f);
            k_rand_float<<<64, 256>>>(y->ffn_norm, D, sd++, 1.f, 0.1f);
        }
        if (d->o.format == GQ_DEC_FP16) {
            if (!st) st = lin_random(&y->qkv, NQ + 2 * NKVD, D, sd++, "q/k/v");
            if (!st) st = lin_random(&y->o, D, NQ, sd++, "o_proj");
            if (!st) st = lin_random(&y->gu, 2 * H, D, sd++, "gate/up");
            if (!st) st = lin_random(&y->down, D, H, sd++, "down_proj");
        } else {
            if (!st) st = lin_quant_random(&y->qkv, NQ + 2 * NKVD, D, &d->o, sd++, "q/k/v");
            if (!st) st = lin_quant_random(&y->o, D, NQ, &d->o, sd++, "o_proj");
            if (!st) st = lin_quant_random(&y->gu, 2 * H, D, &d->o, sd++, "gate/up");
            if (!st) st = lin_quant_random(&y->down, D, H, &d->o, sd++, "down_proj");
        }
    }
    if (!st && cudaDeviceSynchronize() != cudaSuccess) st = gq_errf(GQ_ERR_INTERNAL, "decode engine: random fill failed");
    if (!st) {
        account(d);
        st = capture(d);
    }
    if (st) {
        gq_dec_free(d);
        return gq_err_prefix(st, "building the random-weight decoder: ");
    }
    *out = d;
    return GQ_OK;
}

/* ===========================================================================================
 * The step graph
 * =========================================================================================== */
/* y (+)= W x. fp16 weights read the fp32 x and accumulate in place; quantized weights read the fp16
 * copy x16 and, for acc, write d->res, which the next k_rmsnorm_dec adds into x. */
static gq_status gemv(gq_decoder *d, const gqd_lin *l, const float *x, const __half *x16, float *y, int acc) {
    if (l->q) return gq_gqs_gpu_gemv(l->q, l->kind, x16, 1, acc ? d->res : y, 1, d->s);
    const bool pdl = !d->o.no_pdl;
    int nb = (l->N + GQD_GEMV_WARPS - 1) / GQD_GEMV_WARPS;
    const int pf = d->o.prefetch;
    if (acc) CUDA_CHECK(gq_launch(pdl, k_gemv_h<true>, nb, GQD_GEMV_WARPS * 32, 0, d->s, y, l->w16, x, l->N, l->K, pf));
    else CUDA_CHECK(gq_launch(pdl, k_gemv_h<false>, nb, GQD_GEMV_WARPS * 32, 0, d->s, y, l->w16, x, l->N, l->K, pf));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

template <int HD>
static cudaError_t launch_attn(gq_decoder *d, int l) {
    const gq_config *c = &d->c;
    size_t off = (size_t)l * d->o.max_T * c->n_kv_heads * HD;
    dim3 g(c->n_heads, d->maxc);
    return gq_launch(!d->o.no_pdl, k_attn_dec<HD>, g, GQD_CHUNK, 0, d->s, d->pacc, d->pm, d->pl, d->qkv, d->kc + off,
                     d->vc + off, d->pos, c->n_heads, c->n_kv_heads, d->maxc, 1.f / sqrtf((float)HD), d->arrived,
                     d->att, d->att16);
}

static gq_status record_step(gq_decoder *d) {
    const gq_config *c = &d->c;
    cudaStream_t s = d->s;
    int D = c->dim, H = c->hidden_dim, HD = c->head_dim, V = c->vocab_size;
    int NQ = c->n_heads * HD, NKVD = c->n_kv_heads * HD;
    size_t layer_kv = (size_t)d->o.max_T * NKVD;
    /* every kernel after the first may overlap the one before it (pdl.cuh); the first waits for the
     * previous step (graph launches are fully ordered) */
    const bool pdl = !d->o.no_pdl;
    k_embed_dec<<<1, 256, 0, s>>>(d->x, d->tok_emb, d->tokens, d->pos, D, V);
    CUDA_CHECK_LAUNCH();
    for (int l = 0; l < c->n_layers; l++) {
        const gqd_layer *y = &d->L[l];
        /* layer 0 has no pending residual; later layers add the previous down_proj's (quantized) */
        CUDA_CHECK(gq_launch(pdl, k_rmsnorm_dec, 1, 1024, 0, s, d->x, l > 0 ? d->res : nullptr, y->attn_norm, d->xb,
                             d->xb16, D, c->norm_eps));
        CUDA_CHECK_LAUNCH();
        GQ_TRY(gemv(d, &y->qkv, d->xb, d->xb16, d->qkv, 0));
        if (y->bqkv) {
            CUDA_CHECK(gq_launch(pdl, k_bias1, blocks_for(NQ + 2 * NKVD, 256), 256, 0, s, d->qkv, y->bqkv, NQ + 2 * NKVD));
            CUDA_CHECK_LAUNCH();
        }
        CUDA_CHECK(gq_launch(pdl, k_rope_store, blocks_for((size_t)(c->n_heads + c->n_kv_heads) * HD / 2, 256), 256, 0, s,
                             d->qkv, d->kc + l * layer_kv, d->vc + l * layer_kv, d->rope_cos, d->rope_sin,
                             (int)c->rope_style, d->pos, c->n_heads, c->n_kv_heads, HD));
        CUDA_CHECK_LAUNCH();
        switch (HD) {
        case 8: CUDA_CHECK(launch_attn<8>(d, l)); break;
        case 16: CUDA_CHECK(launch_attn<16>(d, l)); break;
        case 32: CUDA_CHECK(launch_attn<32>(d, l)); break;
        case 64: CUDA_CHECK(launch_attn<64>(d, l)); break;
        case 128: CUDA_CHECK(launch_attn<128>(d, l)); break;
        default: GQ_ASSERT(0 && "head_dim checked at build");
        }
        CUDA_CHECK_LAUNCH();
        GQ_TRY(gemv(d, &y->o, d->att, d->att16, d->x, 1));
        CUDA_CHECK(gq_launch(pdl, k_rmsnorm_dec, 1, 1024, 0, s, d->x, d->res, y->ffn_norm, d->xb, d->xb16, D,
                             c->norm_eps));
        CUDA_CHECK_LAUNCH();
        GQ_TRY(gemv(d, &y->gu, d->xb, d->xb16, d->gu, 0));
        CUDA_CHECK(gq_launch(pdl, k_swiglu1, blocks_for(H, 256), 256, 0, s, d->hb, d->hb16, d->gu, H));
        CUDA_CHECK_LAUNCH();
        GQ_TRY(gemv(d, &y->down, d->hb, d->hb16, d->x, 1));
    }
    CUDA_CHECK(gq_launch(pdl, k_rmsnorm_dec, 1, 1024, 0, s, d->x, d->res, d->final_norm, d->xb, (__half *)nullptr, D,
                         c->norm_eps));
    CUDA_CHECK_LAUNCH();
    GQ_TRY(gemv(d, &d->head, d->xb, NULL, d->logits, 0)); /* the lm head stays fp16 in every format */
    CUDA_CHECK(gq_launch(pdl, k_argmax_advance, 1, 1024, 0, s, d->tokens, d->pos, d->n_prompt, d->logits, V));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

static gq_status capture(gq_decoder *d) {
    CUDA_CHECK(cudaStreamBeginCapture(d->s, cudaStreamCaptureModeThreadLocal));
    gq_status st = record_step(d);
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(d->s, &g);
    if (st) {
        if (g) cudaGraphDestroy(g);
        return st;
    }
    if (e != cudaSuccess) return gq_errf(GQ_ERR_INTERNAL, "decode engine: graph capture failed: %s", cudaGetErrorString(e));
    d->graph = g;
    CUDA_CHECK(cudaGraphInstantiate(&d->exec, g, 0));
    return GQ_OK;
}

/* ===========================================================================================
 * Generate
 * =========================================================================================== */
extern "C" gq_status gq_dec_generate(gq_decoder *d, const int32_t *prompt, int n_prompt, int n_gen, int32_t *out,
                                     gq_dec_stats *stats) {
    GQ_ASSERT(d && prompt && out);
    if (n_prompt < 1 || n_gen < 1 || (long)n_prompt + n_gen > d->o.max_T)
        return gq_errf(GQ_ERR_ARG, "decode: prompt %d + generated %d tokens must be >= 1 each and fit max_T %d", n_prompt,
                       n_gen, d->o.max_T);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= d->c.vocab_size)
            return gq_errf(GQ_ERR_ARG, "decode: prompt token %d at %d outside the vocabulary [0, %d)", prompt[i], i,
                           d->c.vocab_size);
    cudaStream_t s = d->s;
    int zero = 0;
    CUDA_CHECK(cudaMemcpyAsync(d->tokens, prompt, (size_t)n_prompt * 4, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(d->pos, &zero, 4, cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(d->n_prompt, &n_prompt, 4, cudaMemcpyHostToDevice, s));
    cudaEvent_t e0, e1, e2;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    CUDA_CHECK(cudaEventCreate(&e2));
    gq_status st = GQ_OK;
    cudaError_t ce = cudaEventRecord(e0, s);
    /* prompt positions 0..n_prompt-2, then n_gen steps, each producing one token */
    for (int i = 0; ce == cudaSuccess && i < n_prompt - 1; i++) ce = cudaGraphLaunch(d->exec, s);
    if (ce == cudaSuccess) ce = cudaEventRecord(e1, s);
    for (int i = 0; ce == cudaSuccess && i < n_gen; i++) ce = cudaGraphLaunch(d->exec, s);
    if (ce == cudaSuccess) ce = cudaEventRecord(e2, s);
    if (ce == cudaSuccess) ce = cudaStreamSynchronize(s);
    if (ce == cudaSuccess) ce = cudaMemcpy(out, d->tokens + n_prompt, (size_t)n_gen * 4, cudaMemcpyDeviceToHost);
    float ms_pre = 0, ms_gen = 0;
    if (ce == cudaSuccess) ce = cudaEventElapsedTime(&ms_pre, e0, e1);
    if (ce == cudaSuccess) ce = cudaEventElapsedTime(&ms_gen, e1, e2);
    if (ce != cudaSuccess) st = gq_errf(GQ_ERR_INTERNAL, "decode: running the step graph failed: %s", cudaGetErrorString(ce));
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaEventDestroy(e2);
    if (st == GQ_OK && stats) {
        gq_dec_mem mm;
        gq_dec_memory(d, &mm);
        stats->prefill_ms = ms_pre;
        stats->gen_ms = ms_gen;
        stats->tok_per_s = n_gen / (ms_gen / 1e3);
        stats->ms_per_tok = ms_gen / n_gen;
        /* step at position p reads p+1 cached positions; generation steps cover p = n_prompt-1 .. */
        stats->bytes_per_tok = (double)mm.linear_bytes + (double)mm.kv_bytes_per_pos * (n_prompt + (n_gen - 1) / 2.0);
    }
    return st;
}

extern "C" gq_status gq_dec_last_logits(gq_decoder *d, float *logits) {
    CUDA_CHECK(cudaMemcpy(logits, d->logits, (size_t)d->c.vocab_size * 4, cudaMemcpyDeviceToHost));
    return GQ_OK;
}

/* ===========================================================================================
 * Memory and bandwidth
 * =========================================================================================== */
extern "C" void gq_dec_memory(const gq_decoder *d, gq_dec_mem *m) {
    const gq_config *c = &d->c;
    memset(m, 0, sizeof *m);
    m->weight_bytes = d->weight_bytes;
    m->linear_bytes = d->linear_bytes;
    m->kv_bytes_per_pos = (size_t)2 * c->n_layers * c->n_kv_heads * c->head_dim * sizeof(__half);
    m->kv_bytes = m->kv_bytes_per_pos * (size_t)d->o.max_T;
    cudaMemGetInfo(&m->dev_free, &m->dev_total);
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

extern "C" gq_status gq_dec_copy_bandwidth(double *bytes_per_s) {
    *bytes_per_s = 0;
    if (!gq_gpu_available()) return gq_errf(GQ_ERR_UNSUPPORTED, "no CUDA device");
    const size_t n = (size_t)1 << 30; /* 1 GiB each way: ~20x the L2 */
    void *a = NULL, *b = NULL;
    GQ_TRY(dmalloc(&a, n, "the bandwidth probe"));
    gq_status st = dmalloc(&b, n, "the bandwidth probe");
    if (st) { cudaFree(a); return st; }
    cudaMemset(a, 1, n);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    float t[9];
    cudaError_t ce = cudaSuccess;
    for (int i = -2; i < 9 && ce == cudaSuccess; i++) { /* two warm-ups */
        cudaEventRecord(e0);
        ce = cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        if (i >= 0) cudaEventElapsedTime(&t[i], e0, e1);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    if (ce != cudaSuccess) return gq_errf(GQ_ERR_INTERNAL, "bandwidth probe: %s", cudaGetErrorString(ce));
    qsort(t, 9, sizeof(float), cmp_float);
    *bytes_per_s = 2.0 * n / (t[4] / 1e3);
    return GQ_OK;
}
