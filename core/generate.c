/* generate.c — run.c-compatible generation loop and sampler (see generate.h).
 * Must not: print or read files; allocate per token (buffers are made once per call).
 */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "tokenizer.h"

/* run.c's xorshift64* generator and its float in [0,1) */
static uint32_t gen_u32(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (uint32_t)((*s * 0x2545F4914F6CDD1Dull) >> 32);
}
static float gen_f32(uint64_t *s) { return (float)(gen_u32(s) >> 8) / 16777216.0f; }

typedef struct { float p; int i; } gen_pi;
static int gen_cmp_desc(const void *a, const void *b) {
    float x = ((const gen_pi *)a)->p, y = ((const gen_pi *)b)->p;
    return x > y ? -1 : (x < y ? 1 : 0);
}

static int gen_argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

/* run.c sample_topp: drop tokens below (1-topp)/(n-1) (they cannot be in the nucleus), sort the
 * rest descending, cut where the cumulative probability first exceeds topp, draw inside it. */
static int gen_topp(const float *p, int n, float topp, gen_pi *work, float coin) {
    int m = 0;
    float cutoff = (1.0f - topp) / (float)(n - 1);
    for (int i = 0; i < n; i++)
        if (p[i] >= cutoff) { work[m].i = i; work[m].p = p[i]; m++; }
    qsort(work, (size_t)m, sizeof *work, gen_cmp_desc);
    float cum = 0;
    int last = m - 1;
    for (int i = 0; i < m; i++) {
        cum += work[i].p;
        if (cum > topp) { last = i; break; }
    }
    float r = coin * cum, c = 0;
    for (int i = 0; i <= last; i++) {
        c += work[i].p;
        if (r < c) return work[i].i;
    }
    return work[last].i;
}

static int gen_sample_impl(float *logits, int V, float temperature, float top_p, uint64_t *rng, gen_pi *work) {
    if (temperature == 0.0f) return gen_argmax(logits, V);
    for (int i = 0; i < V; i++) logits[i] /= temperature;
    float mx = logits[gen_argmax(logits, V)], sum = 0;
    for (int i = 0; i < V; i++) { logits[i] = expf(logits[i] - mx); sum += logits[i]; }
    for (int i = 0; i < V; i++) logits[i] /= sum;
    float coin = gen_f32(rng);
    if (top_p <= 0 || top_p >= 1) {
        float c = 0;
        for (int i = 0; i < V; i++) {
            c += logits[i];
            if (coin < c) return i;
        }
        return V - 1;
    }
    return gen_topp(logits, V, top_p, work, coin);
}

int gq_gen_sample(float *logits, int V, float temperature, float top_p, uint64_t *rng) {
    gen_pi *work = gq_malloc(sizeof(gen_pi) * (size_t)V);
    int r = gen_sample_impl(logits, V, temperature, top_p, rng, work);
    free(work);
    return r;
}

gq_status gq_generate(const gq_model *m, const int32_t *prompt, int n_prompt, const gq_gen_opts *o, gq_gen_emit emit,
                      void *emit_ctx, int32_t *out_ids, int out_cap, int *n_out, gq_gen_stats *stats) {
    const gq_config *c = &m->cfg;
    if (n_prompt < 1) return gq_errf(GQ_ERR_ARG, "generate: empty prompt (it needs at least a BOS token)");
    if (emit && !m->tok) return gq_errf(GQ_ERR_ARG, "generate: model %s has no tokenizer to decode with", m->source);
    if (o->temperature < 0 || !isfinite(o->temperature))
        return gq_errf(GQ_ERR_ARG, "generate: temperature %g must be >= 0", (double)o->temperature);
    int steps = o->steps <= 0 || o->steps > c->max_seq_len ? c->max_seq_len : o->steps;
    if (n_prompt > steps)
        return gq_errf(GQ_ERR_ARG, "generate: the prompt has %d tokens but only %d positions are allowed", n_prompt,
                       steps);
    gq_fwd f;
    GQ_TRY(gq_fwd_init(&f, m, steps));
    int V = c->vocab_size;
    float *logits = gq_malloc(sizeof(float) * (size_t)V);
    gen_pi *work = gq_malloc(sizeof(gen_pi) * (size_t)V);
    int32_t *ids = gq_malloc(sizeof(int32_t) * ((size_t)steps + 1));
    memcpy(ids, prompt, sizeof(int32_t) * (size_t)n_prompt);
    uint64_t rng = o->seed ? o->seed : 1;
    size_t printed = 0;
    int n = 1; /* ids[0..n) are known; ids[n-1] is fed next */
    double t0 = gq_now(), t1 = 0;
    gq_status st = GQ_OK;
    for (int pos = 0; pos < steps; pos++) {
        st = gq_fwd_decode(&f, ids[pos], pos, logits);
        if (st) break;
        int next;
        if (pos + 1 < n_prompt) next = prompt[pos + 1];
        else next = gen_sample_impl(logits, V, o->temperature, o->top_p, &rng, work);
        if (pos == 0) t1 = gq_now();
        if (pos + 1 >= n_prompt && ((c->bos_id >= 0 && next == c->bos_id) || (c->eos_id >= 0 && next == c->eos_id)))
            break;
        ids[n++] = next;
        if (emit) {
            /* decode the whole sequence and emit what is new: correct for every tokenizer kind
             * (leading-space rules, multi-token UTF-8), and cheap at generation lengths */
            char *text;
            size_t len;
            st = gq_tokenizer_decode(m->tok, ids, (size_t)n, &text, &len);
            if (st) break;
            if (len > printed) emit(emit_ctx, text + printed, len - printed);
            if (len > printed) printed = len;
            free(text);
        }
    }
    double t2 = gq_now();
    if (!st) {
        if (out_ids) {
            int k = n < out_cap ? n : out_cap;
            memcpy(out_ids, ids, sizeof(int32_t) * (size_t)k);
        }
        if (n_out) *n_out = n;
        if (stats) {
            stats->n_prompt = n_prompt;
            stats->n_generated = n - n_prompt;
            stats->seconds = t2 - t0;
            /* run.c: positions after the first, over the time since the first */
            stats->tok_per_s = n > 1 && t2 > t1 ? (double)(n - 1) / (t2 - t1) : 0;
        }
    }
    free(ids);
    free(work);
    free(logits);
    gq_fwd_free(&f);
    return st;
}
