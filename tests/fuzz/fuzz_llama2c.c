/* fuzz_llama2c.c — libFuzzer target: the llama2.c (v0) checkpoint reader from memory. Must never crash,
 * leak or trip a sanitizer; a hostile header must not cause a large allocation (the exact size check
 * precedes allocation).
 * Must not: touch the file system.
 */
#include <stddef.h>
#include <stdint.h>

#include "model_formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gq_model *m = NULL;
    if (gq_model_llama2c_parse(data, size, "fuzz.bin", &m) == GQ_OK) {
        (void)gq_model_check_finite(m);
        (void)gq_model_n_params(m);
        gq_model_free(m);
    }
    return 0;
}
