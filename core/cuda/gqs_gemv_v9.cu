/* gqs_gemv_v9.cu — the launchers of the v9 GEMV kernels (gqs_pipe.h: pipelined row walk, x in shared
 * memory; GQS and dense W4) and of v10 (the same pipeline over equal shares of rounds; GQS, batch 1),
 * and v10's upload step, in their own translation unit (the instantiations compile in parallel with
 * gqs_gemv.cu's). Called from gq_gqs_gpu_gemv / gq_gqs_gpu_upload (gqs_gemv.cu) and gq_w4_gemv_launch
 * (w4_gemv.cu), which run v9 or v7 when *launched comes back 0.
 */
#include <stdlib.h>
#include <string.h>

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

/* ---- v10 ---------------------------------------------------------------------------------------------- */

#define GQ_V10_FOR_G(CALL)                                                                               \
    switch (m->G) {                                                                                      \
    case 8: return CALL(8);                                                                              \
    case 16: return CALL(16);                                                                            \
    case 32: return CALL(32);                                                                            \
    case 64: return CALL(64);                                                                            \
    case 128: return CALL(128);                                                                          \
    default: return GQ_OK;                                                                               \
    }

template <int G> static gq_status v10_launch_g(gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st, int *launched) {
    const int d = v9_depth(), xs = v9_xs();
    if (d == 3) return xs ? gq_ptask_launch_dx<G, 3, true>(m, a, st, launched) : gq_ptask_launch_dx<G, 3, false>(m, a, st, launched);
    return xs ? gq_ptask_launch_dx<G, 2, true>(m, a, st, launched) : gq_ptask_launch_dx<G, 2, false>(m, a, st, launched);
}
template <int G> static gq_status v10_slots_g(const gq_gqs_gpu *m, int64_t *slots) {
    const int d = v9_depth(), xs = v9_xs();
    if (d == 3) return xs ? gq_ptask_slots<G, 3, true>(m, slots) : gq_ptask_slots<G, 3, false>(m, slots);
    return xs ? gq_ptask_slots<G, 2, true>(m, slots) : gq_ptask_slots<G, 2, false>(m, slots);
}

gq_status gq_gemv_launch_v10(gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st, int *launched) {
    *launched = 0;
    if (a.nb != 1 || !m->pw) return GQ_OK;
#define CALL10(G_) v10_launch_g<G_>(m, a, st, launched)
    GQ_V10_FOR_G(CALL10)
#undef CALL10
}

static gq_status v10_slots(const gq_gqs_gpu *m, int64_t *slots) {
    *slots = 0;
#define CALLS(G_) v10_slots_g<G_>(m, slots)
    GQ_V10_FOR_G(CALLS)
#undef CALLS
}

gq_status gq_gemv_v10_setup(gq_gqs_gpu *m, int64_t cap) {
    cudaFree(m->pstart), cudaFree(m->ppart);
    m->pstart = NULL, m->ppart = NULL, m->pw = 0;
    if (m->N < 1 || m->dense || 4 * m->U + 4096 >= ((int64_t)1 << 32)) return GQ_OK;
    int64_t slots = 0;
    GQ_TRY(v10_slots(m, &slots));
    if (cap > 0 && cap < slots) slots = cap;
    if (slots < 1) return GQ_OK;
    /* the split is built on the host from the device's row offsets */
    int32_t *st = (int32_t *)malloc((size_t)2 * (slots + 1) * sizeof(int32_t));
    int32_t *ru = (int32_t *)malloc((size_t)(m->N + 1) * sizeof(int32_t));
    gq_status s = GQ_OK;
    cudaError_t ce = cudaSuccess;
    if (!st || !ru) s = gq_errf(GQ_ERR_NOMEM, "gqs v10 split: out of host memory");
    else ce = cudaMemcpy(ru, m->row_unit, (size_t)(m->N + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost);
    const int64_t W = s == GQ_OK && ce == cudaSuccess
                          ? gq_gqs_round_split(ru, m->N, 32 * gq_unroll_q<1>::value, slots, GQ_PIPE_MAXP, st) : 0;
    if (W > 0) { /* W <= 0: more than GQ_PIPE_MAXP rows per warp somewhere; the kind runs v9 */
        ce = cudaMalloc(&m->pstart, (size_t)(W + 1) * sizeof(int2));
        if (ce == cudaSuccess) ce = cudaMalloc(&m->ppart, (size_t)W * 8);
        if (ce == cudaSuccess) ce = cudaMemcpy(m->pstart, st, (size_t)(W + 1) * sizeof(int2), cudaMemcpyHostToDevice);
        if (ce == cudaSuccess) ce = cudaMemset(m->ppart, 0, (size_t)W * 8);
        if (ce == cudaSuccess) m->pw = W;
    }
    if (s == GQ_OK && ce != cudaSuccess) s = gq_errf(GQ_ERR_NOMEM, "gqs v10 split: %s", cudaGetErrorString(ce));
    free(st), free(ru);
    return s;
}
