/* cmd_compress.c — `gqsa compress`: one-shot compression of a model (GQSA by default, or any method
 * registered in core/compress.h) into an HDF5 checkpoint that `gqsa eval ppl --model` and
 * `gqsa inspect` read. Results to stdout, progress and per-layer lines to stderr.
 * Must not: implement any of the method (core/compress.c does) or name files other than --out.
 */
#include <stdlib.h>
#include <string.h>

#include "../core/calib.h"
#include "../core/ckpt.h"
#include "../core/compress.h"
#include "../core/model.h"
#include "../stages/baselines/baselines.h"
#include "cli.h"

static void usage(FILE *f) {
    const gq_compress_method *ms[32];
    int n = gq_compress_methods(ms, 32);
    fprintf(f,
            "usage: gqsa compress --model M --out FILE.h5 [--sparsity S] [--bits B] [--group G] [--scope layer|row]\n"
            "                     [--calib wikitext2|c4|FILE] [--nsamples N] [--seqlen L] [--seed S] [--damp D]\n"
            "                     [--method NAME] [--no-sequential] [--fp16-scales] [--data-root DIR] [--verbose]\n\n"
            "One-shot GQSA (arXiv 2412.17560): calibrate on N random windows of L tokens, then for every linear\n"
            "layer of every block: saliency s = w^2 / [H^-1]_jj (H = 2 X^T X / n, damped), remove the\n"
            "lowest-scoring groups of G consecutive input weights until the target sparsity, quantize each kept\n"
            "group with its own asymmetric B-bit quantizer. Blocks are processed in order and, by default,\n"
            "block i is calibrated on the outputs of the already-compressed blocks < i (GPTQ's sequential mode).\n"
            "The checkpoint holds the dense dequantized weights (for evaluation) and the GQS arrays.\n\n"
            "  --model M        .gguf, llama2.c .bin, HF directory, or a registry name (stories260K, smollm2-135m)\n"
            "  --out FILE.h5    checkpoint to write (atomically: FILE.h5.tmp, then rename)\n"
            "  --sparsity S     fraction of groups removed, in [0, 1) (default 0.5)\n"
            "  --bits B         2, 3, 4 or 8; 0 = prune only (default 4)\n"
            "  --group G        group size, 4..128, must divide every input dimension (default 16)\n"
            "  --scope SCOPE    layer: rank all groups of a matrix together (default); row: same count per row\n"
            "  --calib D        wikitext2 (validation split, default), c4 (validation sample) or a .txt/.jsonl file\n"
            "  --nsamples N     calibration windows (default 128)\n"
            "  --seqlen L       tokens per window (default 2048, capped at the model's context)\n"
            "  --seed S         window sampling seed (default 0)\n"
            "  --damp D         Hessian damping relative to mean(diag H) (default 0.01)\n"
            "  --method NAME    compression method (default gqsa); registered here:\n");
    for (int i = 0; i < n && i < 32; i++) fprintf(f, "                     %-16s %s\n", ms[i]->name, ms[i]->help ? ms[i]->help : "");
    fprintf(f,
            "                   baselines read --bits (0 = prune only), --group (RTN/GPTQ quantization group),\n"
            "                   --sparsity (unstructured fraction of weights); the *24 names are 2:4\n"
            "  --no-sequential  calibrate every block on full-precision inputs\n"
            "  --fp16-scales    round scales up to fp16 values (what an fp16-scale kernel computes)\n"
            "  --data-root DIR  where datasets/ and models/ are (default $GQSA_DATA_ROOT or ../shared)\n"
            "  --verbose        one line per linear layer (achieved sparsity) on stderr\n");
}

int cmd_compress(int argc, char **argv) {
    /* the baselines live in the static library only if something references them */
    gq_baselines_register();
    const char *model = NULL, *out = NULL, *v = NULL;
    gq_compress_opts o;
    gq_compress_opts_default(&o);
    gq_calib_opts co;
    gq_calib_opts_default(&co);
    co.seqlen = 0;
    int sequential = 1, seed = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--no-sequential")) { sequential = 0; continue; }
        if (!strcmp(argv[i], "--fp16-scales")) { o.fp16_scales = 1; continue; }
        if (!strcmp(argv[i], "--verbose")) { o.verbose = 1; continue; }
        if ((r = cli_flag(argc, argv, &i, "--model", &v))) { if (r < 0) return 2; model = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--out", &v))) { if (r < 0) return 2; out = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--method", &v))) { if (r < 0) return 2; o.method = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--calib", &v))) { if (r < 0) return 2; co.dataset = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--data-root", &v))) { if (r < 0) return 2; gq_set_data_root(v); continue; }
        if ((r = cli_flag(argc, argv, &i, "--sparsity", &v))) {
            if (r < 0 || cli_parse_double("--sparsity", v, 0, 0.999999, &o.sparsity)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--damp", &v))) {
            if (r < 0 || cli_parse_double("--damp", v, 1e-9, 1e3, &o.damp)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--bits", &v))) {
            if (r < 0 || cli_parse_int("--bits", v, 0, 8, &o.bits)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--group", &v))) {
            if (r < 0 || cli_parse_int("--group", v, 4, 128, &o.group)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--nsamples", &v))) {
            if (r < 0 || cli_parse_int("--nsamples", v, 1, 1 << 20, &co.n_samples)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--seqlen", &v))) {
            if (r < 0 || cli_parse_int("--seqlen", v, 2, 1 << 20, &co.seqlen)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--seed", &v))) {
            if (r < 0 || cli_parse_int("--seed", v, 0, 2147483647, &seed)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--scope", &v))) {
            if (r < 0) return 2;
            if (gq_prune_scope_parse(v, &o.scope) != GQ_OK) return cli_usage_error(argv[0], "%s", gq_errmsg());
            continue;
        }
        return cli_usage_error(argv[0], "unknown argument '%s'", argv[i]);
    }
    co.seed = (uint64_t)seed;
    if (!model) return cli_usage_error(argv[0], "--model is required");
    if (!out) return cli_usage_error(argv[0], "--out is required");
    if (gq_compress_opts_validate(&o) != GQ_OK) return cli_usage_error(argv[0], "%s", gq_errmsg());
    const gq_compress_method *meth = gq_compress_find(o.method);
    if (!meth) return cli_usage_error(argv[0], "%s", gq_errmsg());

    double t0 = gq_now();
    gq_model *m = NULL;
    gq_status st = gq_model_load(model, NULL, &m);
    if (st != GQ_OK) return cli_fail(st, "check --model (a file path or a registry name such as stories260K)");
    if (co.seqlen == 0) co.seqlen = m->cfg.max_seq_len < 2048 ? m->cfg.max_seq_len : 2048;
    if (co.seqlen > m->cfg.max_seq_len) {
        int ml = m->cfg.max_seq_len;
        gq_model_free(m);
        return cli_usage_error(argv[0], "--seqlen %d exceeds the model's context of %d tokens", co.seqlen, ml);
    }
    int32_t *windows = NULL;
    if (meth->needs_hessian) {
        fprintf(stderr, "gqsa compress: sampling %d x %d calibration tokens from %s (seed %d)\n", co.n_samples, co.seqlen,
                co.dataset, seed);
        st = gq_calib_windows(m->tok, &co, &windows);
        if (st != GQ_OK) {
            gq_model_free(m);
            return cli_fail(st, "check --calib and --data-root, or lower --seqlen");
        }
    }
    char model_id[256];
    const char *src = m->source[0] ? m->source : model;
    /* keep the tail of a long path: it is the informative part */
    size_t sl = strlen(src);
    const char *tail = sl >= sizeof model_id ? src + sl - (sizeof model_id - 1) : src;
    memcpy(model_id, tail, strlen(tail) + 1);
    gq_compressed c;
    gq_compressed_init(&c, m, &o);
    fprintf(stderr, "gqsa compress: %s on %s: sparsity %.3g, %d bits, group %d, scope %s%s\n", c.method, model_id,
            o.sparsity, o.bits, o.group, gq_prune_scope_name(o.scope), sequential ? ", sequential" : "");
    st = gq_compress_run(&c, windows, co.n_samples, co.seqlen, sequential, 1);
    free(windows);
    if (st != GQ_OK) {
        gq_compressed_free(&c);
        return cli_fail(st, "a non-divisible --group, a NaN in the model or a non-PD Hessian are the usual causes");
    }
    gq_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.format_version = GQ_CKPT_FORMAT_VERSION;
    snprintf(meta.stage, sizeof meta.stage, "compress");
    snprintf(meta.model_id, sizeof meta.model_id, "%s", model_id);
    const char *rev = getenv("GQSA_GIT_REVISION");
    snprintf(meta.git_revision, sizeof meta.git_revision, "%s", rev ? rev : "unknown");
    /* the hash identifies the settings that determine the result */
    char desc[2048];
    snprintf(desc, sizeof desc, "method=%s sparsity=%.17g bits=%d group=%d scope=%s damp=%.17g qmode=%d fp16=%d calib=%s n=%d L=%d seed=%d seq=%d model=%s",
             c.method, o.sparsity, o.bits, o.group, gq_prune_scope_name(o.scope), o.damp, (int)o.qmode, o.fp16_scales,
             co.dataset, co.n_samples, co.seqlen, seed, sequential, model_id);
    gq_sha256_hex(desc, strlen(desc), meta.config_hash);
    st = gq_ckpt_save_compressed(out, &c, &meta);
    if (st != GQ_OK) {
        gq_compressed_free(&c);
        return cli_fail(st, "check that the folder of --out exists and is writable");
    }
    double secs = gq_now() - t0;
    /* memory of the GQS form over all linears */
    size_t bytes = 0, weights = 0;
    for (int i = 0; i < c.n_layers * GQ_LIN_COUNT; i++) {
        const gq_linear *lin = &c.m->blocks[i / GQ_LIN_COUNT].lin[i % GQ_LIN_COUNT];
        weights += (size_t)lin->out * lin->in;
        if (c.gqs[i].row_index) {
            gq_gqs_mem mem;
            gq_gqs_memory(&c.gqs[i], 0, &mem);
            bytes += mem.bytes_total;
        }
    }
    printf("compressed %s with %s in %.1f s -> %s\n", model_id, c.method, secs, out);
    printf("  sparsity (achieved)  %.4f\n", gq_compressed_total_sparsity(&c));
    if (bytes) printf("  linear weights       %.3f bits/weight incl. metadata (%zu bytes for %zu weights)\n", 8.0 * bytes / weights, bytes, weights);
    printf("  config hash          %s\n", meta.config_hash);
    gq_compressed_free(&c);
    return 0;
}
