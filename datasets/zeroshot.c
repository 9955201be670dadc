/* zeroshot.c — task loaders and lm-eval prompt formatting for the zero-shot tasks (see zeroshot.h).
 *
 * Every file is hostile: each line is parsed with cJSON, every field is type-checked, and errors
 * name the file, the 1-based line and the key. Strings are copied out of the JSON tree, so items
 * own their memory. Must not: tokenize or score.
 */
#include "zeroshot.h"

#include <cJSON.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const TASK_NAMES[GQ_ZS_N_TASKS] = {"piqa", "arc_easy", "arc_challenge", "hellaswag",
                                                      "winogrande"};
static const char *const TASK_FILES[GQ_ZS_N_TASKS] = {
    "datasets/piqa/validation.jsonl", "datasets/arc/arc-easy-test.jsonl", "datasets/arc/arc-challenge-test.jsonl",
    "datasets/hellaswag/validation-subset1000.jsonl", "datasets/winogrande/winogrande-xl-validation.jsonl"};

const char *gq_zs_task_name(gq_zs_task_id id) {
    GQ_ASSERT(id >= 0 && id < GQ_ZS_N_TASKS);
    return TASK_NAMES[id];
}

int gq_zs_task_from_name(const char *name) {
    for (int i = 0; i < GQ_ZS_N_TASKS; i++)
        if (!strcmp(name, TASK_NAMES[i])) return i;
    return -1;
}

const char *gq_zs_task_relpath(gq_zs_task_id id) {
    GQ_ASSERT(id >= 0 && id < GQ_ZS_N_TASKS);
    return TASK_FILES[id];
}

/* winogrande's default.yaml lists only acc. */
int gq_zs_task_has_acc_norm(gq_zs_task_id id) { return id != GQ_ZS_WINOGRANDE; }

/* ------------------------------------------------------------------------------------------ */
/* Python string semantics */

/* Decode one UTF-8 code point at s[i] (i < len); returns its byte length (1 for an invalid byte,
 * decoded as itself, so callers never loop forever on bad input). */
static size_t utf8_next(const unsigned char *s, size_t len, size_t i, unsigned *cp) {
    unsigned c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > len) { *cp = c; return 1; }
    unsigned v = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < n; k++) {
        if ((s[i + k] & 0xc0) != 0x80) { *cp = c; return 1; }
        v = (v << 6) | (s[i + k] & 0x3f);
    }
    *cp = v;
    return n;
}

/* str.isspace() for one code point. */
static int py_isspace(unsigned cp) {
    return (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x20) || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
           cp == 0x3000;
}

size_t gq_zs_py_lspace_len(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned cp;
        size_t n = utf8_next(u, len, i, &cp);
        if (!py_isspace(cp)) break;
        i += n;
    }
    return i;
}

size_t gq_zs_py_rspace_len(const char *s, size_t len) {
    /* Walk forward (UTF-8 is not safely decodable backwards from a hostile byte) and remember where
     * the current run of whitespace began. */
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = len;
    while (i < len) {
        unsigned cp;
        size_t n = utf8_next(u, len, i, &cp);
        if (py_isspace(cp)) {
            if (run == len) run = i;
        } else {
            run = len;
        }
        i += n;
    }
    return len - run;
}

size_t gq_zs_py_len(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p & 0xc0) != 0x80) n++;
    return n;
}

char *gq_zs_py_capitalize(const char *s) {
    char *r = gq_strdup(s);
    for (size_t i = 0; r[i]; i++) {
        char c = r[i];
        if (i == 0 && c >= 'a' && c <= 'z') r[i] = (char)(c - 'a' + 'A');
        else if (i > 0 && c >= 'A' && c <= 'Z') r[i] = (char)(c - 'A' + 'a');
    }
    return r;
}

/* Python str.replace(old, new): one left-to-right pass over non-overlapping matches. */
static char *py_replace(const char *s, const char *old, const char *rep) {
    size_t lo = strlen(old), lr = strlen(rep), ls = strlen(s);
    GQ_ASSERT(lo > 0);
    /* each match shrinks or grows by (lr - lo); ls/lo matches at most */
    size_t cap = ls + 1 + (lr > lo ? (ls / lo) * (lr - lo) : 0);
    char *out = gq_malloc(cap), *o = out;
    for (const char *p = s; *p;) {
        if (!strncmp(p, old, lo)) {
            memcpy(o, rep, lr);
            o += lr;
            p += lo;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

/* re.sub("\\[.*?\\]", "", s): '.' does not match '\n', so a '[' whose next ']' lies beyond a newline
 * (or that has none) does not match and is kept; scanning then resumes at the next character. */
static char *remove_brackets(const char *s) {
    size_t ls = strlen(s);
    char *out = gq_malloc(ls + 1), *o = out;
    for (size_t i = 0; i < ls;) {
        if (s[i] == '[') {
            size_t j = i + 1;
            while (j < ls && s[j] != ']' && s[j] != '\n') j++;
            if (j < ls && s[j] == ']') {
                i = j + 1;
                continue;
            }
        }
        *o++ = s[i++];
    }
    *o = 0;
    return out;
}

char *gq_zs_hellaswag_preprocess(const char *text) {
    size_t len = strlen(text);
    size_t a = gq_zs_py_lspace_len(text, len);
    size_t b = a < len ? gq_zs_py_rspace_len(text + a, len - a) : 0;
    char *t0 = gq_malloc(len - a - b + 1);
    memcpy(t0, text + a, len - a - b);
    t0[len - a - b] = 0;
    char *t1 = py_replace(t0, " [title]", ". ");
    char *t2 = remove_brackets(t1);
    char *t3 = py_replace(t2, "  ", " ");
    free(t0);
    free(t1);
    free(t2);
    return t3;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON field access */

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    GQ_ASSERT(n >= 0);
    char *s = gq_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

static gq_status get_str(const cJSON *o, const char *key, const char **out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return gq_errf(GQ_ERR_FORMAT, "missing key '%s'", key);
    if (!cJSON_IsString(v) || !v->valuestring) return gq_errf(GQ_ERR_FORMAT, "key '%s' is not a string", key);
    *out = v->valuestring;
    return GQ_OK;
}

/* An integer field, also accepted as a decimal string ("label": "1" appears in some HF exports). */
static gq_status get_int(const cJSON *o, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return gq_errf(GQ_ERR_FORMAT, "missing key '%s'", key);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d != (double)(int)d) return gq_errf(GQ_ERR_FORMAT, "key '%s' is not an integer", key);
        *out = (int)d;
        return GQ_OK;
    }
    if (cJSON_IsString(v) && v->valuestring) {
        char *end;
        long x = strtol(v->valuestring, &end, 10);
        if (*v->valuestring && !*end && x > -1000000 && x < 1000000) {
            *out = (int)x;
            return GQ_OK;
        }
    }
    return gq_errf(GQ_ERR_FORMAT, "key '%s' is not an integer", key);
}

/* A JSON array of 2..GQ_ZS_MAX_CHOICES strings. */
static gq_status get_str_array(const cJSON *o, const char *key, const char **out, int *n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return gq_errf(GQ_ERR_FORMAT, "missing key '%s'", key);
    if (!cJSON_IsArray(v)) return gq_errf(GQ_ERR_FORMAT, "key '%s' is not an array", key);
    int k = cJSON_GetArraySize(v);
    if (k < 2 || k > GQ_ZS_MAX_CHOICES)
        return gq_errf(GQ_ERR_FORMAT, "key '%s' has %d entries (expected 2..%d)", key, k, GQ_ZS_MAX_CHOICES);
    for (int i = 0; i < k; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(e) || !e->valuestring)
            return gq_errf(GQ_ERR_FORMAT, "key '%s'[%d] is not a string", key, i);
        out[i] = e->valuestring;
    }
    *n = k;
    return GQ_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* per-task formatting */

void gq_zs_item_free(gq_zs_item *it) {
    for (int i = 0; i < GQ_ZS_MAX_CHOICES; i++) {
        free(it->ctx[i]);
        free(it->cont[i]);
        free(it->choice[i]);
    }
    memset(it, 0, sizeof *it);
}

/* Single-input tasks: one context for all choices, continuation = " " + choice. */
static void fill_single(gq_zs_item *it, const char *ctx, const char *const *choices, int n, int gold) {
    it->n_choices = n;
    it->gold = gold;
    for (int i = 0; i < n; i++) {
        it->ctx[i] = gq_strdup(ctx);
        it->cont[i] = dup_printf(" %s", choices[i]);
        it->choice[i] = gq_strdup(choices[i]);
    }
}

static gq_status item_piqa(const cJSON *o, gq_zs_item *it) {
    const char *goal, *sol[2];
    int label;
    GQ_TRY(get_str(o, "goal", &goal));
    GQ_TRY(get_str(o, "sol1", &sol[0]));
    GQ_TRY(get_str(o, "sol2", &sol[1]));
    GQ_TRY(get_int(o, "label", &label));
    if (label < 0 || label > 1) return gq_errf(GQ_ERR_FORMAT, "key 'label' is %d (expected 0 or 1)", label);
    char *ctx = dup_printf("Question: %s\nAnswer:", goal);
    fill_single(it, ctx, sol, 2, label);
    free(ctx);
    return GQ_OK;
}

/* arc-easy-test.jsonl (rebuilt: choices list + gold index) or the HF layout of arc-challenge
 * (choices{text,label}, answerKey): both files are accepted for both tasks. */
static gq_status item_arc(const cJSON *o, gq_zs_item *it) {
    const char *q, *texts[GQ_ZS_MAX_CHOICES];
    int n = 0, gold = -1;
    GQ_TRY(get_str(o, "question", &q));
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
    if (cJSON_IsObject(ch)) {
        const char *labels[GQ_ZS_MAX_CHOICES], *key;
        int nl;
        GQ_TRY(get_str_array(ch, "text", texts, &n));
        GQ_TRY(get_str_array(ch, "label", labels, &nl));
        if (nl != n) return gq_errf(GQ_ERR_FORMAT, "key 'choices': %d texts but %d labels", n, nl);
        GQ_TRY(get_str(o, "answerKey", &key));
        /* gold = choices.label.index(answerKey): the first match (arc_easy.yaml doc_to_target) */
        for (int i = 0; i < n && gold < 0; i++)
            if (!strcmp(labels[i], key)) gold = i;
        if (gold < 0) return gq_errf(GQ_ERR_FORMAT, "key 'answerKey' '%s' is not one of the choice labels", key);
    } else {
        GQ_TRY(get_str_array(o, "choices", texts, &n));
        GQ_TRY(get_int(o, "gold", &gold));
        if (gold < 0 || gold >= n) return gq_errf(GQ_ERR_FORMAT, "key 'gold' is %d with %d choices", gold, n);
    }
    char *ctx = dup_printf("Question: %s\nAnswer:", q);
    fill_single(it, ctx, texts, n, gold);
    free(ctx);
    return GQ_OK;
}

/* Raw HellaSwag (activity_label, ctx_a, ctx_b, endings, label) as utils.process_docs does, or an
 * already processed item (query, choices, gold; lmeval-processed-4items.jsonl) taken as is. */
static gq_status item_hellaswag(const cJSON *o, gq_zs_item *it) {
    const char *endings[GQ_ZS_MAX_CHOICES];
    int n, gold;
    if (cJSON_GetObjectItemCaseSensitive(o, "query")) {
        const char *query;
        GQ_TRY(get_str(o, "query", &query));
        GQ_TRY(get_str_array(o, "choices", endings, &n));
        GQ_TRY(get_int(o, "gold", &gold));
        if (gold < 0 || gold >= n) return gq_errf(GQ_ERR_FORMAT, "key 'gold' is %d with %d choices", gold, n);
        fill_single(it, query, endings, n, gold);
        return GQ_OK;
    }
    const char *act, *ca, *cb;
    GQ_TRY(get_str(o, "activity_label", &act));
    GQ_TRY(get_str(o, "ctx_a", &ca));
    GQ_TRY(get_str(o, "ctx_b", &cb));
    GQ_TRY(get_str_array(o, "endings", endings, &n));
    GQ_TRY(get_int(o, "label", &gold));
    if (gold < 0 || gold >= n) return gq_errf(GQ_ERR_FORMAT, "key 'label' is %d with %d endings", gold, n);
    char *cap = gq_zs_py_capitalize(cb);
    char *raw = dup_printf("%s: %s %s", act, ca, cap);
    char *query = gq_zs_hellaswag_preprocess(raw);
    char *pre[GQ_ZS_MAX_CHOICES];
    for (int i = 0; i < n; i++) pre[i] = gq_zs_hellaswag_preprocess(endings[i]);
    fill_single(it, query, (const char *const *)pre, n, gold);
    for (int i = 0; i < n; i++) free(pre[i]);
    free(cap);
    free(raw);
    free(query);
    return GQ_OK;
}

/* preprocess_winogrande.py: idx = sentence.index("_") (the first one); partial contexts
 * sentence[:idx] + option; target sentence[idx+1:].strip(); request (partial_ctx, " " + target). */
static gq_status item_winogrande(const cJSON *o, gq_zs_item *it) {
    const char *s, *opt[2], *ans;
    GQ_TRY(get_str(o, "sentence", &s));
    GQ_TRY(get_str(o, "option1", &opt[0]));
    GQ_TRY(get_str(o, "option2", &opt[1]));
    GQ_TRY(get_str(o, "answer", &ans));
    int gold = !strcmp(ans, "1") ? 0 : !strcmp(ans, "2") ? 1 : -1;
    if (gold < 0) return gq_errf(GQ_ERR_FORMAT, "key 'answer' is '%s' (expected \"1\" or \"2\")", ans);
    const char *us = strchr(s, '_');
    if (!us) return gq_errf(GQ_ERR_FORMAT, "key 'sentence' has no '_' blank");
    size_t idx = (size_t)(us - s);
    const char *rest = us + 1;
    size_t lr = strlen(rest);
    size_t a = gq_zs_py_lspace_len(rest, lr);
    size_t b = a < lr ? gq_zs_py_rspace_len(rest + a, lr - a) : 0;
    it->n_choices = 2;
    it->gold = gold;
    for (int i = 0; i < 2; i++) {
        it->ctx[i] = dup_printf("%.*s%s", (int)idx, s, opt[i]);
        it->cont[i] = dup_printf(" %.*s", (int)(lr - a - b), rest + a);
        it->choice[i] = gq_strdup(it->ctx[i]);
    }
    return GQ_OK;
}

gq_status gq_zs_item_from_json(gq_zs_task_id id, const char *json, size_t len, gq_zs_item *it) {
    GQ_ASSERT(id >= 0 && id < GQ_ZS_N_TASKS);
    memset(it, 0, sizeof *it);
    cJSON *o = cJSON_ParseWithLength(json, len);
    if (!o) return gq_errf(GQ_ERR_FORMAT, "not valid JSON");
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return gq_errf(GQ_ERR_FORMAT, "not a JSON object");
    }
    gq_status st;
    switch (id) {
    case GQ_ZS_PIQA: st = item_piqa(o, it); break;
    case GQ_ZS_ARC_EASY:
    case GQ_ZS_ARC_CHALLENGE: st = item_arc(o, it); break;
    case GQ_ZS_HELLASWAG: st = item_hellaswag(o, it); break;
    case GQ_ZS_WINOGRANDE: st = item_winogrande(o, it); break;
    default: st = gq_errf(GQ_ERR_INTERNAL, "unknown task %d", (int)id);
    }
    cJSON_Delete(o);
    if (st != GQ_OK) gq_zs_item_free(it);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* loading */

void gq_zs_task_free(gq_zs_task *t) {
    for (int i = 0; i < t->n; i++) gq_zs_item_free(&t->items[i]);
    free(t->items);
    memset(t, 0, sizeof *t);
}

gq_status gq_zs_task_load(gq_zs_task_id id, const char *path, int limit, gq_zs_task *out) {
    GQ_ASSERT(id >= 0 && id < GQ_ZS_N_TASKS);
    memset(out, 0, sizeof *out);
    char buf[1024];
    if (!path) path = gq_data_path(buf, sizeof buf, TASK_FILES[id]);
    char *data;
    size_t len;
    gq_status st = gq_read_file(path, &data, &len);
    if (st != GQ_OK)
        return gq_err_prefix(st, "zero-shot task %s: ", TASK_NAMES[id]);
    gq_zs_task t = {.id = id};
    snprintf(t.path, sizeof t.path, "%s", path);
    int cap = 0, line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *p = data + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - p) : len - pos;
        pos += ll + (nl ? 1 : 0);
        line++;
        if (gq_zs_py_lspace_len(p, ll) == ll) continue; /* blank line */
        if (memchr(p, 0, ll)) {
            st = gq_errf(GQ_ERR_FORMAT, "%s:%d: NUL byte in line", path, line);
            break;
        }
        t.n_total++;
        if (limit > 0 && t.n >= limit) continue; /* keep counting the documents */
        if (t.n == cap) {
            cap = cap ? 2 * cap : 256;
            t.items = gq_realloc(t.items, (size_t)cap * sizeof *t.items);
        }
        st = gq_zs_item_from_json(id, p, ll, &t.items[t.n]);
        if (st != GQ_OK) {
            gq_err_prefix(st, "%s:%d: ", path, line);
            break;
        }
        t.n++;
    }
    free(data);
    if (st == GQ_OK && t.n == 0) st = gq_errf(GQ_ERR_FORMAT, "%s: no documents", path);
    if (st != GQ_OK) {
        gq_zs_task_free(&t);
        return st;
    }
    *out = t;
    return GQ_OK;
}
