/* cli.h — shared helpers for the gqsa subcommands (cli/cmd_*.c).
 *
 * How to add a subcommand: write `int cmd_<name>(int argc, char **argv)` in cli/cmd_<name>.c
 * (argv[0] is the subcommand name; return 0 on success, 1 on a runtime failure, 2 on bad usage),
 * declare it here and add a row to the table in cli/main.c.
 */
#ifndef GQ_CLI_H
#define GQ_CLI_H

#include "../core/util.h"

int cmd_generate(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_compress(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

/* Strict number parsing for flags: the whole string must be a number in range. On failure print
 * "gqsa: <flag>: expected ..., got '<s>'" to stderr and return -1. */
int cli_parse_int(const char *flag, const char *s, long lo, long hi, int *out);
int cli_parse_double(const char *flag, const char *s, double lo, double hi, double *out);
/* Is argv[i] the flag `name`? If it takes a value, *val gets argv[i+1] (error if missing) and i advances. */
int cli_flag(int argc, char **argv, int *i, const char *name, const char **val);
/* Print "gqsa: <status>: <message>" and a hint; returns 1. */
int cli_fail(gq_status st, const char *hint);
/* Print usage error + "see gqsa <cmd> --help"; returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
