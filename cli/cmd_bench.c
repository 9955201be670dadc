/* cmd_bench.c — `gqsa bench kernel|decode|train|cpu`: dispatch to the benchmark drivers. */
#include <string.h>

#include "cli.h"

int cmd_bench_kernel(int argc, char **argv); /* cli/cmd_bench_kernel.c */
int cmd_bench_decode(int argc, char **argv); /* cli/cmd_bench_decode.c */
int cmd_bench_cpu(int argc, char **argv);    /* cli/cmd_eval_ppl.c */
int cmd_bench_train(int argc, char **argv);  /* cli/cmd_bench_train.c */

int cmd_bench(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "kernel")) return cmd_bench_kernel(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "decode")) return cmd_bench_decode(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "train")) return cmd_bench_train(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "cpu")) return cmd_bench_cpu(argc - 1, argv + 1);
    FILE *f = (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) ? stdout : stderr;
    fprintf(f, "usage: gqsa bench kernel [...]   GQS GEMV vs cuBLAS FP16, dense W4 (GPU)\n"
               "       gqsa bench decode [...]   decode engine tokens/s and latency (GPU)\n"
               "       gqsa bench train [...]    one BQPO block training step: tokens/s, MFU, 7B projection (GPU)\n"
               "       gqsa bench cpu [...]      measured OpenBLAS sgemm peak on this machine\n"
               "each has its own --help. CPU perplexity throughput vs that peak: make bench-cpu.\n");
    return f == stdout ? 0 : 2;
}
