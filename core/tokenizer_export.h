/* tokenizer_export.h — a gq_tokenizer as GGUF tokenizer.ggml.* metadata (for `gqsa export`).
 *
 * SPM -> model "llama": tokens, scores, token_type, bos/eos/unknown ids, add_space_prefix.
 * BPE -> model "gpt2": tokens, token_type, merges (in rank order), pre, bos/eos ids.
 * L2C -> model "llama", converted as llama.cpp's convert-llama2c-to-ggml does: ' ' becomes U+2581,
 *        "<0xXX>" pieces are BYTE, ids 0/1/2 become <unk>/<s>/</s> (UNKNOWN/CONTROL/CONTROL).
 * gq_tokenizer_from_gguf reads every one of these back (tests/test_export.c checks the ids agree).
 * Must not: change the tokenizer; write anything but tokenizer.ggml.* keys.
 */
#ifndef GQ_TOKENIZER_EXPORT_H
#define GQ_TOKENIZER_EXPORT_H

#include "export_gguf.h"
#include "tokenizer.h"

/* Add tokenizer.ggml.* keys for t to w. pre_override: tokenizer.ggml.pre for a BPE tokenizer (NULL =
 * the tokenizer's own pre-tokenizer name; one read from tokenizer.json has none: GQ_ERR_UNSUPPORTED
 * with a hint). add_bos: value of tokenizer.ggml.add_bos_token (-1 = the tokenizer's default).
 * GQ_ERR_FORMAT if a piece cannot be represented (not valid UTF-8). */
gq_status gq_tokenizer_export_gguf(const gq_tokenizer *t, gq_ggufw *w, const char *pre_override, int add_bos);

/* Read-only accessors (sentencepiece piece-type numbering, as GGUF token_type uses). */
float gq_tokenizer_score(const gq_tokenizer *t, int id);     /* 0 when the kind has no scores */
int gq_tokenizer_token_type(const gq_tokenizer *t, int id);  /* 1 NORMAL .. 6 BYTE */
size_t gq_tokenizer_piece_len(const gq_tokenizer *t, int id);
int gq_tokenizer_unk(const gq_tokenizer *t);                 /* -1 if none */

#endif
