/* cmd_bench_decode.c — placeholder until the benchmark lands; says so honestly and exits 2. */
#include "cli.h"

int cmd_bench_decode(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "gqsa bench: bench_decode not implemented yet in this build\n");
    return 2;
}
