/* util.h — errors, allocation, files, timing and progress shared by every gqsa module.
 *
 * Two levels of failure (as in ggml):
 *   - GQ_ASSERT: a programmer error (broken contract). Always on, prints file:line and aborts.
 *   - gq_status + gq_errf(): anything a user, a file or the machine can cause. The function that
 *     detects the problem records a message (naming the file, tensor, line, key...) and returns a
 *     non-zero status; callers propagate the status and may prepend context with gq_err_prefix().
 * Must not: print to stdout (stdout belongs to command results), or call exit() outside cli/.
 */
#ifndef GQ_UTIL_H
#define GQ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    GQ_OK = 0,
    GQ_ERR_IO,       /* open/read/write/fsync/rename failed */
    GQ_ERR_FORMAT,   /* a file's content is malformed, truncated or unsupported */
    GQ_ERR_ARG,      /* a bad argument or config value from the user */
    GQ_ERR_NOMEM,    /* allocation failed */
    GQ_ERR_NUMERIC,  /* NaN/Inf, non-positive-definite matrix, divergence */
    GQ_ERR_UNSUPPORTED, /* valid input that this build cannot handle (e.g. no CUDA device) */
    GQ_ERR_DB,       /* SQLite error */
    GQ_ERR_INTERNAL
} gq_status;

/* Record an error message for the current thread and return `st` (so `return gq_errf(...)` works). */
gq_status gq_errf(gq_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepend context ("loading model.gguf: ") to the current message; returns `st`. */
gq_status gq_err_prefix(gq_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message recorded on this thread ("" if none). Owned by the library; valid until the next error. */
const char *gq_errmsg(void);
void gq_err_clear(void);
const char *gq_status_name(gq_status st);

#define GQ_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) gq_assert_fail(#cond, __FILE__, __LINE__);                                    \
    } while (0)
_Noreturn void gq_assert_fail(const char *expr, const char *file, int line);

/* Propagate a non-OK status. */
#define GQ_TRY(expr)                                                                               \
    do {                                                                                           \
        gq_status gq__st = (expr);                                                                 \
        if (gq__st != GQ_OK) return gq__st;                                                        \
    } while (0)

/* Allocation. gq_malloc/gq_calloc abort with a message on failure: out-of-memory in a research
 * tool is not recoverable in a useful way, and a NULL check at every site hides the real logic.
 * Use gq_try_malloc where a huge user-driven size makes failure a plausible input error. */
void *gq_malloc(size_t n);
void *gq_calloc(size_t count, size_t size);
void *gq_realloc(void *p, size_t n);
char *gq_strdup(const char *s);
void *gq_try_malloc(size_t n);
/* a*b with overflow detection: returns 0 and sets *out on success, -1 on overflow. */
int gq_mul_overflow(size_t a, size_t b, size_t *out);

/* Read a whole file into a NUL-terminated buffer (the NUL is not counted in *len). Caller frees. */
gq_status gq_read_file(const char *path, char **data, size_t *len);
/* Write atomically: tmp file in the same directory, fsync, rename, fsync dir. */
gq_status gq_write_file_atomic(const char *path, const void *data, size_t len);
int gq_file_exists(const char *path);
/* mkdir -p */
gq_status gq_mkdirs(const char *path);

/* Paths. The data root (datasets/ and models/ live under it) is, in order: gq_set_data_root(),
 * $GQSA_DATA_ROOT, "../shared". gq_data_path joins root + rel into buf. */
void gq_set_data_root(const char *root);
const char *gq_data_root(void);
const char *gq_data_path(char *buf, size_t cap, const char *rel);

/* Monotonic seconds. */
double gq_now(void);

/* Progress on stderr with rate and ETA, rate-limited to a few updates per second; silent when
 * stderr is not a terminal unless GQSA_PROGRESS=1 (then one line every few seconds). */
typedef struct {
    const char *label;
    double total;      /* units of work (tokens, windows, layers) */
    const char *unit;
    double t0, t_last;
    int tty;
} gq_progress;
void gq_progress_init(gq_progress *p, const char *label, double total, const char *unit);
void gq_progress_update(gq_progress *p, double done);
void gq_progress_done(gq_progress *p, double done);

/* Number of worker threads to use (GQSA_THREADS or the machine's online CPUs). */
int gq_num_threads(void);

/* Deterministic RNG (xoshiro256**), used for calibration sampling and tests. */
typedef struct { uint64_t s[4]; } gq_rng;
void gq_rng_seed(gq_rng *r, uint64_t seed);
uint64_t gq_rng_u64(gq_rng *r);
double gq_rng_uniform(gq_rng *r);       /* [0,1) */
double gq_rng_normal(gq_rng *r);        /* N(0,1) */
uint64_t gq_rng_below(gq_rng *r, uint64_t n); /* uniform in [0,n) */

/* SHA-256 (for checkpoint and config hashes). out_hex gets 64 hex chars + NUL. */
typedef struct { uint32_t h[8]; uint64_t len; uint8_t buf[64]; size_t nbuf; } gq_sha256;
void gq_sha256_init(gq_sha256 *s);
void gq_sha256_update(gq_sha256 *s, const void *data, size_t n);
void gq_sha256_final(gq_sha256 *s, uint8_t out[32]);
void gq_sha256_hex(const void *data, size_t n, char out_hex[65]);
gq_status gq_sha256_file(const char *path, char out_hex[65]);

/* fp16 / bf16 conversions (round-to-nearest-even for fp32->fp16). */
float gq_fp16_to_fp32(uint16_t h);
uint16_t gq_fp32_to_fp16(float f);
float gq_bf16_to_fp32(uint16_t h);

#endif
