/* cmd_eval_zeroshot.c — placeholder until the evaluator lands; says so honestly and exits 2. */
#include "cli.h"

int cmd_eval_zeroshot(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "gqsa eval: eval_zeroshot not implemented yet in this build\n");
    return 2;
}
