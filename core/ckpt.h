/* ckpt.h — HDF5 checkpoints: models, compressed models, and any named array a stage wants to keep.
 *
 * Layout (DESIGN.md "Files"; readable with h5dump / h5py):
 *   /meta                 group; attributes format_version (int), stage, config_hash, model_id,
 *                         git_revision (strings), plus whatever a stage adds
 *   /config               group; attributes = the gq_config fields (dim, hidden_dim, ...)
 *   /tok_emb [V, D], /final_norm [D], /lm_head [V, D] (absent when tied)          float32
 *   /layers/<i>/attn_norm [D], /layers/<i>/ffn_norm [D]                             float32
 *   /layers/<i>/<name>/weight [N, K]   dense (dequantized) weights, always present   float32
 *   /layers/<i>/<name>/bias [N]        when present                                  float32
 *   /layers/<i>/<name>/{row_index [N+1] int32, group_col [nnz] int32, values [bytes] uint8,
 *                       scales [nnz] float32, zeros [nnz] float32}  with attributes N, K, G, bits
 *                                      for GQS layers (<name> = q_proj ... down_proj)
 *   /hessian/<i>/<name>/{H [K, K] float64, sumsq [K] float64} attribute n_tok
 *   /saliency/..., /mask/...           free-form, written with gq_ckpt_write
 * Writing is atomic: everything goes to "<path>.tmp", which is flushed, closed, fsync'ed and renamed
 * over <path> by gq_ckpt_commit; a crash leaves at most a stale .tmp, never a half-written <path>.
 * Reading treats the file as hostile: every dataset's type, rank and dims are checked against what
 * the caller expects (and against the config) before any read; errors name the file and dataset.
 * Must not: decide file names or run stages (the pipeline does), print.
 */
#ifndef GQ_CKPT_H
#define GQ_CKPT_H

#include "calib.h"
#include "compress.h"
#include "gqs.h"
#include "model.h"

#define GQ_CKPT_FORMAT_VERSION 1

typedef struct gq_ckpt gq_ckpt;

typedef enum { GQ_CKPT_F32 = 0, GQ_CKPT_F64, GQ_CKPT_I32, GQ_CKPT_I64, GQ_CKPT_U8 } gq_ckpt_dtype;

/* Create "<path>.tmp" for writing (truncating a stale one). */
gq_status gq_ckpt_create(const char *path, gq_ckpt **out);
/* Flush, close, fsync and rename onto path; frees c whatever happens. On failure the .tmp is removed. */
gq_status gq_ckpt_commit(gq_ckpt *c);
/* Abandon a checkpoint being written: close and remove the .tmp. */
void gq_ckpt_abort(gq_ckpt *c);
/* Open an existing checkpoint read-only. GQ_ERR_IO / GQ_ERR_FORMAT naming the path. */
gq_status gq_ckpt_open(const char *path, gq_ckpt **out);
void gq_ckpt_close(gq_ckpt *c);
const char *gq_ckpt_path(const gq_ckpt *c);

/* Datasets. `name` is an absolute path such as "/saliency/3/q_proj"; missing parent groups are
 * created. rank 1..4. Writing an existing name is GQ_ERR_ARG. */
gq_status gq_ckpt_write(gq_ckpt *c, const char *name, gq_ckpt_dtype t, const void *data, int rank,
                        const int64_t *dims);
/* 1 if a dataset or group of that name exists. */
int gq_ckpt_has(gq_ckpt *c, const char *name);
/* Shape of a dataset (rank <= 4). GQ_ERR_FORMAT if absent or rank > 4. */
gq_status gq_ckpt_shape(gq_ckpt *c, const char *name, int *rank, int64_t dims[4]);
/* Read a dataset whose element count must be exactly `count` into buf (converted to t by HDF5; the
 * stored class must match t's: float to float, integer to integer, else GQ_ERR_FORMAT). */
gq_status gq_ckpt_read_into(gq_ckpt *c, const char *name, gq_ckpt_dtype t, void *buf, size_t count);
/* Read a dataset of any shape: *data malloc'd (caller frees), rank/dims filled. */
gq_status gq_ckpt_read(gq_ckpt *c, const char *name, gq_ckpt_dtype t, void **data, int *rank, int64_t dims[4]);

/* Attributes on a group or dataset `obj` (created as a group if missing when writing). */
gq_status gq_ckpt_attr_set_str(gq_ckpt *c, const char *obj, const char *key, const char *val);
gq_status gq_ckpt_attr_set_i64(gq_ckpt *c, const char *obj, const char *key, int64_t val);
gq_status gq_ckpt_attr_set_f64(gq_ckpt *c, const char *obj, const char *key, double val);
gq_status gq_ckpt_attr_get_str(gq_ckpt *c, const char *obj, const char *key, char *buf, size_t cap);
gq_status gq_ckpt_attr_get_i64(gq_ckpt *c, const char *obj, const char *key, int64_t *val);
gq_status gq_ckpt_attr_get_f64(gq_ckpt *c, const char *obj, const char *key, double *val);

/* /meta */
typedef struct {
    int format_version;   /* GQ_CKPT_FORMAT_VERSION when written by this build */
    char stage[64];       /* "compress", "calibrate", "bqpo", ... */
    char config_hash[65];
    char model_id[256];   /* e.g. the source model's path or registry name */
    char git_revision[64];
} gq_ckpt_meta;
gq_status gq_ckpt_write_meta(gq_ckpt *c, const gq_ckpt_meta *m);
/* Missing string attributes read as ""; a format_version newer than this build is GQ_ERR_FORMAT. */
gq_status gq_ckpt_read_meta(gq_ckpt *c, gq_ckpt_meta *m);

/* A whole model: /config, dense tensors, and (if gqs != NULL) the GQS arrays of every linear
 * whose entry has row_index != NULL. The source path (m->source) is kept as /meta attribute
 * "source_model" so the reader can attach the tokenizer. */
gq_status gq_ckpt_write_model(gq_ckpt *c, const gq_model *m, const gq_gqs *gqs /* [L*7] or NULL */);
/* Read /config and the dense tensors; *gqs_out (if not NULL) gets a malloc'd [L*7] array (entries
 * absent in the file have row_index NULL; free each with gq_gqs_free, then free()). GQS arrays are
 * validated (gq_gqs_validate). The tokenizer is not attached (see gq_ckpt_load_model). */
gq_status gq_ckpt_read_model(gq_ckpt *c, gq_model **out, gq_gqs **gqs_out);

/* Compressed model: write_model + /compress attributes (method, sparsity, bits, group, scope, damp)
 * and per-linear achieved sparsity as /layers/<i>/<name> attribute "sparsity". */
gq_status gq_ckpt_write_compressed(gq_ckpt *c, const gq_compressed *cm);

/* One call: create, write meta + compressed model, commit. */
gq_status gq_ckpt_save_compressed(const char *path, const gq_compressed *cm, const gq_ckpt_meta *meta);

/* For gq_model_load on *.h5: open, read the dense model, attach the tokenizer of the source model
 * recorded in /meta/source_model when it can be loaded (else tok stays NULL), set format "h5". */
gq_status gq_ckpt_load_model(const char *path, gq_model **out);

/* Hessians: /hessian/<i>/<name> for every input-group head whose H is present. */
gq_status gq_ckpt_write_hessians(gq_ckpt *c, const gq_hessians *hs);
/* hs must be initialised for the model's shape (gq_hessians_init); dims are checked against it. */
gq_status gq_ckpt_read_hessians(gq_ckpt *c, gq_hessians *hs, const gq_model *m);

#endif
