/* quant.h — scalar uniform quantizers: per-group asymmetric (GQSA, RTN, GPTQ) and symmetric.
 *
 * GQSA's quantizer (paper Sec. 3, DESIGN.md "quantize"), for a group of n weights and b bits:
 *     s = (max - min) / (2^b - 1),  z = -round(min / s),  q = clamp(round(w / s) + z, 0, 2^b - 1),
 *     w_hat = (q - z) * s
 * Range convention (GQ_QMODE_ASYM, the default): as GPTQ's Quantizer does, min is taken as
 * min(min(w), 0) and max as max(max(w), 0), so the grid always contains 0 exactly and z is an
 * integer in [0, 2^b - 1] (what gq_gqs_memory counts as a b-bit zero). GQ_QMODE_ASYM_MINMAX uses
 * the tight [min(w), max(w)] (finer grid for one-signed groups; z may then lie outside [0, 2^b-1]).
 * GQ_QMODE_SYM: s = 2 max|w| / (2^b - 1), z = 2^(b-1) (GPTQ's sym=True).
 * Zero-safety (STYLE.md 7): a group whose range is empty (all zeros, or max == min) never divides by
 * zero: s = 1 for an all-zero group (q = z, w_hat = 0 exactly) and s = |c| for a constant group c
 * in MINMAX mode (w_hat = c exactly). Non-finite inputs are a contract violation (GQ_ASSERT);
 * callers check weights with gq_model_check_finite first.
 * Rounding: round-half-away-from-zero (C's round()), as torch.round is half-to-even this may differ
 * at exact ties only; tests compare with a float64 reference using the same rule.
 * Must not: choose which weights to keep, allocate, or know about layers.
 */
#ifndef GQ_QUANT_H
#define GQ_QUANT_H

#include "util.h"

typedef enum {
    GQ_QMODE_ASYM = 0,        /* min/max widened to include 0 (GPTQ); integer zero in [0, 2^b-1] */
    GQ_QMODE_ASYM_MINMAX = 1, /* tight min/max */
    GQ_QMODE_SYM = 2          /* symmetric around 0, zero = 2^(b-1) */
} gq_qmode;

typedef struct {
    int bits;          /* 2, 3, 4 or 8 (any 1..8 is accepted by the scalar routines) */
    gq_qmode mode;
    int fp16_scale;    /* 1: round the scale up to the next fp16 value before computing codes, so
                          w_hat is exactly what an fp16-scale kernel computes (range still covered) */
} gq_qspec;

/* 1 if bits is one of the widths the GQS format supports (2, 3, 4, 8). */
int gq_quant_bits_supported(int bits);

/* Quantizer parameters of one group w [n] (n >= 1). */
void gq_quant_params(const float *w, int n, const gq_qspec *spec, float *scale, float *zero);
/* Code of one value for given parameters: clamp(round(w / s) + z, 0, 2^b - 1). */
int gq_quant_code(float w, float scale, float zero, int bits);
/* (q - z) * s */
static inline float gq_quant_dequant(int q, float scale, float zero) { return ((float)q - zero) * scale; }

/* One group: parameters, codes q [n] (may be NULL) and dequantized values w_hat [n] (may be NULL;
 * may alias w). */
void gq_quant_group(const float *w, int n, const gq_qspec *spec, uint8_t *q, float *scale, float *zero,
                    float *w_hat);

/* Round-to-nearest of a whole matrix w [N, K] in place (fake quantization: w <- w_hat), one
 * quantizer per `group` consecutive inputs of a row (group = 0 or group = K: one per row; a last
 * partial group is allowed when group does not divide K: it gets its own quantizer).
 * Optional outputs (NULL to skip): q [N, K] codes, scales/zeros [N, ceil(K/group)].
 * GQ_ERR_ARG for bits outside 1..8 or group < 0. This is the RTN baseline. */
gq_status gq_quant_rtn(float *w, int N, int K, int group, const gq_qspec *spec, uint8_t *q, float *scales,
                       float *zeros);

/* Next fp16-representable value >= s (s > 0, finite, within fp16 range; else s unchanged). */
float gq_quant_fp16_ceil(float s);

#endif
