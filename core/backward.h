/* backward.h — the CPU backward pass of a LLaMA-architecture model, op by op, per block and whole.
 *
 * Every function exists twice: suffix _f32 (R = float, what training runs) and _f64 (R = double,
 * what the finite-difference gradient checks run). One implementation (backward_tmpl.h) is expanded
 * for both types, so the code that is checked in double is the code that trains in float.
 * Op boundaries are those of forward.c (RMSNorm, linear, RoPE, causal GQA, SwiGLU, residual, tied
 * head, cross-entropy), so a GPU path can mirror them kernel by kernel.
 * Activation memory: only each block's input is kept for the whole model; a block's forward is
 * recomputed just before its backward (activation checkpointing per block).
 * Must not: allocate per call outside the *_init functions, read files, know about optimizers.
 */
#ifndef GQ_BACKWARD_H
#define GQ_BACKWARD_H

#include "gqs.h"
#include "model.h"

/* The checks every model-loss entry point makes on a window (CPU float/double, core/cuda/train_gpu.cu):
 * 2 <= T <= max_T and every token id inside the vocabulary. GQ_ERR_ARG naming the first offender. */
static inline gq_status gq_bw_check_window(const gq_config *c, const int32_t *tokens, int T, int max_T) {
    if (T < 2 || T > max_T) return gq_errf(GQ_ERR_ARG, "training: window of %d tokens (need 2..%d)", T, max_T);
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size)
            return gq_errf(GQ_ERR_ARG, "training: token id %d at position %d is outside the vocabulary (0..%d)",
                           tokens[t], t, c->vocab_size - 1);
    return GQ_OK;
}

#define GQ_BW_CAT_(a, b) a##b
#define GQ_BW_CAT(a, b) GQ_BW_CAT_(a, b)
#define GQ_BW(name) GQ_BW_CAT(name, SFX)

#define R float
#define SFX _f32
#include "backward_decl.h"
#undef R
#undef SFX

#define R double
#define SFX _f64
#include "backward_decl.h"
#undef R
#undef SFX

#endif
