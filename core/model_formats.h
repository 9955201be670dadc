/* model_formats.h — the file-format layer beneath gq_model_load: in-memory parsers (used by the fuzz
 * targets and tests), the safetensors reader and the Hugging Face config.json reader.
 * Everything here treats its input as hostile and returns a status with a message naming the file.
 * Must not: be needed by code that only uses loaded models (use model.h's gq_model_load instead).
 */
#ifndef GQ_MODEL_FORMATS_H
#define GQ_MODEL_FORMATS_H

#include "model.h"

struct gq_gguf;

/* Map a whole file read-only (a zero-length file gives an empty malloc'd buffer). Large checkpoints are
 * mapped rather than read so that loading a 7B model does not hold the file and the fp32 weights in
 * anonymous memory at once. Release with gq_file_unmap(buf, len, mapped). */
gq_status gq_file_map(const char *path, uint8_t **buf, size_t *len, int *mapped);
void gq_file_unmap(uint8_t *buf, size_t len, int mapped);

/* llama2.c legacy (v0) .bin from memory; `name` is used in messages and as m->source. No tokenizer. */
gq_status gq_model_llama2c_parse(const void *data, size_t len, const char *name, gq_model **out);

/* Build a model from a parsed GGUF (architecture "llama"): config from metadata, weights dequantized.
 * with_tokenizer: also build m->tok via gq_tokenizer_from_gguf when the file has tokenizer metadata. */
gq_status gq_model_from_gguf(const struct gq_gguf *g, int with_tokenizer, gq_model **out);

/* ---- safetensors ---------------------------------------------------------------------------- */
#define GQ_ST_MAX_DIMS 8
typedef struct {
    char *name;                 /* NUL-terminated, owned by the gq_st_file */
    char dtype[12];             /* "F32", "F16", "BF16", "I64", ... */
    int n_dims;
    uint64_t shape[GQ_ST_MAX_DIMS]; /* row-major, shape[n_dims-1] fastest */
    uint64_t n_elems, n_bytes;
    const uint8_t *data;        /* into the file buffer; not aligned */
} gq_st_tensor;

typedef struct {
    char path[1024];
    uint8_t *buf;
    size_t len;
    int mapped;
    size_t n_tensors;
    gq_st_tensor *tensors;
} gq_st_file;

gq_status gq_st_open(const char *path, gq_st_file **out);
/* The buffer is copied. */
gq_status gq_st_parse(const void *data, size_t len, const char *name, gq_st_file **out);
void gq_st_close(gq_st_file *f);
const gq_st_tensor *gq_st_find(const gq_st_file *f, const char *name);
/* F32/F16/BF16 to fp32 (n must equal n_elems); GQ_ERR_UNSUPPORTED for other dtypes. */
gq_status gq_st_tensor_to_f32(const gq_st_file *f, const gq_st_tensor *t, float *out, uint64_t n);

/* ---- Hugging Face config.json ---------------------------------------------------------------- */
/* Fill *cfg from config.json text (LLaMA, Mistral-style LLaMA, Qwen2, OPT). rope_style HALF.
 * A missing required field is GQ_ERR_FORMAT naming `name` and the key. */
gq_status gq_hf_config_parse(const char *json, size_t len, const char *name, gq_config *cfg);
gq_status gq_hf_config_load(const char *path, gq_config *cfg);

#endif
