/* model_llama2c.c — llama2.c legacy (v0) checkpoints: 7 x int32 header, then fp32 arrays in run.c's order.
 *
 * Layout (run.c, memory_map_weights): tok_emb[V,D], rms_att[L,D], wq[L,NH*HD,D], wk[L,NKV*HD,D],
 * wv[L,NKV*HD,D], wo[L,D,NH*HD], rms_ffn[L,D], w1[L,H,D], w2[L,D,H], w3[L,H,D], rms_final[D],
 * freq_cis_real[S,HD/2], freq_cis_imag[S,HD/2], then wcls[V,D] only when the header's vocab is negative.
 * The file size must match this layout exactly: a mismatch means a different export version or a
 * truncated file, and reading it anyway would give plausible garbage.
 * Must not: guess a layout it cannot verify; allocate before the size check.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_formats.h"
#include "tokenizer.h"

/* Checked u64 arithmetic for the size computation: the header is hostile. */
static int mul_ok(uint64_t a, uint64_t b, uint64_t *r) {
    if (a && b > UINT64_MAX / a) return 0;
    *r = a * b;
    return 1;
}
static int add_ok(uint64_t *acc, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t x, y;
    if (!mul_ok(a, b, &x) || !mul_ok(x, c, &y) || *acc > UINT64_MAX - y) return 0;
    *acc += y;
    return 1;
}

gq_status gq_model_llama2c_parse(const void *data, size_t len, const char *name, gq_model **out) {
    *out = NULL;
    const char *file = name ? name : "<memory>";
    const uint8_t *p = data;
    if (len >= 4 && !memcmp(p, "ak42", 4))
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: llama2.c export version >= 1 (magic 'ak42') is not supported; re-export "
                       "with the legacy (version 0) layout", file);
    if (len < 28) return gq_errf(GQ_ERR_FORMAT, "%s: truncated llama2.c file: %zu bytes, the header alone is 28", file, len);
    int32_t h[7];
    memcpy(h, p, sizeof h);
    static const char *hn[7] = {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"};
    for (int i = 0; i < 7; i++)
        if (h[i] == 0 || (h[i] < 0 && i != 5) || h[i] == INT32_MIN)
            return gq_errf(GQ_ERR_FORMAT, "%s: llama2.c header field %s = %d is invalid", file, hn[i], h[i]);
    int shared = h[5] > 0;
    gq_config c = {0};
    c.arch = GQ_ARCH_LLAMA;
    c.dim = h[0];
    c.hidden_dim = h[1];
    c.n_layers = h[2];
    c.n_heads = h[3];
    c.n_kv_heads = h[4];
    c.vocab_size = shared ? h[5] : -h[5];
    c.max_seq_len = h[6];
    if (c.dim % c.n_heads != 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: dim %d is not a multiple of n_heads %d", file, c.dim, c.n_heads);
    c.head_dim = c.dim / c.n_heads;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.rope_style = GQ_ROPE_INTERLEAVED;
    c.tied_embeddings = shared;
    c.bos_id = c.vocab_size > 1 ? 1 : -1;
    c.eos_id = c.vocab_size > 2 ? 2 : -1;
    c.add_bos = 1;
    GQ_TRY(gq_config_validate(&c, file));

    uint64_t V = (uint64_t)c.vocab_size, D = (uint64_t)c.dim, L = (uint64_t)c.n_layers, H = (uint64_t)c.hidden_dim;
    uint64_t KV = (uint64_t)c.n_kv_heads * (uint64_t)c.head_dim, S = (uint64_t)c.max_seq_len, HD = (uint64_t)c.head_dim;
    uint64_t nf = 0;
    int ok = add_ok(&nf, V, D, 1) && add_ok(&nf, L, D, 1) && add_ok(&nf, L, D, D) && add_ok(&nf, L, KV, D) &&
             add_ok(&nf, L, KV, D) && add_ok(&nf, L, D, D) && add_ok(&nf, L, D, 1) && add_ok(&nf, L, H, D) &&
             add_ok(&nf, L, D, H) && add_ok(&nf, L, H, D) && add_ok(&nf, D, 1, 1) && add_ok(&nf, S, HD, 1) &&
             (shared || add_ok(&nf, V, D, 1));
    uint64_t need;
    if (!ok || !mul_ok(nf, 4, &need) || need > UINT64_MAX - 28)
        return gq_errf(GQ_ERR_FORMAT, "%s: llama2.c header sizes overflow", file);
    need += 28;
    if ((uint64_t)len != need)
        return gq_errf(GQ_ERR_FORMAT,
                       "%s: llama2.c file is %zu bytes but its header (dim %d, hidden %d, layers %d, heads %d, kv %d, "
                       "vocab %d, seq %d) implies %llu%s",
                       file, len, h[0], h[1], h[2], h[3], h[4], h[5], h[6], (unsigned long long)need,
                       (uint64_t)len < need ? " (truncated?)" : "");

    gq_model *m = gq_model_alloc(&c);
    snprintf(m->source, sizeof m->source, "%s", file);
    snprintf(m->format, sizeof m->format, "llama2c");
    const uint8_t *q = p + 28;
#define TAKE(dst, n)                                                                                                   \
    do {                                                                                                               \
        memcpy((dst), q, (size_t)(n) * 4);                                                                             \
        q += (size_t)(n) * 4;                                                                                          \
    } while (0)
    TAKE(m->tok_emb, V * D);
    for (uint64_t l = 0; l < L; l++) TAKE(m->blocks[l].attn_norm, D);
    static const gq_linear_kind order1[4] = {GQ_LIN_Q, GQ_LIN_K, GQ_LIN_V, GQ_LIN_O};
    for (int k = 0; k < 4; k++)
        for (uint64_t l = 0; l < L; l++) {
            gq_linear *lin = &m->blocks[l].lin[order1[k]];
            TAKE(lin->w, (uint64_t)lin->out * (uint64_t)lin->in);
        }
    for (uint64_t l = 0; l < L; l++) TAKE(m->blocks[l].ffn_norm, D);
    /* w1 = gate, w2 = down, w3 = up */
    static const gq_linear_kind order2[3] = {GQ_LIN_GATE, GQ_LIN_DOWN, GQ_LIN_UP};
    for (int k = 0; k < 3; k++)
        for (uint64_t l = 0; l < L; l++) {
            gq_linear *lin = &m->blocks[l].lin[order2[k]];
            TAKE(lin->w, (uint64_t)lin->out * (uint64_t)lin->in);
        }
    TAKE(m->final_norm, D);
    q += S * HD * 4; /* freq_cis_real + freq_cis_imag (S x HD/2 each): we compute RoPE ourselves */
    if (!shared) TAKE(m->lm_head, V * D);
#undef TAKE
    GQ_ASSERT(q == p + len);
    *out = m;
    return GQ_OK;
}

static int exists_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

gq_status gq_model_load_llama2c(const char *path, const char *tokenizer_path, gq_model **out) {
    *out = NULL;
    uint8_t *data;
    size_t len;
    int mapped;
    GQ_TRY(gq_file_map(path, &data, &len, &mapped));
    gq_model *m;
    gq_status st = gq_model_llama2c_parse(data, len, path, &m);
    gq_file_unmap(data, len, mapped);
    if (st != GQ_OK) return st;

    /* tokenizer: explicit path, else tok<V>.bin, else tokenizer.bin in the same directory */
    char tp[2048] = {0};
    if (tokenizer_path) {
        snprintf(tp, sizeof tp, "%s", tokenizer_path);
    } else {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) slash[1] = 0;
        else dir[0] = 0;
        snprintf(tp, sizeof tp, "%stok%d.bin", dir, m->cfg.vocab_size);
        if (!exists_file(tp)) snprintf(tp, sizeof tp, "%stokenizer.bin", dir);
        if (!exists_file(tp)) tp[0] = 0;
    }
    if (tp[0]) {
        st = gq_tokenizer_load(tp, m->cfg.vocab_size, &m->tok);
        if (st != GQ_OK) {
            gq_model_free(m);
            return gq_err_prefix(st, "%s: loading its tokenizer: ", path);
        }
    }
    *out = m;
    return GQ_OK;
}
