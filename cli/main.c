/* main.c — the gqsa binary: dispatch to subcommands (see cli.h for how to add one). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"run", cmd_run, "run a YAML-configured pipeline (calibrate .. evaluate), resumable"},
    {"sweep", cmd_sweep, "expand a sweep file into runs and execute the unfinished ones"},
    {"compress", cmd_compress, "compress a model with GQSA or a baseline from flags"},
    {"eval", cmd_eval, "perplexity (eval ppl) and zero-shot accuracy (eval zeroshot)"},
    {"generate", cmd_generate, "generate text from a prompt (greedy or sampled)"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"inspect", cmd_inspect, "print a model or checkpoint: layers, sparsity, bits, bytes"},
    {"report", cmd_report, "tables (Markdown/CSV/LaTeX) and plots from the results store"},
    {"bench", cmd_bench, "kernel and decode benchmarks (GPU), CPU throughput"},
    {"export", cmd_export, "write a compressed model as GGUF"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *f) {
    fprintf(f,
            "gqsa — compress LLaMA-family models with GQSA (group quantization + group sparsity),\n"
            "evaluate them as the papers do, run them fast, and turn sweeps into tables.\n\n"
            "usage: gqsa <command> [options]    (gqsa <command> --help for each)\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f,
            "\nenvironment:\n"
            "  GQSA_DATA_ROOT  where datasets/ and models/ are found (default ../shared; --data-root overrides)\n"
            "  GQSA_THREADS    worker threads (default: all online CPUs)\n"
            "  GQSA_PROGRESS=1 progress lines even when stderr is not a terminal\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "gqsa: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
