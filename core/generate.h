/* generate.h — text generation on the CPU with the KV-cache decoder (gq_fwd_decode), following
 * llama2.c run.c's loop so its outputs can be reproduced: the prompt is fed token by token, the
 * model samples from the position of the last prompt token on, generation stops after `steps`
 * positions (capped at max_seq_len) or when BOS or EOS is sampled. Sampling matches run.c's
 * sampler and RNG (xorshift64*, same seed -> same draws): temperature 0 is argmax (first maximum);
 * otherwise softmax(logits / T) and, when 0 < top_p < 1, nucleus sampling as run.c's sample_topp.
 * Must not: print (text goes to the emit callback), read files.
 */
#ifndef GQ_GENERATE_H
#define GQ_GENERATE_H

#include "model.h"

typedef struct {
    int steps;          /* positions to run, prompt included (run.c -n); <= 0 or > max_seq_len: max_seq_len */
    float temperature;  /* 0 = greedy */
    float top_p;        /* nucleus; <= 0 or >= 1 samples from the full distribution */
    uint64_t seed;      /* run.c -s; must be non-zero for xorshift (0 is mapped to 1) */
} gq_gen_opts;

typedef struct {
    int n_prompt;       /* prompt tokens fed */
    int n_generated;    /* tokens sampled (not counting the prompt) */
    double seconds;     /* the whole decode loop */
    double tok_per_s;   /* positions per second after the first, as run.c reports */
} gq_gen_stats;

/* Receives the newly decoded bytes after each token (may be partial UTF-8 for byte-level BPE). */
typedef void (*gq_gen_emit)(void *ctx, const char *bytes, size_t n);

/* Run from prompt ids[n_prompt >= 1] (BOS included by the caller when wanted). If out_ids is not
 * NULL it receives every token, prompt included, up to out_cap (the count is *n_out). Text is decoded
 * with m->tok when emit is not NULL (GQ_ERR_ARG if m->tok is NULL then). */
gq_status gq_generate(const gq_model *m, const int32_t *prompt, int n_prompt, const gq_gen_opts *o, gq_gen_emit emit,
                      void *emit_ctx, int32_t *out_ids, int out_cap, int *n_out, gq_gen_stats *stats);

/* run.c's sampler, exposed for tests: logits[V] is modified (scaled and softmaxed) unless T == 0.
 * *rng is run.c's state (unsigned long long). */
int gq_gen_sample(float *logits, int V, float temperature, float top_p, uint64_t *rng);

#endif
