/* forward.c — the CPU forward pass of a LLaMA-architecture model (see forward.h for the contract).
 *
 * Read top to bottom: buffers (init/free), small kernels (RMSNorm, linear, RoPE, attention rows,
 * SwiGLU), the block shared by whole-window and incremental (KV-cache) passes, the head, the NLL.
 * Linear layers are one cblas_sgemm over all T tokens of the window. Attention over a window runs
 * in blocks of query rows: Q K^T and P V are sgemms per head, the causal softmax in between runs on
 * pthreads over (head, row); short inputs (decode) use a per-(row, head) kernel on pthreads instead.
 * Must not: allocate per call (everything is carved from one slab in gq_fwd_init; the KV cache is
 * allocated once, on the first gq_fwd_decode), read files, or print.
 */
#include "forward.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Upper bound on attention worker threads: the scratch rows are sized for it once in gq_fwd_init. */
#define FWD_MAX_THREADS 64
/* Below this many multiply-adds an attention call runs on the caller's thread: thread start-up
 * (~20 us each) would cost more than it saves (decode of a short context, tiny test models). */
#define FWD_PAR_MIN_WORK (1L << 17)

/* ------------------------------------------------------------------------------------------ */
/* Buffers                                                                                      */

static pthread_once_t fwd_threads_once = PTHREAD_ONCE_INIT;
static int fwd_threads_n = 1;
static void fwd_threads_init(void) {
    int n = gq_num_threads();
    fwd_threads_n = n < 1 ? 1 : (n > FWD_MAX_THREADS ? FWD_MAX_THREADS : n);
}
/* Fixed for the life of the process, so scratch sized at init always fits the threads used later. */
static int fwd_threads(void) {
    pthread_once(&fwd_threads_once, fwd_threads_init);
    return fwd_threads_n;
}

static int qdim(const gq_config *c) { return c->n_heads * c->head_dim; }
static int kvdim(const gq_config *c) { return c->n_kv_heads * c->head_dim; }
/* tmp holds an o_proj/down_proj output [T, D]; sized to the wider of D and NH*HD to be safe. */
static int tmpw(const gq_config *c) { return c->dim > qdim(c) ? c->dim : qdim(c); }
/* The residual stream of gq_forward / gq_fwd_decode lives right after tmp in the same slab
 * (forward.h has no field for it): [max_T, D]. */
static float *fwd_resid(const gq_fwd *f) { return f->tmp + (size_t)f->max_T * (size_t)tmpw(&f->m->cfg); }

/* Query rows per attention block of the whole-window path: the scores of one block for every head,
 * [NH, FWD_QBLK, max_T], live in f->scores (16 MB for 32 heads at 2048 tokens). */
#define FWD_QBLK 64
static size_t fwd_scores_len(const gq_config *c, int max_T) {
    size_t rows = (size_t)c->n_heads * (size_t)(max_T < FWD_QBLK ? max_T : FWD_QBLK);
    if (rows < (size_t)fwd_threads()) rows = (size_t)fwd_threads();
    return rows * (size_t)max_T;
}

gq_status gq_fwd_init(gq_fwd *f, const gq_model *m, int max_T) {
    GQ_ASSERT(f && m);
    memset(f, 0, sizeof *f);
    const gq_config *c = &m->cfg;
    if (max_T < 1) return gq_errf(GQ_ERR_ARG, "forward: window of %d tokens (need at least 1)", max_T);
    if (max_T > c->max_seq_len)
        return gq_errf(GQ_ERR_ARG, "seqlen %d is longer than the model allows (%d)", max_T, c->max_seq_len);
    GQ_ASSERT(c->head_dim % 2 == 0 && c->n_heads % c->n_kv_heads == 0);
    size_t T = (size_t)max_T, D = (size_t)c->dim, H = (size_t)c->hidden_dim, HD2 = (size_t)c->head_dim / 2;
    size_t sizes[] = {
        T * D,                              /* xb */
        T * (size_t)qdim(c),                /* q */
        T * (size_t)kvdim(c),               /* k */
        T * (size_t)kvdim(c),               /* v */
        T * (size_t)qdim(c),                /* att */
        fwd_scores_len(c, max_T),           /* scores */
        T * H,                              /* hb */
        T * H,                              /* hb2 */
        T * (size_t)tmpw(c) + T * D,        /* tmp, then the residual stream */
        T * HD2, T * HD2,                   /* rope cos, sin */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i];
    size_t bytes;
    if (gq_mul_overflow(total, sizeof(float), &bytes))
        return gq_errf(GQ_ERR_ARG, "forward: buffers for %d tokens overflow size_t", max_T);
    float *slab = gq_try_malloc(bytes);
    if (!slab) return gq_errf(GQ_ERR_NOMEM, "forward: cannot allocate %zu MB of work buffers for %d tokens",
                              bytes >> 20, max_T);
    float **dst[] = {&f->xb, &f->q, &f->k, &f->v, &f->att, &f->scores, &f->hb, &f->hb2, &f->tmp,
                     &f->rope_cos, &f->rope_sin};
    float *p = slab;
    for (size_t i = 0; i < sizeof dst / sizeof dst[0]; i++) { *dst[i] = p; p += sizes[i]; }
    f->m = m;
    f->max_T = max_T;
    /* freq_i = theta^(-2i/HD); angles in double so long positions keep their precision. */
    for (size_t t = 0; t < T; t++)
        for (size_t i = 0; i < HD2; i++) {
            double freq = pow((double)c->rope_theta, -2.0 * (double)i / (double)c->head_dim);
            double a = (double)t * freq;
            f->rope_cos[t * HD2 + i] = (float)cos(a);
            f->rope_sin[t * HD2 + i] = (float)sin(a);
        }
    return GQ_OK;
}

void gq_fwd_free(gq_fwd *f) {
    if (!f) return;
    free(f->xb); /* the slab starts at xb */
    free(f->kcache);
    memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------------------------------ */
/* Kernels                                                                                      */

/* y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * w, for T rows of D. The sum of squares is accumulated in
 * double: it is D multiply-adds per row, and makes the norm match a float64 reference to ~1e-7. */
static void rmsnorm(float *y, const float *x, const float *w, int T, int D, float eps) {
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * D;
        float *yr = y + (size_t)t * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        float inv = (float)(1.0 / sqrt(ss / D + (double)eps));
        for (int i = 0; i < D; i++) yr[i] = xr[i] * inv * w[i];
    }
}

/* y [T, N] = x [T, K] W^T (+ bias), W [N, K] row-major; y rows have stride ldy (>= N). */
static void linear(float *y, int ldy, const float *x, const gq_linear *l, int T) {
    if (T == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, l->out, l->in, 1.0f, l->w, l->in, x, 1, 0.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, l->out, l->in, 1.0f, x, l->in, l->w, l->in, 0.0f,
                    y, ldy);
    if (l->bias)
        for (int t = 0; t < T; t++)
            for (int n = 0; n < l->out; n++) y[(size_t)t * ldy + n] += l->bias[n];
}

/* Rotate every head of x [T, nh*HD] (row stride ld) for positions pos0..pos0+T-1. */
static void rope(const gq_fwd *f, float *x, int ld, int nh, int T, int pos0) {
    const gq_config *c = &f->m->cfg;
    int HD = c->head_dim, HD2 = HD / 2;
    for (int t = 0; t < T; t++) {
        const float *cs = f->rope_cos + (size_t)(pos0 + t) * HD2, *sn = f->rope_sin + (size_t)(pos0 + t) * HD2;
        for (int h = 0; h < nh; h++) {
            float *v = x + (size_t)t * ld + (size_t)h * HD;
            for (int i = 0; i < HD2; i++) {
                /* INTERLEAVED pairs (2i, 2i+1); HALF pairs (i, i + HD/2); both use freq_i */
                int a = c->rope_style == GQ_ROPE_HALF ? i : 2 * i;
                int b = c->rope_style == GQ_ROPE_HALF ? i + HD2 : 2 * i + 1;
                float x0 = v[a], x1 = v[b];
                v[a] = x0 * cs[i] - x1 * sn[i];
                v[b] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

/* Dot product of n floats with 8-wide partial sums written as GCC vector-extension arithmetic, so
 * it vectorises without -ffast-math (a plain float reduction would not). */
typedef float fwd_v8 __attribute__((vector_size(32)));
static float dot(const float *a, const float *b, int n) {
    fwd_v8 acc0 = {0}, acc1 = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        fwd_v8 a0, b0, a1, b1;
        memcpy(&a0, a + i, 32); memcpy(&b0, b + i, 32);
        memcpy(&a1, a + i + 8, 32); memcpy(&b1, b + i + 8, 32);
        acc0 += a0 * b0;
        acc1 += a1 * b1;
    }
    for (; i + 8 <= n; i += 8) {
        fwd_v8 a0, b0;
        memcpy(&a0, a + i, 32); memcpy(&b0, b + i, 32);
        acc0 += a0 * b0;
    }
    acc0 += acc1;
    float s = 0;
    for (int j = 0; j < 8; j++) s += acc0[j];
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One attention row: out [HD] = softmax(q . K[0..n)^T / sqrt(HD)) V[0..n), K/V rows of stride ld.
 * sc is n floats of scratch. Softmax in fp32 after subtracting the row max. */
static void attn_row(float *out, const float *q, const float *K, const float *V, int ld, int n, int HD, float *sc) {
    float scale = 1.0f / sqrtf((float)HD), mx = -INFINITY;
    for (int s = 0; s < n; s++) {
        sc[s] = dot(q, K + (size_t)s * ld, HD) * scale;
        if (sc[s] > mx) mx = sc[s];
    }
    float sum = 0;
    for (int s = 0; s < n; s++) { sc[s] = expf(sc[s] - mx); sum += sc[s]; }
    float inv = 1.0f / sum;
    for (int d = 0; d < HD; d++) out[d] = 0;
    for (int s = 0; s < n; s++) {
        float p = sc[s] * inv;
        const float *vr = V + (size_t)s * ld;
        for (int d = 0; d < HD; d++) out[d] += p * vr[d];
    }
}

/* Causal GQA for T query rows at positions pos0..pos0+T-1 over keys 0..pos0+t (K/V hold rows from
 * position 0, stride kvdim). Query head h reads kv head h / (NH/NKV). */
typedef struct {
    const gq_fwd *f;
    const float *K, *V;
    int T, pos0, tid, nthr;
} fwd_attn_job;

static void *attn_worker(void *arg) {
    const fwd_attn_job *j = arg;
    const gq_config *c = &j->f->m->cfg;
    int NH = c->n_heads, HD = c->head_dim, grp = c->n_heads / c->n_kv_heads, qd = qdim(c), kd = kvdim(c);
    float *sc = j->f->scores + (size_t)j->tid * (size_t)j->f->max_T;
    long npairs = (long)j->T * NH;
    for (long p = j->tid; p < npairs; p += j->nthr) {
        int t = (int)(p / NH), h = (int)(p % NH), g = h / grp;
        attn_row(j->f->att + (size_t)t * qd + (size_t)h * HD, j->f->q + (size_t)t * qd + (size_t)h * HD,
                 j->K + (size_t)g * HD, j->V + (size_t)g * HD, kd, j->pos0 + t + 1, HD, sc);
    }
    return NULL;
}

/* Softmax of rows of the block scores S [NH, nb, kend] on pthreads: row i of a head sees keys
 * 0..pos0+r0+i; the rest of the row (the future) is zeroed so the P V product ignores it. */
typedef struct {
    float *S;
    int nrows, nb, kend, pos0, r0, tid, nthr;
} fwd_smax_job;

static void *smax_worker(void *arg) {
    const fwd_smax_job *j = arg;
    for (int row = j->tid; row < j->nrows; row += j->nthr) {
        float *r = j->S + (size_t)row * j->kend;
        int n = j->pos0 + j->r0 + row % j->nb + 1;
        float mx = -INFINITY, sum = 0;
        for (int s = 0; s < n; s++) if (r[s] > mx) mx = r[s];
        for (int s = 0; s < n; s++) { r[s] = expf(r[s] - mx); sum += r[s]; }
        float inv = 1.0f / sum;
        for (int s = 0; s < n; s++) r[s] *= inv;
        for (int s = n; s < j->kend; s++) r[s] = 0;
    }
    return NULL;
}

static void run_jobs(void *(*fn)(void *), void *jobs, size_t job_size, int nthr) {
    pthread_t th[FWD_MAX_THREADS];
    int started = 0;
    for (int i = 1; i < nthr; i++) {
        if (pthread_create(&th[i], NULL, fn, (char *)jobs + (size_t)i * job_size) != 0) break;
        started = i;
    }
    /* a thread that could not start has its share done here: the job set is fixed by (tid, nthr) */
    for (int i = started + 1; i < nthr; i++) fn((char *)jobs + (size_t)i * job_size);
    fn(jobs);
    for (int i = 1; i <= started; i++) pthread_join(th[i], NULL);
}

/* Whole-window attention in blocks of FWD_QBLK query rows: per head, S = Q K^T / sqrt(HD) and
 * out = P V are sgemms over the keys 0..end of the block (the causal waste is only the diagonal
 * block), the softmax in between runs on pthreads over (head, row). */
static void attention_blocked(const gq_fwd *f, const float *K, const float *V, int T, int pos0) {
    const gq_config *c = &f->m->cfg;
    int NH = c->n_heads, HD = c->head_dim, grp = NH / c->n_kv_heads, qd = qdim(c), kd = kvdim(c);
    float scale = 1.0f / sqrtf((float)HD);
    int nthr = fwd_threads();
    for (int r0 = 0; r0 < T; r0 += FWD_QBLK) {
        int nb = T - r0 < FWD_QBLK ? T - r0 : FWD_QBLK, kend = pos0 + r0 + nb;
        for (int h = 0; h < NH; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, kend, HD, scale,
                        f->q + (size_t)r0 * qd + (size_t)h * HD, qd, K + (size_t)(h / grp) * HD, kd, 0.0f,
                        f->scores + (size_t)h * nb * kend, kend);
        long work = (long)NH * nb * kend;
        int nt = work < FWD_PAR_MIN_WORK / 8 ? 1 : nthr;
        fwd_smax_job jobs[FWD_MAX_THREADS];
        for (int i = 0; i < nt; i++) jobs[i] = (fwd_smax_job){f->scores, NH * nb, nb, kend, pos0, r0, i, nt};
        run_jobs(smax_worker, jobs, sizeof jobs[0], nt);
        for (int h = 0; h < NH; h++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, HD, kend, 1.0f, f->scores + (size_t)h * nb * kend,
                        kend, V + (size_t)(h / grp) * HD, kd, 0.0f, f->att + (size_t)r0 * qd + (size_t)h * HD, qd);
    }
}

static void attention(const gq_fwd *f, const float *K, const float *V, int T, int pos0) {
    const gq_config *c = &f->m->cfg;
    if (T >= 8) { attention_blocked(f, K, V, T, pos0); return; }
    /* multiply-adds: each of T*NH rows reads ~(pos0 + T/2) keys of 2*HD */
    long work = (long)T * c->n_heads * ((long)pos0 + T / 2 + 1) * 2 * c->head_dim;
    int nthr = fwd_threads();
    if (work < FWD_PAR_MIN_WORK || nthr == 1) {
        fwd_attn_job j = {f, K, V, T, pos0, 0, 1};
        attn_worker(&j);
        return;
    }
    fwd_attn_job jobs[FWD_MAX_THREADS];
    for (int i = 0; i < nthr; i++) jobs[i] = (fwd_attn_job){f, K, V, T, pos0, i, nthr};
    run_jobs(attn_worker, jobs, sizeof jobs[0], nthr);
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* ------------------------------------------------------------------------------------------ */
/* Block, head, whole pass                                                                      */

/* One block in place on x [T, D] for positions pos0..pos0+T-1. With a cache (kc/vc: this layer's
 * [max_T, kvdim] slices) the new k/v rows are written at pos0.. and attention reads the cache;
 * without one (pos0 must be 0) k/v live in f->k / f->v. */
static void block_run(gq_fwd *f, int layer, float *x, int T, int pos0, float *kc, float *vc) {
    const gq_config *c = &f->m->cfg;
    const gq_block *b = &f->m->blocks[layer];
    int D = c->dim, H = c->hidden_dim, qd = qdim(c), kd = kvdim(c);
    size_t n = (size_t)T * D;

    rmsnorm(f->xb, x, b->attn_norm, T, D, c->norm_eps);
    if (f->hook) f->hook(f->hook_ctx, layer, GQ_LIN_Q, f->xb, T, D);
    float *K = kc ? kc + (size_t)pos0 * kd : f->k, *V = vc ? vc + (size_t)pos0 * kd : f->v;
    linear(f->q, qd, f->xb, &b->lin[GQ_LIN_Q], T);
    linear(K, kd, f->xb, &b->lin[GQ_LIN_K], T);
    linear(V, kd, f->xb, &b->lin[GQ_LIN_V], T);
    rope(f, f->q, qd, c->n_heads, T, pos0);
    rope(f, K, kd, c->n_kv_heads, T, pos0);
    attention(f, kc ? kc : f->k, vc ? vc : f->v, T, pos0);
    if (f->hook) f->hook(f->hook_ctx, layer, GQ_LIN_O, f->att, T, qd);
    linear(f->tmp, D, f->att, &b->lin[GQ_LIN_O], T);
    for (size_t i = 0; i < n; i++) x[i] += f->tmp[i];

    rmsnorm(f->xb, x, b->ffn_norm, T, D, c->norm_eps);
    if (f->hook) f->hook(f->hook_ctx, layer, GQ_LIN_GATE, f->xb, T, D);
    linear(f->hb, H, f->xb, &b->lin[GQ_LIN_GATE], T);
    linear(f->hb2, H, f->xb, &b->lin[GQ_LIN_UP], T);
    size_t nh = (size_t)T * H;
    for (size_t i = 0; i < nh; i++) f->hb[i] = silu(f->hb[i]) * f->hb2[i];
    if (f->hook) f->hook(f->hook_ctx, layer, GQ_LIN_DOWN, f->hb, T, H);
    linear(f->tmp, D, f->hb, &b->lin[GQ_LIN_DOWN], T);
    for (size_t i = 0; i < n; i++) x[i] += f->tmp[i];
}

gq_status gq_fwd_embed(gq_fwd *f, const int32_t *tokens, int T, float *x) {
    const gq_config *c = &f->m->cfg;
    GQ_ASSERT(T >= 1 && T <= f->max_T);
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return gq_errf(GQ_ERR_ARG, "token id %d at position %d is outside the vocabulary (0..%d)", tokens[t], t,
                           c->vocab_size - 1);
        memcpy(x + (size_t)t * c->dim, f->m->tok_emb + (size_t)tokens[t] * c->dim, sizeof(float) * c->dim);
    }
    return GQ_OK;
}

void gq_fwd_block(gq_fwd *f, int layer, float *x, int T) {
    GQ_ASSERT(layer >= 0 && layer < f->m->cfg.n_layers && T >= 1 && T <= f->max_T);
    block_run(f, layer, x, T, 0, NULL, NULL);
}

void gq_fwd_head(gq_fwd *f, const float *x, int T, float *logits) {
    const gq_config *c = &f->m->cfg;
    GQ_ASSERT(T >= 1 && T <= f->max_T);
    rmsnorm(f->xb, x, f->m->final_norm, T, c->dim, c->norm_eps);
    if (T == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, c->vocab_size, c->dim, 1.0f, f->m->lm_head, c->dim, f->xb, 1, 0.0f,
                    logits, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, c->vocab_size, c->dim, 1.0f, f->xb, c->dim,
                    f->m->lm_head, c->dim, 0.0f, logits, c->vocab_size);
}

gq_status gq_forward(gq_fwd *f, const int32_t *tokens, int T, float *logits) {
    const gq_config *c = &f->m->cfg;
    if (T > c->max_seq_len)
        return gq_errf(GQ_ERR_ARG, "seqlen %d is longer than the model allows (%d)", T, c->max_seq_len);
    if (T < 1 || T > f->max_T)
        return gq_errf(GQ_ERR_ARG, "forward: window of %d tokens but buffers were sized for 1..%d", T, f->max_T);
    float *x = fwd_resid(f);
    GQ_TRY(gq_fwd_embed(f, tokens, T, x));
    for (int l = 0; l < c->n_layers; l++) block_run(f, l, x, T, 0, NULL, NULL);
    gq_fwd_head(f, x, T, logits);
    return GQ_OK;
}

gq_status gq_fwd_decode(gq_fwd *f, int32_t token, int pos, float *logits) {
    const gq_config *c = &f->m->cfg;
    if (pos < 0 || pos >= f->max_T)
        return gq_errf(GQ_ERR_ARG, "decode: position %d is outside the context of %d tokens", pos, f->max_T);
    size_t per_layer = (size_t)f->max_T * (size_t)kvdim(c);
    if (!f->kcache) {
        size_t n, bytes;
        if (gq_mul_overflow(per_layer, (size_t)c->n_layers * 2, &n) || gq_mul_overflow(n, sizeof(float), &bytes))
            return gq_errf(GQ_ERR_ARG, "decode: KV cache size overflows");
        f->kcache = gq_try_malloc(bytes);
        if (!f->kcache) return gq_errf(GQ_ERR_NOMEM, "decode: cannot allocate a %zu MB KV cache", bytes >> 20);
        f->vcache = f->kcache + per_layer * (size_t)c->n_layers;
    }
    float *x = fwd_resid(f);
    GQ_TRY(gq_fwd_embed(f, &token, 1, x));
    for (int l = 0; l < c->n_layers; l++)
        block_run(f, l, x, 1, pos, f->kcache + per_layer * (size_t)l, f->vcache + per_layer * (size_t)l);
    gq_fwd_head(f, x, 1, logits);
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Loss                                                                                         */

double gq_nll_from_logits(const float *logits, const int32_t *tokens, int T, int V, int *n_pred) {
    double total = 0;
    for (int t = 0; t + 1 < T; t++) {
        const float *r = logits + (size_t)t * V;
        double mx = r[0];
        for (int i = 1; i < V; i++) if (r[i] > mx) mx = r[i];
        double s = 0;
        for (int i = 0; i < V; i++) s += exp((double)r[i] - mx);
        int y = tokens[t + 1];
        GQ_ASSERT(y >= 0 && y < V);
        total += mx + log(s) - (double)r[y];
    }
    if (n_pred) *n_pred = T > 0 ? T - 1 : 0;
    return total;
}
