/* gqs_tiles.c — the v18 tile stream (gqs_pack.h "v18 tile stream"): its build from the device format, and a
 * CPU emulation of how the tensor-core kernel (core/cuda/gqs_mma.h) reads it, lane by lane, so the layout and
 * the fragment arithmetic are tested on a machine without a GPU (tests/test_gqs_pack.c).
 *
 * Must not: call CUDA (plain C, built everywhere).
 */
#include <stdlib.h>
#include <string.h>

#include "gqs_pack.h"

void gq_gqs_tiles_free(gq_gqs_tiles *t) {
    if (!t) return;
    free(t->tblk), free(t->meta), free(t->col), free(t->boff), free(t->data);
    memset(t, 0, sizeof *t);
}

/* Code j (0..G-1) of slot s of the device format: quad word (s G + j) / 8, nibble of code j % 8. */
static inline int slot_code(const gq_gqs_dev *d, int64_t s, int j) {
    const int64_t p = s * d->G + j;
    uint32_t w;
    memcpy(&w, d->codes + 4 * (p / 8), 4);
    return (int)(w >> (4 * gq_quad_nibble((int)(p % 8)))) & 15;
}

/* The G/8 bytes of lane quarter q for one kept row (slot s): a 16-bit chunk per 16-column step. */
static void put_quarter(const gq_gqs_dev *d, int64_t s, int q, uint8_t *out) {
    for (int st = 0; st < d->G / 16; st++) {
        const int c0 = 16 * st + 2 * q;
        const unsigned v = (unsigned)slot_code(d, s, c0) | (unsigned)slot_code(d, s, c0 + 8) << 4 |
                           (unsigned)slot_code(d, s, c0 + 1) << 8 | (unsigned)slot_code(d, s, c0 + 9) << 12;
        out[2 * st] = (uint8_t)(v & 0xFF), out[2 * st + 1] = (uint8_t)(v >> 8);
    }
}

gq_status gq_gqs_tiles_build(const gq_gqs_dev *d, gq_gqs_tiles *t) {
    memset(t, 0, sizeof *t);
    const int G = d->G, C = d->K / d->G;
    if (G < 16) return gq_errf(GQ_ERR_UNSUPPORTED, "gqs tiles: G %d (an mma step covers 16 columns: G >= 16)", G);
    if (C > 65536) return gq_errf(GQ_ERR_ARG, "gqs tiles: %d column groups (the entry's field holds 65536)", C);
    const int T = (d->N + GQ_TILE_ROWS - 1) / GQ_TILE_ROWS;
    /* slot[i C + c]: the slot of row 16 T + i's group c, -1 when pruned (one tile at a time) */
    int64_t *slot = gq_malloc((size_t)GQ_TILE_ROWS * (C ? C : 1) * sizeof *slot);
    /* pass 1: entries and bytes per tile */
    int64_t nent = 0, words = 0;
    for (int pass = 0; pass < 2; pass++) {
        int64_t e = 0, w = 0;
        for (int tt = 0; tt < T; tt++) {
            for (int64_t i = 0; i < (int64_t)GQ_TILE_ROWS * C; i++) slot[i] = -1;
            for (int i = 0; i < GQ_TILE_ROWS && GQ_TILE_ROWS * tt + i < d->N; i++) {
                const int r = GQ_TILE_ROWS * tt + i;
                const int64_t a = (int64_t)d->row_unit[r] * 32 / G, n = gq_gqs_dev_row_groups(d, r);
                for (int64_t s = a; s < a + n; s++) slot[(int64_t)i * C + d->col[s]] = s;
            }
            const int64_t e0 = e;
            if (pass) t->tblk[tt] = (int32_t)(e0 / GQ_TILE_BLK);
            for (int c = 0; c < C; c++) {
                uint32_t mask = 0;
                int kept = 0;
                for (int i = 0; i < GQ_TILE_ROWS; i++)
                    if (slot[(int64_t)i * C + c] >= 0) mask |= 1u << i, kept++;
                if (!mask) continue;
                if (pass) {
                    if ((e - e0) % GQ_TILE_BLK == 0) t->boff[e / GQ_TILE_BLK] = (uint32_t)w;
                    t->meta[e] = mask, t->col[e] = (uint16_t)c;
                    uint8_t *p = t->data + 4 * w;
                    for (int i = 0, k = 0; i < GQ_TILE_ROWS; i++) {
                        const int64_t s = slot[(int64_t)i * C + c];
                        if (s < 0) continue;
                        for (int q = 0; q < 4; q++) put_quarter(d, s, q, p + (int64_t)k * (G / 2) + q * (G / 8));
                        memcpy(p + (int64_t)kept * (G / 2) + 4 * k, &d->sm[s], 4);
                        k++;
                    }
                    t->kept += kept;
                }
                e++, w += gq_tile_entry_bytes(G, kept) / 4;
            }
            for (; (e - e0) % GQ_TILE_BLK; e++) /* padding entries (no bytes) end the tile's last block */
                if (pass) t->meta[e] = 0, t->col[e] = 0;
            if (4 * w > (int64_t)UINT32_MAX - 128) { /* the kernel adds 32-bit byte offsets */
                free(slot);
                gq_gqs_tiles_free(t);
                return gq_errf(GQ_ERR_ARG, "gqs tiles: data past 4 GB at tile %d (the kernel's byte offsets are 32-bit)", tt);
            }
        }
        if (!pass) {
            nent = e, words = w;
            if (nent / GQ_TILE_BLK > INT32_MAX) {
                free(slot);
                return gq_errf(GQ_ERR_ARG, "gqs tiles: %lld entries (block indices are int32)", (long long)nent);
            }
            t->N = d->N, t->K = d->K, t->G = G, t->ntiles = T;
            t->nent = nent, t->nblk = nent / GQ_TILE_BLK, t->data_bytes = 4 * words;
            t->tblk = gq_malloc((size_t)(T + 1) * sizeof *t->tblk);
            t->meta = gq_malloc((size_t)(nent ? nent : 1) * 4);
            t->col = gq_malloc((size_t)(nent ? nent : 1) * 2);
            t->boff = gq_malloc((size_t)(t->nblk ? t->nblk : 1) * 4);
            t->data = gq_calloc((size_t)(4 * words + 16), 1); /* entry padding stays 0 */
        } else {
            t->tblk[T] = (int32_t)(e / GQ_TILE_BLK);
        }
    }
    free(slot);
    return GQ_OK;
}

int gq_gqs_tiles_warps(const gq_gqs_tiles *t, int64_t slots) {
    if (t->ntiles == 0) return 1;
    const int64_t per_tile = t->nblk / t->ntiles; /* mean blocks per tile */
    int S = 1; /* double while the grid still fits one wave and every warp keeps a block */
    while (S < 16 && (int64_t)t->ntiles * 2 * S <= slots && 2 * S <= per_tile) S *= 2;
    return S;
}

static inline uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline unsigned popc(uint32_t v) { return (unsigned)__builtin_popcount(v); }
static inline float h2f(uint32_t h) { return gq_fp16_to_fp32((uint16_t)h); }

/* The kernel's A-fragment decode for one lane (g = lane / 4, q = lane % 4) of half h (rows 16 h ..) at step st of an
 * entry: the values of its registers a0..a3 (rows g, g + 8, g, g + 8 of the half; columns 2q, 2q + 1 for a0/a1,
 * 2q + 8, 2q + 9 for a2/a3) as floats, from the chunk words exactly as gqs_mma.h combines them (byte_perm
 * 0x5140, the 0x000F000F / 0x00F000F0 masks, the shift by 8). */
static void lane_a(const uint8_t *ent, uint32_t mask, int G, int h, int g, int q, int st, float a[4][2]) {
    const int kept = (int)popc(mask);
    uint32_t ch[2] = {0, 0}, sm[2] = {0, 0};
    for (int j = 0; j < 2; j++) { /* rows 16 h + g and 16 h + g + 8 */
        const int row = 16 * h + g + 8 * j;
        if (!(mask >> row & 1)) continue;
        const int idx = (int)popc(mask & ((1u << row) - 1));
        const uint8_t *c = ent + (int64_t)idx * (G / 2) + q * (G / 8) + 2 * st;
        ch[j] = (uint32_t)c[0] | (uint32_t)c[1] << 8;
        sm[j] = rd32(ent + (int64_t)kept * (G / 2) + 4 * idx);
    }
    /* __byte_perm(ch[0], ch[1], 0x5140): bytes ch0.b0, ch1.b0, ch0.b1, ch1.b1 */
    const uint32_t w = (ch[0] & 0xFF) | (ch[1] & 0xFF) << 8 | (ch[0] >> 8 & 0xFF) << 16 | (ch[1] >> 8 & 0xFF) << 24;
    const uint32_t w8 = w >> 8;
    const uint32_t lo[2] = {w & 0x000F000Fu, w8 & 0x000F000Fu};               /* codes, fp16 lanes lo / hi */
    const uint32_t hi[2] = {(w & 0x00F000F0u) >> 4, (w8 & 0x00F000F0u) >> 4}; /* 16 q scaled back by 1/16 */
    for (int j = 0; j < 2; j++) {
        const float s = h2f(sm[j] & 0xFFFF), m = h2f(sm[j] >> 16);
        a[j][0] = (float)(lo[j] & 0xFFFF) * s + m, a[j][1] = (float)(lo[j] >> 16) * s + m;         /* a0 / a1 */
        a[2 + j][0] = (float)(hi[j] & 0xFFFF) * s + m, a[2 + j][1] = (float)(hi[j] >> 16) * s + m; /* a2 / a3 */
    }
}

gq_status gq_gqs_tiles_emulate(const gq_gqs_tiles *t, int S, const float *x, int B, double *y) {
    const int G = t->G, K = t->K, N = t->N, NO = B > 8 ? 2 : 1, H = GQ_TILE_ROWS / 16; /* batch octets: mma N = 8 */
    if (S < 1 || S > 16 || B < 1 || B > 16) return gq_errf(GQ_ERR_ARG, "gqs tiles emulate: S %d, B %d", S, B);
    double(*sum)[2][2][4] = gq_malloc(32 * sizeof *sum); /* the CTA's sum of its warps' C fragments [lane][h][o][r] */
    double(*c)[2][2][4] = gq_malloc(32 * sizeof *c);     /* one warp's accumulators */
    for (int tt = 0; tt < t->ntiles; tt++) {
        const int b0 = t->tblk[tt], nb = t->tblk[tt + 1] - b0;
        memset(sum, 0, 32 * sizeof *sum);
        for (int wp = 0; wp < S; wp++) {
            memset(c, 0, 32 * sizeof *c);
            const int eb = b0 + wp * nb / S, ee = b0 + (wp + 1) * nb / S;
            uint32_t off = eb < ee ? t->boff[eb] : 0;
            for (int64_t e = (int64_t)eb * GQ_TILE_BLK; e < (int64_t)ee * GQ_TILE_BLK; e++) {
                const uint32_t mask = t->meta[e], cg = t->col[e];
                const uint8_t *ent = t->data + 4 * (int64_t)off;
                off += (uint32_t)(gq_tile_entry_bytes(G, (int)popc(mask)) / 4);
                for (int st = 0; st < G / 16; st++) {
                    const int64_t col = (int64_t)cg * G + 16 * st;
                    float Bt[2][16][8]; /* k16 x n8 per octet from the lanes' b0 / b1: batch 8 o + g, columns 2q (+1), 2q + 8 (+1) */
                    for (int o = 0; o < NO; o++)
                        for (int lane = 0; lane < 32; lane++) {
                            const int g = lane / 4, q = lane % 4, b = 8 * o + g;
                            for (int i = 0; i < 2; i++) {
                                Bt[o][2 * q + i][g] = b < B ? x[(int64_t)b * K + col + 2 * q + i] : 0.f;
                                Bt[o][2 * q + 8 + i][g] = b < B ? x[(int64_t)b * K + col + 2 * q + 8 + i] : 0.f;
                            }
                        }
                    for (int h = 0; h < H; h++) {
                        float A[16][16]; /* half h's m16 x k16 A tile assembled from the 32 lanes' registers */
                        for (int lane = 0; lane < 32; lane++) {
                            const int g = lane / 4, q = lane % 4;
                            float a[4][2];
                            lane_a(ent, mask, G, h, g, q, st, a);
                            for (int i = 0; i < 2; i++) {
                                A[g][2 * q + i] = a[0][i], A[g + 8][2 * q + i] = a[1][i];
                                A[g][2 * q + 8 + i] = a[2][i], A[g + 8][2 * q + 8 + i] = a[3][i];
                            }
                        }
                        for (int o = 0; o < NO; o++)
                            for (int lane = 0; lane < 32; lane++) { /* c0, c1: row g, n 2q, 2q + 1; c2, c3: row g + 8 */
                                const int g = lane / 4, q = lane % 4;
                                for (int r = 0; r < 4; r++) {
                                    const int m = g + 8 * (r >> 1), n = 2 * q + (r & 1);
                                    double d = 0;
                                    for (int k = 0; k < 16; k++) d += (double)A[m][k] * Bt[o][k][n];
                                    c[lane][h][o][r] += d;
                                }
                            }
                    }
                }
            }
            for (int lane = 0; lane < 32; lane++)
                for (int h = 0; h < H; h++)
                    for (int o = 0; o < NO; o++)
                        for (int r = 0; r < 4; r++) sum[lane][h][o][r] += c[lane][h][o][r];
        }
        /* the kernel's store: lane (g, q) of half h writes rows 32 T + 16 h + g (+ 8), batches 8 o + 2q (+ 1) */
        for (int lane = 0; lane < 32; lane++)
            for (int h = 0; h < H; h++)
                for (int o = 0; o < NO; o++)
                    for (int r = 0; r < 4; r++) {
                        const int row = GQ_TILE_ROWS * tt + 16 * h + lane / 4 + 8 * (r >> 1), b = 8 * o + 2 * (lane % 4) + (r & 1);
                        if (row < N && b < B) y[(int64_t)b * N + row] = sum[lane][h][o][r];
                    }
    }
    free(sum), free(c);
    return GQ_OK;
}
