/* tokenizer_export.c — tokenizer.ggml.* metadata from a gq_tokenizer (see tokenizer_export.h).
 *
 * A core/tokenizer*.c file, so it may read the struct in tokenizer_internal.h; it only reads.
 * Must not: modify the tokenizer, do I/O.
 */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_export.h"
#include "tokenizer_internal.h"

float gq_tokenizer_score(const gq_tokenizer *t, int id) {
    GQ_ASSERT(id >= 0 && id < t->n_vocab);
    return t->score ? t->score[id] : 0.0f;
}
int gq_tokenizer_token_type(const gq_tokenizer *t, int id) {
    GQ_ASSERT(id >= 0 && id < t->n_vocab);
    return t->type ? t->type[id] : GQ_TOK_T_NORMAL;
}
size_t gq_tokenizer_piece_len(const gq_tokenizer *t, int id) {
    GQ_ASSERT(id >= 0 && id < t->n_vocab);
    return t->piece_len[id];
}
int gq_tokenizer_unk(const gq_tokenizer *t) { return t->unk; }

typedef struct { int32_t rank, left, right; } merge_ent;
static int cmp_merge(const void *a, const void *b) {
    const merge_ent *x = a, *y = b;
    return (x->rank > y->rank) - (x->rank < y->rank);
}

static int is_byte_piece(const char *p, size_t n) {
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return 0;
    for (int i = 3; i < 5; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'F') || (p[i] >= 'a' && p[i] <= 'f'))) return 0;
    return 1;
}

/* L2C pieces in SentencePiece spelling (what llama.cpp's llama2.c converter writes). */
static gq_status l2c_pieces(const gq_tokenizer *t, char **strs, size_t *lens, int32_t *types) {
    static const char SP[3] = {(char)0xE2, (char)0x96, (char)0x81}; /* U+2581 */
    for (int i = 0; i < t->n_vocab; i++) {
        const char *p = gq_tok_str(t, i);
        size_t n = t->piece_len[i];
        int ty = GQ_TOK_T_NORMAL;
        const char *fixed = NULL;
        if (i == t->unk) fixed = "<unk>", ty = GQ_TOK_T_UNKNOWN;
        else if (i == t->bos) fixed = "<s>", ty = GQ_TOK_T_CONTROL;
        else if (i == t->eos) fixed = "</s>", ty = GQ_TOK_T_CONTROL;
        else if (n == 0) ty = GQ_TOK_T_CONTROL;
        else if (is_byte_piece(p, n)) ty = GQ_TOK_T_BYTE;
        if (fixed) {
            strs[i] = gq_strdup(fixed);
            lens[i] = strlen(fixed);
        } else {
            if (memchr(p, 0, n) || gq_tok_check_utf8(p, n) != GQ_OK)
                return gq_errf(GQ_ERR_FORMAT, "tokenizer piece %d is not valid UTF-8 text; GGUF tokens must be", i);
            size_t spaces = 0;
            for (size_t j = 0; j < n; j++) spaces += p[j] == ' ';
            char *s = gq_malloc(n + 2 * spaces + 1);
            size_t o = 0;
            for (size_t j = 0; j < n; j++) {
                if (p[j] == ' ' && ty != GQ_TOK_T_BYTE) { memcpy(s + o, SP, 3); o += 3; }
                else s[o++] = p[j];
            }
            s[o] = 0;
            strs[i] = s;
            lens[i] = o;
        }
        types[i] = ty;
    }
    return GQ_OK;
}

gq_status gq_tokenizer_export_gguf(const gq_tokenizer *t, gq_ggufw *w, const char *pre_override, int add_bos) {
    GQ_ASSERT(t && w);
    const int n = t->n_vocab;
    if (add_bos < 0) add_bos = gq_tokenizer_add_bos_default(t);
    if (t->kind == GQ_TOK_BPE) {
        const char *pre = pre_override ? pre_override : t->pre_name;
        if (!strcmp(pre, "tokenizer.json"))
            return gq_errf(GQ_ERR_UNSUPPORTED, "the byte-level BPE tokenizer was read from tokenizer.json, whose "
                           "pre-tokenizer has no GGUF name\nHINT: pass --tokenizer-pre NAME (llama-bpe for LLaMA-3, "
                           "qwen2 for Qwen2.5, smollm for SmolLM2, gpt2 for GPT-2/OPT)");
        if (t->ignore_merges)
            return gq_errf(GQ_ERR_UNSUPPORTED, "the BPE tokenizer uses ignore_merges, which GGUF metadata cannot say");
        const char **strs = gq_malloc((size_t)n * sizeof *strs);
        int32_t *types = gq_malloc((size_t)n * sizeof *types);
        size_t *lens = gq_malloc((size_t)n * sizeof *lens);
        for (int i = 0; i < n; i++) {
            strs[i] = gq_tok_str(t, i);
            lens[i] = t->piece_len[i];
            types[i] = t->type[i];
        }
        /* merges: the pair map in rank order (ranks may have gaps where a repeated pair was dropped;
         * only their order matters to the encoder, and the reader re-ranks by position) */
        size_t nm = 0;
        for (size_t s = 0; s < t->pairs.cap; s++) nm += t->pairs.key[s] != UINT64_MAX;
        merge_ent *me = gq_malloc((nm ? nm : 1) * sizeof *me);
        nm = 0;
        for (size_t s = 0; s < t->pairs.cap; s++)
            if (t->pairs.key[s] != UINT64_MAX)
                me[nm++] = (merge_ent){t->pairs.rank[s], (int32_t)(t->pairs.key[s] >> 32),
                                       (int32_t)(t->pairs.key[s] & 0xffffffffu)};
        qsort(me, nm, sizeof *me, cmp_merge);
        char **ms = gq_malloc((nm ? nm : 1) * sizeof *ms);
        for (size_t i = 0; i < nm; i++) {
            size_t la = t->piece_len[me[i].left], lb = t->piece_len[me[i].right];
            ms[i] = gq_malloc(la + lb + 2);
            memcpy(ms[i], gq_tok_str(t, me[i].left), la);
            ms[i][la] = ' ';
            memcpy(ms[i] + la + 1, gq_tok_str(t, me[i].right), lb);
            ms[i][la + lb + 1] = 0;
        }
        gq_ggufw_set_str(w, "tokenizer.ggml.model", "gpt2");
        gq_ggufw_set_str(w, "tokenizer.ggml.pre", pre);
        gq_ggufw_set_arr_str(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)n);
        gq_ggufw_set_arr(w, "tokenizer.ggml.token_type", GQ_GGUF_I32, types, (uint64_t)n);
        gq_ggufw_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)ms, NULL, nm);
        for (size_t i = 0; i < nm; i++) free(ms[i]);
        free(ms);
        free(me);
        free(strs);
        free(types);
        free(lens);
    } else {
        /* SPM and L2C: both become sentencepiece-style "llama" vocabularies with scores */
        char **strs = gq_calloc((size_t)n, sizeof *strs);
        size_t *lens = gq_malloc((size_t)n * sizeof *lens);
        int32_t *types = gq_malloc((size_t)n * sizeof *types);
        float *scores = gq_malloc((size_t)n * sizeof *scores);
        gq_status st = GQ_OK;
        if (t->kind == GQ_TOK_L2C) {
            st = l2c_pieces(t, strs, lens, types);
        } else {
            for (int i = 0; i < n; i++) {
                strs[i] = gq_malloc(t->piece_len[i] + 1);
                memcpy(strs[i], gq_tok_str(t, i), t->piece_len[i] + 1);
                lens[i] = t->piece_len[i];
                types[i] = t->type[i];
            }
        }
        for (int i = 0; i < n; i++) scores[i] = t->score ? t->score[i] : 0.0f;
        if (st == GQ_OK) {
            gq_ggufw_set_str(w, "tokenizer.ggml.model", "llama");
            gq_ggufw_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)strs, lens, (uint64_t)n);
            gq_ggufw_set_arr(w, "tokenizer.ggml.scores", GQ_GGUF_F32, scores, (uint64_t)n);
            gq_ggufw_set_arr(w, "tokenizer.ggml.token_type", GQ_GGUF_I32, types, (uint64_t)n);
            if (t->unk >= 0) gq_ggufw_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk);
            /* llama2.c's encoder always adds the dummy " " prefix */
            gq_ggufw_set_bool(w, "tokenizer.ggml.add_space_prefix", t->kind == GQ_TOK_L2C ? 1 : t->add_dummy_prefix);
        }
        for (int i = 0; i < n; i++) free(strs[i]);
        free(strs);
        free(lens);
        free(types);
        free(scores);
        if (st != GQ_OK) return st;
    }
    if (t->bos >= 0) gq_ggufw_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos);
    if (t->eos >= 0) gq_ggufw_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos);
    gq_ggufw_set_bool(w, "tokenizer.ggml.add_bos_token", add_bos);
    return GQ_OK;
}
