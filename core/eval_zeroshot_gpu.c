/* eval_zeroshot_gpu.c — the GPU backend of the zero-shot evaluator (gq_zs_backend over core/cuda/gpu.h).
 *
 * The model is uploaded once; every item's choices go to the device together: gq_gpu_token_logprobs_batch
 * packs them into one forward pass and returns only the per-token log-probabilities and argmax flags of
 * the continuation rows. As in the CPU backend, a choice whose tokens are a prefix of another choice's
 * tokens (or equal to them) is read off that longer sequence instead of being run again, and the
 * per-token log-probabilities are summed in position order in float64 on the host, so the two backends
 * differ only by fp32 rounding of the logits. Tokenization is the CPU backend's (the model's tokenizer,
 * no special tokens).
 * In a build without CUDA everything here compiles and gq_eval_zeroshot_gpu answers GQ_ERR_UNSUPPORTED.
 * Must not: print to stdout; change the scoring protocol (core/eval_zeroshot.c owns it).
 */
#include <stdlib.h>
#include <string.h>

#include "cuda/gpu.h"
#include "eval_zeroshot.h"
#include "tokenizer.h"

typedef struct {
    const gq_model *m;
    gq_gpu_model *g;
    int cap;       /* rows the device buffers hold (gq_gpu_model_reserve) */
    int cap_limit; /* never grow past this: the model's context, or the longest window if longer */
    int grow_failed; /* the device said no once: stay at cap and let the batch call split items */
    long n_tokens; /* forward rows run, for throughput */
} gpu_backend;

static gq_status gb_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n) {
    gpu_backend *gb = ctx;
    return gq_tokenizer_encode(gb->m->tok, text, len, 0, ids, n);
}

/* Is a[0..na) a prefix of b[0..nb)? */
static int gb_is_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    return na <= nb && !memcmp(a, b, (size_t)na * sizeof *a);
}

/* Grow the device buffers so that `rows` fit in one pass when the limit allows (geometric growth:
 * few reallocations over a run; beyond the limit the batch call splits the item into several passes). */
static gq_status gb_reserve(gpu_backend *gb, int rows, int longest) {
    /* rows >= longest; longest <= the model's context already (item_encode truncates), the max() is
     * defensive */
    int lim = gb->cap_limit > longest ? gb->cap_limit : longest;
    int want = rows > lim ? lim : rows;
    if (want <= gb->cap || (gb->grow_failed && longest <= gb->cap)) return GQ_OK;
    int grown = 2 * gb->cap > lim ? lim : 2 * gb->cap;
    if (want < grown) want = grown;
    gq_status st = gq_gpu_model_reserve(gb->g, want);
    if (st == GQ_ERR_NOMEM && longest <= gb->cap) {
        /* packing the whole item in one pass was only for speed: smaller passes give the same scores */
        gb->grow_failed = 1;
        return GQ_OK;
    }
    GQ_TRY(st);
    gb->cap = want;
    return GQ_OK;
}

static gq_status gb_loglik(void *ctx, int n, const int32_t *const *tokens, const int *len, const int *n_cont,
                           double *ll, int *greedy) {
    gpu_backend *gb = ctx;
    GQ_ASSERT(n >= 1 && n <= GQ_ZS_MAX_CHOICES);
    int order[GQ_ZS_MAX_CHOICES], runner[GQ_ZS_MAX_CHOICES], from[GQ_ZS_MAX_CHOICES];
    for (int i = 0; i < n; i++) {
        GQ_ASSERT(n_cont[i] >= 1 && n_cont[i] < len[i]);
        order[i] = i;
        runner[i] = -1;
    }
    /* longest first (stable), so a shorter sequence finds a longer one it prefixes among the runs */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && len[order[j]] > len[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    gq_gpu_lp_seq seqs[GQ_ZS_MAX_CHOICES];
    int run_of[GQ_ZS_MAX_CHOICES]; /* seqs[k] is choice run_of[k] */
    int ns = 0, rows = 0, longest = 0;
    for (int oi = 0; oi < n; oi++) {
        int i = order[oi];
        if (runner[i] >= 0) continue;
        runner[i] = i;
        /* the run's first scored row serves every sequence read off it */
        int start = len[i] - 1 - n_cont[i];
        for (int oj = oi + 1; oj < n; oj++) {
            int j = order[oj];
            if (runner[j] >= 0 || !gb_is_prefix(tokens[j], len[j], tokens[i], len[i])) continue;
            runner[j] = i;
            int sj = len[j] - 1 - n_cont[j];
            if (sj < start) start = sj;
        }
        from[i] = start;
        run_of[ns] = i;
        seqs[ns].tokens = tokens[i];
        seqs[ns].T = len[i];
        seqs[ns].from = start;
        seqs[ns].lp = gq_malloc((size_t)(len[i] - 1 - start) * sizeof(double));
        seqs[ns].is_greedy = gq_malloc((size_t)(len[i] - 1 - start) * sizeof(int));
        ns++;
        rows += len[i] - 1;
        if (len[i] - 1 > longest) longest = len[i] - 1;
    }
    gq_status st = gb_reserve(gb, rows, longest);
    if (st == GQ_OK) st = gq_gpu_token_logprobs_batch(gb->g, ns, seqs);
    if (st == GQ_OK) {
        gb->n_tokens += rows;
        for (int j = 0; j < n; j++) {
            int i = runner[j], k = 0;
            while (run_of[k] != i) k++;
            const double *lp = seqs[k].lp;
            const int *gr = seqs[k].is_greedy;
            double total = 0;
            int all = 1;
            /* same rows and order as gq_zs_cont_logprob: t in [len-1-n_cont, len-1) */
            for (int t = len[j] - 1 - n_cont[j]; t < len[j] - 1; t++) {
                total += lp[t - from[i]];
                if (!gr[t - from[i]]) all = 0;
            }
            ll[j] = total;
            greedy[j] = all;
        }
    }
    for (int k = 0; k < ns; k++) {
        free(seqs[k].lp);
        free(seqs[k].is_greedy);
    }
    return st;
}

gq_status gq_eval_zeroshot_gpu(const gq_model *m, const gq_zs_opts *o, gq_zs_result *r) {
    memset(r, 0, sizeof *r);
    if (!m->tok) return gq_errf(GQ_ERR_ARG, "model %s has no tokenizer: zero-shot evaluation needs one", m->source);
    if (!gq_gpu_available())
        return gq_errf(GQ_ERR_UNSUPPORTED,
                       "zero-shot --device cuda: no CUDA device (or this gqsa was built without CUDA); use --device cpu");
    const char *prec = o->precision ? o->precision : "fp32";
    gpu_backend gb = {.m = m, .cap_limit = m->cfg.max_seq_len};
    /* Items are short (HellaSwag's longest choice is ~150 tokens for SmolLM2): start with room for a
     * few hundred packed rows and grow on demand, rather than holding [context, V] logits up front. */
    int first = 512 < gb.cap_limit ? 512 : gb.cap_limit;
    GQ_TRY(gq_gpu_model_upload(m, first, prec, &gb.g));
    gb.cap = first;
    gq_zs_backend b = {.ctx = &gb, .encode = gb_encode, .loglik = gb_loglik, .max_len = m->cfg.max_seq_len,
                       .bos_id = gq_tokenizer_bos(m->tok), .eos_id = gq_tokenizer_eos(m->tok)};
    gq_status st = gq_eval_zeroshot_backend(&b, o, r);
    gq_gpu_model_free(gb.g);
    if (st != GQ_OK) return st;
    char desc[160];
    if (gq_gpu_describe(desc, sizeof desc) != GQ_OK) snprintf(desc, sizeof desc, "a CUDA device");
    snprintf(r->device, sizeof r->device, "cuda %s: %s", prec, desc);
    return GQ_OK;
}
