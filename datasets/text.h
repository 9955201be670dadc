/* text.h — the plain-text evaluation corpora of the perplexity protocol (GPTQ / SparseGPT), read
 * from the data root and joined exactly as the reference Python code joins them.
 *
 * WikiText-2 (wikitext-2-raw-v1/wiki.<split>.raw): Hugging Face's `wikitext` builder yields one row
 * per line of the raw file: the line WITH its trailing "\n" when it has any non-whitespace
 * character, else "" (checked against wiki.test.raw: its 4358 lines are the split's 4358 rows; the
 * 1467 blank lines are " \n" in the file and "" in the split). GPTQ then does "\n\n".join(rows).
 * C4 "c4-new" (c4/c4-validation-shard0-first1025.jsonl): ' '.join of the `text` of the first 1100
 * documents of en/c4-validation.00000-of-00008; our copy holds 1025 of them, so fewer are used and
 * the caller is told (n_docs).
 * Must not: tokenize, or know about models.
 */
#ifndef GQ_DATASETS_TEXT_H
#define GQ_DATASETS_TEXT_H

#include <stddef.h>

#include "../core/util.h"

#define GQ_TEXT_WIKITEXT2_TEST "datasets/wikitext-2-raw-v1/wiki.test.raw"
#define GQ_TEXT_WIKITEXT2_VALID "datasets/wikitext-2-raw-v1/wiki.valid.raw"
#define GQ_TEXT_C4_VALID "datasets/c4/c4-validation-shard0-first1025.jsonl"
/* GPTQ's c4-new evaluation uses the first 1100 validation documents. */
#define GQ_TEXT_C4_PROTOCOL_DOCS 1100

/* Rows of a WikiText raw buffer joined with "\n\n" as GPTQ does. *out is malloc'd, NUL-terminated;
 * *out_len excludes the NUL. *n_rows (may be NULL) gets the number of rows. Never fails on content. */
void gq_text_wikitext_join(const char *raw, size_t n, char **out, size_t *out_len, size_t *n_rows);

/* Read WikiText-2 split "test" or "valid" from the data root and join it (above). GQ_ERR_IO naming
 * the path when the file is missing; GQ_ERR_ARG for an unknown split. */
gq_status gq_text_wikitext2(const char *split, char **out, size_t *out_len, size_t *n_rows);

/* Read up to max_docs `text` fields of a JSONL file (one JSON object per line) and join them with
 * ' '. *n_docs gets how many were used. GQ_ERR_FORMAT naming the file and line for a bad line. */
gq_status gq_text_jsonl_join(const char *path, int max_docs, char **out, size_t *out_len, int *n_docs);

/* C4 validation, c4-new protocol: gq_text_jsonl_join of GQ_TEXT_C4_VALID under the data root with
 * max_docs = GQ_TEXT_C4_PROTOCOL_DOCS. */
gq_status gq_text_c4(char **out, size_t *out_len, int *n_docs);

#endif
