/* export_gguf.c — GGUF v3 writer and the export of a (compressed) model (see export_gguf.h).
 *
 * Byte order: GGUF is little-endian and so are the hosts gqsa builds for; scalars are still encoded
 * byte by byte so the header never depends on it, and bulk data is copied as is (checked below).
 * Must not: read GGUF, modify the model being exported, print.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "export_gguf.h"
#include "tokenizer_export.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF writer copies tensor data as is: a big-endian host needs byte swapping here"
#endif

/* ------------------------------------------------------------------------------------------ */
/* growable byte buffer */

typedef struct { uint8_t *p; size_t n, cap; } bbuf;

static void bb_put(bbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        size_t c = b->cap ? b->cap : 256;
        while (c < b->n + n) c *= 2;
        b->p = gq_realloc(b->p, c);
        b->cap = c;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u32(bbuf *b, uint32_t v) {
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    bb_put(b, x, 4);
}
static void bb_u64(bbuf *b, uint64_t v) {
    uint8_t x[8];
    for (int i = 0; i < 8; i++) x[i] = (uint8_t)(v >> (8 * i));
    bb_put(b, x, 8);
}
static void bb_str(bbuf *b, const char *s, size_t n) {
    bb_u64(b, n);
    bb_put(b, s, n);
}

/* ------------------------------------------------------------------------------------------ */
/* writer */

typedef struct {
    char *key;
    bbuf enc; /* the whole serialized kv: key, type, value */
} wkv;

typedef enum { SRC_RAW = 0, SRC_OWNED, SRC_F32 } src_kind;

typedef struct {
    char *name;
    uint32_t type;
    int n_dims;
    uint64_t dims[4];
    const void *data;
    uint64_t n_bytes; /* on disk */
    uint64_t offset;  /* in the data section */
    src_kind src;
} wtensor;

struct gq_ggufw {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
    gq_status st; /* first recorded error */
    char err[512];
    uint64_t fault_after;
    int written;
};

gq_ggufw *gq_ggufw_new(void) { return gq_calloc(1, sizeof(gq_ggufw)); }

void gq_ggufw_free(gq_ggufw *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].enc.p);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        if (w->t[i].src == SRC_OWNED) free((void *)w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

void gq_ggufw_set_fault_after(gq_ggufw *w, uint64_t bytes) { w->fault_after = bytes; }

static void w_fail(gq_ggufw *w, gq_status st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void w_fail(gq_ggufw *w, gq_status st, const char *fmt, ...) {
    if (w->st != GQ_OK) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    w->st = st;
}

/* Start a kv: NULL (error recorded) on a duplicate or bad key. */
static bbuf *kv_begin(gq_ggufw *w, const char *key, gq_gguf_vtype type) {
    GQ_ASSERT(w && key);
    if (!key[0]) {
        w_fail(w, GQ_ERR_ARG, "GGUF metadata key is empty");
        return NULL;
    }
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, key)) {
            w_fail(w, GQ_ERR_ARG, "GGUF metadata key '%s' set twice", key);
            return NULL;
        }
    if (w->n_kv == w->cap_kv) {
        w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 32;
        w->kv = gq_realloc(w->kv, w->cap_kv * sizeof *w->kv);
    }
    wkv *k = &w->kv[w->n_kv++];
    k->key = gq_strdup(key);
    memset(&k->enc, 0, sizeof k->enc);
    bb_str(&k->enc, key, strlen(key));
    bb_u32(&k->enc, (uint32_t)type);
    return &k->enc;
}

static size_t vt_size(gq_gguf_vtype t) {
    switch (t) {
    case GQ_GGUF_U8: case GQ_GGUF_I8: case GQ_GGUF_BOOL: return 1;
    case GQ_GGUF_U16: case GQ_GGUF_I16: return 2;
    case GQ_GGUF_U32: case GQ_GGUF_I32: case GQ_GGUF_F32: return 4;
    case GQ_GGUF_U64: case GQ_GGUF_I64: case GQ_GGUF_F64: return 8;
    default: return 0;
    }
}

static void set_scalar(gq_ggufw *w, const char *key, gq_gguf_vtype t, const void *v) {
    bbuf *b = kv_begin(w, key, t);
    if (b) bb_put(b, v, vt_size(t)); /* host is little-endian (checked at the top) */
}

void gq_ggufw_set_u8(gq_ggufw *w, const char *key, uint8_t v) { set_scalar(w, key, GQ_GGUF_U8, &v); }
void gq_ggufw_set_i8(gq_ggufw *w, const char *key, int8_t v) { set_scalar(w, key, GQ_GGUF_I8, &v); }
void gq_ggufw_set_u16(gq_ggufw *w, const char *key, uint16_t v) { set_scalar(w, key, GQ_GGUF_U16, &v); }
void gq_ggufw_set_i16(gq_ggufw *w, const char *key, int16_t v) { set_scalar(w, key, GQ_GGUF_I16, &v); }
void gq_ggufw_set_u32(gq_ggufw *w, const char *key, uint32_t v) { set_scalar(w, key, GQ_GGUF_U32, &v); }
void gq_ggufw_set_i32(gq_ggufw *w, const char *key, int32_t v) { set_scalar(w, key, GQ_GGUF_I32, &v); }
void gq_ggufw_set_u64(gq_ggufw *w, const char *key, uint64_t v) { set_scalar(w, key, GQ_GGUF_U64, &v); }
void gq_ggufw_set_i64(gq_ggufw *w, const char *key, int64_t v) { set_scalar(w, key, GQ_GGUF_I64, &v); }
void gq_ggufw_set_f32(gq_ggufw *w, const char *key, float v) { set_scalar(w, key, GQ_GGUF_F32, &v); }
void gq_ggufw_set_f64(gq_ggufw *w, const char *key, double v) { set_scalar(w, key, GQ_GGUF_F64, &v); }
void gq_ggufw_set_bool(gq_ggufw *w, const char *key, int v) {
    uint8_t b = v != 0;
    set_scalar(w, key, GQ_GGUF_BOOL, &b);
}
void gq_ggufw_set_str(gq_ggufw *w, const char *key, const char *v) {
    GQ_ASSERT(v);
    bbuf *b = kv_begin(w, key, GQ_GGUF_STRING);
    if (b) bb_str(b, v, strlen(v));
}

void gq_ggufw_set_arr(gq_ggufw *w, const char *key, gq_gguf_vtype elem, const void *data, uint64_t n) {
    GQ_ASSERT(vt_size(elem) > 0 && (data || n == 0));
    size_t bytes;
    if (gq_mul_overflow((size_t)n, vt_size(elem), &bytes)) {
        w_fail(w, GQ_ERR_ARG, "GGUF array '%s': %llu elements overflow", key, (unsigned long long)n);
        return;
    }
    bbuf *b = kv_begin(w, key, GQ_GGUF_ARRAY);
    if (!b) return;
    bb_u32(b, (uint32_t)elem);
    bb_u64(b, n);
    bb_put(b, data, bytes);
}

void gq_ggufw_set_arr_str(gq_ggufw *w, const char *key, const char *const *strs, const size_t *lens, uint64_t n) {
    GQ_ASSERT(strs || n == 0);
    bbuf *b = kv_begin(w, key, GQ_GGUF_ARRAY);
    if (!b) return;
    bb_u32(b, (uint32_t)GQ_GGUF_STRING);
    bb_u64(b, n);
    for (uint64_t i = 0; i < n; i++) bb_str(b, strs[i], lens ? lens[i] : strlen(strs[i]));
}

/* Bytes per element of the types whose size the writer checks; 0 = not checked. */
static uint64_t type_elem_bytes(uint32_t type) {
    switch (type) {
    case GQ_GGML_F32: case GQ_GGUFW_I32: return 4;
    case GQ_GGML_F16: case GQ_GGML_BF16: case GQ_GGUFW_I16: return 2;
    case GQ_GGUFW_I8: return 1;
    case GQ_GGUFW_I64: case GQ_GGUFW_F64: return 8;
    default: return 0;
    }
}

static wtensor *tensor_begin(gq_ggufw *w, const char *name, uint32_t type, int n_dims, const uint64_t *dims) {
    GQ_ASSERT(w && name && dims);
    if (!name[0] || strlen(name) >= 64) {
        /* ggml's GGML_MAX_NAME is 64 including the NUL: longer names do not load in llama.cpp */
        w_fail(w, GQ_ERR_ARG, "GGUF tensor name '%s' is empty or longer than 63 bytes", name);
        return NULL;
    }
    if (n_dims < 1 || n_dims > 4) {
        w_fail(w, GQ_ERR_ARG, "GGUF tensor '%s': %d dims (1..4 allowed)", name, n_dims);
        return NULL;
    }
    uint64_t ne = 1;
    for (int d = 0; d < n_dims; d++) {
        if (dims[d] == 0 || ne > UINT64_MAX / dims[d]) {
            w_fail(w, GQ_ERR_ARG, "GGUF tensor '%s': dim %d is %llu (must be >= 1, product must fit 64 bits)", name, d,
                   (unsigned long long)dims[d]);
            return NULL;
        }
        ne *= dims[d];
    }
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) {
            w_fail(w, GQ_ERR_ARG, "GGUF tensor '%s' added twice", name);
            return NULL;
        }
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 64;
        w->t = gq_realloc(w->t, w->cap_t * sizeof *w->t);
    }
    wtensor *t = &w->t[w->n_t++];
    memset(t, 0, sizeof *t);
    t->name = gq_strdup(name);
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++) t->dims[d] = dims[d];
    uint64_t eb = type_elem_bytes(type);
    t->n_bytes = eb ? ne * eb : 0; /* overflow impossible for element counts that fit memory */
    return t;
}

static void add_raw(gq_ggufw *w, const char *name, uint32_t type, int n_dims, const uint64_t *dims, const void *data,
                    uint64_t n_bytes, src_kind src) {
    wtensor *t = tensor_begin(w, name, type, n_dims, dims);
    if (!t) {
        if (src == SRC_OWNED) free((void *)data);
        return;
    }
    t->data = data;
    t->src = src;
    if (t->n_bytes && t->n_bytes != n_bytes)
        w_fail(w, GQ_ERR_ARG, "GGUF tensor '%s': %llu bytes given, type %s and dims imply %llu", name,
               (unsigned long long)n_bytes, gq_ggml_type_name(type), (unsigned long long)t->n_bytes);
    if (!n_bytes) w_fail(w, GQ_ERR_ARG, "GGUF tensor '%s' has no data", name);
    t->n_bytes = n_bytes;
    GQ_ASSERT(data);
}

void gq_ggufw_add_tensor(gq_ggufw *w, const char *name, uint32_t type, int n_dims, const uint64_t *dims,
                         const void *data, uint64_t n_bytes) {
    add_raw(w, name, type, n_dims, dims, data, n_bytes, SRC_RAW);
}

void gq_ggufw_add_tensor_owned(gq_ggufw *w, const char *name, uint32_t type, int n_dims, const uint64_t *dims,
                               void *data, uint64_t n_bytes) {
    add_raw(w, name, type, n_dims, dims, data, n_bytes, SRC_OWNED);
}

void gq_ggufw_add_tensor_f32(gq_ggufw *w, const char *name, uint32_t type, int n_dims, const uint64_t *dims,
                             const float *data) {
    GQ_ASSERT(type == GQ_GGML_F32 || type == GQ_GGML_F16);
    GQ_ASSERT(data);
    wtensor *t = tensor_begin(w, name, type, n_dims, dims);
    if (!t) return;
    t->data = data;
    t->src = SRC_F32;
}

/* ---- the byte sink: a FILE with a byte count (for fault injection and error reporting) */

typedef struct {
    FILE *f;
    uint64_t n, fault_after;
    int failed;
} sink;

static void sk_put(sink *s, const void *d, size_t n) {
    if (s->failed || !n) return;
    if (s->fault_after && s->n + n > s->fault_after) {
        s->failed = ENOSPC; /* injected */
        return;
    }
    if (fwrite(d, 1, n, s->f) != n) s->failed = errno ? errno : EIO;
    s->n += n;
}

static void sk_pad(sink *s, uint64_t align) {
    static const uint8_t zero[GQ_GGUFW_ALIGNMENT];
    uint64_t r = s->n % align;
    if (r) sk_put(s, zero, (size_t)(align - r));
}

static void write_tensor_data(sink *s, const wtensor *t) {
    if (t->src != SRC_F32) {
        sk_put(s, t->data, (size_t)t->n_bytes);
        return;
    }
    const float *x = t->data;
    uint64_t ne = t->n_bytes / (t->type == GQ_GGML_F32 ? 4 : 2);
    if (t->type == GQ_GGML_F32) {
        sk_put(s, x, (size_t)t->n_bytes);
        return;
    }
    uint16_t buf[4096];
    for (uint64_t i = 0; i < ne && !s->failed; i += 4096) {
        size_t m = (size_t)(ne - i < 4096 ? ne - i : 4096);
        for (size_t j = 0; j < m; j++) buf[j] = gq_fp32_to_fp16(x[i + j]);
        sk_put(s, buf, m * 2);
    }
}

gq_status gq_ggufw_write(gq_ggufw *w, const char *path) {
    GQ_ASSERT(w && path);
    GQ_ASSERT(!w->written);
    w->written = 1;
    if (w->st != GQ_OK) return gq_errf(w->st, "%s: %s", path, w->err);

    /* general.alignment is what readers use: only the default is written by this writer */
    for (size_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->kv[i].key, "general.alignment"))
            return gq_errf(GQ_ERR_ARG, "%s: general.alignment is set by the writer (%d), not by callers", path,
                           GQ_GGUFW_ALIGNMENT);

    bbuf hdr = {0};
    bb_put(&hdr, "GGUF", 4);
    bb_u32(&hdr, 3);
    bb_u64(&hdr, (uint64_t)w->n_t);
    bb_u64(&hdr, (uint64_t)w->n_kv + 1);
    for (size_t i = 0; i < w->n_kv; i++) bb_put(&hdr, w->kv[i].enc.p, w->kv[i].enc.n);
    bb_str(&hdr, "general.alignment", strlen("general.alignment"));
    bb_u32(&hdr, GQ_GGUF_U32);
    bb_u32(&hdr, GQ_GGUFW_ALIGNMENT);
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        wtensor *t = &w->t[i];
        if (t->src == SRC_F32) {
            uint64_t ne = 1;
            for (int d = 0; d < t->n_dims; d++) ne *= t->dims[d];
            t->n_bytes = ne * (t->type == GQ_GGML_F32 ? 4 : 2);
        }
        t->offset = off;
        off += t->n_bytes;
        off += (GQ_GGUFW_ALIGNMENT - off % GQ_GGUFW_ALIGNMENT) % GQ_GGUFW_ALIGNMENT;
        bb_str(&hdr, t->name, strlen(t->name));
        bb_u32(&hdr, (uint32_t)t->n_dims);
        for (int d = 0; d < t->n_dims; d++) bb_u64(&hdr, t->dims[d]);
        bb_u32(&hdr, t->type);
        bb_u64(&hdr, t->offset);
    }

    size_t pl = strlen(path);
    char *tmp = gq_malloc(pl + 16);
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        gq_status st = gq_errf(GQ_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        free(tmp);
        free(hdr.p);
        return st;
    }
    fchmod(fd, 0644); /* mkstemp makes 0600; a model file is meant to be shared like any other */
    sink s = {fdopen(fd, "wb"), 0, w->fault_after, 0};
    if (!s.f) {
        close(fd);
        s.failed = errno ? errno : EIO;
    } else {
        setvbuf(s.f, NULL, _IOFBF, 1 << 20);
        sk_put(&s, hdr.p, hdr.n);
        sk_pad(&s, GQ_GGUFW_ALIGNMENT);
        uint64_t data_start = s.n;
        for (size_t i = 0; i < w->n_t && !s.failed; i++) {
            GQ_ASSERT(s.failed || s.n - data_start == w->t[i].offset);
            write_tensor_data(&s, &w->t[i]);
            sk_pad(&s, GQ_GGUFW_ALIGNMENT);
        }
        if (!s.failed && fflush(s.f) != 0) s.failed = errno ? errno : EIO;
        if (!s.failed && fsync(fileno(s.f)) != 0) s.failed = errno ? errno : EIO;
        if (fclose(s.f) != 0 && !s.failed) s.failed = errno ? errno : EIO;
    }
    free(hdr.p);
    if (!s.failed && rename(tmp, path) != 0) s.failed = errno ? errno : EIO;
    if (s.failed) {
        unlink(tmp);
        free(tmp);
        return gq_errf(GQ_ERR_IO, "%s: writing the GGUF failed after %llu bytes: %s (the old file, if any, is untouched)",
                       path, (unsigned long long)s.n, strerror(s.failed));
    }
    free(tmp);
    /* make the rename itself durable */
    char *dcopy = gq_strdup(path);
    int dfd = open(dirname(dcopy), O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(dcopy);
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* model export */

static const char *k_lin_gguf[GQ_LIN_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

void gq_export_opts_default(gq_export_opts *o) {
    memset(o, 0, sizeof *o);
    o->dense_type = GQ_GGML_F32;
    o->gqs_param_type = GQ_GGML_F32;
    o->sparsity = -1;
    o->achieved_sparsity = -1;
}

void gq_export_rope_perm(int n_heads, int head_dim, int32_t *perm) {
    GQ_ASSERT(n_heads > 0 && head_dim > 0 && head_dim % 2 == 0);
    int half = head_dim / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++) perm[h * head_dim + 2 * i + j] = h * head_dim + j * half + i;
}

void gq_export_gqs_permute_rows(const gq_gqs *in, const int32_t *perm, gq_gqs *out) {
    GQ_ASSERT(in && in->row_index && perm && out);
    size_t bpg = gq_gqs_bytes_per_group(in->G, in->bits);
    memset(out, 0, sizeof *out);
    out->N = in->N, out->K = in->K, out->G = in->G, out->bits = in->bits, out->nnz = in->nnz;
    out->row_index = gq_malloc(((size_t)in->N + 1) * sizeof(int32_t));
    out->group_col = gq_malloc((in->nnz ? in->nnz : 1) * sizeof(int32_t));
    out->values = gq_malloc((in->nnz ? in->nnz : 1) * bpg);
    out->scales = gq_malloc((in->nnz ? in->nnz : 1) * sizeof(float));
    out->zeros = gq_malloc((in->nnz ? in->nnz : 1) * sizeof(float));
    size_t o = 0;
    out->row_index[0] = 0;
    for (int r = 0; r < in->N; r++) {
        int src = perm[r];
        GQ_ASSERT(src >= 0 && src < in->N);
        size_t a = (size_t)in->row_index[src], n = (size_t)in->row_index[src + 1] - a;
        memcpy(out->group_col + o, in->group_col + a, n * sizeof(int32_t));
        memcpy(out->values + o * bpg, in->values + a * bpg, n * bpg);
        memcpy(out->scales + o, in->scales + a, n * sizeof(float));
        memcpy(out->zeros + o, in->zeros + a, n * sizeof(float));
        o += n;
        out->row_index[r + 1] = (int32_t)o;
    }
    GQ_ASSERT(o == in->nnz);
}

/* A 1-D fp32 vector (borrowed) stored as `type`. */
static void add_params(gq_ggufw *w, const char *name, uint32_t type, const float *x, size_t n) {
    uint64_t d = n;
    gq_ggufw_add_tensor_f32(w, name, type, 1, &d, x);
}

/* Per-group scales or zeros [n]: F32 as is (borrowed, or handed over when `owned`), or converted
 * to F16 now (they are small) into a buffer the writer owns. */
static void add_gqs_params(gq_ggufw *w, const char *name, uint32_t type, float *x, size_t n, int owned) {
    uint64_t d = n;
    if (type == GQ_GGML_F32) {
        if (owned) gq_ggufw_add_tensor_owned(w, name, GQ_GGML_F32, 1, &d, x, n * sizeof(float));
        else gq_ggufw_add_tensor(w, name, GQ_GGML_F32, 1, &d, x, n * sizeof(float));
        return;
    }
    uint16_t *h = gq_malloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) h[i] = gq_fp32_to_fp16(x[i]);
    gq_ggufw_add_tensor_owned(w, name, GQ_GGML_F16, 1, &d, h, n * sizeof(uint16_t));
    if (owned) free(x);
}

gq_status gq_export_gguf(const char *path, const gq_model *m, const gq_gqs *gqs, const gq_export_opts *o) {
    GQ_ASSERT(path && m && o);
    const gq_config *c = &m->cfg;
    if (c->arch == GQ_ARCH_OPT)
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: OPT models cannot be exported as GGUF 'llama' (different block layout)", path);
    if (o->dense_type != GQ_GGML_F32 && o->dense_type != GQ_GGML_F16)
        return gq_errf(GQ_ERR_ARG, "%s: dense tensors can be F32 or F16, not %s", path, gq_ggml_type_name(o->dense_type));
    if (o->gqs_param_type != GQ_GGML_F32 && o->gqs_param_type != GQ_GGML_F16)
        return gq_errf(GQ_ERR_ARG, "%s: gqs scales/zeros can be F32 or F16, not %s", path,
                       gq_ggml_type_name(o->gqs_param_type));
    const int L = c->n_layers, permute = c->rope_style == GQ_ROPE_HALF;
    if (permute && c->head_dim % 2)
        return gq_errf(GQ_ERR_ARG, "%s: head dim %d is odd: no RoPE pairing exists", path, c->head_dim);

    /* GQS arrays: consistent with the model and one (G, bits) for the whole file */
    int G = 0, bits = 0, n_gqs = 0;
    if (gqs && !o->dense)
        for (int l = 0; l < L; l++)
            for (int k = 0; k < GQ_LIN_COUNT; k++) {
                const gq_gqs *g = &gqs[(size_t)l * GQ_LIN_COUNT + k];
                if (!g->row_index) continue;
                const gq_linear *lin = &m->blocks[l].lin[k];
                char what[64];
                snprintf(what, sizeof what, "layers.%d.%s", l, gq_linear_name((gq_linear_kind)k));
                if (g->N != lin->out || g->K != lin->in)
                    return gq_errf(GQ_ERR_ARG, "%s: GQS arrays are %dx%d, the weight is %dx%d", what, g->N, g->K, lin->out,
                                   lin->in);
                GQ_TRY(gq_gqs_validate(g, what));
                if (n_gqs && (g->G != G || g->bits != bits))
                    return gq_errf(GQ_ERR_UNSUPPORTED, "%s: group %d / %d bits differ from the other layers' %d / %d; "
                                   "gqsa.group_size and gqsa.bits are per file", what, g->G, g->bits, G, bits);
                G = g->G, bits = g->bits;
                n_gqs++;
            }
    if (o->group && n_gqs && o->group != G)
        return gq_errf(GQ_ERR_ARG, "%s: the GQS arrays have group %d, the options say %d", path, G, o->group);
    if (o->bits && n_gqs && o->bits != bits)
        return gq_errf(GQ_ERR_ARG, "%s: the GQS arrays have %d bits, the options say %d", path, bits, o->bits);
    if (!n_gqs) G = o->group, bits = o->bits;

    gq_ggufw *w = gq_ggufw_new();
    gq_status st = GQ_OK;
    gq_ggufw_set_str(w, "general.architecture", "llama");
    gq_ggufw_set_str(w, "general.name", c->name[0] ? c->name : "gqsa-export");
    gq_ggufw_set_str(w, "general.description",
                     (o->dense || !n_gqs) ? "gqsa export: dense weights (dequantized where compressed)"
                              : "gqsa export: GQS (group-quantized, group-sparse BSR) weights; see gqsa.* keys");
    if (o->dense || !n_gqs) gq_ggufw_set_u32(w, "general.file_type", o->dense_type == GQ_GGML_F32 ? 0 : 1);
    gq_ggufw_set_u32(w, "llama.context_length", (uint32_t)c->max_seq_len);
    gq_ggufw_set_u32(w, "llama.embedding_length", (uint32_t)c->dim);
    gq_ggufw_set_u32(w, "llama.block_count", (uint32_t)L);
    gq_ggufw_set_u32(w, "llama.feed_forward_length", (uint32_t)c->hidden_dim);
    gq_ggufw_set_u32(w, "llama.rope.dimension_count", (uint32_t)c->head_dim);
    gq_ggufw_set_u32(w, "llama.attention.head_count", (uint32_t)c->n_heads);
    gq_ggufw_set_u32(w, "llama.attention.head_count_kv", (uint32_t)c->n_kv_heads);
    if (c->head_dim * c->n_heads != c->dim) {
        gq_ggufw_set_u32(w, "llama.attention.key_length", (uint32_t)c->head_dim);
        gq_ggufw_set_u32(w, "llama.attention.value_length", (uint32_t)c->head_dim);
    }
    gq_ggufw_set_f32(w, "llama.attention.layer_norm_rms_epsilon", c->norm_eps);
    gq_ggufw_set_f32(w, "llama.rope.freq_base", c->rope_theta);
    gq_ggufw_set_u32(w, "llama.vocab_size", (uint32_t)c->vocab_size);

    if (m->tok) {
        if (gq_tokenizer_vocab_size(m->tok) != c->vocab_size)
            st = gq_errf(GQ_ERR_ARG, "%s: tokenizer has %d tokens, the model's vocabulary is %d", path,
                         gq_tokenizer_vocab_size(m->tok), c->vocab_size);
        else
            st = gq_tokenizer_export_gguf(m->tok, w, o->tokenizer_pre, c->add_bos);
        if (st != GQ_OK) {
            gq_ggufw_free(w);
            return gq_err_prefix(st, "%s: ", path);
        }
    }

    gq_ggufw_set_u32(w, "gqsa.format_version", GQ_EXPORT_FORMAT_VERSION);
    /* "dense" whenever no linear is in GQS form: then the file is a plain llama GGUF */
    gq_ggufw_set_str(w, "gqsa.weights", (o->dense || !n_gqs) ? "dense" : "gqs");
    if (o->method) gq_ggufw_set_str(w, "gqsa.method", o->method);
    if (G) gq_ggufw_set_u32(w, "gqsa.group_size", (uint32_t)G);
    gq_ggufw_set_u32(w, "gqsa.bits", (uint32_t)bits);
    if (o->sparsity >= 0) gq_ggufw_set_f32(w, "gqsa.sparsity", (float)o->sparsity);
    if (o->achieved_sparsity >= 0) gq_ggufw_set_f32(w, "gqsa.achieved_sparsity", (float)o->achieved_sparsity);
    if (o->scope) gq_ggufw_set_str(w, "gqsa.scope", o->scope);
    gq_ggufw_set_str(w, "gqsa.values_layout", GQ_EXPORT_VALUES_LAYOUT);
    gq_ggufw_set_str(w, "gqsa.tensor_layout",
                     "blk.N.<linear>.gqs.row_index I32 [rows+1] offsets into the group arrays; .gqs.group_col I32 [nnz] "
                     "column of each kept group in group units, ascending per row; .gqs.values I8 {bytes_per_group, nnz} "
                     "raw bytes (read as uint8); .gqs.scales, .gqs.zeros [nnz]; w_hat = (q - zero) * scale; linears "
                     "without .gqs tensors are dense .weight");
    gq_ggufw_set_u32(w, "gqsa.gqs_layers", (uint32_t)n_gqs);
    gq_ggufw_set_bool(w, "gqsa.rope_rows_permuted", permute);
    if (o->config_hash) gq_ggufw_set_str(w, "gqsa.config_hash", o->config_hash);
    if (o->git_revision) gq_ggufw_set_str(w, "gqsa.git_revision", o->git_revision);
    if (o->source_model) gq_ggufw_set_str(w, "gqsa.source_model", o->source_model);

    const uint64_t D = (uint64_t)c->dim, V = (uint64_t)c->vocab_size;
    uint64_t dims[2];
    dims[0] = D, dims[1] = V;
    gq_ggufw_add_tensor_f32(w, "token_embd.weight", o->dense_type, 2, dims, m->tok_emb);
    add_params(w, "output_norm.weight", GQ_GGML_F32, m->final_norm, (size_t)D);
    if (!c->tied_embeddings) gq_ggufw_add_tensor_f32(w, "output.weight", o->dense_type, 2, dims, m->lm_head);

    int32_t *perm[GQ_LIN_COUNT] = {0};
    if (permute) {
        perm[GQ_LIN_Q] = gq_malloc((size_t)c->n_heads * c->head_dim * sizeof(int32_t));
        perm[GQ_LIN_K] = gq_malloc((size_t)c->n_kv_heads * c->head_dim * sizeof(int32_t));
        gq_export_rope_perm(c->n_heads, c->head_dim, perm[GQ_LIN_Q]);
        gq_export_rope_perm(c->n_kv_heads, c->head_dim, perm[GQ_LIN_K]);
    }
    char name[96];
    for (int l = 0; l < L; l++) {
        const gq_block *b = &m->blocks[l];
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        add_params(w, name, GQ_GGML_F32, b->attn_norm, (size_t)D);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        add_params(w, name, GQ_GGML_F32, b->ffn_norm, (size_t)D);
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_linear *lin = &b->lin[k];
            const int32_t *p = perm[k];
            const size_t N = (size_t)lin->out, K = (size_t)lin->in;
            const gq_gqs *g = (gqs && !o->dense) ? &gqs[(size_t)l * GQ_LIN_COUNT + k] : NULL;
            if (g && !g->row_index) g = NULL;
            if (lin->bias) {
                snprintf(name, sizeof name, "blk.%d.%s.bias", l, k_lin_gguf[k]);
                if (p) {
                    float *pb = gq_malloc(N * sizeof(float));
                    for (size_t r = 0; r < N; r++) pb[r] = lin->bias[p[r]];
                    uint64_t d = N;
                    gq_ggufw_add_tensor_owned(w, name, GQ_GGML_F32, 1, &d, pb, N * sizeof(float));
                } else {
                    add_params(w, name, GQ_GGML_F32, lin->bias, N);
                }
            }
            if (!g) {
                snprintf(name, sizeof name, "blk.%d.%s.weight", l, k_lin_gguf[k]);
                dims[0] = K, dims[1] = N;
                if (p) {
                    /* the permuted copy is owned by the writer; F16 is converted here to halve it */
                    if (o->dense_type == GQ_GGML_F32) {
                        float *pw = gq_malloc(N * K * sizeof(float));
                        for (size_t r = 0; r < N; r++) memcpy(pw + r * K, lin->w + (size_t)p[r] * K, K * sizeof(float));
                        gq_ggufw_add_tensor_owned(w, name, GQ_GGML_F32, 2, dims, pw, N * K * sizeof(float));
                    } else {
                        uint16_t *ph = gq_malloc(N * K * sizeof(uint16_t));
                        for (size_t r = 0; r < N; r++)
                            for (size_t j = 0; j < K; j++) ph[r * K + j] = gq_fp32_to_fp16(lin->w[(size_t)p[r] * K + j]);
                        gq_ggufw_add_tensor_owned(w, name, GQ_GGML_F16, 2, dims, ph, N * K * sizeof(uint16_t));
                    }
                } else {
                    gq_ggufw_add_tensor_f32(w, name, o->dense_type, 2, dims, lin->w);
                }
                continue;
            }
            /* GQS: five tensors; a permuted copy (owned by the writer) when the rows must move */
            gq_gqs pg;
            const gq_gqs *src = g;
            if (p) {
                gq_export_gqs_permute_rows(g, p, &pg);
                src = &pg;
            }
            size_t bpg = gq_gqs_bytes_per_group(src->G, src->bits), nnz = src->nnz;
            if (nnz == 0) {
                /* GGUF dims must be >= 1: a fully pruned matrix is written dense (all zeros) */
                if (p) gq_gqs_free(&pg);
                snprintf(name, sizeof name, "blk.%d.%s.weight", l, k_lin_gguf[k]);
                float *z = gq_calloc(N * K, sizeof(float));
                dims[0] = K, dims[1] = N;
                gq_ggufw_add_tensor_owned(w, name, GQ_GGML_F32, 2, dims, z, N * K * sizeof(float));
                continue;
            }
            uint64_t d1;
            snprintf(name, sizeof name, "blk.%d.%s.gqs.row_index", l, k_lin_gguf[k]);
            d1 = N + 1;
            if (p) gq_ggufw_add_tensor_owned(w, name, GQ_GGUFW_I32, 1, &d1, src->row_index, d1 * 4);
            else gq_ggufw_add_tensor(w, name, GQ_GGUFW_I32, 1, &d1, src->row_index, d1 * 4);
            snprintf(name, sizeof name, "blk.%d.%s.gqs.group_col", l, k_lin_gguf[k]);
            d1 = nnz;
            if (p) gq_ggufw_add_tensor_owned(w, name, GQ_GGUFW_I32, 1, &d1, src->group_col, d1 * 4);
            else gq_ggufw_add_tensor(w, name, GQ_GGUFW_I32, 1, &d1, src->group_col, d1 * 4);
            snprintf(name, sizeof name, "blk.%d.%s.gqs.values", l, k_lin_gguf[k]);
            dims[0] = bpg, dims[1] = nnz;
            if (p) gq_ggufw_add_tensor_owned(w, name, GQ_GGUFW_I8, 2, dims, src->values, bpg * nnz);
            else gq_ggufw_add_tensor(w, name, GQ_GGUFW_I8, 2, dims, src->values, bpg * nnz);
            snprintf(name, sizeof name, "blk.%d.%s.gqs.scales", l, k_lin_gguf[k]);
            add_gqs_params(w, name, o->gqs_param_type, src->scales, nnz, p != NULL);
            snprintf(name, sizeof name, "blk.%d.%s.gqs.zeros", l, k_lin_gguf[k]);
            add_gqs_params(w, name, o->gqs_param_type, src->zeros, nnz, p != NULL);
        }
    }
    free(perm[GQ_LIN_Q]);
    free(perm[GQ_LIN_K]);
    st = gq_ggufw_write(w, path);
    gq_ggufw_free(w);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* reading an export back */

int gq_export_is_gqs_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    int ok = f && fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
    if (f) fclose(f);
    if (!ok) return 0;
    gq_gguf *g;
    if (gq_gguf_open(path, &g) != GQ_OK) {
        gq_err_clear();
        return 0;
    }
    gq_gguf_str s;
    int r = gq_gguf_get_str(g, "gqsa.weights", &s) == GQ_OK && s.n == 3 && !memcmp(s.s, "gqs", 3);
    gq_err_clear();
    gq_gguf_close(g);
    return r;
}

/* Tensor `name` of `type` with 1-D length n0 (n1 == 0) or 2-D {n0, n1}; NULL + error otherwise. */
static const gq_gguf_tensor *need_tensor(const gq_gguf *g, const char *name, uint32_t type, uint64_t n0, uint64_t n1,
                                         gq_status *st) {
    const gq_gguf_tensor *t = gq_gguf_find_tensor(g, name);
    if (!t) {
        *st = gq_errf(GQ_ERR_FORMAT, "%s: missing tensor '%s'", g->path, name);
        return NULL;
    }
    int ok = t->type == type && (n1 ? (t->n_dims == 2 && t->dims[0] == n0 && t->dims[1] == n1)
                                     : (t->n_dims == 1 && t->dims[0] == n0));
    if (!ok) {
        *st = gq_errf(GQ_ERR_FORMAT, "%s: tensor '%s' is %s with %u dims {%llu, ...}, expected %s {%llu%s%llu}", g->path,
                      name, gq_ggml_type_name(t->type), t->n_dims, (unsigned long long)t->dims[0], gq_ggml_type_name(type),
                      (unsigned long long)n0, n1 ? ", " : "", (unsigned long long)n1);
        return NULL;
    }
    return t;
}

gq_status gq_export_read_gqs(const gq_gguf *g, int layer, gq_linear_kind k, int N, int K, gq_gqs *out) {
    GQ_ASSERT(g && out && k >= 0 && k < GQ_LIN_COUNT && N > 0 && K > 0);
    memset(out, 0, sizeof *out);
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.gqs.row_index", layer, k_lin_gguf[k]);
    if (!gq_gguf_find_tensor(g, name)) return GQ_OK;
    uint64_t G, bits;
    GQ_TRY(gq_gguf_get_u64(g, "gqsa.group_size", &G));
    GQ_TRY(gq_gguf_get_u64(g, "gqsa.bits", &bits));
    if (!(bits == 2 || bits == 3 || bits == 4 || bits == 8) || G == 0 || G > 4096 || K % (int)G)
        return gq_errf(GQ_ERR_FORMAT, "%s: gqsa.group_size %llu / gqsa.bits %llu do not fit a matrix of %d columns", g->path,
                       (unsigned long long)G, (unsigned long long)bits, K);
    gq_status st = GQ_OK;
    const gq_gguf_tensor *ri = need_tensor(g, name, GQ_GGUFW_I32, (uint64_t)N + 1, 0, &st);
    if (!ri) return st;
    int32_t nnz_i;
    memcpy(&nnz_i, ri->data + (size_t)N * 4, 4);
    if (nnz_i < 1 || (int64_t)nnz_i > (int64_t)N * (K / (int)G))
        return gq_errf(GQ_ERR_FORMAT, "%s: '%s' ends at %d groups (a %dx%d matrix has %d)", g->path, name, nnz_i, N, K,
                       N * (K / (int)G));
    size_t nnz = (size_t)nnz_i, bpg = gq_gqs_bytes_per_group((int)G, (int)bits);
    const gq_gguf_tensor *t[4];
    static const char *sfx[4] = {"group_col", "values", "scales", "zeros"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "blk.%d.%s.gqs.%s", layer, k_lin_gguf[k], sfx[i]);
        uint32_t ty = i == 0 ? GQ_GGUFW_I32 : i == 1 ? GQ_GGUFW_I8 : GQ_GGML_F32;
        if (i >= 2) {
            const gq_gguf_tensor *x = gq_gguf_find_tensor(g, name);
            if (x && x->type == GQ_GGML_F16) ty = GQ_GGML_F16;
        }
        t[i] = need_tensor(g, name, ty, i == 1 ? bpg : nnz, i == 1 ? nnz : 0, &st);
        if (!t[i]) return st;
    }
    out->N = N, out->K = K, out->G = (int)G, out->bits = (int)bits, out->nnz = nnz;
    out->row_index = gq_malloc(((size_t)N + 1) * 4);
    out->group_col = gq_malloc(nnz * 4);
    out->values = gq_malloc(nnz * bpg);
    out->scales = gq_malloc(nnz * 4);
    out->zeros = gq_malloc(nnz * 4);
    memcpy(out->row_index, ri->data, ((size_t)N + 1) * 4);
    memcpy(out->group_col, t[0]->data, nnz * 4);
    memcpy(out->values, t[1]->data, nnz * bpg);
    st = gq_gguf_tensor_to_f32(g, t[2], out->scales, nnz);
    if (st == GQ_OK) st = gq_gguf_tensor_to_f32(g, t[3], out->zeros, nnz);
    char what[1200];
    snprintf(what, sizeof what, "%s: blk.%d.%s.gqs", g->path, layer, k_lin_gguf[k]);
    if (st == GQ_OK) st = gq_gqs_validate(out, what);
    if (st != GQ_OK) gq_gqs_free(out);
    return st;
}

static void describe_str(const gq_gguf *g, const char *key, FILE *f) {
    gq_gguf_str s;
    if (gq_gguf_get_str(g, key, &s) == GQ_OK) fprintf(f, "%-26s %.*s\n", key, (int)(s.n > 200 ? 200 : s.n), s.s);
    gq_err_clear();
}

gq_status gq_export_describe(const char *path, int per_layer, int zeros_fp16, FILE *f) {
    gq_gguf *g;
    GQ_TRY(gq_gguf_open(path, &g));
    gq_status st = GQ_OK;
    uint64_t D = 0, H = 0, L = 0, NH = 0, NKV = 0, HD = 0, u;
    if ((st = gq_gguf_get_u64(g, "llama.embedding_length", &D)) == GQ_OK &&
        (st = gq_gguf_get_u64(g, "llama.feed_forward_length", &H)) == GQ_OK &&
        (st = gq_gguf_get_u64(g, "llama.block_count", &L)) == GQ_OK &&
        (st = gq_gguf_get_u64(g, "llama.attention.head_count", &NH)) == GQ_OK) {
        NKV = gq_gguf_get_u64(g, "llama.attention.head_count_kv", &u) == GQ_OK ? u : NH;
        HD = NH ? D / NH : 0;
        if (gq_gguf_get_u64(g, "llama.attention.key_length", &u) == GQ_OK) HD = u;
        gq_err_clear();
        const uint64_t big = 1u << 24;
        if (!D || !H || !L || !NH || !NKV || !HD || D > big || H > big || L > 4096 || NH * HD > big || NKV * HD > big)
            st = gq_errf(GQ_ERR_FORMAT, "%s: llama.* shape keys out of range", path);
    }
    if (st != GQ_OK) {
        gq_gguf_close(g);
        return st;
    }
    fprintf(f, "gguf export  %s (GGUF v%u, %llu tensors)\n", path, g->version, (unsigned long long)g->n_tensors);
    describe_str(g, "general.name", f);
    fprintf(f, "dims         D %llu  H %llu  L %llu  NH %llu  NKV %llu  HD %llu\n", (unsigned long long)D,
            (unsigned long long)H, (unsigned long long)L, (unsigned long long)NH, (unsigned long long)NKV,
            (unsigned long long)HD);
    static const char *keys[] = {"gqsa.method", "gqsa.scope", "gqsa.values_layout", "gqsa.config_hash",
                                 "gqsa.git_revision", "gqsa.source_model", "tokenizer.ggml.model"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) describe_str(g, keys[i], f);
    double sp;
    if (gq_gguf_get_f64(g, "gqsa.sparsity", &sp) == GQ_OK) fprintf(f, "%-26s %.4g\n", "gqsa.sparsity", sp);
    if (gq_gguf_get_u64(g, "gqsa.group_size", &u) == GQ_OK) fprintf(f, "%-26s %llu\n", "gqsa.group_size", (unsigned long long)u);
    if (gq_gguf_get_u64(g, "gqsa.bits", &u) == GQ_OK) fprintf(f, "%-26s %llu\n", "gqsa.bits", (unsigned long long)u);
    gq_err_clear();
    if (per_layer)
        fprintf(f, "\n%-22s %13s %6s %4s %4s %12s %8s %8s\n", "linear", "shape", "sparse", "bits", "G", "bytes", "bpw",
                "bpw-meta");
    size_t tot_w = 0, tot_b = 0, tot_vals = 0, n_gqs = 0;
    double tot_sparse = 0;
    for (int l = 0; l < (int)L && st == GQ_OK; l++)
        for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++) {
            uint64_t shp[GQ_LIN_COUNT][2] = {{NH * HD, D}, {NKV * HD, D}, {NKV * HD, D}, {D, NH * HD},
                                             {H, D},       {H, D},        {D, H}};
            int N = (int)shp[k][0], K = (int)shp[k][1];
            size_t nw = (size_t)N * K;
            tot_w += nw;
            char nm[64], shape[32];
            snprintf(nm, sizeof nm, "layers.%d.%s", l, gq_linear_name((gq_linear_kind)k));
            snprintf(shape, sizeof shape, "%dx%d", N, K);
            gq_gqs q;
            if ((st = gq_export_read_gqs(g, l, (gq_linear_kind)k, N, K, &q)) != GQ_OK) break;
            if (q.row_index) {
                gq_gqs_mem mem;
                gq_gqs_memory(&q, zeros_fp16, &mem);
                tot_b += mem.bytes_total;
                tot_vals += mem.bytes_values;
                tot_sparse += mem.sparsity * (double)nw;
                n_gqs++;
                if (per_layer)
                    fprintf(f, "%-22s %13s %6.4f %4d %4d %12zu %8.3f %8.3f\n", nm, shape, mem.sparsity, q.bits, q.G,
                            mem.bytes_total, mem.bits_per_weight, mem.bits_per_weight_nometa);
                gq_gqs_free(&q);
            } else {
                tot_b += nw * 2;
                tot_vals += nw * 2;
                if (per_layer) fprintf(f, "%-22s %13s %6s %4s %4s %12zu %8.3f %8.3f\n", nm, shape, "-", "fp16", "-", nw * 2, 16.0, 16.0);
            }
        }
    if (st == GQ_OK && tot_w) {
        fprintf(f, "%-22s %13zu %6.4f %4s %4s %12zu %8.3f %8.3f\n", "total (linears)", tot_w, tot_sparse / (double)tot_w, "",
                "", tot_b, 8.0 * tot_b / tot_w, 8.0 * tot_vals / tot_w);
        fprintf(f, "\n%zu of %llu linears in GQS form (memory as gqsa inspect counts it: scales fp16, zeros %s, dense "
                "linears as fp16)\n", n_gqs, (unsigned long long)L * GQ_LIN_COUNT, zeros_fp16 ? "fp16" : "bits-wide");
    }
    gq_gguf_close(g);
    return st;
}
