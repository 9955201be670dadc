/* cmd_bench_train.c — `gqsa bench train`: one BQPO training step of one transformer block on the GPU
 * (fake quantization of the 7 linears, block forward, MSE gradient, block backward, STE mask, AdamW on the
 * 7 weight matrices) for a SmolLM2-135M-shaped and a LLaMA-2-7B-shaped block with RANDOM weights (speed
 * only), fp32 and mixed bf16 matmuls; CUDA events, warm-up, median of --iters steps.
 * FLOPs counted: 6 x (linear parameters) x T for the linears (forward 2, backward 4) plus 12 x T^2 x
 * NH*HD for the attention matmuls as executed (full T x T products: QK^T and PV forward, four products
 * backward; the causal half is not subtracted). MFU against H100 SXM peaks: 989 TFLOP/s bf16 dense,
 * 67 TFLOP/s fp32 (non-tensor); both ratios are printed for both modes.
 * Projection of the paper's LLaMA-2-7B recipe from the 7B block step time t (seconds, batch 1, T 2048):
 *   BQPO    = 32 blocks x 4096 windows x (5 epochs x t + 2 x t/3)   (training + target/propagation forwards)
 *   E2E-OQP = 2 epochs x 4096 windows x (32 x 4/3 x t + t_head)     (forward, recomputed forward, backward
 *             per block; t_head = 6 x V x D x T / achieved FLOP/s for the tied/untied head)
 * against the paper's 5.1 h + 4.2 h on one A100-40GB.
 * Must not: touch the store or any model file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cuda/gpu.h"
#include "train.h"
#ifdef GQSA_CUDA
#include "cuda/train_gpu.h"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa bench train [--shape smollm2|llama2-7b|all] [--modes fp32,bf16] [--seqlen T] [--iters N]\n"
            "                        [--warmup N] [--csv FILE]\n\n"
            "Times one BQPO training step of one block on the GPU (fake-quant + forward + backward + AdamW),\n"
            "random weights, and prints tokens/s, TFLOP/s, MFU (H100 SXM: 989 bf16 / 67 fp32 TFLOP/s) and the\n"
            "projected wall time of the paper's LLaMA-2-7B recipe (BQPO 4096 x 2048 x 5 epochs x 32 blocks,\n"
            "E2E-OQP 2 epochs) against the paper's 5.1 h + 4.2 h on an A100-40GB.\n"
            "  --shape S     smollm2 (D 576, H 1536, 9/3 heads), llama2-7b (D 4096, H 11008, 32 heads), all (default)\n"
            "  --modes M     fp32, bf16 or fp32,bf16 (default)\n"
            "  --seqlen T    tokens per window (default 2048)\n"
            "  --iters N     timed steps, median reported (default 10, at least 10 recommended)\n"
            "  --warmup N    untimed steps first (default 2)\n"
            "  --csv FILE    also write the table as CSV\n");
}

#ifndef GQSA_CUDA
int cmd_bench_train(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
    fprintf(stderr, "gqsa bench train: this gqsa was built without CUDA (nvcc not found at build time)\n");
    return 1;
}
#else

typedef struct {
    const char *name;
    int D, H, NH, NKV, V;
} shape;

static const shape SHAPES[] = {{"smollm2-135m", 576, 1536, 9, 3, 49152}, {"llama2-7b", 4096, 11008, 32, 32, 32000}};

static int cmp_f(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* cheap deterministic fill (speed benchmark: the values only need to be finite and varied) */
static void fill(float *p, size_t n, float scale, uint64_t seed) {
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)(s >> 40) / (float)(1 << 24) - 0.5f);
    }
}

typedef struct {
    double ms_med, ms_min, tok_s, flops, tflops;
} result;

static gq_status bench_one(const shape *sh, int mixed, int T, int warm, int iters, result *res) {
    gq_config c;
    memset(&c, 0, sizeof c);
    c.arch = GQ_ARCH_LLAMA;
    c.dim = sh->D, c.hidden_dim = sh->H, c.n_layers = 1, c.n_heads = sh->NH, c.n_kv_heads = sh->NKV;
    c.head_dim = sh->D / sh->NH, c.vocab_size = sh->V, c.max_seq_len = T, c.norm_eps = 1e-5f;
    c.rope_theta = 10000.f, c.rope_style = GQ_ROPE_HALF;
    int D = c.dim, H = c.hidden_dim, qd = c.n_heads * c.head_dim, kd = c.n_kv_heads * c.head_dim, G = 16;
    int NN[GQ_LIN_COUNT] = {qd, kd, kd, D, H, H, D}, KK[GQ_LIN_COUNT] = {D, D, D, qd, D, D, H};
    gq_gt *e = NULL;
    GQ_TRY(gq_gt_create(mixed, &e));
    gq_gt_acts acts;
    memset(&acts, 0, sizeof acts);
    float *lat[GQ_LIN_COUNT] = {0}, *what[GQ_LIN_COUNT] = {0}, *dw[GQ_LIN_COUNT] = {0};
    uint8_t *keep[GQ_LIN_COUNT] = {0}, *ste[GQ_LIN_COUNT] = {0};
    gq_gt_adamw_state opt[GQ_LIN_COUNT];
    memset(opt, 0, sizeof opt);
    float *norm = NULL, *x = NULL, *y = NULL, *out = NULL, *ms = NULL;
    gq_bw_blockw_f32 w;
    gq_bw_blockg_f32 g;
    memset(&w, 0, sizeof w);
    memset(&g, 0, sizeof g);
    gq_adamw_opts ao;
    gq_adamw_opts_default(&ao);
    gq_qspec spec = {4, GQ_QMODE_ASYM, 0};
    size_t nd = (size_t)T * D, maxnk = 0, params = 0;
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        size_t nk = (size_t)NN[k] * KK[k];
        maxnk = nk > maxnk ? nk : maxnk;
        params += nk;
    }
    float *host = malloc(sizeof(float) * (maxnk > nd ? maxnk : nd));
    uint8_t *hk = malloc(maxnk / G + 1);
    gq_status st = host && hk ? gq_gt_acts_init(e, &acts, &c, T) : gq_errf(GQ_ERR_NOMEM, "bench train: host memory");
    for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++) {
        size_t nk = (size_t)NN[k] * KK[k];
        fill(host, nk, 2.0f / sqrtf((float)KK[k]), 10 + k);
        for (size_t i = 0; i < nk / G; i++) hk[i] = (i * 2654435761u >> 7) & 1; /* ~50% groups kept */
        st = gq_gt_upload_new(e, &lat[k], host, nk, "latent");
        if (st == GQ_OK) st = gq_gt_upload_new(e, &what[k], NULL, nk, "w_hat");
        if (st == GQ_OK) st = gq_gt_upload_new(e, &dw[k], NULL, nk, "dw");
        if (st == GQ_OK) st = gq_gt_malloc((void **)&keep[k], nk / G, "keep");
        if (st == GQ_OK) st = gq_gt_upload(e, keep[k], hk, nk / G);
        if (st == GQ_OK) st = gq_gt_malloc((void **)&ste[k], nk, "ste");
        if (st == GQ_OK) st = gq_gt_adamw_init(&opt[k], nk);
        w.w[k] = what[k];
        g.dw[k] = dw[k];
    }
    if (st == GQ_OK) { for (int i = 0; i < D; i++) host[i] = 1.0f; st = gq_gt_upload_new(e, &norm, host, (size_t)D, "norm"); }
    w.attn_norm = w.ffn_norm = norm;
    if (st == GQ_OK) { fill(host, nd, 2.0f, 1); st = gq_gt_upload_new(e, &x, host, nd, "x"); }
    if (st == GQ_OK) { fill(host, nd, 2.0f, 2); st = gq_gt_upload_new(e, &y, host, nd, "y"); }
    if (st == GQ_OK) st = gq_gt_upload_new(e, &out, NULL, nd, "out");
    ms = calloc((size_t)(warm + iters), sizeof(float));
    for (int it = 0; it < warm + iters && st == GQ_OK; it++) {
        st = gq_gt_timer_start(e);
        for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++) {
            st = gq_gt_fq_forward(e, lat[k], keep[k], NN[k], KK[k], G, &spec, what[k], ste[k]);
            if (st == GQ_OK) st = gq_gt_zero(e, dw[k], sizeof(float) * (size_t)NN[k] * KK[k]);
        }
        double sq = 0;
        if (st == GQ_OK) st = gq_gt_block_fwd(e, &acts, &w, x, out, T);
        if (st == GQ_OK) st = gq_gt_sq_diff(e, out, out, y, nd, (float)(2.0 / nd), &sq);
        if (st == GQ_OK) st = gq_gt_block_bwd(e, &acts, &w, out, out, &g, T);
        for (int k = 0; k < GQ_LIN_COUNT && st == GQ_OK; k++) {
            st = gq_gt_mask_grad(e, dw[k], ste[k], opt[k].n);
            if (st == GQ_OK) st = gq_gt_adamw_step(e, &ao, &opt[k], lat[k], dw[k], 1.0f, "bench");
        }
        if (st == GQ_OK) st = gq_gt_timer_stop(e, &ms[it]);
    }
    if (st == GQ_OK) {
        float *t = ms + warm;
        qsort(t, (size_t)iters, sizeof(float), cmp_f);
        double med = iters % 2 ? t[iters / 2] : 0.5 * (t[iters / 2 - 1] + t[iters / 2]);
        res->ms_med = med;
        res->ms_min = t[0];
        res->tok_s = T / (med / 1e3);
        res->flops = 6.0 * (double)params * T + 12.0 * (double)T * T * qd;
        res->tflops = res->flops / (med / 1e3) / 1e12;
    }
    for (int k = 0; k < GQ_LIN_COUNT; k++) {
        gq_gt_free(lat[k]); gq_gt_free(what[k]); gq_gt_free(dw[k]); gq_gt_free(keep[k]); gq_gt_free(ste[k]);
        gq_gt_adamw_free(&opt[k]);
    }
    gq_gt_free(norm); gq_gt_free(x); gq_gt_free(y); gq_gt_free(out);
    gq_gt_acts_free(&acts);
    gq_gt_destroy(e);
    free(host); free(hk); free(ms);
    return st;
}

int cmd_bench_train(int argc, char **argv) {
    const char *shape_s = "all", *modes = "fp32,bf16", *csv = NULL, *v;
    int T = 2048, iters = 10, warm = 2, r;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if ((r = cli_flag(argc, argv, &i, "--shape", &v))) { if (r < 0) return 2; shape_s = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--modes", &v))) { if (r < 0) return 2; modes = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--csv", &v))) { if (r < 0) return 2; csv = v; continue; }
        if ((r = cli_flag(argc, argv, &i, "--seqlen", &v))) {
            if (r < 0 || cli_parse_int("--seqlen", v, 2, 1 << 16, &T)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--iters", &v))) {
            if (r < 0 || cli_parse_int("--iters", v, 1, 100000, &iters)) return 2;
            continue;
        }
        if ((r = cli_flag(argc, argv, &i, "--warmup", &v))) {
            if (r < 0 || cli_parse_int("--warmup", v, 0, 100000, &warm)) return 2;
            continue;
        }
        return cli_usage_error("bench train", "unknown option %s", argv[i]);
    }
    if (strcmp(modes, "fp32") && strcmp(modes, "bf16") && strcmp(modes, "fp32,bf16") && strcmp(modes, "bf16,fp32"))
        return cli_usage_error("bench train", "--modes: fp32, bf16 or fp32,bf16, got '%s'", modes);
    if (strcmp(shape_s, "all") && strcmp(shape_s, "smollm2") && strcmp(shape_s, "llama2-7b"))
        return cli_usage_error("bench train", "--shape: smollm2, llama2-7b or all, got '%s'", shape_s);
    if (!gq_gpu_available()) {
        fprintf(stderr, "gqsa bench train: no CUDA device found\n");
        return 1;
    }
    char dev[256] = "";
    gq_gpu_describe(dev, sizeof dev);
    printf("device: %s\nBQPO step of one block (fake-quant W4 G16 S50 + forward + backward + AdamW), T = %d, random "
           "weights, median of %d after %d warm-up\n", dev, T, iters, warm);
    printf("%-13s %-5s %10s %10s %12s %9s %9s %9s\n", "shape", "mode", "median ms", "min ms", "tokens/s", "TFLOP/s",
           "MFU/989", "MFU/67");
    FILE *fc = NULL;
    if (csv) {
        fc = fopen(csv, "w");
        if (!fc) { fprintf(stderr, "gqsa bench train: cannot write %s\n", csv); return 1; }
        fprintf(fc, "shape,mode,seqlen,step_ms_median,step_ms_min,tokens_per_s,flops_per_step,tflops,mfu_bf16_989,"
                    "mfu_fp32_67,proj_bqpo_h,proj_e2e_h\n");
    }
    int rc = 0;
    for (int m = 0; m < 2; m++) {
        const char *mode = m ? "bf16" : "fp32";
        if (!strstr(modes, mode)) continue;
        for (int s = 0; s < 2; s++) {
            const shape *sh = &SHAPES[s];
            if (strcmp(shape_s, "all") && !(s == 0 ? !strcmp(shape_s, "smollm2") : !strcmp(shape_s, "llama2-7b")))
                continue;
            result res;
            memset(&res, 0, sizeof res);
            gq_status st = bench_one(sh, m, T, warm, iters, &res);
            if (st != GQ_OK) {
                fprintf(stderr, "gqsa bench train: %s %s: %s\n", sh->name, mode, gq_errmsg());
                rc = 1;
                continue;
            }
            double bq = NAN, e2 = NAN;
            if (s == 1) { /* the paper's 7B recipe from this block's step time */
                double t = res.ms_med / 1e3, thead = 6.0 * sh->V * sh->D * (double)T / (res.tflops * 1e12);
                bq = 32.0 * 4096 * (5 * t + 2 * t / 3) / 3600;
                e2 = 2.0 * 4096 * (32 * 4.0 / 3 * t + thead) / 3600;
            }
            printf("%-13s %-5s %10.2f %10.2f %12.0f %9.1f %8.1f%% %8.1f%%\n", sh->name, mode, res.ms_med, res.ms_min,
                   res.tok_s, res.tflops, 100 * res.tflops / 989, 100 * res.tflops / 67);
            if (s == 1)
                printf("  projected LLaMA-2-7B recipe (%s): BQPO %.1f h + E2E-OQP %.1f h = %.1f h on this GPU "
                       "(paper: 5.1 h + 4.2 h = 9.3 h on one A100-40GB)\n", mode, bq, e2, bq + e2);
            if (fc)
                fprintf(fc, "%s,%s,%d,%.4f,%.4f,%.1f,%.6g,%.3f,%.5f,%.5f,%.3f,%.3f\n", sh->name, mode, T, res.ms_med,
                        res.ms_min, res.tok_s, res.flops, res.tflops, res.tflops / 989, res.tflops / 67, bq, e2);
        }
    }
    printf("FLOPs per step: 6 x linear params x T + 12 x T^2 x NH*HD (attention products as executed, full T x T).\n"
           "Projection: BQPO = 32 x 4096 x (5 t + 2 t/3); E2E-OQP = 2 x 4096 x (32 x 4/3 t + 6 V D T / FLOP/s); "
           "t = the 7B block step.\n");
    if (fc) fclose(fc);
    return rc;
}
#endif
