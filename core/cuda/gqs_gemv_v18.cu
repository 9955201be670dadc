/* gqs_gemv_v18.cu — v18 (gqs_mma.h): the tile stream's build at prepare and the tensor-core launcher, batch
 * 2..16, GQS and dense W4 (a dense matrix's tiles have every mask full). Called from gq_gqs_gpu_gemv /
 * gq_gqs_gpu_prepare (gqs_gemv.cu).
 *
 * The tile stream is built on the host by gq_gqs_tiles_build (core/gqs_tiles.c, CPU-tested against the
 * dense product by emulating the kernel's reads lane by lane) from the device format copied back: a
 * one-time cost at prepare, as for v11's row stream, after which the matrix holds its weights twice.
 */
#include <stdlib.h>
#include <string.h>

#include "gqs_mma.h"

void gq_gemv_v18_free(gq_gqs_gpu *m) {
    gq_gqs_gpu::gq_v18_tiles &t = m->tiles;
    cudaFree(t.tblk), cudaFree(t.meta), cudaFree(t.col), cudaFree(t.boff), cudaFree(t.data);
    memset(&t, 0, sizeof t);
}

gq_status gq_gemv_v18_setup(gq_gqs_gpu *m) {
    gq_gemv_v18_free(m);
    gq_gqs_dev d;
    GQ_TRY(gq_gemv_download_format(m, &d));
    gq_gqs_tiles t;
    gq_status s = gq_gqs_tiles_build(&d, &t);
    gq_gqs_dev_free(&d);
    if (s != GQ_OK) return s;
    gq_gqs_gpu::gq_v18_tiles dt;
    memset(&dt, 0, sizeof dt);
    const size_t nt = (size_t)t.ntiles + 1, ne = (size_t)(t.nent ? t.nent : 1), nb = (size_t)(t.nblk ? t.nblk : 1);
    cudaError_t ce = cudaMalloc(&dt.tblk, nt * 4);
    if (ce == cudaSuccess) ce = cudaMalloc(&dt.meta, ne * 4);
    if (ce == cudaSuccess) ce = cudaMalloc(&dt.col, ne * 2);
    if (ce == cudaSuccess) ce = cudaMalloc(&dt.boff, nb * 4);
    /* + 128: a pruned row's code load (unpredicated, gqs_mma.h) may read up to G/2 bytes past the last entry */
    if (ce == cudaSuccess) ce = cudaMalloc(&dt.data, (size_t)t.data_bytes + 128);
    if (ce == cudaSuccess) ce = cudaMemset(dt.data, 0, (size_t)t.data_bytes + 128);
    if (ce == cudaSuccess) ce = cudaMemcpy(dt.tblk, t.tblk, nt * 4, cudaMemcpyHostToDevice);
    if (ce == cudaSuccess && t.nent) ce = cudaMemcpy(dt.meta, t.meta, (size_t)t.nent * 4, cudaMemcpyHostToDevice);
    if (ce == cudaSuccess && t.nent) ce = cudaMemcpy(dt.col, t.col, (size_t)t.nent * 2, cudaMemcpyHostToDevice);
    if (ce == cudaSuccess && t.nblk) ce = cudaMemcpy(dt.boff, t.boff, (size_t)t.nblk * 4, cudaMemcpyHostToDevice);
    if (ce == cudaSuccess && t.data_bytes) ce = cudaMemcpy(dt.data, t.data, (size_t)t.data_bytes, cudaMemcpyHostToDevice);
    if (ce == cudaSuccess) ce = cudaDeviceSynchronize(); /* pageable copies: landed before any stream launches */
    if (ce != cudaSuccess) {
        cudaGetLastError();
        s = gq_errf(GQ_ERR_NOMEM, "gqs v18 tiles: %s", cudaGetErrorString(ce));
        cudaFree(dt.tblk), cudaFree(dt.meta), cudaFree(dt.col), cudaFree(dt.boff), cudaFree(dt.data);
    } else {
        dt.ntiles = t.ntiles;
        /* 32 resident warps per SM as the target (the kernel's registers allow more; a CTA is one tile) */
        dt.S = gq_gqs_tiles_warps(&t, (int64_t)m->sm_count * 32);
        dt.bytes = (int64_t)nt * 4 + t.nent * 6 + t.nblk * 4 + t.data_bytes;
        m->tiles = dt;
    }
    gq_gqs_tiles_free(&t);
    return s;
}

template <int G, int NO> static gq_status launch18(const gq_gqs_gpu *m, const gq_gemv_args &a, cudaStream_t st) {
    CUDA_CHECK(gq_launch(m->pdl != 0, gq_gemv_mma_kernel<G, NO>, dim3((unsigned)m->tiles.ntiles), dim3(32 * m->tiles.S), 0, st, a));
    CUDA_CHECK_LAUNCH();
    return GQ_OK;
}

gq_status gq_gemv_launch_v18(gq_gqs_gpu *m, gq_gemv_args a, cudaStream_t st) {
    if (!m->tiles.meta) return gq_errf(GQ_ERR_INTERNAL, "gqs_gemv v18: the tile stream was not built");
    if (m->tiles.ntiles == 0) return GQ_OK; /* N = 0 */
    a.tblk = m->tiles.tblk, a.tmeta = m->tiles.meta, a.tcol = m->tiles.col, a.tboff = m->tiles.boff, a.tdata = m->tiles.data;
    const bool two = a.nb > 8;
#define V18_G(G_, X_) return two ? launch18<G_, 2>(m, a, st) : launch18<G_, 1>(m, a, st);
    switch (m->G) {
    case 16: V18_G(16, 0)
    case 32: V18_G(32, 0)
    case 64: V18_G(64, 0)
    case 128: V18_G(128, 0)
    default: break;
    }
#undef V18_G
    return gq_errf(GQ_ERR_ARG, "gqs_gemv v18: unsupported group size %d", m->G);
}
