/* config.h — the YAML run file of `gqsa run` / `gqsa sweep`: parse (libyaml), validate, resolve
 * defaults, serialise canonically and hash.
 *
 * Two layers:
 *   gq_ynode   a small generic YAML tree whose every node remembers FILE:LINE; sweeps graft override
 *              values into it (gq_ynode_set) before validation, so an error in a sweep axis names the
 *              sweep file's line, not the base file's.
 *   gq_runcfg  the validated, fully resolved run description. Unknown keys, wrong types, out-of-range
 *              values and inconsistent combinations are errors "FILE:LINE: key.path: expected ..., got ...".
 * The config hash is sha256 of gq_runcfg_canonical(): a fixed-order "key=value" list of everything that
 * can change a number (model, calibration, method, stages, evaluation, training, bench, seed). Names,
 * output/store paths and the data root are locations, not inputs, and are left out, so moving a run
 * does not change its identity. Comments and key order never matter.
 * Must not: open models, datasets or the store; print anything.
 */
#ifndef GQ_CONFIG_H
#define GQ_CONFIG_H

#include "../datasets/zeroshot.h" /* gq_zs_task_id */
#include "prune.h" /* gq_prune_scope */
#include "util.h"

/* ---------------------------------------------------------------- generic YAML tree */

typedef enum { GQ_YNODE_SCALAR = 0, GQ_YNODE_SEQ, GQ_YNODE_MAP } gq_ynode_kind;

typedef struct gq_ynode {
    gq_ynode_kind kind;
    char *file;              /* the file it came from (owned copy) */
    int line;                /* 1-based */
    char *scalar;            /* SCALAR: the text (owned) */
    int quoted;              /* SCALAR: written with quotes, so a string even if it looks like a number */
    size_t n;                /* SEQ/MAP: number of items */
    char **keys;             /* MAP: [n] keys (owned) */
    int *key_lines;          /* MAP: [n] line of each key */
    struct gq_ynode **items; /* SEQ/MAP: [n] children (owned) */
} gq_ynode;

/* Parse YAML text (one document). `fname` is used in messages. Anchors/aliases and multi-document
 * streams are rejected; duplicate keys are errors. On error *out is NULL. Caller frees with gq_ynode_free. */
gq_status gq_yaml_parse(const char *text, size_t len, const char *fname, gq_ynode **out);
gq_status gq_yaml_load(const char *path, gq_ynode **out);
void gq_ynode_free(gq_ynode *n);
gq_ynode *gq_ynode_clone(const gq_ynode *n);
/* MAP lookup; NULL if absent or n is not a map. */
const gq_ynode *gq_ynode_get(const gq_ynode *n, const char *key);
/* Set dotted path `path` ("method.sparsity") in map `root` to a deep copy of `value`, creating
 * intermediate maps. GQ_ERR_ARG if a path component exists and is not a map. */
gq_status gq_ynode_set(gq_ynode *root, const char *path, const gq_ynode *value);
/* Strict scalar conversions: the whole text must be the number ("4", "-1", "1e-5"); quoted scalars are
 * not numbers. Return 0 on success, -1 otherwise (no message: the caller names the key). */
int gq_ynode_int(const gq_ynode *n, long long lo, long long hi, long long *out);
int gq_ynode_double(const gq_ynode *n, double *out);

/* ---------------------------------------------------------------- stages, methods, datasets */

/* Pipeline stages in the only order they may run (DESIGN.md "Data flow"). On-disk names are stable. */
typedef enum {
    GQ_STAGE_CALIBRATE = 0,
    GQ_STAGE_SALIENCY,
    GQ_STAGE_PRUNE,
    GQ_STAGE_QUANTIZE,
    GQ_STAGE_BQPO,
    GQ_STAGE_E2E_OQP,
    GQ_STAGE_EVALUATE,
    GQ_STAGE_BENCH,
    GQ_STAGE_COUNT
} gq_stage_id;
const char *gq_stage_name(gq_stage_id s);
int gq_stage_from_name(const char *name); /* -1 if unknown */

/* fp = the uncompressed model (the FP row of every table). */
typedef enum {
    GQ_METHOD_FP = 0,
    GQ_METHOD_GQSA,
    GQ_METHOD_RTN,
    GQ_METHOD_GPTQ,
    GQ_METHOD_SPARSEGPT,
    GQ_METHOD_WANDA,
    GQ_METHOD_MAGNITUDE,
    GQ_METHOD_COUNT
} gq_method_id;
const char *gq_method_name(gq_method_id m);

typedef enum { GQ_DS_WIKITEXT2 = 0, GQ_DS_C4, GQ_DS_COUNT } gq_dataset_id;
const char *gq_dataset_name(gq_dataset_id d);

/* Zero-shot tasks: gq_zs_task_id and its names come from datasets/zeroshot.h. */

/* bits == GQ_BITS_NONE: weights stay full precision (sparsity-only rows of the ablation). */
#define GQ_BITS_NONE 16

/* ---------------------------------------------------------------- the run config */

typedef struct {
    char source[1024];    /* the file it was read from (messages only) */
    char name[128];       /* label for reports; default: the file's base name */
    char model[1024];     /* registry name ("stories260K") or path */
    char tokenizer[1024]; /* optional tokenizer path ("" = from/beside the model) */
    char data_root[1024]; /* "" = gq_data_root() */
    char output[1024];    /* checkpoint folder; default results/<name> */
    char store[1024];     /* SQLite store; default results/gqsa.sqlite */
    uint64_t seed;        /* global seed (training order, anything random not covered below) */
    struct {
        gq_dataset_id dataset; /* where calibration windows come from (validation splits) */
        int nsamples;          /* windows */
        int seqlen;            /* tokens per window */
        uint64_t seed;         /* window sampling */
        int sequential;        /* baselines: 1 = GPTQ-style sequential calibration (block i sees blocks < i
                                  compressed, one calibration pass per run); 0 = use the calibrate stage's
                                  full-precision Hessians, shared by every run of a sweep (GQSA always does) */
    } calib;
    struct {
        gq_method_id name;
        double sparsity;       /* fraction of groups (or weights, for unstructured baselines) removed, [0, 0.99] */
        int bits;              /* 2, 3, 4, 8, or GQ_BITS_NONE */
        int group;             /* G: weights per group along the input dimension */
        gq_prune_scope scope;
        double damp;           /* lambda of H + lambda*mean(diag H)*I */
        int nm_n, nm_m;        /* N:M structured sparsity (2:4) for sparsegpt/wanda/magnitude; 0:0 = unstructured */
        int blocksize;         /* GPTQ/SparseGPT column block */
    } method;
    unsigned stages;           /* bit (1u << gq_stage_id) per listed stage */
    struct {
        unsigned ppl;          /* bit per gq_dataset_id */
        int seqlen;            /* perplexity window */
        int limit;             /* max windows per dataset, 0 = all (the paper's protocol) */
        unsigned zeroshot;     /* bit per gq_zs_task_id */
        int zeroshot_limit;    /* max items per task, 0 = all */
    } eval;
    struct { double lr; int epochs; } bqpo, e2e;
    int train_mixed;           /* training.mixed: 1 = bf16 matmuls when the training stages run on the GPU
                                  (`--device cuda`); ignored on the CPU; default 0 (fp32) */
    struct { int tokens; } bench; /* decode tokens for the CPU tokens/s figure */
} gq_runcfg;

/* Validate a YAML tree into *out (defaults filled in). Errors: GQ_ERR_ARG "FILE:LINE: key: ...". */
gq_status gq_runcfg_from_tree(const gq_ynode *root, gq_runcfg *out);
/* gq_yaml_load + gq_runcfg_from_tree. Default name = file base name without extension. */
gq_status gq_runcfg_load(const char *path, gq_runcfg *out);
gq_status gq_runcfg_parse(const char *text, size_t len, const char *fname, gq_runcfg *out);

static inline int gq_runcfg_has_stage(const gq_runcfg *c, gq_stage_id s) { return (c->stages >> s) & 1u; }

/* Canonical serialisation (see top of file). Returns a malloc'd string; caller frees. */
char *gq_runcfg_canonical(const gq_runcfg *c);
/* hex sha256 of the canonical form. */
void gq_runcfg_hash(const gq_runcfg *c, char out_hex[65]);
/* The resolved config as YAML that gq_runcfg_parse reads back to an equal config (same hash, same
 * name/output/store). Malloc'd; caller frees. */
char *gq_runcfg_to_yaml(const gq_runcfg *c);

#endif
