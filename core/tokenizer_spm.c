/* tokenizer_spm.c — SentencePiece BPE with byte fallback (LLaMA-1/2 tokenizer.model), read from
 * the protobuf directly (or from a GGUF whose tokenizer.ggml.model is "llama").
 *
 * Encoding follows sentencepiece's bpe_model.cc: normalize (identity charsmap only: ' ' -> U+2581,
 * dummy-prefix U+2581, optional whitespace squeezing), split into characters (user-defined pieces
 * whole), merge the adjacent pair whose concatenation is a NORMAL/USER_DEFINED/UNUSED piece with
 * the highest score, leftmost on ties, then map pieces missing from the vocabulary to <0xXX> byte
 * pieces (byte_fallback) or to unk. Approximation: sentencepiece re-splits a result that is an
 * UNUSED piece; gqsa keeps it (LLaMA's vocabulary has no UNUSED pieces).
 * Must not: accept a model whose normalization it would not reproduce (precompiled charsmaps,
 * whitespace-as-suffix, unigram models are refused with GQ_ERR_UNSUPPORTED).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer_internal.h"

/* ---------------------------------------------------------------- protobuf reading */

typedef struct { const uint8_t *p, *end; const char *name; } pb;

static gq_status pb_varint(pb *r, uint64_t *v, const char *what) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return gq_errf(GQ_ERR_FORMAT, "%s: truncated varint in %s", r->name, what);
        uint8_t b = *r->p++;
        if (shift == 63 && (b & 0x7E)) return gq_errf(GQ_ERR_FORMAT, "%s: varint overflows 64 bits in %s", r->name, what);
        x |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) { *v = x; return GQ_OK; }
    }
    return gq_errf(GQ_ERR_FORMAT, "%s: varint longer than 10 bytes in %s", r->name, what);
}

/* Read one field key; *wt is the wire type. */
static gq_status pb_key(pb *r, uint32_t *field, int *wt, const char *what) {
    uint64_t k;
    GQ_TRY(pb_varint(r, &k, what));
    *wt = (int)(k & 7);
    if ((k >> 3) == 0 || (k >> 3) > 0x1FFFFFFF) return gq_errf(GQ_ERR_FORMAT, "%s: invalid field number in %s", r->name, what);
    *field = (uint32_t)(k >> 3);
    return GQ_OK;
}

/* A length-delimited payload: *sub covers it and r moves past it. */
static gq_status pb_bytes(pb *r, pb *sub, const char *what) {
    uint64_t n;
    GQ_TRY(pb_varint(r, &n, what));
    if (n > (uint64_t)(r->end - r->p))
        return gq_errf(GQ_ERR_FORMAT, "%s: %s claims %llu bytes, only %zu left", r->name, what, (unsigned long long)n,
                       (size_t)(r->end - r->p));
    sub->p = r->p;
    sub->end = r->p + n;
    sub->name = r->name;
    r->p += n;
    return GQ_OK;
}

static gq_status pb_skip(pb *r, int wt, const char *what) {
    uint64_t v;
    pb sub;
    switch (wt) {
    case 0: return pb_varint(r, &v, what);
    case 1:
        if (r->end - r->p < 8) return gq_errf(GQ_ERR_FORMAT, "%s: truncated fixed64 in %s", r->name, what);
        r->p += 8;
        return GQ_OK;
    case 2: return pb_bytes(r, &sub, what);
    case 5:
        if (r->end - r->p < 4) return gq_errf(GQ_ERR_FORMAT, "%s: truncated fixed32 in %s", r->name, what);
        r->p += 4;
        return GQ_OK;
    default: return gq_errf(GQ_ERR_FORMAT, "%s: unsupported wire type %d in %s", r->name, wt, what);
    }
}

static gq_status pb_expect(pb *r, int wt, int want, uint32_t field, const char *what) {
    if (wt != want)
        return gq_errf(GQ_ERR_FORMAT, "%s: field %u of %s has wire type %d, expected %d", r->name, field, what, wt, want);
    return GQ_OK;
}

/* ---------------------------------------------------------------- the model */

typedef struct { const uint8_t *s; uint32_t n; float score; int type; } spm_piece;

typedef struct {
    int model_type, byte_fallback, ws_suffix;
    int64_t unk_id, bos_id, eos_id;
    int add_dummy_prefix, remove_extra_ws, escape_ws;
    size_t charsmap_len;
    char norm_name[64];
} spm_spec;

static gq_status parse_piece(pb *r, spm_piece *pc, size_t index) {
    pc->s = (const uint8_t *)"";
    pc->n = 0;
    pc->score = 0;
    pc->type = GQ_TOK_T_NORMAL;
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        GQ_TRY(pb_key(r, &f, &wt, "SentencePiece"));
        if (f == 1) {
            pb s;
            GQ_TRY(pb_expect(r, wt, 2, f, "SentencePiece"));
            GQ_TRY(pb_bytes(r, &s, "SentencePiece.piece"));
            if ((size_t)(s.end - s.p) > 65536)
                return gq_errf(GQ_ERR_FORMAT, "%s: piece %zu is %zu bytes long", r->name, index, (size_t)(s.end - s.p));
            pc->s = s.p;
            pc->n = (uint32_t)(s.end - s.p);
        } else if (f == 2) {
            GQ_TRY(pb_expect(r, wt, 5, f, "SentencePiece"));
            if (r->end - r->p < 4) return gq_errf(GQ_ERR_FORMAT, "%s: truncated score of piece %zu", r->name, index);
            uint32_t u = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
            memcpy(&pc->score, &u, 4);
            r->p += 4;
            if (!isfinite(pc->score))
                return gq_errf(GQ_ERR_FORMAT, "%s: piece %zu has a non-finite score", r->name, index);
        } else if (f == 3) {
            uint64_t v;
            GQ_TRY(pb_expect(r, wt, 0, f, "SentencePiece"));
            GQ_TRY(pb_varint(r, &v, "SentencePiece.type"));
            if (v < 1 || v > 6) return gq_errf(GQ_ERR_FORMAT, "%s: piece %zu has type %llu (1..6 expected)", r->name, index, (unsigned long long)v);
            pc->type = (int)v;
        } else {
            GQ_TRY(pb_skip(r, wt, "SentencePiece"));
        }
    }
    if (gq_tok_check_utf8((const char *)pc->s, pc->n) != GQ_OK)
        return gq_errf(GQ_ERR_FORMAT, "%s: piece %zu is not valid UTF-8", r->name, index);
    return GQ_OK;
}

static gq_status parse_trainer(pb *r, spm_spec *sp) {
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        GQ_TRY(pb_key(r, &f, &wt, "TrainerSpec"));
        if (f == 3 || f == 24 || f == 35 || f == 40 || f == 41 || f == 42) {
            uint64_t v;
            GQ_TRY(pb_expect(r, wt, 0, f, "TrainerSpec"));
            GQ_TRY(pb_varint(r, &v, "TrainerSpec"));
            if (f == 3) sp->model_type = (int)(v > 100 ? 100 : v);
            else if (f == 24) sp->ws_suffix = v != 0;
            else if (f == 35) sp->byte_fallback = v != 0;
            else {
                int64_t iv = (int64_t)(int32_t)(uint32_t)v; /* int32 fields: negatives are 10-byte varints */
                if (f == 40) sp->unk_id = iv;
                else if (f == 41) sp->bos_id = iv;
                else sp->eos_id = iv;
            }
        } else {
            GQ_TRY(pb_skip(r, wt, "TrainerSpec"));
        }
    }
    return GQ_OK;
}

static gq_status parse_normalizer(pb *r, spm_spec *sp) {
    while (r->p < r->end) {
        uint32_t f;
        int wt;
        GQ_TRY(pb_key(r, &f, &wt, "NormalizerSpec"));
        if (f == 1 || f == 2) {
            pb s;
            GQ_TRY(pb_expect(r, wt, 2, f, "NormalizerSpec"));
            GQ_TRY(pb_bytes(r, &s, "NormalizerSpec"));
            size_t n = (size_t)(s.end - s.p);
            if (f == 2) sp->charsmap_len = n;
            else {
                if (n >= sizeof sp->norm_name) n = sizeof sp->norm_name - 1;
                memcpy(sp->norm_name, s.p, n);
                sp->norm_name[n] = 0;
                for (size_t i = 0; i < n; i++)
                    if ((unsigned char)sp->norm_name[i] < 0x20 || (unsigned char)sp->norm_name[i] >= 0x7F) sp->norm_name[i] = '?';
            }
        } else if (f == 3 || f == 4 || f == 5) {
            uint64_t v;
            GQ_TRY(pb_expect(r, wt, 0, f, "NormalizerSpec"));
            GQ_TRY(pb_varint(r, &v, "NormalizerSpec"));
            if (f == 3) sp->add_dummy_prefix = v != 0;
            else if (f == 4) sp->remove_extra_ws = v != 0;
            else sp->escape_ws = v != 0;
        } else {
            GQ_TRY(pb_skip(r, wt, "NormalizerSpec"));
        }
    }
    return GQ_OK;
}

/* Two uppercase/lowercase hex digits -> 0..255, else -1 (sscanf's %X would take signs and spaces). */
static int hex2(const char *p) {
    int v = 0;
    for (int i = 0; i < 2; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

static int spm_mergeable(const gq_tokenizer *t, int id) {
    int ty = t->type[id];
    return ty == GQ_TOK_T_NORMAL || ty == GQ_TOK_T_USER || ty == GQ_TOK_T_UNUSED;
}

/* Common construction from a list of pieces (protobuf or GGUF). */
static gq_status spm_build(const spm_piece *pcs, size_t n, const spm_spec *sp, const char *name, gq_tokenizer **out) {
    if (n == 0) return gq_errf(GQ_ERR_FORMAT, "%s: the model has no pieces", name);
    if (n > (1u << 24)) return gq_errf(GQ_ERR_FORMAT, "%s: %zu pieces is implausibly many", name, n);
    if (sp->model_type != 2)
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: sentencepiece model_type %d is not BPE (2); only BPE is supported", name,
                       sp->model_type);
    if (sp->charsmap_len)
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: normalizer '%s' has a precompiled charsmap; only identity is supported",
                       name, sp->norm_name);
    if (sp->ws_suffix) return gq_errf(GQ_ERR_UNSUPPORTED, "%s: treat_whitespace_as_suffix is not supported", name);
    if (sp->unk_id < 0 || sp->unk_id >= (int64_t)n)
        return gq_errf(GQ_ERR_FORMAT, "%s: unk_id %lld outside the %zu pieces", name, (long long)sp->unk_id, n);
    if (sp->bos_id >= (int64_t)n || sp->eos_id >= (int64_t)n || sp->bos_id < -1 || sp->eos_id < -1)
        return gq_errf(GQ_ERR_FORMAT, "%s: bos_id %lld / eos_id %lld outside the %zu pieces", name, (long long)sp->bos_id,
                       (long long)sp->eos_id, n);
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += (size_t)pcs[i].n + 1;
    gq_tokenizer *t = gq_tok_alloc(GQ_TOK_SPM, (int)n, bytes);
    size_t off = 0;
    int n_user = 0;
    for (size_t i = 0; i < n; i++) {
        t->piece_off[i] = off;
        t->piece_len[i] = pcs[i].n;
        memcpy(t->str + off, pcs[i].s, pcs[i].n);
        t->str[off + pcs[i].n] = 0;
        off += (size_t)pcs[i].n + 1;
        t->score[i] = pcs[i].score;
        t->type[i] = (uint8_t)pcs[i].type;
        if (pcs[i].type == GQ_TOK_T_USER) n_user++;
        if (pcs[i].type == GQ_TOK_T_BYTE) {
            const char *q = (const char *)t->str + t->piece_off[i];
            int v = pcs[i].n == 6 && !memcmp(q, "<0x", 3) && q[5] == '>' ? hex2(q + 3) : -1;
            if (v < 0) {
                gq_tokenizer_free(t);
                return gq_errf(GQ_ERR_FORMAT, "%s: byte piece %zu is not of the form <0xXX>", name, i);
            }
            if (t->byte_id[v] < 0) t->byte_id[v] = (int)i;
        }
    }
    gq_tok_build_map(t);
    for (size_t i = 0; i < n; i++)
        if (gq_tok_lookup(t, gq_tok_str(t, (int)i), t->piece_len[i]) != (int)i) {
            gq_tokenizer_free(t);
            return gq_errf(GQ_ERR_FORMAT, "%s: piece %zu duplicates an earlier piece", name, i);
        }
    if (sp->byte_fallback)
        for (int b = 0; b < 256; b++)
            if (t->byte_id[b] < 0) {
                gq_tokenizer_free(t);
                return gq_errf(GQ_ERR_FORMAT, "%s: byte_fallback is set but piece <0x%02X> is missing", name, b);
            }
    t->user_ids = gq_malloc(((size_t)n_user + 1) * sizeof *t->user_ids);
    for (size_t i = 0; i < n; i++)
        if (pcs[i].type == GQ_TOK_T_USER && pcs[i].n) t->user_ids[t->n_user++] = (int32_t)i;
    t->unk = (int)sp->unk_id;
    t->bos = (int)sp->bos_id;
    t->eos = (int)sp->eos_id;
    t->add_bos = 1; /* LLaMA's (and HF LlamaTokenizer's) default */
    t->add_dummy_prefix = sp->add_dummy_prefix;
    t->remove_extra_ws = sp->remove_extra_ws;
    t->escape_ws = sp->escape_ws;
    t->byte_fallback = sp->byte_fallback;
    gq_tok_compute_barriers(t, spm_mergeable);
    *out = t;
    return GQ_OK;
}

gq_status gq_tok_spm_load_buf(const uint8_t *buf, size_t len, const char *name, gq_tokenizer **out) {
    *out = NULL;
    /* proto2 defaults for fields a file may leave out */
    spm_spec sp = {.model_type = 1, .unk_id = 0, .bos_id = 1, .eos_id = 2, .add_dummy_prefix = 1,
                   .remove_extra_ws = 1, .escape_ws = 1};
    pb r = {buf, buf + len, name};
    size_t n = 0, cap = 0;
    spm_piece *pcs = NULL;
    gq_status st = GQ_OK;
    while (r.p < r.end && st == GQ_OK) {
        uint32_t f;
        int wt;
        pb sub;
        if ((st = pb_key(&r, &f, &wt, "ModelProto")) != GQ_OK) break;
        if (f == 1 || f == 2 || f == 3) {
            if ((st = pb_expect(&r, wt, 2, f, "ModelProto")) != GQ_OK) break;
            if ((st = pb_bytes(&r, &sub, "ModelProto")) != GQ_OK) break;
            if (f == 1) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 1024;
                    pcs = gq_realloc(pcs, cap * sizeof *pcs);
                }
                st = parse_piece(&sub, &pcs[n], n);
                n++;
            } else if (f == 2) {
                st = parse_trainer(&sub, &sp);
            } else {
                st = parse_normalizer(&sub, &sp);
            }
        } else {
            st = pb_skip(&r, wt, "ModelProto");
        }
    }
    if (st == GQ_OK) st = spm_build(pcs, n, &sp, name, out);
    free(pcs);
    return st;
}

gq_status gq_tok_spm_from_gguf(const struct gq_gguf *g, gq_tokenizer **out) {
    *out = NULL;
    const gq_gguf_kv *tok = gq_gguf_find(g, "tokenizer.ggml.tokens");
    const gq_gguf_kv *sc = gq_gguf_find(g, "tokenizer.ggml.scores");
    const gq_gguf_kv *ty = gq_gguf_find(g, "tokenizer.ggml.token_type");
    if (!tok || tok->type != GQ_GGUF_ARRAY || tok->arr_type != GQ_GGUF_STRING || !tok->arr_strs)
        return gq_errf(GQ_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or not a string array", g->path);
    uint64_t n = tok->arr_n;
    if (sc && (sc->type != GQ_GGUF_ARRAY || sc->arr_n != n || sc->arr_type != GQ_GGUF_F32))
        return gq_errf(GQ_ERR_FORMAT, "%s: tokenizer.ggml.scores is not an f32 array of %llu", g->path, (unsigned long long)n);
    if (ty && (ty->type != GQ_GGUF_ARRAY || ty->arr_n != n ||
               (ty->arr_type != GQ_GGUF_I32 && ty->arr_type != GQ_GGUF_U32)))
        return gq_errf(GQ_ERR_FORMAT, "%s: tokenizer.ggml.token_type is not an int32 array of %llu", g->path,
                       (unsigned long long)n);
    if (n == 0 || n > (1u << 24)) return gq_errf(GQ_ERR_FORMAT, "%s: %llu tokens", g->path, (unsigned long long)n);
    spm_piece *pcs = gq_malloc(n * sizeof *pcs);
    spm_spec sp = {.model_type = 2, .unk_id = 0, .bos_id = 1, .eos_id = 2, .add_dummy_prefix = 1,
                   .remove_extra_ws = 0, .escape_ws = 1};
    int any_byte = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (tok->arr_strs[i].n > 65536) {
            free(pcs);
            return gq_errf(GQ_ERR_FORMAT, "%s: token %llu is too long", g->path, (unsigned long long)i);
        }
        pcs[i].s = (const uint8_t *)tok->arr_strs[i].s;
        pcs[i].n = (uint32_t)tok->arr_strs[i].n;
        pcs[i].score = sc ? (float)gq_gguf_arr_f64(sc, i) : 0.0f;
        int64_t tv = ty ? gq_gguf_arr_i64(ty, i) : GQ_TOK_T_NORMAL;
        if (tv < 1 || tv > 6) {
            free(pcs);
            return gq_errf(GQ_ERR_FORMAT, "%s: token %llu has type %lld", g->path, (unsigned long long)i, (long long)tv);
        }
        pcs[i].type = (int)tv;
        if (tv == GQ_TOK_T_BYTE) any_byte = 1;
        if (!isfinite(pcs[i].score)) {
            free(pcs);
            return gq_errf(GQ_ERR_FORMAT, "%s: token %llu has a non-finite score", g->path, (unsigned long long)i);
        }
        if (gq_tok_check_utf8((const char *)pcs[i].s, pcs[i].n) != GQ_OK) {
            free(pcs);
            return gq_errf(GQ_ERR_FORMAT, "%s: token %llu is not valid UTF-8", g->path, (unsigned long long)i);
        }
    }
    sp.byte_fallback = any_byte;
    uint64_t v;
    if (gq_gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &v) == GQ_OK) sp.bos_id = v < n ? (int64_t)v : (int64_t)n;
    if (gq_gguf_get_u64(g, "tokenizer.ggml.eos_token_id", &v) == GQ_OK) sp.eos_id = v < n ? (int64_t)v : (int64_t)n;
    if (gq_gguf_get_u64(g, "tokenizer.ggml.unknown_token_id", &v) == GQ_OK) sp.unk_id = v < n ? (int64_t)v : (int64_t)n;
    if (gq_gguf_get_u64(g, "tokenizer.ggml.add_space_prefix", &v) == GQ_OK) sp.add_dummy_prefix = v != 0;
    gq_err_clear();
    gq_status st = spm_build(pcs, n, &sp, g->path, out);
    free(pcs);
    if (st == GQ_OK && gq_gguf_get_u64(g, "tokenizer.ggml.add_bos_token", &v) == GQ_OK) (*out)->add_bos = v != 0;
    gq_err_clear();
    return st;
}

/* ---------------------------------------------------------------- encoding */


static const char SPACE_MARK[3] = {(char)0xE2, (char)0x96, (char)0x81}; /* U+2581 */

gq_status gq_tok_spm_encode(const gq_tokenizer *t, const char *text, size_t len, gq_tok_ids *out) {
    size_t b = 0, e = len;
    if (t->remove_extra_ws) {
        while (b < e && text[b] == ' ') b++;
        while (e > b && text[e - 1] == ' ') e--;
    }
    if (b == e) return GQ_OK; /* sentencepiece encodes empty (or all-space when squeezing) text to nothing */
    /* normalized text: at most 3 bytes per input byte plus the prefix */
    char *norm = gq_malloc(3 * (e - b) + 4);
    size_t nn = 0;
    if (t->add_dummy_prefix) {
        if (t->escape_ws) { memcpy(norm, SPACE_MARK, 3); nn = 3; }
        else norm[nn++] = ' ';
    }
    for (size_t i = b; i < e; i++) {
        if (text[i] == ' ') {
            if (t->remove_extra_ws && i > b && text[i - 1] == ' ') continue;
            if (t->escape_ws) { memcpy(norm + nn, SPACE_MARK, 3); nn += 3; continue; }
        }
        norm[nn++] = text[i];
    }
    const char **sp = gq_malloc(nn * sizeof *sp);
    uint32_t *sl = gq_malloc(nn * sizeof *sl);
    size_t ns = 0;
    for (size_t i = 0; i < nn;) {
        size_t best = 0;
        for (int u = 0; u < t->n_user; u++) { /* user-defined pieces are never split (longest wins) */
            int id = t->user_ids[u];
            size_t pl = t->piece_len[id];
            if (pl > best && pl <= nn - i && !memcmp(norm + i, gq_tok_str(t, id), pl)) best = pl;
        }
        if (!best) best = (size_t)gq_tok_utf8_len((const unsigned char *)norm + i, nn - i);
        GQ_ASSERT(best > 0); /* the input was validated */
        sp[ns] = norm + i;
        sl[ns] = (uint32_t)best;
        ns++;
        i += best;
    }
    gq_tok_score_merge(t, sp, sl, &ns, spm_mergeable);
    for (size_t i = 0; i < ns; i++) {
        int id = gq_tok_lookup(t, sp[i], sl[i]);
        if (id >= 0 && t->type[id] != GQ_TOK_T_UNKNOWN) {
            gq_tok_ids_push(out, id);
        } else if (t->byte_fallback) {
            for (uint32_t k = 0; k < sl[i]; k++) gq_tok_ids_push(out, t->byte_id[(unsigned char)sp[i][k]]);
        } else {
            gq_tok_ids_push(out, t->unk);
        }
    }
    free(sp);
    free(sl);
    free(norm);
    return GQ_OK;
}
