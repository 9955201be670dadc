/* compress.c — the one-shot compression driver: method registry, the built-in GQSA method, and the
 * block-by-block loop over a model (with streaming calibration in gq_compress_run).
 * Must not: read or write files, evaluate, print to stdout.
 */
#include "compress.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "saliency.h"

/* ------------------------------------------------------------------------------------------ */
/* options */

void gq_compress_opts_default(gq_compress_opts *o) {
    memset(o, 0, sizeof *o);
    o->method = "gqsa";
    o->sparsity = 0.5;
    o->bits = 4;
    o->group = 16;
    o->scope = GQ_SCOPE_LAYER;
    o->damp = 0.01;
    o->qmode = GQ_QMODE_ASYM;
    o->blocksize = 128;
}

gq_status gq_compress_opts_validate(const gq_compress_opts *o) {
    if (!o->method || !*o->method) return gq_errf(GQ_ERR_ARG, "compress: method is empty");
    if (!(o->sparsity >= 0 && o->sparsity < 1))
        return gq_errf(GQ_ERR_ARG, "compress: sparsity must be in [0, 1), got %g", o->sparsity);
    if (o->bits != 0 && !gq_quant_bits_supported(o->bits))
        return gq_errf(GQ_ERR_ARG, "compress: bits must be 0 (none), 2, 3, 4 or 8, got %d", o->bits);
    if (!strcmp(o->method, "gqsa") && (o->group < 4 || o->group > 128))
        return gq_errf(GQ_ERR_ARG, "compress: group must be in [4, 128], got %d", o->group);
    if (!(o->damp > 0) || !isfinite(o->damp)) return gq_errf(GQ_ERR_ARG, "compress: damp must be > 0, got %g", o->damp);
    if (o->nm_n < 0 || o->nm_m < 0 || (o->nm_m && (o->nm_n <= 0 || o->nm_n >= o->nm_m)))
        return gq_errf(GQ_ERR_ARG, "compress: N:M must satisfy 0 < N < M, got %d:%d", o->nm_n, o->nm_m);
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* registry */

#define GQ_MAX_METHODS 32
static gq_compress_method g_methods[GQ_MAX_METHODS] = {
    {"gqsa", gq_compress_gqsa, 1, "GQSA: saliency-ranked group pruning + per-group asymmetric quantization"},
};
static int g_n_methods = 1;

gq_status gq_compress_register(const gq_compress_method *m) {
    GQ_ASSERT(m && m->name && m->fn);
    for (int i = 0; i < g_n_methods; i++)
        if (!strcmp(g_methods[i].name, m->name)) {
            if (g_methods[i].fn == m->fn) return GQ_OK;
            return gq_errf(GQ_ERR_ARG, "compress: method '%s' registered twice", m->name);
        }
    if (g_n_methods == GQ_MAX_METHODS) return gq_errf(GQ_ERR_ARG, "compress: method table full (%d)", GQ_MAX_METHODS);
    g_methods[g_n_methods++] = *m;
    return GQ_OK;
}

const gq_compress_method *gq_compress_find(const char *name) {
    for (int i = 0; i < g_n_methods; i++)
        if (!strcmp(g_methods[i].name, name)) return &g_methods[i];
    char list[512] = "";
    for (int i = 0; i < g_n_methods; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", g_methods[i].name);
    }
    gq_errf(GQ_ERR_ARG, "unknown compression method '%s' (registered: %s)", name, list);
    return NULL;
}

int gq_compress_methods(const gq_compress_method **out, int cap) {
    for (int i = 0; i < g_n_methods && i < cap; i++) out[i] = &g_methods[i];
    return g_n_methods;
}

/* ------------------------------------------------------------------------------------------ */
/* GQSA on one linear */

gq_status gq_compress_gqsa(const gq_compress_job *job, const gq_compress_opts *o, gq_compress_result *res) {
    gq_linear *lin = job->lin;
    const int N = lin->out, K = lin->in, G = o->group;
    if (G <= 0 || K % G)
        return gq_errf(GQ_ERR_ARG, "%s: group size %d does not divide its input dimension K=%d (choose a G that divides %d)",
                       job->name, G, K, K);
    if (!job->h || !job->h->H) return gq_errf(GQ_ERR_ARG, "%s: gqsa needs calibration statistics (none given)", job->name);
    if (job->h->K != K) return gq_errf(GQ_ERR_ARG, "%s: Hessian is %d x %d but K = %d", job->name, job->h->K, job->h->K, K);
    const int C = K / G;
    double *diag = gq_malloc((size_t)K * sizeof(double));
    gq_status hst = gq_saliency_hinv_diag(job->h->H, K, o->damp, job->name, diag, &res->damp_retries);
    if (hst != GQ_OK) {
        free(diag);
        return hst;
    }
    /* dead inputs never fire on the calibration data: GPTQ zeroes their weights */
    for (int j = 0; j < K; j++)
        if (isinf(diag[j]))
            for (int r = 0; r < N; r++) lin->w[(size_t)r * K + j] = 0;
    double *s = gq_try_malloc((size_t)N * K * sizeof(double));
    if (!s) {
        free(diag);
        return gq_errf(GQ_ERR_NOMEM, "%s: no memory for saliency [%d, %d]", job->name, N, K);
    }
    double *score = gq_malloc((size_t)N * C * sizeof(double));
    uint8_t *keep = gq_malloc((size_t)N * C);
    gq_saliency_weights(lin->w, N, K, diag, s);
    gq_saliency_groups(s, N, K, G, score);
    free(s);
    free(diag);
    double removed = gq_prune_groups(score, N, C, o->sparsity, o->scope, keep);
    free(score);
    res->sparsity = removed;
    gq_status st = gq_compress_apply_groups(job, o, keep, res);
    free(keep);
    return st;
}

gq_status gq_compress_apply_groups(const gq_compress_job *job, const gq_compress_opts *o, const uint8_t *keep,
                                   gq_compress_result *res) {
    gq_linear *lin = job->lin;
    const int N = lin->out, K = lin->in, G = o->group, C = K / G;
    if (o->bits == 0) {
        gq_prune_apply(lin->w, N, K, G, keep);
        return GQ_OK;
    }
    const gq_qspec spec = {.bits = o->bits, .mode = o->qmode, .fp16_scale = o->fp16_scales};
    uint8_t *q = gq_calloc((size_t)N * K, 1);
    float *scales = gq_calloc((size_t)N * C, sizeof(float)), *zeros = gq_calloc((size_t)N * C, sizeof(float));
    for (int r = 0; r < N; r++)
        for (int c = 0; c < C; c++) {
            size_t gi = (size_t)r * C + c, off = (size_t)r * K + (size_t)c * G;
            if (keep[gi]) gq_quant_group(lin->w + off, G, &spec, q + off, &scales[gi], &zeros[gi], NULL);
        }
    gq_status st = gq_gqs_build_from_codes(&res->gqs, q, scales, zeros, keep, N, K, G, o->bits);
    if (st == GQ_OK) gq_gqs_expand(&res->gqs, lin->w);
    else gq_err_prefix(st, "%s: ", job->name);
    free(q);
    free(scales);
    free(zeros);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* compressed model */

void gq_compressed_init(gq_compressed *c, gq_model *m, const gq_compress_opts *o) {
    memset(c, 0, sizeof *c);
    c->m = m;
    c->n_layers = m->cfg.n_layers;
    size_t n = (size_t)m->cfg.n_layers * GQ_LIN_COUNT;
    c->gqs = gq_calloc(n, sizeof *c->gqs);
    c->sparsity = gq_calloc(n, sizeof *c->sparsity);
    c->damp_retries = gq_calloc(n, sizeof *c->damp_retries);
    c->done = gq_calloc(n, sizeof *c->done);
    c->opts = *o;
    snprintf(c->method, sizeof c->method, "%s", o->method ? o->method : "gqsa");
    c->opts.method = c->method;
}

void gq_compressed_free(gq_compressed *c) {
    if (!c) return;
    if (c->gqs)
        for (size_t i = 0; i < (size_t)c->n_layers * GQ_LIN_COUNT; i++) gq_gqs_free(&c->gqs[i]);
    free(c->gqs);
    free(c->sparsity);
    free(c->damp_retries);
    free(c->done);
    gq_model_free(c->m);
    memset(c, 0, sizeof *c);
}

gq_model *gq_compressed_take_model(gq_compressed *c) {
    gq_model *m = c->m;
    c->m = NULL;
    return m;
}

gq_status gq_compress_block(gq_compressed *c, int layer, const gq_hessians *hs) {
    GQ_ASSERT(layer >= 0 && layer < c->m->cfg.n_layers);
    const gq_compress_method *meth = gq_compress_find(c->method);
    if (!meth) return GQ_ERR_ARG;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        gq_compress_job job;
        memset(&job, 0, sizeof job);
        job.layer = layer;
        job.kind = (gq_linear_kind)k;
        snprintf(job.name, sizeof job.name, "layers.%d.%s", layer, gq_linear_name((gq_linear_kind)k));
        job.lin = &c->m->blocks[layer].lin[k];
        job.h = hs ? gq_hessians_get(hs, layer, (gq_linear_kind)k) : NULL;
        if (meth->needs_hessian && (!job.h || !job.h->H))
            return gq_errf(GQ_ERR_ARG, "%s: method '%s' needs calibration statistics, none for this layer", job.name,
                           meth->name);
        gq_compress_result res;
        memset(&res, 0, sizeof res);
        gq_status st = meth->fn(&job, &c->opts, &res);
        if (st != GQ_OK) {
            gq_gqs_free(&res.gqs);
            return st;
        }
        size_t idx = (size_t)layer * GQ_LIN_COUNT + k;
        gq_gqs_free(&c->gqs[idx]);
        c->gqs[idx] = res.gqs;
        c->sparsity[idx] = res.sparsity;
        c->damp_retries[idx] = res.damp_retries;
        c->done[idx] = 1;
        if (c->opts.verbose)
            fprintf(stderr, "gqsa: %-22s [%5d x %5d] sparsity %.4f%s\n", job.name, job.lin->out, job.lin->in,
                    res.sparsity, res.damp_retries ? " (damping increased)" : "");
    }
    return GQ_OK;
}

gq_status gq_compress_model(gq_compressed *c, const gq_hessians *hs) {
    GQ_TRY(gq_compress_opts_validate(&c->opts));
    for (int l = 0; l < c->m->cfg.n_layers; l++) GQ_TRY(gq_compress_block(c, l, hs));
    return GQ_OK;
}

static gq_status block_cb(void *ctx, gq_model *m, int layer, gq_hessians *hs) {
    gq_compressed *c = ctx;
    GQ_ASSERT(m == c->m);
    return gq_compress_block(c, layer, hs);
}

gq_status gq_compress_run(gq_compressed *c, const int32_t *windows, int n, int seqlen, int sequential, int progress) {
    GQ_TRY(gq_compress_opts_validate(&c->opts));
    const gq_compress_method *meth = gq_compress_find(c->method);
    if (!meth) return GQ_ERR_ARG;
    /* a group size that cannot work must fail before minutes of calibration, not after */
    if (meth->fn == gq_compress_gqsa)
        for (int l = 0; l < c->m->cfg.n_layers; l++)
            for (int k = 0; k < GQ_LIN_COUNT; k++)
                if (c->m->blocks[l].lin[k].in % c->opts.group)
                    return gq_errf(GQ_ERR_ARG, "layers.%d.%s: group size %d does not divide its input dimension K=%d (choose a G that divides %d)",
                                   l, gq_linear_name((gq_linear_kind)k), c->opts.group, c->m->blocks[l].lin[k].in,
                                   c->m->blocks[l].lin[k].in);
    if (!meth->needs_hessian) return gq_compress_model(c, NULL);
    if (!windows || n <= 0 || seqlen <= 0)
        return gq_errf(GQ_ERR_ARG, "compress: method '%s' needs calibration windows", meth->name);
    gq_hessians hs;
    gq_hessians_init(&hs, c->m);
    gq_calib_run_opts ro = {.sequential = sequential, .keep_all = 0, .progress = progress};
    gq_status st = gq_calibrate(c->m, windows, n, seqlen, &ro, &hs, block_cb, c);
    gq_hessians_free(&hs);
    return st;
}

double gq_compressed_total_sparsity(const gq_compressed *c) {
    if (!c->m) return 0;
    double removed = 0, total = 0;
    for (int l = 0; l < c->m->cfg.n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_linear *lin = &c->m->blocks[l].lin[k];
            double n = (double)lin->out * lin->in;
            removed += c->sparsity[(size_t)l * GQ_LIN_COUNT + k] * n;
            total += n;
        }
    return total > 0 ? removed / total : 0;
}
