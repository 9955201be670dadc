/* tokenizer_l2c.c — llama2.c tokenizer.bin: int32 max_token_len, then per token {f32 score,
 * int32 len, len bytes}. Encodes as llama2.c's run.c encode() does: optional BOS, a " " dummy
 * prefix token for non-empty text, one token per UTF-8 character (or its bytes as ids byte+3),
 * then repeatedly merge the adjacent pair whose concatenation is in the vocabulary with the
 * highest score (leftmost on ties; the BOS token takes part, as in run.c).
 * Differences from run.c, by design: text is taken by length (a NUL byte is a character, run.c
 * would stop there), invalid UTF-8 is refused (see tokenizer.c), a vocabulary without a " " piece
 * or without the byte token a character needs is an error instead of an id of -1 or out of range.
 * Must not: trust any length in the file (every size is checked against max_token_len and the
 * bytes left).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

static int32_t rd_i32(const uint8_t *p) {
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

gq_status gq_tok_l2c_load_buf(const uint8_t *buf, size_t len, int vocab_size, const char *name, gq_tokenizer **out) {
    *out = NULL;
    if (len < 4) return gq_errf(GQ_ERR_FORMAT, "%s: %zu bytes is too short for a llama2.c tokenizer.bin", name, len);
    int32_t mtl = rd_i32(buf);
    if (mtl <= 0 || mtl > 65536)
        return gq_errf(GQ_ERR_FORMAT, "%s: max_token_length %d is not in 1..65536 (not a llama2.c tokenizer.bin?)", name, mtl);
    /* pass 1: count and check every record */
    size_t off = 4, n = 0, bytes = 0;
    while (off < len && (vocab_size == 0 || n < (size_t)vocab_size)) {
        if (len - off < 8)
            return gq_errf(GQ_ERR_FORMAT, "%s: token %zu: record header truncated at byte %zu", name, n, off);
        float sc;
        memcpy(&sc, buf + off, 4);
        int32_t l = rd_i32(buf + off + 4);
        if (!isfinite(sc)) return gq_errf(GQ_ERR_FORMAT, "%s: token %zu has a non-finite score", name, n);
        if (l < 0 || l > mtl)
            return gq_errf(GQ_ERR_FORMAT, "%s: token %zu has length %d (max_token_length %d)", name, n, l, mtl);
        if ((size_t)l > len - off - 8)
            return gq_errf(GQ_ERR_FORMAT, "%s: token %zu: %d bytes claimed, %zu left", name, n, l, len - off - 8);
        off += 8 + (size_t)l;
        bytes += (size_t)l + 1;
        n++;
        if (n > (1u << 24)) return gq_errf(GQ_ERR_FORMAT, "%s: more than 2^24 tokens", name);
    }
    if (vocab_size > 0 && n < (size_t)vocab_size)
        return gq_errf(GQ_ERR_FORMAT, "%s: file holds %zu tokens, the model needs %d", name, n, vocab_size);
    if (off != len)
        return gq_errf(GQ_ERR_FORMAT, "%s: %zu trailing bytes after %zu tokens", name, len - off, n);
    if (n < 3) return gq_errf(GQ_ERR_FORMAT, "%s: %zu tokens; run.c needs at least unk, BOS (1) and EOS (2)", name, n);
    gq_tokenizer *t = gq_tok_alloc(GQ_TOK_L2C, (int)n, bytes);
    off = 4;
    size_t so = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(&t->score[i], buf + off, 4);
        int32_t l = rd_i32(buf + off + 4);
        t->piece_off[i] = so;
        t->piece_len[i] = (uint32_t)l;
        memcpy(t->str + so, buf + off + 8, (size_t)l);
        t->str[so + (size_t)l] = 0;
        so += (size_t)l + 1;
        off += 8 + (size_t)l;
        t->type[i] = GQ_TOK_T_NORMAL;
    }
    t->type[0] = GQ_TOK_T_UNKNOWN;
    t->type[1] = t->type[2] = GQ_TOK_T_CONTROL;
    gq_tok_build_map(t);
    t->unk = 0;
    t->bos = 1;
    t->eos = 2;
    t->add_bos = 1; /* run.c's generate() encodes with BOS */
    t->max_token_len = mtl;
    gq_tok_compute_barriers(t, NULL);
    *out = t;
    return GQ_OK;
}

gq_status gq_tok_l2c_encode(const gq_tokenizer *t, const char *text, size_t len, int add_bos, gq_tok_ids *out) {
    size_t cap = len + 2; /* at most one symbol per input byte, plus BOS and the dummy prefix */
    const char **sp = gq_malloc(cap * sizeof *sp);
    uint32_t *sl = gq_malloc(cap * sizeof *sl);
    int32_t *sid = gq_malloc(cap * sizeof *sid);
    size_t ns = 0;
    gq_status st = GQ_OK;
#define L2C_PUSH(id_)                                                                                              \
    do {                                                                                                           \
        int32_t id__ = (id_);                                                                                      \
        sp[ns] = gq_tok_str(t, id__);                                                                              \
        sl[ns] = t->piece_len[id__];                                                                               \
        sid[ns] = id__;                                                                                            \
        ns++;                                                                                                      \
    } while (0)
    if (add_bos) L2C_PUSH(t->bos);
    if (len > 0) {
        int sp_id = gq_tok_lookup(t, " ", 1);
        if (sp_id < 0) {
            st = gq_errf(GQ_ERR_FORMAT, "llama2.c tokenizer has no \" \" token for the dummy prefix");
            goto done;
        }
        L2C_PUSH(sp_id);
    }
    for (size_t i = 0; i < len;) {
        int cl = gq_tok_utf8_len((const unsigned char *)text + i, len - i);
        GQ_ASSERT(cl > 0);
        int id = gq_tok_lookup(t, text + i, (size_t)cl);
        if (id >= 0) {
            L2C_PUSH(id);
        } else {
            for (int k = 0; k < cl; k++) {
                int bid = (unsigned char)text[i + k] + 3;
                if (bid >= t->n_vocab) {
                    st = gq_errf(GQ_ERR_ARG, "byte 0x%02X at offset %zu needs token %d, vocabulary has %d",
                                 (unsigned char)text[i + k], i + k, bid, t->n_vocab);
                    goto done;
                }
                L2C_PUSH(bid);
            }
        }
        i += (size_t)cl;
    }
#undef L2C_PUSH
    gq_tok_score_merge_ids(t, sp, sl, sid, &ns, NULL);
    for (size_t i = 0; i < ns; i++) gq_tok_ids_push(out, sid[i]);
done:
    free(sp);
    free(sl);
    free(sid);
    return st;
}
