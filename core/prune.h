/* prune.h — choose which groups to remove from group scores (DESIGN.md "prune").
 *
 * Exactly round(sparsity * n) of the n candidate groups are removed, lowest score first; ties are
 * broken by position (lower row, then lower column, removed first) so results are deterministic.
 *   GQ_SCOPE_LAYER: rank all N * K/G groups of the matrix together (rows end up with different counts)
 *   GQ_SCOPE_ROW:   remove round(sparsity * K/G) groups from every row
 * Must not: touch weights or quantize.
 */
#ifndef GQ_PRUNE_H
#define GQ_PRUNE_H

#include "util.h"

typedef enum { GQ_SCOPE_LAYER = 0, GQ_SCOPE_ROW = 1 } gq_prune_scope;

/* "layer" / "row" <-> enum; parse returns GQ_ERR_ARG on an unknown name. */
const char *gq_prune_scope_name(gq_prune_scope s);
gq_status gq_prune_scope_parse(const char *s, gq_prune_scope *out);

/* keep [N, C] (1 = kept) from score [N, C] (C groups per row). Returns the achieved fraction of
 * removed groups. sparsity in [0, 1] (GQ_ASSERT). NaN scores rank lowest. */
double gq_prune_groups(const double *score, int N, int C, double sparsity, gq_prune_scope scope, uint8_t *keep);

/* Zero the pruned groups of w [N, K] (G = K / C per group). */
void gq_prune_apply(float *w, int N, int K, int G, const uint8_t *keep);

#endif
