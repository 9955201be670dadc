/* diag_stream_layout.c — how long the host build of the v11 row stream takes (gq_gqs_stream_layout,
 * core/gqs_pack.c), the host part of a v11 decoder's construction (docs/PERF.md "The row stream's host
 * build"). Fills the stream of one random GQS matrix (default 11008 x 4096, S50, G16, layer pattern) N
 * times (default 9) and prints the median time, the rate and a hash of the stream's bytes (so two builds of
 * the function can be checked to write the same stream).
 * Build: make build/diag_stream_layout. Usage: diag_stream_layout [ROWS COLS [REPS]]
 * Must not: be linked into the library or the tests. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "gqs_pack.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp_d(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const int N = argc > 2 ? atoi(argv[1]) : 11008, K = argc > 2 ? atoi(argv[2]) : 4096;
    const int reps = argc > 3 ? atoi(argv[3]) : 9;
    if (N < 1 || K < 16 || K % 16 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: diag_stream_layout [ROWS COLS [REPS]]  (COLS a multiple of 16, 1 <= REPS <= 1000)\n");
        return 2;
    }
    gq_gqs g;
    gq_gqs_dev d;
    if (gq_gqs_random(&g, N, K, 16, 4, 0.5, GQ_DENSITY_LAYER, 0, 1) != GQ_OK || gq_gqs_pack(&g, "diag", &d) != GQ_OK) {
        fprintf(stderr, "diag_stream_layout: %s\n", gq_errmsg());
        return 1;
    }
    int32_t *srow = malloc((size_t)N * 8);
    int64_t bytes = 0;
    if (!srow || gq_gqs_stream_layout(&d, 0, srow, NULL, &bytes) != GQ_OK) return 1;
    unsigned char *out = malloc((size_t)bytes + 16);
    double *t = malloc((size_t)reps * sizeof(double));
    if (!out || !t) return 1;
    for (int i = 0; i < reps; i++) {
        const double t0 = now_s();
        if (gq_gqs_stream_layout(&d, 0, srow, out, &bytes) != GQ_OK) return 1;
        t[i] = now_s() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_d);
    unsigned long long h = 1469598103934665603ull; /* FNV-1a of the stream */
    for (int64_t i = 0; i < bytes; i++) h = (h ^ out[i]) * 1099511628211ull;
    printf("%d x %d S50 G16 layer: stream %.1f MB, layout median of %d %.4f s (%.2f GB/s), fnv1a %016llx\n", N, K,
           bytes / 1e6, reps, t[reps / 2], bytes / 1e9 / t[reps / 2], h);
    free(t), free(out), free(srow);
    gq_gqs_dev_free(&d);
    gq_gqs_free(&g);
    return 0;
}
