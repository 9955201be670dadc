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
