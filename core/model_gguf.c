/* model_gguf.c — GGUF (architecture "llama") to gq_model: hyper-parameters from metadata, weights
 * dequantized to fp32, tokenizer from the file's metadata.
 *
 * ggml lists dims fastest first: a 2-D tensor with dims {K, N} is our row-major [N, K]. The q/k rows
 * of GGUF llama were permuted by llama.cpp's converter so that the interleaved RoPE pairing is right:
 * rope_style is INTERLEAVED and the rows are used as stored.
 * Every tensor's presence, type and shape is checked before anything is allocated, so a file whose
 * metadata claims a huge model but carries small tensors fails with a message instead of an OOM.
 * Must not: parse the GGUF container (gguf.c does) or build the tokenizer itself (tokenizer_*.c do).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "model_formats.h"
#include "tokenizer.h"

static gq_status get_int(const gq_gguf *g, const char *key, int lo, int hi, int *out) {
    uint64_t v;
    GQ_TRY(gq_gguf_get_u64(g, key, &v));
    if (v < (uint64_t)lo || v > (uint64_t)hi)
        return gq_errf(GQ_ERR_FORMAT, "%s: metadata %s = %llu is out of range [%d, %d]", g->path, key,
                       (unsigned long long)v, lo, hi);
    *out = (int)v;
    return GQ_OK;
}

static int has(const gq_gguf *g, const char *key) { return gq_gguf_find(g, key) != NULL; }

/* Check that `name` exists with ggml dims {cols, rows} (rows == 0: a 1-D tensor of `cols`). */
static gq_status check_tensor(const gq_gguf *g, const char *name, uint64_t rows, uint64_t cols,
                              const gq_gguf_tensor **out) {
    const gq_gguf_tensor *t = gq_gguf_find_tensor(g, name);
    if (!t) return gq_errf(GQ_ERR_FORMAT, "%s: missing tensor '%s'", g->path, name);
    int ok = rows == 0 ? (t->n_dims == 1 && t->dims[0] == cols)
                       : (t->n_dims == 2 && t->dims[0] == cols && t->dims[1] == rows);
    if (!ok) {
        char shape[96] = "";
        for (uint32_t d = 0; d < t->n_dims; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu", d ? ", " : "",
                     (unsigned long long)t->dims[d]);
        if (rows)
            return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has ggml dims {%s}, expected {%llu, %llu}", g->path, name, shape,
                           (unsigned long long)cols, (unsigned long long)rows);
        return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has ggml dims {%s}, expected {%llu}", g->path, name, shape,
                       (unsigned long long)cols);
    }
    switch (t->type) {
    case GQ_GGML_F32: case GQ_GGML_F16: case GQ_GGML_BF16: case GQ_GGML_Q4_0: case GQ_GGML_Q4_1: case GQ_GGML_Q8_0: break;
    default:
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: tensor '%s' has ggml type %s; gqsa dequantizes F32, F16, BF16, Q8_0, Q4_0 "
                       "and Q4_1\nHINT: convert the model with one of those types (e.g. llama.cpp's --outtype f16)",
                       g->path, name, gq_ggml_type_name(t->type));
    }
    if (out) *out = t;
    return GQ_OK;
}

static const char *k_lin_gguf[GQ_LIN_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

gq_status gq_model_from_gguf(const gq_gguf *g, int with_tokenizer, gq_model **out) {
    *out = NULL;
    gq_gguf_str arch;
    GQ_TRY(gq_gguf_get_str(g, "general.architecture", &arch));
    if (!(arch.n == 5 && !memcmp(arch.s, "llama", 5))) {
        char a[32];
        size_t n = arch.n < sizeof a - 1 ? (size_t)arch.n : sizeof a - 1;
        for (size_t i = 0; i < n; i++) a[i] = (arch.s[i] >= 32 && arch.s[i] < 127) ? arch.s[i] : '?';
        a[n] = 0;
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: general.architecture is '%s'; gqsa reads GGUF architecture 'llama'", g->path, a);
    }
    gq_config c = {0};
    c.arch = GQ_ARCH_LLAMA;
    c.rope_style = GQ_ROPE_INTERLEAVED;
    const int big = 1 << 24;
    GQ_TRY(get_int(g, "llama.embedding_length", 1, big, &c.dim));
    GQ_TRY(get_int(g, "llama.feed_forward_length", 1, big, &c.hidden_dim));
    GQ_TRY(get_int(g, "llama.block_count", 1, big, &c.n_layers));
    GQ_TRY(get_int(g, "llama.attention.head_count", 1, big, &c.n_heads));
    c.n_kv_heads = c.n_heads;
    if (has(g, "llama.attention.head_count_kv")) GQ_TRY(get_int(g, "llama.attention.head_count_kv", 1, big, &c.n_kv_heads));
    c.max_seq_len = 2048;
    if (has(g, "llama.context_length")) GQ_TRY(get_int(g, "llama.context_length", 1, 1 << 30, &c.max_seq_len));
    double eps, theta = 10000.0;
    GQ_TRY(gq_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &eps));
    if (has(g, "llama.rope.freq_base")) GQ_TRY(gq_gguf_get_f64(g, "llama.rope.freq_base", &theta));
    c.norm_eps = (float)eps;
    c.rope_theta = (float)theta;
    if (c.dim % c.n_heads != 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: llama.embedding_length %d is not a multiple of head_count %d", g->path, c.dim, c.n_heads);
    c.head_dim = c.dim / c.n_heads;
    if (has(g, "llama.attention.key_length")) GQ_TRY(get_int(g, "llama.attention.key_length", 1, big, &c.head_dim));
    if (has(g, "llama.rope.dimension_count")) {
        int rd;
        GQ_TRY(get_int(g, "llama.rope.dimension_count", 1, big, &rd));
        if (rd != c.head_dim)
            return gq_errf(GQ_ERR_UNSUPPORTED, "%s: llama.rope.dimension_count %d != head dim %d (partial RoPE is not supported)",
                           g->path, rd, c.head_dim);
    }
    if (has(g, "llama.rope.scaling.type")) {
        gq_gguf_str s;
        if (gq_gguf_get_str(g, "llama.rope.scaling.type", &s) == GQ_OK && !(s.n == 4 && !memcmp(s.s, "none", 4)))
            return gq_errf(GQ_ERR_UNSUPPORTED, "%s: RoPE scaling (llama.rope.scaling.type) is not supported", g->path);
    }

    /* vocab: explicit key, else the token list, else token_embd's rows; all present ones must agree */
    const gq_gguf_tensor *emb = gq_gguf_find_tensor(g, "token_embd.weight");
    if (!emb) return gq_errf(GQ_ERR_FORMAT, "%s: missing tensor 'token_embd.weight'", g->path);
    if (emb->n_dims != 2 || emb->dims[1] > (uint64_t)big)
        return gq_errf(GQ_ERR_FORMAT, "%s: tensor 'token_embd.weight' must be 2-D with at most %d rows", g->path, big);
    c.vocab_size = (int)emb->dims[1];
    if (has(g, "llama.vocab_size")) {
        int v;
        GQ_TRY(get_int(g, "llama.vocab_size", 1, big, &v));
        if (v != c.vocab_size)
            return gq_errf(GQ_ERR_FORMAT, "%s: llama.vocab_size %d != token_embd.weight rows %d", g->path, v, c.vocab_size);
    }
    const gq_gguf_kv *toks = gq_gguf_find(g, "tokenizer.ggml.tokens");
    if (toks && (toks->type != GQ_GGUF_ARRAY || toks->arr_n != (uint64_t)c.vocab_size))
        return gq_errf(GQ_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries but token_embd.weight has %d rows", g->path,
                       (unsigned long long)(toks->type == GQ_GGUF_ARRAY ? toks->arr_n : 0), c.vocab_size);

    c.bos_id = c.eos_id = -1;
    if (has(g, "tokenizer.ggml.bos_token_id")) GQ_TRY(get_int(g, "tokenizer.ggml.bos_token_id", 0, c.vocab_size - 1, &c.bos_id));
    if (has(g, "tokenizer.ggml.eos_token_id")) GQ_TRY(get_int(g, "tokenizer.ggml.eos_token_id", 0, c.vocab_size - 1, &c.eos_id));
    int add_bos_known = 0;
    const gq_gguf_kv *ab = gq_gguf_find(g, "tokenizer.ggml.add_bos_token");
    if (ab) {
        if (ab->type != GQ_GGUF_BOOL)
            return gq_errf(GQ_ERR_FORMAT, "%s: tokenizer.ggml.add_bos_token must be a bool", g->path);
        c.add_bos = (int)ab->v.u;
        add_bos_known = 1;
    }
    c.tied_embeddings = gq_gguf_find_tensor(g, "output.weight") == NULL;
    gq_gguf_str nm;
    if (gq_gguf_get_str(g, "general.name", &nm) == GQ_OK) {
        size_t n = nm.n < sizeof c.name - 1 ? (size_t)nm.n : sizeof c.name - 1;
        memcpy(c.name, nm.s, n);
        c.name[n] = 0;
    }
    gq_err_clear();
    GQ_TRY(gq_config_validate(&c, g->path));

    /* every tensor present with the right shape before allocating */
    uint64_t D = (uint64_t)c.dim, H = (uint64_t)c.hidden_dim, QD = (uint64_t)c.n_heads * (uint64_t)c.head_dim;
    uint64_t KVD = (uint64_t)c.n_kv_heads * (uint64_t)c.head_dim;
    char name[96];
    GQ_TRY(check_tensor(g, "token_embd.weight", (uint64_t)c.vocab_size, D, NULL));
    GQ_TRY(check_tensor(g, "output_norm.weight", 0, D, NULL));
    if (!c.tied_embeddings) GQ_TRY(check_tensor(g, "output.weight", (uint64_t)c.vocab_size, D, NULL));
    for (int l = 0; l < c.n_layers; l++) {
        uint64_t shp[GQ_LIN_COUNT][2] = {{QD, D}, {KVD, D}, {KVD, D}, {D, QD}, {H, D}, {H, D}, {D, H}};
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        GQ_TRY(check_tensor(g, name, 0, D, NULL));
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        GQ_TRY(check_tensor(g, name, 0, D, NULL));
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, k_lin_gguf[k]);
            GQ_TRY(check_tensor(g, name, shp[k][0], shp[k][1], NULL));
        }
    }

    gq_model *m = gq_model_alloc(&c);
    snprintf(m->source, sizeof m->source, "%s", g->path);
    snprintf(m->format, sizeof m->format, "gguf");
    const gq_gguf_tensor *t;
    gq_status st = GQ_OK;
#define LOAD(nm_, rows_, cols_, dst_)                                                                                  \
    do {                                                                                                               \
        if (st == GQ_OK && (st = check_tensor(g, (nm_), (rows_), (cols_), &t)) == GQ_OK)                               \
            st = gq_gguf_tensor_to_f32(g, t, (dst_), t->n_elems);                                                      \
    } while (0)
    LOAD("token_embd.weight", (uint64_t)c.vocab_size, D, m->tok_emb);
    LOAD("output_norm.weight", 0, D, m->final_norm);
    if (!c.tied_embeddings) LOAD("output.weight", (uint64_t)c.vocab_size, D, m->lm_head);
    for (int l = 0; l < c.n_layers && st == GQ_OK; l++) {
        gq_block *b = &m->blocks[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        LOAD(name, 0, D, b->attn_norm);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        LOAD(name, 0, D, b->ffn_norm);
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, k_lin_gguf[k]);
            LOAD(name, (uint64_t)b->lin[k].out, (uint64_t)b->lin[k].in, b->lin[k].w);
        }
    }
#undef LOAD
    if (st == GQ_OK && with_tokenizer && has(g, "tokenizer.ggml.model")) {
        st = gq_tokenizer_from_gguf(g, &m->tok);
        if (st != GQ_OK) gq_err_prefix(st, "%s: reading the tokenizer from metadata: ", g->path);
    }
    if (st != GQ_OK) {
        gq_model_free(m);
        return st;
    }
    if (!add_bos_known) m->cfg.add_bos = m->tok ? gq_tokenizer_add_bos_default(m->tok) : (c.bos_id >= 0);
    *out = m;
    return GQ_OK;
}

gq_status gq_model_load_gguf(const char *path, gq_model **out) {
    *out = NULL;
    gq_gguf *g;
    GQ_TRY(gq_gguf_open(path, &g));
    gq_status st = gq_model_from_gguf(g, 1, out);
    gq_gguf_close(g);
    return st;
}
