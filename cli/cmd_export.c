/* cmd_export.c — `gqsa export`: a compressed checkpoint (or any model gqsa reads) as a GGUF file,
 * with the GQS arrays as named tensors and the method's parameters as gqsa.* metadata, or (--dense)
 * the dequantized dense weights under llama.cpp's tensor names. Summary on stdout.
 * Must not: implement the format (core/export_gguf.c does) or modify the input.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/ckpt.h"
#include "../core/export_gguf.h"
#include "../core/gguf.h"
#include "../core/model.h"
#include "../core/tokenizer.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa export --in CHECKPOINT.h5 --out MODEL.gguf [--dense] [--dtype f32|f16] [--gqs-f16]\n"
            "                   [--tokenizer FILE] [--tokenizer-pre NAME] [--no-tokenizer] [--data-root DIR]\n\n"
            "Write a compressed model as GGUF v3 (architecture 'llama', alignment 32, written atomically).\n"
            "By default every GQS linear (group-quantized, group-sparse, BSR by rows) becomes five tensors\n"
            "  blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.gqs.row_index  I32 [rows+1]\n"
            "                                                               .gqs.group_col  I32 [nnz]\n"
            "                                                               .gqs.values     I8 {bytes/group, nnz}\n"
            "                                                               .gqs.scales     F32 [nnz]\n"
            "                                                               .gqs.zeros      F32 [nnz]\n"
            "(values: G codes of `bits` bits per group, an lsb-first bit stream, ceil(G*bits/8) bytes; the\n"
            "bytes are stored as I8 and mean uint8), with gqsa.format_version, gqsa.method, gqsa.group_size,\n"
            "gqsa.bits, gqsa.sparsity, gqsa.scope, gqsa.values_layout, gqsa.config_hash and gqsa.git_revision.\n"
            "Embeddings, norms, the output matrix and linears not in GQS form are dense. Such a file is for\n"
            "tools that read GQS (and for inspection: any GGUF reader lists it); llama.cpp cannot run it.\n"
            "--dense writes the dequantized weights as blk.N.<linear>.weight instead: a plain llama GGUF that\n"
            "llama.cpp-style tools and `gqsa eval` run.\n"
            "Models whose q/k rows are in Hugging Face order (rotate-half RoPE) are permuted to the GGUF\n"
            "llama order (interleaved pairs) as llama.cpp's converter does, GQS arrays by reordering rows;\n"
            "gqsa.rope_rows_permuted says whether that happened.\n\n"
            "  --in FILE          gqsa HDF5 checkpoint (compress or a pipeline stage), or any model gqsa loads\n"
            "                     (then all linears are dense)\n"
            "  --out FILE         the .gguf to write (FILE.tmp.XXXXXX, fsync, rename)\n"
            "  --dense            dequantized dense weights under llama.cpp names, no gqs tensors\n"
            "  --dtype T          f32 (default, exact) or f16: token_embd, output and dense linears; norms stay f32\n"
            "  --gqs-f16          store gqs scales and zeros as F16 (default F32, exact)\n"
            "  --tokenizer FILE   tokenizer to embed (tokenizer.model, tokenizer.json, llama2.c tokenizer.bin);\n"
            "                     default: the source model's, found through the checkpoint's /meta/source_model\n"
            "  --tokenizer-pre N  tokenizer.ggml.pre for a byte-level BPE read from tokenizer.json (llama-bpe,\n"
            "                     qwen2, smollm, gpt2): that file's pre-tokenizer has no GGUF name of its own\n"
            "  --no-tokenizer     write no tokenizer.ggml.* keys\n"
            "  --data-root DIR    where models/ is (default $GQSA_DATA_ROOT or ../shared)\n");
}

static int is_h5(const char *path) {
    FILE *f = fopen(path, "rb");
    unsigned char sig[8] = {0};
    int r = 0;
    if (f) {
        r = fread(sig, 1, 8, f) == 8 && !memcmp(sig, "\x89HDF\r\n\x1a\n", 8);
        fclose(f);
    }
    return r;
}

/* The source model's tokenizer, cheaply for a GGUF (metadata only), else by loading the model. */
static gq_status source_tokenizer(const char *src, gq_tokenizer **out) {
    *out = NULL;
    size_t n = strlen(src);
    if (n > 5 && !strcmp(src + n - 5, ".gguf")) {
        gq_gguf *g;
        GQ_TRY(gq_gguf_open(src, &g));
        gq_status st = gq_tokenizer_from_gguf(g, out);
        gq_gguf_close(g);
        return st;
    }
    gq_model *s;
    GQ_TRY(gq_model_load(src, NULL, &s));
    *out = s->tok;
    s->tok = NULL;
    gq_model_free(s);
    if (!*out) return gq_errf(GQ_ERR_FORMAT, "%s: the model has no tokenizer", src);
    return GQ_OK;
}

int cmd_export(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *v, *tok_path = NULL;
    int no_tok = 0;
    gq_export_opts eo;
    gq_export_opts_default(&eo);
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--dense")) { eo.dense = 1; continue; }
        if (!strcmp(argv[i], "--gqs-f16")) { eo.gqs_param_type = GQ_GGML_F16; continue; }
        if (!strcmp(argv[i], "--no-tokenizer")) { no_tok = 1; continue; }
        if ((r = cli_flag(argc, argv, &i, "--in", &v))) { if (r < 0) return 2; in = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--out", &v))) { if (r < 0) return 2; out = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--tokenizer", &v))) { if (r < 0) return 2; tok_path = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--tokenizer-pre", &v))) { if (r < 0) return 2; eo.tokenizer_pre = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--data-root", &v))) { if (r < 0) return 2; gq_set_data_root(v); continue; }
        if ((r = cli_flag(argc, argv, &i, "--dtype", &v))) {
            if (r < 0) return 2;
            if (!strcmp(v, "f32")) eo.dense_type = GQ_GGML_F32;
            else if (!strcmp(v, "f16")) eo.dense_type = GQ_GGML_F16;
            else return cli_usage_error(argv[0], "--dtype: expected f32 or f16, got '%s'", v);
            continue;
        }
        return cli_usage_error(argv[0], "unknown argument '%s'", argv[i]);
    }
    if (!in) return cli_usage_error(argv[0], "--in is required");
    if (!out) return cli_usage_error(argv[0], "--out is required");
    if (no_tok && tok_path) return cli_usage_error(argv[0], "--tokenizer and --no-tokenizer exclude each other");

    gq_model *m = NULL;
    gq_gqs *gqs = NULL;
    gq_status st;
    char method[64] = "", scope[16] = "", src[1024] = "";
    gq_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    if (is_h5(in)) {
        gq_ckpt *c;
        if ((st = gq_ckpt_open(in, &c)) != GQ_OK) return cli_fail(st, NULL);
        st = gq_ckpt_read_meta(c, &meta);
        if (st == GQ_OK && !gq_ckpt_has(c, "/config"))
            st = gq_errf(GQ_ERR_FORMAT, "%s: no model in this checkpoint (a calibration or saliency stage?)", in);
        if (st == GQ_OK) st = gq_ckpt_read_model(c, &m, &gqs);
        if (st == GQ_OK && gq_ckpt_has(c, "/compress")) {
            int64_t b = 0, g = 0;
            double sp = -1, asp = -1;
            gq_ckpt_attr_get_str(c, "/compress", "method", method, sizeof method);
            gq_ckpt_attr_get_str(c, "/compress", "scope", scope, sizeof scope);
            gq_ckpt_attr_get_i64(c, "/compress", "bits", &b);
            gq_ckpt_attr_get_i64(c, "/compress", "group", &g);
            if (gq_ckpt_attr_get_f64(c, "/compress", "sparsity", &sp) == GQ_OK) eo.sparsity = sp;
            if (gq_ckpt_attr_get_f64(c, "/compress", "achieved_sparsity", &asp) == GQ_OK) eo.achieved_sparsity = asp;
            eo.method = method[0] ? method : NULL;
            eo.scope = scope[0] ? scope : NULL;
            /* checked against the arrays by the exporter; a prune-only run (bits 0) has none */
            eo.bits = b > 0 && b <= 8 ? (int)b : 0;
            eo.group = g > 0 && g <= 1 << 20 ? (int)g : 0;
        }
        if (st == GQ_OK) {
            gq_ckpt_attr_get_str(c, "/meta", "source_model", src, sizeof src);
            gq_err_clear();
        }
        gq_ckpt_close(c);
        if (st != GQ_OK) {
            if (m) gq_model_free(m);
            return cli_fail(st, "--in must be a gqsa checkpoint holding a model (gqsa inspect FILE shows what it holds)");
        }
        eo.config_hash = meta.config_hash[0] ? meta.config_hash : NULL;
        eo.git_revision = meta.git_revision[0] ? meta.git_revision : NULL;
        eo.source_model = src[0] ? src : NULL;
    } else {
        if ((st = gq_model_load(in, NULL, &m)) != GQ_OK)
            return cli_fail(st, "--in must be a gqsa HDF5 checkpoint or a model file gqsa reads");
        snprintf(src, sizeof src, "%s", m->source);
        eo.source_model = src;
    }

    if (!no_tok) {
        gq_tokenizer *t = NULL;
        if (tok_path) {
            if ((st = gq_tokenizer_load(tok_path, m->cfg.vocab_size, &t)) != GQ_OK) goto fail;
        } else if (!m->tok && src[0]) {
            if (source_tokenizer(src, &t) != GQ_OK) {
                fprintf(stderr, "gqsa export: WARNING: no tokenizer from the source model %s (%s); the GGUF will carry "
                        "none (llama.cpp needs one: pass --tokenizer FILE)\n", src, gq_errmsg());
                gq_err_clear();
            }
        }
        if (t) {
            if (m->tok) gq_tokenizer_free(m->tok);
            m->tok = t;
        }
        if (!m->tok) fprintf(stderr, "gqsa export: WARNING: exporting without a tokenizer\n");
    } else if (m->tok) {
        gq_tokenizer_free(m->tok);
        m->tok = NULL;
    }

    if (eo.dense && gqs) fprintf(stderr, "gqsa export: --dense: writing the dequantized weights, not the GQS arrays\n");
    double t0 = gq_now();
    st = gq_export_gguf(out, m, gqs, &eo);
    if (st != GQ_OK) goto fail;
    struct stat sb;
    long long bytes = stat(out, &sb) == 0 ? (long long)sb.st_size : -1;
    int n_gqs = 0;
    if (gqs && !eo.dense)
        for (int i = 0; i < m->cfg.n_layers * GQ_LIN_COUNT; i++) n_gqs += gqs[i].row_index != NULL && gqs[i].nnz > 0;
    printf("wrote %s: %lld bytes in %.2f s\n", out, bytes, gq_now() - t0);
    printf("weights     %s (%d of %d linears as GQS tensors), dense tensors %s\n", n_gqs ? "gqs" : "dense",
           n_gqs, m->cfg.n_layers * GQ_LIN_COUNT, eo.dense_type == GQ_GGML_F16 ? "F16" : "F32");
    printf("method      %s, bits %d, group %d, scope %s\n", eo.method ? eo.method : "-", eo.bits, eo.group,
           eo.scope ? eo.scope : "-");
    printf("rope rows   %s\n", m->cfg.rope_style == GQ_ROPE_HALF ? "permuted from HF (rotate-half) to GGUF interleaved order"
                                                                 : "as stored (already interleaved order)");
    printf("tokenizer   %s\n", m->tok ? "embedded" : "none");
    if (gqs) {
        for (int i = 0; i < m->cfg.n_layers * GQ_LIN_COUNT; i++) gq_gqs_free(&gqs[i]);
        free(gqs);
    }
    gq_model_free(m);
    return 0;
fail:
    if (gqs) {
        for (int i = 0; i < m->cfg.n_layers * GQ_LIN_COUNT; i++) gq_gqs_free(&gqs[i]);
        free(gqs);
    }
    gq_model_free(m);
    return cli_fail(st, NULL);
}
