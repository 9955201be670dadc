/* ckpt.c — HDF5 checkpoints (layout and contracts in ckpt.h). Writes go to "<path>.tmp" and are
 * renamed into place only after flush + close + fsync; reads check type class, rank and element
 * counts of every dataset before reading it.
 * Must not: choose file names, print (HDF5's own error stack printing is switched off).
 */
#include "ckpt.h"

#include <fcntl.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct gq_ckpt {
    hid_t file;
    int writing;
    char path[1024];
    char tmp[1040];
};

static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

const char *gq_ckpt_path(const gq_ckpt *c) { return c->path; }

gq_status gq_ckpt_create(const char *path, gq_ckpt **out) {
    quiet_hdf5();
    *out = NULL;
    if (strlen(path) >= 1000) return gq_errf(GQ_ERR_ARG, "checkpoint path too long: %s", path);
    gq_ckpt *c = gq_calloc(1, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(c->tmp, sizeof c->tmp, "%s.tmp", path);
    c->writing = 1;
    c->file = H5Fcreate(c->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (c->file < 0) {
        free(c);
        return gq_errf(GQ_ERR_IO, "cannot create checkpoint %s.tmp (does the folder exist and is it writable?)", path);
    }
    *out = c;
    return GQ_OK;
}

gq_status gq_ckpt_commit(gq_ckpt *c) {
    GQ_ASSERT(c && c->writing);
    gq_status st = GQ_OK;
    if (H5Fflush(c->file, H5F_SCOPE_GLOBAL) < 0) st = gq_errf(GQ_ERR_IO, "%s: H5Fflush failed", c->tmp);
    if (H5Fclose(c->file) < 0 && st == GQ_OK) st = gq_errf(GQ_ERR_IO, "%s: H5Fclose failed", c->tmp);
    if (st == GQ_OK) {
        int fd = open(c->tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) st = gq_errf(GQ_ERR_IO, "%s: fsync failed", c->tmp);
        if (fd >= 0) close(fd);
    }
    if (st == GQ_OK && rename(c->tmp, c->path) != 0) st = gq_errf(GQ_ERR_IO, "cannot rename %s to %s", c->tmp, c->path);
    if (st == GQ_OK) {
        /* make the rename itself durable */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", c->path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        else snprintf(dir, sizeof dir, ".");
        int dfd = open(dir, O_RDONLY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    } else {
        unlink(c->tmp);
    }
    free(c);
    return st;
}

void gq_ckpt_abort(gq_ckpt *c) {
    if (!c) return;
    H5Fclose(c->file);
    if (c->writing) unlink(c->tmp);
    free(c);
}

gq_status gq_ckpt_open(const char *path, gq_ckpt **out) {
    quiet_hdf5();
    *out = NULL;
    if (!gq_file_exists(path)) return gq_errf(GQ_ERR_IO, "checkpoint %s not found", path);
    gq_ckpt *c = gq_calloc(1, sizeof *c);
    snprintf(c->path, sizeof c->path, "%s", path);
    c->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (c->file < 0) {
        free(c);
        return gq_errf(GQ_ERR_FORMAT, "%s is not a readable HDF5 file", path);
    }
    *out = c;
    return GQ_OK;
}

void gq_ckpt_close(gq_ckpt *c) {
    if (!c) return;
    H5Fclose(c->file);
    free(c);
}

/* ------------------------------------------------------------------------------------------ */
/* names and types */

/* Does every component of the absolute path `name` exist? (H5Lexists needs each parent to exist.) */
int gq_ckpt_has(gq_ckpt *c, const char *name) {
    if (!name || name[0] != '/') return 0;
    if (!strcmp(name, "/")) return 1;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char save = *p;
            *p = 0;
            if (H5Lexists(c->file, buf, H5P_DEFAULT) <= 0) return 0;
            if (!save) return 1;
            *p = save;
        }
    }
}

/* Create the parent groups of `name` (all components but the last when `last` is 0). */
static gq_status make_groups(gq_ckpt *c, const char *name, int last) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", name) >= (int)sizeof buf || buf[0] != '/')
        return gq_errf(GQ_ERR_ARG, "%s: bad checkpoint name '%s'", c->path, name);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || (*p == 0 && last)) {
            char save = *p;
            *p = 0;
            if (H5Lexists(c->file, buf, H5P_DEFAULT) <= 0) {
                hid_t g = H5Gcreate2(c->file, buf, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
                if (g < 0) return gq_errf(GQ_ERR_IO, "%s: cannot create group %s", c->path, buf);
                H5Gclose(g);
            }
            if (!save) break;
            *p = save;
        }
        if (!*p) break;
    }
    return GQ_OK;
}

static hid_t mem_type(gq_ckpt_dtype t) {
    switch (t) {
    case GQ_CKPT_F32: return H5T_NATIVE_FLOAT;
    case GQ_CKPT_F64: return H5T_NATIVE_DOUBLE;
    case GQ_CKPT_I32: return H5T_NATIVE_INT32;
    case GQ_CKPT_I64: return H5T_NATIVE_INT64;
    case GQ_CKPT_U8: return H5T_NATIVE_UINT8;
    }
    GQ_ASSERT(0);
}

static hid_t file_type(gq_ckpt_dtype t) {
    switch (t) {
    case GQ_CKPT_F32: return H5T_IEEE_F32LE;
    case GQ_CKPT_F64: return H5T_IEEE_F64LE;
    case GQ_CKPT_I32: return H5T_STD_I32LE;
    case GQ_CKPT_I64: return H5T_STD_I64LE;
    case GQ_CKPT_U8: return H5T_STD_U8LE;
    }
    GQ_ASSERT(0);
}

static size_t dtype_size(gq_ckpt_dtype t) {
    return t == GQ_CKPT_F64 || t == GQ_CKPT_I64 ? 8 : t == GQ_CKPT_U8 ? 1 : 4;
}

static int is_float(gq_ckpt_dtype t) { return t == GQ_CKPT_F32 || t == GQ_CKPT_F64; }

/* ------------------------------------------------------------------------------------------ */
/* datasets */

gq_status gq_ckpt_write(gq_ckpt *c, const char *name, gq_ckpt_dtype t, const void *data, int rank,
                        const int64_t *dims) {
    GQ_ASSERT(c->writing && rank >= 1 && rank <= 4);
    if (gq_ckpt_has(c, name)) return gq_errf(GQ_ERR_ARG, "%s: dataset %s written twice", c->path, name);
    GQ_TRY(make_groups(c, name, 0));
    hsize_t hd[4];
    for (int i = 0; i < rank; i++) {
        GQ_ASSERT(dims[i] >= 0);
        hd[i] = (hsize_t)dims[i];
    }
    hid_t sp = H5Screate_simple(rank, hd, NULL);
    hid_t ds = H5Dcreate2(c->file, name, file_type(t), sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    gq_status st = GQ_OK;
    if (ds < 0) st = gq_errf(GQ_ERR_IO, "%s: cannot create dataset %s", c->path, name);
    else if (H5Sget_simple_extent_npoints(sp) > 0 && H5Dwrite(ds, mem_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        st = gq_errf(GQ_ERR_IO, "%s: cannot write dataset %s (disk full?)", c->path, name);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    return st;
}

gq_status gq_ckpt_shape(gq_ckpt *c, const char *name, int *rank, int64_t dims[4]) {
    if (!gq_ckpt_has(c, name)) return gq_errf(GQ_ERR_FORMAT, "%s: dataset %s is missing", c->path, name);
    hid_t ds = H5Dopen2(c->file, name, H5P_DEFAULT);
    if (ds < 0) return gq_errf(GQ_ERR_FORMAT, "%s: %s is not a dataset", c->path, name);
    hid_t sp = H5Dget_space(ds);
    int r = H5Sget_simple_extent_ndims(sp);
    gq_status st = GQ_OK;
    if (r < 1 || r > 4) st = gq_errf(GQ_ERR_FORMAT, "%s: dataset %s has rank %d (expected 1..4)", c->path, name, r);
    else {
        hsize_t hd[4];
        H5Sget_simple_extent_dims(sp, hd, NULL);
        *rank = r;
        for (int i = 0; i < r; i++) dims[i] = (int64_t)hd[i];
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return st;
}

gq_status gq_ckpt_read_into(gq_ckpt *c, const char *name, gq_ckpt_dtype t, void *buf, size_t count) {
    int rank;
    int64_t dims[4];
    GQ_TRY(gq_ckpt_shape(c, name, &rank, dims));
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        if (gq_mul_overflow(n, (size_t)dims[i], &n)) return gq_errf(GQ_ERR_FORMAT, "%s: %s: element count overflows", c->path, name);
    if (n != count)
        return gq_errf(GQ_ERR_FORMAT, "%s: dataset %s has %zu elements, expected %zu", c->path, name, n, count);
    hid_t ds = H5Dopen2(c->file, name, H5P_DEFAULT);
    hid_t ft = H5Dget_type(ds);
    H5T_class_t cls = H5Tget_class(ft);
    H5Tclose(ft);
    gq_status st = GQ_OK;
    if (cls != (is_float(t) ? H5T_FLOAT : H5T_INTEGER))
        st = gq_errf(GQ_ERR_FORMAT, "%s: dataset %s has the wrong type class (expected %s)", c->path, name,
                     is_float(t) ? "float" : "integer");
    else if (n && H5Dread(ds, mem_type(t), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        st = gq_errf(GQ_ERR_FORMAT, "%s: cannot read dataset %s", c->path, name);
    H5Dclose(ds);
    return st;
}

gq_status gq_ckpt_read(gq_ckpt *c, const char *name, gq_ckpt_dtype t, void **data, int *rank, int64_t dims[4]) {
    *data = NULL;
    GQ_TRY(gq_ckpt_shape(c, name, rank, dims));
    size_t n = 1, bytes;
    for (int i = 0; i < *rank; i++)
        if (gq_mul_overflow(n, (size_t)dims[i], &n)) return gq_errf(GQ_ERR_FORMAT, "%s: %s: element count overflows", c->path, name);
    if (gq_mul_overflow(n, dtype_size(t), &bytes)) return gq_errf(GQ_ERR_FORMAT, "%s: %s: size overflows", c->path, name);
    void *buf = gq_try_malloc(bytes ? bytes : 1);
    if (!buf) return gq_errf(GQ_ERR_NOMEM, "%s: no memory for dataset %s (%zu bytes)", c->path, name, bytes);
    gq_status st = gq_ckpt_read_into(c, name, t, buf, n);
    if (st != GQ_OK) {
        free(buf);
        return st;
    }
    *data = buf;
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* attributes */

static gq_status attr_begin(gq_ckpt *c, const char *obj, const char *key, hid_t *o) {
    if (c->writing && !gq_ckpt_has(c, obj)) GQ_TRY(make_groups(c, obj, 1));
    *o = H5Oopen(c->file, obj, H5P_DEFAULT);
    if (*o < 0) return gq_errf(c->writing ? GQ_ERR_IO : GQ_ERR_FORMAT, "%s: object %s is missing", c->path, obj);
    if (c->writing && H5Aexists(*o, key) > 0) H5Adelete(*o, key);
    return GQ_OK;
}

static gq_status attr_write(gq_ckpt *c, const char *obj, const char *key, hid_t ftype, hid_t mtype, const void *v) {
    hid_t o;
    GQ_TRY(attr_begin(c, obj, key, &o));
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(o, key, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    gq_status st = GQ_OK;
    if (a < 0 || H5Awrite(a, mtype, v) < 0) st = gq_errf(GQ_ERR_IO, "%s: cannot write attribute %s/%s", c->path, obj, key);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Oclose(o);
    return st;
}

gq_status gq_ckpt_attr_set_str(gq_ckpt *c, const char *obj, const char *key, const char *val) {
    GQ_ASSERT(c->writing);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(val) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    gq_status st = attr_write(c, obj, key, t, t, val);
    H5Tclose(t);
    return st;
}

gq_status gq_ckpt_attr_set_i64(gq_ckpt *c, const char *obj, const char *key, int64_t val) {
    GQ_ASSERT(c->writing);
    return attr_write(c, obj, key, H5T_STD_I64LE, H5T_NATIVE_INT64, &val);
}

gq_status gq_ckpt_attr_set_f64(gq_ckpt *c, const char *obj, const char *key, double val) {
    GQ_ASSERT(c->writing);
    return attr_write(c, obj, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &val);
}

static gq_status attr_open(gq_ckpt *c, const char *obj, const char *key, hid_t *o, hid_t *a) {
    if (!gq_ckpt_has(c, obj)) return gq_errf(GQ_ERR_FORMAT, "%s: %s is missing", c->path, obj);
    *o = H5Oopen(c->file, obj, H5P_DEFAULT);
    if (*o < 0) return gq_errf(GQ_ERR_FORMAT, "%s: cannot open %s", c->path, obj);
    if (H5Aexists(*o, key) <= 0) {
        H5Oclose(*o);
        return gq_errf(GQ_ERR_FORMAT, "%s: attribute %s of %s is missing", c->path, key, obj);
    }
    *a = H5Aopen(*o, key, H5P_DEFAULT);
    hid_t sp = H5Aget_space(*a);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (*a < 0 || np != 1) {
        if (*a >= 0) H5Aclose(*a);
        H5Oclose(*o);
        return gq_errf(GQ_ERR_FORMAT, "%s: attribute %s of %s is not a scalar", c->path, key, obj);
    }
    return GQ_OK;
}

static gq_status attr_read_num(gq_ckpt *c, const char *obj, const char *key, hid_t mtype, H5T_class_t want, void *v) {
    hid_t o, a;
    GQ_TRY(attr_open(c, obj, key, &o, &a));
    hid_t ft = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(ft);
    H5Tclose(ft);
    gq_status st = GQ_OK;
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) st = gq_errf(GQ_ERR_FORMAT, "%s: attribute %s/%s is not a number", c->path, obj, key);
    else if (want == H5T_INTEGER && cls != H5T_INTEGER)
        st = gq_errf(GQ_ERR_FORMAT, "%s: attribute %s/%s is not an integer", c->path, obj, key);
    else if (H5Aread(a, mtype, v) < 0) st = gq_errf(GQ_ERR_FORMAT, "%s: cannot read attribute %s/%s", c->path, obj, key);
    H5Aclose(a);
    H5Oclose(o);
    return st;
}

gq_status gq_ckpt_attr_get_i64(gq_ckpt *c, const char *obj, const char *key, int64_t *val) {
    return attr_read_num(c, obj, key, H5T_NATIVE_INT64, H5T_INTEGER, val);
}

gq_status gq_ckpt_attr_get_f64(gq_ckpt *c, const char *obj, const char *key, double *val) {
    return attr_read_num(c, obj, key, H5T_NATIVE_DOUBLE, H5T_FLOAT, val);
}

gq_status gq_ckpt_attr_get_str(gq_ckpt *c, const char *obj, const char *key, char *buf, size_t cap) {
    GQ_ASSERT(cap > 0);
    buf[0] = 0;
    hid_t o, a;
    GQ_TRY(attr_open(c, obj, key, &o, &a));
    hid_t ft = H5Aget_type(a);
    gq_status st = GQ_OK;
    if (H5Tget_class(ft) != H5T_STRING) {
        st = gq_errf(GQ_ERR_FORMAT, "%s: attribute %s/%s is not a string", c->path, obj, key);
    } else if (H5Tis_variable_str(ft) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        if (H5Aread(a, mt, &s) < 0 || !s) st = gq_errf(GQ_ERR_FORMAT, "%s: cannot read attribute %s/%s", c->path, obj, key);
        else snprintf(buf, cap, "%s", s);
        if (s) H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(ft);
        if (sz == 0 || sz > (1u << 20)) st = gq_errf(GQ_ERR_FORMAT, "%s: attribute %s/%s has size %zu", c->path, obj, key, sz);
        else {
            char *tmp = gq_calloc(sz + 1, 1);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, sz);
            if (H5Aread(a, mt, tmp) < 0) st = gq_errf(GQ_ERR_FORMAT, "%s: cannot read attribute %s/%s", c->path, obj, key);
            else snprintf(buf, cap, "%s", tmp);
            H5Tclose(mt);
            free(tmp);
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    H5Oclose(o);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* meta */

gq_status gq_ckpt_write_meta(gq_ckpt *c, const gq_ckpt_meta *m) {
    GQ_TRY(gq_ckpt_attr_set_i64(c, "/meta", "format_version", m->format_version ? m->format_version : GQ_CKPT_FORMAT_VERSION));
    GQ_TRY(gq_ckpt_attr_set_str(c, "/meta", "stage", m->stage));
    GQ_TRY(gq_ckpt_attr_set_str(c, "/meta", "config_hash", m->config_hash));
    GQ_TRY(gq_ckpt_attr_set_str(c, "/meta", "model_id", m->model_id));
    GQ_TRY(gq_ckpt_attr_set_str(c, "/meta", "git_revision", m->git_revision));
    return GQ_OK;
}

gq_status gq_ckpt_read_meta(gq_ckpt *c, gq_ckpt_meta *m) {
    memset(m, 0, sizeof *m);
    int64_t v;
    GQ_TRY(gq_ckpt_attr_get_i64(c, "/meta", "format_version", &v));
    if (v < 1 || v > GQ_CKPT_FORMAT_VERSION)
        return gq_errf(GQ_ERR_FORMAT, "%s: format_version %lld is not supported by this build (max %d)", c->path, (long long)v,
                       GQ_CKPT_FORMAT_VERSION);
    m->format_version = (int)v;
    /* optional strings: absent reads as "" */
    gq_ckpt_attr_get_str(c, "/meta", "stage", m->stage, sizeof m->stage);
    gq_ckpt_attr_get_str(c, "/meta", "config_hash", m->config_hash, sizeof m->config_hash);
    gq_ckpt_attr_get_str(c, "/meta", "model_id", m->model_id, sizeof m->model_id);
    gq_ckpt_attr_get_str(c, "/meta", "git_revision", m->git_revision, sizeof m->git_revision);
    gq_err_clear();
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* models */

#define CFG_INTS(X)                                                                                \
    X(arch) X(dim) X(hidden_dim) X(n_layers) X(n_heads) X(n_kv_heads) X(head_dim) X(vocab_size)   \
    X(max_seq_len) X(rope_style) X(tied_embeddings) X(qkv_bias) X(bos_id) X(eos_id) X(add_bos)

static gq_status write_f32(gq_ckpt *c, const char *name, const float *data, int64_t d0, int64_t d1) {
    int64_t dims[2] = {d0, d1};
    return gq_ckpt_write(c, name, GQ_CKPT_F32, data, d1 ? 2 : 1, dims);
}

gq_status gq_ckpt_write_model(gq_ckpt *c, const gq_model *m, const gq_gqs *gqs) {
    const gq_config *cfg = &m->cfg;
#define W_INT(f) GQ_TRY(gq_ckpt_attr_set_i64(c, "/config", #f, (int64_t)cfg->f));
    CFG_INTS(W_INT)
#undef W_INT
    GQ_TRY(gq_ckpt_attr_set_f64(c, "/config", "norm_eps", cfg->norm_eps));
    GQ_TRY(gq_ckpt_attr_set_f64(c, "/config", "rope_theta", cfg->rope_theta));
    GQ_TRY(gq_ckpt_attr_set_str(c, "/config", "name", cfg->name));
    /* absolute, so the tokenizer can be found from any working directory */
    char *abs = m->source[0] ? realpath(m->source, NULL) : NULL;
    gq_status sst = gq_ckpt_attr_set_str(c, "/meta", "source_model", abs ? abs : m->source);
    free(abs);
    GQ_TRY(sst);
    GQ_TRY(gq_ckpt_attr_set_str(c, "/meta", "source_format", m->format));
    const int64_t V = cfg->vocab_size, D = cfg->dim;
    GQ_TRY(write_f32(c, "/tok_emb", m->tok_emb, V, D));
    GQ_TRY(write_f32(c, "/final_norm", m->final_norm, D, 0));
    if (!cfg->tied_embeddings) GQ_TRY(write_f32(c, "/lm_head", m->lm_head, V, D));
    char name[256];
    for (int l = 0; l < cfg->n_layers; l++) {
        const gq_block *b = &m->blocks[l];
        snprintf(name, sizeof name, "/layers/%d/attn_norm", l);
        GQ_TRY(write_f32(c, name, b->attn_norm, D, 0));
        snprintf(name, sizeof name, "/layers/%d/ffn_norm", l);
        GQ_TRY(write_f32(c, name, b->ffn_norm, D, 0));
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_linear *lin = &b->lin[k];
            const char *ln = gq_linear_name((gq_linear_kind)k);
            snprintf(name, sizeof name, "/layers/%d/%s/weight", l, ln);
            GQ_TRY(write_f32(c, name, lin->w, lin->out, lin->in));
            if (lin->bias) {
                snprintf(name, sizeof name, "/layers/%d/%s/bias", l, ln);
                GQ_TRY(write_f32(c, name, lin->bias, lin->out, 0));
            }
            const gq_gqs *g = gqs ? &gqs[(size_t)l * GQ_LIN_COUNT + k] : NULL;
            if (!g || !g->row_index) continue;
            char grp[128];
            snprintf(grp, sizeof grp, "/layers/%d/%s", l, ln);
            int64_t d;
            d = g->N + 1;
            snprintf(name, sizeof name, "%s/row_index", grp);
            GQ_TRY(gq_ckpt_write(c, name, GQ_CKPT_I32, g->row_index, 1, &d));
            d = (int64_t)g->nnz;
            snprintf(name, sizeof name, "%s/group_col", grp);
            GQ_TRY(gq_ckpt_write(c, name, GQ_CKPT_I32, g->group_col, 1, &d));
            snprintf(name, sizeof name, "%s/scales", grp);
            GQ_TRY(gq_ckpt_write(c, name, GQ_CKPT_F32, g->scales, 1, &d));
            snprintf(name, sizeof name, "%s/zeros", grp);
            GQ_TRY(gq_ckpt_write(c, name, GQ_CKPT_F32, g->zeros, 1, &d));
            d = (int64_t)(g->nnz * gq_gqs_bytes_per_group(g->G, g->bits));
            snprintf(name, sizeof name, "%s/values", grp);
            GQ_TRY(gq_ckpt_write(c, name, GQ_CKPT_U8, g->values, 1, &d));
            GQ_TRY(gq_ckpt_attr_set_i64(c, grp, "N", g->N));
            GQ_TRY(gq_ckpt_attr_set_i64(c, grp, "K", g->K));
            GQ_TRY(gq_ckpt_attr_set_i64(c, grp, "G", g->G));
            GQ_TRY(gq_ckpt_attr_set_i64(c, grp, "bits", g->bits));
        }
    }
    return GQ_OK;
}

/* Read one GQS layer whose group `grp` has row_index; validates against the linear's shape. */
static gq_status read_gqs(gq_ckpt *c, const char *grp, const gq_linear *lin, gq_gqs *g) {
    memset(g, 0, sizeof *g);
    int64_t N, K, G, bits;
    GQ_TRY(gq_ckpt_attr_get_i64(c, grp, "N", &N));
    GQ_TRY(gq_ckpt_attr_get_i64(c, grp, "K", &K));
    GQ_TRY(gq_ckpt_attr_get_i64(c, grp, "G", &G));
    GQ_TRY(gq_ckpt_attr_get_i64(c, grp, "bits", &bits));
    if (N != lin->out || K != lin->in || G <= 0 || G > K || K % G || !gq_quant_bits_supported((int)bits))
        return gq_errf(GQ_ERR_FORMAT, "%s: %s: GQS shape N=%lld K=%lld G=%lld bits=%lld does not fit a [%d, %d] weight",
                       c->path, grp, (long long)N, (long long)K, (long long)G, (long long)bits, lin->out, lin->in);
    g->N = (int)N, g->K = (int)K, g->G = (int)G, g->bits = (int)bits;
    char name[512];
    int rank;
    int64_t dims[4];
    snprintf(name, sizeof name, "%s/group_col", grp);
    GQ_TRY(gq_ckpt_shape(c, name, &rank, dims));
    if (rank != 1 || dims[0] > N * (K / G))
        return gq_errf(GQ_ERR_FORMAT, "%s: %s has a bad shape", c->path, name);
    g->nnz = (size_t)dims[0];
    size_t nnz = g->nnz, bpg = gq_gqs_bytes_per_group(g->G, g->bits);
    g->row_index = gq_malloc((size_t)(N + 1) * sizeof(int32_t));
    g->group_col = gq_malloc((nnz ? nnz : 1) * sizeof(int32_t));
    g->scales = gq_malloc((nnz ? nnz : 1) * sizeof(float));
    g->zeros = gq_malloc((nnz ? nnz : 1) * sizeof(float));
    g->values = gq_malloc(nnz ? nnz * bpg : 1);
    gq_status st;
    snprintf(name, sizeof name, "%s/row_index", grp);
    if ((st = gq_ckpt_read_into(c, name, GQ_CKPT_I32, g->row_index, (size_t)N + 1)) != GQ_OK) goto fail;
    snprintf(name, sizeof name, "%s/group_col", grp);
    if ((st = gq_ckpt_read_into(c, name, GQ_CKPT_I32, g->group_col, nnz)) != GQ_OK) goto fail;
    snprintf(name, sizeof name, "%s/scales", grp);
    if ((st = gq_ckpt_read_into(c, name, GQ_CKPT_F32, g->scales, nnz)) != GQ_OK) goto fail;
    snprintf(name, sizeof name, "%s/zeros", grp);
    if ((st = gq_ckpt_read_into(c, name, GQ_CKPT_F32, g->zeros, nnz)) != GQ_OK) goto fail;
    snprintf(name, sizeof name, "%s/values", grp);
    if ((st = gq_ckpt_read_into(c, name, GQ_CKPT_U8, g->values, nnz * bpg)) != GQ_OK) goto fail;
    char what[1400];
    snprintf(what, sizeof what, "%s: %s", c->path, grp);
    if ((st = gq_gqs_validate(g, what)) != GQ_OK) goto fail;
    return GQ_OK;
fail:
    gq_gqs_free(g);
    return st;
}

gq_status gq_ckpt_read_model(gq_ckpt *c, gq_model **out, gq_gqs **gqs_out) {
    *out = NULL;
    if (gqs_out) *gqs_out = NULL;
    gq_config cfg;
    memset(&cfg, 0, sizeof cfg);
    int64_t v;
    /* bound every integer before it reaches an int field: a hostile file must not wrap them */
#define R_INT(f)                                                                                   \
    GQ_TRY(gq_ckpt_attr_get_i64(c, "/config", #f, &v));                                            \
    if (v < -1 || v > (1 << 30)) return gq_errf(GQ_ERR_FORMAT, "%s: /config %s = %lld out of range", c->path, #f, (long long)v); \
    cfg.f = (__typeof__(cfg.f))v;
    CFG_INTS(R_INT)
#undef R_INT
    double d;
    GQ_TRY(gq_ckpt_attr_get_f64(c, "/config", "norm_eps", &d));
    cfg.norm_eps = (float)d;
    GQ_TRY(gq_ckpt_attr_get_f64(c, "/config", "rope_theta", &d));
    cfg.rope_theta = (float)d;
    gq_ckpt_attr_get_str(c, "/config", "name", cfg.name, sizeof cfg.name);
    gq_err_clear();
    if (cfg.arch < 0 || cfg.arch > GQ_ARCH_OPT || (cfg.rope_style != GQ_ROPE_INTERLEAVED && cfg.rope_style != GQ_ROPE_HALF))
        return gq_errf(GQ_ERR_FORMAT, "%s: /config arch %d or rope_style %d unknown", c->path, (int)cfg.arch, (int)cfg.rope_style);
    char what[1100];
    snprintf(what, sizeof what, "%s /config", c->path);
    GQ_TRY(gq_config_validate(&cfg, what));
    gq_model *m = gq_model_alloc(&cfg);
    const size_t V = (size_t)cfg.vocab_size, D = (size_t)cfg.dim;
    gq_gqs *gqs = gqs_out ? gq_calloc((size_t)cfg.n_layers * GQ_LIN_COUNT, sizeof *gqs) : NULL;
    gq_status st = GQ_OK;
    char name[256];
#define RD(nm, ptr, cnt)                                                                           \
    if (st == GQ_OK) st = gq_ckpt_read_into(c, nm, GQ_CKPT_F32, ptr, cnt);
    RD("/tok_emb", m->tok_emb, V * D);
    RD("/final_norm", m->final_norm, D);
    if (!cfg.tied_embeddings) RD("/lm_head", m->lm_head, V * D);
    for (int l = 0; l < cfg.n_layers && st == GQ_OK; l++) {
        gq_block *b = &m->blocks[l];
        snprintf(name, sizeof name, "/layers/%d/attn_norm", l);
        RD(name, b->attn_norm, D);
        snprintf(name, sizeof name, "/layers/%d/ffn_norm", l);
        RD(name, b->ffn_norm, D);
        for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++) {
            gq_linear *lin = &b->lin[k];
            const char *ln = gq_linear_name((gq_linear_kind)k);
            snprintf(name, sizeof name, "/layers/%d/%s/weight", l, ln);
            RD(name, lin->w, (size_t)lin->out * lin->in);
            if (lin->bias) {
                snprintf(name, sizeof name, "/layers/%d/%s/bias", l, ln);
                RD(name, lin->bias, (size_t)lin->out);
            }
            snprintf(name, sizeof name, "/layers/%d/%s/row_index", l, ln);
            if (st == GQ_OK && gqs && gq_ckpt_has(c, name)) {
                snprintf(name, sizeof name, "/layers/%d/%s", l, ln);
                st = read_gqs(c, name, lin, &gqs[(size_t)l * GQ_LIN_COUNT + k]);
            }
        }
    }
#undef RD
    if (st == GQ_OK) st = gq_model_check_finite(m);
    if (st != GQ_OK) {
        if (gqs)
            for (size_t i = 0; i < (size_t)cfg.n_layers * GQ_LIN_COUNT; i++) gq_gqs_free(&gqs[i]);
        free(gqs);
        gq_model_free(m);
        return st;
    }
    snprintf(m->source, sizeof m->source, "%s", c->path);
    snprintf(m->format, sizeof m->format, "h5");
    *out = m;
    if (gqs_out) *gqs_out = gqs;
    return GQ_OK;
}

gq_status gq_ckpt_write_compressed(gq_ckpt *c, const gq_compressed *cm) {
    GQ_TRY(gq_ckpt_write_model(c, cm->m, cm->gqs));
    const gq_compress_opts *o = &cm->opts;
    GQ_TRY(gq_ckpt_attr_set_str(c, "/compress", "method", cm->method));
    GQ_TRY(gq_ckpt_attr_set_f64(c, "/compress", "sparsity", o->sparsity));
    GQ_TRY(gq_ckpt_attr_set_i64(c, "/compress", "bits", o->bits));
    GQ_TRY(gq_ckpt_attr_set_i64(c, "/compress", "group", o->group));
    GQ_TRY(gq_ckpt_attr_set_str(c, "/compress", "scope", gq_prune_scope_name(o->scope)));
    GQ_TRY(gq_ckpt_attr_set_f64(c, "/compress", "damp", o->damp));
    GQ_TRY(gq_ckpt_attr_set_i64(c, "/compress", "qmode", o->qmode));
    GQ_TRY(gq_ckpt_attr_set_f64(c, "/compress", "achieved_sparsity", gq_compressed_total_sparsity(cm)));
    char grp[128];
    for (int l = 0; l < cm->n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            snprintf(grp, sizeof grp, "/layers/%d/%s", l, gq_linear_name((gq_linear_kind)k));
            GQ_TRY(gq_ckpt_attr_set_f64(c, grp, "sparsity", cm->sparsity[(size_t)l * GQ_LIN_COUNT + k]));
        }
    return GQ_OK;
}

gq_status gq_ckpt_save_compressed(const char *path, const gq_compressed *cm, const gq_ckpt_meta *meta) {
    gq_ckpt *c;
    GQ_TRY(gq_ckpt_create(path, &c));
    gq_status st = gq_ckpt_write_meta(c, meta);
    if (st == GQ_OK) st = gq_ckpt_write_compressed(c, cm);
    if (st != GQ_OK) {
        gq_ckpt_abort(c);
        return st;
    }
    return gq_ckpt_commit(c);
}

gq_status gq_ckpt_load_model(const char *path, gq_model **out) {
    *out = NULL;
    gq_ckpt *c;
    GQ_TRY(gq_ckpt_open(path, &c));
    gq_ckpt_meta meta;
    gq_status st = gq_ckpt_read_meta(c, &meta);
    gq_model *m = NULL;
    if (st == GQ_OK) st = gq_ckpt_read_model(c, &m, NULL);
    char src[1024] = "";
    if (st == GQ_OK) {
        gq_ckpt_attr_get_str(c, "/meta", "source_model", src, sizeof src);
        gq_err_clear();
    }
    gq_ckpt_close(c);
    if (st != GQ_OK) return st;
    /* the tokenizer lives with the source model; loading it again is the simplest honest way to get
     * exactly the same tokenizer (a source that is itself this file would recurse: skip it) */
    if (src[0] && strcmp(src, path) != 0 && gq_file_exists(src)) {
        gq_model *s = NULL;
        if (gq_model_load(src, NULL, &s) == GQ_OK) {
            m->tok = s->tok;
            s->tok = NULL;
            gq_model_free(s);
        } else {
            fprintf(stderr, "gqsa: %s: source model %s could not be loaded for its tokenizer: %s\n", path, src, gq_errmsg());
            gq_err_clear();
        }
    }
    *out = m;
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Hessians */

static const gq_linear_kind k_heads[4] = {GQ_LIN_Q, GQ_LIN_O, GQ_LIN_GATE, GQ_LIN_DOWN};

gq_status gq_ckpt_write_hessians(gq_ckpt *c, const gq_hessians *hs) {
    char name[256];
    for (int l = 0; l < hs->n_layers; l++)
        for (int i = 0; i < 4; i++) {
            const gq_hessian *h = &hs->h[(size_t)l * GQ_LIN_COUNT + k_heads[i]];
            if (!h->H) continue;
            const char *ln = gq_linear_name(k_heads[i]);
            int64_t dims[2] = {h->K, h->K};
            snprintf(name, sizeof name, "/hessian/%d/%s/H", l, ln);
            GQ_TRY(gq_ckpt_write(c, name, GQ_CKPT_F64, h->H, 2, dims));
            snprintf(name, sizeof name, "/hessian/%d/%s/sumsq", l, ln);
            GQ_TRY(gq_ckpt_write(c, name, GQ_CKPT_F64, h->sumsq, 1, dims));
            snprintf(name, sizeof name, "/hessian/%d/%s", l, ln);
            GQ_TRY(gq_ckpt_attr_set_i64(c, name, "n_tok", h->n_tok));
        }
    return GQ_OK;
}

gq_status gq_ckpt_read_hessians(gq_ckpt *c, gq_hessians *hs, const gq_model *m) {
    if (hs->n_layers != m->cfg.n_layers) return gq_errf(GQ_ERR_ARG, "read_hessians: statistics not initialised for this model");
    char name[256];
    for (int l = 0; l < hs->n_layers; l++)
        for (int i = 0; i < 4; i++) {
            gq_hessian *h = &hs->h[(size_t)l * GQ_LIN_COUNT + k_heads[i]];
            const char *ln = gq_linear_name(k_heads[i]);
            snprintf(name, sizeof name, "/hessian/%d/%s/H", l, ln);
            if (!gq_ckpt_has(c, name)) continue;
            const int K = m->blocks[l].lin[k_heads[i]].in;
            free(h->H);
            free(h->sumsq);
            h->K = K;
            h->H = gq_try_malloc((size_t)K * K * sizeof(double));
            h->sumsq = gq_malloc((size_t)K * sizeof(double));
            if (!h->H) return gq_errf(GQ_ERR_NOMEM, "%s: no memory for %s", c->path, name);
            GQ_TRY(gq_ckpt_read_into(c, name, GQ_CKPT_F64, h->H, (size_t)K * K));
            snprintf(name, sizeof name, "/hessian/%d/%s/sumsq", l, ln);
            GQ_TRY(gq_ckpt_read_into(c, name, GQ_CKPT_F64, h->sumsq, (size_t)K));
            snprintf(name, sizeof name, "/hessian/%d/%s", l, ln);
            int64_t nt;
            GQ_TRY(gq_ckpt_attr_get_i64(c, name, "n_tok", &nt));
            h->n_tok = nt;
        }
    return GQ_OK;
}
