/* gqs_gemv_v9.cu — the launcher of the v9 GEMV kernels (gqs_pipe.h: pipelined row walk, x in shared
 * memory), GQS and dense W4, in its own translation unit (its instantiations compile in parallel with
 * gqs_gemv.cu's). Called from gq_gqs_gpu_gemv (gqs_gemv.cu) and gq_w4_gemv_launch (w4_gemv.cu), which
 * run v7 when *launched comes back 0.
 */
#include <stdlib.h>

#include "gqs_pipe.h"

/* The study switches of gqs_pipe.h, read once: rounds in the pipeline, and x from shared memory. */
static int v9_depth() {
    static int d = 0;
    if (!d) {
        const char *e = getenv("GQSA_V9_DEPTH");
        d = e && atoi(e) == 3 ? 3 : 2;
    }
    return d;
}
static int v9_xs() {
    static int x = -1;
    if (x < 0) {
        const char *e = getenv("GQSA_V9_XS");
        x = e && atoi(e) == 0 ? 0 : 1;
    }
    return x;
}

template <int G, int B, bool DENSE>
static gq_status launch_b(gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st, int *launched) {
    const int d = v9_depth(), xs = v9_xs();
    if (d == 3) return xs ? gq_pipe_launch_dx<G, B, DENSE, 3, true>(m, a, st, launched)
                          : gq_pipe_launch_dx<G, B, DENSE, 3, false>(m, a, st, launched);
    return xs ? gq_pipe_launch_dx<G, B, DENSE, 2, true>(m, a, st, launched)
              : gq_pipe_launch_dx<G, B, DENSE, 2, false>(m, a, st, launched);
}

template <int G, bool DENSE>
static gq_status launch_g(gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st, int *launched) {
    switch (a.nb) {
    case 1: return launch_b<G, 1, DENSE>(m, a, st, launched);
    case 2: return launch_b<G, 2, DENSE>(m, a, st, launched);
    default: return GQ_OK; /* B > GQ_PIPE_MAXB: v7 */
    }
}

gq_status gq_gemv_launch_v9(bool dense, gq_gqs_gpu *m, const gq_gemv_args &a, int G, cudaStream_t st, int *launched) {
    *launched = 0;
    if (4 * m->U + 4096 >= ((int64_t)1 << 32)) return GQ_OK; /* quad indices are 32-bit */
    switch (G) {
    case 8: return dense ? launch_g<8, true>(m, a, st, launched) : launch_g<8, false>(m, a, st, launched);
    case 16: return dense ? launch_g<16, true>(m, a, st, launched) : launch_g<16, false>(m, a, st, launched);
    case 32: return dense ? launch_g<32, true>(m, a, st, launched) : launch_g<32, false>(m, a, st, launched);
    case 64: return dense ? launch_g<64, true>(m, a, st, launched) : launch_g<64, false>(m, a, st, launched);
    case 128: return dense ? launch_g<128, true>(m, a, st, launched) : launch_g<128, false>(m, a, st, launched);
    }
    return gq_errf(GQ_ERR_ARG, "gqs_gemv v9: unsupported group size %d", G);
}
