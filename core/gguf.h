/* gguf.h — GGUF v2/v3 reader (metadata and tensors), every offset and count checked.
 *
 * The whole file is read (or mapped) once; keys, strings and tensor data point into it and live
 * as long as the gq_gguf. A reader never aborts on a hostile file: every failure is a status with
 * a message naming the file and the key or tensor.
 * Must not: build model structs (model_gguf.c does) or tokenizers (tokenizer_*.c do).
 */
#ifndef GQ_GGUF_H
#define GQ_GGUF_H

#include "util.h"

/* On-disk value types (never renumber). */
typedef enum {
    GQ_GGUF_U8 = 0, GQ_GGUF_I8 = 1, GQ_GGUF_U16 = 2, GQ_GGUF_I16 = 3, GQ_GGUF_U32 = 4, GQ_GGUF_I32 = 5,
    GQ_GGUF_F32 = 6, GQ_GGUF_BOOL = 7, GQ_GGUF_STRING = 8, GQ_GGUF_ARRAY = 9, GQ_GGUF_U64 = 10,
    GQ_GGUF_I64 = 11, GQ_GGUF_F64 = 12
} gq_gguf_vtype;

/* On-disk tensor types that gqsa dequantizes (ggml numbering; never renumber). */
typedef enum {
    GQ_GGML_F32 = 0, GQ_GGML_F16 = 1, GQ_GGML_Q4_0 = 2, GQ_GGML_Q4_1 = 3, GQ_GGML_Q8_0 = 8, GQ_GGML_BF16 = 30
} gq_ggml_type;

typedef struct { const char *s; uint64_t n; } gq_gguf_str; /* not NUL-terminated */

typedef struct {
    gq_gguf_str key;
    gq_gguf_vtype type;
    union { uint64_t u; int64_t i; double f; gq_gguf_str str; } v; /* scalars (bool in .u) */
    gq_gguf_vtype arr_type; /* when type == ARRAY */
    uint64_t arr_n;
    const uint8_t *arr_data; /* raw little-endian elements for numeric arrays */
    gq_gguf_str *arr_strs;   /* [arr_n] for string arrays (owned by the gq_gguf) */
} gq_gguf_kv;

typedef struct {
    gq_gguf_str name;
    uint32_t n_dims;
    uint64_t dims[4];  /* ggml order: dims[0] is the fastest-varying (columns) */
    uint32_t type;     /* gq_ggml_type */
    uint64_t offset;   /* from the data section start */
    uint64_t n_elems;
    uint64_t n_bytes;
    const uint8_t *data;
} gq_gguf_tensor;

typedef struct gq_gguf {
    char path[1024];
    uint8_t *buf; size_t len;  /* whole file */
    int mapped;                /* buf is a read-only mmap (gq_gguf_open), else malloc'd */
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gq_gguf_kv *kv;
    gq_gguf_tensor *tensors;
    uint64_t alignment;
} gq_gguf;

/* Parse a file / an in-memory buffer (buffer is copied). */
gq_status gq_gguf_open(const char *path, gq_gguf **out);
gq_status gq_gguf_parse(const void *data, size_t len, const char *name, gq_gguf **out);
void gq_gguf_close(gq_gguf *g);

const gq_gguf_kv *gq_gguf_find(const gq_gguf *g, const char *key);
const gq_gguf_tensor *gq_gguf_find_tensor(const gq_gguf *g, const char *name);
/* Typed getters: GQ_ERR_FORMAT if absent or of an incompatible type (any integer type widens). */
gq_status gq_gguf_get_u64(const gq_gguf *g, const char *key, uint64_t *out);
gq_status gq_gguf_get_f64(const gq_gguf *g, const char *key, double *out);
gq_status gq_gguf_get_str(const gq_gguf *g, const char *key, gq_gguf_str *out);
/* Element i of a numeric array as double / int64. */
double gq_gguf_arr_f64(const gq_gguf_kv *kv, uint64_t i);
int64_t gq_gguf_arr_i64(const gq_gguf_kv *kv, uint64_t i);

/* Dequantize a tensor to fp32 into out[n] (n must equal n_elems). */
gq_status gq_gguf_tensor_to_f32(const gq_gguf *g, const gq_gguf_tensor *t, float *out, uint64_t n);
/* Block dequantizers (scalar reference), exposed for tests: n must be a multiple of 32. */
void gq_dequant_q4_0(const uint8_t *src, float *dst, uint64_t n);
void gq_dequant_q4_1(const uint8_t *src, float *dst, uint64_t n);
void gq_dequant_q8_0(const uint8_t *src, float *dst, uint64_t n);
/* "F32", "Q4_1", "Q6_K", ... or "unknown" (for messages and `inspect`). */
const char *gq_ggml_type_name(uint32_t type);

#endif
