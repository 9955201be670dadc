/* eval_ppl.c — GPTQ-protocol perplexity (see eval_ppl.h for the protocol and the formula).
 *
 * The window loop is written once (gq_eval_ppl_windows) and driven by a per-device callback: the
 * CPU runs gq_forward + gq_nll_from_logits, the GPU gq_gpu_window_nll, so both follow the same
 * windowing, limit and accounting.
 * Must not: print to stdout, or change the protocol per device.
 */
#include "eval_ppl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../datasets/text.h"
#include "cuda/gpu.h"
#include "forward.h"
#include "tokenizer.h"

/* c4-new keeps the first 256 * seqlen tokens (GPTQ datautils.get_c4_new) */
#define PPL_C4_WINDOWS 256

gq_status gq_eval_ppl_windows(gq_window_nll_fn fn, void *ctx, const int32_t *ids, size_t n, int seqlen, int limit,
                              const char *label, gq_ppl_result *r) {
    GQ_ASSERT(fn && r && (ids || n == 0));
    if (seqlen < 2) return gq_errf(GQ_ERR_ARG, "perplexity: seqlen %d is too short (need at least 2)", seqlen);
    if (limit < 0) return gq_errf(GQ_ERR_ARG, "perplexity: limit %d is negative", limit);
    size_t nw = n / (size_t)seqlen;
    if (nw == 0)
        return gq_errf(GQ_ERR_ARG, "perplexity: %zu tokens make no window of %d (the text is too short)", n, seqlen);
    if (limit > 0 && nw > (size_t)limit) nw = (size_t)limit;
    if (nw > 0x7fffffff) nw = 0x7fffffff;
    r->nll_sum = 0;
    r->n_tokens = (long)n;
    r->n_windows = 0;
    r->n_pred = 0;
    gq_progress pg;
    gq_progress_init(&pg, label ? label : "perplexity", (double)nw * seqlen, "tok");
    double t0 = gq_now();
    for (size_t w = 0; w < nw; w++) {
        double s = 0;
        GQ_TRY(fn(ctx, ids + w * (size_t)seqlen, seqlen, &s));
        if (s != s) return gq_errf(GQ_ERR_NUMERIC, "perplexity: NaN loss in window %zu", w);
        r->nll_sum += s;
        r->n_windows++;
        r->n_pred += seqlen - 1;
        gq_progress_update(&pg, (double)(w + 1) * seqlen);
    }
    r->seconds = gq_now() - t0;
    gq_progress_done(&pg, (double)nw * seqlen);
    r->ppl = exp(r->nll_sum / (double)r->n_pred);
    r->tok_per_s = r->seconds > 0 ? (double)r->n_windows * seqlen / r->seconds : 0;
    return GQ_OK;
}

/* ---- CPU runner ---------------------------------------------------------------------------- */

typedef struct {
    gq_fwd f;
    float *logits; /* [seqlen, V] */
} ppl_cpu;

static gq_status cpu_window(void *ctx, const int32_t *tokens, int T, double *nll) {
    ppl_cpu *c = ctx;
    GQ_TRY(gq_forward(&c->f, tokens, T, c->logits));
    int np;
    *nll = gq_nll_from_logits(c->logits, tokens, T, c->f.m->cfg.vocab_size, &np);
    return GQ_OK;
}

gq_status gq_eval_ppl_tokens(const gq_model *m, const int32_t *ids, size_t n, int seqlen, int limit,
                             gq_ppl_result *r) {
    memset(r, 0, sizeof *r);
    ppl_cpu c;
    GQ_TRY(gq_fwd_init(&c.f, m, seqlen));
    size_t bytes;
    if (gq_mul_overflow((size_t)seqlen * sizeof(float), (size_t)m->cfg.vocab_size, &bytes) ||
        !(c.logits = gq_try_malloc(bytes))) {
        gq_fwd_free(&c.f);
        return gq_errf(GQ_ERR_NOMEM, "perplexity: cannot allocate logits for %d x %d", seqlen, m->cfg.vocab_size);
    }
    snprintf(r->device, sizeof r->device, "cpu (%d threads)", gq_num_threads());
    gq_status st = gq_eval_ppl_windows(cpu_window, &c, ids, n, seqlen, limit, "perplexity (cpu)", r);
    free(c.logits);
    gq_fwd_free(&c.f);
    return st;
}

/* ---- GPU runner ---------------------------------------------------------------------------- */

static gq_status gpu_window(void *ctx, const int32_t *tokens, int T, double *nll) {
    return gq_gpu_window_nll((gq_gpu_model *)ctx, tokens, T, nll);
}

static gq_status eval_ppl_gpu(const gq_model *m, const int32_t *ids, size_t n, int seqlen, int limit,
                              const char *precision, gq_ppl_result *r) {
    if (seqlen > m->cfg.max_seq_len)
        return gq_errf(GQ_ERR_ARG, "seqlen %d is longer than the model allows (%d)", seqlen, m->cfg.max_seq_len);
    if (!gq_gpu_available())
        return gq_errf(GQ_ERR_UNSUPPORTED, "--device cuda: no CUDA device (or this gqsa was built without CUDA)");
    gq_gpu_model *g = NULL;
    GQ_TRY(gq_gpu_model_upload(m, seqlen, precision ? precision : "fp32", &g));
    char desc[160] = "";
    if (gq_gpu_describe(desc, sizeof desc) != GQ_OK) snprintf(desc, sizeof desc, "a CUDA device");
    snprintf(r->device, sizeof r->device, "cuda %s: %s", precision ? precision : "fp32", desc);
    gq_status st = gq_eval_ppl_windows(gpu_window, g, ids, n, seqlen, limit, "perplexity (cuda)", r);
    gq_gpu_model_free(g);
    return st;
}

/* ---- the whole protocol -------------------------------------------------------------------- */

gq_status gq_ppl_dataset_ids(const gq_model *m, const char *dataset, int seqlen, int add_bos, int32_t **ids,
                             size_t *n, char *note, size_t note_cap) {
    *ids = NULL;
    *n = 0;
    if (note_cap) note[0] = 0;
    char *text = NULL;
    size_t len = 0;
    int is_c4 = 0;
    if (!strcmp(dataset, "wikitext2")) {
        GQ_TRY(gq_text_wikitext2("test", &text, &len, NULL));
    } else if (!strcmp(dataset, "c4")) {
        int docs = 0;
        GQ_TRY(gq_text_c4(&text, &len, &docs));
        is_c4 = 1;
        if (docs < GQ_TEXT_C4_PROTOCOL_DOCS && note_cap)
            snprintf(note, note_cap, "c4: %d of %d documents", docs, GQ_TEXT_C4_PROTOCOL_DOCS);
    } else if (!strncmp(dataset, "text:", 5)) {
        /* any UTF-8 text file, tokenized once (a quick look at a model on its own domain) */
        GQ_TRY(gq_read_file(dataset + 5, &text, &len));
    } else {
        return gq_errf(GQ_ERR_ARG, "perplexity: unknown dataset '%s' (wikitext2, c4 or text:FILE)", dataset);
    }
    if (!m->tok) {
        free(text);
        return gq_errf(GQ_ERR_ARG, "perplexity: model %s has no tokenizer (pass one with --tokenizer)", m->source);
    }
    int bos = add_bos < 0 ? gq_tokenizer_add_bos_default(m->tok) : add_bos;
    gq_status st = gq_tokenizer_encode(m->tok, text, len, bos, ids, n);
    free(text);
    if (st) return gq_err_prefix(st, "perplexity: tokenizing %s: ", dataset);
    if (is_c4) {
        size_t keep = (size_t)PPL_C4_WINDOWS * (size_t)seqlen;
        if (*n > keep) *n = keep;
        if (note_cap && note[0]) {
            size_t l = strlen(note);
            snprintf(note + l, note_cap - l, "; %zu windows of %d", *n / (size_t)seqlen, PPL_C4_WINDOWS);
        }
    }
    return GQ_OK;
}

gq_status gq_eval_ppl(const gq_model *m, const gq_ppl_opts *o, gq_ppl_result *r) {
    memset(r, 0, sizeof *r);
    int seqlen = o->seqlen;
    if (seqlen == 0) seqlen = m->cfg.max_seq_len < 2048 ? m->cfg.max_seq_len : 2048;
    if (seqlen > m->cfg.max_seq_len)
        return gq_errf(GQ_ERR_ARG, "seqlen %d is longer than the model allows (%d)", seqlen, m->cfg.max_seq_len);
    if (seqlen < 2) return gq_errf(GQ_ERR_ARG, "perplexity: seqlen %d is too short (need at least 2)", seqlen);
    const char *dev = o->device ? o->device : "cpu";
    int cuda = !strcmp(dev, "cuda");
    if (!cuda && strcmp(dev, "cpu")) return gq_errf(GQ_ERR_ARG, "perplexity: unknown device '%s' (cpu or cuda)", dev);
    int32_t *ids;
    size_t n;
    char note[256];
    GQ_TRY(gq_ppl_dataset_ids(m, o->dataset ? o->dataset : "wikitext2", seqlen, o->add_bos, &ids, &n, note,
                              sizeof note));
    if (o->dataset && !strncmp(o->dataset, "text:", 5) && n >= 2 && n < (size_t)seqlen) {
        seqlen = (int)n; /* a text shorter than one window is scored as one window of all its tokens */
        snprintf(note, sizeof note, "text shorter than seqlen: one window of all %zu tokens", n);
    }
    gq_status st = cuda ? eval_ppl_gpu(m, ids, n, seqlen, o->limit, o->precision, r)
                        : gq_eval_ppl_tokens(m, ids, n, seqlen, o->limit, r);
    free(ids);
    snprintf(r->note, sizeof r->note, "%s", note);
    return st;
}
