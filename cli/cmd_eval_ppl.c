/* cmd_eval_ppl.c — placeholder until the evaluator lands; says so honestly and exits 2. */
#include "cli.h"

int cmd_eval_ppl(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "gqsa eval: eval_ppl not implemented yet in this build\n");
    return 2;
}
