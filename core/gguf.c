/* gguf.c — GGUF v2/v3 reader and the scalar reference dequantizers for the ggml block types gqsa reads.
 *
 * The parser walks the file once with a bounds-checked cursor: every count is checked against the bytes
 * left before anything is allocated for it, so a hostile file cannot make us allocate more than a small
 * multiple of its own size. Tensor infos are validated as a whole afterwards (types, dims, overflow,
 * block divisibility, alignment, bounds, overlaps).
 * Must not: build model structs or tokenizers; abort on any input; assume the buffer is aligned.
 */
#include "gguf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_formats.h"

/* ------------------------------------------------------------------------------------------ */
/* ggml block layouts (the scalar reference; sizes are part of the on-disk format) */

typedef struct { uint16_t d; uint8_t qs[16]; } gq_block_q4_0;        /* value (nib - 8) * d */
typedef struct { uint16_t d, m; uint8_t qs[16]; } gq_block_q4_1;     /* value nib * d + m */
typedef struct { uint16_t d; int8_t qs[32]; } gq_block_q8_0;         /* value q * d */
static_assert(sizeof(gq_block_q4_0) == 18, "ggml block_q4_0 is 18 bytes");
static_assert(sizeof(gq_block_q4_1) == 20, "ggml block_q4_1 is 20 bytes");
static_assert(sizeof(gq_block_q8_0) == 34, "ggml block_q8_0 is 34 bytes");

#define GQ_QK 32 /* elements per Q4_0/Q4_1/Q8_0 block */

/* Blocks are copied out with memcpy: tensor data inside a file need not be 2-byte aligned. Only
 * little-endian hosts are supported (as ggml), so the fp16 fields read directly. */
void gq_dequant_q4_0(const uint8_t *src, float *dst, uint64_t n) {
    GQ_ASSERT(n % GQ_QK == 0);
    for (uint64_t b = 0; b < n / GQ_QK; b++) {
        gq_block_q4_0 blk;
        memcpy(&blk, src + b * sizeof blk, sizeof blk);
        float d = gq_fp16_to_fp32(blk.d);
        float *o = dst + b * GQ_QK;
        for (int j = 0; j < 16; j++) {
            o[j] = (float)((int)(blk.qs[j] & 0x0f) - 8) * d;
            o[j + 16] = (float)((int)(blk.qs[j] >> 4) - 8) * d;
        }
    }
}

void gq_dequant_q4_1(const uint8_t *src, float *dst, uint64_t n) {
    GQ_ASSERT(n % GQ_QK == 0);
    for (uint64_t b = 0; b < n / GQ_QK; b++) {
        gq_block_q4_1 blk;
        memcpy(&blk, src + b * sizeof blk, sizeof blk);
        float d = gq_fp16_to_fp32(blk.d), m = gq_fp16_to_fp32(blk.m);
        float *o = dst + b * GQ_QK;
        for (int j = 0; j < 16; j++) {
            o[j] = (float)(blk.qs[j] & 0x0f) * d + m;
            o[j + 16] = (float)(blk.qs[j] >> 4) * d + m;
        }
    }
}

void gq_dequant_q8_0(const uint8_t *src, float *dst, uint64_t n) {
    GQ_ASSERT(n % GQ_QK == 0);
    for (uint64_t b = 0; b < n / GQ_QK; b++) {
        gq_block_q8_0 blk;
        memcpy(&blk, src + b * sizeof blk, sizeof blk);
        float d = gq_fp16_to_fp32(blk.d);
        for (int j = 0; j < GQ_QK; j++) dst[b * GQ_QK + j] = (float)blk.qs[j] * d;
    }
}

/* (block elements, block bytes) of every ggml type, so a file holding types we cannot dequantize
 * (Q6_K, ...) still parses and its layout is validated; 0 marks removed or unknown type ids.
 * Values match the gguf Python package's GGML_QUANT_SIZES. */
static const struct { uint32_t blck, size; const char *name; } k_types[] = {
    [0] = {1, 4, "F32"},        [1] = {1, 2, "F16"},        [2] = {32, 18, "Q4_0"},
    [3] = {32, 20, "Q4_1"},     [6] = {32, 22, "Q5_0"},     [7] = {32, 24, "Q5_1"},
    [8] = {32, 34, "Q8_0"},     [9] = {32, 40, "Q8_1"},     [10] = {256, 84, "Q2_K"},
    [11] = {256, 110, "Q3_K"},  [12] = {256, 144, "Q4_K"},  [13] = {256, 176, "Q5_K"},
    [14] = {256, 210, "Q6_K"},  [15] = {256, 292, "Q8_K"},  [16] = {256, 66, "IQ2_XXS"},
    [17] = {256, 74, "IQ2_XS"}, [18] = {256, 98, "IQ3_XXS"}, [19] = {256, 50, "IQ1_S"},
    [20] = {32, 18, "IQ4_NL"},  [21] = {256, 110, "IQ3_S"}, [22] = {256, 82, "IQ2_S"},
    [23] = {256, 136, "IQ4_XS"}, [24] = {1, 1, "I8"},       [25] = {1, 2, "I16"},
    [26] = {1, 4, "I32"},       [27] = {1, 8, "I64"},       [28] = {1, 8, "F64"},
    [29] = {256, 56, "IQ1_M"},  [30] = {1, 2, "BF16"},      [34] = {256, 54, "TQ1_0"},
    [35] = {256, 66, "TQ2_0"},  [39] = {32, 17, "MXFP4"},   [40] = {64, 36, "NVFP4"},
    [41] = {128, 18, "Q1_0"},
};
#define GQ_N_TYPES (sizeof k_types / sizeof k_types[0])

const char *gq_ggml_type_name(uint32_t type) {
    if (type < GQ_N_TYPES && k_types[type].blck) return k_types[type].name;
    return "unknown";
}

/* ------------------------------------------------------------------------------------------ */
/* bounds-checked cursor */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
    const char *file;
    gq_status st; /* first failure; every later read is a no-op */
} cursor;

static size_t cur_left(const cursor *c) { return c->len - c->pos; }

static int cur_need(cursor *c, size_t n, const char *what) {
    if (c->st != GQ_OK) return 0;
    if (n > cur_left(c)) {
        c->st = gq_errf(GQ_ERR_FORMAT, "%s: truncated GGUF: %s needs %zu bytes at offset %zu, only %zu left",
                        c->file, what, n, c->pos, cur_left(c));
        return 0;
    }
    return 1;
}

static uint64_t cur_uint(cursor *c, size_t n, const char *what) {
    uint64_t v = 0;
    if (!cur_need(c, n, what)) return 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)c->p[c->pos + i] << (8 * i);
    c->pos += n;
    return v;
}

static gq_gguf_str cur_str(cursor *c, const char *what) {
    gq_gguf_str s = {"", 0};
    uint64_t n = cur_uint(c, 8, what);
    if (c->st != GQ_OK) return s;
    if (n > cur_left(c)) {
        c->st = gq_errf(GQ_ERR_FORMAT, "%s: %s has length %llu at offset %zu but only %zu bytes are left",
                        c->file, what, (unsigned long long)n, c->pos - 8, cur_left(c));
        return s;
    }
    s.s = (const char *)c->p + c->pos;
    s.n = n;
    c->pos += (size_t)n;
    return s;
}

/* Scalar value sizes by type (0 for STRING/ARRAY, which are variable). */
static size_t vtype_size(uint32_t t) {
    switch (t) {
    case GQ_GGUF_U8: case GQ_GGUF_I8: case GQ_GGUF_BOOL: return 1;
    case GQ_GGUF_U16: case GQ_GGUF_I16: return 2;
    case GQ_GGUF_U32: case GQ_GGUF_I32: case GQ_GGUF_F32: return 4;
    case GQ_GGUF_U64: case GQ_GGUF_I64: case GQ_GGUF_F64: return 8;
    default: return 0;
    }
}

static int vtype_valid(uint32_t t) { return t <= GQ_GGUF_F64; }
static int vtype_is_int(uint32_t t) {
    return t == GQ_GGUF_U8 || t == GQ_GGUF_I8 || t == GQ_GGUF_U16 || t == GQ_GGUF_I16 || t == GQ_GGUF_U32 ||
           t == GQ_GGUF_I32 || t == GQ_GGUF_U64 || t == GQ_GGUF_I64 || t == GQ_GGUF_BOOL;
}
static int vtype_is_signed(uint32_t t) {
    return t == GQ_GGUF_I8 || t == GQ_GGUF_I16 || t == GQ_GGUF_I32 || t == GQ_GGUF_I64;
}

/* Decode one little-endian scalar of type t at p into the kv's union. */
static void scalar_decode(uint32_t t, const uint8_t *p, gq_gguf_kv *kv) {
    uint64_t u = 0;
    size_t n = vtype_size(t);
    for (size_t i = 0; i < n; i++) u |= (uint64_t)p[i] << (8 * i);
    switch (t) {
    case GQ_GGUF_I8: kv->v.i = (int8_t)u; break;
    case GQ_GGUF_I16: kv->v.i = (int16_t)u; break;
    case GQ_GGUF_I32: kv->v.i = (int32_t)u; break;
    case GQ_GGUF_I64: kv->v.i = (int64_t)u; break;
    case GQ_GGUF_F32: { float f; uint32_t b = (uint32_t)u; memcpy(&f, &b, 4); kv->v.f = f; break; }
    case GQ_GGUF_F64: { double f; memcpy(&f, &u, 8); kv->v.f = f; break; }
    case GQ_GGUF_BOOL: kv->v.u = u != 0; break;
    default: kv->v.u = u; break;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* parser */

static int str_cmp(const gq_gguf_str *a, const gq_gguf_str *b) {
    size_t n = a->n < b->n ? (size_t)a->n : (size_t)b->n;
    int c = n ? memcmp(a->s, b->s, n) : 0;
    if (c) return c;
    return (a->n > b->n) - (a->n < b->n);
}

static int str_eq_c(const gq_gguf_str *a, const char *s) {
    size_t n = strlen(s);
    return a->n == n && (n == 0 || memcmp(a->s, s, n) == 0);
}

/* qsort context-free comparators over index arrays (pointers into the parsed arrays). */
static int cmp_kv_ptr(const void *a, const void *b) {
    const gq_gguf_kv *x = *(const gq_gguf_kv *const *)a, *y = *(const gq_gguf_kv *const *)b;
    return str_cmp(&x->key, &y->key);
}
static int cmp_tensor_name(const void *a, const void *b) {
    const gq_gguf_tensor *x = *(const gq_gguf_tensor *const *)a, *y = *(const gq_gguf_tensor *const *)b;
    return str_cmp(&x->name, &y->name);
}
static int cmp_tensor_off(const void *a, const void *b) {
    const gq_gguf_tensor *x = *(const gq_gguf_tensor *const *)a, *y = *(const gq_gguf_tensor *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Printable, bounded copy of an on-disk name for messages. */
static const char *show(const gq_gguf_str *s, char *buf, size_t cap) {
    size_t n = s->n < cap - 1 ? (size_t)s->n : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s->s[i];
        buf[i] = (ch >= 32 && ch < 127) ? (char)ch : '?';
    }
    buf[n] = 0;
    return buf;
}

static gq_status parse_kv(cursor *c, gq_gguf *g, gq_gguf_kv *kv) {
    char nb[96];
    kv->key = cur_str(c, "metadata key");
    uint32_t t = (uint32_t)cur_uint(c, 4, "metadata value type");
    if (c->st != GQ_OK) return c->st;
    if (!vtype_valid(t))
        return gq_errf(GQ_ERR_FORMAT, "%s: key '%s' has unknown value type %u", g->path, show(&kv->key, nb, sizeof nb), t);
    kv->type = (gq_gguf_vtype)t;
    if (t == GQ_GGUF_STRING) {
        kv->v.str = cur_str(c, "string value");
        return c->st;
    }
    if (t != GQ_GGUF_ARRAY) {
        if (!cur_need(c, vtype_size(t), "scalar value")) return c->st;
        scalar_decode(t, c->p + c->pos, kv);
        c->pos += vtype_size(t);
        return GQ_OK;
    }
    uint32_t at = (uint32_t)cur_uint(c, 4, "array element type");
    uint64_t n = cur_uint(c, 8, "array length");
    if (c->st != GQ_OK) return c->st;
    if (!vtype_valid(at) || at == GQ_GGUF_ARRAY)
        return gq_errf(GQ_ERR_FORMAT, "%s: key '%s' is an array of unsupported element type %u", g->path,
                       show(&kv->key, nb, sizeof nb), at);
    kv->arr_type = (gq_gguf_vtype)at;
    kv->arr_n = n;
    if (at == GQ_GGUF_STRING) {
        /* each string takes at least its 8-byte length: bound n before allocating */
        if (n > cur_left(c) / 8)
            return gq_errf(GQ_ERR_FORMAT, "%s: key '%s' claims %llu strings but only %zu bytes are left", g->path,
                           show(&kv->key, nb, sizeof nb), (unsigned long long)n, cur_left(c));
        kv->arr_strs = gq_malloc((size_t)(n ? n : 1) * sizeof *kv->arr_strs);
        for (uint64_t i = 0; i < n && c->st == GQ_OK; i++) kv->arr_strs[i] = cur_str(c, "array string");
        if (c->st != GQ_OK) return gq_err_prefix(c->st, "key '%s': ", show(&kv->key, nb, sizeof nb));
        return GQ_OK;
    }
    size_t es = vtype_size(at);
    if (n > cur_left(c) / es)
        return gq_errf(GQ_ERR_FORMAT, "%s: key '%s' claims %llu elements of %zu bytes but only %zu bytes are left",
                       g->path, show(&kv->key, nb, sizeof nb), (unsigned long long)n, es, cur_left(c));
    kv->arr_data = c->p + c->pos;
    c->pos += (size_t)n * es;
    return GQ_OK;
}

static gq_status validate_tensor(gq_gguf *g, gq_gguf_tensor *t) {
    char nb[128];
    const char *name = show(&t->name, nb, sizeof nb);
    if (t->n_dims == 0 || t->n_dims > 4)
        return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1..4 allowed)", g->path, name, t->n_dims);
    if (t->type >= GQ_N_TYPES || k_types[t->type].blck == 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has unknown ggml type %u", g->path, name, t->type);
    uint64_t ne = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (t->dims[d] == 0 || t->dims[d] > (uint64_t)INT64_MAX)
            return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has invalid dimension %u = %llu", g->path, name, d,
                           (unsigned long long)t->dims[d]);
        /* overflow guard: ggml counts elements in int64 */
        if (ne > (uint64_t)INT64_MAX / t->dims[d])
            return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s': element count overflows", g->path, name);
        ne *= t->dims[d];
    }
    uint32_t blck = k_types[t->type].blck, bsz = k_types[t->type].size;
    if (t->dims[0] % blck != 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' of type %s has %llu columns, not a multiple of its block size %u",
                       g->path, name, k_types[t->type].name, (unsigned long long)t->dims[0], blck);
    if (ne / blck > UINT64_MAX / bsz)
        return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s': byte size overflows", g->path, name);
    t->n_elems = ne;
    t->n_bytes = ne / blck * bsz;
    if (t->offset % g->alignment != 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' offset %llu is not a multiple of the alignment %llu", g->path,
                       name, (unsigned long long)t->offset, (unsigned long long)g->alignment);
    return GQ_OK;
}

/* Parse g->buf/g->len (already owned by g). */
static gq_status parse(gq_gguf *g) {
    cursor c = {g->buf, g->len, 0, g->path, GQ_OK};
    char nb[128];
    uint32_t magic = (uint32_t)cur_uint(&c, 4, "magic");
    if (c.st != GQ_OK) return c.st;
    if (magic != 0x46554747u) /* "GGUF" */
        return gq_errf(GQ_ERR_FORMAT, "%s: not a GGUF file (bad magic)", g->path);
    g->version = (uint32_t)cur_uint(&c, 4, "version");
    if (c.st != GQ_OK) return c.st;
    if (g->version != 2 && g->version != 3)
        return gq_errf(GQ_ERR_FORMAT, "%s: GGUF version %u is not supported (2 and 3 are; a huge number means a "
                       "big-endian file)", g->path, g->version);
    g->n_tensors = cur_uint(&c, 8, "tensor count");
    g->n_kv = cur_uint(&c, 8, "metadata count");
    if (c.st != GQ_OK) return c.st;
    /* a kv takes at least 8 (key len) + 4 (type) + 1 bytes; a tensor info at least 8+4+8+4+8 */
    if (g->n_kv > cur_left(&c) / 13)
        return gq_errf(GQ_ERR_FORMAT, "%s: metadata count %llu cannot fit in the %zu bytes left", g->path,
                       (unsigned long long)g->n_kv, cur_left(&c));
    if (g->n_tensors > cur_left(&c) / 32)
        return gq_errf(GQ_ERR_FORMAT, "%s: tensor count %llu cannot fit in the %zu bytes left", g->path,
                       (unsigned long long)g->n_tensors, cur_left(&c));
    g->kv = gq_calloc((size_t)g->n_kv + 1, sizeof *g->kv);
    for (uint64_t i = 0; i < g->n_kv; i++) GQ_TRY(parse_kv(&c, g, &g->kv[i]));

    if (g->n_kv) { /* duplicate keys */
        const gq_gguf_kv **ix = gq_malloc((size_t)g->n_kv * sizeof *ix);
        for (uint64_t i = 0; i < g->n_kv; i++) ix[i] = &g->kv[i];
        qsort(ix, (size_t)g->n_kv, sizeof *ix, cmp_kv_ptr);
        for (uint64_t i = 1; i < g->n_kv; i++)
            if (str_cmp(&ix[i - 1]->key, &ix[i]->key) == 0) {
                gq_status st = gq_errf(GQ_ERR_FORMAT, "%s: duplicate metadata key '%s'", g->path, show(&ix[i]->key, nb, sizeof nb));
                free(ix);
                return st;
            }
        free(ix);
    }

    g->alignment = 32;
    const gq_gguf_kv *al = gq_gguf_find(g, "general.alignment");
    if (al) {
        if (!vtype_is_int(al->type) || al->type == GQ_GGUF_BOOL || (vtype_is_signed(al->type) && al->v.i <= 0) ||
            al->v.u == 0 || (al->v.u & (al->v.u - 1)) != 0 || al->v.u > (1u << 24))
            return gq_errf(GQ_ERR_FORMAT, "%s: general.alignment must be a power-of-two integer (got type %d)", g->path,
                           (int)al->type);
        g->alignment = al->v.u;
    }

    g->tensors = gq_calloc((size_t)g->n_tensors + 1, sizeof *g->tensors);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        gq_gguf_tensor *t = &g->tensors[i];
        t->name = cur_str(&c, "tensor name");
        t->n_dims = (uint32_t)cur_uint(&c, 4, "tensor dimension count");
        if (c.st != GQ_OK) return c.st;
        if (t->n_dims == 0 || t->n_dims > 4)
            return gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' has %u dimensions (1..4 allowed)", g->path,
                           show(&t->name, nb, sizeof nb), t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) t->dims[d] = cur_uint(&c, 8, "tensor dimension");
        t->type = (uint32_t)cur_uint(&c, 4, "tensor type");
        t->offset = cur_uint(&c, 8, "tensor offset");
        if (c.st != GQ_OK) return gq_err_prefix(c.st, "tensor %llu: ", (unsigned long long)i);
        GQ_TRY(validate_tensor(g, t));
    }

    /* the data section starts at the next multiple of the alignment */
    size_t data_start = c.pos;
    if (data_start % g->alignment) data_start += (size_t)(g->alignment - data_start % g->alignment);
    if (g->n_tensors && data_start > g->len)
        return gq_errf(GQ_ERR_FORMAT, "%s: truncated GGUF: data section would start at %zu, file has %zu bytes", g->path,
                       data_start, g->len);
    size_t data_len = data_start <= g->len ? g->len - data_start : 0;

    if (g->n_tensors) {
        gq_gguf_tensor **ix = gq_malloc((size_t)g->n_tensors * sizeof *ix);
        gq_status st = GQ_OK;
        for (uint64_t i = 0; i < g->n_tensors; i++) ix[i] = &g->tensors[i];
        qsort(ix, (size_t)g->n_tensors, sizeof *ix, cmp_tensor_name);
        for (uint64_t i = 1; i < g->n_tensors && st == GQ_OK; i++)
            if (str_cmp(&ix[i - 1]->name, &ix[i]->name) == 0)
                st = gq_errf(GQ_ERR_FORMAT, "%s: duplicate tensor name '%s'", g->path, show(&ix[i]->name, nb, sizeof nb));
        if (st == GQ_OK) qsort(ix, (size_t)g->n_tensors, sizeof *ix, cmp_tensor_off);
        for (uint64_t i = 0; i < g->n_tensors && st == GQ_OK; i++) {
            gq_gguf_tensor *t = ix[i];
            if (t->offset > data_len || t->n_bytes > data_len - t->offset)
                st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' data [%llu, +%llu) lies outside the data section (%zu bytes)",
                             g->path, show(&t->name, nb, sizeof nb), (unsigned long long)t->offset,
                             (unsigned long long)t->n_bytes, data_len);
            else if (i > 0 && ix[i - 1]->offset + ix[i - 1]->n_bytes > t->offset)
                st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' overlaps tensor '%s'", g->path, show(&t->name, nb, 64),
                             show(&ix[i - 1]->name, nb + 64, 64));
            else
                t->data = g->buf + data_start + t->offset;
        }
        free(ix);
        if (st != GQ_OK) return st;
    }
    return GQ_OK;
}

static gq_status finish(gq_gguf *g, gq_gguf **out) {
    gq_status st = parse(g);
    if (st != GQ_OK) {
        gq_gguf_close(g);
        return st;
    }
    *out = g;
    return GQ_OK;
}

gq_status gq_file_map(const char *path, uint8_t **buf, size_t *len, int *mapped) {
    *buf = NULL;
    *len = 0;
    *mapped = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return gq_errf(GQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return gq_errf(GQ_ERR_IO, "%s: not a regular file", path);
    }
    if (sb.st_size == 0) {
        close(fd);
        *buf = gq_malloc(1);
        return GQ_OK;
    }
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return gq_errf(GQ_ERR_IO, "%s: cannot map %lld bytes: %s", path, (long long)sb.st_size, strerror(errno));
    *buf = p;
    *len = (size_t)sb.st_size;
    *mapped = 1;
    return GQ_OK;
}

void gq_file_unmap(uint8_t *buf, size_t len, int mapped) {
    if (!buf) return;
    if (mapped) munmap(buf, len);
    else free(buf);
}

gq_status gq_gguf_open(const char *path, gq_gguf **out) {
    *out = NULL;
    uint8_t *data;
    size_t len;
    int mapped;
    GQ_TRY(gq_file_map(path, &data, &len, &mapped));
    gq_gguf *g = gq_calloc(1, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", path);
    g->buf = data;
    g->len = len;
    g->mapped = mapped;
    return finish(g, out);
}

gq_status gq_gguf_parse(const void *data, size_t len, const char *name, gq_gguf **out) {
    *out = NULL;
    gq_gguf *g = gq_calloc(1, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", name ? name : "<memory>");
    g->buf = gq_try_malloc(len);
    if (!g->buf) {
        free(g);
        return gq_errf(GQ_ERR_NOMEM, "%s: cannot allocate %zu bytes", name ? name : "<memory>", len);
    }
    if (len) memcpy(g->buf, data, len);
    g->len = len;
    return finish(g, out);
}

void gq_gguf_close(gq_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) free(g->kv[i].arr_strs);
    free(g->kv);
    free(g->tensors);
    gq_file_unmap(g->buf, g->len, g->mapped);
    free(g);
}

/* ------------------------------------------------------------------------------------------ */
/* lookup */

const gq_gguf_kv *gq_gguf_find(const gq_gguf *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (str_eq_c(&g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const gq_gguf_tensor *gq_gguf_find_tensor(const gq_gguf *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (str_eq_c(&g->tensors[i].name, name)) return &g->tensors[i];
    return NULL;
}

gq_status gq_gguf_get_u64(const gq_gguf *g, const char *key, uint64_t *out) {
    const gq_gguf_kv *kv = gq_gguf_find(g, key);
    if (!kv) return gq_errf(GQ_ERR_FORMAT, "%s: missing metadata key '%s'", g->path, key);
    if (!vtype_is_int(kv->type))
        return gq_errf(GQ_ERR_FORMAT, "%s: metadata key '%s' has type %d, expected an integer", g->path, key, (int)kv->type);
    if (vtype_is_signed(kv->type) && kv->v.i < 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: metadata key '%s' is negative (%lld)", g->path, key, (long long)kv->v.i);
    *out = kv->v.u;
    return GQ_OK;
}

gq_status gq_gguf_get_f64(const gq_gguf *g, const char *key, double *out) {
    const gq_gguf_kv *kv = gq_gguf_find(g, key);
    if (!kv) return gq_errf(GQ_ERR_FORMAT, "%s: missing metadata key '%s'", g->path, key);
    if (kv->type == GQ_GGUF_F32 || kv->type == GQ_GGUF_F64) *out = kv->v.f;
    else if (vtype_is_signed(kv->type)) *out = (double)kv->v.i;
    else if (vtype_is_int(kv->type)) *out = (double)kv->v.u;
    else return gq_errf(GQ_ERR_FORMAT, "%s: metadata key '%s' has type %d, expected a number", g->path, key, (int)kv->type);
    return GQ_OK;
}

gq_status gq_gguf_get_str(const gq_gguf *g, const char *key, gq_gguf_str *out) {
    const gq_gguf_kv *kv = gq_gguf_find(g, key);
    if (!kv) return gq_errf(GQ_ERR_FORMAT, "%s: missing metadata key '%s'", g->path, key);
    if (kv->type != GQ_GGUF_STRING)
        return gq_errf(GQ_ERR_FORMAT, "%s: metadata key '%s' has type %d, expected a string", g->path, key, (int)kv->type);
    *out = kv->v.str;
    return GQ_OK;
}

static void arr_elem(const gq_gguf_kv *kv, uint64_t i, gq_gguf_kv *tmp) {
    GQ_ASSERT(kv->type == GQ_GGUF_ARRAY && i < kv->arr_n && vtype_size(kv->arr_type) > 0);
    memset(tmp, 0, sizeof *tmp);
    scalar_decode(kv->arr_type, kv->arr_data + i * vtype_size(kv->arr_type), tmp);
}

double gq_gguf_arr_f64(const gq_gguf_kv *kv, uint64_t i) {
    gq_gguf_kv e;
    arr_elem(kv, i, &e);
    if (kv->arr_type == GQ_GGUF_F32 || kv->arr_type == GQ_GGUF_F64) return e.v.f;
    if (vtype_is_signed(kv->arr_type)) return (double)e.v.i;
    return (double)e.v.u;
}

int64_t gq_gguf_arr_i64(const gq_gguf_kv *kv, uint64_t i) {
    gq_gguf_kv e;
    arr_elem(kv, i, &e);
    if (kv->arr_type == GQ_GGUF_F32 || kv->arr_type == GQ_GGUF_F64) return (int64_t)e.v.f;
    if (vtype_is_signed(kv->arr_type)) return e.v.i;
    return (int64_t)e.v.u;
}

/* ------------------------------------------------------------------------------------------ */
/* tensor conversion */

gq_status gq_gguf_tensor_to_f32(const gq_gguf *g, const gq_gguf_tensor *t, float *out, uint64_t n) {
    GQ_ASSERT(n == t->n_elems && t->data != NULL);
    char nb[128];
    switch (t->type) {
    case GQ_GGML_F32: memcpy(out, t->data, (size_t)n * 4); return GQ_OK;
    case GQ_GGML_F16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = gq_fp16_to_fp32(h);
        }
        return GQ_OK;
    case GQ_GGML_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, t->data + 2 * i, 2);
            out[i] = gq_bf16_to_fp32(h);
        }
        return GQ_OK;
    case GQ_GGML_Q4_0: gq_dequant_q4_0(t->data, out, n); return GQ_OK;
    case GQ_GGML_Q4_1: gq_dequant_q4_1(t->data, out, n); return GQ_OK;
    case GQ_GGML_Q8_0: gq_dequant_q8_0(t->data, out, n); return GQ_OK;
    default:
        return gq_errf(GQ_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has ggml type %s, which gqsa does not dequantize (F32, F16, BF16, Q8_0, Q4_0, "
                       "Q4_1 are supported)\nHINT: re-export the model with one of those types",
                       g->path, show(&t->name, nb, sizeof nb), gq_ggml_type_name(t->type));
    }
}
