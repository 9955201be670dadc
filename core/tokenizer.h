/* tokenizer.h — text <-> token ids for the three tokenizer families LLaMA-style models use.
 *
 *   SPM   SentencePiece BPE with byte fallback (LLaMA-1/2 tokenizer.model; protobuf read directly)
 *   BPE   GPT-2-style byte-level BPE with a regex pre-tokenizer (LLaMA-3, Qwen2.5, SmolLM2, OPT;
 *         from tokenizer.json or GGUF metadata); the pre-tokenizer regex runs on PCRE2
 *   L2C   llama2.c tokenizer.bin (score-ordered merges, as llama2.c's run.c encodes)
 * The bar is exact agreement with the reference implementations (sentencepiece, HF tokenizers)
 * on real text: tests/fixtures/tok holds their ids for WikiText-2 and C4.
 * Must not: know about models' weights; print anything.
 */
#ifndef GQ_TOKENIZER_H
#define GQ_TOKENIZER_H

#include "util.h"

struct gq_gguf;
typedef struct gq_tokenizer gq_tokenizer;

typedef enum { GQ_TOK_SPM = 0, GQ_TOK_BPE = 1, GQ_TOK_L2C = 2 } gq_tok_kind;

/* Load by content: a protobuf tokenizer.model, an HF tokenizer.json, or a llama2.c tokenizer.bin
 * (vocab_size is needed for the latter: pass the model's, or 0 to infer it from the file size). */
gq_status gq_tokenizer_load(const char *path, int vocab_size, gq_tokenizer **out);
gq_status gq_tokenizer_from_gguf(const struct gq_gguf *g, gq_tokenizer **out);
void gq_tokenizer_free(gq_tokenizer *t);

gq_tok_kind gq_tokenizer_kind(const gq_tokenizer *t);
int gq_tokenizer_vocab_size(const gq_tokenizer *t);
int gq_tokenizer_bos(const gq_tokenizer *t); /* -1 if none */
int gq_tokenizer_eos(const gq_tokenizer *t); /* -1 if none */
int gq_tokenizer_add_bos_default(const gq_tokenizer *t); /* what the reference tokenizer does by default */

/* Encode len bytes of UTF-8 text. add_bos: prepend BOS if the tokenizer has one. Invalid UTF-8 is
 * an error (GQ_ERR_ARG, naming the byte offset), never a crash. *ids is malloc'd; caller frees. */
gq_status gq_tokenizer_encode(const gq_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                              size_t *n_ids);
/* Decode ids to text (special tokens such as BOS/EOS are skipped). *text is malloc'd, NUL-terminated. */
gq_status gq_tokenizer_decode(const gq_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len);
/* The raw vocabulary string of a token (NULL if out of range). */
const char *gq_tokenizer_piece(const gq_tokenizer *t, int id);

#endif
