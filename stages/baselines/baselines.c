/* baselines.c — RTN, GPTQ, SparseGPT, Wanda, magnitude and the GQSA-structured group controls, each a
 * gq_compress_fn over one linear (see baselines.h for what every option means per method).
 * The OBS loop shared by GPTQ and SparseGPT (obs_run) follows the reference implementations
 * (IST-DASLab gptq/sparsegpt): W processed column by column in lazy blocks of `blocksize`, error of
 * column i propagated with row i of U, the upper Cholesky factor of the damped H^-1 (H^-1 = U^T U),
 * inside the block at once and to the columns after the block with one GEMM. Arithmetic is float64
 * (the reference runs fp32); quantizer parameters and codes are float32 exactly as core/quant.h makes
 * them, so the dense result is what a kernel with those scales/zeros computes.
 * Must not: read or write files, evaluate, accumulate statistics (calib.c does).
 */
#include "baselines.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/lapack.h"
#include "../../core/saliency.h"

/* ------------------------------------------------------------------------------------------ */
/* selection helpers */

typedef struct { double v; size_t i; } bl_scored;

static int bl_cmp(const void *pa, const void *pb) {
    const bl_scored *a = pa, *b = pb;
    if (a->v != b->v) return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

void gq_bl_select_lowest(const double *score, size_t n, size_t n_remove, uint8_t *pruned) {
    GQ_ASSERT(n_remove <= n);
    memset(pruned, 0, n);
    if (n_remove == 0) return;
    bl_scored *t = gq_malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = (bl_scored){score[i], i};
    qsort(t, n, sizeof *t, bl_cmp);
    for (size_t i = 0; i < n_remove; i++) pruned[t[i].i] = 1;
    free(t);
}

void gq_bl_select_nm(const double *score, int rows, int cols, int n, int m, uint8_t *pruned) {
    GQ_ASSERT(m > 0 && n >= 0 && n <= m && cols % m == 0 && m <= 64);
    bl_scored t[64];
    for (int r = 0; r < rows; r++)
        for (int c0 = 0; c0 < cols; c0 += m) {
            size_t base = (size_t)r * cols + c0;
            for (int j = 0; j < m; j++) t[j] = (bl_scored){score[base + j], (size_t)j}, pruned[base + j] = 0;
            qsort(t, (size_t)m, sizeof t[0], bl_cmp);
            for (int j = 0; j < n; j++) pruned[base + t[j].i] = 1;
        }
}

/* ------------------------------------------------------------------------------------------ */
/* shared checks */

static gq_status need_bits(const gq_compress_job *job, const gq_compress_opts *o, const char *meth) {
    if (!gq_quant_bits_supported(o->bits))
        return gq_errf(GQ_ERR_ARG, "%s: %s quantizes: bits must be 2, 3, 4 or 8, got %d", job->name, meth, o->bits);
    return GQ_OK;
}

static gq_status need_h(const gq_compress_job *job, const char *meth, int need_sumsq) {
    const gq_hessian *h = job->h;
    if (!h || !h->H || (need_sumsq && !h->sumsq))
        return gq_errf(GQ_ERR_ARG, "%s: %s needs calibration statistics (none given)", job->name, meth);
    if (h->K != job->lin->in)
        return gq_errf(GQ_ERR_ARG, "%s: statistics are for K=%d inputs but the layer has K=%d", job->name, h->K,
                       job->lin->in);
    return GQ_OK;
}

static gq_status check_nm(const gq_compress_job *job, const gq_compress_opts *o) {
    if (o->nm_m <= 0) return GQ_OK;
    if (o->nm_n <= 0 || o->nm_n >= o->nm_m || o->nm_m > 64)
        return gq_errf(GQ_ERR_ARG, "%s: N:M pattern %d:%d must satisfy 0 < N < M <= 64", job->name, o->nm_n, o->nm_m);
    if (job->lin->in % o->nm_m)
        return gq_errf(GQ_ERR_ARG, "%s: N:M block %d does not divide the input dimension K=%d", job->name, o->nm_m,
                       job->lin->in);
    return GQ_OK;
}

static gq_qspec qspec_of(const gq_compress_opts *o) {
    return (gq_qspec){.bits = o->bits, .mode = o->qmode, .fp16_scale = o->fp16_scales};
}

static double frac_pruned(const uint8_t *pruned, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += pruned[i] != 0;
    return n ? (double)c / (double)n : 0;
}

/* Build res->gqs from codes when the format can hold the result (G | K, supported bits); silently
 * leaves it empty otherwise (the dense weights are the result either way). */
static gq_status maybe_gqs(const gq_compress_job *job, gq_compress_result *res, const uint8_t *q, const float *scales,
                           const float *zeros, const uint8_t *keep, int G, int bits) {
    const int N = job->lin->out, K = job->lin->in;
    if (G < 1 || G > 128 || K % G || !gq_quant_bits_supported(bits)) return GQ_OK;
    uint8_t *all = NULL;
    if (!keep) {
        all = gq_malloc((size_t)N * (K / G));
        memset(all, 1, (size_t)N * (K / G));
        keep = all;
    }
    gq_status st = gq_gqs_build_from_codes(&res->gqs, q, scales, zeros, keep, N, K, G, bits);
    free(all);
    if (st != GQ_OK) return gq_err_prefix(st, "%s: ", job->name);
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* RTN */

gq_status gq_bl_rtn(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res) {
    GQ_TRY(need_bits(job, o, "rtn"));
    gq_linear *lin = job->lin;
    const int N = lin->out, K = lin->in;
    const int G = o->group > 0 && o->group < K ? o->group : K;
    const int C = (K + G - 1) / G;
    const gq_qspec spec = qspec_of(o);
    uint8_t *q = gq_malloc((size_t)N * K);
    float *sc = gq_malloc((size_t)N * C * sizeof(float)), *ze = gq_malloc((size_t)N * C * sizeof(float));
    gq_status st = gq_quant_rtn(lin->w, N, K, G, &spec, q, sc, ze);
    if (st != GQ_OK) gq_err_prefix(st, "%s: ", job->name);
    else st = maybe_gqs(job, res, q, sc, ze, NULL, G, o->bits);
    res->sparsity = 0;
    free(q);
    free(sc);
    free(ze);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* the OBS loop (GPTQ, SparseGPT) */

typedef struct {
    int N, K;
    double *W;            /* [N, K] in/out, columns in processing order (permuted when perm) */
    const double *U;      /* [K, K] upper Cholesky factor of the damped H^-1, same order */
    int blocksize;
    double sparsity;      /* unstructured: fraction removed in every column block (nm_m == 0) */
    int nm_n, nm_m;       /* N:M = keep N of every M (2:4); 0 = unstructured (or no pruning when sparsity == 0) */
    uint8_t *pruned;      /* [N, K] out, processing order; required when pruning */
    int fixed;            /* 1: pruned is an input (mask chosen beforehand), no selection here */
    int bits;             /* 0 = no quantization */
    gq_qspec spec;
    int group;            /* quantization group along K (K = one per row) */
    const float *st_scales, *st_zeros; /* static groups [N, C] over ORIGINAL columns, or NULL */
    const int *perm;      /* [K] processing column i is original column perm[i]; NULL = identity */
    uint8_t *codes;       /* [N, K] out, ORIGINAL order (may be NULL) */
    float *scales, *zeros;/* [N, C] out, non-static groups only (may be NULL) */
    double loss;          /* sum of (w - q)^2 / U_ii^2 / 2: the reference's reported error */
} obs_job;

static void obs_run(obs_job *j) {
    const int N = j->N, K = j->K, G = j->group > 0 ? j->group : K, C = (K + G - 1) / G;
    const int B = j->blocksize;
    double *W = j->W;
    const double *U = j->U;
    double *Err = gq_malloc((size_t)N * B * sizeof(double));
    float *cur_s = gq_calloc((size_t)N, sizeof(float)), *cur_z = gq_calloc((size_t)N, sizeof(float));
    float *gv = gq_malloc((size_t)G * sizeof(float));
    const int prune = j->fixed || j->nm_m > 0 || j->sparsity > 0;
    if (prune && !j->fixed) memset(j->pruned, 0, (size_t)N * K);
    double *tmp = prune ? gq_malloc((size_t)N * B * sizeof(double)) : NULL;
    uint8_t *sel = prune ? gq_malloc((size_t)N * B) : NULL;
    j->loss = 0;
    for (int i1 = 0; i1 < K; i1 += B) {
        const int i2 = i1 + B < K ? i1 + B : K, cnt = i2 - i1;
        if (prune && !j->fixed && j->nm_m == 0) {
            /* SparseGPT: the mask of a whole column block is chosen at once, from the weights as the
             * previous blocks' updates left them, by w^2 / U_jj^2 */
            for (int r = 0; r < N; r++)
                for (int c = 0; c < cnt; c++) {
                    double w = W[(size_t)r * K + i1 + c], d = U[(size_t)(i1 + c) * K + i1 + c];
                    tmp[(size_t)r * cnt + c] = w * w / (d * d);
                }
            size_t n = (size_t)N * cnt;
            gq_bl_select_lowest(tmp, n, (size_t)llround(j->sparsity * (double)n), sel);
            for (int r = 0; r < N; r++)
                for (int c = 0; c < cnt; c++) j->pruned[(size_t)r * K + i1 + c] = sel[(size_t)r * cnt + c];
        }
        for (int i = i1; i < i2; i++) {
            const double d = U[(size_t)i * K + i];
            if (prune && !j->fixed && j->nm_m > 0 && i % j->nm_m == 0) {
                const int m = j->nm_m;
                for (int r = 0; r < N; r++)
                    for (int c = 0; c < m; c++) {
                        double w = W[(size_t)r * K + i + c], dd = U[(size_t)(i + c) * K + i + c];
                        tmp[(size_t)r * m + c] = w * w / (dd * dd);
                    }
                gq_bl_select_nm(tmp, N, m, m - j->nm_n, m, sel);
                for (int r = 0; r < N; r++)
                    for (int c = 0; c < m; c++) j->pruned[(size_t)r * K + i + c] = sel[(size_t)r * m + c];
            }
            if (j->bits && !j->st_scales && i % G == 0) {
                /* a new group: its quantizer is fitted on the group's CURRENT weights. Columns past the
                 * block have not yet received this block's updates (lazy batching); add them here so
                 * the result equals the unbatched algorithm. (The reference reads W[:, i:i+G] from the
                 * un-updated full matrix here, which differs from this only when the group starts after
                 * the block's first column: G < blocksize.) */
                const int e = i + G < K ? i + G : K;
                for (int r = 0; r < N; r++) {
                    for (int c = i; c < e; c++) {
                        double v = W[(size_t)r * K + c];
                        if (c >= i2)
                            for (int b = i1; b < i; b++) v -= Err[(size_t)r * B + (b - i1)] * U[(size_t)b * K + c];
                        gv[c - i] = (float)v;
                    }
                    gq_quant_params(gv, e - i, &j->spec, &cur_s[r], &cur_z[r]);
                    if (j->scales) j->scales[(size_t)r * C + i / G] = cur_s[r];
                    if (j->zeros) j->zeros[(size_t)r * C + i / G] = cur_z[r];
                }
            }
            const int oc = j->perm ? j->perm[i] : i;
            for (int r = 0; r < N; r++) {
                double *wr = W + (size_t)r * K;
                const double w = wr[i];
                double q = w;
                if (prune && j->pruned[(size_t)r * K + i]) {
                    q = 0;
                } else if (j->bits) {
                    float s = cur_s[r], z = cur_z[r];
                    if (j->st_scales) s = j->st_scales[(size_t)r * C + oc / G], z = j->st_zeros[(size_t)r * C + oc / G];
                    int code = gq_quant_code((float)w, s, z, j->bits);
                    q = gq_quant_dequant(code, s, z);
                    if (j->codes) j->codes[(size_t)r * K + oc] = (uint8_t)code;
                }
                const double err = (w - q) / d;
                j->loss += err * err / 2;
                wr[i] = q;
                Err[(size_t)r * B + (i - i1)] = err;
                const double *ui = U + (size_t)i * K;
                for (int c = i + 1; c < i2; c++) wr[c] -= err * ui[c];
            }
        }
        if (i2 < K)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, K - i2, cnt, -1.0, Err, B, U + (size_t)i1 * K + i2,
                        K, 1.0, W + i2, K);
    }
    free(Err);
    free(cur_s);
    free(cur_z);
    free(gv);
    free(tmp);
    free(sel);
}

/* U [K, K] = upper Cholesky factor of the damped inverse of H (permuted by perm when given), as the
 * reference's torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True).
 * dead [K] gets the inputs that never fire (their weights must be zeroed by the caller). */
static gq_status obs_prepare(const gq_compress_job *job, const gq_compress_opts *o, const int *perm, double *U,
                             uint8_t *dead, gq_compress_result *res) {
    const int K = job->lin->in;
    const double *H = job->h->H;
    double *Hp = NULL;
    if (perm) {
        Hp = gq_malloc((size_t)K * K * sizeof(double));
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++) Hp[(size_t)a * K + b] = H[(size_t)perm[a] * K + perm[b]];
        H = Hp;
    }
    gq_status st = gq_saliency_hinv(H, K, o->damp, job->name, U, dead, &res->damp_retries);
    free(Hp);
    if (st != GQ_OK) return st;
    /* row-major symmetric == column-major; LAPACK's column-major lower L (A = L L^T) is, read
     * row-major, the upper factor U = L^T with A = U^T U */
    int info = 0, n = K;
    dpotrf_("L", &n, U, &n, &info);
    if (info != 0)
        return gq_errf(GQ_ERR_NUMERIC, "%s: Cholesky factor of the inverse Hessian failed (LAPACK info %d)", job->name,
                       info);
    for (int a = 1; a < K; a++)
        for (int b = 0; b < a; b++) U[(size_t)a * K + b] = 0;
    return GQ_OK;
}

/* shared driver of GPTQ (prune = 0) and SparseGPT */
static gq_status obs_method(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res,
                            const char *meth, int prune, const uint8_t *fixed) {
    GQ_TRY(need_h(job, meth, 0));
    if (!prune) GQ_TRY(need_bits(job, o, meth));
    else if (o->bits) GQ_TRY(need_bits(job, o, meth));
    if (prune) GQ_TRY(check_nm(job, o));
    gq_linear *lin = job->lin;
    const int N = lin->out, K = lin->in;
    const int G = o->group > 0 && o->group < K ? o->group : K, C = (K + G - 1) / G;
    int B = o->blocksize > 0 ? o->blocksize : 128;
    /* an N:M block must not straddle a column block (its scores are read from the in-block weights);
     * in N:M mode the blocksize changes nothing else, so round it up */
    if (prune && o->nm_m > 0 && B % o->nm_m) B = (B / o->nm_m + 1) * o->nm_m;
    const int act_order = !prune && o->act_order;

    int *perm = NULL;
    if (act_order) {
        /* descending diag(H), ties by index: the reference's torch.argsort(torch.diag(H), descending=True)
         * (the tie order is our choice; torch's is unspecified) */
        perm = gq_malloc((size_t)K * sizeof(int));
        bl_scored *t = gq_malloc((size_t)K * sizeof *t);
        for (int a = 0; a < K; a++) t[a] = (bl_scored){-job->h->H[(size_t)a * K + a], (size_t)a};
        qsort(t, (size_t)K, sizeof *t, bl_cmp);
        for (int a = 0; a < K; a++) perm[a] = (int)t[a].i;
        free(t);
    }
    double *U = gq_try_malloc((size_t)K * K * sizeof(double));
    double *W = gq_try_malloc((size_t)N * K * sizeof(double));
    if (!U || !W) {
        free(U);
        free(W);
        free(perm);
        return gq_errf(GQ_ERR_NOMEM, "%s: no memory for %s's float64 work arrays", job->name, meth);
    }
    uint8_t *dead = gq_malloc((size_t)K);
    gq_status st = obs_prepare(job, o, perm, U, dead, res);
    float *st_s = NULL, *st_z = NULL;
    uint8_t *codes = NULL, *pruned = NULL;
    float *sc = NULL, *ze = NULL;
    if (st == GQ_OK) {
        /* dead inputs (processing order): the reference zeroes their weights */
        for (int r = 0; r < N; r++)
            for (int c = 0; c < K; c++) {
                int oc = perm ? perm[c] : c;
                W[(size_t)r * K + c] = dead[c] ? 0.0 : (double)lin->w[(size_t)r * K + oc];
            }
        const gq_qspec spec = qspec_of(o);
        if (act_order && o->bits) {
            /* static groups: each original group's quantizer is fitted before any update, on the
             * original columns (dead ones zeroed), and used wherever act-order puts its columns */
            st_s = gq_malloc((size_t)N * C * sizeof(float));
            st_z = gq_malloc((size_t)N * C * sizeof(float));
            float *gvals = gq_malloc((size_t)G * sizeof(float));
            int *inv = gq_malloc((size_t)K * sizeof(int));
            for (int c = 0; c < K; c++) inv[perm[c]] = c;
            for (int r = 0; r < N; r++)
                for (int g = 0; g < C; g++) {
                    int e = (g + 1) * G < K ? (g + 1) * G : K;
                    for (int c = g * G; c < e; c++) gvals[c - g * G] = (float)W[(size_t)r * K + inv[c]];
                    gq_quant_params(gvals, e - g * G, &spec, &st_s[(size_t)r * C + g], &st_z[(size_t)r * C + g]);
                }
            free(gvals);
            free(inv);
        }
        if (o->bits) {
            codes = gq_calloc((size_t)N * K, 1);
            sc = st_s ? st_s : gq_calloc((size_t)N * C, sizeof(float));
            ze = st_z ? st_z : gq_calloc((size_t)N * C, sizeof(float));
        }
        if (prune) pruned = gq_malloc((size_t)N * K);
        if (fixed) memcpy(pruned, fixed, (size_t)N * K);
        obs_job j = {.N = N, .K = K, .W = W, .U = U, .blocksize = B, .sparsity = prune ? o->sparsity : 0,
                     .nm_n = prune ? o->nm_n : 0, .nm_m = prune ? o->nm_m : 0, .pruned = pruned, .fixed = fixed != NULL, .bits = o->bits,
                     .spec = spec, .group = G, .st_scales = st_s, .st_zeros = st_z, .perm = perm, .codes = codes,
                     .scales = st_s ? NULL : sc, .zeros = st_z ? NULL : ze};
        if (prune && !fixed && o->nm_m == 0 && !(o->sparsity > 0))
            st = gq_errf(GQ_ERR_ARG, "%s: %s prunes: give a sparsity > 0 or an N:M pattern", job->name, meth);
        if (st == GQ_OK) {
            obs_run(&j);
            res->err = j.loss;
            for (int r = 0; r < N; r++)
                for (int c = 0; c < K; c++) {
                    int oc = perm ? perm[c] : c;
                    lin->w[(size_t)r * K + oc] = (float)W[(size_t)r * K + c];
                }
            res->sparsity = prune ? frac_pruned(pruned, (size_t)N * K) : 0;
            if (!prune) st = maybe_gqs(job, res, codes, sc, ze, NULL, G, o->bits);
        }
    }
    free(perm);
    free(U);
    free(W);
    free(dead);
    free(codes);
    free(pruned);
    free(sc);
    free(ze);
    return st;
}

gq_status gq_bl_gptq(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res) {
    return obs_method(job, o, res, "gptq", 0, NULL);
}

gq_status gq_bl_sparsegpt(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res) {
    return obs_method(job, o, res, "sparsegpt", 1, NULL);
}

gq_status gq_bl_gqsa_obs(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res) {
    GQ_TRY(need_h(job, "gqsa-obs", 0));
    const int N = job->lin->out, K = job->lin->in, G = o->group;
    if (G <= 0 || K % G)
        return gq_errf(GQ_ERR_ARG, "%s: group size %d does not divide its input dimension K=%d (choose a G that divides %d)",
                       job->name, G, K, K);
    const int C = K / G;
    /* GQSA's own mask (saliency.h + prune.h, exactly as gq_compress_gqsa chooses it) ... */
    double *diag = gq_malloc((size_t)K * sizeof(double));
    gq_status st = gq_saliency_hinv_diag(job->h->H, K, o->damp, job->name, diag, NULL);
    if (st != GQ_OK) {
        free(diag);
        return st;
    }
    double *sal = gq_malloc((size_t)N * K * sizeof(double)), *score = gq_malloc((size_t)N * C * sizeof(double));
    uint8_t *keep = gq_malloc((size_t)N * C), *pruned = gq_malloc((size_t)N * K);
    gq_saliency_weights(job->lin->w, N, K, diag, sal);
    gq_saliency_groups(sal, N, K, G, score);
    gq_prune_groups(score, N, C, o->sparsity, o->scope, keep);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < K; c++) pruned[(size_t)r * K + c] = !keep[(size_t)r * C + c / G];
    /* ... then the OBS update that the saliency w^2/[H^-1]_jj presumes (the remaining weights of
     * the row compensate), column by column as SparseGPT does; bits > 0 quantizes jointly */
    gq_compress_opts p = *o;
    p.nm_n = p.nm_m = 0;
    st = obs_method(job, &p, res, "gqsa-obs", 1, pruned);
    free(diag);
    free(sal);
    free(score);
    free(keep);
    free(pruned);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* element-wise pruning: wanda, magnitude */

/* After pruning, bits > 0 quantizes the surviving weights by per-group RTN (the pruned zeros stay
 * exactly zero: they are re-zeroed in case a MINMAX grid does not contain 0). */
static gq_status prune_then_rtn(const gq_compress_job *job, const gq_compress_opts *o, const uint8_t *pruned) {
    gq_linear *lin = job->lin;
    const size_t n = (size_t)lin->out * lin->in;
    for (size_t i = 0; i < n; i++)
        if (pruned[i]) lin->w[i] = 0;
    if (!o->bits) return GQ_OK;
    const int G = o->group > 0 && o->group < lin->in ? o->group : lin->in;
    const gq_qspec spec = qspec_of(o);
    gq_status st = gq_quant_rtn(lin->w, lin->out, lin->in, G, &spec, NULL, NULL, NULL);
    if (st != GQ_OK) return gq_err_prefix(st, "%s: ", job->name);
    for (size_t i = 0; i < n; i++)
        if (pruned[i]) lin->w[i] = 0;
    return GQ_OK;
}

/* score [N, K] -> pruned: N:M per row, else per row (row_scope) or over the whole layer */
static gq_status elementwise(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res,
                             const double *score, int row_scope, const char *meth) {
    GQ_TRY(check_nm(job, o));
    if (o->bits) GQ_TRY(need_bits(job, o, meth));
    const int N = job->lin->out, K = job->lin->in;
    if (o->nm_m == 0 && !(o->sparsity > 0))
        return gq_errf(GQ_ERR_ARG, "%s: %s prunes: give a sparsity > 0 or an N:M pattern", job->name, meth);
    uint8_t *pruned = gq_malloc((size_t)N * K);
    if (o->nm_m > 0) {
        gq_bl_select_nm(score, N, K, o->nm_m - o->nm_n, o->nm_m, pruned);
    } else if (row_scope) {
        size_t per_row = (size_t)llround(o->sparsity * K);
        for (int r = 0; r < N; r++) gq_bl_select_lowest(score + (size_t)r * K, (size_t)K, per_row, pruned + (size_t)r * K);
    } else {
        gq_bl_select_lowest(score, (size_t)N * K, (size_t)llround(o->sparsity * (double)N * K), pruned);
    }
    res->sparsity = frac_pruned(pruned, (size_t)N * K);
    gq_status st = prune_then_rtn(job, o, pruned);
    free(pruned);
    return st;
}

gq_status gq_bl_wanda(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res) {
    GQ_TRY(need_h(job, "wanda", 1));
    const int N = job->lin->out, K = job->lin->in;
    double *score = gq_try_malloc((size_t)N * K * sizeof(double));
    if (!score) return gq_errf(GQ_ERR_NOMEM, "%s: no memory for wanda scores", job->name);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < K; c++)
            score[(size_t)r * K + c] = fabs((double)job->lin->w[(size_t)r * K + c]) * sqrt(job->h->sumsq[c]);
    /* Wanda's comparison group is the output row */
    gq_status st = elementwise(job, o, res, score, 1, "wanda");
    free(score);
    return st;
}

gq_status gq_bl_magnitude(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res) {
    const int N = job->lin->out, K = job->lin->in;
    double *score = gq_try_malloc((size_t)N * K * sizeof(double));
    if (!score) return gq_errf(GQ_ERR_NOMEM, "%s: no memory for magnitude scores", job->name);
    for (size_t i = 0; i < (size_t)N * K; i++) score[i] = fabs((double)job->lin->w[i]);
    gq_status st = elementwise(job, o, res, score, 0, "magnitude");
    free(score);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* GQSA-structured controls: same groups, same prune.h ranking and scope, same quantize step as
 * gq_compress_gqsa; only the group score differs. */

static gq_status group_method(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res,
                              const double *colw, const char *meth) {
    gq_linear *lin = job->lin;
    const int N = lin->out, K = lin->in, G = o->group;
    if (G <= 0 || K % G)
        return gq_errf(GQ_ERR_ARG, "%s: group size %d does not divide its input dimension K=%d (choose a G that divides %d)",
                       job->name, G, K, K);
    if (o->bits) GQ_TRY(need_bits(job, o, meth));
    const int C = K / G;
    double *score = gq_malloc((size_t)N * C * sizeof(double));
    uint8_t *keep = gq_malloc((size_t)N * C);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int g = 0; g < G; g++) {
                int col = c * G + g;
                double v = (double)lin->w[(size_t)r * K + col];
                if (colw) v *= colw[col];
                acc += v * v;
            }
            score[(size_t)r * C + c] = acc / G;
        }
    res->sparsity = gq_prune_groups(score, N, C, o->sparsity, o->scope, keep);
    free(score);
    gq_status st = gq_compress_apply_groups(job, o, keep, res);
    free(keep);
    return st;
}

gq_status gq_bl_group_magnitude(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res) {
    return group_method(job, o, res, NULL, "group-magnitude");
}

gq_status gq_bl_group_wanda(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res) {
    GQ_TRY(need_h(job, "group-wanda", 1));
    const int K = job->lin->in;
    double *xn = gq_malloc((size_t)K * sizeof(double));
    for (int c = 0; c < K; c++) xn[c] = sqrt(job->h->sumsq[c]);
    gq_status st = group_method(job, o, res, xn, "group-wanda");
    free(xn);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* fixed-pattern variants (reachable by name from the CLI, which has no N:M flag) */

static gq_status with_24(gq_compress_fn fn, const gq_compress_job *job, const gq_compress_opts *o,
                         gq_compress_result *res, int bits) {
    gq_compress_opts p = *o;
    p.nm_n = 2;
    p.nm_m = 4;
    if (bits >= 0) p.bits = bits;
    return fn(job, &p, res);
}
static gq_status bl_sparsegpt24(const gq_compress_job *j, const gq_compress_opts *o, gq_compress_result *r) {
    return with_24(gq_bl_sparsegpt, j, o, r, -1);
}
static gq_status bl_wanda24(const gq_compress_job *j, const gq_compress_opts *o, gq_compress_result *r) {
    return with_24(gq_bl_wanda, j, o, r, -1);
}
static gq_status bl_magnitude24(const gq_compress_job *j, const gq_compress_opts *o, gq_compress_result *r) {
    return with_24(gq_bl_magnitude, j, o, r, -1);
}
static gq_status bl_joint_w4_24(const gq_compress_job *j, const gq_compress_opts *o, gq_compress_result *r) {
    gq_compress_opts p = *o;
    if (p.group <= 0) p.group = 128;
    return with_24(gq_bl_sparsegpt, j, &p, r, 4);
}

/* ------------------------------------------------------------------------------------------ */

void gq_baselines_register(void) {
    static const gq_compress_method ms[] = {
        {"rtn", gq_bl_rtn, 0, "per-group round-to-nearest (--bits, --group; no calibration)"},
        {"gptq", gq_bl_gptq, 1, "GPTQ: OBS column-wise quantization, lazy blocks, per-group quantizers"},
        {"sparsegpt", gq_bl_sparsegpt, 1, "SparseGPT: unstructured OBS pruning (--sparsity); --bits > 0 joint quant"},
        {"wanda", gq_bl_wanda, 1, "Wanda: |W| * ||X||_2 per output row (--sparsity); --bits > 0 then RTN"},
        {"magnitude", gq_bl_magnitude, 0, "magnitude: |W| over the whole layer (--sparsity); --bits > 0 then RTN"},
        {"group-magnitude", gq_bl_group_magnitude, 0, "GQSA groups scored by mean |w|^2 (control; --group, --scope)"},
        {"group-wanda", gq_bl_group_wanda, 1, "GQSA groups scored by mean (|w| ||x||)^2 (control; --group, --scope)"},
        {"gqsa-obs", gq_bl_gqsa_obs, 1, "diagnostic: GQSA's group mask + SparseGPT's OBS update of the kept weights"},
        {"sparsegpt24", bl_sparsegpt24, 1, "SparseGPT 2:4 (--bits > 0: joint 2:4 + quantization)"},
        {"wanda24", bl_wanda24, 1, "Wanda 2:4"},
        {"magnitude24", bl_magnitude24, 0, "magnitude 2:4"},
        {"joint-w4-24", bl_joint_w4_24, 1, "SparseGPT 2:4 + 4-bit per-group (--group, 128 if 0)"},
    };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        gq_status st = gq_compress_register(&ms[i]);
        GQ_ASSERT(st == GQ_OK);
    }
}
