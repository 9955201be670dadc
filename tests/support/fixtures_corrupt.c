/* fixtures_corrupt.c — builds the corrupt-model catalogue (see fixtures_corrupt.h and
 * tests/fixtures/corrupt/README.md). A tiny valid model (D 8, H 16, 1 layer, 2 heads, 1 kv head, V 16) is
 * written in each format by small writers here, then damaged in one specific way per case.
 * Must not: call the gqsa loaders (the cases must stay independent of the code they test).
 */
#include "fixtures_corrupt.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

/* ------------------------------------------------------------------------------------------ */
/* the tiny model */

enum { TD = 8, TH = 16, TL = 1, TNH = 2, TNKV = 1, TV = 16, THD = TD / TNH };

typedef struct { const char *gg, *hf; int rows, cols; } tname; /* cols == 0: 1-D */
static const tname k_tensors[] = {
    {"token_embd.weight", "model.embed_tokens.weight", TV, TD},
    {"output_norm.weight", "model.norm.weight", TD, 0},
    {"blk.0.attn_norm.weight", "model.layers.0.input_layernorm.weight", TD, 0},
    {"blk.0.ffn_norm.weight", "model.layers.0.post_attention_layernorm.weight", TD, 0},
    {"blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight", TNH * THD, TD},
    {"blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight", TNKV * THD, TD},
    {"blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight", TNKV * THD, TD},
    {"blk.0.attn_output.weight", "model.layers.0.self_attn.o_proj.weight", TD, TNH * THD},
    {"blk.0.ffn_gate.weight", "model.layers.0.mlp.gate_proj.weight", TH, TD},
    {"blk.0.ffn_up.weight", "model.layers.0.mlp.up_proj.weight", TH, TD},
    {"blk.0.ffn_down.weight", "model.layers.0.mlp.down_proj.weight", TD, TH},
};
#define N_T (sizeof k_tensors / sizeof k_tensors[0])
static size_t t_elems(const tname *t) { return (size_t)t->rows * (size_t)(t->cols ? t->cols : 1); }

/* ------------------------------------------------------------------------------------------ */
/* byte buffer */

typedef struct { uint8_t *p; size_t n, cap; } buf;
static void b_put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void b_u32(buf *b, uint32_t v) { b_put(b, &v, 4); }
static void b_u64(buf *b, uint64_t v) { b_put(b, &v, 8); }
static void b_str(buf *b, const char *s) { b_u64(b, strlen(s)); b_put(b, s, strlen(s)); }
static void b_pad(buf *b, size_t align) { while (b->n % align) b_put(b, "", 1); }
static void patch_u32(buf *b, size_t at, uint32_t v) { memcpy(b->p + at, &v, 4); }
static void patch_u64(buf *b, size_t at, uint64_t v) { memcpy(b->p + at, &v, 8); }

/* ------------------------------------------------------------------------------------------ */
/* GGUF writer with hooks */

typedef struct {
    uint32_t version;
    const char *arch;
    uint32_t alignment;       /* 0: no general.alignment key (default 32) */
    int dup_key, dup_tensor, nested_array, drop_down, wrong_shape, huge_meta, int_type, nan, unaligned_offset;
    int overlap, offset_outside, n_dims5, zero_dim, dims_overflow, q4_33;
    /* filled by the writer: byte positions for patching */
    size_t at_n_kv, at_n_tensors, at_first_key_len, at_first_vtype, at_arr_count, at_t0_type, at_t0_offset;
} gg_opts;

static void kv_u32(buf *b, const char *k, uint32_t v) { b_str(b, k); b_u32(b, 4); b_u32(b, v); }
static void kv_f32(buf *b, const char *k, float v) { b_str(b, k); b_u32(b, 6); b_put(b, &v, 4); }

static void gguf_build(buf *b, gg_opts *o) {
    size_t align = o->alignment ? o->alignment : 32;
    b_put(b, "GGUF", 4);
    b_u32(b, o->version ? o->version : 3);
    o->at_n_tensors = b->n;
    size_t n_t = N_T - (o->drop_down ? 1 : 0) + (o->dup_tensor ? 1 : 0);
    b_u64(b, n_t);
    o->at_n_kv = b->n;
    b_u64(b, 0); /* patched below */
    uint64_t n_kv = 0;
    o->at_first_key_len = b->n;
    b_str(b, "general.architecture");
    o->at_first_vtype = b->n;
    b_u32(b, 8);
    b_str(b, o->arch ? o->arch : "llama");
    n_kv++;
    kv_u32(b, "llama.embedding_length", o->huge_meta ? (1u << 20) : TD), n_kv++;
    kv_u32(b, "llama.feed_forward_length", o->huge_meta ? (1u << 20) : TH), n_kv++;
    kv_u32(b, "llama.block_count", o->huge_meta ? 4000 : TL), n_kv++;
    kv_u32(b, "llama.attention.head_count", TNH), n_kv++;
    kv_u32(b, "llama.attention.head_count_kv", TNKV), n_kv++;
    kv_u32(b, "llama.context_length", 64), n_kv++;
    kv_f32(b, "llama.attention.layer_norm_rms_epsilon", 1e-5f), n_kv++;
    if (o->alignment) kv_u32(b, "general.alignment", o->alignment), n_kv++;
    if (o->dup_key) kv_u32(b, "llama.block_count", TL), n_kv++;
    /* a string array (as tokenizers use), so counts inside arrays can be corrupted */
    b_str(b, "general.tags");
    b_u32(b, 9);
    b_u32(b, o->nested_array ? 9 : 8);
    o->at_arr_count = b->n;
    b_u64(b, 2);
    if (o->nested_array) {
        b_u32(b, 8), b_u64(b, 1), b_str(b, "x");
        b_u32(b, 8), b_u64(b, 1), b_str(b, "y");
    } else {
        b_str(b, "tiny"), b_str(b, "test");
    }
    n_kv++;
    patch_u64(b, o->at_n_kv, n_kv);

    /* tensor infos */
    uint64_t off = 0;
    uint64_t offs[N_T + 1], sizes[N_T + 1];
    size_t k = 0;
    for (size_t i = 0; i < N_T + 1; i++) {
        int dup = i == N_T;
        if (dup && !o->dup_tensor) break;
        const tname *t = &k_tensors[dup ? 0 : i];
        if (o->drop_down && !dup && !strcmp(t->gg, "blk.0.ffn_down.weight")) continue;
        b_str(b, t->gg);
        int first = k == 0;
        uint32_t type = 0;
        uint64_t d0 = t->cols ? (uint64_t)t->cols : (uint64_t)t->rows, d1 = t->cols ? (uint64_t)t->rows : 0;
        if (first && o->wrong_shape) d1 = TV + 1;
        uint32_t nd = t->cols ? 2 : 1;
        if (first && o->n_dims5) nd = 5;
        b_u32(b, nd);
        if (first && o->dims_overflow) d0 = UINT64_C(1) << 40, d1 = UINT64_C(1) << 40;
        if (first && o->zero_dim) d1 = 0;
        if (first && o->q4_33) d0 = 33, type = 2;
        if (first && o->int_type) type = 26; /* I32: a valid ggml type (same size as F32) that gqsa cannot dequantize */
        b_u64(b, d0);
        if (nd >= 2) b_u64(b, d1);
        for (uint32_t x = 2; x < nd; x++) b_u64(b, 1);
        if (first) o->at_t0_type = b->n;
        b_u32(b, type);
        uint64_t sz = (uint64_t)t_elems(t) * 4;
        if (first && o->q4_33) sz = 0;
        uint64_t my = off;
        if (first && o->unaligned_offset) my = off + 4;
        if (k == 1 && o->overlap) my = 0;
        if (first) o->at_t0_offset = b->n;
        b_u64(b, my);
        offs[k] = my;
        sizes[k] = sz;
        k++;
        off = my + sz;
        off = (off + align - 1) / align * align;
    }
    b_pad(b, align);
    size_t data0 = b->n;
    uint64_t total = 0;
    for (size_t i = 0; i < k; i++)
        if (offs[i] + sizes[i] > total) total = offs[i] + sizes[i];
    if (o->offset_outside) patch_u64(b, o->at_t0_offset, total + 4096);
    size_t need = data0 + (size_t)total;
    while (b->n < need) b_put(b, "", 1);
    /* fill weights: small deterministic values (tensor i, element j) */
    for (size_t i = 0; i < k; i++) {
        size_t n = (size_t)(sizes[i] / 4);
        for (size_t j = 0; j < n; j++) {
            float v = (float)((int)((i * 31 + j * 7) % 19) - 9) / 16.0f;
            if (o->nan && i == 0 && j == 3) v = 0.0f / 0.0f;
            memcpy(b->p + data0 + offs[i] + 4 * j, &v, 4);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* safetensors + config writer */

typedef struct {
    const char *dtype_first; /* dtype of the first tensor (default F32) */
    int drop_down, overlap, offsets_outside, size_mismatch, negative_shape, hdr_len_big, hdr_len_small, not_json,
        json_array, truncate, hdr_only;
} st_opts;

static void st_build(buf *b, const st_opts *o) {
    char hdr[8192];
    size_t h = 0, off = 0;
    h += (size_t)snprintf(hdr + h, sizeof hdr - h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < N_T; i++) {
        const tname *t = &k_tensors[i];
        if (o->drop_down && strstr(t->hf, "down_proj")) continue;
        const char *dt = i == 0 && o->dtype_first ? o->dtype_first : "F32";
        size_t es = !strcmp(dt, "BF16") || !strcmp(dt, "F16") ? 2 : 4;
        size_t sz = t_elems(t) * es;
        size_t beg = off, end = off + sz;
        if (i == 1 && o->overlap) beg = 0, end = sz;
        if (i == 0 && o->offsets_outside) beg += 1 << 20, end += 1 << 20;
        if (i == 0 && o->size_mismatch) end -= 4;
        char shape[64];
        if (i == 0 && o->negative_shape) snprintf(shape, sizeof shape, "[-%d,%d]", t->rows, t->cols);
        else if (t->cols) snprintf(shape, sizeof shape, "[%d,%d]", t->rows, t->cols);
        else snprintf(shape, sizeof shape, "[%d]", t->rows);
        h += (size_t)snprintf(hdr + h, sizeof hdr - h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                              t->hf, dt, shape, beg, end);
        if (!(i == 1 && o->overlap)) off += sz;
    }
    h += (size_t)snprintf(hdr + h, sizeof hdr - h, "}");
    if (o->not_json) hdr[0] = '#';
    if (o->json_array) {
        snprintf(hdr, sizeof hdr, "[1,2,3]");
        h = strlen(hdr);
    }
    uint64_t hl = h;
    if (o->hdr_len_big) hl = UINT64_C(1) << 40;
    if (o->hdr_len_small) hl = 1;
    b_u64(b, hl);
    b_put(b, hdr, h);
    if (o->hdr_only) return;
    for (size_t j = 0; j < off / 4; j++) {
        float v = (float)((int)(j * 7 % 19) - 9) / 16.0f;
        b_put(b, &v, 4);
    }
    if (o->truncate) b->n -= 8;
}

static const char *k_cfg_ok =
    "{\"model_type\":\"llama\",\"hidden_size\":8,\"intermediate_size\":16,\"num_hidden_layers\":1,"
    "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":16,\"rms_norm_eps\":1e-5,"
    "\"max_position_embeddings\":64,\"tie_word_embeddings\":true,\"bos_token_id\":1,\"eos_token_id\":2}";

/* ------------------------------------------------------------------------------------------ */
/* llama2.c writer */

typedef struct { int32_t h[7]; long delta; int magic_ak42; size_t only; } l2c_opts;

static void l2c_build(buf *b, const l2c_opts *o) {
    int32_t h[7] = {TD, TH, TL, TNH, TNKV, TV, 4};
    for (int i = 0; i < 7; i++)
        if (o->h[i]) h[i] = o->h[i];
    if (o->magic_ak42) {
        b_put(b, "ak42", 4);
        b_u32(b, 1);
    }
    b_put(b, h, sizeof h);
    /* size of the valid tiny model: emb + 2 norms + wq,wk,wv,wo + 3 ffn + final + freq_cis */
    size_t n = (size_t)TV * TD + 2 * TD + (size_t)TD * TD * 2 + 2 * (size_t)TNKV * THD * TD + 3 * (size_t)TH * TD + TD +
               4 * (size_t)THD;
    for (size_t j = 0; j < n; j++) {
        float v = (float)((int)(j * 5 % 17) - 8) / 16.0f;
        b_put(b, &v, 4);
    }
    if (o->delta < 0) b->n -= (size_t)(-o->delta);
    for (long d = 0; d < o->delta; d++) b_put(b, "", 1);
    if (o->only && o->only < b->n) b->n = o->only;
}

/* ------------------------------------------------------------------------------------------ */
/* catalogue */

#define OK_ 1, 0
#define FAIL(st) 0, st
static const gqt_corrupt_case k_cases[] = {
    /* GGUF */
    {"gguf_ok", "model.gguf", OK_, "valid tiny llama GGUF v3 (F32)"},
    {"gguf_ok_v2", "model.gguf", OK_, "valid GGUF v2 (same layout as v3 for little-endian files)"},
    {"gguf_ok_align64", "model.gguf", OK_, "general.alignment = 64 is honoured for the data section and offsets"},
    {"gguf_ok_nan", "model.gguf", OK_, "a NaN weight loads (gq_model_check_finite reports it, the loader does not)"},
    {"gguf_bad_magic", "model.gguf", FAIL(GQ_ERR_FORMAT), "magic is not 'GGUF'"},
    {"gguf_version1", "model.gguf", FAIL(GQ_ERR_FORMAT), "GGUF v1 (32-bit counts) is not supported"},
    {"gguf_big_endian", "model.gguf", FAIL(GQ_ERR_FORMAT), "version field byte-swapped (a big-endian file)"},
    {"gguf_trunc_header", "model.gguf", FAIL(GQ_ERR_FORMAT), "file ends inside the header counts"},
    {"gguf_trunc_kv", "model.gguf", FAIL(GQ_ERR_FORMAT), "file ends inside the metadata"},
    {"gguf_trunc_infos", "model.gguf", FAIL(GQ_ERR_FORMAT), "file ends inside the tensor infos"},
    {"gguf_trunc_data", "model.gguf", FAIL(GQ_ERR_FORMAT), "last tensor's data is cut short by 1 byte"},
    {"gguf_huge_n_kv", "model.gguf", FAIL(GQ_ERR_FORMAT), "metadata count 2^60 cannot fit in the file"},
    {"gguf_huge_n_tensors", "model.gguf", FAIL(GQ_ERR_FORMAT), "tensor count 2^60 cannot fit in the file"},
    {"gguf_wrong_n_tensors", "model.gguf", FAIL(GQ_ERR_FORMAT), "tensor count one larger than the infos present"},
    {"gguf_huge_string", "model.gguf", FAIL(GQ_ERR_FORMAT), "first key claims a length of 2^62 bytes"},
    {"gguf_huge_array", "model.gguf", FAIL(GQ_ERR_FORMAT), "string array claims 2^61 elements"},
    {"gguf_bad_vtype", "model.gguf", FAIL(GQ_ERR_FORMAT), "metadata value type 99 does not exist"},
    {"gguf_nested_array", "model.gguf", FAIL(GQ_ERR_FORMAT), "array of arrays (legal in the spec, unused by models; rejected)"},
    {"gguf_dup_key", "model.gguf", FAIL(GQ_ERR_FORMAT), "a metadata key appears twice"},
    {"gguf_dup_tensor", "model.gguf", FAIL(GQ_ERR_FORMAT), "a tensor name appears twice"},
    {"gguf_bad_alignment", "model.gguf", FAIL(GQ_ERR_FORMAT), "general.alignment = 48 is not a power of two"},
    {"gguf_unknown_type", "model.gguf", FAIL(GQ_ERR_FORMAT), "tensor type 77 is not a ggml type"},
    {"gguf_i32_type", "model.gguf", FAIL(GQ_ERR_UNSUPPORTED), "token_embd stored as ggml I32: a valid type gqsa does not dequantize"},
    {"gguf_n_dims5", "model.gguf", FAIL(GQ_ERR_FORMAT), "tensor with 5 dimensions (ggml allows 4)"},
    {"gguf_zero_dim", "model.gguf", FAIL(GQ_ERR_FORMAT), "tensor with a zero dimension"},
    {"gguf_dims_overflow", "model.gguf", FAIL(GQ_ERR_FORMAT), "2^40 x 2^40 elements overflow the byte count"},
    {"gguf_q4_cols33", "model.gguf", FAIL(GQ_ERR_FORMAT), "Q4_0 tensor with 33 columns (not a multiple of 32)"},
    {"gguf_offset_outside", "model.gguf", FAIL(GQ_ERR_FORMAT), "tensor data offset past the end of the file"},
    {"gguf_unaligned_offset", "model.gguf", FAIL(GQ_ERR_FORMAT), "tensor offset not a multiple of the alignment"},
    {"gguf_overlap", "model.gguf", FAIL(GQ_ERR_FORMAT), "two tensors share bytes"},
    {"gguf_arch_gpt2", "model.gguf", FAIL(GQ_ERR_UNSUPPORTED), "general.architecture is not 'llama'"},
    {"gguf_missing_tensor", "model.gguf", FAIL(GQ_ERR_FORMAT), "blk.0.ffn_down.weight is absent"},
    {"gguf_wrong_shape", "model.gguf", FAIL(GQ_ERR_FORMAT), "token_embd.weight rows disagree with the vocab"},
    {"gguf_huge_meta", "model.gguf", FAIL(GQ_ERR_FORMAT), "metadata claims dim 2^20 x 4000 layers over tiny tensors: must fail "
                                                          "on shapes, not attempt a huge allocation"},
    {"gguf_empty", "model.gguf", FAIL(GQ_ERR_FORMAT), "zero-byte file"},
    /* safetensors + config.json */
    {"st_ok", ".", OK_, "valid tiny llama safetensors + config.json (tied embeddings)"},
    {"st_ok_file", "model.safetensors", OK_, "the same, addressed by the .safetensors file"},
    {"st_ok_bf16", ".", OK_, "one tensor in BF16"},
    {"st_trunc", ".", FAIL(GQ_ERR_FORMAT), "data section 8 bytes short of the last tensor's end"},
    {"st_tiny", ".", FAIL(GQ_ERR_FORMAT), "file of 5 bytes (shorter than the header length)"},
    {"st_hdr_len_big", ".", FAIL(GQ_ERR_FORMAT), "header length 2^40 points past the end of the file"},
    {"st_hdr_len_small", ".", FAIL(GQ_ERR_FORMAT), "header length 1 cannot hold a JSON object"},
    {"st_hdr_only", ".", FAIL(GQ_ERR_FORMAT), "header present, data section missing"},
    {"st_not_json", ".", FAIL(GQ_ERR_FORMAT), "header is not JSON"},
    {"st_json_array", ".", FAIL(GQ_ERR_FORMAT), "header is a JSON array, not an object"},
    {"st_offsets_outside", ".", FAIL(GQ_ERR_FORMAT), "data_offsets point 1 MiB past the data section"},
    {"st_size_mismatch", ".", FAIL(GQ_ERR_FORMAT), "data_offsets span 4 bytes less than shape x dtype"},
    {"st_overlap", ".", FAIL(GQ_ERR_FORMAT), "two tensors share bytes"},
    {"st_negative_shape", ".", FAIL(GQ_ERR_FORMAT), "a negative dimension"},
    {"st_unknown_dtype", ".", FAIL(GQ_ERR_FORMAT), "dtype 'Q7' does not exist"},
    {"st_int_dtype", ".", FAIL(GQ_ERR_UNSUPPORTED), "an I32 weight: valid safetensors, not a float type"},
    {"st_missing_tensor", ".", FAIL(GQ_ERR_FORMAT), "mlp.down_proj.weight is absent"},
    {"cfg_missing", ".", FAIL(GQ_ERR_FORMAT), "no config.json beside the weights"},
    {"cfg_missing_hidden", ".", FAIL(GQ_ERR_FORMAT), "config.json lacks hidden_size"},
    {"cfg_missing_eps", ".", FAIL(GQ_ERR_FORMAT), "config.json lacks rms_norm_eps"},
    {"cfg_missing_type", ".", FAIL(GQ_ERR_FORMAT), "config.json lacks model_type"},
    {"cfg_string_number", ".", FAIL(GQ_ERR_FORMAT), "hidden_size is a string"},
    {"cfg_not_json", ".", FAIL(GQ_ERR_FORMAT), "config.json is truncated JSON"},
    {"cfg_unknown_type", ".", FAIL(GQ_ERR_UNSUPPORTED), "model_type 'mamba'"},
    {"cfg_rope_scaling", ".", FAIL(GQ_ERR_UNSUPPORTED), "rope_scaling set (LLaMA-3.1 style): not supported, said so"},
    {"cfg_opt", ".", FAIL(GQ_ERR_UNSUPPORTED), "OPT config loads, OPT weights are not supported yet"},
    {"cfg_heads_mismatch", ".", FAIL(GQ_ERR_FORMAT), "num_attention_heads 3 does not divide hidden_size 8"},
    /* llama2.c */
    {"l2c_ok", "model.bin", OK_, "valid tiny llama2.c v0 file (tied)"},
    {"l2c_trunc", "model.bin", FAIL(GQ_ERR_FORMAT), "4 bytes short of the size the header implies"},
    {"l2c_extra", "model.bin", FAIL(GQ_ERR_FORMAT), "4 bytes more than the header implies (another layout)"},
    {"l2c_header_only", "model.bin", FAIL(GQ_ERR_FORMAT), "just the 28-byte header"},
    {"l2c_short", "model.bin", FAIL(GQ_ERR_FORMAT), "10 bytes: not even a header"},
    {"l2c_zero_dim", "model.bin", FAIL(GQ_ERR_FORMAT), "dim = 0"},
    {"l2c_negative_layers", "model.bin", FAIL(GQ_ERR_FORMAT), "n_layers = -1"},
    {"l2c_huge_dims", "model.bin", FAIL(GQ_ERR_FORMAT), "dim = hidden = 2^30: sizes out of range, no allocation"},
    {"l2c_heads_mismatch", "model.bin", FAIL(GQ_ERR_FORMAT), "n_heads 3 does not divide dim 8"},
    {"l2c_kv_gt_heads", "model.bin", FAIL(GQ_ERR_FORMAT), "n_kv_heads 4 > n_heads 2"},
    {"l2c_ak42", "model.bin", FAIL(GQ_ERR_UNSUPPORTED), "llama2.c version-1 export (magic 'ak42')"},
};

const gqt_corrupt_case *gqt_corrupt_cases(size_t *n) {
    *n = sizeof k_cases / sizeof k_cases[0];
    return k_cases;
}

static int write_file(const char *dir, const char *name, const void *d, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    int ok = fwrite(d, 1, n, f) == n;
    ok &= fclose(f) == 0;
    return ok ? 0 : -1;
}

static int mkdir1(const char *p) { return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -1; }

static int write_case(const char *dir, const gqt_corrupt_case *c) {
    const char *n = c->name;
    buf b = {0};
    int rc = 0;
    if (!strncmp(n, "gguf_", 5)) {
        gg_opts o = {0};
        if (!strcmp(n, "gguf_ok_v2")) o.version = 2;
        if (!strcmp(n, "gguf_ok_align64")) o.alignment = 64;
        if (!strcmp(n, "gguf_ok_nan")) o.nan = 1;
        if (!strcmp(n, "gguf_version1")) o.version = 1;
        if (!strcmp(n, "gguf_big_endian")) o.version = 0x03000000u;
        if (!strcmp(n, "gguf_nested_array")) o.nested_array = 1;
        if (!strcmp(n, "gguf_dup_key")) o.dup_key = 1;
        if (!strcmp(n, "gguf_dup_tensor")) o.dup_tensor = 1;
        if (!strcmp(n, "gguf_bad_alignment")) o.alignment = 48;
        if (!strcmp(n, "gguf_i32_type")) o.int_type = 1;
        if (!strcmp(n, "gguf_n_dims5")) o.n_dims5 = 1;
        if (!strcmp(n, "gguf_zero_dim")) o.zero_dim = 1;
        if (!strcmp(n, "gguf_dims_overflow")) o.dims_overflow = 1;
        if (!strcmp(n, "gguf_q4_cols33")) o.q4_33 = 1;
        if (!strcmp(n, "gguf_offset_outside")) o.offset_outside = 1;
        if (!strcmp(n, "gguf_unaligned_offset")) o.unaligned_offset = 1;
        if (!strcmp(n, "gguf_overlap")) o.overlap = 1;
        if (!strcmp(n, "gguf_arch_gpt2")) o.arch = "gpt2";
        if (!strcmp(n, "gguf_missing_tensor")) o.drop_down = 1;
        if (!strcmp(n, "gguf_wrong_shape")) o.wrong_shape = 1;
        if (!strcmp(n, "gguf_huge_meta")) o.huge_meta = 1;
        gguf_build(&b, &o);
        if (!strcmp(n, "gguf_bad_magic")) b.p[0] = 'X';
        if (!strcmp(n, "gguf_trunc_header")) b.n = 12;
        if (!strcmp(n, "gguf_trunc_kv")) b.n = o.at_first_vtype + 10;
        if (!strcmp(n, "gguf_trunc_infos")) b.n = o.at_t0_type + 2;
        if (!strcmp(n, "gguf_trunc_data")) b.n -= 1;
        if (!strcmp(n, "gguf_huge_n_kv")) patch_u64(&b, o.at_n_kv, UINT64_C(1) << 60);
        if (!strcmp(n, "gguf_huge_n_tensors")) patch_u64(&b, o.at_n_tensors, UINT64_C(1) << 60);
        if (!strcmp(n, "gguf_wrong_n_tensors")) patch_u64(&b, o.at_n_tensors, N_T + 1);
        if (!strcmp(n, "gguf_huge_string")) patch_u64(&b, o.at_first_key_len, UINT64_C(1) << 62);
        if (!strcmp(n, "gguf_huge_array")) patch_u64(&b, o.at_arr_count, UINT64_C(1) << 61);
        if (!strcmp(n, "gguf_bad_vtype")) patch_u32(&b, o.at_first_vtype, 99);
        if (!strcmp(n, "gguf_unknown_type")) patch_u32(&b, o.at_t0_type, 77);
        if (!strcmp(n, "gguf_empty")) b.n = 0;
        rc = write_file(dir, "model.gguf", b.p, b.n);
    } else if (!strncmp(n, "st_", 3) || !strncmp(n, "cfg_", 4)) {
        st_opts o = {0};
        if (!strcmp(n, "st_ok_bf16")) o.dtype_first = "BF16";
        if (!strcmp(n, "st_trunc")) o.truncate = 1;
        if (!strcmp(n, "st_hdr_len_big")) o.hdr_len_big = 1;
        if (!strcmp(n, "st_hdr_len_small")) o.hdr_len_small = 1;
        if (!strcmp(n, "st_hdr_only")) o.hdr_only = 1;
        if (!strcmp(n, "st_not_json")) o.not_json = 1;
        if (!strcmp(n, "st_json_array")) o.json_array = 1;
        if (!strcmp(n, "st_offsets_outside")) o.offsets_outside = 1;
        if (!strcmp(n, "st_size_mismatch")) o.size_mismatch = 1;
        if (!strcmp(n, "st_overlap")) o.overlap = 1;
        if (!strcmp(n, "st_negative_shape")) o.negative_shape = 1;
        if (!strcmp(n, "st_unknown_dtype")) o.dtype_first = "Q7";
        if (!strcmp(n, "st_int_dtype")) o.dtype_first = "I32";
        if (!strcmp(n, "st_missing_tensor")) o.drop_down = 1;
        st_build(&b, &o);
        if (!strcmp(n, "st_tiny")) b.n = 5;
        rc = write_file(dir, "model.safetensors", b.p, b.n);
        char cfg[2048];
        snprintf(cfg, sizeof cfg, "%s", k_cfg_ok);
        char *p;
#define REPLACE(from, to)                                                                                              \
    if ((p = strstr(cfg, from)) != NULL) {                                                                             \
        char tail[2048];                                                                                               \
        snprintf(tail, sizeof tail, "%s", p + strlen(from));                                                           \
        snprintf(p, sizeof cfg - (size_t)(p - cfg), "%s%s", to, tail);                                                 \
    }
        if (!strcmp(n, "cfg_missing_hidden")) { REPLACE("\"hidden_size\":8,", ""); }
        if (!strcmp(n, "cfg_missing_eps")) { REPLACE("\"rms_norm_eps\":1e-5,", ""); }
        if (!strcmp(n, "cfg_missing_type")) { REPLACE("\"model_type\":\"llama\",", ""); }
        if (!strcmp(n, "cfg_string_number")) { REPLACE("\"hidden_size\":8", "\"hidden_size\":\"8\""); }
        if (!strcmp(n, "cfg_unknown_type")) { REPLACE("\"llama\"", "\"mamba\""); }
        if (!strcmp(n, "cfg_rope_scaling")) { REPLACE("\"rms_norm_eps\"", "\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0},\"rms_norm_eps\""); }
        if (!strcmp(n, "cfg_heads_mismatch")) { REPLACE("\"num_attention_heads\":2", "\"num_attention_heads\":3"); }
        if (!strcmp(n, "cfg_opt"))
            snprintf(cfg, sizeof cfg, "{\"model_type\":\"opt\",\"hidden_size\":8,\"ffn_dim\":16,\"num_hidden_layers\":1,"
                     "\"num_attention_heads\":2,\"vocab_size\":16,\"max_position_embeddings\":64,"
                     "\"do_layer_norm_before\":true,\"word_embed_proj_dim\":8}");
#undef REPLACE
        size_t len = strlen(cfg);
        if (!strcmp(n, "cfg_not_json")) len /= 2;
        if (rc == 0 && strcmp(n, "cfg_missing") != 0) rc = write_file(dir, "config.json", cfg, len);
    } else if (!strncmp(n, "l2c_", 4)) {
        l2c_opts o = {{0}, 0, 0, 0};
        if (!strcmp(n, "l2c_trunc")) o.delta = -4;
        if (!strcmp(n, "l2c_extra")) o.delta = 4;
        if (!strcmp(n, "l2c_header_only")) o.only = 28;
        if (!strcmp(n, "l2c_short")) o.only = 10;
        if (!strcmp(n, "l2c_negative_layers")) o.h[2] = -1;
        if (!strcmp(n, "l2c_huge_dims")) o.h[0] = 1 << 30, o.h[1] = 1 << 30;
        if (!strcmp(n, "l2c_heads_mismatch")) o.h[3] = 3, o.h[4] = 1;
        if (!strcmp(n, "l2c_kv_gt_heads")) o.h[4] = 4;
        if (!strcmp(n, "l2c_ak42")) o.magic_ak42 = 1;
        l2c_build(&b, &o);
        if (!strcmp(n, "l2c_zero_dim")) memset(b.p, 0, 4);
        rc = write_file(dir, "model.bin", b.p, b.n);
    } else {
        rc = -1;
    }
    free(b.p);
    return rc;
}

int gqt_corrupt_write_all(const char *dir) {
    if (mkdir1(dir) != 0) return -1;
    size_t n;
    const gqt_corrupt_case *cs = gqt_corrupt_cases(&n);
    for (size_t i = 0; i < n; i++) {
        char sub[1024];
        snprintf(sub, sizeof sub, "%s/%s", dir, cs[i].name);
        if (mkdir1(sub) != 0 || write_case(sub, &cs[i]) != 0) return -1;
    }
    return 0;
}
