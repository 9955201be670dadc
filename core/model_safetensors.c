/* model_safetensors.c — Hugging Face checkpoints: *.safetensors (single or sharded through
 * model.safetensors.index.json) + config.json (LLaMA, Qwen2, OPT config) + tokenizer.json/model.
 *
 * safetensors: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets: [b, e]}},
 * then the data section; offsets are relative to the data section. Every offset is checked (inside the
 * data section, e - b == prod(shape) * dtype size, no two tensors overlap).
 * HF LLaMA checkpoints use rotate-half RoPE on unpermuted q/k rows: rope_style is HALF.
 * Must not: trust any number in the header or config; allocate a model before every tensor it needs
 * was found with the right shape.
 */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_formats.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------------------------------ */
/* safetensors container */

static const struct { const char *name; int size; } k_dtypes[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
    {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4}, {"F64", 8}, {"I64", 8}, {"U64", 8},
};

static int dtype_size(const char *d) {
    for (size_t i = 0; i < sizeof k_dtypes / sizeof k_dtypes[0]; i++)
        if (!strcmp(d, k_dtypes[i].name)) return k_dtypes[i].size;
    return 0;
}

/* A JSON number that is a non-negative integer representable exactly (< 2^53). */
static int json_u64(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0 && v < 9007199254740992.0) || v != floor(v)) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int cmp_st_name(const void *a, const void *b) {
    return strcmp(((const gq_st_tensor *)a)->name, ((const gq_st_tensor *)b)->name);
}
static int cmp_st_ptr_off(const void *a, const void *b) {
    const gq_st_tensor *x = *(const gq_st_tensor *const *)a, *y = *(const gq_st_tensor *const *)b;
    return (x->data > y->data) - (x->data < y->data);
}

static gq_status st_parse_owned(gq_st_file *f) {
    const char *file = f->path;
    if (f->len < 8) return gq_errf(GQ_ERR_FORMAT, "%s: truncated safetensors file (%zu bytes; the header length alone is 8)", file, f->len);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)f->buf[i] << (8 * i);
    if (hl > f->len - 8)
        return gq_errf(GQ_ERR_FORMAT, "%s: safetensors header length %llu exceeds the %zu bytes after it", file,
                       (unsigned long long)hl, f->len - 8);
    if (hl < 2) return gq_errf(GQ_ERR_FORMAT, "%s: safetensors header of %llu bytes cannot be a JSON object", file, (unsigned long long)hl);
    const uint8_t *data = f->buf + 8 + hl;
    size_t data_len = f->len - 8 - (size_t)hl;
    cJSON *root = cJSON_ParseWithLength((const char *)f->buf + 8, (size_t)hl);
    if (!root) return gq_errf(GQ_ERR_FORMAT, "%s: safetensors header is not valid JSON", file);
    gq_status st = GQ_OK;
    if (!cJSON_IsObject(root)) {
        st = gq_errf(GQ_ERR_FORMAT, "%s: safetensors header is not a JSON object", file);
        goto done;
    }
    size_t n = 0;
    for (cJSON *e = root->child; e; e = e->next) n++;
    f->tensors = gq_calloc(n + 1, sizeof *f->tensors);
    for (cJSON *e = root->child; e; e = e->next) {
        const char *name = e->string ? e->string : "";
        if (!strcmp(name, "__metadata__")) continue;
        if (!cJSON_IsObject(e)) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s': entry is not an object", file, name);
            goto done;
        }
        gq_st_tensor *t = &f->tensors[f->n_tensors++];
        t->name = gq_strdup(name);
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' needs a string dtype, an array shape and data_offsets [begin, end]", file, name);
            goto done;
        }
        int es = dtype_size(dt->valuestring);
        if (!es || strlen(dt->valuestring) >= sizeof t->dtype) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has unknown dtype '%.16s'", file, name, dt->valuestring);
            goto done;
        }
        strcpy(t->dtype, dt->valuestring);
        int nd = cJSON_GetArraySize(sh);
        if (nd > GQ_ST_MAX_DIMS) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has %d dimensions (at most %d supported)", file, name, nd, GQ_ST_MAX_DIMS);
            goto done;
        }
        t->n_dims = nd;
        uint64_t ne = 1;
        int d = 0;
        for (const cJSON *x = sh->child; x; x = x->next, d++) {
            if (!json_u64(x, &t->shape[d])) {
                st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer", file, name, d);
                goto done;
            }
            /* overflow guard: a product past 2^53 cannot match any offsets we accept anyway */
            if (t->shape[d] && ne > (UINT64_C(1) << 53) / t->shape[d]) {
                st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s': element count overflows", file, name);
                goto done;
            }
            ne *= t->shape[d];
        }
        uint64_t b, en;
        if (!json_u64(off->child, &b) || !json_u64(off->child->next, &en) || b > en) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s': data_offsets must be integers with begin <= end", file, name);
            goto done;
        }
        if (en > data_len) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] point past the data section (%zu bytes)",
                         file, name, (unsigned long long)b, (unsigned long long)en, data_len);
            goto done;
        }
        t->n_elems = ne;
        t->n_bytes = ne * (uint64_t)es;
        if (en - b != t->n_bytes) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s': data_offsets span %llu bytes but shape x %s needs %llu", file, name,
                         (unsigned long long)(en - b), t->dtype, (unsigned long long)t->n_bytes);
            goto done;
        }
        t->data = data + b;
    }
    if (f->n_tensors > 1) {
        qsort(f->tensors, f->n_tensors, sizeof *f->tensors, cmp_st_name);
        for (size_t i = 1; i < f->n_tensors; i++)
            if (!strcmp(f->tensors[i - 1].name, f->tensors[i].name)) {
                st = gq_errf(GQ_ERR_FORMAT, "%s: duplicate tensor '%s'", file, f->tensors[i].name);
                goto done;
            }
        gq_st_tensor **ix = gq_malloc(f->n_tensors * sizeof *ix);
        for (size_t i = 0; i < f->n_tensors; i++) ix[i] = &f->tensors[i];
        qsort(ix, f->n_tensors, sizeof *ix, cmp_st_ptr_off);
        for (size_t i = 1; i < f->n_tensors && st == GQ_OK; i++)
            if (ix[i - 1]->data + ix[i - 1]->n_bytes > ix[i]->data)
                st = gq_errf(GQ_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", file, ix[i - 1]->name, ix[i]->name);
        free(ix);
    }
done:
    cJSON_Delete(root);
    return st;
}

void gq_st_close(gq_st_file *f) {
    if (!f) return;
    if (f->tensors)
        for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    gq_file_unmap(f->buf, f->len, f->mapped);
    free(f);
}

static gq_status st_finish(gq_st_file *f, gq_st_file **out) {
    gq_status st = st_parse_owned(f);
    if (st != GQ_OK) {
        gq_st_close(f);
        return st;
    }
    *out = f;
    return GQ_OK;
}

gq_status gq_st_open(const char *path, gq_st_file **out) {
    *out = NULL;
    uint8_t *data;
    size_t len;
    int mapped;
    GQ_TRY(gq_file_map(path, &data, &len, &mapped));
    gq_st_file *f = gq_calloc(1, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->buf = data;
    f->len = len;
    f->mapped = mapped;
    return st_finish(f, out);
}

gq_status gq_st_parse(const void *data, size_t len, const char *name, gq_st_file **out) {
    *out = NULL;
    gq_st_file *f = gq_calloc(1, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", name ? name : "<memory>");
    f->buf = gq_try_malloc(len);
    if (!f->buf) {
        free(f);
        return gq_errf(GQ_ERR_NOMEM, "%s: cannot allocate %zu bytes", name ? name : "<memory>", len);
    }
    if (len) memcpy(f->buf, data, len);
    f->len = len;
    return st_finish(f, out);
}

const gq_st_tensor *gq_st_find(const gq_st_file *f, const char *name) {
    size_t lo = 0, hi = f->n_tensors; /* tensors are sorted by name after parsing */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0) return &f->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

gq_status gq_st_tensor_to_f32(const gq_st_file *f, const gq_st_tensor *t, float *out, uint64_t n) {
    GQ_ASSERT(n == t->n_elems);
    if (!strcmp(t->dtype, "F32")) {
        if (n) memcpy(out, t->data, (size_t)n * 4);
    } else if (!strcmp(t->dtype, "F16") || !strcmp(t->dtype, "BF16")) {
        int bf = t->dtype[0] == 'B';
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = bf ? gq_bf16_to_fp32(h) : gq_fp16_to_fp32(h);
        }
    } else {
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; gqsa reads F32, F16 and BF16 weights", f->path,
                       t->name, t->dtype);
    }
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* config.json */

static gq_status cfg_int(const cJSON *root, const char *name, const char *key, int required, int def, int lo, int hi, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return gq_errf(GQ_ERR_FORMAT, "%s: missing required key '%s'", name, key);
        *out = def;
        return GQ_OK;
    }
    if (cJSON_IsArray(j)) j = j->child; /* e.g. eos_token_id: [128001, 128008] -> the first */
    if (!j || !cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) || j->valuedouble < lo || j->valuedouble > hi)
        return gq_errf(GQ_ERR_FORMAT, "%s: key '%s' must be an integer in [%d, %d]", name, key, lo, hi);
    *out = (int)j->valuedouble;
    return GQ_OK;
}

static gq_status cfg_num(const cJSON *root, const char *name, const char *key, int required, double def, float *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        if (required) return gq_errf(GQ_ERR_FORMAT, "%s: missing required key '%s'", name, key);
        *out = (float)def;
        return GQ_OK;
    }
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble <= 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: key '%s' must be a positive number", name, key);
    *out = (float)j->valuedouble;
    return GQ_OK;
}

static gq_status cfg_bool(const cJSON *root, const char *name, const char *key, int def, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) {
        *out = def;
        return GQ_OK;
    }
    if (!cJSON_IsBool(j)) return gq_errf(GQ_ERR_FORMAT, "%s: key '%s' must be true or false", name, key);
    *out = cJSON_IsTrue(j);
    return GQ_OK;
}

gq_status gq_hf_config_parse(const char *json, size_t len, const char *name, gq_config *c) {
    memset(c, 0, sizeof *c);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return gq_errf(GQ_ERR_FORMAT, "%s: not valid JSON", name);
    gq_status st = GQ_OK;
    const int big = 1 << 24;
    if (!cJSON_IsObject(root)) {
        st = gq_errf(GQ_ERR_FORMAT, "%s: not a JSON object", name);
        goto done;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt)) {
        st = gq_errf(GQ_ERR_FORMAT, "%s: missing required key 'model_type' (a string such as \"llama\")", name);
        goto done;
    }
    const char *type = mt->valuestring;
    c->rope_style = GQ_ROPE_HALF;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    if (!strcmp(type, "llama") || !strcmp(type, "mistral") || !strcmp(type, "qwen2")) {
        int is_qwen = !strcmp(type, "qwen2");
        c->arch = is_qwen ? GQ_ARCH_QWEN2 : GQ_ARCH_LLAMA;
        c->qkv_bias = is_qwen;
        if ((st = cfg_int(root, name, "hidden_size", 1, 0, 1, big, &c->dim)) ||
            (st = cfg_int(root, name, "intermediate_size", 1, 0, 1, big, &c->hidden_dim)) ||
            (st = cfg_int(root, name, "num_hidden_layers", 1, 0, 1, big, &c->n_layers)) ||
            (st = cfg_int(root, name, "num_attention_heads", 1, 0, 1, big, &c->n_heads)) ||
            (st = cfg_int(root, name, "num_key_value_heads", 0, c->n_heads, 1, big, &c->n_kv_heads)) ||
            (st = cfg_int(root, name, "vocab_size", 1, 0, 1, big, &c->vocab_size)) ||
            (st = cfg_num(root, name, "rms_norm_eps", 1, 0, &c->norm_eps)) ||
            (st = cfg_num(root, name, "rope_theta", 0, 10000.0, &c->rope_theta)) ||
            (st = cfg_int(root, name, "max_position_embeddings", 0, 2048, 1, 1 << 30, &c->max_seq_len)) ||
            (st = cfg_bool(root, name, "tie_word_embeddings", 0, &c->tied_embeddings)) ||
            (st = cfg_int(root, name, "bos_token_id", 0, -1, 0, big, &c->bos_id)) ||
            (st = cfg_int(root, name, "eos_token_id", 0, -1, 0, big, &c->eos_id)))
            goto done;
        if (c->dim % c->n_heads != 0) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", name, c->dim, c->n_heads);
            goto done;
        }
        if ((st = cfg_int(root, name, "head_dim", 0, c->dim / c->n_heads, 1, big, &c->head_dim))) goto done;
        const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
        if (rs && !cJSON_IsNull(rs)) {
            st = gq_errf(GQ_ERR_UNSUPPORTED, "%s: key 'rope_scaling' is set; scaled RoPE (LLaMA-3.1 style, YaRN, ...) is not "
                         "supported", name);
            goto done;
        }
        const cJSON *hact = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
        if (hact && (!cJSON_IsString(hact) || strcmp(hact->valuestring, "silu") != 0)) {
            st = gq_errf(GQ_ERR_UNSUPPORTED, "%s: key 'hidden_act' must be \"silu\" for %s models", name, type);
            goto done;
        }
        c->add_bos = c->bos_id >= 0 && !is_qwen; /* HF LlamaTokenizer adds BOS; Qwen2's tokenizer does not */
    } else if (!strcmp(type, "opt")) {
        c->arch = GQ_ARCH_OPT;
        int ln_before = 1;
        if ((st = cfg_int(root, name, "hidden_size", 1, 0, 1, big, &c->dim)) ||
            (st = cfg_int(root, name, "ffn_dim", 1, 0, 1, big, &c->opt_ffn_dim)) ||
            (st = cfg_int(root, name, "num_hidden_layers", 1, 0, 1, big, &c->n_layers)) ||
            (st = cfg_int(root, name, "num_attention_heads", 1, 0, 1, big, &c->n_heads)) ||
            (st = cfg_int(root, name, "vocab_size", 1, 0, 1, big, &c->vocab_size)) ||
            (st = cfg_int(root, name, "max_position_embeddings", 1, 0, 1, 1 << 30, &c->max_seq_len)) ||
            (st = cfg_bool(root, name, "do_layer_norm_before", 1, &ln_before)) ||
            (st = cfg_int(root, name, "word_embed_proj_dim", 0, c->dim, 1, big, &c->opt_word_embed_proj_dim)) ||
            (st = cfg_bool(root, name, "tie_word_embeddings", 1, &c->tied_embeddings)) ||
            (st = cfg_int(root, name, "bos_token_id", 0, 2, 0, big, &c->bos_id)) ||
            (st = cfg_int(root, name, "eos_token_id", 0, 2, 0, big, &c->eos_id)))
            goto done;
        c->opt_do_layer_norm_before = ln_before;
        c->hidden_dim = c->opt_ffn_dim;
        c->n_kv_heads = c->n_heads;
        if (c->dim % c->n_heads != 0) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", name, c->dim, c->n_heads);
            goto done;
        }
        c->head_dim = c->dim / c->n_heads;
        c->add_bos = 1; /* OPT's GPT2Tokenizer prepends </s> (id 2) */
    } else {
        st = gq_errf(GQ_ERR_UNSUPPORTED, "%s: model_type '%.64s' is not supported (llama, mistral, qwen2, opt are)", name, type);
        goto done;
    }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(root, "_name_or_path");
    snprintf(c->name, sizeof c->name, "%s", cJSON_IsString(nm) ? nm->valuestring : type);
    st = gq_config_validate(c, name);
done:
    cJSON_Delete(root);
    return st;
}

gq_status gq_hf_config_load(const char *path, gq_config *cfg) {
    char *data;
    size_t len;
    GQ_TRY(gq_read_file(path, &data, &len));
    gq_status st = gq_hf_config_parse(data, len, path, cfg);
    free(data);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* model */

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The set of shards of one checkpoint; lookup searches them all (names are unique across shards). */
typedef struct {
    gq_st_file **f;
    size_t n;
} shards;

static void shards_free(shards *s) {
    for (size_t i = 0; i < s->n; i++) gq_st_close(s->f[i]);
    free(s->f);
}

static const gq_st_tensor *shards_find(const shards *s, const char *name, const gq_st_file **owner) {
    for (size_t i = 0; i < s->n; i++) {
        const gq_st_tensor *t = gq_st_find(s->f[i], name);
        if (t) {
            *owner = s->f[i];
            return t;
        }
    }
    return NULL;
}

static gq_status shards_add(shards *s, const char *path) {
    gq_st_file *f;
    GQ_TRY(gq_st_open(path, &f));
    s->f = gq_realloc(s->f, (s->n + 1) * sizeof *s->f);
    s->f[s->n++] = f;
    return GQ_OK;
}

/* Open the shards listed in an index.json's weight_map (each distinct file once). */
static gq_status shards_from_index(shards *s, const char *dir, const char *index_path) {
    char *data;
    size_t len;
    GQ_TRY(gq_read_file(index_path, &data, &len));
    cJSON *root = cJSON_ParseWithLength(data, len);
    free(data);
    gq_status st = GQ_OK;
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(wm)) {
        st = gq_errf(GQ_ERR_FORMAT, "%s: not JSON with a 'weight_map' object", index_path);
        goto done;
    }
    char **seen = NULL;
    size_t n_seen = 0;
    for (const cJSON *e = wm->child; e && st == GQ_OK; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..")) {
            st = gq_errf(GQ_ERR_FORMAT, "%s: weight_map entry '%s' must name a file in the same directory", index_path,
                         e->string ? e->string : "");
            break;
        }
        int dup = 0;
        for (size_t i = 0; i < n_seen; i++) dup |= !strcmp(seen[i], e->valuestring);
        if (dup) continue;
        seen = gq_realloc(seen, (n_seen + 1) * sizeof *seen);
        seen[n_seen++] = e->valuestring;
        char p[2048];
        snprintf(p, sizeof p, "%s/%s", dir, e->valuestring);
        st = shards_add(s, p);
    }
    free(seen);
done:
    cJSON_Delete(root);
    return st;
}

static const char *k_lin_hf[GQ_LIN_COUNT] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                             "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

/* Find `name` with shape [rows, cols] (cols == 0: 1-D [rows]) and a float dtype. */
static gq_status st_check(const shards *s, const char *name, uint64_t rows, uint64_t cols, const gq_st_tensor **t,
                          const gq_st_file **owner, const char *what) {
    *t = shards_find(s, name, owner);
    if (!*t) return gq_errf(GQ_ERR_FORMAT, "%s: missing tensor '%s'", what, name);
    const gq_st_tensor *x = *t;
    int ok = cols == 0 ? (x->n_dims == 1 && x->shape[0] == rows) : (x->n_dims == 2 && x->shape[0] == rows && x->shape[1] == cols);
    if (!ok) {
        char shape[160] = "";
        for (int d = 0; d < x->n_dims; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu", d ? ", " : "", (unsigned long long)x->shape[d]);
        if (cols)
            return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has shape [%s], expected [%llu, %llu]", (*owner)->path, name, shape,
                           (unsigned long long)rows, (unsigned long long)cols);
        return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has shape [%s], expected [%llu]", (*owner)->path, name, shape,
                       (unsigned long long)rows);
    }
    if (strcmp(x->dtype, "F32") && strcmp(x->dtype, "F16") && strcmp(x->dtype, "BF16"))
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; gqsa reads F32, F16 and BF16", (*owner)->path, name,
                       x->dtype);
    return GQ_OK;
}

/* Visit every tensor the model needs: check only (m == NULL) or check and copy. */
static gq_status st_visit(const shards *s, const gq_config *c, gq_model *m, const char *what) {
    const gq_st_tensor *t;
    const gq_st_file *o;
    uint64_t V = (uint64_t)c->vocab_size, D = (uint64_t)c->dim, H = (uint64_t)c->hidden_dim;
    uint64_t QD = (uint64_t)c->n_heads * (uint64_t)c->head_dim, KVD = (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim;
    char name[128];
#define VISIT(nm_, r_, c_, dst_)                                                                                       \
    do {                                                                                                               \
        GQ_TRY(st_check(s, (nm_), (r_), (c_), &t, &o, what));                                                          \
        if (m) GQ_TRY(gq_st_tensor_to_f32(o, t, (dst_), t->n_elems));                                                  \
    } while (0)
    VISIT("model.embed_tokens.weight", V, D, m ? m->tok_emb : NULL);
    VISIT("model.norm.weight", D, 0, m ? m->final_norm : NULL);
    if (!c->tied_embeddings) VISIT("lm_head.weight", V, D, m ? m->lm_head : NULL);
    for (int l = 0; l < c->n_layers; l++) {
        gq_block *b = m ? &m->blocks[l] : NULL;
        uint64_t shp[GQ_LIN_COUNT][2] = {{QD, D}, {KVD, D}, {KVD, D}, {D, QD}, {H, D}, {H, D}, {D, H}};
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        VISIT(name, D, 0, b ? b->attn_norm : NULL);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        VISIT(name, D, 0, b ? b->ffn_norm : NULL);
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, k_lin_hf[k]);
            VISIT(name, shp[k][0], shp[k][1], b ? b->lin[k].w : NULL);
            if (c->qkv_bias && k <= GQ_LIN_V) {
                snprintf(name, sizeof name, "model.layers.%d.%s.bias", l, k_lin_hf[k]);
                VISIT(name, shp[k][0], 0, b ? b->lin[k].bias : NULL);
            }
        }
    }
#undef VISIT
    return GQ_OK;
}

gq_status gq_model_load_safetensors(const char *path, gq_model **out) {
    *out = NULL;
    char dir[1024], p[2048];
    struct stat sb;
    if (stat(path, &sb) != 0) return gq_errf(GQ_ERR_IO, "%s: no such file or directory", path);
    int is_dir = S_ISDIR(sb.st_mode);
    if ((size_t)snprintf(dir, sizeof dir, "%s", path) >= sizeof dir) return gq_errf(GQ_ERR_ARG, "%s: path too long", path);
    if (!is_dir) {
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
    }
    gq_config c;
    snprintf(p, sizeof p, "%s/config.json", dir);
    if (!is_file(p))
        return gq_errf(GQ_ERR_FORMAT, "%s: no config.json beside the weights (looked for %s)", path, p);
    GQ_TRY(gq_hf_config_load(p, &c));
    if (c.arch == GQ_ARCH_OPT)
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: OPT config read (dim %d, ffn_dim %d, %d layers), but loading OPT weights is "
                       "not implemented yet", p, c.dim, c.opt_ffn_dim, c.n_layers);

    shards s = {0};
    gq_status st;
    /* a .safetensors file itself; an *.index.json; or (a directory or its config.json) the single file,
     * else the standard index name */
    size_t pl = strlen(path);
    int is_json = pl >= 5 && !strcmp(path + pl - 5, ".json");
    int is_index = pl >= 11 && !strcmp(path + pl - 11, ".index.json");
    if (!is_dir && !is_json) {
        st = shards_add(&s, path);
    } else if (is_index) {
        st = shards_from_index(&s, dir, path);
    } else {
        char idx[2048], single[2048];
        snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
        snprintf(single, sizeof single, "%s/model.safetensors", dir);
        if (is_file(single)) st = shards_add(&s, single);
        else if (is_file(idx)) st = shards_from_index(&s, dir, idx);
        else st = gq_errf(GQ_ERR_FORMAT, "%s: no model.safetensors or model.safetensors.index.json in %s", path, dir);
    }
    if (st == GQ_OK) st = st_visit(&s, &c, NULL, path);
    gq_model *m = NULL;
    if (st == GQ_OK) {
        m = gq_model_alloc(&c);
        snprintf(m->source, sizeof m->source, "%s", path);
        snprintf(m->format, sizeof m->format, "safetensors");
        st = st_visit(&s, &c, m, path);
    }
    shards_free(&s);
    if (st == GQ_OK) {
        const char *names[2] = {"tokenizer.json", "tokenizer.model"};
        for (int i = 0; i < 2; i++) {
            snprintf(p, sizeof p, "%s/%s", dir, names[i]);
            if (!is_file(p)) continue;
            st = gq_tokenizer_load(p, c.vocab_size, &m->tok);
            if (st != GQ_OK) gq_err_prefix(st, "%s: loading its tokenizer: ", path);
            break;
        }
    }
    if (st != GQ_OK) {
        gq_model_free(m);
        return st;
    }
    *out = m;
    return GQ_OK;
}
