/* zeroshot.h — the five zero-shot tasks of the GQSA paper, read from the data root and turned into
 * the (context, continuation) requests that lm-evaluation-harness builds for them.
 *
 * Each item becomes n_choices loglikelihood requests (ctx[i], cont[i]); lm-eval scores
 *   acc      = [argmax_i ll_i == gold]
 *   acc_norm = [argmax_i ll_i / len(choice[i]) == gold]      len in Unicode code points
 * where choice[i] is lm-eval's doc_to_choice string WITHOUT the target delimiter " " (see
 * lm_eval/api/task.py, ConfigurableTask.process_results: completion_len = len(i) for i in choices).
 *
 * Sources followed (EleutherAI/lm-evaluation-harness):
 *   piqa       lm_eval/tasks/piqa/piqa.yaml           "Question: {{goal}}\nAnswer:", choices [sol1, sol2]
 *   arc_*      lm_eval/tasks/arc/arc_easy.yaml         "Question: {{question}}\nAnswer:", choices.text,
 *                                                      gold = choices.label.index(answerKey)
 *   hellaswag  lm_eval/tasks/hellaswag/{hellaswag.yaml,utils.py}  process_docs/preprocess
 *   winogrande lm_eval/tasks/winogrande/{default.yaml,preprocess_winogrande.py}  multiple_inputs:
 *              ctx[i] = sentence[:idx("_")] + option_i, cont = " " + sentence[idx+1:].strip(),
 *              choice[i] = ctx[i] (the strings acc_norm would divide by; lm-eval reports only acc)
 * In every task the continuation is target_delimiter " " + the choice (single-input tasks).
 *
 * Must not: tokenize, score, or know about models (that is core/eval_zeroshot.c).
 */
#ifndef GQ_DATASETS_ZEROSHOT_H
#define GQ_DATASETS_ZEROSHOT_H

#include <stddef.h>

#include "../core/util.h"

typedef enum {
    GQ_ZS_PIQA = 0,
    GQ_ZS_ARC_EASY = 1,
    GQ_ZS_ARC_CHALLENGE = 2,
    GQ_ZS_HELLASWAG = 3,
    GQ_ZS_WINOGRANDE = 4,
    GQ_ZS_N_TASKS = 5
} gq_zs_task_id;

#define GQ_ZS_MAX_CHOICES 8

/* One document as loglikelihood requests. All strings are owned by the item (UTF-8, NUL-terminated). */
typedef struct {
    int n_choices;                   /* 2..GQ_ZS_MAX_CHOICES */
    int gold;                        /* 0..n_choices-1 */
    char *ctx[GQ_ZS_MAX_CHOICES];    /* request context per choice (single-input tasks: equal strings) */
    char *cont[GQ_ZS_MAX_CHOICES];   /* request continuation per choice (starts with the delimiter " ") */
    char *choice[GQ_ZS_MAX_CHOICES]; /* lm-eval's doc_to_choice string (acc_norm length) */
} gq_zs_item;

typedef struct {
    gq_zs_task_id id;
    int n;             /* items loaded (after --limit) */
    int n_total;       /* documents in the file */
    gq_zs_item *items; /* [n] */
    char path[1024];   /* the file it came from */
} gq_zs_task;

/* "piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande". */
const char *gq_zs_task_name(gq_zs_task_id id);
/* Task id for a name (exact, lm-eval's names), or -1. */
int gq_zs_task_from_name(const char *name);
/* The file of a task relative to the data root ("datasets/piqa/validation.jsonl", ...). */
const char *gq_zs_task_relpath(gq_zs_task_id id);
/* Whether lm-eval reports acc_norm for the task (all but winogrande). */
int gq_zs_task_has_acc_norm(gq_zs_task_id id);

/* Load the first `limit` documents (limit <= 0: all, in file order, as lm-eval's --limit) of a task
 * from `path` (NULL: the data root's file). Every line is validated; an error names the file, the
 * line and the key. On error *out is left empty (nothing to free). */
gq_status gq_zs_task_load(gq_zs_task_id id, const char *path, int limit, gq_zs_task *out);
void gq_zs_task_free(gq_zs_task *t);

/* Build the requests of one document from one JSON line of the task's file (fields listed in
 * ../shared/datasets/README.md). GQ_ERR_FORMAT with the key on a missing or mistyped field. On
 * error the item holds nothing. */
gq_status gq_zs_item_from_json(gq_zs_task_id id, const char *json, size_t len, gq_zs_item *it);
void gq_zs_item_free(gq_zs_item *it);

/* ---- string helpers that reproduce Python semantics (exposed for tests) ---- */

/* lm-eval's hellaswag preprocess(text): strip; " [title]" -> ". "; re.sub("\\[.*?\\]", ""); "  " -> " ".
 * Returns a malloc'd string. */
char *gq_zs_hellaswag_preprocess(const char *text);
/* Python str.capitalize() for ASCII letters (first upper, rest lower); non-ASCII bytes unchanged. */
char *gq_zs_py_capitalize(const char *s);
/* Python str.strip()/rstrip() whitespace: ASCII whitespace, \x1c-\x1f and the Unicode spaces
 * (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000). Returns the byte
 * length of the trailing whitespace of s[0..len). */
size_t gq_zs_py_rspace_len(const char *s, size_t len);
size_t gq_zs_py_lspace_len(const char *s, size_t len);
/* len() of a Python str: the number of code points of valid UTF-8 (continuation bytes not counted). */
size_t gq_zs_py_len(const char *s);

#endif
