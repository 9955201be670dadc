/* cmd_eval_zeroshot.c — `gqsa eval zeroshot`: lm-eval-style zero-shot accuracy of a model on PIQA,
 * ARC-Easy/Challenge, HellaSwag and Winogrande, printed as a Markdown table (stdout), with optional
 * per-item scores for comparison against tools/oracle_zeroshot.py.
 * Must not: implement scoring (core/eval_zeroshot.c) or parse datasets (datasets/zeroshot.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "../core/eval_zeroshot.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa eval zeroshot --model M [--tasks LIST] [--limit N] [--out items.jsonl]\n"
            "                          [--data-root D] [--tokenizer T] [--add-bos] [--quiet]\n"
            "                          [--device cpu|cuda] [--precision fp32|tf32|bf16]\n"
            "\n"
            "Zero-shot multiple-choice accuracy scored as lm-evaluation-harness does (0-shot, acc and\n"
            "acc_norm with lm-eval's standard errors): every choice is a loglikelihood request\n"
            "(context, \" \" + choice); the context's trailing whitespace moves to the continuation; the\n"
            "continuation's tokens are enc(context + continuation)[len(enc(context)):]; acc picks the\n"
            "highest summed log-probability, acc_norm the highest per character of the choice.\n"
            "\n"
            "  --model M       a .gguf / llama2.c .bin / safetensors path, or a registry name\n"
            "                  (smollm2-135m, stories260K)\n"
            "  --tasks LIST    comma list of piqa, arc_easy, arc_challenge, hellaswag, winogrande\n"
            "                  (default: all five). HellaSwag is the 1000-item subset in the data root:\n"
            "                  report it as such. Winogrande has acc only in lm-eval (partial scoring).\n"
            "  --limit N       score only the first N documents of each task (lm-eval --limit)\n"
            "  --out F         write one JSON line per item: task, idx, gold, ll[], chars[], n_cont[],\n"
            "                  greedy[], pred, pred_norm, acc, acc_norm (compare with\n"
            "                  tools/oracle_zeroshot.py --compare F)\n"
            "  --data-root D   where datasets/ lives (default $GQSA_DATA_ROOT or ../shared)\n"
            "  --tokenizer T   tokenizer file for a llama2.c model without one beside it\n"
            "  --add-bos       prepend BOS to every request (lm-eval's add_bos_token=True; default off,\n"
            "                  as lm-eval's HF backend)\n"
            "  --quiet         no progress on stderr\n"
            "  --device D      cpu (default) or cuda (needs a CUDA build and a GPU): the model is\n"
            "                  uploaded once, each item's choices run packed in one forward pass and only\n"
            "                  per-token log-probs of the continuations come back; same protocol, same\n"
            "                  tokenization, scores equal the CPU's to fp32 rounding\n"
            "  --precision P   cuda only: fp32 (default, matches the CPU), tf32 or bf16 (faster GEMMs,\n"
            "                  not comparable with fp32 numbers at the last digit)\n"
            "\n"
            "Cost: one forward window per distinct choice sequence (context + choice); all five full\n"
            "tasks on SmolLM2-135M take hours on a laptop CPU: use --device cuda for full runs and\n"
            "--limit for a quick look on the CPU. The footer prints the tokens and tokens/s measured.\n");
}

static void print_std(double v) {
    if (isfinite(v)) printf("%.4f", v);
    else printf("n/a");
}

int cmd_eval_zeroshot(int argc, char **argv) {
    const char *model = NULL, *tasks = NULL, *out = NULL, *root = NULL, *tok = NULL, *v;
    const char *device = "cpu", *precision = NULL;
    int limit = 0, add_bos = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if ((r = cli_flag(argc, argv, &i, "--model", &model))) {
            if (r < 0) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--tasks", &tasks))) {
            if (r < 0) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--out", &out))) {
            if (r < 0) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--data-root", &root))) {
            if (r < 0) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--tokenizer", &tok))) {
            if (r < 0) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--limit", &v))) {
            if (r < 0 || cli_parse_int("--limit", v, 1, 100000000, &limit) < 0) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--device", &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "cpu") && strcmp(v, "cuda"))
                return cli_usage_error("eval zeroshot", "--device: expected cpu or cuda, got '%s'", v);
            device = v;
        } else if ((r = cli_flag(argc, argv, &i, "--precision", &v))) {
            if (r < 0) return 2;
            if (strcmp(v, "fp32") && strcmp(v, "tf32") && strcmp(v, "bf16"))
                return cli_usage_error("eval zeroshot", "--precision: expected fp32, tf32 or bf16, got '%s'", v);
            precision = v;
        } else if (!strcmp(argv[i], "--add-bos")) {
            add_bos = 1;
        } else if (!strcmp(argv[i], "--quiet")) {
            quiet = 1;
        } else {
            return cli_usage_error("eval zeroshot", "unknown argument '%s'", argv[i]);
        }
    }
    if (!model) return cli_usage_error("eval zeroshot", "--model is required");
    if (precision && strcmp(device, "cuda"))
        return cli_usage_error("eval zeroshot", "--precision applies to --device cuda only");
    if (root) gq_set_data_root(root);
    /* validate the task list before spending seconds on loading a model */
    gq_zs_task_id ids[GQ_ZS_N_TASKS];
    int n_ids;
    if (gq_zs_parse_tasks(tasks, ids, &n_ids) != GQ_OK)
        return cli_usage_error("eval zeroshot", "%s", gq_errmsg());

    gq_model *m = NULL;
    gq_status st = gq_model_load(model, tok, &m);
    if (st != GQ_OK) return cli_fail(st, "check the --model path, or run `make models` for SmolLM2");
    gq_zs_opts o = {.tasks = tasks, .limit = limit, .add_bos = add_bos, .out_path = out, .quiet = quiet,
                    .device = device, .precision = precision};
    gq_zs_result r;
    st = gq_eval_zeroshot(m, &o, &r);
    if (st != GQ_OK) {
        gq_model_free(m);
        return cli_fail(st, st == GQ_ERR_UNSUPPORTED ? "run with --device cpu, or on a machine with a CUDA GPU"
                                                     : "datasets are looked for under --data-root (default ../shared): "
                                                       "see its datasets/README.md");
    }
    printf("zero-shot (lm-eval protocol, 0-shot) — model %s%s\ndevice: %s\n\n", m->source,
           limit > 0 ? " — LIMITED (--limit): not comparable with full-task numbers" : "", r.device);
    printf("| task | n | acc | ± | acc_norm | ± |\n|---|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < r.n_tasks; k++) {
        const gq_zs_task_result *t = &r.task[k];
        printf("| %s%s | %d | %.4f | ", t->name, t->id == GQ_ZS_HELLASWAG ? " (subset)" : "", t->n, t->acc);
        print_std(t->acc_stderr);
        if (t->has_acc_norm) {
            printf(" | %.4f | ", t->acc_norm);
            print_std(t->acc_norm_stderr);
            printf(" |\n");
        } else {
            printf(" | — | — |\n");
        }
    }
    printf("| **average** | | %.4f | | %.4f | |\n", r.avg_acc, r.avg_acc_norm);
    printf("\naverage acc_norm uses acc for tasks without acc_norm (winogrande). %.1f s", r.seconds);
    long toks = 0;
    for (int k = 0; k < r.n_tasks; k++) toks += r.task[k].n_tokens;
    if (r.seconds > 0) printf(", %ld tokens, %.0f tokens/s", toks, (double)toks / r.seconds);
    printf("\n");
    if (out) printf("per-item scores: %s\n", out);
    gq_model_free(m);
    return 0;
}
