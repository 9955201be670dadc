/* saliency.h — GQSA's weight saliency from the Hessian proxy (OBS-style, paper Sec. 3.1).
 *
 *     s_ij = w_ij^2 / [H^-1]_jj,   H damped: H + lambda * mean(diag H) * I   (lambda = 0.01 default)
 * H^-1 comes from a float64 Cholesky factorisation (LAPACK dpotrf_/dpotri_). If H is not positive
 * definite the damping is multiplied by 10 and the factorisation retried (up to 6 times), each retry
 * reported on stderr and counted. Dead inputs (H_jj == 0: the input never fires) are handled as GPTQ
 * does: H_jj = 1 and the weights of column j count as 0 (their saliency is 0).
 * Group score = mean of s over the G consecutive weights of a group.
 * Must not: modify the weights or H it is given, choose what to prune.
 */
#ifndef GQ_SALIENCY_H
#define GQ_SALIENCY_H

#include "util.h"

/* diag [K] = diagonal of (damped H)^-1, for H [K, K] (symmetric, float64, not modified).
 * *n_retries (may be NULL) gets the number of 10x damping increases needed. `what` names the layer
 * in messages. GQ_ERR_NUMERIC if H is not PD even after the retries, or contains NaN/Inf. */
gq_status gq_saliency_hinv_diag(const double *H, int K, double damp, const char *what, double *diag,
                                int *n_retries);

/* Inverse of the damped H, full [K, K] (for methods that need more than the diagonal: GPTQ,
 * SparseGPT). `dead` [K] (may be NULL) gets 1 for dead inputs. Same errors as above. */
gq_status gq_saliency_hinv(const double *H, int K, double damp, const char *what, double *Hinv, uint8_t *dead,
                           int *n_retries);

/* s [N, K] = w^2 / hinv_diag (dead columns: 0). */
void gq_saliency_weights(const float *w, int N, int K, const double *hinv_diag, double *s);
/* score [N, K/G] = mean over each group of s [N, K]. G must divide K (GQ_ASSERT). */
void gq_saliency_groups(const double *s, int N, int K, int G, double *score);

#endif
