/* gqs.h — the GQS format: group-quantized, group-sparse weights stored as BSR by rows.
 *
 * One matrix W [N out, K in] is cut into groups of G consecutive input weights of one row (the
 * paper's group; G divides K). Kept groups are listed row by row (paper, Figure 2):
 *   row_index [N+1]   offsets into the group arrays; row r owns groups row_index[r]..row_index[r+1]-1
 *   group_col [nnz]   column of each kept group, in group units (0 .. K/G-1), ascending within a row
 *   values            the q's of each kept group: group i occupies bytes_per_group(G,bits) bytes at
 *                     values + i*bytes_per_group, a little-endian bit stream of G codes of `bits`
 *                     bits, code j at bit j*bits (so two 4-bit codes per byte, low nibble first)
 *   scales, zeros     [nnz] per-group quantizer: w_hat = (q - zero) * scale (zeros are integers
 *                     after quantization; E2E-OQP trains them as continuous values)
 * Must not: choose which groups to keep (prune.c does) or how to quantize (quant.c does).
 */
#ifndef GQ_GQS_H
#define GQ_GQS_H

#include "util.h"

typedef struct {
    int N, K, G, bits; /* rows, cols, group size, code width (2, 3, 4 or 8) */
    size_t nnz;        /* kept groups */
    int32_t *row_index;/* [N+1] */
    int32_t *group_col;/* [nnz] */
    uint8_t *values;   /* [nnz * gq_gqs_bytes_per_group(G, bits)] */
    float *scales;     /* [nnz] */
    float *zeros;      /* [nnz] */
} gq_gqs;

static inline size_t gq_gqs_bytes_per_group(int G, int bits) { return ((size_t)G * (size_t)bits + 7) / 8; }

/* Build from a dense matrix w [N, K] and a group mask keep [N, K/G] (1 = kept): each kept group is
 * quantized with its own asymmetric `bits`-bit quantizer (quant.h). GQ_ERR_ARG if G does not divide
 * K, or bits is not 2/3/4/8. */
gq_status gq_gqs_build(gq_gqs *out, const float *w, const uint8_t *keep, int N, int K, int G, int bits);
/* Build directly from codes: q [N, K] integer codes (only kept groups read), scales/zeros [N, K/G]. */
gq_status gq_gqs_build_from_codes(gq_gqs *out, const uint8_t *q, const float *scales, const float *zeros,
                                  const uint8_t *keep, int N, int K, int G, int bits);
void gq_gqs_free(gq_gqs *g);

/* Code j of kept group i. */
int gq_gqs_get_code(const gq_gqs *g, size_t i, int j);
/* Dense W_hat [N, K] (pruned groups are zero). */
void gq_gqs_expand(const gq_gqs *g, float *w);
/* Reference GEMV straight from the compressed form: y [N] = W_hat x [K] (float64 accumulation). */
void gq_gqs_gemv_ref(const gq_gqs *g, const float *x, float *y);
/* Structural validation (row_index monotone, columns in range and ascending, sizes); for readers. */
gq_status gq_gqs_validate(const gq_gqs *g, const char *what);

/* Memory accounting. */
typedef struct {
    size_t bytes_values, bytes_row_index, bytes_group_col, bytes_scales, bytes_zeros;
    size_t bytes_total;           /* everything above */
    double bits_per_weight;       /* total bits / (N*K) */
    double bits_per_weight_nometa;/* values only / (N*K) */
    double sparsity;              /* fraction of groups pruned */
} gq_gqs_mem;
/* On-disk widths: row_index and group_col int32, scales fp16, zeros stored at `bits` bits
 * (integers in [0, 2^bits-1]) or fp16 when continuous (zeros_fp16 = 1). */
void gq_gqs_memory(const gq_gqs *g, int zeros_fp16, gq_gqs_mem *out);

#endif
