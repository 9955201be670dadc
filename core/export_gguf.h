/* export_gguf.h — a GGUF v3 writer, and the export of a (compressed) gq_model as GGUF.
 *
 * The writer (gq_ggufw_*): metadata of every scalar, string and array type, tensors of any ggml
 * type given as raw little-endian bytes, or fp32 data converted to F16 while writing. Layout as the
 * GGUF spec: header, kv pairs, tensor infos, padding to the alignment (32), then each tensor's data
 * at an offset that is a multiple of the alignment. The file is written atomically: a temporary
 * file beside the target, flushed, fsync'ed and renamed over it (then the directory fsync'ed), so a
 * crash or an error leaves the old file or nothing, never a half-written one.
 * Adding metadata or tensors never fails on the spot: the first problem (duplicate key or tensor
 * name, bad dims) is remembered and gq_ggufw_write returns it, so a builder is a flat list of calls.
 *
 * The export (gq_export_*): general.architecture "llama" + the llama.* hyper-parameters llama.cpp
 * reads, the tokenizer (tokenizer.ggml.*), the dense tensors under llama.cpp's names, and every GQS
 * linear as five tensors blk.N.<name>.gqs.{row_index, group_col, values, scales, zeros} with the
 * method's parameters under gqsa.* (see gq_export_gguf for the exact list). With opts.dense the
 * dequantized dense weights are written under the normal names instead, so llama.cpp-style tools
 * (and gq_model_load) can run the file.
 * Must not: read GGUF (gguf.c does), change the model, decide file names.
 */
#ifndef GQ_EXPORT_GGUF_H
#define GQ_EXPORT_GGUF_H

#include "gguf.h"
#include "gqs.h"
#include "model.h"

/* ggml tensor types the writer knows beyond gq_ggml_type (ggml numbering; never renumber). */
enum { GQ_GGUFW_I8 = 24, GQ_GGUFW_I16 = 25, GQ_GGUFW_I32 = 26, GQ_GGUFW_I64 = 27, GQ_GGUFW_F64 = 28 };

#define GQ_GGUFW_ALIGNMENT 32

typedef struct gq_ggufw gq_ggufw;

/* An empty writer (never NULL). Free with gq_ggufw_free. */
gq_ggufw *gq_ggufw_new(void);
void gq_ggufw_free(gq_ggufw *w);

/* Metadata. Keys and string values are copied. A duplicate key is an error reported by write. */
void gq_ggufw_set_u8(gq_ggufw *w, const char *key, uint8_t v);
void gq_ggufw_set_i8(gq_ggufw *w, const char *key, int8_t v);
void gq_ggufw_set_u16(gq_ggufw *w, const char *key, uint16_t v);
void gq_ggufw_set_i16(gq_ggufw *w, const char *key, int16_t v);
void gq_ggufw_set_u32(gq_ggufw *w, const char *key, uint32_t v);
void gq_ggufw_set_i32(gq_ggufw *w, const char *key, int32_t v);
void gq_ggufw_set_u64(gq_ggufw *w, const char *key, uint64_t v);
void gq_ggufw_set_i64(gq_ggufw *w, const char *key, int64_t v);
void gq_ggufw_set_f32(gq_ggufw *w, const char *key, float v);
void gq_ggufw_set_f64(gq_ggufw *w, const char *key, double v);
void gq_ggufw_set_bool(gq_ggufw *w, const char *key, int v);
void gq_ggufw_set_str(gq_ggufw *w, const char *key, const char *v);
/* A numeric array of n elements of scalar type `elem` (not STRING/ARRAY), host (= little-endian)
 * layout; copied. */
void gq_ggufw_set_arr(gq_ggufw *w, const char *key, gq_gguf_vtype elem, const void *data, uint64_t n);
/* A string array; lens may be NULL (then strlen). Copied. */
void gq_ggufw_set_arr_str(gq_ggufw *w, const char *key, const char *const *strs, const size_t *lens, uint64_t n);

/* Tensors. dims in ggml order (dims[0] fastest, i.e. the column count of a row-major matrix), 1..4
 * of them, each >= 1. The data is BORROWED: it must stay valid and unchanged until gq_ggufw_write
 * returns. n_bytes must equal what the type and dims imply (checked for the types listed above and
 * F32/F16/BF16; other types are written as given). */
void gq_ggufw_add_tensor(gq_ggufw *w, const char *name, uint32_t type, int n_dims, const uint64_t *dims,
                         const void *data, uint64_t n_bytes);
/* The same, taking ownership of a gq_malloc'd buffer (freed by gq_ggufw_free). */
void gq_ggufw_add_tensor_owned(gq_ggufw *w, const char *name, uint32_t type, int n_dims, const uint64_t *dims,
                               void *data, uint64_t n_bytes);
/* fp32 data (borrowed) stored as `type` = GQ_GGML_F32 or GQ_GGML_F16 (round to nearest even while
 * writing, so no second copy of a large matrix is ever held). */
void gq_ggufw_add_tensor_f32(gq_ggufw *w, const char *name, uint32_t type, int n_dims, const uint64_t *dims,
                             const float *data);

/* Write the file atomically. Returns the first error recorded by the calls above (GQ_ERR_ARG naming
 * the key or tensor), or GQ_ERR_IO naming the path; on any error the target is left untouched and
 * no temporary file remains. May be called once. */
gq_status gq_ggufw_write(gq_ggufw *w, const char *path);
/* Test-only fault injection: make the byte-level writer fail (as if the disk were full) once
 * `bytes` bytes have been written to the temporary file. 0 disables. */
void gq_ggufw_set_fault_after(gq_ggufw *w, uint64_t bytes);

/* ------------------------------------------------------------------------------------------ */
/* Export of a model */

#define GQ_EXPORT_FORMAT_VERSION 1
#define GQ_EXPORT_VALUES_LAYOUT "lsb-first bitstream, bytes_per_group = ceil(G*bits/8)"

typedef struct {
    int dense;              /* 1: dequantized dense linears under llama.cpp names (no gqs tensors) */
    uint32_t dense_type;    /* GQ_GGML_F32 (default) or GQ_GGML_F16: token_embd, output and dense linears;
                               norms are always F32 (llama.cpp's convention) */
    uint32_t gqs_param_type;/* GQ_GGML_F32 (default, exact) or GQ_GGML_F16 for gqs.scales and gqs.zeros */
    /* provenance and method (strings may be NULL = not written; numbers < 0 = not written) */
    const char *method;     /* "gqsa", "rtn", ... */
    double sparsity;        /* target sparsity */
    double achieved_sparsity;
    int bits, group;        /* 0 = take from the GQS arrays (all must agree) */
    const char *scope;      /* "layer" / "row" */
    const char *config_hash, *git_revision, *source_model;
    const char *tokenizer_pre; /* tokenizer.ggml.pre for a byte-level BPE tokenizer read from
                                  tokenizer.json (its pre-tokenizer has no GGUF name); NULL = the
                                  tokenizer's own name, which must then be known */
} gq_export_opts;

void gq_export_opts_default(gq_export_opts *o);

/* Export m (with its GQS arrays gqs [L*7], or NULL = all dense) to path. Linears whose gqs entry
 * has row_index == NULL are written dense. A model whose rope_style is HALF (Hugging Face) has its
 * q/k rows permuted to the GGUF llama (interleaved) order, dense and GQS alike (llama.cpp's
 * convert_hf_to_gguf permute); m itself is not modified. m->tok, if present, is exported.
 * GQ_ERR_UNSUPPORTED for OPT models; GQ_ERR_ARG for inconsistent GQS arrays (naming the layer). */
gq_status gq_export_gguf(const char *path, const gq_model *m, const gq_gqs *gqs, const gq_export_opts *o);

/* The row permutation llama.cpp's converter applies to a q (n_heads = NH) or k (n_heads = NKV)
 * matrix of N = n_heads*HD rows: perm[new_row] = old_row, where within a head the new row 2i+j
 * comes from the old row j*HD/2 + i. */
void gq_export_rope_perm(int n_heads, int head_dim, int32_t *perm);
/* A GQS matrix with its rows reordered: out row r = in row perm[r]. out is allocated (gq_gqs_free). */
void gq_export_gqs_permute_rows(const gq_gqs *in, const int32_t *perm, gq_gqs *out);

/* ------------------------------------------------------------------------------------------ */
/* Reading an export back (for `gqsa inspect` and tools) */

/* 1 if path is a GGUF whose gqsa.weights is "gqs" (a GQS export), else 0 (never an error). */
int gq_export_is_gqs_gguf(const char *path);
/* The GQS arrays of linear k of block `layer` of an export, as copies (free with gq_gqs_free);
 * N, K: the linear's shape (from the llama.* keys). GQ_OK with out->row_index NULL when the file
 * holds that linear dense. Every tensor's type and dims are checked and the result validated
 * (gq_gqs_validate): GQ_ERR_FORMAT naming the file and tensor. */
gq_status gq_export_read_gqs(const gq_gguf *g, int layer, gq_linear_kind k, int N, int K, gq_gqs *out);
/* Print what an export holds: the gqsa.* method keys, the model shape and, per linear (unless
 * !per_layer), the achieved sparsity and GQS bytes / bits per weight with and without metadata
 * (gq_gqs_memory; zeros_fp16 as there), then totals. */
gq_status gq_export_describe(const char *path, int per_layer, int zeros_fp16, FILE *f);

#endif
