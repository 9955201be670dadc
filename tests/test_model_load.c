/* test_model_load.c — model loading in every format against independent references:
 *   stories260K (llama2.c) weights vs numpy's reading of the file (fixtures/model_load/stories260K_ref.txt);
 *   SmolLM2 (GGUF Q4_1/Q8_0) config and values vs the gguf package (smollm2_ref.txt; SKIP without the file);
 *   a tiny random LLaMA saved as GGUF (permuted q/k, mixed quant types) and as safetensors: same tensors;
 *   a tiny Qwen2 (BF16, biases, tied) vs numpy's bf16 values; the corrupt-file catalogue
 *   (tests/support/fixtures_corrupt.c, tests/fixtures/corrupt/README.md); model API contracts.
 * All references come from tools/make_model_fixtures.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "model.h"
#include "model_formats.h"
#include "support/fixtures_corrupt.h"
#include "tokenizer.h"

#define FIX "tests/fixtures/model_load"
#define SMOL_PATH "models/SmolLM2-135M-Instruct.Q4_1.gguf"
/* float32 values printed with %.9g and read back are exact; dequantized values may differ by float32
 * rounding of one multiply-add between numpy and C */
#define VAL_ATOL 1e-7
#define VAL_RTOL 1e-6

static int close_enough(double got, double ref) { return fabs(got - ref) <= VAL_ATOL + VAL_RTOL * fabs(ref); }

static int file_exists(const char *p) { return access(p, R_OK) == 0; }

/* ---- stories260K ---- */

/* run.c's arrays with layers concatenated: element `i` of array `name`. */
static float stories_elem(const gq_model *m, const char *name, size_t i, size_t *count) {
    const gq_config *c = &m->cfg;
    size_t D = (size_t)c->dim, L = (size_t)c->n_layers;
    struct { const char *n; int lin; int norm; } map[] = {
        {"rms_att", -1, 1}, {"rms_ffn", -1, 2}, {"wq", GQ_LIN_Q, 0}, {"wk", GQ_LIN_K, 0}, {"wv", GQ_LIN_V, 0},
        {"wo", GQ_LIN_O, 0}, {"w1", GQ_LIN_GATE, 0}, {"w2", GQ_LIN_DOWN, 0}, {"w3", GQ_LIN_UP, 0},
    };
    if (!strcmp(name, "tok_emb")) return *count = (size_t)c->vocab_size * D, m->tok_emb[i];
    if (!strcmp(name, "rms_final")) return *count = D, m->final_norm[i];
    for (size_t k = 0; k < sizeof map / sizeof map[0]; k++) {
        if (strcmp(name, map[k].n)) continue;
        size_t per = map[k].lin >= 0 ? (size_t)m->blocks[0].lin[map[k].lin].out * (size_t)m->blocks[0].lin[map[k].lin].in : D;
        *count = per * L;
        const gq_block *b = &m->blocks[i / per];
        if (map[k].norm == 1) return b->attn_norm[i % per];
        if (map[k].norm == 2) return b->ffn_norm[i % per];
        return b->lin[map[k].lin].w[i % per];
    }
    fail_msg("unknown array %s", name);
    return 0;
}

static void test_stories260K(void **st) {
    (void)st;
    char path[1024];
    assert_int_equal(gq_model_resolve("stories260K", path, sizeof path), GQ_OK);
    if (!file_exists(path)) {
        print_message("SKIP: %s not found (data root %s)\n", path, gq_data_root());
        skip();
    }
    gq_model *m;
    gq_status s = gq_model_load("stories260K", NULL, &m);
    if (s != GQ_OK) fail_msg("%s", gq_errmsg());
    const gq_config *c = &m->cfg;
    assert_int_equal(c->dim, 64);
    assert_int_equal(c->hidden_dim, 172);
    assert_int_equal(c->n_layers, 5);
    assert_int_equal(c->n_heads, 8);
    assert_int_equal(c->n_kv_heads, 4);
    assert_int_equal(c->head_dim, 8);
    assert_int_equal(c->vocab_size, 512);
    assert_int_equal(c->max_seq_len, 512);
    assert_int_equal(c->tied_embeddings, 1);
    assert_int_equal(c->rope_style, GQ_ROPE_INTERLEAVED);
    assert_int_equal(c->bos_id, 1);
    assert_int_equal(c->eos_id, 2);
    assert_int_equal(c->add_bos, 1);
    assert_true(c->norm_eps == 1e-5f && c->rope_theta == 10000.0f);
    assert_true(m->lm_head == m->tok_emb);
    assert_string_equal(m->format, "llama2c");
    assert_int_equal(gq_model_n_params(m), 264128 - 512 * 8); /* the README counts freq_cis (S x HD) too */
    assert_non_null(m->tok); /* tok512.bin beside it */
    assert_int_equal(gq_tokenizer_vocab_size(m->tok), 512);

    FILE *f = fopen(FIX "/stories260K_ref.txt", "r");
    assert_non_null(f);
    char line[256], name[64];
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || !strncmp(line, "header", 6)) continue;
        double v;
        size_t count;
        if (!strncmp(line, "sum ", 4)) {
            assert_int_equal(sscanf(line + 4, "%63s %lf", name, &v), 2);
            stories_elem(m, name, 0, &count);
            double s2 = 0;
            for (size_t i = 0; i < count; i++) s2 += stories_elem(m, name, i, &count);
            if (fabs(s2 - v) > 1e-9 + 1e-12 * fabs(v)) fail_msg("sum %s = %.17g, reference %.17g", name, s2, v);
        } else {
            unsigned long i;
            assert_int_equal(sscanf(line, "%63s %lu %lf", name, &i, &v), 3);
            float got = stories_elem(m, name, i, &count);
            assert_true(i < count);
            if (got != (float)v) fail_msg("%s[%lu] = %.9g, reference %.9g", name, i, (double)got, v);
        }
        checked++;
    }
    fclose(f);
    assert_int_equal(checked, 11 * 5);
    assert_int_equal(gq_model_check_finite(m), GQ_OK);
    gq_model_free(m);
}

/* Every truncation and a few extensions of a real llama2.c file fail with the file named. */
static void test_llama2c_sizes(void **st) {
    (void)st;
    char path[1024], *data;
    size_t len;
    gq_model_resolve("stories260K", path, sizeof path);
    if (!file_exists(path)) {
        print_message("SKIP: %s not found\n", path);
        skip();
    }
    assert_int_equal(gq_read_file(path, &data, &len), GQ_OK);
    for (size_t n = 0; n < len + 8; n += (n < 64 ? 1 : 4093)) {
        gq_model *m = NULL;
        size_t use = n < len ? n : len;
        char *tmp = malloc(n + 1);
        memcpy(tmp, data, use);
        memset(tmp + use, 0, n - use);
        gq_status s = gq_model_llama2c_parse(tmp, n, "cut.bin", &m);
        free(tmp);
        assert_true(s != GQ_OK);
        assert_null(m);
        assert_non_null(strstr(gq_errmsg(), "cut.bin"));
    }
    gq_model *m;
    assert_int_equal(gq_model_llama2c_parse(data, len, "whole.bin", &m), GQ_OK);
    assert_null(m->tok);
    gq_model_free(m);
    free(data);
}

/* ---- SmolLM2 ---- */

static void test_smollm2(void **st) {
    (void)st;
    if (!file_exists(SMOL_PATH)) {
        print_message("SKIP: %s not found (run `make models`)\n", SMOL_PATH);
        skip();
    }
    /* weights and config without the tokenizer (test_smollm2_tokenizer covers that part) */
    gq_gguf *g;
    gq_model *m;
    assert_int_equal(gq_gguf_open(SMOL_PATH, &g), GQ_OK);
    gq_status s = gq_model_from_gguf(g, 0, &m);
    gq_gguf_close(g);
    if (s != GQ_OK) fail_msg("%s", gq_errmsg());
    const gq_config *c = &m->cfg;
    assert_int_equal(c->n_layers, 30);
    assert_int_equal(c->dim, 576);
    assert_int_equal(c->n_heads, 9);
    assert_int_equal(c->n_kv_heads, 3);
    assert_int_equal(c->head_dim, 64);
    assert_int_equal(c->hidden_dim, 1536);
    assert_int_equal(c->vocab_size, 49152);
    assert_int_equal(c->max_seq_len, 8192);
    assert_int_equal(c->tied_embeddings, 1);
    assert_int_equal(c->rope_style, GQ_ROPE_INTERLEAVED);
    assert_true(c->rope_theta == 100000.0f);
    assert_true(fabsf(c->norm_eps - 1e-5f) < 1e-12f);
    assert_int_equal(c->bos_id, 1);
    assert_int_equal(c->eos_id, 2);
    assert_int_equal(c->add_bos, 0); /* tokenizer.ggml.add_bos_token = false */
    assert_true(m->lm_head == m->tok_emb);
    assert_null(m->tok);
    /* 49152*576 + 30*(2*576 + 576*576*2 + 192*576*2 + 3*1536*576) + 576 */
    assert_int_equal(gq_model_n_params(m), 134515008);

    /* values from the gguf package (ggml [row][col] == our [N][K]) */
    FILE *f = fopen(FIX "/smollm2_ref.txt", "r");
    assert_non_null(f);
    char line[256], name[128];
    int checked = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long r, col;
        double v;
        if (line[0] == '#' || !strncmp(line, "sum", 3)) continue;
        assert_int_equal(sscanf(line, "%127s %lu %lu %lf", name, &r, &col, &v), 4);
        float got;
        if (!strcmp(name, "token_embd.weight")) got = m->tok_emb[r * 576 + col];
        else if (!strcmp(name, "output_norm.weight")) got = m->final_norm[col];
        else if (!strcmp(name, "blk.0.attn_norm.weight")) got = m->blocks[0].attn_norm[col];
        else if (!strcmp(name, "blk.0.attn_q.weight")) got = m->blocks[0].lin[GQ_LIN_Q].w[r * 576 + col];
        else if (!strcmp(name, "blk.0.attn_k.weight")) got = m->blocks[0].lin[GQ_LIN_K].w[r * 576 + col];
        else if (!strcmp(name, "blk.29.ffn_down.weight")) got = m->blocks[29].lin[GQ_LIN_DOWN].w[r * 1536 + col];
        else continue;
        if (!close_enough(got, v)) fail_msg("%s[%lu][%lu] = %.9g, reference %.9g", name, r, col, (double)got, v);
        checked++;
    }
    fclose(f);
    assert_true(checked >= 18);
    assert_int_equal(gq_model_check_finite(m), GQ_OK);
    gq_model_free(m);
}

/* ---- tiny LLaMA: GGUF vs safetensors ---- */

static void test_tiny_gguf_vs_safetensors(void **st) {
    (void)st;
    gq_model *a, *b;
    gq_status s = gq_model_load(FIX "/tiny_llama/model.gguf", NULL, &a);
    if (s != GQ_OK) fail_msg("%s", gq_errmsg());
    s = gq_model_load(FIX "/tiny_llama", NULL, &b);
    if (s != GQ_OK) fail_msg("%s", gq_errmsg());
    assert_string_equal(a->format, "gguf");
    assert_string_equal(b->format, "safetensors");
    const gq_config *ca = &a->cfg, *cb = &b->cfg;
    assert_int_equal(ca->rope_style, GQ_ROPE_INTERLEAVED);
    assert_int_equal(cb->rope_style, GQ_ROPE_HALF);
    assert_int_equal(ca->dim, 32);
    assert_int_equal(cb->dim, 32);
    assert_int_equal(ca->hidden_dim, cb->hidden_dim);
    assert_int_equal(ca->n_layers, 2);
    assert_int_equal(cb->n_layers, 2);
    assert_int_equal(ca->n_heads, cb->n_heads);
    assert_int_equal(ca->n_kv_heads, 2);
    assert_int_equal(cb->n_kv_heads, 2);
    assert_int_equal(ca->vocab_size, 64);
    assert_int_equal(cb->vocab_size, 64);
    assert_int_equal(ca->tied_embeddings, 0);
    assert_int_equal(cb->tied_embeddings, 0);
    assert_int_equal(ca->max_seq_len, 128);
    assert_int_equal(cb->max_seq_len, 128);
    assert_true(ca->norm_eps == cb->norm_eps && ca->rope_theta == cb->rope_theta);
    assert_int_equal(ca->bos_id, cb->bos_id);
    assert_int_equal(ca->eos_id, cb->eos_id);
    size_t VD = (size_t)ca->vocab_size * (size_t)ca->dim;
    assert_memory_equal(a->final_norm, b->final_norm, (size_t)ca->dim * 4);
    for (size_t i = 0; i < VD; i++) {
        assert_true(close_enough(a->tok_emb[i], b->tok_emb[i]));
        assert_true(close_enough(a->lm_head[i], b->lm_head[i]));
    }
    int HD = ca->head_dim;
    for (int l = 0; l < ca->n_layers; l++) {
        assert_memory_equal(a->blocks[l].attn_norm, b->blocks[l].attn_norm, (size_t)ca->dim * 4);
        assert_memory_equal(a->blocks[l].ffn_norm, b->blocks[l].ffn_norm, (size_t)ca->dim * 4);
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_linear *la = &a->blocks[l].lin[k], *lb = &b->blocks[l].lin[k];
            assert_int_equal(la->out, lb->out);
            assert_int_equal(la->in, lb->in);
            for (int r = 0; r < la->out; r++) {
                /* GGUF q/k rows are llama.cpp's permutation of HF rows: within each head, GGUF row 2i+j is
                 * HF row j*HD/2 + i */
                int hr = r;
                if (k == GQ_LIN_Q || k == GQ_LIN_K) {
                    int h = r / HD, w = r % HD;
                    hr = h * HD + (w % 2) * (HD / 2) + w / 2;
                }
                for (int col = 0; col < la->in; col++) {
                    float x = la->w[(size_t)r * la->in + col], y = lb->w[(size_t)hr * lb->in + col];
                    if (!close_enough(x, y))
                        fail_msg("layer %d %s [%d][%d]: gguf %.9g vs safetensors %.9g", l, gq_linear_name(k), r, col, (double)x,
                                 (double)y);
                }
            }
        }
    }
    gq_model_free(a);
    gq_model_free(b);
}

static void test_tiny_qwen2(void **st) {
    (void)st;
    gq_model *m;
    gq_status s = gq_model_load(FIX "/tiny_qwen2/model.safetensors", NULL, &m);
    if (s != GQ_OK) fail_msg("%s", gq_errmsg());
    assert_int_equal(m->cfg.arch, GQ_ARCH_QWEN2);
    assert_int_equal(m->cfg.qkv_bias, 1);
    assert_int_equal(m->cfg.tied_embeddings, 1);
    assert_int_equal(m->cfg.bos_id, -1);
    assert_int_equal(m->cfg.eos_id, 3);
    assert_int_equal(m->cfg.add_bos, 0);
    assert_true(m->cfg.rope_theta == 1000000.0f);
    assert_true(m->lm_head == m->tok_emb);
    for (int k = 0; k < GQ_LIN_COUNT; k++) assert_true((m->blocks[0].lin[k].bias != NULL) == (k <= GQ_LIN_V));
    FILE *f = fopen(FIX "/tiny_qwen2/expected.txt", "r");
    assert_non_null(f);
    char name[128];
    unsigned long i;
    double v;
    int n = 0;
    while (fscanf(f, "%127s %lu %lf", name, &i, &v) == 3) {
        float got;
        if (!strcmp(name, "model.embed_tokens.weight")) got = m->tok_emb[i];
        else if (!strcmp(name, "model.layers.0.self_attn.k_proj.bias")) got = m->blocks[0].lin[GQ_LIN_K].bias[i];
        else got = m->blocks[0].lin[GQ_LIN_DOWN].w[i];
        if (got != (float)v) fail_msg("%s[%lu] = %.9g, reference %.9g", name, i, (double)got, v); /* %.9g round-trips float32 */
        n++;
    }
    fclose(f);
    assert_int_equal(n, 12);
    /* clone is deep, keeps biases and tying, drops the tokenizer */
    gq_model *c = gq_model_clone(m);
    assert_true(c->lm_head == c->tok_emb && c->tok_emb != m->tok_emb);
    assert_memory_equal(c->blocks[0].lin[GQ_LIN_Q].bias, m->blocks[0].lin[GQ_LIN_Q].bias, (size_t)m->blocks[0].lin[0].out * 4);
    assert_int_equal(gq_model_n_params(c), gq_model_n_params(m));
    assert_null(c->tok);
    gq_model_free(c);
    gq_model_free(m);
}

/* A sharded checkpoint (model.safetensors.index.json) loads to the same tensors as the single file. */
static void test_safetensors_index(void **st) {
    (void)st;
    char dir[] = "/tmp/gqsa_shard_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp " FIX "/tiny_llama/config.json %s/ && cp " FIX "/tiny_llama/model.safetensors %s/shard-1.safetensors",
             dir, dir);
    assert_int_equal(system(cmd), 0);
    gq_st_file *f;
    snprintf(cmd, sizeof cmd, "%s/shard-1.safetensors", dir);
    assert_int_equal(gq_st_open(cmd, &f), GQ_OK);
    char *json = NULL;
    size_t jl = 0;
    FILE *mf = open_memstream(&json, &jl);
    fprintf(mf, "{\"metadata\": {}, \"weight_map\": {");
    for (size_t i = 0; i < f->n_tensors; i++) fprintf(mf, "%s\"%s\": \"shard-1.safetensors\"", i ? "," : "", f->tensors[i].name);
    fprintf(mf, "}}");
    fclose(mf);
    gq_st_close(f);
    snprintf(cmd, sizeof cmd, "%s/model.safetensors.index.json", dir);
    FILE *o = fopen(cmd, "w");
    fputs(json, o);
    fclose(o);
    free(json);
    gq_model *a, *b;
    gq_status s = gq_model_load(dir, NULL, &a);
    if (s != GQ_OK) fail_msg("%s", gq_errmsg());
    assert_int_equal(gq_model_load(FIX "/tiny_llama/config.json", NULL, &b), GQ_OK); /* config.json -> its dir */
    assert_memory_equal(a->blocks[1].lin[GQ_LIN_DOWN].w, b->blocks[1].lin[GQ_LIN_DOWN].w, 32 * 64 * 4);
    assert_memory_equal(a->lm_head, b->lm_head, 64 * 32 * 4);
    gq_model_free(a);
    gq_model_free(b);
    /* an index naming a missing shard fails with that shard's path */
    o = fopen(cmd, "w");
    fputs("{\"weight_map\": {\"model.norm.weight\": \"gone.safetensors\"}}", o);
    fclose(o);
    assert_int_not_equal(gq_model_load(dir, NULL, &a), GQ_OK);
    assert_non_null(strstr(gq_errmsg(), "gone.safetensors"));
    /* path traversal in the index is refused */
    o = fopen(cmd, "w");
    fputs("{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}", o);
    fclose(o);
    assert_int_equal(gq_model_load(dir, NULL, &a), GQ_ERR_FORMAT);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- the corrupt catalogue ---- */

static void test_corrupt_catalogue(void **st) {
    (void)st;
    char dir[] = "/tmp/gqsa_corrupt_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(gqt_corrupt_write_all(dir), 0);
    size_t n;
    const gqt_corrupt_case *cs = gqt_corrupt_cases(&n);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s/%s", dir, cs[i].name, cs[i].file);
        if (!strcmp(cs[i].file, ".")) snprintf(p, sizeof p, "%s/%s", dir, cs[i].name);
        gq_model *m = (gq_model *)1;
        gq_err_clear();
        gq_status s = gq_model_load(p, NULL, &m);
        if (cs[i].must_load) {
            if (s != GQ_OK) {
                print_error("%s: must load, got %s: %s\n", cs[i].name, gq_status_name(s), gq_errmsg());
                bad++;
                continue;
            }
            if (!strcmp(cs[i].name, "gguf_ok_nan")) {
                assert_int_equal(gq_model_check_finite(m), GQ_ERR_NUMERIC);
                assert_non_null(strstr(gq_errmsg(), "tok_emb"));
            } else {
                assert_int_equal(gq_model_check_finite(m), GQ_OK);
            }
            gq_model_free(m);
        } else {
            int ok = s != GQ_OK && m == NULL && strstr(gq_errmsg(), cs[i].name) != NULL &&
                     (cs[i].expect_status == 0 || (int)s == cs[i].expect_status);
            if (!ok) {
                print_error("%s (%s): expected %s, got %s: '%s'%s\n", cs[i].name, cs[i].why,
                            gq_status_name((gq_status)cs[i].expect_status), gq_status_name(s), gq_errmsg(),
                            m ? " (out not NULL)" : "");
                bad++;
                if (s == GQ_OK && m) gq_model_free(m);
            }
        }
    }
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(bad, 0);
}

/* ---- model API ---- */

static void test_model_api(void **st) {
    (void)st;
    assert_string_equal(gq_linear_name(GQ_LIN_GATE), "gate_proj");
    assert_int_equal(gq_linear_input_group(GQ_LIN_V), GQ_LIN_Q);
    assert_int_equal(gq_linear_input_group(GQ_LIN_UP), GQ_LIN_GATE);
    assert_int_equal(gq_linear_input_group(GQ_LIN_O), GQ_LIN_O);
    assert_int_equal(gq_linear_input_group(GQ_LIN_DOWN), GQ_LIN_DOWN);
    gq_config c = {.arch = GQ_ARCH_LLAMA, .dim = 16, .hidden_dim = 24, .n_layers = 3, .n_heads = 4, .n_kv_heads = 2,
                   .head_dim = 4, .vocab_size = 10, .max_seq_len = 8, .norm_eps = 1e-5f, .rope_theta = 1e4f,
                   .bos_id = 1, .eos_id = 2};
    assert_int_equal(gq_config_validate(&c, "t"), GQ_OK);
    gq_config d = c;
    d.n_kv_heads = 3;
    assert_int_equal(gq_config_validate(&d, "bad.cfg"), GQ_ERR_FORMAT);
    assert_non_null(strstr(gq_errmsg(), "bad.cfg"));
    d = c, d.eos_id = 10;
    assert_int_equal(gq_config_validate(&d, "t"), GQ_ERR_FORMAT);
    d = c, d.norm_eps = NAN;
    assert_int_equal(gq_config_validate(&d, "t"), GQ_ERR_FORMAT);
    d = c, d.head_dim = 3;
    assert_int_equal(gq_config_validate(&d, "t"), GQ_ERR_FORMAT);

    gq_model *m = gq_model_alloc(&c);
    assert_true(m->lm_head != m->tok_emb);
    /* brute-force count: everything gq_model_alloc allocated */
    size_t want = 10 * 16 * 2 + 16 + 3 * (2 * 16 + 16 * 16 + 8 * 16 * 2 + 16 * 16 + 24 * 16 * 3);
    assert_int_equal(gq_model_n_params(m), want);
    for (int l = 0; l < 3; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++)
            for (int i = 0; i < m->blocks[l].lin[k].out * m->blocks[l].lin[k].in; i++) assert_true(m->blocks[l].lin[k].w[i] == 0.0f);
    assert_int_equal(gq_model_check_finite(m), GQ_OK);
    m->blocks[2].lin[GQ_LIN_UP].w[5] = INFINITY;
    assert_int_equal(gq_model_check_finite(m), GQ_ERR_NUMERIC);
    assert_non_null(strstr(gq_errmsg(), "layer 2 up_proj"));
    gq_model *cl = gq_model_clone(m);
    assert_true(isinf(cl->blocks[2].lin[GQ_LIN_UP].w[5]));
    cl->blocks[2].lin[GQ_LIN_UP].w[5] = 1;
    assert_true(isinf(m->blocks[2].lin[GQ_LIN_UP].w[5]));
    char *text = NULL;
    size_t tlen = 0;
    FILE *mf = open_memstream(&text, &tlen);
    gq_model_describe(cl, mf);
    fclose(mf);
    assert_non_null(strstr(text, "dim 16  hidden 24  layers 3"));
    assert_non_null(strstr(text, "down_proj  [16, 24]"));
    free(text);
    gq_model_free(cl);
    gq_model_free(m);

    char buf[1024];
    assert_int_equal(gq_model_resolve("nope", buf, sizeof buf), GQ_ERR_ARG);
    setenv("GQSA_MODELS_DIR", "/x/y", 1);
    assert_int_equal(gq_model_resolve("smollm2-135m", buf, sizeof buf), GQ_OK);
    assert_string_equal(buf, "/x/y/SmolLM2-135M-Instruct.Q4_1.gguf");
    unsetenv("GQSA_MODELS_DIR");
    gq_model *none = (gq_model *)1;
    assert_int_equal(gq_model_load("no-such-model", NULL, &none), GQ_ERR_IO);
    assert_null(none);
    assert_non_null(strstr(gq_errmsg(), "no-such-model"));
}

/* The full load path attaches the tokenizer built from the GGUF metadata. */
static void test_smollm2_tokenizer(void **st) {
    (void)st;
    if (!file_exists(SMOL_PATH)) {
        print_message("SKIP: %s not found (run `make models`)\n", SMOL_PATH);
        skip();
    }
    gq_model *m;
    gq_status s = gq_model_load("smollm2-135m", NULL, &m);
    if (s != GQ_OK) fail_msg("%s", gq_errmsg());
    assert_non_null(m->tok);
    assert_int_equal(gq_tokenizer_kind(m->tok), GQ_TOK_BPE);
    assert_int_equal(gq_tokenizer_vocab_size(m->tok), 49152);
    assert_int_equal(m->cfg.bos_id, 1);
    assert_int_equal(m->cfg.add_bos, 0);
    gq_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_api),
        cmocka_unit_test(test_stories260K),
        cmocka_unit_test(test_llama2c_sizes),
        cmocka_unit_test(test_tiny_gguf_vs_safetensors),
        cmocka_unit_test(test_tiny_qwen2),
        cmocka_unit_test(test_safetensors_index),
        cmocka_unit_test(test_corrupt_catalogue),
        cmocka_unit_test(test_smollm2),
        cmocka_unit_test(test_smollm2_tokenizer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
