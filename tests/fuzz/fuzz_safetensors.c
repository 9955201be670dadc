/* fuzz_safetensors.c — libFuzzer target: the safetensors container parser (and tensor conversion on what
 * parses), plus the config.json reader on the same bytes. Must never crash, leak or trip a sanitizer.
 * Must not: touch the file system.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "model_formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gq_st_file *f = NULL;
    if (gq_st_parse(data, size, "fuzz.safetensors", &f) == GQ_OK) {
        for (size_t i = 0; i < f->n_tensors; i++) {
            const gq_st_tensor *t = &f->tensors[i];
            if (t->n_elems > (1u << 22)) continue;
            float *out = malloc((size_t)t->n_elems * sizeof *out + 1);
            if (out) (void)gq_st_tensor_to_f32(f, t, out, t->n_elems);
            free(out);
            (void)gq_st_find(f, t->name);
        }
        gq_st_close(f);
    }
    gq_config c;
    (void)gq_hf_config_parse((const char *)data, size, "fuzz/config.json", &c);
    return 0;
}
