/* test_util.c — SHA-256 against FIPS vectors, fp16 conversion against exhaustive round trips, RNG
 * determinism, atomic file writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static void test_sha256_vectors(void **st) {
    (void)st;
    char hex[65];
    gq_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    gq_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    gq_sha256_hex(m, strlen(m), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* incremental in odd pieces equals one-shot */
    gq_sha256 s;
    uint8_t d[32];
    char big[1000];
    for (int i = 0; i < 1000; i++) big[i] = (char)(i * 7);
    gq_sha256_init(&s);
    for (int i = 0; i < 1000; i += 13) gq_sha256_update(&s, big + i, (size_t)(1000 - i < 13 ? 1000 - i : 13));
    gq_sha256_final(&s, d);
    char hex2[65];
    for (int i = 0; i < 32; i++) sprintf(hex2 + 2 * i, "%02x", d[i]);
    gq_sha256_hex(big, 1000, hex);
    assert_string_equal(hex, hex2);
}

static void test_fp16_roundtrip(void **st) {
    (void)st;
    /* every finite half converts to float and back to the same bits */
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1f) == 0x1f) continue;
        float f = gq_fp16_to_fp32((uint16_t)h);
        assert_int_equal(gq_fp32_to_fp16(f), h);
    }
    assert_true(gq_fp16_to_fp32(0x3c00) == 1.0f);
    assert_true(gq_fp16_to_fp32(0xc000) == -2.0f);
    assert_true(gq_fp16_to_fp32(0x0001) == ldexpf(1.0f, -24));
    /* ties round to even: 1 + 2^-11 is halfway between 1 and 1+2^-10 */
    assert_int_equal(gq_fp32_to_fp16(1.0f + ldexpf(1.0f, -11)), 0x3c00);
    assert_int_equal(gq_fp32_to_fp16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
    assert_int_equal(gq_fp32_to_fp16(1e6f), 0x7c00);
    assert_true(gq_bf16_to_fp32(0x3f80) == 1.0f);
}

static void test_rng(void **st) {
    (void)st;
    gq_rng a, b;
    gq_rng_seed(&a, 42);
    gq_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_true(gq_rng_u64(&a) == gq_rng_u64(&b));
    double sum = 0, sq = 0;
    int n = 20000;
    for (int i = 0; i < n; i++) {
        double x = gq_rng_normal(&a);
        sum += x;
        sq += x * x;
    }
    assert_true(fabs(sum / n) < 0.05);
    assert_true(fabs(sq / n - 1) < 0.05);
    for (int i = 0; i < 1000; i++) assert_true(gq_rng_below(&a, 7) < 7);
}

static void test_atomic_write(void **st) {
    (void)st;
    char path[] = "/tmp/gqsa_test_atomicXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(gq_write_file_atomic(path, "hello", 5), GQ_OK);
    char *data;
    size_t len;
    assert_int_equal(gq_read_file(path, &data, &len), GQ_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "hello", 5);
    free(data);
    unlink(path);
    assert_int_equal(gq_read_file("/nonexistent/x", &data, &len), GQ_ERR_IO);
    assert_non_null(strstr(gq_errmsg(), "/nonexistent/x"));
    assert_int_equal(gq_write_file_atomic("/nonexistent/dir/x", "a", 1), GQ_ERR_IO);
}

static void test_overflow(void **st) {
    (void)st;
    size_t out;
    assert_int_equal(gq_mul_overflow(SIZE_MAX / 2, 3, &out), -1);
    assert_int_equal(gq_mul_overflow(1000, 1000, &out), 0);
    assert_int_equal(out, 1000000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors), cmocka_unit_test(test_fp16_roundtrip), cmocka_unit_test(test_rng),
        cmocka_unit_test(test_atomic_write), cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
