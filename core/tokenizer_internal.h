/* tokenizer_internal.h — the gq_tokenizer struct and helpers shared by core/tokenizer*.c only.
 *
 * Nothing outside core/tokenizer*.c and tests/test_tokenizer.c may include this: the public
 * contract is tokenizer.h. Everything here is immutable after load, so encode/decode are
 * thread-safe (per-call scratch only, no caches).
 * Must not: do I/O (the loaders in tokenizer_*.c do), print anything.
 */
#ifndef GQ_TOKENIZER_INTERNAL_H
#define GQ_TOKENIZER_INTERNAL_H

#include "tokenizer.h"

/* Piece types (sentencepiece numbering; BPE/L2C use NORMAL, CONTROL and USER_DEFINED). */
enum { GQ_TOK_T_NORMAL = 1, GQ_TOK_T_UNKNOWN = 2, GQ_TOK_T_CONTROL = 3, GQ_TOK_T_USER = 4, GQ_TOK_T_UNUSED = 5,
       GQ_TOK_T_BYTE = 6 };

/* string -> id, open addressing over the vocabulary (ids index t->piece_off). First id wins on duplicates. */
typedef struct {
    int32_t *slot; /* [cap], -1 empty */
    size_t cap;    /* power of two */
} gq_tok_strmap;

/* (left id, right id) -> merge rank and merged id, for byte-level BPE. */
typedef struct {
    uint64_t *key; /* [cap], UINT64_MAX empty */
    int32_t *rank, *merged;
    size_t cap;
} gq_tok_pairmap;

#define GQ_TOK_MAX_PRE 4

struct gq_tokenizer {
    gq_tok_kind kind;
    int n_vocab;
    char *str;          /* slab: every piece, NUL-terminated (pieces may hold NULs only in L2C) */
    size_t *piece_off;  /* [n_vocab] */
    uint32_t *piece_len; /* [n_vocab] */
    float *score;       /* [n_vocab] (SPM, L2C) */
    uint8_t *type;      /* [n_vocab] GQ_TOK_T_* */
    gq_tok_strmap map;
    size_t max_piece_len; /* set by gq_tok_build_map */
    uint8_t barrier[128];  /* SPM/L2C: ASCII characters no mergeable piece of 2+ bytes contains */
    int byte_sym_barrier;  /* L2C: no piece longer than 6 bytes contains "<0x" */
    int bos, eos, unk, add_bos;

    /* SPM */
    int add_dummy_prefix, remove_extra_ws, escape_ws, byte_fallback;
    int byte_id[256]; /* <0xXX> piece ids, -1 if absent */
    int n_user; int32_t *user_ids; /* USER_DEFINED pieces, matched whole in the input */

    /* L2C */
    int max_token_len;

    /* BPE */
    gq_tok_pairmap pairs;
    int n_pre;
    void *pre_re[GQ_TOK_MAX_PRE]; /* pcre2_code_8*, each split applied to the pieces of the previous one */
    int pre_removed[GQ_TOK_MAX_PRE]; /* 1: Split behavior "Removed" (matches dropped), else "Isolated" */
    int byte_level; /* map bytes through GPT-2's byte-to-unicode table before BPE */
    int ignore_merges; /* HF: a word that is itself in the vocabulary is emitted whole */
    int n_added; int32_t *added_ids; /* added/special tokens matched before pre-tokenization */
    uint16_t byte_to_cp[256]; /* GPT-2 bytes_to_unicode */
    int32_t byte_tok[256];    /* id of each byte's single-character token, else unk or -1 (dropped, as HF does) */
    int16_t cp_to_byte[324];  /* inverse (code points < 324), -1 if none */
    char pre_name[64];
};

static inline const char *gq_tok_str(const gq_tokenizer *t, int id) { return t->str + t->piece_off[id]; }

/* Allocate an empty tokenizer of kind k with n_vocab pieces laid into a slab of str_bytes bytes. */
gq_tokenizer *gq_tok_alloc(gq_tok_kind k, int n_vocab, size_t str_bytes);
/* Build t->map from the pieces (after all pieces are filled in). */
void gq_tok_build_map(gq_tokenizer *t);
/* Lookup of an arbitrary byte string; -1 if absent. */
int gq_tok_lookup(const gq_tokenizer *t, const char *s, size_t n);
uint64_t gq_tok_hash(const char *s, size_t n);

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if invalid there. */
int gq_tok_utf8_len(const unsigned char *s, size_t n);
/* Encode a code point as UTF-8 into out (>= 4 bytes); returns its length. */
int gq_tok_utf8_put(uint32_t cp, char *out);
/* GQ_OK, or GQ_ERR_ARG naming the first invalid byte offset. */
gq_status gq_tok_check_utf8(const char *text, size_t len);

/* A growable id vector. */
typedef struct { int32_t *v; size_t n, cap; } gq_tok_ids;
void gq_tok_ids_push(gq_tok_ids *a, int32_t id);

/* Score-ordered merging shared by SPM and L2C: symbols are byte strings; repeatedly merge the
 * adjacent pair whose concatenation is a mergeable piece with the highest score, leftmost on ties
 * (sentencepiece's bpe_model.cc and llama2.c's run.c both pick exactly this pair). On return
 * sym_ptr/sym_len hold the *n surviving symbols in order. mergeable(t, id) filters which ids may
 * be formed by a merge. */
void gq_tok_score_merge(const gq_tokenizer *t, const char **sym_ptr, uint32_t *sym_len, size_t *n,
                        int (*mergeable)(const gq_tokenizer *, int));
/* The same, tracking ids: sym_id[i] is the caller's id for an initial symbol (may be -1) and the
 * vocabulary id of a merged one. */
void gq_tok_score_merge_ids(const gq_tokenizer *t, const char **sym_ptr, uint32_t *sym_len, int32_t *sym_id,
                            size_t *n_sym, int (*mergeable)(const gq_tokenizer *, int));

/* Fill t->barrier / t->byte_sym_barrier (all zero = no shortcut) from the pieces mergeable() admits. */
void gq_tok_compute_barriers(gq_tokenizer *t, int (*mergeable)(const gq_tokenizer *, int));

/* Per-kind loaders/encoders (tokenizer_spm.c, tokenizer_l2c.c, tokenizer_bpe.c). */
gq_status gq_tok_spm_load_buf(const uint8_t *buf, size_t len, const char *name, gq_tokenizer **out);
gq_status gq_tok_l2c_load_buf(const uint8_t *buf, size_t len, int vocab_size, const char *name, gq_tokenizer **out);
gq_status gq_tok_bpe_load_json(const char *json, size_t len, const char *name, gq_tokenizer **out);
gq_status gq_tok_bpe_from_gguf(const struct gq_gguf *g, gq_tokenizer **out);
gq_status gq_tok_spm_from_gguf(const struct gq_gguf *g, gq_tokenizer **out);
gq_status gq_tok_spm_encode(const gq_tokenizer *t, const char *text, size_t len, gq_tok_ids *out);
gq_status gq_tok_l2c_encode(const gq_tokenizer *t, const char *text, size_t len, int add_bos, gq_tok_ids *out);
gq_status gq_tok_bpe_encode(const gq_tokenizer *t, const char *text, size_t len, gq_tok_ids *out);
void gq_tok_bpe_free(gq_tokenizer *t);

#endif
