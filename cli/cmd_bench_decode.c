/* cmd_bench_decode.c — `gqsa bench decode`: batch-1 greedy decoding speed of the GPU decode engine
 * (core/cuda/decode.h) per weight format and output length, against the bandwidth ceiling.
 * For a real model (SmolLM2) it also prints the generated text and checks the first generated tokens
 * against the CPU's greedy decode (gq_fwd_decode). Shapes without a real model (llama2-7b) get random
 * weights generated on the device, and every line they produce says so.
 * Must not: time anything but graph replays (the engine does), or claim figures for formats it
 * could not build (those lines say "unsupported" with the reason).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "../core/cuda/gpu.h"
#include "../core/forward.h"
#include "../core/model.h"
#include "../core/tokenizer.h"
#include "../core/cuda/gqs_gemv.h" /* kind names: plain C, builds without CUDA */
#ifdef GQSA_CUDA
#include "../core/cuda/decode.h"
#endif

static const char *USAGE =
    "usage: gqsa bench decode --shape llama2-7b|smollm2 [options]\n"
    "\n"
    "Batch-1 greedy decoding on the GPU: the whole per-token step is one CUDA graph replayed per token\n"
    "(fp16 KV cache). For each format and output length prints tokens/s, mean per-token latency, the\n"
    "bytes one token must read (linear weights + KV cache at the mean position), the ceiling\n"
    "(measured device copy bandwidth / bytes per token) and the fraction of it reached, and memory\n"
    "(weights, KV cache, cudaMemGetInfo).\n"
    "\n"
    "  --shape S        llama2-7b (dim 4096, hidden 11008, 32 layers, 32 heads, vocab 32000; RANDOM\n"
    "                   weights generated on the device: speed/memory only) or smollm2 (the real\n"
    "                   SmolLM2-135M from --model; random weights of its shape with --random)\n"
    "  --model M        model file or registry name for smollm2 (default smollm2-135m)\n"
    "  --random         random weights even when a real model is available\n"
    "  --formats LIST   comma list of fp16, w4, gqs-s30, gqs-s40, gqs-s50 (default fp16,w4,gqs-s50)\n"
    "  --group G        group size of w4 / gqs (default 16)\n"
    "  --gemv K         GQS GEMV kernel by its table name (any GQS row of `gqsa bench kernel`): gqs_row_v11\n"
    "                   (default), gqs_row_v17 (v11 with 2-4 warps per row where rows are few), gqs_row_v7, gqs_row_v3,\n"
    "                   gqs_task_v4, gqs_row_v1, ... (core/cuda/gqs_gemv.h lists them; docs/PERF.md measures them)\n"
    "  --prefetch on|off  L2 bulk prefetch of each warp's weight rows in every format's GEMVs: the v5\n"
    "                   kernels and the fp16 GEMV with it (default off: measured slower; core/cuda/prefetch.cuh)\n"
    "  --pdl on|off     programmatic dependent launch between the step's kernels (default on: each kernel's\n"
    "                   start and first weight loads overlap the kernel before it; core/cuda/pdl.cuh)\n"
    "  --w4-gemv K      dense W4 kernel by its table name: w4_dense_v8 (default), w4_dense_v17, w4_dense_v11,\n"
    "                   w4_dense_v7, w4_dense_v3, w4_dense_v1, ... (core/cuda/gqs_gemv.h)\n"
    "  --lengths LIST   output lengths (default 128,256,512,1024)\n"
    "  --prompt TEXT    prompt for a real model (default \"Once upon a time\"); random models use 8\n"
    "                   fixed token ids\n"
    "  --reps N         timed runs per length, median reported (default 3)\n"
    "  --check N        real model: compare the first N generated tokens with the CPU greedy decode\n"
    "                   (default 8; fp16 must match exactly; quantized formats are reported only)\n"
    "  --csv FILE       also write the rows as CSV\n"
    "\n"
    "Targets (issue 6): W4S50 G16 >= 70%% of its ceiling and >= 3.5x FP16 tokens/s (llama2-7b shape).\n"
    "Needs a CUDA build and a GPU; exits 1 with a message otherwise.\n";

/* Split a comma list into at most cap items (pointers into a strdup'd buffer the caller frees). */
static int split_list(char *s, char **items, int cap) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < cap; tok = strtok(NULL, ",")) items[n++] = tok;
    return n;
}

#ifdef GQSA_CUDA
static gq_config llama2_7b_config(void) {
    gq_config c;
    memset(&c, 0, sizeof c);
    c.arch = GQ_ARCH_LLAMA;
    c.dim = 4096; c.hidden_dim = 11008; c.n_layers = 32; c.n_heads = 32; c.n_kv_heads = 32; c.head_dim = 128;
    c.vocab_size = 32000; c.max_seq_len = 4096; c.norm_eps = 1e-5f; c.rope_theta = 10000.f;
    c.rope_style = GQ_ROPE_INTERLEAVED; c.bos_id = 1; c.eos_id = 2;
    snprintf(c.name, sizeof c.name, "llama2-7b-shape");
    return c;
}
static gq_config smollm2_config(void) {
    gq_config c;
    memset(&c, 0, sizeof c);
    c.arch = GQ_ARCH_LLAMA;
    c.dim = 576; c.hidden_dim = 1536; c.n_layers = 30; c.n_heads = 9; c.n_kv_heads = 3; c.head_dim = 64;
    c.vocab_size = 49152; c.max_seq_len = 8192; c.norm_eps = 1e-5f; c.rope_theta = 100000.f;
    c.rope_style = GQ_ROPE_INTERLEAVED; c.tied_embeddings = 1; c.bos_id = 1; c.eos_id = 2;
    snprintf(c.name, sizeof c.name, "smollm2-135m-shape");
    return c;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* CPU greedy decode of n tokens after the prompt (the reference the GPU must match in fp16). */
static gq_status cpu_greedy(const gq_model *m, const int32_t *prompt, int np, int n, int32_t *out) {
    gq_fwd f;
    GQ_TRY(gq_fwd_init(&f, m, np + n));
    float *logits = malloc(sizeof(float) * (size_t)m->cfg.vocab_size);
    gq_status st = GQ_OK;
    int32_t tok = prompt[0];
    for (int p = 0; p < np + n - 1 && st == GQ_OK; p++) {
        st = gq_fwd_decode(&f, tok, p, logits);
        if (st) break;
        int best = 0;
        for (int v = 1; v < m->cfg.vocab_size; v++)
            if (logits[v] > logits[best]) best = v;
        if (p + 1 < np) tok = prompt[p + 1];
        else {
            out[p + 1 - np] = best;
            tok = best;
        }
    }
    free(logits);
    gq_fwd_free(&f);
    return st;
}
#endif

int cmd_bench_decode(int argc, char **argv) {
    const char *shape = NULL, *model = "smollm2-135m", *formats = "fp16,w4,gqs-s50", *lengths = "128,256,512,1024";
    const char *prompt_text = "Once upon a time", *csv = NULL;
    int group = 16, reps = 3, check = 8, force_random = 0, gemv_kind = -1, w4_kind = -1, no_pdl = 0, prefetch = 0;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
        if ((r = cli_flag(argc, argv, &i, "--shape", &shape))) { if (r < 0) return 2; continue; }
        if ((r = cli_flag(argc, argv, &i, "--model", &model))) { if (r < 0) return 2; continue; }
        if ((r = cli_flag(argc, argv, &i, "--formats", &formats))) { if (r < 0) return 2; continue; }
        if ((r = cli_flag(argc, argv, &i, "--lengths", &lengths))) { if (r < 0) return 2; continue; }
        if ((r = cli_flag(argc, argv, &i, "--prompt", &prompt_text))) { if (r < 0) return 2; continue; }
        if ((r = cli_flag(argc, argv, &i, "--csv", &csv))) { if (r < 0) return 2; continue; }
        if (cli_flag(argc, argv, &i, "--random", NULL)) { force_random = 1; continue; }
        if ((r = cli_flag(argc, argv, &i, "--gemv", &v))) {
            if (r < 0) return 2;
            gemv_kind = -1;
            for (int k = 0; k < GQ_GEMV_NKINDS; k++)
                if (!gq_gemv_kind_is_dense((gq_gemv_kind)k) && !strcmp(v, gq_gemv_kind_name((gq_gemv_kind)k))) gemv_kind = k;
            if (gemv_kind < 0)
                return cli_usage_error("bench decode", "--gemv: expected a GQS kernel's table name (gqs_row_v7, "
                                                       "gqs_row_v3, gqs_row_v6, gqs_task_v4, ...: see --help), got '%s'", v);
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--w4-gemv", &v))) {
            if (r < 0) return 2;
            w4_kind = -1;
            for (int k = 0; k < GQ_GEMV_NKINDS; k++)
                if (gq_gemv_kind_is_dense((gq_gemv_kind)k) && !strcmp(v, gq_gemv_kind_name((gq_gemv_kind)k))) w4_kind = k;
            if (w4_kind < 0)
                return cli_usage_error("bench decode", "--w4-gemv: expected a dense W4 kernel's table name (w4_dense_v8, w4_dense_v11, ...: see --help), got '%s'", v);
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--pdl", &v))) {
            if (r < 0) return 2;
            if (!strcmp(v, "on")) no_pdl = 0;
            else if (!strcmp(v, "off")) no_pdl = 1;
            else return cli_usage_error("bench decode", "--pdl: expected on or off, got '%s'", v);
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--prefetch", &v))) {
            if (r < 0) return 2;
            if (!strcmp(v, "on")) prefetch = 1;
            else if (!strcmp(v, "off")) prefetch = 0;
            else return cli_usage_error("bench decode", "--prefetch: expected on or off, got '%s'", v);
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--group", &v))) {
            if (r < 0 || cli_parse_int("--group", v, 1, 4096, &group)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--reps", &v))) {
            if (r < 0 || cli_parse_int("--reps", v, 1, 100, &reps)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--check", &v))) {
            if (r < 0 || cli_parse_int("--check", v, 0, 256, &check)) return 2;
            continue;
        }
        return cli_usage_error("bench decode", "unknown argument '%s'", argv[i]);
    }
    if (!shape) return cli_usage_error("bench decode", "--shape is required (llama2-7b or smollm2)");
    if (strcmp(shape, "llama2-7b") && strcmp(shape, "smollm2"))
        return cli_usage_error("bench decode", "--shape: expected llama2-7b or smollm2, got '%s'", shape);
    /* parse lists before touching the GPU, so usage errors are cheap */
    char *fbuf = gq_strdup(formats), *lbuf = gq_strdup(lengths);
    char *fitems[16], *litems[16];
    int nf = split_list(fbuf, fitems, 16), nl = split_list(lbuf, litems, 16);
    int lens[16];
    int rc = 0;
    for (int i = 0; i < nl; i++)
        if (cli_parse_int("--lengths", litems[i], 1, 1 << 20, &lens[i])) rc = 2;
    if (!nf || !nl) rc = cli_usage_error("bench decode", "--formats and --lengths need at least one item");
#ifndef GQSA_CUDA
    (void)group; (void)gemv_kind; (void)w4_kind; (void)no_pdl; (void)prefetch; (void)reps; (void)check; (void)force_random; (void)csv; (void)prompt_text; (void)model;
    if (!rc) {
        fprintf(stderr, "gqsa bench decode: this gqsa was built without CUDA (nvcc not found at build time)\n");
        rc = 1;
    }
    free(fbuf);
    free(lbuf);
    return rc;
#else
    gq_dec_opts fo[16];
    for (int i = 0; i < nf && !rc; i++) {
        memset(&fo[i], 0, sizeof fo[i]);
        fo[i].group = group;
        fo[i].bits = 4;
        fo[i].gemv_kind = -1;
        fo[i].no_pdl = no_pdl;
        fo[i].prefetch = prefetch;
        if (gq_dec_parse_format(fitems[i], &fo[i]) != GQ_OK) rc = cli_usage_error("bench decode", "%s", gq_errmsg());
        if (fo[i].format == GQ_DEC_GQS) fo[i].gemv_kind = gemv_kind;
        if (fo[i].format == GQ_DEC_W4) fo[i].gemv_kind = w4_kind;
    }
    if (rc) { free(fbuf); free(lbuf); return rc; }
    if (!gq_gpu_available()) {
        free(fbuf); free(lbuf);
        return cli_fail(gq_errf(GQ_ERR_UNSUPPORTED, "no CUDA device found"), "run on a machine with an NVIDIA GPU");
    }
    char dev[256];
    gq_gpu_describe(dev, sizeof dev);
    printf("device: %s\n", dev);

    gq_model *m = NULL;
    gq_config cfg;
    int random = 1;
    if (!strcmp(shape, "llama2-7b")) cfg = llama2_7b_config();
    else {
        cfg = smollm2_config();
        if (!force_random) {
            if (gq_model_load(model, NULL, &m) != GQ_OK) {
                fprintf(stderr, "gqsa bench decode: cannot load %s (%s); HINT: make models, or pass --random\n", model,
                        gq_errmsg());
                free(fbuf); free(lbuf);
                return 1;
            }
            cfg = m->cfg;
            random = 0;
        }
    }
    const char *tag = random ? " [random weights: speed/memory only]" : "";
    int maxlen = 0;
    for (int i = 0; i < nl; i++) maxlen = lens[i] > maxlen ? lens[i] : maxlen;

    int32_t *prompt = NULL, *cpu_ref = NULL;
    size_t np = 0;
    FILE *cf = NULL;
    if (!random && m->tok) {
        if (gq_tokenizer_encode(m->tok, prompt_text, strlen(prompt_text), m->cfg.add_bos, &prompt, &np) != GQ_OK || !np) {
            fprintf(stderr, "gqsa bench decode: cannot tokenize the prompt: %s\n", gq_errmsg());
            gq_model_free(m); free(fbuf); free(lbuf);
            return 1;
        }
    } else {
        static const int32_t fixed[8] = {1, 450, 4996, 17354, 1701, 432, 17204, 975};
        np = 8;
        prompt = malloc(sizeof fixed);
        memcpy(prompt, fixed, sizeof fixed);
        for (size_t i = 0; i < np; i++) prompt[i] %= cfg.vocab_size;
    }
    double bw = 0;
    if (gq_dec_copy_bandwidth(&bw) != GQ_OK) {
        rc = cli_fail(GQ_ERR_INTERNAL, NULL);
        goto done;
    }
    printf("copy bandwidth (read+write, 1 GiB D2D, median of 9): %.1f GB/s\n", bw / 1e9);
    printf("model: %s (%s), prompt %zu tokens%s\n", random ? cfg.name : m->source, shape, np, tag);
    {
        /* the kernels as the engine resolves them (gq_dec_gemv_kind), not a copy of its defaults */
        gq_dec_opts qo = {.gemv_kind = gemv_kind, .prefetch = prefetch, .format = GQ_DEC_GQS};
        gq_dec_opts wo = {.gemv_kind = w4_kind, .prefetch = prefetch, .format = GQ_DEC_W4};
        printf("engine: programmatic dependent launch %s, L2 prefetch of GEMV rows %s, GQS kernel %s, W4 kernel %s\n",
               no_pdl ? "off" : "on", prefetch ? "on" : "off", gq_gemv_kind_name((gq_gemv_kind)gq_dec_gemv_kind(&qo)),
               gq_gemv_kind_name((gq_gemv_kind)gq_dec_gemv_kind(&wo)));
    }

    int ncheck = 0;
    if (!random && check > 0) {
        ncheck = check < maxlen ? check : maxlen;
        cpu_ref = malloc(sizeof(int32_t) * (size_t)ncheck);
        double t0 = gq_now();
        if (cpu_greedy(m, prompt, (int)np, ncheck, cpu_ref) != GQ_OK) {
            fprintf(stderr, "gqsa bench decode: CPU greedy reference failed: %s\n", gq_errmsg());
            free(cpu_ref);
            cpu_ref = NULL;
            ncheck = 0;
        } else
            printf("cpu greedy reference: %d tokens in %.1f s\n", ncheck, gq_now() - t0);
    }

    if (csv) {
        cf = fopen(csv, "w");
        if (!cf) {
            fprintf(stderr, "gqsa bench decode: cannot write %s\n", csv);
            rc = 1;
            goto done;
        }
        fprintf(cf, "shape,weights,format,len,tok_per_s,ms_per_tok,bytes_per_tok,ceiling_tok_per_s,frac_ceiling,"
                    "speedup_vs_fp16,weight_bytes,kv_bytes,dev_free,dev_total,copy_bw\n");
    }
    printf("%-14s %6s %10s %9s %11s %12s %6s %7s %9s %9s\n", "format", "len", "tok/s", "ms/tok", "MB/tok", "ceil tok/s",
           "%ceil", "x fp16", "weights", "KV");
    double fp16_tps[16] = {0};
    for (int fi = 0; fi < nf; fi++) {
        char fname[64];
        gq_dec_format_name(&fo[fi], fname, sizeof fname);
        fo[fi].max_T = (int)np + maxlen;
        gq_decoder *d = NULL;
        gq_status st = random ? gq_dec_create_random(&cfg, &fo[fi], 1234, &d) : gq_dec_create(m, &fo[fi], &d);
        if (st != GQ_OK) {
            printf("%-14s unsupported: %s%s\n", fname, gq_errmsg(), tag);
            continue;
        }
        gq_dec_mem mem;
        gq_dec_memory(d, &mem);
        int32_t *out = malloc(sizeof(int32_t) * (size_t)maxlen);
        gq_dec_stats ws;
        st = gq_dec_generate(d, prompt, (int)np, maxlen < 16 ? maxlen : 16, out, &ws); /* warm-up */
        for (int li = 0; li < nl && st == GQ_OK; li++) {
            double tps[100], mspt[100];
            gq_dec_stats s;
            for (int r = 0; r < reps && st == GQ_OK; r++) {
                st = gq_dec_generate(d, prompt, (int)np, lens[li], out, &s);
                tps[r] = s.tok_per_s;
                mspt[r] = s.ms_per_tok;
            }
            if (st) break;
            qsort(tps, (size_t)reps, sizeof(double), cmp_double);
            qsort(mspt, (size_t)reps, sizeof(double), cmp_double);
            double t = tps[reps / 2], ceil_tps = bw / s.bytes_per_tok;
            if (fo[fi].format == GQ_DEC_FP16) fp16_tps[li] = t;
            char sp[16] = "-";
            if (fp16_tps[li] > 0) snprintf(sp, sizeof sp, "%.2f", t / fp16_tps[li]);
            printf("%-14s %6d %10.1f %9.3f %11.1f %12.1f %5.1f%% %7s %8.2fG %8.1fM%s\n", fname, lens[li], t, mspt[reps / 2],
                   s.bytes_per_tok / 1e6, ceil_tps, 100.0 * t / ceil_tps, sp, mem.weight_bytes / 1e9, mem.kv_bytes / 1e6, tag);
            if (cf)
                fprintf(cf, "%s,%s,%s,%d,%.3f,%.5f,%.0f,%.3f,%.4f,%s,%zu,%zu,%zu,%zu,%.0f\n", shape,
                        random ? "random" : "real", fname, lens[li], t, mspt[reps / 2], s.bytes_per_tok, ceil_tps,
                        t / ceil_tps, sp, mem.weight_bytes, mem.kv_bytes, mem.dev_free, mem.dev_total, bw);
        }
        if (st == GQ_OK) {
            printf("%-14s memory: weights %.3f GB (linear %.3f GB), KV cache %.1f MB (%zu B/position, max_T %d), GPU free "
                   "%.2f / %.2f GB after build%s\n",
                   fname, mem.weight_bytes / 1e9, mem.linear_bytes / 1e9, mem.kv_bytes / 1e6, mem.kv_bytes_per_pos,
                   fo[fi].max_T, mem.dev_free / 1e9, mem.dev_total / 1e9, tag);
            if (!random) {
                int nshow = maxlen < 48 ? maxlen : 48;
                st = gq_dec_generate(d, prompt, (int)np, nshow, out, NULL);
                char *text = NULL;
                size_t tl = 0;
                if (st == GQ_OK && m->tok && gq_tokenizer_decode(m->tok, out, (size_t)nshow, &text, &tl) == GQ_OK) {
                    printf("%-14s text: %s|%s\n", fname, prompt_text, text);
                    free(text);
                }
                if (st == GQ_OK && ncheck) {
                    int same = 0;
                    while (same < ncheck && out[same] == cpu_ref[same]) same++;
                    int must = fo[fi].format == GQ_DEC_FP16;
                    printf("%-14s cpu check: first %d of %d greedy tokens equal the CPU decode%s\n", fname, same, ncheck,
                           must ? (same == ncheck ? " (PASS)" : " (FAIL)") : " (quantized: informational)");
                    if (must && same != ncheck) rc = 1;
                }
            }
        }
        if (st != GQ_OK) {
            rc = cli_fail(st, NULL);
        }
        free(out);
        gq_dec_free(d);
    }
done:
    if (cf) fclose(cf);
    free(cpu_ref);
    free(prompt);
    gq_model_free(m);
    free(fbuf);
    free(lbuf);
    return rc;
#endif
}
