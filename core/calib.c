/* calib.c — calibration windows (GPTQ-style random sampling) and streaming Hessian accumulation.
 * Only the current block's hidden states [n, seqlen, D] are held; H is accumulated in float64.
 * Must not: compress (the per-block callback does), write files.
 */
#include "calib.h"

#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"

void gq_calib_opts_default(gq_calib_opts *o) {
    memset(o, 0, sizeof *o);
    o->dataset = "wikitext2";
    o->n_samples = 128;
    o->seqlen = 2048;
    o->seed = 0;
    o->add_bos = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* windows */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Append the tokens of text[0..len) to (*ids, *n, *cap). */
static gq_status encode_append(const gq_tokenizer *tok, const char *text, size_t len, int add_bos, int32_t **ids,
                               size_t *n, size_t *cap) {
    int32_t *t = NULL;
    size_t m = 0;
    GQ_TRY(gq_tokenizer_encode(tok, text, len, add_bos, &t, &m));
    if (*n + m > *cap) {
        *cap = (*n + m) * 2 + 1024;
        *ids = gq_realloc(*ids, *cap * sizeof(int32_t));
    }
    if (m) memcpy(*ids + *n, t, m * sizeof(int32_t));
    *n += m;
    free(t);
    return GQ_OK;
}

/* GPTQ's WikiText-2 text: rows joined with "\n\n", where a file line " " or "" is an empty row and
 * every other line is a row with its trailing "\n". Tokenized in pieces cut at row boundaries
 * (about 8 KB each) so tokenizers with super-linear cost per call stay fast; a token may differ
 * from whole-text tokenization only at a piece boundary, which is immaterial for calibration. */
static gq_status wikitext_tokens(const gq_tokenizer *tok, const char *path, int32_t **ids, size_t *n) {
    char *data = NULL;
    size_t len = 0;
    GQ_TRY(gq_read_file(path, &data, &len));
    size_t cap = 0, plen = 0, pcap = 16384;
    char *piece = gq_malloc(pcap);
    *ids = NULL;
    *n = 0;
    gq_status st = GQ_OK;
    int first = 1;
    const char *p = data, *end = data + len;
    while (p < end && st == GQ_OK) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        int empty = ll == 0 || (ll == 1 && p[0] == ' ');
        size_t need = plen + ll + 4;
        if (need > pcap) pcap = need * 2, piece = gq_realloc(piece, pcap);
        if (!first) piece[plen++] = '\n', piece[plen++] = '\n';
        first = 0;
        if (!empty) {
            memcpy(piece + plen, p, ll);
            plen += ll;
            piece[plen++] = '\n';
        }
        p = nl ? nl + 1 : end;
        if (plen >= 8192 || p >= end) {
            st = encode_append(tok, piece, plen, 0, ids, n, &cap);
            plen = 0;
        }
    }
    free(piece);
    free(data);
    if (st != GQ_OK) gq_err_prefix(st, "%s: ", path);
    return st;
}

typedef struct { const char *s; size_t len; } line_ref;

gq_status gq_calib_windows(const gq_tokenizer *tok, const gq_calib_opts *o, int32_t **tokens) {
    *tokens = NULL;
    if (o->n_samples <= 0 || o->seqlen <= 0)
        return gq_errf(GQ_ERR_ARG, "calibration: n_samples (%d) and seqlen (%d) must be positive", o->n_samples, o->seqlen);
    if (!tok) return gq_errf(GQ_ERR_ARG, "calibration: the model has no tokenizer");
    char path[1024];
    const char *ds = o->dataset ? o->dataset : "wikitext2";
    if (!strcmp(ds, "wikitext2")) gq_data_path(path, sizeof path, "datasets/wikitext-2-raw-v1/wiki.valid.raw");
    else if (!strcmp(ds, "c4")) gq_data_path(path, sizeof path, "datasets/c4/c4-validation-sample2000.jsonl");
    else snprintf(path, sizeof path, "%s", ds);
    if (!gq_file_exists(path))
        return gq_errf(GQ_ERR_IO, "calibration set '%s' not found at %s (set --data-root or GQSA_DATA_ROOT)", ds, path);
    const size_t L = (size_t)o->seqlen;
    gq_rng rng;
    gq_rng_seed(&rng, o->seed);
    int32_t *out = gq_malloc((size_t)o->n_samples * L * sizeof(int32_t));

    if (!ends_with(path, ".jsonl")) {
        int32_t *ids;
        size_t n;
        gq_status st = wikitext_tokens(tok, path, &ids, &n);
        if (st != GQ_OK) {
            free(out);
            return st;
        }
        if (n < L + 1) {
            free(ids);
            free(out);
            return gq_errf(GQ_ERR_ARG, "%s: only %zu tokens, need more than seqlen %zu", path, n, L);
        }
        /* GPTQ: i = randint(0, n - seqlen - 1), window = enc[i : i + seqlen] */
        for (int s = 0; s < o->n_samples; s++) {
            size_t i = (size_t)gq_rng_below(&rng, n - L);
            memcpy(out + (size_t)s * L, ids + i, L * sizeof(int32_t));
        }
        free(ids);
        *tokens = out;
        return GQ_OK;
    }

    /* jsonl: one document per line, field "text" */
    char *data = NULL;
    size_t len = 0;
    gq_status st = gq_read_file(path, &data, &len);
    if (st != GQ_OK) {
        free(out);
        return st;
    }
    size_t nl_cap = 1024, n_lines = 0;
    line_ref *lines = gq_malloc(nl_cap * sizeof *lines);
    for (const char *p = data, *end = data + len; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (ll) {
            if (n_lines == nl_cap) nl_cap *= 2, lines = gq_realloc(lines, nl_cap * sizeof *lines);
            lines[n_lines++] = (line_ref){p, ll};
        }
        p = nl ? nl + 1 : end;
    }
    if (n_lines == 0) st = gq_errf(GQ_ERR_FORMAT, "%s: no documents", path);
    /* GPTQ retries random documents until one is longer than seqlen; bound the retries so a set of
     * short documents is an error, not a hang */
    const int max_tries = 100000;
    for (int s = 0; s < o->n_samples && st == GQ_OK; s++) {
        int found = 0;
        for (int tries = 0; tries < max_tries && !found && st == GQ_OK; tries++) {
            size_t d = (size_t)gq_rng_below(&rng, n_lines);
            char *line = gq_malloc(lines[d].len + 1);
            memcpy(line, lines[d].s, lines[d].len);
            line[lines[d].len] = 0;
            cJSON *j = cJSON_Parse(line);
            free(line);
            const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
            if (!cJSON_IsString(t)) {
                st = gq_errf(GQ_ERR_FORMAT, "%s: line %zu is not a JSON object with a string \"text\"", path, d + 1);
            } else {
                int32_t *ids = NULL;
                size_t n = 0;
                st = gq_tokenizer_encode(tok, t->valuestring, strlen(t->valuestring), o->add_bos, &ids, &n);
                if (st == GQ_OK && n > L) {
                    size_t i = (size_t)gq_rng_below(&rng, n - L);
                    memcpy(out + (size_t)s * L, ids + i, L * sizeof(int32_t));
                    found = 1;
                }
                free(ids);
            }
            cJSON_Delete(j);
        }
        if (st == GQ_OK && !found)
            st = gq_errf(GQ_ERR_ARG, "%s: no document longer than %zu tokens after %d tries", path, L, max_tries);
    }
    free(lines);
    free(data);
    if (st != GQ_OK) {
        free(out);
        return st;
    }
    *tokens = out;
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Hessians */

void gq_hessians_init(gq_hessians *hs, const gq_model *m) {
    hs->n_layers = m->cfg.n_layers;
    hs->h = gq_calloc((size_t)hs->n_layers * GQ_LIN_COUNT, sizeof *hs->h);
    for (int l = 0; l < hs->n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) hs->h[(size_t)l * GQ_LIN_COUNT + k].K = m->blocks[l].lin[k].in;
}

void gq_hessians_free_layer(gq_hessians *hs, int layer) {
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        gq_hessian *h = &hs->h[(size_t)layer * GQ_LIN_COUNT + k];
        free(h->H);
        free(h->sumsq);
        h->H = NULL;
        h->sumsq = NULL;
        h->n_tok = 0;
    }
}

void gq_hessians_free(gq_hessians *hs) {
    if (!hs || !hs->h) return;
    for (int l = 0; l < hs->n_layers; l++) gq_hessians_free_layer(hs, l);
    free(hs->h);
    hs->h = NULL;
}

gq_hessian *gq_hessians_get_mut(gq_hessians *hs, int layer, gq_linear_kind kind) {
    GQ_ASSERT(layer >= 0 && layer < hs->n_layers && kind >= 0 && kind < GQ_LIN_COUNT);
    gq_hessian *h = &hs->h[(size_t)layer * GQ_LIN_COUNT + gq_linear_input_group(kind)];
    return h->H ? h : NULL;
}

const gq_hessian *gq_hessians_get(const gq_hessians *hs, int layer, gq_linear_kind kind) {
    return gq_hessians_get_mut((gq_hessians *)hs, layer, kind);
}

typedef struct {
    gq_hessians *hs;
    double *xd;       /* [T, Kmax] float64 copy of one linear input */
    int active;
    gq_status st;
    char err[256];
} hook_ctx;

static void accumulate_hook(void *vctx, int layer, gq_linear_kind kind, const float *x, int T, int K) {
    hook_ctx *c = vctx;
    if (!c->active || c->st != GQ_OK) return;
    gq_hessian *h = &c->hs->h[(size_t)layer * GQ_LIN_COUNT + kind];
    GQ_ASSERT(h->H && h->K == K);
    for (size_t i = 0; i < (size_t)T * K; i++) {
        if (!isfinite(x[i])) {
            c->st = GQ_ERR_NUMERIC;
            snprintf(c->err, sizeof c->err, "calibration: non-finite activation at the input of layers.%d.%s (token %zu, feature %zu)",
                     layer, gq_linear_name(kind), i / (size_t)K, i % (size_t)K);
            return;
        }
        c->xd[i] = x[i];
    }
    /* H (upper triangle) += X^T X; mirrored once at the end */
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, K, T, 1.0, c->xd, K, 1.0, h->H, K);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < K; j++) {
            double v = c->xd[(size_t)t * K + j];
            h->sumsq[j] += v * v;
        }
    h->n_tok += T;
}

static const gq_linear_kind k_heads[4] = {GQ_LIN_Q, GQ_LIN_O, GQ_LIN_GATE, GQ_LIN_DOWN};

gq_status gq_calibrate(gq_model *m, const int32_t *windows, int n, int seqlen, const gq_calib_run_opts *ro,
                       gq_hessians *hs, gq_calib_block_fn fn, void *ctx) {
    GQ_ASSERT(m && windows && hs && hs->h && hs->n_layers == m->cfg.n_layers);
    if (n <= 0 || seqlen <= 0) return gq_errf(GQ_ERR_ARG, "calibration: need n > 0 windows of seqlen > 0 tokens");
    const int D = m->cfg.dim, L = m->cfg.n_layers;
    gq_fwd f;
    GQ_TRY(gq_fwd_init(&f, m, seqlen));
    size_t per = (size_t)seqlen * D;
    size_t xbytes;
    if (gq_mul_overflow(per * sizeof(float), (size_t)n, &xbytes)) {
        gq_fwd_free(&f);
        return gq_errf(GQ_ERR_ARG, "calibration: %d x %d x %d hidden states overflow", n, seqlen, D);
    }
    float *X = gq_try_malloc(xbytes);
    if (!X) {
        gq_fwd_free(&f);
        return gq_errf(GQ_ERR_NOMEM, "calibration: cannot hold %d x %d x %d hidden states (%.1f GB)", n, seqlen, D, xbytes / 1e9);
    }
    int kmax = 0;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) kmax = m->blocks[l].lin[k].in > kmax ? m->blocks[l].lin[k].in : kmax;
    hook_ctx hc = {.hs = hs, .xd = gq_malloc((size_t)seqlen * kmax * sizeof(double)), .active = 0, .st = GQ_OK};
    f.hook = accumulate_hook;
    f.hook_ctx = &hc;
    float *tmp = ro->sequential && fn ? gq_malloc(per * sizeof(float)) : NULL;
    gq_status st = GQ_OK;
    for (int s = 0; s < n && st == GQ_OK; s++) st = gq_fwd_embed(&f, windows + (size_t)s * seqlen, seqlen, X + s * per);
    gq_progress pr;
    if (ro->progress) gq_progress_init(&pr, "calibrate", (double)L * n, "windows");
    for (int l = 0; l < L && st == GQ_OK; l++) {
        for (int i = 0; i < 4; i++) {
            gq_hessian *h = &hs->h[(size_t)l * GQ_LIN_COUNT + k_heads[i]];
            free(h->H);
            free(h->sumsq);
            h->K = m->blocks[l].lin[k_heads[i]].in;
            h->H = gq_try_malloc((size_t)h->K * h->K * sizeof(double));
            h->sumsq = gq_calloc((size_t)h->K, sizeof(double));
            h->n_tok = 0;
            if (!h->H) {
                st = gq_errf(GQ_ERR_NOMEM, "calibration: no memory for a %d x %d Hessian", h->K, h->K);
                break;
            }
            memset(h->H, 0, (size_t)h->K * h->K * sizeof(double));
        }
        if (st != GQ_OK) break;
        hc.active = 1;
        for (int s = 0; s < n && hc.st == GQ_OK; s++) {
            float *x = X + s * per;
            if (tmp) {
                /* the block will change: run it on a copy only to see its inputs */
                memcpy(tmp, x, per * sizeof(float));
                x = tmp;
            }
            gq_fwd_block(&f, l, x, seqlen);
            if (ro->progress) gq_progress_update(&pr, (double)l * n + s + 1);
        }
        hc.active = 0;
        if (hc.st != GQ_OK) {
            st = gq_errf(hc.st, "%s", hc.err);
            break;
        }
        for (int i = 0; i < 4; i++) {
            gq_hessian *h = &hs->h[(size_t)l * GQ_LIN_COUNT + k_heads[i]];
            const int K = h->K;
            double sc = h->n_tok ? 2.0 / (double)h->n_tok : 0;
            for (int a = 0; a < K; a++) {
                for (int b = a; b < K; b++) h->H[(size_t)a * K + b] *= sc;
                for (int b = 0; b < a; b++) h->H[(size_t)a * K + b] = h->H[(size_t)b * K + a];
            }
        }
        if (fn) st = fn(ctx, m, l, hs);
        if (st == GQ_OK && tmp)
            for (int s = 0; s < n; s++) gq_fwd_block(&f, l, X + s * per, seqlen);
        if (!ro->keep_all) gq_hessians_free_layer(hs, l);
    }
    if (ro->progress && st == GQ_OK) gq_progress_done(&pr, (double)L * n);
    free(tmp);
    free(hc.xd);
    free(X);
    gq_fwd_free(&f);
    return st;
}
