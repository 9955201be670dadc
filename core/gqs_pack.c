/* gqs_pack.c — GQS -> GPU device format re-layout, its CPU decoders, the CPU emulation of the Stream-K
 * split (same code as the kernel: cuda/gqs_sk.h), and random GQS matrices. Layout: gqs_pack.h.
 * Must not: call CUDA, or print (errors go through gq_errf).
 */
#include "gqs_pack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/gqs_sk.h"

/* ---- format ------------------------------------------------------------------------------------- */

int gq_gqs_dev_supported(int G, int bits, const char **why) {
    const char *w = NULL;
    if (bits != 4)
        w = "the GPU kernels implement 4-bit codes only (2/3/8-bit GQS layers run on the CPU path)";
    else if (G != 8 && G != 16 && G != 32 && G != 64 && G != 128)
        w = "the GPU kernels implement group sizes 8, 16, 32, 64 and 128";
    if (why) *why = w;
    return w == NULL;
}


static inline int dev_code_at(const gq_gqs_dev *d, int64_t p) {
    /* p: index into the weight stream (unit p/32) */
    const int64_t u = p / 32;
    const int pos = (int)(p % 32), q = pos / 8, nib = gq_quad_nibble(pos % 8);
    const uint8_t byte = d->codes[u * 16 + q * 4 + nib / 2];
    return (nib & 1) ? byte >> 4 : byte & 15;
}

gq_status gq_gqs_pack(const gq_gqs *g, const char *what, gq_gqs_dev *out) {
    memset(out, 0, sizeof *out);
    const char *why = NULL;
    if (!what) what = "(unnamed)";
    if (!gq_gqs_dev_supported(g->G, g->bits, &why))
        return gq_errf(GQ_ERR_UNSUPPORTED, "gqs_pack %s: G=%d bits=%d: %s", what, g->G, g->bits, why);
    GQ_TRY(gq_gqs_validate(g, what));
    const int G = g->G, N = g->N, K = g->K;
    if (K / G > 65536)
        return gq_errf(GQ_ERR_ARG, "gqs_pack %s: K/G = %d group columns do not fit the uint16 column index", what,
                       K / G);
    const int gpu = gq_gqs_dev_groups_per_unit(G), upg = gq_gqs_dev_units_per_group(G);
    int64_t U = 0;
    for (int r = 0; r < N; r++) {
        const int64_t n = g->row_index[r + 1] - g->row_index[r];
        U += G <= 32 ? (n + gpu - 1) / gpu : n * upg;
    }
    if (U > INT32_MAX)
        return gq_errf(GQ_ERR_ARG, "gqs_pack %s: %lld units overflow the int32 row offsets", what, (long long)U);
    const int64_t S = U * 32 / G;
    out->N = N, out->K = K, out->G = G, out->bits = g->bits, out->nnz = g->nnz;
    out->n_units = U, out->n_slots = S;
    out->row_unit = gq_malloc((size_t)(N + 1) * sizeof(int32_t));
    out->codes = gq_calloc((size_t)U * 16 + 16, 1); /* +16: never zero-sized */
    out->col = gq_calloc((size_t)S + 1, sizeof(uint16_t));
    out->sm = gq_calloc((size_t)S + 1, sizeof(uint32_t));
    int64_t u = 0;
    for (int r = 0; r < N; r++) {
        out->row_unit[r] = (int32_t)u;
        const int32_t i0 = g->row_index[r], n = g->row_index[r + 1] - i0;
        const int64_t slot0 = u * 32 / G; /* rows start on unit (hence slot) boundaries */
        for (int32_t t = 0; t < n; t++) {
            const size_t i = (size_t)i0 + (size_t)t;
            const float sc = g->scales[i], mn = -g->zeros[i] * g->scales[i];
            if (!isfinite(sc) || !isfinite(mn) || fabsf(sc) > 65504.0f || fabsf(mn) > 65504.0f) {
                gq_gqs_dev_free(out);
                return gq_errf(GQ_ERR_NUMERIC,
                               "gqs_pack %s: row %d group column %d: scale %g / min %g is not a finite fp16 value", what,
                               r, g->group_col[i], sc, mn);
            }
            out->col[slot0 + t] = (uint16_t)g->group_col[i];
            out->sm[slot0 + t] = (uint32_t)gq_fp32_to_fp16(sc) | ((uint32_t)gq_fp32_to_fp16(mn) << 16);
            for (int j = 0; j < G; j++) {
                const int64_t p = u * 32 + (int64_t)t * G + j;
                const int pos = (int)(p % 32), nib = gq_quad_nibble(pos % 8);
                uint8_t *b = &out->codes[(p / 32) * 16 + (pos / 8) * 4 + nib / 2];
                const int c = gq_gqs_get_code(g, i, j);
                *b |= (uint8_t)((nib & 1) ? c << 4 : c);
            }
        }
        u += G <= 32 ? (n + gpu - 1) / gpu : (int64_t)n * upg;
    }
    out->row_unit[N] = (int32_t)u;
    GQ_ASSERT(u == U);
    return GQ_OK;
}

void gq_gqs_dev_free(gq_gqs_dev *d) {
    if (!d) return;
    free(d->row_unit);
    free(d->codes);
    free(d->col);
    free(d->sm);
    memset(d, 0, sizeof *d);
}

/* Number of real (non-padding) slots of row r: real groups come first with strictly ascending columns;
 * padding slots (column 0, scale 0, min 0) follow, so the first column that does not ascend ends them. */
int64_t gq_gqs_dev_row_groups(const gq_gqs_dev *d, int r) {
    const int64_t a = (int64_t)d->row_unit[r] * 32 / d->G, b = (int64_t)d->row_unit[r + 1] * 32 / d->G;
    int64_t s = a;
    for (; s < b; s++)
        if (s > a && d->col[s] <= d->col[s - 1]) break;
    return s - a;
}

int gq_gqs_dev_get_code(const gq_gqs_dev *d, int r, int k) {
    GQ_ASSERT(r >= 0 && r < d->N && k >= 0 && k < d->K);
    const int64_t a = (int64_t)d->row_unit[r] * 32 / d->G, n = gq_gqs_dev_row_groups(d, r);
    for (int64_t s = a; s < a + n; s++)
        if (d->col[s] == k / d->G) return dev_code_at(d, s * d->G + k % d->G);
    return -1;
}

static inline void sm_unpack(uint32_t sm, float *scale, float *mn) {
    *scale = gq_fp16_to_fp32((uint16_t)(sm & 0xFFFF));
    *mn = gq_fp16_to_fp32((uint16_t)(sm >> 16));
}

void gq_gqs_dev_expand(const gq_gqs_dev *d, float *w) {
    memset(w, 0, (size_t)d->N * d->K * sizeof(float));
    for (int r = 0; r < d->N; r++) {
        const int64_t a = (int64_t)d->row_unit[r] * 32 / d->G, n = gq_gqs_dev_row_groups(d, r);
        for (int64_t s = a; s < a + n; s++) {
            float sc, mn;
            sm_unpack(d->sm[s], &sc, &mn);
            for (int j = 0; j < d->G; j++)
                w[(size_t)r * d->K + (size_t)d->col[s] * d->G + j] = (float)dev_code_at(d, s * d->G + j) * sc + mn;
        }
    }
}

void gq_rows_by_length(const int32_t *row_unit, int N, int32_t *order) {
    int32_t maxlen = 0;
    for (int r = 0; r < N; r++)
        if (row_unit[r + 1] - row_unit[r] > maxlen) maxlen = row_unit[r + 1] - row_unit[r];
    /* start[L] = first output slot of rows of length L, longest first */
    int64_t *start = gq_calloc((size_t)maxlen + 2, sizeof *start);
    for (int r = 0; r < N; r++) start[maxlen - (row_unit[r + 1] - row_unit[r]) + 1]++;
    for (int32_t i = 1; i <= maxlen + 1; i++) start[i] += start[i - 1];
    for (int r = 0; r < N; r++) order[start[maxlen - (row_unit[r + 1] - row_unit[r])]++] = r;
    free(start);
}

int64_t gq_gqs_stream_row_bytes(int G, int dense, int64_t quads) {
    const int64_t nblk = (quads + 31) / 32;
    const int64_t b = nblk / 4 * GQ_STREAM_FULL(G, dense) + nblk % 4 * GQ_STREAM_SHORT(G, dense);
    return (b + 15) & ~(int64_t)15;
}

gq_status gq_gqs_stream_layout(const gq_gqs_dev *d, int dense, int32_t *srow, uint8_t *out, int64_t *bytes) {
    const int G = d->G, QPG = G / 8, SPR = GQ_STREAM_SPR(G);
    const int FULL = GQ_STREAM_FULL(G, dense), SHORT = GQ_STREAM_SHORT(G, dense);
    int64_t off = 0;
    for (int r = 0; r < d->N; r++) {
        const int64_t q0 = 4 * (int64_t)d->row_unit[r], n = 4 * (int64_t)(d->row_unit[r + 1] - d->row_unit[r]);
        const int64_t nblk = (n + 31) / 32, nf = nblk / 4, rb = gq_gqs_stream_row_bytes(G, dense, n);
        if (off / 16 > INT32_MAX || nblk > INT32_MAX)
            return gq_errf(GQ_ERR_ARG, "gqs stream: row %d starts past 32 GB (offsets are int32 16-byte units)", r);
        GQ_ASSERT(q0 % QPG == 0); /* rows own whole groups */
        srow[2 * r] = (int32_t)(off / 16), srow[2 * r + 1] = (int32_t)nblk;
        if (out) { /* loops in the stream's own order, no division per quad: ~4.8x faster (tools/diag_stream_layout.c) */
            uint8_t *p = out + off;
            memset(p, 0, (size_t)rb); /* the padding quads: codes, scale|min and column 0 */
            const uint8_t *codes = d->codes + 4 * q0;
            const int64_t slot0 = q0 / QPG, nslot = n / QPG;
            for (int64_t t = 0; t < nf; t++) { /* full round t: quads 128 t + 32 i + l at 16 l + 4 i */
                uint8_t *round = p + t * FULL;
                for (int i = 0; i < 4; i++)
                    for (int l = 0; l < 32; l++) {
                        const int64_t j = 128 * t + 32 * i + l;
                        if (j < n) memcpy(round + 16 * l + 4 * i, codes + 4 * j, 4);
                    }
                for (int64_t s = 0; s < 128 / QPG; s++) { /* the round's slots: entry s % SPR, word s / SPR */
                    const int64_t g = 128 / QPG * t + s;
                    if (g >= nslot) break;
                    memcpy(round + 512 + 16 * (s % SPR) + 4 * (s / SPR), &d->sm[slot0 + g], 4);
                    if (!dense) memcpy(round + 512 + 16 * SPR + 8 * (s % SPR) + 2 * (s / SPR), &d->col[slot0 + g], 2);
                }
            }
            for (int64_t t = 0; t < nblk % 4; t++) { /* short round t: quads 128 nf + 32 t + l at 4 l */
                uint8_t *round = p + nf * FULL + t * SHORT;
                const int64_t j0 = 128 * nf + 32 * t;
                for (int l = 0; l < 32 && j0 + l < n; l++) memcpy(round + 4 * l, codes + 4 * (j0 + l), 4);
                for (int64_t s = 0; s < 32 / QPG && (j0 / QPG + s) < nslot; s++) {
                    memcpy(round + 128 + 4 * s, &d->sm[slot0 + j0 / QPG + s], 4);
                    if (!dense) memcpy(round + 128 + 4 * SPR + 2 * s, &d->col[slot0 + j0 / QPG + s], 2);
                }
            }
        }
        off += rb;
    }
    *bytes = off;
    return GQ_OK;
}

int64_t gq_gqs_stream_rounds(const int32_t *srow, int N) {
    int64_t t = 0;
    for (int r = 0; r < N; r++) t += (srow[2 * r + 1] >> 2) + (srow[2 * r + 1] & 3);
    return t;
}

int gq_gqs_rows_split(int64_t N, int64_t rounds, int64_t slots) {
    GQ_ASSERT(slots >= 1);
    if (N <= 0) return 1;
    int best = 1;
    double best_eff = 0;
    for (int R = 1; R <= 4; R *= 2) {
        if (R > 1 && (int64_t)R * N > rounds) break; /* fewer rounds than parts, on the mean */
        const double w = (double)N * R / (double)slots, eff = w / ceil(w);
        if (R == 1 || eff > 1.1 * best_eff) best = R, best_eff = eff;
    }
    return best;
}

gq_status gq_gqs_stream_split(const int32_t *srow, int N, int G, int dense, int64_t W, int mode, int32_t *wstart,
                              int32_t *rfix, int64_t *W_out) {
    const int64_t FULL = GQ_STREAM_FULL(G, dense), SHORT = GQ_STREAM_SHORT(G, dense);
    int64_t tokens = 0, total = 0;
    for (int r = 0; r < N; r++) {
        const int64_t nb = srow[2 * r + 1], nr = nb / 4 + nb % 4;
        tokens += nr ? nr : 1;
        total = 16 * (int64_t)srow[2 * r] + ((nb / 4 * FULL + nb % 4 * SHORT + 15) & ~(int64_t)15);
    }
    if (total > INT32_MAX) return gq_errf(GQ_ERR_ARG, "gqs stream split: %lld bytes, over the int32 offsets", (long long)total);
    const int64_t cap = mode == 1 ? tokens : N;
    if (W > cap) W = cap;
    if (W < 1) W = 1;
    *W_out = W;
    int64_t w = 0; /* the next warp to place */
    for (int r = 0; r < N && w < W; r++) {
        const int64_t nb = srow[2 * r + 1], nf = nb / 4, nr = nf + nb % 4, base = 16 * (int64_t)srow[2 * r];
        for (int64_t t = 0; t < (nr ? nr : 1) && w < W; t++) {
            const int64_t o = base + (t < nf ? t * FULL : nf * FULL + (t - nf) * SHORT);
            while (w < W && (mode == 1   ? o >= w * total / W
                             : mode == 2 ? t == 0 && o >= w * total / W
                                         : t == 0 && r >= w * N / W)) {
                int32_t *e = wstart + 4 * w++;
                e[0] = r, e[1] = (int32_t)t, e[2] = (int32_t)o, e[3] = 0;
            }
        }
    }
    for (; w <= W; w++) { /* past the last token: empty ranges, then the end */
        int32_t *e = wstart + 4 * w;
        e[0] = N, e[1] = 0, e[2] = (int32_t)total, e[3] = 0;
    }
    for (int r = 0; r < N; r++) rfix[2 * r] = -1, rfix[2 * r + 1] = 1;
    for (int64_t v = 0; v < W; v++) { /* a non-empty range starting inside a row adds a part to it */
        const int32_t *s = wstart + 4 * v, *e = s + 4;
        if (s[1] == 0 || (s[0] == e[0] && s[1] == e[1])) continue;
        int32_t *f = rfix + 2 * s[0];
        if (f[0] < 0) { /* the row's first part: the last warp whose range starts at or before its round 0 */
            int64_t a = v - 1;
            while (wstart[4 * a] == s[0] && wstart[4 * a + 1] > 0) a--;
            f[0] = (int32_t)a;
        }
        f[1]++;
    }
    return GQ_OK;
}

size_t gq_gqs_dev_bytes(const gq_gqs_dev *d, int dense) {
    size_t b = (size_t)d->n_units * 16 + (size_t)d->n_slots * 4;
    if (!dense) b += (size_t)d->n_slots * 2 + (size_t)(d->N + 1) * 4;
    return b;
}

/* ---- Stream-K emulation --------------------------------------------------------------------------- */

/* Sum over units [lo, hi) of W_hat x_b, exactly as the kernel indexes it (stream index p -> slot p/G,
 * column col[slot]*G + p%G), in float64. */
static void units_dot(const gq_gqs_dev *d, int64_t lo, int64_t hi, const float *x, int B, double *acc) {
    for (int b = 0; b < B; b++) acc[b] = 0;
    for (int64_t p = lo * 32; p < hi * 32; p++) {
        const int64_t slot = p / d->G;
        float sc, mn;
        sm_unpack(d->sm[slot], &sc, &mn);
        const double w = (double)dev_code_at(d, p) * sc + mn;
        const int64_t k = (int64_t)d->col[slot] * d->G + p % d->G;
        for (int b = 0; b < B; b++) acc[b] += w * x[(size_t)b * d->K + k];
    }
}

gq_status gq_gqs_sk_emulate(const gq_gqs_dev *d, int64_t W, const int64_t *order, const float *x, int B, double *y,
                            int *writes, gq_sk_stats *stats) {
    GQ_ASSERT(W >= 1 && B >= 1);
    const int N = d->N;
    const int64_t U = d->n_units;
    const int32_t *ru = d->row_unit;
    double *rec = gq_calloc((size_t)(2 * W) * B, sizeof(double));
    int *cnt = gq_calloc((size_t)N, sizeof(int));
    int *wr = gq_calloc((size_t)N, sizeof(int));
    double *acc = gq_malloc((size_t)B * sizeof(double));
    gq_sk_stats st = {0, 0, 0, INT64_MAX};
    gq_status status = GQ_OK;
    for (int64_t idx = 0; idx < W && status == GQ_OK; idx++) {
        const int64_t w = order ? order[idx] : idx;
        GQ_ASSERT(w >= 0 && w < W);
        const int64_t s = gq_sk_begin(U, W, w), e = gq_sk_begin(U, W, w + 1);
        if (e - s > st.max_share) st.max_share = e - s;
        if (e - s < st.min_share) st.min_share = e - s;
        for (int r = gq_sk_first_row(ru, N, U, s); gq_sk_visits(ru, N, U, e, w == W - 1, r); r++) {
            const int64_t lo = ru[r] > s ? ru[r] : s, hi = ru[r + 1] < e ? ru[r + 1] : e;
            units_dot(d, lo, hi > lo ? hi : lo, x, B, acc);
            if (gq_sk_complete(ru, r, s, e)) {
                for (int b = 0; b < B; b++) y[(size_t)b * N + r] = acc[b];
                wr[r]++;
                continue;
            }
            const int slot = gq_sk_slot(ru, r, s);
            for (int b = 0; b < B; b++) rec[(size_t)(2 * w + slot) * B + b] = acc[b];
            st.records++;
            const int64_t wa = gq_sk_worker_of(U, W, ru[r]), wb = gq_sk_worker_of(U, W, ru[r + 1] - 1);
            if (w < wa || w > wb) {
                status = gq_errf(GQ_ERR_INTERNAL, "sk: worker %lld visits cut row %d owned by workers %lld..%lld",
                                 (long long)w, r, (long long)wa, (long long)wb);
                break;
            }
            if (++cnt[r] > wb - wa + 1) {
                status = gq_errf(GQ_ERR_INTERNAL, "sk: row %d counter overshoots %lld", r, (long long)(wb - wa + 1));
                break;
            }
            if (cnt[r] == wb - wa + 1) { /* last arriver: fix-up in worker order */
                for (int b = 0; b < B; b++) {
                    double sum = 0;
                    for (int64_t v = wa; v <= wb; v++)
                        sum += rec[(size_t)(2 * v + gq_sk_slot(ru, r, gq_sk_begin(U, W, v))) * B + b];
                    y[(size_t)b * N + r] = sum;
                }
                wr[r]++;
                cnt[r] = 0;
                st.cut_rows++;
            }
        }
    }
    for (int r = 0; r < N && status == GQ_OK; r++) {
        if (wr[r] != 1) status = gq_errf(GQ_ERR_INTERNAL, "sk: row %d written %d times (U=%lld, W=%lld)", r, wr[r],
                                         (long long)U, (long long)W);
        else if (cnt[r] != 0) status = gq_errf(GQ_ERR_INTERNAL, "sk: row %d counter left at %d", r, cnt[r]);
    }
    if (writes) memcpy(writes, wr, (size_t)N * sizeof(int));
    if (stats) *stats = st;
    free(rec), free(cnt), free(wr), free(acc);
    return status;
}

/* ---- v2 flat (segmented) stream emulation ------------------------------------------------------ */

/* One worker of the flat stream (gqs_sk.h, v2), lane by lane as core/cuda/gqs_flat.h runs it, with the
 * shuffles of the segmented sum replayed on arrays. UNR rounds per chunk only matter for the load
 * pipeline, not for the arithmetic, so rounds are walked one by one. */
typedef struct {
    const gq_gqs_dev *d;
    int mode, B;
    int64_t W;
    const float *x;
    double *y, *rec;
    int *cnt, *wr;
    gq_sk_stats *st;
} flat_ctx;

static gq_status flat_flush(flat_ctx *c, int64_t w, int64_t s, int64_t e, int r, const double *v) {
    const int32_t *ru = c->d->row_unit;
    const int N = c->d->N, B = c->B;
    const int64_t U = c->d->n_units, rs = ru[r], re = ru[r + 1];
    if (c->mode == 0 || (rs >= s && re <= e)) {
        for (int b = 0; b < B; b++) c->y[(size_t)b * N + r] = v[b];
        c->wr[r]++;
        return GQ_OK;
    }
    const int slot = gq_sk_slot(ru, r, s);
    for (int b = 0; b < B; b++) c->rec[(size_t)(2 * w + slot) * B + b] = v[b];
    c->st->records++;
    const int64_t wa = gq_sk_worker_of(U, c->W, rs), wb = gq_sk_worker_of(U, c->W, re - 1);
    if (w < wa || w > wb)
        return gq_errf(GQ_ERR_INTERNAL, "flat: worker %lld flushes cut row %d owned by workers %lld..%lld", (long long)w,
                       r, (long long)wa, (long long)wb);
    if (++c->cnt[r] > wb - wa + 1) return gq_errf(GQ_ERR_INTERNAL, "flat: row %d counter overshoots", r);
    if (c->cnt[r] == wb - wa + 1) {
        for (int b = 0; b < B; b++) {
            double sum = 0;
            for (int64_t v2 = wa; v2 <= wb; v2++)
                sum += c->rec[(size_t)(2 * v2 + gq_sk_slot(ru, r, gq_sk_begin(U, c->W, v2))) * B + b];
            c->y[(size_t)b * N + r] = sum;
        }
        c->wr[r]++;
        c->cnt[r] = 0;
        c->st->cut_rows++;
    }
    return GQ_OK;
}

static gq_status flat_worker(flat_ctx *c, int64_t w, int64_t rpw) {
    const gq_gqs_dev *d = c->d;
    const int32_t *ru = d->row_unit;
    const int N = d->N, B = c->B;
    const int64_t U = d->n_units;
    int64_t s, e;
    int rA, rB;
    if (c->mode == 0) {
        const int64_t R0 = w * rpw, R1 = R0 + rpw < N ? R0 + rpw : N;
        rA = (int)R0, rB = (int)R1, s = ru[R0], e = ru[R1];
    } else {
        s = gq_sk_begin(U, c->W, w), e = gq_sk_begin(U, c->W, w + 1);
        const int64_t L = gq_sk_count_le32(ru, (int64_t)N + 1, s - 1), Le = gq_sk_count_le32(ru, N, e - 1);
        rA = gq_sk_first_row_from(ru, L, s);
        rB = gq_sk_row_end_from(Le, N, w == c->W - 1, rA);
        /* the v1 walk's rows, for the record: the two must visit the same rows */
        int r1 = gq_sk_first_row(ru, N, U, s), r2 = r1;
        while (gq_sk_visits(ru, N, U, e, w == c->W - 1, r2)) r2++;
        if (r1 != rA || (r2 != rB && !(r2 == r1 && rB == rA)))
            return gq_errf(GQ_ERR_INTERNAL, "flat: worker %lld rows [%d,%d) but the v1 walk visits [%d,%d)", (long long)w,
                           rA, rB, r1, r2);
    }
    if (e - s > c->st->max_share) c->st->max_share = e - s;
    if (e - s < c->st->min_share) c->st->min_share = e - s;
    int cur[32], row[32];
    int64_t nx[32];
    double *v = gq_malloc((size_t)32 * B * sizeof(double)), *vo = gq_malloc((size_t)32 * B * sizeof(double));
    double *carry = gq_calloc((size_t)B, sizeof(double));
    int carry_row = -1;
    gq_status status = GQ_OK;
    for (int l = 0; l < 32; l++) cur[l] = rA, nx[l] = s < e ? ru[rA + 1] : 0;
    for (int64_t ub = s; ub < e && status == GQ_OK; ub += 32) {
        for (int l = 0; l < 32; l++) {
            const int64_t u = ub + l;
            if (u < e) {
                while (nx[l] <= u) cur[l]++, nx[l] = ru[cur[l] + 1];
                row[l] = cur[l];
                units_dot(d, u, u + 1, c->x, B, v + (size_t)l * B);
            } else {
                row[l] = INT32_MAX;
                for (int b = 0; b < B; b++) v[(size_t)l * B + b] = 0;
            }
        }
        for (int off = 1; off < 32; off <<= 1) { /* segmented suffix sum: shfl_down by off */
            memcpy(vo, v, (size_t)32 * B * sizeof(double));
            for (int l = 0; l + off < 32; l++)
                if (row[l + off] == row[l])
                    for (int b = 0; b < B; b++) v[(size_t)l * B + b] += vo[(size_t)(l + off) * B + b];
        }
        if (carry_row >= 0) {
            if (row[0] != carry_row) {
                status = gq_errf(GQ_ERR_INTERNAL, "flat: carry of row %d meets row %d", carry_row, row[0]);
                break;
            }
            for (int b = 0; b < B; b++) v[b] += carry[b];
        }
        const int64_t rend = ub + 32 < e ? ub + 32 : e;
        int ncont = 0;
        carry_row = -1;
        for (int l = 0; l < 32 && status == GQ_OK; l++) {
            const int head = ub + l < e && (l == 0 || row[l - 1] != row[l]);
            if (!head) continue;
            if (gq_sk_round_flushes(nx[l], rend, e)) status = flat_flush(c, w, s, e, row[l], v + (size_t)l * B);
            else {
                ncont++;
                carry_row = row[l];
                for (int b = 0; b < B; b++) carry[b] = v[(size_t)l * B + b];
            }
        }
        if (ncont > 1) status = gq_errf(GQ_ERR_INTERNAL, "flat: %d rows continue past one round", ncont);
    }
    if (status == GQ_OK && carry_row >= 0)
        status = gq_errf(GQ_ERR_INTERNAL, "flat: worker %lld ends with row %d unflushed", (long long)w, carry_row);
    /* visited empty rows (complete by construction) and, for an empty share, the cut row it visits */
    for (int r = rA; r < rB && status == GQ_OK; r++) {
        for (int b = 0; b < B; b++) v[b] = 0;
        if (ru[r] == ru[r + 1]) {
            if (c->mode == 1 && !gq_sk_complete(ru, r, s, e))
                status = gq_errf(GQ_ERR_INTERNAL, "flat: visited empty row %d not complete", r);
            else status = flat_flush(c, w, s, e, r, v);
        } else if (s == e) {
            status = flat_flush(c, w, s, e, r, v);
        }
    }
    free(v), free(vo), free(carry);
    return status;
}

gq_status gq_gqs_flat_emulate(const gq_gqs_dev *d, int mode, int64_t W, const int64_t *order, const float *x, int B,
                              double *y, int *writes, gq_sk_stats *stats) {
    GQ_ASSERT(W >= 1 && B >= 1 && (mode == 0 || mode == 1));
    const int N = d->N;
    int64_t rpw = 1;
    if (mode == 0) {
        rpw = gq_flat_rows_per_worker(N, W);
        W = (N + rpw - 1) / rpw;
    }
    flat_ctx c = {d, mode, B, W, x, y, NULL, NULL, NULL, NULL};
    gq_sk_stats st = {0, 0, 0, INT64_MAX};
    c.rec = gq_calloc((size_t)(2 * W) * B, sizeof(double));
    c.cnt = gq_calloc((size_t)N, sizeof(int));
    c.wr = gq_calloc((size_t)N, sizeof(int));
    c.st = &st;
    gq_status status = GQ_OK;
    for (int64_t idx = 0; idx < W && status == GQ_OK; idx++) {
        const int64_t w = order ? order[idx] : idx;
        GQ_ASSERT(w >= 0 && w < W);
        status = flat_worker(&c, w, rpw);
    }
    for (int r = 0; r < N && status == GQ_OK; r++) {
        if (c.wr[r] != 1) status = gq_errf(GQ_ERR_INTERNAL, "flat: row %d written %d times (U=%lld, W=%lld, mode %d)", r,
                                           c.wr[r], (long long)d->n_units, (long long)W, mode);
        else if (c.cnt[r] != 0) status = gq_errf(GQ_ERR_INTERNAL, "flat: row %d counter left at %d", r, c.cnt[r]);
    }
    if (writes) memcpy(writes, c.wr, (size_t)N * sizeof(int));
    if (stats) *stats = st;
    free(c.rec), free(c.cnt), free(c.wr);
    return status;
}

/* ---- random matrices ------------------------------------------------------------------------------ */

const char *gq_density_name(gq_density p) {
    switch (p) {
    case GQ_DENSITY_ROW: return "row";
    case GQ_DENSITY_LAYER: return "layer";
    case GQ_DENSITY_UNEVEN: return "uneven";
    }
    return "?";
}

int gq_density_parse(const char *s) {
    if (!strcmp(s, "row")) return GQ_DENSITY_ROW;
    if (!strcmp(s, "layer")) return GQ_DENSITY_LAYER;
    if (!strcmp(s, "uneven")) return GQ_DENSITY_UNEVEN;
    return -1;
}

/* Kept groups per row for the pattern, summing to round((1-sparsity) N C) (capped at C per row). */
static void row_counts(int N, int C, double sparsity, gq_density pat, gq_rng *rng, int *cnt) {
    const int64_t total = llround((1.0 - sparsity) * (double)N * C);
    double *wt = gq_malloc((size_t)N * sizeof(double));
    for (int r = 0; r < N; r++) {
        if (pat == GQ_DENSITY_ROW) wt[r] = 1;
        else if (pat == GQ_DENSITY_LAYER) wt[r] = exp(0.35 * gq_rng_normal(rng));
        else wt[r] = 0; /* uneven: set below */
    }
    if (pat == GQ_DENSITY_UNEVEN) {
        /* A quarter of the rows gets weight 9 (75% of the mass with 1 elsewhere: 9/4 : 3/4; at S50 the
         * heavy rows are capped at full and hold half the kept groups, the most a row cap allows), in
         * contiguous runs of up to 64 rows (heads / channel blocks that stay dense together), so a
         * static split by rows puts whole runs of full rows on one warp / CTA / SM: its stragglers. */
        const int run = N / 16 < 1 ? 1 : N / 16 > 64 ? 64 : N / 16;
        const int nruns = (N + run - 1) / run, heavy = nruns / 4 > 0 ? nruns / 4 : 1;
        for (int r = 0; r < N; r++) wt[r] = 1;
        for (int h = 0; h < heavy;) {
            const int q = (int)gq_rng_below(rng, (uint64_t)nruns);
            if (wt[q * run] != 1) continue;
            for (int r = q * run; r < N && r < (q + 1) * run; r++) wt[r] = 9;
            h++;
        }
    }
    /* Water-filling: distribute `total` proportionally to wt, capping rows at C and re-spreading. */
    int64_t left = total;
    for (int r = 0; r < N; r++) cnt[r] = 0;
    for (int iter = 0; iter < 64 && left > 0; iter++) {
        double wsum = 0;
        for (int r = 0; r < N; r++)
            if (cnt[r] < C) wsum += wt[r];
        if (wsum <= 0) break;
        const int64_t budget = left;
        for (int r = 0; r < N && left > 0; r++) {
            if (cnt[r] >= C) continue;
            int64_t add = (int64_t)floor((double)budget * wt[r] / wsum);
            if (add > C - cnt[r]) add = C - cnt[r];
            if (add > left) add = left;
            cnt[r] += (int)add, left -= add;
        }
        if (left == budget) /* rounding left a remainder smaller than one per row: hand it out randomly */
            for (int guard = 0; left > 0 && guard < 64 * N; guard++) {
                int r = (int)gq_rng_below(rng, (uint64_t)N);
                if (cnt[r] < C) cnt[r]++, left--;
            }
    }
    free(wt);
}

gq_status gq_gqs_random(gq_gqs *out, int N, int K, int G, int bits, double sparsity, gq_density pattern, int dyadic,
                        uint64_t seed) {
    memset(out, 0, sizeof *out);
    if (N <= 0 || K <= 0 || G <= 0 || K % G) return gq_errf(GQ_ERR_ARG, "gqs_random: bad shape %dx%d G=%d", N, K, G);
    if (bits < 1 || bits > 8) return gq_errf(GQ_ERR_ARG, "gqs_random: bits %d out of range", bits);
    if (!(sparsity >= 0 && sparsity <= 1)) return gq_errf(GQ_ERR_ARG, "gqs_random: sparsity %g not in [0,1]", sparsity);
    const int C = K / G, maxq = (1 << bits) - 1;
    if ((int64_t)N * C > INT32_MAX) return gq_errf(GQ_ERR_ARG, "gqs_random: %d x %d groups overflow int32", N, C);
    gq_rng rng;
    gq_rng_seed(&rng, seed);
    int *cnt = gq_malloc((size_t)N * sizeof(int));
    row_counts(N, C, sparsity, pattern, &rng, cnt);
    out->N = N, out->K = K, out->G = G, out->bits = bits;
    out->row_index = gq_malloc((size_t)(N + 1) * sizeof(int32_t));
    size_t nnz = 0;
    for (int r = 0; r < N; r++) out->row_index[r] = (int32_t)nnz, nnz += (size_t)cnt[r];
    out->row_index[N] = (int32_t)nnz;
    out->nnz = nnz;
    out->group_col = gq_malloc((nnz + 1) * sizeof(int32_t));
    out->scales = gq_malloc((nnz + 1) * sizeof(float));
    out->zeros = gq_malloc((nnz + 1) * sizeof(float));
    const size_t bpg = gq_gqs_bytes_per_group(G, bits);
    out->values = gq_calloc(nnz * bpg + 1, 1);
    /* columns: the first cnt[r] of a random permutation (partial Fisher-Yates), then sorted by a pass
     * over a membership bitmap so they ascend */
    int *perm = gq_malloc((size_t)C * sizeof(int));
    uint8_t *member = gq_malloc((size_t)C);
    for (int r = 0; r < N; r++) {
        for (int c = 0; c < C; c++) perm[c] = c, member[c] = 0;
        for (int t = 0; t < cnt[r]; t++) {
            int j = t + (int)gq_rng_below(&rng, (uint64_t)(C - t));
            int tmp = perm[t];
            perm[t] = perm[j], perm[j] = tmp;
            member[perm[t]] = 1;
        }
        size_t i = (size_t)out->row_index[r];
        for (int c = 0; c < C; c++)
            if (member[c]) out->group_col[i++] = c;
    }
    free(perm), free(member), free(cnt);
    for (size_t i = 0; i < nnz; i++) {
        if (dyadic) {
            out->scales[i] = ldexpf(1.0f, -4 - (int)gq_rng_below(&rng, 4)); /* 2^-4 .. 2^-7 */
            out->zeros[i] = (float)gq_rng_below(&rng, (uint64_t)maxq + 1);
        } else {
            out->scales[i] = (float)(0.004 + 0.03 * gq_rng_uniform(&rng));
            out->zeros[i] = (float)(maxq * gq_rng_uniform(&rng)); /* continuous, as after E2E-OQP */
        }
        uint8_t *v = out->values + i * bpg;
        for (int j = 0; j < G; j++) { /* little-endian bit stream, code j at bit j*bits (gqs.h) */
            const unsigned q = (unsigned)gq_rng_below(&rng, (uint64_t)maxq + 1);
            const int bit = j * bits;
            v[bit / 8] |= (uint8_t)(q << (bit % 8));
            if (bit % 8 + bits > 8) v[bit / 8 + 1] |= (uint8_t)(q >> (8 - bit % 8));
        }
    }
    return GQ_OK;
}

/* ---- v4 task list ------------------------------------------------------------------------------------ */

/* Units of chunk c of a row of n units cut into k chunks of `chunk`: full chunks, then the remnant. */
static int64_t task_len(int64_t n, int64_t k, int64_t c, int64_t chunk) { return c < k - 1 ? chunk : n - c * chunk; }

int64_t gq_gqs_task_chunk(int64_t U, int64_t slots, int64_t round) {
    GQ_ASSERT(slots >= 1 && round >= 1);
    int64_t c = (U + slots - 1) / slots;
    c = (c + round - 1) / round * round;
    return c < round ? round : c;
}

static int64_t row_rounds(const int32_t *row_unit, int r, int qpr) {
    const int64_t q = 4 * (int64_t)(row_unit[r + 1] - row_unit[r]);
    return q ? (q + qpr - 1) / qpr : 1;
}

int64_t gq_gqs_round_split(const int32_t *row_unit, int N, int qpr, int64_t workers, int max_rows, int32_t *start) {
    GQ_ASSERT(qpr >= 1 && workers >= 1 && max_rows >= 1 && N >= 0);
    int64_t R = 0;
    for (int r = 0; r < N; r++) R += row_rounds(row_unit, r, qpr);
    if (R > INT32_MAX) return -1;
    const int64_t W = workers < R ? workers : R;
    int r = 0;
    int64_t before = 0; /* rounds of rows [0, r) */
    for (int64_t w = 0; w <= W; w++) {
        const int64_t s = W ? w * R / W : 0; /* first round of warp w (R for w = W) */
        while (r < N && before + row_rounds(row_unit, r, qpr) <= s) before += row_rounds(row_unit, r, qpr), r++;
        start[2 * w] = r, start[2 * w + 1] = (int32_t)(s - before);
        if (w > 0) { /* rows of warp w - 1: from its first row to the row of round s - 1 */
            const int64_t rows = (start[2 * w + 1] > 0 ? r : r - 1) - start[2 * (w - 1)] + 1;
            if (rows > max_rows) return -1;
        }
    }
    return W;
}

gq_status gq_gqs_tasks(const int32_t *row_unit, int N, int64_t chunk, gq_gemv_task **tasks, int64_t *ntasks,
                       int32_t *row_fix, int64_t *nrec) {
    GQ_ASSERT(chunk >= 1 && N >= 0);
    *tasks = NULL, *ntasks = 0, *nrec = 0;
    int64_t nt = 0, nr = 0;
    for (int r = 0; r < N; r++) {
        const int64_t n = row_unit[r + 1] - row_unit[r];
        const int64_t k = n ? (n + chunk - 1) / chunk : 1;
        row_fix[2 * r] = k > 1 ? (int32_t)nr : -1;
        row_fix[2 * r + 1] = (int32_t)k;
        nt += k;
        if (k > 1) nr += k;
        if (nt > INT32_MAX || nr > INT32_MAX) return gq_errf(GQ_ERR_ARG, "gqs tasks: more than 2^31 tasks (chunk %lld)", (long long)chunk);
    }
    /* counting sort by length, longest first, ties in row order (lengths are <= chunk) */
    int64_t *start = gq_calloc((size_t)chunk + 2, sizeof *start);
    for (int r = 0; r < N; r++) {
        const int64_t n = row_unit[r + 1] - row_unit[r], k = row_fix[2 * r + 1];
        for (int64_t c = 0; c < k; c++) start[chunk - task_len(n, k, c, chunk) + 1]++;
    }
    for (int64_t i = 1; i <= chunk + 1; i++) start[i] += start[i - 1];
    gq_gemv_task *t = gq_malloc((size_t)(nt ? nt : 1) * sizeof *t);
    for (int r = 0; r < N; r++) {
        const int64_t n = row_unit[r + 1] - row_unit[r], k = row_fix[2 * r + 1];
        for (int64_t c = 0; c < k; c++) {
            const int64_t len = task_len(n, k, c, chunk);
            gq_gemv_task *o = &t[start[chunk - len]++];
            o->row = r, o->lo = row_unit[r] + (int32_t)(c * chunk), o->n = (int32_t)len, o->ci = k > 1 ? (int32_t)c : -1;
        }
    }
    free(start);
    *tasks = t, *ntasks = nt, *nrec = nr;
    return GQ_OK;
}

gq_status gq_gqs_task_emulate(const gq_gqs_dev *d, const gq_gemv_task *tasks, int64_t ntasks, const int32_t *row_fix,
                              int64_t nrec, const int64_t *order, const float *x, int B, double *y, int *writes) {
    GQ_ASSERT(B >= 1);
    const int N = d->N;
    double *rec = gq_calloc((size_t)(nrec ? nrec : 1) * B, sizeof(double));
    int *cnt = gq_calloc((size_t)(N ? N : 1), sizeof(int));
    int *wr = gq_calloc((size_t)(N ? N : 1), sizeof(int));
    uint8_t *seen = gq_calloc((size_t)(d->n_units ? d->n_units : 1), 1);
    double *acc = gq_malloc((size_t)B * sizeof(double));
    gq_status st = GQ_OK;
    for (int64_t i = 0; i < ntasks && st == GQ_OK; i++) {
        const gq_gemv_task *t = &tasks[order ? order[i] : i];
        const int r = t->row;
        if (r < 0 || r >= N || t->n < 0 || t->lo < d->row_unit[r] || t->lo + t->n > d->row_unit[r + 1]) {
            st = gq_errf(GQ_ERR_INTERNAL, "task emulation: task %lld (row %d, units %d+%d) outside its row", (long long)i, r,
                         t->lo, t->n);
            break;
        }
        for (int64_t u = t->lo; u < t->lo + t->n && st == GQ_OK; u++)
            if (seen[u]++) st = gq_errf(GQ_ERR_INTERNAL, "task emulation: unit %lld covered twice", (long long)u);
        if (st != GQ_OK) break;
        units_dot(d, t->lo, t->lo + t->n, x, B, acc);
        if (t->ci < 0) {
            for (int b = 0; b < B; b++) y[(size_t)b * N + r] = acc[b];
            wr[r]++;
            continue;
        }
        const int32_t base = row_fix[2 * r], k = row_fix[2 * r + 1];
        if (base < 0 || t->ci >= k || base + k > nrec) {
            st = gq_errf(GQ_ERR_INTERNAL, "task emulation: row %d chunk %d has no record (base %d, %d tasks)", r, t->ci, base, k);
            break;
        }
        for (int b = 0; b < B; b++) rec[(size_t)(base + t->ci) * B + b] = acc[b];
        if (++cnt[r] > k) {
            st = gq_errf(GQ_ERR_INTERNAL, "task emulation: row %d counter overshoots (%d > %d)", r, cnt[r], k);
            break;
        }
        if (cnt[r] == k) { /* the last arrival: the row's records in chunk order */
            for (int b = 0; b < B; b++) {
                double s = 0;
                for (int c = 0; c < k; c++) s += rec[(size_t)(base + c) * B + b];
                y[(size_t)b * N + r] = s;
            }
            wr[r]++;
            cnt[r] = 0;
        }
    }
    for (int64_t u = 0; u < d->n_units && st == GQ_OK; u++)
        if (!seen[u]) st = gq_errf(GQ_ERR_INTERNAL, "task emulation: unit %lld never covered", (long long)u);
    for (int r = 0; r < N && st == GQ_OK; r++)
        if (wr[r] != 1) st = gq_errf(GQ_ERR_INTERNAL, "task emulation: row %d written %d times", r, wr[r]);
    if (writes) memcpy(writes, wr, (size_t)N * sizeof(int));
    free(rec), free(cnt), free(wr), free(seen), free(acc);
    return st;
}
