/* saliency.c — OBS-style saliency s_ij = w_ij^2 / [H^-1]_jj from a damped float64 Cholesky inverse.
 * Must not: modify the caller's weights or H; decide what to prune.
 */
#include "saliency.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lapack.h"

#define GQ_SAL_MAX_RETRIES 6

gq_status gq_saliency_hinv(const double *H, int K, double damp, const char *what, double *Hinv, uint8_t *dead,
                           int *n_retries) {
    GQ_ASSERT(K > 0 && damp >= 0);
    if (n_retries) *n_retries = 0;
    double *Hd = gq_malloc((size_t)K * K * sizeof(double));
    memcpy(Hd, H, (size_t)K * K * sizeof(double));
    double mean = 0;
    for (int j = 0; j < K; j++) {
        double d = Hd[(size_t)j * K + j];
        if (!isfinite(d)) {
            free(Hd);
            return gq_errf(GQ_ERR_NUMERIC, "%s: Hessian diagonal %d is not finite", what, j);
        }
        /* GPTQ: an input that never fires gets H_jj = 1 so the factorisation is defined; its
         * weights are treated as 0 by the callers */
        int is_dead = d == 0;
        if (dead) dead[j] = (uint8_t)is_dead;
        if (is_dead) Hd[(size_t)j * K + j] = 1;
        mean += Hd[(size_t)j * K + j];
    }
    mean /= K;
    double lambda = damp;
    for (int attempt = 0;; attempt++) {
        memcpy(Hinv, Hd, (size_t)K * K * sizeof(double));
        for (int j = 0; j < K; j++) Hinv[(size_t)j * K + j] += lambda * mean;
        int info = 0, n = K;
        /* row-major symmetric == its column-major transpose, so "L" is simply one triangle */
        dpotrf_("L", &n, Hinv, &n, &info);
        if (info == 0) dpotri_("L", &n, Hinv, &n, &info);
        if (info == 0) break;
        if (attempt == GQ_SAL_MAX_RETRIES) {
            free(Hd);
            return gq_errf(GQ_ERR_NUMERIC,
                           "%s: damped Hessian not positive definite even with damping %g (LAPACK info %d)", what,
                           lambda, info);
        }
        lambda *= 10;
        if (n_retries) (*n_retries)++;
        fprintf(stderr, "gqsa: %s: Hessian not positive definite (info %d); retrying with damping %g\n", what, info,
                lambda);
    }
    /* column-major lower triangle: element (i, j), i >= j, at [i + j*K]; mirror it */
    for (int j = 0; j < K; j++)
        for (int i = j + 1; i < K; i++) Hinv[(size_t)i * K + j] = Hinv[(size_t)j * K + i];
    free(Hd);
    for (int j = 0; j < K; j++)
        if (!(Hinv[(size_t)j * K + j] > 0) || !isfinite(Hinv[(size_t)j * K + j]))
            return gq_errf(GQ_ERR_NUMERIC, "%s: inverse Hessian diagonal %d is %g", what, j, Hinv[(size_t)j * K + j]);
    return GQ_OK;
}

gq_status gq_saliency_hinv_diag(const double *H, int K, double damp, const char *what, double *diag,
                                int *n_retries) {
    double *Hinv = gq_try_malloc((size_t)K * K * sizeof(double));
    if (!Hinv) return gq_errf(GQ_ERR_NOMEM, "%s: no memory for a %d x %d inverse", what, K, K);
    uint8_t *dead = gq_malloc((size_t)K);
    gq_status st = gq_saliency_hinv(H, K, damp, what, Hinv, dead, n_retries);
    if (st == GQ_OK)
        for (int j = 0; j < K; j++)
            /* dead columns: w_j counts as 0, so an infinite diagonal makes s = 0 */
            diag[j] = dead[j] ? INFINITY : Hinv[(size_t)j * K + j];
    free(dead);
    free(Hinv);
    return st;
}

void gq_saliency_weights(const float *w, int N, int K, const double *hinv_diag, double *s) {
    for (int r = 0; r < N; r++)
        for (int j = 0; j < K; j++) {
            double x = w[(size_t)r * K + j];
            s[(size_t)r * K + j] = isinf(hinv_diag[j]) ? 0.0 : x * x / hinv_diag[j];
        }
}

void gq_saliency_groups(const double *s, int N, int K, int G, double *score) {
    GQ_ASSERT(G > 0 && K % G == 0);
    const int C = K / G;
    for (int r = 0; r < N; r++)
        for (int c = 0; c < C; c++) {
            double acc = 0;
            for (int j = 0; j < G; j++) acc += s[(size_t)r * K + (size_t)c * G + j];
            score[(size_t)r * C + c] = acc / G;
        }
}
