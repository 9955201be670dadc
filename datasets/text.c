/* text.c — WikiText-2 and C4 text for the perplexity protocol, joined as GPTQ's Python does
 * (see text.h for the exact rules and how they were checked).
 * Every file is hostile: JSONL lines are parsed with cJSON and type-checked, errors name file and line.
 * Must not: tokenize or know about models.
 */
#include "text.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Python's str.strip() on an ASCII line: is there anything but whitespace? (A line of only
 * non-ASCII Unicode spaces would differ; WikiText-2 has none: tools/ref_text.py's hash agrees.) */
static int has_content(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\n\r\v\f", s[i]) || s[i] == 0) return 1;
    return 0;
}

void gq_text_wikitext_join(const char *raw, size_t n, char **out, size_t *out_len, size_t *n_rows) {
    /* worst case: every byte a row, each followed by "\n\n" */
    size_t cap = 3 * n + 1;
    char *o = gq_malloc(cap), *w = o;
    size_t rows = 0, i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && raw[j] != '\n') j++;
        size_t end = j < n ? j + 1 : j; /* the row keeps its "\n" */
        if (rows) { *w++ = '\n'; *w++ = '\n'; }
        if (has_content(raw + i, end - i)) { memcpy(w, raw + i, end - i); w += end - i; }
        rows++;
        i = end;
    }
    *w = 0;
    *out = o;
    *out_len = (size_t)(w - o);
    if (n_rows) *n_rows = rows;
}

gq_status gq_text_wikitext2(const char *split, char **out, size_t *out_len, size_t *n_rows) {
    const char *rel = !strcmp(split, "test") ? GQ_TEXT_WIKITEXT2_TEST
                      : (!strcmp(split, "valid") || !strcmp(split, "validation")) ? GQ_TEXT_WIKITEXT2_VALID : NULL;
    if (!rel) return gq_errf(GQ_ERR_ARG, "wikitext2: unknown split '%s' (test or valid)", split);
    char path[2048];
    gq_data_path(path, sizeof path, rel);
    if (!gq_file_exists(path))
        return gq_errf(GQ_ERR_IO, "wikitext2: %s not found (set --data-root or GQSA_DATA_ROOT)", path);
    char *raw;
    size_t n;
    gq_status st = gq_read_file(path, &raw, &n);
    if (st) return gq_err_prefix(st, "wikitext2: ");
    gq_text_wikitext_join(raw, n, out, out_len, n_rows);
    free(raw);
    return GQ_OK;
}

gq_status gq_text_jsonl_join(const char *path, int max_docs, char **out, size_t *out_len, int *n_docs) {
    *out = NULL;
    *out_len = 0;
    if (n_docs) *n_docs = 0;
    if (!gq_file_exists(path)) return gq_errf(GQ_ERR_IO, "%s not found (set --data-root or GQSA_DATA_ROOT)", path);
    char *raw;
    size_t n;
    GQ_TRY(gq_read_file(path, &raw, &n));
    char *o = gq_malloc(n + 1); /* the decoded texts are never longer than their JSON */
    size_t w = 0;
    int docs = 0;
    long lineno = 0;
    gq_status st = GQ_OK;
    for (size_t i = 0; i < n && docs < max_docs;) {
        size_t j = i;
        while (j < n && raw[j] != '\n') j++;
        lineno++;
        size_t len = j - i;
        int blank = !has_content(raw + i, len);
        if (!blank) {
            cJSON *obj = cJSON_ParseWithLength(raw + i, len);
            const cJSON *t = obj ? cJSON_GetObjectItemCaseSensitive(obj, "text") : NULL;
            if (!obj) st = gq_errf(GQ_ERR_FORMAT, "%s:%ld: not valid JSON", path, lineno);
            else if (!cJSON_IsString(t) || !t->valuestring)
                st = gq_errf(GQ_ERR_FORMAT, "%s:%ld: no string field 'text'", path, lineno);
            else {
                size_t tl = strlen(t->valuestring);
                /* a decoded JSON string is never longer than its line, which also holds the braces
                 * and key that pay for the ' ' separator */
                GQ_ASSERT(w + tl + 1 <= n + 1);
                if (docs) o[w++] = ' ';
                memcpy(o + w, t->valuestring, tl);
                w += tl;
                docs++;
            }
            cJSON_Delete(obj);
            if (st) break;
        }
        i = j + 1;
    }
    free(raw);
    if (st) { free(o); return st; }
    o[w] = 0;
    *out = o;
    *out_len = w;
    if (n_docs) *n_docs = docs;
    return GQ_OK;
}

gq_status gq_text_c4(char **out, size_t *out_len, int *n_docs) {
    char path[2048];
    gq_data_path(path, sizeof path, GQ_TEXT_C4_VALID);
    gq_status st = gq_text_jsonl_join(path, GQ_TEXT_C4_PROTOCOL_DOCS, out, out_len, n_docs);
    return st ? gq_err_prefix(st, "c4: ") : GQ_OK;
}
