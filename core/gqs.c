/* gqs.c — the GQS (BSR-by-rows) format: building, decoding, reference GEMV, validation, accounting.
 * The scalar routines here are the reference every GQS kernel (CPU or CUDA) is tested against.
 * Must not: choose groups or quantizers beyond calling quant.h on the groups it is told to keep.
 */
#include "gqs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

static void put_code(uint8_t *grp, int j, int bits, int code) {
    size_t bit = (size_t)j * (size_t)bits;
    for (int b = 0; b < bits; b++, bit++)
        if (code >> b & 1) grp[bit >> 3] |= (uint8_t)(1u << (bit & 7));
}

static int get_code(const uint8_t *grp, int j, int bits) {
    size_t bit = (size_t)j * (size_t)bits;
    int code = 0;
    for (int b = 0; b < bits; b++, bit++) code |= ((grp[bit >> 3] >> (bit & 7)) & 1) << b;
    return code;
}

static gq_status check_shape(int N, int K, int G, int bits) {
    if (N <= 0 || K <= 0 || G <= 0) return gq_errf(GQ_ERR_ARG, "gqs: bad shape N=%d K=%d G=%d", N, K, G);
    if (K % G) return gq_errf(GQ_ERR_ARG, "gqs: group size %d does not divide K=%d", G, K);
    if (!gq_quant_bits_supported(bits)) return gq_errf(GQ_ERR_ARG, "gqs: bits must be 2, 3, 4 or 8, got %d", bits);
    return GQ_OK;
}

/* Allocate the arrays for the kept groups of keep [N, K/G]; fills row_index and group_col. */
static void alloc_from_mask(gq_gqs *g, const uint8_t *keep, int N, int K, int G, int bits) {
    const int C = K / G;
    memset(g, 0, sizeof *g);
    g->N = N, g->K = K, g->G = G, g->bits = bits;
    size_t nnz = 0;
    for (size_t i = 0; i < (size_t)N * C; i++) nnz += keep[i] != 0;
    g->nnz = nnz;
    g->row_index = gq_malloc((size_t)(N + 1) * sizeof(int32_t));
    g->group_col = gq_malloc((nnz ? nnz : 1) * sizeof(int32_t));
    g->values = gq_calloc(nnz ? nnz * gq_gqs_bytes_per_group(G, bits) : 1, 1);
    g->scales = gq_malloc((nnz ? nnz : 1) * sizeof(float));
    g->zeros = gq_malloc((nnz ? nnz : 1) * sizeof(float));
    size_t k = 0;
    for (int r = 0; r < N; r++) {
        g->row_index[r] = (int32_t)k;
        for (int c = 0; c < C; c++)
            if (keep[(size_t)r * C + c]) g->group_col[k++] = c;
    }
    g->row_index[N] = (int32_t)k;
}

gq_status gq_gqs_build(gq_gqs *out, const float *w, const uint8_t *keep, int N, int K, int G, int bits) {
    GQ_TRY(check_shape(N, K, G, bits));
    if ((size_t)N * (K / G) > INT32_MAX) return gq_errf(GQ_ERR_ARG, "gqs: %d x %d groups overflow int32 offsets", N, K / G);
    alloc_from_mask(out, keep, N, K, G, bits);
    const size_t bpg = gq_gqs_bytes_per_group(G, bits);
    const gq_qspec spec = {.bits = bits, .mode = GQ_QMODE_ASYM, .fp16_scale = 0};
    uint8_t *codes = gq_malloc((size_t)G);
    for (int r = 0; r < N; r++)
        for (int32_t i = out->row_index[r]; i < out->row_index[r + 1]; i++) {
            const float *src = w + (size_t)r * K + (size_t)out->group_col[i] * G;
            gq_quant_group(src, G, &spec, codes, &out->scales[i], &out->zeros[i], NULL);
            uint8_t *dst = out->values + (size_t)i * bpg;
            for (int j = 0; j < G; j++) put_code(dst, j, bits, codes[j]);
        }
    free(codes);
    return GQ_OK;
}

gq_status gq_gqs_build_from_codes(gq_gqs *out, const uint8_t *q, const float *scales, const float *zeros,
                                  const uint8_t *keep, int N, int K, int G, int bits) {
    GQ_TRY(check_shape(N, K, G, bits));
    const int C = K / G;
    const int maxq = (1 << bits) - 1;
    for (size_t i = 0; i < (size_t)N * C; i++) {
        if (!keep[i]) continue;
        for (int j = 0; j < G; j++)
            if (q[(i / C) * K + (i % C) * G + j] > maxq)
                return gq_errf(GQ_ERR_ARG, "gqs: code %d at row %zu col %zu exceeds %d bits", q[(i / C) * K + (i % C) * G + j],
                               i / C, (i % C) * G + j, bits);
    }
    alloc_from_mask(out, keep, N, K, G, bits);
    const size_t bpg = gq_gqs_bytes_per_group(G, bits);
    for (int r = 0; r < N; r++)
        for (int32_t i = out->row_index[r]; i < out->row_index[r + 1]; i++) {
            int c = out->group_col[i];
            const uint8_t *src = q + (size_t)r * K + (size_t)c * G;
            uint8_t *dst = out->values + (size_t)i * bpg;
            for (int j = 0; j < G; j++) put_code(dst, j, bits, src[j]);
            out->scales[i] = scales[(size_t)r * C + c];
            out->zeros[i] = zeros[(size_t)r * C + c];
        }
    return GQ_OK;
}

void gq_gqs_free(gq_gqs *g) {
    if (!g) return;
    free(g->row_index);
    free(g->group_col);
    free(g->values);
    free(g->scales);
    free(g->zeros);
    memset(g, 0, sizeof *g);
}

int gq_gqs_get_code(const gq_gqs *g, size_t i, int j) {
    GQ_ASSERT(i < g->nnz && j >= 0 && j < g->G);
    return get_code(g->values + i * gq_gqs_bytes_per_group(g->G, g->bits), j, g->bits);
}

void gq_gqs_expand(const gq_gqs *g, float *w) {
    memset(w, 0, (size_t)g->N * g->K * sizeof(float));
    const size_t bpg = gq_gqs_bytes_per_group(g->G, g->bits);
    for (int r = 0; r < g->N; r++)
        for (int32_t i = g->row_index[r]; i < g->row_index[r + 1]; i++) {
            float *dst = w + (size_t)r * g->K + (size_t)g->group_col[i] * g->G;
            const uint8_t *src = g->values + (size_t)i * bpg;
            for (int j = 0; j < g->G; j++) dst[j] = gq_quant_dequant(get_code(src, j, g->bits), g->scales[i], g->zeros[i]);
        }
}

void gq_gqs_gemv_ref(const gq_gqs *g, const float *x, float *y) {
    const size_t bpg = gq_gqs_bytes_per_group(g->G, g->bits);
    for (int r = 0; r < g->N; r++) {
        double acc = 0;
        for (int32_t i = g->row_index[r]; i < g->row_index[r + 1]; i++) {
            const float *xs = x + (size_t)g->group_col[i] * g->G;
            const uint8_t *src = g->values + (size_t)i * bpg;
            for (int j = 0; j < g->G; j++)
                acc += (double)gq_quant_dequant(get_code(src, j, g->bits), g->scales[i], g->zeros[i]) * xs[j];
        }
        y[r] = (float)acc;
    }
}

gq_status gq_gqs_validate(const gq_gqs *g, const char *what) {
    if (g->N <= 0 || g->K <= 0 || g->G <= 0 || g->K % g->G)
        return gq_errf(GQ_ERR_FORMAT, "%s: bad GQS shape N=%d K=%d G=%d", what, g->N, g->K, g->G);
    if (!gq_quant_bits_supported(g->bits)) return gq_errf(GQ_ERR_FORMAT, "%s: bad GQS bits %d", what, g->bits);
    if (!g->row_index) return gq_errf(GQ_ERR_FORMAT, "%s: missing row_index", what);
    const int C = g->K / g->G;
    if (g->row_index[0] != 0) return gq_errf(GQ_ERR_FORMAT, "%s: row_index[0] = %d, expected 0", what, g->row_index[0]);
    for (int r = 0; r < g->N; r++) {
        int32_t a = g->row_index[r], b = g->row_index[r + 1];
        if (b < a || b - a > C)
            return gq_errf(GQ_ERR_FORMAT, "%s: row_index not monotone or row %d has %d > %d groups", what, r, b - a, C);
    }
    if ((size_t)g->row_index[g->N] != g->nnz)
        return gq_errf(GQ_ERR_FORMAT, "%s: row_index[N] = %d but %zu groups stored", what, g->row_index[g->N], g->nnz);
    if (g->nnz && (!g->group_col || !g->values || !g->scales || !g->zeros))
        return gq_errf(GQ_ERR_FORMAT, "%s: missing GQS arrays", what);
    for (int r = 0; r < g->N; r++)
        for (int32_t i = g->row_index[r]; i < g->row_index[r + 1]; i++) {
            int32_t c = g->group_col[i];
            if (c < 0 || c >= C) return gq_errf(GQ_ERR_FORMAT, "%s: group_col[%d] = %d out of [0, %d)", what, i, c, C);
            if (i > g->row_index[r] && c <= g->group_col[i - 1])
                return gq_errf(GQ_ERR_FORMAT, "%s: group_col not ascending in row %d", what, r);
            if (!isfinite(g->scales[i]) || !isfinite(g->zeros[i]))
                return gq_errf(GQ_ERR_FORMAT, "%s: non-finite scale/zero in group %d", what, i);
        }
    return GQ_OK;
}

void gq_gqs_memory(const gq_gqs *g, int zeros_fp16, gq_gqs_mem *out) {
    memset(out, 0, sizeof *out);
    out->bytes_values = g->nnz * gq_gqs_bytes_per_group(g->G, g->bits);
    out->bytes_row_index = (size_t)(g->N + 1) * 4;
    out->bytes_group_col = g->nnz * 4;
    out->bytes_scales = g->nnz * 2;
    out->bytes_zeros = zeros_fp16 ? g->nnz * 2 : (g->nnz * (size_t)g->bits + 7) / 8;
    out->bytes_total =
        out->bytes_values + out->bytes_row_index + out->bytes_group_col + out->bytes_scales + out->bytes_zeros;
    double nw = (double)g->N * g->K;
    out->bits_per_weight = nw > 0 ? 8.0 * out->bytes_total / nw : 0;
    out->bits_per_weight_nometa = nw > 0 ? 8.0 * out->bytes_values / nw : 0;
    size_t total = (size_t)g->N * (g->G ? g->K / g->G : 0);
    out->sparsity = total ? 1.0 - (double)g->nnz / total : 0;
}
