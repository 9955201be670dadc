/* eval_zeroshot.c — lm-eval-style loglikelihood scoring of multiple-choice tasks (see eval_zeroshot.h).
 *
 * Sections: metrics | request encoding | CPU model backend | task loop | entry points.
 * The CPU backend runs one forward window per distinct choice sequence (context + continuation);
 * a choice whose tokens are a prefix of a longer choice's tokens of the same item is read off that
 * longer window instead of being run again. Contexts are not shared across choices: forward.h has
 * no "continue from a prefilled prefix" entry point, and a per-token decode is ~10x slower per token
 * on the CPU than a window's sgemm.
 * gq_eval_zeroshot dispatches on opts.device: the GPU backend lives in core/eval_zeroshot_gpu.c.
 * Must not: print to stdout; know the datasets' file formats.
 */
#include "eval_zeroshot.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------------------------------ */
/* metrics */

/* np.argmax: first maximum; a NaN is the maximum (numpy propagates it), the first NaN wins. */
static int np_argmax(int n, const double *v) {
    int best = 0;
    for (int i = 0; i < n; i++) {
        if (isnan(v[i])) return i;
        if (v[i] > v[best]) best = i;
    }
    return best;
}

void gq_zs_predict(int n, const double *ll, const size_t *chars, int *pred, int *pred_norm) {
    GQ_ASSERT(n >= 1 && n <= GQ_ZS_MAX_CHOICES);
    double norm[GQ_ZS_MAX_CHOICES];
    /* float division as numpy does: ll / 0.0 gives -inf (or nan for 0/0), never a trap */
    for (int i = 0; i < n; i++) norm[i] = ll[i] / (double)chars[i];
    *pred = np_argmax(n, ll);
    *pred_norm = np_argmax(n, norm);
}

void gq_zs_mean_stderr(const int *x, int n, double *mean, double *stderr_) {
    if (n <= 0) {
        *mean = NAN;
        *stderr_ = NAN;
        return;
    }
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i];
    double mu = s / n;
    *mean = mu;
    if (n < 2) {
        *stderr_ = NAN;
        return;
    }
    /* lm-eval mean_stderr = sample_stddev(arr) / sqrt(len(arr)), sample_stddev with n - 1 */
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (x[i] - mu) * (x[i] - mu);
    *stderr_ = sqrt(ss / (n - 1)) / sqrt((double)n);
}

double gq_zs_cont_logprob(const float *logits, int V, const int32_t *tokens, int T, int n_cont, int *greedy) {
    GQ_ASSERT(n_cont >= 1 && n_cont < T);
    double total = 0;
    int all_greedy = 1;
    for (int t = T - 1 - n_cont; t < T - 1; t++) {
        const float *row = logits + (size_t)t * (size_t)V;
        int target = tokens[t + 1];
        GQ_ASSERT(target >= 0 && target < V);
        float mx = row[0];
        int amax = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > mx) {
                mx = row[v];
                amax = v;
            }
        double se = 0;
        for (int v = 0; v < V; v++) se += exp((double)row[v] - (double)mx);
        total += (double)row[target] - (double)mx - log(se);
        /* HF compares greedy tokens with argmax too; ties break to the first index in both */
        if (amax != target) all_greedy = 0;
    }
    if (greedy) *greedy = all_greedy;
    return total;
}

/* ------------------------------------------------------------------------------------------ */
/* request encoding */

static gq_status encode_str(const gq_zs_backend *b, int add_bos, const char *s, size_t len, int32_t **ids,
                            size_t *n) {
    int32_t *raw = NULL;
    size_t nr = 0;
    GQ_TRY(b->encode(b->ctx, s, len, &raw, &nr));
    if (add_bos && b->bos_id >= 0) {
        int32_t *w = gq_malloc((nr + 1) * sizeof *w);
        w[0] = b->bos_id;
        if (nr) memcpy(w + 1, raw, nr * sizeof *w);
        free(raw);
        raw = w;
        nr++;
    }
    *ids = raw;
    *n = nr;
    return GQ_OK;
}

gq_status gq_zs_encode_pair(const gq_zs_backend *b, int add_bos, const char *ctx, const char *cont, int32_t **ctx_ids,
                            size_t *n_ctx, int32_t **cont_ids, size_t *n_cont) {
    *ctx_ids = *cont_ids = NULL;
    *n_ctx = *n_cont = 0;
    size_t lc = strlen(ctx), lx = strlen(cont);
    if (lc == 0) {
        /* TemplateLM.loglikelihood: an empty context becomes the prefix token (BOS, else EOS) */
        int prefix = b->bos_id >= 0 ? b->bos_id : b->eos_id;
        if (prefix < 0) return gq_errf(GQ_ERR_ARG, "empty context and the tokenizer has neither BOS nor EOS");
        *ctx_ids = gq_malloc(sizeof **ctx_ids);
        (*ctx_ids)[0] = prefix;
        *n_ctx = 1;
        return encode_str(b, 0, cont, lx, cont_ids, n_cont);
    }
    size_t ns = gq_zs_py_rspace_len(ctx, lc);
    size_t lc2 = lc - ns; /* context without its trailing whitespace, which moves to the continuation */
    if (lc2 == 0) return gq_errf(GQ_ERR_ARG, "context is only whitespace");
    char *whole = gq_malloc(lc + lx + 1);
    memcpy(whole, ctx, lc);
    memcpy(whole + lc, cont, lx + 1);
    int32_t *we = NULL, *ce = NULL;
    size_t nw = 0, nc = 0;
    gq_status st = encode_str(b, add_bos, whole, lc + lx, &we, &nw);
    if (st == GQ_OK) st = encode_str(b, add_bos, ctx, lc2, &ce, &nc);
    free(whole);
    if (st != GQ_OK) {
        free(we);
        free(ce);
        return st;
    }
    /* continuation_enc = whole_enc[len(context_enc):] (possibly empty when the context's encoding
     * is longer than the whole's; lm-eval would then fail on an empty continuation too) */
    size_t k = nw > nc ? nw - nc : 0;
    int32_t *xe = gq_malloc((k ? k : 1) * sizeof *xe);
    if (k) memcpy(xe, we + nc, k * sizeof *xe);
    free(we);
    *ctx_ids = ce;
    *n_ctx = nc;
    *cont_ids = xe;
    *n_cont = k;
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* CPU model backend */

typedef struct {
    const gq_model *m;
    gq_fwd f;
    int fwd_ready;
    int max_T;      /* forward window the buffers were sized for */
    float *x;       /* [max_T, D] residual stream */
    float *logits;  /* [max_T, V] */
    long n_tokens;  /* tokens run, for throughput */
} model_backend;

static gq_status mb_encode(void *ctx, const char *text, size_t len, int32_t **ids, size_t *n) {
    model_backend *mb = ctx;
    return gq_tokenizer_encode(mb->m->tok, text, len, 0, ids, n);
}

/* Size the forward buffers for windows of T tokens, growing geometrically up to the model's limit
 * (the caller truncated to it already). */
static gq_status mb_reserve(model_backend *mb, int T) {
    if (mb->fwd_ready && T <= mb->max_T) return GQ_OK;
    int lim = mb->m->cfg.max_seq_len, want = mb->max_T > 0 ? 2 * mb->max_T : 256;
    if (want < T) want = T;
    if (want > lim) want = lim;
    GQ_ASSERT(T <= want);
    if (mb->fwd_ready) gq_fwd_free(&mb->f);
    mb->fwd_ready = 0;
    free(mb->logits);
    free(mb->x);
    mb->logits = mb->x = NULL;
    GQ_TRY(gq_fwd_init(&mb->f, mb->m, want));
    mb->fwd_ready = 1;
    mb->max_T = want;
    mb->logits = gq_malloc((size_t)want * (size_t)mb->m->cfg.vocab_size * sizeof(float));
    mb->x = gq_malloc((size_t)want * (size_t)mb->m->cfg.dim * sizeof(float));
    return GQ_OK;
}

/* Is a[0..na) a prefix of b[0..nb)? */
static int is_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    return na <= nb && !memcmp(a, b, (size_t)na * sizeof *a);
}

static gq_status mb_loglik(void *ctx, int n, const int32_t *const *tokens, const int *len, const int *n_cont,
                           double *ll, int *greedy) {
    model_backend *mb = ctx;
    const gq_config *c = &mb->m->cfg;
    const int V = c->vocab_size, D = c->dim;
    int order[GQ_ZS_MAX_CHOICES], done[GQ_ZS_MAX_CHOICES] = {0};
    GQ_ASSERT(n >= 1 && n <= GQ_ZS_MAX_CHOICES);
    for (int i = 0; i < n; i++) order[i] = i;
    /* longest first, so shorter sequences can be read off a longer window they prefix */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && len[order[j]] > len[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (int oi = 0; oi < n; oi++) {
        int i = order[oi];
        if (done[i]) continue;
        /* the window is tokens[0..T-1): the last token is only a target (lm-eval's [:-1]) */
        int T = len[i] - 1;
        GQ_TRY(mb_reserve(mb, T));
        int served[GQ_ZS_MAX_CHOICES], ns = 0, start = T;
        for (int oj = oi; oj < n; oj++) {
            int j = order[oj];
            if (done[j] || !is_prefix(tokens[j], len[j], tokens[i], len[i])) continue;
            served[ns++] = j;
            int sj = len[j] - 1 - n_cont[j]; /* first window row whose logits score sequence j */
            if (sj < start) start = sj;
        }
        GQ_ASSERT(ns >= 1 && served[0] == i && start >= 0);
        /* gq_forward, but the vocabulary projection only for the rows that score something: the
         * context rows' logits are never read, and the head is ~20% of SmolLM2's FLOPs per row */
        GQ_TRY(gq_fwd_embed(&mb->f, tokens[i], T, mb->x));
        for (int l = 0; l < c->n_layers; l++) gq_fwd_block(&mb->f, l, mb->x, T);
        gq_fwd_head(&mb->f, mb->x + (size_t)start * (size_t)D, T - start, mb->logits);
        mb->n_tokens += T;
        for (int k = 0; k < ns; k++) {
            int j = served[k];
            /* logits row r is window position start + r: shift the sequence to match */
            ll[j] = gq_zs_cont_logprob(mb->logits, V, tokens[j] + start, len[j] - start, n_cont[j], &greedy[j]);
            done[j] = 1;
        }
    }
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* task loop */

typedef struct {
    int n;
    int32_t *seq[GQ_ZS_MAX_CHOICES]; /* ctx_enc + cont_enc, left-truncated to max_len + 1 */
    int len[GQ_ZS_MAX_CHOICES];
    int n_cont[GQ_ZS_MAX_CHOICES];
} item_req;

static void item_req_free(item_req *q) {
    for (int i = 0; i < q->n; i++) free(q->seq[i]);
    memset(q, 0, sizeof *q);
}

static gq_status item_encode(const gq_zs_backend *b, const gq_zs_opts *o, const gq_zs_item *it, item_req *q) {
    memset(q, 0, sizeof *q);
    for (int c = 0; c < it->n_choices; c++) {
        int32_t *ce, *xe;
        size_t nc, nx;
        gq_status st = gq_zs_encode_pair(b, o->add_bos, it->ctx[c], it->cont[c], &ce, &nc, &xe, &nx);
        if (st != GQ_OK) {
            item_req_free(q);
            return st;
        }
        if (nx == 0) {
            free(ce);
            free(xe);
            item_req_free(q);
            return gq_errf(GQ_ERR_ARG, "choice %d: the continuation encodes to no tokens", c);
        }
        if (nx > (size_t)b->max_len) {
            free(ce);
            free(xe);
            item_req_free(q);
            return gq_errf(GQ_ERR_ARG, "choice %d: continuation of %zu tokens exceeds the model's context of %d", c,
                           nx, b->max_len);
        }
        /* (ctx + cont)[-(max_length + 1):] as HFLM._loglikelihood_tokens */
        size_t total = nc + nx, keep = total > (size_t)b->max_len + 1 ? (size_t)b->max_len + 1 : total;
        int32_t *s = gq_malloc(keep * sizeof *s);
        size_t drop = total - keep;
        for (size_t k = 0; k < keep; k++) {
            size_t src = drop + k;
            s[k] = src < nc ? ce[src] : xe[src - nc];
        }
        free(ce);
        free(xe);
        q->seq[c] = s;
        q->len[c] = (int)keep;
        q->n_cont[c] = (int)nx;
        q->n = c + 1;
    }
    return GQ_OK;
}

/* Append printf output to a growing buffer. */
static void buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void buf_printf(char **buf, size_t *len, size_t *cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    GQ_ASSERT(k >= 0);
    if (*len + (size_t)k + 1 > *cap) {
        *cap = (*len + (size_t)k + 1) * 2;
        *buf = gq_realloc(*buf, *cap);
    }
    va_start(ap, fmt);
    vsnprintf(*buf + *len, (size_t)k + 1, fmt, ap);
    va_end(ap);
    *len += (size_t)k;
}

/* JSON has no NaN/Inf: write null for them (a -inf log-likelihood is possible with a zero prob). */
static void buf_num(char **buf, size_t *len, size_t *cap, double v) {
    if (isfinite(v)) buf_printf(buf, len, cap, "%.17g", v);
    else buf_printf(buf, len, cap, "null");
}

static void item_json(char **buf, size_t *len, size_t *cap, const gq_zs_item_score *s) {
    buf_printf(buf, len, cap, "{\"task\":\"%s\",\"idx\":%d,\"gold\":%d,\"ll\":[", gq_zs_task_name(s->task), s->idx,
               s->gold);
    for (int c = 0; c < s->n_choices; c++) {
        if (c) buf_printf(buf, len, cap, ",");
        buf_num(buf, len, cap, s->ll[c]);
    }
    buf_printf(buf, len, cap, "],\"chars\":[");
    for (int c = 0; c < s->n_choices; c++) buf_printf(buf, len, cap, "%s%zu", c ? "," : "", s->chars[c]);
    buf_printf(buf, len, cap, "],\"n_cont\":[");
    for (int c = 0; c < s->n_choices; c++) buf_printf(buf, len, cap, "%s%d", c ? "," : "", s->n_cont[c]);
    buf_printf(buf, len, cap, "],\"greedy\":[");
    for (int c = 0; c < s->n_choices; c++) buf_printf(buf, len, cap, "%s%d", c ? "," : "", s->greedy[c]);
    buf_printf(buf, len, cap, "],\"pred\":%d,\"pred_norm\":%d,\"acc\":%d,\"acc_norm\":%d}\n", s->pred, s->pred_norm,
               s->pred == s->gold, s->pred_norm == s->gold);
}

gq_status gq_zs_eval_task(const gq_zs_backend *b, const gq_zs_task *t, const gq_zs_opts *o, gq_zs_task_result *res,
                          char **out, size_t *out_len) {
    memset(res, 0, sizeof *res);
    res->id = t->id;
    snprintf(res->name, sizeof res->name, "%s", gq_zs_task_name(t->id));
    res->n_total = t->n_total;
    res->has_acc_norm = gq_zs_task_has_acc_norm(t->id);
    double t0 = gq_now();
    gq_status st = GQ_OK;

    /* Encode everything first: the token count drives the ETA, and encoding errors surface before
     * minutes of forward passes. */
    item_req *reqs = gq_calloc((size_t)t->n, sizeof *reqs);
    double total_tok = 0;
    for (int i = 0; i < t->n && st == GQ_OK; i++) {
        st = item_encode(b, o, &t->items[i], &reqs[i]);
        if (st != GQ_OK) {
            gq_err_prefix(st, "%s item %d: ", res->name, i);
            break;
        }
        for (int c = 0; c < reqs[i].n; c++) total_tok += reqs[i].len[c] - 1;
    }
    int *acc = gq_calloc((size_t)t->n, sizeof *acc), *accn = gq_calloc((size_t)t->n, sizeof *accn);
    size_t cap = out && *out ? *out_len + 1 : 0;
    gq_progress pg;
    char label[64];
    snprintf(label, sizeof label, "zeroshot %s", res->name);
    if (!o->quiet) gq_progress_init(&pg, label, total_tok, "tok");
    double done_tok = 0;
    for (int i = 0; i < t->n && st == GQ_OK; i++) {
        const gq_zs_item *it = &t->items[i];
        item_req *q = &reqs[i];
        double ll[GQ_ZS_MAX_CHOICES];
        int greedy[GQ_ZS_MAX_CHOICES];
        size_t chars[GQ_ZS_MAX_CHOICES];
        st = b->loglik(b->ctx, q->n, (const int32_t *const *)q->seq, q->len, q->n_cont, ll, greedy);
        if (st != GQ_OK) {
            gq_err_prefix(st, "%s item %d: ", res->name, i);
            break;
        }
        for (int c = 0; c < q->n; c++) {
            chars[c] = gq_zs_py_len(it->choice[c]);
            done_tok += q->len[c] - 1;
        }
        gq_zs_item_score s = {.task = t->id, .idx = i, .n_choices = q->n, .gold = it->gold, .ll = ll,
                              .greedy = greedy, .n_cont = q->n_cont, .chars = chars};
        gq_zs_predict(q->n, ll, chars, &s.pred, &s.pred_norm);
        acc[i] = s.pred == it->gold;
        accn[i] = s.pred_norm == it->gold;
        if (out) item_json(out, out_len, &cap, &s);
        if (o->on_item) o->on_item(o->cb_ctx, &s);
        if (!o->quiet) gq_progress_update(&pg, done_tok);
    }
    if (st == GQ_OK) {
        if (!o->quiet) gq_progress_done(&pg, done_tok);
        res->n = t->n;
        gq_zs_mean_stderr(acc, t->n, &res->acc, &res->acc_stderr);
        gq_zs_mean_stderr(accn, t->n, &res->acc_norm, &res->acc_norm_stderr);
        res->n_tokens = (long)done_tok;
        res->seconds = gq_now() - t0;
    }
    for (int i = 0; i < t->n; i++) item_req_free(&reqs[i]);
    free(reqs);
    free(acc);
    free(accn);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* entry points */

gq_status gq_zs_parse_tasks(const char *list, gq_zs_task_id *ids, int *n) {
    *n = 0;
    if (!list || !*list) {
        for (int i = 0; i < GQ_ZS_N_TASKS; i++) ids[i] = (gq_zs_task_id)i;
        *n = GQ_ZS_N_TASKS;
        return GQ_OK;
    }
    const char *p = list;
    while (1) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t)(e - p) : strlen(p);
        char name[64];
        if (k == 0 || k >= sizeof name) return gq_errf(GQ_ERR_ARG, "tasks '%s': empty or overlong task name", list);
        memcpy(name, p, k);
        name[k] = 0;
        int id = gq_zs_task_from_name(name);
        if (id < 0)
            return gq_errf(GQ_ERR_ARG, "unknown zero-shot task '%s' (known: piqa, arc_easy, arc_challenge, hellaswag, "
                                       "winogrande)", name);
        for (int j = 0; j < *n; j++)
            if ((int)ids[j] == id) return gq_errf(GQ_ERR_ARG, "task '%s' listed twice", name);
        if (*n >= GQ_ZS_N_TASKS) return gq_errf(GQ_ERR_ARG, "too many tasks in '%s'", list);
        ids[(*n)++] = (gq_zs_task_id)id;
        if (!e) break;
        p = e + 1;
    }
    return GQ_OK;
}

gq_status gq_eval_zeroshot_backend(const gq_zs_backend *b, const gq_zs_opts *o, gq_zs_result *r) {
    memset(r, 0, sizeof *r);
    gq_zs_task_id ids[GQ_ZS_N_TASKS];
    int n;
    GQ_TRY(gq_zs_parse_tasks(o->tasks, ids, &n));
    double t0 = gq_now();
    char *out = NULL;
    size_t out_len = 0;
    gq_status st = GQ_OK;
    for (int k = 0; k < n && st == GQ_OK; k++) {
        gq_zs_task t;
        st = gq_zs_task_load(ids[k], NULL, o->limit, &t);
        if (st != GQ_OK) break;
        st = gq_zs_eval_task(b, &t, o, &r->task[k], o->out_path ? &out : NULL, &out_len);
        gq_zs_task_free(&t);
        if (st == GQ_OK) r->n_tasks = k + 1;
    }
    if (st == GQ_OK && o->out_path) {
        st = gq_write_file_atomic(o->out_path, out ? out : "", out_len);
        if (st != GQ_OK) gq_err_prefix(st, "writing per-item scores %s: ", o->out_path);
    }
    free(out);
    if (st != GQ_OK) return st;
    double sa = 0, sn = 0;
    for (int k = 0; k < r->n_tasks; k++) {
        sa += r->task[k].acc;
        sn += r->task[k].has_acc_norm ? r->task[k].acc_norm : r->task[k].acc;
    }
    r->avg_acc = sa / r->n_tasks;
    r->avg_acc_norm = sn / r->n_tasks;
    r->seconds = gq_now() - t0;
    return GQ_OK;
}

gq_status gq_eval_zeroshot(const gq_model *m, const gq_zs_opts *o, gq_zs_result *r) {
    const char *dev = o->device && *o->device ? o->device : "cpu";
    if (!strcmp(dev, "cuda")) return gq_eval_zeroshot_gpu(m, o, r);
    memset(r, 0, sizeof *r);
    if (strcmp(dev, "cpu")) return gq_errf(GQ_ERR_ARG, "zero-shot: unknown device '%s' (cpu or cuda)", dev);
    if (o->precision && strcmp(o->precision, "fp32"))
        return gq_errf(GQ_ERR_ARG, "zero-shot: precision '%s' applies to the cuda device only (the CPU runs fp32)",
                       o->precision);
    if (!m->tok) return gq_errf(GQ_ERR_ARG, "model %s has no tokenizer: zero-shot evaluation needs one", m->source);
    model_backend mb = {.m = m};
    /* lm-eval's max_length is the model's context (HF max_position_embeddings); the forward buffers
     * grow lazily to the longest window actually met (HellaSwag's, ~150 tokens for SmolLM2). */
    gq_zs_backend b = {.ctx = &mb, .encode = mb_encode, .loglik = mb_loglik, .max_len = m->cfg.max_seq_len,
                       .bos_id = gq_tokenizer_bos(m->tok), .eos_id = gq_tokenizer_eos(m->tok)};
    gq_status st = gq_eval_zeroshot_backend(&b, o, r);
    if (mb.fwd_ready) gq_fwd_free(&mb.f);
    free(mb.logits);
    free(mb.x);
    if (st == GQ_OK) snprintf(r->device, sizeof r->device, "cpu (%d threads)", gq_num_threads());
    return st;
}
