/* model.c — the format-independent part of gq_model: config validation, allocation, copy, counting,
 * NaN scan, the model registry and the loader dispatch (by magic, then extension).
 *
 * How to add a model format: write model_<format>.c with a gq_model_load_<format>() that validates the
 * whole file before allocating (a hostile header must not make us allocate gigabytes), then add its
 * magic/extension to gq_model_load below.
 * Must not: parse any file format itself (model_<format>.c do) or know about compression.
 */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------------------------------ */
/* names */

const char *gq_linear_name(gq_linear_kind k) {
    static const char *names[GQ_LIN_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    GQ_ASSERT(k >= 0 && k < GQ_LIN_COUNT);
    return names[k];
}

gq_linear_kind gq_linear_input_group(gq_linear_kind k) {
    GQ_ASSERT(k >= 0 && k < GQ_LIN_COUNT);
    switch (k) {
    case GQ_LIN_K: case GQ_LIN_V: return GQ_LIN_Q;
    case GQ_LIN_UP: return GQ_LIN_GATE;
    default: return k;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* config */

/* Upper bounds that no real LLaMA-family model reaches; they keep a hostile header from requesting
 * absurd allocations and keep every product below in 64 bits. */
#define GQ_MAX_DIM (1 << 20)
#define GQ_MAX_LAYERS 4096
#define GQ_MAX_VOCAB (1 << 24)

gq_status gq_config_validate(const gq_config *c, const char *what) {
    const char *w = what ? what : "config";
#define GQ_CHECK_RANGE(field, lo, hi)                                                                              \
    if (c->field < (lo) || c->field > (hi))                                                                        \
        return gq_errf(GQ_ERR_FORMAT, "%s: %s = %d is out of range [%d, %d]", w, #field, c->field, (int)(lo), (int)(hi));
    if (c->arch != GQ_ARCH_LLAMA && c->arch != GQ_ARCH_QWEN2 && c->arch != GQ_ARCH_OPT)
        return gq_errf(GQ_ERR_FORMAT, "%s: unknown architecture %d", w, (int)c->arch);
    GQ_CHECK_RANGE(dim, 1, GQ_MAX_DIM);
    GQ_CHECK_RANGE(hidden_dim, 1, GQ_MAX_DIM);
    GQ_CHECK_RANGE(n_layers, 1, GQ_MAX_LAYERS);
    GQ_CHECK_RANGE(n_heads, 1, GQ_MAX_DIM);
    GQ_CHECK_RANGE(n_kv_heads, 1, c->n_heads);
    GQ_CHECK_RANGE(head_dim, 1, GQ_MAX_DIM);
    GQ_CHECK_RANGE(vocab_size, 1, GQ_MAX_VOCAB);
    GQ_CHECK_RANGE(max_seq_len, 1, 1 << 30);
    GQ_CHECK_RANGE(bos_id, -1, c->vocab_size - 1);
    GQ_CHECK_RANGE(eos_id, -1, c->vocab_size - 1);
#undef GQ_CHECK_RANGE
    if (c->n_heads % c->n_kv_heads != 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: n_heads = %d is not a multiple of n_kv_heads = %d", w, c->n_heads, c->n_kv_heads);
    if ((long long)c->n_heads * c->head_dim > GQ_MAX_DIM)
        return gq_errf(GQ_ERR_FORMAT, "%s: n_heads * head_dim = %lld is too large", w, (long long)c->n_heads * c->head_dim);
    if (c->head_dim % 2 != 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: head_dim = %d must be even for RoPE", w, c->head_dim);
    if (!(c->norm_eps > 0 && isfinite(c->norm_eps)))
        return gq_errf(GQ_ERR_FORMAT, "%s: norm_eps = %g must be positive and finite", w, (double)c->norm_eps);
    if (!(c->rope_theta > 0 && isfinite(c->rope_theta)))
        return gq_errf(GQ_ERR_FORMAT, "%s: rope_theta = %g must be positive and finite", w, (double)c->rope_theta);
    if (c->rope_style != GQ_ROPE_INTERLEAVED && c->rope_style != GQ_ROPE_HALF)
        return gq_errf(GQ_ERR_FORMAT, "%s: unknown rope_style %d", w, (int)c->rope_style);
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* allocation */

static void lin_shape(const gq_config *c, gq_linear_kind k, int *out, int *in) {
    int q = c->n_heads * c->head_dim, kv = c->n_kv_heads * c->head_dim;
    switch (k) {
    case GQ_LIN_Q: *out = q, *in = c->dim; break;
    case GQ_LIN_K: case GQ_LIN_V: *out = kv, *in = c->dim; break;
    case GQ_LIN_O: *out = c->dim, *in = q; break;
    case GQ_LIN_GATE: case GQ_LIN_UP: *out = c->hidden_dim, *in = c->dim; break;
    case GQ_LIN_DOWN: *out = c->dim, *in = c->hidden_dim; break;
    default: GQ_ASSERT(0);
    }
}

static float *zeros(size_t n) { return gq_calloc(n, sizeof(float)); }

gq_model *gq_model_alloc(const gq_config *c) {
    GQ_ASSERT(gq_config_validate(c, "gq_model_alloc") == GQ_OK);
    gq_model *m = gq_calloc(1, sizeof *m);
    m->cfg = *c;
    size_t V = (size_t)c->vocab_size, D = (size_t)c->dim;
    m->tok_emb = zeros(V * D);
    m->final_norm = zeros(D);
    m->lm_head = c->tied_embeddings ? m->tok_emb : zeros(V * D);
    m->blocks = gq_calloc((size_t)c->n_layers, sizeof *m->blocks);
    for (int l = 0; l < c->n_layers; l++) {
        gq_block *b = &m->blocks[l];
        b->attn_norm = zeros(D);
        b->ffn_norm = zeros(D);
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            gq_linear *L = &b->lin[k];
            lin_shape(c, (gq_linear_kind)k, &L->out, &L->in);
            L->w = zeros((size_t)L->out * (size_t)L->in);
            if (c->qkv_bias && (k == GQ_LIN_Q || k == GQ_LIN_K || k == GQ_LIN_V)) L->bias = zeros((size_t)L->out);
        }
    }
    return m;
}

static float *dup_floats(const float *src, size_t n) {
    if (!src) return NULL;
    float *d = gq_malloc(n * sizeof *d);
    memcpy(d, src, n * sizeof *d);
    return d;
}

gq_model *gq_model_clone(const gq_model *m) {
    const gq_config *c = &m->cfg;
    gq_model *r = gq_calloc(1, sizeof *r);
    r->cfg = *c;
    memcpy(r->source, m->source, sizeof r->source);
    memcpy(r->format, m->format, sizeof r->format);
    size_t V = (size_t)c->vocab_size, D = (size_t)c->dim;
    r->tok_emb = dup_floats(m->tok_emb, V * D);
    r->final_norm = dup_floats(m->final_norm, D);
    r->lm_head = c->tied_embeddings ? r->tok_emb : dup_floats(m->lm_head, V * D);
    r->blocks = gq_calloc((size_t)c->n_layers, sizeof *r->blocks);
    for (int l = 0; l < c->n_layers; l++) {
        const gq_block *b = &m->blocks[l];
        gq_block *o = &r->blocks[l];
        o->attn_norm = dup_floats(b->attn_norm, D);
        o->ffn_norm = dup_floats(b->ffn_norm, D);
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            o->lin[k] = b->lin[k];
            o->lin[k].w = dup_floats(b->lin[k].w, (size_t)b->lin[k].out * (size_t)b->lin[k].in);
            o->lin[k].bias = dup_floats(b->lin[k].bias, (size_t)b->lin[k].out);
        }
    }
    r->tok = NULL;
    return r;
}

void gq_model_free(gq_model *m) {
    if (!m) return;
    if (m->lm_head != m->tok_emb) free(m->lm_head);
    free(m->tok_emb);
    free(m->final_norm);
    if (m->blocks)
        for (int l = 0; l < m->cfg.n_layers; l++) {
            gq_block *b = &m->blocks[l];
            free(b->attn_norm);
            free(b->ffn_norm);
            for (int k = 0; k < GQ_LIN_COUNT; k++) {
                free(b->lin[k].w);
                free(b->lin[k].bias);
            }
        }
    free(m->blocks);
    if (m->tok) gq_tokenizer_free(m->tok);
    free(m);
}

size_t gq_model_n_params(const gq_model *m) {
    const gq_config *c = &m->cfg;
    size_t V = (size_t)c->vocab_size, D = (size_t)c->dim;
    size_t n = V * D + D + (c->tied_embeddings ? 0 : V * D);
    for (int l = 0; l < c->n_layers; l++) {
        const gq_block *b = &m->blocks[l];
        n += 2 * D;
        for (int k = 0; k < GQ_LIN_COUNT; k++)
            n += (size_t)b->lin[k].out * (size_t)b->lin[k].in + (b->lin[k].bias ? (size_t)b->lin[k].out : 0);
    }
    return n;
}

static gq_status scan(const float *x, size_t n, const char *name, int layer) {
    if (!x) return GQ_OK;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            if (layer >= 0)
                return gq_errf(GQ_ERR_NUMERIC, "layer %d %s: element %zu is %g", layer, name, i, (double)x[i]);
            return gq_errf(GQ_ERR_NUMERIC, "%s: element %zu is %g", name, i, (double)x[i]);
        }
    return GQ_OK;
}

gq_status gq_model_check_finite(const gq_model *m) {
    const gq_config *c = &m->cfg;
    size_t V = (size_t)c->vocab_size, D = (size_t)c->dim;
    GQ_TRY(scan(m->tok_emb, V * D, "tok_emb", -1));
    GQ_TRY(scan(m->final_norm, D, "final_norm", -1));
    if (m->lm_head != m->tok_emb) GQ_TRY(scan(m->lm_head, V * D, "lm_head", -1));
    for (int l = 0; l < c->n_layers; l++) {
        const gq_block *b = &m->blocks[l];
        GQ_TRY(scan(b->attn_norm, D, "attn_norm", l));
        GQ_TRY(scan(b->ffn_norm, D, "ffn_norm", l));
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            char nm[64];
            GQ_TRY(scan(b->lin[k].w, (size_t)b->lin[k].out * (size_t)b->lin[k].in, gq_linear_name((gq_linear_kind)k), l));
            snprintf(nm, sizeof nm, "%s.bias", gq_linear_name((gq_linear_kind)k));
            GQ_TRY(scan(b->lin[k].bias, (size_t)b->lin[k].out, nm, l));
        }
    }
    return GQ_OK;
}

void gq_model_describe(const gq_model *m, FILE *f) {
    const gq_config *c = &m->cfg;
    static const char *arch[] = {"llama", "qwen2", "opt"};
    fprintf(f, "model      %s\n", c->name[0] ? c->name : "(unnamed)");
    fprintf(f, "source     %s (%s)\n", m->source, m->format);
    fprintf(f, "arch       %s\n", (unsigned)c->arch < 3 ? arch[c->arch] : "?");
    fprintf(f, "dim %d  hidden %d  layers %d  heads %d  kv_heads %d  head_dim %d  vocab %d  max_seq_len %d\n", c->dim,
            c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, c->max_seq_len);
    fprintf(f, "norm_eps %g  rope_theta %g  rope %s  tied %d  qkv_bias %d  bos %d  eos %d  add_bos %d\n",
            (double)c->norm_eps, (double)c->rope_theta, c->rope_style == GQ_ROPE_HALF ? "half" : "interleaved",
            c->tied_embeddings, c->qkv_bias, c->bos_id, c->eos_id, c->add_bos);
    fprintf(f, "tokenizer  %s\n", m->tok ? "attached" : "none");
    fprintf(f, "params     %zu\n", gq_model_n_params(m));
    fprintf(f, "tensors (rows x cols, fp32):\n");
    fprintf(f, "  tok_emb            [%d, %d]\n", c->vocab_size, c->dim);
    if (c->n_layers > 0 && m->blocks) {
        const gq_block *b = &m->blocks[0];
        fprintf(f, "  layers.*.attn_norm [%d]   (x%d layers)\n", c->dim, c->n_layers);
        fprintf(f, "  layers.*.ffn_norm  [%d]\n", c->dim);
        for (int k = 0; k < GQ_LIN_COUNT; k++)
            fprintf(f, "  layers.*.%-10s [%d, %d]%s\n", gq_linear_name((gq_linear_kind)k), b->lin[k].out, b->lin[k].in,
                    b->lin[k].bias ? " + bias" : "");
    }
    fprintf(f, "  final_norm         [%d]\n", c->dim);
    fprintf(f, "  lm_head            [%d, %d]%s\n", c->vocab_size, c->dim, c->tied_embeddings ? " (tied to tok_emb)" : "");
}

/* ------------------------------------------------------------------------------------------ */
/* registry and dispatch */

gq_status gq_model_resolve(const char *name, char *buf, size_t cap) {
    if (!strcasecmp(name, "stories260K")) {
        gq_data_path(buf, cap, "models/stories260K/stories260K.bin");
        return GQ_OK;
    }
    if (!strcasecmp(name, "smollm2-135m") || !strcasecmp(name, "smollm2")) {
        const char *dir = getenv("GQSA_MODELS_DIR");
        if (!dir || !*dir) dir = "models";
        if ((size_t)snprintf(buf, cap, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir) >= cap)
            return gq_errf(GQ_ERR_ARG, "model path for '%s' is too long", name);
        return GQ_OK;
    }
    return gq_errf(GQ_ERR_ARG, "unknown model name '%s' (known: stories260K, smollm2-135m; or give a path)", name);
}

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && strcasecmp(s + n - k, suf) == 0;
}

gq_status gq_model_load(const char *path, const char *tokenizer_path, gq_model **out) {
    *out = NULL;
    char resolved[2048];
    struct stat sb;
    if (stat(path, &sb) != 0 && !strchr(path, '/')) {
        /* not a file: maybe a registry name */
        if (gq_model_resolve(path, resolved, sizeof resolved) != GQ_OK)
            return gq_errf(GQ_ERR_IO, "%s: no such file, and not a known model name (stories260K, smollm2-135m)", path);
        if (!gq_file_exists(resolved))
            return gq_errf(GQ_ERR_IO, "%s: model '%s' resolves to %s, which does not exist\nHINT: %s", path, path, resolved,
                           strstr(resolved, ".gguf") ? "run `make models` (or set GQSA_MODELS_DIR)"
                                                     : "check the data root (--data-root or GQSA_DATA_ROOT)");
        path = resolved;
        if (stat(path, &sb) != 0) return gq_errf(GQ_ERR_IO, "%s: cannot stat", path);
    } else if (stat(path, &sb) != 0) {
        return gq_errf(GQ_ERR_IO, "%s: no such file or directory", path);
    }
    if (S_ISDIR(sb.st_mode)) return gq_model_load_safetensors(path, out);

    unsigned char magic[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return gq_errf(GQ_ERR_IO, "%s: cannot open", path);
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got >= 4 && !memcmp(magic, "GGUF", 4)) return gq_model_load_gguf(path, out);
    if (got >= 8 && !memcmp(magic, "\x89HDF\r\n\x1a\n", 8)) return gq_ckpt_load_model(path, out);
    if (ends_with(path, ".gguf")) return gq_model_load_gguf(path, out); /* reports the bad magic */
    if (ends_with(path, ".safetensors") || ends_with(path, ".json")) return gq_model_load_safetensors(path, out);
    if (ends_with(path, ".bin")) return gq_model_load_llama2c(path, tokenizer_path, out);
    if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return gq_ckpt_load_model(path, out);

    /* no telling extension: safetensors starts with a u64 header length followed by '{' */
    if (got == 8) {
        f = fopen(path, "rb");
        unsigned char ch = 0;
        int is_st = f && fseek(f, 8, SEEK_SET) == 0 && fread(&ch, 1, 1, f) == 1 && ch == '{';
        if (f) fclose(f);
        if (is_st) return gq_model_load_safetensors(path, out);
    }
    return gq_errf(GQ_ERR_FORMAT, "%s: unrecognised model format (expected .gguf, llama2.c .bin, .safetensors or a "
                   "directory with config.json)", path);
}
