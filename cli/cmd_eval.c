/* cmd_eval.c — `gqsa eval ppl|zeroshot`: dispatch to the two evaluators. */
#include <string.h>

#include "cli.h"

int cmd_eval_ppl(int argc, char **argv);      /* cli/cmd_eval_ppl.c */
int cmd_eval_zeroshot(int argc, char **argv); /* cli/cmd_eval_zeroshot.c */

int cmd_eval(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "ppl")) return cmd_eval_ppl(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "zeroshot")) return cmd_eval_zeroshot(argc - 1, argv + 1);
    FILE *f = (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) ? stdout : stderr;
    fprintf(f, "usage: gqsa eval ppl --model M --dataset wikitext2|c4 [--seqlen L] [--limit N] ...\n"
               "       gqsa eval zeroshot --model M --tasks piqa,arc_easy,arc_challenge,hellaswag,winogrande [--limit N]\n"
               "each has its own --help.\n");
    return f == stdout ? 0 : 2;
}
