/* cmd_bench_kernel.c — `gqsa bench kernel`: the GQS GEMV kernel benchmark (core/cuda/bench_kernel.cu).
 * Must not: time anything itself (the harness does), or hide a failed correctness check behind exit 0.
 */
#include <stdio.h>
#include <string.h>

#include "../core/cuda/gqs_gemv.h"
#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: gqsa bench kernel [--quick] [--csv FILE] [--store results/gqsa.db] [--reps N] [--only LABEL]\n"
            "\n"
            "Times the GQS GEMV kernels (row split and Stream-K) against cuBLAS FP16 (cublasGemmEx, fp32 compute)\n"
            "and the dense per-group W4 kernel (G=128 and G=16) on the GPU, for batch 1..16, shapes 8192x8192 and\n"
            "the LLaMA-2-7B projections (4096x4096, 11008x4096, 4096x11008), sparsity 0..70%%, groups 8..128 and\n"
            "three row-density patterns (row, layer, uneven). Every kernel is first checked against the CPU\n"
            "reference; a failed check is reported and that kernel is not timed (exit 1).\n"
            "Timing: CUDA events over CUDA-graph replays of 20 launches rotating through weight copies that\n"
            "together exceed 4x the L2, after warm-up; median of --reps replays (default 30, at least 20).\n"
            "Prints a table, the copy bandwidth measured in the same run, and the PASS/MISS target checks.\n"
            "2:4 sparsity: tools/bench_24.py (torch + cuSPARSELt), same CSV columns.\n"
            "\n"
            "  --quick        8192x8192 and 4096x4096, batch 1 and 16 only (about a minute)\n"
            "  --csv FILE     write every row as CSV\n"
            "  --store PATH   also add the rows to the results store (benchmarks table)\n"
            "  --reps N       timed replays per point (20..10000)\n"
            "  --only LABEL   only shapes whose label contains LABEL (e.g. 8192, gate)\n"
            "  --batches LIST batches to time, e.g. 1,16 (default 1,2,4,8,16; --quick: 1,16)\n");
}

int cmd_bench_kernel(int argc, char **argv) {
    gq_bench_kernel_opts o;
    memset(&o, 0, sizeof o);
    o.check = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--quick")) {
            o.quick = 1;
        } else if (cli_flag(argc, argv, &i, "--csv", &v)) {
            if (!v) return 2;
            o.csv_path = v;
        } else if (cli_flag(argc, argv, &i, "--store", &v)) {
            if (!v) return 2;
            o.store_path = v;
        } else if (cli_flag(argc, argv, &i, "--only", &v)) {
            if (!v) return 2;
            o.only = v;
        } else if (cli_flag(argc, argv, &i, "--batches", &v)) {
            if (!v) return 2;
            char buf[128];
            snprintf(buf, sizeof buf, "%s", v);
            o.nbatches = 0;
            for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
                int b;
                if (o.nbatches == 8) return cli_usage_error("bench kernel", "--batches: at most 8 values");
                if (cli_parse_int("--batches", tok, 1, GQ_GEMV_MAX_BATCH, &b) != 0) return 2;
                o.batches[o.nbatches++] = b;
            }
            if (!o.nbatches) return cli_usage_error("bench kernel", "--batches: expected a list such as 1,16");
        } else if (cli_flag(argc, argv, &i, "--reps", &v)) {
            if (!v || cli_parse_int("--reps", v, 20, 10000, &o.reps) != 0) return 2;
        } else {
            return cli_usage_error("bench kernel", "unknown argument '%s'", argv[i]);
        }
    }
    gq_status st = gq_bench_kernel_run(&o);
    if (st != GQ_OK) return cli_fail(st, "the kernel benchmark needs a CUDA build and a GPU; see docs/PERF.md");
    return 0;
}
