/* gpu_forward.cu — the GPU evaluation forward (implements core/cuda/gpu.h): whole windows of T
 * tokens, fp32 weights uploaded once, every linear layer one cuBLAS GEMM, attention by the tiled
 * online-softmax kernel of kernels_common.cuh, log-softmax + NLL reduced on the device.
 * Mirrors core/forward.c step by step (embed; per block RMSNorm, q/k/v, RoPE, causal GQA attention,
 * o + residual, RMSNorm, gate/up, SwiGLU, down + residual; final RMSNorm; lm head). In "fp32"
 * precision the GEMMs use CUBLAS_COMPUTE_32F with TF32 disabled, so the perplexity equals the CPU's
 * to rounding (gate: 0.1%); "tf32" and "bf16" trade accuracy for speed and say so.
 * The calibrate stage's Hessians (gq_gpu_calibrate, last section) run the same forward with a float64
 * X^T X accumulation at each input-group linear.
 * Zero-shot scoring (gq_gpu_token_logprobs*) packs several sequences into one pass (RoPE and attention
 * launched per sequence, everything else row-wise over all rows), runs the lm head on the scored rows
 * only and reduces each row to (log-prob of the target, target == argmax) on the device.
 * Must not: be used by CPU-only builds (core/gpu_stub.c is); keep device pointers outside the
 * gq_gpu_model it owns; print to stdout.
 */
#include <cublas_v2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels_common.cuh"
#include "cuda_check.h"
#include "gpu.h"


extern "C" int gq_gpu_available(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

extern "C" gq_status gq_gpu_describe(char *buf, size_t cap) {
    if (cap) buf[0] = 0;
    if (!gq_gpu_available()) return gq_errf(GQ_ERR_UNSUPPORTED, "no CUDA device found (HINT: run on a GPU machine)");
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    snprintf(buf, cap, "%s, %.1f GiB, driver CUDA %d.%d, runtime %d.%d, sm_%d%d, %d SMs, %d MB L2", p.name,
             (double)p.totalGlobalMem / (1 << 30), drv / 1000, (drv % 1000) / 10, rt / 1000, (rt % 1000) / 10, p.major,
             p.minor, p.multiProcessorCount, p.l2CacheSize >> 20);
    return GQ_OK;
}

/* ===========================================================================================
 * The resident model
 * =========================================================================================== */
typedef struct {
    float *attn_norm, *ffn_norm; /* [D] */
    float *wqkv;                 /* [NH*HD + 2*NKV*HD, D]: q, k, v rows stacked: one GEMM */
    float *bqkv;                 /* [NH*HD + 2*NKV*HD] or NULL (Qwen2) */
    float *wo;                   /* [D, NH*HD] */
    float *wgu;                  /* [2H, D]: gate rows then up rows */
    float *wdown;                /* [D, H] */
} gqf_layer;

/* Everything sized by the window (T rows): allocated and replaced as a whole, so that
 * gq_gpu_model_reserve either succeeds or leaves the old buffers in place. */
typedef struct {
    int T;                         /* rows every buffer below holds (the model's max_T) */
    float *rope_cos, *rope_sin;    /* [T, HD/2] */
    float *x, *xb;                 /* [T, D] residual stream, normed input */
    float *qkv;                    /* [T, NQ + 2*NKV] */
    float *att;                    /* [T, NQ] */
    float *gu;                     /* [T, 2H] */
    float *hb;                     /* [T, H] */
    float *logits;                 /* [T, V] */
    int32_t *tokens;               /* [T] row tokens */
    int32_t *targets;              /* [T] next token of each scored row (log-prob path) */
    double *rowv;                  /* [T] per-row NLL or log-probability */
    int *greedy;                   /* [T] per-row "the target is the argmax" */
    int32_t *h_tokens, *h_targets; /* pinned host staging [T] */
    double *h_rowv;                /* pinned [T] */
    int *h_greedy;                 /* pinned [T] */
} gqf_work;

/* Calibration statistics being accumulated (gq_gpu_calibrate): while set, run_blocks hands every
 * input-group linear's input to it. */
typedef struct {
    double *H[4];   /* per input-group head of the current layer set by gq_gpu_calibrate: [K, K] */
    double **Hl;    /* [L * 4] device accumulators X^T X (column-major upper = row-major lower triangle) */
    int K[4];       /* Q, O, GATE, DOWN input widths */
    double *xd;     /* [T, Kmax] the input in float64 */
    int *bad;       /* device: lowest (layer * 4 + head) with a non-finite input, INT_MAX if none */
} gqf_calib;

struct gq_gpu_model {
    gq_config c;
    gqf_calib *cal;
    cublasComputeType_t compute;
    char precision[8];
    cudaStream_t stream;
    cublasHandle_t blas;
    float *tok_emb, *lm_head, *final_norm; /* lm_head == tok_emb when tied */
    gqf_layer *layers;                     /* [L] host array of device pointers */
    gqf_work w;
};

static gq_status dev_alloc(void **dst, size_t bytes, const char *what) {
    *dst = NULL;
    cudaError_t e = cudaMalloc(dst, bytes);
    if (e != cudaSuccess) {
        *dst = NULL;
        cudaGetLastError(); /* an allocation failure is not sticky: clear it so later calls work */
        return gq_errf(GQ_ERR_NOMEM, "GPU: cannot allocate %zu bytes for %s: %s", bytes, what, cudaGetErrorString(e));
    }
    return GQ_OK;
}
static gq_status host_alloc(void **dst, size_t bytes, const char *what) {
    *dst = NULL;
    cudaError_t e = cudaMallocHost(dst, bytes);
    if (e != cudaSuccess) {
        *dst = NULL;
        cudaGetLastError();
        return gq_errf(GQ_ERR_NOMEM, "GPU: cannot allocate %zu bytes of pinned host memory for %s: %s", bytes, what,
                       cudaGetErrorString(e));
    }
    return GQ_OK;
}
static gq_status up_f32(float **dst, const float *src, size_t n, const char *what) {
    GQ_TRY(dev_alloc((void **)dst, n * sizeof(float), what));
    if (src) CUDA_CHECK(cudaMemcpy(*dst, src, n * sizeof(float), cudaMemcpyHostToDevice));
    return GQ_OK;
}
/* Rows of several host matrices stacked into one device matrix. */
static gq_status up_stack(float **dst, const gq_linear *const *parts, int nparts, int K, const char *what) {
    size_t rows = 0;
    for (int i = 0; i < nparts; i++) rows += (size_t)parts[i]->out;
    GQ_TRY(up_f32(dst, NULL, rows * K, what));
    size_t off = 0;
    for (int i = 0; i < nparts; i++) {
        GQ_ASSERT(parts[i]->in == K);
        CUDA_CHECK(cudaMemcpy(*dst + off * K, parts[i]->w, (size_t)parts[i]->out * K * sizeof(float), cudaMemcpyHostToDevice));
        off += (size_t)parts[i]->out;
    }
    return GQ_OK;
}

static void work_free(gqf_work *w) {
    cudaFree(w->rope_cos); cudaFree(w->rope_sin);
    cudaFree(w->x); cudaFree(w->xb); cudaFree(w->qkv); cudaFree(w->att); cudaFree(w->gu); cudaFree(w->hb);
    cudaFree(w->logits); cudaFree(w->tokens); cudaFree(w->targets); cudaFree(w->rowv); cudaFree(w->greedy);
    if (w->h_tokens) cudaFreeHost(w->h_tokens);
    if (w->h_targets) cudaFreeHost(w->h_targets);
    if (w->h_rowv) cudaFreeHost(w->h_rowv);
    if (w->h_greedy) cudaFreeHost(w->h_greedy);
    memset(w, 0, sizeof *w);
}

static gq_status work_alloc_inner(const gq_config *c, int T, gqf_work *w) {
    int D = c->dim, H = c->hidden_dim, HD = c->head_dim, V = c->vocab_size;
    size_t NQ = (size_t)c->n_heads * HD, NQKV = NQ + 2 * (size_t)c->n_kv_heads * HD, Tz = (size_t)T;
    w->T = T;
    /* RoPE tables in float64, rounded once (as the CPU tables are built). */
    int half = HD / 2;
    float *hc = (float *)malloc(Tz * half * sizeof(float)), *hs = (float *)malloc(Tz * half * sizeof(float));
    if (!hc || !hs) { free(hc); free(hs); return gq_errf(GQ_ERR_NOMEM, "GPU upload: host allocation failed"); }
    for (int p = 0; p < T; p++)
        for (int i = 0; i < half; i++) {
            double f = pow((double)c->rope_theta, -2.0 * i / (double)HD), a = p * f;
            hc[(size_t)p * half + i] = (float)cos(a);
            hs[(size_t)p * half + i] = (float)sin(a);
        }
    gq_status st = up_f32(&w->rope_cos, hc, Tz * half, "rope cos");
    if (st == GQ_OK) st = up_f32(&w->rope_sin, hs, Tz * half, "rope sin");
    free(hc); free(hs);
    GQ_TRY(st);
    GQ_TRY(up_f32(&w->x, NULL, Tz * D, "activations"));
    GQ_TRY(up_f32(&w->xb, NULL, Tz * D, "activations"));
    GQ_TRY(up_f32(&w->qkv, NULL, Tz * NQKV, "activations"));
    GQ_TRY(up_f32(&w->att, NULL, Tz * NQ, "activations"));
    GQ_TRY(up_f32(&w->gu, NULL, Tz * 2 * H, "activations"));
    GQ_TRY(up_f32(&w->hb, NULL, Tz * H, "activations"));
    GQ_TRY(up_f32(&w->logits, NULL, Tz * V, "logits"));
    GQ_TRY(dev_alloc((void **)&w->tokens, Tz * sizeof(int32_t), "tokens"));
    GQ_TRY(dev_alloc((void **)&w->targets, Tz * sizeof(int32_t), "targets"));
    GQ_TRY(dev_alloc((void **)&w->rowv, Tz * sizeof(double), "per-row results"));
    GQ_TRY(dev_alloc((void **)&w->greedy, Tz * sizeof(int), "per-row results"));
    GQ_TRY(host_alloc((void **)&w->h_tokens, Tz * sizeof(int32_t), "tokens"));
    GQ_TRY(host_alloc((void **)&w->h_targets, Tz * sizeof(int32_t), "targets"));
    GQ_TRY(host_alloc((void **)&w->h_rowv, Tz * sizeof(double), "per-row results"));
    GQ_TRY(host_alloc((void **)&w->h_greedy, Tz * sizeof(int), "per-row results"));
    return GQ_OK;
}
/* All or nothing: on failure *w is left empty. */
static gq_status work_alloc(const gq_config *c, int T, gqf_work *w) {
    memset(w, 0, sizeof *w);
    gq_status st = work_alloc_inner(c, T, w);
    if (st != GQ_OK) work_free(w);
    return st;
}

extern "C" void gq_gpu_model_free(gq_gpu_model *g) {
    if (!g) return;
    if (g->stream) cudaStreamSynchronize(g->stream);
    if (g->layers) {
        for (int l = 0; l < g->c.n_layers; l++) {
            gqf_layer *y = &g->layers[l];
            cudaFree(y->attn_norm); cudaFree(y->ffn_norm); cudaFree(y->wqkv); cudaFree(y->bqkv);
            cudaFree(y->wo); cudaFree(y->wgu); cudaFree(y->wdown);
        }
        free(g->layers);
    }
    if (g->lm_head != g->tok_emb) cudaFree(g->lm_head);
    cudaFree(g->tok_emb); cudaFree(g->final_norm);
    work_free(&g->w);
    if (g->blas) cublasDestroy(g->blas);
    if (g->stream) cudaStreamDestroy(g->stream);
    free(g);
}

static gq_status upload(gq_gpu_model *g, const gq_model *m, int max_T) {
    const gq_config *c = &g->c;
    int D = c->dim, H = c->hidden_dim, HD = c->head_dim, V = c->vocab_size;
    int NQ = c->n_heads * HD, NKV = c->n_kv_heads * HD, NQKV = NQ + 2 * NKV;
    CUDA_CHECK(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&g->blas));
    CUBLAS_CHECK(cublasSetStream(g->blas, g->stream));
    /* fp32 stays fp32: the compute type (CUBLAS_COMPUTE_32F) forbids TF32 down-conversion. */
    CUBLAS_CHECK(cublasSetMathMode(g->blas, CUBLAS_DEFAULT_MATH));

    GQ_TRY(up_f32(&g->tok_emb, m->tok_emb, (size_t)V * D, "tok_emb"));
    if (c->tied_embeddings || m->lm_head == m->tok_emb) g->lm_head = g->tok_emb;
    else GQ_TRY(up_f32(&g->lm_head, m->lm_head, (size_t)V * D, "lm_head"));
    GQ_TRY(up_f32(&g->final_norm, m->final_norm, D, "final_norm"));
    g->layers = (gqf_layer *)calloc((size_t)c->n_layers, sizeof(gqf_layer));
    if (!g->layers) return gq_errf(GQ_ERR_NOMEM, "GPU upload: host allocation failed");
    for (int l = 0; l < c->n_layers; l++) {
        const gq_block *b = &m->blocks[l];
        gqf_layer *y = &g->layers[l];
        GQ_TRY(up_f32(&y->attn_norm, b->attn_norm, D, "attn_norm"));
        GQ_TRY(up_f32(&y->ffn_norm, b->ffn_norm, D, "ffn_norm"));
        const gq_linear *qkv[3] = {&b->lin[GQ_LIN_Q], &b->lin[GQ_LIN_K], &b->lin[GQ_LIN_V]};
        GQ_TRY(up_stack(&y->wqkv, qkv, 3, D, "q/k/v"));
        if (c->qkv_bias) {
            float *hb = (float *)calloc((size_t)NQKV, sizeof(float));
            if (!hb) return gq_errf(GQ_ERR_NOMEM, "GPU upload: host allocation failed");
            if (b->lin[GQ_LIN_Q].bias) memcpy(hb, b->lin[GQ_LIN_Q].bias, (size_t)NQ * sizeof(float));
            if (b->lin[GQ_LIN_K].bias) memcpy(hb + NQ, b->lin[GQ_LIN_K].bias, (size_t)NKV * sizeof(float));
            if (b->lin[GQ_LIN_V].bias) memcpy(hb + NQ + NKV, b->lin[GQ_LIN_V].bias, (size_t)NKV * sizeof(float));
            gq_status st = up_f32(&y->bqkv, hb, NQKV, "qkv bias");
            free(hb);
            GQ_TRY(st);
        }
        const gq_linear *o[1] = {&b->lin[GQ_LIN_O]};
        GQ_TRY(up_stack(&y->wo, o, 1, NQ, "o_proj"));
        const gq_linear *gu[2] = {&b->lin[GQ_LIN_GATE], &b->lin[GQ_LIN_UP]};
        GQ_TRY(up_stack(&y->wgu, gu, 2, D, "gate/up"));
        const gq_linear *dn[1] = {&b->lin[GQ_LIN_DOWN]};
        GQ_TRY(up_stack(&y->wdown, dn, 1, H, "down_proj"));
    }
    return work_alloc(c, max_T, &g->w);
}

extern "C" gq_status gq_gpu_model_upload(const gq_model *m, int max_T, const char *precision, gq_gpu_model **out) {
    *out = NULL;
    if (!gq_gpu_available()) return gq_errf(GQ_ERR_UNSUPPORTED, "no CUDA device found (HINT: use --device cpu)");
    GQ_TRY(gq_config_validate(&m->cfg, m->source));
    const gq_config *c = &m->cfg;
    if (c->arch == GQ_ARCH_OPT) return gq_errf(GQ_ERR_UNSUPPORTED, "GPU forward: OPT models are not supported");
    if (max_T < 1) return gq_errf(GQ_ERR_ARG, "GPU forward: max_T must be >= 1, got %d", max_T);
    if (c->head_dim % 2) return gq_errf(GQ_ERR_UNSUPPORTED, "GPU forward: odd head_dim %d", c->head_dim);
    if (c->head_dim != 8 && c->head_dim != 16 && c->head_dim != 32 && c->head_dim != 64 && c->head_dim != 128)
        return gq_errf(GQ_ERR_UNSUPPORTED, "GPU forward: head_dim %d (supported: 8, 16, 32, 64, 128)", c->head_dim);
    cublasComputeType_t ct;
    if (!precision || !strcmp(precision, "fp32")) ct = CUBLAS_COMPUTE_32F, precision = "fp32";
    else if (!strcmp(precision, "tf32")) ct = CUBLAS_COMPUTE_32F_FAST_TF32;
    else if (!strcmp(precision, "bf16")) ct = CUBLAS_COMPUTE_32F_FAST_16BF;
    else return gq_errf(GQ_ERR_ARG, "GPU forward: unknown precision '%s' (fp32, tf32 or bf16)", precision);
    gq_gpu_model *g = (gq_gpu_model *)calloc(1, sizeof(*g));
    if (!g) return gq_errf(GQ_ERR_NOMEM, "GPU upload: host allocation failed");
    g->c = *c;
    g->compute = ct;
    snprintf(g->precision, sizeof g->precision, "%s", precision);
    gq_status st = upload(g, m, max_T);
    if (st != GQ_OK) {
        gq_gpu_model_free(g);
        cudaGetLastError();
        return gq_err_prefix(st, "uploading %s to the GPU: ", m->source[0] ? m->source : "model");
    }
    *out = g;
    return GQ_OK;
}

extern "C" gq_status gq_gpu_model_reserve(gq_gpu_model *g, int max_T) {
    GQ_ASSERT(g);
    if (max_T < 1) return gq_errf(GQ_ERR_ARG, "GPU forward: max_T must be >= 1, got %d", max_T);
    if (max_T <= g->w.T) return GQ_OK;
    CUDA_CHECK(cudaStreamSynchronize(g->stream)); /* nothing in flight may still use the old buffers */
    gqf_work nw;
    gq_status st = work_alloc(&g->c, max_T, &nw);
    if (st != GQ_OK) return gq_err_prefix(st, "growing the GPU buffers to %d rows: ", max_T);
    work_free(&g->w);
    g->w = nw;
    return GQ_OK;
}

/* ===========================================================================================
 * The forward pass
 * =========================================================================================== */
/* Y [T, N] (ldy) = X [T, K] W^T + beta*Y for row-major W [N, K]. Column-major view: Y^T = W^T' X^T. */
static gq_status linear(gq_gpu_model *g, float *Y, int ldy, const float *X, const float *W, int T, int N, int K,
                        float beta) {
    const float one = 1.f;
    CUBLAS_CHECK(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, W, CUDA_R_32F, K, X, CUDA_R_32F, K, &beta,
                            Y, CUDA_R_32F, ldy, g->compute, CUBLAS_GEMM_DEFAULT));
    return GQ_OK;
}

/* Causal attention of one sequence whose T rows start at qkv (stride NQKV) and out (stride NQ). */
template <int HD>
static void launch_attention(gq_gpu_model *g, float *out, const float *qkv, int T) {
    const gq_config *c = &g->c;
    int ld = (c->n_heads + 2 * c->n_kv_heads) * HD;
    dim3 grid((T + GQK_ATT_WARPS - 1) / GQK_ATT_WARPS, c->n_heads);
    gqk::k_attention<HD><<<grid, GQK_ATT_WARPS * 32, 0, g->stream>>>(out, qkv, T, ld, c->n_heads, c->n_kv_heads,
                                                                     1.f / sqrtf((float)HD));
}
static void attention(gq_gpu_model *g, float *out, const float *qkv, int T) {
    switch (g->c.head_dim) {
    case 8: launch_attention<8>(g, out, qkv, T); break;
    case 16: launch_attention<16>(g, out, qkv, T); break;
    case 32: launch_attention<32>(g, out, qkv, T); break;
    case 64: launch_attention<64>(g, out, qkv, T); break;
    case 128: launch_attention<128>(g, out, qkv, T); break;
    default: GQ_ASSERT(0 && "head_dim checked at upload");
    }
}

/* float64 copy of one linear input [n] and a flag for non-finite values (the CPU path's check). */
static __global__ void k_calib_to_double(double *xd, const float *x, size_t n, int *bad, int code) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i];
        if (!isfinite(v)) atomicMin(bad, code);
        xd[i] = v;
    }
}
/* H[layer, head] += X^T X for the input X [rows, K] (row-major, fp32) of that input group. */
static gq_status calib_accumulate(gq_gpu_model *g, int l, int head, const float *x, int rows) {
    gqf_calib *cal = g->cal;
    const int K = cal->K[head];
    const size_t n = (size_t)rows * K;
    int nb = (int)((n + 255) / 256);
    k_calib_to_double<<<nb > 65535 ? 65535 : nb, 256, 0, g->stream>>>(cal->xd, x, n, cal->bad, l * 4 + head);
    CUDA_CHECK_LAUNCH();
    /* column-major view: A = X^T is K x rows (lda K); C (K x K) += A A^T = X^T X */
    const double one = 1.0;
    CUBLAS_CHECK(cublasDsyrk(g->blas, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, K, rows, &one, cal->xd, K, &one,
                             cal->Hl[(size_t)l * 4 + head], K));
    return GQ_OK;
}

/* Every block over `rows` packed rows whose tokens are in g->w.tokens already: sequence b holds rows
 * [off[b], off[b] + len[b]) at positions 0..len[b]-1. GEMMs, norms and SwiGLU are row-wise, so they
 * run once over all rows; only RoPE (positions restart) and attention (keys of its own sequence only)
 * are launched per sequence. Leaves the residual stream in g->w.x. */
static gq_status run_blocks(gq_gpu_model *g, int nseq, const int *off, const int *len, int rows) {
    const gq_config *c = &g->c;
    gqf_work *w = &g->w;
    GQ_ASSERT(nseq >= 1 && rows >= 1 && rows <= w->T);
    int D = c->dim, H = c->hidden_dim, HD = c->head_dim, V = c->vocab_size;
    int NQ = c->n_heads * HD, NKV = c->n_kv_heads * HD, NQKV = NQ + 2 * NKV;
    cudaStream_t s = g->stream;
    gqk::k_embed<<<rows, 256, 0, s>>>(w->x, g->tok_emb, w->tokens, rows, D, V);
    CUDA_CHECK_LAUNCH();
    int nb = (int)(((size_t)rows * H + 255) / 256);
    if (nb > 65535) nb = 65535;
    for (int l = 0; l < c->n_layers; l++) {
        const gqf_layer *y = &g->layers[l];
        gqk::k_rmsnorm<<<rows, 256, 0, s>>>(w->xb, w->x, y->attn_norm, D, c->norm_eps);
        CUDA_CHECK_LAUNCH();
        if (g->cal) GQ_TRY(calib_accumulate(g, l, 0, w->xb, rows)); /* q/k/v input */
        GQ_TRY(linear(g, w->qkv, NQKV, w->xb, y->wqkv, rows, NQKV, D, 0.f));
        if (y->bqkv) {
            int nbb = (int)(((size_t)rows * NQKV + 255) / 256);
            gqk::k_add_bias<<<nbb > 65535 ? 65535 : nbb, 256, 0, s>>>(w->qkv, y->bqkv, rows, NQKV);
            CUDA_CHECK_LAUNCH();
        }
        for (int b = 0; b < nseq; b++) {
            dim3 rg(len[b], c->n_heads + c->n_kv_heads);
            gqk::k_rope<<<rg, HD / 2 < 32 ? 32 : HD / 2, 0, s>>>(w->qkv + (size_t)off[b] * NQKV, NQKV, c->n_heads,
                                                                c->n_kv_heads, HD, w->rope_cos, w->rope_sin,
                                                                (int)c->rope_style, NULL);
            CUDA_CHECK_LAUNCH();
        }
        for (int b = 0; b < nseq; b++) {
            attention(g, w->att + (size_t)off[b] * NQ, w->qkv + (size_t)off[b] * NQKV, len[b]);
            CUDA_CHECK_LAUNCH();
        }
        if (g->cal) GQ_TRY(calib_accumulate(g, l, 1, w->att, rows)); /* o_proj input */
        GQ_TRY(linear(g, w->x, D, w->att, y->wo, rows, D, NQ, 1.f)); /* residual: x += att Wo^T */
        gqk::k_rmsnorm<<<rows, 256, 0, s>>>(w->xb, w->x, y->ffn_norm, D, c->norm_eps);
        CUDA_CHECK_LAUNCH();
        if (g->cal) GQ_TRY(calib_accumulate(g, l, 2, w->xb, rows)); /* gate/up input */
        GQ_TRY(linear(g, w->gu, 2 * H, w->xb, y->wgu, rows, 2 * H, D, 0.f));
        gqk::k_swiglu<<<nb, 256, 0, s>>>(w->hb, w->gu, rows, H);
        CUDA_CHECK_LAUNCH();
        if (g->cal) GQ_TRY(calib_accumulate(g, l, 3, w->hb, rows)); /* down_proj input */
        GQ_TRY(linear(g, w->x, D, w->hb, y->wdown, rows, D, H, 1.f)); /* residual */
    }
    return GQ_OK;
}

/* Logits of the whole window into g->w.logits [T, V]. */
static gq_status forward_dev(gq_gpu_model *g, const int32_t *tokens, int T) {
    const gq_config *c = &g->c;
    gqf_work *w = &g->w;
    if (T < 1 || T > w->T) return gq_errf(GQ_ERR_ARG, "GPU forward: T=%d outside [1, %d]", T, w->T);
    int D = c->dim, V = c->vocab_size;
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return gq_errf(GQ_ERR_ARG, "GPU forward: token %d at position %d outside the vocabulary [0, %d)", tokens[t], t, V);
    cudaStream_t s = g->stream;
    CUDA_CHECK(cudaStreamSynchronize(s)); /* the pinned staging buffer may still feed a previous copy */
    memcpy(w->h_tokens, tokens, (size_t)T * sizeof(int32_t));
    CUDA_CHECK(cudaMemcpyAsync(w->tokens, w->h_tokens, (size_t)T * sizeof(int32_t), cudaMemcpyHostToDevice, s));
    int off = 0;
    GQ_TRY(run_blocks(g, 1, &off, &T, T));
    gqk::k_rmsnorm<<<T, 256, 0, s>>>(w->xb, w->x, g->final_norm, D, c->norm_eps);
    CUDA_CHECK_LAUNCH();
    GQ_TRY(linear(g, w->logits, V, w->xb, g->lm_head, T, V, D, 0.f));
    return GQ_OK;
}

extern "C" gq_status gq_gpu_forward(gq_gpu_model *g, const int32_t *tokens, int T, float *logits) {
    GQ_ASSERT(g && tokens && logits);
    GQ_TRY(forward_dev(g, tokens, T));
    CUDA_CHECK(cudaMemcpyAsync(logits, g->w.logits, (size_t)T * g->c.vocab_size * sizeof(float), cudaMemcpyDeviceToHost,
                           g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    return GQ_OK;
}

extern "C" gq_status gq_gpu_window_nll(gq_gpu_model *g, const int32_t *tokens, int T, double *nll_sum) {
    GQ_ASSERT(g && tokens && nll_sum);
    *nll_sum = 0.0;
    if (T < 2) return gq_errf(GQ_ERR_ARG, "GPU NLL: a window needs at least 2 tokens, got %d", T);
    GQ_TRY(forward_dev(g, tokens, T));
    gqf_work *w = &g->w;
    gqk::k_row_nll<<<T - 1, 256, 0, g->stream>>>(w->rowv, w->logits, w->tokens, g->c.vocab_size);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(w->h_rowv, w->rowv, (size_t)(T - 1) * sizeof(double), cudaMemcpyDeviceToHost, g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    double s = 0.0; /* summed in position order on the host: deterministic, same order as the CPU */
    for (int t = 0; t < T - 1; t++) s += w->h_rowv[t];
    if (!(s == s) || s > 1e300) return gq_errf(GQ_ERR_NUMERIC, "GPU NLL: non-finite window loss (%g)", s);
    *nll_sum = s;
    return GQ_OK;
}

/* ===========================================================================================
 * Per-token log-probabilities (zero-shot scoring)
 * =========================================================================================== */
/* (value, index) maximum with ties to the lower index: associative and commutative, so every lane of
 * the butterfly ends with the same pair, the first argmax as the CPU's strict-> scan finds it. */
static __device__ __forceinline__ void warp_argmax(float &v, int &i) {
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (ov > v || (ov == v && oi < i)) {
            v = ov;
            i = oi;
        }
    }
}

#define GQF_NO_INDEX 0x7fffffff

/* One block per scored row r of logits [R, V] (blockDim a multiple of 32, <= 1024):
 *   lp[r] = logits[r][y] - max - log(sum_v exp(logits[r][v] - max)),  y = targets[r]
 * with the exponentials summed in float64 (the CPU's gq_zs_cont_logprob does the same), and
 * greedy[r] = (first argmax == y). */
static __global__ void k_row_logprob(double *lp, int *greedy, const float *logits, const int32_t *targets, int V) {
    __shared__ float s_v[32];
    __shared__ int s_i[32];
    __shared__ double s_d[32];
    const float *row = logits + (size_t)blockIdx.x * V;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float bv = -INFINITY;
    int bi = GQF_NO_INDEX;
    for (int i = threadIdx.x; i < V; i += blockDim.x) { /* ascending: strict > keeps this thread's first max */
        float x = row[i];
        if (x > bv) {
            bv = x;
            bi = i;
        }
    }
    warp_argmax(bv, bi);
    if (lane == 0) {
        s_v[w] = bv;
        s_i[w] = bi;
    }
    __syncthreads();
    bv = lane < nw ? s_v[lane] : -INFINITY;
    bi = lane < nw ? s_i[lane] : GQF_NO_INDEX;
    warp_argmax(bv, bi); /* every warp reduces the same values: all threads now hold the row's max */
    double s = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) s += exp((double)row[i] - (double)bv);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) s_d[w] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double tot = 0.0;
        for (int k = 0; k < nw; k++) tot += s_d[k];
        int y = targets[blockIdx.x];
        y = y < 0 ? 0 : (y >= V ? V - 1 : y); /* defensive: range-checked on the host */
        lp[blockIdx.x] = (double)row[y] - (double)bv - log(tot);
        greedy[blockIdx.x] = bi == y;
    }
}

/* One packed forward pass over seqs[0..n): their T-1 rows together fit in g->w.T and their tokens
 * were range-checked. */
static gq_status logprob_pass(gq_gpu_model *g, int n, const gq_gpu_lp_seq *seqs) {
    const gq_config *c = &g->c;
    gqf_work *w = &g->w;
    int D = c->dim, V = c->vocab_size;
    cudaStream_t s = g->stream;
    CUDA_CHECK(cudaStreamSynchronize(s)); /* the pinned staging buffers may still feed a previous copy */
    int *off = (int *)gq_malloc(2 * (size_t)n * sizeof(int)), *len = off + n;
    int rows = 0, R = 0;
    for (int b = 0; b < n; b++) {
        const gq_gpu_lp_seq *q = &seqs[b];
        off[b] = rows;
        len[b] = q->T - 1; /* the last token is only a target */
        memcpy(w->h_tokens + rows, q->tokens, (size_t)len[b] * sizeof(int32_t));
        rows += len[b];
        for (int t = q->from; t < q->T - 1; t++) w->h_targets[R++] = q->tokens[t + 1];
    }
    GQ_ASSERT(rows <= w->T && R <= rows);
    gq_status st = GQ_OK;
    CUDA_CHECK_GOTO(cudaMemcpyAsync(w->tokens, w->h_tokens, (size_t)rows * sizeof(int32_t), cudaMemcpyHostToDevice, s), done);
    CUDA_CHECK_GOTO(cudaMemcpyAsync(w->targets, w->h_targets, (size_t)R * sizeof(int32_t), cudaMemcpyHostToDevice, s), done);
    st = run_blocks(g, n, off, len, rows);
    if (st != GQ_OK) goto done;
    /* final norm of the scored rows only, gathered into xb [R, D] so the head is one GEMM of R rows */
    {
        int r0 = 0;
        for (int b = 0; b < n; b++) {
            int cnt = seqs[b].T - 1 - seqs[b].from;
            gqk::k_rmsnorm<<<cnt, 256, 0, s>>>(w->xb + (size_t)r0 * D, w->x + ((size_t)off[b] + seqs[b].from) * D,
                                               g->final_norm, D, c->norm_eps);
            CUDA_CHECK_GOTO(cudaGetLastError(), done);
            r0 += cnt;
        }
        GQ_ASSERT(r0 == R);
    }
    st = linear(g, w->logits, V, w->xb, g->lm_head, R, V, D, 0.f);
    if (st != GQ_OK) goto done;
    k_row_logprob<<<R, 256, 0, s>>>(w->rowv, w->greedy, w->logits, w->targets, V);
    CUDA_CHECK_GOTO(cudaGetLastError(), done);
    CUDA_CHECK_GOTO(cudaMemcpyAsync(w->h_rowv, w->rowv, (size_t)R * sizeof(double), cudaMemcpyDeviceToHost, s), done);
    CUDA_CHECK_GOTO(cudaMemcpyAsync(w->h_greedy, w->greedy, (size_t)R * sizeof(int), cudaMemcpyDeviceToHost, s), done);
    CUDA_CHECK_GOTO(cudaStreamSynchronize(s), done);
    {
        int r = 0;
        for (int b = 0; b < n; b++) {
            const gq_gpu_lp_seq *q = &seqs[b];
            int cnt = q->T - 1 - q->from;
            memcpy(q->lp, w->h_rowv + r, (size_t)cnt * sizeof(double));
            if (q->is_greedy) memcpy(q->is_greedy, w->h_greedy + r, (size_t)cnt * sizeof(int));
            r += cnt;
        }
    }
done:
    free(off);
    return st;
}

extern "C" gq_status gq_gpu_token_logprobs_batch(gq_gpu_model *g, int n, const gq_gpu_lp_seq *seqs) {
    GQ_ASSERT(g && n >= 0 && (n == 0 || seqs));
    int V = g->c.vocab_size, cap = g->w.T;
    for (int b = 0; b < n; b++) {
        const gq_gpu_lp_seq *q = &seqs[b];
        GQ_ASSERT(q->tokens && q->lp);
        if (q->T < 2) return gq_errf(GQ_ERR_ARG, "GPU log-probs: sequence %d has %d tokens, needs at least 2", b, q->T);
        if (q->from < 0 || q->from >= q->T - 1)
            return gq_errf(GQ_ERR_ARG, "GPU log-probs: sequence %d: first scored position %d outside [0, %d)", b, q->from,
                           q->T - 1);
        if (q->T - 1 > cap)
            return gq_errf(GQ_ERR_ARG,
                           "GPU log-probs: sequence %d needs a window of %d rows, the GPU buffers hold %d "
                           "(HINT: gq_gpu_model_reserve)", b, q->T - 1, cap);
        for (int t = 0; t < q->T; t++)
            if (q->tokens[t] < 0 || q->tokens[t] >= V)
                return gq_errf(GQ_ERR_ARG, "GPU log-probs: sequence %d: token %d at position %d outside the vocabulary [0, %d)",
                               b, q->tokens[t], t, V);
    }
    /* as many whole sequences per pass as fit, in order */
    for (int b0 = 0; b0 < n;) {
        int rows = 0, b1 = b0;
        while (b1 < n && rows + (seqs[b1].T - 1) <= cap) rows += seqs[b1++].T - 1;
        GQ_ASSERT(b1 > b0);
        GQ_TRY(logprob_pass(g, b1 - b0, seqs + b0));
        b0 = b1;
    }
    return GQ_OK;
}

extern "C" gq_status gq_gpu_token_logprobs(gq_gpu_model *g, const int32_t *tokens, int T, int from, double *lp,
                                          int *is_greedy) {
    GQ_ASSERT(g && tokens && lp);
    gq_gpu_lp_seq q = {tokens, T, from, lp, is_greedy};
    return gq_gpu_token_logprobs_batch(g, 1, &q);
}

/* ===========================================================================================
 * Calibration statistics (the calibrate stage on the GPU)
 * =========================================================================================== */
/* gq_calibrate's non-sequential statistics: the full-precision model is uploaded once, every window
 * runs the whole forward (no lm head), and at each input-group linear (q/k/v, o, gate/up, down) its fp32
 * input goes to float64 and into a resident X^T X accumulator through cublasDsyrk — the CPU path's
 * cblas_dsyrk on the same fp32 activations, up to the forward's GEMM summation order. */
static const gq_linear_kind k_cal_heads[4] = {GQ_LIN_Q, GQ_LIN_O, GQ_LIN_GATE, GQ_LIN_DOWN};

static void calib_free(gqf_calib *cal, int L) {
    if (!cal) return;
    if (cal->Hl)
        for (int i = 0; i < 4 * L; i++) cudaFree(cal->Hl[i]);
    free(cal->Hl);
    cudaFree(cal->xd);
    cudaFree(cal->bad);
    free(cal);
}

static gq_status calib_run(gq_gpu_model *g, const gq_model *m, const int32_t *windows, int n, int seqlen, int progress,
                           gq_hessians *hs) {
    const gq_config *c = &g->c;
    const int L = c->n_layers, V = c->vocab_size;
    gqf_calib *cal = g->cal;
    cal->K[0] = c->dim, cal->K[1] = c->n_heads * c->head_dim, cal->K[2] = c->dim, cal->K[3] = c->hidden_dim;
    int kmax = 0;
    for (int h = 0; h < 4; h++) {
        kmax = cal->K[h] > kmax ? cal->K[h] : kmax;
        for (int l = 0; l < L; l++)
            if (m->blocks[l].lin[k_cal_heads[h]].in != cal->K[h])
                return gq_errf(GQ_ERR_UNSUPPORTED, "GPU calibrate: layers.%d.%s has %d inputs, expected %d", l,
                               gq_linear_name(k_cal_heads[h]), m->blocks[l].lin[k_cal_heads[h]].in, cal->K[h]);
    }
    cal->Hl = (double **)calloc((size_t)4 * L, sizeof(double *));
    if (!cal->Hl) return gq_errf(GQ_ERR_NOMEM, "GPU calibrate: host allocation failed");
    for (int l = 0; l < L; l++)
        for (int h = 0; h < 4; h++) {
            const size_t bytes = (size_t)cal->K[h] * cal->K[h] * sizeof(double);
            GQ_TRY(dev_alloc((void **)&cal->Hl[(size_t)l * 4 + h], bytes, "a Hessian accumulator"));
            CUDA_CHECK(cudaMemsetAsync(cal->Hl[(size_t)l * 4 + h], 0, bytes, g->stream));
        }
    GQ_TRY(dev_alloc((void **)&cal->xd, (size_t)seqlen * kmax * sizeof(double), "the float64 linear input"));
    GQ_TRY(dev_alloc((void **)&cal->bad, sizeof(int), "the non-finite flag"));
    const int none = INT_MAX;
    CUDA_CHECK(cudaMemcpyAsync(cal->bad, &none, sizeof(int), cudaMemcpyHostToDevice, g->stream));
    /* every token checked before any GPU work */
    for (int s = 0; s < n; s++)
        for (int t = 0; t < seqlen; t++) {
            const int32_t id = windows[(size_t)s * seqlen + t];
            if (id < 0 || id >= V)
                return gq_errf(GQ_ERR_ARG, "calibration: window %d holds token %d at position %d outside the vocabulary [0, %d)",
                               s, id, t, V);
        }
    gq_progress pr;
    if (progress) gq_progress_init(&pr, "calibrate (GPU)", (double)n, "windows");
    gqf_work *w = &g->w;
    for (int s = 0; s < n; s++) {
        /* the stream is idle here (each window ends with a synchronising flag read): the pinned buffer is free */
        memcpy(w->h_tokens, windows + (size_t)s * seqlen, (size_t)seqlen * sizeof(int32_t));
        CUDA_CHECK(cudaMemcpyAsync(w->tokens, w->h_tokens, (size_t)seqlen * sizeof(int32_t), cudaMemcpyHostToDevice, g->stream));
        int off = 0, T = seqlen;
        GQ_TRY(run_blocks(g, 1, &off, &T, T));
        int bad = INT_MAX;
        CUDA_CHECK(cudaMemcpyAsync(&bad, cal->bad, sizeof(int), cudaMemcpyDeviceToHost, g->stream));
        CUDA_CHECK(cudaStreamSynchronize(g->stream));
        if (bad != INT_MAX)
            return gq_errf(GQ_ERR_NUMERIC, "calibration: non-finite activation at the input of layers.%d.%s (window %d, GPU)",
                           bad / 4, gq_linear_name(k_cal_heads[bad % 4]), s);
        if (progress) gq_progress_update(&pr, s + 1);
    }
    if (progress) gq_progress_done(&pr, n);
    const int64_t n_tok = (int64_t)n * seqlen;
    const double sc = 2.0 / (double)n_tok;
    for (int l = 0; l < L; l++)
        for (int h = 0; h < 4; h++) {
            gq_hessian *dst = &hs->h[(size_t)l * GQ_LIN_COUNT + k_cal_heads[h]];
            const int K = cal->K[h];
            free(dst->H);
            free(dst->sumsq);
            dst->K = K;
            dst->H = (double *)malloc((size_t)K * K * sizeof(double));
            dst->sumsq = (double *)malloc((size_t)K * sizeof(double));
            if (!dst->H || !dst->sumsq) {
                free(dst->H), free(dst->sumsq);
                dst->H = NULL, dst->sumsq = NULL;
                return gq_errf(GQ_ERR_NOMEM, "calibration: no memory for a %d x %d Hessian", K, K);
            }
            CUDA_CHECK(cudaMemcpy(dst->H, cal->Hl[(size_t)l * 4 + h], (size_t)K * K * sizeof(double), cudaMemcpyDeviceToHost));
            /* the row-major lower triangle holds X^T X: sumsq is its diagonal, then mirror and scale */
            for (int a = 0; a < K; a++) {
                dst->sumsq[a] = dst->H[(size_t)a * K + a];
                for (int b = 0; b < a; b++) dst->H[(size_t)b * K + a] = dst->H[(size_t)a * K + b];
            }
            for (size_t i = 0; i < (size_t)K * K; i++) dst->H[i] *= sc;
            dst->n_tok = n_tok;
        }
    return GQ_OK;
}

extern "C" gq_status gq_gpu_calibrate(const gq_model *m, const int32_t *windows, int n, int seqlen, int progress,
                                      gq_hessians *hs) {
    GQ_ASSERT(m && windows && hs && hs->h && hs->n_layers == m->cfg.n_layers);
    if (n <= 0 || seqlen <= 0) return gq_errf(GQ_ERR_ARG, "calibration: need n > 0 windows of seqlen > 0 tokens");
    if (seqlen > m->cfg.max_seq_len)
        return gq_errf(GQ_ERR_ARG, "calibration: seqlen %d exceeds the model's context %d", seqlen, m->cfg.max_seq_len);
    gq_gpu_model *g = NULL;
    GQ_TRY(gq_gpu_model_upload(m, seqlen, "fp32", &g));
    g->cal = (gqf_calib *)calloc(1, sizeof(gqf_calib));
    gq_status st = g->cal ? calib_run(g, m, windows, n, seqlen, progress, hs)
                          : gq_errf(GQ_ERR_NOMEM, "GPU calibrate: host allocation failed");
    if (g->stream) cudaStreamSynchronize(g->stream);
    calib_free(g->cal, m->cfg.n_layers);
    g->cal = NULL;
    gq_gpu_model_free(g);
    cudaGetLastError();
    return st;
}
