/* fixtures_corrupt.h — the catalogue of corrupt (and a few valid) model files every loader must survive.
 *
 * gqt_corrupt_write_all() writes each case into <dir>/<case name>/ as a tiny synthetic file (built here,
 * so nothing large is committed); tests/fixtures/corrupt/README.md lists the same cases with the reason
 * each must load or fail. Linked into every test binary (the Makefile links all of tests/support), so it depends only
 * on libc.
 * Must not: depend on cmocka or on the loaders it is used to test.
 */
#ifndef GQT_FIXTURES_CORRUPT_H
#define GQT_FIXTURES_CORRUPT_H

#include <stddef.h>

typedef struct {
    const char *name;   /* directory name under the output dir */
    const char *file;   /* the path to load, relative to that directory ("model.gguf", "." for a dir) */
    int must_load;      /* 1: gq_model_load must succeed; 0: must return a non-OK status */
    int expect_status;  /* when must_load == 0: the gq_status expected (0 = any non-OK) */
    const char *why;
} gqt_corrupt_case;

/* All cases, in catalogue order. */
const gqt_corrupt_case *gqt_corrupt_cases(size_t *n);
/* Write every case under dir (created if needed). Returns 0 on success, -1 on an I/O failure. */
int gqt_corrupt_write_all(const char *dir);

#endif
