/* gqs_mma.h — v18: the small-batch (B = 2..16) GQS and dense W4 kernel on tensor cores, over the tile stream
 * (gqs_pack.h "v18 tile stream", built by gq_gemv_v18_setup in gqs_gemv_v18.cu). CUDA C++ only.
 *
 * Why (PERF.md "v18"): at batch 16 every earlier kernel dequantizes a weight once and then runs 16 fp16
 * dot products on the CUDA cores, each with its own 16-byte x load per 8 weights: 8192^2 S50 G16 took
 * 113.7 us with v7 (H200, reports/bench/kernel_h200_2026-12-04_final.csv), 3.3x slower than cuBLAS FP16
 * (33.9 us), for 29.5 MB of weights that a copy moves in ~8 us. A tensor core multiplies a 16 x 16 weight
 * tile by a 16 x 8 block of x in one instruction, with x read once per tile instead of once per row.
 *
 * One CTA per tile of 32 rows (two m16 halves sharing each x fragment), S warps (blockDim.x / 32,
 * gq_gqs_tiles_warps) splitting the tile's blocks of entries in contiguous shares. Per entry (a column group kept
 * by at least one of the 32 rows) and 16-column step, lane (g = lane / 4, q = lane % 4) builds for each half h
 * the A fragment of mma.m16n8k16 (rows 16 h + g and 16 h + g + 8, columns 2q, 2q + 1, 2q + 8, 2q + 9): the two
 * rows' 16-bit code chunks (found from the mask by popcount; a pruned row's chunk and scale|min are 0, so its
 * weights are 0) are interleaved by one byte_perm so that v7's two LOP3 masks give each register's two codes
 * as fp16 1024 + q / 1024 + 16 q, dequantized as fma(q, scale, min) in fp16 (v3's weights, bit for bit); B is
 * x [8 o + g][column + 2q ..] for batch octet o, loaded once for both halves; C stays in fp32 registers. The S
 * partial tiles meet in shared memory, warp 0 adds them in warp order (deterministic) and stores. Not v3's
 * bits: products are exact and summed in fp32 by the tensor core. SASS (PERF.md "v18"): 99 instructions per
 * 32-row entry at G16 and batch 16 (86 per 16-row entry when a tile was 16 rows; 130 with 64-bit pointers and
 * predicated code and x loads).
 * Must not: read x before gq_pdl_wait() (the meta words and block offsets may be read before it), read x
 * with ld.global.nc (x is what the previous kernel writes), or let a lane skip an mma (mma.sync is warp-wide:
 * every branch around one is warp-uniform).
 */
#ifndef GQ_CUDA_GQS_MMA_H
#define GQ_CUDA_GQS_MMA_H

#include "gqs_dev.h"

#define GQ_MMA_MAX_WARPS 16 /* S <= 16: a CTA of at most 512 threads */
/* Entries in flight per warp (divides GQ_TILE_BLK): 8 at G16 (4 took more instructions per entry; SASS), fewer
 * for larger groups, whose entries hold G/16 steps each (at 8 the G32-G128 kernels spilled 144-356 bytes). */
template <int G> struct gq_mma_unroll { static constexpr int value = G == 16 ? 8 : 1; };

/* A coherent 4-byte load (ld.global, not .nc): ordered after griddepcontrol.wait. */
__device__ __forceinline__ uint32_t gq_ld_coherent_u32(const void *p) {
    uint32_t r;
    asm volatile("ld.global.u32 %0, [%1];" : "=r"(r) : "l"(p) : "memory");
    return r;
}

/* gq_tile_entry_bytes / 4 (gqs_pack.h), on the device. */
template <int G> __device__ __forceinline__ uint32_t gq_mma_entry_words(int kept) {
    constexpr uint32_t A = G / 8 > 4 ? G / 8 : 4;
    return ((uint32_t)kept * (G / 2 + 4) + A - 1) / A * A / 4;
}

/* D += A B for one m16n8k16 step: A rows x 16 columns (fp16, 4 registers), B 16 columns x 8 batch (2). */
__device__ __forceinline__ void gq_mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* The lane's G/8 code bytes of one row as G/16 16-bit chunks, chunk s in word s / 2. Loaded whether or not the
 * row keeps the group: a pruned row's scale|min word is 0, so fma(q, 0, 0) = 0 whatever its codes (the address
 * stays inside the entry or the data's tail padding). */
template <int G> struct gq_mma_codes { uint32_t w[G >= 32 ? G / 32 : 1]; };
template <int G> __device__ __forceinline__ gq_mma_codes<G> gq_mma_load_codes(const uint8_t *p) {
    gq_mma_codes<G> c;
    if constexpr (G == 16) c.w[0] = gq_ld_stream_u16(p);
    else if constexpr (G == 32) c.w[0] = gq_ld_stream_u32(p);
    else if constexpr (G == 64) {
        const uint2 v = gq_ld_stream_v2(p);
        c.w[0] = v.x, c.w[1] = v.y;
    } else {
        const uint4 v = gq_ld_stream_v4(p);
        c.w[0] = v.x, c.w[1] = v.y, c.w[2] = v.z, c.w[3] = v.w;
    }
    return c;
}

/* The A fragment of rows g (chunk cg, scale|min sg) and g + 8 (cg8, sg8) at one step: byte_perm puts the
 * chunks' bytes as g.b0 g8.b0 g.b1 g8.b1, so the masks 0x000F000F / 0x00F000F0 of the word and of the
 * word >> 8 give registers 0 / 2 (row g) and 1 / 3 (row g + 8), each a pair of adjacent columns. */
__device__ __forceinline__ void gq_mma_dequant(uint32_t cg, uint32_t cg8, uint32_t sg, uint32_t sg8, uint32_t (&a)[4]) {
    const __half2 k1024 = gq_u32_as_h2(0x64006400u), k16th = gq_u32_as_h2(0x2C002C00u), km64 = gq_u32_as_h2(0xD400D400u);
    const uint32_t w = __byte_perm(cg, cg8, 0x5140), w8 = w >> 8;
    const __half2 s0 = __low2half2(gq_u32_as_h2(sg)), m0 = __high2half2(gq_u32_as_h2(sg));
    const __half2 s1 = __low2half2(gq_u32_as_h2(sg8)), m1 = __high2half2(gq_u32_as_h2(sg8));
    __half2 h[4];
    h[0] = __hfma2(__hsub2(gq_u32_as_h2(gq_andor(w, 0x000F000Fu, 0x64006400u)), k1024), s0, m0);
    h[1] = __hfma2(__hsub2(gq_u32_as_h2(gq_andor(w8, 0x000F000Fu, 0x64006400u)), k1024), s1, m1);
    h[2] = __hfma2(__hfma2(gq_u32_as_h2(gq_andor(w, 0x00F000F0u, 0x64006400u)), k16th, km64), s0, m0);
    h[3] = __hfma2(__hfma2(gq_u32_as_h2(gq_andor(w8, 0x00F000F0u, 0x64006400u)), k16th, km64), s1, m1);
#pragma unroll
    for (int i = 0; i < 4; i++) memcpy(&a[i], &h[i], 4);
}

/* NO: batch octets (1: B <= 8, 2: B <= 16). A tile is GQ_TILE_ROWS = 32 rows: two halves of 16 (H), each an
 * m16 A fragment, sharing the entry's shuffles and x fragments. */
template <int G, int NO>
__global__ void __launch_bounds__(32 * GQ_MMA_MAX_WARPS, 2) gq_gemv_mma_kernel(const gq_gemv_args a) {
    constexpr int H = GQ_TILE_ROWS / 16;
    __shared__ float part[GQ_MMA_MAX_WARPS - 1][H * NO * 4][32]; /* warps 1..S-1's C fragments */
    const int lane = threadIdx.x & 31, wp = threadIdx.x >> 5, S = blockDim.x >> 5;
    const int g = lane >> 2, q = lane & 3;
    const int T = blockIdx.x, b0 = a.tblk[T], nb = a.tblk[T + 1] - b0;
    const int eb = b0 + wp * nb / S, ee = b0 + (wp + 1) * nb / S; /* this warp's blocks */
    int e = eb * GQ_TILE_BLK;
    const int eend = ee * GQ_TILE_BLK;
    uint32_t off = eb < ee ? a.tboff[eb] : 0;                 /* the data offset of entry e, 4-byte units */
    uint32_t me = e + lane < eend ? a.tmeta[e + lane] : 0u;  /* weights only before the wait */
    uint32_t mc = e + lane < eend ? a.tcol[e + lane] : 0u;
    gq_pdl_wait();
    gq_pdl_trigger();
    float c[H][NO][4];
#pragma unroll
    for (int h = 0; h < H; h++)
#pragma unroll
        for (int o = 0; o < NO; o++) c[h][o][0] = c[h][o][1] = c[h][o][2] = c[h][o][3] = 0.f;
    /* the x rows of this lane's B fragments (batch 8 o + g) as 32-bit offsets in halfs from a.x: one 64-bit add
     * per load instead of rebuilding 64-bit pointers. A lane past the batch reads the last row instead (no
     * predicate, no zeroing): it feeds only C columns past the batch, which are never stored. */
    uint32_t xo[NO];
#pragma unroll
    for (int o = 0; o < NO; o++) xo[o] = (uint32_t)((8 * o + g < a.nb ? 8 * o + g : a.nb - 1) * a.K + 2 * q);
    for (; e < eend; e += 32) {
        const uint32_t mine = me, mcol = mc;
        me = e + 32 + lane < eend ? a.tmeta[e + 32 + lane] : 0u; /* the next 32 entries' words, in flight */
        mc = e + 32 + lane < eend ? a.tcol[e + 32 + lane] : 0u;
        /* entry offsets: an exclusive scan of the 32 entries' sizes */
        const uint32_t sz = gq_mma_entry_words<G>(__popc(mine));
        uint32_t incl = sz;
#pragma unroll
        for (int d = 1; d < 32; d <<= 1) {
            const uint32_t v = __shfl_up_sync(0xFFFFFFFFu, incl, d);
            if (lane >= d) incl += v;
        }
        const uint32_t myoff = off + incl - sz, mykept = (uint32_t)__popc(mine);
        off += __shfl_sync(0xFFFFFFFFu, incl, 31);
        /* n is a whole number of blocks (8 entries): the loop runs in eights with no remainder, and an entry
         * with no row (padding) runs with its scale|min loads off, so A = 0, instead of a branch: the eight
         * entries' loads can all be in flight before the first mma */
        const int n = eend - e < 32 ? eend - e : 32;
        for (int i0 = 0; i0 < n; i0 += gq_mma_unroll<G>::value) {
#pragma unroll
            for (int u = 0; u < gq_mma_unroll<G>::value; u++) {
                const uint32_t mask = __shfl_sync(0xFFFFFFFFu, mine, i0 + u), oi = __shfl_sync(0xFFFFFFFFu, myoff, i0 + u);
                const int kept = (int)__shfl_sync(0xFFFFFFFFu, mykept, i0 + u);
                const int col = (int)__shfl_sync(0xFFFFFFFFu, mcol, i0 + u) * G;
                const uint32_t eo = 4u * oi, so = eo + (uint32_t)kept * (G / 2); /* byte offsets: data < 4 GB */
                gq_mma_codes<G> cw[H][2];
                uint32_t sw[H][2];
#pragma unroll
                for (int h = 0; h < H; h++)
#pragma unroll
                    for (int j = 0; j < 2; j++) { /* rows 16 h + g + 8 j */
                        const int row = 16 * h + g + 8 * j;
                        const uint32_t idx = (uint32_t)__popc(mask & ((1u << row) - 1u));
                        cw[h][j] = gq_mma_load_codes<G>(a.tdata + (eo + idx * (G / 2) + q * (G / 8)));
                        sw[h][j] = (mask >> row) & 1u ? gq_ld_stream_u32(a.tdata + (so + 4 * idx)) : 0u;
                    }
#pragma unroll
                for (int s = 0; s < G / 16; s++) {
                    uint32_t xf[NO][2];
#pragma unroll
                    for (int o = 0; o < NO; o++) {
                        const __half *xp = a.x + (xo[o] + (uint32_t)col + 16 * s);
                        xf[o][0] = gq_ld_coherent_u32(xp);
                        xf[o][1] = gq_ld_coherent_u32(xp + 8);
                    }
#pragma unroll
                    for (int h = 0; h < H; h++) {
                        uint32_t af[4];
                        gq_mma_dequant((cw[h][0].w[s >> 1] >> (16 * (s & 1))) & 0xFFFFu,
                                       (cw[h][1].w[s >> 1] >> (16 * (s & 1))) & 0xFFFFu, sw[h][0], sw[h][1], af);
#pragma unroll
                        for (int o = 0; o < NO; o++) gq_mma16816(c[h][o], af, xf[o][0], xf[o][1]);
                    }
                }
            }
        }
    }
    if (S > 1) { /* every warp reaches the barrier, with or without blocks */
        if (wp > 0)
#pragma unroll
            for (int h = 0; h < H; h++)
#pragma unroll
                for (int o = 0; o < NO; o++)
#pragma unroll
                    for (int r = 0; r < 4; r++) part[wp - 1][(h * NO + o) * 4 + r][lane] = c[h][o][r];
        __syncthreads();
        if (wp > 0) return;
        for (int w = 1; w < S; w++)
#pragma unroll
            for (int h = 0; h < H; h++)
#pragma unroll
                for (int o = 0; o < NO; o++)
#pragma unroll
                    for (int r = 0; r < 4; r++) c[h][o][r] += part[w - 1][(h * NO + o) * 4 + r][lane];
    }
    /* c[h][o][r]: row 32 T + 16 h + g + 8 (r >> 1), batch 8 o + 2 q + (r & 1) */
#pragma unroll
    for (int h = 0; h < H; h++)
#pragma unroll
        for (int o = 0; o < NO; o++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const int row = GQ_TILE_ROWS * T + 16 * h + g + 8 * (r >> 1), b = 8 * o + 2 * q + (r & 1);
                if (row < a.N && b < a.nb) {
                    if (a.y_fp32) static_cast<float *>(a.y)[(size_t)b * a.N + row] = c[h][o][r];
                    else static_cast<__half *>(a.y)[(size_t)b * a.N + row] = __float2half_rn(c[h][o][r]);
                }
            }
}

#endif
