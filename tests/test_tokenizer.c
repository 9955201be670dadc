/* test_tokenizer.c — the three tokenizers against their reference implementations.
 *
 * Golden: every line of WikiText-2 test and the first 100 C4 documents, ids from sentencepiece
 * (LLaMA-2 tokenizer.model) and HF tokenizers (SmolLM2, from the GGUF and from the exported
 * tokenizer.json), made by tools/make_tok_fixtures.py; the GPTQ whole-text encoding as count +
 * sha256; llama2.c tokenizer.bin cases from tools/l2c_ref_encode.py (an independent port of run.c).
 * Also: decode round trips, the documented invalid-UTF-8 behaviour, hostile files, thread safety.
 * Inputs that may be absent (the data root, SmolLM2 before `make models`) print SKIP and pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "tokenizer.h"

#define FIX "tests/fixtures/tok/"
#define SMOL_GGUF "models/SmolLM2-135M-Instruct.Q4_1.gguf"
#define SMOL_JSON "models/SmolLM2-135M-Instruct.tokenizer.json"

/* ---------------------------------------------------------------- helpers */

typedef struct { char *buf; char **s; size_t *n; size_t count; } textset;

static void textset_free(textset *t) {
    free(t->buf);
    free(t->s);
    free(t->n);
    memset(t, 0, sizeof *t);
}

/* Split a buffer on '\n' (a final '\n' ends the last line; no empty line after it). */
static void split_lines(char *buf, size_t len, textset *out) {
    size_t cap = 1024;
    out->buf = buf;
    out->s = malloc(cap * sizeof *out->s);
    out->n = malloc(cap * sizeof *out->n);
    out->count = 0;
    size_t st = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len && st == len) break;
        if (i == len || buf[i] == '\n') {
            if (out->count == cap) {
                cap *= 2;
                out->s = realloc(out->s, cap * sizeof *out->s);
                out->n = realloc(out->n, cap * sizeof *out->n);
            }
            out->s[out->count] = buf + st;
            out->n[out->count] = i - st;
            out->count++;
            st = i + 1;
        }
    }
}

static int data_file(char *buf, size_t cap, const char *rel) {
    gq_data_path(buf, cap, rel);
    return gq_file_exists(buf);
}

static int load_wiki(textset *t) {
    char p[1024];
    if (!data_file(p, sizeof p, "datasets/wikitext-2-raw-v1/wiki.test.raw")) return 0;
    char *buf;
    size_t len;
    assert_int_equal(gq_read_file(p, &buf, &len), GQ_OK);
    split_lines(buf, len, t);
    return 1;
}

/* The `text` of the first n documents of the C4 shard, as one textset (strings owned by buf). */
static int load_c4(textset *t, size_t ndoc) {
    char p[1024];
    if (!data_file(p, sizeof p, "datasets/c4/c4-validation-shard0-first1025.jsonl")) return 0;
    char *buf;
    size_t len;
    assert_int_equal(gq_read_file(p, &buf, &len), GQ_OK);
    textset lines;
    split_lines(buf, len, &lines);
    assert_true(lines.count >= ndoc);
    size_t total = 0;
    char **docs = calloc(ndoc, sizeof *docs);
    for (size_t i = 0; i < ndoc; i++) {
        cJSON *j = cJSON_ParseWithLength(lines.s[i], lines.n[i]);
        assert_non_null(j);
        cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "text");
        assert_true(cJSON_IsString(tx));
        docs[i] = strdup(tx->valuestring);
        total += strlen(docs[i]) + 1;
        cJSON_Delete(j);
    }
    textset_free(&lines);
    t->buf = malloc(total + 1);
    t->s = malloc(ndoc * sizeof *t->s);
    t->n = malloc(ndoc * sizeof *t->n);
    t->count = ndoc;
    size_t off = 0;
    for (size_t i = 0; i < ndoc; i++) {
        size_t l = strlen(docs[i]);
        memcpy(t->buf + off, docs[i], l + 1);
        t->s[i] = t->buf + off;
        t->n[i] = l;
        off += l + 1;
        free(docs[i]);
    }
    free(docs);
    return 1;
}

/* Fixture lines of ids: prefix.0.ids, prefix.1.ids, ... concatenated (or one file if chunked == 0). */
static void load_fixture(const char *path_or_prefix, int chunked, textset *out) {
    size_t cap = 0, len = 0;
    char *all = NULL;
    for (int k = 0;; k++) {
        char p[512];
        if (chunked) snprintf(p, sizeof p, "%s.%d.ids", path_or_prefix, k);
        else snprintf(p, sizeof p, "%s", path_or_prefix);
        if (!gq_file_exists(p)) {
            if (k == 0) fail_msg("fixture %s missing: run tools/make_tok_fixtures.py", p);
            break;
        }
        char *b;
        size_t n;
        assert_int_equal(gq_read_file(p, &b, &n), GQ_OK);
        if (len + n + 1 > cap) { cap = (len + n + 1) * 2; all = realloc(all, cap); }
        memcpy(all + len, b, n);
        len += n;
        all[len] = 0;
        free(b);
        if (!chunked) break;
    }
    split_lines(all, len, out);
}

static size_t parse_ids(const char *s, size_t n, int32_t **ids) {
    size_t cnt = 0, cap = 64;
    *ids = malloc(cap * sizeof **ids);
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ') i++;
        if (i >= n) break;
        long v = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0');
        if (cnt == cap) *ids = realloc(*ids, (cap *= 2) * sizeof **ids);
        (*ids)[cnt++] = (int32_t)v;
    }
    return cnt;
}

/* Encode every text without BOS and compare with the fixture; print N/M and the first diffs. */
static void compare_all(const gq_tokenizer *t, const char *label, const textset *texts, const textset *want) {
    assert_int_equal(texts->count, want->count);
    size_t same = 0, shown = 0;
    double t0 = gq_now();
    size_t ntok = 0;
    for (size_t i = 0; i < texts->count; i++) {
        int32_t *ids, *ref;
        size_t n;
        gq_status st = gq_tokenizer_encode(t, texts->s[i], texts->n[i], 0, &ids, &n);
        if (st != GQ_OK) fail_msg("%s line %zu: %s", label, i + 1, gq_errmsg());
        size_t nr = parse_ids(want->s[i], want->n[i], &ref);
        ntok += n;
        if (n == nr && !memcmp(ids, ref, n * sizeof *ids)) same++;
        else if (shown++ < 3) {
            size_t k = 0;
            while (k < n && k < nr && ids[k] == ref[k]) k++;
            print_message("  %s line %zu differs at token %zu: got %d, reference %d (lengths %zu vs %zu); text: %.*s\n",
                          label, i + 1, k, k < n ? ids[k] : -1, k < nr ? ref[k] : -1, n, nr,
                          (int)(texts->n[i] < 80 ? texts->n[i] : 80), texts->s[i]);
        }
        free(ids);
        free(ref);
    }
    print_message("%s: %zu/%zu lines identical (%zu tokens, %.2f s)\n", label, same, texts->count, ntok, gq_now() - t0);
    assert_int_equal(same, texts->count);
}

/* GPTQ protocol: HF rows ("" for a " " line, else line + "\n") joined by "\n\n", BOS as the reference adds. */
static void check_gptq(const gq_tokenizer *t, const char *name, const textset *wiki) {
    size_t total = 0;
    for (size_t i = 0; i < wiki->count; i++) total += wiki->n[i] + 3;
    char *s = malloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < wiki->count; i++) {
        if (i) { memcpy(s + o, "\n\n", 2); o += 2; }
        if (wiki->n[i] == 1 && wiki->s[i][0] == ' ') continue;
        memcpy(s + o, wiki->s[i], wiki->n[i]);
        o += wiki->n[i];
        s[o++] = '\n';
    }
    int32_t *ids;
    size_t n;
    assert_int_equal(gq_tokenizer_encode(t, s, o, gq_tokenizer_add_bos_default(t), &ids, &n), GQ_OK);
    uint8_t *le = malloc(n * 4 + 1);
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) le[4 * i + b] = (uint8_t)((uint32_t)ids[i] >> (8 * b));
    char hex[65];
    gq_sha256_hex(le, n * 4, hex);
    char line[256], want_hex[65] = "";
    size_t want_n = 0;
    FILE *f = fopen(FIX "gptq_wiki_test.txt", "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f)) {
        char nm[64];
        size_t cnt;
        char h[65];
        if (sscanf(line, "%63s %zu %64s", nm, &cnt, h) == 3 && !strcmp(nm, name)) { want_n = cnt; strcpy(want_hex, h); }
    }
    fclose(f);
    print_message("%s GPTQ wiki.test: %zu ids, sha256 %s (reference %zu, %s)\n", name, n, hex, want_n, want_hex);
    assert_int_equal(n, want_n);
    assert_string_equal(hex, want_hex);
    free(le);
    free(ids);
    free(s);
}

static void golden(const gq_tokenizer *t, const char *name) {
    textset wiki = {0}, c4 = {0}, want = {0};
    char pre[256];
    if (!load_wiki(&wiki)) { print_message("SKIP %s golden: wiki.test.raw not under %s\n", name, gq_data_root()); return; }
    snprintf(pre, sizeof pre, FIX "%s.wiki_test", name);
    load_fixture(pre, 1, &want);
    char label[128];
    snprintf(label, sizeof label, "%s wiki.test", name);
    compare_all(t, label, &wiki, &want);
    textset_free(&want);
    check_gptq(t, name, &wiki);
    if (load_c4(&c4, 100)) {
        snprintf(pre, sizeof pre, FIX "%s.c4_100.ids", name);
        load_fixture(pre, 0, &want);
        snprintf(label, sizeof label, "%s c4[0:100]", name);
        compare_all(t, label, &c4, &want);
        textset_free(&want);
        textset_free(&c4);
    }
    textset_free(&wiki);
}

static gq_tokenizer *load_llama2_spm(void) {
    char p[1024];
    if (!data_file(p, sizeof p, "models/llama2-tokenizer/tokenizer.model")) return NULL;
    gq_tokenizer *t;
    if (gq_tokenizer_load(p, 0, &t) != GQ_OK) fail_msg("%s", gq_errmsg());
    return t;
}

static gq_tokenizer *load_smol_gguf(void) {
    if (!gq_file_exists(SMOL_GGUF)) return NULL;
    gq_gguf *g;
    if (gq_gguf_open(SMOL_GGUF, &g) != GQ_OK) fail_msg("%s", gq_errmsg());
    gq_tokenizer *t;
    if (gq_tokenizer_from_gguf(g, &t) != GQ_OK) fail_msg("%s", gq_errmsg());
    gq_gguf_close(g);
    return t;
}

/* ---------------------------------------------------------------- tests */

static void test_spm_golden(void **st) {
    (void)st;
    gq_tokenizer *t = load_llama2_spm();
    if (!t) { print_message("SKIP: llama2 tokenizer.model not under %s\n", gq_data_root()); return; }
    assert_int_equal(gq_tokenizer_kind(t), GQ_TOK_SPM);
    assert_int_equal(gq_tokenizer_vocab_size(t), 32000);
    assert_int_equal(gq_tokenizer_bos(t), 1);
    assert_int_equal(gq_tokenizer_eos(t), 2);
    assert_true(gq_tokenizer_add_bos_default(t));
    golden(t, "llama2");
    gq_tokenizer_free(t);
}

static void test_bpe_gguf_golden(void **st) {
    (void)st;
    gq_tokenizer *t = load_smol_gguf();
    if (!t) { print_message("SKIP: %s absent (make models)\n", SMOL_GGUF); return; }
    assert_int_equal(gq_tokenizer_kind(t), GQ_TOK_BPE);
    assert_int_equal(gq_tokenizer_vocab_size(t), 49152);
    assert_false(gq_tokenizer_add_bos_default(t));
    golden(t, "smollm2");
    gq_tokenizer_free(t);
}

static void test_bpe_json_golden(void **st) {
    (void)st;
    if (!gq_file_exists(SMOL_JSON)) { print_message("SKIP: %s absent (tools/make_tok_fixtures.py writes it)\n", SMOL_JSON); return; }
    gq_tokenizer *t;
    if (gq_tokenizer_load(SMOL_JSON, 0, &t) != GQ_OK) fail_msg("%s", gq_errmsg());
    assert_int_equal(gq_tokenizer_kind(t), GQ_TOK_BPE);
    assert_false(gq_tokenizer_add_bos_default(t));
    golden(t, "smollm2");
    gq_tokenizer_free(t);
}

/* Fixture lines point into a shared buffer: sscanf needs its own NUL-terminated copy. */
static char *line_dup(const textset *t, size_t i) {
    char *c = malloc(t->n[i] + 1);
    memcpy(c, t->s[i], t->n[i]);
    c[t->n[i]] = 0;
    return c;
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

static void test_l2c_cases(void **st) {
    (void)st;
    textset cases = {0};
    load_fixture(FIX "l2c_cases.txt", 0, &cases);
    gq_tokenizer *tk[2] = {0};
    const char *files[2] = {"models/stories260K/tok512.bin", "models/llama2-tokenizer/tokenizer.bin"};
    const char *names[2] = {"tok512.bin", "tokenizer.bin"};
    for (int k = 0; k < 2; k++) {
        char p[1024];
        if (!data_file(p, sizeof p, files[k])) { print_message("SKIP: %s absent\n", files[k]); continue; }
        if (gq_tokenizer_load(p, 0, &tk[k]) != GQ_OK) fail_msg("%s", gq_errmsg());
        assert_int_equal(gq_tokenizer_kind(tk[k]), GQ_TOK_L2C);
    }
    if (tk[0]) assert_int_equal(gq_tokenizer_vocab_size(tk[0]), 512);
    size_t same = 0, total = 0;
    for (size_t i = 0; i < cases.count; i++) {
        static char name[64], hex[65536];
        int off = 0;
        char *line = line_dup(&cases, i);
        if (sscanf(line, "%63s %65535s %n", name, hex, &off) < 2) fail_msg("bad case line %zu", i + 1);
        int k = !strcmp(name, names[0]) ? 0 : 1;
        if (!tk[k]) {
            free(line);
            continue;
        }
        size_t hl = strcmp(hex, "-") ? strlen(hex) : 0;
        char *text = malloc(hl / 2 + 1);
        for (size_t j = 0; j < hl / 2; j++) text[j] = (char)(hexval(hex[2 * j]) * 16 + hexval(hex[2 * j + 1]));
        int32_t *ids, *ref;
        size_t n, nr = parse_ids(line + off, strlen(line + off), &ref);
        free(line);
        assert_int_equal(gq_tokenizer_encode(tk[k], text, hl / 2, 1, &ids, &n), GQ_OK);
        total++;
        if (n == nr && !memcmp(ids, ref, n * 4)) same++;
        else print_message("  l2c case %zu (%s) differs\n", i + 1, name);
        /* run.c decode: BOS skipped, the dummy-prefix space after it stripped -> the text again */
        char *back;
        size_t bl;
        assert_int_equal(gq_tokenizer_decode(tk[k], ids, n, &back, &bl), GQ_OK);
        assert_int_equal(bl, hl / 2);
        assert_memory_equal(back, text, bl);
        free(back);
        free(ids);
        free(ref);
        free(text);
    }
    print_message("llama2.c cases: %zu/%zu identical\n", same, total);
    assert_int_equal(same, total);
    for (int k = 0; k < 2; k++) gq_tokenizer_free(tk[k]);
    textset_free(&cases);
}

/* decode(encode(x)) == x on real text (SPM drops only the dummy prefix; byte-level BPE is lossless
 * for bytes its vocabulary has). */
static void test_roundtrip(void **st) {
    (void)st;
    textset wiki = {0};
    if (!load_wiki(&wiki)) { print_message("SKIP: no wiki.test.raw\n"); return; }
    gq_tokenizer *ts[2] = {load_llama2_spm(), load_smol_gguf()};
    for (int k = 0; k < 2; k++) {
        if (!ts[k]) continue;
        size_t ok = 0;
        for (size_t i = 0; i < wiki.count; i += 7) {
            int32_t *ids;
            size_t n, bl;
            char *back;
            assert_int_equal(gq_tokenizer_encode(ts[k], wiki.s[i], wiki.n[i], 1, &ids, &n), GQ_OK);
            assert_int_equal(gq_tokenizer_decode(ts[k], ids, n, &back, &bl), GQ_OK);
            if (bl == wiki.n[i] && !memcmp(back, wiki.s[i], bl)) ok++;
            else if (ok + 3 > (i / 7)) /* the first few only */
                print_message("  roundtrip %d line %zu: '%.*s' -> '%.*s'\n", k, i + 1, (int)(wiki.n[i] < 60 ? wiki.n[i] : 60),
                              wiki.s[i], (int)(bl < 60 ? bl : 60), back);
            free(back);
            free(ids);
        }
        assert_int_equal(ok, (wiki.count + 6) / 7);
        gq_tokenizer_free(ts[k]);
    }
    textset_free(&wiki);
}

/* Documented: invalid UTF-8 is GQ_ERR_ARG naming the first bad byte offset, for every kind. */
static void test_invalid_utf8(void **st) {
    (void)st;
    static const struct { const char *s; size_t n, off; } bad[] = {
        {"ab\xC3(", 4, 2},           /* truncated 2-byte sequence */
        {"\xC0\x80", 2, 0},          /* overlong NUL */
        {"x\xED\xA0\x80", 4, 1},     /* UTF-16 surrogate */
        {"xy\xF4\x90\x80\x80", 6, 2}, /* above U+10FFFF */
        {"abc\xE2\x82", 5, 3},       /* truncated at the end */
        {"\x80", 1, 0},              /* lone continuation byte */
    };
    char p[1024];
    gq_tokenizer *ts[3] = {load_llama2_spm(), load_smol_gguf(), NULL};
    if (data_file(p, sizeof p, "models/stories260K/tok512.bin")) assert_int_equal(gq_tokenizer_load(p, 512, &ts[2]), GQ_OK);
    for (int k = 0; k < 3; k++) {
        if (!ts[k]) continue;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            int32_t *ids = (int32_t *)1;
            size_t n = 99;
            assert_int_equal(gq_tokenizer_encode(ts[k], bad[i].s, bad[i].n, 1, &ids, &n), GQ_ERR_ARG);
            assert_null(ids);
            assert_int_equal(n, 0);
            char want[64];
            snprintf(want, sizeof want, "byte offset %zu", bad[i].off);
            assert_non_null(strstr(gq_errmsg(), want));
        }
        /* NUL is valid text; an empty text is zero tokens (plus BOS when asked) */
        int32_t *ids;
        size_t n;
        assert_int_equal(gq_tokenizer_encode(ts[k], "a\0b", 3, 0, &ids, &n), GQ_OK);
        assert_true(n >= 1);
        free(ids);
        assert_int_equal(gq_tokenizer_encode(ts[k], "", 0, 0, &ids, &n), GQ_OK);
        assert_int_equal(n, 0);
        free(ids);
        gq_tokenizer_free(ts[k]);
    }
}

/* Hostile files: every truncation of a real tokenizer.model / tokenizer.bin, and handmade bad
 * ones, must fail with a status (or load a consistent smaller vocabulary), never crash. */
static void test_hostile(void **st) {
    (void)st;
    char p[1024], tmp[] = "/tmp/gq_tok_hostile_XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    close(fd);
    const char *srcs[2] = {"models/stories260K/tok512.bin", "models/llama2-tokenizer/tokenizer.model"};
    for (int k = 0; k < 2; k++) {
        if (!data_file(p, sizeof p, srcs[k])) continue;
        char *b;
        size_t n;
        assert_int_equal(gq_read_file(p, &b, &n), GQ_OK);
        size_t step = n / 97 + 1;
        int failed = 0;
        for (size_t cut = 0; cut < n; cut += step) {
            assert_int_equal(gq_write_file_atomic(tmp, b, cut), GQ_OK);
            gq_tokenizer *t = NULL;
            gq_status s = gq_tokenizer_load(tmp, 0, &t);
            if (s != GQ_OK) { failed++; assert_null(t); assert_true(strlen(gq_errmsg()) > 0); }
            else {
                int32_t *ids; size_t ni; /* whatever loaded must still encode safely */
                gq_status es = gq_tokenizer_encode(t, "hello world", 11, 1, &ids, &ni);
                if (es == GQ_OK) free(ids);
                gq_tokenizer_free(t);
            }
        }
        assert_true(failed > 0);
        free(b);
    }
    /* handmade llama2.c files */
    static const struct { const char *what; unsigned char b[32]; size_t n; int vocab; } bad[] = {
        {"negative max_token_len", {0xff, 0xff, 0xff, 0xff}, 4, 0},
        {"token longer than max", {2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 'a', 'b', 'c'}, 15, 0},
        {"negative length", {2, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, 12, 0},
        {"length past end", {2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 'a'}, 13, 0},
        {"too few tokens for vocab", {2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'a'}, 13, 5},
        {"NaN score", {2, 0, 0, 0, 0, 0, 0xc0, 0x7f, 1, 0, 0, 0, 'a'}, 13, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(gq_write_file_atomic(tmp, bad[i].b, bad[i].n), GQ_OK);
        gq_tokenizer *t = NULL;
        assert_int_not_equal(gq_tokenizer_load(tmp, bad[i].vocab, &t), GQ_OK);
        assert_null(t);
    }
    /* handmade tokenizer.json files */
    static const char *const bad_json[] = {
        "{",
        "{\"model\": 3}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
        "{\"model\": {\"type\": \"Unigram\", \"vocab\": {}, \"merges\": []}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"pre_tokenizer\": {\"type\": \"Split\", "
        "\"pattern\": {\"Regex\": \"(\"}, \"behavior\": \"Isolated\"}}",
        "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, \"normalizer\": {\"type\": \"NFKC\"}}",
    };
    for (size_t i = 0; i < sizeof bad_json / sizeof bad_json[0]; i++) {
        assert_int_equal(gq_write_file_atomic(tmp, bad_json[i], strlen(bad_json[i])), GQ_OK);
        gq_tokenizer *t = NULL;
        gq_status s = gq_tokenizer_load(tmp, 0, &t);
        if (s == GQ_OK) fail_msg("bad tokenizer.json %zu loaded", i);
        assert_null(t);
    }
    unlink(tmp);
}

/* A tiny tokenizer.json whose encodings are checked by hand: merge ranks decide, leftmost on
 * ties, added tokens cut first, a Split regex isolates digits. */
static void test_bpe_handmade(void **st) {
    (void)st;
    const char *json =
        "{\"added_tokens\": [{\"id\": 9, \"content\": \"<x>\", \"special\": true}],"
        " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": true},"
        "   {\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": \"Removed\"}]},"
        " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"c\": 2, \"ab\": 3, \"bc\": 4, \"abc\": 5, \"1\": 6,"
        "   \"aa\": 7, \"2\": 8}, \"merges\": [\"b c\", \"a b\", [\"a\", \"bc\"], \"a a\"]}}";
    char tmp[] = "/tmp/gq_tok_json_XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(gq_write_file_atomic(tmp, json, strlen(json)), GQ_OK);
    gq_tokenizer *t;
    if (gq_tokenizer_load(tmp, 0, &t) != GQ_OK) fail_msg("%s", gq_errmsg());
    unlink(tmp);
    static const struct { const char *in; int n; int32_t out[8]; } cases[] = {
        {"abc", 1, {5}},            /* "b c" (rank 0) first, then "a bc" (rank 2) */
        {"ab", 1, {3}},
        {"aaa", 2, {7, 0}},         /* leftmost of equal ranks */
        {"a12b", 4, {0, 6, 8, 1}},  /* digits isolated, not merged across */
        {"ab<x>c", 3, {3, 9, 2}},   /* added token cut out first */
        {"ab c", 2, {3, 2}},        /* the space is Removed */
        {"ad", 1, {0}},             /* no token for 'd' and no unk: dropped, as HF does */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids;
        size_t n;
        assert_int_equal(gq_tokenizer_encode(t, cases[i].in, strlen(cases[i].in), 0, &ids, &n), GQ_OK);
        if (n != (size_t)cases[i].n || memcmp(ids, cases[i].out, n * 4))
            fail_msg("handmade case '%s': got %zu ids, first %d", cases[i].in, n, n ? ids[0] : -1);
        free(ids);
    }
    char *text;
    size_t tl;
    int32_t ids[] = {5, 9, 6};
    assert_int_equal(gq_tokenizer_decode(t, ids, 3, &text, &tl), GQ_OK);
    assert_string_equal(text, "abc1"); /* special tokens skipped */
    free(text);
    int32_t badid = 10;
    assert_int_equal(gq_tokenizer_decode(t, &badid, 1, &text, &tl), GQ_ERR_ARG);
    assert_string_equal(gq_tokenizer_piece(t, 5), "abc");
    assert_null(gq_tokenizer_piece(t, 10));
    gq_tokenizer_free(t);
}

/* The GGUF sentencepiece path (tokenizer.ggml.model = "llama") and the protobuf path on the same
 * tiny model agree with sentencepiece's own ids. */
static void test_spm_tiny_model_and_gguf(void **st) {
    (void)st;
    gq_tokenizer *tm, *tg;
    gq_gguf *g;
    if (gq_tokenizer_load(FIX "spm_tiny.model", 0, &tm) != GQ_OK) fail_msg("%s", gq_errmsg());
    if (gq_gguf_open(FIX "spm_tiny.gguf", &g) != GQ_OK) fail_msg("%s", gq_errmsg());
    if (gq_tokenizer_from_gguf(g, &tg) != GQ_OK) fail_msg("%s", gq_errmsg());
    gq_gguf_close(g);
    assert_int_equal(gq_tokenizer_kind(tg), GQ_TOK_SPM);
    assert_int_equal(gq_tokenizer_vocab_size(tm), gq_tokenizer_vocab_size(tg));
    assert_int_equal(gq_tokenizer_bos(tg), gq_tokenizer_bos(tm));
    assert_true(gq_tokenizer_add_bos_default(tg));
    textset cases = {0};
    load_fixture(FIX "spm_tiny_cases.txt", 0, &cases);
    assert_true(cases.count >= 5);
    for (size_t i = 0; i < cases.count; i++) {
        char hex[4096];
        int off = 0;
        char *line = line_dup(&cases, i);
        if (sscanf(line, "%4095s %n", hex, &off) < 1) fail_msg("bad case line %zu", i + 1);
        size_t hl = strcmp(hex, "-") ? strlen(hex) : 0;
        char text[2048];
        for (size_t j = 0; j < hl / 2; j++) text[j] = (char)(hexval(hex[2 * j]) * 16 + hexval(hex[2 * j + 1]));
        int32_t *ref;
        size_t nr = parse_ids(line + off, strlen(line + off), &ref);
        free(line);
        gq_tokenizer *both[2] = {tm, tg};
        for (int k = 0; k < 2; k++) {
            int32_t *ids;
            size_t n;
            assert_int_equal(gq_tokenizer_encode(both[k], text, hl / 2, 0, &ids, &n), GQ_OK);
            if (n != nr || memcmp(ids, ref, n * 4)) fail_msg("spm_tiny case %zu differs (%s path)", i + 1, k ? "gguf" : "model");
            char *back;
            size_t bl;
            assert_int_equal(gq_tokenizer_decode(both[k], ids, n, &back, &bl), GQ_OK);
            assert_int_equal(bl, hl / 2);
            assert_memory_equal(back, text, bl);
            free(back);
            free(ids);
        }
        free(ref);
    }
    textset_free(&cases);
    gq_tokenizer_free(tm);
    gq_tokenizer_free(tg);
}

typedef struct { const gq_tokenizer *t; const textset *w; size_t ntok; int ok; } thr_arg;

static void *thr_encode(void *p) {
    thr_arg *a = p;
    a->ok = 1;
    for (size_t i = 0; i < a->w->count; i += 3) {
        int32_t *ids;
        size_t n;
        if (gq_tokenizer_encode(a->t, a->w->s[i], a->w->n[i], 0, &ids, &n) != GQ_OK) a->ok = 0;
        else { a->ntok += n; free(ids); }
    }
    return NULL;
}

/* Concurrent encodes of one tokenizer give the serial result (no hidden shared state). */
static void test_threads(void **st) {
    (void)st;
    textset wiki = {0};
    if (!load_wiki(&wiki)) { print_message("SKIP: no wiki.test.raw\n"); return; }
    gq_tokenizer *t = load_smol_gguf();
    if (!t) t = load_llama2_spm();
    if (!t) { textset_free(&wiki); return; }
    thr_arg serial = {t, &wiki, 0, 0};
    thr_encode(&serial);
    thr_arg a[2] = {{t, &wiki, 0, 0}, {t, &wiki, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, thr_encode, &a[i]);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_true(a[i].ok);
        assert_int_equal(a[i].ntok, serial.ntok);
    }
    gq_tokenizer_free(t);
    textset_free(&wiki);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bpe_handmade), cmocka_unit_test(test_invalid_utf8), cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_l2c_cases),    cmocka_unit_test(test_spm_golden),   cmocka_unit_test(test_bpe_gguf_golden),
        cmocka_unit_test(test_bpe_json_golden), cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_spm_tiny_model_and_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
