/* model.h — the one in-memory description of a LLaMA-family model, whatever file it came from.
 *
 * Dimension letters used in shape comments across gqsa:
 *   V vocab, D model dim, H FFN hidden dim, L layers, NH query heads, NKV kv heads, HD head dim,
 *   T tokens in a window, N output features (rows) and K input features (cols) of a linear layer.
 * All weights are dense fp32 in memory (quantized files are dequantized on load); compressed models
 * keep their dense, dequantized weights here and the GQS arrays beside them (gqs.h).
 * How to add a model family: add a gq_arch value, teach the loaders to fill gq_config from the file
 * (model_<format>.c), and teach forward.c the differences (norm type, biases, positional scheme).
 * Must not: know about files, tokenizers' internals or compression.
 */
#ifndef GQ_MODEL_H
#define GQ_MODEL_H

#include "util.h"

typedef enum { GQ_ARCH_LLAMA = 0, GQ_ARCH_QWEN2 = 1, GQ_ARCH_OPT = 2 } gq_arch;

/* RoPE pairing. INTERLEAVED rotates (x[2i], x[2i+1]) (Meta's LLaMA, llama2.c, GGUF "llama", whose
 * converter permutes the q/k rows); HALF rotates (x[i], x[i+HD/2]) (Hugging Face rotate_half). */
typedef enum { GQ_ROPE_INTERLEAVED = 0, GQ_ROPE_HALF = 1 } gq_rope_style;

typedef struct {
    gq_arch arch;
    int dim;          /* D */
    int hidden_dim;   /* H */
    int n_layers;     /* L */
    int n_heads;      /* NH */
    int n_kv_heads;   /* NKV; NH % NKV == 0 */
    int head_dim;     /* HD; usually D / NH */
    int vocab_size;   /* V */
    int max_seq_len;  /* longest context the model supports */
    float norm_eps;
    float rope_theta;
    gq_rope_style rope_style;
    int tied_embeddings; /* lm_head shares tok_emb */
    int qkv_bias;        /* Qwen2: q/k/v have biases */
    int bos_id, eos_id;  /* -1 if none */
    int add_bos;         /* whether the model's tokenizer config prepends BOS */
    /* OPT-only fields (read from config.json; forward pass not implemented yet) */
    int opt_ffn_dim, opt_do_layer_norm_before, opt_word_embed_proj_dim;
    char name[128];
} gq_config;

/* The seven linear layers of a LLaMA block, in Hugging Face naming order. */
typedef enum {
    GQ_LIN_Q = 0, GQ_LIN_K, GQ_LIN_V, GQ_LIN_O, GQ_LIN_GATE, GQ_LIN_UP, GQ_LIN_DOWN, GQ_LIN_COUNT
} gq_linear_kind;

/* "q_proj", "k_proj", ... "down_proj" */
const char *gq_linear_name(gq_linear_kind k);
/* Layers sharing an input share a Hessian: q,k,v -> q; gate,up -> gate; others themselves. */
gq_linear_kind gq_linear_input_group(gq_linear_kind k);

typedef struct {
    int out, in;   /* N, K */
    float *w;      /* [N, K] row-major */
    float *bias;   /* [N] or NULL */
} gq_linear;

typedef struct {
    float *attn_norm;            /* [D] */
    float *ffn_norm;             /* [D] */
    gq_linear lin[GQ_LIN_COUNT]; /* shapes: q [NH*HD, D], k/v [NKV*HD, D], o [D, NH*HD],
                                    gate/up [H, D], down [D, H] */
} gq_block;

typedef struct gq_tokenizer gq_tokenizer;

typedef struct gq_model {
    gq_config cfg;
    float *tok_emb;    /* [V, D] */
    float *final_norm; /* [D] */
    float *lm_head;    /* [V, D]; == tok_emb when cfg.tied_embeddings (not separately owned) */
    gq_block *blocks;  /* [L] */
    gq_tokenizer *tok; /* owned; from the file (GGUF) or attached by the loader; may be NULL */
    char source[1024]; /* the path it was loaded from */
    char format[16];   /* "gguf", "llama2c", "safetensors", "h5" */
} gq_model;

/* Validate a config (positive sizes, divisibility); GQ_ERR_FORMAT with a message naming `what`. */
gq_status gq_config_validate(const gq_config *c, const char *what);

/* Allocate a model with every tensor zero-filled for `c` (which must validate). Never NULL. */
gq_model *gq_model_alloc(const gq_config *c);
/* Deep copy (weights and config; the tokenizer is not copied: the clone's tok is NULL). */
gq_model *gq_model_clone(const gq_model *m);
void gq_model_free(gq_model *m);

/* Load a model. `path` may be: a .gguf file; a llama2.c .bin (its tokenizer is looked for as
 * tokenizer.bin / tok<V>.bin beside it unless `tokenizer_path` is given); a directory or a
 * .safetensors file with config.json beside it (tokenizer.json / tokenizer.model beside it);
 * or a short name from the model registry ("stories260K", "smollm2-135m"), resolved through the
 * data root and the models/ folder. On error *out is NULL and the message names the file. */
gq_status gq_model_load(const char *path, const char *tokenizer_path, gq_model **out);

/* Resolve a registry name to a path (writes into buf). Returns GQ_ERR_ARG if unknown. */
gq_status gq_model_resolve(const char *name, char *buf, size_t cap);

/* Count parameters (embedding counted once when tied). */
size_t gq_model_n_params(const gq_model *m);

/* Scan every tensor for NaN/Inf; GQ_ERR_NUMERIC naming the first bad tensor. */
gq_status gq_model_check_finite(const gq_model *m);

/* Print the config, every tensor's shape and the parameter count (human-readable, for `inspect`
 * and logs). */
void gq_model_describe(const gq_model *m, FILE *f);

/* Format-specific loaders (model_llama2c.c, model_gguf.c, model_safetensors.c). */
gq_status gq_model_load_llama2c(const char *path, const char *tokenizer_path, gq_model **out);
gq_status gq_model_load_gguf(const char *path, gq_model **out);
gq_status gq_model_load_safetensors(const char *path, gq_model **out);

#endif
