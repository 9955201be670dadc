/* fuzz_tokenizer.c — libFuzzer target for the three tokenizer loaders (sentencepiece protobuf,
 * llama2.c tokenizer.bin, HF tokenizer.json, and a GGUF's tokenizer metadata) and for encoding
 * and decoding arbitrary bytes with whatever loaded.
 * Input layout: byte 0 picks the loader (mod 4), bytes 1-2 (little-endian) are the length L of
 * the text to encode, then L bytes of text, then the file. Seeds: tests/fuzz/corpus/tokenizer,
 * made by tools/make_tok_fuzz_seeds.py.
 * Must not: touch the file system.
 */
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tokenizer_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int which = data[0] % 4;
    size_t tl = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (tl > size) tl = size;
    const char *text = (const char *)data;
    const uint8_t *file = data + tl;
    size_t flen = size - tl;
    gq_tokenizer *t = NULL;
    gq_status st;
    if (which == 0) st = gq_tok_spm_load_buf(file, flen, "fuzz.model", &t);
    else if (which == 1) st = gq_tok_l2c_load_buf(file, flen, 0, "fuzz.bin", &t);
    else if (which == 2) {
        char *js = malloc(flen + 1); /* the JSON loader takes a length; NUL-terminate anyway */
        memcpy(js, file, flen);
        js[flen] = 0;
        st = gq_tok_bpe_load_json(js, flen, "fuzz.json", &t);
        free(js);
    } else {
        gq_gguf *g = NULL;
        st = gq_gguf_parse(file, flen, "fuzz.gguf", &g);
        if (st == GQ_OK) st = gq_tokenizer_from_gguf(g, &t);
        gq_gguf_close(g);
    }
    if (st != GQ_OK) {
        if (t) abort(); /* a failed load must not hand out a tokenizer */
        return 0;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (gq_tokenizer_encode(t, text, tl, 1, &ids, &n) == GQ_OK) {
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= gq_tokenizer_vocab_size(t)) abort();
        char *back = NULL;
        size_t bl;
        if (gq_tokenizer_decode(t, ids, n, &back, &bl) != GQ_OK) abort();
        free(back);
        free(ids);
    }
    /* decode arbitrary ids (out-of-range ones must be an error, not a read) */
    int32_t raw[64];
    size_t nr = tl / 4 < 64 ? tl / 4 : 64;
    memcpy(raw, text, nr * 4);
    char *back = NULL;
    size_t bl;
    if (gq_tokenizer_decode(t, raw, nr, &back, &bl) == GQ_OK) free(back);
    gq_tokenizer_free(t);
    return 0;
}
