/* tokenizer_bpe.c — GPT-2-style byte-level BPE with a regex pre-tokenizer (SmolLM2, LLaMA-3,
 * Qwen2.5, OPT), from an HF tokenizer.json (cJSON) or from GGUF metadata.
 *
 * Encoding follows HF tokenizers: added/special tokens are cut out of the text first (leftmost,
 * longest), each remaining segment goes through the pre-tokenizer splits in order (each split runs
 * on the pieces of the previous one, matches and the gaps between them both kept, "Isolated"),
 * every piece's bytes are mapped through GPT-2's bytes_to_unicode, and BPE merges the adjacent
 * pair of lowest merge rank (leftmost on ties) until none applies.
 * The GGUF path maps tokenizer.ggml.pre to the regexes llama.cpp uses for that name (llama-vocab.cpp);
 * "smollm" is Digits(individual) then the GPT-2 regex, exactly SmolLM2's tokenizer.json.
 * Approximations, each refused or documented: normalizers other than none/NFC are refused and NFC
 * is not applied (exact for NFC text, which real corpora are); added tokens' lstrip/rstrip/
 * single_word flags are ignored; unknown GGUF pre names and unsupported tokenizer.json parts are
 * GQ_ERR_UNSUPPORTED naming them.
 * Must not: keep caches or mutable state in the tokenizer (encode is called from many threads).
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer_internal.h"

static const char RE_GPT2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char RE_LLAMA3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
                                "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+"
                               "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---------------------------------------------------------------- construction helpers */

static void byte_tables(gq_tokenizer *t) {
    /* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to 256.. in order */
    int n = 0;
    for (int i = 0; i < 324; i++) t->cp_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        t->byte_to_cp[b] = (uint16_t)(keep ? b : 256 + n++);
        t->cp_to_byte[t->byte_to_cp[b]] = (int16_t)b;
    }
}

static gq_status add_regex(gq_tokenizer *t, const char *pat, size_t n, int literal, int removed, const char *name) {
    if (t->n_pre >= GQ_TOK_MAX_PRE)
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: more than %d pre-tokenizer splits", name, GQ_TOK_MAX_PRE);
    int err;
    PCRE2_SIZE eoff;
    uint32_t opt = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP); /* LITERAL refuses UCP */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, n, opt, &err, &eoff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(err, msg, sizeof msg);
        return gq_errf(GQ_ERR_FORMAT, "%s: pre-tokenizer regex does not compile at offset %zu: %s", name, (size_t)eoff,
                       (const char *)msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: pcre2_match falls back to the interpreter */
    t->pre_re[t->n_pre] = re;
    t->pre_removed[t->n_pre] = removed;
    t->n_pre++;
    return GQ_OK;
}

void gq_tok_bpe_free(gq_tokenizer *t) {
    for (int i = 0; i < t->n_pre; i++) pcre2_code_free((pcre2_code *)t->pre_re[i]);
    t->n_pre = 0;
    free(t->pairs.key);
    free(t->pairs.rank);
    free(t->pairs.merged);
    free(t->added_ids);
}

static size_t pair_slot(const gq_tok_pairmap *m, uint64_t k) {
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 20) & (m->cap - 1);
    while (m->key[i] != UINT64_MAX && m->key[i] != k) i = (i + 1) & (m->cap - 1);
    return i;
}

static void pairs_init(gq_tok_pairmap *m, size_t n) {
    m->cap = 16;
    while (m->cap < n * 2) m->cap <<= 1;
    m->key = gq_malloc(m->cap * sizeof *m->key);
    m->rank = gq_malloc(m->cap * sizeof *m->rank);
    m->merged = gq_malloc(m->cap * sizeof *m->merged);
    for (size_t i = 0; i < m->cap; i++) m->key[i] = UINT64_MAX;
}

/* Record merge (a, b) of rank r. A repeated pair takes the later rank, as HF's HashMap collect does. */
static gq_status add_merge(gq_tokenizer *t, const char *a, size_t na, const char *b, size_t nb, int32_t rank,
                           const char *name) {
    int ia = gq_tok_lookup(t, a, na), ib = gq_tok_lookup(t, b, nb);
    char buf[1024];
    if (ia < 0 || ib < 0 || na + nb > sizeof buf)
        return gq_errf(GQ_ERR_FORMAT, "%s: merge %d '%.*s %.*s' uses a token not in the vocabulary", name, rank,
                       (int)(na > 64 ? 64 : na), a, (int)(nb > 64 ? 64 : nb), b);
    memcpy(buf, a, na);
    memcpy(buf + na, b, nb);
    int im = gq_tok_lookup(t, buf, na + nb);
    if (im < 0)
        return gq_errf(GQ_ERR_FORMAT, "%s: merge %d '%.*s %.*s' makes a token not in the vocabulary", name, rank,
                       (int)(na > 64 ? 64 : na), a, (int)(nb > 64 ? 64 : nb), b);
    uint64_t k = (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib;
    size_t s = pair_slot(&t->pairs, k);
    t->pairs.key[s] = k;
    t->pairs.rank[s] = rank;
    t->pairs.merged[s] = im;
    return GQ_OK;
}

static gq_status merge_from_string(gq_tokenizer *t, const char *s, size_t n, int32_t rank, const char *name) {
    const char *sp = memchr(s, ' ', n);
    if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
        return gq_errf(GQ_ERR_FORMAT, "%s: merge %d '%.*s' is not two tokens separated by one space", name, rank,
                       (int)(n > 64 ? 64 : n), s);
    return add_merge(t, s, (size_t)(sp - s), sp + 1, (size_t)(s + n - sp - 1), rank, name);
}

/* Finish: byte tables, the added-token list (CONTROL and USER pieces), checks. */
static gq_status finish(gq_tokenizer *t, const char *name) {
    (void)name;
    byte_tables(t);
    int n_added = 0;
    for (int i = 0; i < t->n_vocab; i++)
        if ((t->type[i] == GQ_TOK_T_CONTROL || t->type[i] == GQ_TOK_T_USER) && t->piece_len[i] > 0) n_added++;
    t->added_ids = gq_malloc(((size_t)n_added + 1) * sizeof *t->added_ids);
    for (int i = 0; i < t->n_vocab; i++)
        if ((t->type[i] == GQ_TOK_T_CONTROL || t->type[i] == GQ_TOK_T_USER) && t->piece_len[i] > 0)
            t->added_ids[t->n_added++] = i;
    /* SmolLM2's vocabulary lacks some control bytes: HF then uses unk, or drops the byte without one */
    for (int b = 0; b < 256; b++) {
        char u[4];
        int l = gq_tok_utf8_put(t->byte_to_cp[b], u);
        int id = gq_tok_lookup(t, u, (size_t)l);
        t->byte_tok[b] = id >= 0 ? id : t->unk;
    }
    return GQ_OK;
}

/* ---------------------------------------------------------------- GGUF */

static int gguf_flag(const gq_gguf *g, const char *key, int dflt) {
    const gq_gguf_kv *kv = gq_gguf_find(g, key);
    if (!kv) return dflt;
    if (kv->type == GQ_GGUF_BOOL || kv->type == GQ_GGUF_U8 || kv->type == GQ_GGUF_U32 || kv->type == GQ_GGUF_I32)
        return kv->v.u != 0;
    return dflt;
}

static int pre_is(const char *p, const char *const *names) {
    for (; *names; names++)
        if (!strcmp(p, *names)) return 1;
    return 0;
}

gq_status gq_tok_bpe_from_gguf(const struct gq_gguf *g, gq_tokenizer **out) {
    *out = NULL;
    const char *name = g->path;
    const gq_gguf_kv *tok = gq_gguf_find(g, "tokenizer.ggml.tokens");
    const gq_gguf_kv *ty = gq_gguf_find(g, "tokenizer.ggml.token_type");
    const gq_gguf_kv *mg = gq_gguf_find(g, "tokenizer.ggml.merges");
    if (!tok || tok->type != GQ_GGUF_ARRAY || tok->arr_type != GQ_GGUF_STRING || !tok->arr_strs)
        return gq_errf(GQ_ERR_FORMAT, "%s: tokenizer.ggml.tokens missing or not a string array", name);
    if (!mg || mg->type != GQ_GGUF_ARRAY || mg->arr_type != GQ_GGUF_STRING || !mg->arr_strs)
        return gq_errf(GQ_ERR_FORMAT, "%s: tokenizer.ggml.merges missing or not a string array", name);
    uint64_t n = tok->arr_n;
    if (n == 0 || n > (1u << 24)) return gq_errf(GQ_ERR_FORMAT, "%s: %llu tokens", name, (unsigned long long)n);
    if (mg->arr_n > (1u << 24)) return gq_errf(GQ_ERR_FORMAT, "%s: %llu merges", name, (unsigned long long)mg->arr_n);
    if (ty && (ty->type != GQ_GGUF_ARRAY || ty->arr_n != n || (ty->arr_type != GQ_GGUF_I32 && ty->arr_type != GQ_GGUF_U32)))
        return gq_errf(GQ_ERR_FORMAT, "%s: tokenizer.ggml.token_type is not an int32 array of %llu", name,
                       (unsigned long long)n);
    size_t bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (tok->arr_strs[i].n > 65536)
            return gq_errf(GQ_ERR_FORMAT, "%s: token %llu is %llu bytes long", name, (unsigned long long)i,
                           (unsigned long long)tok->arr_strs[i].n);
        if (gq_tok_check_utf8(tok->arr_strs[i].s, tok->arr_strs[i].n) != GQ_OK)
            return gq_errf(GQ_ERR_FORMAT, "%s: token %llu is not valid UTF-8", name, (unsigned long long)i);
        bytes += tok->arr_strs[i].n + 1;
    }
    gq_tokenizer *t = gq_tok_alloc(GQ_TOK_BPE, (int)n, bytes);
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        t->piece_off[i] = off;
        t->piece_len[i] = (uint32_t)tok->arr_strs[i].n;
        memcpy(t->str + off, tok->arr_strs[i].s, tok->arr_strs[i].n);
        t->str[off + tok->arr_strs[i].n] = 0;
        off += tok->arr_strs[i].n + 1;
        int64_t tv = ty ? gq_gguf_arr_i64(ty, i) : GQ_TOK_T_NORMAL;
        if (tv < 1 || tv > 6) {
            gq_tokenizer_free(t);
            return gq_errf(GQ_ERR_FORMAT, "%s: token %llu has type %lld", name, (unsigned long long)i, (long long)tv);
        }
        t->type[i] = (uint8_t)tv;
    }
    gq_tok_build_map(t);
    t->byte_level = 1;
    gq_status st = GQ_OK;
    pairs_init(&t->pairs, mg->arr_n);
    for (uint64_t i = 0; i < mg->arr_n && st == GQ_OK; i++)
        st = merge_from_string(t, mg->arr_strs[i].s, mg->arr_strs[i].n, (int32_t)i, name);
    gq_gguf_str pre = {"default", 7};
    if (st == GQ_OK && gq_gguf_get_str(g, "tokenizer.ggml.pre", &pre) != GQ_OK) {
        pre.s = "default";
        pre.n = 7;
    }
    gq_err_clear();
    if (st == GQ_OK) {
        size_t pn = pre.n < sizeof t->pre_name - 1 ? pre.n : sizeof t->pre_name - 1;
        memcpy(t->pre_name, pre.s, pn);
        t->pre_name[pn] = 0;
        const char *p = t->pre_name;
        if (pre_is(p, (const char *const[]){"gpt2", "gpt-2", "mpt", "olmo", "jais", "default", NULL}))
            st = add_regex(t, RE_GPT2, sizeof RE_GPT2 - 1, 0, 0, name);
        else if (pre_is(p, (const char *const[]){"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva", NULL})) {
            st = add_regex(t, "\\p{N}", 5, 0, 0, name);
            if (st == GQ_OK) st = add_regex(t, RE_GPT2, sizeof RE_GPT2 - 1, 0, 0, name);
        } else if (pre_is(p, (const char *const[]){"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral", "dbrx", "smaug-bpe", NULL}))
            st = add_regex(t, RE_LLAMA3, sizeof RE_LLAMA3 - 1, 0, 0, name);
        else if (pre_is(p, (const char *const[]){"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", NULL}))
            st = add_regex(t, RE_QWEN2, sizeof RE_QWEN2 - 1, 0, 0, name);
        else
            st = gq_errf(GQ_ERR_UNSUPPORTED, "%s: tokenizer.ggml.pre '%s' is not a pre-tokenizer gqsa knows "
                         "(gpt2, smollm, starcoder, llama-bpe, qwen2, ...)", name, p);
    }
    if (st == GQ_OK) st = finish(t, name);
    if (st != GQ_OK) {
        gq_tokenizer_free(t);
        return st;
    }
    uint64_t v;
    if (gq_gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &v) == GQ_OK && v < n) t->bos = (int)v;
    if (gq_gguf_get_u64(g, "tokenizer.ggml.eos_token_id", &v) == GQ_OK && v < n) t->eos = (int)v;
    /* tokenizer.ggml.unknown_token_id is deliberately not used: the HF tokenizer built from a gpt2
     * GGUF (and SmolLM2's tokenizer.json) has unk_token null, so characters without a token vanish */
    gq_err_clear();
    t->add_bos = gguf_flag(g, "tokenizer.ggml.add_bos_token", 0);
    *out = t;
    return GQ_OK;
}

/* ---------------------------------------------------------------- tokenizer.json */

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static gq_status json_pre(gq_tokenizer *t, const cJSON *pt, const char *name, int depth) {
    if (!pt || cJSON_IsNull(pt)) return GQ_OK;
    if (depth > 4) return gq_errf(GQ_ERR_UNSUPPORTED, "%s: pre_tokenizer nested too deeply", name);
    const char *type = jstr(pt, "type");
    if (!type) return gq_errf(GQ_ERR_FORMAT, "%s: pre_tokenizer without a \"type\"", name);
    if (!strcmp(type, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers"), *e;
        if (!cJSON_IsArray(arr)) return gq_errf(GQ_ERR_FORMAT, "%s: Sequence pre_tokenizer without \"pretokenizers\"", name);
        cJSON_ArrayForEach(e, arr) GQ_TRY(json_pre(t, e, name, depth + 1));
        return GQ_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        if (jbool(pt, "add_prefix_space", 0))
            return gq_errf(GQ_ERR_UNSUPPORTED, "%s: ByteLevel pre_tokenizer with add_prefix_space=true", name);
        t->byte_level = 1;
        if (jbool(pt, "use_regex", 1)) return add_regex(t, RE_GPT2, sizeof RE_GPT2 - 1, 0, 0, name);
        return GQ_OK;
    }
    if (!strcmp(type, "Digits"))
        return jbool(pt, "individual_digits", 0) ? add_regex(t, "\\p{N}", 5, 0, 0, name) : add_regex(t, "\\p{N}+", 6, 0, 0, name);
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pt, "pattern");
        const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
        const char *beh = jstr(pt, "behavior");
        if (!re && !lit) return gq_errf(GQ_ERR_FORMAT, "%s: Split pre_tokenizer without a Regex or String pattern", name);
        if (jbool(pt, "invert", 0)) return gq_errf(GQ_ERR_UNSUPPORTED, "%s: Split pre_tokenizer with invert=true", name);
        int removed;
        if (beh && !strcmp(beh, "Isolated")) removed = 0;
        else if (beh && !strcmp(beh, "Removed")) removed = 1;
        else return gq_errf(GQ_ERR_UNSUPPORTED, "%s: Split behavior '%s' (Isolated, Removed are supported)", name, beh ? beh : "?");
        const char *p = re ? re : lit;
        return add_regex(t, p, strlen(p), re == NULL, removed, name);
    }
    return gq_errf(GQ_ERR_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported", name, type);
}

/* The id of an added token by content, or -1. */
static int json_added_id(const cJSON *added, const char *content) {
    const cJSON *e;
    cJSON_ArrayForEach(e, added) {
        const char *c = jstr(e, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (c && cJSON_IsNumber(id) && !strcmp(c, content)) return (int)id->valuedouble;
    }
    return -1;
}

static gq_status json_build(gq_tokenizer **out, const cJSON *root, const char *name) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return gq_errf(GQ_ERR_FORMAT, "%s: no \"model\" object", name);
    const char *mtype = jstr(model, "type");
    if (mtype && strcmp(mtype, "BPE"))
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: model type '%s' (only BPE is supported)", name, mtype);
    if (jbool(model, "byte_fallback", 0))
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: BPE with byte_fallback (a sentencepiece-style tokenizer.json); "
                       "use the tokenizer.model instead", name);
    const char *csp = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
    if ((csp && *csp) || (eow && *eow))
        return gq_errf(GQ_ERR_UNSUPPORTED, "%s: continuing_subword_prefix/end_of_word_suffix are not supported", name);
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const char *nt = jstr(norm, "type");
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
        int ok = nt && (!strcmp(nt, "NFC") || (!strcmp(nt, "Sequence") && cJSON_IsArray(seq) && cJSON_GetArraySize(seq) == 0));
        if (!ok) return gq_errf(GQ_ERR_UNSUPPORTED, "%s: normalizer '%s' is not supported (none, NFC)", name, nt ? nt : "?");
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab)) return gq_errf(GQ_ERR_FORMAT, "%s: model.vocab is not an object", name);
    if (!cJSON_IsArray(merges)) return gq_errf(GQ_ERR_FORMAT, "%s: model.merges is not an array", name);
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return gq_errf(GQ_ERR_FORMAT, "%s: added_tokens is not an array", name);
    const int MAXID = 1 << 24;
    int n = 0;
    size_t bytes = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= MAXID || e->valuedouble != (int)e->valuedouble)
            return gq_errf(GQ_ERR_FORMAT, "%s: vocab entry '%.64s' has no valid id", name, e->string ? e->string : "");
        if ((int)e->valuedouble + 1 > n) n = (int)e->valuedouble + 1;
        bytes += strlen(e->string) + 1;
    }
    if (cJSON_IsArray(added))
        cJSON_ArrayForEach(e, added) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
            const char *c = jstr(e, "content");
            if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= MAXID || !c)
                return gq_errf(GQ_ERR_FORMAT, "%s: an added_tokens entry lacks a valid id or content", name);
            if ((int)id->valuedouble + 1 > n) n = (int)id->valuedouble + 1;
            bytes += strlen(c) + 1;
        }
    if (n == 0) return gq_errf(GQ_ERR_FORMAT, "%s: empty vocabulary", name);
    gq_tokenizer *t = gq_tok_alloc(GQ_TOK_BPE, n, bytes + 1);
    /* ids never named are empty UNUSED pieces; piece_off of 'bytes' points at a final NUL */
    t->str[bytes] = 0;
    for (int i = 0; i < n; i++) { t->piece_off[i] = bytes; t->type[i] = GQ_TOK_T_UNUSED; }
    size_t off = 0;
    gq_status st = GQ_OK;
#define PUT_PIECE(id_, s_, ty_)                                                                                     \
    do {                                                                                                            \
        size_t l_ = strlen(s_);                                                                                     \
        memcpy(t->str + off, (s_), l_ + 1);                                                                         \
        t->piece_off[id_] = off;                                                                                    \
        t->piece_len[id_] = (uint32_t)l_;                                                                           \
        t->type[id_] = (uint8_t)(ty_);                                                                              \
        off += l_ + 1;                                                                                              \
    } while (0)
    cJSON_ArrayForEach(e, vocab) {
        int id = (int)e->valuedouble;
        if (t->type[id] != GQ_TOK_T_UNUSED) { st = gq_errf(GQ_ERR_FORMAT, "%s: vocab id %d used twice", name, id); break; }
        if (gq_tok_check_utf8(e->string, strlen(e->string)) != GQ_OK) { st = gq_errf(GQ_ERR_FORMAT, "%s: vocab entry %d is not valid UTF-8", name, id); break; }
        PUT_PIECE(id, e->string, GQ_TOK_T_NORMAL);
    }
    if (st == GQ_OK && cJSON_IsArray(added))
        cJSON_ArrayForEach(e, added) {
            int id = (int)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
            const char *c = jstr(e, "content");
            if (gq_tok_check_utf8(c, strlen(c)) != GQ_OK) { st = gq_errf(GQ_ERR_FORMAT, "%s: added token %d is not valid UTF-8", name, id); break; }
            PUT_PIECE(id, c, jbool(e, "special", 0) ? GQ_TOK_T_CONTROL : GQ_TOK_T_USER);
        }
#undef PUT_PIECE
    if (st != GQ_OK) { gq_tokenizer_free(t); return st; }
    gq_tok_build_map(t);
    t->ignore_merges = jbool(model, "ignore_merges", 0);
    int nm = cJSON_GetArraySize(merges), rank = 0;
    pairs_init(&t->pairs, (size_t)nm);
    cJSON_ArrayForEach(e, merges) {
        if (cJSON_IsString(e)) st = merge_from_string(t, e->valuestring, strlen(e->valuestring), rank, name);
        else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                 cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            const char *a = cJSON_GetArrayItem(e, 0)->valuestring, *b = cJSON_GetArrayItem(e, 1)->valuestring;
            st = add_merge(t, a, strlen(a), b, strlen(b), rank, name);
        } else st = gq_errf(GQ_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", name, rank);
        if (st != GQ_OK) break;
        rank++;
    }
    if (st == GQ_OK) st = json_pre(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), name, 0);
    snprintf(t->pre_name, sizeof t->pre_name, "tokenizer.json");
    const char *unk = jstr(model, "unk_token");
    if (unk) t->unk = gq_tok_lookup(t, unk, strlen(unk));
    if (st == GQ_OK) st = finish(t, name);
    if (st != GQ_OK) { gq_tokenizer_free(t); return st; }
    /* BOS: what the post-processor prepends (TemplateProcessing's first item), as HF does by default */
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    const char *ppt = jstr(pp, "type");
    if (ppt && !strcmp(ppt, "Sequence")) {
        const cJSON *procs = cJSON_GetObjectItemCaseSensitive(pp, "processors"), *q;
        pp = NULL;
        cJSON_ArrayForEach(q, procs) if (jstr(q, "type") && !strcmp(jstr(q, "type"), "TemplateProcessing")) pp = q;
        ppt = pp ? "TemplateProcessing" : NULL;
    }
    if (ppt && !strcmp(ppt, "TemplateProcessing")) {
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
        const cJSON *stok = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
        const char *sid = jstr(stok, "id");
        if (sid) {
            int id = json_added_id(added, sid);
            if (id < 0) id = gq_tok_lookup(t, sid, strlen(sid));
            if (id >= 0) { t->bos = id; t->add_bos = 1; }
        }
    }
    /* tokenizer.json does not name BOS/EOS outside the template (tokenizer_config.json does):
     * fall back to the conventional spellings */
    static const char *const EOS_NAMES[] = {"<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>", NULL};
    static const char *const BOS_NAMES[] = {"<|begin_of_text|>", "<s>", "<|endoftext|>", NULL};
    for (int i = 0; EOS_NAMES[i] && t->eos < 0; i++) t->eos = gq_tok_lookup(t, EOS_NAMES[i], strlen(EOS_NAMES[i]));
    for (int i = 0; BOS_NAMES[i] && t->bos < 0; i++) t->bos = gq_tok_lookup(t, BOS_NAMES[i], strlen(BOS_NAMES[i]));
    *out = t;
    return GQ_OK;
}

gq_status gq_tok_bpe_load_json(const char *json, size_t len, const char *name, gq_tokenizer **out) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        size_t at = ep && ep >= json && ep <= json + len ? (size_t)(ep - json) : 0;
        return gq_errf(GQ_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", name, at);
    }
    gq_status st = json_build(out, root, name);
    cJSON_Delete(root);
    return st;
}

/* ---------------------------------------------------------------- encoding */

typedef struct { size_t off, len; } span;
typedef struct { span *v; size_t n, cap; } spans;

static void spans_push(spans *s, size_t off, size_t len) {
    if (!len) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = gq_realloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n].off = off;
    s->v[s->n].len = len;
    s->n++;
}

typedef struct { int32_t rank, left, right, lid, rid; } bpe_cand;

typedef struct {
    const gq_tokenizer *t;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    spans a, b;
    int32_t *id, *prev, *next;
    size_t sym_cap;
    bpe_cand *heap;
    size_t nheap, heap_cap;
    char *word;
    size_t word_cap;
} bpe_ctx;

static int cand_first(const bpe_cand *x, const bpe_cand *y) {
    return x->rank != y->rank ? x->rank < y->rank : x->left < y->left;
}

static void bheap_push(bpe_ctx *c, bpe_cand v) {
    if (c->nheap == c->heap_cap) {
        c->heap_cap = c->heap_cap ? c->heap_cap * 2 : 64;
        c->heap = gq_realloc(c->heap, c->heap_cap * sizeof *c->heap);
    }
    size_t i = c->nheap++;
    while (i > 0 && cand_first(&v, &c->heap[(i - 1) / 2])) {
        c->heap[i] = c->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    c->heap[i] = v;
}

static bpe_cand bheap_pop(bpe_ctx *c) {
    bpe_cand top = c->heap[0], last = c->heap[--c->nheap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const bpe_cand *best = &last;
        if (l < c->nheap && cand_first(&c->heap[l], best)) { m = l; best = &c->heap[l]; }
        if (r < c->nheap && cand_first(&c->heap[r], best)) m = r;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (c->nheap) c->heap[i] = last;
    return top;
}

static void bpe_try(bpe_ctx *c, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const gq_tok_pairmap *m = &c->t->pairs;
    uint64_t k = (uint64_t)(uint32_t)c->id[l] << 32 | (uint32_t)c->id[r];
    size_t s = pair_slot(m, k);
    if (m->key[s] != k) return;
    bpe_cand v = {m->rank[s], l, r, c->id[l], c->id[r]};
    bheap_push(c, v);
}

/* BPE of one pre-tokenized word (raw bytes). */
static void bpe_word(bpe_ctx *c, const char *w, size_t n, gq_tok_ids *out) {
    const gq_tokenizer *t = c->t;
    if (n + 1 > c->sym_cap) {
        c->sym_cap = n + 64;
        c->id = gq_realloc(c->id, c->sym_cap * sizeof *c->id);
        c->prev = gq_realloc(c->prev, c->sym_cap * sizeof *c->prev);
        c->next = gq_realloc(c->next, c->sym_cap * sizeof *c->next);
    }
    if (t->byte_level && 2 * n + 1 > c->word_cap) {
        c->word_cap = 2 * n + 64;
        c->word = gq_realloc(c->word, c->word_cap);
    }
    size_t ns = 0, wn = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) {
            char u[4];
            int l = gq_tok_utf8_put(t->byte_to_cp[(unsigned char)w[i]], u);
            memcpy(c->word + wn, u, (size_t)l);
            wn += (size_t)l;
            int id = t->byte_tok[(unsigned char)w[i]];
            if (id >= 0) c->id[ns++] = id;
        }
        if (t->ignore_merges) {
            int id = gq_tok_lookup(t, c->word, wn);
            if (id >= 0) { gq_tok_ids_push(out, id); return; }
        }
    } else {
        if (t->ignore_merges) {
            int id = gq_tok_lookup(t, w, n);
            if (id >= 0) { gq_tok_ids_push(out, id); return; }
        }
        for (size_t i = 0; i < n;) {
            int l = gq_tok_utf8_len((const unsigned char *)w + i, n - i);
            int id = gq_tok_lookup(t, w + i, (size_t)l);
            if (id < 0) id = t->unk; /* HF: unk if the model has one, else the character is dropped */
            if (id >= 0) c->id[ns++] = id;
            i += (size_t)l;
        }
    }
    for (size_t i = 0; i < ns; i++) {
        c->prev[i] = (int32_t)i - 1;
        c->next[i] = i + 1 < ns ? (int32_t)(i + 1) : -1;
    }
    c->nheap = 0;
    for (size_t i = 0; i + 1 < ns; i++) bpe_try(c, (int32_t)i, (int32_t)(i + 1));
    while (c->nheap) {
        bpe_cand m = bheap_pop(c);
        if (c->id[m.left] != m.lid || c->id[m.right] != m.rid || c->next[m.left] != m.right) continue; /* stale */
        size_t s = pair_slot(&t->pairs, (uint64_t)(uint32_t)m.lid << 32 | (uint32_t)m.rid);
        c->id[m.left] = t->pairs.merged[s];
        c->id[m.right] = -1;
        int32_t nx = c->next[m.right];
        c->next[m.left] = nx;
        if (nx >= 0) c->prev[nx] = m.left;
        bpe_try(c, c->prev[m.left], m.left);
        bpe_try(c, m.left, nx);
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = c->next[i]) gq_tok_ids_push(out, c->id[i]);
}

/* Apply split k to every span of in, appending to out. */
static gq_status split_spans(bpe_ctx *c, int k, const char *text, const spans *in, spans *out) {
    const pcre2_code *re = (const pcre2_code *)c->t->pre_re[k];
    int removed = c->t->pre_removed[k];
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        PCRE2_SPTR subj = (PCRE2_SPTR)(text + in->v[i].off);
        size_t n = in->v[i].len, pos = 0, last = 0;
        while (pos < n) {
            int rc = pcre2_match(re, subj, n, pos, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) {
                PCRE2_UCHAR msg[160];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return gq_errf(GQ_ERR_INTERNAL, "pre-tokenizer regex failed at byte %zu: %s", in->v[i].off + pos,
                               (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
            if (ov[1] == ov[0]) { /* an empty match splits nothing: step one character */
                int l = gq_tok_utf8_len(subj + ov[0], n - ov[0]);
                pos = ov[0] + (size_t)(l > 0 ? l : 1);
                continue;
            }
            spans_push(out, in->v[i].off + last, ov[0] - last);
            if (!removed) spans_push(out, in->v[i].off + ov[0], ov[1] - ov[0]);
            pos = last = ov[1];
        }
        spans_push(out, in->v[i].off + last, n - last);
    }
    return GQ_OK;
}

static gq_status encode_segment(bpe_ctx *c, const char *text, size_t off, size_t len, gq_tok_ids *out) {
    if (!len) return GQ_OK;
    c->a.n = 0;
    spans_push(&c->a, off, len);
    for (int k = 0; k < c->t->n_pre; k++) {
        GQ_TRY(split_spans(c, k, text, &c->a, &c->b));
        spans tmp = c->a;
        c->a = c->b;
        c->b = tmp;
    }
    for (size_t i = 0; i < c->a.n; i++) bpe_word(c, text + c->a.v[i].off, c->a.v[i].len, out);
    return GQ_OK;
}

gq_status gq_tok_bpe_encode(const gq_tokenizer *t, const char *text, size_t len, gq_tok_ids *out) {
    bpe_ctx c = {.t = t};
    uint8_t first[256] = {0};
    for (int i = 0; i < t->n_added; i++) first[(unsigned char)gq_tok_str(t, t->added_ids[i])[0]] = 1;
    c.md = pcre2_match_data_create(1, NULL);
    c.mctx = pcre2_match_context_create(NULL);
    c.jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!c.md || !c.mctx || !c.jit) GQ_ASSERT(!"pcre2 allocation failed");
    pcre2_jit_stack_assign(c.mctx, NULL, c.jit);
    gq_status st = GQ_OK;
    size_t seg = 0;
    for (size_t i = 0; i < len && st == GQ_OK;) {
        if (first[(unsigned char)text[i]]) {
            int best = -1;
            size_t bl = 0;
            for (int k = 0; k < t->n_added; k++) {
                int id = t->added_ids[k];
                size_t pl = t->piece_len[id];
                if (pl > bl && pl <= len - i && !memcmp(text + i, gq_tok_str(t, id), pl)) { best = id; bl = pl; }
            }
            if (best >= 0) {
                st = encode_segment(&c, text, seg, i - seg, out);
                gq_tok_ids_push(out, best);
                i += bl;
                seg = i;
                continue;
            }
        }
        i++;
    }
    if (st == GQ_OK) st = encode_segment(&c, text, seg, len - seg, out);
    pcre2_match_data_free(c.md);
    pcre2_match_context_free(c.mctx);
    pcre2_jit_stack_free(c.jit);
    free(c.a.v);
    free(c.b.v);
    free(c.id);
    free(c.prev);
    free(c.next);
    free(c.heap);
    free(c.word);
    return st;
}
