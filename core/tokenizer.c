/* tokenizer.c — the common half of the tokenizers: loading by content, dispatch, the vocabulary
 * hash map, UTF-8 checks and the score-ordered merge engine shared by SPM and L2C.
 *
 * Invalid UTF-8 (decided here for all three kinds): encode rejects it with GQ_ERR_ARG naming the
 * byte offset of the first bad byte, before any work. The references differ (sentencepiece turns
 * each bad byte into U+FFFD, HF tokenizers refuses non-str input, llama2.c copies bytes blindly),
 * so gqsa refuses rather than silently pick one. Overlong forms, surrogates and code points above
 * U+10FFFF count as invalid. A NUL byte is valid text.
 * Must not: read files other than the one given, print, keep global state (encode is thread-safe).
 */
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer_internal.h"

/* ---------------------------------------------------------------- allocation and the string map */

gq_tokenizer *gq_tok_alloc(gq_tok_kind k, int n_vocab, size_t str_bytes) {
    gq_tokenizer *t = gq_calloc(1, sizeof *t);
    t->kind = k;
    t->n_vocab = n_vocab;
    t->str = gq_malloc(str_bytes ? str_bytes : 1);
    t->piece_off = gq_calloc((size_t)n_vocab + 1, sizeof *t->piece_off);
    t->piece_len = gq_calloc((size_t)n_vocab + 1, sizeof *t->piece_len);
    t->score = gq_calloc((size_t)n_vocab + 1, sizeof *t->score);
    t->type = gq_calloc((size_t)n_vocab + 1, 1);
    t->bos = t->eos = t->unk = -1;
    for (int i = 0; i < 256; i++) t->byte_id[i] = -1;
    return t;
}

uint64_t gq_tok_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

void gq_tok_build_map(gq_tokenizer *t) {
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2) cap <<= 1;
    t->map.cap = cap;
    t->map.slot = gq_malloc(cap * sizeof *t->map.slot);
    for (size_t i = 0; i < cap; i++) t->map.slot[i] = -1;
    for (int id = 0; id < t->n_vocab; id++) {
        const char *s = gq_tok_str(t, id);
        size_t n = t->piece_len[id];
        if (n > t->max_piece_len) t->max_piece_len = n;
        size_t h = (size_t)gq_tok_hash(s, n) & (cap - 1);
        for (;;) {
            int32_t o = t->map.slot[h];
            if (o < 0) { t->map.slot[h] = id; break; }
            if (t->piece_len[o] == n && !memcmp(gq_tok_str(t, o), s, n)) break; /* duplicate: first id wins */
            h = (h + 1) & (cap - 1);
        }
    }
}

int gq_tok_lookup(const gq_tokenizer *t, const char *s, size_t n) {
    if (!t->map.slot) return -1;
    size_t cap = t->map.cap, h = (size_t)gq_tok_hash(s, n) & (cap - 1);
    for (;;) {
        int32_t o = t->map.slot[h];
        if (o < 0) return -1;
        if (t->piece_len[o] == n && !memcmp(gq_tok_str(t, o), s, n)) return o;
        h = (h + 1) & (cap - 1);
    }
}

void gq_tok_ids_push(gq_tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = gq_realloc(a->v, a->cap * sizeof *a->v);
    }
    a->v[a->n++] = id;
}

/* ---------------------------------------------------------------- UTF-8 */

int gq_tok_utf8_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

int gq_tok_utf8_put(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

gq_status gq_tok_check_utf8(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80) { i++; continue; }
        int l = gq_tok_utf8_len(s + i, len - i);
        if (!l) return gq_errf(GQ_ERR_ARG, "invalid UTF-8 at byte offset %zu (byte 0x%02X)", i, s[i]);
        i += (size_t)l;
    }
    return GQ_OK;
}

/* ---------------------------------------------------------------- score-ordered merging */

typedef struct { float score; int32_t left, right; uint32_t size; } merge_cand;

/* Max-heap on score; on equal scores the smaller left index (earlier in the text) comes first. */
static int cand_before(const merge_cand *a, const merge_cand *b) {
    if (a->score != b->score) return a->score > b->score;
    return a->left < b->left;
}

typedef struct { merge_cand *v; size_t n, cap; } cand_heap;

static void heap_push(cand_heap *h, merge_cand c) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = gq_realloc(h->v, h->cap * sizeof *h->v);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_before(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
}

static merge_cand heap_pop(cand_heap *h) {
    merge_cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const merge_cand *best = &last;
        if (l < h->n && cand_before(&h->v[l], best)) { m = l; best = &h->v[l]; }
        if (r < h->n && cand_before(&h->v[r], best)) { m = r; }
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct {
    const gq_tokenizer *t;
    const char **ptr;
    uint32_t *len;
    int32_t *id;
    int32_t *prev, *next;
    char *scratch;
    size_t scratch_cap;
    cand_heap heap;
    int (*mergeable)(const gq_tokenizer *, int);
} merge_ctx;

static void try_pair(merge_ctx *c, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    size_t n = (size_t)c->len[l] + c->len[r];
    if (n > c->scratch_cap) return; /* longer than every piece: cannot be one */
    memcpy(c->scratch, c->ptr[l], c->len[l]);
    memcpy(c->scratch + c->len[l], c->ptr[r], c->len[r]);
    int id = gq_tok_lookup(c->t, c->scratch, n);
    if (id < 0 || (c->mergeable && !c->mergeable(c->t, id))) return;
    merge_cand m = {c->t->score[id], l, r, (uint32_t)n};
    heap_push(&c->heap, m);
}

void gq_tok_compute_barriers(gq_tokenizer *t, int (*mergeable)(const gq_tokenizer *, int)) {
    uint8_t seen[256] = {0};
    int byte_in_longer = 0;
    for (int id = 0; id < t->n_vocab; id++) {
        if (mergeable && !mergeable(t, id)) continue;
        const char *p = gq_tok_str(t, id);
        size_t n = t->piece_len[id];
        if (n >= 2)
            for (size_t i = 0; i < n; i++) seen[(unsigned char)p[i]] = 1;
        if (n > 6 && memmem(p, n, "<0x", 3)) byte_in_longer = 1;
    }
    for (int c = 0; c < 128; c++) t->barrier[c] = !seen[c];
    t->byte_sym_barrier = !byte_in_longer;
}

/* A symbol no merge can involve: a single ASCII character found in no mergeable piece of 2+ bytes,
 * or (L2C byte fallback) a "<0xXX>" piece when no longer piece contains "<0x". */
static int sym_is_barrier(const gq_tokenizer *t, const char *p, uint32_t n) {
    if (n == 1) return (unsigned char)p[0] < 128 && t->barrier[(unsigned char)p[0]];
    return n == 6 && t->byte_sym_barrier && !memcmp(p, "<0x", 3) && p[5] == '>';
}

void gq_tok_score_merge_ids(const gq_tokenizer *t, const char **sym_ptr, uint32_t *sym_len, int32_t *sym_id,
                            size_t *n_sym, int (*mergeable)(const gq_tokenizer *, int)) {
    size_t n = *n_sym;
    if (n < 2) return;
    size_t maxlen = t->max_piece_len;
    merge_ctx c = {.t = t, .ptr = sym_ptr, .len = sym_len, .id = sym_id, .mergeable = mergeable};
    c.prev = gq_malloc(n * sizeof *c.prev);
    c.next = gq_malloc(n * sizeof *c.next);
    c.scratch_cap = maxlen;
    c.scratch = gq_malloc(maxlen + 1);
    /* a merged symbol's text points at its vocabulary piece, so callers' buffers are never written.
     * Runs between barrier symbols (ones no mergeable piece can contain) merge independently, which
     * keeps the heap small on long texts; the result is the same as one global queue. */
    for (size_t st = 0; st < n;) {
        size_t en = st;
        while (en < n && !sym_is_barrier(t, sym_ptr[en], sym_len[en])) en++;
        if (en == st) { st++; continue; }
        for (size_t i = st; i < en; i++) {
            c.prev[i] = i > st ? (int32_t)i - 1 : -1;
            c.next[i] = i + 1 < en ? (int32_t)(i + 1) : -1;
        }
        c.heap.n = 0;
        for (size_t i = st; i + 1 < en; i++) try_pair(&c, (int32_t)i, (int32_t)(i + 1));
        while (c.heap.n) {
            merge_cand m = heap_pop(&c.heap);
            /* stale: one side was merged away or changed since this pair was queued */
            if (sym_len[m.left] == 0 || sym_len[m.right] == 0 || c.next[m.left] != m.right ||
                sym_len[m.left] + sym_len[m.right] != m.size)
                continue;
            memcpy(c.scratch, sym_ptr[m.left], sym_len[m.left]);
            memcpy(c.scratch + sym_len[m.left], sym_ptr[m.right], sym_len[m.right]);
            int id = gq_tok_lookup(t, c.scratch, m.size);
            GQ_ASSERT(id >= 0);
            sym_ptr[m.left] = gq_tok_str(t, id);
            sym_len[m.left] = m.size;
            if (sym_id) sym_id[m.left] = id;
            sym_len[m.right] = 0;
            int32_t nx = c.next[m.right];
            c.next[m.left] = nx;
            if (nx >= 0) c.prev[nx] = m.left;
            try_pair(&c, c.prev[m.left], m.left);
            try_pair(&c, m.left, nx);
        }
        st = en;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (sym_len[i] == 0) continue; /* merged into its left neighbour */
        sym_ptr[k] = sym_ptr[i];
        sym_len[k] = sym_len[i];
        if (sym_id) sym_id[k] = sym_id[i];
        k++;
    }
    *n_sym = k;
    free(c.prev);
    free(c.next);
    free(c.scratch);
    free(c.heap.v);
}

void gq_tok_score_merge(const gq_tokenizer *t, const char **sym_ptr, uint32_t *sym_len, size_t *n,
                        int (*mergeable)(const gq_tokenizer *, int)) {
    gq_tok_score_merge_ids(t, sym_ptr, sym_len, NULL, n, mergeable);
}

/* ---------------------------------------------------------------- public API */

gq_status gq_tokenizer_load(const char *path, int vocab_size, gq_tokenizer **out) {
    GQ_ASSERT(path && out);
    *out = NULL;
    if (vocab_size < 0) return gq_errf(GQ_ERR_ARG, "%s: vocab_size %d is negative", path, vocab_size);
    char *buf;
    size_t len;
    GQ_TRY(gq_read_file(path, &buf, &len));
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')) i++;
    gq_status st;
    if (i < len && buf[i] == '{')
        st = gq_tok_bpe_load_json(buf, len, path, out);
    else if (len >= 2 && (uint8_t)buf[0] == 0x0A && buf[1] != 0) { /* protobuf field 1, length-delimited */
        st = gq_tok_spm_load_buf((const uint8_t *)buf, len, path, out);
        if (st != GQ_OK) {
            /* a tokenizer.bin whose max_token_len is 0x..0A looks the same: try it before giving up */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", gq_errmsg());
            if (gq_tok_l2c_load_buf((const uint8_t *)buf, len, vocab_size, path, out) == GQ_OK) st = GQ_OK;
            else gq_errf(st, "%s", msg);
        }
    } else
        st = gq_tok_l2c_load_buf((const uint8_t *)buf, len, vocab_size, path, out);
    free(buf);
    return st;
}

gq_status gq_tokenizer_from_gguf(const struct gq_gguf *g, gq_tokenizer **out) {
    GQ_ASSERT(g && out);
    *out = NULL;
    gq_gguf_str model;
    if (gq_gguf_get_str(g, "tokenizer.ggml.model", &model) != GQ_OK)
        return gq_errf(GQ_ERR_FORMAT, "%s: no tokenizer.ggml.model key: the GGUF carries no tokenizer", g->path);
    if (model.n == 4 && !memcmp(model.s, "gpt2", 4)) return gq_tok_bpe_from_gguf(g, out);
    if (model.n == 5 && !memcmp(model.s, "llama", 5)) return gq_tok_spm_from_gguf(g, out);
    return gq_errf(GQ_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported (gpt2, llama are)", g->path,
                   (int)(model.n > 64 ? 64 : model.n), model.s);
}

void gq_tokenizer_free(gq_tokenizer *t) {
    if (!t) return;
    gq_tok_bpe_free(t);
    free(t->str);
    free(t->piece_off);
    free(t->piece_len);
    free(t->score);
    free(t->type);
    free(t->map.slot);
    free(t->user_ids);
    free(t);
}

gq_tok_kind gq_tokenizer_kind(const gq_tokenizer *t) { return t->kind; }
int gq_tokenizer_vocab_size(const gq_tokenizer *t) { return t->n_vocab; }
int gq_tokenizer_bos(const gq_tokenizer *t) { return t->bos; }
int gq_tokenizer_eos(const gq_tokenizer *t) { return t->eos; }
int gq_tokenizer_add_bos_default(const gq_tokenizer *t) { return t->add_bos && t->bos >= 0; }

const char *gq_tokenizer_piece(const gq_tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n_vocab) return NULL;
    return gq_tok_str(t, id);
}

gq_status gq_tokenizer_encode(const gq_tokenizer *t, const char *text, size_t len, int add_bos, int32_t **ids,
                              size_t *n_ids) {
    GQ_ASSERT(t && ids && n_ids && (text || len == 0));
    *ids = NULL;
    *n_ids = 0;
    GQ_TRY(gq_tok_check_utf8(text, len));
    gq_tok_ids a = {0};
    gq_status st;
    if (t->kind == GQ_TOK_L2C) {
        st = gq_tok_l2c_encode(t, text, len, add_bos && t->bos >= 0, &a); /* BOS takes part in L2C merging */
    } else {
        if (add_bos && t->bos >= 0) gq_tok_ids_push(&a, t->bos);
        st = t->kind == GQ_TOK_SPM ? gq_tok_spm_encode(t, text, len, &a) : gq_tok_bpe_encode(t, text, len, &a);
    }
    if (st != GQ_OK) {
        free(a.v);
        return st;
    }
    if (!a.v) a.v = gq_malloc(sizeof *a.v); /* callers may free() and index an empty result alike */
    *ids = a.v;
    *n_ids = a.n;
    return GQ_OK;
}

/* ---------------------------------------------------------------- decoding */

typedef struct { char *s; size_t n, cap; } strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 256;
        b->s = gq_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

/* "<0xXX>" -> byte value, else -1. */
static int hex_byte_piece(const char *p, size_t n) {
    if (n != 6 || memcmp(p, "<0x", 3) || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

gq_status gq_tokenizer_decode(const gq_tokenizer *t, const int32_t *ids, size_t n, char **text, size_t *len) {
    GQ_ASSERT(t && text && (ids || n == 0));
    *text = NULL;
    if (len) *len = 0;
    strbuf b = {0};
    sb_put(&b, "", 0);
    int prev = -1;
    int strip_dummy = t->kind == GQ_TOK_SPM && t->add_dummy_prefix; /* sentencepiece drops one leading space */
    for (size_t i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_vocab) {
            free(b.s);
            return gq_errf(GQ_ERR_ARG, "decode: token id %d at position %zu is outside the vocabulary [0, %d)", id, i,
                           t->n_vocab);
        }
        const char *p = gq_tok_str(t, id);
        size_t pn = t->piece_len[id];
        int ty = t->type[id];
        if (t->kind == GQ_TOK_L2C) {
            /* run.c: the piece after BOS loses its leading space; "<0xXX>" is a raw byte */
            if (id == t->bos || id == t->eos) { prev = id; continue; }
            if (prev == t->bos && pn && p[0] == ' ') { p++; pn--; }
            int bv = hex_byte_piece(p, pn);
            if (bv >= 0) { char c = (char)bv; sb_put(&b, &c, 1); }
            else sb_put(&b, p, pn);
        } else if (t->kind == GQ_TOK_SPM) {
            if (ty == GQ_TOK_T_CONTROL || ty == GQ_TOK_T_UNUSED) { prev = id; continue; }
            if (ty == GQ_TOK_T_UNKNOWN) { sb_put(&b, " \xE2\x81\x87 ", 5); prev = id; continue; }
            if (ty == GQ_TOK_T_BYTE) {
                int bv = hex_byte_piece(p, pn);
                if (bv >= 0) { char c = (char)bv; sb_put(&b, &c, 1); }
                prev = id;
                continue;
            }
            if (pn && !(t->escape_ws && pn >= 3 && !memcmp(p, "\xE2\x96\x81", 3))) strip_dummy = 0;
            for (size_t k = 0; k < pn;) {
                if (t->escape_ws && pn - k >= 3 && !memcmp(p + k, "\xE2\x96\x81", 3)) {
                    if (!(strip_dummy && b.n == 0)) sb_put(&b, " ", 1);
                    strip_dummy = 0;
                    k += 3;
                } else {
                    sb_put(&b, p + k, 1);
                    k++;
                }
            }
        } else { /* BPE */
            if (ty == GQ_TOK_T_CONTROL) { prev = id; continue; }
            if (!t->byte_level || ty == GQ_TOK_T_USER) { sb_put(&b, p, pn); prev = id; continue; }
            const unsigned char *s = (const unsigned char *)p;
            for (size_t k = 0; k < pn;) {
                int l = gq_tok_utf8_len(s + k, pn - k);
                if (!l) { k++; continue; } /* the loader checked pieces; defensive */
                uint32_t cp = s[k];
                if (l == 2) cp = ((s[k] & 0x1Fu) << 6) | (s[k + 1] & 0x3Fu);
                else if (l > 2) cp = 0xFFFF; /* not in the byte alphabet */
                if (cp < 324 && t->cp_to_byte[cp] >= 0) { char c = (char)t->cp_to_byte[cp]; sb_put(&b, &c, 1); }
                else sb_put(&b, p + k, (size_t)l);
                k += (size_t)l;
            }
        }
        prev = id;
    }
    *text = b.s;
    if (len) *len = b.n;
    return GQ_OK;
}
