/* config.c — YAML run files: a libyaml event parser into a line-annotated tree, then a strict
 * validator into gq_runcfg, canonical serialisation and hashing (contracts in config.h).
 * Must not: accept anything it does not understand (unknown keys, quoted numbers, "4.0" for an
 * integer, trailing garbage) — a typo in a sweep file must stop the run, not change it silently.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ================================================================ names */

static const char *const STAGE_NAMES[GQ_STAGE_COUNT] = {"calibrate", "saliency", "prune", "quantize",
                                                        "bqpo", "e2e_oqp", "evaluate", "bench"};
static const char *const METHOD_NAMES[GQ_METHOD_COUNT] = {"fp", "gqsa", "rtn", "gptq", "sparsegpt", "wanda", "magnitude"};
static const char *const DS_NAMES[GQ_DS_COUNT] = {"wikitext2", "c4"};
/* same strings as gq_zs_task_name (test_config checks) */
static const char *const ZS_NAMES[GQ_ZS_N_TASKS] = {"piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande"};
static const char *const SCOPE_NAMES[2] = {"layer", "row"};

const char *gq_stage_name(gq_stage_id s) {
    GQ_ASSERT((int)s >= 0 && s < GQ_STAGE_COUNT);
    return STAGE_NAMES[s];
}
int gq_stage_from_name(const char *name) {
    for (int i = 0; i < GQ_STAGE_COUNT; i++)
        if (!strcmp(name, STAGE_NAMES[i])) return i;
    return -1;
}
const char *gq_method_name(gq_method_id m) {
    GQ_ASSERT((int)m >= 0 && m < GQ_METHOD_COUNT);
    return METHOD_NAMES[m];
}
const char *gq_dataset_name(gq_dataset_id d) {
    GQ_ASSERT((int)d >= 0 && d < GQ_DS_COUNT);
    return DS_NAMES[d];
}

/* ================================================================ tree */

static gq_ynode *ynode_new(gq_ynode_kind kind, const char *file, int line) {
    gq_ynode *n = gq_calloc(1, sizeof *n);
    n->kind = kind;
    n->file = gq_strdup(file ? file : "<config>");
    n->line = line;
    return n;
}

void gq_ynode_free(gq_ynode *n) {
    if (!n) return;
    for (size_t i = 0; i < n->n; i++) {
        gq_ynode_free(n->items[i]);
        if (n->keys) free(n->keys[i]);
    }
    free(n->items);
    free(n->keys);
    free(n->key_lines);
    free(n->scalar);
    free(n->file);
    free(n);
}

static void ynode_append(gq_ynode *p, char *key, int key_line, gq_ynode *child) {
    p->items = gq_realloc(p->items, (p->n + 1) * sizeof *p->items);
    if (p->kind == GQ_YNODE_MAP) {
        p->keys = gq_realloc(p->keys, (p->n + 1) * sizeof *p->keys);
        p->key_lines = gq_realloc(p->key_lines, (p->n + 1) * sizeof *p->key_lines);
        p->keys[p->n] = key;
        p->key_lines[p->n] = key_line;
    }
    p->items[p->n++] = child;
}

gq_ynode *gq_ynode_clone(const gq_ynode *n) {
    if (!n) return NULL;
    gq_ynode *c = ynode_new(n->kind, n->file, n->line);
    c->quoted = n->quoted;
    if (n->scalar) c->scalar = gq_strdup(n->scalar);
    for (size_t i = 0; i < n->n; i++)
        ynode_append(c, n->kind == GQ_YNODE_MAP ? gq_strdup(n->keys[i]) : NULL,
                     n->kind == GQ_YNODE_MAP ? n->key_lines[i] : 0, gq_ynode_clone(n->items[i]));
    return c;
}

const gq_ynode *gq_ynode_get(const gq_ynode *n, const char *key) {
    if (!n || n->kind != GQ_YNODE_MAP) return NULL;
    for (size_t i = 0; i < n->n; i++)
        if (!strcmp(n->keys[i], key)) return n->items[i];
    return NULL;
}

gq_status gq_ynode_set(gq_ynode *root, const char *path, const gq_ynode *value) {
    GQ_ASSERT(root && path && value);
    if (root->kind != GQ_YNODE_MAP) return gq_errf(GQ_ERR_ARG, "%s:%d: expected a mapping at the top", root->file, root->line);
    char *p = gq_strdup(path);
    gq_ynode *cur = root;
    char *save = NULL;
    char *tok = strtok_r(p, ".", &save);
    gq_status st = GQ_OK;
    while (tok) {
        char *next = strtok_r(NULL, ".", &save);
        size_t i;
        for (i = 0; i < cur->n; i++)
            if (!strcmp(cur->keys[i], tok)) break;
        if (!next) {
            gq_ynode *v = gq_ynode_clone(value);
            if (i < cur->n) {
                gq_ynode_free(cur->items[i]);
                cur->items[i] = v;
                cur->key_lines[i] = value->line;
            } else {
                ynode_append(cur, gq_strdup(tok), value->line, v);
            }
            break;
        }
        if (i == cur->n) {
            ynode_append(cur, gq_strdup(tok), value->line, ynode_new(GQ_YNODE_MAP, value->file, value->line));
        } else if (cur->items[i]->kind != GQ_YNODE_MAP) {
            st = gq_errf(GQ_ERR_ARG, "%s:%d: %s: cannot set '%s': '%s' is not a mapping", value->file, value->line,
                         path, path, tok);
            break;
        }
        cur = cur->items[i];
        tok = next;
    }
    free(p);
    return st;
}

int gq_ynode_int(const gq_ynode *n, long long lo, long long hi, long long *out) {
    if (!n || n->kind != GQ_YNODE_SCALAR || n->quoted || !n->scalar) return -1;
    const char *s = n->scalar;
    if (!((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9'))) return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    if (v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int gq_ynode_double(const gq_ynode *n, double *out) {
    if (!n || n->kind != GQ_YNODE_SCALAR || n->quoted || !n->scalar) return -1;
    const char *s = n->scalar;
    /* only decimal forms: strtod would also take "inf", "nan" and hex floats */
    for (const char *c = s; *c; c++)
        if (!strchr("0123456789+-.eE", *c)) return -1;
    if (!*s) return -1;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------- libyaml events -> tree */

typedef struct {
    gq_ynode *node;
    char *pending_key; /* MAP: key read, value not yet */
    int pending_line;
} ybuild_frame;

static gq_status ybuild_add(ybuild_frame *stack, int depth, gq_ynode *child, gq_ynode **root, const char *fname) {
    if (depth == 0) {
        *root = child;
        return GQ_OK;
    }
    ybuild_frame *f = &stack[depth - 1];
    if (f->node->kind == GQ_YNODE_SEQ) {
        ynode_append(f->node, NULL, 0, child);
        return GQ_OK;
    }
    if (!f->pending_key) {
        if (child->kind != GQ_YNODE_SCALAR) {
            gq_status st = gq_errf(GQ_ERR_ARG, "%s:%d: a mapping key must be a plain scalar", fname, child->line);
            gq_ynode_free(child);
            return st;
        }
        for (size_t i = 0; i < f->node->n; i++)
            if (!strcmp(f->node->keys[i], child->scalar)) {
                gq_status st = gq_errf(GQ_ERR_ARG, "%s:%d: %s: duplicate key (first at line %d)", fname, child->line,
                                       child->scalar, f->node->key_lines[i]);
                gq_ynode_free(child);
                return st;
            }
        f->pending_key = gq_strdup(child->scalar);
        f->pending_line = child->line;
        gq_ynode_free(child);
        return GQ_OK;
    }
    ynode_append(f->node, f->pending_key, f->pending_line, child);
    f->pending_key = NULL;
    return GQ_OK;
}

#define YMAX_DEPTH 32

gq_status gq_yaml_parse(const char *text, size_t len, const char *fname, gq_ynode **out) {
    GQ_ASSERT(text && out);
    *out = NULL;
    if (!fname) fname = "<config>";
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return gq_errf(GQ_ERR_NOMEM, "%s: cannot initialise the YAML parser", fname);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    ybuild_frame stack[YMAX_DEPTH];
    int depth = 0, docs = 0, done = 0;
    gq_ynode *root = NULL;
    gq_status st = GQ_OK;
    while (!done && st == GQ_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            st = gq_errf(GQ_ERR_ARG, "%s:%d: YAML syntax error: %s%s%s", fname, (int)parser.problem_mark.line + 1,
                         parser.problem ? parser.problem : "unknown", parser.context ? " " : "",
                         parser.context ? parser.context : "");
            break;
        }
        int line = (int)ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT: done = 1; break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) st = gq_errf(GQ_ERR_ARG, "%s:%d: more than one YAML document", fname, line);
            break;
        case YAML_ALIAS_EVENT:
            st = gq_errf(GQ_ERR_ARG, "%s:%d: YAML aliases (*%s) are not supported in run files: write the value out", fname,
                         line, (const char *)ev.data.alias.anchor);
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT: {
            const yaml_char_t *anchor = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.anchor
                                        : ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
                                                                               : ev.data.mapping_start.anchor;
            const yaml_char_t *tag = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.tag
                                     : ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.tag
                                                                            : ev.data.mapping_start.tag;
            if (anchor) {
                st = gq_errf(GQ_ERR_ARG, "%s:%d: YAML anchors (&%s) are not supported in run files", fname, line,
                             (const char *)anchor);
                break;
            }
            if (tag) {
                st = gq_errf(GQ_ERR_ARG, "%s:%d: explicit YAML tags (%s) are not supported in run files", fname, line,
                             (const char *)tag);
                break;
            }
            if (ev.type == YAML_SCALAR_EVENT) {
                gq_ynode *n = ynode_new(GQ_YNODE_SCALAR, fname, line);
                if (memchr(ev.data.scalar.value, 0, ev.data.scalar.length)) {
                    gq_ynode_free(n);
                    st = gq_errf(GQ_ERR_ARG, "%s:%d: NUL byte inside a scalar", fname, line);
                    break;
                }
                n->scalar = gq_malloc(ev.data.scalar.length + 1);
                memcpy(n->scalar, ev.data.scalar.value, ev.data.scalar.length);
                n->scalar[ev.data.scalar.length] = 0;
                n->quoted = ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
                st = ybuild_add(stack, depth, n, &root, fname);
            } else {
                if (depth == YMAX_DEPTH) {
                    st = gq_errf(GQ_ERR_ARG, "%s:%d: nesting deeper than %d levels", fname, line, YMAX_DEPTH);
                    break;
                }
                stack[depth].node = ynode_new(ev.type == YAML_MAPPING_START_EVENT ? GQ_YNODE_MAP : GQ_YNODE_SEQ, fname, line);
                stack[depth].pending_key = NULL;
                depth++;
            }
            break;
        }
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT: {
            GQ_ASSERT(depth > 0); /* libyaml guarantees balanced events */
            depth--;
            GQ_ASSERT(!stack[depth].pending_key);
            st = ybuild_add(stack, depth, stack[depth].node, &root, fname);
            break;
        }
        default: break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (st != GQ_OK) {
        for (int i = depth - 1; i >= 0; i--) {
            free(stack[i].pending_key);
            gq_ynode_free(stack[i].node);
        }
        gq_ynode_free(root);
        return st;
    }
    if (!root) return gq_errf(GQ_ERR_ARG, "%s:1: empty YAML file", fname);
    *out = root;
    return GQ_OK;
}

gq_status gq_yaml_load(const char *path, gq_ynode **out) {
    char *text;
    size_t len;
    GQ_TRY(gq_read_file(path, &text, &len));
    gq_status st = gq_yaml_parse(text, len, path, out);
    free(text);
    return st;
}

/* ================================================================ validation helpers */

static const char *got(const gq_ynode *n) {
    if (n->kind == GQ_YNODE_MAP) return "a mapping";
    if (n->kind == GQ_YNODE_SEQ) return "a list";
    return NULL;
}

static gq_status err_expected(const gq_ynode *n, const char *prefix, const char *key, const char *what) {
    const char *g = got(n);
    if (g) return gq_errf(GQ_ERR_ARG, "%s:%d: %s%s: expected %s, got %s", n->file, n->line, prefix, key, what, g);
    return gq_errf(GQ_ERR_ARG, "%s:%d: %s%s: expected %s, got %s'%s'", n->file, n->line, prefix, key, what,
                   n->quoted ? "the quoted string " : "", n->scalar);
}

static gq_status check_map(const gq_ynode *n, const char *prefix, const char *key) {
    if (n->kind != GQ_YNODE_MAP) return err_expected(n, prefix, key, "a mapping");
    return GQ_OK;
}

/* Every key of map m must be in `allowed` (NULL-terminated). */
static gq_status check_keys(const gq_ynode *m, const char *prefix, const char *const *allowed) {
    for (size_t i = 0; i < m->n; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(m->keys[i], *a)) ok = 1;
        if (!ok) {
            char list[512] = "";
            for (const char *const *a = allowed; *a; a++) {
                if (a != allowed) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, *a, sizeof list - strlen(list) - 1);
            }
            return gq_errf(GQ_ERR_ARG, "%s:%d: %s%s: unknown key (allowed here: %s)", m->file, m->key_lines[i], prefix,
                           m->keys[i], list);
        }
    }
    return GQ_OK;
}

static gq_status get_str(const gq_ynode *m, const char *prefix, const char *key, char *buf, size_t cap) {
    const gq_ynode *n = gq_ynode_get(m, key);
    if (!n) return GQ_OK;
    if (n->kind != GQ_YNODE_SCALAR || (!n->quoted && !n->scalar[0])) return err_expected(n, prefix, key, "a string");
    if (strlen(n->scalar) >= cap)
        return gq_errf(GQ_ERR_ARG, "%s:%d: %s%s: longer than %zu characters", n->file, n->line, prefix, key, cap - 1);
    strcpy(buf, n->scalar);
    return GQ_OK;
}

static gq_status get_int(const gq_ynode *m, const char *prefix, const char *key, long long lo, long long hi, int *out) {
    const gq_ynode *n = gq_ynode_get(m, key);
    if (!n) return GQ_OK;
    long long v;
    if (gq_ynode_int(n, LLONG_MIN, LLONG_MAX, &v)) return err_expected(n, prefix, key, "an integer");
    if (v < lo || v > hi)
        return gq_errf(GQ_ERR_ARG, "%s:%d: %s%s: expected an integer in [%lld, %lld], got %lld", n->file, n->line, prefix,
                       key, lo, hi, v);
    *out = (int)v;
    return GQ_OK;
}

static gq_status get_seed(const gq_ynode *m, const char *prefix, const char *key, uint64_t *out) {
    const gq_ynode *n = gq_ynode_get(m, key);
    if (!n) return GQ_OK;
    long long v;
    if (gq_ynode_int(n, 0, LLONG_MAX, &v)) return err_expected(n, prefix, key, "a non-negative integer");
    *out = (uint64_t)v;
    return GQ_OK;
}

/* lo_open/hi_open: exclusive bounds. */
static gq_status get_double(const gq_ynode *m, const char *prefix, const char *key, double lo, int lo_open, double hi,
                            int hi_open, double *out) {
    const gq_ynode *n = gq_ynode_get(m, key);
    if (!n) return GQ_OK;
    double v;
    if (gq_ynode_double(n, &v)) return err_expected(n, prefix, key, "a number");
    if (v < lo || v > hi || (lo_open && v == lo) || (hi_open && v == hi))
        return gq_errf(GQ_ERR_ARG, "%s:%d: %s%s: expected a number in %c%g, %g%c, got %s", n->file, n->line, prefix, key,
                       lo_open ? '(' : '[', lo, hi, hi_open ? ')' : ']', n->scalar);
    *out = v;
    return GQ_OK;
}

static void names_list(char *buf, size_t cap, const char *const *names, int count) {
    buf[0] = 0;
    for (int i = 0; i < count; i++) {
        if (i) strncat(buf, ", ", cap - strlen(buf) - 1);
        strncat(buf, names[i], cap - strlen(buf) - 1);
    }
}

static gq_status enum_of(const gq_ynode *n, const char *prefix, const char *key, const char *const *names, int count,
                         int *out) {
    char list[256], what[300];
    names_list(list, sizeof list, names, count);
    snprintf(what, sizeof what, "one of %s", list);
    if (n->kind != GQ_YNODE_SCALAR) return err_expected(n, prefix, key, what);
    for (int i = 0; i < count; i++)
        if (!strcmp(n->scalar, names[i])) {
            *out = i;
            return GQ_OK;
        }
    return err_expected(n, prefix, key, what);
}

static gq_status get_enum(const gq_ynode *m, const char *prefix, const char *key, const char *const *names, int count,
                          int *out) {
    const gq_ynode *n = gq_ynode_get(m, key);
    if (!n) return GQ_OK;
    return enum_of(n, prefix, key, names, count, out);
}

/* A list of names -> bitmask; duplicates are errors; `ordered` demands the enum order. */
static gq_status get_enum_list(const gq_ynode *m, const char *prefix, const char *key, const char *const *names,
                               int count, int ordered, unsigned *out) {
    const gq_ynode *n = gq_ynode_get(m, key);
    if (!n) return GQ_OK;
    if (n->kind != GQ_YNODE_SEQ) return err_expected(n, prefix, key, "a list");
    unsigned mask = 0;
    int last = -1;
    for (size_t i = 0; i < n->n; i++) {
        int v;
        GQ_TRY(enum_of(n->items[i], prefix, key, names, count, &v));
        if (mask & (1u << v))
            return gq_errf(GQ_ERR_ARG, "%s:%d: %s%s: '%s' listed twice", n->items[i]->file, n->items[i]->line, prefix, key,
                           names[v]);
        if (ordered && v < last) {
            char list[256];
            names_list(list, sizeof list, names, count);
            return gq_errf(GQ_ERR_ARG, "%s:%d: %s%s: '%s' listed after '%s'; they run in the order %s: list them so",
                           n->items[i]->file, n->items[i]->line, prefix, key, names[v], names[last], list);
        }
        last = v;
        mask |= 1u << v;
    }
    *out = mask;
    return GQ_OK;
}

static gq_status get_section(const gq_ynode *root, const char *key, const char *const *allowed, const gq_ynode **out) {
    *out = gq_ynode_get(root, key);
    if (!*out) return GQ_OK;
    GQ_TRY(check_map(*out, "", key));
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.", key);
    return check_keys(*out, prefix, allowed);
}

/* line of key `key` in map m (or m's own line). */
static int key_line(const gq_ynode *m, const char *key) {
    if (m && m->kind == GQ_YNODE_MAP)
        for (size_t i = 0; i < m->n; i++)
            if (!strcmp(m->keys[i], key)) return m->key_lines[i];
    return m ? m->line : 0;
}

/* ================================================================ gq_runcfg */

static void runcfg_defaults(gq_runcfg *c) {
    memset(c, 0, sizeof *c);
    strcpy(c->store, "results/gqsa.sqlite");
    c->calib.dataset = GQ_DS_WIKITEXT2;
    c->calib.nsamples = 128; /* the usual one-shot budget: 128 x 2048 */
    c->calib.seqlen = 2048;
    c->calib.sequential = 1; /* baselines as their reference implementations run */
    c->method.name = GQ_METHOD_FP;
    c->method.bits = GQ_BITS_NONE;
    c->method.group = 16;
    c->method.scope = GQ_SCOPE_LAYER;
    c->method.damp = 0.01;
    c->method.blocksize = 128;
    c->eval.ppl = 1u << GQ_DS_WIKITEXT2;
    c->eval.seqlen = 2048;
    c->bqpo.lr = 1e-5;
    c->bqpo.epochs = 5;
    c->e2e.lr = 1e-5;
    c->e2e.epochs = 2;
    c->bench.tokens = 128;
}

static const char *const TOP_KEYS[] = {"name", "model", "tokenizer", "data_root", "output", "store", "seed",
                                       "calibration", "method", "stages", "evaluation", "training", "bench", NULL};
static const char *const CALIB_KEYS[] = {"dataset", "nsamples", "seqlen", "seed", "sequential", NULL};
static const char *const BOOL_NAMES[] = {"false", "true"};
static const char *const METHOD_KEYS[] = {"name", "sparsity", "bits", "group", "scope", "damp", "pattern", "blocksize", NULL};
static const char *const EVAL_KEYS[] = {"ppl", "seqlen", "limit", "zeroshot", "zeroshot_limit", NULL};
static const char *const TRAIN_KEYS[] = {"bqpo", "e2e_oqp", "mixed", NULL};
static const char *const OPT_KEYS[] = {"lr", "epochs", NULL};
static const char *const BENCH_KEYS[] = {"tokens", NULL};

#define MAX_TOKENS_PER_WINDOW (1 << 20)

static gq_status runcfg_method(const gq_ynode *meth, gq_runcfg *c) {
    const char *P = "method.";
    int v = c->method.name;
    GQ_TRY(get_enum(meth, P, "name", METHOD_NAMES, GQ_METHOD_COUNT, &v));
    c->method.name = (gq_method_id)v;
    int sparsity_given = gq_ynode_get(meth, "sparsity") != NULL;
    GQ_TRY(get_double(meth, P, "sparsity", 0.0, 0, 0.99, 0, &c->method.sparsity));
    const gq_ynode *b = gq_ynode_get(meth, "bits");
    if (b) {
        long long bv;
        if (gq_ynode_int(b, LLONG_MIN, LLONG_MAX, &bv) || (bv != 2 && bv != 3 && bv != 4 && bv != 8 && bv != 16))
            return gq_errf(GQ_ERR_ARG, "%s:%d: method.bits: expected one of 2,3,4,8 (or 16 = not quantized), got %s%s",
                           b->file, b->line, b->kind == GQ_YNODE_SCALAR ? b->scalar : got(b),
                           b->kind == GQ_YNODE_SCALAR && b->quoted ? " (quoted)" : "");
        c->method.bits = (int)bv;
    }
    GQ_TRY(get_int(meth, P, "group", 1, 65536, &c->method.group));
    v = c->method.scope;
    GQ_TRY(get_enum(meth, P, "scope", SCOPE_NAMES, 2, &v));
    c->method.scope = (gq_prune_scope)v;
    GQ_TRY(get_double(meth, P, "damp", 0.0, 1, 10.0, 0, &c->method.damp));
    GQ_TRY(get_int(meth, P, "blocksize", 1, 65536, &c->method.blocksize));
    const gq_ynode *pat = gq_ynode_get(meth, "pattern");
    if (pat) {
        int n_, m_;
        char tail;
        if (pat->kind != GQ_YNODE_SCALAR)
            return err_expected(pat, P, "pattern", "'unstructured' or N:M such as 2:4");
        if (!strcmp(pat->scalar, "unstructured")) {
            c->method.nm_n = c->method.nm_m = 0;
        } else if (sscanf(pat->scalar, "%d:%d%c", &n_, &m_, &tail) == 2 && n_ >= 1 && m_ >= 2 && n_ < m_ && m_ <= 64) {
            c->method.nm_n = n_;
            c->method.nm_m = m_;
            double implied = 1.0 - (double)n_ / m_;
            if (sparsity_given && fabs(c->method.sparsity - implied) > 1e-12)
                return gq_errf(GQ_ERR_ARG, "%s:%d: method.sparsity: %g contradicts method.pattern %s (which means %g)",
                               pat->file, key_line(meth, "sparsity"), c->method.sparsity, pat->scalar, implied);
            c->method.sparsity = implied;
        } else {
            return err_expected(pat, P, "pattern", "'unstructured' or N:M such as 2:4 (N < M <= 64)");
        }
    }
    return GQ_OK;
}

/* Combinations that cannot mean what the user wants. Errors point at the method / stages lines. */
static gq_status runcfg_consistency(const gq_ynode *root, const gq_runcfg *c) {
    const gq_ynode *meth = gq_ynode_get(root, "method");
    const char *file = root->file;
    int mline = meth ? key_line(meth, "name") : root->line;
    int sline = key_line(root, "stages");
    const char *mn = gq_method_name(c->method.name);
    unsigned compress = (1u << GQ_STAGE_CALIBRATE) | (1u << GQ_STAGE_SALIENCY) | (1u << GQ_STAGE_PRUNE) |
                        (1u << GQ_STAGE_QUANTIZE) | (1u << GQ_STAGE_BQPO) | (1u << GQ_STAGE_E2E_OQP);
    if (c->method.name == GQ_METHOD_FP) {
        if (c->stages & compress)
            return gq_errf(GQ_ERR_ARG, "%s:%d: stages: method fp (the uncompressed model) runs only evaluate and bench", file,
                           sline);
        if (c->method.sparsity != 0 || c->method.bits != GQ_BITS_NONE)
            return gq_errf(GQ_ERR_ARG, "%s:%d: method.name: fp takes no sparsity or bits (got sparsity %g, bits %d)", file,
                           mline, c->method.sparsity, c->method.bits);
        return GQ_OK;
    }
    int prune = gq_runcfg_has_stage(c, GQ_STAGE_PRUNE), quant = gq_runcfg_has_stage(c, GQ_STAGE_QUANTIZE);
    int sline_s = meth ? key_line(meth, "sparsity") : root->line, sline_b = meth ? key_line(meth, "bits") : root->line;
    if (c->method.name == GQ_METHOD_GQSA) {
        /* GQSA is staged: prune applies the sparsity, quantize the bit width, each on its own. */
        if (prune && c->method.sparsity == 0)
            return gq_errf(GQ_ERR_ARG, "%s:%d: method.sparsity: stages include prune but sparsity is 0", file, sline_s);
        if (!prune && c->method.sparsity > 0)
            return gq_errf(GQ_ERR_ARG, "%s:%d: stages: method.sparsity is %g but prune is not listed", file, sline,
                           c->method.sparsity);
        if (quant && c->method.bits == GQ_BITS_NONE)
            return gq_errf(GQ_ERR_ARG, "%s:%d: method.bits: stages include quantize but bits is 16 (not quantized)", file,
                           sline_b);
        if (!quant && c->method.bits != GQ_BITS_NONE)
            return gq_errf(GQ_ERR_ARG, "%s:%d: stages: method.bits is %d but quantize is not listed", file, sline,
                           c->method.bits);
    } else {
        /* A baseline is one call of its compression routine (joint pruning + quantization for
         * sparsegpt W4 2:4), so exactly one stage carries it: quantize when it quantizes, else prune. */
        int prunes = c->method.name != GQ_METHOD_RTN && c->method.name != GQ_METHOD_GPTQ;
        if (!prunes && c->method.sparsity > 0)
            return gq_errf(GQ_ERR_ARG, "%s:%d: method.sparsity: %s does not prune (use sparsegpt, wanda or magnitude)",
                           file, sline_s, mn);
        if (prunes && c->method.sparsity == 0)
            return gq_errf(GQ_ERR_ARG, "%s:%d: method.sparsity: %s prunes: give a sparsity > 0 or a pattern", file,
                           sline_s, mn);
        if (!prunes && c->method.bits == GQ_BITS_NONE)
            return gq_errf(GQ_ERR_ARG, "%s:%d: method.bits: %s quantizes: give bits 2, 3, 4 or 8", file, sline_b, mn);
        if (c->method.bits != GQ_BITS_NONE && (!quant || prune))
            return gq_errf(GQ_ERR_ARG, "%s:%d: stages: %s with bits runs as one quantize stage (prune not listed)", file,
                           sline, mn);
        if (c->method.bits == GQ_BITS_NONE && (!prune || quant))
            return gq_errf(GQ_ERR_ARG, "%s:%d: stages: %s without bits runs as one prune stage (quantize not listed)", file,
                           sline, mn);
    }
    if (!prune && !quant)
        return gq_errf(GQ_ERR_ARG, "%s:%d: stages: method %s needs prune and/or quantize (use method fp for the uncompressed model)",
                       file, sline, mn);
    /* training fine-tunes the group-quantized model on the calibration windows (stage_train.c) */
    for (int t = GQ_STAGE_BQPO; t <= GQ_STAGE_E2E_OQP; t++) {
        if (!gq_runcfg_has_stage(c, t)) continue;
        if (!quant)
            return gq_errf(GQ_ERR_ARG, "%s:%d: stages: %s trains the quantized model: list quantize (with method.bits)", file,
                           sline, STAGE_NAMES[t]);
        if (!gq_runcfg_has_stage(c, GQ_STAGE_CALIBRATE))
            return gq_errf(GQ_ERR_ARG, "%s:%d: stages: %s trains on the calibration windows: list calibrate", file, sline,
                           STAGE_NAMES[t]);
    }
    if (c->method.name == GQ_METHOD_GQSA) {
        if (gq_runcfg_has_stage(c, GQ_STAGE_SALIENCY) && !gq_runcfg_has_stage(c, GQ_STAGE_CALIBRATE))
            return gq_errf(GQ_ERR_ARG, "%s:%d: stages: saliency needs calibrate (it reads the Hessians)", file, sline);
        if (prune && !gq_runcfg_has_stage(c, GQ_STAGE_SALIENCY))
            return gq_errf(GQ_ERR_ARG, "%s:%d: stages: gqsa's prune ranks groups by saliency: list saliency", file, sline);
    } else if (gq_runcfg_has_stage(c, GQ_STAGE_SALIENCY)) {
        return gq_errf(GQ_ERR_ARG, "%s:%d: stages: saliency is GQSA's criterion; method %s computes its own", file, sline, mn);
    }
    if ((c->method.name == GQ_METHOD_GPTQ || c->method.name == GQ_METHOD_SPARSEGPT || c->method.name == GQ_METHOD_WANDA) &&
        !gq_runcfg_has_stage(c, GQ_STAGE_CALIBRATE))
        return gq_errf(GQ_ERR_ARG, "%s:%d: stages: method %s needs calibrate", file, sline, mn);
    if (c->method.nm_m && c->method.name != GQ_METHOD_SPARSEGPT && c->method.name != GQ_METHOD_WANDA &&
        c->method.name != GQ_METHOD_MAGNITUDE)
        return gq_errf(GQ_ERR_ARG, "%s:%d: method.pattern: N:M patterns apply to sparsegpt, wanda and magnitude, not %s", file,
                       meth ? key_line(meth, "pattern") : root->line, mn);
    if (c->method.name == GQ_METHOD_GPTQ && prune)
        return gq_errf(GQ_ERR_ARG, "%s:%d: stages: gptq only quantizes; use sparsegpt for pruning", file, sline);
    return GQ_OK;
}

static void base_name(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, cap, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot && dot != out) *dot = 0;
}

gq_status gq_runcfg_from_tree(const gq_ynode *root, gq_runcfg *c) {
    GQ_ASSERT(root && c);
    runcfg_defaults(c);
    snprintf(c->source, sizeof c->source, "%s", root->file);
    if (root->kind != GQ_YNODE_MAP) return gq_errf(GQ_ERR_ARG, "%s:%d: expected a mapping of settings at the top", root->file, root->line);
    GQ_TRY(check_keys(root, "", TOP_KEYS));

    GQ_TRY(get_str(root, "", "name", c->name, sizeof c->name));
    if (!c->name[0]) base_name(root->file, c->name, sizeof c->name);
    if (!gq_ynode_get(root, "model"))
        return gq_errf(GQ_ERR_ARG, "%s:%d: model: required (a registry name such as stories260K, or a path)", root->file,
                       root->line);
    GQ_TRY(get_str(root, "", "model", c->model, sizeof c->model));
    GQ_TRY(get_str(root, "", "tokenizer", c->tokenizer, sizeof c->tokenizer));
    GQ_TRY(get_str(root, "", "data_root", c->data_root, sizeof c->data_root));
    GQ_TRY(get_str(root, "", "output", c->output, sizeof c->output));
    if (!c->output[0]) snprintf(c->output, sizeof c->output, "results/%.1000s", c->name);
    GQ_TRY(get_str(root, "", "store", c->store, sizeof c->store));
    GQ_TRY(get_seed(root, "", "seed", &c->seed));

    const gq_ynode *sec;
    GQ_TRY(get_section(root, "calibration", CALIB_KEYS, &sec));
    if (sec) {
        int v = c->calib.dataset;
        GQ_TRY(get_enum(sec, "calibration.", "dataset", DS_NAMES, GQ_DS_COUNT, &v));
        c->calib.dataset = (gq_dataset_id)v;
        GQ_TRY(get_int(sec, "calibration.", "nsamples", 1, 1000000, &c->calib.nsamples));
        GQ_TRY(get_int(sec, "calibration.", "seqlen", 2, MAX_TOKENS_PER_WINDOW, &c->calib.seqlen));
        GQ_TRY(get_seed(sec, "calibration.", "seed", &c->calib.seed));
        GQ_TRY(get_enum(sec, "calibration.", "sequential", BOOL_NAMES, 2, &c->calib.sequential));
    }
    GQ_TRY(get_section(root, "method", METHOD_KEYS, &sec));
    if (sec) GQ_TRY(runcfg_method(sec, c));

    if (!gq_ynode_get(root, "stages"))
        return gq_errf(GQ_ERR_ARG, "%s:%d: stages: required (a list, in order, from: calibrate, saliency, prune, quantize, "
                       "bqpo, e2e_oqp, evaluate, bench)", root->file, root->line);
    GQ_TRY(get_enum_list(root, "", "stages", STAGE_NAMES, GQ_STAGE_COUNT, 1, &c->stages));
    if (!c->stages)
        return gq_errf(GQ_ERR_ARG, "%s:%d: stages: the list is empty", root->file, key_line(root, "stages"));

    GQ_TRY(get_section(root, "evaluation", EVAL_KEYS, &sec));
    if (sec) {
        GQ_TRY(get_enum_list(sec, "evaluation.", "ppl", DS_NAMES, GQ_DS_COUNT, 0, &c->eval.ppl));
        GQ_TRY(get_int(sec, "evaluation.", "seqlen", 2, MAX_TOKENS_PER_WINDOW, &c->eval.seqlen));
        GQ_TRY(get_int(sec, "evaluation.", "limit", 0, 100000000, &c->eval.limit));
        GQ_TRY(get_enum_list(sec, "evaluation.", "zeroshot", ZS_NAMES, GQ_ZS_N_TASKS, 0, &c->eval.zeroshot));
        GQ_TRY(get_int(sec, "evaluation.", "zeroshot_limit", 0, 100000000, &c->eval.zeroshot_limit));
    }
    if (gq_runcfg_has_stage(c, GQ_STAGE_EVALUATE) && !c->eval.ppl && !c->eval.zeroshot)
        return gq_errf(GQ_ERR_ARG, "%s:%d: evaluation: stages include evaluate but neither ppl nor zeroshot lists anything",
                       root->file, sec ? key_line(root, "evaluation") : root->line);

    GQ_TRY(get_section(root, "training", TRAIN_KEYS, &sec));
    if (sec) {
        const char *names[2] = {"bqpo", "e2e_oqp"};
        for (int i = 0; i < 2; i++) {
            const gq_ynode *t = gq_ynode_get(sec, names[i]);
            if (!t) continue;
            char prefix[64];
            snprintf(prefix, sizeof prefix, "training.%s.", names[i]);
            if (t->kind != GQ_YNODE_MAP) return err_expected(t, "training.", names[i], "a mapping");
            GQ_TRY(check_keys(t, prefix, OPT_KEYS));
            double *lr = i ? &c->e2e.lr : &c->bqpo.lr;
            int *ep = i ? &c->e2e.epochs : &c->bqpo.epochs;
            GQ_TRY(get_double(t, prefix, "lr", 0.0, 1, 1.0, 0, lr));
            GQ_TRY(get_int(t, prefix, "epochs", 1, 1000, ep));
        }
        GQ_TRY(get_enum(sec, "training.", "mixed", BOOL_NAMES, 2, &c->train_mixed));
    }
    GQ_TRY(get_section(root, "bench", BENCH_KEYS, &sec));
    if (sec) GQ_TRY(get_int(sec, "bench.", "tokens", 1, 1000000, &c->bench.tokens));

    return runcfg_consistency(root, c);
}

gq_status gq_runcfg_parse(const char *text, size_t len, const char *fname, gq_runcfg *out) {
    gq_ynode *root;
    GQ_TRY(gq_yaml_parse(text, len, fname, &root));
    gq_status st = gq_runcfg_from_tree(root, out);
    gq_ynode_free(root);
    return st;
}

gq_status gq_runcfg_load(const char *path, gq_runcfg *out) {
    gq_ynode *root;
    GQ_TRY(gq_yaml_load(path, &root));
    gq_status st = gq_runcfg_from_tree(root, out);
    gq_ynode_free(root);
    return st;
}

/* ================================================================ canonical form, hash, YAML out */

typedef struct { char *s; size_t len, cap; } sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        GQ_ASSERT(n >= 0);
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->s = gq_realloc(b->s, b->cap);
    }
}

static void sb_mask(sbuf *b, unsigned mask, const char *const *names, int count) {
    int first = 1;
    for (int i = 0; i < count; i++)
        if (mask & (1u << i)) {
            sb_printf(b, "%s%s", first ? "" : ",", names[i]);
            first = 0;
        }
}

char *gq_runcfg_canonical(const gq_runcfg *c) {
    sbuf b = {0};
    /* Bump the version when the meaning of a field changes, so old hashes cannot match new runs. */
    sb_printf(&b, "gqsa-runcfg-v1\n");
    /* length-prefixed strings: no value can forge a line break */
    sb_printf(&b, "model=%zu:%s\ntokenizer=%zu:%s\nseed=%llu\n", strlen(c->model), c->model, strlen(c->tokenizer),
              c->tokenizer, (unsigned long long)c->seed);
    sb_printf(&b, "stages=");
    sb_mask(&b, c->stages, STAGE_NAMES, GQ_STAGE_COUNT);
    sb_printf(&b, "\nmethod.name=%s\nmethod.sparsity=%.17g\nmethod.bits=%d\nmethod.group=%d\nmethod.scope=%s\n"
                  "method.damp=%.17g\nmethod.pattern=%d:%d\nmethod.blocksize=%d\n",
              METHOD_NAMES[c->method.name], c->method.sparsity, c->method.bits, c->method.group,
              SCOPE_NAMES[c->method.scope], c->method.damp, c->method.nm_n, c->method.nm_m, c->method.blocksize);
    /* Sections of stages that are not listed cannot change a number: leave them out. */
    if (gq_runcfg_has_stage(c, GQ_STAGE_CALIBRATE))
        sb_printf(&b, "calibration.dataset=%s\ncalibration.nsamples=%d\ncalibration.seqlen=%d\ncalibration.seed=%llu\n"
                      "calibration.sequential=%d\n",
                  DS_NAMES[c->calib.dataset], c->calib.nsamples, c->calib.seqlen, (unsigned long long)c->calib.seed,
                  c->calib.sequential);
    if (gq_runcfg_has_stage(c, GQ_STAGE_EVALUATE)) {
        sb_printf(&b, "evaluation.ppl=");
        sb_mask(&b, c->eval.ppl, DS_NAMES, GQ_DS_COUNT);
        sb_printf(&b, "\nevaluation.seqlen=%d\nevaluation.limit=%d\nevaluation.zeroshot=", c->eval.seqlen, c->eval.limit);
        sb_mask(&b, c->eval.zeroshot, ZS_NAMES, GQ_ZS_N_TASKS);
        sb_printf(&b, "\nevaluation.zeroshot_limit=%d\n", c->eval.zeroshot_limit);
    }
    if (gq_runcfg_has_stage(c, GQ_STAGE_BQPO))
        sb_printf(&b, "training.bqpo.lr=%.17g\ntraining.bqpo.epochs=%d\n", c->bqpo.lr, c->bqpo.epochs);
    if (gq_runcfg_has_stage(c, GQ_STAGE_E2E_OQP))
        sb_printf(&b, "training.e2e_oqp.lr=%.17g\ntraining.e2e_oqp.epochs=%d\n", c->e2e.lr, c->e2e.epochs);
    /* only when set, so that every config written before the key existed keeps its hash */
    if (c->train_mixed && (gq_runcfg_has_stage(c, GQ_STAGE_BQPO) || gq_runcfg_has_stage(c, GQ_STAGE_E2E_OQP)))
        sb_printf(&b, "training.mixed=1\n");
    if (gq_runcfg_has_stage(c, GQ_STAGE_BENCH)) sb_printf(&b, "bench.tokens=%d\n", c->bench.tokens);
    return b.s;
}

void gq_runcfg_hash(const gq_runcfg *c, char out_hex[65]) {
    char *s = gq_runcfg_canonical(c);
    gq_sha256_hex(s, strlen(s), out_hex);
    free(s);
}

static void sb_quoted(sbuf *b, const char *s) {
    sb_printf(b, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') sb_printf(b, "\\%c", ch);
        else if (ch < 0x20) sb_printf(b, "\\x%02x", ch);
        else sb_printf(b, "%c", ch);
    }
    sb_printf(b, "\"");
}

static void sb_list(sbuf *b, unsigned mask, const char *const *names, int count) {
    sb_printf(b, "[");
    sb_mask(b, mask, names, count);
    sb_printf(b, "]");
}

char *gq_runcfg_to_yaml(const gq_runcfg *c) {
    sbuf b = {0};
    sb_printf(&b, "name: ");
    sb_quoted(&b, c->name);
    sb_printf(&b, "\nmodel: ");
    sb_quoted(&b, c->model);
    if (c->tokenizer[0]) {
        sb_printf(&b, "\ntokenizer: ");
        sb_quoted(&b, c->tokenizer);
    }
    if (c->data_root[0]) {
        sb_printf(&b, "\ndata_root: ");
        sb_quoted(&b, c->data_root);
    }
    sb_printf(&b, "\noutput: ");
    sb_quoted(&b, c->output);
    sb_printf(&b, "\nstore: ");
    sb_quoted(&b, c->store);
    sb_printf(&b, "\nseed: %llu\n", (unsigned long long)c->seed);
    sb_printf(&b, "calibration:\n  dataset: %s\n  nsamples: %d\n  seqlen: %d\n  seed: %llu\n  sequential: %s\n",
              DS_NAMES[c->calib.dataset], c->calib.nsamples, c->calib.seqlen, (unsigned long long)c->calib.seed,
              BOOL_NAMES[c->calib.sequential != 0]);
    sb_printf(&b, "method:\n  name: %s\n  sparsity: %.17g\n  bits: %d\n  group: %d\n  scope: %s\n  damp: %.17g\n",
              METHOD_NAMES[c->method.name], c->method.sparsity, c->method.bits, c->method.group, SCOPE_NAMES[c->method.scope],
              c->method.damp);
    if (c->method.nm_m) sb_printf(&b, "  pattern: \"%d:%d\"\n", c->method.nm_n, c->method.nm_m);
    sb_printf(&b, "  blocksize: %d\nstages: ", c->method.blocksize);
    sb_list(&b, c->stages, STAGE_NAMES, GQ_STAGE_COUNT);
    sb_printf(&b, "\nevaluation:\n  ppl: ");
    sb_list(&b, c->eval.ppl, DS_NAMES, GQ_DS_COUNT);
    sb_printf(&b, "\n  seqlen: %d\n  limit: %d\n  zeroshot: ", c->eval.seqlen, c->eval.limit);
    sb_list(&b, c->eval.zeroshot, ZS_NAMES, GQ_ZS_N_TASKS);
    sb_printf(&b, "\n  zeroshot_limit: %d\n", c->eval.zeroshot_limit);
    sb_printf(&b, "training:\n  bqpo: {lr: %.17g, epochs: %d}\n  e2e_oqp: {lr: %.17g, epochs: %d}\n", c->bqpo.lr,
              c->bqpo.epochs, c->e2e.lr, c->e2e.epochs);
    if (c->train_mixed) sb_printf(&b, "  mixed: true\n");
    sb_printf(&b, "bench:\n  tokens: %d\n", c->bench.tokens);
    return b.s;
}
