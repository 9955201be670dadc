/* cmd_generate.c — `gqsa generate`: text from a prompt with the CPU KV-cache decoder (core/generate.h).
 * Text goes to stdout (followed by one "\n", as llama2.c's run.c prints), speed to stderr.
 * Must not: implement sampling or decoding itself (core/generate.c does).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../core/generate.h"
#include "../core/model.h"
#include "../core/tokenizer.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa generate --model M [--prompt P] [--steps N] [--temperature T] [--top-p P] [--seed S]\n"
            "                     [--tokenizer FILE] [--data-root DIR]\n\n"
            "Generate text on the CPU with a KV cache, following llama2.c run.c: the prompt (BOS first when\n"
            "the model's tokenizer adds it) is fed token by token, then tokens are sampled until --steps\n"
            "positions (prompt included; capped at the model's context) or until BOS/EOS is sampled.\n"
            "Prints the prompt and the continuation to stdout, and tokens/s to stderr.\n\n"
            "  --model M         .gguf, llama2.c .bin, HF directory, or a registry name (stories260K, smollm2-135m)\n"
            "  --tokenizer FILE  tokenizer for a llama2.c model when it is not beside it\n"
            "  --prompt P        text to start from (default: empty, i.e. BOS only)\n"
            "  --steps N         positions to run, prompt included (default 256, as run.c)\n"
            "  --temperature T   0 = greedy argmax (default 0); > 0 samples from softmax(logits / T)\n"
            "  --top-p P         nucleus sampling threshold when T > 0 (default 0.9; 0 or 1 = off)\n"
            "  --seed S          sampling seed (default 42); same seed, T and P as run.c -s give run.c's draws\n"
            "  --data-root DIR   where models/ and datasets/ are (default $GQSA_DATA_ROOT or ../shared)\n");
}

static void emit_stdout(void *ctx, const char *b, size_t n) {
    (void)ctx;
    fwrite(b, 1, n, stdout);
    fflush(stdout);
}

int cmd_generate(int argc, char **argv) {
    const char *model = NULL, *tokp = NULL, *prompt = "", *v;
    int steps = 256;
    double temp = 0, topp = 0.9;
    unsigned long long seed = 42;
    for (int i = 1; i < argc; i++) {
        int r;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if ((r = cli_flag(argc, argv, &i, "--model", &v))) { if (r < 0) return 2; model = v; }
        else if ((r = cli_flag(argc, argv, &i, "--tokenizer", &v))) { if (r < 0) return 2; tokp = v; }
        else if ((r = cli_flag(argc, argv, &i, "--prompt", &v))) { if (r < 0) return 2; prompt = v; }
        else if ((r = cli_flag(argc, argv, &i, "--data-root", &v))) { if (r < 0) return 2; gq_set_data_root(v); }
        else if ((r = cli_flag(argc, argv, &i, "--steps", &v))) {
            if (r < 0 || cli_parse_int("--steps", v, 1, 1 << 20, &steps)) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--temperature", &v))) {
            if (r < 0 || cli_parse_double("--temperature", v, 0, 100, &temp)) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--top-p", &v))) {
            if (r < 0 || cli_parse_double("--top-p", v, 0, 1, &topp)) return 2;
        } else if ((r = cli_flag(argc, argv, &i, "--seed", &v))) {
            if (r < 0) return 2;
            char *end;
            errno = 0;
            seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-')
                return cli_usage_error("generate", "--seed: expected a non-negative integer, got '%s'", v);
        } else return cli_usage_error("generate", "unknown option '%s'", argv[i]);
    }
    if (!model) return cli_usage_error("generate", "--model is required");

    gq_model *m = NULL;
    gq_status st = gq_model_load(model, tokp, &m);
    if (st) return cli_fail(st, "check the path, or use a registry name such as stories260K");
    if (!m->tok) {
        gq_model_free(m);
        return cli_fail(gq_errf(GQ_ERR_ARG, "model %s came without a tokenizer", model), "pass --tokenizer FILE");
    }
    int32_t *ids = NULL;
    size_t n = 0;
    st = gq_tokenizer_encode(m->tok, prompt, strlen(prompt), gq_tokenizer_add_bos_default(m->tok), &ids, &n);
    if (st) { gq_model_free(m); return cli_fail(st, "the prompt must be valid UTF-8"); }
    if (n == 0) {
        /* an empty prompt starts from BOS when the tokenizer has one, whatever its default */
        int bos = gq_tokenizer_bos(m->tok);
        if (bos < 0) {
            free(ids);
            gq_model_free(m);
            return cli_usage_error("generate", "empty prompt and the tokenizer has no BOS token: give --prompt");
        }
        free(ids);
        ids = gq_malloc(sizeof(int32_t));
        ids[0] = bos;
        n = 1;
    }
    /* run.c prints nothing for position 0 (BOS); print any prompt text before the continuation */
    gq_gen_opts o = {steps, (float)temp, (float)topp, (uint64_t)seed};
    gq_gen_stats s = {0};
    st = gq_generate(m, ids, (int)n, &o, emit_stdout, NULL, NULL, 0, NULL, &s);
    printf("\n");
    fflush(stdout);
    free(ids);
    gq_model_free(m);
    if (st) return cli_fail(st, NULL);
    fprintf(stderr, "achieved tok/s: %.1f (%d prompt + %d generated tokens in %.3f s, cpu, %d threads)\n", s.tok_per_s,
            s.n_prompt, s.n_generated, s.seconds, gq_num_threads());
    return 0;
}
