/* fuzz_gguf.c — libFuzzer target: the GGUF container parser, then the llama model builder and every
 * tensor's dequantization on whatever parses. Must never crash, leak or trip a sanitizer.
 * Must not: build the tokenizer (with_tokenizer = 0): that parser has its own fuzz target.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "gguf.h"
#include "model_formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gq_gguf *g = NULL;
    if (gq_gguf_parse(data, size, "fuzz.gguf", &g) != GQ_OK) return 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gq_gguf_tensor *t = &g->tensors[i];
        if (t->n_elems > (1u << 22)) continue; /* bounded by the file size anyway; keeps runs fast */
        float *out = malloc((size_t)t->n_elems * sizeof *out);
        if (out) (void)gq_gguf_tensor_to_f32(g, t, out, t->n_elems);
        free(out);
    }
    for (uint64_t i = 0; i < g->n_kv; i++) { /* typed getters on every key */
        const gq_gguf_kv *kv = &g->kv[i];
        char key[256];
        size_t n = kv->key.n < sizeof key - 1 ? (size_t)kv->key.n : sizeof key - 1;
        for (size_t j = 0; j < n; j++) key[j] = kv->key.s[j] ? kv->key.s[j] : '?';
        key[n] = 0;
        uint64_t u;
        double f;
        gq_gguf_str s;
        (void)gq_gguf_get_u64(g, key, &u);
        (void)gq_gguf_get_f64(g, key, &f);
        (void)gq_gguf_get_str(g, key, &s);
        if (kv->type == GQ_GGUF_ARRAY && kv->arr_type != GQ_GGUF_STRING && kv->arr_n > 0) {
            (void)gq_gguf_arr_f64(kv, kv->arr_n - 1);
            (void)gq_gguf_arr_i64(kv, 0);
        }
    }
    gq_model *m = NULL;
    if (gq_model_from_gguf(g, 0, &m) == GQ_OK) gq_model_free(m);
    gq_gguf_close(g);
    return 0;
}
