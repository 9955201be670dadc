/* gpu_forward.cu — the GPU evaluation forward (implements core/cuda/gpu.h): whole windows of T
 * tokens, fp32 weights uploaded once, every linear layer one cuBLAS GEMM, attention by the tiled
 * online-softmax kernel of kernels_common.cuh, log-softmax + NLL reduced on the device.
 * Mirrors core/forward.c step by step (embed; per block RMSNorm, q/k/v, RoPE, causal GQA attention,
 * o + residual, RMSNorm, gate/up, SwiGLU, down + residual; final RMSNorm; lm head). In "fp32"
 * precision the GEMMs use CUBLAS_COMPUTE_32F with TF32 disabled, so the perplexity equals the CPU's
 * to rounding (gate: 0.1%); "tf32" and "bf16" trade accuracy for speed and say so.
 * Must not: be used by CPU-only builds (core/gpu_stub.c is); keep device pointers outside the
 * gq_gpu_model it owns; print to stdout.
 */
#include <cublas_v2.h>
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

struct gq_gpu_model {
    gq_config c;
    int max_T;
    cublasComputeType_t compute;
    char precision[8];
    cudaStream_t stream;
    cublasHandle_t blas;
    float *tok_emb, *lm_head, *final_norm; /* lm_head == tok_emb when tied */
    gqf_layer *layers;                     /* [L] host array of device pointers */
    float *rope_cos, *rope_sin;            /* [max_T, HD/2] */
    /* activations [max_T, ...] */
    float *x, *xb, *qkv, *att, *gu, *hb, *logits;
    int32_t *tokens;
    double *nll;  /* [max_T] */
    double *h_nll;/* pinned host copy */
};

static gq_status up_f32(float **dst, const float *src, size_t n, const char *what) {
    *dst = NULL;
    cudaError_t e = cudaMalloc((void **)dst, n * sizeof(float));
    if (e != cudaSuccess) {
        *dst = NULL;
        return gq_errf(GQ_ERR_NOMEM, "GPU: cannot allocate %zu bytes for %s: %s", n * sizeof(float), what,
                       cudaGetErrorString(e));
    }
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

extern "C" void gq_gpu_model_free(gq_gpu_model *g) {
    if (!g) return;
    if (g->layers) {
        for (int l = 0; l < g->c.n_layers; l++) {
            gqf_layer *y = &g->layers[l];
            cudaFree(y->attn_norm); cudaFree(y->ffn_norm); cudaFree(y->wqkv); cudaFree(y->bqkv);
            cudaFree(y->wo); cudaFree(y->wgu); cudaFree(y->wdown);
        }
        free(g->layers);
    }
    if (g->lm_head != g->tok_emb) cudaFree(g->lm_head);
    cudaFree(g->tok_emb); cudaFree(g->final_norm); cudaFree(g->rope_cos); cudaFree(g->rope_sin);
    cudaFree(g->x); cudaFree(g->xb); cudaFree(g->qkv); cudaFree(g->att); cudaFree(g->gu); cudaFree(g->hb);
    cudaFree(g->logits); cudaFree(g->tokens); cudaFree(g->nll);
    if (g->h_nll) cudaFreeHost(g->h_nll);
    if (g->blas) cublasDestroy(g->blas);
    if (g->stream) cudaStreamDestroy(g->stream);
    free(g);
}

static gq_status upload(gq_gpu_model *g, const gq_model *m) {
    const gq_config *c = &g->c;
    int D = c->dim, H = c->hidden_dim, HD = c->head_dim, V = c->vocab_size, T = g->max_T;
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
    /* RoPE tables in float64, rounded once (as the CPU tables are built). */
    int half = HD / 2;
    float *hc = (float *)malloc((size_t)T * half * sizeof(float)), *hs = (float *)malloc((size_t)T * half * sizeof(float));
    if (!hc || !hs) { free(hc); free(hs); return gq_errf(GQ_ERR_NOMEM, "GPU upload: host allocation failed"); }
    for (int p = 0; p < T; p++)
        for (int i = 0; i < half; i++) {
            double f = pow((double)c->rope_theta, -2.0 * i / (double)HD), a = p * f;
            hc[(size_t)p * half + i] = (float)cos(a);
            hs[(size_t)p * half + i] = (float)sin(a);
        }
    gq_status st = up_f32(&g->rope_cos, hc, (size_t)T * half, "rope cos");
    if (st == GQ_OK) st = up_f32(&g->rope_sin, hs, (size_t)T * half, "rope sin");
    free(hc); free(hs);
    GQ_TRY(st);
    GQ_TRY(up_f32(&g->x, NULL, (size_t)T * D, "activations"));
    GQ_TRY(up_f32(&g->xb, NULL, (size_t)T * D, "activations"));
    GQ_TRY(up_f32(&g->qkv, NULL, (size_t)T * NQKV, "activations"));
    GQ_TRY(up_f32(&g->att, NULL, (size_t)T * NQ, "activations"));
    GQ_TRY(up_f32(&g->gu, NULL, (size_t)T * 2 * H, "activations"));
    GQ_TRY(up_f32(&g->hb, NULL, (size_t)T * H, "activations"));
    GQ_TRY(up_f32(&g->logits, NULL, (size_t)T * V, "logits"));
    CUDA_CHECK(cudaMalloc((void **)&g->tokens, (size_t)T * sizeof(int32_t)));
    CUDA_CHECK(cudaMalloc((void **)&g->nll, (size_t)T * sizeof(double)));
    CUDA_CHECK(cudaMallocHost((void **)&g->h_nll, (size_t)T * sizeof(double)));
    return GQ_OK;
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
    g->max_T = max_T;
    g->compute = ct;
    snprintf(g->precision, sizeof g->precision, "%s", precision);
    gq_status st = upload(g, m);
    if (st != GQ_OK) {
        gq_gpu_model_free(g);
        cudaGetLastError();
        return gq_err_prefix(st, "uploading %s to the GPU: ", m->source[0] ? m->source : "model");
    }
    *out = g;
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

template <int HD>
static void launch_attention(gq_gpu_model *g, int T) {
    const gq_config *c = &g->c;
    int ld = (c->n_heads + 2 * c->n_kv_heads) * HD;
    dim3 grid((T + GQK_ATT_WARPS - 1) / GQK_ATT_WARPS, c->n_heads);
    gqk::k_attention<HD><<<grid, GQK_ATT_WARPS * 32, 0, g->stream>>>(g->att, g->qkv, T, ld, c->n_heads, c->n_kv_heads,
                                                                     1.f / sqrtf((float)HD));
}

/* Logits of the whole window into g->logits [T, V]. */
static gq_status forward_dev(gq_gpu_model *g, const int32_t *tokens, int T) {
    const gq_config *c = &g->c;
    if (T < 1 || T > g->max_T) return gq_errf(GQ_ERR_ARG, "GPU forward: T=%d outside [1, %d]", T, g->max_T);
    int D = c->dim, H = c->hidden_dim, HD = c->head_dim, V = c->vocab_size;
    int NQ = c->n_heads * HD, NKV = c->n_kv_heads * HD, NQKV = NQ + 2 * NKV;
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V)
            return gq_errf(GQ_ERR_ARG, "GPU forward: token %d at position %d outside the vocabulary [0, %d)", tokens[t], t, V);
    cudaStream_t s = g->stream;
    CUDA_CHECK(cudaMemcpyAsync(g->tokens, tokens, (size_t)T * sizeof(int32_t), cudaMemcpyHostToDevice, s));
    gqk::k_embed<<<T, 256, 0, s>>>(g->x, g->tok_emb, g->tokens, T, D, V);
    CUDA_CHECK_LAUNCH();
    int nb = (int)(((size_t)T * H + 255) / 256);
    if (nb > 65535) nb = 65535;
    for (int l = 0; l < c->n_layers; l++) {
        const gqf_layer *y = &g->layers[l];
        gqk::k_rmsnorm<<<T, 256, 0, s>>>(g->xb, g->x, y->attn_norm, D, c->norm_eps);
        CUDA_CHECK_LAUNCH();
        GQ_TRY(linear(g, g->qkv, NQKV, g->xb, y->wqkv, T, NQKV, D, 0.f));
        if (y->bqkv) {
            int nbb = (int)(((size_t)T * NQKV + 255) / 256);
            gqk::k_add_bias<<<nbb > 65535 ? 65535 : nbb, 256, 0, s>>>(g->qkv, y->bqkv, T, NQKV);
            CUDA_CHECK_LAUNCH();
        }
        dim3 rg(T, c->n_heads + c->n_kv_heads);
        gqk::k_rope<<<rg, HD / 2 < 32 ? 32 : HD / 2, 0, s>>>(g->qkv, NQKV, c->n_heads, c->n_kv_heads, HD, g->rope_cos,
                                                            g->rope_sin, (int)c->rope_style, NULL);
        CUDA_CHECK_LAUNCH();
        switch (HD) {
        case 8: launch_attention<8>(g, T); break;
        case 16: launch_attention<16>(g, T); break;
        case 32: launch_attention<32>(g, T); break;
        case 64: launch_attention<64>(g, T); break;
        case 128: launch_attention<128>(g, T); break;
        default: GQ_ASSERT(0 && "head_dim checked at upload");
        }
        CUDA_CHECK_LAUNCH();
        GQ_TRY(linear(g, g->x, D, g->att, y->wo, T, D, NQ, 1.f)); /* residual: x += att Wo^T */
        gqk::k_rmsnorm<<<T, 256, 0, s>>>(g->xb, g->x, y->ffn_norm, D, c->norm_eps);
        CUDA_CHECK_LAUNCH();
        GQ_TRY(linear(g, g->gu, 2 * H, g->xb, y->wgu, T, 2 * H, D, 0.f));
        gqk::k_swiglu<<<nb, 256, 0, s>>>(g->hb, g->gu, T, H);
        CUDA_CHECK_LAUNCH();
        GQ_TRY(linear(g, g->x, D, g->hb, y->wdown, T, D, H, 1.f)); /* residual */
    }
    gqk::k_rmsnorm<<<T, 256, 0, s>>>(g->xb, g->x, g->final_norm, D, c->norm_eps);
    CUDA_CHECK_LAUNCH();
    GQ_TRY(linear(g, g->logits, V, g->xb, g->lm_head, T, V, D, 0.f));
    return GQ_OK;
}

extern "C" gq_status gq_gpu_forward(gq_gpu_model *g, const int32_t *tokens, int T, float *logits) {
    GQ_ASSERT(g && tokens && logits);
    GQ_TRY(forward_dev(g, tokens, T));
    CUDA_CHECK(cudaMemcpyAsync(logits, g->logits, (size_t)T * g->c.vocab_size * sizeof(float), cudaMemcpyDeviceToHost,
                           g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    return GQ_OK;
}

extern "C" gq_status gq_gpu_window_nll(gq_gpu_model *g, const int32_t *tokens, int T, double *nll_sum) {
    GQ_ASSERT(g && tokens && nll_sum);
    *nll_sum = 0.0;
    if (T < 2) return gq_errf(GQ_ERR_ARG, "GPU NLL: a window needs at least 2 tokens, got %d", T);
    GQ_TRY(forward_dev(g, tokens, T));
    gqk::k_row_nll<<<T - 1, 256, 0, g->stream>>>(g->nll, g->logits, g->tokens, g->c.vocab_size);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(g->h_nll, g->nll, (size_t)(T - 1) * sizeof(double), cudaMemcpyDeviceToHost, g->stream));
    CUDA_CHECK(cudaStreamSynchronize(g->stream));
    double s = 0.0; /* summed in position order on the host: deterministic, same order as the CPU */
    for (int t = 0; t < T - 1; t++) s += g->h_nll[t];
    if (!(s == s) || s > 1e300) return gq_errf(GQ_ERR_NUMERIC, "GPU NLL: non-finite window loss (%g)", s);
    *nll_sum = s;
    return GQ_OK;
}
