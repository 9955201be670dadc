/* prune.c — remove the lowest-scoring groups, exact counts, deterministic tie-breaking.
 * Must not: touch weights beyond gq_prune_apply; quantize.
 */
#include "prune.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *gq_prune_scope_name(gq_prune_scope s) { return s == GQ_SCOPE_ROW ? "row" : "layer"; }

gq_status gq_prune_scope_parse(const char *s, gq_prune_scope *out) {
    if (!strcmp(s, "layer")) *out = GQ_SCOPE_LAYER;
    else if (!strcmp(s, "row")) *out = GQ_SCOPE_ROW;
    else return gq_errf(GQ_ERR_ARG, "unknown prune scope '%s' (expected 'layer' or 'row')", s);
    return GQ_OK;
}

typedef struct { double v; size_t i; } scored;

/* NaN first (lowest), then ascending score, then ascending position */
static int cmp_scored(const void *pa, const void *pb) {
    const scored *a = pa, *b = pb;
    int na = isnan(a->v), nb = isnan(b->v);
    if (na != nb) return na ? -1 : 1;
    if (!na && a->v != b->v) return a->v < b->v ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static size_t prune_range(const double *score, size_t n, size_t n_remove, uint8_t *keep, scored *tmp) {
    for (size_t i = 0; i < n; i++) tmp[i] = (scored){score[i], i}, keep[i] = 1;
    if (n_remove == 0) return 0;
    qsort(tmp, n, sizeof *tmp, cmp_scored);
    for (size_t i = 0; i < n_remove; i++) keep[tmp[i].i] = 0;
    return n_remove;
}

double gq_prune_groups(const double *score, int N, int C, double sparsity, gq_prune_scope scope, uint8_t *keep) {
    GQ_ASSERT(N > 0 && C > 0 && sparsity >= 0 && sparsity <= 1);
    size_t total = (size_t)N * C, removed = 0;
    if (scope == GQ_SCOPE_LAYER) {
        scored *tmp = gq_malloc(total * sizeof *tmp);
        removed = prune_range(score, total, (size_t)llround(sparsity * (double)total), keep, tmp);
        free(tmp);
    } else {
        scored *tmp = gq_malloc((size_t)C * sizeof *tmp);
        size_t per_row = (size_t)llround(sparsity * (double)C);
        for (int r = 0; r < N; r++) removed += prune_range(score + (size_t)r * C, (size_t)C, per_row, keep + (size_t)r * C, tmp);
        free(tmp);
    }
    return (double)removed / (double)total;
}

void gq_prune_apply(float *w, int N, int K, int G, const uint8_t *keep) {
    GQ_ASSERT(G > 0 && K % G == 0);
    const int C = K / G;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < C; c++)
            if (!keep[(size_t)r * C + c]) memset(w + (size_t)r * K + (size_t)c * G, 0, (size_t)G * sizeof(float));
}
