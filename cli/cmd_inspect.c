/* cmd_inspect.c — `gqsa inspect FILE`: what a checkpoint or model file holds. For a compressed
 * checkpoint: /meta, the method's settings, and per linear layer the achieved sparsity, bits, group,
 * GQS bytes and bits per weight with and without metadata, plus totals. For a plain model file (or an
 * HDF5 checkpoint without GQS arrays): config and parameter count.
 * Must not: modify the file; print anything but the report on stdout (errors go to stderr).
 */
#include <stdlib.h>
#include <string.h>

#include "../core/ckpt.h"
#include "../core/export_gguf.h"
#include "../core/gqs.h"
#include "../core/model.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa inspect FILE [--summary] [--zeros-fp16] [--data-root DIR]\n\n"
            "Describe a model or checkpoint. FILE may be an HDF5 checkpoint written by gqsa (compress or a\n"
            "pipeline stage), a .gguf (a GQS export from `gqsa export` too), a llama2.c .bin, an HF directory\n"
            "or a registry name.\n"
            "For GQS (group-quantized, group-sparse) layers it reports the memory of the BSR form: codes,\n"
            "row_index (int32), group_col (int32), scales (fp16) and zeros (bits-wide integers), as bits per\n"
            "original weight with and without that metadata.\n\n"
            "  --summary      totals only (default: one line per linear layer, then totals)\n"
            "  --zeros-fp16   count zeros as fp16 (after E2E-OQP they are continuous)\n"
            "  --data-root D  where models/ is, for registry names\n");
}

static void print_config(const gq_model *m) {
    const gq_config *c = &m->cfg;
    printf("model       %s\n", c->name[0] ? c->name : "(unnamed)");
    printf("source      %s (%s)\n", m->source, m->format);
    printf("arch        %s, rope %s\n", c->arch == GQ_ARCH_LLAMA ? "llama" : c->arch == GQ_ARCH_QWEN2 ? "qwen2" : "opt",
           c->rope_style == GQ_ROPE_HALF ? "half" : "interleaved");
    printf("dims        D %d  H %d  L %d  NH %d  NKV %d  HD %d  V %d  ctx %d\n", c->dim, c->hidden_dim, c->n_layers,
           c->n_heads, c->n_kv_heads, c->head_dim, c->vocab_size, c->max_seq_len);
    printf("params      %zu (embeddings %s)\n", gq_model_n_params(m), c->tied_embeddings ? "tied" : "untied");
    printf("tokenizer   %s\n", m->tok ? "attached" : "none");
}

static int inspect_h5(const char *path, int per_layer, int zeros_fp16) {
    gq_ckpt *c;
    gq_status st = gq_ckpt_open(path, &c);
    if (st != GQ_OK) return cli_fail(st, NULL);
    gq_ckpt_meta meta;
    if (gq_ckpt_read_meta(c, &meta) == GQ_OK) {
        printf("checkpoint  %s\n", path);
        printf("format      %d, stage '%s', model '%s', git %s\n", meta.format_version, meta.stage, meta.model_id,
               meta.git_revision[0] ? meta.git_revision : "-");
        printf("config hash %s\n", meta.config_hash[0] ? meta.config_hash : "-");
    } else {
        printf("checkpoint  %s (no /meta: %s)\n", path, gq_errmsg());
    }
    if (!gq_ckpt_has(c, "/config")) {
        printf("no model in this checkpoint (groups:%s%s%s)\n", gq_ckpt_has(c, "/hessian") ? " hessian" : "",
               gq_ckpt_has(c, "/saliency") ? " saliency" : "", gq_ckpt_has(c, "/mask") ? " mask" : "");
        gq_ckpt_close(c);
        return 0;
    }
    gq_model *m;
    gq_gqs *gqs;
    st = gq_ckpt_read_model(c, &m, &gqs);
    if (st != GQ_OK) {
        gq_ckpt_close(c);
        return cli_fail(st, "the checkpoint is corrupt or was written by another version");
    }
    char method[64] = "", scope[16] = "";
    int64_t bits = 0, group = 0;
    double sparsity = 0;
    int has_compress = gq_ckpt_has(c, "/compress");
    if (has_compress) {
        gq_ckpt_attr_get_str(c, "/compress", "method", method, sizeof method);
        gq_ckpt_attr_get_str(c, "/compress", "scope", scope, sizeof scope);
        gq_ckpt_attr_get_i64(c, "/compress", "bits", &bits);
        gq_ckpt_attr_get_i64(c, "/compress", "group", &group);
        gq_ckpt_attr_get_f64(c, "/compress", "sparsity", &sparsity);
        gq_err_clear();
    }
    print_config(m);
    if (has_compress)
        printf("compression %s: target sparsity %.4g, %lld bits, group %lld, scope %s\n", method, sparsity, (long long)bits,
               (long long)group, scope);
    printf("\n%-22s %13s %6s %4s %4s %12s %8s %8s\n", "linear", "shape", "sparse", "bits", "G", "bytes", "bpw", "bpw-meta");
    size_t tot_w = 0, tot_b = 0, tot_vals = 0, n_gqs = 0;
    double tot_sparse = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int k = 0; k < GQ_LIN_COUNT; k++) {
            const gq_linear *lin = &m->blocks[l].lin[k];
            const gq_gqs *g = &gqs[l * GQ_LIN_COUNT + k];
            size_t nw = (size_t)lin->out * lin->in, nz = 0;
            for (size_t i = 0; i < nw; i++) nz += lin->w[i] == 0.0f;
            tot_w += nw;
            char name[64], shape[32];
            snprintf(name, sizeof name, "layers.%d.%s", l, gq_linear_name((gq_linear_kind)k));
            snprintf(shape, sizeof shape, "%dx%d", lin->out, lin->in);
            if (g->row_index) {
                gq_gqs_mem mem;
                gq_gqs_memory(g, zeros_fp16, &mem);
                tot_b += mem.bytes_total;
                tot_vals += mem.bytes_values;
                tot_sparse += mem.sparsity * (double)nw;
                n_gqs++;
                if (per_layer)
                    printf("%-22s %13s %6.4f %4d %4d %12zu %8.3f %8.3f\n", name, shape, mem.sparsity, g->bits, g->G,
                           mem.bytes_total, mem.bits_per_weight, mem.bits_per_weight_nometa);
            } else {
                tot_b += nw * 2; /* dense fp16 */
                tot_vals += nw * 2;
                tot_sparse += (double)nz;
                if (per_layer)
                    printf("%-22s %13s %6.4f %4s %4s %12zu %8.3f %8.3f\n", name, shape, (double)nz / nw, "fp16", "-", nw * 2,
                           16.0, 16.0);
            }
        }
    printf("%-22s %13zu %6.4f %4s %4s %12zu %8.3f %8.3f\n", "total (linears)", tot_w, tot_sparse / (double)tot_w, "", "",
           tot_b, 8.0 * tot_b / tot_w, 8.0 * tot_vals / tot_w);
    printf("\n%zu of %d linears in GQS form; dense fp16 would take %zu bytes (%.2fx smaller)%s\n", n_gqs,
           m->cfg.n_layers * GQ_LIN_COUNT, tot_w * 2, tot_b ? (double)(tot_w * 2) / tot_b : 0,
           n_gqs < (size_t)m->cfg.n_layers * GQ_LIN_COUNT ? "; non-GQS linears counted as dense fp16" : "");
    printf("sparse column: fraction of exactly-zero weights for dense layers, of pruned groups for GQS layers\n");
    for (int i = 0; i < m->cfg.n_layers * GQ_LIN_COUNT; i++) gq_gqs_free(&gqs[i]);
    free(gqs);
    gq_model_free(m);
    gq_ckpt_close(c);
    return 0;
}

int cmd_inspect(int argc, char **argv) {
    const char *file = NULL, *v;
    int per_layer = 1, zeros_fp16 = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--summary")) { per_layer = 0; continue; }
        if (!strcmp(argv[i], "--zeros-fp16")) { zeros_fp16 = 1; continue; }
        if ((r = cli_flag(argc, argv, &i, "--data-root", &v))) { if (r < 0) return 2; gq_set_data_root(v); continue; }
        if (argv[i][0] == '-') return cli_usage_error(argv[0], "unknown option '%s'", argv[i]);
        if (file) return cli_usage_error(argv[0], "only one FILE, got '%s' and '%s'", file, argv[i]);
        file = argv[i];
    }
    if (!file) return cli_usage_error(argv[0], "FILE is required");
    /* HDF5 files start with this signature (at offset 0 for files gqsa writes) */
    FILE *f = fopen(file, "rb");
    unsigned char sig[8] = {0};
    int is_h5 = 0;
    if (f) {
        is_h5 = fread(sig, 1, 8, f) == 8 && !memcmp(sig, "\x89HDF\r\n\x1a\n", 8);
        fclose(f);
    }
    if (is_h5) return inspect_h5(file, per_layer, zeros_fp16);
    /* a GQS export (`gqsa export`) has no dense linears for the model loader: describe its arrays */
    if (gq_export_is_gqs_gguf(file)) {
        gq_status est = gq_export_describe(file, per_layer, zeros_fp16, stdout);
        return est == GQ_OK ? 0 : cli_fail(est, "the GQS export is corrupt or from another version");
    }
    gq_model *m;
    gq_status st = gq_model_load(file, NULL, &m);
    if (st != GQ_OK) return cli_fail(st, "FILE must be a model file, a gqsa HDF5 checkpoint or a registry name");
    print_config(m);
    gq_model_free(m);
    return 0;
}
