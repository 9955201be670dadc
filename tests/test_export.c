/* test_export.c — the GGUF writer and `gqsa export`.
 *
 * Writer: every metadata type and tensor types F32/F16/I8/I32 at odd sizes read back by gqsa's own
 * GGUF reader (gguf.c, written independently of the writer); alignment of every offset; duplicate
 * keys/tensors, bad dims and byte counts are errors; injected write faults at many points leave
 * the old target untouched and no temporary file behind.
 * Export of a compressed stories260K (GQS arrays built in the test from a magnitude mask, so the
 * file is deterministic): every GQS array byte-identical after the round trip, metadata right; the
 * --dense file loads with gq_model_load and gives bit-identical logits to the checkpoint model; the
 * exported tokenizer encodes like the original; a Hugging Face row-order (rotate-half) copy of the
 * model exports to exactly the GGUF row order; and the summary printed by the reference Python
 * `gguf` package (tools/check_export.py, committed as tests/fixtures/export/stories260K_gqs.txt)
 * matches what gqsa's reader sees in a freshly written file, line for line.
 * Needs ../shared/models/stories260K for the export tests (prints SKIP and passes without it).
 * Set GQSA_EXPORT_KEEP=FILE to keep the GQS export (to regenerate the fixture).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../cli/cli.h"
#include "ckpt.h"
#include "compress.h"
#include "export_gguf.h"
#include "forward.h"
#include "gguf.h"
#include "model.h"
#include "tokenizer.h"
#include "tokenizer_export.h"

/* Python prints sum|w_hat| from a float64 decode, gq_gqs_expand rounds each weight to fp32 first:
 * the sums (about 5e2 over 4096 weights) differ by at most ~4096 * 2^-24 relative, far below this */
#define DECODE_SUM_REL 1e-5
/* HALF vs INTERLEAVED forward of the same model, rows permuted: the same products in a different
 * order (fp32 sgemm), so logits agree to rounding; stories260K's logits are O(10) */
#define ROPE_LOGIT_ATOL 1e-3

static gq_model *g_model;

static int setup(void **st) {
    (void)st;
    char path[1024];
    gq_data_path(path, sizeof path, "models/stories260K/stories260K.bin");
    if (!gq_file_exists(path)) return 0;
    if (gq_model_load(path, NULL, &g_model) != GQ_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, gq_errmsg());
        return -1;
    }
    return 0;
}

static int teardown(void **st) {
    (void)st;
    gq_model_free(g_model);
    return 0;
}

#define NEED_MODEL()                                                                               \
    do {                                                                                           \
        if (!g_model) {                                                                            \
            printf("SKIP: stories260K not found under the data root (%s)\n", gq_data_root());     \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static char *make_tmpdir(void) {
    char tmpl[] = "/tmp/gqsa_test_exportXXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

/* ------------------------------------------------------------------------------------------ */
/* writer */

static void fill_writer(gq_ggufw *w, float *f32a, float *f16src, int8_t *i8, int32_t *i32) {
    gq_ggufw_set_u8(w, "t.u8", 250);
    gq_ggufw_set_i8(w, "t.i8", -7);
    gq_ggufw_set_u16(w, "t.u16", 65000);
    gq_ggufw_set_i16(w, "t.i16", -30000);
    gq_ggufw_set_u32(w, "t.u32", 4000000000u);
    gq_ggufw_set_i32(w, "t.i32", -2000000000);
    gq_ggufw_set_u64(w, "t.u64", 0xFEDCBA9876543210ull);
    gq_ggufw_set_i64(w, "t.i64", -0x123456789ABCll);
    gq_ggufw_set_f32(w, "t.f32", 1.5f);
    gq_ggufw_set_f64(w, "t.f64", -0.1);
    gq_ggufw_set_bool(w, "t.bool", 1);
    gq_ggufw_set_str(w, "t.str", "hello \xe2\x96\x81 world");
    gq_ggufw_set_str(w, "t.empty", "");
    int16_t a16[3] = {-1, 2, -3};
    gq_ggufw_set_arr(w, "t.arr_i16", GQ_GGUF_I16, a16, 3);
    double a64[2] = {3.25, -1e300};
    gq_ggufw_set_arr(w, "t.arr_f64", GQ_GGUF_F64, a64, 2);
    gq_ggufw_set_arr(w, "t.arr_empty", GQ_GGUF_U32, NULL, 0);
    const char *ss[3] = {"a", "", "x\0y"};
    size_t sl[3] = {1, 0, 3};
    gq_ggufw_set_arr_str(w, "t.arr_str", ss, sl, 3);
    uint64_t d1 = 1, d5[2] = {5, 3}, d17 = 17, d3[3] = {1, 3, 1};
    gq_ggufw_add_tensor(w, "one", GQ_GGML_F32, 1, &d1, f32a, 4);
    gq_ggufw_add_tensor_f32(w, "half", GQ_GGML_F16, 2, d5, f16src);
    gq_ggufw_add_tensor(w, "bytes", GQ_GGUFW_I8, 1, &d17, i8, 17);
    gq_ggufw_add_tensor(w, "ints", GQ_GGUFW_I32, 3, d3, i32, 12);
    gq_ggufw_add_tensor_f32(w, "full", GQ_GGML_F32, 2, d5, f16src);
}

static void test_writer_roundtrip(void **st) {
    (void)st;
    char *dir = make_tmpdir();
    char path[1200];
    snprintf(path, sizeof path, "%s/w.gguf", dir);
    float f32a[1] = {-2.75f}, f16src[15];
    int8_t i8[17];
    int32_t i32[3] = {INT32_MIN, 0, INT32_MAX};
    for (int i = 0; i < 15; i++) f16src[i] = (float)(i - 7) * 0.3337f + (i == 3 ? 70000.0f : 0.0f); /* one overflows fp16 */
    for (int i = 0; i < 17; i++) i8[i] = (int8_t)(i * 37 - 128);
    gq_ggufw *w = gq_ggufw_new();
    fill_writer(w, f32a, f16src, i8, i32);
    assert_int_equal(gq_ggufw_write(w, path), GQ_OK);
    gq_ggufw_free(w);
    assert_int_equal(count_entries(dir), 1); /* no temporary left */

    gq_gguf *g;
    if (gq_gguf_open(path, &g) != GQ_OK) fail_msg("reader: %s", gq_errmsg());
    assert_int_equal(g->version, 3);
    assert_int_equal(g->alignment, 32);
    assert_int_equal(g->n_kv, 17 + 1); /* + general.alignment */
    uint64_t u;
    double f;
    gq_gguf_str s;
    const gq_gguf_kv *kv;
    assert_int_equal(gq_gguf_get_u64(g, "t.u8", &u), GQ_OK); assert_int_equal(u, 250);
    assert_int_equal(gq_gguf_find(g, "t.i8")->type, GQ_GGUF_I8); assert_int_equal(gq_gguf_find(g, "t.i8")->v.i, -7);
    assert_int_equal(gq_gguf_get_u64(g, "t.u16", &u), GQ_OK); assert_int_equal(u, 65000);
    assert_int_equal(gq_gguf_find(g, "t.i16")->v.i, -30000);
    assert_int_equal(gq_gguf_get_u64(g, "t.u32", &u), GQ_OK); assert_int_equal(u, 4000000000u);
    assert_int_equal(gq_gguf_find(g, "t.i32")->v.i, -2000000000);
    assert_int_equal(gq_gguf_get_u64(g, "t.u64", &u), GQ_OK); assert_true(u == 0xFEDCBA9876543210ull);
    assert_true(gq_gguf_find(g, "t.i64")->v.i == -0x123456789ABCll);
    assert_int_equal(gq_gguf_get_f64(g, "t.f32", &f), GQ_OK); assert_true(f == 1.5);
    assert_int_equal(gq_gguf_find(g, "t.f32")->type, GQ_GGUF_F32);
    assert_int_equal(gq_gguf_get_f64(g, "t.f64", &f), GQ_OK); assert_true(f == -0.1);
    kv = gq_gguf_find(g, "t.bool");
    assert_int_equal(kv->type, GQ_GGUF_BOOL); assert_int_equal(kv->v.u, 1);
    assert_int_equal(gq_gguf_get_str(g, "t.str", &s), GQ_OK);
    assert_int_equal(s.n, strlen("hello \xe2\x96\x81 world"));
    assert_memory_equal(s.s, "hello \xe2\x96\x81 world", s.n);
    assert_int_equal(gq_gguf_get_str(g, "t.empty", &s), GQ_OK); assert_int_equal(s.n, 0);
    kv = gq_gguf_find(g, "t.arr_i16");
    assert_int_equal(kv->arr_type, GQ_GGUF_I16); assert_int_equal(kv->arr_n, 3);
    assert_int_equal(gq_gguf_arr_i64(kv, 0), -1); assert_int_equal(gq_gguf_arr_i64(kv, 2), -3);
    kv = gq_gguf_find(g, "t.arr_f64");
    assert_true(gq_gguf_arr_f64(kv, 0) == 3.25 && gq_gguf_arr_f64(kv, 1) == -1e300);
    kv = gq_gguf_find(g, "t.arr_empty");
    assert_int_equal(kv->arr_type, GQ_GGUF_U32); assert_int_equal(kv->arr_n, 0);
    kv = gq_gguf_find(g, "t.arr_str");
    assert_int_equal(kv->arr_type, GQ_GGUF_STRING); assert_int_equal(kv->arr_n, 3);
    assert_int_equal(kv->arr_strs[0].n, 1); assert_int_equal(kv->arr_strs[1].n, 0);
    assert_int_equal(kv->arr_strs[2].n, 3); assert_memory_equal(kv->arr_strs[2].s, "x\0y", 3);

    assert_int_equal(g->n_tensors, 5);
    for (uint64_t i = 0; i < g->n_tensors; i++) assert_int_equal(g->tensors[i].offset % 32, 0);
    const gq_gguf_tensor *t = gq_gguf_find_tensor(g, "one");
    assert_int_equal(t->type, GQ_GGML_F32); assert_memory_equal(t->data, f32a, 4);
    t = gq_gguf_find_tensor(g, "half");
    assert_int_equal(t->type, GQ_GGML_F16);
    assert_int_equal(t->n_dims, 2); assert_int_equal(t->dims[0], 5); assert_int_equal(t->dims[1], 3);
    float back[15];
    assert_int_equal(gq_gguf_tensor_to_f32(g, t, back, 15), GQ_OK);
    for (int i = 0; i < 15; i++) {
        float ref = gq_fp16_to_fp32(gq_fp32_to_fp16(f16src[i]));
        assert_memory_equal(&back[i], &ref, 4);
    }
    assert_true(isinf(back[3])); /* 70000 overflows fp16: inf, as a converter does */
    t = gq_gguf_find_tensor(g, "bytes");
    assert_int_equal(t->type, GQ_GGUFW_I8); assert_int_equal(t->n_bytes, 17); assert_memory_equal(t->data, i8, 17);
    t = gq_gguf_find_tensor(g, "ints");
    assert_int_equal(t->type, GQ_GGUFW_I32); assert_int_equal(t->n_dims, 3); assert_memory_equal(t->data, i32, 12);
    t = gq_gguf_find_tensor(g, "full");
    assert_int_equal(t->n_bytes, 60); assert_memory_equal(t->data, f16src, 60);
    gq_gguf_close(g);
    rm_tree(dir);
    free(dir);
}

static void expect_write_error(gq_ggufw *w, const char *dir, gq_status want, const char *needle) {
    char path[1200];
    snprintf(path, sizeof path, "%s/bad.gguf", dir);
    gq_status st = gq_ggufw_write(w, path);
    gq_ggufw_free(w);
    if (st != want || !strstr(gq_errmsg(), needle))
        fail_msg("status %s, message '%s' (wanted %s mentioning '%s')", gq_status_name(st), gq_errmsg(),
                 gq_status_name(want), needle);
    assert_false(gq_file_exists(path));
}

static void test_writer_errors(void **st) {
    (void)st;
    char *dir = make_tmpdir();
    float x[4] = {0};
    uint64_t d = 4, d0 = 0;
    gq_ggufw *w = gq_ggufw_new();
    gq_ggufw_set_u32(w, "k", 1);
    gq_ggufw_set_str(w, "k", "again");
    expect_write_error(w, dir, GQ_ERR_ARG, "'k' set twice");
    w = gq_ggufw_new();
    gq_ggufw_add_tensor(w, "t", GQ_GGML_F32, 1, &d, x, 16);
    gq_ggufw_add_tensor_f32(w, "t", GQ_GGML_F16, 1, &d, x);
    expect_write_error(w, dir, GQ_ERR_ARG, "'t' added twice");
    w = gq_ggufw_new();
    gq_ggufw_add_tensor(w, "z", GQ_GGML_F32, 1, &d0, x, 16);
    expect_write_error(w, dir, GQ_ERR_ARG, "'z': dim 0");
    w = gq_ggufw_new();
    gq_ggufw_add_tensor(w, "n", GQ_GGUFW_I32, 1, &d, x, 15);
    expect_write_error(w, dir, GQ_ERR_ARG, "15 bytes given");
    w = gq_ggufw_new();
    gq_ggufw_add_tensor(w, "0123456789012345678901234567890123456789012345678901234567890123", GQ_GGML_F32, 1, &d, x, 16);
    expect_write_error(w, dir, GQ_ERR_ARG, "longer than 63");
    w = gq_ggufw_new();
    gq_ggufw_set_u32(w, "general.alignment", 64);
    expect_write_error(w, dir, GQ_ERR_ARG, "general.alignment");
    assert_int_equal(count_entries(dir), 0);

    /* a missing directory is an I/O error naming the path */
    w = gq_ggufw_new();
    gq_ggufw_set_u32(w, "k", 1);
    char path[1200];
    snprintf(path, sizeof path, "%s/no/such/dir.gguf", dir);
    assert_int_equal(gq_ggufw_write(w, path), GQ_ERR_IO);
    assert_non_null(strstr(gq_errmsg(), path));
    gq_ggufw_free(w);

    /* faults injected at every point of the write: the existing target keeps its bytes */
    snprintf(path, sizeof path, "%s/target.gguf", dir);
    assert_int_equal(gq_write_file_atomic(path, "OLD", 3), GQ_OK);
    float f16src[15] = {1, 2, 3};
    float f32a[1] = {1};
    int8_t i8[17] = {0};
    int32_t i32[3] = {0};
    uint64_t full_size = 0;
    {
        char p2[1300];
        snprintf(p2, sizeof p2, "%s/size.gguf", dir);
        w = gq_ggufw_new();
        fill_writer(w, f32a, f16src, i8, i32);
        assert_int_equal(gq_ggufw_write(w, p2), GQ_OK);
        gq_ggufw_free(w);
        struct stat sb;
        assert_int_equal(stat(p2, &sb), 0);
        full_size = (uint64_t)sb.st_size;
        unlink(p2);
    }
    int n_fault = 0;
    for (uint64_t at = 1; at < full_size; at += 1 + at / 3, n_fault++) {
        w = gq_ggufw_new();
        fill_writer(w, f32a, f16src, i8, i32);
        gq_ggufw_set_fault_after(w, at);
        assert_int_equal(gq_ggufw_write(w, path), GQ_ERR_IO);
        gq_ggufw_free(w);
        char *data;
        size_t len;
        assert_int_equal(gq_read_file(path, &data, &len), GQ_OK);
        assert_int_equal(len, 3);
        assert_memory_equal(data, "OLD", 3);
        free(data);
        assert_int_equal(count_entries(dir), 1);
    }
    assert_true(n_fault > 10);
    rm_tree(dir);
    free(dir);
}

/* llama.cpp's permute: reshape(n_head, 2, HD/2, K).swapaxes(1, 2).reshape(N, K), computed here by
 * walking the source tensor in its own (h, j, i) index order and placing each row where the
 * transposed layout puts it (independent of gq_export_rope_perm's closed form). */
static void ref_permute_rows(const float *src, float *dst, int n_head, int hd, int K) {
    int half = hd / 2;
    for (int h = 0; h < n_head; h++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < half; i++) {
                int src_row = (h * 2 + j) * half + i;   /* index (h, j, i) of shape (n_head, 2, half) */
                int dst_row = (h * half + i) * 2 + j;   /* index (h, i, j) of shape (n_head, half, 2) */
                memcpy(dst + (size_t)dst_row * K, src + (size_t)src_row * K, (size_t)K * sizeof(float));
            }
}

static void test_rope_perm(void **st) {
    (void)st;
    const int heads[3] = {1, 3, 4}, hds[3] = {2, 8, 6};
    for (int c = 0; c < 3; c++) {
        int nh = heads[c], hd = hds[c], N = nh * hd, K = 8, G = 4;
        float *w = malloc((size_t)N * K * sizeof(float)), *ref = malloc((size_t)N * K * sizeof(float));
        float *got = malloc((size_t)N * K * sizeof(float)), *dense_p = malloc((size_t)N * K * sizeof(float));
        gq_rng r;
        gq_rng_seed(&r, (uint64_t)c + 1);
        for (int i = 0; i < N * K; i++) w[i] = (float)gq_rng_normal(&r);
        int32_t *perm = malloc((size_t)N * sizeof(int32_t));
        gq_export_rope_perm(nh, hd, perm);
        ref_permute_rows(w, ref, nh, hd, K);
        for (int rr = 0; rr < N; rr++) memcpy(got + (size_t)rr * K, w + (size_t)perm[rr] * K, (size_t)K * sizeof(float));
        assert_memory_equal(got, ref, (size_t)N * K * sizeof(float));
        /* GQS row reorder == dense row reorder of the expanded matrix (uneven rows: some empty) */
        uint8_t *keep = malloc((size_t)N * (K / G));
        for (int i = 0; i < N * (K / G); i++) keep[i] = (uint8_t)(gq_rng_below(&r, 3) != 0);
        keep[0] = keep[1] = 0;
        gq_gqs q, qp;
        assert_int_equal(gq_gqs_build(&q, w, keep, N, K, G, 3), GQ_OK);
        gq_export_gqs_permute_rows(&q, perm, &qp);
        assert_int_equal(gq_gqs_validate(&qp, "permuted"), GQ_OK);
        gq_gqs_expand(&q, got);
        ref_permute_rows(got, dense_p, nh, hd, K);
        gq_gqs_expand(&qp, got);
        assert_memory_equal(got, dense_p, (size_t)N * K * sizeof(float));
        gq_gqs_free(&q);
        gq_gqs_free(&qp);
        free(keep);
        free(perm);
        free(w);
        free(ref);
        free(got);
        free(dense_p);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* export of stories260K */

/* Deterministic "compression" without calibration: per linear, keep the half of the groups of 4
 * with the largest sum|w| (ties to the lower index), 4-bit GQS. */
static int cmp_score(const void *a, const void *b, void *ctx) {
    const double *s = ctx;
    int x = *(const int *)a, y = *(const int *)b;
    if (s[x] != s[y]) return s[x] > s[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static void make_compressed(gq_compressed *c, gq_model *m) {
    gq_compress_opts o;
    gq_compress_opts_default(&o);
    o.method = "magnitude-test";
    o.sparsity = 0.5, o.bits = 4, o.group = 4;
    gq_compressed_init(c, m, &o);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            gq_linear *lin = &m->blocks[l].lin[k];
            int N = lin->out, K = lin->in, ng = N * (K / 4);
            double *s = malloc((size_t)ng * sizeof(double));
            int *ix = malloc((size_t)ng * sizeof(int));
            for (int g = 0; g < ng; g++) {
                s[g] = 0;
                for (int j = 0; j < 4; j++) s[g] += fabs((double)lin->w[(size_t)g * 4 + j]);
                ix[g] = g;
            }
            qsort_r(ix, (size_t)ng, sizeof(int), cmp_score, s);
            uint8_t *keep = calloc((size_t)ng, 1);
            int n_keep = ng - (int)llround(0.5 * ng);
            for (int i = 0; i < n_keep; i++) keep[ix[i]] = 1;
            size_t i_lin = (size_t)l * GQ_LIN_COUNT + k;
            assert_int_equal(gq_gqs_build(&c->gqs[i_lin], lin->w, keep, N, K, 4, 4), GQ_OK);
            gq_gqs_expand(&c->gqs[i_lin], lin->w);
            c->sparsity[i_lin] = (double)(ng - n_keep) / ng;
            c->done[i_lin] = 1;
            free(s);
            free(ix);
            free(keep);
        }
}

/* Writes <dir>/c.h5 (a compressed stories260K checkpoint) and returns the compressed model. */
static void make_checkpoint(const char *dir, gq_compressed *c) {
    gq_model *m = gq_model_clone(g_model);
    /* a registry name, so /meta/source_model (and the fixture) do not depend on this machine */
    snprintf(m->source, sizeof m->source, "stories260K");
    make_compressed(c, m);
    gq_ckpt_meta meta = {GQ_CKPT_FORMAT_VERSION, "compress", "test-config-hash", "stories260K", "test-git-rev"};
    char path[1200];
    snprintf(path, sizeof path, "%s/c.h5", dir);
    if (gq_ckpt_save_compressed(path, c, &meta) != GQ_OK) fail_msg("ckpt: %s", gq_errmsg());
}

static int run_export(const char *dir, const char *out_name, const char *extra) {
    char in[1200], out[1200];
    snprintf(in, sizeof in, "%s/c.h5", dir);
    snprintf(out, sizeof out, "%s/%s", dir, out_name);
    char *argv[8] = {"export", "--in", in, "--out", out, (char *)extra, NULL};
    return cmd_export(extra ? 6 : 5, argv);
}

static void logits_of(const gq_model *m, const int32_t *toks, int T, float *out) {
    gq_fwd f;
    assert_int_equal(gq_fwd_init(&f, m, T), GQ_OK);
    assert_int_equal(gq_forward(&f, toks, T, out), GQ_OK);
    gq_fwd_free(&f);
}

static const char *k_names[GQ_LIN_COUNT] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};

static void test_export_gqs_roundtrip(void **st) {
    (void)st;
    NEED_MODEL();
    char *dir = make_tmpdir();
    gq_compressed c;
    make_checkpoint(dir, &c);
    assert_int_equal(run_export(dir, "m.gguf", NULL), 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    const char *keep = getenv("GQSA_EXPORT_KEEP");
    if (keep) {
        char *d;
        size_t n;
        assert_int_equal(gq_read_file(path, &d, &n), GQ_OK);
        assert_int_equal(gq_write_file_atomic(keep, d, n), GQ_OK);
        free(d);
    }
    gq_gguf *g;
    if (gq_gguf_open(path, &g) != GQ_OK) fail_msg("reader: %s", gq_errmsg());
    gq_gguf_str s;
    uint64_t u;
    double f;
#define STR_IS(key, want)                                                                          \
    do {                                                                                           \
        assert_int_equal(gq_gguf_get_str(g, key, &s), GQ_OK);                                      \
        assert_int_equal(s.n, strlen(want));                                                       \
        assert_memory_equal(s.s, want, s.n);                                                       \
    } while (0)
    STR_IS("general.architecture", "llama");
    STR_IS("gqsa.method", "magnitude-test");
    STR_IS("gqsa.scope", "layer");
    STR_IS("gqsa.values_layout", "lsb-first bitstream, bytes_per_group = ceil(G*bits/8)");
    STR_IS("gqsa.config_hash", "test-config-hash");
    STR_IS("gqsa.git_revision", "test-git-rev");
    STR_IS("gqsa.weights", "gqs");
    STR_IS("tokenizer.ggml.model", "llama");
    assert_int_equal(gq_gguf_get_u64(g, "gqsa.format_version", &u), GQ_OK); assert_int_equal(u, GQ_EXPORT_FORMAT_VERSION);
    assert_int_equal(gq_gguf_get_u64(g, "gqsa.group_size", &u), GQ_OK); assert_int_equal(u, 4);
    assert_int_equal(gq_gguf_get_u64(g, "gqsa.bits", &u), GQ_OK); assert_int_equal(u, 4);
    assert_int_equal(gq_gguf_get_f64(g, "gqsa.sparsity", &f), GQ_OK); assert_true(f == 0.5);
    const gq_config *cf = &g_model->cfg;
    assert_int_equal(gq_gguf_get_u64(g, "llama.block_count", &u), GQ_OK); assert_int_equal(u, cf->n_layers);
    assert_int_equal(gq_gguf_get_u64(g, "llama.embedding_length", &u), GQ_OK); assert_int_equal(u, cf->dim);
    assert_int_equal(gq_gguf_get_u64(g, "llama.feed_forward_length", &u), GQ_OK); assert_int_equal(u, cf->hidden_dim);
    assert_int_equal(gq_gguf_get_u64(g, "llama.attention.head_count", &u), GQ_OK); assert_int_equal(u, cf->n_heads);
    assert_int_equal(gq_gguf_get_u64(g, "llama.attention.head_count_kv", &u), GQ_OK); assert_int_equal(u, cf->n_kv_heads);
    assert_int_equal(gq_gguf_get_u64(g, "llama.context_length", &u), GQ_OK); assert_int_equal(u, cf->max_seq_len);
    assert_int_equal(gq_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &f), GQ_OK);
    assert_true((float)f == cf->norm_eps);
    /* every GQS array byte-identical to the checkpoint's (stories260K is interleaved: no permutation) */
    char name[128];
    for (int l = 0; l < cf->n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_gqs *q = &c.gqs[(size_t)l * GQ_LIN_COUNT + k];
            const gq_gguf_tensor *t;
            size_t bpg = gq_gqs_bytes_per_group(q->G, q->bits);
#define ARR(suffix, type_, bytes_, ptr_)                                                           \
    do {                                                                                           \
        snprintf(name, sizeof name, "blk.%d.%s.gqs." suffix, l, k_names[k]);                       \
        t = gq_gguf_find_tensor(g, name);                                                          \
        if (!t) fail_msg("missing %s", name);                                                      \
        assert_int_equal(t->type, type_);                                                          \
        assert_int_equal(t->n_bytes, bytes_);                                                      \
        assert_memory_equal(t->data, ptr_, bytes_);                                                \
    } while (0)
            ARR("row_index", GQ_GGUFW_I32, ((size_t)q->N + 1) * 4, q->row_index);
            ARR("group_col", GQ_GGUFW_I32, q->nnz * 4, q->group_col);
            ARR("values", GQ_GGUFW_I8, q->nnz * bpg, q->values);
            assert_int_equal(t->dims[0], bpg);
            assert_int_equal(t->dims[1], q->nnz);
            ARR("scales", GQ_GGML_F32, q->nnz * 4, q->scales);
            ARR("zeros", GQ_GGML_F32, q->nnz * 4, q->zeros);
#undef ARR
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, k_names[k]);
            assert_null(gq_gguf_find_tensor(g, name));
        }
    const gq_gguf_tensor *te = gq_gguf_find_tensor(g, "token_embd.weight");
    assert_non_null(te);
    assert_memory_equal(te->data, g_model->tok_emb, (size_t)cf->vocab_size * cf->dim * 4);
    assert_null(gq_gguf_find_tensor(g, "output.weight")); /* tied */
    /* the export reader (inspect) gives back the same arrays */
    for (int l = 0; l < cf->n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_gqs *q = &c.gqs[(size_t)l * GQ_LIN_COUNT + k];
            gq_gqs r;
            assert_int_equal(gq_export_read_gqs(g, l, (gq_linear_kind)k, q->N, q->K, &r), GQ_OK);
            assert_non_null(r.row_index);
            assert_true(r.G == q->G && r.bits == q->bits && r.nnz == q->nnz);
            assert_memory_equal(r.values, q->values, q->nnz * gq_gqs_bytes_per_group(q->G, q->bits));
            assert_memory_equal(r.scales, q->scales, q->nnz * 4);
            gq_gqs_free(&r);
        }
    gq_gguf_close(g);
    assert_true(gq_export_is_gqs_gguf(path));
    FILE *df = tmpfile();
    assert_int_equal(gq_export_describe(path, 0, 0, df), GQ_OK);
    fclose(df);
    /* a corrupted group column is caught by validation, naming the tensor */
    {
        char *d;
        size_t n;
        assert_int_equal(gq_read_file(path, &d, &n), GQ_OK);
        assert_int_equal(gq_gguf_parse(d, n, "corrupt.gguf", &g), GQ_OK);
        const gq_gguf_tensor *gc = gq_gguf_find_tensor(g, "blk.1.ffn_up.gqs.group_col");
        size_t off = (size_t)(gc->data - g->buf);
        gq_gguf_close(g);
        int32_t bad = 1000;
        memcpy(d + off, &bad, 4);
        assert_int_equal(gq_gguf_parse(d, n, "corrupt.gguf", &g), GQ_OK);
        const gq_gqs *q = &c.gqs[1 * GQ_LIN_COUNT + GQ_LIN_UP];
        gq_gqs r;
        assert_int_equal(gq_export_read_gqs(g, 1, GQ_LIN_UP, q->N, q->K, &r), GQ_ERR_FORMAT);
        assert_non_null(strstr(gq_errmsg(), "ffn_up"));
        assert_null(r.row_index);
        gq_gguf_close(g);
        free(d);
    }

    /* --gqs-f16: scales/zeros as F16 of the same values */
    assert_int_equal(run_export(dir, "h.gguf", "--gqs-f16"), 0);
    snprintf(path, sizeof path, "%s/h.gguf", dir);
    assert_int_equal(gq_gguf_open(path, &g), GQ_OK);
    const gq_gguf_tensor *t = gq_gguf_find_tensor(g, "blk.2.ffn_down.gqs.zeros");
    const gq_gqs *q = &c.gqs[2 * GQ_LIN_COUNT + GQ_LIN_DOWN];
    assert_int_equal(t->type, GQ_GGML_F16);
    float *z = malloc(q->nnz * sizeof(float));
    assert_int_equal(gq_gguf_tensor_to_f32(g, t, z, q->nnz), GQ_OK);
    for (size_t i = 0; i < q->nnz; i++) assert_true(z[i] == q->zeros[i]); /* integers < 16: exact in fp16 */
    free(z);
    gq_gguf_close(g);
    gq_compressed_free(&c);
    rm_tree(dir);
    free(dir);
}

static void test_export_dense_logits_and_tokenizer(void **st) {
    (void)st;
    NEED_MODEL();
    char *dir = make_tmpdir();
    gq_compressed c;
    make_checkpoint(dir, &c);
    assert_int_equal(run_export(dir, "d.gguf", "--dense"), 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/d.gguf", dir);
    gq_model *dm;
    if (gq_model_load(path, NULL, &dm) != GQ_OK) fail_msg("load: %s", gq_errmsg());
    /* the checkpoint as gqsa reads it (the reference the logits must equal) */
    snprintf(path, sizeof path, "%s/c.h5", dir);
    gq_model *cm;
    assert_int_equal(gq_ckpt_load_model(path, &cm), GQ_OK);
    enum { T = 48 };
    int32_t toks[T];
    for (int i = 0; i < T; i++) toks[i] = (int32_t)((i * 131 + 7) % cm->cfg.vocab_size);
    toks[0] = 1;
    size_t V = (size_t)cm->cfg.vocab_size;
    float *a = malloc(T * V * sizeof(float)), *b = malloc(T * V * sizeof(float));
    logits_of(cm, toks, T, a);
    logits_of(dm, toks, T, b);
    assert_memory_equal(a, b, T * V * sizeof(float));
    assert_int_equal(dm->cfg.n_layers, cm->cfg.n_layers);
    assert_int_equal(dm->cfg.tied_embeddings, 1);
    assert_int_equal(dm->cfg.bos_id, 1);
    assert_int_equal(dm->cfg.eos_id, 2);
    assert_int_equal(dm->cfg.add_bos, g_model->cfg.add_bos);
    /* the exported tokenizer (llama2.c vocabulary as a sentencepiece "llama" one) encodes alike */
    assert_non_null(dm->tok);
    assert_int_equal(gq_tokenizer_kind(dm->tok), GQ_TOK_SPM);
    const char *texts[] = {"Once upon a time, there was a little girl named Lily.",
                           "She liked to play outside.\nOne day, she saw a big, red ball!",
                           "  two  spaces and a tab\there", "Tom said: \"I'm happy\" 123 4567 ok?", "x"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        int32_t *ia, *ib;
        size_t na, nb;
        assert_int_equal(gq_tokenizer_encode(g_model->tok, texts[i], strlen(texts[i]), 1, &ia, &na), GQ_OK);
        assert_int_equal(gq_tokenizer_encode(dm->tok, texts[i], strlen(texts[i]), 1, &ib, &nb), GQ_OK);
        if (na != nb || memcmp(ia, ib, na * sizeof *ia))
            fail_msg("text %zu: llama2.c tokenizer gives %zu ids, the exported one %zu", i, na, nb);
        char *da, *db;
        size_t la, lb;
        assert_int_equal(gq_tokenizer_decode(g_model->tok, ia, na, &da, &la), GQ_OK);
        assert_int_equal(gq_tokenizer_decode(dm->tok, ib, nb, &db, &lb), GQ_OK);
        assert_string_equal(da, db);
        free(ia), free(ib), free(da), free(db);
    }
    /* F16 dense: every weight is the fp16 rounding of the checkpoint's */
    char in[1200], out[1200];
    snprintf(in, sizeof in, "%s/c.h5", dir);
    snprintf(out, sizeof out, "%s/d16.gguf", dir);
    char *argv[] = {"export", "--in", in, "--out", out, "--dense", "--dtype", "f16", NULL};
    assert_int_equal(cmd_export(8, argv), 0);
    gq_model *hm;
    assert_int_equal(gq_model_load(out, NULL, &hm), GQ_OK);
    const gq_linear *l1 = &cm->blocks[3].lin[GQ_LIN_UP], *l2 = &hm->blocks[3].lin[GQ_LIN_UP];
    for (int i = 0; i < l1->out * l1->in; i++) assert_true(l2->w[i] == gq_fp16_to_fp32(gq_fp32_to_fp16(l1->w[i])));
    assert_true(hm->blocks[3].attn_norm[5] == cm->blocks[3].attn_norm[5]); /* norms stay F32 */
    gq_model_free(hm);
    free(a);
    free(b);
    gq_model_free(dm);
    gq_model_free(cm);
    gq_compressed_free(&c);
    rm_tree(dir);
    free(dir);
}

/* A Hugging Face row-order copy of stories260K (q/k rows un-permuted, rope HALF) must export to
 * exactly the original GGUF-order rows, dense and GQS alike. */
static void test_export_half_rope(void **st) {
    (void)st;
    NEED_MODEL();
    const gq_config *cf = &g_model->cfg;
    gq_model *hf = gq_model_clone(g_model);
    hf->cfg.rope_style = GQ_ROPE_HALF;
    /* undo llama.cpp's permute: the GGUF row (h, i, j) came from the HF row (h, j, i) */
    for (int l = 0; l < cf->n_layers; l++)
        for (int k = GQ_LIN_Q; k <= GQ_LIN_K; k++) {
            gq_linear *lin = &hf->blocks[l].lin[k];
            int nh = k == GQ_LIN_Q ? cf->n_heads : cf->n_kv_heads, hd = cf->head_dim, half = hd / 2, K = lin->in;
            const float *src = g_model->blocks[l].lin[k].w;
            for (int h = 0; h < nh; h++)
                for (int i = 0; i < half; i++)
                    for (int j = 0; j < 2; j++)
                        memcpy(lin->w + ((size_t)h * hd + (size_t)j * half + i) * K,
                               src + ((size_t)h * hd + (size_t)i * 2 + j) * K, (size_t)K * sizeof(float));
        }
    /* the convention check itself: the HF copy computes the same logits under rotate-half RoPE */
    enum { T = 32 };
    int32_t toks[T];
    for (int i = 0; i < T; i++) toks[i] = (int32_t)((i * 57 + 3) % cf->vocab_size);
    size_t V = (size_t)cf->vocab_size;
    float *a = malloc(T * V * sizeof(float)), *b = malloc(T * V * sizeof(float));
    logits_of(g_model, toks, T, a);
    logits_of(hf, toks, T, b);
    double md = 0;
    for (size_t i = 0; i < T * V; i++) md = fmax(md, fabs((double)a[i] - b[i]));
    printf("HF-order copy vs GGUF-order model: max |logit diff| %.3g\n", md);
    assert_true(md < ROPE_LOGIT_ATOL);

    char *dir = make_tmpdir();
    char path[1200];
    /* dense: rows come back in GGUF order, bit for bit */
    snprintf(path, sizeof path, "%s/hf_dense.gguf", dir);
    gq_export_opts o;
    gq_export_opts_default(&o);
    o.dense = 1;
    assert_int_equal(gq_export_gguf(path, hf, NULL, &o), GQ_OK);
    gq_model *back;
    if (gq_model_load(path, NULL, &back) != GQ_OK) fail_msg("%s", gq_errmsg());
    for (int l = 0; l < cf->n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_linear *x = &g_model->blocks[l].lin[k], *y = &back->blocks[l].lin[k];
            assert_memory_equal(x->w, y->w, (size_t)x->out * x->in * sizeof(float));
        }
    gq_model_free(back);
    /* GQS: build on the HF rows, export, and the arrays expand to the GGUF-order matrix */
    gq_gqs *gqs = calloc((size_t)cf->n_layers * GQ_LIN_COUNT, sizeof *gqs);
    for (int l = 0; l < cf->n_layers; l++)
        for (int k = GQ_LIN_Q; k <= GQ_LIN_V; k++) {
            gq_linear *lin = &hf->blocks[l].lin[k];
            int ng = lin->out * (lin->in / 4);
            uint8_t *keep = malloc((size_t)ng);
            for (int i = 0; i < ng; i++) keep[i] = (uint8_t)((i * 7 + l) % 3 != 0);
            assert_int_equal(gq_gqs_build(&gqs[l * GQ_LIN_COUNT + k], lin->w, keep, lin->out, lin->in, 4, 3), GQ_OK);
            free(keep);
        }
    snprintf(path, sizeof path, "%s/hf_gqs.gguf", dir);
    gq_export_opts_default(&o);
    assert_int_equal(gq_export_gguf(path, hf, gqs, &o), GQ_OK);
    gq_gguf *g;
    assert_int_equal(gq_gguf_open(path, &g), GQ_OK);
    const gq_gguf_kv *kv = gq_gguf_find(g, "gqsa.rope_rows_permuted");
    assert_non_null(kv);
    assert_int_equal(kv->v.u, 1);
    for (int l = 0; l < cf->n_layers; l++)
        for (int k = GQ_LIN_Q; k <= GQ_LIN_V; k++) {
            const gq_gqs *q = &gqs[l * GQ_LIN_COUNT + k];
            gq_gqs r = {.N = q->N, .K = q->K, .G = q->G, .bits = q->bits, .nnz = q->nnz};
            char nm[128];
            const gq_gguf_tensor *t;
            snprintf(nm, sizeof nm, "blk.%d.%s.gqs.row_index", l, k_names[k]);
            assert_non_null(t = gq_gguf_find_tensor(g, nm));
            r.row_index = (int32_t *)t->data; /* the reader's mapping is 32-byte aligned */
            snprintf(nm, sizeof nm, "blk.%d.%s.gqs.group_col", l, k_names[k]);
            assert_non_null(t = gq_gguf_find_tensor(g, nm));
            r.group_col = (int32_t *)t->data;
            snprintf(nm, sizeof nm, "blk.%d.%s.gqs.values", l, k_names[k]);
            assert_non_null(t = gq_gguf_find_tensor(g, nm));
            r.values = (uint8_t *)t->data;
            snprintf(nm, sizeof nm, "blk.%d.%s.gqs.scales", l, k_names[k]);
            assert_non_null(t = gq_gguf_find_tensor(g, nm));
            r.scales = (float *)t->data;
            snprintf(nm, sizeof nm, "blk.%d.%s.gqs.zeros", l, k_names[k]);
            assert_non_null(t = gq_gguf_find_tensor(g, nm));
            r.zeros = (float *)t->data;
            assert_int_equal(gq_gqs_validate(&r, nm), GQ_OK);
            size_t NK = (size_t)q->N * q->K;
            float *e_hf = malloc(NK * sizeof(float)), *e_back = malloc(NK * sizeof(float)), *e_ref = malloc(NK * sizeof(float));
            gq_gqs_expand(q, e_hf);
            gq_gqs_expand(&r, e_back);
            if (k == GQ_LIN_V) {
                memcpy(e_ref, e_hf, NK * sizeof(float)); /* v is not permuted */
            } else {
                int nh = k == GQ_LIN_Q ? cf->n_heads : cf->n_kv_heads;
                ref_permute_rows(e_hf, e_ref, nh, cf->head_dim, q->K);
            }
            assert_memory_equal(e_back, e_ref, NK * sizeof(float));
            free(e_hf), free(e_back), free(e_ref);
        }
    gq_gguf_close(g);
    for (int i = 0; i < cf->n_layers * GQ_LIN_COUNT; i++) gq_gqs_free(&gqs[i]);
    free(gqs);
    free(a);
    free(b);
    gq_model_free(hf);
    rm_tree(dir);
    free(dir);
}

/* SPM (the LLaMA-2 tokenizer.model) and GPT-2 BPE (SmolLM2's GGUF vocabulary and merges) survive
 * export -> gq_tokenizer_from_gguf with identical ids on mixed text. */
static void check_tok_roundtrip(gq_tokenizer *a, const char *what, const char *pre) {
    char *dir = make_tmpdir();
    char path[1200];
    snprintf(path, sizeof path, "%s/tok.gguf", dir);
    gq_ggufw *w = gq_ggufw_new();
    assert_int_equal(gq_tokenizer_export_gguf(a, w, pre, -1), GQ_OK);
    assert_int_equal(gq_ggufw_write(w, path), GQ_OK);
    gq_ggufw_free(w);
    gq_gguf *g;
    assert_int_equal(gq_gguf_open(path, &g), GQ_OK);
    gq_tokenizer *b;
    if (gq_tokenizer_from_gguf(g, &b) != GQ_OK) fail_msg("%s: %s", what, gq_errmsg());
    assert_int_equal(gq_tokenizer_kind(b), gq_tokenizer_kind(a));
    assert_int_equal(gq_tokenizer_vocab_size(b), gq_tokenizer_vocab_size(a));
    assert_int_equal(gq_tokenizer_bos(b), gq_tokenizer_bos(a));
    assert_int_equal(gq_tokenizer_eos(b), gq_tokenizer_eos(a));
    const char *texts[] = {"The quick brown fox jumps over the lazy dog. 1234567 + 89 = ?",
                           " = Valkyria Chronicles III = \n\n Senjō no Valkyria 3 : Unrecorded Chronicles ( Japanese : "
                           "\xe6\x88\xa6\xe5\xa0\xb4\xe3\x81\xae ) , commonly referred to",
                           "  multiple   spaces\ttabs\r\nand émojis 🙂 don't can't I'll"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        int32_t *ia, *ib;
        size_t na, nb;
        assert_int_equal(gq_tokenizer_encode(a, texts[i], strlen(texts[i]), 1, &ia, &na), GQ_OK);
        assert_int_equal(gq_tokenizer_encode(b, texts[i], strlen(texts[i]), 1, &ib, &nb), GQ_OK);
        if (na != nb || memcmp(ia, ib, na * sizeof *ia)) fail_msg("%s: text %zu encodes differently (%zu vs %zu ids)", what, i, na, nb);
        free(ia), free(ib);
    }
    gq_tokenizer_free(b);
    gq_gguf_close(g);
    rm_tree(dir);
    free(dir);
}

static void test_tokenizer_kinds(void **st) {
    (void)st;
    char path[1024];
    int ran = 0;
    gq_data_path(path, sizeof path, "models/llama2-tokenizer/tokenizer.model");
    if (gq_file_exists(path)) {
        gq_tokenizer *t;
        assert_int_equal(gq_tokenizer_load(path, 0, &t), GQ_OK);
        check_tok_roundtrip(t, "llama2 tokenizer.model", NULL);
        gq_tokenizer_free(t);
        ran++;
    } else {
        printf("SKIP: %s not found\n", path);
    }
    const char *smol = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (gq_file_exists(smol)) {
        gq_gguf *g;
        gq_tokenizer *t;
        assert_int_equal(gq_gguf_open(smol, &g), GQ_OK);
        assert_int_equal(gq_tokenizer_from_gguf(g, &t), GQ_OK);
        gq_gguf_close(g);
        check_tok_roundtrip(t, "SmolLM2 BPE", NULL);
        gq_tokenizer_free(t);
        ran++;
    } else {
        printf("SKIP: %s not found (make models)\n", smol);
    }
    if (!ran) skip();
}

/* ------------------------------------------------------------------------------------------ */
/* the Python reference reader's view (fixture) vs ours */

static void sha_hex(const void *d, size_t n, char out[65]) { gq_sha256_hex(d, n, out); }

static size_t vsize(gq_gguf_vtype t) {
    switch (t) {
    case GQ_GGUF_U8: case GQ_GGUF_I8: case GQ_GGUF_BOOL: return 1;
    case GQ_GGUF_U16: case GQ_GGUF_I16: return 2;
    case GQ_GGUF_U32: case GQ_GGUF_I32: case GQ_GGUF_F32: return 4;
    default: return 8;
    }
}

/* The same canonical summary tools/check_export.py prints, from gqsa's reader. */
static char *summary(const gq_gguf *g) {
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    char line[4096], hex[65];
    for (uint64_t i = 0; i < g->n_kv + g->n_tensors; i++) {
        if (i < g->n_kv) {
            const gq_gguf_kv *kv = &g->kv[i];
            int p = snprintf(line, sizeof line, "kv %.*s %d ", (int)kv->key.n, kv->key.s, (int)kv->type);
            switch (kv->type) {
            case GQ_GGUF_STRING: {
                for (uint64_t j = 0; j < kv->v.str.n && p < (int)sizeof line - 4; j++) {
                    char ch = kv->v.str.s[j];
                    if (ch == '\\') p += snprintf(line + p, sizeof line - p, "\\\\");
                    else if (ch == '\n') p += snprintf(line + p, sizeof line - p, "\\n");
                    else line[p++] = ch;
                }
                line[p] = 0;
                break;
            }
            case GQ_GGUF_ARRAY: {
                gq_sha256 s;
                uint8_t dg[32];
                gq_sha256_init(&s);
                if (kv->arr_type == GQ_GGUF_STRING) {
                    for (uint64_t j = 0; j < kv->arr_n; j++) {
                        uint64_t len = kv->arr_strs[j].n;
                        gq_sha256_update(&s, &len, 8);
                        gq_sha256_update(&s, kv->arr_strs[j].s, (size_t)len);
                    }
                } else {
                    gq_sha256_update(&s, kv->arr_data, (size_t)kv->arr_n * vsize(kv->arr_type));
                }
                gq_sha256_final(&s, dg);
                for (int b = 0; b < 32; b++) sprintf(hex + 2 * b, "%02x", dg[b]);
                snprintf(line + p, sizeof line - p, "arr %d n=%llu sha256=%s", (int)kv->arr_type,
                         (unsigned long long)kv->arr_n, hex);
                break;
            }
            case GQ_GGUF_F32: case GQ_GGUF_F64: snprintf(line + p, sizeof line - p, "%.9g", kv->v.f); break;
            case GQ_GGUF_I8: case GQ_GGUF_I16: case GQ_GGUF_I32: case GQ_GGUF_I64:
                snprintf(line + p, sizeof line - p, "%lld", (long long)kv->v.i);
                break;
            default: snprintf(line + p, sizeof line - p, "%llu", (unsigned long long)kv->v.u); break;
            }
        } else {
            const gq_gguf_tensor *t = &g->tensors[i - g->n_kv];
            char dims[128] = "";
            for (uint32_t d = 0; d < t->n_dims; d++)
                snprintf(dims + strlen(dims), sizeof dims - strlen(dims), "%s%llu", d ? "," : "", (unsigned long long)t->dims[d]);
            sha_hex(t->data, (size_t)t->n_bytes, hex);
            snprintf(line, sizeof line, "tensor %.*s %s dims=%s offset=%llu nbytes=%llu sha256=%s", (int)t->name.n, t->name.s,
                     gq_ggml_type_name(t->type), dims, (unsigned long long)t->offset, (unsigned long long)t->n_bytes, hex);
        }
        size_t l = strlen(line);
        if (n + l + 2 > cap) out = realloc(out, cap = 2 * (n + l + 2));
        memcpy(out + n, line, l);
        out[n + l] = '\n';
        n += l + 1;
    }
    out[n] = 0;
    return out;
}

static void test_python_fixture(void **st) {
    (void)st;
    NEED_MODEL();
    const char *fx = "tests/fixtures/export/stories260K_gqs.txt";
    char *want;
    size_t wlen;
    if (gq_read_file(fx, &want, &wlen) != GQ_OK) fail_msg("fixture %s missing (run from the repo root)", fx);
    char *dir = make_tmpdir();
    gq_compressed c;
    make_checkpoint(dir, &c);
    assert_int_equal(run_export(dir, "m.gguf", NULL), 0);
    char path[1200];
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    gq_gguf *g;
    assert_int_equal(gq_gguf_open(path, &g), GQ_OK);
    char *got = summary(g);
    /* line by line: the fixture ends with the decoded-sum line that only Python prints */
    char *wp = want, *gp = got;
    int line = 1;
    while (*gp) {
        char *we = strchr(wp, '\n'), *ge = strchr(gp, '\n');
        assert_non_null(we);
        assert_non_null(ge);
        if ((we - wp) != (ge - gp) || memcmp(wp, gp, (size_t)(ge - gp)))
            fail_msg("fixture line %d differs:\n  python: %.*s\n  gqsa:   %.*s", line, (int)(we - wp), wp, (int)(ge - gp), gp);
        wp = we + 1, gp = ge + 1, line++;
    }
    double py_sum;
    int rows, cols, max_code;
    size_t nnz;
    if (sscanf(wp, "decoded blk.0.attn_q rows=%d cols=%d nnz=%zu sum_abs=%lf max_code=%d", &rows, &cols, &nnz, &py_sum,
               &max_code) != 5)
        fail_msg("fixture line %d: expected the decoded line, got '%.60s'", line, wp);
    const gq_gqs *q = &c.gqs[0];
    assert_int_equal(rows, q->N);
    assert_int_equal(cols, q->K);
    assert_int_equal(nnz, q->nnz);
    float *w = malloc((size_t)q->N * q->K * sizeof(float));
    gq_gqs_expand(q, w);
    double s = 0;
    for (size_t i = 0; i < (size_t)q->N * q->K; i++) s += fabs((double)w[i]);
    int mc = 0;
    for (size_t i = 0; i < q->nnz; i++)
        for (int j = 0; j < q->G; j++) mc = gq_gqs_get_code(q, i, j) > mc ? gq_gqs_get_code(q, i, j) : mc;
    printf("decoded sum |w_hat|: python %.6f, gqsa %.6f\n", py_sum, s);
    assert_true(fabs(s - py_sum) <= DECODE_SUM_REL * py_sum);
    assert_int_equal(mc, max_code);
    free(w);
    free(got);
    free(want);
    gq_gguf_close(g);
    gq_compressed_free(&c);
    rm_tree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writer_roundtrip),
        cmocka_unit_test(test_writer_errors),
        cmocka_unit_test(test_rope_perm),
        cmocka_unit_test(test_export_gqs_roundtrip),
        cmocka_unit_test(test_export_dense_logits_and_tokenizer),
        cmocka_unit_test(test_export_half_rope),
        cmocka_unit_test(test_tokenizer_kinds),
        cmocka_unit_test(test_python_fixture),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
