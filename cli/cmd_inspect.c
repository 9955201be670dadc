/* cmd_inspect.c — placeholder until the subcommand lands; says so honestly and exits 2. */
#include "cli.h"

int cmd_inspect(int argc, char **argv) {
    (void)argc;
    fprintf(stderr, "gqsa %s: not implemented yet in this build\n", argv[0]);
    return 2;
}
