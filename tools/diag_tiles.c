/* diag_tiles.c — the v18 tile stream (gqs_pack.h) of the benchmark's matrices, counted on the CPU: entries (the
 * tensor-core kernel's work: two 16 x 16 tile products per entry and 16-column step, one per half of its 32 rows), blocks, warps per tile, and
 * bytes against the device format's. `make build/diag_tiles && build/diag_tiles` (PERF.md "v18"). */
#include <stdio.h>

#include "gqs_pack.h"

int main(void) {
    const int shapes[][2] = {{8192, 8192}, {4096, 4096}, {11008, 4096}, {4096, 11008}};
    /* the bench's matrices: GQS G16 at S30-S70 (layer scope) and S50 in every pattern, dense W4 G128 */
    const struct { int G; double sp; gq_density pat; } pts[] = {
        {16, 0.5, GQ_DENSITY_ROW},   {128, 0.0, GQ_DENSITY_ROW},   {16, 0.3, GQ_DENSITY_LAYER},
        {16, 0.5, GQ_DENSITY_LAYER}, {16, 0.7, GQ_DENSITY_LAYER}, {16, 0.5, GQ_DENSITY_UNEVEN},
    };
    printf("%6s %6s %4s %5s %-7s %9s %8s %6s %3s %10s %10s %9s\n", "N", "K", "G", "spars", "pattern", "entries", "fill", "blk/T",
           "S", "tile MB", "dev MB", "kept/ent");
    for (int si = 0; si < 4; si++)
        for (size_t pi = 0; pi < sizeof pts / sizeof pts[0]; pi++) {
            const int N = shapes[si][0], K = shapes[si][1], G = pts[pi].G;
            gq_gqs g;
            gq_gqs_dev d;
            gq_gqs_tiles t;
            if (gq_gqs_random(&g, N, K, G, 4, pts[pi].sp, pts[pi].pat, 0, 100 + si) != GQ_OK || gq_gqs_pack(&g, "m", &d) != GQ_OK ||
                gq_gqs_tiles_build(&d, &t) != GQ_OK) {
                fprintf(stderr, "%s\n", gq_errmsg());
                return 1;
            }
            int64_t pad = 0; /* padding entries: no row */
            for (int64_t e = 0; e < t.nent; e++) pad += t.meta[e] == 0;
            const int64_t real = t.nent - pad;
            const double tb = (double)t.data_bytes + 6.0 * t.nent + 4.0 * t.nblk + 4.0 * (t.ntiles + 1);
            printf("%6d %6d %4d %5.2f %-7s %9lld %7.1f%% %6.1f %3d %10.2f %10.2f %9.2f\n", N, K, G, pts[pi].sp,
                   gq_density_name(pts[pi].pat), (long long)real, 100.0 * real / ((double)t.ntiles * (K / G)),
                   (double)t.nblk / t.ntiles, gq_gqs_tiles_warps(&t, 132 * 32), tb / 1e6, gq_gqs_dev_bytes(&d, 0) / 1e6,
                   (double)t.kept / (double)real);
            gq_gqs_tiles_free(&t);
            gq_gqs_dev_free(&d);
            gq_gqs_free(&g);
        }
    return 0;
}
