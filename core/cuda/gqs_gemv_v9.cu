/* gqs_gemv_v9.cu — the launchers of the v9 GEMV kernels (gqs_pipe.h: pipelined row walk, x in shared
 * memory; GQS and dense W4) and of v10 (the same pipeline over equal shares of rounds; GQS, batch 1),
 * and v10's round split, in their own translation unit (the instantiations compile in parallel with
 * gqs_gemv.cu's). Called from gq_gqs_gpu_gemv / gq_gqs_gpu_prepare (gqs_gemv.cu) and gq_w4_gemv_launch
 * (w4_gemv.cu), which run v9 or v7 when *launched comes back 0.
 */
#include <stdlib.h>
#include <string.h>

#include "gqs_pipe.h"

#define V9_CASE(G_, DENSE_)                                                                              \
    switch (a.nb) {                                                                                      \
    case 1: return DENSE_ ? gq_pipe_launch<G_, 1, true, false>(m, a, st, launched)                       \
                          : gq_pipe_launch<G_, 1, false, false>(m, a, st, launched);                     \
    case 2: return DENSE_ ? gq_pipe_launch<G_, 2, true, false>(m, a, st, launched)                       \
                          : gq_pipe_launch<G_, 2, false, false>(m, a, st, launched);                     \
    default: return GQ_OK; /* B > GQ_PIPE_MAXB: v7 */                                                    \
    }

gq_status gq_gemv_launch_v9(bool dense, gq_gqs_gpu *m, const gq_gemv_args &a, int G, cudaStream_t st, int *launched) {
    *launched = 0;
    if (4 * m->U + 4096 >= ((int64_t)1 << 32)) return GQ_OK; /* quad indices are 32-bit */
    GQ_SWITCH_G(G, V9_CASE, dense)
    return gq_errf(GQ_ERR_ARG, "gqs_gemv v9: unsupported group size %d", G);
}

/* ---- v10 ---------------------------------------------------------------------------------------------- */

gq_status gq_gemv_launch_v10(gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st, int *launched) {
    *launched = 0; /* gq_pipe_launch<..., TASK> checks the batch and the split */
#define V10_CASE(G_, X_) return gq_pipe_launch<G_, 1, false, true>(m, a, st, launched);
    GQ_SWITCH_G(m->G, V10_CASE, 0)
#undef V10_CASE
    return GQ_OK;
}

static gq_status v10_slots(const gq_gqs_gpu *m, int64_t *slots) {
    *slots = 0;
#define SLOTS_CASE(G_, X_) return gq_ptask_slots<G_>(m, slots);
    GQ_SWITCH_G(m->G, SLOTS_CASE, 0)
#undef SLOTS_CASE
    return GQ_OK;
}

gq_status gq_gemv_v10_setup(gq_gqs_gpu *m, int64_t cap) {
    cudaFree(m->pstart), cudaFree(m->ppart);
    m->pstart = NULL, m->ppart = NULL, m->pw = 0, m->pready = 1;
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
        if (ce == cudaSuccess) ce = cudaDeviceSynchronize(); /* the memset is on the legacy stream */
        if (ce == cudaSuccess) m->pw = W;
    }
    if (s == GQ_OK && ce != cudaSuccess) s = gq_errf(GQ_ERR_NOMEM, "gqs v10 split: %s", cudaGetErrorString(ce));
    free(st), free(ru);
    return s;
}
