/* make_seeds.c — writes the valid model files of the corrupt-fixture catalogue (tests/support/
 * fixtures_corrupt.c) as fuzz seeds, so the fuzz corpus holds no committed binaries:
 *   make_seeds DIR   writes DIR/gguf/, DIR/safetensors/ and DIR/llama2c/ (one or two files each)
 * (directory names = the fuzz targets' suffixes; tests/fuzz/run.sh merges them with tests/fuzz/corpus/).
 * Must not: write anything but those seeds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "../support/fixtures_corrupt.h"

static const struct {
    const char *fixture, *target, *name;
} SEEDS[] = {
    {"gguf_ok/model.gguf", "gguf", "tiny_ok.gguf"},
    {"gguf_ok_align64/model.gguf", "gguf", "tiny_align64.gguf"},
    {"st_ok/model.safetensors", "safetensors", "tiny_ok.safetensors"},
    {"st_ok_bf16/model.safetensors", "safetensors", "tiny_bf16.safetensors"},
    {"l2c_ok/model.bin", "llama2c", "tiny_ok.bin"},
};

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    int rc = in && out ? 0 : -1;
    char buf[4096];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) rc = -1;
    if (in) fclose(in);
    if (out && fclose(out)) rc = -1;
    if (rc) fprintf(stderr, "make_seeds: cannot copy %s to %s\n", from, to);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds DIR\n");
        return 2;
    }
    char fx[2048], path[4096], dst[4096];
    snprintf(fx, sizeof fx, "%s/fixtures", argv[1]);
    mkdir(argv[1], 0755);
    if (gqt_corrupt_write_all(fx)) {
        fprintf(stderr, "make_seeds: cannot write the fixtures under %s\n", fx);
        return 1;
    }
    for (size_t i = 0; i < sizeof SEEDS / sizeof SEEDS[0]; i++) {
        snprintf(dst, sizeof dst, "%s/%s", argv[1], SEEDS[i].target);
        mkdir(dst, 0755);
        snprintf(path, sizeof path, "%s/%s", fx, SEEDS[i].fixture);
        snprintf(dst, sizeof dst, "%s/%s/%s", argv[1], SEEDS[i].target, SEEDS[i].name);
        if (copy_file(path, dst)) return 1;
    }
    return 0;
}
