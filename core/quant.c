/* quant.c — scalar uniform quantizers (see quant.h for the equations and the range convention).
 * Must not: allocate or know about layers; keep it the plain reference every kernel is checked against.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

int gq_quant_bits_supported(int bits) { return bits == 2 || bits == 3 || bits == 4 || bits == 8; }

float gq_quant_fp16_ceil(float s) {
    if (!(s > 0) || !isfinite(s) || s > 65504.0f) return s;
    uint16_t h = gq_fp32_to_fp16(s);
    float f = gq_fp16_to_fp32(h);
    /* positive halves are ordered like their bit patterns, so the next one up is h + 1 */
    if (f < s) f = gq_fp16_to_fp32((uint16_t)(h + 1));
    if (f == 0) f = gq_fp16_to_fp32(1);
    return f;
}

void gq_quant_params(const float *w, int n, const gq_qspec *spec, float *scale, float *zero) {
    GQ_ASSERT(n >= 1 && spec->bits >= 1 && spec->bits <= 8);
    float mn = w[0], mx = w[0];
    for (int i = 0; i < n; i++) {
        GQ_ASSERT(isfinite(w[i]));
        if (w[i] < mn) mn = w[i];
        if (w[i] > mx) mx = w[i];
    }
    const float maxq = (float)((1 << spec->bits) - 1);
    float s, z;
    if (spec->mode == GQ_QMODE_SYM) {
        float amax = fmaxf(fabsf(mn), fabsf(mx));
        /* all zero: any positive scale reproduces 0 exactly */
        s = amax > 0 ? 2.0f * amax / maxq : 1.0f;
        if (spec->fp16_scale) s = gq_quant_fp16_ceil(s);
        z = (float)(1 << (spec->bits - 1));
    } else {
        if (spec->mode == GQ_QMODE_ASYM) {
            mn = fminf(mn, 0.0f);
            mx = fmaxf(mx, 0.0f);
        }
        if (mx > mn) {
            s = (mx - mn) / maxq;
            /* a range so small that s underflows to 0 is treated like an empty range */
            if (!(s > 0)) s = fabsf(mn) > 0 ? fabsf(mn) : 1.0f;
        } else {
            /* empty range: the group is one value c; s = |c| puts c exactly on the grid */
            s = fabsf(mn) > 0 ? fabsf(mn) : 1.0f;
        }
        if (spec->fp16_scale) s = gq_quant_fp16_ceil(s);
        z = -roundf(mn / s) + 0.0f; /* + 0 turns -0 into +0 */
    }
    *scale = s;
    *zero = z;
}

int gq_quant_code(float w, float scale, float zero, int bits) {
    const float maxq = (float)((1 << bits) - 1);
    float q = roundf(w / scale) + zero;
    if (q < 0) q = 0;
    if (q > maxq) q = maxq;
    return (int)q;
}

void gq_quant_group(const float *w, int n, const gq_qspec *spec, uint8_t *q, float *scale, float *zero,
                    float *w_hat) {
    float s, z;
    gq_quant_params(w, n, spec, &s, &z);
    for (int i = 0; i < n; i++) {
        int c = gq_quant_code(w[i], s, z, spec->bits);
        if (q) q[i] = (uint8_t)c;
        if (w_hat) w_hat[i] = gq_quant_dequant(c, s, z);
    }
    if (scale) *scale = s;
    if (zero) *zero = z;
}

gq_status gq_quant_rtn(float *w, int N, int K, int group, const gq_qspec *spec, uint8_t *q, float *scales,
                       float *zeros) {
    if (spec->bits < 1 || spec->bits > 8) return gq_errf(GQ_ERR_ARG, "rtn: bits must be 1..8, got %d", spec->bits);
    if (group < 0) return gq_errf(GQ_ERR_ARG, "rtn: group must be >= 0, got %d", group);
    if (group == 0 || group > K) group = K;
    const int C = (K + group - 1) / group;
    for (int r = 0; r < N; r++) {
        float *row = w + (size_t)r * K;
        for (int c = 0; c < C; c++) {
            int j0 = c * group, n = K - j0 < group ? K - j0 : group;
            float s, z;
            gq_quant_group(row + j0, n, spec, q ? q + (size_t)r * K + j0 : NULL, &s, &z, row + j0);
            if (scales) scales[(size_t)r * C + c] = s;
            if (zeros) zeros[(size_t)r * C + c] = z;
        }
    }
    return GQ_OK;
}
