/* cmd_eval_ppl.c — `gqsa eval ppl`: GPTQ-protocol perplexity on WikiText-2 or C4 (core/eval_ppl.h),
 * on the CPU or a CUDA device; and `cmd_bench_cpu`, the measured OpenBLAS sgemm peak that
 * scripts/bench_cpu.sh compares the perplexity throughput with (reachable as
 * `gqsa eval ppl --sgemm-peak`; cmd_bench.c may dispatch `bench cpu` to it).
 * Results go to stdout (text or --json), progress and notes to stderr.
 * Must not: implement the protocol (eval_ppl.c does) or print partial results as if complete.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "../core/eval_ppl.h"
#include "../core/model.h"
#include "cli.h"

int cmd_bench_cpu(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa eval ppl --model M --dataset wikitext2|c4|text:FILE [--seqlen L] [--limit N] [--data-root DIR]\n"
            "                     [--device cpu|cuda] [--precision fp32|tf32|bf16] [--add-bos 0|1]\n"
            "                     [--tokenizer FILE] [--json]\n"
            "       gqsa eval ppl --sgemm-peak      (measure this machine's OpenBLAS sgemm GFLOP/s)\n\n"
            "Perplexity as GPTQ/SparseGPT (and the GQSA paper) compute it: the whole test text is tokenized\n"
            "once (WikiText-2 test rows joined with \"\\n\\n\"; C4 c4-new: the first 1100 validation documents\n"
            "joined with ' ', first 256*seqlen tokens), cut into n_tokens / seqlen non-overlapping windows,\n"
            "and ppl = exp(sum of NLL over positions 1..seqlen-1 of every window / (windows * (seqlen-1))),\n"
            "which equals GPTQ's exp(mean of per-window mean losses).\n\n"
            "  --model M        .gguf, llama2.c .bin, HF directory, or a registry name (smollm2-135m, stories260K)\n"
            "  --dataset D      wikitext2 (test split), c4 (validation, c4-new), or text:FILE (any UTF-8 file,\n"
            "                   tokenized once; one window if shorter than seqlen)\n"
            "  --seqlen L       window length (default 2048, capped at the model's context)\n"
            "  --limit N        evaluate only the first N windows (quick checks; the result is then NOT the\n"
            "                   published protocol, and says so)\n"
            "  --device D       cpu (default) or cuda (needs a CUDA build and a GPU)\n"
            "  --precision P    cuda only: fp32 (default), tf32 or bf16\n"
            "  --add-bos 0|1    override the tokenizer's default of prepending BOS to the text\n"
            "  --data-root DIR  where datasets/ is (default $GQSA_DATA_ROOT or ../shared)\n"
            "  --json           one JSON object on stdout instead of the table\n");
}

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

int cmd_eval_ppl(int argc, char **argv) {
    const char *model = NULL, *tokp = NULL, *v;
    gq_ppl_opts o = {"wikitext2", 0, 0, -1, "cpu", NULL};
    int json = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--sgemm-peak")) return cmd_bench_cpu(argc - i, argv + i);
        if (!strcmp(argv[i], "--json")) { json = 1; continue; }
        if ((r = cli_flag(argc, argv, &i, "--model", &v))) { if (r < 0) return 2; model = v; }
        else if ((r = cli_flag(argc, argv, &i, "--tokenizer", &v))) { if (r < 0) return 2; tokp = v; }
        else if ((r = cli_flag(argc, argv, &i, "--data-root", &v))) { if (r < 0) return 2; gq_set_data_root(v); }
        else if ((r = cli_flag(argc, argv, &i, "--dataset", &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "wikitext2") && strcmp(v, "c4") && strncmp(v, "text:", 5))
                return cli_usage_error("eval ppl", "--dataset: expected wikitext2, c4 or text:FILE, got '%s'", v);
            o.dataset = v;
        } else if ((r = cli_flag(argc, argv, &i, "--device", &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "cpu") && strcmp(v, "cuda"))
                return cli_usage_error("eval ppl", "--device: expected cpu or cuda, got '%s'", v);
            o.device = v;
        } else if ((r = cli_flag(argc, argv, &i, "--precision", &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "fp32") && strcmp(v, "tf32") && strcmp(v, "bf16"))
                return cli_usage_error("eval ppl", "--precision: expected fp32, tf32 or bf16, got '%s'", v);
            o.precision = v;
        } else if ((r = cli_flag(argc, argv, &i, "--seqlen", &v))) {
            if (r < 0 || cli_parse_int("--seqlen", v, 2, 1 << 20, &o.seqlen)) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--limit", &v))) {
            if (r < 0 || cli_parse_int("--limit", v, 0, 1 << 30, &o.limit)) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--add-bos", &v))) {
            if (r < 0 || cli_parse_int("--add-bos", v, 0, 1, &o.add_bos)) return 2;
        } else return cli_usage_error("eval ppl", "unknown option '%s'", argv[i]);
    }
    if (!model) return cli_usage_error("eval ppl", "--model is required");
    if (o.precision && strcmp(o.device, "cuda"))
        return cli_usage_error("eval ppl", "--precision applies to --device cuda only");

    gq_model *m = NULL;
    gq_status st = gq_model_load(model, tokp, &m);
    if (st) return cli_fail(st, "check the path, or use a registry name such as smollm2-135m");
    gq_ppl_result r;
    st = gq_eval_ppl(m, &o, &r);
    if (st) {
        gq_model_free(m);
        return cli_fail(st, st == GQ_ERR_IO ? "datasets are read from --data-root (default ../shared)" : NULL);
    }
    int seqlen = (int)(r.n_pred / (r.n_windows ? r.n_windows : 1)) + 1;
    long avail = r.n_tokens / seqlen;
    int partial = r.n_windows < avail;
    double mean = r.nll_sum / (double)r.n_pred;
    /* model FLOPs of the run: 2 per weight per token for every linear layer and the lm_head, plus
     * causal attention (Q K^T and P V: 2 * 2 * HD per (head, query, visible key)) */
    const gq_config *c = &m->cfg;
    double qd = (double)c->n_heads * c->head_dim, kd = (double)c->n_kv_heads * c->head_dim, D = c->dim;
    double lin = c->n_layers * (D * qd * 2 + 2 * D * kd + 3 * D * c->hidden_dim) + (double)c->vocab_size * D;
    double att = (double)c->n_layers * 4.0 * qd * ((double)seqlen * (seqlen + 1) / 2);
    double gflop = r.n_windows * (2 * lin * seqlen + att) / 1e9;
    double gflops = r.seconds > 0 ? gflop / r.seconds : 0;
    if (json) {
        printf("{\"model\": ");
        json_str(m->source);
        printf(", \"dataset\": \"%s\", \"seqlen\": %d, \"device\": ", o.dataset, seqlen);
        json_str(r.device);
        printf(", \"n_tokens\": %ld, \"n_windows\": %d, \"windows_available\": %ld, \"n_pred\": %ld, "
               "\"nll_sum\": %.17g, \"mean_nll\": %.17g, \"ppl\": %.17g, \"seconds\": %.6f, \"tok_per_s\": %.3f, "
               "\"gflop\": %.3f, \"gflops\": %.3f, \"partial\": %s, \"note\": ",
               r.n_tokens, r.n_windows, avail, r.n_pred, r.nll_sum, mean, r.ppl, r.seconds, r.tok_per_s, gflop, gflops,
               partial ? "true" : "false");
        json_str(r.note);
        printf("}\n");
    } else {
        printf("model       %s\n", m->source);
        printf("dataset     %s, seqlen %d\n", o.dataset, seqlen);
        printf("device      %s\n", r.device);
        printf("tokens      %ld\n", r.n_tokens);
        printf("windows     %d of %ld%s\n", r.n_windows, avail,
               partial ? " (--limit: partial, not the published protocol)" : "");
        printf("mean NLL    %.6f nats over %ld predictions\n", mean, r.n_pred);
        printf("perplexity  %.4f\n", r.ppl);
        printf("tokens/s    %.1f (%.1f s; %.1f GFLOP/s of model FLOPs)\n", r.tok_per_s, r.seconds, gflops);
        if (r.note[0]) printf("note        %s\n", r.note);
    }
    if (r.note[0]) fprintf(stderr, "note: %s\n", r.note);
    gq_model_free(m);
    return 0;
}

/* ---- sgemm peak ---------------------------------------------------------------------------- */

/* Best-of-reps GFLOP/s of cblas_sgemm at the shapes a perplexity window runs (T x K times K x N
 * for SmolLM2-135M's MLP and a square case), all OpenBLAS threads. */
int cmd_bench_cpu(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: gqsa eval ppl --sgemm-peak\n"
               "Measure OpenBLAS sgemm (row-major, B transposed as gqsa's linear layers) at a few shapes and\n"
               "print GFLOP/s (best of 5 runs after a warm-up); the largest is this machine's sgemm peak.\n");
        return 0;
    }
    static const int shapes[][3] = {{2048, 1536, 576}, {2048, 576, 1536}, {2048, 2048, 2048}};
    double best_all = 0;
    printf("%-22s %10s\n", "sgemm M x N x K", "GFLOP/s");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *a = gq_malloc(sizeof(float) * (size_t)M * K), *b = gq_malloc(sizeof(float) * (size_t)N * K),
              *c = gq_malloc(sizeof(float) * (size_t)M * N);
        for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)((i * 7) % 13) * 0.01f;
        for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)((i * 5) % 11) * 0.01f;
        double best = 0;
        for (int rep = 0; rep < 6; rep++) {
            double t0 = gq_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N);
            double dt = gq_now() - t0;
            double gf = 2.0 * M * N * K / dt / 1e9;
            if (rep > 0 && gf > best) best = gf; /* rep 0 warms up threads and caches */
        }
        char name[64];
        snprintf(name, sizeof name, "%d x %d x %d", M, N, K);
        printf("%-22s %10.1f\n", name, best);
        if (best > best_all) best_all = best;
        free(a); free(b); free(c);
    }
    printf("sgemm_peak_gflops %.1f (threads: %d)\n", best_all, gq_num_threads());
    return 0;
}
